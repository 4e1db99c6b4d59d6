//! The interface every engine implements.

use crate::error::Result;
use crate::explain::{ExplainOptions, Explanation};
use crate::tensor::{NamedTensor, TensorSpec};

/// What a loaded runtime declares about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeInfo {
    /// Which engine runs the model: `native-trees`, `onnx`, `python`, ….
    pub engine: &'static str,
    /// The inputs `predict` takes, in order. A tabular model takes one
    /// `FP64` matrix `[-1, n_features]`.
    pub inputs: Vec<TensorSpec>,
    /// The outputs `predict` returns, in order. The first is the model's
    /// default answer (what MLflow's pyfunc `predict` returns).
    pub outputs: Vec<TensorSpec>,
    /// Column names of a single feature-matrix input, when the model file
    /// records them (XGBoost `feature_names`, LightGBM `feature_names`,
    /// scikit-learn `feature_names_in_`).
    pub feature_names: Option<Vec<String>>,
    /// The runtime takes whatever named inputs it is given (a Python model
    /// without a signature); `inputs` is then only descriptive.
    pub accepts_any_inputs: bool,
}

/// How expensive one call is, so the server can decide whether to run it on
/// the I/O thread (cheap) or hand it to the blocking pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallCost {
    /// A few microseconds per row: run inline for small batches.
    Cheap,
    /// Milliseconds or blocking I/O (Python workers): never inline.
    Blocking,
}

/// One loaded model, ready to predict.
///
/// Implementations are synchronous and pure compute (or, for Python
/// workers, blocking I/O); the server adapts them to async. `predict` gets
/// exactly the inputs `info().inputs` declares, already checked and cast by
/// [`crate::Model`], all with the same number of rows.
pub trait ModelRuntime: Send + Sync {
    fn info(&self) -> &RuntimeInfo;

    fn predict(&self, inputs: &[NamedTensor]) -> Result<Vec<NamedTensor>>;

    fn cost(&self) -> CallCost {
        CallCost::Cheap
    }

    /// SHAP values of `inputs` (the same inputs `predict` takes). Engines
    /// with an exact method (trees, linear models) override this; the
    /// others are explained by KernelSHAP around `predict`.
    fn explain(&self, inputs: &[NamedTensor], options: &ExplainOptions) -> Result<Explanation> {
        crate::explain::kernel::explain(self, inputs, options)
    }

    /// Whether `explain`'s default is an exact method (TreeSHAP, Linear
    /// SHAP) rather than KernelSHAP: a pipeline explains its model on the
    /// transformed columns only then.
    fn explains_exactly(&self) -> bool {
        false
    }
}
