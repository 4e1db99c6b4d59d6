//! The crate's one error type. `Input` is the caller's mistake (a 400 with
//! its message); the others are about the model or the engine.

/// What went wrong loading a model or predicting with it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request does not fit the model: wrong shape, type, missing
    /// features, NaN where not allowed. The message names the problem.
    #[error("{0}")]
    Input(String),
    /// The model is valid but uses something this engine cannot run (an
    /// ONNX operator, a scikit-learn estimator, a flavor). Another engine
    /// may take it.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// The model files are corrupt, truncated or inconsistent.
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// A Python worker crashed, timed out or answered nonsense while
    /// handling this request; the pool replaces it.
    #[error("model worker failed: {0}")]
    Worker(String),
    /// The worker pool is saturated or shutting down.
    #[error("model is overloaded: {0}")]
    Overloaded(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn input(message: impl Into<String>) -> Error {
        Error::Input(message.into())
    }

    pub fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidModel(message.into())
    }

    pub fn unsupported(message: impl Into<String>) -> Error {
        Error::Unsupported(message.into())
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
