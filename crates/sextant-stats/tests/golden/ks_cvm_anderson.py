"""Golden values for sextant-stats' ks / cvm / anderson modules.

Regenerate (from the repository root) with scipy 1.17.1:

    ~/.cache/sextant/venv-e2e/bin/python \
        crates/sextant-stats/tests/golden/ks_cvm_anderson.py

Small inputs are stored verbatim. Large inputs are described by an `lcg`
spec that the Rust test expands with the same integer LCG and the same
correctly rounded float operations, so no big arrays are committed.
"""

import json
import math
import os
import warnings

import numpy as np
import scipy
from scipy import special, stats

MASK64 = (1 << 64) - 1


def lcg_sample(spec):
    """Expand an lcg spec; mirrored by `lcg_sample` in tests/it/ks.rs."""
    state = spec["seed"] & MASK64
    out = []
    for _ in range(spec["n"]):
        state = (6364136223846793005 * state + 1442695040888963407) & MASK64
        u = ((state >> 11) + 0.5) * 2.0**-53
        t = (u - 0.5) / (u * (1.0 - u))
        x = spec["shift"] + spec["scale"] * t
        if spec["grid"] > 0:
            x = math.floor(x * spec["grid"]) / spec["grid"]
        out.append(x)
    return np.array(out)


def lcg(seed, n, shift=0.0, scale=1.0, grid=0):
    return {"seed": seed, "n": n, "shift": shift, "scale": scale, "grid": grid}


def materialise(sample):
    return lcg_sample(sample) if isinstance(sample, dict) else np.asarray(sample, dtype=float)


def as_json_sample(sample):
    if isinstance(sample, dict):
        return {"lcg": sample}
    return {"values": [float(v) for v in sample]}


rng = np.random.default_rng(20240611)


def normal(n, loc=0.0, digits=6):
    return np.round(rng.normal(loc, 1.0, n), digits)


def integers(n, high, shift=0):
    return rng.integers(0, high, n).astype(float) + shift


# ---------------------------------------------------------------- ks_2samp
ks_inputs = []


def ks_case(name, a, b, method="auto"):
    ks_inputs.append((name, a, b, method))


for n1, n2 in [(1, 1), (1, 2), (2, 3), (3, 3), (4, 9), (5, 7), (6, 6), (8, 12),
               (10, 10), (11, 13), (15, 20), (20, 20), (20, 3), (17, 19)]:
    for shift in (0.0, 0.7, 3.0):
        ks_case(f"tiny_{n1}x{n2}_shift{shift}", normal(n1), normal(n2, shift))
for n1, n2, high in [(5, 5, 3), (12, 9, 4), (30, 40, 6), (200, 150, 10), (500, 500, 20)]:
    ks_case(f"ties_{n1}x{n2}_int{high}", integers(n1, high), integers(n2, high, 1))
eq = normal(25)
ks_case("equal_samples_25", eq, eq.copy())
ks_case("constant_equal", np.full(7, 2.5), np.full(9, 2.5))
ks_case("constant_disjoint", np.full(7, 2.5), np.full(9, 3.5))
ks_case("single_tie_everywhere", np.array([1.0, 1.0, 2.0]), np.array([1.0, 2.0, 2.0, 2.0]))
for n1, n2 in [(3, 4), (10, 10), (50, 60), (100, 100), (300, 200)]:
    ks_case(f"disjoint_{n1}x{n2}", normal(n1), normal(n2) + 100.0)
for n1, n2, shift in [(100, 100, 0.05), (100, 100, 0.4), (100, 100, 1.5), (250, 80, 0.3),
                      (7, 1000, 0.8), (1000, 999, 0.1), (1000, 1000, 0.12), (600, 900, 0.9)]:
    ks_case(f"shift_{n1}x{n2}_{shift}", normal(n1), normal(n2, shift))
for n1, n2, shift, method in [(5000, 4999, 0.03, "auto"), (10000, 10000, 0.02, "auto"),
                              (10000, 1000, 0.05, "auto"), (3000, 2000, 0.0, "auto"),
                              (1000, 20000, 0.05, "auto"), (1000, 20000, 0.2, "auto"),
                              (50000, 50000, 0.0, "auto"), (50000, 50000, 0.02, "auto"),
                              (50000, 50000, 0.1, "auto"), (10001, 10000, 0.06, "auto"),
                              (20000, 30000, 0.3, "auto"), (400, 300, 0.2, "asymp"),
                              (40, 30, 0.5, "asymp"), (10500, 700, 0.1, "exact")]:
    ks_case(f"lcg_{n1}x{n2}_{shift}_{method}",
            lcg(n1 * 7 + 1, n1), lcg(n2 * 13 + 5, n2, shift), method)
ks_case("lcg_ties_3000x4000", lcg(11, 3000, grid=4), lcg(12, 4000, 0.1, grid=4))
ks_case("lcg_ties_20000x20000", lcg(21, 20000, grid=10), lcg(22, 20000, 0.05, grid=10))

ks_cases = []
for name, a, b, method in ks_inputs:
    res = stats.ks_2samp(materialise(a), materialise(b), method=method)
    ks_cases.append({"name": name, "a": as_json_sample(a), "b": as_json_sample(b),
                     "method": method, "statistic": float(res.statistic),
                     "p_value": float(res.pvalue)})


# ------------------------------------------------------------- kstwo / kolmogorov
def kolmogn_branch(n, x):
    """Which `_kolmogn(cdf=False)` branch (documentation only)."""
    t = n * x
    if x >= 1.0 or t <= 0.5:
        return "support"
    if t <= 1.0:
        return "ruben_gambino_low"
    if t >= n - 1:
        return "ruben_gambino_high"
    if x >= 0.5:
        return "smirnov_x_ge_half"
    nx2 = t * x
    if n <= 140:
        if nx2 <= 0.754693:
            return "durbin"
        if nx2 <= 4:
            return "pomeranz"
        return "smirnov"
    if nx2 >= 370.0:
        return "zero"
    if nx2 >= 2.2:
        return "smirnov"
    if n <= 100000 and n * x**1.5 <= 1.4:
        return "durbin"
    return "pelz_good"


kstwo_cases = []
seen = set()
for n in [1, 2, 3, 5, 10, 20, 50, 100, 139, 140, 141, 200, 500, 1000, 5000, 25000,
          100000, 100001, 500000, 1500000]:
    ds = {0.5 / n, 0.75 / n, 1.0 / n, 1.5 / n, 0.49, 0.5, 0.6, 0.95,
          1.0 - 1.0 / n, 1.0 - 0.5 / n, 0.3, 0.1}
    for nx2 in [0.05, 0.2, 0.5, 0.75, 0.76, 1.0, 1.5, 2.0, 2.19, 2.21, 3.0, 4.0, 4.1,
                6.0, 10.0, 20.0, 100.0, 300.0, 369.0, 371.0]:
        # n = 500000 (1M vs 1M rows) is slow in the O(n) Smirnov sum: sample it lightly.
        if n != 500000 or nx2 in (0.5, 2.0, 2.21, 10.0, 371.0):
            ds.add(math.sqrt(nx2 / n))
    if n > 140:
        for c in [0.5, 1.0, 1.39, 1.41, 2.0]:
            ds.add((c / n) ** (2.0 / 3.0))
    for d in sorted(ds):
        if not (0.0 < d < 1.0) or (n, d) in seen:
            continue
        seen.add((n, d))
        kstwo_cases.append({"n": n, "d": d, "sf": float(stats.kstwo.sf(d, n)),
                            "branch": kolmogn_branch(n, d)})

kolmogorov_cases = [{"x": x, "sf": float(special.kolmogorov(x))} for x in
                    [0.0, 0.01, 0.0406, 0.041, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.82,
                     0.8200001, 0.9, 1.0, 1.36, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0, 19.0,
                     27.0, 28.0]]

smirnov_cases = []
for n in [2, 5, 10, 11, 50, 141, 1000, 20000, 1000001]:
    for x in [0.3 / n, 1.0 / n, 1.5 / n, 0.01, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7,
              1.0 - 1.0 / n, 1.0 - 0.3 / n]:
        if 0.0 < x < 1.0:
            smirnov_cases.append({"n": n, "x": x, "sf": float(special.smirnov(n, x))})

# ------------------------------------------------------------ cramervonmises
cvm_inputs = []
for n1, n2 in [(2, 2), (2, 3), (3, 5), (5, 5), (7, 6), (10, 12), (15, 20), (20, 20), (20, 2)]:
    for shift in (0.0, 1.0, 4.0):
        cvm_inputs.append((f"exact_{n1}x{n2}_shift{shift}", normal(n1), normal(n2, shift)))
cvm_inputs.append(("exact_ties", integers(12, 4), integers(14, 4, 1)))
cvm_inputs.append(("exact_equal", eq[:10], eq[:10].copy()))
for n1, n2, shift in [(21, 20, 0.0), (21, 25, 1.0), (100, 70, 0.3), (300, 300, 0.0),
                      (250, 400, 0.5), (60, 80, 3.0)]:
    cvm_inputs.append((f"asymp_{n1}x{n2}_{shift}", normal(n1), normal(n2, shift)))
cvm_inputs.append(("asymp_ties", integers(200, 8), integers(150, 8, 1)))
for n1, n2, shift in [(5000, 4000, 0.0), (5000, 4000, 0.05), (50000, 50000, 0.01),
                      (2000, 3000, 0.3)]:
    cvm_inputs.append((f"lcg_{n1}x{n2}_{shift}", lcg(n1 + 3, n1), lcg(n2 + 9, n2, shift)))
cvm_inputs.append(("lcg_ties_8000x6000", lcg(31, 8000, grid=3), lcg(32, 6000, 0.02, grid=3)))

cvm_cases = []
for name, a, b in cvm_inputs:
    res = stats.cramervonmises_2samp(materialise(a), materialise(b))
    cvm_cases.append({"name": name, "a": as_json_sample(a), "b": as_json_sample(b),
                      "statistic": float(res.statistic), "p_value": float(res.pvalue)})

cvm_inf_cases = [{"x": x, "cdf": float(scipy.stats._hypotests._cdf_cvm_inf(x))}
                 for x in [0.003, 0.01, 0.03, 0.1, 0.2, 0.4, 0.461, 0.7, 1.0, 1.5, 2.0, 3.0,
                           5.0, 10.0, 50.0]]

# scipy's kv (AMOS) is only good to ~6e-14 relative for x < 2, so K_{1/4}
# itself is checked against mpmath rather than scipy.
import mpmath  # noqa: E402  (a scipy dependency)

mpmath.mp.dps = 40
bessel_k_quarter_cases = [{"x": x, "k": float(mpmath.besselk(0.25, x))} for x in
                          [1e-6, 0.01, 0.05, 0.3, 0.625, 1.0, 1.5, 1.9, 1.999, 2.0, 2.1,
                           3.0, 5.0, 15.625, 50.0, 200.0, 700.0]]

# ------------------------------------------------------------ anderson_ksamp
ad_inputs = []
ad_inputs.append(("two_small", [normal(10), normal(12, 0.5)]))
ad_inputs.append(("two_equal", [eq[:15], eq[:15].copy()]))
ad_inputs.append(("two_shifted", [normal(40), normal(50, 1.0)]))
ad_inputs.append(("two_far", [normal(40), normal(50, 5.0)]))
ad_inputs.append(("three_mid", [normal(30), normal(35, 0.3), normal(25, 0.6)]))
ad_inputs.append(("three_ties", [integers(30, 5), integers(40, 5), integers(20, 5, 1)]))
ad_inputs.append(("four_null", [normal(20), normal(20), normal(20), normal(20)]))
ad_inputs.append(("five_mixed", [normal(8), normal(9, 0.2), normal(10, 0.4), normal(11), normal(12, -0.5)]))
for seed in range(6):
    ad_inputs.append((f"two_null_{seed}", [normal(60), normal(45)]))
    ad_inputs.append((f"two_near05_{seed}", [normal(60), normal(45, 0.4)]))
ad_inputs.append(("lcg_two_large", [lcg(41, 20000), lcg(42, 15000, 0.02)]))
ad_inputs.append(("lcg_three_ties", [lcg(43, 5000, grid=5), lcg(44, 6000, grid=5),
                                     lcg(45, 7000, 0.03, grid=5)]))

ad_cases = []
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for name, samples in ad_inputs:
        res = stats.anderson_ksamp([materialise(s) for s in samples])
        ad_cases.append({"name": name, "samples": [as_json_sample(s) for s in samples],
                         "statistic": float(res.statistic),
                         "critical_values": [float(c) for c in res.critical_values],
                         "p_value": float(res.pvalue)})

out = {
    "scipy_version": scipy.__version__,
    "numpy_version": np.__version__,
    "ks_2samp": ks_cases,
    "kstwo_sf": kstwo_cases,
    "kolmogorov_sf": kolmogorov_cases,
    "smirnov_sf": smirnov_cases,
    "cramervonmises_2samp": cvm_cases,
    "cdf_cvm_inf": cvm_inf_cases,
    "bessel_k_quarter_mpmath": bessel_k_quarter_cases,
    "anderson_ksamp": ad_cases,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ks_cvm_anderson.json")
with open(path, "w") as f:
    json.dump(out, f, separators=(",", ":"), allow_nan=False)
    f.write("\n")
print(f"wrote {path}: {len(ks_cases)} ks, {len(kstwo_cases)} kstwo, {len(cvm_cases)} cvm, "
      f"{len(ad_cases)} anderson cases, {os.path.getsize(path)} bytes")
