#!/usr/bin/env python3
"""Data expectations: `sextant expectations check` against Great Expectations (the
issue's targets: 50 expectations over 10M rows in one scan in < 10 s; ≥ 50× Great
Expectations with pandas on 1M rows).

The data: an orders table of 10 columns (a unique id, amounts, quantities, prices and
discounts, regions, channels, e-mail addresses, two-letter countries, a rating with 2%
missing), seed 5, written as Parquet. The 50 expectations cover the whole shared
vocabulary: row count, columns present, types, not null, sets, ranges, uniqueness, regular
expressions, means, distinct counts and a cross-column rule; three fail on purpose (a few
amounts out of range, the missing ratings, one unknown channel), so both tools must also
count unexpected rows. Both tools' verdicts and unexpected counts are compared
expectation by expectation before any time is reported.

Sextant's time is the whole `sextant expectations check FILE expectations.yaml` command,
reading the Parquet file included. Great Expectations' is `batch.validate(suite)` on a
pandas frame already in memory (reading the file is not counted on its side), with the
`SUMMARY` result format (what a data check in a pipeline asks for; the default `BASIC`
keeps lists of unexpected values too).

    cargo build --release -p sextant-cli
    python3 -m venv ~/.cache/sextant/venv-bench-ge
    ~/.cache/sextant/venv-bench-ge/bin/pip install great_expectations pandas pyarrow
    ~/.cache/sextant/venv-bench-ge/bin/python bench/validation/expectations.py --rounds 3

Writes bench/results/expectations-<time>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from release_build import TARGET  # noqa: E402  ($CARGO_TARGET_DIR, else target/ or ~/.cache/sextant/target)

REGIONS = ["north", "south", "east", "west", "central"]
CHANNELS = ["web", "store", "phone"]
COUNTRIES = ["FR", "DE", "ES", "IT", "NL", "BE", "PT", "SE"]


def make(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    price = rng.gamma(2.0, 40.0, rows).round(2) + 1.0
    frame = pd.DataFrame(
        {
            "order_id": np.arange(rows, dtype=np.int64) + 1_000_000,
            "amount": rng.gamma(2.0, 120.0, rows).round(2),
            "quantity": rng.integers(1, 21, rows),
            "price": price,
            "discount": (price * rng.uniform(0.0, 0.5, rows)).round(2),
            "region": rng.choice(REGIONS, rows),
            "channel": rng.choice(CHANNELS, rows),
            "email": [f"user{i}@example.com" for i in rng.integers(0, 5_000_000, rows)],
            "country": rng.choice(COUNTRIES, rows),
            "rating": rng.integers(1, 6, rows).astype(float),
        }
    )
    frame.loc[rng.random(rows) < 0.02, "rating"] = np.nan
    frame.loc[frame.index[:: max(1, rows // 10)], "channel"] = "fax"  # an unknown channel
    return frame


# (sextant expectation, Great Expectations class name and arguments); `column` is shared.
def expectations(rows: int) -> list[tuple[dict, str, dict]]:
    numeric = {"amount": (0, 5000), "quantity": (1, 20), "price": (1, 2000), "discount": (0, 1000), "rating": (1, 5)}
    sets = {"region": REGIONS, "channel": CHANNELS, "country": COUNTRIES}
    items: list[tuple[dict, str, dict]] = [
        ({"expect": "table_row_count_between", "min": rows, "max": rows}, "ExpectTableRowCountToBeBetween", {"min_value": rows, "max_value": rows}),
        ({"expect": "table_columns_include", "columns": ["order_id", "amount", "region"]}, "ExpectTableColumnsToMatchSet",
         {"column_set": ["order_id", "amount", "region"], "exact_match": False}),  # fmt: skip
    ]
    for column in ["order_id", "amount", "quantity", "price", "discount", "region", "channel", "email", "country", "rating"]:
        items.append(({"expect": "column_exists", "column": column}, "ExpectColumnToExist", {"column": column}))
        items.append(({"expect": "column_values_not_null", "column": column}, "ExpectColumnValuesToNotBeNull", {"column": column}))
    for column, (low, high) in numeric.items():
        items.append(({"expect": "column_values_between", "column": column, "min": low, "max": high},
                      "ExpectColumnValuesToBeBetween", {"column": column, "min_value": low, "max_value": high}))  # fmt: skip
        items.append(({"expect": "column_mean_between", "column": column, "min": low, "max": high},
                      "ExpectColumnMeanToBeBetween", {"column": column, "min_value": low, "max_value": high}))  # fmt: skip
    for column, values in sets.items():
        items.append(({"expect": "column_values_in_set", "column": column, "values": values},
                      "ExpectColumnValuesToBeInSet", {"column": column, "value_set": values}))  # fmt: skip
        items.append(({"expect": "column_distinct_count_between", "column": column, "min": 1, "max": len(values) + 1},
                      "ExpectColumnUniqueValueCountToBeBetween", {"column": column, "min_value": 1, "max_value": len(values) + 1}))  # fmt: skip
    items.append(({"expect": "column_values_unique", "column": "order_id"}, "ExpectColumnValuesToBeUnique", {"column": "order_id"}))
    items.append(({"expect": "column_values_match_regex", "column": "email", "regex": r"^[a-z0-9]+@example\.com$"},
                  "ExpectColumnValuesToMatchRegex", {"column": "email", "regex": r"^[a-z0-9]+@example\.com$"}))  # fmt: skip
    items.append(({"expect": "column_values_match_regex", "column": "country", "regex": r"^[A-Z]{2}$"},
                  "ExpectColumnValuesToMatchRegex", {"column": "country", "regex": r"^[A-Z]{2}$"}))  # fmt: skip
    items.append(({"expect": "column_pair_a_greater_than_b", "column_a": "price", "column_b": "discount"},
                  "ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "price", "column_B": "discount"}))  # fmt: skip
    items.append(({"expect": "column_values_between", "column": "amount", "min": 0, "max": 1500},
                  "ExpectColumnValuesToBeBetween", {"column": "amount", "min_value": 0, "max_value": 1500}))  # fmt: skip
    items.append(({"expect": "column_values_between", "column": "amount", "min": 0, "max": 1500, "mostly": 0.99},
                  "ExpectColumnValuesToBeBetween", {"column": "amount", "min_value": 0, "max_value": 1500, "mostly": 0.99}))  # fmt: skip
    items.append(({"expect": "column_values_not_null", "column": "rating", "mostly": 0.95},
                  "ExpectColumnValuesToNotBeNull", {"column": "rating", "mostly": 0.95}))  # fmt: skip
    items.append(({"expect": "column_values_in_set", "column": "quantity", "values": list(range(1, 21))},
                  "ExpectColumnValuesToBeInSet", {"column": "quantity", "value_set": list(range(1, 21))}))  # fmt: skip
    items.append(({"expect": "column_values_between", "column": "order_id", "min": 1_000_000, "max": 1_000_000 + rows},
                  "ExpectColumnValuesToBeBetween", {"column": "order_id", "min_value": 1_000_000, "max_value": 1_000_000 + rows}))  # fmt: skip
    items.append(({"expect": "column_mean_between", "column": "order_id", "min": 0, "max": 1e12},
                  "ExpectColumnMeanToBeBetween", {"column": "order_id", "min_value": 0, "max_value": 1e12}))  # fmt: skip
    items.append(({"expect": "column_values_match_regex", "column": "region", "regex": "^[a-z]+$"},
                  "ExpectColumnValuesToMatchRegex", {"column": "region", "regex": "^[a-z]+$"}))  # fmt: skip
    items.append(({"expect": "column_distinct_count_between", "column": "quantity", "min": 20, "max": 20},
                  "ExpectColumnUniqueValueCountToBeBetween", {"column": "quantity", "min_value": 20, "max_value": 20}))  # fmt: skip
    assert len(items) == 50, len(items)
    return items


def write_yaml(path: Path, items: list[tuple[dict, str, dict]]) -> None:
    path.write_text("expectations:\n" + "".join(f"  - {json.dumps(ours)}\n" for ours, _, _ in items))


def sextant_check(binary: Path, data: Path, spec: Path) -> tuple[float, list[dict]]:
    started = time.perf_counter()
    done = subprocess.run([str(binary), "expectations", "check", str(data), str(spec), "--format", "json"], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        sys.exit(done.stderr)
    return elapsed, json.loads(done.stdout)["expectations"]


def great_expectations_check(frame: pd.DataFrame, items: list[tuple[dict, str, dict]]) -> tuple[float, list]:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_pandas(f"pandas-{time.monotonic_ns()}")
    asset = source.add_dataframe_asset("orders")
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame})
    suite = gx.ExpectationSuite(name="orders")
    for _, name, kwargs in items:
        suite.add_expectation(getattr(gxe, name)(**kwargs))
    started = time.perf_counter()
    result = batch.validate(suite, result_format="SUMMARY")
    elapsed = time.perf_counter() - started
    return elapsed, list(result.results)


def compare(ours: list[dict], theirs: list, items) -> None:
    """Same verdict on every expectation, and the same unexpected counts where both count.
    Great Expectations reports in its own order: its results are matched by type and
    arguments."""
    import great_expectations.expectations as gxe

    def same(value, other) -> bool:
        return json.dumps(value, default=str) == json.dumps(other, default=str)

    for (spec, name, kwargs), mine in zip(items, ours):
        wanted = getattr(gxe, name)(**kwargs).configuration
        matching = [r for r in theirs if r.expectation_config.type == wanted.type
                    and all(same(r.expectation_config.kwargs.get(k), v) for k, v in wanted.kwargs.items())]  # fmt: skip
        assert matching, (spec, wanted)
        other = matching[0]
        assert mine["success"] == other.success, (spec, mine, other.result)
        counted = other.result.get("unexpected_count")
        if counted is not None and "unexpected_count" in mine:
            assert mine["unexpected_count"] == counted, (spec, mine["unexpected_count"], counted)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peer-rows", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--binary", type=Path, default=TARGET / "release/sextant")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sextant-bench-expect-"))
    results: dict = {"rounds": args.rounds, "cores": os.cpu_count()}

    # Side by side on the peer's size: same data, same 50 expectations, verdicts compared.
    frame = make(args.peer_rows)
    peer_file = work / "orders-1m.parquet"
    frame.to_parquet(peer_file, index=False)
    items = expectations(args.peer_rows)
    spec = work / "expectations-1m.yaml"
    write_yaml(spec, items)
    ours_times, theirs_times = [], []
    for _ in range(args.rounds):
        seconds, ours = sextant_check(args.binary, peer_file, spec)
        ours_times.append(seconds)
        seconds, theirs = great_expectations_check(frame, items)
        theirs_times.append(seconds)
        compare(ours, theirs, items)
    failing = [o["expectation"] + "(" + str(o.get("column", "")) + ")" for o in ours if not o["success"]]
    results["peer"] = {
        "rows": args.peer_rows,
        "sextant_s": ours_times,
        "great_expectations_s": theirs_times,
        "ratio_of_medians": statistics.median(theirs_times) / statistics.median(ours_times),
        "failing_expectations": failing,
    }
    print(f"{args.peer_rows:,} rows, 50 expectations: sextant {statistics.median(ours_times):.3f} s, "
          f"Great Expectations {statistics.median(theirs_times):.2f} s "
          f"({results['peer']['ratio_of_medians']:.0f}x); both fail {failing}")  # fmt: skip
    del frame

    # The target size, Sextant alone.
    big = make(args.rows)
    big_file = work / "orders-10m.parquet"
    big.to_parquet(big_file, index=False)
    del big
    spec = work / "expectations-10m.yaml"
    write_yaml(spec, expectations(args.rows))
    times = [sextant_check(args.binary, big_file, spec)[0] for _ in range(args.rounds)]
    results["target"] = {"rows": args.rows, "sextant_s": times, "median_s": statistics.median(times)}
    print(f"{args.rows:,} rows, 50 expectations: sextant {statistics.median(times):.2f} s (median of {args.rounds})")

    out = REPO / "bench/results" / f"expectations-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
