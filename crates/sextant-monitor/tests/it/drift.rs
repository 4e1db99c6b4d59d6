//! `--methods sextant` verdicts, the HTML report, and bad input.

use std::path::PathBuf;

use sextant_monitor::dataset::Table;
use sextant_monitor::drift::{
    drift_report, html, ColumnDrift, DriftOptions, DriftReport, MethodSet,
};

use crate::golden_dir;

fn sextant_report(case: &str, ext: &str) -> DriftReport {
    let dir = golden_dir().join(case);
    let reference = Table::open(&dir.join(format!("reference.{ext}"))).unwrap();
    let current = Table::open(&dir.join(format!("current.{ext}"))).unwrap();
    drift_report(&reference, &current, &DriftOptions::new(MethodSet::Sextant)).unwrap()
}

fn column<'a>(report: &'a DriftReport, name: &str) -> &'a ColumnDrift {
    report
        .columns
        .iter()
        .find(|c| c.column == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

#[test]
fn sextant_methods_flag_the_injected_shifts_and_nothing_else() {
    let report = sextant_report("large", "parquet");
    let drifted: Vec<&str> = report
        .columns
        .iter()
        .filter(|c| c.drifted)
        .map(|c| c.column.as_str())
        .collect();
    for expected in [
        "shift_large",
        "lognormal",
        "uniform",
        "mixture",
        "cat_three",
        "cat_new_level",
        "with_gaps",
    ] {
        assert!(
            drifted.contains(&expected),
            "{expected} should drift; drifted: {drifted:?}"
        );
    }
    for undrifted in (0..12)
        .map(|i| format!("num_{i:02}"))
        .chain(["cat_stable".into(), "cat_many".into()])
    {
        assert!(
            !drifted.contains(&undrifted.as_str()),
            "{undrifted} should not drift: {:?}",
            column(&report, &undrifted)
        );
    }
    // A 0.05 sd shift is significant at these sizes but not material.
    let small = column(&report, "shift_small");
    assert!(!small.drifted, "{small:?}");
    assert!(small.statistic < 0.1);

    // The new category is reported by name and share.
    let new_level = column(&report, "cat_new_level");
    assert_eq!(new_level.unseen_categories, vec!["s".to_string()]);
    let unseen = new_level.unseen_share.unwrap();
    assert!((0.02..0.04).contains(&unseen), "unseen share {unseen}");

    // Missingness moved from 1% to 5%: reported even though the values did not move.
    let gaps = column(&report, "with_gaps");
    assert_eq!(gaps.reasons, vec!["missing values".to_string()], "{gaps:?}");
    assert!(gaps.current_missing_share > 0.04);

    // p-values are adjusted: never below the raw ones.
    for c in &report.columns {
        let raw = c.effect_sizes.as_ref().unwrap().raw_p_value;
        assert!(
            c.p_value.unwrap() >= raw - 1e-15,
            "{}: adjusted {:?} < raw {raw}",
            c.column,
            c.p_value
        );
    }
}

#[test]
fn undrifted_data_raises_nothing() {
    let report = sextant_report("stable_csv", "csv");
    let drifted: Vec<&str> = report
        .columns
        .iter()
        .filter(|c| c.drifted)
        .map(|c| c.column.as_str())
        .collect();
    assert!(drifted.is_empty(), "chance alarms: {drifted:?}");
    assert!(!report.dataset.drift);
    assert_eq!(report.dataset.columns, 29, "skipped: {:?}", report.skipped);
}

#[test]
fn a_table_against_itself_has_zero_effect() {
    let path = golden_dir().join("large/reference.parquet");
    let table = Table::open(&path).unwrap();
    for methods in [MethodSet::Sextant, MethodSet::Evidently] {
        let report = drift_report(&table, &table, &DriftOptions::new(methods)).unwrap();
        for c in &report.columns {
            assert!(!c.drifted, "{methods:?} {}: {c:?}", c.column);
            if let Some(effect) = &c.effect_sizes {
                assert_eq!(effect.psi, 0.0, "{}", c.column);
                assert_eq!(effect.jensen_shannon, 0.0, "{}", c.column);
            }
        }
    }
}

#[test]
fn the_html_report_is_self_contained() {
    let report = sextant_report("large", "parquet");
    let page = html::render(&report);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(!page.contains("<script"), "no JavaScript");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing fetched"
    );
    assert_eq!(
        page.matches("<svg").count(),
        report.columns.len(),
        "a chart per column"
    );
    assert!(page.contains("cat_new_level"));
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bad_input_is_an_error_or_a_reported_skip() {
    let dir = tempfile::tempdir().unwrap();
    let reference = write(
        &dir,
        "ref.csv",
        "a,b,c,d\n1.5,x,1.0,\n2.5,y,2.0,\n3.5,x,3.0,\n4.5,y,4.0,\n",
    );
    let current = write(
        &dir,
        "cur.csv",
        "a,b,c,e\n1.5,x,oops,1\n2.5,y,two,2\n3.5,z,3,3\n",
    );
    let reference = Table::open(&reference).unwrap();
    let current = Table::open(&current).unwrap();

    // A column asked for that one side lacks: an error naming it and the side.
    let mut options = DriftOptions::new(MethodSet::Sextant);
    options.columns = Some(vec!["a".into(), "d".into()]);
    let error = drift_report(&reference, &current, &options)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("'d'") && error.contains("current"),
        "{error}"
    );

    // Shared columns only by default; a numeric column holding text is skipped with the reason.
    let mut options = DriftOptions::new(MethodSet::Sextant);
    options
        .column_types
        .insert("c".into(), sextant_monitor::drift::ColumnType::Numerical);
    // Three distinct strings in three rows would be typed as text.
    options
        .column_types
        .insert("b".into(), sextant_monitor::drift::ColumnType::Categorical);
    let report = drift_report(&reference, &current, &options).unwrap();
    let names: Vec<&str> = report.columns.iter().map(|c| c.column.as_str()).collect();
    assert!(names.contains(&"a") && names.contains(&"b"), "{names:?}");
    let skipped = report
        .skipped
        .iter()
        .find(|s| s.column == "c")
        .expect("c skipped");
    assert!(skipped.reason.contains("non-numeric"), "{}", skipped.reason);

    // An all-empty column is skipped, not a panic or a verdict.
    let all_missing = write(&dir, "missing.csv", "a,d\n1,\n2,\n3,\n");
    let also = write(&dir, "missing2.csv", "a,d\n1,\n2,\n");
    let report = drift_report(
        &Table::open(&all_missing).unwrap(),
        &Table::open(&also).unwrap(),
        &DriftOptions::new(MethodSet::Evidently),
    )
    .unwrap();
    let skipped = report
        .skipped
        .iter()
        .find(|s| s.column == "d")
        .expect("d skipped");
    assert!(skipped.reason.contains("missing"), "{}", skipped.reason);

    // Unreadable files.
    assert!(Table::open(&dir.path().join("absent.csv"))
        .err()
        .unwrap()
        .to_string()
        .contains("absent.csv"));
    let not_parquet = write(&dir, "data.parquet", "this is not parquet");
    assert!(Table::open(&not_parquet).is_err());
    let unknown = write(&dir, "data.xlsx", "a\n1\n");
    assert!(Table::open(&unknown)
        .err()
        .unwrap()
        .to_string()
        .contains(".tsv or .parquet"));
    // A row longer than the header is an error naming the file and line (a
    // shorter one is padded with missing values, as pandas reads it).
    let ragged = write(&dir, "ragged.csv", "a,b\n1,2\n3,4,5\n");
    let error = Table::open(&ragged)
        .err()
        .expect("a row longer than the header is an error")
        .to_string();
    assert!(
        error.contains("ragged.csv") && error.contains("line 3"),
        "{error}"
    );

    // No shared column at all.
    let other = write(&dir, "other.csv", "z\n1\n");
    let error = drift_report(
        &reference,
        &Table::open(&other).unwrap(),
        &DriftOptions::new(MethodSet::Sextant),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("no column in common"), "{error}");
}

/// What a printed report must show: category names under their bars, a
/// skewed amount on bins that each hold a part of the reference, readable
/// axis numbers; and with Sextant's methods the target's drift is its own
/// verdict, not one of the drifted features.
#[test]
fn the_html_report_reads_on_paper_and_counts_features() {
    let dir = tempfile::tempdir().unwrap();
    let mut reference = String::from("country,amount,label\n");
    let mut current = String::from("country,amount,label\n");
    for i in 0..2000 {
        // Amounts: mostly small, a long tail up to two million.
        let amount = if i % 50 == 0 {
            2_000_000.0 * (i as f64 / 2000.0)
        } else {
            (i % 97) as f64 * 3.5
        };
        let country = ["India", "Kenya", "Brazil"][i % 3];
        reference.push_str(&format!("{country},{amount},{}\n", i % 2));
        current.push_str(&format!("{country},{amount},{}\n", u8::from(i % 5 == 0)));
    }
    let reference = Table::open(&write(&dir, "ref.csv", &reference)).unwrap();
    let current = Table::open(&write(&dir, "cur.csv", &current)).unwrap();
    let mut options = DriftOptions::new(MethodSet::Sextant);
    options.target = Some("label".into());
    let report = drift_report(&reference, &current, &options).unwrap();
    assert!(column(&report, "label").drifted, "the label moved");
    assert_eq!(
        report.dataset.columns, 2,
        "features only: {:?}",
        report.dataset
    );
    assert_eq!(report.dataset.drifted_columns, 0, "{:?}", report.dataset);
    assert!(!report.dataset.drift);
    // Evidently's verdict counts the target, as Evidently does.
    let mut evidently = DriftOptions::new(MethodSet::Evidently);
    evidently.target = Some("label".into());
    let report_evidently = drift_report(&reference, &current, &evidently).unwrap();
    assert_eq!(report_evidently.dataset.columns, 3);

    let amount = &column(&report, "amount").distribution;
    assert!(
        amount.reference.iter().all(|&share| share <= 0.5),
        "a skewed column is drawn on quantile bins: {:?}",
        amount.reference
    );
    let page = html::render(&report);
    for name in ["India", "Kenya", "Brazil"] {
        assert!(
            page.contains(&format!(">{name}</text>")),
            "{name} is labelled"
        );
    }
    assert!(
        page.contains(">1.95M</text>"),
        "the largest amount, in M: {page}"
    );
    assert!(
        page.contains("@media (max-width:760px)"),
        "rows stack in a narrow window"
    );
}
