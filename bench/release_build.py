"""Where the benchmarks find the release build of `sextant`.

`$CARGO_TARGET_DIR` when set; else this checkout's `target/` (where a plain
`cargo build --release -p sextant-cli` puts it) or `~/.cache/sextant/target`
(scripts/test's), whichever holds a release binary; else `target/`, so the
message about a missing binary names the directory BENCHMARKS.md builds into.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TARGET = Path(
    os.environ.get("CARGO_TARGET_DIR")
    or next(
        (t for t in (REPO / "target", Path.home() / ".cache/sextant/target") if (t / "release" / "sextant").exists()),
        REPO / "target",
    )
)
