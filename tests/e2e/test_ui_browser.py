"""The web UI in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
driven over WebDriver), over data the unmodified `mlflow` client logged.

The journey: sign in, open an experiment, filter with OR, compare three runs and see
three series on the chart, open an artifact, request a promotion as one user and
approve it as another, create a deployment, send traffic and see the numbers, send
drifted traffic and see the drift. Every page must load without a JavaScript error;
a failing step saves a screenshot next to the server log.

Security in the browser: script in names, params, tags and HTML/SVG artifacts never
runs; a cross-site form post is refused; signing out ends the session.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from conftest import AGAINST_MLFLOW, _free_port, _sextant_bin, _stop, _wait_until_healthy

pytestmark = [
    pytest.mark.sextant_only,
    pytest.mark.skipif(AGAINST_MLFLOW, reason="Sextant's web UI"),
]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ADMIN_PASSWORD = "admin-password-ui"
XSS = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">"


def _require_browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        if os.environ.get("SEXTANT_TEST_BROWSER") == "1":
            pytest.fail("Debian's chromium and chromium-driver are missing (scripts/test installs them)")
        pytest.skip("no chromium/chromedriver installed (SEXTANT_TEST_BROWSER=0 or run outside scripts/test)")


@pytest.fixture(scope="module")
def server():
    root = Path(tempfile.mkdtemp(prefix="sextant-ui-"))
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    log_path = root / "server.log"
    env = dict(os.environ, SEXTANT_ADMIN_PASSWORD=ADMIN_PASSWORD, NO_COLOR="1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(_sextant_bin()), "server", "--auth", "--port", str(port), "--data-dir", str(root / "data"),
             "--explain-sample-rate", "1"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_until_healthy(proc, uri, log_path, 30.0, "sextant --auth (ui)")
        yield {"uri": uri, "root": root}
    finally:
        _stop(proc)


def api(server, method, path, auth=("admin", ADMIN_PASSWORD), **kwargs):
    response = requests.request(method, server["uri"] + path, auth=auth, timeout=60, **kwargs)
    assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}"
    return response.json() if response.text else {}


@pytest.fixture(scope="module")
def logged(server):
    """alice logs three runs (one with hostile names), a model, and registers it."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    for user, password in (("alice", "alice-password"), ("bob", "bob-password")):
        api(server, "POST", "/api/v1/users", json={"username": user, "password": password})
    names = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(dict(zip(names, ("alice", "alice-password", server["uri"], server["uri"]))))
    try:
        # Earlier tests point the client's globals elsewhere: both URIs here.
        mlflow.set_tracking_uri(server["uri"])
        mlflow.set_registry_uri(server["uri"])
        experiment_id = mlflow.set_experiment("browser-journey").experiment_id
        rng = np.random.default_rng(7)
        X = rng.normal(size=(300, 3))
        y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
        runs = []
        for idx, (lr, model) in enumerate([(0.1, "rf"), (0.2, "gbt"), (0.3, "lin")]):
            with mlflow.start_run(run_name=f"run-{idx}" if idx else f"run-0 {XSS}") as run:
                mlflow.log_params({"lr": lr, "model": model, "note": XSS if idx == 0 else "plain"})
                mlflow.set_tag("probe", XSS)
                for step in range(300):
                    mlflow.log_metric("loss", float(np.exp(-step / (30 + 20 * idx))), step=step)
                runs.append(run.info.run_id)
        with mlflow.start_run(run_id=runs[0]):
            folder = Path(tempfile.mkdtemp())
            (folder / "notes.txt").write_text("plain notes for the preview")
            (folder / "evil.html").write_text(f"<html><body>{XSS}</body></html>")
            (folder / "evil.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" onload="window.__pwned=3"/>')
            for file in folder.iterdir():
                mlflow.log_artifact(str(file))
            info = mlflow.sklearn.log_model(LogisticRegression().fit(X, y), name="model", input_example=X[:2])
        mlflow.register_model(info.model_uri, "journey-model")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    # bob approves promotions of the model; alice may deploy it.
    for body in (
        {"resource_type": "registered_model", "resource_id": "journey-model", "principal": "user:bob", "permission": "approve"},
        {"resource_type": "registered_model", "resource_id": "journey-model", "principal": "user:alice", "permission": "deploy"},
    ):
        api(server, "PUT", "/api/v1/permissions", json=body)
    return {"experiment": experiment_id, "runs": runs, "X": X}


class Browser:
    """One Chromium session; every page it opens must load without a JavaScript error."""

    def __init__(self, base: str, shots: Path):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1400,1000",
                     f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"):  # fmt: skip
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(60)
        self.base = base
        self.shots = shots

    def open(self, path: str):
        self.driver.get(self.base + path)
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete")
        self.check_console()

    def wait(self, condition, seconds: float = 20.0):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, seconds).until(condition)

    def check_console(self):
        errors = [entry for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"
                  and "favicon" not in entry["message"] and "status of 4" not in entry["message"]]  # fmt: skip
        assert not errors, f"JavaScript errors on {self.driver.current_url}: {errors}"
        assert self.driver.execute_script("return window.__pwned || 0") == 0, "user content ran as script"

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def finds(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def sign_in(self, user: str, password: str):
        self.open("/login")
        self.find("input[name=username]").send_keys(user)
        self.find("input[name=password]").send_keys(password)
        self.find("form button[type=submit]").click()
        self.wait(lambda d: "/login" not in d.current_url)
        self.check_console()

    def screenshot(self, name: str):
        self.shots.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(self.shots / f"{name}.png"))

    def close(self):
        self.driver.quit()


@pytest.fixture
def browser(server, request):
    _require_browser()
    shots = Path(os.environ.get("SEXTANT_UI_SCREENSHOTS", server["root"] / "screenshots"))
    browsers = []

    def make():
        made = Browser(server["uri"], shots)
        browsers.append(made)
        return made

    yield make
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else True
    for idx, made in enumerate(browsers):
        if failed:
            made.screenshot(f"{request.node.name}-{idx}")
            print(f"screenshot saved under {shots}")
        made.close()


def test_the_journey_from_runs_to_a_monitored_deployment(server, logged, browser):
    alice = browser()
    alice.sign_in("alice", "alice-password")
    # The experiment, filtered with OR.
    alice.open("/")
    alice.find("a.name").click()
    alice.wait(lambda d: "/experiments/" in d.current_url)
    assert len(alice.finds("table.runs tbody tr[data-run]")) == 3
    alice.screenshot("runs")
    box = alice.find("input.filter")
    box.send_keys("params.model = 'rf' OR params.model = 'gbt'")
    box.submit()
    alice.wait(lambda d: "filter=" in d.current_url)
    alice.check_console()
    assert len(alice.finds("table.runs tbody tr[data-run]")) == 2
    # A bad filter is shown inline.
    alice.open(f"/experiments/{logged['experiment']}?filter=params.model%20%3D%3D")
    assert "Invalid filter" in alice.find(".filter-error").text
    # Select all three runs and compare: the chart has three series.
    alice.open(f"/experiments/{logged['experiment']}")
    alice.find("input.js-select-all").click()
    alice.find("button.js-compare").click()
    alice.wait(lambda d: "/compare" in d.current_url)
    alice.wait(lambda d: d.find_elements("css selector", ".chart[data-series]"))
    alice.check_console()
    assert alice.find(".chart[data-metric=loss]").get_attribute("data-series") == "3"
    alice.screenshot("compare")
    # Chart settings live in the URL; "Save view" keeps them under a short link.
    from selenium.webdriver.support.ui import Select

    Select(alice.find(".chart-controls select[name=smooth]")).select_by_index(1)
    alice.wait(lambda d: "csmooth=" in d.current_url)
    smoothing = alice.find(".chart-controls select[name=smooth]").get_attribute("value")
    long_url = alice.driver.current_url
    alice.find("button.js-save-view").click()
    alice.wait(lambda d: d.find_element("css selector", ".js-view-link").get_attribute("value"))
    short = alice.find(".js-view-link").get_attribute("value")
    assert "/v/" in short and len(short) < len(long_url), (short, long_url)
    assert short.startswith(server["uri"] + "/v/"), short
    alice.open(short[len(server["uri"]):])
    alice.wait(lambda d: "/compare?" in d.current_url)
    assert alice.driver.current_url == long_url
    assert alice.find(".chart-controls select[name=smooth]").get_attribute("value") == smoothing
    # Open an artifact: its preview is shown, sandboxed.
    run_zero = logged["runs"][0]
    alice.open(f"/experiments/{logged['experiment']}/runs/{run_zero}")
    link = next(a for a in alice.finds("a.js-preview") if a.text == "notes.txt")
    link.click()
    frame = alice.find("iframe.preview")
    assert frame.get_attribute("sandbox") == ""
    alice.driver.switch_to.frame(frame)
    alice.wait(lambda d: "plain notes" in d.page_source)
    alice.driver.switch_to.default_content()
    alice.screenshot("run")
    # Hostile artifacts are not run, in the preview or raw.
    for name in ("evil.html", "evil.svg"):
        next(a for a in alice.finds("a.js-preview") if a.text == name).click()
        time.sleep(0.5)
        alice.check_console()
    alice.open(f"/ui/artifacts/raw?run={run_zero}&path=evil.html")
    alice.check_console()
    # alice requests @champion (protected); bob approves; the alias moves.
    alice.open("/models/journey-model")
    form = alice.find("form.js-promote")
    form.find_element("css selector", "input[name=alias]").send_keys("champion")
    form.find_element("css selector", "input[name=comment]").send_keys("beats the baseline")
    form.find_element("css selector", "button[type=submit]").click()
    alice.wait(lambda d: "Request #" in d.find_element("css selector", ".js-promote-result").text)
    bob = browser()
    bob.sign_in("bob", "bob-password")
    bob.open("/governance")
    bob.driver.execute_script("window.prompt = () => 'ok';")
    bob.find("button.js-decide[data-decision=approve]").click()
    bob.wait(lambda d: "approved" in d.page_source)
    bob.open("/models/journey-model")
    assert "@champion" in bob.driver.page_source
    bob.screenshot("model")
    # alice deploys the model from the deployments page.
    alice.open("/deployments")
    alice.find("details.create summary").click()
    alice.find(".js-create-deployment input[name=name]").send_keys("journey")
    alice.find(".js-create-deployment input[name=model]").send_keys("journey-model@champion")
    alice.find(".js-create-deployment button").click()
    alice.wait(lambda d: d.current_url.endswith("/deployments/journey"), 90)
    alice.check_console()
    # Traffic: requests/s appears for the primary arm.
    token = api(server, "POST", "/api/v1/tokens", auth=("alice", "alice-password"), json={"name": "calls", "scopes": ["invoke"]})["token"]
    headers = {"Authorization": f"Bearer {token}"}
    rng = np.random.default_rng(3)
    def call(rows):
        reply = requests.post(f"{server['uri']}/deployments/journey/invocations", headers=headers, timeout=30,
                              json={"instances": rows.tolist()})  # fmt: skip
        assert reply.status_code == 200, reply.text
    # The first 1000 rows served become the reference; then drifted rows.
    for _ in range(10):
        call(rng.normal(size=(100, 3)))
    deadline = time.time() + 60
    while time.time() < deadline:
        alice.open("/deployments/journey")
        if "no traffic yet" not in alice.find(".minis").text:
            break
        call(rng.normal(size=(20, 3)))
        time.sleep(2)
    assert "no traffic yet" not in alice.find(".minis").text, "the traffic chart never moved"
    split_ms = int(time.time() * 1000)
    for _ in range(10):
        call(rng.normal(loc=4.0, size=(100, 3)))
    deadline = time.time() + 60
    while time.time() < deadline:
        alice.open("/deployments/journey")
        if alice.finds("table.heatmap td.heat.drifted"):
            break
        time.sleep(2)
    assert alice.finds("table.heatmap td.heat.drifted"), "the drift never showed"
    alice.screenshot("deployment")
    # Answers were explained in the background (this server samples every request):
    # each feature's mean |SHAP| as bars; and a prediction explained on demand.
    deadline = time.time() + 60
    while time.time() < deadline:
        alice.open("/deployments/journey")
        if len(alice.finds("table.importance tbody tr")) == 3:
            break
        time.sleep(2)
    assert len(alice.finds("table.importance tbody tr")) == 3, "no global importance shown"
    assert alice.finds("table.importance rect.now"), "no importance bars"
    body = alice.find("form.js-explain textarea")
    assert json.loads(body.get_attribute("value")) == {"instances": [[0, 0, 0]]}
    body.clear()
    body.send_keys(json.dumps({"instances": [[2.0, -1.0, 0.5]]}))
    alice.find("form.js-explain button").click()
    alice.wait(lambda d: len(d.find_elements("css selector", ".contributions tr")) == 3, 30)
    summary = alice.find(".contributions p").text
    assert "prediction" in summary and "linear" in summary, summary
    values = [float(cell.text) for cell in alice.finds(".contributions td.num")]
    # Largest contribution first.
    assert abs(values[0]) == max(abs(v) for v in values), values
    alice.check_console()
    alice.screenshot("explanation")
    # A request that is not JSON is said so, and nothing is sent.
    body = alice.find("form.js-explain textarea")
    body.clear()
    body.send_keys("{not json")
    alice.find("form.js-explain button").click()
    alice.wait(lambda d: "not JSON" in d.find_element("css selector", ".toast.bad").text, 10)
    # The page links a drift report of the last hour against the day before
    # (here the day before is empty, which the report's frame says).
    alice.find("a.js-drift-report").click()
    alice.wait(lambda d: "/drift?" in d.current_url)
    alice.driver.switch_to.frame(alice.find("iframe.report"))
    alice.wait(lambda d: "no answered predictions in that window" in d.page_source, 60)
    alice.driver.switch_to.default_content()
    # Before and after the drifted calls, as a drift report page.
    end_ms = int(time.time() * 1000) + 60_000
    alice.open(f"/drift?ref.deployment=journey&ref.start={split_ms - 3_600_000}&ref.end={split_ms}"
               f"&cur.deployment=journey&cur.start={split_ms}&cur.end={end_ms}")  # fmt: skip
    alice.driver.switch_to.frame(alice.find("iframe.report"))
    alice.wait(lambda d: "Dataset drift detected" in d.page_source, 60)
    alice.driver.switch_to.default_content()
    alice.check_console()
    alice.screenshot("drift")
    # An admin manages groups from the governance page.
    admin = browser()
    admin.sign_in("admin", ADMIN_PASSWORD)
    admin.open("/governance")
    admin.find(".js-create-group input[name=name]").send_keys("reviewers")
    admin.find(".js-create-group button").click()
    admin.wait(lambda d: d.find_elements("css selector", "tr[data-group=reviewers]"))
    admin.find(".js-add-member input[name=username]").send_keys("bob")
    admin.find(".js-add-member button").click()
    admin.wait(lambda d: d.find_elements("css selector", "tr[data-group=reviewers] button[data-username=bob]"))
    admin.check_console()
    admin.screenshot("governance")


def test_hostile_content_and_cross_site_posts(server, logged, browser):
    visitor = browser()
    visitor.sign_in("alice", "alice-password")
    # Names, params and tags with script: shown as text, never run.
    for path in (f"/experiments/{logged['experiment']}", f"/experiments/{logged['experiment']}/runs/{logged['runs'][0]}",
                 f"/compare?runs={','.join(logged['runs'])}"):  # fmt: skip
        visitor.open(path)
        assert "window.__pwned" in visitor.find("body").text, f"{path}: the payload shows as text"
    # A page on another origin posts a form to the server: refused, nothing made.
    attack_port = _free_port()
    page = f"""<html><body><form id=f method=post enctype=text/plain
        action="{server['uri']}/api/2.0/mlflow/experiments/create">
        <input name='{{"name":"forged","x":"' value='"}}'></form>
        <script>document.getElementById('f').submit()</script></body></html>"""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page.encode())

        def log_message(self, *args):
            pass

    attacker = http.server.HTTPServer(("127.0.0.1", attack_port), Handler)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    try:
        visitor.driver.get(f"http://localhost:{attack_port}/")
        time.sleep(2)
    finally:
        attacker.shutdown()
    names = [e["name"] for e in api(server, "POST", "/api/2.0/mlflow/experiments/search", json={"max_results": 1000})["experiments"]]
    assert "forged" not in names
    # Signing out ends the session: pages send the browser to sign in again.
    visitor.open("/")
    visitor.find("header form button").click()
    visitor.wait(lambda d: "/login" in d.current_url)
    visitor.driver.get(server["uri"] + f"/experiments/{logged['experiment']}")
    visitor.wait(lambda d: "/login" in d.current_url)


def test_a_run_page_shows_what_exec_recorded(server, logged, browser, tmp_path):
    """A run started with `sextant exec` (as alice, against --auth): its page in Chromium
    shows the commit, the environment, the data's digest and a check of its manifest
    against the audit log that the signed-in browser can follow; bob, who may not read
    the experiment, gets no page."""
    import hashlib
    import sys

    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q"], ["config", "user.email", "a@example.com"], ["config", "user.name", "alice"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    (repo / "data.csv").write_text("a,b\n1,2\n")
    (repo / "train.py").write_text("import mlflow\nwith mlflow.start_run():\n    mlflow.log_metric('score', 0.5)\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "train"], cwd=repo, check=True)
    env = dict(os.environ, SEXTANT_SERVER=server["uri"], MLFLOW_TRACKING_USERNAME="alice",
               MLFLOW_TRACKING_PASSWORD="alice-password")  # fmt: skip
    done = subprocess.run([str(_sextant_bin()), "exec", "--experiment", "browser-journey", "--input", "data.csv", "--",
                           sys.executable, "train.py"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_id = next(line for line in done.stderr.splitlines() if line.startswith("sextant: run ")).split()[2].rstrip(":")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    digest = "sha256:" + hashlib.sha256((repo / "data.csv").read_bytes()).hexdigest()

    alice = browser()
    alice.sign_in("alice", "alice-password")
    alice.open(f"/experiments/{logged['experiment']}/runs/{run_id}")
    section = alice.find("section.environment")
    assert "Recorded environment" in section.text and commit in section.text
    assert digest[:20] in section.text and "Python" in section.text
    alice.screenshot("run-environment")
    section.find_element("link text", "check against the audit log").click()
    alice.wait(lambda d: "run-manifests" in d.current_url)
    assert '"intact":true' in alice.driver.page_source.replace(" ", "")

    bob = browser()
    bob.sign_in("bob", "bob-password")
    bob.open(f"/experiments/{logged['experiment']}/runs/{run_id}")
    assert not bob.finds("section.environment")


def test_a_stored_dataset_page_shows_its_profile(server, logged, browser, tmp_path):
    """A table alice pushed is listed on the Datasets tab; its page draws the profile in
    its sandboxed frame, and asking for a target adds the association table."""
    rows = ["amount,region,label"] + [f"{10 * i % 97},{['north', 'south'][i % 2]},{i % 3 == 0:d}" for i in range(200)]
    (tmp_path / "calls.csv").write_text("\n".join(rows) + "\n")
    env = dict(os.environ, SEXTANT_SERVER=server["uri"], MLFLOW_TRACKING_USERNAME="alice",
               MLFLOW_TRACKING_PASSWORD="alice-password")  # fmt: skip
    done = subprocess.run([str(_sextant_bin()), "datasets", "push", "calls.csv", "--name", "browser-calls"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr

    alice = browser()
    alice.sign_in("alice", "alice-password")
    alice.open("/datasets")
    alice.find("a.tab.active[href='/datasets']")
    alice.find("a[href^='/datasets/browser-calls/versions/']").click()
    alice.wait(lambda d: "/datasets/browser-calls/versions/" in d.current_url)
    alice.check_console()
    alice.find("input[name=target]").send_keys("label")
    alice.find("form.fields button[type=submit]").click()
    alice.wait(lambda d: "target=label" in d.current_url)
    frame = alice.find("iframe.report")
    alice.driver.switch_to.frame(frame)
    alice.wait(lambda d: "Association with" in d.find_element("tag name", "body").text)
    text = alice.find("body").text
    assert "amount" in text and "region" in text and "200 rows" in text
    alice.driver.switch_to.default_content()
    alice.check_console()
    alice.screenshot("dataset-profile")
