//! A `GraphProto` compiled into a list of steps over numbered value slots.
//!
//! Compilation resolves every value name once: a step's operands are
//! indices into the call's inputs, the graph's constants or the slots
//! earlier steps fill, so that a call does no lookup by name. Nodes whose
//! inputs are all known at load time (initializers, `Constant`s, and
//! whatever is computed from them alone) run once, at load time, and
//! become constants; nodes nothing needs are dropped; every slot is freed
//! after its last use. Constants are borrowed, never copied, by the steps
//! that read them.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::onnx::ops::{self, Domain, Kernel, Lowered, NodeContext};
use crate::onnx::proto;
use crate::onnx::value::{data_type_from_onnx, storage_matches, tensor_from_proto};
use crate::tensor::{DataType, NamedTensor, Tensor, TensorSpec};

/// Where a step finds a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operand {
    /// The call's input at this position of the declared inputs.
    Input(usize),
    Constant(usize),
    /// The slot a previous step fills.
    Value(usize),
}

/// The dimensions a graph input or output declares: `None` when the model
/// does not declare the rank; otherwise one entry per axis, `None` for a
/// symbolic or unknown size.
type DeclaredDims = Option<Vec<Option<usize>>>;

/// A graph input: what a call must provide.
#[derive(Debug, Clone)]
struct InputSpec {
    name: String,
    dtype: DataType,
    dims: DeclaredDims,
}

struct Step {
    /// `node 'name' (OpType)`, for messages.
    label: String,
    kernel: Box<dyn Kernel>,
    inputs: Vec<Option<Operand>>,
    /// The slot of each output the kernel computes; `None` when unused.
    outputs: Vec<Option<usize>>,
    /// Slots read for the last time by this step.
    release: Vec<usize>,
}

pub(crate) struct CompiledGraph {
    inputs: Vec<InputSpec>,
    constants: Vec<Tensor>,
    steps: Vec<Step>,
    n_slots: usize,
    outputs: Vec<(String, Operand)>,
    /// For each output, whether a later output reads the same operand (it
    /// is then copied rather than moved out).
    output_shared: Vec<bool>,
    input_specs: Vec<TensorSpec>,
    output_specs: Vec<TensorSpec>,
}

/// The opset version imported for each domain we implement.
#[derive(Debug, Clone, Default)]
pub(crate) struct Opsets {
    pub onnx: Option<i64>,
    pub onnx_ml: Option<i64>,
}

impl Opsets {
    pub(crate) fn version(&self, domain: Domain) -> Option<i64> {
        match domain {
            Domain::Onnx => self.onnx,
            Domain::OnnxMl => self.onnx_ml,
        }
    }
}

fn node_label(node: &proto::NodeProto, index: usize) -> String {
    let op_type = node.op_type.as_deref().unwrap_or("?");
    match node.name.as_deref() {
        Some(name) if !name.is_empty() => format!("node '{name}' ({op_type})"),
        _ => format!("node #{index} ({op_type})"),
    }
}

/// Puts `label` in front of an error's message, keeping its kind.
fn in_context(label: &str, error: Error) -> Error {
    match error {
        Error::Input(message) => Error::Input(format!("{label}: {message}")),
        Error::InvalidModel(message) => Error::InvalidModel(format!("{label}: {message}")),
        Error::Unsupported(message) => Error::Unsupported(format!("{label}: {message}")),
        other => other,
    }
}

/// Checks that every node's operator is one we implement at the imported
/// opset version; the error lists every missing one.
fn check_operators(
    graph: &proto::GraphProto,
    opsets: &Opsets,
    functions: &HashSet<String>,
) -> Result<()> {
    let mut missing: Vec<String> = Vec::new();
    for node in &graph.node {
        let op_type = node.op_type.as_deref().unwrap_or("");
        let domain_name = node.domain.as_deref().unwrap_or("");
        let problem = match Domain::parse(domain_name) {
            None if functions.contains(&format!("{domain_name}.{op_type}")) => {
                format!("{domain_name}.{op_type} (a model-local function)")
            }
            None => format!("{domain_name}.{op_type} (domain '{domain_name}' is not supported)"),
            Some(domain) => {
                let qualified = format!("{}.{op_type}", domain.name());
                match (opsets.version(domain), ops::find(domain, op_type)) {
                    (None, _) => {
                        return Err(Error::invalid(format!(
                            "{qualified} is used but the model imports no opset for {}",
                            domain.name()
                        )))
                    }
                    (Some(version), _) if version > domain.max_opset() => format!(
                        "{qualified} (opset {version} of {} is newer than the {} this interpreter knows)",
                        domain.name(),
                        domain.max_opset()
                    ),
                    (Some(version), Some(schema)) if schema.opsets.contains(&version) => continue,
                    (Some(version), Some(schema)) => format!(
                        "{qualified} (opset {version}; supported from opset {})",
                        schema.opsets.start()
                    ),
                    (Some(version), None) => match ops::known_unsupported(domain, op_type) {
                        Some(why) => format!("{qualified} (opset {version}; {why})"),
                        None => format!("{qualified} (opset {version})"),
                    },
                }
            }
        };
        if !missing.contains(&problem) {
            missing.push(problem);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::unsupported(format!(
            "the ONNX graph uses operators this interpreter does not implement: {}",
            missing.join(", ")
        )))
    }
}

/// The element type and dims a `ValueInfoProto` declares, or why it has no
/// tensor form.
fn declared_tensor_type(value: &proto::ValueInfoProto) -> Result<(i32, DeclaredDims), String> {
    use proto::type_proto::Value;
    let kind = value.r#type.as_ref().and_then(|t| t.value.as_ref());
    match kind {
        Some(Value::TensorType(tensor)) => {
            let dims = tensor.shape.as_ref().map(|shape| {
                shape
                    .dim
                    .iter()
                    .map(|d| match d.value {
                        Some(proto::tensor_shape_proto::dimension::Value::DimValue(v))
                            if v >= 0 =>
                        {
                            Some(v as usize)
                        }
                        _ => None,
                    })
                    .collect()
            });
            Ok((tensor.elem_type.unwrap_or(0), dims))
        }
        Some(Value::SequenceType(_)) => Err("a sequence".into()),
        Some(Value::MapType(_)) => Err("a map".into()),
        None => Err("of no tensor type".into()),
    }
}

fn spec_shape(dims: &DeclaredDims) -> Vec<i64> {
    match dims {
        Some(dims) => dims.iter().map(|d| d.map_or(-1, |v| v as i64)).collect(),
        None => Vec::new(),
    }
}

impl CompiledGraph {
    pub(crate) fn compile(
        graph: &proto::GraphProto,
        opsets: &Opsets,
        functions: &HashSet<String>,
    ) -> Result<Self> {
        check_operators(graph, opsets, functions)?;
        if !graph.sparse_initializer.is_empty() {
            return Err(Error::unsupported("sparse initializers are not supported"));
        }

        // Every value name resolves to an operand and an element type.
        let mut names: HashMap<String, (Operand, DataType)> = HashMap::new();
        let mut constants: Vec<Tensor> = Vec::with_capacity(graph.initializer.len());
        for initializer in &graph.initializer {
            let name = initializer.name.clone().unwrap_or_default();
            let tensor = tensor_from_proto(initializer, &format!("initializer '{name}'"))?;
            let entry = (Operand::Constant(constants.len()), tensor.dtype);
            constants.push(tensor);
            if names.insert(name.clone(), entry).is_some() {
                return Err(Error::invalid(format!(
                    "two initializers are named '{name}'"
                )));
            }
        }

        let mut inputs = Vec::new();
        for value in &graph.input {
            let name = value.name.clone().unwrap_or_default();
            // An input with an initializer of the same name is a constant
            // with an overridable default (IR < 4 listed every initializer
            // as an input): the default is what we use.
            if names.contains_key(&name) {
                continue;
            }
            let (code, dims) = declared_tensor_type(value).map_err(|kind| {
                Error::unsupported(format!("graph input '{name}' is {kind}, not a tensor"))
            })?;
            let dtype = data_type_from_onnx(code)
                .map_err(|e| in_context(&format!("graph input '{name}'"), e))?;
            names.insert(name.clone(), (Operand::Input(inputs.len()), dtype));
            inputs.push(InputSpec { name, dtype, dims });
        }

        let mut steps: Vec<Step> = Vec::new();
        let mut n_slots = 0usize;
        // For each output name of a ZipMap-like alias: the shape to declare.
        let mut alias_shapes: HashMap<String, Vec<i64>> = HashMap::new();
        for (index, node) in graph.node.iter().enumerate() {
            let label = node_label(node, index);
            let op_type = node.op_type.as_deref().unwrap_or("");
            let domain = Domain::parse(node.domain.as_deref().unwrap_or(""))
                .ok_or_else(|| Error::unsupported(format!("{label}: unknown domain")))?;
            let schema = ops::find(domain, op_type)
                .ok_or_else(|| Error::unsupported(format!("{label}: unknown operator")))?;
            let opset = opsets
                .version(domain)
                .ok_or_else(|| Error::invalid(format!("{label}: no opset imported")))?;

            let mut operands = Vec::with_capacity(node.input.len());
            let mut input_types = Vec::with_capacity(node.input.len());
            for name in &node.input {
                if name.is_empty() {
                    operands.push(None);
                    input_types.push(None);
                    continue;
                }
                let &(operand, dtype) = names.get(name).ok_or_else(|| {
                    Error::invalid(format!(
                        "{label} reads '{name}', which no earlier node, input or initializer defines \
                         (ONNX graphs must be topologically sorted)"
                    ))
                })?;
                operands.push(Some(operand));
                input_types.push(Some(dtype));
            }

            let lowered = {
                let constant_inputs = operands
                    .iter()
                    .map(|operand| match operand {
                        Some(Operand::Constant(i)) => Some(&constants[*i]),
                        _ => None,
                    })
                    .collect();
                let context = NodeContext {
                    node,
                    op_type,
                    opset,
                    input_types,
                    constants: constant_inputs,
                };
                (schema.lower)(&context).map_err(|e| in_context(&label, e))?
            };

            let define = |names: &mut HashMap<String, (Operand, DataType)>, name: &str, entry| {
                if names.insert(name.to_string(), entry).is_some() {
                    Err(Error::invalid(format!(
                        "{label}: value '{name}' is defined twice"
                    )))
                } else {
                    Ok(())
                }
            };
            match lowered {
                Lowered::Alias {
                    input,
                    output_shape,
                } => {
                    let Some(Some(source)) = node
                        .input
                        .get(input)
                        .filter(|n| !n.is_empty())
                        .map(|n| names.get(n))
                    else {
                        return Err(Error::invalid(format!("{label} needs input {input}")));
                    };
                    let source = *source;
                    if let Some(output) = node.output.first().filter(|n| !n.is_empty()) {
                        define(&mut names, output, source)?;
                        if let Some(shape) = output_shape {
                            alias_shapes.insert(output.clone(), shape);
                        }
                    }
                }
                Lowered::Kernel {
                    kernel,
                    output_types,
                } => {
                    if node.output.len() > output_types.len() {
                        return Err(Error::invalid(format!(
                            "{label} declares {} outputs; the operator has {}",
                            node.output.len(),
                            output_types.len()
                        )));
                    }
                    let foldable = operands
                        .iter()
                        .flatten()
                        .all(|o| matches!(o, Operand::Constant(_)));
                    if foldable {
                        let results = {
                            let arguments: Vec<Option<&Tensor>> = operands
                                .iter()
                                .map(|o| match o {
                                    Some(Operand::Constant(i)) => Some(&constants[*i]),
                                    _ => None,
                                })
                                .collect();
                            kernel.run(&arguments).map_err(|e| {
                                Error::invalid(format!("{label} fails on its constant inputs: {e}"))
                            })?
                        };
                        for (name, tensor) in node.output.iter().zip(results) {
                            if name.is_empty() {
                                continue;
                            }
                            let entry = (Operand::Constant(constants.len()), tensor.dtype);
                            constants.push(tensor);
                            define(&mut names, name, entry)?;
                        }
                    } else {
                        let mut outputs = vec![None; output_types.len()];
                        for (position, name) in node.output.iter().enumerate() {
                            if name.is_empty() {
                                continue;
                            }
                            outputs[position] = Some(n_slots);
                            define(
                                &mut names,
                                name,
                                (Operand::Value(n_slots), output_types[position]),
                            )?;
                            n_slots += 1;
                        }
                        steps.push(Step {
                            label,
                            kernel,
                            inputs: operands,
                            outputs,
                            release: Vec::new(),
                        });
                    }
                }
            }
        }

        let mut outputs = Vec::with_capacity(graph.output.len());
        let mut output_specs = Vec::with_capacity(graph.output.len());
        for value in &graph.output {
            let name = value.name.clone().unwrap_or_default();
            let &(operand, dtype) = names.get(&name).ok_or_else(|| {
                Error::invalid(format!("graph output '{name}' is never computed"))
            })?;
            let shape = match declared_tensor_type(value) {
                Ok((code, dims)) => {
                    if code != 0 {
                        let declared = data_type_from_onnx(code)
                            .map_err(|e| in_context(&format!("graph output '{name}'"), e))?;
                        if declared != dtype {
                            return Err(Error::invalid(format!(
                                "graph output '{name}' is declared {declared} but the graph computes {dtype}"
                            )));
                        }
                    }
                    spec_shape(&dims)
                }
                // A ZipMap's list of maps: we return the tensor it was made
                // from, so declare that.
                Err(kind) => alias_shapes.get(&name).cloned().ok_or_else(|| {
                    Error::unsupported(format!(
                        "graph output '{name}' is {kind}, which has no tensor form"
                    ))
                })?,
            };
            output_specs.push(TensorSpec::new(name.clone(), dtype, shape));
            outputs.push((name, operand));
        }
        if outputs.is_empty() {
            return Err(Error::invalid("the graph has no outputs"));
        }

        let steps = prune_and_schedule_releases(steps, &outputs);
        let output_shared = (0..outputs.len())
            .map(|i| outputs[i + 1..].iter().any(|(_, o)| *o == outputs[i].1))
            .collect();
        let input_specs = inputs
            .iter()
            .map(|input| TensorSpec::new(input.name.clone(), input.dtype, spec_shape(&input.dims)))
            .collect();
        Ok(CompiledGraph {
            inputs,
            constants,
            steps,
            n_slots,
            outputs,
            output_shared,
            input_specs,
            output_specs,
        })
    }

    pub(crate) fn input_specs(&self) -> &[TensorSpec] {
        &self.input_specs
    }

    pub(crate) fn output_specs(&self) -> &[TensorSpec] {
        &self.output_specs
    }

    /// The number of steps left after folding and pruning (for tests).
    #[cfg(test)]
    pub(crate) fn n_steps(&self) -> usize {
        self.steps.len()
    }

    /// Runs the graph on `inputs` (one per declared input, matched by
    /// name).
    pub(crate) fn run(&self, inputs: &[NamedTensor]) -> Result<Vec<NamedTensor>> {
        let bound = self.bind_inputs(inputs)?;
        let mut slots: Vec<Option<Tensor>> = Vec::new();
        slots.resize_with(self.n_slots, || None);
        for step in &self.steps {
            let results = {
                let arguments: Vec<Option<&Tensor>> = step
                    .inputs
                    .iter()
                    .map(|operand| operand.map(|o| self.fetch(o, &bound, &slots)))
                    .collect();
                step.kernel
                    .run(&arguments)
                    .map_err(|e| in_context(&step.label, e))?
            };
            if results.len()
                < step
                    .outputs
                    .iter()
                    .rposition(Option::is_some)
                    .map_or(0, |p| p + 1)
            {
                return Err(Error::invalid(format!(
                    "{} computed too few outputs",
                    step.label
                )));
            }
            for (slot, tensor) in step.outputs.iter().zip(results) {
                if let Some(slot) = slot {
                    slots[*slot] = Some(tensor);
                }
            }
            for &slot in &step.release {
                slots[slot] = None;
            }
        }
        let mut results = Vec::with_capacity(self.outputs.len());
        for ((name, operand), &shared) in self.outputs.iter().zip(&self.output_shared) {
            let tensor = match operand {
                Operand::Value(slot) if !shared => slots[*slot].take(),
                other => Some(self.fetch(*other, &bound, &slots).clone()),
            };
            let tensor = tensor
                .ok_or_else(|| Error::invalid(format!("graph output '{name}' was not computed")))?;
            results.push(NamedTensor::new(name.clone(), tensor));
        }
        Ok(results)
    }

    fn fetch<'a>(
        &'a self,
        operand: Operand,
        inputs: &[&'a Tensor],
        slots: &'a [Option<Tensor>],
    ) -> &'a Tensor {
        match operand {
            Operand::Input(i) => inputs[i],
            Operand::Constant(i) => &self.constants[i],
            Operand::Value(slot) => slots[slot]
                .as_ref()
                .expect("schedule invariant: a slot is filled before it is read and freed after its last read"),
        }
    }

    /// The call's tensors in declared order, checked against the declared
    /// types and fixed dimensions.
    fn bind_inputs<'a>(&self, inputs: &'a [NamedTensor]) -> Result<Vec<&'a Tensor>> {
        let mut bound = Vec::with_capacity(self.inputs.len());
        for (position, spec) in self.inputs.iter().enumerate() {
            let given = match inputs.get(position) {
                Some(input) if input.name == spec.name => input,
                _ => inputs
                    .iter()
                    .find(|input| input.name == spec.name)
                    .ok_or_else(|| Error::input(format!("missing input '{}'", spec.name)))?,
            };
            let tensor = &given.tensor;
            if tensor.dtype != spec.dtype || !storage_matches(spec.dtype, &tensor.data) {
                return Err(Error::input(format!(
                    "input '{}' must be {}, got {}",
                    spec.name, spec.dtype, tensor.dtype
                )));
            }
            let expected_len = tensor
                .shape
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d));
            if expected_len != Some(tensor.data.len()) {
                return Err(Error::input(format!(
                    "input '{}' has shape {:?} but {} values",
                    spec.name,
                    tensor.shape,
                    tensor.data.len()
                )));
            }
            if let Some(dims) = &spec.dims {
                let fits = dims.len() == tensor.shape.len()
                    && dims
                        .iter()
                        .zip(&tensor.shape)
                        .all(|(d, &s)| d.is_none_or(|d| d == s));
                if !fits {
                    return Err(Error::input(format!(
                        "input '{}' must have shape {:?}, got {:?}",
                        spec.name,
                        spec_shape(&spec.dims),
                        tensor.shape
                    )));
                }
            }
            bound.push(tensor);
        }
        if inputs.len() > self.inputs.len() {
            if let Some(extra) = inputs
                .iter()
                .find(|i| !self.inputs.iter().any(|s| s.name == i.name))
            {
                return Err(Error::input(format!(
                    "the model has no input named '{}'",
                    extra.name
                )));
            }
        }
        Ok(bound)
    }
}

/// Drops the steps no graph output depends on, and records in each step
/// the slots it reads for the last time.
fn prune_and_schedule_releases(steps: Vec<Step>, outputs: &[(String, Operand)]) -> Vec<Step> {
    let mut needed: HashSet<usize> = outputs
        .iter()
        .filter_map(|(_, operand)| match operand {
            Operand::Value(slot) => Some(*slot),
            _ => None,
        })
        .collect();
    let mut kept: Vec<Step> = Vec::with_capacity(steps.len());
    for step in steps.into_iter().rev() {
        if !step
            .outputs
            .iter()
            .flatten()
            .any(|slot| needed.contains(slot))
        {
            continue;
        }
        for operand in step.inputs.iter().flatten() {
            if let Operand::Value(slot) = operand {
                needed.insert(*slot);
            }
        }
        kept.push(step);
    }
    kept.reverse();

    let graph_outputs: HashSet<usize> = outputs
        .iter()
        .filter_map(|(_, operand)| match operand {
            Operand::Value(slot) => Some(*slot),
            _ => None,
        })
        .collect();
    let mut last_read: HashMap<usize, usize> = HashMap::new();
    for (index, step) in kept.iter().enumerate() {
        for operand in step.inputs.iter().flatten() {
            if let Operand::Value(slot) = operand {
                last_read.insert(*slot, index);
            }
        }
    }
    for step in kept.iter_mut() {
        // Outputs nobody reads are freed right away.
        for slot in step.outputs.iter().flatten() {
            if !graph_outputs.contains(slot) && !last_read.contains_key(slot) {
                step.release.push(*slot);
            }
        }
    }
    for (slot, index) in last_read {
        if !graph_outputs.contains(&slot) {
            kept[index].release.push(slot);
        }
    }
    kept
}
