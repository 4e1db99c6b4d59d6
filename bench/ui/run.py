#!/usr/bin/env python3
"""Side-by-side benchmark: Sextant's web UI vs MLflow 3.17.2's own UI.

Both servers run on this machine, one after the other, on fresh data
directories and free 127.0.0.1 ports, holding the same runs (dataset.py):

  * a table experiment of --runs runs (20 params, 10 metrics each);
  * a chart experiment of --chart-runs runs x --steps steps of `loss`.

Sextant is seeded over its HTTP API (runs/create, runs/log-batch,
runs/update, from several client processes); MLflow's SQLite file is written
directly (seed_mlflow_sql.py) before its server starts. Seeding time is
recorded but not compared.

For each server it measures, in this order:

  1. server time of the runs page's data: Sextant `GET /experiments/{id}`
     (the whole server-rendered page), MLflow the `runs/search` request(s)
     its UI sends for that page; sequential requests timed on the client;
  2. server time of the chart data for the chart runs: Sextant
     `GET /ui/api/series` (px=800), MLflow `metrics/get-history-bulk-interval`
     (max_results=320, what its charts ask for);
  3. in headless Chromium: navigation start -> first run row in the DOM (and
     the next frame after it), cold (HTTP cache disabled) and warm; Sextant's
     compare chart until drawn, MLflow's chart view until its traces stop
     changing;
  4. page weight: HTML + JS + CSS of the runs page.

Sextant only: a few more pages at the same size (sorted, filtered, grouped,
last page, run page, experiments list) are timed to find slow ones.

    cargo build --release -p sextant-cli
    ~/.cache/sextant/venv-e2e/bin/python bench/ui/run.py            # full size
    ~/.cache/sextant/venv-e2e/bin/python bench/ui/run.py --quick    # 2,000 runs

Needs Python 3.11 with `requests` and `selenium`, Debian's chromium and
chromedriver, and an `mlflow` installation. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import html as htmllib
import http.client
import importlib.util
import json
import multiprocessing
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
import dataset  # noqa: E402

# Process handling, memory, CPU split and version helpers are the tracking
# benchmark's; load that file under another module name (this one is `run` too).
_spec = importlib.util.spec_from_file_location("tracking_run", REPO / "bench" / "tracking" / "run.py")
tracking = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tracking)

API = "/api/2.0/mlflow"
LOCK_PATH = "/tmp/sextant-bench-ui.lock"
SEED_PROCESSES = 3
SETTLE_S = 3.0
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROME_ARGS = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"]
MLFLOW_CHART_MAX_RESULTS = 320  # what MLflow 3.17.2's charts ask get-history-bulk-interval for
MLFLOW_BULK_MAX_RUNS = 100  # MLflow's MAX_RUNS_GET_METRIC_HISTORY_BULK
SEXTANT_PX = 800
BROWSER_TIMEOUT_S = 90.0
MLFLOW_CHART_QUIET_MS = 3000  # MLflow's chart counts as drawn when its traces stop changing this long


# --------------------------------------------------------------------------- #
# Timing helpers


def summarize(times_ms: list[float]) -> dict:
    if not times_ms:
        return {"n": 0}
    return {
        "n": len(times_ms),
        "p50_ms": round(statistics.median(times_ms), 2),
        "p90_ms": round(tracking.percentile(times_ms, 90), 2),
        "min_ms": round(min(times_ms), 2),
        "max_ms": round(max(times_ms), 2),
        "times_ms": [round(t, 2) for t in times_ms],
    }


def timed_requests(send, repeats: int, budget_s: float, warmup: int = 1) -> dict:
    """Call `send()` (returns a requests.Response) `warmup` times untimed, then
    up to `repeats` times timed on the client, stopping early (after at least
    5 timed calls) once `budget_s` seconds have gone by. Every answer must be 200."""
    last, first = None, []
    for _ in range(warmup):
        t = time.perf_counter()
        last = send()
        first.append(round((time.perf_counter() - t) * 1e3, 2))
        if last.status_code != 200:
            raise RuntimeError(f"{last.status_code}: {last.text[:300]}")
    times, started, sizes = [], time.perf_counter(), set()
    for i in range(repeats):
        t = time.perf_counter()
        r = send()
        elapsed = (time.perf_counter() - t) * 1e3
        if r.status_code != 200:
            raise RuntimeError(f"{r.status_code}: {r.text[:300]}")
        times.append(elapsed)
        sizes.add(len(r.content))
        last = r
        if i + 1 >= 5 and time.perf_counter() - started > budget_s:
            break
    out = summarize(times)
    # The untimed first calls: for Sextant's chart data, the one that reads
    # the histories from the database before its cache holds them.
    out["first_ms"] = first
    out["requested"] = repeats
    out["bytes"] = sorted(sizes)
    return out, last


# --------------------------------------------------------------------------- #
# Seeding Sextant over HTTP, from several processes


def _post(conn: http.client.HTTPConnection, path: str, body: dict, retries: list) -> dict:
    payload = json.dumps(body)
    for attempt in range(8):
        conn.request("POST", API + path, payload, {"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        if r.status == 200:
            return json.loads(data) if data else {}
        if r.status not in tracking.RETRY_STATUSES or attempt == 7:
            raise RuntimeError(f"POST {path} -> {r.status}: {data[:300]!r}")
        retries.append(f"{path} {r.status}")
        time.sleep(min(0.05 * 2 ** attempt, 2.0) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


def _seed_worker(args) -> dict:
    """One seeding process: runs i with i % workers == k, of both experiments."""
    port, k, workers, n_runs, n_chart, steps, runs_exp, chart_exp = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    retries: list[str] = []
    chart_ids: dict[int, str] = {}

    def create(experiment_id: str, run: dict) -> str:
        created = _post(conn, "/runs/create", {
            "experiment_id": experiment_id,
            "user_id": dataset.USER,
            "run_name": run["name"],
            "start_time": run["start_time"],
            "tags": [{"key": k2, "value": v} for k2, v in run.get("tags", {}).items()],
        }, retries)
        return created["run"]["info"]["run_id"]

    def finish(run_id: str, run: dict) -> None:
        _post(conn, "/runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": run["end_time"]}, retries)

    for i, run in enumerate(dataset.runs(n_runs)):
        if i % workers != k:
            continue
        run_id = create(runs_exp, run)
        _post(conn, "/runs/log-batch", {
            "run_id": run_id,
            "params": [{"key": k2, "value": v} for k2, v in run["params"].items()],
            "metrics": [
                {"key": k2, "value": v, "timestamp": run["start_time"], "step": 0}
                for k2, v in run["metrics"].items()
            ],
        }, retries)
        finish(run_id, run)
    for i, run in enumerate(dataset.chart_runs(n_chart, steps)):
        if i % workers != k:
            continue
        run_id = create(chart_exp, run)
        points = run["points"]
        for lo in range(0, len(points), 1000):
            _post(conn, "/runs/log-batch", {
                "run_id": run_id,
                "metrics": [
                    {"key": dataset.CHART_METRIC, "value": v, "timestamp": ts, "step": step}
                    for step, ts, v in points[lo:lo + 1000]
                ],
            }, retries)
        finish(run_id, run)
        chart_ids[i] = run_id
    conn.close()
    return {"retries": retries, "chart_ids": chart_ids}


def seed_sextant(base: str, port: int, args) -> dict:
    started = time.perf_counter()
    s = requests.Session()
    runs_exp = tracking.post(s, base, "/experiments/create", {"name": dataset.RUNS_EXPERIMENT})["experiment_id"]
    chart_exp = tracking.post(s, base, "/experiments/create", {"name": dataset.CHART_EXPERIMENT})["experiment_id"]
    empty_exp = tracking.post(s, base, "/experiments/create", {"name": "bench-ui-empty"})["experiment_id"]
    jobs = [
        (port, k, SEED_PROCESSES, args.runs, args.chart_runs, args.steps, runs_exp, chart_exp)
        for k in range(SEED_PROCESSES)
    ]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(SEED_PROCESSES) as pool:
        results = pool.map(_seed_worker, jobs)
    chart_ids: dict[int, str] = {}
    retries: list[str] = []
    for r in results:
        chart_ids.update(r["chart_ids"])
        retries += r["retries"]
    return {
        "runs_experiment_id": runs_exp,
        "chart_experiment_id": chart_exp,
        "empty_experiment_id": empty_exp,
        "chart_run_ids": [chart_ids[i] for i in sorted(chart_ids)],
        "seconds": round(time.perf_counter() - started, 2),
        "method": f"HTTP runs/create + runs/log-batch + runs/update, {SEED_PROCESSES} client processes",
        "retried": {k: retries.count(k) for k in sorted(set(retries))},
    }


def seed_mlflow(python: str, tmp: Path, args) -> dict:
    proc = subprocess.run(
        [python, str(HERE / "seed_mlflow_sql.py"), str(tmp / "mlflow.db"), str(tmp / "artifacts"),
         str(args.runs), str(args.chart_runs), str(args.steps)],
        capture_output=True, text=True, timeout=3600,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"seed_mlflow_sql.py failed:\n{proc.stdout}\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["method"] = "sqlite3 bulk INSERT into MLflow's schema (seed_mlflow_sql.py), before the server starts"
    return result


# --------------------------------------------------------------------------- #
# Headless Chromium

# Installed at document start on every page: records performance.now()
# (milliseconds since navigation start) when each signal first holds, and
# again after two animation frames (a frame has been produced with it).
INSTRUMENT = r"""
(() => {
  const marks = {}, errors = [];
  Object.defineProperty(window, "__bench", { value: marks });
  Object.defineProperty(window, "__benchErrors", { value: errors });
  addEventListener("error", (e) => errors.push("error: " + e.message));
  addEventListener("unhandledrejection", (e) => errors.push("unhandled rejection: " + (e.reason && e.reason.stack || e.reason)));
  const frame = (key) => requestAnimationFrame(() => requestAnimationFrame(() => {
    if (marks[key + "_frame"] === undefined) marks[key + "_frame"] = performance.now();
  }));
  const once = {
    sextant_rows: () => document.querySelector("table.runs tbody tr[data-run]"),
    sextant_chart: () => document.querySelector('.chart[data-metric="loss"][data-series]'),
    mlflow_rows: () => document.querySelector('.ag-row a[href*="/runs/"]'),
  };
  const check = () => {
    const now = performance.now();
    for (const key in once) {
      if (marks[key] === undefined && once[key]()) { marks[key] = now; frame(key); }
    }
    const traces = document.querySelectorAll(".js-plotly-plot .scatterlayer .trace").length;
    if (traces && traces !== marks.mlflow_traces_count) {
      if (marks.mlflow_traces === undefined) { marks.mlflow_traces = now; frame("mlflow_traces"); }
      marks.mlflow_traces_count = traces; marks.mlflow_traces_last = now;
    }
  };
  new MutationObserver(check).observe(document, { childList: true, subtree: true, attributes: true });
})();
"""


def make_driver(perf_log: bool = False):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for a in CHROME_ARGS:
        opts.add_argument(a)
    opts.binary_location = CHROMIUM
    if perf_log:
        opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(BROWSER_TIMEOUT_S)
    driver.set_script_timeout(30)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": INSTRUMENT})
    driver.execute_cdp_cmd("Network.enable", {})
    return driver


RESOURCES_JS = """
const nav = performance.getEntriesByType('navigation')[0];
return {
  nav: nav ? {decoded: nav.decodedBodySize, transfer: nav.transferSize, response_end: nav.responseEnd,
              dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd} : null,
  resources: performance.getEntriesByType('resource').map(e => ({
    name: e.name, type: e.initiatorType, decoded: e.decodedBodySize, transfer: e.transferSize,
    start: Math.round(e.startTime), end: Math.round(e.responseEnd)})),
};
"""


def browser_load(driver, url: str, key: str, cold: bool, quiet_ms: float | None = None) -> dict:
    """Navigate to `url` from about:blank and wait (bounded) for mark `key`.
    With `quiet_ms`, then wait until `<key>_last` is that old (MLflow's chart)."""
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": cold})
    driver.get("about:blank")
    driver.get(url)
    deadline = time.monotonic() + BROWSER_TIMEOUT_S
    marks, errors, errors_since = {}, [], None
    while time.monotonic() < deadline:
        marks = driver.execute_script("return Object.assign({now: performance.now()}, window.__bench || {})")
        ready = key in marks and f"{key}_frame" in marks
        if ready and quiet_ms is not None:
            ready = marks["now"] - marks.get(f"{key}_last", marks[key]) > quiet_ms
        if ready:
            break
        errors = driver.execute_script("return Array.from(window.__benchErrors || [])")
        if errors and key not in marks:
            # A page script failed before the signal: give it 5 s more, then stop waiting.
            errors_since = errors_since or time.monotonic()
            if time.monotonic() - errors_since > 5:
                return {"error": f"no {key} after a script error: {errors[:3]}", "marks": marks}
        time.sleep(0.05)
    else:
        return {"error": f"timed out after {BROWSER_TIMEOUT_S} s waiting for {key} (script errors: {errors[:3]})",
                "marks": marks}
    res = driver.execute_script(RESOURCES_JS)
    out = {"marks": {k: round(v, 1) for k, v in marks.items()}, "nav": res["nav"],
           "script_errors": driver.execute_script("return Array.from(window.__benchErrors || [])")[:5]}
    out["resources"] = res["resources"]
    return out


def browser_series(driver, url: str, key: str, repeat: int, quiet_ms: float | None = None,
                   screenshot: Path | None = None) -> dict:
    """Cold loads (HTTP cache off), then one warm-up and warm loads (cache on).
    A mode stops at its first failed load (the rest would fail the same way)."""
    result: dict = {"url": url if len(url) < 300 else url[:300] + "…", "signal": key}
    for mode, cold in (("cold", True), ("warm", False)):
        if not cold:
            browser_load(driver, url, key, cold=False, quiet_ms=quiet_ms)  # fills the cache
        loads = []
        for _ in range(repeat):
            loads.append(browser_load(driver, url, key, cold=cold, quiet_ms=quiet_ms))
            if "error" in loads[-1]:
                print(f"  browser load failed: {loads[-1]['error']}", flush=True)
                break
        if screenshot is not None and mode == "warm":
            try:
                driver.save_screenshot(str(screenshot))
                result["screenshot"] = str(screenshot)
            except Exception:  # noqa: BLE001 - evidence only
                pass
        ok = [l for l in loads if "error" not in l]
        result[mode] = {
            "dom": summarize([l["marks"][key] for l in ok]),
            "frame": summarize([l["marks"][f"{key}_frame"] for l in ok]),
            "errors": [l["error"] for l in loads if "error" in l],
        }
        if quiet_ms is not None:
            result[mode]["last_change"] = summarize([l["marks"][f"{key}_last"] for l in ok])
            result[mode]["traces"] = sorted({l["marks"].get(f"{key}_count") for l in ok})
        if ok:
            result[mode]["example"] = {"marks": ok[-1]["marks"], "nav": ok[-1]["nav"],
                                       "resources": ok[-1]["resources"]}
    return result


def page_bytes(example: dict) -> dict:
    """HTML + JS + CSS (decoded, i.e. uncompressed) of one page load, and all bytes."""
    nav = example.get("nav") or {}
    html_b = nav.get("decoded", 0)
    js = sum(r["decoded"] for r in example["resources"] if r["name"].split("?")[0].endswith(".js"))
    css = sum(r["decoded"] for r in example["resources"] if r["name"].split("?")[0].endswith(".css"))
    total = html_b + sum(r["decoded"] for r in example["resources"])
    return {"html": html_b, "js": js, "css": css, "html_js_css": html_b + js + css, "all_incl_data": total,
            "files": sum(1 for r in example["resources"] if r["name"].split("?")[0].endswith((".js", ".css")))}


def discover_mlflow_requests(base: str, urls: list[str]) -> list[dict]:
    """Load MLflow's pages once with Chromium's network log on, to learn the
    API requests its UI sends (URL and POST body)."""
    driver = make_driver(perf_log=True)
    found = []
    try:
        for url in urls:
            driver.get("about:blank")
            driver.get(url)
            time.sleep(8)
            for entry in driver.get_log("performance"):
                msg = json.loads(entry["message"])["message"]
                if msg["method"] != "Network.requestWillBeSent":
                    continue
                req = msg["params"]["request"]
                if "/ajax-api/" in req["url"]:
                    found.append({"page": url, "method": req["method"], "url": req["url"],
                                  "body": req.get("postData")})
    finally:
        driver.quit()
    return found


# --------------------------------------------------------------------------- #
# One server


def _sextant_first_page(html_text: str) -> list[str]:
    rows = re.findall(r'<tr[^>]*data-run="([0-9a-f]+)"[^>]*>.*?<a class="name"[^>]*>([^<]*)</a>', html_text, re.S)
    return [htmllib.unescape(name).strip() for _, name in rows]


def bench_sextant(args, out_stem: Path) -> dict:
    result: dict = {"errors": []}
    tmp = Path(tempfile.mkdtemp(prefix="bench-ui-sextant-"))
    port = tracking.free_port()
    log_path = out_stem.with_name(out_stem.name + ".sextant.log")
    cmd = [args.sextant_bin, "server", "--port", str(port), "--data-dir", str(tmp / "data")]
    result["command"] = " ".join(cmd)
    server = tracking.Server("sextant", cmd, tmp, port, log_path)
    driver = None
    try:
        result["startup_s"] = round(server.start(), 3)
        base = server.url
        print(f"[sextant] up on {base}; seeding {args.runs} runs + {args.chart_runs}x{args.steps} points", flush=True)
        seed = seed_sextant(base, port, args)
        result["seeding"] = {k: v for k, v in seed.items() if k != "chart_run_ids"}
        print(f"[sextant] seeded in {seed['seconds']} s, retried {seed['retried']}", flush=True)
        result["memory_after_seed"] = tracking.tree_memory(server.proc.pid)
        time.sleep(SETTLE_S)
        exp, chart_exp = seed["runs_experiment_id"], seed["chart_experiment_id"]
        s = requests.Session()

        def get(path: str):
            return lambda: s.get(base + path, timeout=600)

        # 1. runs page, server time.
        load = tracking.load_average()
        with tracking.CpuMeter(server.proc.pid) as cpu:
            page, last = timed_requests(get(f"/experiments/{exp}"), args.repeat_server, budget_s=120)
        page["cpu_cores"], page["load_before"] = cpu.cores, load
        names = _sextant_first_page(last.text)
        page["rows"] = len(names)
        page["first_names"] = names[:3]
        result["first_page_names"] = names
        result["runs_page"] = page
        print(f"[sextant] runs page p50 {page['p50_ms']} ms ({page['rows']} rows, {page['bytes']} B)", flush=True)

        # 2. series endpoint, 100 runs.
        ids = ",".join(seed["chart_run_ids"])
        series_path = f"/ui/api/series?runs={ids}&metric={dataset.CHART_METRIC}&x=step&smooth=none&px={SEXTANT_PX}"
        with tracking.CpuMeter(server.proc.pid) as cpu:
            series, last = timed_requests(get(series_path), args.repeat_series, budget_s=120)
        body = last.json()
        series["cpu_cores"] = cpu.cores
        series["series_returned"] = len(body.get("series", []))
        series["points_returned"] = sum(len(x["points"]) for x in body.get("series", []))
        result["series"] = series
        print(f"[sextant] series p50 {series['p50_ms']} ms ({series['series_returned']} series, "
              f"{series['points_returned']} points)", flush=True)

        # Other pages at this size, to find slow ones (fewer repeats).
        first_html = s.get(base + f"/experiments/{exp}").text
        first_run = re.search(r'data-href="(/experiments/[^"]+/runs/[0-9a-f]+)"', first_html)
        next_link = re.search(r'href="(/experiments/[^"]*[?&]amp;page=[^"]+|/experiments/[^"]*\?page=[^"]+)"', first_html)
        q = urllib.parse.quote
        # The last page: Sextant's page token for the start-time order is a keyset,
        # base64 of [start_time, run_id] of the last row shown; the rows after a
        # start time between runs 99 and 100 are runs 99..0. Checked below by its rows.
        last_key = json.dumps([dataset.BASE_MS + 99 * 1000 + 500, ""], separators=(",", ":")).encode()
        last_token = q(base64.urlsafe_b64encode(last_key).decode().rstrip("="))
        filtered = q("params.p02 = 'adam' and metrics.accuracy > 0.5")
        extra = {
            "experiments list /": "/",
            "runs page 2 (its next-page link)": htmllib.unescape(next_link.group(1)) if next_link else None,
            "runs page, last (runs 99..0)": f"/experiments/{exp}?page={last_token}",
            "runs page sorted by metrics.loss DESC": f"/experiments/{exp}?order={q('metrics.loss DESC')}",
            "runs page sorted by params.p01 ASC": f"/experiments/{exp}?order={q('params.p01 ASC')}",
            "runs page filtered (params.p02 = 'adam' and metrics.accuracy > 0.5)": f"/experiments/{exp}?filter={filtered}",
            "runs page stat=max": f"/experiments/{exp}?stat=max",
            "runs page grouped by params.p02": f"/experiments/{exp}?group=params.p02",
            "runs page, empty experiment": f"/experiments/{seed['empty_experiment_id']}",
            "run page (newest run)": first_run.group(1) if first_run else None,
            "chart experiment runs page": f"/experiments/{chart_exp}",
            f"compare page HTML, {args.chart_runs} runs": f"/compare?runs={ids}&cm={dataset.CHART_METRIC}",
            f"series, {min(10, args.chart_runs)} runs": f"/ui/api/series?runs={','.join(seed['chart_run_ids'][:10])}"
                               f"&metric={dataset.CHART_METRIC}&x=step&smooth=none&px={SEXTANT_PX}",
            f"series, {args.chart_runs} runs, smooth=ema:0.6": series_path.replace("smooth=none", "smooth=ema:0.6"),
        }
        result["other_pages"] = {}
        for label, path in extra.items():
            if path is None:
                continue
            try:
                timing, resp = timed_requests(get(path), args.repeat_other, budget_s=30)
                timing["path"] = path if len(path) < 200 else path[:200] + "…"
                if "text/html" in resp.headers.get("content-type", ""):
                    names = _sextant_first_page(resp.text)
                    timing["rows"] = len(names)
                    timing["first_names"] = names[:2]
                    if "filter-error" in resp.text:
                        timing["page_error"] = re.search(r'filter-error">([^<]*)', resp.text).group(1)
                result["other_pages"][label] = timing
                print(f"[sextant] {label}: p50 {timing['p50_ms']} ms, {timing['bytes']} B, rows "
                      f"{timing.get('rows')} {timing.get('first_names', '')} {timing.get('page_error', '')}", flush=True)
            except Exception as exc:  # noqa: BLE001 - record and go on
                result["other_pages"][label] = {"error": f"{type(exc).__name__}: {exc}", "path": path[:200]}
                print(f"[sextant] {label}: FAILED {exc}", flush=True)

        # 4. page weight from the server's own answers.
        empty_html = s.get(base + f"/experiments/{seed['empty_experiment_id']}").content
        css = s.get(base + "/static/sextant.css").content
        js = s.get(base + "/static/sextant.js").content
        full_html = s.get(base + f"/experiments/{exp}").content
        result["weight"] = {
            "runs_page_html_100_rows": len(full_html),
            "empty_runs_page_html": len(empty_html),
            "css": len(css),
            "js": len(js),
            "total_with_100_rows": len(full_html) + len(css) + len(js),
            "total_before_data": len(empty_html) + len(css) + len(js),
        }
        print(f"[sextant] weight {result['weight']}", flush=True)

        # 3. Chromium.
        driver = make_driver()
        runs_url = f"{base}/experiments/{exp}"
        shot = lambda name: out_stem.with_name(out_stem.name + f".sextant-{name}.png")  # noqa: E731
        result["browser_runs"] = browser_series(driver, runs_url, "sextant_rows", args.repeat_browser,
                                                screenshot=shot("runs"))
        b = result["browser_runs"]
        print(f"[sextant] browser runs table: cold {b['cold']['frame'].get('p50_ms')} ms, "
              f"warm {b['warm']['frame'].get('p50_ms')} ms (frame after rows)", flush=True)
        compare_url = f"{base}/compare?runs={ids}&cm={dataset.CHART_METRIC}"
        result["browser_chart"] = browser_series(driver, compare_url, "sextant_chart", args.repeat_browser,
                                                 screenshot=shot("chart"))
        b = result["browser_chart"]
        print(f"[sextant] browser chart drawn ({args.chart_runs} runs): cold {b['cold']['dom'].get('p50_ms')} ms, "
              f"warm {b['warm']['dom'].get('p50_ms')} ms, errors {b['cold']['errors'] + b['warm']['errors']}",
              flush=True)
        # The same chart with the first 10 runs, the number MLflow's chart view draws by default.
        ids10 = ",".join(seed["chart_run_ids"][:10])
        compare10 = f"{base}/compare?runs={ids10}&cm={dataset.CHART_METRIC}"
        result["browser_chart_10"] = browser_series(driver, compare10, "sextant_chart", args.repeat_browser,
                                                    screenshot=shot("chart10"))
        b = result["browser_chart_10"]
        print(f"[sextant] browser chart drawn (10 runs): cold {b['cold']['dom'].get('p50_ms')} ms, "
              f"warm {b['warm']['dom'].get('p50_ms')} ms, errors {b['cold']['errors'] + b['warm']['errors']}",
              flush=True)
        cold_example = result["browser_runs"]["cold"].get("example")
        if cold_example:
            result["weight"]["browser_runs_page"] = page_bytes(cold_example)
        result["memory_end"] = tracking.tree_memory(server.proc.pid)
    except Exception as exc:
        result["errors"].append(traceback.format_exc())
        result["fatal"] = f"{type(exc).__name__}: {exc}"
        print(f"[sextant] FAILED: {exc}", flush=True)
    finally:
        if driver is not None:
            driver.quit()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result["log_problems"] = tracking.scan_log(log_path)
    return result


def bench_mlflow(args, out_stem: Path) -> dict:
    result: dict = {"errors": []}
    tmp = Path(tempfile.mkdtemp(prefix="bench-ui-mlflow-"))
    port = tracking.free_port()
    log_path = out_stem.with_name(out_stem.name + ".mlflow.log")
    cmd = [
        args.mlflow, "server",
        "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db",
        "--artifacts-destination", str(tmp / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port),
    ]
    result["command"] = " ".join(cmd)
    server = tracking.Server("mlflow", cmd, tmp, port, log_path)
    driver = None
    try:
        print(f"[mlflow] seeding {args.runs} runs + {args.chart_runs}x{args.steps} points into SQLite", flush=True)
        seed = seed_mlflow(args.mlflow_python, tmp, args)
        result["seeding"] = {k: v for k, v in seed.items() if k != "chart_run_ids"}
        print(f"[mlflow] seeded in {seed['seconds']} s: {seed['rows']}", flush=True)
        result["startup_s"] = round(server.start(), 3)
        base = server.url
        print(f"[mlflow] up in {result['startup_s']} s on {base}", flush=True)
        time.sleep(SETTLE_S)
        exp, chart_exp = seed["runs_experiment_id"], seed["chart_experiment_id"]
        runs_url = f"{base}/#/experiments/{exp}/runs"
        chart_url = f"{base}/#/experiments/{chart_exp}/runs?compareRunsMode=CHART"

        # What the UI asks the server for on these pages.
        found = discover_mlflow_requests(base, [runs_url, chart_url])
        result["ui_requests"] = found
        searches = [f for f in found if f["page"] == runs_url and f["url"].endswith("/runs/search")]
        bodies = []
        for f in searches:
            if f["body"] and f["body"] not in bodies:
                bodies.append(f["body"])
        if not bodies:  # what 3.17.2 sent when this benchmark was written
            bodies = [json.dumps({"experiment_ids": [exp], "run_view_type": "ACTIVE_ONLY", "max_results": 100,
                                  "order_by": ["attributes.start_time DESC"]})]
        print(f"[mlflow] the runs page sends runs/search with {bodies}", flush=True)
        s = requests.Session()

        # 1. runs/search as the UI sends it; the table's request (max_results 100) is the headline.
        result["runs_search"] = {}
        for body in bodies:
            parsed = json.loads(body)
            label = f"max_results={parsed.get('max_results')}"
            load = tracking.load_average()
            with tracking.CpuMeter(server.proc.pid) as cpu:
                timing, last = timed_requests(
                    lambda: s.post(base + "/ajax-api/2.0/mlflow/runs/search", data=body,
                                   headers={"Content-Type": "application/json"}, timeout=600),
                    args.repeat_server, budget_s=args.mlflow_budget)
            timing["cpu_cores"], timing["load_before"], timing["body"] = cpu.cores, load, parsed
            runs = last.json().get("runs", [])
            timing["rows"] = len(runs)
            timing["first_names"] = [r["info"].get("run_name") for r in runs[:3]]
            result["runs_search"][label] = timing
            if parsed.get("max_results") == 100 or "first_page_names" not in result:
                result["first_page_names"] = [r["info"].get("run_name") for r in runs]
            print(f"[mlflow] runs/search {label}: p50 {timing['p50_ms']} ms over {timing['n']} "
                  f"({timing['rows']} runs)", flush=True)

        # 2. chart data: get-history-bulk-interval for the chart runs (100 per call at most).
        run_ids = seed["chart_run_ids"]
        chunks = [run_ids[i:i + MLFLOW_BULK_MAX_RUNS] for i in range(0, len(run_ids), MLFLOW_BULK_MAX_RUNS)]

        def bulk():
            r = None
            for chunk in chunks:
                r = s.get(base + "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
                          params={"run_ids": chunk, "metric_key": dataset.CHART_METRIC,
                                  "max_results": MLFLOW_CHART_MAX_RESULTS}, timeout=600)
                if r.status_code != 200:
                    return r
            return r

        with tracking.CpuMeter(server.proc.pid) as cpu:
            series, last = timed_requests(bulk, args.repeat_series, budget_s=args.mlflow_budget)
        metrics = last.json().get("metrics", [])
        series["cpu_cores"] = cpu.cores
        series["calls_per_chart"] = len(chunks)
        series["max_results"] = MLFLOW_CHART_MAX_RESULTS
        series["series_returned"] = len({m["run_id"] for m in metrics})
        series["points_returned"] = len(metrics)
        result["series"] = series
        print(f"[mlflow] get-history-bulk-interval p50 {series['p50_ms']} ms ({series['series_returned']} runs, "
              f"{series['points_returned']} points)", flush=True)

        # The chart data requests MLflow's chart view itself sent (it draws the first 10 runs by default).
        ui_bulk = sorted({f["url"] for f in found if f["page"] == chart_url and "get-history-bulk-interval" in f["url"]})
        result["series_ui"] = []
        for url in ui_bulk:
            parsed = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
            timing, last = timed_requests(lambda: s.get(url, timeout=600), args.repeat_series,
                                          budget_s=args.mlflow_budget / 2)
            timing["run_ids"] = len(parsed.get("run_ids", []))
            timing["max_results"] = parsed.get("max_results")
            timing["points_returned"] = len(last.json().get("metrics", []))
            result["series_ui"].append(timing)
            print(f"[mlflow] the chart view's own get-history-bulk-interval ({timing['run_ids']} runs): "
                  f"p50 {timing['p50_ms']} ms, {timing['points_returned']} points", flush=True)

        # 4. page weight: index.html and what it references.
        index = s.get(base + "/").text
        refs = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', index)
        sizes = {ref: len(s.get(urllib.parse.urljoin(base + "/", ref)).content) for ref in refs}
        result["weight"] = {"index_html": len(index.encode()), "referenced": sizes,
                            "index_plus_referenced": len(index.encode()) + sum(sizes.values())}

        # 3. Chromium.
        driver = make_driver()
        shot = lambda name: out_stem.with_name(out_stem.name + f".mlflow-{name}.png")  # noqa: E731
        result["browser_runs"] = browser_series(driver, runs_url, "mlflow_rows", args.repeat_browser,
                                                screenshot=shot("runs"))
        b = result["browser_runs"]
        print(f"[mlflow] browser runs table: cold {b['cold']['frame'].get('p50_ms')} ms, "
              f"warm {b['warm']['frame'].get('p50_ms')} ms (frame after first row)", flush=True)
        cold_example = b["cold"].get("example")
        if cold_example:
            result["weight"]["browser_runs_page"] = page_bytes(cold_example)
        print(f"[mlflow] weight {result['weight'].get('index_plus_referenced')} B index+referenced, "
              f"runs page {result['weight'].get('browser_runs_page')}", flush=True)
        result["browser_chart"] = browser_series(driver, chart_url, "mlflow_traces",
                                                 max(args.repeat_browser // 2, 2), quiet_ms=MLFLOW_CHART_QUIET_MS,
                                                 screenshot=shot("chart"))
        b = result["browser_chart"]
        print(f"[mlflow] browser chart: traces {b['warm'].get('traces')}, last change cold "
              f"{b['cold'].get('last_change', {}).get('p50_ms')} ms, warm "
              f"{b['warm'].get('last_change', {}).get('p50_ms')} ms", flush=True)
        result["memory_end"] = tracking.tree_memory(server.proc.pid)
    except Exception as exc:
        result["errors"].append(traceback.format_exc())
        result["fatal"] = f"{type(exc).__name__}: {exc}"
        print(f"[mlflow] FAILED: {exc}", flush=True)
    finally:
        if driver is not None:
            driver.quit()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result["log_problems"] = tracking.scan_log(log_path)
    return result


# --------------------------------------------------------------------------- #
# Report


def _g(d, *path):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _ratio(s, m) -> str:
    if not isinstance(s, (int, float)) or not isinstance(m, (int, float)) or s <= 0 or m <= 0:
        return "n/a"
    r = m / s
    return f"{r:,.0f}×" if r >= 100 else f"{r:.1f}×" if r >= 10 else f"{r:.2f}×"


def _fmt(v, digits=1) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.{digits}f}"


def _check(value, limit) -> str:
    if not isinstance(value, (int, float)):
        return "n/a"
    return "✔" if value < limit else "✘"


def report_table(report: dict, args) -> str:
    S = report["servers"].get("sextant") or {}
    M = report["servers"].get("mlflow") or {}
    table_search = _g(M, "runs_search", "max_results=100") or next(iter((M.get("runs_search") or {}).values()), None)
    rows = []

    def row(label, s, m, target="", ratio=True, digits=1):
        rows.append(f"| {label} | {_fmt(s, digits)} | {_fmt(m, digits)} | {_ratio(s, m) if ratio else ''} | {target} |")

    n = f"{args.runs:,}"
    s50 = _g(S, "runs_page", "p50_ms")
    m50 = _g(table_search, "p50_ms")
    row(f"runs page data, server p50 (ms) [Sextant: whole page GET; MLflow: runs/search, 100 runs]", s50, m50,
        f"< 50 ms {_check(s50, 50)}")
    row("runs page data, server p90 (ms)", _g(S, "runs_page", "p90_ms"), _g(table_search, "p90_ms"))
    for mode in ("cold", "warm"):
        sv = _g(S, "browser_runs", mode, "frame", "p50_ms")
        mv = _g(M, "browser_runs", mode, "frame", "p50_ms")
        target = f"< 300 ms {_check(sv, 300)}; ≥ 10× {'✔' if sv and mv and mv / sv >= 10 else '✘' if sv and mv else 'n/a'}"
        row(f"runs table visible in Chromium, {mode} cache, p50 (ms)", sv, mv, target)
        row(f"  (first row in DOM, {mode}, p50 ms)", _g(S, "browser_runs", mode, "dom", "p50_ms"),
            _g(M, "browser_runs", mode, "dom", "p50_ms"))
    sv, mv = _g(S, "series", "p50_ms"), _g(M, "series", "p50_ms")
    row(f"chart data, {args.chart_runs} runs × {args.steps:,} steps, server p50 (ms)", sv, mv,
        f"< 100 ms {_check(sv, 100)}")
    sf, mf = (_g(S, "series", "first_ms") or [None])[0], (_g(M, "series", "first_ms") or [None])[0]
    row("  (the first such request, before Sextant's cache holds the histories, ms)", sf, mf)
    for mode in ("cold", "warm"):
        sv = _g(S, "browser_chart", mode, "dom", "p50_ms")
        errs = _g(S, "browser_chart", mode, "errors")
        if sv is None and errs:
            sv = "not drawn: " + errs[0][:120].replace("|", "/")
        row(f"chart of all {args.chart_runs} runs drawn in Chromium, {mode} cache, p50 (ms) [MLflow: not drawn by default]",
            sv, None, f"< 300 ms {_check(sv, 300)}", ratio=False)
    ui = (M.get("series_ui") or [None])[0]
    row(f"chart data, the first 10 runs, server p50 (ms) [MLflow: its chart view's own request]",
        _g(S, "other_pages", f"series, {min(10, args.chart_runs)} runs", "p50_ms"), _g(ui, "p50_ms"))
    for mode in ("cold", "warm"):
        sv = _g(S, "browser_chart_10", mode, "dom", "p50_ms")
        mv = _g(M, "browser_chart", mode, "last_change", "p50_ms")
        row(f"chart of 10 runs drawn in Chromium, {mode} cache, p50 (ms) [MLflow: chart view, "
            f"{_g(M, 'browser_chart', mode, 'traces')} traces]", sv, mv, f"< 300 ms {_check(sv, 300)}")
    sw = _g(S, "weight", "total_before_data")
    mw = _g(M, "weight", "index_plus_referenced")
    row("page's own HTML + JS + CSS before data (KB) [MLflow: index.html + main JS/CSS]",
        sw / 1000 if sw else None, mw / 1000 if mw else None, f"< 150 KB {_check(sw and sw / 1000, 150)}")
    sw2 = _g(S, "weight", "browser_runs_page", "html_js_css")
    mw2 = _g(M, "weight", "browser_runs_page", "html_js_css")
    row(f"runs page HTML + JS + CSS as loaded in Chromium (KB) [Sextant's HTML holds 100 rows]",
        sw2 / 1000 if sw2 else None, mw2 / 1000 if mw2 else None)
    head = [
        f"| figure ({n} runs × 20 params + 10 metrics) | Sextant | MLflow 3.17.2 | ratio (MLflow / Sextant) | target |",
        "|---|---:|---:|---:|---|",
    ]
    return "\n".join(head + rows)


def consistency(report: dict) -> list[str]:
    S = report["servers"].get("sextant") or {}
    M = report["servers"].get("mlflow") or {}
    notes = []
    sn, mn = S.get("first_page_names"), M.get("first_page_names")
    if sn is not None and mn is not None:
        notes.append(f"first page of runs (newest first): Sextant {len(sn)} rows {sn[:2]}…, MLflow {len(mn)} "
                     f"{mn[:2]}… ({'same names, same order' if sn == mn else 'DIFFERENT'})")
    ss, ms = _g(S, "series", "series_returned"), _g(M, "series", "series_returned")
    if ss is not None or ms is not None:
        notes.append(f"chart series returned: Sextant {ss} ({_g(S, 'series', 'points_returned')} points, "
                     f"px={SEXTANT_PX}), MLflow {ms} ({_g(M, 'series', 'points_returned')} points, "
                     f"max_results={MLFLOW_CHART_MAX_RESULTS})")
    return notes


def default_sextant_bin() -> str:
    if os.environ.get("CARGO_TARGET_DIR"):
        return os.path.join(os.environ["CARGO_TARGET_DIR"], "release", "sextant")
    for target in (REPO / "target", Path.home() / ".cache" / "sextant" / "target"):
        if (target / "release" / "sextant").exists():
            return str(target / "release" / "sextant")
    return str(REPO / "target" / "release" / "sextant")


def main() -> int:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sextant-bin", default=default_sextant_bin(),
                        help="release binary (default: $CARGO_TARGET_DIR/release/sextant, else ./target, "
                             "else ~/.cache/sextant/target)")
    parser.add_argument("--mlflow", default=str(Path(sys.executable).parent / "mlflow"),
                        help="the mlflow executable (default: the one next to this Python)")
    parser.add_argument("--runs", type=int, default=None, help="runs in the table experiment (100000)")
    parser.add_argument("--chart-runs", type=int, default=None, help="runs in the chart experiment (100)")
    parser.add_argument("--steps", type=int, default=None, help="steps of `loss` per chart run (10000)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="shorthand: timed requests per server figure (browser loads: a third of it)")
    parser.add_argument("--repeat-server", type=int, default=30, help="timed runs-page requests")
    parser.add_argument("--repeat-series", type=int, default=20, help="timed chart-data requests")
    parser.add_argument("--repeat-other", type=int, default=5, help="timed requests per other Sextant page")
    parser.add_argument("--repeat-browser", type=int, default=10, help="Chromium loads per page and cache mode")
    parser.add_argument("--mlflow-budget", type=float, default=180.0,
                        help="seconds after which an MLflow timing loop stops (after at least 5 requests)")
    parser.add_argument("--quick", action="store_true", help="2,000 runs, 10 chart runs x 1,000 steps, few repeats")
    parser.add_argument("--only", choices=["sextant", "mlflow", "both"], default="both")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / f"ui-{stamp}.json"))
    args = parser.parse_args()
    sizes = (2000, 10, 1000) if args.quick else (100_000, 100, 10_000)
    args.runs = sizes[0] if args.runs is None else args.runs
    args.chart_runs = sizes[1] if args.chart_runs is None else args.chart_runs
    args.steps = sizes[2] if args.steps is None else args.steps
    if args.quick:
        args.repeat_server, args.repeat_series, args.repeat_other, args.repeat_browser = 10, 5, 3, 3
    if args.repeat:
        args.repeat_server = args.repeat_series = args.repeat
        args.repeat_browser = max(args.repeat // 3, 2)

    servers = ["sextant", "mlflow"] if args.only == "both" else [args.only]
    if "sextant" in servers and not os.access(args.sextant_bin, os.X_OK):
        sys.exit(f"no Sextant binary at {args.sextant_bin}; build it first: cargo build --release -p sextant-cli")
    if "mlflow" in servers and not os.access(args.mlflow, os.X_OK):
        sys.exit(f"no mlflow executable at {args.mlflow}; pass --mlflow")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            sys.exit(f"{path} not found (Debian: apt-get install chromium chromium-driver)")
    mlflow_python = Path(args.mlflow).parent / "python"
    args.mlflow_python = str(mlflow_python) if mlflow_python.exists() else sys.executable

    lock = tracking.run_alone(LOCK_PATH, "UI benchmark")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out_stem = out.with_suffix("")
    report = {
        "meta": {
            "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "argv": sys.argv,
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "cpu_model": tracking._cpu_model(),
            "kernel": platform.release(),
            "python": sys.version.split()[0],
            "uptime_start": tracking._version(["uptime"]),
            "sextant": tracking._version([args.sextant_bin, "--version"]) if "sextant" in servers else None,
            "sextant_binary": tracking._binary_id(args.sextant_bin) if "sextant" in servers else None,
            "mlflow": tracking._version([args.mlflow, "--version"]) if "mlflow" in servers else None,
            "chromium": tracking._version([CHROMIUM, "--version"]),
            "git": tracking._version(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
            "settings": {
                "runs": args.runs, "chart_runs": args.chart_runs, "steps": args.steps,
                "repeat_server": args.repeat_server, "repeat_series": args.repeat_series,
                "repeat_other": args.repeat_other, "repeat_browser": args.repeat_browser,
                "mlflow_budget_s": args.mlflow_budget, "chrome_args": CHROME_ARGS,
                "sextant_series_px": SEXTANT_PX, "mlflow_chart_max_results": MLFLOW_CHART_MAX_RESULTS,
            },
        },
        "servers": {},
    }
    print(f"load: {report['meta']['uptime_start']}", flush=True)
    for name in servers:
        fn = bench_sextant if name == "sextant" else bench_mlflow
        report["servers"][name] = fn(args, out_stem)
        out.write_text(json.dumps(report, indent=2))  # keep partial results
    report["meta"]["uptime_end"] = tracking._version(["uptime"])
    report["consistency"] = consistency(report)
    report["table"] = report_table(report, args)
    out.write_text(json.dumps(report, indent=2))

    print()
    print(report["table"])
    print()
    for note in report["consistency"]:
        print(f"- {note}")
    other = _g(report["servers"].get("sextant"), "other_pages") or {}
    if other:
        print("\nSextant, other pages at this size (p50 ms):")
        for label, t in other.items():
            print(f"- {label}: {t.get('p50_ms', t.get('error'))}")
    for name, r in report["servers"].items():
        if r.get("fatal"):
            print(f"- {name}: FATAL {r['fatal']}")
        if r.get("log_problems"):
            print(f"- {name} log: {r['log_problems']}")
    print(f"- load: start [{report['meta']['uptime_start']}], end [{report['meta']['uptime_end']}]")
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
