//! One module per page (or family of pages); each has a data struct built
//! by the server and a `render` function.

pub mod account;
pub mod artifact;
pub mod compare;
pub mod datasets;
pub mod deployments;
pub mod drift;
pub mod experiments;
pub mod governance;
pub mod registry;
pub mod run;
pub mod runs;
