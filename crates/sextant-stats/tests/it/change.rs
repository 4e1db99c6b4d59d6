//! change (Page-Hinkley, DDM, ADWIN) against river 0.26.1's detectors with
//! their defaults, `tests/golden/change_detectors.json`.
//!
//! Exact: the state after every update must be the one river reported
//! ("S", "W" or "D"), and ADWIN's window after the last update must hold
//! bit-identical width, total and squared-deviation sum.

use serde_json::Value;
use sextant_stats::change::{
    Adwin, AdwinConfig, ChangeDetector, ChangeState, Ddm, DdmConfig, PageHinkley, PageHinkleyConfig,
};

struct Stream {
    name: String,
    values: Vec<f64>,
    golden: Value,
}

fn streams() -> Vec<Stream> {
    let data = crate::golden("change_detectors");
    data["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|stream| {
            let scale = stream["scale"].as_f64().expect("scale");
            let values = stream["ints"]
                .as_array()
                .expect("ints")
                .iter()
                .map(|k| k.as_i64().expect("integer") as f64 / scale)
                .collect();
            Stream {
                name: stream["name"].as_str().expect("name").to_owned(),
                values,
                golden: stream.clone(),
            }
        })
        .collect()
}

fn letters(detector: &mut impl ChangeDetector, values: &[f64]) -> String {
    values
        .iter()
        .map(|&x| match detector.update(x) {
            ChangeState::Stable => 'S',
            ChangeState::Warning => 'W',
            ChangeState::Drift => 'D',
        })
        .collect()
}

#[track_caller]
fn assert_same_states(actual: &str, expected: &str, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    if let Some(i) = actual
        .bytes()
        .zip(expected.bytes())
        .position(|(a, e)| a != e)
    {
        panic!(
            "{what}: first difference at update {i}: got {:?}, river {:?}",
            &actual[i..(i + 1)],
            &expected[i..(i + 1)]
        );
    }
}

#[test]
fn page_hinkley_matches_river() {
    let mut detections = 0;
    for stream in streams() {
        let mut detector = PageHinkley::new(PageHinkleyConfig::RIVER);
        let got = letters(&mut detector, &stream.values);
        let expected = stream.golden["page_hinkley"].as_str().unwrap();
        assert_same_states(&got, expected, &format!("PageHinkley on {}", stream.name));
        detections += got.matches('D').count();
    }
    assert!(
        detections > 10,
        "the streams must exercise detection and reset"
    );
}

#[test]
fn ddm_matches_river() {
    let mut warnings = 0;
    for stream in streams() {
        let Some(expected) = stream.golden["ddm"].as_str() else {
            continue;
        };
        let mut detector = Ddm::new(DdmConfig::RIVER);
        let got = letters(&mut detector, &stream.values);
        assert_same_states(&got, expected, &format!("DDM on {}", stream.name));
        warnings += got.matches('W').count();
    }
    assert!(warnings > 0, "the streams must exercise the warning zone");
}

#[test]
fn adwin_matches_river() {
    for stream in streams() {
        let mut detector = Adwin::new(AdwinConfig::RIVER);
        let got = letters(&mut detector, &stream.values);
        let expected = stream.golden["adwin"].as_str().unwrap();
        assert_same_states(&got, expected, &format!("ADWIN on {}", stream.name));
        let last = &stream.golden["adwin_final"];
        assert_eq!(
            detector.width(),
            last["width"].as_f64().unwrap(),
            "{}",
            stream.name
        );
        assert_eq!(
            detector.total(),
            last["total"].as_f64().unwrap(),
            "{}",
            stream.name
        );
        assert_eq!(
            detector.squared_deviation_sum(),
            last["variance"].as_f64().unwrap(),
            "{}",
            stream.name
        );
    }
}

#[test]
fn adwin_detects_the_bernoulli_step_and_not_the_stationary_stream() {
    for stream in streams() {
        let mut detector = Adwin::new(AdwinConfig::RIVER);
        let drifts: Vec<usize> = stream
            .values
            .iter()
            .enumerate()
            .filter(|&(_, &x)| detector.update(x) == ChangeState::Drift)
            .map(|(i, _)| i)
            .collect();
        match stream.name.as_str() {
            "bernoulli_step" | "gaussian_shift" => {
                assert!(
                    drifts.iter().any(|&i| (2000..2200).contains(&i)),
                    "{drifts:?}"
                )
            }
            "bernoulli_stationary" | "gaussian_stationary" => assert!(drifts.is_empty()),
            _ => {}
        }
    }
}
