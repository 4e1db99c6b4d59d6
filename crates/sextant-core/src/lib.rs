//! Domain types of Sextant: experiments, runs, metrics, logged models,
//! registered models and model versions, plus the search-filter grammar.
//!
//! This crate does no IO, knows nothing about SQL or HTTP and is not
//! serializable: the wire format lives in `sextant-api`, the SQL in
//! `sextant-store`. Everything here is plain data and pure functions, so the
//! other crates can share one vocabulary.

#[macro_use]
pub mod entities;
pub mod deployments;
pub mod governance;
pub mod search;
pub mod validation;

pub use deployments::*;
pub use entities::*;
pub use governance::*;
