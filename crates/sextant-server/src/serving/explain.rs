//! Explanations of a deployment's predictions: the background rows each
//! model version collects from its first answers, and the request options.
//!
//! Tree ensembles are explained by path-dependent TreeSHAP and need no
//! background. The interventional methods (interventional TreeSHAP, Linear
//! SHAP, KernelSHAP for every other engine, Python workers included) need
//! rows that stand for "the feature is absent": a version keeps the first
//! [`BACKGROUND_ROWS`] rows it answered, in the model's own input form, like
//! the reference window of drift monitoring. The background's hash is in
//! every answer, so that an explanation can be reproduced.

use std::sync::{Mutex, OnceLock};

use sextant_serve::explain::Method;
use sextant_serve::{Background, NamedTensor, Tensor, TensorData};

/// Rows a version's background holds; shap suggests 100 for KernelSHAP.
pub const BACKGROUND_ROWS: usize = 100;

/// A version's background: filling from its first answers, then fixed.
#[derive(Default)]
pub struct ExplainBackground {
    filling: Mutex<Option<Vec<NamedTensor>>>,
    full: OnceLock<Background>,
}

impl ExplainBackground {
    pub fn wants_rows(&self) -> bool {
        self.full.get().is_none()
    }

    /// Adds the rows of `inputs` (prepared for the model) until the
    /// background is full; inputs of another shape than the first are
    /// ignored.
    pub fn offer(&self, inputs: &[NamedTensor]) {
        if !self.wants_rows() {
            return;
        }
        let mut filling = self.filling.lock().expect("background lock");
        let rows = match filling.as_ref() {
            Some(current) => current.first().map_or(0, |t| t.tensor.rows()),
            None => 0,
        };
        let room = BACKGROUND_ROWS.saturating_sub(rows);
        let offered = inputs.first().map_or(0, |t| t.tensor.rows());
        let take = room.min(offered);
        if take == 0 {
            return;
        }
        let head: Vec<NamedTensor> = inputs.iter().map(|t| first_rows(t, take)).collect();
        match filling.as_mut() {
            None => *filling = Some(head),
            Some(current) => {
                let same_shape = current.len() == head.len()
                    && current.iter().zip(&head).all(|(a, b)| {
                        a.name == b.name
                            && a.tensor.row_width() == b.tensor.row_width()
                            && std::mem::discriminant(&a.tensor.data)
                                == std::mem::discriminant(&b.tensor.data)
                    });
                if !same_shape {
                    return;
                }
                for (all, part) in current.iter_mut().zip(head) {
                    append(&mut all.tensor, part.tensor);
                }
            }
        }
        let rows = filling
            .as_ref()
            .and_then(|c| c.first())
            .map_or(0, |t| t.tensor.rows());
        if rows >= BACKGROUND_ROWS {
            let rows = filling.take().expect("filled");
            let _ = self.full.set(Background::new(rows));
        }
    }

    /// The background so far: every row once full, else the rows collected
    /// yet (`None` before the first answer).
    pub fn current(&self) -> Option<Background> {
        if let Some(full) = self.full.get() {
            return Some(full.clone());
        }
        let filling = self.filling.lock().expect("background lock");
        filling.as_ref().map(|rows| Background::new(rows.clone()))
    }
}

fn first_rows(tensor: &NamedTensor, rows: usize) -> NamedTensor {
    let width = tensor.tensor.row_width().max(1);
    let n = rows * width;
    let data = match &tensor.tensor.data {
        TensorData::Bool(v) => TensorData::Bool(v[..n].to_vec()),
        TensorData::I64(v) => TensorData::I64(v[..n].to_vec()),
        TensorData::F32(v) => TensorData::F32(v[..n].to_vec()),
        TensorData::F64(v) => TensorData::F64(v[..n].to_vec()),
        TensorData::Str(v) => TensorData::Str(v[..n].to_vec()),
    };
    let mut shape = tensor.tensor.shape.clone();
    if let Some(first) = shape.first_mut() {
        *first = rows;
    }
    NamedTensor::new(
        tensor.name.clone(),
        Tensor {
            dtype: tensor.tensor.dtype,
            shape,
            data,
        },
    )
}

fn append(all: &mut Tensor, part: Tensor) {
    match (&mut all.data, part.data) {
        (TensorData::Bool(a), TensorData::Bool(b)) => a.extend(b),
        (TensorData::I64(a), TensorData::I64(b)) => a.extend(b),
        (TensorData::F32(a), TensorData::F32(b)) => a.extend(b),
        (TensorData::F64(a), TensorData::F64(b)) => a.extend(b),
        (TensorData::Str(a), TensorData::Str(b)) => a.extend(b),
        _ => return,
    }
    if let (Some(a), Some(b)) = (all.shape.first_mut(), part.shape.first()) {
        *a += b;
    }
}

/// What an explain request asks for (`parameters` of an OIP request,
/// `params` of a scoring request, or the query string).
#[derive(Debug, Clone, Default)]
pub struct ExplainRequest {
    pub method: Option<Method>,
    /// KernelSHAP coalitions per row.
    pub samples: Option<usize>,
    pub seed: u64,
}

impl ExplainRequest {
    /// Reads `method`, `samples` and `seed` from request parameters.
    pub fn from_json<'a>(
        params: impl IntoIterator<Item = (&'a String, &'a serde_json::Value)>,
    ) -> Result<ExplainRequest, String> {
        let mut request = ExplainRequest::default();
        let params: std::collections::BTreeMap<&str, &serde_json::Value> =
            params.into_iter().map(|(k, v)| (k.as_str(), v)).collect();
        if let Some(method) = params.get("method") {
            let name = method
                .as_str()
                .ok_or("parameter 'method' must be a string")?;
            request.method = Some(Method::parse(name).map_err(|e| e.to_string())?);
        }
        if let Some(samples) = params.get("samples") {
            let n = samples
                .as_u64()
                .filter(|&n| (1..=1_000_000).contains(&n))
                .ok_or("parameter 'samples' must be a whole number from 1 to 1000000")?;
            request.samples = Some(n as usize);
        }
        if let Some(seed) = params.get("seed") {
            request.seed = seed
                .as_u64()
                .ok_or("parameter 'seed' must be a non-negative whole number")?;
        }
        Ok(request)
    }
}

/// Top `k` contributions per row and output, by |φ|, for `explain_top_k` on
/// an infer request.
pub fn top_contributions(explanation: &sextant_serve::Explanation, k: usize) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = (0..explanation.rows)
        .map(|row| {
            let outputs: Vec<serde_json::Value> = explanation
                .outputs
                .iter()
                .enumerate()
                .map(|(o, name)| {
                    let mut features: Vec<(usize, f64)> = (0..explanation.features.len())
                        .map(|f| (f, explanation.value(row, f, o)))
                        .collect();
                    features.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
                    let top: Vec<serde_json::Value> = features
                        .into_iter()
                        .take(k)
                        .map(|(f, value)| {
                            serde_json::json!({"feature": explanation.features[f], "value": value})
                        })
                        .collect();
                    serde_json::json!({
                        "output": name,
                        "base_value": explanation.base_values[o],
                        "top": top,
                    })
                })
                .collect();
            serde_json::Value::Array(outputs)
        })
        .collect();
    serde_json::Value::Array(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(values: Vec<f64>) -> Vec<NamedTensor> {
        let rows = values.len();
        vec![NamedTensor::new("x", Tensor::f64_matrix(rows, 1, values))]
    }

    #[test]
    fn the_background_fills_from_answers_then_stays_fixed() {
        let background = ExplainBackground::default();
        assert!(background.current().is_none());
        background.offer(&column(vec![1.0, 2.0]));
        let partial = background.current().unwrap();
        assert_eq!(partial.rows, 2);
        background.offer(&column((0..150).map(f64::from).collect()));
        let full = background.current().unwrap();
        assert_eq!(full.rows, BACKGROUND_ROWS);
        assert!(!background.wants_rows());
        background.offer(&column(vec![7.0]));
        assert_eq!(background.current().unwrap().hash, full.hash);
        assert_ne!(partial.hash, full.hash);
    }

    #[test]
    fn explain_parameters_are_checked() {
        let params = |v: serde_json::Value| ExplainRequest::from_json(v.as_object().unwrap());
        let request =
            params(serde_json::json!({"method": "kernel", "samples": 500, "seed": 3})).unwrap();
        assert_eq!(request.method, Some(Method::Kernel));
        assert_eq!(request.samples, Some(500));
        assert!(params(serde_json::json!({"method": "lime"}))
            .unwrap_err()
            .contains("lime"));
        assert!(params(serde_json::json!({"samples": 0})).is_err());
        assert!(params(serde_json::json!({"seed": -1})).is_err());
    }
}
