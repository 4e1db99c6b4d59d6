//! Sextant's inference engines.
//!
//! Everything here is synchronous: a [`ModelRuntime`] is pure compute (or,
//! for Python workers, blocking I/O), and the server adapts it to async.
//!
//! Layout:
//! - [`tensor`]: typed, shaped values, the common currency of every
//!   protocol and engine.
//! - [`runtime`]: the [`ModelRuntime`] trait every engine implements.
//! - [`explain`]: SHAP explanations ([`Explanation`]) every engine returns.
//! - [`trees`]: the native tree-ensemble engine and its loaders (XGBoost
//!   JSON/UBJ, LightGBM text, scikit-learn pickles).
//! - [`pickle`]: a pickle reader that builds a value graph and never runs
//!   code, for scikit-learn models.
//! - [`sklearn`]: scikit-learn pickles (trees, linear models, numeric
//!   pipelines, the XGBoost/LightGBM wrappers) turned into native runtimes.
//! - [`linear`]: the linear-model runtime.
//! - [`onnx`]: an ONNX graph interpreter for the operators tabular and
//!   small neural models use; tree operators compile to the native engine.
//! - [`python`]: a supervised pool of Python worker processes for models
//!   only Python can run.
//! - [`mlflow`]: MLflow model directories (`MLmodel`, flavors, signatures),
//!   turned into a [`Model`].
//! - [`model`]: [`Model`], a runtime plus its signature: it checks and
//!   shapes requests before the runtime sees them.

pub mod error;
pub mod explain;
pub mod linear;
pub mod mlflow;
pub mod model;
pub mod onnx;
pub mod pickle;
pub mod progress;
pub mod python;
pub mod runtime;
pub mod sklearn;
pub mod tensor;
pub mod trees;

pub use error::{Error, Result};
pub use explain::{Background, ExplainOptions, Explanation};
pub use model::Model;
pub use progress::Progress;
pub use runtime::{CallCost, ModelRuntime, RuntimeInfo};
pub use tensor::{DataType, NamedTensor, Tensor, TensorData, TensorSpec};
