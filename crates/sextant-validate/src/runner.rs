//! Runs a spec's tests against a candidate model (and a baseline), with
//! every prediction computed once per model, dataset view and perturbation
//! and shared by every check that reads it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use sextant_serve::model::Layout;
use sextant_serve::{Model, NamedTensor, TensorData};

use crate::fairness::Measure;
use crate::frame::{Cells, Frame, Scalar};
use crate::metrics::{Metric, Outcomes, MISSING};
use crate::report::{Assertion, DatasetRecord, Report, Status, TestResult, Verdict};
use crate::rng::Rng;
use crate::spec::{
    Bootstrap, Bound, DatasetRef, DatasetSource, Perturbation, Slice, Spec, TaskKind, Test,
    TestKind, VsBaseline,
};

/// A model under test.
pub struct Subject<'a> {
    /// How the report names it (`models:/churn/3`, a directory).
    pub name: String,
    pub model: &'a Model,
    /// Bytes of the model's files, for size budgets.
    pub size_bytes: Option<u64>,
}

pub struct Run<'a> {
    pub spec: &'a Spec,
    pub candidate: Subject<'a>,
    pub baseline: Option<Subject<'a>>,
    /// Why there is no baseline, when the spec names one.
    pub baseline_note: Option<String>,
    /// Each `uri` dataset, resolved by the caller to a local file.
    pub files: BTreeMap<String, PathBuf>,
    /// Threads for predictions and bootstrap resamples.
    pub threads: usize,
}

/// Rows per chunk handed to the engine.
const CHUNK_ROWS: usize = 8192;
/// Slices a `by:` column may expand to before the test refuses it.
const MAX_SLICE_VALUES: usize = 200;

pub fn run(input: Run) -> Report {
    let started = Instant::now();
    let spec = input.spec;
    let mut runner = Runner {
        spec,
        input: &input,
        frames: HashMap::new(),
        views: HashMap::new(),
        predictions: HashMap::new(),
        records: Vec::new(),
    };
    let mut tests = Vec::new();
    for test in &spec.tests {
        let begun = Instant::now();
        let mut result = TestResult {
            id: test.id.clone(),
            kind: test.kind_name().to_string(),
            dataset: test.dataset.as_ref().map(|d| d.name.clone()),
            rows: None,
            seconds: 0.0,
            assertions: Vec::new(),
            details: Value::Null,
        };
        if let Err(message) = runner.run_test(test, &mut result) {
            result.assertions.push(Assertion {
                id: format!("{}/run", test.id),
                severity: test.severity,
                verdict: Verdict::Error,
                value: None,
                threshold: None,
                interval: None,
                message,
            });
        }
        result.seconds = begun.elapsed().as_secs_f64();
        tests.push(result);
    }
    let mut records = std::mem::take(&mut runner.records);
    records.sort_by(|a, b| a.name.cmp(&b.name));
    let mut report = Report {
        status: Status::Passed,
        model: input.candidate.name.clone(),
        baseline: input.baseline.as_ref().map(|b| b.name.clone()),
        baseline_note: input.baseline_note.clone(),
        spec_sha256: spec.sha256.clone(),
        datasets: records,
        tests,
        failed_checks: Vec::new(),
        gates: Vec::new(),
        gate_rules: spec.gates.clone(),
        seconds: started.elapsed().as_secs_f64(),
    };
    report.decide();
    report
}

/// Which model: the candidate or the baseline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    Candidate,
    Baseline,
}

struct Runner<'a> {
    spec: &'a Spec,
    input: &'a Run<'a>,
    frames: HashMap<String, Result<Arc<Frame>, String>>,
    views: HashMap<String, Arc<Frame>>,
    predictions: HashMap<(Who, String), Arc<Outcomes>>,
    records: Vec<DatasetRecord>,
}

fn assertion(test: &Test, what: &str, verdict: Verdict, message: String) -> Assertion {
    Assertion {
        id: format!("{}/{what}", test.id),
        severity: test.severity,
        verdict,
        value: None,
        threshold: None,
        interval: None,
        message,
    }
}

fn verdict(pass: bool) -> Verdict {
    if pass {
        Verdict::Passed
    } else {
        Verdict::Failed
    }
}

fn fmt(x: f64) -> String {
    if x.is_finite() && x.abs() >= 1e-3 && x.abs() < 1e6 {
        format!("{x:.4}")
    } else {
        format!("{x:.4e}")
    }
}

impl<'a> Runner<'a> {
    /// A named dataset, read once.
    fn frame(&mut self, name: &str) -> Result<Arc<Frame>, String> {
        if let Some(found) = self.frames.get(name) {
            return found.clone();
        }
        let loaded = self.load(name);
        self.frames.insert(name.to_string(), loaded.clone());
        loaded
    }

    fn load(&mut self, name: &str) -> Result<Arc<Frame>, String> {
        let source = self
            .spec
            .datasets
            .get(name)
            .ok_or_else(|| format!("the spec has no dataset '{name}'"))?;
        let (frame, source_text, sha256) = match source {
            DatasetSource::Uri(uri) => {
                let path = self.input.files.get(name).ok_or_else(|| {
                    format!("dataset '{name}' ({uri}) was not resolved to a file")
                })?;
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("dataset '{name}' ({uri}) cannot be read: {e}"))?;
                let sha = crate::sha256_hex(&bytes);
                drop(bytes);
                let frame = Frame::read(path)
                    .map_err(|e| format!("dataset '{name}' ({uri}) cannot be read: {e}"))?;
                (frame, uri.clone(), sha)
            }
            DatasetSource::Rows(rows) => {
                let text = serde_json::to_string(rows).unwrap_or_default();
                let frame = Frame::from_rows(rows).map_err(|e| format!("dataset '{name}': {e}"))?;
                (
                    frame,
                    "rows in the spec".to_string(),
                    crate::sha256_hex(text.as_bytes()),
                )
            }
            DatasetSource::Generate(generator) => {
                let frame = Frame::generate(generator, &self.spec.task.label);
                let text = format!("{generator:?}");
                (
                    frame,
                    format!("generated (seed {})", generator.seed),
                    crate::sha256_hex(text.as_bytes()),
                )
            }
        };
        self.records.push(DatasetRecord {
            name: name.to_string(),
            source: source_text,
            sha256,
            rows: frame.rows(),
        });
        Ok(Arc::new(frame))
    }

    /// A test's view of its dataset: filtered, then sampled.
    fn view(&mut self, dataset: &DatasetRef) -> Result<(String, Arc<Frame>), String> {
        let key = format!(
            "{}|{:?}|{:?}|{}",
            dataset.name, dataset.filter, dataset.sample, dataset.seed
        );
        if let Some(frame) = self.views.get(&key) {
            return Ok((key, frame.clone()));
        }
        let frame = self.frame(&dataset.name)?;
        let mut rows: Vec<usize> = (0..frame.rows()).collect();
        if let Some(filter) = &dataset.filter {
            let keep = filter
                .rows(&frame)
                .map_err(|e| format!("dataset '{}': {e}", dataset.name))?;
            rows.retain(|&i| keep[i]);
        }
        if let Some(k) = dataset.sample {
            let picked = Rng::new(dataset.seed).sample(rows.len(), k);
            rows = picked.into_iter().map(|p| rows[p]).collect();
        }
        let view = if rows.len() == frame.rows() {
            frame
        } else {
            Arc::new(frame.select(&rows))
        };
        self.views.insert(key.clone(), view.clone());
        Ok((key, view))
    }

    fn model(&self, who: Who) -> Option<&Subject<'a>> {
        match who {
            Who::Candidate => Some(&self.input.candidate),
            Who::Baseline => self.input.baseline.as_ref(),
        }
    }

    /// The model's answers on `frame` (cached under `key`).
    fn outcomes(&mut self, who: Who, key: &str, frame: &Frame) -> Result<Arc<Outcomes>, String> {
        if let Some(found) = self.predictions.get(&(who, key.to_string())) {
            return Ok(found.clone());
        }
        let subject = self.model(who).ok_or("no baseline model")?;
        let outputs = predict(
            subject.model,
            frame,
            &self.spec.task.label,
            self.input.threads,
        )
        .map_err(|e| format!("{} could not predict: {e}", subject.name))?;
        let outcomes = Arc::new(interpret(self.spec, frame, &outputs)?);
        self.predictions
            .insert((who, key.to_string()), outcomes.clone());
        Ok(outcomes)
    }

    fn run_test(&mut self, test: &Test, result: &mut TestResult) -> Result<(), String> {
        let view = match &test.dataset {
            Some(d) => Some(self.view(d)?),
            None => None,
        };
        if let Some((_, frame)) = &view {
            result.rows = Some(frame.rows());
            // A test that compares predictions with labels cannot run
            // without them: a misspelt `task.label` is an error, not a
            // failure on zero labelled rows.
            let needs_labels = matches!(
                test.kind,
                TestKind::Metric { .. }
                    | TestKind::SliceMetric { .. }
                    | TestKind::WeakSlices { .. }
                    | TestKind::Fairness { .. }
                    | TestKind::ExpectLabel { .. }
            );
            let label = &self.spec.task.label;
            if needs_labels && !frame.has(label) {
                return Err(format!(
                    "the dataset has no label column '{label}' (task.label; it has {})",
                    frame.names().join(", ")
                ));
            }
        }
        match &test.kind {
            TestKind::Metric {
                metric,
                min,
                max,
                vs_baseline,
            } => {
                let (key, frame) = view.expect("metric tests have a dataset");
                let outcomes = self.outcomes(Who::Candidate, &key, &frame)?;
                let rows = outcomes.labelled_rows(0..outcomes.rows());
                result.rows = Some(rows.len());
                let base = self.baseline_outcomes(vs_baseline.is_some(), &key, &frame)?;
                let group = Group {
                    name: None,
                    rows: &rows,
                };
                result.assertions.extend(self.judge(
                    test,
                    metric,
                    &outcomes,
                    base.as_deref(),
                    &group,
                    *min,
                    *max,
                    vs_baseline.as_ref(),
                    None,
                ));
            }
            TestKind::SliceMetric {
                metric,
                slices,
                min,
                max,
                max_gap_to_overall,
                vs_baseline,
            } => {
                let (key, frame) = view.expect("slice tests have a dataset");
                let outcomes = self.outcomes(Who::Candidate, &key, &frame)?;
                let base = self.baseline_outcomes(vs_baseline.is_some(), &key, &frame)?;
                let all = outcomes.labelled_rows(0..outcomes.rows());
                let overall = outcomes.evaluate(metric, &all, None);
                let mut table = Vec::new();
                for (name, members) in self.expand_slices(slices, &frame)? {
                    let rows = outcomes.labelled_rows(members.into_iter());
                    let group = Group {
                        name: Some(&name),
                        rows: &rows,
                    };
                    let gap = max_gap_to_overall.map(|g| (g, overall));
                    let assertions = self.judge(
                        test,
                        metric,
                        &outcomes,
                        base.as_deref(),
                        &group,
                        *min,
                        *max,
                        vs_baseline.as_ref(),
                        gap,
                    );
                    let value = outcomes.evaluate(metric, &rows, None);
                    table.push(json!({
                        "slice": name,
                        "rows": rows.len(),
                        "value": value,
                        "baseline": base.as_ref().and_then(|b| b.evaluate(metric, &b.labelled_rows(rows.iter().copied()), None)),
                        "passed": assertions.iter().all(|a| a.verdict != Verdict::Failed && a.verdict != Verdict::Error),
                    }));
                    result.assertions.extend(assertions);
                }
                result.details =
                    json!({ "metric": metric.name(), "overall": overall, "slices": table });
            }
            TestKind::WeakSlices {
                metric,
                features,
                max_gap_to_overall,
                bins,
                depth,
                min_support,
            } => {
                let (key, frame) = view.expect("weak-slice tests have a dataset");
                let outcomes = self.outcomes(Who::Candidate, &key, &frame)?;
                let all = outcomes.labelled_rows(0..outcomes.rows());
                result.rows = Some(all.len());
                let Some(overall) = outcomes.evaluate(metric, &all, None) else {
                    result.assertions.push(too_few(test, None, all.len()));
                    return Ok(());
                };
                let higher_is_better = metric.higher_is_better();
                let search = crate::segments::Search {
                    features,
                    bins: *bins,
                    depth: *depth,
                    min_support: *min_support,
                };
                let found = search.run(&frame, *max_gap_to_overall, |members| {
                    let rows = outcomes.labelled_rows(members.iter().copied());
                    // Support counts labelled rows, the ones the metric sees.
                    if rows.len() < *min_support {
                        return None;
                    }
                    let value = outcomes.evaluate(metric, &rows, None)?;
                    let shortfall = if higher_is_better {
                        overall - value
                    } else {
                        value - overall
                    };
                    Some((shortfall, value))
                })?;
                let mut table = Vec::new();
                for (segment, shortfall, value) in &found.weak {
                    let mut a = assertion(
                        test,
                        "gap_to_overall",
                        Verdict::Failed,
                        format!(
                            "{} {} on {} rows, {} {} than overall ({}); allowed gap {}",
                            metric.name(),
                            fmt(*value),
                            segment.rows.len(),
                            fmt(*shortfall),
                            if higher_is_better { "lower" } else { "higher" },
                            fmt(overall),
                            fmt(*max_gap_to_overall)
                        ),
                    );
                    a.id = format!("{}[{}]/gap_to_overall", test.id, segment.name);
                    a.value = Some(*value);
                    a.threshold = Some(format!("gap <= {max_gap_to_overall}"));
                    result.assertions.push(a);
                    table.push(json!({
                        "slice": segment.name,
                        "rows": segment.rows.len(),
                        "value": value,
                        "gap": shortfall,
                    }));
                }
                if found.weak.is_empty() {
                    result.assertions.push(assertion(
                        test,
                        "gap_to_overall",
                        Verdict::Passed,
                        format!(
                            "no segment of {} rows or more is more than {} {} overall ({}); {} segments judged",
                            min_support,
                            fmt(*max_gap_to_overall),
                            if higher_is_better { "below" } else { "above" },
                            fmt(overall),
                            found.judged
                        ),
                    ));
                }
                result.details = json!({
                    "metric": metric.name(),
                    "overall": overall,
                    "segments_judged": found.judged,
                    "weak_slices": table,
                });
            }
            TestKind::Fairness {
                sensitive_features,
                metrics,
                expect,
                min_group_rows,
            } => {
                let (key, frame) = view.expect("fairness tests have a dataset");
                let outcomes = self.outcomes(Who::Candidate, &key, &frame)?;
                self.fairness(
                    test,
                    &frame,
                    &outcomes,
                    sensitive_features,
                    metrics,
                    expect,
                    *min_group_rows,
                    result,
                )?;
            }
            TestKind::ExpectLabel { min_pass_rate } => {
                let (key, frame) = view.expect("expect_label tests have a dataset");
                let outcomes = self.outcomes(Who::Candidate, &key, &frame)?;
                let rows = outcomes.labelled_rows(0..outcomes.rows());
                result.rows = Some(rows.len());
                if rows.len() < test.min_rows.max(1) {
                    result.assertions.push(too_few(test, None, rows.len()));
                    return Ok(());
                }
                let mut failing = Vec::new();
                let mut passed = 0usize;
                for &i in &rows {
                    let ok = match outcomes.task {
                        TaskKind::Regression => false,
                        _ => outcomes.truth[i] == outcomes.predicted[i],
                    };
                    if ok {
                        passed += 1;
                    } else if failing.len() < 10 {
                        failing.push(json!({
                            "row": i,
                            "expected": outcomes.classes.get(outcomes.truth[i] as usize),
                            "predicted": outcomes.classes.get(outcomes.predicted[i] as usize),
                            "values": frame.row_json(i),
                        }));
                    }
                }
                result.assertions.push(pass_rate(
                    test,
                    passed,
                    rows.len(),
                    *min_pass_rate,
                    format!("{passed} of {} cases answered as expected", rows.len()),
                ));
                result.details = json!({ "failing_rows": failing });
            }
            TestKind::Invariance {
                perturb,
                max_abs_score_delta,
                max_label_flip_rate,
                min_pass_rate,
            } => {
                let (key, frame) = view.expect("invariance tests have a dataset");
                let (before, after) = self.perturbed_pair(&key, &frame, perturb)?;
                let n = before.rows();
                if n < test.min_rows.max(1) {
                    result.assertions.push(too_few(test, None, n));
                    return Ok(());
                }
                let (mut flips, mut passed, mut max_delta) = (0usize, 0usize, 0.0f64);
                let mut failing = Vec::new();
                for i in 0..n {
                    let flipped = before.predicted_label(i) != after.predicted_label(i);
                    let delta = match (before.score_of(i), after.score_of(i)) {
                        (Some(a), Some(b)) => (b - a).abs(),
                        _ => 0.0,
                    };
                    max_delta = max_delta.max(delta);
                    flips += usize::from(flipped);
                    let ok = !flipped && max_abs_score_delta.is_none_or(|m| delta <= m);
                    if ok {
                        passed += 1;
                    } else if failing.len() < 10 {
                        failing.push(json!({
                            "row": i,
                            "label_flipped": flipped,
                            "score_delta": delta,
                            "values": frame.row_json(i),
                        }));
                    }
                }
                result.assertions.push(pass_rate(
                    test,
                    passed,
                    n,
                    *min_pass_rate,
                    format!("{passed} of {n} rows kept their answer under the perturbation"),
                ));
                if let Some(limit) = max_label_flip_rate {
                    let flip_rate = flips as f64 / n as f64;
                    let mut a = assertion(
                        test,
                        "label_flip_rate",
                        verdict(flip_rate <= *limit),
                        format!(
                            "{flips} of {n} labels flipped ({}); allowed {}",
                            fmt(flip_rate),
                            fmt(*limit)
                        ),
                    );
                    a.value = Some(flip_rate);
                    a.threshold = Some(format!("<= {limit}"));
                    result.assertions.push(a);
                }
                result.details =
                    json!({ "max_abs_score_delta": max_delta, "failing_rows": failing });
            }
            TestKind::Directional {
                perturb,
                increasing,
                tolerance,
                min_pass_rate,
            } => {
                let (key, frame) = view.expect("directional tests have a dataset");
                let (before, after) = self.perturbed_pair(&key, &frame, perturb)?;
                let n = before.rows();
                if n < test.min_rows.max(1) {
                    result.assertions.push(too_few(test, None, n));
                    return Ok(());
                }
                let mut passed = 0usize;
                let mut failing = Vec::new();
                for i in 0..n {
                    let (Some(a), Some(b)) = (before.score_of(i), after.score_of(i)) else {
                        return Err("a directional test needs a score (a probability or a regression output)".into());
                    };
                    let change = b - a;
                    let ok = if *increasing {
                        change >= -tolerance
                    } else {
                        change <= *tolerance
                    };
                    if ok {
                        passed += 1;
                    } else if failing.len() < 10 {
                        failing.push(
                            json!({"row": i, "before": a, "after": b, "values": frame.row_json(i)}),
                        );
                    }
                }
                let direction = if *increasing {
                    "did not decrease"
                } else {
                    "did not increase"
                };
                result.assertions.push(pass_rate(
                    test,
                    passed,
                    n,
                    *min_pass_rate,
                    format!("the score {direction} on {passed} of {n} rows"),
                ));
                result.details = json!({ "failing_rows": failing });
            }
            TestKind::Expectations { expectations } => {
                let (_, frame) = view.expect("expectation tests have a dataset");
                let mut outcomes = Vec::new();
                for expectation in expectations {
                    let outcome = expectation.check(&frame, &self.spec.schema);
                    let (v, message) = match &outcome.error {
                        Some(e) => (Verdict::Error, e.clone()),
                        None if outcome.success => {
                            (Verdict::Passed, format!("observed {}", outcome.observed))
                        }
                        None => (
                            Verdict::Failed,
                            match outcome.unexpected_count {
                                Some(n) => format!(
                                    "{n} unexpected value(s), {} of the rows (mostly: {})",
                                    fmt(outcome.unexpected_share.unwrap_or(0.0)),
                                    expectation.mostly
                                ),
                                None => format!("observed {}", outcome.observed),
                            },
                        ),
                    };
                    let mut a = assertion(test, &expectation.label(), v, message);
                    a.value = outcome
                        .unexpected_share
                        .or_else(|| outcome.observed.as_f64());
                    result.assertions.push(a);
                    outcomes.push(outcome);
                }
                result.details = json!({ "expectations": outcomes });
            }
            TestKind::Budget {
                max_model_size_mb,
                max_latency_ms_p50,
                max_latency_ms_p99,
                calls,
            } => {
                if let Some(limit) = max_model_size_mb {
                    let subject = &self.input.candidate;
                    match subject.size_bytes {
                        Some(bytes) => {
                            let mb = bytes as f64 / 1e6;
                            let mut a = assertion(
                                test,
                                "model_size_mb",
                                verdict(mb <= *limit),
                                format!("{} MB; allowed {limit}", fmt(mb)),
                            );
                            a.value = Some(mb);
                            a.threshold = Some(format!("<= {limit}"));
                            result.assertions.push(a);
                        }
                        None => result.assertions.push(assertion(
                            test,
                            "model_size_mb",
                            Verdict::Error,
                            "the model's size is not known".into(),
                        )),
                    }
                }
                if max_latency_ms_p50.is_some() || max_latency_ms_p99.is_some() {
                    let (_, frame) = view.ok_or("a latency budget needs a dataset")?;
                    let latencies = self.latencies(&frame, *calls)?;
                    for (what, limit, q) in [
                        ("latency_ms_p50", max_latency_ms_p50, 0.5),
                        ("latency_ms_p99", max_latency_ms_p99, 0.99),
                    ] {
                        if let Some(limit) = limit {
                            let observed = percentile_sorted(&latencies, q * 100.0);
                            let mut a = assertion(
                                test,
                                what,
                                verdict(observed <= *limit),
                                format!(
                                    "{} ms over {} single-row calls; allowed {limit}",
                                    fmt(observed),
                                    latencies.len()
                                ),
                            );
                            a.value = Some(observed);
                            a.threshold = Some(format!("<= {limit}"));
                            result.assertions.push(a);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn baseline_outcomes(
        &mut self,
        wanted: bool,
        key: &str,
        frame: &Frame,
    ) -> Result<Option<Arc<Outcomes>>, String> {
        if !wanted || self.input.baseline.is_none() {
            return Ok(None);
        }
        self.outcomes(Who::Baseline, key, frame).map(Some)
    }

    fn perturbed_pair(
        &mut self,
        key: &str,
        frame: &Frame,
        perturb: &[(String, Perturbation)],
    ) -> Result<(Arc<Outcomes>, Arc<Outcomes>), String> {
        let before = self.outcomes(Who::Candidate, key, frame)?;
        let mut changed = frame.clone();
        for (column, perturbation) in perturb {
            changed = changed.perturbed(column, perturbation)?;
        }
        let changed_key = format!("{key}|{perturb:?}");
        let after = self.outcomes(Who::Candidate, &changed_key, &changed)?;
        Ok((before, after))
    }

    fn latencies(&self, frame: &Frame, calls: usize) -> Result<Vec<f64>, String> {
        let model = self.input.candidate.model;
        let declared: Vec<String> = model
            .declared_inputs()
            .into_iter()
            .map(|t| t.name)
            .collect();
        let n = frame.rows().min(calls.max(1));
        if n == 0 {
            return Err("the dataset has no rows to call the model with".into());
        }
        let mut latencies = Vec::with_capacity(n);
        for i in 0..n {
            let row = frame.select(&[i]);
            let inputs = row.tensors(&declared, &self.spec.task.label);
            let begun = Instant::now();
            model
                .predict(inputs, Layout::Columns)
                .map_err(|e| e.to_string())?;
            latencies.push(begun.elapsed().as_secs_f64() * 1e3);
        }
        latencies.sort_by(f64::total_cmp);
        Ok(latencies)
    }

    fn expand_slices(
        &self,
        slices: &[Slice],
        frame: &Frame,
    ) -> Result<Vec<(String, Vec<usize>)>, String> {
        let mut out = Vec::new();
        for slice in slices {
            match slice {
                Slice::By(column) => {
                    let values = frame.column(column)?;
                    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
                    if let Some(listed) =
                        self.spec.schema.get(column).and_then(|f| f.values.as_ref())
                    {
                        for v in listed {
                            if let Some(c) = Scalar::from_json(v).canonical() {
                                groups.entry(c).or_default();
                            }
                        }
                    }
                    for i in 0..frame.rows() {
                        if let Some(c) = values.scalar(i).canonical() {
                            groups.entry(c).or_default().push(i);
                        }
                    }
                    if groups.len() > MAX_SLICE_VALUES {
                        return Err(format!(
                            "slicing by '{column}' makes {} slices (at most {MAX_SLICE_VALUES}); slice it with `where` instead",
                            groups.len()
                        ));
                    }
                    for (value, rows) in groups {
                        out.push((format!("{column}={value}"), rows));
                    }
                }
                Slice::Where { name, filter } => {
                    let keep = filter.rows(frame)?;
                    out.push((
                        name.clone(),
                        (0..frame.rows()).filter(|&i| keep[i]).collect(),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// The assertions of one metric on one group of rows: bounds, the gap
    /// to the overall value, and the comparison with the baseline.
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &self,
        test: &Test,
        metric: &Metric,
        outcomes: &Outcomes,
        base: Option<&Outcomes>,
        group: &Group,
        min: Option<Bound>,
        max: Option<Bound>,
        vs: Option<&VsBaseline>,
        gap: Option<(f64, Option<f64>)>,
    ) -> Vec<Assertion> {
        let id = |what: &str| match group.name {
            Some(slice) => format!("{}[{slice}]/{what}", test.id),
            None => format!("{}/{what}", test.id),
        };
        let mut out = Vec::new();
        let mut make = |what: &str,
                        verdict: Verdict,
                        value: Option<f64>,
                        threshold: Option<String>,
                        interval: Option<[f64; 2]>,
                        message: String| {
            out.push(Assertion {
                id: id(what),
                severity: test.severity,
                verdict,
                value,
                threshold,
                interval,
                message,
            });
        };
        let rows = group.rows;
        if rows.len() < test.min_rows.max(1) {
            make(
                "min_rows",
                Verdict::Failed,
                Some(rows.len() as f64),
                Some(format!(">= {}", test.min_rows.max(1))),
                None,
                format!(
                    "{} labelled rows; the test needs at least {}",
                    rows.len(),
                    test.min_rows.max(1)
                ),
            );
            return out;
        }
        let name = metric.name();
        let Some(value) = outcomes.evaluate(metric, rows, None) else {
            make(
                "value",
                Verdict::Error,
                None,
                None,
                None,
                format!(
                    "{name} is undefined on these {} rows (one class only, or no score)",
                    rows.len()
                ),
            );
            return out;
        };
        let interval = |seed_offset: u64| {
            bootstrap_interval(
                &test.bootstrap,
                seed_offset,
                rows.len(),
                self.input.threads,
                |w| outcomes.evaluate(metric, rows, Some(w)),
            )
        };
        for (what, bound, is_min) in [("min", min, true), ("max", max, false)] {
            let Some(bound) = bound else { continue };
            let symbol = if is_min { ">=" } else { "<=" };
            if bound.bootstrap {
                // Fail only when the whole interval is on the wrong side.
                match interval(1) {
                    Some([lo, hi]) => {
                        let pass = if is_min {
                            hi >= bound.value
                        } else {
                            lo <= bound.value
                        };
                        make(what, verdict(pass), Some(value), Some(format!("{symbol} {} (bootstrap)", bound.value)), Some([lo, hi]),
                            format!("{name} = {} (CI {}..{}); needs {symbol} {} unless the interval reaches it", fmt(value), fmt(lo), fmt(hi), bound.value));
                    }
                    None => make(
                        what,
                        Verdict::Error,
                        Some(value),
                        None,
                        None,
                        format!("{name}'s bootstrap interval is undefined"),
                    ),
                }
            } else {
                let pass = if is_min {
                    value >= bound.value
                } else {
                    value <= bound.value
                };
                make(
                    what,
                    verdict(pass),
                    Some(value),
                    Some(format!("{symbol} {}", bound.value)),
                    None,
                    format!("{name} = {}; needs {symbol} {}", fmt(value), bound.value),
                );
            }
        }
        if let Some((max_gap, Some(overall))) = gap {
            let shortfall = if metric.higher_is_better() {
                overall - value
            } else {
                value - overall
            };
            make(
                "gap",
                verdict(shortfall <= max_gap),
                Some(shortfall),
                Some(format!("<= {max_gap}")),
                None,
                format!(
                    "{name} = {} against {} overall: {} worse; allowed {max_gap}",
                    fmt(value),
                    fmt(overall),
                    fmt(shortfall)
                ),
            );
        }
        if let Some(vs) = vs {
            let Some(base) = base else {
                make(
                    "vs_baseline",
                    Verdict::Skipped,
                    Some(value),
                    None,
                    None,
                    self.input
                        .baseline_note
                        .clone()
                        .unwrap_or_else(|| "no baseline model to compare with".into()),
                );
                return out;
            };
            // The same rows for both: the candidate's labelled rows, in the
            // baseline's score order for its ordered metrics.
            let base_rows = base.labelled_rows(rows.iter().copied());
            let Some(base_value) = base.evaluate(metric, &base_rows, None) else {
                make(
                    "vs_baseline",
                    Verdict::Error,
                    Some(value),
                    None,
                    None,
                    format!("{name} of the baseline is undefined on these rows"),
                );
                return out;
            };
            let better = |cand: f64, base: f64| {
                if metric.higher_is_better() {
                    cand - base
                } else {
                    base - cand
                }
            };
            let gain = better(value, base_value);
            let mut required = f64::NEG_INFINITY;
            let mut parts = Vec::new();
            if let Some(drop) = vs.max_drop {
                required = required.max(-drop);
                parts.push(format!("no worse by more than {drop}"));
            }
            if let Some(abs) = vs.min_gain_abs {
                required = required.max(abs);
                parts.push(format!("better by at least {abs}"));
            }
            if let Some(rel) = vs.min_gain_rel {
                required = required.max(rel * base_value.abs());
                parts.push(format!("better by at least {rel} of the baseline"));
            }
            let threshold = Some(format!("improvement >= {}", fmt(required)));
            if vs.significance.is_some() {
                // Paired bootstrap: both models on the same resampled rows.
                let index_in_base: HashMap<usize, usize> =
                    base_rows.iter().enumerate().map(|(k, &i)| (i, k)).collect();
                let ci =
                    bootstrap_interval(&test.bootstrap, 2, rows.len(), self.input.threads, |w| {
                        let mut base_w = vec![0u32; base_rows.len()];
                        for (k, &i) in rows.iter().enumerate() {
                            base_w[index_in_base[&i]] = w[k];
                        }
                        Some(better(
                            outcomes.evaluate(metric, rows, Some(w))?,
                            base.evaluate(metric, &base_rows, Some(&base_w))?,
                        ))
                    });
                match ci {
                    Some([lo, hi]) => make("vs_baseline", verdict(hi >= required), Some(gain), threshold, Some([lo, hi]),
                        format!("{name} {} against the baseline's {} (change {}, CI {}..{}); must be {}", fmt(value), fmt(base_value), fmt(gain), fmt(lo), fmt(hi), parts.join(", "))),
                    None => make("vs_baseline", Verdict::Error, Some(gain), threshold, None, "the paired bootstrap interval is undefined".into()),
                }
            } else {
                make(
                    "vs_baseline",
                    verdict(gain >= required),
                    Some(gain),
                    threshold,
                    None,
                    format!(
                        "{name} {} against the baseline's {} (change {}); must be {}",
                        fmt(value),
                        fmt(base_value),
                        fmt(gain),
                        parts.join(", ")
                    ),
                );
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn fairness(
        &self,
        test: &Test,
        frame: &Frame,
        outcomes: &Outcomes,
        features: &[String],
        metrics: &[Metric],
        expect: &BTreeMap<String, crate::spec::MinMax>,
        min_group_rows: usize,
        result: &mut TestResult,
    ) -> Result<(), String> {
        let columns = features
            .iter()
            .map(|f| frame.column(f))
            .collect::<Result<Vec<_>, _>>()?;
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for i in 0..frame.rows() {
            let key = features
                .iter()
                .zip(&columns)
                .map(|(f, c)| {
                    format!(
                        "{f}={}",
                        c.scalar(i).canonical().unwrap_or_else(|| "null".into())
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            groups.entry(key).or_default().push(i);
        }
        let all = outcomes.labelled_rows(0..outcomes.rows());
        if all.len() < test.min_rows.max(1) {
            result.assertions.push(too_few(test, None, all.len()));
            return Ok(());
        }
        let mut kept: Vec<(String, Vec<usize>)> = Vec::new();
        let mut excluded = Vec::new();
        for (name, members) in groups {
            let rows = outcomes.labelled_rows(members.into_iter());
            if rows.len() < min_group_rows.max(1) {
                excluded.push(json!({"group": name, "rows": rows.len()}));
            } else {
                kept.push((name, rows));
            }
        }
        let measures: Vec<(String, Measure)> = expect
            .keys()
            .map(|k| Measure::parse(k, metrics).map(|m| (k.clone(), m)))
            .collect::<Result<_, _>>()?;
        let mut needed: Vec<Metric> = metrics.to_vec();
        for (_, m) in &measures {
            for metric in m.reads() {
                if !needed.contains(&metric) {
                    needed.push(metric);
                }
            }
        }
        let values = |metric: &Metric| -> (Option<f64>, Vec<Option<f64>>) {
            let overall = outcomes.evaluate(metric, &all, None);
            let groups = kept
                .iter()
                .map(|(_, rows)| outcomes.evaluate(metric, rows, None))
                .collect();
            (overall, groups)
        };
        let by_group: Vec<Value> = kept
            .iter()
            .map(|(name, rows)| {
                let mut entry = serde_json::Map::new();
                entry.insert("group".into(), json!(name));
                entry.insert("rows".into(), json!(rows.len()));
                for metric in &needed {
                    entry.insert(metric.name(), json!(outcomes.evaluate(metric, rows, None)));
                }
                Value::Object(entry)
            })
            .collect();
        let overall: serde_json::Map<String, Value> = needed
            .iter()
            .map(|m| (m.name(), json!(outcomes.evaluate(m, &all, None))))
            .collect();
        let mut measured = serde_json::Map::new();
        // Where each labelled row sits in `all`, so a resample's weights
        // (over `all`) can be read per group.
        let mut position = vec![usize::MAX; outcomes.rows()];
        for (k, &i) in all.iter().enumerate() {
            position[i] = k;
        }
        for (index, (key, measure)) in measures.iter().enumerate() {
            let value = measure.value(&values);
            measured.insert(key.clone(), json!(value));
            let bound = expect[key];
            let Some(value) = value else {
                result.assertions.push(assertion(
                    test,
                    key,
                    Verdict::Error,
                    format!("{key} is undefined (no group has a value)"),
                ));
                continue;
            };
            // fairlearn's MetricFrame(n_boot=…): the measure recomputed on
            // resamples of every labelled row, groups found in each.
            let interval = bootstrap_interval(
                &test.bootstrap,
                16 + index as u64,
                all.len(),
                self.input.threads,
                |w| {
                    let weighted = |metric: &Metric| -> (Option<f64>, Vec<Option<f64>>) {
                        let overall = outcomes.evaluate(metric, &all, Some(w));
                        let groups = kept
                            .iter()
                            .map(|(_, rows)| {
                                let group_weights: Vec<u32> =
                                    rows.iter().map(|&i| w[position[i]]).collect();
                                outcomes.evaluate(metric, rows, Some(&group_weights))
                            })
                            .collect();
                        (overall, groups)
                    };
                    measure.value(&weighted)
                },
            );
            let pass = match (bound.significance, interval) {
                (Some(_), Some([lo, hi])) => {
                    bound.min.is_none_or(|m| hi >= m) && bound.max.is_none_or(|m| lo <= m)
                }
                _ => bound.min.is_none_or(|m| value >= m) && bound.max.is_none_or(|m| value <= m),
            };
            let mut threshold = match (bound.min, bound.max) {
                (Some(lo), Some(hi)) => format!("within [{lo}, {hi}]"),
                (Some(lo), None) => format!(">= {lo}"),
                (None, Some(hi)) => format!("<= {hi}"),
                (None, None) => "any".into(),
            };
            if bound.significance.is_some() {
                threshold.push_str(" (bootstrap)");
            }
            let ci = interval.map_or_else(String::new, |[lo, hi]| {
                format!(" (CI {}..{})", fmt(lo), fmt(hi))
            });
            let mut a = assertion(
                test,
                key,
                verdict(pass),
                format!(
                    "{key} = {}{ci} across {} groups; needs {threshold}",
                    fmt(value),
                    kept.len()
                ),
            );
            a.value = Some(value);
            a.threshold = Some(threshold);
            a.interval = interval;
            result.assertions.push(a);
        }
        result.details = json!({
            "sensitive_features": features,
            "overall": overall,
            "by_group": by_group,
            "measures": measured,
            "excluded_groups": excluded,
        });
        Ok(())
    }
}

struct Group<'r> {
    name: Option<&'r str>,
    rows: &'r [usize],
}

/// A behavioural test's share of passing rows against its minimum.
fn pass_rate(
    test: &Test,
    passed: usize,
    rows: usize,
    min_pass_rate: f64,
    what: String,
) -> Assertion {
    let rate = passed as f64 / rows as f64;
    let mut a = assertion(
        test,
        "pass_rate",
        verdict(rate >= min_pass_rate),
        format!("{what} ({}); needs {}", fmt(rate), fmt(min_pass_rate)),
    );
    a.value = Some(rate);
    a.threshold = Some(format!(">= {min_pass_rate}"));
    a
}

fn too_few(test: &Test, slice: Option<&str>, rows: usize) -> Assertion {
    let mut a = assertion(
        test,
        "min_rows",
        Verdict::Failed,
        format!(
            "{rows} rows; the test needs at least {}",
            test.min_rows.max(1)
        ),
    );
    if let Some(slice) = slice {
        a.id = format!("{}[{slice}]/min_rows", test.id);
    }
    a.value = Some(rows as f64);
    a
}

/// Percentile of sorted values with numpy's default linear interpolation.
fn percentile_sorted(sorted: &[f64], percent: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = percent / 100.0 * (sorted.len() - 1) as f64;
    let lower = position.floor() as usize;
    let upper = position.ceil() as usize;
    sorted[lower] + (sorted[upper] - sorted[lower]) * (position - lower as f64)
}

/// The percentile bootstrap interval of `statistic` (Efron and Tibshirani,
/// *An Introduction to the Bootstrap*, 1993, §13.3): `resamples` draws of
/// `n` rows with replacement, each passed as per-row counts; the interval
/// is the (1 − c)/2 and (1 + c)/2 percentiles of the values. Resample b
/// draws from its own generator seeded by (seed, offset, b), so the
/// interval does not depend on how many threads computed it.
fn bootstrap_interval(
    settings: &Bootstrap,
    offset: u64,
    n: usize,
    threads: usize,
    statistic: impl Fn(&[u32]) -> Option<f64> + Sync,
) -> Option<[f64; 2]> {
    if n == 0 {
        return None;
    }
    let resamples = settings.resamples;
    let threads = threads.clamp(1, resamples);
    let per_thread = resamples.div_ceil(threads);
    let mut values: Vec<f64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let statistic = &statistic;
                scope.spawn(move || {
                    let mut counts = vec![0u32; n];
                    let mut out = Vec::with_capacity(per_thread);
                    for b in (t * per_thread)..((t + 1) * per_thread).min(resamples) {
                        counts.iter_mut().for_each(|c| *c = 0);
                        let seed = settings
                            .seed
                            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                            .wrapping_add(offset << 32)
                            .wrapping_add(b as u64);
                        let mut rng = Rng::new(seed);
                        for _ in 0..n {
                            counts[rng.below(n as u64) as usize] += 1;
                        }
                        if let Some(v) = statistic(&counts) {
                            out.push(v);
                        }
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    // Resamples where the statistic is undefined (one class drawn) are left
    // out; too many of them and there is no interval.
    if values.len() < resamples / 2 {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let alpha = (1.0 - settings.confidence) / 2.0;
    Some([
        percentile_sorted(&values, alpha * 100.0),
        percentile_sorted(&values, (1.0 - alpha) * 100.0),
    ])
}

/// Predicts `frame` in chunks on `threads` threads and joins the outputs.
fn predict(
    model: &Model,
    frame: &Frame,
    label: &str,
    threads: usize,
) -> Result<Vec<NamedTensor>, String> {
    let declared: Vec<String> = model
        .declared_inputs()
        .into_iter()
        .map(|t| t.name)
        .collect();
    let rows = frame.rows();
    if rows == 0 {
        return Err("the dataset has no rows".into());
    }
    let chunks: Vec<(usize, usize)> = (0..rows)
        .step_by(CHUNK_ROWS)
        .map(|start| (start, (start + CHUNK_ROWS).min(rows)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Result<Vec<NamedTensor>, String>>>> =
        std::sync::Mutex::new((0..chunks.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, chunks.len()) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(start, end)) = chunks.get(index) else {
                    break;
                };
                let part = frame.select(&(start..end).collect::<Vec<_>>());
                let inputs = part.tensors(&declared, label);
                let result = model
                    .predict(inputs, Layout::Columns)
                    .map_err(|e| format!("rows {start}..{end}: {e}"));
                if let Ok(mut slots) = results.lock() {
                    slots[index] = Some(result);
                }
            });
        }
    });
    let mut joined: Vec<NamedTensor> = Vec::new();
    for result in results
        .into_inner()
        .map_err(|_| "a prediction thread panicked")?
    {
        let outputs = result.ok_or("a chunk was not predicted")??;
        if joined.is_empty() {
            joined = outputs;
            continue;
        }
        for (all, part) in joined.iter_mut().zip(outputs) {
            if !all.tensor.append(part.tensor) {
                return Err("the model returned different types for different chunks".into());
            }
        }
    }
    Ok(joined)
}

fn cell_label(data: &TensorData, i: usize) -> Option<String> {
    match data {
        TensorData::Bool(v) => Scalar::Bool(v[i]).canonical(),
        TensorData::I64(v) => Some(v[i].to_string()),
        TensorData::F32(v) => Scalar::Number(f64::from(v[i])).canonical(),
        TensorData::F64(v) => Scalar::Number(v[i]).canonical(),
        TensorData::Str(v) => Scalar::Text(v[i].clone()).canonical(),
    }
}

const PROBABILITY_OUTPUTS: &[&str] = &["predict_proba", "probabilities", "probability", "proba"];

/// Joins a model's outputs with the labels: which output is the label,
/// which column of the probabilities is the positive class (found from the
/// model's own answers: the column whose largest value goes with the
/// positive label), or the regression value.
fn interpret(spec: &Spec, frame: &Frame, outputs: &[NamedTensor]) -> Result<Outcomes, String> {
    let task = &spec.task;
    let rows = frame.rows();
    let truth_column = frame.column(&task.label).ok();
    let (score_output, score_column) = match &task.score {
        Some(text) => match text.split_once('[') {
            Some((name, rest)) => (
                Some(name.to_string()),
                Some(rest.trim_end_matches(']').to_string()),
            ),
            None => (Some(text.clone()), None),
        },
        None => (None, None),
    };
    let is_probability = |o: &NamedTensor| {
        let named = match &score_output {
            Some(name) => {
                o.name == *name
                    || (name == "proba" && PROBABILITY_OUTPUTS.contains(&o.name.as_str()))
            }
            None => PROBABILITY_OUTPUTS.contains(&o.name.as_str()),
        };
        named && o.tensor.shape.len() == 2
    };
    let probabilities = outputs.iter().find(|o| is_probability(o));
    let label_output = outputs
        .iter()
        .find(|o| o.tensor.shape.len() <= 1 || o.tensor.row_width() == 1)
        .filter(|o| !PROBABILITY_OUTPUTS.contains(&o.name.as_str()));
    if task.kind == TaskKind::Regression {
        let output = match &score_output {
            Some(name) => outputs
                .iter()
                .find(|o| o.name == *name)
                .ok_or_else(|| format!("the model has no output '{name}'"))?,
            None => label_output
                .ok_or("the model returned no single-column output to read as the prediction")?,
        };
        let yhat: Vec<f64> = (0..rows)
            .map(|i| {
                output
                    .tensor
                    .data
                    .get_f64(i * output.tensor.row_width().max(1))
                    .unwrap_or(f64::NAN)
            })
            .collect();
        let y: Vec<f64> = (0..rows)
            .map(|i| {
                truth_column
                    .and_then(|c| c.scalar(i).as_f64())
                    .unwrap_or(f64::NAN)
            })
            .collect();
        return Ok(Outcomes {
            task: task.kind,
            truth: Vec::new(),
            predicted: Vec::new(),
            classes: Vec::new(),
            positive: 0,
            score: None,
            threshold: None,
            y,
            yhat,
        });
    }
    // Predicted labels: the label output, else the probabilities' argmax
    // (named by position).
    let width = probabilities.map_or(0, |p| p.tensor.row_width());
    let probability = |i: usize, k: usize| {
        probabilities
            .and_then(|p| p.tensor.data.get_f64(i * width + k))
            .unwrap_or(f64::NAN)
    };
    let argmax = |i: usize| {
        (0..width)
            .max_by(|&a, &b| probability(i, a).total_cmp(&probability(i, b)))
            .unwrap_or(0)
    };
    let predicted_labels: Vec<String> = match label_output {
        Some(output) => (0..rows)
            .map(|i| cell_label(&output.tensor.data, i).unwrap_or_default())
            .collect(),
        None if probabilities.is_some() => (0..rows).map(|i| argmax(i).to_string()).collect(),
        None => return Err("the model returned neither labels nor probabilities".into()),
    };
    let truth_labels: Vec<Option<String>> = (0..rows)
        .map(|i| truth_column.and_then(|c| c.scalar(i).canonical()))
        .collect();
    let mut classes: Vec<String> = truth_labels
        .iter()
        .flatten()
        .cloned()
        .chain(predicted_labels.iter().cloned())
        .collect();
    let positive_label = task
        .positive_class
        .as_ref()
        .and_then(|v| Scalar::from_json(v).canonical())
        .unwrap_or_else(|| "1".into());
    if task.kind == TaskKind::BinaryClassification {
        classes.push(positive_label.clone());
    }
    classes.sort();
    classes.dedup();
    let index: HashMap<&str, u32> = classes
        .iter()
        .enumerate()
        .map(|(k, c)| (c.as_str(), k as u32))
        .collect();
    let truth: Vec<u32> = truth_labels
        .iter()
        .map(|t| t.as_deref().map_or(MISSING, |t| index[t]))
        .collect();
    let predicted: Vec<u32> = predicted_labels.iter().map(|p| index[p.as_str()]).collect();
    let positive = index[positive_label.as_str()];
    let score = match (task.kind, probabilities) {
        (TaskKind::BinaryClassification, Some(_)) => {
            let column = match &score_column {
                Some(text) => match text.parse::<usize>() {
                    Ok(k) if k < width && label_output.is_none() => k,
                    _ => positive_column(&predicted_labels, &argmax, rows, width, text)
                        .or_else(|| text.parse::<usize>().ok().filter(|&k| k < width))
                        .ok_or_else(|| {
                            format!("no probability column of the model goes with class '{text}'")
                        })?,
                },
                None => positive_column(&predicted_labels, &argmax, rows, width, &positive_label)
                    .unwrap_or(width.saturating_sub(1)),
            };
            Some((0..rows).map(|i| probability(i, column)).collect())
        }
        _ => None,
    };
    if task.decision_threshold.is_some() && score.is_none() {
        return Err(
            "task.decision_threshold needs a probability output, and the model has none".into(),
        );
    }
    Ok(Outcomes {
        task: task.kind,
        truth,
        predicted,
        classes,
        positive,
        score,
        threshold: task.decision_threshold,
        y: Vec::new(),
        yhat: Vec::new(),
    })
}

/// The probability column whose argmax rows the model labels `label` most
/// often.
fn positive_column(
    predicted: &[String],
    argmax: &dyn Fn(usize) -> usize,
    rows: usize,
    width: usize,
    label: &str,
) -> Option<usize> {
    let wanted = Scalar::Text(label.to_string()).canonical()?;
    let mut votes = vec![0usize; width];
    for i in 0..rows {
        if predicted[i] == wanted {
            votes[argmax(i)] += 1;
        }
    }
    let (best, count) = votes.iter().enumerate().max_by_key(|(_, v)| **v)?;
    (*count > 0).then_some(best)
}

impl Outcomes {
    /// The answer a row got, for flip counting.
    fn predicted_label(&self, i: usize) -> Option<u32> {
        match self.task {
            TaskKind::Regression => None,
            TaskKind::BinaryClassification => Some(u32::from(self.predicted_positive(i))),
            TaskKind::MulticlassClassification => Some(self.predicted[i]),
        }
    }
}
