"""Golden values for sextant-stats' special / divergence / wasserstein /
contingency / correction modules.

Regenerate (from the repository root) with scipy 1.17.1, numpy 2.4.6 and
mpmath 1.3:

    ~/.cache/sextant/venv-e2e/bin/python \
        crates/sextant-stats/tests/golden/tests_divergences.py

Writes tests_divergences.json beside this file. Floats are written with
repr (round-trip exact); non-finite values as the strings "inf", "-inf",
"nan" because JSON has no literal for them.

Each special-function case carries scipy's value ("scipy") and a 50-digit
mpmath value ("exact"): the Rust tests hold the crate to scipy and, more
tightly, to the exact value. Jensen-Shannon also gets an mpmath value
("js_*_exact"): for nearly identical inputs scipy's own sum cancels to
rounding noise. Hellinger and L-infinity have no scipy
counterpart and are computed with mpmath from the normalised inputs.
"""

import json
import math
import os
import warnings

import mpmath
import numpy as np
import scipy
from scipy import special, stats
from scipy.spatial import distance

warnings.simplefilter("ignore")
mpmath.mp.dps = 50
rng = np.random.default_rng(20260514)


def enc(x):
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def floats(values):
    return [enc(v) for v in values]


def exact(value):
    """An mpmath value rounded to the nearest double."""
    return enc(float(value))


# ---------------------------------------------------------------- special
ln_gamma = []
for x in [1e-300, 1e-8, 0.1, 0.5, 0.9, 1.0, 1.5, 2.0, 2.5, 3.0, 7.3, 9.999, 10.0,
          12.5, 50.0, 171.5, 1000.0, 1e5, 1e10, 1e300, -0.5, -2.5, -10.3]:
    ln_gamma.append({"x": x, "scipy": enc(special.gammaln(x)),
                     "exact": exact(mpmath.log(abs(mpmath.gamma(mpmath.mpf(x)))))})

ln_factorial = []
for n in [0, 1, 2, 5, 10, 20, 22, 23, 50, 170, 1000, 10**6]:
    ln_factorial.append({"n": n, "scipy": enc(special.gammaln(n + 1)),
                         "exact": exact(mpmath.loggamma(n + 1))})

gamma = []
for a, x in [(0.5, 0.1), (0.5, 1.0), (0.5, 5.0), (1.0, 1.0), (1.5, 0.01), (1.5, 1000.0),
             (1.5, 700.0), (2.0, 3.0), (3.0, 2.5), (5.0, 20.0), (9.5, 9.0), (10.0, 10.0),
             (10.0, 30.0), (25.0, 20.0), (50.0, 49.0), (50.0, 80.0), (100.0, 100.5),
             (100.0, 60.0), (500.0, 520.0), (1200.0, 1190.0), (1e4, 1e4 + 50.0),
             (1e5, 9.9e4), (0.01, 0.5), (3.0, 1e-20)]:
    a_m, x_m = mpmath.mpf(a), mpmath.mpf(x)
    gamma.append({"a": a, "x": x,
                  "p_scipy": enc(special.gammainc(a, x)), "q_scipy": enc(special.gammaincc(a, x)),
                  "p_exact": exact(mpmath.gammainc(a_m, 0, x_m, regularized=True)),
                  "q_exact": exact(mpmath.gammainc(a_m, x_m, mpmath.inf, regularized=True))})

chi2_sf = []
for x, df in [(0.0, 3.0), (0.5, 1.0), (3.84, 1.0), (1.0, 2.0), (7.8, 3.0), (30.0, 3.0),
              (200.0, 3.0), (1400.0, 3.0), (2000.0, 3.0), (10.0, 20.0), (2401.0, 2400.0),
              (3000.0, 2400.0), (1e-10, 4.0), (150.0, 100.0), (60.0, 100.0)]:
    chi2_sf.append({"x": x, "df": df, "scipy": enc(stats.chi2.sf(x, df)),
                    "exact": exact(mpmath.gammainc(mpmath.mpf(df) / 2, mpmath.mpf(x) / 2,
                                                   mpmath.inf, regularized=True))})

normal = []
for x in [0.0, 1e-10, 0.3, -0.3, 0.7, 1.0, -1.0, 1.96, -1.96, 3.0, 5.0, -8.3, 8.3, 10.0,
          20.0, 26.0, 37.0, 38.0, 40.0, -40.0]:
    mx = mpmath.mpf(x)
    normal.append({"x": x, "cdf_scipy": enc(special.ndtr(x)), "sf_scipy": enc(stats.norm.sf(x)),
                   "cdf_exact": exact(mpmath.ncdf(mx)), "sf_exact": exact(mpmath.ncdf(-mx))})

erfc = []
for x in [-30.0, -3.0, -0.5, -0.2, 0.0, 1e-12, 0.2, 0.46875, 0.5, 1.0, 2.5, 4.0, 4.5, 10.0,
          20.0, 26.5, 27.0, 28.0]:
    mx = mpmath.mpf(x)
    erfc.append({"x": x, "erfc_scipy": enc(special.erfc(x)), "erf_scipy": enc(special.erf(x)),
                 "erfc_exact": exact(mpmath.erfc(mx)), "erf_exact": exact(mpmath.erf(mx))})

# ------------------------------------------------------------- divergence
def shares(k, concentration=1.0):
    return rng.dirichlet(np.full(k, concentration))


distribution_pairs = [
    ("two bins", [0.5, 0.5], [0.9, 0.1]),
    ("counts not shares", [10.0, 20.0, 30.0], [30.0, 20.0, 10.0]),
    ("identical", [0.2, 0.3, 0.5], [0.2, 0.3, 0.5]),
    ("nearly identical", [0.2, 0.3, 0.5], [0.2 + 1e-9, 0.3, 0.5 - 1e-9]),
    ("zero in p", [0.0, 0.4, 0.6], [0.1, 0.4, 0.5]),
    ("zero in q", [0.1, 0.4, 0.5], [0.0, 0.4, 0.6]),
    ("zero in both", [0.0, 0.4, 0.6], [0.0, 0.5, 0.5]),
    ("disjoint support", [1.0, 0.0], [0.0, 1.0]),
    ("single category", [7.0], [3.0]),
    ("ten random bins", list(shares(10)), list(shares(10))),
    ("thirty sparse bins", list(shares(30, 0.3)), list(shares(30, 0.3))),
    ("two hundred bins", list(shares(200)), list(shares(200))),
    ("huge counts", [1e12, 3e12, 6e12], [2e12, 3e12, 5e12]),
]

divergence = []
for name, p, q in distribution_pairs:
    p_arr, q_arr = np.asarray(p, float), np.asarray(q, float)
    pn = [mpmath.mpf(v) / mpmath.fsum(map(mpmath.mpf, p)) for v in p]
    qn = [mpmath.mpf(v) / mpmath.fsum(map(mpmath.mpf, q)) for v in q]
    js_nats = mpmath.sqrt(mpmath.fsum(
        (a * mpmath.log(a / ((a + b) / 2)) if a > 0 else 0) + (b * mpmath.log(b / ((a + b) / 2)) if b > 0 else 0)
        for a, b in zip(pn, qn)) / 2)
    hellinger = mpmath.sqrt(mpmath.fsum((mpmath.sqrt(a) - mpmath.sqrt(b)) ** 2 for a, b in zip(pn, qn)) / 2)
    l_inf = max(abs(float(a) - float(b)) for a, b in zip(p_arr / p_arr.sum(), q_arr / q_arr.sum()))
    divergence.append({
        "name": name, "p": floats(p), "q": floats(q),
        "js_base2": enc(distance.jensenshannon(p_arr, q_arr, base=2)),
        "js_nats": enc(distance.jensenshannon(p_arr, q_arr)),
        "js_nats_exact": exact(js_nats), "js_base2_exact": exact(js_nats / mpmath.sqrt(mpmath.log(2))),
        "kl": enc(stats.entropy(p_arr, q_arr)),
        "hellinger": exact(hellinger),
        "l_infinity": enc(l_inf),
    })

psi = []
for name, r, c in [("evidently style", [0.1, 0.2, 0.3, 0.4], [0.15, 0.25, 0.25, 0.35]),
                   ("zero filled", [0.0001, 0.5, 0.4999], [0.3, 0.3, 0.4]),
                   ("identical", [0.25, 0.25, 0.5], [0.25, 0.25, 0.5]),
                   ("random", list(shares(20)), list(shares(20))),
                   ("two hundred bins", list(shares(200)), list(shares(200)))]:
    r_arr, c_arr = np.asarray(r), np.asarray(c)
    psi.append({"name": name, "reference": floats(r), "current": floats(c),
                "expected": enc(np.sum((r_arr - c_arr) * np.log(r_arr / c_arr)))})

# ------------------------------------------------------------ wasserstein
def rounded(values, digits=4):
    return [float(v) for v in np.round(values, digits)]


wasserstein_cases = [
    ("scipy docstring", [0.0, 1.0, 3.0], [5.0, 6.0, 8.0]),
    ("scipy docstring 2", [3.4, 3.9, 7.5, 7.8], [4.5, 1.4]),
    ("identical", [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]),
    ("single values", [2.5], [-1.0]),
    ("ties across samples", [1.0, 1.0, 2.0, 2.0, 3.0], [2.0, 2.0, 2.0, 5.0]),
    ("constant reference", [4.0] * 20, rounded(rng.normal(4.0, 1.0, 30))),
    ("unequal sizes normal", rounded(rng.normal(0, 1, 300)), rounded(rng.normal(0.3, 1.2, 170))),
    ("integers", [float(v) for v in rng.integers(0, 10, 120)], [float(v) for v in rng.integers(0, 12, 95)]),
    ("wide scale", rounded(rng.normal(0, 1e6, 80), 1), rounded(rng.normal(1e5, 2e6, 60), 1)),
    ("unsorted small shift", rounded(rng.uniform(0, 1, 500), 6), rounded(rng.uniform(0.01, 1.01, 500), 6)),
]
wasserstein = []
for name, u, v in wasserstein_cases:
    u_arr, v_arr = np.asarray(u), np.asarray(v)
    w1 = stats.wasserstein_distance(u_arr, v_arr)
    wasserstein.append({"name": name, "u": floats(u), "v": floats(v),
                        "w1": enc(w1), "w1_swapped": enc(stats.wasserstein_distance(v_arr, u_arr)),
                        "normed": enc(w1 / max(np.std(u_arr), 0.001))})

# ------------------------------------------------------------ contingency
goodness_of_fit = []
for name, observed, expected in [
    ("scipy docstring", [16, 18, 16, 14, 12, 12], [16, 16, 16, 16, 16, 8]),
    ("two categories", [5, 0], [4, 1]),
    ("expected zero observed positive", [5, 1], [6, 0]),
    ("single category", [5], [5]),
    ("perfect fit", [10, 20, 30], [10, 20, 30]),
    ("huge counts", [1e9 + 5e4, 2e9 - 5e4, 3e9], [1e9, 2e9, 3e9]),
    ("far tail", [1000, 0, 0, 0], [250, 250, 250, 250]),
    ("p near one", [100, 101, 99, 100], [100, 100, 100, 100]),
    ("fractional expected", [30, 14, 34, 45, 57, 20], list(np.full(6, 200 / 6))),
]:
    o, e = np.asarray(observed, float), np.asarray(expected, float)
    chi = stats.chisquare(o, e)
    g = stats.power_divergence(o, e, lambda_="log-likelihood")
    goodness_of_fit.append({"name": name, "observed": floats(o), "expected": floats(e),
                            "chi2": [enc(chi.statistic), enc(chi.pvalue)],
                            "g": [enc(g.statistic), enc(g.pvalue)]})

tables = [
    ("2x2 yates", [[12, 5], [7, 9]]),
    ("2x2 small gap caps correction", [[10, 10], [10, 11]]),
    ("2x2 exact independence", [[10, 20], [20, 40]]),
    ("2x2 with zero cell", [[0, 7], [5, 3]]),
    ("2x3", [[10, 10, 20], [20, 20, 20]]),
    ("3x4", [[3, 8, 12, 5], [9, 2, 7, 11], [4, 6, 6, 9]]),
    ("huge counts", [[4_000_000, 3_000_000], [3_000_000, 4_100_000]]),
    ("far tail", [[1000, 0], [0, 1000]]),
    ("single row", [[3, 4, 5]]),
    ("single column", [[3], [4]]),
    ("wide", [list(map(int, rng.integers(1, 50, 12))), list(map(int, rng.integers(1, 50, 12))),
              list(map(int, rng.integers(1, 50, 12)))]),
]
contingency = []
for name, table in tables:
    t = np.asarray(table, float)
    chi = stats.chi2_contingency(t)
    g = stats.chi2_contingency(t, lambda_="log-likelihood")
    contingency.append({"name": name, "table": [floats(row) for row in t],
                        "chi2": [enc(chi.statistic), enc(chi.pvalue), int(chi.dof)],
                        "g": [enc(g.statistic), enc(g.pvalue), int(g.dof)]})


def proportions_z(x1, n1, x2, n2):
    """Evidently's proportions_diff_z_stat_ind evaluation order."""
    p1, p2 = float(x1) / n1, float(x2) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    return (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))


z_test = []
for x1, n1, x2, n2 in [(45, 100, 55, 100), (300, 1000, 250, 1200), (5, 10, 5, 10),
                       (1, 2000, 30, 2000), (9_000, 10_000, 1_000, 10_000), (0, 500, 1, 800)]:
    z = proportions_z(x1, n1, x2, n2)
    z_test.append({"counts": [x1, n1, x2, n2], "z": enc(z),
                   "p_sf": enc(2 * stats.norm.sf(abs(z))),
                   "p_evidently": enc(2 * (1 - stats.norm.cdf(np.abs(z))))})

fisher = []
for table in [[[1, 9], [11, 3]], [[8, 2], [1, 5]], [[3, 1], [1, 3]], [[10, 10], [10, 10]],
              [[0, 5], [5, 0]], [[0, 0], [3, 4]], [[100, 2], [3, 90]], [[20, 15], [14, 21]],
              [[500, 480], [470, 530]], [[7, 0], [0, 7]], [[2, 7], [8, 2]]]:
    res = stats.fisher_exact(table)
    fisher.append({"table": table, "odds_ratio": enc(res.statistic), "p": enc(res.pvalue)})

# ------------------------------------------------------------- correction
p_families = [
    [0.01, 0.04, 0.03, 0.005, 0.5],
    [0.9, 0.95, 0.99, 0.999999],
    [0.02, 0.02, 0.02, 0.5, 1e-10],
    list(rng.uniform(0, 0.2, 50)),
    [0.3],
]
correction = []
for ps in p_families:
    arr = np.asarray(ps, float)
    correction.append({"p": floats(arr),
                       "bh": floats(stats.false_discovery_control(arr, method="bh")),
                       "bonferroni": floats(np.minimum(arr * len(arr), 1.0))})

golden = {
    "versions": {"scipy": scipy.__version__, "numpy": np.__version__, "mpmath": mpmath.__version__},
    "ln_gamma": ln_gamma, "ln_factorial": ln_factorial, "gamma": gamma, "chi2_sf": chi2_sf,
    "normal": normal, "erfc": erfc,
    "divergence": divergence, "psi": psi, "wasserstein": wasserstein,
    "goodness_of_fit": goodness_of_fit, "contingency": contingency, "z_test": z_test,
    "fisher": fisher, "correction": correction,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tests_divergences.json")
with open(path, "w") as out:
    json.dump(golden, out, indent=1)
    out.write("\n")
print(f"wrote {path} ({os.path.getsize(path)} bytes)")
