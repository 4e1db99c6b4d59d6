"""Quality gates: `sextant validate` on models people ship (pipelines with encoders and
categorical columns), its figures against scikit-learn and fairlearn, the behavioural
tests and data expectations, and the gate that keeps a failing version from an alias."""

from __future__ import annotations

import json
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from _helpers import unique

pytestmark = pytest.mark.filterwarnings("ignore")

LOCATIONS = ["same_region", "other_region", "abroad", "unknown"]
FEATURES = ["location_of_call", "money_asked", "call_duration_s", "asked_remote_access", "opened_bank_website"]


def sextant_bin() -> str:
    import os

    return os.environ.get("SEXTANT_BIN", str(Path(__file__).resolve().parents[2] / "target/debug/sextant"))


def scam_calls(n: int, seed: int) -> pd.DataFrame:
    """The seeds' scam-call world: same_region and other_region carry the same risk,
    call_duration_s is noise, remote access and large sums make a scam likely."""
    rng = np.random.default_rng(seed)
    location = rng.choice(LOCATIONS, size=n, p=[0.35, 0.35, 0.2, 0.1])
    money = rng.gamma(2.0, 800.0, size=n).round(2)
    duration = rng.uniform(30, 1800, size=n).round(1)
    remote = rng.random(n) < 0.3
    bank = rng.random(n) < 0.25
    logit = -3.2 + 2.2 * remote + 1.4 * bank + 0.0009 * money + np.where(location == "abroad", 1.2, 0.0) + np.where(location == "unknown", 0.6, 0.0)
    scam = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "call_id": np.arange(n),
            "location_of_call": location,
            "money_asked": money,
            "call_duration_s": duration,
            "asked_remote_access": remote.astype(int),
            "opened_bank_website": bank.astype(int),
            "caller_sex": rng.choice(["F", "M"], size=n),
            "is_scam": scam.astype(int),
        }
    )


def pipeline(estimator, domestic_alike: bool = False) -> Pipeline:
    # With domestic_alike, same_region and other_region both encode as "neither abroad nor
    # unknown": the model cannot tell them apart, as the world does not.
    categories = [["abroad", "unknown"]] if domestic_alike else "auto"
    encode = ColumnTransformer(
        [
            ("location", OneHotEncoder(categories=categories, handle_unknown="ignore"), ["location_of_call"]),
            ("numbers", StandardScaler(), ["money_asked", "call_duration_s", "asked_remote_access", "opened_bank_website"]),
        ]
    )
    return Pipeline([("encode", encode), ("model", estimator)])


def save(model, directory: Path, sample: pd.DataFrame) -> Path:
    mlflow.sklearn.save_model(model, str(directory), input_example=sample[FEATURES].head(5), serialization_format="cloudpickle")
    return directory


def run_validate(model: str, spec: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    environment = dict(os.environ)
    environment.pop("SEXTANT_TOKEN", None)
    environment.setdefault("SEXTANT_SERVER", "http://127.0.0.1:9")
    if env:
        environment.update(env)
    return subprocess.run(
        [sextant_bin(), "validate", "--model", model, "--spec", str(spec), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("gates")
    train = scam_calls(6000, seed=1)
    test = scam_calls(3000, seed=2)
    train.to_csv(root / "train.csv", index=False)
    test.to_csv(root / "test.csv", index=False)
    logistic = pipeline(LogisticRegression(max_iter=500)).fit(train[FEATURES], train["is_scam"])
    save(logistic, root / "logistic", train)
    return {"root": root, "train": train, "test": test, "logistic": logistic}


def test_figures_match_sklearn_and_fairlearn(world):
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        selection_rate,
    )
    from sklearn import metrics as skm

    root, test, model = world["root"], world["test"], world["logistic"]
    spec = root / "figures.yaml"
    spec.write_text(
        """
task: {type: binary_classification, label: is_scam, positive_class: 1}
datasets:
  test: {uri: test.csv}
tests:
  - {id: accuracy, kind: metric, dataset: test, metric: accuracy, min: 0}
  - {id: balanced_accuracy, kind: metric, dataset: test, metric: balanced_accuracy, min: 0}
  - {id: precision, kind: metric, dataset: test, metric: precision, min: 0}
  - {id: recall, kind: metric, dataset: test, metric: recall, min: 0}
  - {id: f1, kind: metric, dataset: test, metric: f1, min: 0}
  - {id: roc_auc, kind: metric, dataset: test, metric: roc_auc, min: 0}
  - {id: log_loss, kind: metric, dataset: test, metric: log_loss, max: 100}
  - {id: brier, kind: metric, dataset: test, metric: brier_score, max: 1}
  - id: by_location
    kind: slice_metric
    dataset: test
    metric: roc_auc
    slices: [{by: location_of_call}, {name: big_sums, where: {money_asked: {gte: 2000}}}]
    min: 0
  - id: sex
    kind: fairness
    dataset: test
    sensitive_features: [caller_sex]
    metrics: [accuracy, selection_rate]
    expect:
      demographic_parity_difference: {max: 1}
      equalized_odds_difference: {max: 1}
      accuracy.ratio: {min: 0}
      accuracy.difference: {max: 1}
"""
    )
    result = run_validate(str(root / "logistic"), spec, "--format", "json")
    assert result.returncode == 0, result.stderr + result.stdout
    report = json.loads(result.stdout)
    assert report["status"] == "passed"
    by_id = {a["id"]: a for t in report["tests"] for a in t["assertions"]}

    y = test["is_scam"].to_numpy()
    proba = model.predict_proba(test[FEATURES])[:, 1]
    predicted = model.predict(test[FEATURES])
    expected = {
        "accuracy/min": skm.accuracy_score(y, predicted),
        "balanced_accuracy/min": skm.balanced_accuracy_score(y, predicted),
        "precision/min": skm.precision_score(y, predicted),
        "recall/min": skm.recall_score(y, predicted),
        "f1/min": skm.f1_score(y, predicted),
        "roc_auc/min": skm.roc_auc_score(y, proba),
        "log_loss/max": skm.log_loss(y, proba),
        "brier/max": skm.brier_score_loss(y, proba),
    }
    for key, value in expected.items():
        assert by_id[key]["value"] == pytest.approx(value, abs=1e-9), key
    for location in LOCATIONS:
        rows = test["location_of_call"] == location
        assert by_id[f"by_location[location_of_call={location}]/min"]["value"] == pytest.approx(
            skm.roc_auc_score(y[rows], proba[rows]), abs=1e-9
        )
    big = test["money_asked"] >= 2000
    assert by_id["by_location[big_sums]/min"]["value"] == pytest.approx(skm.roc_auc_score(y[big], proba[big]), abs=1e-9)

    sex = test["caller_sex"]
    frame = MetricFrame(
        metrics={"accuracy": skm.accuracy_score, "selection_rate": selection_rate},
        y_true=y,
        y_pred=predicted,
        sensitive_features=sex,
    )
    assert by_id["sex/demographic_parity_difference"]["value"] == pytest.approx(
        demographic_parity_difference(y, predicted, sensitive_features=sex), abs=1e-12
    )
    assert by_id["sex/equalized_odds_difference"]["value"] == pytest.approx(
        equalized_odds_difference(y, predicted, sensitive_features=sex), abs=1e-12
    )
    assert by_id["sex/accuracy.ratio"]["value"] == pytest.approx(frame.ratio()["accuracy"], abs=1e-12)
    assert by_id["sex/accuracy.difference"]["value"] == pytest.approx(frame.difference()["accuracy"], abs=1e-12)
    # The intervals are MetricFrame's bootstrap intervals, up to resampling noise.
    booted = MetricFrame(
        metrics={"accuracy": skm.accuracy_score}, y_true=y, y_pred=predicted, sensitive_features=sex,
        n_boot=1000, ci_quantiles=[0.025, 0.975], random_state=1,
    )
    low, high = (series["accuracy"] for series in booted.difference_ci())
    ours = by_id["sex/accuracy.difference"]["interval"]
    assert ours[0] <= by_id["sex/accuracy.difference"]["value"] <= ours[1]
    assert ours == pytest.approx([low, high], abs=0.01), (ours, low, high)
    groups = {g["group"]: g for g in next(t for t in report["tests"] if t["id"] == "sex")["details"]["by_group"]}
    for value in ["F", "M"]:
        assert groups[f"caller_sex={value}"]["accuracy"] == pytest.approx(frame.by_group.loc[value, "accuracy"], abs=1e-12)
        assert groups[f"caller_sex={value}"]["selection_rate"] == pytest.approx(frame.by_group.loc[value, "selection_rate"], abs=1e-12)
    # The recorded data hash is the file's.
    import hashlib

    assert report["datasets"][0]["sha256"] == hashlib.sha256((root / "test.csv").read_bytes()).hexdigest()
    assert report["datasets"][0]["rows"] == len(test)


def location_sensitive(train: pd.DataFrame) -> Pipeline:
    """A model that learnt a difference between same_region and other_region that the
    world does not have: its training labels were shifted for other_region calls."""
    biased = train.copy()
    other = biased["location_of_call"] == "other_region"
    rng = np.random.default_rng(5)
    biased.loc[other, "is_scam"] = (rng.random(other.sum()) < 0.6).astype(int)
    return pipeline(RandomForestClassifier(n_estimators=40, max_depth=8, random_state=0)).fit(
        biased[FEATURES], biased["is_scam"]
    )


BEHAVIOUR_SPEC = """
task: {type: binary_classification, label: is_scam, positive_class: 1}
schema:
  features:
    location_of_call: {type: category, values: [same_region, other_region, abroad, unknown]}
datasets:
  test: {uri: test.csv}
  canonical_scams:
    generate:
      seed: 17
      n: 300
      label: 1
      columns:
        asked_remote_access: {const: 1}
        opened_bank_website: {const: 1}
        location_of_call: {choice: [abroad]}
        money_asked: {uniform: [9000, 20000]}
        call_duration_s: {uniform: [60, 1800]}
  cases:
    rows:
      - {location_of_call: abroad, money_asked: 15000, call_duration_s: 300, asked_remote_access: 1, opened_bank_website: 1, is_scam: 1}
      - {location_of_call: same_region, money_asked: 5, call_duration_s: 60, asked_remote_access: 0, opened_bank_website: 0, is_scam: 0}
tests:
  - {id: mft.canonical_scams, kind: expect_label, dataset: canonical_scams, min_pass_rate: 0.95}
  - {id: mft.cases, kind: expect_label, dataset: cases, min_pass_rate: 1.0}
  - id: inv.domestic_region
    kind: invariance
    dataset: {ref: test, sample: 1500, seed: 3, where: {location_of_call: {in: [same_region, other_region]}}}
    perturb: {location_of_call: {swap: [same_region, other_region]}}
    expect: {max_abs_score_delta: 0.05, min_pass_rate: 0.99, max_label_flip_rate: 0.01}
  - id: dir.remote_access
    kind: directional
    dataset: {ref: test, where: {asked_remote_access: {eq: 0}}}
    perturb: {asked_remote_access: {set: 1}}
    expect: {score: non_decreasing, tolerance: 0.0, min_pass_rate: 0.99}
"""


def test_invariance_catches_a_location_sensitive_model(world):
    root, train = world["root"], world["train"]
    save(location_sensitive(train), root / "sensitive", train)
    alike = pipeline(LogisticRegression(max_iter=500), domestic_alike=True).fit(train[FEATURES], train["is_scam"])
    save(alike, root / "domestic-alike", train)
    spec = root / "behaviour.yaml"
    spec.write_text(BEHAVIOUR_SPEC)

    fair = run_validate(str(root / "domestic-alike"), spec, "--format", "json")
    assert fair.returncode == 0, fair.stdout + fair.stderr
    verdicts = {a["id"]: a["verdict"] for t in json.loads(fair.stdout)["tests"] for a in t["assertions"]}
    assert verdicts == {
        "mft.canonical_scams/pass_rate": "passed",
        "mft.cases/pass_rate": "passed",
        "inv.domestic_region/pass_rate": "passed",
        "inv.domestic_region/label_flip_rate": "passed",
        "dir.remote_access/pass_rate": "passed",
    }

    sensitive = run_validate(str(root / "sensitive"), spec, "--format", "json")
    assert sensitive.returncode == 1, sensitive.stdout + sensitive.stderr
    report = json.loads(sensitive.stdout)
    assert report["status"] == "failed"
    assert "inv.domestic_region/pass_rate" in report["failed_checks"]
    invariance = next(t for t in report["tests"] if t["id"] == "inv.domestic_region")
    assert invariance["rows"] == 1500
    assert invariance["details"]["failing_rows"], "failing rows are sampled"
    # With their inputs, so a reader sees which calls were treated differently.
    sampled = invariance["details"]["failing_rows"][0]
    assert sampled["values"]["location_of_call"] in {"same_region", "other_region"}, sampled


def test_expectations_catch_an_injected_bad_column(world):
    root = world["root"]
    bad = world["test"].copy()
    bad.loc[bad.index[:40], "money_asked"] = -1.0
    bad.loc[bad.index[40:45], "location_of_call"] = "mars"
    bad.loc[bad.index[50:60], "call_id"] = 7
    bad.to_csv(root / "bad.csv", index=False)
    spec = root / "data.yaml"
    spec.write_text(
        """
task: {type: binary_classification, label: is_scam}
schema:
  features:
    location_of_call: {values: [same_region, other_region, abroad, unknown]}
datasets:
  good: {uri: test.csv}
  bad: {uri: bad.csv}
tests:
  - id: data.good
    kind: expectations
    dataset: good
    expectations: &checks
      - {expect: table_row_count_between, min: 1000}
      - {expect: column_values_not_null, column: location_of_call}
      - {expect: column_values_in_set, column: location_of_call, from_schema: true}
      - {expect: column_values_between, column: money_asked, min: 0, max: 1000000, mostly: 0.999}
      - {expect: column_values_unique, column: call_id}
      - {expect: column_mean_between, column: is_scam, min: 0.02, max: 0.6}
      - {expect: column_values_match_regex, column: location_of_call, regex: "^[a-z_]+$"}
      - {expect: column_type, column: money_asked, type: numeric}
  - {id: data.bad, kind: expectations, dataset: bad, expectations: *checks}
"""
    )
    result = run_validate(str(root / "logistic"), spec, "--format", "json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    good = next(t for t in report["tests"] if t["id"] == "data.good")
    assert all(a["verdict"] == "passed" for a in good["assertions"]), good
    assert set(report["failed_checks"]) == {
        "data.bad/column_values_in_set(location_of_call)",
        "data.bad/column_values_between(money_asked)",
        "data.bad/column_values_unique(call_id)",
    }
    outcomes = {o["expectation"] + o.get("column", ""): o for o in next(t for t in report["tests"] if t["id"] == "data.bad")["details"]["expectations"]}
    money = outcomes["column_values_betweenmoney_asked"]
    assert money["unexpected_count"] == 40
    assert money["unexpected_rows"][0] == {"row": 0, "value": -1.0}
    assert outcomes["column_values_in_setlocation_of_call"]["unexpected_count"] == 5


def test_weak_slices_are_found_merged_and_measured(world):
    """A pipeline with a one-hot encoder, on a test set whose labels were corrupted in
    one region and among sums between the median and the third quartile: the search names
    those two segments (two adjacent bins of money_asked merged into one range), reports no segment inside them, and
    its accuracies are scikit-learn's on the same rows. The clean test set passes."""
    from sklearn.metrics import accuracy_score

    root, test, model = world["root"], world["test"], world["logistic"]
    corrupted = test.copy()
    rng = np.random.default_rng(5)
    unknown = corrupted["location_of_call"] == "unknown"
    money = corrupted["money_asked"]
    middle = (money >= money.quantile(0.5)) & (money < money.quantile(0.75))
    flip = (unknown | middle) & (rng.random(len(corrupted)) < 0.7)
    corrupted.loc[flip, "is_scam"] = 1 - corrupted.loc[flip, "is_scam"]
    corrupted.to_csv(root / "corrupted.csv", index=False)
    spec = root / "weak.yaml"
    spec.write_text(
        """
task: {type: binary_classification, label: is_scam}
datasets:
  clean: {uri: test.csv}
  corrupted: {uri: corrupted.csv}
tests:
  - &search
    id: weak.clean
    kind: weak_slices
    dataset: clean
    metric: accuracy
    features: [location_of_call, money_asked, caller_sex]
    max_gap_to_overall: 0.2
    bins: 8
    min_support: 50
  - {<<: *search, id: weak.corrupted, dataset: corrupted}  # a YAML merge key
"""
    )
    result = run_validate(str(root / "logistic"), spec, "--format", "json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    tests = {t["id"]: t for t in report["tests"]}
    clean = tests["weak.clean"]
    assert [a["verdict"] for a in clean["assertions"]] == ["passed"], clean
    assert clean["details"]["segments_judged"] > 10

    found = tests["weak.corrupted"]["details"]
    names = [w["slice"] for w in found["weak_slices"]]
    assert "location_of_call=unknown" in names, names
    money_ranges = [n for n in names if n.startswith("money_asked in")]
    assert len(money_ranges) == 1, found  # two adjacent bins, merged
    assert not any(" and " in n and ("location_of_call=unknown" in n or "money_asked" in n) for n in names), names
    predicted = model.predict(corrupted[FEATURES])
    overall = accuracy_score(corrupted["is_scam"], predicted)
    assert found["overall"] == pytest.approx(overall, abs=1e-12)
    for weak in found["weak_slices"]:
        if weak["slice"] == "location_of_call=unknown":
            rows = unknown.to_numpy()
        elif weak["slice"] in money_ranges:
            low, high = (float(x) for x in weak["slice"].split("[")[1].rstrip(")]").split(", "))
            assert low == pytest.approx(money.quantile(0.5), rel=0.02) and high == pytest.approx(money.quantile(0.75), rel=0.02)
            rows = ((money >= low) & (money < high)).to_numpy()
        else:
            continue
        assert weak["rows"] == int(rows.sum()), weak
        assert weak["value"] == pytest.approx(accuracy_score(corrupted["is_scam"][rows], predicted[rows]), abs=1e-12)
        assert weak["gap"] == pytest.approx(overall - weak["value"], abs=1e-12)
    failed = set(report["failed_checks"])
    assert "weak.corrupted[location_of_call=unknown]/gap_to_overall" in failed, failed
    assert not any(c.startswith("weak.clean") for c in failed)


def test_reports_in_junit_and_html(world):
    root = world["root"]
    spec = root / "behaviour.yaml"
    spec.write_text(BEHAVIOUR_SPEC)
    save(location_sensitive(world["train"]), root / "sensitive-2", world["train"])
    junit = run_validate(str(root / "sensitive-2"), spec, "--format", "junit")
    assert junit.returncode == 1
    suites = ET.fromstring(junit.stdout)
    assert suites.tag == "testsuites"
    assert int(suites.get("failures")) >= 1
    names = [case.get("name") for case in suites.iter("testcase") if case.find("failure") is not None]
    assert "inv.domestic_region/pass_rate" in names
    out = root / "report.html"
    html = run_validate(str(root / "sensitive-2"), spec, "--format", "html", "--output", str(out))
    assert html.returncode == 1
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "inv.domestic_region/pass_rate" in page
    assert "<script" not in page and "http" not in page.split("<body>")[1].split("sha256")[0]


def test_baseline_comparison_with_paired_bootstrap(world):
    root, train = world["root"], world["train"]
    weak = pipeline(LogisticRegression(max_iter=500)).fit(train[["location_of_call", "money_asked", "call_duration_s", "asked_remote_access", "opened_bank_website"]].assign(asked_remote_access=0), train["is_scam"])
    save(weak, root / "weak", train)
    spec = root / "baseline.yaml"
    spec.write_text(
        """
task: {type: binary_classification, label: is_scam}
datasets: {test: {uri: test.csv}}
defaults: {bootstrap: {resamples: 300, seed: 11}}
tests:
  - {id: auc, kind: metric, dataset: test, metric: roc_auc, min: 0.5, vs_baseline: {max_drop: 0.01, significance: bootstrap}}
  - {id: recall_slices, kind: slice_metric, dataset: test, metric: recall, slices: [{by: location_of_call}], min: {value: 0.99, significance: bootstrap}, min_rows: 50}
"""
    )
    # The good model against the weak one: no worse, and the interval is reported.
    better = run_validate(str(root / "logistic"), spec, "--baseline", str(root / "weak"), "--format", "json")
    report = json.loads(better.stdout)
    auc = next(a for t in report["tests"] for a in t["assertions"] if a["id"] == "auc/vs_baseline")
    assert auc["verdict"] == "passed" and auc["interval"][0] < auc["value"] < auc["interval"][1]
    # The weak model against the good one: significantly worse.
    worse = run_validate(str(root / "weak"), spec, "--baseline", str(root / "logistic"), "--format", "json")
    assert worse.returncode == 1
    report = json.loads(worse.stdout)
    assert "auc/vs_baseline" in report["failed_checks"]
    # Small slices fail only when their whole interval is below the bound.
    slices = {a["id"]: a for t in report["tests"] for a in t["assertions"] if a["id"].startswith("recall_slices")}
    assert all(a["interval"] is not None for a in slices.values() if a["id"].endswith("/min"))
    # Without a baseline, comparisons are skipped, never passed.
    alone = run_validate(str(root / "weak"), spec, "--format", "json")
    skipped = next(a for t in json.loads(alone.stdout)["tests"] for a in t["assertions"] if a["id"] == "auc/vs_baseline")
    assert skipped["verdict"] == "skipped"


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("task: {type: binary_classification, label: y}\ndatasets: {t: {uri: a.csv}}\ntests:\n  - {id: a, kind: metric, dataset: t, metric: acuracy, min: 0.5}\n", 4, "tests[0].metric"),
        ("task: {type: binary_classification, label: y}\ndatasets: {t: {uri: a.csv}}\ntests:\n  - id: a\n    kind: metric\n    dataset: t\n    metric: accuracy\n    minimum: 0.5\n", 8, "tests[0].minimum"),
        ("task:\n  type: binary\n  label: y\ntests: []\n", 2, "task.type"),
        ("task: {type: regression, label: y}\ndatasets: {t: {uri: a.csv}}\ntests:\n  - {id: a, kind: metric, dataset: missing, metric: mae, max: 1}\n", 4, "tests[0].dataset"),
        ("task: {type: regression, label: y}\ntests:\n  - {id: a, kind: metric\n", 4, "not valid YAML"),
        ("task: {type: regression, label: y}\ndatasets: {t: {uri: a.csv}}\ntests:\n  - id: a\n    kind: weak_slices\n    dataset: t\n    metric: mae\n    features: [x]\n    max_gap_to_overall: 1\n    bins: 50\n", 10, "tests[0].bins"),
        ("task: {type: regression, label: y}\ndatasets: {t: {uri: a.csv}}\ntests:\n  - id: a\n    kind: metric\n    dataset: t\n    metric: mae\n    max: high\n", 8, "tests[0].max: must be a number"),
    ],
)
def test_malformed_specs_name_line_and_field(world, text, line, field):
    spec = world["root"] / "bad-spec.yaml"
    spec.write_text(text)
    result = run_validate(str(world["root"] / "logistic"), spec)
    assert result.returncode == 2
    assert f"line {line}" in result.stderr, result.stderr
    assert field in result.stderr


def test_unreadable_dataset_is_named(world):
    root = world["root"]
    (root / "broken.parquet").write_bytes(b"PAR1 not really")
    spec = root / "broken.yaml"
    spec.write_text(
        "task: {type: binary_classification, label: is_scam}\n"
        "datasets: {holdout: {uri: broken.parquet}, gone: {uri: nowhere.csv}}\n"
        "tests:\n  - {id: a, kind: metric, dataset: holdout, metric: accuracy, min: 0.5}\n"
    )
    result = run_validate(str(root / "logistic"), spec)
    assert result.returncode == 2
    assert "gone" in result.stderr and "nowhere.csv" in result.stderr
    spec.write_text(
        "task: {type: binary_classification, label: is_scam}\n"
        "datasets: {holdout: {uri: broken.parquet}}\n"
        "tests:\n  - {id: a, kind: metric, dataset: holdout, metric: accuracy, min: 0.5}\n"
    )
    result = run_validate(str(root / "logistic"), spec, "--format", "json")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["status"] == "error"
    assert "holdout" in report["tests"][0]["assertions"][0]["message"]
    # A misspelt label column cannot run (exit 2, naming it), rather than failing on no labelled rows.
    (root / "labelled.csv").write_text(world["test"].to_csv(index=False))
    spec.write_text(
        "task: {type: binary_classification, label: is_scamm}\n"
        "datasets: {holdout: {uri: labelled.csv}}\n"
        "tests:\n  - {id: a, kind: metric, dataset: holdout, metric: accuracy, min: 0.5}\n"
    )
    result = run_validate(str(root / "logistic"), spec, "--format", "json")
    assert result.returncode == 2, result.stdout
    message = json.loads(result.stdout)["tests"][0]["assertions"][0]["message"]
    assert "no label column 'is_scamm'" in message and "is_scam" in message, message


# ---------------------------------------------------------------------------------------
# The gate in the server: every new version of a model with a spec is validated, and a
# failing one cannot take an alias, a stage or a deployment.
# ---------------------------------------------------------------------------------------

GATE_SPEC = """
task: {{type: binary_classification, label: is_scam, positive_class: 1}}
schema:
  features:
    location_of_call: {{values: [same_region, other_region, abroad, unknown]}}
datasets:
  test: {{uri: "runs:/{run_id}/data/holdout.csv"}}
baseline: {{model: "models:/{name}@champion"}}
defaults: {{bootstrap: {{resamples: 200, seed: 7}}}}
tests:
  - {{id: perf.auc, kind: metric, dataset: test, metric: roc_auc, min: 0.78, vs_baseline: {{max_drop: 0.02}}}}
  - id: slice.location
    kind: slice_metric
    dataset: test
    metric: roc_auc
    slices: [{{by: location_of_call}}]
    max_gap_to_overall: 0.12
    min_rows: 50
  - id: inv.domestic_region
    kind: invariance
    dataset: {{ref: test, where: {{location_of_call: {{in: [same_region, other_region]}}}}}}
    perturb: {{location_of_call: {{swap: [same_region, other_region]}}}}
    expect: {{max_abs_score_delta: 0.05, min_pass_rate: 0.99}}
  - {{id: data.holdout, kind: expectations, dataset: test, expectations: [{{expect: column_values_in_set, column: location_of_call, from_schema: true}}]}}
gates:
  - {{to: staging, require: {{severity: blocking, exclude: ["*/vs_baseline"]}}}}
"""


def wait_for_validation(server, name: str, version: int, timeout: float = 120) -> dict:
    url = f"{server.uri}/api/v1/registered-models/{name}/versions/{version}/validation"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = requests.get(url, timeout=10)
        if answer.status_code == 200 and answer.json()["status"] != "pending":
            return answer.json()
        time.sleep(0.25)
    raise AssertionError(f"validation of {name} v{version} still pending: {answer.text}\n{server.log_tail()}")


@pytest.mark.sextant_only
def test_failing_version_cannot_take_the_alias(server, client, tracking_uri, experiment_id, world):
    train, test = world["train"], world["test"]
    name = unique("scam-calls")
    with mlflow.start_run() as run:
        holdout = Path(world["root"]) / "holdout.csv"
        test.to_csv(holdout, index=False)
        mlflow.log_artifact(str(holdout), artifact_path="data")
    spec = GATE_SPEC.format(run_id=run.info.run_id, name=name)

    def register(model) -> int:
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model, name="model", input_example=train[FEATURES].head(3), serialization_format="cloudpickle",
                registered_model_name=name,
            )
        return int(info.registered_model_version)

    client.create_registered_model(name)
    # A malformed spec is refused with the line and the field.
    bad = requests.put(f"{server.uri}/api/v1/registered-models/{name}/validation-spec",
                       json={"spec": spec.replace("metric: roc_auc, min", "metric: roc_acu, min")}, timeout=10)
    assert bad.status_code == 400, bad.text
    assert bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "line 11" in bad.json()["message"] and "tests[0].metric" in bad.json()["message"]
    # A spec that reads files on the server's disk is refused.
    local = requests.put(f"{server.uri}/api/v1/registered-models/{name}/validation-spec",
                         json={"spec": spec.replace(f"runs:/{run.info.run_id}/data/holdout.csv", "/etc/passwd")}, timeout=10)
    assert local.status_code == 400 and "run artifacts" in local.json()["message"]
    # A mistyped artifact or dataset is refused when attached, not found wanting on the next version.
    for wrong in [f"runs:/{run.info.run_id}/data/holdout.cvs", "dataset:no-such-dataset@latest"]:
        absent = requests.put(f"{server.uri}/api/v1/registered-models/{name}/validation-spec",
                              json={"spec": spec.replace(f"runs:/{run.info.run_id}/data/holdout.csv", wrong)}, timeout=10)
        assert absent.status_code == 400 and wrong in absent.json()["message"], absent.text
    attached = requests.put(f"{server.uri}/api/v1/registered-models/{name}/validation-spec", json={"spec": spec}, timeout=10)
    assert attached.status_code == 200, attached.text
    assert attached.json()["tests"] == ["perf.auc", "slice.location", "inv.domestic_region", "data.holdout"]

    # Version 1: a sound model, the first champion (nothing to compare with: skipped).
    first = register(pipeline(LogisticRegression(max_iter=500), domestic_alike=True).fit(train[FEATURES], train["is_scam"]))
    result = wait_for_validation(server, name, first)
    assert result["status"] == "passed", json.dumps(result, indent=1)
    comparisons = [a for t in result["report"]["tests"] for a in t["assertions"] if a["id"].endswith("/vs_baseline")]
    assert comparisons and all(a["verdict"] == "skipped" for a in comparisons)
    client.set_registered_model_alias(name, "champion", str(first))

    # Version 2: over-fitted trees that also learnt a difference between the domestic regions.
    overfit = pipeline(RandomForestClassifier(n_estimators=30, max_depth=None, min_samples_leaf=1, random_state=0))
    small = train.sample(400, random_state=3)
    second = register(overfit.fit(small[FEATURES], small["is_scam"]))
    # While it runs the version is pending, and pending versions do not move either.
    result = wait_for_validation(server, name, second)
    assert result["status"] == "failed", json.dumps(result, indent=1)
    assert "perf.auc/vs_baseline" in result["failed_checks"]
    assert "inv.domestic_region/pass_rate" in result["failed_checks"]
    with pytest.raises(mlflow.exceptions.MlflowException) as refused:
        client.set_registered_model_alias(name, "champion", str(second))
    message = str(refused.value)
    assert "perf.auc/vs_baseline" in message and "inv.domestic_region/pass_rate" in message
    assert client.get_model_version_by_alias(name, "champion").version == str(first)
    # Nor a stage, nor a deployment.
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.transition_model_version_stage(name, str(second), "Production")
    deploy = requests.post(f"{server.uri}/api/v1/deployments", json={"name": unique("gate"), "model": f"{name}/{second}"}, timeout=60)
    assert deploy.status_code == 409 and "failed validation" in deploy.json()["message"], deploy.text
    # A shadow may run it (it answers no one), but promoting the shadow is refused.
    deployment = unique("gate")
    created = requests.post(f"{server.uri}/api/v1/deployments", json={"name": deployment, "model": f"{name}/{first}"}, timeout=120)
    assert created.status_code == 200, created.text
    shadowed = requests.post(f"{server.uri}/api/v1/deployments/{deployment}/shadow", json={"model": f"{name}/{second}"}, timeout=120)
    assert shadowed.status_code == 200, shadowed.text
    promoted = requests.post(f"{server.uri}/api/v1/deployments/{deployment}/promote", json={}, timeout=60)
    assert promoted.status_code == 409 and "failed validation" in promoted.json()["message"], promoted.text
    live = requests.get(f"{server.uri}/api/v1/deployments/{deployment}", timeout=10).json()
    assert [(a["model"]["version"], a["role"]) for a in live["spec"]["arms"] if a["role"] == "live"] == [(str(first), "live")], live
    # The reports are there for people: JSON in the answer, HTML beside it.
    page = requests.get(f"{server.uri}/api/v1/registered-models/{name}/versions/{second}/validation/report.html", timeout=10)
    assert page.status_code == 200 and "inv.domestic_region/pass_rate" in page.text
    assert "script-src" not in page.headers.get("content-security-policy", "") and "default-src 'none'" in page.headers["content-security-policy"]

    # The version page says so, at a glance.
    version_page = requests.get(f"{server.uri}/models/{name}/versions/{second}", timeout=10)
    assert version_page.status_code == 200
    assert "validation-failed" in version_page.text and "inv.domestic_region/pass_rate" in version_page.text
    assert f"/api/v1/registered-models/{name}/versions/{second}/validation/report.html" in version_page.text

    # Version 3: the fixed candidate passes and takes the alias.
    fixed = pipeline(LogisticRegression(max_iter=500, C=2.0), domestic_alike=True).fit(train[FEATURES], train["is_scam"])
    third = register(fixed)
    result = wait_for_validation(server, name, third)
    assert result["status"] == "passed", json.dumps(result["failed_checks"])
    compared = next(a for t in result["report"]["tests"] for a in t["assertions"] if a["id"] == "perf.auc/vs_baseline")
    assert compared["verdict"] == "passed" and result["report"]["baseline"] == f"models:/{name}/{first}"
    client.set_registered_model_alias(name, "champion", str(third))
    assert client.get_model_version_by_alias(name, "champion").version == str(third)

    # An override needs a reason and is audited; then the failed version may move.
    empty = requests.post(f"{server.uri}/api/v1/registered-models/{name}/versions/{second}/validation/override", json={"reason": " "}, timeout=10)
    assert empty.status_code == 400
    overridden = requests.post(f"{server.uri}/api/v1/registered-models/{name}/versions/{second}/validation/override",
                               json={"reason": "accepted risk for a shadow comparison"}, timeout=10)
    assert overridden.status_code == 200 and overridden.json()["status"] == "overridden"
    client.set_registered_model_alias(name, "challenger", str(second))
    audit = requests.get(f"{server.uri}/api/v1/audit", params={"resource_type": "registered_model", "resource_id": name}, timeout=10).json()
    details = [e["detail"] for e in audit["entries"]]
    assert any("validation overridden: accepted risk" in d for d in details)
    assert any(d.startswith(f"version {second}: validation failed") for d in details)


def test_expectations_check_on_a_file(world):
    root = world["root"]
    bad = world["test"].copy()
    bad.loc[bad.index[:7], "money_asked"] = -5.0
    bad.to_csv(root / "bad-money.csv", index=False)
    (root / "expectations.yaml").write_text(
        "schema:\n  features:\n    location_of_call: {values: [same_region, other_region, abroad, unknown]}\n"
        "expectations:\n"
        "  - {expect: column_values_between, column: money_asked, min: 0}\n"
        "  - {expect: column_values_in_set, column: location_of_call, from_schema: true}\n"
        "  - {expect: column_values_unique, column: call_id}\n"
        "  - {expect: column_values_in_set, column: is_scam, values: [0, 1]}\n"
    )
    check = lambda data, spec: subprocess.run(  # noqa: E731
        [sextant_bin(), "expectations", "check", str(data), str(spec), "--format", "json"], capture_output=True, text=True, timeout=120
    )
    good = check(root / "test.csv", root / "expectations.yaml")
    assert good.returncode == 0, good.stdout + good.stderr
    assert json.loads(good.stdout)["rows"] == len(world["test"])
    failed = check(root / "bad-money.csv", root / "expectations.yaml")
    assert failed.returncode == 1
    outcome = json.loads(failed.stdout)["expectations"][0]
    assert outcome["unexpected_count"] == 7 and outcome["unexpected_rows"][0] == {"row": 0, "value": -5.0}
    # For a CI job: JUnit XML (one test case per expectation) and an HTML page, same exit code.
    import xml.etree.ElementTree as ET

    junit = subprocess.run([sextant_bin(), "expectations", "check", str(root / "bad-money.csv"), str(root / "expectations.yaml"), "--format", "junit"],
                           capture_output=True, text=True, timeout=120)
    assert junit.returncode == 1
    suites = ET.fromstring(junit.stdout)
    assert suites.get("tests") == "4" and suites.get("failures") == "1", junit.stdout
    failure = suites.find(".//testcase/failure")
    assert failure is not None and "7 unexpected rows" in failure.get("message")
    page = subprocess.run([sextant_bin(), "expectations", "check", str(root / "bad-money.csv"), str(root / "expectations.yaml"), "--format", "html"],
                          capture_output=True, text=True, timeout=120)
    assert page.returncode == 1 and page.stdout.startswith("<!DOCTYPE html>") and "column_values_between" in page.stdout
    assert "<script" not in page.stdout
    (root / "broken.yaml").write_text("expectations:\n  - {expect: column_values_between, column: money_asked}\n")
    broken = check(root / "test.csv", root / "broken.yaml")
    assert broken.returncode == 2 and "line 2" in broken.stderr and "expectations[0]" in broken.stderr


@pytest.mark.sextant_only
def test_server_validates_on_a_stored_dataset(server, client, tracking_uri, experiment_id, world):
    import hashlib
    import os

    train, root = world["train"], Path(world["root"])
    holdout = root / "stored-holdout.csv"
    world["test"].to_csv(holdout, index=False)
    name = unique("stored")
    dataset = unique("holdout")
    env = dict(os.environ, SEXTANT_SERVER=server.uri)
    pushed = subprocess.run([sextant_bin(), "datasets", "push", str(holdout), "--name", dataset], capture_output=True, text=True, env=env, timeout=60)
    assert pushed.returncode == 0, pushed.stderr
    client.create_registered_model(name)
    spec = (
        "task: {type: binary_classification, label: is_scam}\n"
        f"datasets: {{test: {{uri: 'dataset:{dataset}@latest'}}}}\n"
        "tests:\n  - {id: auc, kind: metric, dataset: test, metric: roc_auc, min: 0.7}\n"
    )
    spec_file = root / "stored-spec.yaml"
    spec_file.write_text(spec)
    attached = subprocess.run([sextant_bin(), "gates", "attach", "--model", name, str(spec_file)], capture_output=True, text=True, env=env, timeout=60)
    assert attached.returncode == 0, attached.stderr
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(pipeline(LogisticRegression(max_iter=500)).fit(train[FEATURES], train["is_scam"]), name="model",
                                        input_example=train[FEATURES].head(3), serialization_format="cloudpickle", registered_model_name=name)
    result = wait_for_validation(server, name, int(info.registered_model_version))
    assert result["status"] == "passed", json.dumps(result, indent=1)
    assert result["report"]["datasets"][0]["sha256"] == hashlib.sha256(holdout.read_bytes()).hexdigest()
    status = subprocess.run([sextant_bin(), "gates", "status", f"{name}/{info.registered_model_version}", "--format", "json"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert status.returncode == 0 and json.loads(status.stdout)["status"] == "passed"
    # The same spec in a CI job: `sextant validate` fetches the stored dataset itself.
    ci = subprocess.run([sextant_bin(), "validate", "--model", f"{name}/{info.registered_model_version}", "--spec", str(spec_file), "--format", "json"],
                        capture_output=True, text=True, env=env, timeout=300)
    assert ci.returncode == 0, ci.stdout + ci.stderr
    assert json.loads(ci.stdout)["datasets"][0]["sha256"] == hashlib.sha256(holdout.read_bytes()).hexdigest()
    detached = subprocess.run([sextant_bin(), "gates", "detach", "--model", name], capture_output=True, text=True, env=env, timeout=60)
    assert detached.returncode == 0 and json.loads(detached.stdout) == {"model": name, "validation_spec": "detached"}, detached.stdout
    assert requests.get(f"{server.uri}/api/v1/registered-models/{name}/validation-spec", timeout=10).status_code == 404


def test_profile_figures_match_pandas_and_scipy(tmp_path):
    from scipy.stats import chi2_contingency

    rng = np.random.default_rng(11)
    n = 20_000
    frame = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 50.0, n).round(2),
            "score": rng.normal(size=n),
            "count": rng.integers(0, 4, n),
            "region": rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]),
            "plan": rng.choice(["a", "b"], n),
            "constant": 7,
        }
    )
    frame["label"] = ((frame["score"] + (frame["region"] == "north") * 0.8 + rng.normal(size=n)) > 0.5).astype(int)
    frame.loc[rng.random(n) < 0.05, "score"] = np.nan
    frame.loc[frame.index[:30], "count"] = 0
    frame = pd.concat([frame, frame.head(25)], ignore_index=True)  # 25 duplicate rows
    frame.to_csv(tmp_path / "data.csv", index=False)
    other = frame.assign(amount=frame["amount"] * 1.5, region=frame["region"].replace({"east": "west"}))
    other.to_csv(tmp_path / "other.csv", index=False)

    done = subprocess.run(
        [sextant_bin(), "profile", str(tmp_path / "data.csv"), "--target", "label", "--compare", str(tmp_path / "other.csv")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    columns = {c["name"]: c for c in report["columns"]}
    assert report["rows"] == len(frame)
    assert report["duplicate_rows"] == int(frame.duplicated().sum())
    assert report["constant_columns"] == ["constant"]
    for name in ["amount", "score", "count"]:
        column, values = columns[name], frame[name]
        assert column["missing"] == int(values.isna().sum())
        assert column["mean"] == pytest.approx(values.mean(), rel=1e-9)
        assert column["std"] == pytest.approx(values.std(), rel=1e-9)
        assert column["min"] == values.min() and column["max"] == values.max()
        assert column["zeros"] == int((values == 0).sum())
        # KLL quantiles: within the sketch's rank error (about 1.3% at k = 200).
        present = values.dropna()
        for p, estimate in column["quantiles"]:
            assert (present < estimate).mean() - 0.02 <= p <= (present <= estimate).mean() + 0.02, (name, p)
        # The histogram is numpy's, exactly: 20 bins between min and max.
        counts, edges = np.histogram(present, bins=20)
        assert [c for _, c in column["histogram"]] == counts.tolist(), name
        assert [e for e, _ in column["histogram"]] == pytest.approx(edges[:-1].tolist(), rel=1e-12, abs=1e-12)
    assert columns["count"]["distinct"] == 4 and columns["region"]["distinct"] == 3
    assert dict(map(tuple, columns["region"]["top_categories"])) == frame["region"].value_counts().to_dict()

    correlations = report["correlations"]
    numeric = correlations["numeric_columns"]
    assert numeric == ["amount", "score", "count", "constant", "label"]
    pearson = frame[numeric].corr(method="pearson")
    spearman = frame[numeric].corr(method="spearman")
    for i, a in enumerate(numeric):
        for j, b in enumerate(numeric):
            if "constant" in (a, b):
                continue
            assert correlations["pearson"][i][j] == pytest.approx(pearson.loc[a, b], abs=1e-9), (a, b)
            assert correlations["spearman"][i][j] == pytest.approx(spearman.loc[a, b], abs=1e-9), (a, b)
    # Cramér's V from scipy's chi-square (no continuity correction).
    table = pd.crosstab(frame["region"], frame["plan"])
    chi2 = chi2_contingency(table, correction=False)[0]
    expected_v = np.sqrt(chi2 / (table.to_numpy().sum() * (min(table.shape) - 1)))
    categorical = correlations["categorical_columns"]
    assert correlations["cramers_v"][categorical.index("region")][categorical.index("plan")] == pytest.approx(expected_v, abs=1e-12)
    # The correlation ratio of amount given region.
    groups = frame.groupby("region")["amount"]
    between = (groups.count() * (groups.mean() - frame["amount"].mean()) ** 2).sum()
    eta = np.sqrt(between / ((frame["amount"] - frame["amount"].mean()) ** 2).sum())
    assert correlations["correlation_ratio"][numeric.index("amount")][categorical.index("region")] == pytest.approx(eta, abs=1e-12)
    # Association with the target: Pearson for numbers, η for categories.
    associations = {name: (measure, value) for name, measure, value in report["target"]["associations"]}
    assert associations["score"][0] == "pearson"
    assert associations["score"][1] == pytest.approx(frame[["score", "label"]].corr().loc["score", "label"], abs=1e-9)
    assert associations["region"][0] == "correlation_ratio" and associations["region"][1] > 0.1
    # The comparison sees the scaled column and the renamed category.
    changes = {c["name"]: c for c in report["comparison"]["columns"]}
    assert changes["amount"]["mean"][1] == pytest.approx(1.5 * changes["amount"]["mean"][0], rel=1e-9)
    assert changes["region"]["new_categories"] == ["west"]
    page = subprocess.run([sextant_bin(), "profile", str(tmp_path / "data.csv"), "--format", "html"], capture_output=True, text=True, timeout=120)
    assert page.returncode == 0 and page.stdout.startswith("<!DOCTYPE html>") and "<script" not in page.stdout
    missing = subprocess.run([sextant_bin(), "profile", str(tmp_path / "data.csv"), "--target", "nope"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_compressed_and_indexed_csv_read_as_pandas_reads_them(tmp_path):
    """Files as pandas users write them: `to_csv` with its index (an unnamed first
    column), a repeated column name and pandas' missing spellings, compressed as the
    name says. Sextant names and counts the columns as `pandas.read_csv` does."""
    rng = np.random.default_rng(3)
    n = 3000
    frame = pd.DataFrame({"amount": rng.gamma(2.0, 10.0, n).round(3), "city": rng.choice(["x", "y", "NA"], n)})
    frame["amount2"] = frame["amount"] * 2
    frame = frame.rename(columns={"amount2": "amount"})  # a repeated name, as pandas reads it back: amount.1
    files = []
    for name in ["plain.csv", "data.csv.gz", "data.csv.zip", "data.csv.bz2", "data.csv.xz", "data.csv.tar", "data.csv.tar.gz"]:
        frame.to_csv(tmp_path / name)  # with the index: an unnamed first column
        files.append(tmp_path / name)
    for path in files:
        expected = pd.read_csv(path)
        assert list(expected.columns) == ["Unnamed: 0", "amount", "city", "amount.1"]
        done = subprocess.run([sextant_bin(), "profile", str(path)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["rows"] == len(expected)
        columns = {c["name"]: c for c in report["columns"]}
        assert list(columns) == list(expected.columns), path.name
        assert columns["amount.1"]["mean"] == pytest.approx(expected["amount.1"].mean(), rel=1e-12)
        # "NA" is missing to pandas, and to Sextant.
        assert columns["city"]["missing"] == int(expected["city"].isna().sum()) > 0
        spec = tmp_path / "expectations.yaml"
        spec.write_text("expectations:\n  - {expect: column_values_between, column: amount.1, min: 0}\n")
        checked = subprocess.run([sextant_bin(), "expectations", "check", str(path), str(spec)], capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    archive = tmp_path / "two.csv.zip"
    import zipfile

    with zipfile.ZipFile(archive, "w") as two:
        two.writestr("a.csv", "x\n1\n")
        two.writestr("b.csv", "x\n2\n")
    refused = subprocess.run([sextant_bin(), "profile", str(archive)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "two.csv.zip" in refused.stderr and "exactly one file" in refused.stderr


def test_timestamp_columns_are_checked_and_counted(tmp_path):
    """Dates, timestamps and durations in Parquet: expectations about their missing,
    unique and distinct values hold as pandas computes them, the profile counts them
    (they read as all missing before) and gives their range as pandas prints it, and
    `expectations infer` proposes checks the same data passes."""
    rng = np.random.default_rng(5)
    times = pd.Series(pd.to_datetime("2026-01-01") + pd.to_timedelta(rng.integers(0, 40, 500), unit="h"))
    times[rng.random(500) < 0.1] = pd.NaT
    frame = pd.DataFrame(
        {
            "created_at": times,
            "day": times.dt.normalize(),
            "date": times.dt.date,  # datetime.date objects: Parquet's date32
            "waited": pd.to_timedelta(rng.integers(0, 200_000_000, 500), unit="ms"),
            "n": np.arange(500),
        }
    )
    path = tmp_path / "events.parquet"
    frame.to_parquet(path)
    spec = tmp_path / "expectations.yaml"
    spec.write_text(
        "expectations:\n"
        "  - {expect: column_values_not_null, column: created_at}\n"
        "  - {expect: column_values_unique, column: created_at}\n"
        f"  - {{expect: column_distinct_count_between, column: day, min: {frame['day'].nunique()}, max: {frame['day'].nunique()}}}\n"
    )
    done = subprocess.run([sextant_bin(), "expectations", "check", str(path), str(spec), "--format", "json"], capture_output=True, text=True, timeout=60)
    report = json.loads(done.stdout)
    not_null, unique, distinct = report["expectations"]
    assert not_null["unexpected_count"] == int(frame["created_at"].isna().sum()) > 0
    present = frame["created_at"].dropna()
    assert unique["unexpected_count"] == int(present.duplicated().sum()) > 0
    assert distinct["success"] and distinct["observed"] == frame["day"].nunique()
    profiled = subprocess.run([sextant_bin(), "profile", str(path)], capture_output=True, text=True, timeout=60)
    columns = {c["name"]: c for c in json.loads(profiled.stdout)["columns"]}
    assert columns["created_at"]["missing"] == int(frame["created_at"].isna().sum())
    assert columns["created_at"]["distinct"] == present.nunique()
    kinds = {name: columns[name]["kind"] for name in ["created_at", "day", "date", "waited"]}
    assert kinds == {"created_at": "datetime", "day": "datetime", "date": "date", "waited": "duration"}
    for name in kinds:
        values = frame[name].dropna()
        assert (columns[name]["earliest"], columns[name]["latest"]) == (str(values.min()), str(values.max())), name
    # Rows that differ only in a timestamp are not duplicates (pandas' `duplicated`).
    assert json.loads(profiled.stdout)["duplicate_rows"] == int(frame.duplicated().sum())
    html = subprocess.run([sextant_bin(), "profile", str(path), "--format", "html"], capture_output=True, text=True, timeout=60)
    assert str(frame["waited"].max()) in html.stdout
    inferred = subprocess.run([sextant_bin(), "expectations", "infer", str(path)], capture_output=True, text=True, timeout=60)
    assert inferred.returncode == 0, inferred.stderr
    assert "column_values_not_null, column: \"created_at\", mostly:" in inferred.stdout
    assert "column_values_unique, column: \"waited\"" not in inferred.stdout or frame["waited"].is_unique
    assert "column_type, column: \"date\", type: date" in inferred.stdout
    # Ranges and types of dates, as Great Expectations checks them on datetime columns.
    late = frame["created_at"] > pd.Timestamp("2026-01-02 12:00")
    bounded = tmp_path / "bounded.yaml"
    bounded.write_text(
        "expectations:\n"
        "  - {expect: column_values_between, column: created_at, max: '2026-01-02 12:00:00'}\n"
        "  - {expect: column_values_between, column: date, min: 2026-01-01, max: 2026-01-02}\n"
        "  - {expect: column_type, column: created_at, type: datetime}\n"
        "  - {expect: column_values_between, column: created_at, min: 5}\n"
        "  - {expect: column_values_between, column: waited, min: '1h30m', max: '1 days 12:00:00'}\n"
        "  - {expect: column_values_between, column: waited, max: PT20H}\n"
    )
    ranged = subprocess.run([sextant_bin(), "expectations", "check", str(path), str(bounded), "--format", "json"], capture_output=True, text=True, timeout=60)
    between, dates, typed, numeric, waited, iso = json.loads(ranged.stdout)["expectations"]
    # Durations' bounds read as `pandas.Timedelta` reads them.
    outside = ~frame["waited"].between(pd.Timedelta("1h30m"), pd.Timedelta("1 days 12:00:00"))
    assert waited["unexpected_count"] == int(outside.sum()) > 0
    assert iso["unexpected_count"] == int((frame["waited"] > pd.Timedelta("PT20H")).sum()) > 0
    assert between["unexpected_count"] == int(late.sum()) > 0
    assert dates["unexpected_count"] == int((frame["date"].dropna() > pd.Timestamp("2026-01-02").date()).sum())
    assert typed["success"] and typed["observed"] == "datetime"
    assert "write `min` as text" in numeric["error"]
    assert ranged.returncode == 2
    proposed = tmp_path / "proposed.yaml"
    proposed.write_text(inferred.stdout)
    checked = subprocess.run([sextant_bin(), "expectations", "check", str(path), str(proposed)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_random_small_csv_files_read_as_pandas_reads_them(tmp_path):
    """A differential check against `pandas.read_csv` on random small files: repeated,
    empty and quoted header names, numbers, booleans, text, pandas' missing spellings,
    padded and quoted fields, short rows, blank lines, CRLF and a missing final newline.
    Names, rows, missing counts and whether a column is numeric, boolean or text agree.
    Some files have pandas' implicit index (R's `write.table` writes them): every record
    has one or two more leading fields than the header has names, and those are the
    index, not columns. (Other rows longer than the header are left out: pandas
    refuses them, and so does Sextant, naming the line.)"""
    import random

    generator = random.Random(20261207)
    tokens = ["1", "2.5", "-3", "", "NA", "nan", "x", "y z", '"q,1"', '"multi\nline"', "True", "false", " 4 ", "1e3", "inf", "-inf", "None", "0", "007"]

    def kind(dtype) -> str:
        return "number" if dtype.kind in "if" else "boolean" if dtype.kind == "b" else "text"

    for case in range(150):
        width = generator.randint(1, 4)
        lines = [",".join(generator.choice(["a", "b", "", "a", "c d", '"h,1"']) for _ in range(width))]
        index_fields = generator.choice([1, 2]) if generator.random() < 0.2 else 0
        for row in range(generator.randint(1 if index_fields else 0, 6)):
            index = "".join(f'"r{row}",' for _ in range(index_fields))
            if generator.random() < 0.1 and not (index_fields and row == 0):
                lines.append(generator.choice(["", " ", "\t"]))
            else:
                # With an index, the first record is whole: it tells pandas the index's width.
                fields = generator.randint(1, width) if generator.random() < 0.15 and not (index_fields and row == 0) else width
                lines.append(index + ",".join(generator.choice(tokens) for _ in range(fields)))
        text = "\n".join(lines) + generator.choice(["\n", "", "\r\n"])
        path = tmp_path / f"case{case}.csv"
        path.write_text(text)
        done = subprocess.run([sextant_bin(), "profile", str(path)], capture_output=True, text=True, timeout=60)
        try:
            frame = pd.read_csv(path)
        except pd.errors.EmptyDataError:  # no header at all: both refuse the file
            assert done.returncode == 2 and "header" in done.stderr, (text, done.stderr)
            continue
        assert done.returncode == 0, (text, done.stderr)
        report = json.loads(done.stdout)
        ours = (
            [c["name"] for c in report["columns"]],
            report["rows"],
            [c["missing"] for c in report["columns"]],
            [{"integer": "number", "float": "number", "boolean": "boolean"}.get(c["kind"], "text") for c in report["columns"]],
        )
        theirs = (list(frame.columns), len(frame), [int(frame[c].isna().sum()) for c in frame.columns], [kind(frame[c].dtype) for c in frame.columns])
        assert ours == theirs, text


def test_inferred_expectations_pass_their_data_and_catch_changes(world):
    root = world["root"]
    inferred = subprocess.run([sextant_bin(), "expectations", "infer", str(root / "test.csv")], capture_output=True, text=True, timeout=120)
    assert inferred.returncode == 0, inferred.stderr
    (root / "inferred.yaml").write_text(inferred.stdout)
    text = inferred.stdout
    assert "column_values_unique, column: \"call_id\"" in text
    assert "column_values_in_set, column: \"location_of_call\"" in text
    check = lambda data: subprocess.run(  # noqa: E731
        [sextant_bin(), "expectations", "check", str(data), str(root / "inferred.yaml"), "--format", "json"],
        capture_output=True, text=True, timeout=120,
    )
    same = check(root / "test.csv")
    assert same.returncode == 0, same.stdout
    changed = world["test"].copy()
    changed.loc[changed.index[:200], "location_of_call"] = "mars"
    changed.loc[changed.index[:100], "money_asked"] = -1.0
    changed.loc[changed.index[10:20], "call_id"] = 0
    changed.to_csv(root / "changed.csv", index=False)
    failed = check(root / "changed.csv")
    assert failed.returncode == 1
    failing = {(o["expectation"], o.get("column")) for o in json.loads(failed.stdout)["expectations"] if not o["success"]}
    assert failing == {
        ("column_values_in_set", "location_of_call"),
        ("column_values_between", "money_asked"),
        ("column_values_unique", "call_id"),
    }


def test_stored_datasets_are_profiled_for_the_api_and_the_ui(server, tmp_path):
    """A pushed table's profile, from the server, is what `sextant profile` prints for the
    same file (with a target, and compared with another version); the dataset pages of the
    web UI show it; files that are not one table are refused with their name."""
    import os

    env = dict(os.environ, SEXTANT_SERVER=server.uri)
    name = unique("profiled")

    def push(path: Path, dataset: str = name) -> dict:
        done = subprocess.run([sextant_bin(), "datasets", "push", str(path), "--name", dataset, "--format", "json"],
                              capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def local_profile(*args: str) -> dict:
        done = subprocess.run([sextant_bin(), "profile", *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    calls = scam_calls(3000, seed=21)
    calls.loc[calls.index[::17], "money_asked"] = np.nan
    first = tmp_path / "calls.csv"
    calls.to_csv(first, index=False)
    v1 = push(first)
    second = tmp_path / "calls-later.csv"
    calls.assign(location_of_call=calls["location_of_call"].replace({"unknown": "withheld"})).to_csv(second, index=False)
    v2 = push(second)

    api = f"{server.uri}/api/v1/datasets/{name}/versions"
    served = requests.get(f"{api}/{v1['digest']}/profile", params={"target": "is_scam"}, timeout=120)
    assert served.status_code == 200, served.text
    served = served.json()
    expected = local_profile(str(first), "--target", "is_scam")
    assert served["data"] == f"{name}@{v1['digest'][7:19]}"
    for key in ["rows", "columns", "duplicate_rows", "constant_columns", "correlations", "target"]:
        assert served[key] == expected[key], key
    columns = {c["name"]: c for c in served["columns"]}
    assert columns["money_asked"]["missing"] == int(calls["money_asked"].isna().sum())
    assert columns["money_asked"]["mean"] == pytest.approx(calls["money_asked"].mean(), rel=1e-9)

    compared = requests.get(f"{api}/latest/profile", params={"compare": v1["digest"][7:19]}, timeout=120).json()
    expected = local_profile(str(second), "--compare", str(first))
    assert compared["data"] == f"{name}@{v2['digest'][7:19]}"
    assert compared["comparison"]["other"] == f"{name}@{v1['digest'][7:19]}"
    assert compared["comparison"]["columns"] == expected["comparison"]["columns"]
    changes = {c["name"]: c for c in compared["comparison"]["columns"]}
    assert changes["location_of_call"]["new_categories"] == ["unknown"]

    page = requests.get(f"{api}/latest/profile.html", timeout=60)
    assert page.status_code == 200 and "<script" not in page.text and "money_asked" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")

    # Not a table, a directory, an unknown column or dataset: clear refusals.
    blob = tmp_path / "weights.bin"
    blob.write_bytes(b"\x00\x01not a table")
    push(blob, f"{name}-blob")
    refused = requests.get(f"{server.uri}/api/v1/datasets/{name}-blob/versions/latest/profile", timeout=60)
    assert refused.status_code == 400 and "weights.bin" in refused.json()["message"], refused.text
    assert "/tmp" not in refused.json()["message"].replace(str(tmp_path), "")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.csv").write_text("x\n1\n")
    (folder / "b.csv").write_text("x\n2\n")
    push(folder, f"{name}-dir")
    refused = requests.get(f"{server.uri}/api/v1/datasets/{name}-dir/versions/latest/profile", timeout=60)
    assert refused.status_code == 400 and "directory" in refused.json()["message"]
    refused = requests.get(f"{api}/latest/profile", params={"target": "nope"}, timeout=60)
    assert refused.status_code == 400 and "nope" in refused.json()["message"]
    assert requests.get(f"{server.uri}/api/v1/datasets/none-{name}/versions/latest/profile", timeout=60).status_code == 404

    # The web UI: the list, a version's page, and its profile frame.
    listing = requests.get(f"{server.uri}/datasets", timeout=60).text
    assert name in listing and f"/datasets/{name}/versions/{v2['digest'][7:19]}" in listing
    version_page = requests.get(f"{server.uri}/datasets/{name}/versions/{v2['digest'][7:19]}", params={"target": "is_scam"}, timeout=60).text
    assert f"/ui/datasets/profile?name={name}&amp;version={v2['digest'][7:19]}&amp;target=is_scam" in version_page
    assert f'<option value="{v1["digest"][7:19]}"' in version_page
    frame = requests.get(f"{server.uri}/ui/datasets/profile", params={"name": name, "version": v2["digest"][7:19], "target": "is_scam"}, timeout=60)
    assert frame.status_code == 200 and "Association with" in frame.text and "is_scam" in frame.text
    frame = requests.get(f"{server.uri}/ui/datasets/profile", params={"name": f"{name}-blob", "version": "latest"}, timeout=60)
    assert frame.status_code == 400 and "cannot be profiled" in frame.text


@pytest.mark.sextant_only
def test_a_spec_logged_with_the_model_gates_its_version(server, client, tracking_uri, experiment_id, world, tmp_path):
    """Without a spec attached to the model, each version is validated against the
    `sextant-validation.yaml` logged beside its MLmodel (reading its own run's data), and
    the gate holds it to that; a broken logged spec is an error that blocks; a spec
    attached to the model outranks what a version's author logs."""
    train, test = world["train"], world["test"]
    name = unique("logged-spec")
    model = pipeline(LogisticRegression(max_iter=500), domestic_alike=True).fit(train[FEATURES], train["is_scam"])

    def register(spec: str) -> int:
        with mlflow.start_run() as run:
            holdout = tmp_path / "holdout.csv"
            test.to_csv(holdout, index=False)
            mlflow.log_artifact(str(holdout), artifact_path="data")
            info = mlflow.sklearn.log_model(model, name="model", input_example=train[FEATURES].head(3), serialization_format="cloudpickle")
        spec_file = tmp_path / "sextant-validation.yaml"
        spec_file.write_text(spec.replace("RUN_ID", run.info.run_id))
        client.log_model_artifact(info.model_id, str(spec_file))
        return int(mlflow.register_model(info.model_uri, name).version)

    def spec(minimum: float) -> str:
        return (
            "task: {type: binary_classification, label: is_scam}\n"
            "datasets: {test: {uri: 'runs:/RUN_ID/data/holdout.csv'}}\n"
            f"tests:\n  - {{id: perf.auc, kind: metric, dataset: test, metric: roc_auc, min: {minimum}}}\n"
        )

    strict = register(spec(0.999))
    result = wait_for_validation(server, name, strict)
    assert result["status"] == "failed" and result["failed_checks"] == ["perf.auc/min"], json.dumps(result, indent=1)
    with pytest.raises(mlflow.exceptions.MlflowException) as refused:
        client.set_registered_model_alias(name, "champion", str(strict))
    assert "perf.auc/min" in str(refused.value)
    # `sextant validate` without --spec reads the same logged spec, and agrees.
    import os

    local = subprocess.run([sextant_bin(), "validate", "--model", f"{name}/{strict}", "--format", "json"],
                           capture_output=True, text=True, env=dict(os.environ, SEXTANT_SERVER=server.uri), timeout=300)  # fmt: skip
    assert local.returncode == 1, local.stderr
    assert json.loads(local.stdout)["failed_checks"] == ["perf.auc/min"]

    fair = register(spec(0.7))
    result = wait_for_validation(server, name, fair)
    assert result["status"] == "passed", json.dumps(result, indent=1)
    assert result["report"]["datasets"][0]["source"].startswith("runs:/")
    client.set_registered_model_alias(name, "champion", str(fair))

    broken = register(spec(0.7).replace("metric: roc_auc", "metric: roc_acu"))
    result = wait_for_validation(server, name, broken)
    assert result["status"] == "error" and "sextant-validation.yaml" in result["message"] and "line 4: tests[0].metric" in result["message"], json.dumps(result)
    with pytest.raises(mlflow.exceptions.MlflowException) as refused:
        client.set_registered_model_alias(name, "champion", str(broken))
    assert "could not be validated" in str(refused.value)

    # The model's owners attach a spec: it outranks the lax spec a version logs.
    with mlflow.start_run() as run:
        holdout = tmp_path / "owners-holdout.csv"
        test.to_csv(holdout, index=False)
        mlflow.log_artifact(str(holdout), artifact_path="data")
    attached = requests.put(f"{server.uri}/api/v1/registered-models/{name}/validation-spec",
                            json={"spec": spec(0.999).replace("RUN_ID", run.info.run_id).replace("holdout.csv", "owners-holdout.csv")}, timeout=10)  # fmt: skip
    assert attached.status_code == 200, attached.text
    lax = register(spec(0.5))
    result = wait_for_validation(server, name, lax)
    assert result["status"] == "failed" and result["spec_sha256"] == attached.json()["sha256"], json.dumps(result)


@pytest.mark.sextant_only
def test_models_fetched_by_name_are_cached_per_server_and_version(server, tmp_path):
    """`scam/1` on two servers is two models: `sextant validate --model NAME/VERSION`
    (and `predict`, which shares the download cache) must never answer with the other's
    files, nor with those of a version deleted and registered again."""
    import os

    from conftest import _free_port, _stop, _wait_until_healthy

    train, test = scam_calls(2000, seed=31), scam_calls(600, seed=32)
    name = unique("cached")
    holdout = tmp_path / "holdout.csv"
    test.to_csv(holdout, index=False)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "task: {type: binary_classification, label: is_scam}\n"
        f"datasets: {{test: {{uri: '{holdout}'}}}}\n"
        "tests:\n  - {id: auc, kind: metric, dataset: test, metric: roc_auc, min: 0.7}\n"
    )
    cache = tmp_path / "cache"

    def register(uri: str, labels: pd.Series) -> None:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        model = pipeline(LogisticRegression(max_iter=500)).fit(train[FEATURES], labels)
        # An experiment of each server's own: the session's active one lives on the first.
        experiment = mlflow.MlflowClient(uri).create_experiment(unique("cache"))
        with mlflow.start_run(experiment_id=experiment):
            mlflow.sklearn.log_model(model, name="model", registered_model_name=name,
                                     input_example=train[FEATURES].head(3), serialization_format="cloudpickle")  # fmt: skip

    def validate(uri: str) -> subprocess.CompletedProcess:
        return subprocess.run([sextant_bin(), "validate", "--model", f"{name}/1", "--spec", str(spec), "--cache-dir", str(cache), "--format", "json"],
                              capture_output=True, text=True, env=dict(os.environ, SEXTANT_SERVER=uri), timeout=300)  # fmt: skip

    port = _free_port()
    other_uri = f"http://127.0.0.1:{port}"
    log = tmp_path / "other.log"
    with open(log, "wb") as out:
        other = subprocess.Popen([sextant_bin(), "server", "--port", str(port), "--data-dir", str(tmp_path / "other")],
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        _wait_until_healthy(other, other_uri, log, 30.0, "second sextant")
        register(server.uri, train["is_scam"])
        # The other server's version 1 learnt shuffled labels: no better than chance.
        register(other_uri, train["is_scam"].sample(frac=1.0, random_state=5).reset_index(drop=True))
        first = validate(server.uri)
        assert first.returncode == 0, first.stdout + first.stderr
        second = validate(other_uri)
        assert second.returncode == 1, second.stdout + second.stderr
        assert json.loads(second.stdout)["failed_checks"] == ["auc/min"]
    finally:
        _stop(other)
        mlflow.set_tracking_uri(server.uri)
        mlflow.set_registry_uri(server.uri)
