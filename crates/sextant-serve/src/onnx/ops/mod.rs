//! The operators: which ones exist, at which opset versions, and how a
//! node becomes something the graph can run.
//!
//! Each supported `(domain, op_type)` has an [`OpSchema`] naming the range
//! of its domain's imported opset versions whose semantics the
//! implementation follows, and a `lower` function. Lowering reads the
//! node's attributes once, checks its input types (known at load time for
//! every value of the graph), and returns either a [`Kernel`] with the
//! element types of its outputs, or an alias when an output is one of the
//! inputs unchanged. Kernels are trait objects: every operator carries
//! different precomputed state, and the graph only needs to call them.

pub(crate) mod elementwise;
pub(crate) mod linalg;
pub(crate) mod ml;
pub(crate) mod numeric;
pub(crate) mod post_transform;
pub(crate) mod reduce;
pub(crate) mod shape;
pub(crate) mod svm;
pub(crate) mod trees;

use std::ops::RangeInclusive;

use crate::error::{Error, Result};
use crate::onnx::proto::{self, attribute_type};
use crate::onnx::value::tensor_from_proto;
use crate::tensor::{DataType, Tensor, TensorData};

/// The newest opset of each domain this interpreter knows (ONNX 1.23):
/// a model importing a newer one may rely on operator versions we have
/// never seen.
pub(crate) const MAX_AI_ONNX_OPSET: i64 = 28;
pub(crate) const MAX_AI_ONNX_ML_OPSET: i64 = 5;

/// The operator domains we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Domain {
    /// `ai.onnx`, also spelled as the empty string.
    Onnx,
    /// `ai.onnx.ml`.
    OnnxMl,
}

impl Domain {
    pub(crate) fn parse(domain: &str) -> Option<Domain> {
        match domain {
            "" | "ai.onnx" => Some(Domain::Onnx),
            "ai.onnx.ml" => Some(Domain::OnnxMl),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Domain::Onnx => "ai.onnx",
            Domain::OnnxMl => "ai.onnx.ml",
        }
    }

    pub(crate) fn max_opset(self) -> i64 {
        match self {
            Domain::Onnx => MAX_AI_ONNX_OPSET,
            Domain::OnnxMl => MAX_AI_ONNX_ML_OPSET,
        }
    }
}

/// A computation over a node's inputs. `inputs` has one entry per input
/// the node declares, `None` for an omitted optional input; the result has
/// one tensor per output the kernel computes, in order (the graph drops
/// the ones nobody uses).
pub(crate) trait Kernel: Send + Sync {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>>;
}

/// What a node becomes.
pub(crate) enum Lowered {
    Kernel {
        kernel: Box<dyn Kernel>,
        /// The element type of each output the kernel computes.
        output_types: Vec<DataType>,
    },
    /// Output 0 is input `input`, unchanged (`Identity`, inference-mode
    /// `Dropout`, `ZipMap`). `output_shape` is what to declare for it when
    /// the graph's own declaration has no tensor form (a `ZipMap`'s
    /// sequence of maps).
    Alias {
        input: usize,
        output_shape: Option<Vec<i64>>,
    },
}

impl Lowered {
    pub(crate) fn kernel(kernel: impl Kernel + 'static, output_types: Vec<DataType>) -> Lowered {
        Lowered::Kernel {
            kernel: Box::new(kernel),
            output_types,
        }
    }
}

pub(crate) struct OpSchema {
    pub domain: Domain,
    pub name: &'static str,
    /// The imported opset versions of `domain` whose version of the
    /// operator `lower` implements.
    pub opsets: RangeInclusive<i64>,
    pub lower: fn(&NodeContext<'_>) -> Result<Lowered>,
}

/// The schema for `(domain, name)` if we implement the operator at all.
pub(crate) fn find(domain: Domain, name: &str) -> Option<&'static OpSchema> {
    REGISTRY
        .iter()
        .find(|op| op.domain == domain && op.name == name)
}

/// Operators ONNX defines that we knowingly leave out, and why; used to
/// make the "unsupported" message say more than "unknown".
pub(crate) fn known_unsupported(domain: Domain, name: &str) -> Option<&'static str> {
    match (domain, name) {
        (Domain::OnnxMl, "CastMap" | "DictVectorizer") => {
            Some("takes a map, which has no tensor form")
        }
        (
            Domain::Onnx,
            "Conv"
            | "ConvTranspose"
            | "ConvInteger"
            | "MaxPool"
            | "AveragePool"
            | "GlobalAveragePool"
            | "GlobalMaxPool"
            | "LpPool"
            | "MaxUnpool"
            | "MaxRoiPool"
            | "RoiAlign"
            | "Resize"
            | "Upsample"
            | "DepthToSpace"
            | "SpaceToDepth"
            | "InstanceNormalization"
            | "LpNormalization"
            | "Col2Im",
        ) => Some("convolution and pooling are not supported"),
        (Domain::Onnx, "RNN" | "GRU" | "LSTM") => Some("recurrent layers are not supported"),
        (Domain::Onnx, "Attention" | "RotaryEmbedding" | "MultiHeadAttention") => {
            Some("attention is not supported")
        }
        (Domain::Onnx, "If" | "Loop" | "Scan") => Some("control flow (subgraphs) is not supported"),
        (
            Domain::Onnx,
            "RandomNormal" | "RandomUniform" | "RandomNormalLike" | "RandomUniformLike"
            | "Bernoulli" | "Multinomial",
        ) => Some("random operators are not supported"),
        _ => None,
    }
}

/// Everything lowering needs to know about a node.
pub(crate) struct NodeContext<'a> {
    pub node: &'a proto::NodeProto,
    pub op_type: &'a str,
    /// The opset version the model imports for the node's domain.
    pub opset: i64,
    /// The element type of each declared input; `None` when omitted.
    pub input_types: Vec<Option<DataType>>,
    /// The value of each input known at load time (an initializer, a
    /// `Constant`, a folded subgraph).
    pub constants: Vec<Option<&'a Tensor>>,
}

impl<'a> NodeContext<'a> {
    pub(crate) fn n_inputs(&self) -> usize {
        self.input_types.len()
    }

    pub(crate) fn n_outputs(&self) -> usize {
        self.node.output.len()
    }

    /// Whether output `index` is declared with a name (optional outputs
    /// are omitted or named `""`).
    pub(crate) fn has_output(&self, index: usize) -> bool {
        self.node
            .output
            .get(index)
            .is_some_and(|name| !name.is_empty())
    }

    pub(crate) fn has_input(&self, index: usize) -> bool {
        self.input_types.get(index).is_some_and(Option::is_some)
    }

    /// The type of a required input.
    pub(crate) fn input_type(&self, index: usize) -> Result<DataType> {
        self.input_types
            .get(index)
            .copied()
            .flatten()
            .ok_or_else(|| Error::invalid(format!("{} needs input {index}", self.op_type)))
    }

    pub(crate) fn constant(&self, index: usize) -> Option<&'a Tensor> {
        self.constants.get(index).copied().flatten()
    }

    /// Checks the number of declared inputs.
    pub(crate) fn expect_inputs(&self, range: RangeInclusive<usize>) -> Result<()> {
        if range.contains(&self.n_inputs()) {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "{} takes {} to {} inputs, got {}",
                self.op_type,
                range.start(),
                range.end(),
                self.n_inputs()
            )))
        }
    }

    /// Fails unless input `index` has one of `allowed` types.
    pub(crate) fn expect_type(&self, index: usize, allowed: &[DataType]) -> Result<DataType> {
        let dtype = self.input_type(index)?;
        if allowed.contains(&dtype) {
            Ok(dtype)
        } else {
            Err(Error::unsupported(format!(
                "{} does not take {dtype} tensors as input {index}",
                self.op_type
            )))
        }
    }

    fn attribute(&self, name: &str) -> Option<&'a proto::AttributeProto> {
        self.node
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
    }

    pub(crate) fn has_attribute(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }

    fn typed_attribute(
        &self,
        name: &str,
        expected: i32,
    ) -> Result<Option<&'a proto::AttributeProto>> {
        let Some(attribute) = self.attribute(name) else {
            return Ok(None);
        };
        if attribute.ref_attr_name.is_some() {
            return Err(Error::unsupported(format!(
                "attribute '{name}' refers to a function attribute"
            )));
        }
        // Old exporters leave `type` unset; the value fields then decide.
        match attribute.r#type {
            Some(t) if t != 0 && t != expected => Err(Error::invalid(format!(
                "attribute '{name}' of {} has type {t}, expected {expected}",
                self.op_type
            ))),
            _ => Ok(Some(attribute)),
        }
    }

    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>> {
        Ok(self
            .typed_attribute(name, attribute_type::INT)?
            .and_then(|a| a.i.or(Some(0))))
    }

    pub(crate) fn int_or(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    pub(crate) fn float(&self, name: &str) -> Result<Option<f32>> {
        Ok(self
            .typed_attribute(name, attribute_type::FLOAT)?
            .and_then(|a| a.f.or(Some(0.0))))
    }

    pub(crate) fn float_or(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    pub(crate) fn string(&self, name: &str) -> Result<Option<String>> {
        let Some(attribute) = self.typed_attribute(name, attribute_type::STRING)? else {
            return Ok(None);
        };
        let bytes = attribute.s.clone().unwrap_or_default();
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::invalid(format!("attribute '{name}' is not UTF-8")))
    }

    pub(crate) fn string_or(&self, name: &str, default: &str) -> Result<String> {
        Ok(self.string(name)?.unwrap_or_else(|| default.to_string()))
    }

    pub(crate) fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self
            .typed_attribute(name, attribute_type::INTS)?
            .map(|a| a.ints.clone()))
    }

    pub(crate) fn floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        Ok(self
            .typed_attribute(name, attribute_type::FLOATS)?
            .map(|a| a.floats.clone()))
    }

    pub(crate) fn strings(&self, name: &str) -> Result<Option<Vec<String>>> {
        let Some(attribute) = self.typed_attribute(name, attribute_type::STRINGS)? else {
            return Ok(None);
        };
        attribute
            .strings
            .iter()
            .map(|bytes| {
                String::from_utf8(bytes.clone()).map_err(|_| {
                    Error::invalid(format!(
                        "attribute '{name}' holds a string that is not UTF-8"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    pub(crate) fn tensor(&self, name: &str) -> Result<Option<Tensor>> {
        let Some(attribute) = self.typed_attribute(name, attribute_type::TENSOR)? else {
            return Ok(None);
        };
        let proto = attribute
            .t
            .as_ref()
            .ok_or_else(|| Error::invalid(format!("attribute '{name}' has no tensor")))?;
        tensor_from_proto(proto, &format!("attribute '{name}'")).map(Some)
    }

    /// Refuses attributes whose values we would silently ignore.
    pub(crate) fn reject_attribute(&self, name: &str, why: &str) -> Result<()> {
        if self.has_attribute(name) {
            Err(Error::unsupported(format!(
                "{} with attribute '{name}': {why}",
                self.op_type
            )))
        } else {
            Ok(())
        }
    }
}

// --- small helpers shared by the kernels --------------------------------------

/// A tensor whose storage class matches `dtype`; the caller guarantees
/// that `shape` and `data` agree.
pub(crate) fn tensor(dtype: DataType, shape: Vec<usize>, data: TensorData) -> Tensor {
    debug_assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "shape and data disagree"
    );
    Tensor { dtype, shape, data }
}

/// The input at `index`, which lowering has made sure is present.
pub(crate) fn required<'t>(inputs: &[Option<&'t Tensor>], index: usize) -> Result<&'t Tensor> {
    inputs
        .get(index)
        .copied()
        .flatten()
        .ok_or_else(|| Error::invalid(format!("missing input {index}")))
}

pub(crate) fn storage_error(expected: &str, got: &Tensor) -> Error {
    Error::invalid(format!("expected a {expected} tensor, got {}", got.dtype))
}

pub(crate) fn as_i64(t: &Tensor) -> Result<&[i64]> {
    match &t.data {
        TensorData::I64(v) => Ok(v),
        _ => Err(storage_error("integer", t)),
    }
}

pub(crate) fn as_bool(t: &Tensor) -> Result<&[bool]> {
    match &t.data {
        TensorData::Bool(v) => Ok(v),
        _ => Err(storage_error("BOOL", t)),
    }
}

/// The elements of a numeric tensor as `f32`, the way ONNX Runtime's
/// ai.onnx.ml operators read their `float`, `double`, `int64` or `int32`
/// input (a C cast to float).
pub(crate) fn to_f32_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(match &t.data {
        TensorData::F32(v) => v.clone(),
        TensorData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        TensorData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| f32::from(u8::from(x))).collect(),
        TensorData::Str(_) => return Err(storage_error("numeric", t)),
    })
}

/// An integer-valued input read as a list of `i64` (shapes, axes,
/// indices, `k`).
pub(crate) fn int_list(t: &Tensor) -> Result<Vec<i64>> {
    match &t.data {
        TensorData::I64(v) => Ok(v.clone()),
        _ => Err(storage_error("integer", t)),
    }
}

/// A scalar (or one-element) integer input.
pub(crate) fn int_scalar(t: &Tensor) -> Result<i64> {
    match &t.data {
        TensorData::I64(v) if v.len() == 1 => Ok(v[0]),
        _ => Err(Error::input(format!(
            "expected one integer, got a {} tensor of shape {:?}",
            t.dtype, t.shape
        ))),
    }
}

/// Numeric types the arithmetic operators take.
pub(crate) const NUMERIC: &[DataType] = &[
    DataType::F32,
    DataType::F64,
    DataType::I64,
    DataType::I32,
    DataType::I16,
    DataType::I8,
    DataType::U8,
    DataType::U16,
    DataType::U32,
    DataType::U64,
];
pub(crate) const FLOATS: &[DataType] = &[DataType::F32, DataType::F64];
pub(crate) const ALL_TYPES: &[DataType] = &[
    DataType::F32,
    DataType::F64,
    DataType::I64,
    DataType::I32,
    DataType::I16,
    DataType::I8,
    DataType::U8,
    DataType::U16,
    DataType::U32,
    DataType::U64,
    DataType::Bool,
    DataType::Bytes,
];

macro_rules! op {
    ($domain:ident, $name:literal, $opsets:expr, $lower:path) => {
        OpSchema {
            domain: Domain::$domain,
            name: $name,
            opsets: $opsets,
            lower: $lower,
        }
    };
}

/// Every supported operator. Opset ranges start at the first version whose
/// semantics we implement (earlier ones had legacy attributes such as
/// `broadcast` or `consumed_inputs`) and end at the newest opset we know.
static REGISTRY: &[OpSchema] = &[
    // ai.onnx: elementwise arithmetic and math.
    op!(Onnx, "Add", 7..=28, elementwise::lower_add),
    op!(Onnx, "Sub", 7..=28, elementwise::lower_sub),
    op!(Onnx, "Mul", 7..=28, elementwise::lower_mul),
    op!(Onnx, "Div", 7..=28, elementwise::lower_div),
    op!(Onnx, "Pow", 7..=28, elementwise::lower_pow),
    op!(Onnx, "Max", 6..=28, elementwise::lower_max),
    op!(Onnx, "Min", 6..=28, elementwise::lower_min),
    op!(Onnx, "Sum", 6..=28, elementwise::lower_sum),
    op!(Onnx, "Mean", 6..=28, elementwise::lower_mean),
    op!(Onnx, "Relu", 6..=28, elementwise::lower_relu),
    op!(Onnx, "LeakyRelu", 6..=28, elementwise::lower_leaky_relu),
    op!(Onnx, "Sigmoid", 6..=28, elementwise::lower_sigmoid),
    op!(Onnx, "HardSigmoid", 6..=28, elementwise::lower_hard_sigmoid),
    op!(Onnx, "Tanh", 6..=28, elementwise::lower_tanh),
    op!(Onnx, "Exp", 6..=28, elementwise::lower_exp),
    op!(Onnx, "Log", 6..=28, elementwise::lower_log),
    op!(Onnx, "Abs", 6..=28, elementwise::lower_abs),
    op!(Onnx, "Neg", 6..=28, elementwise::lower_neg),
    op!(Onnx, "Sqrt", 6..=28, elementwise::lower_sqrt),
    op!(Onnx, "Reciprocal", 6..=28, elementwise::lower_reciprocal),
    op!(Onnx, "Floor", 6..=28, elementwise::lower_floor),
    op!(Onnx, "Ceil", 6..=28, elementwise::lower_ceil),
    op!(Onnx, "Round", 11..=28, elementwise::lower_round),
    op!(Onnx, "Sign", 9..=28, elementwise::lower_sign),
    op!(Onnx, "Erf", 9..=28, elementwise::lower_erf),
    op!(Onnx, "Softplus", 1..=28, elementwise::lower_softplus),
    op!(Onnx, "Elu", 6..=28, elementwise::lower_elu),
    op!(Onnx, "Selu", 6..=28, elementwise::lower_selu),
    op!(Onnx, "Gelu", 20..=28, elementwise::lower_gelu),
    op!(Onnx, "Clip", 6..=28, elementwise::lower_clip),
    op!(Onnx, "IsNaN", 9..=28, elementwise::lower_is_nan),
    // ai.onnx: comparisons and logic.
    op!(Onnx, "Equal", 7..=28, elementwise::lower_equal),
    op!(Onnx, "Less", 7..=28, elementwise::lower_less),
    op!(Onnx, "Greater", 7..=28, elementwise::lower_greater),
    op!(
        Onnx,
        "LessOrEqual",
        12..=28,
        elementwise::lower_less_or_equal
    ),
    op!(
        Onnx,
        "GreaterOrEqual",
        12..=28,
        elementwise::lower_greater_or_equal
    ),
    op!(Onnx, "Not", 1..=28, elementwise::lower_not),
    op!(Onnx, "And", 7..=28, elementwise::lower_and),
    op!(Onnx, "Or", 7..=28, elementwise::lower_or),
    op!(Onnx, "Xor", 7..=28, elementwise::lower_xor),
    op!(Onnx, "Where", 9..=28, elementwise::lower_where),
    op!(Onnx, "Cast", 6..=28, elementwise::lower_cast),
    op!(Onnx, "CastLike", 15..=28, elementwise::lower_cast_like),
    // ai.onnx: shapes, indexing, constants.
    op!(Onnx, "Identity", 1..=28, shape::lower_identity),
    op!(Onnx, "Dropout", 7..=28, shape::lower_dropout),
    op!(Onnx, "Constant", 1..=28, shape::lower_constant),
    op!(
        Onnx,
        "ConstantOfShape",
        9..=28,
        shape::lower_constant_of_shape
    ),
    op!(Onnx, "Shape", 1..=28, shape::lower_shape),
    op!(Onnx, "Size", 1..=28, shape::lower_size),
    op!(Onnx, "Reshape", 5..=28, shape::lower_reshape),
    op!(Onnx, "Flatten", 1..=28, shape::lower_flatten),
    op!(Onnx, "Squeeze", 1..=28, shape::lower_squeeze),
    op!(Onnx, "Unsqueeze", 1..=28, shape::lower_unsqueeze),
    op!(Onnx, "Transpose", 1..=28, shape::lower_transpose),
    op!(Onnx, "Concat", 4..=28, shape::lower_concat),
    op!(Onnx, "Split", 2..=28, shape::lower_split),
    op!(Onnx, "Gather", 1..=28, shape::lower_gather),
    op!(
        Onnx,
        "GatherElements",
        11..=28,
        shape::lower_gather_elements
    ),
    op!(Onnx, "Slice", 1..=28, shape::lower_slice),
    op!(Onnx, "Expand", 8..=28, shape::lower_expand),
    op!(Onnx, "Tile", 6..=28, shape::lower_tile),
    op!(Onnx, "Range", 11..=28, shape::lower_range),
    // ai.onnx: reductions and normalisations.
    op!(Onnx, "ReduceSum", 1..=28, reduce::lower_reduce_sum),
    op!(Onnx, "ReduceMean", 1..=28, reduce::lower_reduce_mean),
    op!(Onnx, "ReduceMax", 1..=28, reduce::lower_reduce_max),
    op!(Onnx, "ReduceMin", 1..=28, reduce::lower_reduce_min),
    op!(Onnx, "ReduceProd", 1..=28, reduce::lower_reduce_prod),
    op!(
        Onnx,
        "ReduceSumSquare",
        1..=28,
        reduce::lower_reduce_sum_square
    ),
    op!(
        Onnx,
        "ReduceLogSumExp",
        1..=28,
        reduce::lower_reduce_log_sum_exp
    ),
    op!(Onnx, "ReduceLogSum", 1..=28, reduce::lower_reduce_log_sum),
    op!(Onnx, "ReduceL1", 1..=28, reduce::lower_reduce_l1),
    op!(Onnx, "ReduceL2", 1..=28, reduce::lower_reduce_l2),
    op!(Onnx, "ArgMax", 1..=28, reduce::lower_arg_max),
    op!(Onnx, "ArgMin", 1..=28, reduce::lower_arg_min),
    op!(Onnx, "TopK", 1..=28, reduce::lower_top_k),
    op!(Onnx, "Softmax", 1..=28, reduce::lower_softmax),
    op!(Onnx, "LogSoftmax", 1..=28, reduce::lower_log_softmax),
    // ai.onnx: linear algebra.
    op!(Onnx, "MatMul", 1..=28, linalg::lower_mat_mul),
    op!(Onnx, "Gemm", 7..=28, linalg::lower_gemm),
    op!(
        Onnx,
        "BatchNormalization",
        7..=28,
        linalg::lower_batch_normalization
    ),
    // ai.onnx.ml
    op!(
        OnnxMl,
        "TreeEnsembleClassifier",
        1..=5,
        trees::lower_tree_ensemble_classifier
    ),
    op!(
        OnnxMl,
        "TreeEnsembleRegressor",
        1..=5,
        trees::lower_tree_ensemble_regressor
    ),
    op!(OnnxMl, "TreeEnsemble", 5..=5, trees::lower_tree_ensemble),
    op!(
        OnnxMl,
        "LinearClassifier",
        1..=5,
        ml::lower_linear_classifier
    ),
    op!(OnnxMl, "LinearRegressor", 1..=5, ml::lower_linear_regressor),
    op!(OnnxMl, "Scaler", 1..=5, ml::lower_scaler),
    op!(OnnxMl, "Normalizer", 1..=5, ml::lower_normalizer),
    op!(OnnxMl, "Imputer", 1..=5, ml::lower_imputer),
    op!(OnnxMl, "OneHotEncoder", 1..=5, ml::lower_one_hot_encoder),
    op!(OnnxMl, "LabelEncoder", 1..=5, ml::lower_label_encoder),
    op!(OnnxMl, "CategoryMapper", 1..=5, ml::lower_category_mapper),
    op!(
        OnnxMl,
        "ArrayFeatureExtractor",
        1..=5,
        ml::lower_array_feature_extractor
    ),
    op!(OnnxMl, "Binarizer", 1..=5, ml::lower_binarizer),
    op!(
        OnnxMl,
        "FeatureVectorizer",
        1..=5,
        ml::lower_feature_vectorizer
    ),
    op!(OnnxMl, "ZipMap", 1..=5, ml::lower_zip_map),
    op!(OnnxMl, "SVMClassifier", 1..=5, svm::lower_svm_classifier),
    op!(OnnxMl, "SVMRegressor", 1..=5, svm::lower_svm_regressor),
];
