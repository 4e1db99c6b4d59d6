//! Integration tests: specs parsed (and refused with their line and field),
//! and specs run against a small model on generated tables. Parity of the
//! figures with scikit-learn and fairlearn, and real pipelines, are in
//! `tests/e2e/test_quality_gates.py`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use sextant_serve::{
    DataType, Model, ModelRuntime, NamedTensor, RuntimeInfo, Tensor, TensorData, TensorSpec,
};
use sextant_validate::{run, Report, Run, Spec, Status, Subject, Verdict};

/// A logistic score of `x`, plus `region_shift` when `region` is "b": a
/// model that treats two regions differently exactly when the shift is not 0.
struct ScoreModel {
    info: RuntimeInfo,
    region_shift: f64,
}

impl ScoreModel {
    fn new(region_shift: f64) -> Model {
        let runtime = ScoreModel {
            info: RuntimeInfo {
                engine: "test-logistic",
                inputs: vec![
                    TensorSpec::new("x", DataType::F64, vec![-1]),
                    TensorSpec::new("region", DataType::Bytes, vec![-1]),
                ],
                outputs: vec![
                    TensorSpec::new("predict", DataType::I64, vec![-1]),
                    TensorSpec::new("predict_proba", DataType::F64, vec![-1, 2]),
                ],
                feature_names: None,
                accepts_any_inputs: true,
            },
            region_shift,
        };
        Model::new(Arc::new(runtime), None)
    }
}

impl ModelRuntime for ScoreModel {
    fn info(&self) -> &RuntimeInfo {
        &self.info
    }

    fn predict(&self, inputs: &[NamedTensor]) -> sextant_serve::Result<Vec<NamedTensor>> {
        let column = |name: &str| {
            inputs
                .iter()
                .find(|t| t.name == name)
                .map(|t| &t.tensor.data)
        };
        let rows = inputs[0].tensor.rows();
        let mut labels = Vec::with_capacity(rows);
        let mut proba = Vec::with_capacity(rows * 2);
        for i in 0..rows {
            let x = column("x").and_then(|d| d.get_f64(i)).unwrap_or(0.0);
            let shift = match column("region") {
                Some(TensorData::Str(r)) if r[i] == "b" => self.region_shift,
                _ => 0.0,
            };
            let p = 1.0 / (1.0 + (-(x + shift)).exp());
            labels.push(i64::from(p >= 0.5));
            proba.push(1.0 - p);
            proba.push(p);
        }
        Ok(vec![
            NamedTensor::new("predict", Tensor::column(TensorData::I64(labels))),
            NamedTensor::new("predict_proba", Tensor::f64_matrix(rows, 2, proba)),
        ])
    }
}

/// A CSV where y = 1 mostly when x > 0, regions a and b alike.
fn table(dir: &std::path::Path, rows: usize) -> PathBuf {
    let mut text = String::from("x,region,y\n");
    let mut state = 12345u64;
    for i in 0..rows {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let noise = ((state >> 33) as f64 / (1u64 << 31) as f64) - 0.5;
        let x = (i as f64 / rows as f64) * 8.0 - 4.0;
        let y = u8::from(x + 2.0 * noise > 0.0);
        let region = if i % 2 == 0 { "a" } else { "b" };
        text.push_str(&format!("{x},{region},{y}\n"));
    }
    let path = dir.join("test.csv");
    std::fs::write(&path, text).unwrap();
    path
}

fn validate(spec: &str, model: &Model, baseline: Option<&Model>, rows: usize) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let path = table(dir.path(), rows);
    let spec = Spec::parse(spec).unwrap();
    let mut files = BTreeMap::new();
    for (name, _) in spec.uris() {
        files.insert(name.to_string(), path.clone());
    }
    run(Run {
        spec: &spec,
        candidate: Subject {
            name: "candidate".into(),
            model,
            size_bytes: Some(2_000_000),
        },
        baseline: baseline.map(|model| Subject {
            name: "baseline".into(),
            model,
            size_bytes: None,
        }),
        baseline_note: None,
        files,
        threads: 2,
    })
}

fn verdicts(report: &Report) -> BTreeMap<String, Verdict> {
    report
        .assertions()
        .map(|a| (a.id.clone(), a.verdict))
        .collect()
}

const SPEC: &str = r#"
task: {type: binary_classification, label: y}
datasets: {test: {uri: test.csv}}
defaults: {bootstrap: {resamples: 200, seed: 1}}
tests:
  - {id: auc, kind: metric, dataset: test, metric: roc_auc, min: 0.8, vs_baseline: {max_drop: 0.01}}
  - {id: regions, kind: slice_metric, dataset: test, metric: accuracy, slices: [{by: region}], max_gap_to_overall: 0.05, min_rows: 10}
  - id: same_regions
    kind: invariance
    dataset: test
    perturb: {region: {swap: [a, b]}}
    expect: {max_abs_score_delta: 0.01, min_pass_rate: 0.99}
  - {id: rising, kind: directional, dataset: test, perturb: {x: {add: 1}}, expect: {score: non_decreasing}}
  - {id: size, kind: budget, max_model_size_mb: 1, severity: warning}
gates:
  - {to: staging, require: {exclude: ["*/vs_baseline"]}}
"#;

#[test]
fn a_sound_model_passes_and_a_region_sensitive_one_fails_by_name() {
    let sound = ScoreModel::new(0.0);
    let report = validate(SPEC, &sound, None, 2000);
    assert_eq!(report.status, Status::Passed, "{:#?}", report.failed_checks);
    let v = verdicts(&report);
    assert_eq!(
        v["auc/vs_baseline"],
        Verdict::Skipped,
        "no baseline: skipped, never passed"
    );
    assert_eq!(v["same_regions/pass_rate"], Verdict::Passed);
    assert_eq!(v["rising/pass_rate"], Verdict::Passed);
    // A warning fails without blocking.
    assert_eq!(v["size/model_size_mb"], Verdict::Failed);
    assert!(report.failed_checks.is_empty());

    let sensitive = ScoreModel::new(1.5);
    let report = validate(SPEC, &sensitive, Some(&sound), 2000);
    assert_eq!(report.status, Status::Failed);
    let v = verdicts(&report);
    assert_eq!(v["same_regions/pass_rate"], Verdict::Failed);
    let change = report
        .assertions()
        .find(|a| a.id == "auc/vs_baseline")
        .unwrap();
    assert_eq!(change.verdict, Verdict::Failed, "{change:?}");
    // The staging gate ignores the comparison; an unnamed target counts everything.
    assert!(!report
        .blocking_for("staging")
        .contains(&"auc/vs_baseline".to_string()));
    assert!(report
        .blocking_for("@champion")
        .contains(&"auc/vs_baseline".to_string()));
    assert!(report
        .blocking_for("staging")
        .contains(&"same_regions/pass_rate".to_string()));
}

#[test]
fn results_are_the_same_run_after_run() {
    let model = ScoreModel::new(0.3);
    let spec = r#"
task: {type: binary_classification, label: y}
datasets: {test: {uri: test.csv}}
tests:
  - {id: auc, kind: metric, dataset: test, metric: roc_auc, min: {value: 0.99, significance: bootstrap}, bootstrap: {resamples: 300, seed: 9}}
  - {id: sample, kind: expect_label, dataset: {ref: test, sample: 50, seed: 4}, min_pass_rate: 0.0}
"#;
    let a = validate(spec, &model, None, 3000);
    let b = validate(spec, &model, None, 3000);
    let interval = |r: &Report| {
        r.assertions()
            .find(|a| a.id == "auc/min")
            .unwrap()
            .interval
            .unwrap()
    };
    assert_eq!(interval(&a), interval(&b));
    let [lo, hi] = interval(&a);
    let value = a
        .assertions()
        .find(|a| a.id == "auc/min")
        .unwrap()
        .value
        .unwrap();
    assert!(lo < value && value < hi, "{lo} {value} {hi}");
    assert_eq!(a.tests[1].rows, Some(50));
}

#[test]
fn too_few_rows_fail_never_pass() {
    let model = ScoreModel::new(0.0);
    let spec = r#"
task: {type: binary_classification, label: y}
datasets: {test: {uri: test.csv}}
tests:
  - {id: small, kind: metric, dataset: {ref: test, where: {x: {gt: 3.99}}}, metric: accuracy, min: 0.5, min_rows: 100}
"#;
    let report = validate(spec, &model, None, 1000);
    assert_eq!(verdicts(&report)["small/min_rows"], Verdict::Failed);
}

#[test]
fn a_model_error_is_an_error_not_a_failure() {
    let model = ScoreModel::new(0.0);
    let spec = r#"
task: {type: binary_classification, label: y}
datasets: {test: {uri: test.csv}}
tests:
  - {id: perturb, kind: invariance, dataset: test, perturb: {missing_column: {set: 1}}, expect: {min_pass_rate: 1}}
"#;
    let report = validate(spec, &model, None, 100);
    assert_eq!(report.status, Status::Error);
    assert!(report
        .assertions()
        .next()
        .unwrap()
        .message
        .contains("missing_column"));
}

/// (spec, line, field, words in the message)
const BAD_SPECS: &[(&str, usize, &str, &str)] = &[
    ("task: {type: binary_classification, label: y}\ntests:\n  - {id: a, kind: nonsense}\n", 3, "tests[0].kind", "unknown kind"),
    ("task: {type: binary_classification, label: y}\ndatasets: {t: {uri: a.csv}}\ntests:\n  - id: a\n    kind: metric\n    dataset: t\n    metric: accuracy\n    mni: 0.5\n", 8, "tests[0].mni", "unknown field"),
    ("task: {type: regression, label: y}\ndatasets: {t: {uri: a.csv}}\ntests:\n  - {id: a, kind: metric, dataset: t, metric: roc_auc, min: 0.5}\n", 4, "tests[0].metric", "does not apply"),
    ("task: {type: binary_classification, label: y}\ndatasets: {t: {uri: a.csv}}\ntests:\n  - {id: a, kind: metric, dataset: t, metric: accuracy}\n", 4, "tests[0]", "needs `min`"),
    ("task: {type: binary_classification, label: y}\ndatasets: {t: {uri: a.csv}}\ntests:\n  - {id: a, kind: metric, dataset: t, metric: accuracy, min: 0.5}\n  - {id: a, kind: metric, dataset: t, metric: f1, min: 0.5}\n", 5, "tests[1].id", "used twice"),
    ("task: {type: binary_classification, label: y}\ndatasets: {t: {uri: a.csv}}\ntests:\n  - id: a\n    kind: expectations\n    dataset: t\n    expectations:\n      - {expect: column_values_between, column: x, mostly: 2, min: 0}\n", 8, "tests[0].expectations[0].mostly", "within [0, 1]"),
    ("task: {type: binary_classification, label: y}\ndatasets: {t: {uri: a.csv}}\ntests:\n  - {id: a, kind: slice_metric, dataset: {ref: t, where: {x: {near: 1}}}, metric: f1, slices: [{by: r}], min: 0.5}\n", 4, "tests[0].dataset.where", "unknown operator"),
    ("task: {type: binary_classification, label: y}\ndatasets: {t: {uri: a.csv, rows: []}}\ntests: []\n", 2, "datasets.t", "exactly one"),
    ("task: {type: binary_classification, label: y, threshold: 0.3}\ntests: []\n", 1, "task", "unknown field"),
];

#[test]
fn malformed_specs_name_their_line_and_field() {
    for (text, line, field, words) in BAD_SPECS {
        let error = Spec::parse(text).expect_err(text);
        assert_eq!(error.line, Some(*line), "{text}\n{error}");
        assert!(
            error.field.starts_with(field),
            "{text}\nfield {:?}, wanted {field}",
            error.field
        );
        assert!(error.to_string().contains(words), "{text}\n{error}");
    }
}
