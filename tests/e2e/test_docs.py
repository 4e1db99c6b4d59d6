"""Every command the documentation shows, run as a reader would run it.

For each of README.md and docs/*.md, the fenced ``sh``/``bash`` and ``python`` blocks
(also those indented in lists) run in order in one bash session, so that what one block
exports the next one sees, in a fresh directory, with ``sextant`` and ``python`` being the
binary under test and the suite's interpreter. A block fails the test when it exits
non-zero; every failure names the document, the line and the block's output.

The documents stay as a reader sees them. What the harness does around them:

* ``sextant server …`` (with any flags, with or without a trailing ``&``) starts the
  binary under test in the background on a free port with a data directory of its own
  (replacing the one running), and returns once it answers ``/health``. A document whose
  first block does not start one gets a server before it. ``localhost:5000`` and
  ``127.0.0.1:5000`` in the blocks mean that server, and ``~/.local/share/sextant`` its
  data directory.
* ``<!-- doc-test: skip -- why -->`` on the line before a block leaves it out; every
  skip gives its reason, and the run prints them.
* ``<!-- doc-test: setup`` … ``-->`` holds commands a reader would have done already
  (``python train.py``'s script, say): they run, hidden, before the next block.
* ``SEXTANT_SERVER``, ``MLFLOW_TRACKING_URI`` point at the server unless a block sets
  them, as the documents assume once their server runs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import AGAINST_MLFLOW, _free_port, _sextant_bin

pytestmark = [
    pytest.mark.sextant_only,
    pytest.mark.skipif(AGAINST_MLFLOW, reason="Sextant's documentation"),
]

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
LANGUAGES = {"sh": "sh", "bash": "sh", "shell": "sh", "console": "sh", "python": "python"}
BLOCK_TIMEOUT_S = 600


@dataclass
class Block:
    line: int
    language: str  # "sh", "python" or "setup"
    code: str
    skip: str | None = None


def blocks_of(path: Path) -> list[Block]:
    """The runnable blocks of a Markdown file, with their directives."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    pending_skip: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        skip = re.match(r"<!--\s*doc-test:\s*skip\s*--\s*(.+?)\s*-->", stripped)
        if skip:
            pending_skip = skip.group(1)
            i += 1
            continue
        if stripped.startswith("<!-- doc-test: setup"):
            start = i + 1
            i += 1
            while i < len(lines) and lines[i].strip() != "-->":
                i += 1
            blocks.append(Block(start, "setup", textwrap.dedent("\n".join(lines[start:i]))))
            i += 1
            continue
        fence = re.match(r"^(\s*)```(\w+)?\s*$", line)
        if fence:
            indent, language = fence.group(1), fence.group(2) or ""
            start = i + 1
            i += 1
            body = []
            while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
                body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
                i += 1
            i += 1
            if language in LANGUAGES:
                blocks.append(Block(start, LANGUAGES[language], "\n".join(body), pending_skip))
            pending_skip = None
            continue
        if stripped:
            pending_skip = None
        i += 1
    return blocks


SERVER_LINE = re.compile(r"^(\s*(?:\w+=(?:'[^']*'|\"[^\"]*\"|\S+)\s+)*)sextant\s+server\b([^&#\n]*)&?\s*(#.*)?$")

PRELUDE = r"""
set -euo pipefail
# An HTTP error answer fails the block, as a reader would notice it.
curl() { command curl --fail-with-body --show-error "$@"; }
doctest_server() {
  if [[ -n ${DOCTEST_SERVER_PID:-} ]]; then kill "$DOCTEST_SERVER_PID" 2>/dev/null || true; wait "$DOCTEST_SERVER_PID" 2>/dev/null || true; fi
  setsid "$DOCTEST_SEXTANT" server --port "$DOCTEST_PORT" --data-dir "$DOCTEST_DATA" "$@" >>"$DOCTEST_LOG" 2>&1 &
  DOCTEST_SERVER_PID=$!
  echo "$DOCTEST_SERVER_PID" >"$DOCTEST_PIDFILE"
  for _ in $(seq 1 300); do
    if "$DOCTEST_PYTHON" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$DOCTEST_PORT/health', timeout=1)" 2>/dev/null; then return 0; fi
    if ! kill -0 "$DOCTEST_SERVER_PID" 2>/dev/null; then echo "the server exited; its log:" >&2; tail -n 40 "$DOCTEST_LOG" >&2; return 1; fi
    sleep 0.1
  done
  echo "the server did not answer /health" >&2
  return 1
}
"""


def shell_of(block: Block, port: int, data_dir: Path) -> str:
    """A block as the session runs it: the server command rewritten, port 5000 meaning
    the harness's server, Python blocks fed to the interpreter."""
    code = (
        block.code.replace("localhost:5000", f"localhost:{port}")
        .replace("127.0.0.1:5000", f"127.0.0.1:{port}")
        .replace("~/.local/share/sextant", str(data_dir))
    )
    if block.language == "python":
        return f"python - <<'DOCTEST_PYTHON_EOF'\n{code}\nDOCTEST_PYTHON_EOF\n"
    out = []
    for line in code.splitlines():
        match = SERVER_LINE.match(line)
        if match:
            env, flags = match.group(1), match.group(2).strip()
            line = f"{env}doctest_server {flags}"
        out.append(line)
    return "\n".join(out) + "\n"


def run_document(name: str, tmp_path: Path) -> list[str]:
    """Runs a document's blocks; returns the skips with their reasons."""
    path = ROOT / name
    blocks = blocks_of(path)
    skipped = [f"{name}:{b.line}: {b.skip}" for b in blocks if b.skip]
    runnable = [b for b in blocks if not b.skip]
    if not runnable:
        return skipped
    port = _free_port()
    work = tmp_path / "work"
    bin_dir = tmp_path / "bin"
    work.mkdir()
    bin_dir.mkdir()
    (bin_dir / "sextant").symlink_to(_sextant_bin())
    for interpreter in ("python", "python3"):
        # A wrapper, not a link: a virtualenv's interpreter finds its packages
        # from where it is called.
        wrapper = bin_dir / interpreter
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        wrapper.chmod(0o755)
    pidfile = tmp_path / "server.pid"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SEXTANT_"))}
    env.update(
        PATH=f"{bin_dir}:{env.get('PATH', '')}",
        NO_COLOR="1",
        DOCTEST_SEXTANT=str(_sextant_bin()),
        DOCTEST_PYTHON=sys.executable,
        DOCTEST_PORT=str(port),
        DOCTEST_DATA=str(tmp_path / "data"),
        DOCTEST_LOG=str(tmp_path / "server.log"),
        DOCTEST_PIDFILE=str(pidfile),
        SEXTANT_SERVER=f"http://127.0.0.1:{port}",
        MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}",
    )
    # A document that starts its server in its first block (a walkthrough) gets none
    # before; the others get one, and a later `sextant server` replaces it.
    starts_server = any(SERVER_LINE.match(line) for line in runnable[0].code.splitlines())
    try:
        # One bash session per document, so that what a block exports the next one
        # sees; markers on stderr say which block was running when it failed.
        script = [PRELUDE]
        if not starts_server:
            script.append("doctest_server\n")
        for index, block in enumerate(runnable):
            script.append(f"echo '@@doctest block {index} start' >&2\n")
            script.append(shell_of(block, port, tmp_path / "data"))
        (tmp_path / "document.sh").write_text("".join(script))
        result = subprocess.run(
            ["bash", str(tmp_path / "document.sh")],
            cwd=work, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S * 2,
        )
        if result.returncode != 0:
            started = re.findall(r"@@doctest block (\d+) start", result.stderr)
            failed = runnable[int(started[-1])] if started else runnable[0]
            log = (tmp_path / "server.log").read_text()[-3000:] if (tmp_path / "server.log").exists() else ""
            pytest.fail(
                f"{name}:{failed.line}: the block failed (exit {result.returncode}):\n"
                f"{textwrap.indent(failed.code, '    ')}\n--- stdout ---\n{result.stdout[-3000:]}\n"
                f"--- stderr ---\n{result.stderr[-4000:]}\n--- server log ---\n{log}"
            )
    finally:
        if pidfile.exists():
            try:
                pid = int(pidfile.read_text().strip())
                os.killpg(pid, signal.SIGTERM)
            except (ValueError, OSError):
                pass
    return skipped


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_commands_of_the_document_run(document, tmp_path, capsys):
    skipped = run_document(document, tmp_path)
    with capsys.disabled():
        for skip in skipped:
            print(f"\n  skipped {skip}", end="")


def test_every_skip_says_why():
    for name in DOCUMENTS:
        text = (ROOT / name).read_text()
        for match in re.finditer(r"<!--\s*doc-test:\s*skip(.*?)-->", text):
            assert re.match(r"\s*--\s*\S", match.group(1)), f"{name}: a doc-test skip without a reason"
