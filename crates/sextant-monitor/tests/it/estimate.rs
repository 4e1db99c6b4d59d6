//! Performance estimated without labels on generated files: DLE follows a
//! regressor into regions where it errs more, CBPE tracks a classifier's
//! accuracy, the undrifted chunks do not alert, and bad input is an error.

use std::io::Write;

use sextant_monitor::dataset::Table;
use sextant_monitor::estimate::{estimate_report, EstimateOptions};

use crate::live::Rng;

fn write_csv(dir: &std::path::Path, name: &str, header: &str, rows: &[String]) -> Table {
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(file, "{header}").unwrap();
    for row in rows {
        writeln!(file, "{row}").unwrap();
    }
    Table::open(&path).unwrap()
}

/// A regressor whose error grows with |x| and in the `night` category;
/// `shift` moves traffic outwards and into the night.
fn regression_rows(rng: &mut Rng, n: usize, shift: f64, labelled: bool) -> Vec<String> {
    (0..n)
        .map(|_| {
            let x = rng.normal() + shift;
            let period = if rng.uniform() < 0.2 + 0.4 * shift {
                "night"
            } else {
                "day"
            };
            let predicted = 10.0 + 2.0 * x;
            let spread = 0.3 + 0.6 * x.abs() + if period == "night" { 1.0 } else { 0.0 };
            let target = predicted + rng.normal() * spread;
            if labelled {
                format!("{x},{period},{predicted},{target}")
            } else {
                format!("{x},{period},{predicted}")
            }
        })
        .collect()
}

fn options(prediction: &str) -> EstimateOptions {
    EstimateOptions {
        target: "target".into(),
        prediction: Some(prediction.into()),
        score: None,
        features: None,
        chunk_size: Some(500),
        threshold: 0.5,
    }
}

#[test]
fn dle_follows_a_regressor_into_worse_regions() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(7);
    let reference = write_csv(
        dir.path(),
        "reference.csv",
        "x,period,predicted,target",
        &regression_rows(&mut rng, 4_000, 0.0, true),
    );
    let mut analysis_rows = regression_rows(&mut rng, 1_000, 0.0, true);
    analysis_rows.extend(regression_rows(&mut rng, 1_000, 1.0, true));
    let analysis = write_csv(
        dir.path(),
        "analysis.csv",
        "x,period,predicted,target",
        &analysis_rows,
    );
    let report = estimate_report(&reference, &analysis, &options("predicted")).unwrap();
    assert_eq!(report.method, "dle");
    assert_eq!(report.features, ["x", "period"]);
    assert_eq!(report.chunks.len(), 4);
    for (k, chunk) in report.chunks.iter().enumerate() {
        let mae = &chunk.metrics["mae"];
        let (estimated, realised, error) = (
            mae.value.unwrap(),
            mae.realised.unwrap(),
            mae.sampling_error.unwrap(),
        );
        if k < 2 {
            // As in the reference: the estimate is within its band of the truth.
            assert!(
                (estimated - realised).abs() < 3.0 * error,
                "chunk {k}: {mae:?}"
            );
            assert!(
                !chunk.metrics.values().any(|m| m.alert),
                "chunk {k}: {chunk:?}"
            );
        } else {
            // Moved out and into the night: estimated and realised errors rise
            // together, past the reference's range.
            assert!(
                estimated > report.chunks[0].metrics["mae"].value.unwrap() * 1.4,
                "{mae:?}"
            );
            assert!(mae.alert, "chunk {k}: {mae:?}");
        }
    }
    assert_eq!(report.alerts, 2);
    // Without labels in the analysis data the estimate is the same, without realised values.
    let unlabelled_rows: Vec<String> = analysis_rows
        .iter()
        .map(|row| row.rsplit_once(',').unwrap().0.to_string())
        .collect();
    let unlabelled = write_csv(
        dir.path(),
        "unlabelled.csv",
        "x,period,predicted",
        &unlabelled_rows,
    );
    let blind = estimate_report(&reference, &unlabelled, &options("predicted")).unwrap();
    assert_eq!(
        blind.chunks[3].metrics["mae"].value,
        report.chunks[3].metrics["mae"].value
    );
    assert_eq!(blind.chunks[3].metrics["mae"].realised, None);
}

#[test]
fn cbpe_tracks_a_classifiers_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(11);
    // Calibrated scores: the label is drawn with the score's probability.
    let mut rows = |n: usize, confident: bool| -> Vec<String> {
        (0..n)
            .map(|_| {
                let u = rng.uniform();
                let score = if confident { u * u * u } else { 0.3 + 0.4 * u };
                let label = u8::from(rng.uniform() < score);
                format!("{score},{label}")
            })
            .collect()
    };
    let reference = write_csv(
        dir.path(),
        "reference.csv",
        "score,target",
        &rows(5_000, true),
    );
    let mut analysis_rows = rows(1_000, true);
    analysis_rows.extend(rows(1_000, false));
    let analysis = write_csv(dir.path(), "analysis.csv", "score,target", &analysis_rows);
    let options = EstimateOptions {
        score: Some("score".into()),
        prediction: None,
        ..options("unused")
    };
    let report = estimate_report(&reference, &analysis, &options).unwrap();
    assert_eq!(report.method, "cbpe");
    for (k, chunk) in report.chunks.iter().enumerate() {
        let accuracy = &chunk.metrics["accuracy"];
        let (estimated, realised) = (accuracy.value.unwrap(), accuracy.realised.unwrap());
        // Within three of the realised accuracy's largest standard error,
        // √(¼ / n): NannyML's sampling error comes from the reference,
        // whose confident rows vary less than these.
        let bound = 3.0 * (0.25 / chunk.rows as f64).sqrt();
        assert!(
            (estimated - realised).abs() < bound,
            "chunk {k}: {accuracy:?}"
        );
        // Unsure scores near 0.5 lower the accuracy, and CBPE sees it without labels.
        assert_eq!(accuracy.alert, k >= 2, "chunk {k}: {accuracy:?}");
    }
}

#[test]
fn bad_input_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(3);
    let rows = regression_rows(&mut rng, 500, 0.0, true);
    let table = write_csv(
        dir.path(),
        "reference.csv",
        "x,period,predicted,target",
        &rows,
    );
    let message = |options: &EstimateOptions| {
        estimate_report(&table, &table, options)
            .unwrap_err()
            .to_string()
    };
    let mut no_prediction = options("predicted");
    no_prediction.prediction = None;
    assert!(message(&no_prediction).contains("--prediction"));
    assert!(message(&options("absent")).contains("absent"));
    let not_binary = EstimateOptions {
        score: Some("predicted".into()),
        ..options("predicted")
    };
    assert!(
        message(&not_binary).contains("two classes"),
        "{}",
        message(&not_binary)
    );
    let few = write_csv(
        dir.path(),
        "few.csv",
        "x,period,predicted,target",
        &rows[..50],
    );
    let too_few = estimate_report(&few, &table, &options("predicted")).unwrap_err();
    assert!(too_few.to_string().contains("at least"), "{too_few}");
    let empty = write_csv(dir.path(), "empty.csv", "x,period,predicted,target", &[]);
    assert!(estimate_report(&table, &empty, &options("predicted")).is_err());
}
