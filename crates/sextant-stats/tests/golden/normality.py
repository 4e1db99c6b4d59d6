"""Golden values for sextant-stats' normality module (Shapiro-Wilk).

Regenerate (from the repository root) with scipy 1.17.1 / numpy 2.4:

    ~/.cache/sextant/venv-evidently/bin/python \
        crates/sextant-stats/tests/golden/normality.py

Writes normality.json beside this file: each case is a sample and
scipy.stats.shapiro's (W, p-value) on it. Small samples are stored
verbatim (rounded to 6 decimals, so the JSON holds the exact doubles
tested). Large samples are an `lcg` spec that the Rust test
(`tests/it/normality.rs`, `lcg_sample`) expands with the same integer LCG
and the same correctly rounded float operations (+, -, *, /, floor: no
libm call), so no big arrays are committed.

Kinds: "uniform" u; "irwin_hall" (sum of 12 uniforms) - 6, nearly
normal; "square" u*u, skewed; "reciprocal" 1/u, heavy right tail;
"logistic" (u - 1/2) / (u (1 - u)), heavy both tails. Then
x = shift + scale * t, floored to a grid of 1/grid when grid > 0 (ties).
"""

import json
import math
import os
import warnings

import numpy as np
import scipy
from scipy import stats

MASK64 = (1 << 64) - 1


def lcg_sample(spec):
    """Expand an lcg spec; mirrored by `lcg_sample` in tests/it/normality.rs."""
    state = spec["seed"] & MASK64

    def uniform():
        nonlocal state
        state = (6364136223846793005 * state + 1442695040888963407) & MASK64
        return ((state >> 11) + 0.5) * 2.0**-53

    out = []
    for _ in range(spec["n"]):
        kind = spec["kind"]
        if kind == "uniform":
            t = uniform()
        elif kind == "irwin_hall":
            s = 0.0
            for _ in range(12):
                s += uniform()
            t = s - 6.0
        elif kind == "square":
            u = uniform()
            t = u * u
        elif kind == "reciprocal":
            t = 1.0 / uniform()
        elif kind == "logistic":
            u = uniform()
            t = (u - 0.5) / (u * (1.0 - u))
        else:
            raise ValueError(kind)
        x = spec["shift"] + spec["scale"] * t
        if spec["grid"] > 0:
            x = math.floor(x * spec["grid"]) / spec["grid"]
        out.append(x)
    return np.array(out)


def lcg(seed, n, kind, shift=0.0, scale=1.0, grid=0):
    return {"seed": seed, "n": n, "kind": kind, "shift": shift, "scale": scale, "grid": grid}


rng = np.random.default_rng(20260601)
cases = []


def case(name, sample):
    if isinstance(sample, dict):
        values = lcg_sample(sample)
        stored = {"lcg": sample}
    else:
        values = np.asarray(sample, dtype=float)
        stored = {"values": [float(v) for v in values]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.shapiro(values)
    cases.append({"name": name, **stored,
                  "w": float(result.statistic), "p": float(result.pvalue)})


# Every small size through both p-value regimes (n <= 11 and n >= 12).
for n in list(range(3, 31)) + [35, 40, 50, 75, 99]:
    case(f"normal_{n}", np.round(rng.normal(0.0, 1.0, n), 6))
    case(f"exponential_{n}", np.round(rng.exponential(1.0, n), 6))
# n = 3: W is 3/4 at least (p = 0 there), exactly 1 for equal spacing.
case("three_equal_spacing", [0.0, 1.0, 2.0])
case("three_two_tied", [0.0, 0.0, 1.0])
case("three_skewed", [1.0, 2.0, 4.0])
case("three_nearly_tied", [5.0, 5.000001, 9.0])
# One value apart from a tied rest: W far below 1 in the n <= 11 regime.
case("ten_one_apart", [0.0] * 9 + [1.0])
case("six_one_apart", [0.0] * 5 + [1.0])
# Heavy ties, unsorted input, a large offset (scipy gh-15777), tiny spread.
case("ties_integers_40", rng.integers(0, 4, 40).astype(float))
case("unsorted_offset_1e6", np.round(1e6 + rng.normal(0.0, 1.0, 25), 6))
case("tiny_spread", np.round(rng.normal(0.0, 1.0, 30), 6) * 1e-12)
case("negative_skew_60", -np.round(rng.lognormal(0.0, 1.0, 60), 6))
# Large samples, up to the 5000 limit.
for seed, (n, kind, shift, scale, grid) in enumerate([
    (100, "irwin_hall", 0.0, 1.0, 0),
    (250, "uniform", 3.0, 2.0, 0),
    (500, "irwin_hall", 10.0, 0.5, 0),
    (1000, "irwin_hall", 0.0, 1.0, 0),
    (1000, "square", 0.0, 1.0, 0),
    (1000, "reciprocal", 0.0, 1.0, 0),
    (1000, "logistic", 0.0, 1.0, 0),
    (1000, "irwin_hall", 0.0, 1.0, 8),
    (2000, "uniform", 0.0, 1.0, 0),
    (4999, "irwin_hall", 1e6, 1.0, 0),
    (5000, "irwin_hall", -2.0, 3.0, 0),
    (5000, "logistic", 0.0, 1.0, 0),
]):
    case(f"lcg_{kind}_{n}_{seed}", lcg(1000 + seed, n, kind, shift, scale, grid))

out = {
    "scipy": scipy.__version__,
    "numpy": np.__version__,
    "cases": cases,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "normality.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print(f"wrote {len(cases)} cases to {path}")
