//! What a model's MLflow signature (as the worker reports it) tells the
//! pool: the declared inputs and outputs, and how requests should reach
//! `predict`.

use serde_json::Value;

use crate::tensor::{DataType, TensorSpec};

/// The name given to the single unnamed output of a signature: the worker
/// names such an output `predictions` too.
const UNNAMED_OUTPUT: &str = "predictions";

/// Which of MLflow's two schema forms a signature's inputs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SchemaForm {
    /// `[{"type": "double", "name": "x"}, …]`: DataFrame columns.
    Columns,
    /// `[{"type": "tensor", "tensor-spec": {"dtype", "shape"}, "name"}, …]`.
    Tensors,
}

/// A parsed signature.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Signature {
    /// `None` when the model has no input schema.
    pub(crate) input_form: Option<SchemaForm>,
    /// Empty when there is no schema, or when one of its entries has no
    /// tensor equivalent (MLflow's `array`, `object`, `map`, `any`).
    pub(crate) inputs: Vec<TensorSpec>,
    pub(crate) outputs: Vec<TensorSpec>,
    /// The input schema is one tensor without a name: the model wants a
    /// bare array, not a dict.
    pub(crate) single_unnamed_tensor_input: bool,
}

impl Signature {
    /// Reads the `signature` of a `ready` message: `{"inputs": [..] | null,
    /// "outputs": [..] | null}`, each list MLflow's schema JSON.
    pub(crate) fn from_ready(signature: Option<&Value>) -> Signature {
        let schema = |key: &str| {
            signature
                .and_then(|signature| signature.get(key))
                .and_then(Value::as_array)
        };
        let inputs = schema("inputs");
        let outputs = schema("outputs");
        let input_form = inputs.map(|entries| schema_form(entries));
        let single_unnamed_tensor_input = input_form == Some(SchemaForm::Tensors)
            && inputs
                .is_some_and(|entries| entries.len() == 1 && entry_name(&entries[0]).is_none());
        Signature {
            input_form,
            inputs: inputs
                .and_then(|entries| {
                    // Unnamed columns are positional; an unnamed tensor is
                    // the bare array, named "" like requests name it.
                    let form = schema_form(entries);
                    specs(entries, |idx| match form {
                        SchemaForm::Columns => idx.to_string(),
                        SchemaForm::Tensors => String::new(),
                    })
                })
                .unwrap_or_default(),
            outputs: outputs
                .and_then(|entries| {
                    let single = entries.len() == 1;
                    specs(entries, |idx| {
                        if single {
                            UNNAMED_OUTPUT.to_owned()
                        } else {
                            idx.to_string()
                        }
                    })
                })
                .unwrap_or_default(),
            single_unnamed_tensor_input,
        }
    }
}

fn schema_form(entries: &[Value]) -> SchemaForm {
    // MLflow does not mix the two forms in one schema.
    if entries
        .iter()
        .any(|entry| entry.get("type").and_then(Value::as_str) == Some("tensor"))
    {
        SchemaForm::Tensors
    } else {
        SchemaForm::Columns
    }
}

fn entry_name(entry: &Value) -> Option<&str> {
    entry.get("name").and_then(Value::as_str)
}

/// The entries as tensor specs, or `None` when one has no tensor form.
fn specs(entries: &[Value], unnamed: impl Fn(usize) -> String) -> Option<Vec<TensorSpec>> {
    entries
        .iter()
        .enumerate()
        .map(|(idx, entry)| {
            let name = entry_name(entry).map_or_else(|| unnamed(idx), str::to_owned);
            let kind = entry.get("type")?.as_str()?;
            if kind == "tensor" {
                let spec = entry.get("tensor-spec")?;
                let dtype = DataType::from_numpy(spec.get("dtype")?.as_str()?)?;
                let shape = spec
                    .get("shape")?
                    .as_array()?
                    .iter()
                    .map(Value::as_i64)
                    .collect::<Option<Vec<i64>>>()?;
                Some(TensorSpec::new(name, dtype, shape))
            } else {
                Some(TensorSpec::new(
                    name,
                    DataType::from_mlflow_column(kind)?,
                    vec![-1],
                ))
            }
        })
        .collect()
}
