//! scikit-learn's fitted transformers, run natively on a [`Table`] of
//! typed columns: what a tabular `Pipeline` does to a DataFrame before its
//! model sees a float matrix.
//!
//! Each transformer is read from its fitted attributes and reproduces its
//! `transform` in scikit-learn 1.9 (`sklearn/compose/_column_transformer.py`,
//! `sklearn/preprocessing/_encoders.py`, `_target_encoder.py`,
//! `_discretization.py`, `_polynomial.py`, `_function_transformer.py`,
//! `_data.py`, `sklearn/impute/_base.py`) with the same elementwise float64
//! operations in the same order, so that the numbers reaching the model are
//! the same bits:
//! - `ColumnTransformer`: each fitted transformer gets its columns (by the
//!   input indices scikit-learn recorded, `_transformer_to_input_indices`),
//!   outputs are concatenated in order, the remainder last, each multiplied
//!   by its `transformer_weights` entry; `"drop"` gives nothing and
//!   `"passthrough"` (fitted as an identity `FunctionTransformer`) its input;
//! - `OneHotEncoder`: `_transform` then the one-hot layout, with
//!   `handle_unknown` (`error`, `ignore`, `infrequent_if_exist`, `warn`),
//!   infrequent categories grouped into one column, and `drop`;
//! - `OrdinalEncoder`: codes, `unknown_value` for unknown categories when
//!   `handle_unknown="use_encoded_value"`, `encoded_missing_value` for the
//!   missing-value category, infrequent grouping;
//! - `TargetEncoder`: the fitted `encodings_` (what `transform` uses, not the
//!   cross-fitted `fit_transform`), `target_mean_` for unknown categories,
//!   one column per class for multiclass targets;
//! - `SimpleImputer` on numbers and on text; the scalers; `KBinsDiscretizer`
//!   (`searchsorted` over the inner edges, ordinal or one-hot);
//!   `PolynomialFeatures` (the dense algorithm's products, in its order);
//!   `FunctionTransformer` with no function or a numpy ufunc.
//!
//! A transformer we do not know, or a parameter we cannot honour, is
//! [`Error::Unsupported`] naming it.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::pickle::numpy::{self, Kind as ArrayKind, NdArray};
use crate::pickle::Node;
use crate::sklearn::{Estimator, Nesting};

/// What a transformer's input column must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Number,
    Text,
    /// Passed on unchanged: whatever the next step needs.
    Any,
    /// Never read (a column a `ColumnTransformer` drops).
    Unused,
}

/// One column of a batch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Column {
    Numbers(Vec<f64>),
    Text(Vec<String>),
    /// A column no transformer reads, which the request need not carry.
    Absent,
}

/// A batch of rows as columns, as a DataFrame reaches a transformer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Table {
    pub rows: usize,
    pub columns: Vec<Column>,
}

impl Table {
    fn numbers(&self, index: usize, by: &str) -> Result<&[f64]> {
        match &self.columns[index] {
            Column::Numbers(values) => Ok(values),
            Column::Text(_) => Err(Error::input(format!(
                "{by} takes numbers in column {index}, got text"
            ))),
            Column::Absent => Err(Error::input(format!("{by}: column {index} is missing"))),
        }
    }

    fn check_width(&self, width: usize, by: &str) -> Result<()> {
        if self.columns.len() != width {
            return Err(Error::input(format!(
                "{by} takes {width} columns, got {}",
                self.columns.len()
            )));
        }
        Ok(())
    }
}

/// One columnwise numeric operation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operation {
    Subtract(Vec<f64>),
    Divide(Vec<f64>),
    Multiply(Vec<f64>),
    Add(Vec<f64>),
    /// numpy's `clip`: NaN stays NaN.
    Clip {
        low: f64,
        high: f64,
    },
    /// Missing values of each column take its fill value.
    Impute {
        missing: MissingValue,
        fill: Vec<f64>,
    },
    /// Keep these columns, in this order.
    Select(Vec<usize>),
    /// A numpy ufunc on every value.
    Map(Ufunc),
}

/// `SimpleImputer.missing_values` for numeric data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum MissingValue {
    Nan,
    Number(f64),
}

impl MissingValue {
    fn matches(self, x: f64) -> bool {
        match self {
            MissingValue::Nan => x.is_nan(),
            MissingValue::Number(value) => x == value,
        }
    }
}

/// The numpy ufuncs a `FunctionTransformer` may name. Each is the C
/// library's function numpy calls for float64 (`npy_log1p` is `log1p`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ufunc {
    Log1p,
    Expm1,
    Log,
    Log2,
    Log10,
    Exp,
    Exp2,
    Sqrt,
    Cbrt,
    Absolute,
    Square,
    Negative,
    Reciprocal,
    Sign,
    Tanh,
    Arcsinh,
    Floor,
    Ceil,
    Rint,
    Trunc,
}

impl Ufunc {
    fn from_name(name: &str) -> Option<Ufunc> {
        Some(match name {
            "log1p" => Ufunc::Log1p,
            "expm1" => Ufunc::Expm1,
            "log" => Ufunc::Log,
            "log2" => Ufunc::Log2,
            "log10" => Ufunc::Log10,
            "exp" => Ufunc::Exp,
            "exp2" => Ufunc::Exp2,
            "sqrt" => Ufunc::Sqrt,
            "cbrt" => Ufunc::Cbrt,
            "absolute" | "abs" | "fabs" => Ufunc::Absolute,
            "square" => Ufunc::Square,
            "negative" => Ufunc::Negative,
            "reciprocal" => Ufunc::Reciprocal,
            "sign" => Ufunc::Sign,
            "tanh" => Ufunc::Tanh,
            "arcsinh" => Ufunc::Arcsinh,
            "floor" => Ufunc::Floor,
            "ceil" => Ufunc::Ceil,
            "rint" => Ufunc::Rint,
            "trunc" => Ufunc::Trunc,
            _ => return None,
        })
    }

    fn apply(self, x: f64) -> f64 {
        match self {
            Ufunc::Log1p => x.ln_1p(),
            Ufunc::Expm1 => x.exp_m1(),
            Ufunc::Log => x.ln(),
            Ufunc::Log2 => x.log2(),
            Ufunc::Log10 => x.log10(),
            Ufunc::Exp => x.exp(),
            Ufunc::Exp2 => x.exp2(),
            Ufunc::Sqrt => x.sqrt(),
            Ufunc::Cbrt => x.cbrt(),
            Ufunc::Absolute => x.abs(),
            Ufunc::Square => x * x,
            Ufunc::Negative => -x,
            Ufunc::Reciprocal => 1.0 / x,
            // numpy's sign: NaN stays NaN, zero stays zero.
            Ufunc::Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    x
                }
            }
            Ufunc::Tanh => x.tanh(),
            Ufunc::Arcsinh => x.asinh(),
            Ufunc::Floor => x.floor(),
            Ufunc::Ceil => x.ceil(),
            Ufunc::Rint => x.round_ties_even(),
            Ufunc::Trunc => x.trunc(),
        }
    }
}

/// A fitted transformer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Transformer {
    /// Numeric operations over `width` columns.
    Numeric {
        width: usize,
        operations: Vec<Operation>,
    },
    /// `"passthrough"`, or a `FunctionTransformer` without a function.
    Identity,
    /// A `Pipeline` of transformers.
    Chain(Vec<Transformer>),
    Columns(ColumnTransformer),
    OneHot(OneHotEncoder),
    Ordinal(OrdinalEncoder),
    Target(TargetEncoder),
    /// `SimpleImputer` over text (and numbers, for an imputer fitted on an
    /// object DataFrame): per column, its kind and fill.
    ObjectImpute {
        missing: Option<String>,
        fills: Vec<Fill>,
    },
    Bins(Discretizer),
    Polynomial(Polynomial),
}

/// One column of an imputer fitted on object data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fill {
    Text(String),
    Number(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ColumnTransformer {
    n_inputs: usize,
    parts: Vec<Part>,
}

/// One fitted transformer of a `ColumnTransformer`, with the input columns
/// it takes.
#[derive(Debug, Clone, PartialEq)]
struct Part {
    name: String,
    inputs: Vec<usize>,
    transformer: Transformer,
    weight: Option<f64>,
}

/// The fitted categories of one feature of an encoder.
#[derive(Debug, Clone, PartialEq)]
enum Categories {
    /// String categories; the missing-value category (`None` or NaN at the
    /// end, when the training data had missing values) cannot match text
    /// and is only counted.
    Text {
        index: HashMap<String, usize>,
        len: usize,
    },
    /// Numeric categories, sorted (`np.unique`), NaN last when present.
    Numbers {
        values: Vec<f64>,
        nan: Option<usize>,
    },
}

impl Categories {
    fn read(array: &NdArray<'_>) -> Result<Categories> {
        match array.dtype.kind {
            ArrayKind::Int | ArrayKind::UInt | ArrayKind::Float | ArrayKind::Bool => {
                let mut values = array.to_f64()?;
                let nan = values.iter().position(|v| v.is_nan());
                if let Some(position) = nan {
                    values.truncate(position);
                }
                Ok(Categories::Numbers { values, nan })
            }
            ArrayKind::Unicode | ArrayKind::Bytes => {
                let strings = array.to_strings()?;
                Ok(Categories::text(strings.into_iter().map(Some)))
            }
            ArrayKind::Object => {
                let items = array.objects().unwrap_or(&[]);
                let mut strings = Vec::with_capacity(items.len());
                for item in items {
                    if let Some(s) = item.as_str() {
                        strings.push(Some(s.to_owned()));
                    } else if item.is_none() || numpy::as_f64(*item).is_some_and(f64::is_nan) {
                        strings.push(None);
                    } else {
                        return Err(Error::unsupported(format!(
                            "categories that mix text and {}",
                            item.describe()
                        )));
                    }
                }
                if strings.iter().all(Option::is_none) && !strings.is_empty() {
                    return Err(Error::unsupported(
                        "an object category column of only missing values",
                    ));
                }
                Ok(Categories::text(strings.into_iter()))
            }
            ArrayKind::Void => Err(Error::unsupported("structured category arrays")),
        }
    }

    fn text(strings: impl Iterator<Item = Option<String>>) -> Categories {
        let mut index = HashMap::new();
        let mut len = 0;
        for (i, s) in strings.enumerate() {
            if let Some(s) = s {
                index.insert(s, i);
            }
            len = i + 1;
        }
        Categories::Text { index, len }
    }

    fn len(&self) -> usize {
        match self {
            Categories::Text { len, .. } => *len,
            Categories::Numbers { values, nan } => values.len() + usize::from(nan.is_some()),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Categories::Text { .. } => Kind::Text,
            Categories::Numbers { .. } => Kind::Number,
        }
    }

    /// The category index of every row, `None` for unknown values
    /// (`_check_unknown`, then `_encode`).
    fn codes(&self, column: &Column, by: &str) -> Result<Vec<Option<usize>>> {
        match (self, column) {
            (Categories::Text { index, .. }, Column::Text(values)) => {
                Ok(values.iter().map(|v| index.get(v).copied()).collect())
            }
            (Categories::Numbers { values, nan }, Column::Numbers(xs)) => Ok(xs
                .iter()
                .map(|&x| {
                    if x.is_nan() {
                        *nan
                    } else {
                        // `np.searchsorted` then an equality check, as
                        // `_encode` and `_check_unknown` do.
                        let i = values.partition_point(|&c| c < x);
                        (i < values.len() && values[i] == x).then_some(i)
                    }
                })
                .collect()),
            (Categories::Text { .. }, _) => Err(Error::input(format!("{by} takes text"))),
            (Categories::Numbers { .. }, _) => Err(Error::input(format!("{by} takes numbers"))),
        }
    }
}

/// What `_BaseEncoder` keeps for every encoder: categories and their
/// infrequent grouping.
#[derive(Debug, Clone, PartialEq)]
struct Encoder {
    class: &'static str,
    features: Vec<Categories>,
    /// Per feature, the infrequent categories' indices (`_infrequent_indices`).
    infrequent: Vec<Option<Vec<usize>>>,
    /// Per feature, category index → grouped index
    /// (`_default_to_infrequent_mappings`).
    grouping: Vec<Option<Vec<usize>>>,
}

impl Encoder {
    fn read(estimator: &Estimator<'_>, class: &'static str) -> Result<Encoder> {
        let n = estimator.n_features()?;
        let categories = estimator.require("categories_")?;
        let categories = categories
            .as_sequence()
            .ok_or_else(|| Error::invalid(format!("{class}.categories_ is not a list")))?;
        if categories.len() != n {
            return Err(Error::invalid(format!(
                "{class}.categories_ has {} features for {n} inputs",
                categories.len()
            )));
        }
        let features = categories
            .iter()
            .map(|node| Categories::read(&numpy::ndarray(node)?))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| prefix(class, "categories_", e))?;
        let (infrequent, grouping) = if estimator.flag("_infrequent_enabled", false)? {
            (
                optional_index_lists(estimator, "_infrequent_indices", n)?,
                optional_index_lists(estimator, "_default_to_infrequent_mappings", n)?,
            )
        } else {
            (vec![None; n], vec![None; n])
        };
        for (f, mapping) in grouping.iter().enumerate() {
            if let Some(mapping) = mapping {
                if mapping.len() != features[f].len() {
                    return Err(Error::invalid(format!(
                        "{class}: infrequent mapping of feature {f} does not cover its categories"
                    )));
                }
            }
        }
        Ok(Encoder {
            class,
            features,
            infrequent,
            grouping,
        })
    }

    fn kinds(&self) -> Vec<Kind> {
        self.features.iter().map(Categories::kind).collect()
    }

    /// `_transform`: per feature and row, the (grouped) category index and
    /// whether the value counts as known. Unknown values are an error under
    /// `handle_unknown="error"`.
    fn encode(
        &self,
        table: &Table,
        handle_unknown: Unknown,
        keep_missing_of: &dyn Fn(usize) -> Option<usize>,
    ) -> Result<Vec<Vec<(usize, bool)>>> {
        table.check_width(self.features.len(), self.class)?;
        let mut encoded = Vec::with_capacity(self.features.len());
        for (f, categories) in self.features.iter().enumerate() {
            let codes = categories.codes(&table.columns[f], self.class)?;
            if handle_unknown == Unknown::Error {
                if let Some(row) = codes.iter().position(Option::is_none) {
                    return Err(Error::input(format!(
                        "{}: unknown category {} in column {f} (the encoder refuses unknown categories)",
                        self.class,
                        describe_value(&table.columns[f], row)
                    )));
                }
            }
            let infrequent_first = self.infrequent[f].as_ref().and_then(|i| i.first().copied());
            let keep = keep_missing_of(f);
            let column = codes
                .into_iter()
                .map(|code| {
                    let (mut k, mut known) = match code {
                        Some(k) => (k, true),
                        None => (0, false),
                    };
                    if let (false, Some(first)) = (known, infrequent_first) {
                        k = first;
                        if handle_unknown == Unknown::Infrequent {
                            known = true;
                        }
                    }
                    if let Some(mapping) = &self.grouping[f] {
                        if keep != Some(k) {
                            k = mapping[k];
                        }
                    }
                    (k, known)
                })
                .collect();
            encoded.push(column);
        }
        Ok(encoded)
    }
}

fn describe_value(column: &Column, row: usize) -> String {
    match column {
        Column::Text(values) => format!("'{}'", values[row]),
        Column::Numbers(values) => values[row].to_string(),
        Column::Absent => "?".into(),
    }
}

/// How an encoder treats categories it did not see in training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unknown {
    Error,
    /// Left unknown (`ignore`, `use_encoded_value`).
    Ignore,
    /// Counted as the infrequent category when there is one
    /// (`infrequent_if_exist`, `warn`).
    Infrequent,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OneHotEncoder {
    encoder: Encoder,
    unknown: Unknown,
    /// Per feature, the grouped category index that is dropped.
    drop: Vec<Option<usize>>,
    /// Per feature, its output columns (`_n_features_outs`).
    widths: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OrdinalEncoder {
    encoder: Encoder,
    unknown_value: Option<f64>,
    encoded_missing_value: f64,
    /// Feature → index of its missing-value category (`_missing_indices`).
    missing: HashMap<usize, usize>,
    float32: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TargetEncoder {
    encoder: Encoder,
    /// `encodings_`: per feature (per feature and class, class fastest, for
    /// multiclass targets), the value of each category.
    encodings: Vec<Vec<f64>>,
    /// `target_mean_`, one per class for multiclass targets.
    target_mean: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Discretizer {
    /// Per feature, the inner bin edges (`bin_edges_[j][1:-1]`).
    inner_edges: Vec<Vec<f64>>,
    one_hot: bool,
    float32: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Polynomial {
    n_features: usize,
    min_degree: usize,
    max_degree: usize,
    interaction_only: bool,
    include_bias: bool,
    n_output: usize,
    n_out_full: usize,
}

fn prefix(class: &str, attribute: &str, error: Error) -> Error {
    match error {
        Error::InvalidModel(m) => Error::invalid(format!("{class}.{attribute}: {m}")),
        Error::Unsupported(m) => Error::unsupported(format!("{class}.{attribute}: {m}")),
        other => other,
    }
}

/// A list with one entry per feature, each `None` or an array of indices.
fn optional_index_lists(
    estimator: &Estimator<'_>,
    attribute: &str,
    n: usize,
) -> Result<Vec<Option<Vec<usize>>>> {
    let Some(node) = estimator.get(attribute) else {
        return Ok(vec![None; n]);
    };
    let list = node
        .as_sequence()
        .ok_or_else(|| Error::invalid(format!("{}.{attribute} is not a list", estimator.name())))?;
    if list.len() != n {
        return Err(Error::invalid(format!(
            "{}.{attribute} has {} entries for {n} features",
            estimator.name(),
            list.len()
        )));
    }
    list.iter()
        .map(|item| {
            if item.is_none() {
                return Ok(None);
            }
            let indices = numpy::ndarray(item)?.to_i64()?;
            indices
                .into_iter()
                .map(|i| usize::try_from(i).map_err(|_| Error::invalid("a negative index")))
                .collect::<Result<Vec<_>>>()
                .map(Some)
        })
        .collect::<Result<Vec<_>>>()
        .map_err(|e| prefix(estimator.name(), attribute, e))
}

/// Whether a dtype attribute (`dtype`, a class or a dtype) is float32.
fn is_float32(node: Option<Node<'_>>) -> Result<bool> {
    let Some(node) = node else { return Ok(false) };
    if let Some(global) = node.as_global() {
        return Ok(matches!(global.name.as_str(), "float32" | "single"));
    }
    let dtype = numpy::dtype(node)?;
    Ok(dtype.kind == ArrayKind::Float && dtype.item_size == 4)
}

/// Reads one fitted transformer (a `Pipeline` step, or a part of a
/// `ColumnTransformer`).
pub(crate) fn read(node: Node<'_>, nesting: Nesting) -> Result<Transformer> {
    if node.is_none() || node.as_str() == Some("passthrough") {
        return Ok(Transformer::Identity);
    }
    let step = Estimator::new(node)?;
    let name = step.sklearn_name().ok_or_else(|| {
        Error::unsupported(format!(
            "no native runtime for the transformer {}",
            step.class()
        ))
    })?;
    let numeric = |operations: Vec<Operation>| -> Result<Transformer> {
        Ok(Transformer::Numeric {
            width: step.n_features()?,
            operations,
        })
    };
    match name {
        "StandardScaler" => {
            let width = step.n_features()?;
            let mut operations = Vec::new();
            if step.flag("with_mean", true)? {
                operations.push(Operation::Subtract(step.floats_of_len("mean_", width)?));
            }
            if step.flag("with_std", true)? {
                operations.push(Operation::Divide(step.floats_of_len("scale_", width)?));
            }
            numeric(operations)
        }
        "MinMaxScaler" => {
            let width = step.n_features()?;
            let mut operations = vec![
                Operation::Multiply(step.floats_of_len("scale_", width)?),
                Operation::Add(step.floats_of_len("min_", width)?),
            ];
            if step.flag("clip", false)? {
                let range = step.require("feature_range")?;
                let (low, high) = range
                    .as_sequence()
                    .filter(|r| r.len() == 2)
                    .and_then(|r| Some((numpy::as_f64(r.get(0)?)?, numpy::as_f64(r.get(1)?)?)))
                    .ok_or_else(|| {
                        Error::invalid("MinMaxScaler.feature_range is not a pair of numbers")
                    })?;
                operations.push(Operation::Clip { low, high });
            }
            numeric(operations)
        }
        "MaxAbsScaler" => {
            let width = step.n_features()?;
            let mut operations = vec![Operation::Divide(step.floats_of_len("scale_", width)?)];
            if step.flag("clip", false)? {
                operations.push(Operation::Clip {
                    low: -1.0,
                    high: 1.0,
                });
            }
            numeric(operations)
        }
        "RobustScaler" => {
            let width = step.n_features()?;
            let mut operations = Vec::new();
            if step.flag("with_centering", true)? {
                operations.push(Operation::Subtract(step.floats_of_len("center_", width)?));
            }
            if step.flag("with_scaling", true)? {
                operations.push(Operation::Divide(step.floats_of_len("scale_", width)?));
            }
            numeric(operations)
        }
        "SimpleImputer" => imputer(&step),
        "FunctionTransformer" => function_transformer(&step),
        "OneHotEncoder" => one_hot(&step),
        "OrdinalEncoder" => ordinal(&step),
        "TargetEncoder" => target(&step),
        "KBinsDiscretizer" => discretizer(&step),
        "PolynomialFeatures" => polynomial(&step),
        "ColumnTransformer" => column_transformer(&step, nesting.inner()?),
        "Pipeline" => {
            let nesting = nesting.inner()?;
            let steps = pipeline_steps(&step)?;
            let chain = steps
                .into_iter()
                .map(|node| read(node, nesting))
                .collect::<Result<Vec<_>>>()?;
            Ok(Transformer::Chain(chain))
        }
        _ => Err(Error::unsupported(format!(
            "no native runtime for the transformer {}",
            step.class()
        ))),
    }
}

/// The estimators of a `Pipeline`'s `steps`, `None`/`"passthrough"` ones
/// included.
pub(crate) fn pipeline_steps<'p>(pipeline: &Estimator<'p>) -> Result<Vec<Node<'p>>> {
    let steps = pipeline.require("steps")?;
    let steps = steps.as_list().ok_or_else(|| {
        Error::invalid(format!(
            "Pipeline.steps: expected a list, found {}",
            steps.describe()
        ))
    })?;
    steps
        .iter()
        .map(|step| {
            let pair = step
                .as_tuple()
                .filter(|t| t.len() == 2)
                .ok_or_else(|| Error::invalid("Pipeline step is not a (name, estimator) pair"))?;
            pair.get(1)
                .ok_or_else(|| Error::invalid("empty Pipeline step"))
        })
        .collect()
}

fn imputer(step: &Estimator<'_>) -> Result<Transformer> {
    let width = step.n_features()?;
    if step.flag("add_indicator", false)? {
        return Err(Error::unsupported("SimpleImputer with add_indicator"));
    }
    let keep_empty = step.flag("keep_empty_features", false)?;
    let fit_dtype = step.get("_fit_dtype").map(numpy::dtype).transpose()?;
    if fit_dtype
        .as_ref()
        .is_some_and(|d| d.kind == ArrayKind::Object)
    {
        return object_imputer(step, width);
    }
    let missing = match step.attribute("missing_values") {
        Some(node) => match numpy::as_f64(node) {
            Some(value) if value.is_nan() => MissingValue::Nan,
            Some(value) => MissingValue::Number(value),
            None if node.is_none() => MissingValue::Nan,
            None => {
                return Err(Error::unsupported(format!(
                    "SimpleImputer with missing_values {}",
                    node.describe()
                )))
            }
        },
        None => MissingValue::Nan,
    };
    let statistics = step.floats_of_len("statistics_", width)?;
    // `transform` casts the statistics to the dtype the imputer was fitted
    // on before filling.
    let fill_dtype = step.get("_fill_dtype").or_else(|| step.get("_fit_dtype"));
    let cast: fn(f64) -> f64 = match fill_dtype.map(numpy::dtype).transpose()? {
        None => |s| s,
        Some(dtype) => match (dtype.kind, dtype.item_size) {
            (ArrayKind::Float, 8) => |s| s,
            (ArrayKind::Float, 4) => |s| s as f32 as f64,
            // `astype` to an integer type truncates toward zero.
            (ArrayKind::Int | ArrayKind::UInt, _) => f64::trunc,
            (kind, size) => {
                return Err(Error::unsupported(format!(
                    "SimpleImputer fitted on {kind:?} data of {size} bytes"
                )))
            }
        },
    };
    let fill: Vec<f64> = statistics.iter().map(|&s| cast(s)).collect();
    let mut operations = vec![Operation::Impute { missing, fill }];
    if !keep_empty {
        let kept: Vec<usize> = (0..width).filter(|&c| !statistics[c].is_nan()).collect();
        if kept.len() != width {
            operations.push(Operation::Select(kept));
        }
    }
    Ok(Transformer::Numeric { width, operations })
}

/// A `SimpleImputer` fitted on an object DataFrame (text columns, with
/// `most_frequent` or `constant`): each statistic is the column's fill, and
/// its type the column's kind.
fn object_imputer(step: &Estimator<'_>, width: usize) -> Result<Transformer> {
    let missing = match step.attribute("missing_values") {
        None => None,
        Some(node) if node.is_none() || numpy::as_f64(node).is_some_and(f64::is_nan) => None,
        Some(node) => match node.as_str() {
            Some(text) => Some(text.to_owned()),
            None => {
                return Err(Error::unsupported(format!(
                    "SimpleImputer on text with missing_values {}",
                    node.describe()
                )))
            }
        },
    };
    let statistics = step.array("statistics_")?;
    let items = statistics
        .objects()
        .filter(|items| items.len() == width)
        .ok_or_else(|| {
            Error::invalid("SimpleImputer.statistics_: expected one object per column")
        })?;
    let fills = items
        .iter()
        .map(|item| {
            if let Some(text) = item.as_str() {
                Ok(Fill::Text(text.to_owned()))
            } else if let Some(value) = numpy::as_f64(*item) {
                if value.is_nan() && !step.flag("keep_empty_features", false)? {
                    return Err(Error::unsupported(
                        "SimpleImputer on object data dropping an empty column",
                    ));
                }
                Ok(Fill::Number(value))
            } else {
                Err(Error::unsupported(format!(
                    "SimpleImputer statistic {}",
                    item.describe()
                )))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Transformer::ObjectImpute { missing, fills })
}

fn function_transformer(step: &Estimator<'_>) -> Result<Transformer> {
    if step
        .get("kw_args")
        .is_some_and(|k| k.as_dict().is_none_or(|d| !d.is_empty()))
    {
        return Err(Error::unsupported("FunctionTransformer with kw_args"));
    }
    let Some(func) = step.get("func") else {
        return Ok(Transformer::Identity);
    };
    let ufunc = func
        .as_global()
        .filter(|g| g.module == "numpy" || g.module.starts_with("numpy."))
        .and_then(|g| Ufunc::from_name(&g.name))
        .ok_or_else(|| {
            let what = match func.as_global() {
                Some(global) => format!("func {global}"),
                None => "a function defined in the training code".to_owned(),
            };
            Error::unsupported(format!(
                "FunctionTransformer with {what} (only numpy ufuncs such as numpy.log1p run natively)"
            ))
        })?;
    Ok(Transformer::Numeric {
        width: step.n_features()?,
        operations: vec![Operation::Map(ufunc)],
    })
}

fn handle_unknown(step: &Estimator<'_>) -> Result<Unknown> {
    Ok(match step.get("handle_unknown").and_then(|h| h.as_str()) {
        None | Some("error") => Unknown::Error,
        Some("ignore" | "use_encoded_value") => Unknown::Ignore,
        Some("infrequent_if_exist" | "warn") => Unknown::Infrequent,
        Some(other) => {
            return Err(Error::unsupported(format!(
                "{} with handle_unknown={other:?}",
                step.name()
            )))
        }
    })
}

fn one_hot(step: &Estimator<'_>) -> Result<Transformer> {
    let encoder = Encoder::read(step, "OneHotEncoder")?;
    let n = encoder.features.len();
    let drop = match step.get("_drop_idx_after_grouping") {
        None => vec![None; n],
        Some(node) => {
            let array = numpy::ndarray(node)?;
            let values: Vec<Option<usize>> = match array.objects() {
                Some(items) => items
                    .iter()
                    .map(|item| numpy::as_i64(*item).and_then(|i| usize::try_from(i).ok()))
                    .collect(),
                None => array
                    .to_i64()?
                    .into_iter()
                    .map(|i| usize::try_from(i).ok())
                    .collect(),
            };
            if values.len() != n {
                return Err(Error::invalid(
                    "OneHotEncoder._drop_idx_after_grouping: one per feature",
                ));
            }
            values
        }
    };
    let widths = match step.get("_n_features_outs") {
        Some(node) => node
            .as_sequence()
            .ok_or_else(|| Error::invalid("OneHotEncoder._n_features_outs is not a list"))?
            .iter()
            .map(|w| numpy::as_i64(w).and_then(|w| usize::try_from(w).ok()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::invalid("OneHotEncoder._n_features_outs: not counts"))?,
        None => return Err(Error::invalid("OneHotEncoder._n_features_outs: missing")),
    };
    if widths.len() != n {
        return Err(Error::invalid(
            "OneHotEncoder._n_features_outs: one per feature",
        ));
    }
    Ok(Transformer::OneHot(OneHotEncoder {
        unknown: handle_unknown(step)?,
        encoder,
        drop,
        widths,
    }))
}

fn ordinal(step: &Estimator<'_>) -> Result<Transformer> {
    let encoder = Encoder::read(step, "OrdinalEncoder")?;
    let unknown = handle_unknown(step)?;
    let unknown_value = match unknown {
        Unknown::Ignore => Some(step.float("unknown_value")?),
        _ => None,
    };
    let encoded_missing_value = step
        .attribute("encoded_missing_value")
        .and_then(numpy::as_f64)
        .unwrap_or(f64::NAN);
    let mut missing = HashMap::new();
    if let Some(dict) = step.get("_missing_indices").and_then(|d| d.as_dict()) {
        for (key, value) in dict.iter() {
            let feature = numpy::as_i64(key).and_then(|k| usize::try_from(k).ok());
            let index = numpy::as_i64(value).and_then(|k| usize::try_from(k).ok());
            match (feature, index) {
                (Some(f), Some(i)) => {
                    missing.insert(f, i);
                }
                _ => {
                    return Err(Error::invalid(
                        "OrdinalEncoder._missing_indices: not indices",
                    ))
                }
            }
        }
    }
    Ok(Transformer::Ordinal(OrdinalEncoder {
        encoder,
        unknown_value,
        encoded_missing_value,
        missing,
        float32: is_float32(step.get("dtype"))?,
    }))
}

fn target(step: &Estimator<'_>) -> Result<Transformer> {
    let encoder = Encoder::read(step, "TargetEncoder")?;
    let n = encoder.features.len();
    let multiclass = step.string("target_type_")? == "multiclass";
    let encodings = step.require("encodings_")?;
    let encodings = encodings
        .as_sequence()
        .ok_or_else(|| Error::invalid("TargetEncoder.encodings_ is not a list"))?
        .iter()
        .map(|node| numpy::ndarray(node)?.to_f64())
        .collect::<Result<Vec<_>>>()?;
    let target_mean = match step.get("target_mean_").and_then(numpy::as_f64) {
        Some(mean) => vec![mean],
        None => step.floats("target_mean_")?.0,
    };
    let per_feature = if multiclass { target_mean.len() } else { 1 };
    if encodings.len() != n * per_feature || (!multiclass && target_mean.len() != 1) {
        return Err(Error::invalid(format!(
            "TargetEncoder: {} encodings and {} means for {n} features",
            encodings.len(),
            target_mean.len()
        )));
    }
    for (e, encoding) in encodings.iter().enumerate() {
        if encoding.len() != encoder.features[e / per_feature].len() {
            return Err(Error::invalid(format!(
                "TargetEncoder.encodings_[{e}] does not match its categories"
            )));
        }
    }
    Ok(Transformer::Target(TargetEncoder {
        encoder,
        encodings,
        target_mean,
    }))
}

fn discretizer(step: &Estimator<'_>) -> Result<Transformer> {
    let n = step.n_features()?;
    let one_hot = match step.string("encode")? {
        "ordinal" => false,
        "onehot" | "onehot-dense" => true,
        other => {
            return Err(Error::unsupported(format!(
                "KBinsDiscretizer encode={other:?}"
            )))
        }
    };
    let edges = step.array("bin_edges_")?;
    let per_feature: Vec<Vec<f64>> = match edges.objects() {
        Some(items) => items
            .iter()
            .map(|item| numpy::ndarray(*item)?.to_f64())
            .collect::<Result<_>>()?,
        None if edges.shape.len() == 2 => {
            let values = edges.to_f64()?;
            values
                .chunks(edges.shape[1].max(1))
                .map(<[f64]>::to_vec)
                .collect()
        }
        None => {
            return Err(Error::invalid(
                "KBinsDiscretizer.bin_edges_: unexpected shape",
            ))
        }
    };
    if per_feature.len() != n || per_feature.iter().any(|e| e.len() < 2) {
        return Err(Error::invalid(
            "KBinsDiscretizer.bin_edges_: one edge list per feature",
        ));
    }
    let inner_edges = per_feature
        .into_iter()
        .map(|e| e[1..e.len() - 1].to_vec())
        .collect();
    Ok(Transformer::Bins(Discretizer {
        inner_edges,
        one_hot,
        float32: is_float32(step.get("dtype"))?,
    }))
}

fn polynomial(step: &Estimator<'_>) -> Result<Transformer> {
    let n_features = step.n_features()?;
    let (min_degree, max_degree) = match (step.get("_min_degree"), step.get("_max_degree")) {
        (Some(low), Some(high)) => (
            numpy::as_i64(low).unwrap_or(-1),
            numpy::as_i64(high).unwrap_or(-1),
        ),
        _ => (0, step.int("degree")?),
    };
    let (Ok(min_degree), Ok(max_degree)) =
        (usize::try_from(min_degree), usize::try_from(max_degree))
    else {
        return Err(Error::invalid("PolynomialFeatures: degrees are not counts"));
    };
    if step
        .get("order")
        .and_then(|o| o.as_str())
        .is_some_and(|o| o != "C" && o != "F")
    {
        return Err(Error::invalid("PolynomialFeatures.order"));
    }
    let polynomial = Polynomial {
        n_features,
        min_degree,
        max_degree,
        interaction_only: step.flag("interaction_only", false)?,
        include_bias: step.flag("include_bias", true)?,
        n_output: step.count("n_output_features_")?,
        n_out_full: step
            .get("_n_out_full")
            .and_then(numpy::as_i64)
            .map_or(0, |v| v as usize),
    };
    let n_out_full = polynomial.full_width();
    if polynomial.n_out_full != 0 && polynomial.n_out_full != n_out_full {
        return Err(Error::invalid(
            "PolynomialFeatures._n_out_full disagrees with its degrees",
        ));
    }
    if polynomial.n_output > n_out_full {
        return Err(Error::invalid(
            "PolynomialFeatures.n_output_features_ exceeds its terms",
        ));
    }
    if n_out_full > 100_000 {
        return Err(Error::unsupported(
            "PolynomialFeatures with more than 100000 outputs",
        ));
    }
    Ok(Transformer::Polynomial(Polynomial {
        n_out_full,
        ..polynomial
    }))
}

fn column_transformer(step: &Estimator<'_>, nesting: Nesting) -> Result<Transformer> {
    let n_inputs = step.n_features()?;
    let fitted = step.require("transformers_")?;
    let fitted = fitted
        .as_sequence()
        .ok_or_else(|| Error::invalid("ColumnTransformer.transformers_ is not a list"))?;
    let indices = step
        .get("_transformer_to_input_indices")
        .and_then(|d| d.as_dict());
    let weights = step.get("transformer_weights").and_then(|w| w.as_dict());
    let feature_names = step.feature_names()?;
    let mut parts = Vec::new();
    for entry in fitted.iter() {
        let triple = entry.as_tuple().filter(|t| t.len() == 3).ok_or_else(|| {
            Error::invalid("ColumnTransformer.transformers_ entry is not a triple")
        })?;
        let name = triple
            .get(0)
            .and_then(|n| n.as_str())
            .ok_or_else(|| Error::invalid("ColumnTransformer transformer without a name"))?
            .to_owned();
        let transformer = triple.get(1).expect("a triple");
        let inputs = match indices.and_then(|d| d.get(&name)) {
            Some(list) => index_list(list, n_inputs)?,
            None => column_indices(
                triple.get(2).expect("a triple"),
                n_inputs,
                feature_names.as_deref(),
            )?,
        };
        if inputs.is_empty() || transformer.as_str() == Some("drop") {
            continue;
        }
        let weight = weights
            .and_then(|w| w.get(&name))
            .map(|w| {
                numpy::as_f64(w)
                    .ok_or_else(|| Error::invalid("a transformer weight is not a number"))
            })
            .transpose()?;
        parts.push(Part {
            transformer: read(transformer, nesting)
                .map_err(|e| within(&format!("ColumnTransformer part '{name}'"), e))?,
            name,
            inputs,
            weight,
        });
    }
    Ok(Transformer::Columns(ColumnTransformer { n_inputs, parts }))
}

/// Says where an unsupported or invalid piece sits.
fn within(place: &str, error: Error) -> Error {
    match error {
        Error::Unsupported(m) => Error::unsupported(format!("{place}: {m}")),
        Error::InvalidModel(m) => Error::invalid(format!("{place}: {m}")),
        other => other,
    }
}

fn index_list(node: Node<'_>, n_inputs: usize) -> Result<Vec<usize>> {
    let list = node
        .as_sequence()
        .ok_or_else(|| Error::invalid("ColumnTransformer input indices are not a list"))?;
    list.iter()
        .map(|i| {
            numpy::as_i64(i)
                .and_then(|i| usize::try_from(i).ok())
                .filter(|&i| i < n_inputs)
                .ok_or_else(|| Error::invalid("ColumnTransformer input index out of range"))
        })
        .collect()
}

/// Column indices from a `transformers_` column specification (scikit-learn
/// before `_transformer_to_input_indices`): a name, an index, or a list of
/// either.
fn column_indices(node: Node<'_>, n_inputs: usize, names: Option<&[String]>) -> Result<Vec<usize>> {
    let one = |item: Node<'_>| -> Result<usize> {
        if let Some(name) = item.as_str() {
            return names
                .and_then(|names| names.iter().position(|n| n == name))
                .ok_or_else(|| {
                    Error::invalid(format!("ColumnTransformer column '{name}' is not an input"))
                });
        }
        numpy::as_i64(item)
            .map(|i| if i < 0 { i + n_inputs as i64 } else { i })
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < n_inputs)
            .ok_or_else(|| {
                Error::unsupported(format!(
                    "ColumnTransformer columns given as {}",
                    item.describe()
                ))
            })
    };
    if let Some(list) = node.as_sequence() {
        return list.iter().map(one).collect();
    }
    if let Ok(array) = numpy::ndarray(node) {
        if array.dtype.kind == ArrayKind::Bool {
            let mask = array.to_i64()?;
            return Ok((0..mask.len()).filter(|&i| mask[i] != 0).collect());
        }
        if let Some(items) = array.objects() {
            return items.iter().map(|&i| one(i)).collect();
        }
        if let Ok(strings) = array.to_strings() {
            return strings
                .iter()
                .map(|name| {
                    names
                        .and_then(|names| names.iter().position(|n| n == name))
                        .ok_or_else(|| {
                            Error::invalid(format!(
                                "ColumnTransformer column '{name}' is not an input"
                            ))
                        })
                })
                .collect();
        }
        return array
            .to_i64()?
            .into_iter()
            .map(|i| {
                usize::try_from(i)
                    .ok()
                    .filter(|&i| i < n_inputs)
                    .ok_or_else(|| Error::invalid("column index"))
            })
            .collect();
    }
    Ok(vec![one(node)?])
}

impl Polynomial {
    /// `_n_out_full`: every term up to `max_degree`, bias included when
    /// asked for.
    fn full_width(&self) -> usize {
        let n = self.n_features;
        let mut total = usize::from(self.include_bias);
        // Terms of degree d: C(n, d) without repetition, C(n + d - 1, d) with.
        let mut count: u128 = 1;
        for d in 1..=self.max_degree {
            count = if self.interaction_only {
                if d > n {
                    0
                } else {
                    count * (n - d + 1) as u128 / d as u128
                }
            } else {
                count * (n + d - 1) as u128 / d as u128
            };
            total = total.saturating_add(usize::try_from(count).unwrap_or(usize::MAX));
        }
        total
    }

    /// The dense `transform`: bias, the features, then each degree's terms
    /// as the previous degree's block times one feature.
    fn apply(&self, rows: usize, x: &[&[f64]]) -> Vec<Vec<f64>> {
        let n = self.n_features;
        let mut xp: Vec<Vec<f64>> = Vec::with_capacity(self.n_out_full);
        if self.include_bias {
            xp.push(vec![1.0; rows]);
        }
        if self.max_degree > 0 {
            let first = xp.len();
            xp.extend(x.iter().map(|c| c.to_vec()));
            let mut index: Vec<usize> = (first..first + n).collect();
            index.push(first + n);
            for _ in 2..=self.max_degree {
                let mut new_index = Vec::with_capacity(n + 1);
                let end = *index.last().expect("n + 1 entries");
                for (feature, feature_values) in x.iter().enumerate() {
                    let (Some(&here), Some(&next)) = (index.get(feature), index.get(feature + 1))
                    else {
                        break;
                    };
                    let mut start = here;
                    new_index.push(xp.len());
                    if self.interaction_only {
                        start += next - here;
                    }
                    if end <= start {
                        break;
                    }
                    for term in start..end {
                        let column: Vec<f64> = xp[term]
                            .iter()
                            .zip(*feature_values)
                            .map(|(a, b)| a * b)
                            .collect();
                        xp.push(column);
                    }
                }
                new_index.push(xp.len());
                index = new_index;
            }
        }
        if self.min_degree > 1 {
            // `XP[:, n_XP - n_Xout:]`, the bias kept in front when asked for.
            let full = xp.len();
            let mut out = Vec::with_capacity(self.n_output);
            let mut all = xp.into_iter();
            if self.include_bias {
                out.push(all.next().expect("bias"));
                out.extend(all.skip(full - self.n_output));
            } else {
                out.extend(all.skip(full - self.n_output));
            }
            return out;
        }
        xp
    }
}

/// Which request column an output column of a transformer is computed
/// from: what explanations need to sum a one-hot encoder's columns back
/// into the column it encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Column(usize),
    /// Several columns (a polynomial's products), or none (its bias).
    Mixed,
}

impl Transformer {
    /// What each input column must hold.
    pub(crate) fn input_kinds(&self) -> Option<Vec<Kind>> {
        Some(match self {
            Transformer::Numeric { width, .. } => vec![Kind::Number; *width],
            Transformer::Identity => return None,
            Transformer::Chain(chain) => {
                // Identities pass their columns on: the first step that is
                // not one decides.
                return chain.iter().find_map(Transformer::input_kinds);
            }
            Transformer::Columns(columns) => {
                let mut kinds = vec![Kind::Unused; columns.n_inputs];
                for part in &columns.parts {
                    let part_kinds = part.transformer.input_kinds();
                    for (position, &input) in part.inputs.iter().enumerate() {
                        let kind = part_kinds
                            .as_ref()
                            .and_then(|k| k.get(position).copied())
                            .unwrap_or(Kind::Any);
                        kinds[input] = match (kinds[input], kind) {
                            (Kind::Unused | Kind::Any, k) => k,
                            (k, Kind::Any) => k,
                            (a, b) if a == b => a,
                            // Used as text by one part and as numbers by
                            // another: only numbers-as-text could do it.
                            _ => Kind::Text,
                        };
                    }
                }
                kinds
            }
            Transformer::OneHot(e) => e.encoder.kinds(),
            Transformer::Ordinal(e) => e.encoder.kinds(),
            Transformer::Target(e) => e.encoder.kinds(),
            Transformer::ObjectImpute { fills, .. } => fills
                .iter()
                .map(|f| match f {
                    Fill::Text(_) => Kind::Text,
                    Fill::Number(_) => Kind::Number,
                })
                .collect(),
            Transformer::Bins(d) => vec![Kind::Number; d.inner_edges.len()],
            Transformer::Polynomial(p) => vec![Kind::Number; p.n_features],
        })
    }

    /// The source of each output column, given those of the input columns
    /// (for a transformer whose kinds `output_kinds` accepted).
    pub(crate) fn sources(&self, inputs: &[Source]) -> Vec<Source> {
        let repeat = |widths: &mut dyn Iterator<Item = usize>| -> Vec<Source> {
            widths
                .zip(inputs)
                .flat_map(|(width, &source)| std::iter::repeat_n(source, width))
                .collect()
        };
        match self {
            Transformer::Numeric { operations, .. } => {
                operations
                    .iter()
                    .fold(inputs.to_vec(), |sources, operation| match operation {
                        Operation::Select(columns) => columns.iter().map(|&c| sources[c]).collect(),
                        _ => sources,
                    })
            }
            Transformer::Identity | Transformer::Ordinal(_) | Transformer::ObjectImpute { .. } => {
                inputs.to_vec()
            }
            Transformer::Chain(chain) => chain
                .iter()
                .fold(inputs.to_vec(), |sources, step| step.sources(&sources)),
            Transformer::Columns(columns) => columns
                .parts
                .iter()
                .flat_map(|part| {
                    let part_inputs: Vec<Source> = part.inputs.iter().map(|&i| inputs[i]).collect();
                    part.transformer.sources(&part_inputs)
                })
                .collect(),
            Transformer::OneHot(e) => repeat(&mut e.widths.iter().copied()),
            Transformer::Target(e) => {
                let classes = e.target_mean.len().max(1);
                repeat(&mut std::iter::repeat_n(classes, inputs.len()))
            }
            Transformer::Bins(d) if d.one_hot => {
                repeat(&mut d.inner_edges.iter().map(|edges| edges.len() + 1))
            }
            Transformer::Bins(_) => inputs.to_vec(),
            Transformer::Polynomial(p) => vec![Source::Mixed; p.n_output],
        }
    }

    /// The kinds of the output columns for input columns of `inputs`, or
    /// [`Error::Unsupported`] when a column of the wrong kind would reach a
    /// transformer (checked once, at load, so requests never meet it).
    pub(crate) fn output_kinds(&self, inputs: &[Kind]) -> Result<Vec<Kind>> {
        if let Some(wanted) = self.input_kinds() {
            if wanted.len() != inputs.len() {
                return Err(Error::invalid(format!(
                    "a transformer takes {} columns after a step that gives {}",
                    wanted.len(),
                    inputs.len()
                )));
            }
            for (position, (&want, &got)) in wanted.iter().zip(inputs).enumerate() {
                let fits = matches!(want, Kind::Any | Kind::Unused) || want == got;
                if !fits {
                    return Err(Error::unsupported(format!(
                        "a transformer takes {want:?} in column {position} and would get {got:?}"
                    )));
                }
            }
        }
        Ok(match self {
            Transformer::Numeric { operations, width } => {
                vec![Kind::Number; numeric_width(operations, *width)]
            }
            Transformer::Identity => inputs.to_vec(),
            Transformer::Chain(chain) => {
                let mut kinds = inputs.to_vec();
                for step in chain {
                    kinds = step.output_kinds(&kinds)?;
                }
                kinds
            }
            Transformer::Columns(columns) => {
                let mut kinds = Vec::new();
                for part in &columns.parts {
                    let part_inputs: Vec<Kind> = part.inputs.iter().map(|&i| inputs[i]).collect();
                    let out = part.transformer.output_kinds(&part_inputs)?;
                    if part.weight.is_some() && out.iter().any(|&k| k != Kind::Number) {
                        return Err(Error::unsupported(
                            "a weighted transformer whose output is not numeric",
                        ));
                    }
                    kinds.extend(out);
                }
                kinds
            }
            Transformer::OneHot(e) => vec![Kind::Number; e.widths.iter().sum()],
            Transformer::Ordinal(e) => vec![Kind::Number; e.encoder.features.len()],
            Transformer::Target(e) => vec![Kind::Number; e.encodings.len()],
            Transformer::ObjectImpute { .. } => self.input_kinds().expect("imputer kinds"),
            Transformer::Bins(d) => {
                if d.one_hot {
                    vec![Kind::Number; d.inner_edges.iter().map(|e| e.len() + 1).sum()]
                } else {
                    vec![Kind::Number; d.inner_edges.len()]
                }
            }
            Transformer::Polynomial(p) => vec![Kind::Number; p.n_output],
        })
    }

    /// `transform`.
    pub(crate) fn apply(&self, table: Table) -> Result<Table> {
        let rows = table.rows;
        let columns = match self {
            Transformer::Identity => return Ok(table),
            Transformer::Numeric { width, operations } => {
                table.check_width(*width, "a scaler")?;
                let mut columns = Vec::with_capacity(*width);
                for (c, column) in table.columns.into_iter().enumerate() {
                    match column {
                        Column::Numbers(values) => columns.push(values),
                        _ => return Err(Error::input(format!("column {c} must hold numbers"))),
                    }
                }
                apply_numeric(operations, columns)
                    .into_iter()
                    .map(Column::Numbers)
                    .collect()
            }
            Transformer::Chain(chain) => {
                let mut table = table;
                for step in chain {
                    table = step.apply(table)?;
                }
                return Ok(table);
            }
            Transformer::Columns(ct) => {
                table.check_width(ct.n_inputs, "ColumnTransformer")?;
                let mut out = Vec::new();
                for part in &ct.parts {
                    let sub = Table {
                        rows,
                        columns: part
                            .inputs
                            .iter()
                            .map(|&i| table.columns[i].clone())
                            .collect(),
                    };
                    let result = part.transformer.apply(sub).map_err(|e| match e {
                        Error::Input(m) => Error::input(format!("{}: {m}", part.name)),
                        other => other,
                    })?;
                    match part.weight {
                        None => out.extend(result.columns),
                        Some(weight) => out.extend(result.columns.into_iter().map(|c| match c {
                            Column::Numbers(v) => {
                                Column::Numbers(v.into_iter().map(|x| x * weight).collect())
                            }
                            other => other,
                        })),
                    }
                }
                out
            }
            Transformer::OneHot(e) => e.apply(&table)?,
            Transformer::Ordinal(e) => e.apply(&table)?,
            Transformer::Target(e) => e.apply(&table)?,
            Transformer::ObjectImpute { missing, fills } => {
                table.check_width(fills.len(), "SimpleImputer")?;
                table
                    .columns
                    .into_iter()
                    .zip(fills)
                    .map(|(column, fill)| match (column, fill) {
                        (Column::Text(values), Fill::Text(fill)) => {
                            Ok(Column::Text(match missing {
                                Some(marker) => values
                                    .into_iter()
                                    .map(|v| if v == *marker { fill.clone() } else { v })
                                    .collect(),
                                // Text columns of a request hold no missing
                                // values (the wire formats refuse nulls there).
                                None => values,
                            }))
                        }
                        (Column::Numbers(values), Fill::Number(fill)) => Ok(Column::Numbers(
                            values
                                .into_iter()
                                .map(|v| if v.is_nan() { *fill } else { v })
                                .collect(),
                        )),
                        _ => Err(Error::input("SimpleImputer: a column of the wrong kind")),
                    })
                    .collect::<Result<_>>()?
            }
            Transformer::Bins(d) => d.apply(&table)?,
            Transformer::Polynomial(p) => {
                table.check_width(p.n_features, "PolynomialFeatures")?;
                let x = (0..p.n_features)
                    .map(|c| table.numbers(c, "PolynomialFeatures"))
                    .collect::<Result<Vec<_>>>()?;
                p.apply(rows, &x).into_iter().map(Column::Numbers).collect()
            }
        };
        Ok(Table { rows, columns })
    }
}

fn numeric_width(operations: &[Operation], width: usize) -> usize {
    operations.iter().fold(width, |w, op| match op {
        Operation::Select(columns) => columns.len(),
        _ => w,
    })
}

/// Applies numeric operations to columns.
pub(crate) fn apply_numeric(operations: &[Operation], mut columns: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    for operation in operations {
        let columnwise = |columns: &mut Vec<Vec<f64>>, f: &dyn Fn(f64, usize) -> f64| {
            for (c, column) in columns.iter_mut().enumerate() {
                for x in column.iter_mut() {
                    *x = f(*x, c);
                }
            }
        };
        match operation {
            Operation::Subtract(v) => columnwise(&mut columns, &|x, c| x - v[c]),
            Operation::Divide(v) => columnwise(&mut columns, &|x, c| x / v[c]),
            Operation::Multiply(v) => columnwise(&mut columns, &|x, c| x * v[c]),
            Operation::Add(v) => columnwise(&mut columns, &|x, c| x + v[c]),
            Operation::Clip { low, high } => columnwise(&mut columns, &|x, _| {
                if x < *low {
                    *low
                } else if x > *high {
                    *high
                } else {
                    x
                }
            }),
            Operation::Impute { missing, fill } => columnwise(&mut columns, &|x, c| {
                if missing.matches(x) {
                    fill[c]
                } else {
                    x
                }
            }),
            Operation::Map(ufunc) => columnwise(&mut columns, &|x, _| ufunc.apply(x)),
            Operation::Select(keep) => {
                let mut taken: Vec<Option<Vec<f64>>> = columns.into_iter().map(Some).collect();
                columns = keep
                    .iter()
                    .map(|&c| taken[c].take().unwrap_or_default())
                    .collect();
            }
        }
    }
    columns
}

impl OneHotEncoder {
    fn apply(&self, table: &Table) -> Result<Vec<Column>> {
        let rows = table.rows;
        let encoded = self.encoder.encode(table, self.unknown, &|_| None)?;
        let mut out = Vec::with_capacity(self.widths.iter().sum());
        for (f, codes) in encoded.into_iter().enumerate() {
            let width = self.widths[f];
            let mut columns = vec![vec![0.0; rows]; width];
            for (row, (mut k, mut known)) in codes.into_iter().enumerate() {
                if let Some(dropped) = self.drop[f] {
                    if k == dropped {
                        known = false;
                    } else if k > dropped {
                        k -= 1;
                    }
                }
                if known {
                    let column = columns.get_mut(k).ok_or_else(|| {
                        Error::input(format!(
                            "OneHotEncoder: category {k} beyond {width} columns"
                        ))
                    })?;
                    column[row] = 1.0;
                }
            }
            out.extend(columns.into_iter().map(Column::Numbers));
        }
        Ok(out)
    }
}

impl OrdinalEncoder {
    fn apply(&self, table: &Table) -> Result<Vec<Column>> {
        let unknown = if self.unknown_value.is_some() {
            Unknown::Ignore
        } else {
            Unknown::Error
        };
        let encoded = self
            .encoder
            .encode(table, unknown, &|f| self.missing.get(&f).copied())?;
        let cast = |x: f64| if self.float32 { x as f32 as f64 } else { x };
        Ok(encoded
            .into_iter()
            .enumerate()
            .map(|(f, codes)| {
                let missing = self.missing.get(&f).copied();
                Column::Numbers(
                    codes
                        .into_iter()
                        .map(|(k, known)| {
                            if !known {
                                cast(self.unknown_value.unwrap_or(f64::NAN))
                            } else if Some(k) == missing {
                                cast(self.encoded_missing_value)
                            } else {
                                cast(k as f64)
                            }
                        })
                        .collect(),
                )
            })
            .collect())
    }
}

impl TargetEncoder {
    fn apply(&self, table: &Table) -> Result<Vec<Column>> {
        let encoded = self.encoder.encode(table, Unknown::Ignore, &|_| None)?;
        let per_feature = self.encodings.len() / encoded.len().max(1);
        let mut out = Vec::with_capacity(self.encodings.len());
        for (e, encoding) in self.encodings.iter().enumerate() {
            let codes = &encoded[e / per_feature];
            let mean = self.target_mean[e % self.target_mean.len()];
            out.push(Column::Numbers(
                codes
                    .iter()
                    .map(|&(k, known)| if known { encoding[k] } else { mean })
                    .collect(),
            ));
        }
        Ok(out)
    }
}

impl Discretizer {
    fn apply(&self, table: &Table) -> Result<Vec<Column>> {
        table.check_width(self.inner_edges.len(), "KBinsDiscretizer")?;
        let mut out = Vec::new();
        for (f, edges) in self.inner_edges.iter().enumerate() {
            let values = table.numbers(f, "KBinsDiscretizer")?;
            let bins = values
                .iter()
                .map(|&x| {
                    let x = if self.float32 { x as f32 as f64 } else { x };
                    if x.is_nan() {
                        return Err(Error::input(
                            "KBinsDiscretizer cannot take missing values (NaN)",
                        ));
                    }
                    // `np.searchsorted(edges, x, side="right")`.
                    Ok(edges.partition_point(|&e| e <= x))
                })
                .collect::<Result<Vec<_>>>()?;
            if self.one_hot {
                let mut columns = vec![vec![0.0; table.rows]; edges.len() + 1];
                for (row, bin) in bins.into_iter().enumerate() {
                    columns[bin][row] = 1.0;
                }
                out.extend(columns.into_iter().map(Column::Numbers));
            } else {
                out.push(Column::Numbers(
                    bins.into_iter().map(|b| b as f64).collect(),
                ));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_operations_apply_in_order_and_keep_nan() {
        let columns = apply_numeric(
            &[
                Operation::Impute {
                    missing: MissingValue::Number(-1.0),
                    fill: vec![10.0, 20.0, 30.0],
                },
                Operation::Subtract(vec![1.0, 2.0, 3.0]),
                Operation::Divide(vec![2.0, 2.0, 2.0]),
                Operation::Clip {
                    low: -1.0,
                    high: 4.0,
                },
                Operation::Select(vec![2, 0]),
            ],
            vec![vec![-1.0, 3.0], vec![5.0, -1.0], vec![f64::NAN, 100.0]],
        );
        // Row 1: column 0 imputed to 10 → 4.5 → 4 (clipped); column 2 NaN
        // stays NaN (the marker is -1, and clip keeps NaN).
        assert!(columns[0][0].is_nan());
        assert_eq!(columns[1][0], 4.0);
        // Row 2: (100 - 3) / 2 clipped to 4; (3 - 1) / 2 = 1.
        assert_eq!(columns[0][1], 4.0);
        assert_eq!(columns[1][1], 1.0);
    }

    #[test]
    fn polynomial_terms_follow_scikit_learns_order() {
        // PolynomialFeatures(3).fit([[a, b]]).powers_ is
        // 1, a, b, a², ab, b², a³, a²b, ab², b³.
        let p = Polynomial {
            n_features: 2,
            min_degree: 0,
            max_degree: 3,
            interaction_only: false,
            include_bias: true,
            n_output: 10,
            n_out_full: 10,
        };
        assert_eq!(p.full_width(), 10);
        let out = p.apply(1, &[&[2.0], &[3.0]]);
        let flat: Vec<f64> = out.iter().map(|c| c[0]).collect();
        assert_eq!(flat, [1.0, 2.0, 3.0, 4.0, 6.0, 9.0, 8.0, 12.0, 18.0, 27.0]);
        let interactions = Polynomial {
            n_features: 3,
            min_degree: 2,
            max_degree: 2,
            interaction_only: true,
            include_bias: false,
            n_output: 3,
            n_out_full: 6,
        };
        assert_eq!(interactions.full_width(), 6);
        let out = interactions.apply(1, &[&[2.0], &[3.0], &[5.0]]);
        let flat: Vec<f64> = out.iter().map(|c| c[0]).collect();
        assert_eq!(flat, [6.0, 10.0, 15.0]);
    }

    #[test]
    fn numeric_categories_match_by_value_and_nan_by_its_slot() {
        let categories = Categories::Numbers {
            values: vec![1.0, 2.5, 7.0],
            nan: Some(3),
        };
        let codes = categories
            .codes(&Column::Numbers(vec![2.5, f64::NAN, 3.0, 1.0]), "test")
            .unwrap();
        assert_eq!(codes, [Some(1), Some(3), None, Some(0)]);
        assert!(categories
            .codes(&Column::Text(vec!["a".into()]), "test")
            .is_err());
    }
}
