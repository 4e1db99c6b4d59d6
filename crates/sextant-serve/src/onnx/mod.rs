//! An ONNX interpreter for the operators tabular and small neural models
//! use, in pure Rust.
//!
//! [`load`] decodes a `ModelProto` (with `prost`, from the hand-written
//! message subset in [`proto`]), checks that every node's operator is
//! implemented at the opset version the model imports (the error lists all
//! the missing ones), and compiles the graph into steps over value slots
//! (see `graph.rs`). The operators (see `ops/`) follow ONNX Runtime, the
//! reference implementation: `FLOAT` tensors compute in `f32` and `DOUBLE`
//! tensors in `f64`, the ai.onnx.ml tree ensembles compile into the native
//! tree engine ([`crate::trees`]) and reproduce ONNX Runtime's
//! single-threaded summation order and its post-transforms, so that their
//! outputs agree to the bit.
//!
//! What is deliberately not here: convolutions, pooling, recurrent layers,
//! attention, control flow (subgraphs), sequences and maps as values,
//! half-precision and 8-bit types, external data files, training-mode
//! operators. `ZipMap` (the default last node of skl2onnx classifiers)
//! turns a probability tensor into a list of `{label: probability}` maps,
//! which has no tensor form: we return the probability tensor itself,
//! `[rows, classes]` in the ZipMap's class order, under the ZipMap output's
//! name. `CastMap` and `DictVectorizer` take maps and are not supported.

mod broadcast;
mod graph;
pub(crate) mod ops;
pub mod proto;
mod value;

use std::collections::HashSet;

use prost::Message;

use crate::error::{Error, Result};
use crate::explain::{ExplainOptions, Explanation};
use crate::onnx::graph::{CompiledGraph, Opsets};
use crate::onnx::ops::Domain;
use crate::runtime::{ModelRuntime, RuntimeInfo};
use crate::tensor::NamedTensor;

/// A loaded ONNX model, ready to predict.
pub struct OnnxModel {
    graph: CompiledGraph,
    info: RuntimeInfo,
    producer: String,
    /// The graph has an ai.onnx.ml tree-ensemble operator.
    has_trees: bool,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("producer", &self.producer)
            .field("inputs", &self.info.inputs)
            .field("outputs", &self.info.outputs)
            .finish_non_exhaustive()
    }
}

/// Decodes and compiles a serialized `ModelProto` (the bytes of a
/// `.onnx` file).
///
/// Errors: `InvalidModel` when the bytes are not an ONNX model or the graph
/// is inconsistent; `Unsupported` when it uses operators, types or features
/// this interpreter does not implement (naming every missing operator).
pub fn load(bytes: &[u8]) -> Result<OnnxModel> {
    let model = proto::ModelProto::decode(bytes).map_err(|e| {
        Error::invalid(format!("not an ONNX model (protobuf decoding failed: {e})"))
    })?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::invalid("the ONNX model has no graph"))?;
    if model.ir_version.unwrap_or(0) < 3 {
        // IR 3 introduced opset imports; earlier files predate the
        // operator versions we implement.
        return Err(Error::unsupported(format!(
            "ONNX IR version {} is too old (3 or later is supported)",
            model.ir_version.unwrap_or(0)
        )));
    }
    let mut opsets = Opsets::default();
    for import in &model.opset_import {
        let version = import.version.unwrap_or(0);
        match Domain::parse(import.domain.as_deref().unwrap_or("")) {
            // skl2onnx sometimes imports the default domain twice; the
            // newer version governs, as in ONNX Runtime.
            Some(Domain::Onnx) => {
                opsets.onnx = Some(opsets.onnx.map_or(version, |v| v.max(version)))
            }
            Some(Domain::OnnxMl) => {
                opsets.onnx_ml = Some(opsets.onnx_ml.map_or(version, |v| v.max(version)))
            }
            None => {}
        }
    }
    let functions: HashSet<String> = model
        .functions
        .iter()
        .map(|f| {
            format!(
                "{}.{}",
                f.domain.as_deref().unwrap_or(""),
                f.name.as_deref().unwrap_or("")
            )
        })
        .collect();
    let has_trees = graph.node.iter().any(|node| {
        node.op_type
            .as_deref()
            .is_some_and(|op| op.starts_with("TreeEnsemble"))
    });
    let graph = CompiledGraph::compile(graph, &opsets, &functions)?;
    let info = RuntimeInfo {
        engine: "onnx",
        inputs: graph.input_specs().to_vec(),
        outputs: graph.output_specs().to_vec(),
        feature_names: None,
        accepts_any_inputs: false,
    };
    let producer = match (&model.producer_name, &model.producer_version) {
        (Some(name), Some(version)) => format!("{name} {version}"),
        (Some(name), None) => name.clone(),
        _ => String::new(),
    };
    Ok(OnnxModel {
        graph,
        info,
        producer,
        has_trees,
    })
}

impl OnnxModel {
    /// The tool that wrote the model (`skl2onnx 1.20.0`, `pytorch 2.5`, …),
    /// empty when the file does not say.
    pub fn producer(&self) -> &str {
        &self.producer
    }
}

impl ModelRuntime for OnnxModel {
    fn info(&self) -> &RuntimeInfo {
        &self.info
    }

    /// Runs the graph. `inputs` are matched to the declared inputs by name
    /// and must have their declared types and fixed dimensions; the outputs
    /// come back in the graph's order, with the graph's names.
    fn predict(&self, inputs: &[NamedTensor]) -> Result<Vec<NamedTensor>> {
        self.graph.run(inputs)
    }

    /// Tree ensembles in ONNX files carry no training covers (the spec's
    /// only per-node statistic, `nodes_hitrates`, is optional and written
    /// as 1.0 by the converters), and path-dependent TreeSHAP on made-up
    /// covers adds up while being wrong by far more than the signal: it is
    /// refused. Everything else is KernelSHAP around the graph.
    fn explain(&self, inputs: &[NamedTensor], options: &ExplainOptions) -> Result<Explanation> {
        use crate::explain::Method;
        if self.has_trees && matches!(options.method, Some(Method::TreePathDependent)) {
            return Err(Error::unsupported(
                "path-dependent TreeSHAP needs the training covers of the tree nodes, which \
                 ONNX files do not record (skl2onnx writes 1.0 for every node); serve the \
                 original model to explain it exactly, or ask for method=kernel",
            ));
        }
        crate::explain::kernel::explain(self, inputs, options)
    }
}

#[cfg(test)]
mod tests;
