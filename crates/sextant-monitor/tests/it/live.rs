//! Live monitoring on generated traffic: a profile from a reference table,
//! drift found where it was injected and nowhere else, outliers flagged at
//! the calibrated rate, windows that roll and merge, and bad input.

use std::io::Write;
use std::time::Duration;

use sextant_monitor::dataset::Table;
use sextant_monitor::live::{
    FeatureBatch, FeatureColumn, FeatureKind, LiveMonitor, MonitorConfig, MonitorReport,
    OutlierVerdict, PredictionValues, ProfileError, ReferenceProfile,
};

/// SplitMix64 (Steele, Lea & Flood 2014): deterministic, no dependency.
/// Shared with the other test modules.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub(crate) fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

const NUMERIC: [&str; 6] = ["f0", "f1", "f2", "f3", "f4", "f5"];
/// Reference shares 50%, 30%, 20%.
const COLOURS: [&str; 3] = ["red", "green", "blue"];

/// What to change in generated traffic.
#[derive(Default, Clone, Copy)]
struct Change {
    /// Added to f1 (in its standard deviations; f1 has σ = 1).
    shift_f1: f64,
    /// Multiplies f4's spread around its mean.
    scale_f4: f64,
    /// Share of rows whose colour is "purple" (never in the reference).
    new_colour: f64,
    /// Added to the prediction.
    shift_score: f64,
}

/// Columns of generated rows: six correlated numbers (f1 = 0.8·f0 + 0.6·z,
/// f3 = 0.5·f2 + 0.866·z, f4 = 2 + 3z), a colour, an integer with 5 values
/// and a prediction.
struct Data {
    numeric: Vec<Vec<f64>>,
    colour: Vec<String>,
    rooms: Vec<f64>,
    score: Vec<f64>,
}

impl Data {
    fn generate(rng: &mut Rng, rows: usize, change: Change) -> Data {
        let mut numeric = vec![Vec::with_capacity(rows); NUMERIC.len()];
        let (mut colour, mut rooms, mut score) = (Vec::new(), Vec::new(), Vec::new());
        let scale_f4 = if change.scale_f4 == 0.0 {
            1.0
        } else {
            change.scale_f4
        };
        for _ in 0..rows {
            let z: Vec<f64> = (0..6).map(|_| rng.normal()).collect();
            let row = [
                z[0],
                0.8 * z[0] + 0.6 * z[1] + change.shift_f1,
                z[2],
                0.5 * z[2] + 0.866 * z[3],
                2.0 + 3.0 * scale_f4 * z[4],
                z[5],
            ];
            for (column, value) in numeric.iter_mut().zip(row) {
                column.push(value);
            }
            let u = rng.uniform();
            let new = rng.uniform() < change.new_colour;
            colour.push(match u {
                _ if new => "purple".to_string(),
                u if u < 0.5 => COLOURS[0].to_string(),
                u if u < 0.8 => COLOURS[1].to_string(),
                _ => COLOURS[2].to_string(),
            });
            rooms.push((1 + rng.next_u64() % 5) as f64);
            score.push(0.5 * row[0] + 0.3 * row[2] + 0.1 * rng.normal() + change.shift_score);
        }
        Data {
            numeric,
            colour,
            rooms,
            score,
        }
    }

    fn rows(&self) -> usize {
        self.score.len()
    }

    fn write_csv(&self, path: &std::path::Path) {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        writeln!(file, "{},colour,rooms,score", NUMERIC.join(",")).unwrap();
        for row in 0..self.rows() {
            for column in &self.numeric {
                write!(file, "{:.9},", column[row]).unwrap();
            }
            writeln!(
                file,
                "{},{},{:.9}",
                self.colour[row], self.rooms[row], self.score[row]
            )
            .unwrap();
        }
    }
}

/// Sends `data` to `monitor` in requests of `per_request` rows at
/// `now_us`, returning every verdict. `absent` features are left out of
/// the requests.
fn send(
    monitor: &LiveMonitor,
    data: &Data,
    per_request: usize,
    now_us: i64,
    absent: &[&str],
) -> Vec<OutlierVerdict> {
    let colours: Vec<Option<&str>> = data.colour.iter().map(|c| Some(c.as_str())).collect();
    let mut verdicts = Vec::new();
    let mut start = 0;
    while start < data.rows() {
        let end = (start + per_request).min(data.rows());
        let columns = monitor
            .profile()
            .features()
            .iter()
            .map(|feature| {
                let name = feature.name.as_str();
                if absent.contains(&name) {
                    return FeatureColumn::Absent;
                }
                match name {
                    "colour" => FeatureColumn::Text(&colours[start..end]),
                    "rooms" => FeatureColumn::Numeric(&data.rooms[start..end]),
                    _ => {
                        let index = NUMERIC
                            .iter()
                            .position(|n| *n == name)
                            .expect("a generated column");
                        FeatureColumn::Numeric(&data.numeric[index][start..end])
                    }
                }
            })
            .collect();
        let batch = FeatureBatch {
            rows: end - start,
            columns,
        };
        verdicts.extend(monitor.observe(
            now_us,
            &batch,
            &PredictionValues::Numbers(&data.score[start..end]),
        ));
        start = end;
    }
    verdicts
}

/// A profile of 20 000 reference rows read back from a CSV file, with the
/// prediction `score`.
fn reference_profile() -> ReferenceProfile {
    let data = Data::generate(&mut Rng(1), 20_000, Change::default());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reference.csv");
    data.write_csv(&path);
    let table = Table::open(&path).unwrap();
    ReferenceProfile::from_table(&table, None, Some("score")).unwrap()
}

fn feature<'a>(report: &'a MonitorReport, name: &str) -> &'a sextant_monitor::live::FeatureDrift {
    report
        .features
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no feature {name}"))
}

fn drifted(report: &MonitorReport) -> Vec<&str> {
    report
        .features
        .iter()
        .filter(|f| f.drifted)
        .map(|f| f.name.as_str())
        .collect()
}

const NOW: i64 = 1_750_000_000_000_000;

/// The server shares one monitor between its request handlers.
#[test]
fn monitors_and_profiles_are_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<LiveMonitor>();
    shareable::<ReferenceProfile>();
}
const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn profile_from_a_table_types_the_columns() {
    let profile = reference_profile();
    assert_eq!(profile.reference_rows(), 20_000);
    let kinds: Vec<(&str, FeatureKind)> = profile
        .features()
        .iter()
        .map(|f| (f.name.as_str(), f.kind))
        .collect();
    let mut expected: Vec<(&str, FeatureKind)> = NUMERIC
        .iter()
        .map(|n| (*n, FeatureKind::Numerical))
        .collect();
    expected.push(("colour", FeatureKind::Categorical));
    // Integers with at most 10 values are categories, as Evidently types them.
    expected.push(("rooms", FeatureKind::Categorical));
    assert_eq!(kinds, expected);
    assert_eq!(
        profile.prediction().map(|p| (p.name.as_str(), p.kind)),
        Some(("score", FeatureKind::Numerical))
    );
    let f4 = &profile.features()[4];
    assert_eq!(f4.bin_edges().unwrap().len(), 9);
    assert_eq!(f4.reference_bucket_counts().iter().sum::<u64>(), 20_000);
    assert!((f4.mean().unwrap() - 2.0).abs() < 0.1);
    assert!((f4.median().unwrap() - 2.0).abs() < 0.1);
    // 1.4826 · MAD estimates σ = 3.
    assert!((1.4826 * f4.mad().unwrap() - 3.0).abs() < 0.15);
    assert_eq!(f4.robust_z_threshold(), Some(6.0));
    assert_eq!(
        profile.features()[6].categories().unwrap(),
        ["red", "green", "blue"]
    );
    assert_eq!(profile.mahalanobis_features(), NUMERIC);
    // Close to the Gaussian value √χ²₆(0.999) = 4.74.
    let threshold = profile.mahalanobis_threshold().unwrap();
    assert!((4.3..5.2).contains(&threshold), "{threshold}");
}

#[test]
fn undrifted_traffic_raises_no_drift_and_flags_about_one_row_in_a_thousand() {
    let monitor = LiveMonitor::new(reference_profile(), MonitorConfig::default());
    let data = Data::generate(&mut Rng(2), 30_000, Change::default());
    let verdicts = send(&monitor, &data, 50, NOW, &[]);
    let report = monitor.report(NOW, HOUR);
    assert_eq!(report.rows, 30_000);
    assert_eq!(report.requests, 600);
    assert!(drifted(&report).is_empty(), "{:#?}", report.features);
    assert!(!report.prediction.as_ref().unwrap().drifted);
    assert_eq!(report.drift_share, 0.0);
    for feature in &report.features {
        assert_eq!(feature.count, 30_000);
        assert!(feature.psi < 0.01, "{feature:?}");
        assert_eq!(feature.missing_share, 0.0);
        assert!(feature.p_value.unwrap() > 0.01, "{feature:?}");
    }
    assert_eq!(feature(&report, "colour").unseen_share, Some(0.0));
    assert_eq!(feature(&report, "rooms").unseen_share, Some(0.0));
    // The threshold is the reference's 99.9th percentile: 30 expected.
    let outliers = verdicts.iter().filter(|v| v.outlier).count();
    assert_eq!(report.outliers, outliers as u64);
    assert!(
        (0.0003..0.003).contains(&report.outlier_rate),
        "outlier rate {}",
        report.outlier_rate
    );
    assert!(verdicts
        .iter()
        .all(|v| v.outlier == (v.score >= 1.0) && v.score >= 0.0));
    let median_score = {
        let mut scores: Vec<f64> = verdicts.iter().map(|v| v.score).collect();
        scores.sort_by(f64::total_cmp);
        scores[scores.len() / 2]
    };
    assert!(
        (0.3..0.7).contains(&median_score),
        "median score {median_score}"
    );
}

#[test]
fn shifted_features_and_prediction_drift_and_nothing_else() {
    let monitor = LiveMonitor::new(reference_profile(), MonitorConfig::default());
    let change = Change {
        shift_f1: 1.0,
        scale_f4: 2.0,
        shift_score: 0.5,
        ..Change::default()
    };
    let data = Data::generate(&mut Rng(3), 5_000, change);
    send(&monitor, &data, 100, NOW, &[]);
    let report = monitor.report(NOW, HOUR);
    assert_eq!(drifted(&report), ["f1", "f4"], "{:#?}", report.features);
    assert_eq!(report.drifted_features, 2);
    assert!((report.drift_share - 2.0 / 8.0).abs() < 1e-12);
    let f1 = feature(&report, "f1");
    assert!(f1.psi > 0.2 && f1.p_value.unwrap() < 1e-10, "{f1:?}");
    assert!((f1.mean.unwrap() - f1.reference_mean.unwrap() - 1.0).abs() < 0.1);
    assert!(report.prediction.as_ref().unwrap().drifted);
}

#[test]
fn a_new_category_is_unseen_and_drifts() {
    let monitor = LiveMonitor::new(reference_profile(), MonitorConfig::default());
    let data = Data::generate(
        &mut Rng(4),
        5_000,
        Change {
            new_colour: 0.3,
            ..Change::default()
        },
    );
    let verdicts = send(&monitor, &data, 10, NOW, &[]);
    let report = monitor.report(NOW, HOUR);
    let colour = feature(&report, "colour");
    let unseen = colour.unseen_share.unwrap();
    assert!((0.27..0.33).contains(&unseen), "{colour:?}");
    assert!(colour.drifted && colour.psi > 1.0, "{colour:?}");
    assert_eq!(drifted(&report), ["colour"]);
    // Not outliers by default: the new colour is drift, not a row anomaly.
    assert!(report.outlier_rate < 0.01);

    let strict = LiveMonitor::new(
        monitor.profile().clone(),
        MonitorConfig {
            unseen_category_is_outlier: true,
            ..MonitorConfig::default()
        },
    );
    let strict_verdicts = send(&strict, &data, 10, NOW, &[]);
    for ((verdict, strict), colour) in verdicts.iter().zip(&strict_verdicts).zip(&data.colour) {
        if colour == "purple" {
            assert!(strict.outlier && strict.score >= 1.0);
        } else {
            assert_eq!(verdict, strict);
        }
    }
}

#[test]
fn an_absent_feature_is_missing_and_does_not_make_outliers() {
    let monitor = LiveMonitor::new(reference_profile(), MonitorConfig::default());
    let data = Data::generate(&mut Rng(5), 20_000, Change::default());
    send(&monitor, &data, 20, NOW, &["f2", "colour"]);
    let report = monitor.report(NOW, HOUR);
    for name in ["f2", "colour"] {
        let absent = feature(&report, name);
        assert_eq!(absent.missing_share, 1.0);
        assert_eq!(absent.count, 0);
        assert_eq!(absent.p_value, None);
        assert!(!absent.drifted);
        assert_eq!((absent.psi, absent.jensen_shannon), (0.0, 0.0));
    }
    assert!(drifted(&report).is_empty(), "{:#?}", report.features);
    // The distance over the five features present, against a threshold
    // scaled to five dimensions, keeps the rate near 0.1%.
    assert!(
        (0.0002..0.003).contains(&report.outlier_rate),
        "outlier rate {}",
        report.outlier_rate
    );
}

/// One row of the six numeric features plus the categorical ones.
fn score_row(monitor: &LiveMonitor, numbers: [f64; 6]) -> OutlierVerdict {
    let singles: Vec<[f64; 1]> = numbers.iter().map(|&x| [x]).collect();
    let colour = [Some("red")];
    let rooms = [3.0];
    let mut columns: Vec<FeatureColumn<'_>> =
        singles.iter().map(|x| FeatureColumn::Numeric(x)).collect();
    columns.push(FeatureColumn::Text(&colour));
    columns.push(FeatureColumn::Numeric(&rooms));
    let batch = FeatureBatch { rows: 1, columns };
    monitor.observe(NOW, &batch, &PredictionValues::None)[0]
}

#[test]
fn extreme_values_and_broken_correlations_are_outliers() {
    let monitor = LiveMonitor::new(reference_profile(), MonitorConfig::default());
    let ordinary = score_row(&monitor, [0.5, 0.4, -0.3, -0.1, 2.5, 0.2]);
    assert!(!ordinary.outlier && ordinary.score < 0.5, "{ordinary:?}");

    // +25 on one feature: far past both thresholds.
    let spike = score_row(&monitor, [0.5, 0.4, -0.3 + 25.0, -0.1, 2.5, 0.2]);
    assert!(spike.outlier && spike.score > 3.0, "{spike:?}");

    // Each value within 2 σ, but f1 runs against f0 (they correlate at
    // 0.8): only the Mahalanobis distance sees it.
    let broken = score_row(&monitor, [2.0, -2.0, 0.0, 0.0, 2.0, 0.0]);
    assert!(broken.outlier, "{broken:?}");
    // The same magnitudes along the correlation are ordinary.
    let along = score_row(&monitor, [2.0, 2.0, 0.0, 0.0, 2.0, 0.0]);
    assert!(!along.outlier, "{along:?}");

    // Infinity is as far as it gets; NaN is missing, not an outlier.
    let infinite = score_row(&monitor, [f64::INFINITY, 0.0, 0.0, 0.0, 2.0, 0.0]);
    assert_eq!(
        infinite,
        OutlierVerdict {
            outlier: true,
            score: OutlierVerdict::MAX_SCORE
        }
    );
    let missing = score_row(&monitor, [f64::NAN, 0.4, -0.3, -0.1, 2.5, 0.2]);
    assert!(!missing.outlier && missing.score.is_finite(), "{missing:?}");
    let all_missing = score_row(&monitor, [f64::NAN; 6]);
    assert_eq!(all_missing, OutlierVerdict::INLIER);

    let report = monitor.report(NOW, HOUR);
    assert_eq!((report.rows, report.outliers), (7, 3));
    assert_eq!(feature(&report, "f0").missing_share, 2.0 / 7.0);
    // Seven rows: reported, never flagged.
    assert!(report
        .features
        .iter()
        .all(|f| !f.drifted && f.p_value.is_none()));
}

#[test]
fn windows_roll_and_merge() {
    let profile = ReferenceProfile::from_rows(
        &["a".to_string(), "b".to_string()],
        &(0..2000)
            .map(|i| ((i * 7919) % 1000) as f64 / 100.0)
            .collect::<Vec<_>>(),
        &[],
    )
    .unwrap();
    let five_minutes: i64 = 300_000_000;
    let start = (NOW / five_minutes) * five_minutes;
    let monitor = LiveMonitor::new(profile.clone(), MonitorConfig::default());
    let mut rng = Rng(6);
    let mut expected_rows = 0u64;
    // 12 windows of 5 minutes, window w receiving w + 1 requests of 3 rows.
    for window in 0..12i64 {
        for request in 0..=window {
            let a: Vec<f64> = (0..3).map(|_| rng.uniform() * 10.0).collect();
            let b: Vec<f64> = (0..3).map(|_| rng.uniform() * 10.0).collect();
            let batch = FeatureBatch {
                rows: 3,
                columns: vec![FeatureColumn::Numeric(&a), FeatureColumn::Numeric(&b)],
            };
            let at = start + window * five_minutes + request * 1_000_000;
            monitor.observe(at, &batch, &PredictionValues::None);
            expected_rows += 3;
        }
    }
    let now = start + 12 * five_minutes - 1;
    let report = monitor.report(now, HOUR);
    assert_eq!(report.requests, (1..=12).sum::<u64>());
    assert_eq!(report.rows, expected_rows);
    assert_eq!(report.window_start_us, start);
    assert_eq!(report.window_end_us, now);
    assert!(report.features.iter().all(|f| f.count == expected_rows));

    let windows = monitor.windows(now, HOUR);
    assert_eq!(windows.len(), 12);
    for (index, window) in windows.iter().enumerate() {
        assert_eq!(window.start_us, start + index as i64 * five_minutes);
        assert_eq!(window.end_us, window.start_us + five_minutes);
        assert_eq!(window.requests, index as u64 + 1);
        assert_eq!(window.features.len(), 2);
    }
    assert_eq!(windows.iter().map(|w| w.rows).sum::<u64>(), report.rows);
    assert_eq!(
        windows.iter().map(|w| w.outliers).sum::<u64>(),
        report.outliers
    );

    // A shorter span takes the windows that overlap it, whole.
    let last_ten_minutes = monitor.report(now, Duration::from_secs(600));
    assert_eq!(last_ten_minutes.requests, 10 + 11 + 12);
    assert_eq!(last_ten_minutes.window_start_us, start + 9 * five_minutes);
    // Later, nothing is in the span.
    let later = monitor.report(now + 2 * HOUR.as_micros() as i64, HOUR);
    assert_eq!(
        (later.requests, later.rows, later.outlier_rate),
        (0, 0, 0.0)
    );

    // A late request (its clock read before the roll) joins its own window.
    let a = [5.0];
    let late = FeatureBatch {
        rows: 1,
        columns: vec![FeatureColumn::Numeric(&a), FeatureColumn::Numeric(&a)],
    };
    monitor.observe(
        start + 10 * five_minutes + 5,
        &late,
        &PredictionValues::None,
    );
    assert_eq!(monitor.windows(now, HOUR)[10].requests, 12);

    // Only the retained windows are kept.
    let short = LiveMonitor::new(
        profile,
        MonitorConfig {
            retained_windows: 3,
            ..MonitorConfig::default()
        },
    );
    for window in 0..12i64 {
        let batch = FeatureBatch {
            rows: 1,
            columns: vec![FeatureColumn::Numeric(&a), FeatureColumn::Numeric(&a)],
        };
        short.observe(
            start + window * five_minutes,
            &batch,
            &PredictionValues::None,
        );
    }
    let kept = short.windows(now, HOUR);
    assert_eq!(kept.len(), 4, "three closed windows and the current one");
    assert_eq!(kept[0].start_us, start + 8 * five_minutes);
    assert_eq!(short.report(now, HOUR).requests, 4);
}

#[test]
fn profiles_survive_a_json_round_trip() {
    let profile = reference_profile();
    let json = serde_json::to_string(&profile).unwrap();
    let restored: ReferenceProfile = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&restored).unwrap(), json);
    // Same verdicts and the same report from the restored profile.
    let data = Data::generate(
        &mut Rng(7),
        2_000,
        Change {
            shift_f1: 1.0,
            ..Change::default()
        },
    );
    let original = LiveMonitor::new(profile, MonitorConfig::default());
    let copy = LiveMonitor::new(restored, MonitorConfig::default());
    assert_eq!(
        send(&original, &data, 7, NOW, &[]),
        send(&copy, &data, 7, NOW, &[])
    );
    let (a, b) = (original.report(NOW, HOUR), copy.report(NOW, HOUR));
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    // Reports round-trip too (no NaN or infinity in them).
    let report: MonitorReport = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
    assert_eq!(report.rows, 2_000);

    // A damaged profile is refused, not misread.
    let newer = json.replacen("\"version\":1", "\"version\":2", 1);
    let error = serde_json::from_str::<ReferenceProfile>(&newer)
        .unwrap_err()
        .to_string();
    assert!(error.contains("version 2"), "{error}");
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["features"][0]["bucket_counts"] = serde_json::json!([1, 2]);
    let error = serde_json::from_value::<ReferenceProfile>(value)
        .unwrap_err()
        .to_string();
    assert!(error.contains("f0"), "{error}");
}

#[test]
fn profiles_from_live_rows() {
    let mut rng = Rng(8);
    let names: Vec<String> = (0..3).map(|i| format!("x{i}")).collect();
    let mut rows = Vec::new();
    let mut predictions = Vec::new();
    for _ in 0..1000 {
        let z = rng.normal();
        rows.extend([
            z,
            0.9 * z + 0.1 * rng.normal(),
            if rng.uniform() < 0.1 {
                f64::NAN
            } else {
                rng.normal()
            },
        ]);
        predictions.push(z);
    }
    let profile = ReferenceProfile::from_rows(&names, &rows, &predictions).unwrap();
    assert_eq!(profile.reference_rows(), 1000);
    assert!(profile
        .features()
        .iter()
        .all(|f| f.kind == FeatureKind::Numerical));
    assert!((profile.features()[2].reference_missing_share() - 0.1).abs() < 0.03);
    assert_eq!(profile.prediction().unwrap().name, "prediction");
    assert_eq!(profile.mahalanobis_features(), ["x0", "x1", "x2"]);

    // A feature mostly missing stays out of the covariance, not the others.
    let mut gappy = Vec::new();
    for (index, row) in rows.chunks_exact(3).enumerate() {
        gappy.extend(row);
        gappy.push(if index % 2 == 0 {
            f64::NAN
        } else {
            index as f64
        });
    }
    let four: Vec<String> = (0..4).map(|i| format!("x{i}")).collect();
    let profile = ReferenceProfile::from_rows(&four, &gappy, &[]).unwrap();
    assert_eq!(profile.mahalanobis_features(), ["x0", "x1", "x2"]);
    assert_eq!(profile.features()[3].reference_missing_share(), 0.5);

    let bad_shape = ReferenceProfile::from_rows(&names, &rows[..10], &[]).unwrap_err();
    assert!(matches!(bad_shape, ProfileError::Shape(_)), "{bad_shape}");
    let bad_predictions =
        ReferenceProfile::from_rows(&names, &rows, &predictions[..5]).unwrap_err();
    assert!(
        bad_predictions
            .to_string()
            .contains("5 predictions for 1000 rows"),
        "{bad_predictions}"
    );
    assert!(matches!(
        ReferenceProfile::from_rows(&names, &[], &[]),
        Err(ProfileError::NoRows)
    ));
    assert!(matches!(
        ReferenceProfile::from_rows(&[], &[], &[]),
        Err(ProfileError::NoFeatures)
    ));
    let twice = vec!["x".to_string(), "x".to_string()];
    assert!(matches!(
        ReferenceProfile::from_rows(&twice, &[1.0, 2.0], &[]),
        Err(ProfileError::DuplicateFeature(_))
    ));
}

#[test]
fn bad_input_is_an_error_or_read_as_far_as_it_fits() {
    let data = Data::generate(&mut Rng(9), 500, Change::default());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reference.csv");
    data.write_csv(&path);
    let table = Table::open(&path).unwrap();

    let unknown =
        ReferenceProfile::from_table(&table, Some(&["f0".to_string(), "nope".to_string()]), None)
            .unwrap_err();
    assert!(
        matches!(&unknown, ProfileError::UnknownFeature { name, .. } if name == "nope"),
        "{unknown}"
    );
    assert!(unknown.to_string().contains("'nope'"), "{unknown}");
    let prediction = ReferenceProfile::from_table(&table, None, Some("missing_score")).unwrap_err();
    assert!(
        prediction.to_string().contains("'missing_score'"),
        "{prediction}"
    );
    let twice =
        ReferenceProfile::from_table(&table, Some(&["f0".to_string(), "f0".to_string()]), None)
            .unwrap_err();
    assert!(matches!(twice, ProfileError::DuplicateFeature(name) if name == "f0"));
    let text_as_number = ReferenceProfile::from_table_with_kinds(
        &table,
        Some(&["colour".to_string()]),
        None,
        &[("colour".to_string(), FeatureKind::Numerical)]
            .into_iter()
            .collect(),
    )
    .unwrap_err();
    assert!(
        text_as_number.to_string().contains("colour"),
        "{text_as_number}"
    );

    let profile = ReferenceProfile::from_table(
        &table,
        Some(&["f0".to_string(), "colour".to_string(), "rooms".to_string()]),
        Some("score"),
    )
    .unwrap();
    let monitor = LiveMonitor::new(profile, MonitorConfig::default());
    let x = [0.1, 0.2];
    let short = [1.0];
    let rooms_text = [Some("3"), Some("9")];
    // Fewer columns than features: the rest are absent.
    assert_eq!(
        monitor
            .observe(
                NOW,
                &FeatureBatch {
                    rows: 2,
                    columns: vec![FeatureColumn::Numeric(&x)]
                },
                &PredictionValues::None
            )
            .len(),
        2
    );
    // More columns, a column of the wrong length, predictions of the wrong
    // length, text where a number is expected: no panic.
    let colours = [Some("red"), None];
    let batch = FeatureBatch {
        rows: 2,
        columns: vec![
            FeatureColumn::Numeric(&short),
            FeatureColumn::Text(&colours),
            FeatureColumn::Text(&rooms_text),
            FeatureColumn::Numeric(&x),
        ],
    };
    assert_eq!(
        monitor
            .observe(NOW, &batch, &PredictionValues::Numbers(&short))
            .len(),
        2
    );
    let numbers_as_text = [Some("0.5"), Some("not a number")];
    let batch = FeatureBatch {
        rows: 2,
        columns: vec![FeatureColumn::Text(&numbers_as_text)],
    };
    monitor.observe(NOW, &batch, &PredictionValues::Classes(&["0.5", "x"]));
    // No rows at all.
    assert!(monitor
        .observe(
            NOW,
            &FeatureBatch {
                rows: 0,
                columns: vec![]
            },
            &PredictionValues::None
        )
        .is_empty());

    let report = monitor.report(NOW, HOUR);
    assert_eq!((report.requests, report.rows), (4, 6));
    let f0 = feature(&report, "f0");
    assert_eq!(f0.count, 3, "0.1, 0.2 and the parsed 0.5");
    let colour = feature(&report, "colour");
    assert_eq!((colour.count, colour.unseen_share), (1, Some(0.0)));
    // Integer categories match numbers and their text alike; 9 is unseen.
    let rooms = feature(&report, "rooms");
    assert_eq!((rooms.count, rooms.unseen_share), (2, Some(0.5)));
    let score = report.prediction.as_ref().unwrap();
    assert_eq!((score.count, score.missing_share), (1, 5.0 / 6.0));
}

/// A small CSV file's table (kept alive with its directory).
fn csv_table(header: &str, rows: impl Iterator<Item = String>) -> (tempfile::TempDir, Table) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reference.csv");
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(file, "{header}").unwrap();
    for row in rows {
        writeln!(file, "{row}").unwrap();
    }
    drop(file);
    let table = Table::open(&path).unwrap();
    (dir, table)
}

#[test]
fn booleans_match_their_usual_spellings() {
    let (_dir, table) = csv_table(
        "flag,x",
        (0..400).map(|i| {
            format!(
                "{},{}",
                if i % 4 == 0 { "True" } else { "False" },
                i as f64 / 7.0
            )
        }),
    );
    let profile = ReferenceProfile::from_table(&table, None, None).unwrap();
    assert_eq!(profile.features()[0].kind, FeatureKind::Categorical);
    let monitor = LiveMonitor::new(profile, MonitorConfig::default());
    let texts = [Some("true"), Some("FALSE"), Some("yes"), None];
    let numbers = [1.0, 0.0, 2.0, f64::NAN];
    let x = [1.0; 4];
    for flags in [
        FeatureColumn::Text(&texts),
        FeatureColumn::Numeric(&numbers),
    ] {
        let batch = FeatureBatch {
            rows: 4,
            columns: vec![flags, FeatureColumn::Numeric(&x)],
        };
        monitor.observe(NOW, &batch, &PredictionValues::None);
    }
    let report = monitor.report(NOW, HOUR);
    let flag = feature(&report, "flag");
    // "yes" and 2 are not booleans; null and NaN are missing.
    assert_eq!(
        (flag.count, flag.unseen_share, flag.missing_share),
        (6, Some(2.0 / 6.0), 0.25)
    );
}

#[test]
fn many_categories_keep_the_most_frequent_and_pool_the_rest() {
    // 300 categories of 10 rows each: the 256 first by label are kept, the
    // other 44 pooled with values never seen.
    let labels: Vec<String> = (0..3000).map(|i| format!("c{}", i % 300)).collect();
    let (_dir, table) = csv_table("label", labels.iter().cloned());
    let profile = ReferenceProfile::from_table(&table, Some(&["label".to_string()]), None).unwrap();
    let label = &profile.features()[0];
    assert_eq!(label.kind, FeatureKind::Categorical);
    assert_eq!(label.categories().unwrap().len(), 256);
    let counts = label.reference_bucket_counts();
    assert_eq!(
        (counts.len(), counts[256], counts.iter().sum::<u64>()),
        (257, 440, 3000)
    );

    let monitor = LiveMonitor::new(profile, MonitorConfig::default());
    let live: Vec<Option<&str>> = labels.iter().map(|l| Some(l.as_str())).collect();
    let batch = FeatureBatch {
        rows: live.len(),
        columns: vec![FeatureColumn::Text(&live)],
    };
    monitor.observe(NOW, &batch, &PredictionValues::None);
    let report = monitor.report(NOW, HOUR);
    let drift = feature(&report, "label");
    // The pooled share matches the reference's, so nothing drifted.
    assert!((drift.unseen_share.unwrap() - 44.0 / 300.0).abs() < 1e-12);
    assert!(!drift.drifted && drift.psi < 1e-12, "{drift:?}");
}
