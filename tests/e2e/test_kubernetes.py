"""`sextant k8s render` and the Helm chart (`deploy/helm/sextant`): for several values
files, the chart (rendered and linted by Helm's own engine, from PyPI's
helm-python-sdk) and the command give the same manifests; they pass Kubernetes 1.28,
1.32 and 1.37's schemas strictly (kubernetes-validate); and every Sextant pod is what it
must be: non-root on a read-only root filesystem, with resources, probes and secrets by
reference. The kustomize overlays (deploy/kustomize) build with kustomize and pass the
same schemas, and checkov finds nothing in any of them beyond the documented choices."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import AGAINST_MLFLOW, _sextant_bin

pytestmark = [
    pytest.mark.sextant_only,
    pytest.mark.skipif(AGAINST_MLFLOW, reason="Sextant's manifests"),
]

KUBERNETES = ["1.28.0", "1.32.0", "1.37.0"]
CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "sextant"
# Custom resources are not in Kubernetes' schemas.
CUSTOM = {"monitoring.coreos.com/v1", "keda.sh/v1alpha1", "gateway.networking.k8s.io/v1"}
ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "deploy" / "kustomize"

PRODUCTION = """
name: ml
namespace: ml-platform
image: {repository: registry.example.com/sextant, tag: "1.4.0", digest: "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945", pullPolicy: Always}
server:
  replicas: 3
  databaseSecret: ml-postgres
  artifactsDestination: s3://ml-artifacts/sextant
  objectStoreSecret: ml-s3
  resources: {cpu: "1", memory: 1Gi, memoryLimit: 4Gi}
ingress: {host: ml.example.com, className: nginx}
gateway: {name: public, namespace: gateway}
monitoring: {serviceMonitor: true, prometheusRules: true}
serving:
  - {deployment: fraud-api, minReplicas: 2, maxReplicas: 20, targetInFlight: 16}
  - {deployment: churn, minReplicas: 1, maxReplicas: 4, keda: true}
batch: {name: nightly, model: fraud@champion, input: calls/2026-12-06, output: scores/2026-12-06, claim: ml-data, parts: 4}
"""

DEVELOPMENT = """
server: {replicas: 1, objectStoreSecret: "", artifactsDestination: /var/cache/sextant/artifacts}
"""


def render(tmp_path, values: str | None):
    args = [str(_sextant_bin()), "k8s", "render"]
    if values is not None:
        path = tmp_path / "values.yaml"
        path.write_text(values)
        args += ["--values", str(path)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return done


@pytest.mark.parametrize("values", [None, DEVELOPMENT, PRODUCTION], ids=["defaults", "development", "production"])
def test_rendered_manifests_are_valid_kubernetes_and_hardened(tmp_path, values):
    import kubernetes_validate

    done = render(tmp_path, values)
    assert done.returncode == 0, done.stderr
    docs = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    assert docs
    for doc in docs:
        if doc["apiVersion"] in CUSTOM:
            assert doc["metadata"]["name"] and doc["spec"], doc
            continue
        for version in KUBERNETES:
            kubernetes_validate.validate(doc, version, strict=True)
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec") if doc["kind"] in ("Deployment", "Job") else None
        if pod is None:
            continue
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] and security["runAsNonRoot"], container["name"]
            assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
            for variable in container.get("env", []):
                # Secrets by reference only.
                if any(word in variable["name"] for word in ("PASSWORD", "TOKEN", "BACKEND_STORE_URI")):
                    assert "valueFrom" in variable and "value" not in variable, variable
            if doc["kind"] == "Deployment":
                assert container["readinessProbe"] and container["livenessProbe"]


def test_production_values_give_replicas_autoscaling_a_batch_job_and_monitoring(tmp_path):
    done = render(tmp_path, PRODUCTION)
    docs = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    by_kind: dict[str, list[dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    servers = [d for d in by_kind["Deployment"] if d["metadata"]["name"] == "ml"]
    assert servers[0]["spec"]["replicas"] == 3
    assert {d["metadata"]["name"] for d in by_kind["HorizontalPodAutoscaler"]} == {"ml-fraud-api"}
    (keda,) = by_kind["ScaledObject"]
    assert keda["spec"]["scaleTargetRef"]["name"] == "ml-churn" and keda["spec"]["maxReplicaCount"] == 4
    assert 'pod=~"ml-churn-.*"' in keda["spec"]["triggers"][0]["metadata"]["query"]
    fraud = next(d for d in by_kind["HorizontalPodAutoscaler"] if d["metadata"]["name"] == "ml-fraud-api")
    assert (fraud["spec"]["minReplicas"], fraud["spec"]["maxReplicas"]) == (2, 20)
    assert fraud["spec"]["metrics"][0]["pods"]["metric"]["name"] == "sextant_inference_in_flight"
    assert "sextant_inference_in_flight" in by_kind["ConfigMap"][0]["data"]["config.yaml"]
    (job,) = by_kind["Job"]
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 4
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--partition") + 1] == "$(JOB_COMPLETION_INDEX)/4", args
    assert by_kind["Ingress"][0]["spec"]["rules"][0]["host"] == "ml.example.com"
    (route,) = by_kind["HTTPRoute"]
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateway"}]
    assert route["spec"]["hostnames"] == ["ml.example.com"]
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "ml", "port": 5000}]
    for doc in by_kind["Deployment"] + by_kind["Job"]:
        image = doc["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == "registry.example.com/sextant@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945", image
    assert {"ServiceMonitor", "PrometheusRule"} <= set(by_kind)
    rules = {r["alert"] for r in by_kind["PrometheusRule"][0]["spec"]["groups"][0]["rules"]}
    assert {"SextantErrorRate", "SextantLatencyP99", "SextantFeatureDrift", "SextantNoLeader"} <= rules


def test_bad_values_are_refused_by_name(tmp_path):
    done = render(tmp_path, "serving: [{minReplicas: 2}]")
    assert done.returncode != 0 and "deployment" in done.stderr, done.stderr


def documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_identity(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


@pytest.mark.parametrize("values", [None, DEVELOPMENT, PRODUCTION], ids=["defaults", "development", "production"])
def test_the_helm_chart_renders_what_sextant_k8s_render_prints(tmp_path, values):
    import helm_python

    done = render(tmp_path, values)
    assert done.returncode == 0, done.stderr
    expected = by_identity(documents(done.stdout))
    given = yaml.safe_load(values) if values else {}
    rendered = helm_python.Chart.load(CHART).render(values=given, name="sextant", namespace="sextant")
    charted = by_identity([doc for text in rendered.values() for doc in documents(text)])
    assert sorted(charted) == sorted(expected)
    for identity, doc in expected.items():
        assert charted[identity] == doc, f"{identity}:\n{json.dumps(charted[identity], indent=1)}\n!=\n{json.dumps(doc, indent=1)}"
    linted = helm_python.lint(str(CHART), given, strict=True)
    assert linted["errors"] == [] and not [m for m in linted["messages"] if m["severity"] >= 2], linted


def test_grafana_dashboards_query_only_metrics_sextant_exports():
    """Every PromQL expression of the dashboards in deploy/grafana names metrics the
    server writes (histograms by their _bucket series) and valid panel JSON."""
    import re

    root = Path(__file__).resolve().parents[2]
    exported = set(re.findall(r'"(sextant_[a-z_]+)"', "".join(
        path.read_text() for path in (root / "crates" / "sextant-server" / "src").rglob("*.rs"))))
    exported |= {"sextant_leader"}  # written as one formatted line
    dashboards = sorted((root / "deploy" / "grafana").glob("*.json"))
    assert dashboards
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["panels"]
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                names = set(re.findall(r"\bsextant_[a-z_]+", target["expr"]))
                assert names, target
                for name in names:
                    base = re.sub(r"_(bucket|sum|count)$", "", name)
                    assert base in exported, f"{path.name}: {panel['title']}: {name} is not exported"


def tool(variable: str, default: Path) -> Path:
    """A test tool scripts/test installs; missing, the test fails rather than skips."""
    path = Path(os.environ.get(variable, default))
    assert path.exists(), f"{path} is missing: scripts/test installs it (or set {variable})"
    return path


def kustomize_build(overlay: Path) -> list[dict]:
    kustomize = tool("SEXTANT_KUSTOMIZE", Path.home() / ".cache/sextant/tools/kustomize-4.5.4")
    done = subprocess.run([str(kustomize), "build", str(overlay)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return documents(done.stdout)


def test_the_kustomize_base_is_what_sextant_k8s_render_prints(tmp_path):
    done = render(tmp_path, None)
    assert done.returncode == 0, done.stderr
    assert by_identity(documents((KUSTOMIZE / "base" / "sextant.yaml").read_text())) == by_identity(documents(done.stdout))


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_kustomize_overlays_build_valid_kubernetes(overlay):
    import kubernetes_validate

    docs = by_identity(kustomize_build(KUSTOMIZE / "overlays" / overlay))
    for doc in docs.values():
        if doc["apiVersion"] in CUSTOM:
            continue
        for version in KUBERNETES:
            kubernetes_validate.validate(doc, version, strict=True)
    server = docs[("Deployment", "sextant")]["spec"]
    container = server["template"]["spec"]["containers"][0]
    env = {v["name"]: v for v in container["env"]}
    if overlay == "dev":
        # One server on SQLite on a volume: no PostgreSQL, object store or budget.
        assert server["replicas"] == 1 and server["strategy"]["type"] == "Recreate"
        assert env["SEXTANT_BACKEND_STORE_URI"] == {"name": "SEXTANT_BACKEND_STORE_URI", "value": "sqlite:///var/lib/sextant/sextant.db"}
        assert env["SEXTANT_ARTIFACTS_DESTINATION"]["value"].startswith("/var/lib/sextant/")
        assert "envFrom" not in container
        assert {"name": "data", "mountPath": "/var/lib/sextant"} in container["volumeMounts"]
        claim = next(v for v in server["template"]["spec"]["volumes"] if v["name"] == "data")
        assert ("PersistentVolumeClaim", claim["persistentVolumeClaim"]["claimName"]) in docs
        assert ("PodDisruptionBudget", "sextant") not in docs
    else:
        assert server["replicas"] == 3
        assert env["SEXTANT_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == "sextant-database"
        assert container["envFrom"] == [{"secretRef": {"name": "sextant-object-store"}}]
        assert container["image"] == "ghcr.io/sextant-ml/sextant:0.1.0"
        assert container["resources"]["limits"]["memory"] == "4Gi"
        assert docs[("PodDisruptionBudget", "sextant")]["spec"]["minAvailable"] == 2
        assert docs[("HorizontalPodAutoscaler", "sextant")]["spec"]["minReplicas"] == 3
        assert docs[("HTTPRoute", "sextant")]["spec"]["rules"][0]["backendRefs"][0]["name"] == "sextant"


# The checks checkov fails on purpose, with the reason (docs/KUBERNETES.md, "Security
# scan"). Everything else must pass.
ACCEPTED_CHECKS = {
    # No CPU limit: CFS throttling at a limit adds tail latency to inference; requests
    # reserve the CPU, the memory limit bounds the pod.
    "CKV_K8S_11",
    # Sextant reads its database URL, admin password and token from the environment
    # (as MLflow does); they come from Secrets by reference and are never logged.
    "CKV_K8S_35",
}
# Pinning by digest and pulling always are the installer's choice of values (the
# production values here set both; the defaults pin a version tag).
BY_VALUES = {"CKV_K8S_43", "CKV_K8S_15"}


def checkov(paths: list[Path]) -> list[dict]:
    binary = tool("SEXTANT_CHECKOV", Path.home() / ".cache/sextant/venv-checkov/bin/checkov")
    args = [str(binary), "--framework", "kubernetes", "--output", "json", "--quiet", "--skip-download"]
    for path in paths:
        args += ["--file", str(path)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CKV_NO_GUIDE": "TRUE"})
    assert done.returncode in (0, 1), done.stderr[-2000:]
    reports = json.loads(done.stdout) if done.stdout.strip() else []
    reports = reports if isinstance(reports, list) else [reports]
    failed = []
    for report in reports:
        if isinstance(report, dict) and "results" in report:
            assert report["summary"]["passed"] > 0, report["summary"]
            failed += report["results"]["failed_checks"]
    return failed


def test_checkov_finds_nothing_but_the_documented_choices(tmp_path):
    files = []
    for label, values in [("defaults", None), ("production", PRODUCTION)]:
        done = render(tmp_path, values)
        assert done.returncode == 0, done.stderr
        path = tmp_path / f"render-{label}.yaml"
        path.write_text(done.stdout)
        files.append(path)
    for overlay in ("dev", "prod"):
        path = tmp_path / f"kustomize-{overlay}.yaml"
        path.write_text(yaml.safe_dump_all(kustomize_build(KUSTOMIZE / "overlays" / overlay)))
        files.append(path)
    failed = checkov(files)
    unexpected = [
        (f["check_id"], f["check_name"], f["resource"], Path(f["file_path"]).name)
        for f in failed
        if f["check_id"] not in ACCEPTED_CHECKS
        and not (f["check_id"] in BY_VALUES and "production" not in f["file_path"])
    ]
    assert unexpected == [], unexpected
