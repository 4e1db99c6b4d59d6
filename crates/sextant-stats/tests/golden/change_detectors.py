"""Golden detections for sextant-stats' streaming change detectors
(`src/change.rs`) from river's implementations with their defaults.

Regenerate (from the repository root) with river 0.26.1 and numpy 2.4.6 in
a throwaway venv:

    python3.11 -m venv /tmp/venv-river
    /tmp/venv-river/bin/pip install river==0.26.1 numpy==2.4.6
    /tmp/venv-river/bin/python crates/sextant-stats/tests/golden/change_detectors.py

Writes change_detectors.json beside this file.

Every stream is stored as integers so both sides read the exact same
doubles: a value is `k / scale` (one correctly rounded division in Python
and in Rust) with the stream's `scale` (1 for 0/1 error streams). For each
detector the whole state sequence is stored as a string with one letter
per update: "S" stable, "W" warning (DDM only), "D" drift; the Rust test
asserts the identical string. ADWIN's window (width, total, variance) after
the last update is stored too, to check the bucket arithmetic.
"""

import json
import os

import numpy as np
import river
from river import drift

rng = np.random.default_rng(20260514)


def bernoulli(segments):
    """0/1 error stream: `segments` is a list of (length, error rate)."""
    parts = [(rng.random(n) < p).astype(int) for n, p in segments]
    return [int(v) for v in np.concatenate(parts)]


def gaussian(segments, scale):
    """Gaussian stream rounded to 1/scale: (length, mean, sd) segments."""
    parts = [rng.normal(mu, sd, n) for n, mu, sd in segments]
    return [int(v) for v in np.rint(np.concatenate(parts) * scale)]


streams = [
    {"name": "bernoulli_step", "scale": 1,
     "ints": bernoulli([(2000, 0.1), (2000, 0.4)])},
    {"name": "bernoulli_stationary", "scale": 1,
     "ints": bernoulli([(4000, 0.2)])},
    {"name": "bernoulli_multi", "scale": 1,
     "ints": bernoulli([(1200, 0.1), (1200, 0.5), (1200, 0.1), (1400, 0.3)])},
    {"name": "gaussian_shift", "scale": 1000,
     "ints": gaussian([(2000, 0.0, 1.0), (2000, 0.8, 1.0)], 1000)},
    {"name": "gaussian_stationary", "scale": 1000,
     "ints": gaussian([(4000, 5.0, 2.0)], 1000)},
    {"name": "gaussian_down_up", "scale": 1000,
     "ints": gaussian([(1500, 10.0, 1.0), (1500, 8.0, 1.0), (1500, 12.0, 3.0)], 1000)},
]


def run(detector, values):
    states = []
    for x in values:
        detector.update(x)
        if detector.drift_detected:
            states.append("D")
        elif getattr(detector, "warning_detected", False):
            states.append("W")
        else:
            states.append("S")
    return "".join(states)


for stream in streams:
    values = [k / stream["scale"] for k in stream["ints"]]
    binary = stream["scale"] == 1
    stream["page_hinkley"] = run(drift.PageHinkley(), values)
    adwin = drift.ADWIN()
    stream["adwin"] = run(adwin, values)
    stream["adwin_final"] = {"width": float(adwin.width), "total": float(adwin.total),
                             "variance": float(adwin.variance)}
    if binary:
        stream["ddm"] = run(drift.binary.DDM(), [int(v) for v in values])
    else:
        stream["ddm"] = None
    for key in ("page_hinkley", "adwin", "ddm"):
        if stream[key] is not None:
            drifts = [i for i, s in enumerate(stream[key]) if s == "D"]
            print(f"{stream['name']:22} {key:13} drifts at {drifts}")

out = {
    "river": river.__version__,
    "numpy": np.__version__,
    "streams": streams,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "change_detectors.json")
with open(path, "w") as f:
    json.dump(out, f, separators=(",", ":"))
    f.write("\n")
print(path, os.path.getsize(path), "bytes")
