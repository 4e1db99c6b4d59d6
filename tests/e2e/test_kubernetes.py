"""`sextant k8s render` and the Helm chart (`deploy/helm/sextant`): for several values
files, the chart (rendered and linted by Helm's own engine, from PyPI's
helm-python-sdk) and the command give the same manifests; they pass Kubernetes 1.28,
1.32 and 1.37's schemas strictly (kubernetes-validate); and every Sextant pod is what it
must be: non-root on a read-only root filesystem, with resources, probes and secrets by
reference."""

from __future__ import annotations

import json
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
CUSTOM = {"monitoring.coreos.com/v1", "keda.sh/v1alpha1"}

PRODUCTION = """
name: ml
namespace: ml-platform
image: {repository: registry.example.com/sextant, tag: "1.4.0"}
server:
  replicas: 3
  databaseSecret: ml-postgres
  artifactsDestination: s3://ml-artifacts/sextant
  objectStoreSecret: ml-s3
  resources: {cpu: "1", memory: 1Gi, memoryLimit: 4Gi}
ingress: {host: ml.example.com, className: nginx}
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
