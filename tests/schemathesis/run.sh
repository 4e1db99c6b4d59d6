#!/usr/bin/env bash
# Runs Schemathesis (every check) against a Sextant server started here, with and
# without --auth, each for a bounded time; exits non-zero on any failure.
# Usage: tests/schemathesis/run.sh SEXTANT_BIN SCHEMATHESIS_BIN [SECONDS]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=$1 st=$2 seconds=${3:-90}
status=0
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

run_against() {
    local mode=$1 port
    port=$(free_port)
    local args=(server --host 127.0.0.1 --port "$port" --data-dir "$work/$mode")
    local auth=()
    if [[ $mode == auth ]]; then
        args+=(--auth)
        auth=(--auth "admin:schemathesis-admin")
    fi
    SEXTANT_ADMIN_PASSWORD=schemathesis-admin "$bin" "${args[@]}" >"$work/$mode.log" 2>&1 &
    local server=$!
    python3 - "$port" <<'PY'
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1)
        break
    except Exception:
        time.sleep(0.1)
PY
    echo "==> schemathesis ($mode): ${seconds}s against http://127.0.0.1:$port/api/v1/openapi.json" >&2
    # One worker: with two, Python 3.11's `ast` module (which Hypothesis uses to
    # describe its filters) shares one recursion counter between threads and
    # fails at random with "AST constructor recursion depth mismatch"
    # (CPython gh-106905), a tool error that would fail the run.
    (cd "$here" && "$st" run "http://127.0.0.1:$port/api/v1/openapi.json" \
        --checks all --max-time "$seconds" --workers 1 --seed 20261206 \
        --phases examples,coverage,fuzzing "${auth[@]}") || status=1
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
}

run_against open
run_against auth
exit $status
