//! `sextant k8s render`: the Kubernetes manifests of an installation, from
//! a values file: the server (several processes on PostgreSQL and object
//! storage, one of which leads the background work), its Service,
//! disruption budget, network policy and Ingress; per served deployment,
//! stateless replicas with their Service, a HorizontalPodAutoscaler on the
//! in-flight requests they export and the Prometheus adapter rule that
//! exposes that metric; an indexed Job that scores a dataset over N pods
//! (`sextant predict --partition`); and, for the Prometheus operator, a
//! ServiceMonitor and alert rules.
//!
//! Manifests are written as a YAML stream of JSON documents (JSON is YAML),
//! so that nothing but `serde_json` builds them. Every container runs as a
//! non-root user on a read-only root filesystem, with resources, and
//! secrets come by reference.

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use yaml_rust2::{Yaml, YamlLoader};

#[derive(clap::Subcommand)]
pub enum K8sCommand {
    /// Print the manifests for a values file (defaults: one server on PostgreSQL and S3).
    Render(RenderArgs),
}

#[derive(clap::Args)]
pub struct RenderArgs {
    /// A YAML values file; see docs/KUBERNETES.md for its keys. Without it,
    /// the defaults.
    #[arg(long)]
    values: Option<PathBuf>,
    /// Where to write the manifests (default: standard output).
    #[arg(long)]
    output: Option<PathBuf>,
}

pub fn k8s(command: K8sCommand) -> anyhow::Result<()> {
    match command {
        K8sCommand::Render(args) => {
            let text = match &args.values {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("while reading {}", path.display()))?,
                None => String::new(),
            };
            let values = Values::parse(&text)?;
            let stream = render(&values);
            match &args.output {
                Some(path) => std::fs::write(path, stream)
                    .with_context(|| format!("while writing {}", path.display()))?,
                None => print!("{stream}"),
            }
            Ok(())
        }
    }
}

/// The chart's values file: every key's default, read before the user's
/// values, so that the chart and this command cannot disagree on one.
const CHART_VALUES: &str = include_str!("../../../deploy/helm/sextant/values.yaml");

/// A served deployment's replicas.
#[derive(Debug, Clone, PartialEq)]
struct Serving {
    deployment: String,
    min_replicas: u64,
    max_replicas: u64,
    /// Average in-flight requests per replica the autoscaler aims for.
    target_in_flight: u64,
    /// Scale with a KEDA ScaledObject (querying Prometheus) instead of a
    /// HorizontalPodAutoscaler.
    keda: bool,
}

/// A dataset scored over `parts` pods.
#[derive(Debug, Clone, PartialEq)]
struct Batch {
    name: String,
    model: String,
    /// A file or directory on the claim, as `sextant predict --input` takes it.
    input: String,
    /// Directory on the claim the parts are written to.
    output: String,
    claim: String,
    parts: u64,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Values {
    name: String,
    namespace: String,
    image_repository: String,
    image_tag: String,
    /// `sha256:…`: the image by digest (the tag is then ignored).
    image_digest: Option<String>,
    pull_policy: String,
    server_replicas: u64,
    /// Secret holding `database-url` (postgresql://…).
    database_secret: String,
    artifacts_destination: String,
    /// Secret with the object store's credentials (AWS_ACCESS_KEY_ID, …),
    /// passed as environment.
    artifacts_secret: Option<String>,
    /// Secret holding `admin-password`.
    admin_secret: String,
    /// Secret holding `token`: what replicas and Jobs call the server with.
    token_secret: String,
    host: Option<String>,
    ingress_class: Option<String>,
    /// The Gateway (name, namespace) an HTTPRoute attaches to.
    gateway: Option<(String, Option<String>)>,
    cpu_request: String,
    memory_request: String,
    memory_limit: String,
    service_monitor: bool,
    prometheus_rules: bool,
    /// Where KEDA's Prometheus trigger queries.
    prometheus_address: String,
    serving: Vec<Serving>,
    batch: Option<Batch>,
}

/// `node[key]` for a dotted `path`.
fn at<'a>(node: &'a Yaml, path: &str) -> &'a Yaml {
    path.split('.').fold(node, |node, key| &node[key])
}

fn text(node: &Yaml, path: &str) -> anyhow::Result<Option<String>> {
    Ok(match at(node, path) {
        Yaml::BadValue | Yaml::Null => None,
        Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Real(r) => Some(r.clone()),
        other => bail!("values: {path} must be text, not {other:?}"),
    })
}

fn number(node: &Yaml, path: &str) -> anyhow::Result<Option<u64>> {
    Ok(match at(node, path) {
        Yaml::BadValue | Yaml::Null => None,
        Yaml::Integer(i) if *i >= 0 => Some(*i as u64),
        other => bail!("values: {path} must be a whole number, not {other:?}"),
    })
}

fn flag(node: &Yaml, path: &str) -> anyhow::Result<Option<bool>> {
    Ok(match at(node, path) {
        Yaml::BadValue | Yaml::Null => None,
        Yaml::Boolean(b) => Some(*b),
        other => bail!("values: {path} must be true or false, not {other:?}"),
    })
}

/// Kubernetes names: lowercase alphanumerics and '-', at most 63.
fn check_name(what: &str, name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        bail!("values: {what} '{name}' is not a Kubernetes name (lowercase letters, digits and '-', at most 63)");
    }
    Ok(())
}

impl Values {
    /// The chart's defaults, then `yaml`'s values over them.
    fn parse(yaml: &str) -> anyhow::Result<Values> {
        let mut values = Values::default();
        values
            .apply(CHART_VALUES)
            .context("the chart's values.yaml")?;
        values.apply(yaml)?;
        check_name("name", &values.name)?;
        check_name("namespace", &values.namespace)?;
        for serving in &values.serving {
            check_name("serving deployment", &serving.deployment)?;
        }
        if let Some(batch) = &values.batch {
            check_name("batch name", &batch.name)?;
        }
        Ok(values)
    }

    /// Sets what `yaml` gives; leaves the rest.
    fn apply(&mut self, yaml: &str) -> anyhow::Result<()> {
        let docs = YamlLoader::load_from_str(yaml).context("values: not YAML")?;
        let Some(root) = docs.first() else {
            return Ok(());
        };
        if !matches!(root, Yaml::Hash(_)) {
            bail!("values: the file must be a mapping of keys");
        }
        let values = self;
        let set = |slot: &mut String, value: Option<String>| {
            if let Some(value) = value {
                *slot = value;
            }
        };
        set(&mut values.name, text(root, "name")?);
        set(&mut values.namespace, text(root, "namespace")?);
        set(
            &mut values.image_repository,
            text(root, "image.repository")?,
        );
        set(&mut values.image_tag, text(root, "image.tag")?);
        if let Some(digest) = text(root, "image.digest")? {
            values.image_digest = (!digest.is_empty()).then_some(digest);
        }
        set(&mut values.pull_policy, text(root, "image.pullPolicy")?);
        if let Some(replicas) = number(root, "server.replicas")? {
            values.server_replicas = replicas.max(1);
        }
        set(
            &mut values.database_secret,
            text(root, "server.databaseSecret")?,
        );
        set(
            &mut values.artifacts_destination,
            text(root, "server.artifactsDestination")?,
        );
        if let Some(secret) = text(root, "server.objectStoreSecret")? {
            values.artifacts_secret = (!secret.is_empty()).then_some(secret);
        }
        set(&mut values.admin_secret, text(root, "server.adminSecret")?);
        set(&mut values.token_secret, text(root, "tokenSecret")?);
        set(&mut values.cpu_request, text(root, "server.resources.cpu")?);
        set(
            &mut values.memory_request,
            text(root, "server.resources.memory")?,
        );
        set(
            &mut values.memory_limit,
            text(root, "server.resources.memoryLimit")?,
        );
        if let Some(host) = text(root, "ingress.host")? {
            values.host = (!host.is_empty()).then_some(host);
        }
        if let Some(class) = text(root, "ingress.className")? {
            values.ingress_class = (!class.is_empty()).then_some(class);
        }
        if let Some(gateway) = text(root, "gateway.name")? {
            values.gateway = (!gateway.is_empty()).then_some((gateway, None));
        }
        if let (Some((_, slot)), Some(namespace)) =
            (values.gateway.as_mut(), text(root, "gateway.namespace")?)
        {
            *slot = (!namespace.is_empty()).then_some(namespace);
        }
        if let Some(on) = flag(root, "monitoring.serviceMonitor")? {
            values.service_monitor = on;
        }
        if let Some(on) = flag(root, "monitoring.prometheusRules")? {
            values.prometheus_rules = on;
        }
        set(
            &mut values.prometheus_address,
            text(root, "monitoring.prometheusAddress")?,
        );
        if let Yaml::Array(items) = at(root, "serving") {
            for item in items {
                let deployment = text(item, "deployment")?.ok_or_else(|| {
                    anyhow::anyhow!("values: every serving entry needs a deployment")
                })?;
                let min_replicas = number(item, "minReplicas")?.unwrap_or(2).max(1);
                let max_replicas = number(item, "maxReplicas")?.unwrap_or(10).max(min_replicas);
                values.serving.push(Serving {
                    deployment,
                    min_replicas,
                    max_replicas,
                    target_in_flight: number(item, "targetInFlight")?.unwrap_or(8).max(1),
                    keda: flag(item, "keda")?.unwrap_or(false),
                });
            }
        }
        if matches!(at(root, "batch"), Yaml::Hash(keys) if !keys.is_empty()) {
            let need = |path: &str| -> anyhow::Result<String> {
                text(root, path)?
                    .ok_or_else(|| anyhow::anyhow!("values: {path} is needed for a batch Job"))
            };
            values.batch = Some(Batch {
                name: text(root, "batch.name")?.unwrap_or_else(|| "score".into()),
                model: need("batch.model")?,
                input: need("batch.input")?,
                output: need("batch.output")?,
                claim: need("batch.claim")?,
                parts: number(root, "batch.parts")?.unwrap_or(4).clamp(1, 1000),
            });
        }
        Ok(())
    }

    fn image(&self) -> String {
        match &self.image_digest {
            Some(digest) => format!("{}@{digest}", self.image_repository),
            None => format!("{}:{}", self.image_repository, self.image_tag),
        }
    }

    fn labels(&self, component: &str) -> Value {
        json!({
            "app.kubernetes.io/name": "sextant",
            "app.kubernetes.io/instance": self.name,
            "app.kubernetes.io/component": component,
        })
    }

    fn metadata(&self, name: &str, component: &str) -> Value {
        json!({"name": name, "namespace": self.namespace, "labels": self.labels(component)})
    }

    fn server_url(&self) -> String {
        format!("http://{}.{}.svc:5000", self.name, self.namespace)
    }
}

/// The container settings every Sextant process gets: non-root, read-only
/// root filesystem, no privilege, writable scratch at /tmp and the cache.
fn hardened(values: &Values, name: &str, args: Value, env: Value, port: u16) -> Value {
    json!({
        "name": name,
        "image": values.image(),
        "imagePullPolicy": values.pull_policy,
        "args": args,
        "env": env,
        "ports": [{"name": "http", "containerPort": port}],
        "resources": {
            "requests": {"cpu": values.cpu_request, "memory": values.memory_request},
            "limits": {"memory": values.memory_limit},
        },
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "cache", "mountPath": "/var/cache/sextant"},
        ],
    })
}

fn pod_spec(values: &Values, containers: Value, extra_volumes: &[Value]) -> Value {
    let mut volumes = vec![
        json!({"name": "tmp", "emptyDir": {}}),
        json!({"name": "cache", "emptyDir": {}}),
    ];
    volumes.extend(extra_volumes.iter().cloned());
    json!({
        "serviceAccountName": values.name,
        "automountServiceAccountToken": false,
        "securityContext": {"runAsNonRoot": true, "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers,
        "volumes": volumes,
    })
}

fn secret_env(name: &str, secret: &str, key: &str) -> Value {
    json!({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
}

fn probe(path: &str) -> Value {
    json!({"httpGet": {"path": path, "port": "http"}, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3})
}

/// The names clients reach the servers by: the Ingress host, the
/// Service's names, and any name in the namespace (replicas, Jobs).
fn allowed_hosts(values: &Values) -> String {
    let (name, namespace) = (&values.name, &values.namespace);
    values
        .host
        .iter()
        .cloned()
        .chain([
            name.clone(),
            format!("{name}.{namespace}.svc"),
            format!("*.{namespace}.svc.cluster.local"),
        ])
        .collect::<Vec<_>>()
        .join(",")
}

/// The manifests, as a YAML stream.
fn render(values: &Values) -> String {
    manifests(values)
        .iter()
        .map(|doc| {
            format!(
                "---\n{}\n",
                serde_json::to_string_pretty(doc).expect("JSON")
            )
        })
        .collect()
}

fn manifests(values: &Values) -> Vec<Value> {
    let name = &values.name;
    let mut docs = vec![json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": values.metadata(name, "server"),
        "automountServiceAccountToken": false,
    })];

    // The servers: any number on one database; one leads background work.
    let mut env = vec![
        secret_env(
            "SEXTANT_BACKEND_STORE_URI",
            &values.database_secret,
            "database-url",
        ),
        json!({"name": "SEXTANT_ARTIFACTS_DESTINATION", "value": values.artifacts_destination}),
        json!({"name": "SEXTANT_AUTH", "value": "true"}),
        secret_env(
            "SEXTANT_ADMIN_PASSWORD",
            &values.admin_secret,
            "admin-password",
        ),
        json!({"name": "SEXTANT_HOST", "value": "0.0.0.0"}),
        json!({"name": "SEXTANT_PORT", "value": "5000"}),
        json!({"name": "SEXTANT_DATA_DIR", "value": "/var/cache/sextant/data"}),
        json!({"name": "SEXTANT_CACHE_DIR", "value": "/var/cache/sextant"}),
        json!({"name": "SEXTANT_ALLOWED_HOSTS", "value": allowed_hosts(values)}),
    ];
    if let Some(host) = &values.host {
        env.push(json!({"name": "SEXTANT_EXTERNAL_URL", "value": format!("https://{host}")}));
    }
    let mut server = hardened(values, "server", json!(["server"]), json!(env), 5000);
    if let Some(secret) = &values.artifacts_secret {
        server["envFrom"] = json!([{"secretRef": {"name": secret}}]);
    }
    server["readinessProbe"] = probe("/health");
    server["livenessProbe"] = probe("/health");
    docs.push(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": values.metadata(name, "server"),
        "spec": {
            "replicas": values.server_replicas,
            "selector": {"matchLabels": values.labels("server")},
            "template": {
                "metadata": {"labels": values.labels("server")},
                "spec": pod_spec(values, json!([server]), &[]),
            },
        },
    }));
    docs.push(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": values.metadata(name, "server"),
        "spec": {"selector": values.labels("server"), "ports": [{"name": "http", "port": 5000, "targetPort": "http"}]},
    }));
    docs.push(json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": values.metadata(name, "server"),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": values.labels("server")}},
    }));
    // Servers take requests from anywhere in the cluster (and the Ingress
    // controller); they reach the database, the object store and DNS.
    docs.push(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": values.metadata(name, "server"),
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/instance": name, "app.kubernetes.io/name": "sextant"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"port": 5000, "protocol": "TCP"}, {"port": 8080, "protocol": "TCP"}]}],
        },
    }));
    if let Some(host) = &values.host {
        let mut spec = json!({"rules": [{"host": host, "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": name, "port": {"name": "http"}}},
        }]}}]});
        if let Some(class) = &values.ingress_class {
            spec["ingressClassName"] = json!(class);
        }
        docs.push(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": values.metadata(name, "server"), "spec": spec,
        }));
    }
    if let Some((gateway, gateway_namespace)) = &values.gateway {
        let mut parent = json!({"name": gateway});
        if let Some(namespace) = gateway_namespace {
            parent["namespace"] = json!(namespace);
        }
        let mut spec = json!({
            "parentRefs": [parent],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [{"name": name, "port": 5000}],
            }],
        });
        if let Some(host) = &values.host {
            spec["hostnames"] = json!([host]);
        }
        docs.push(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": values.metadata(name, "server"), "spec": spec,
        }));
    }

    // Stateless replicas per served deployment, scaled on in-flight requests.
    for serving in &values.serving {
        let replica = format!("{name}-{}", serving.deployment);
        let component = format!("serve-{}", serving.deployment);
        let env = json!([
            {"name": "SEXTANT_SERVER", "value": values.server_url()},
            secret_env("SEXTANT_TOKEN", &values.token_secret, "token"),
            {"name": "SEXTANT_HOST", "value": "0.0.0.0"},
            {"name": "SEXTANT_PORT", "value": "8080"},
            {"name": "SEXTANT_CACHE_DIR", "value": "/var/cache/sextant"},
        ]);
        let mut container = hardened(
            values,
            "serve",
            json!(["serve", "--deployment", serving.deployment]),
            env,
            8080,
        );
        container["readinessProbe"] = probe("/v2/health/ready");
        container["livenessProbe"] = probe("/v2/health/live");
        docs.push(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": values.metadata(&replica, &component),
            "spec": {
                "replicas": serving.min_replicas,
                "selector": {"matchLabels": values.labels(&component)},
                "template": {
                    "metadata": {"labels": values.labels(&component)},
                    "spec": pod_spec(values, json!([container]), &[]),
                },
            },
        }));
        docs.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": values.metadata(&replica, &component),
            "spec": {"selector": values.labels(&component), "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]},
        }));
        docs.push(json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": values.metadata(&replica, &component),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": values.labels(&component)}},
        }));
        if serving.keda {
            // KEDA makes and drives the HorizontalPodAutoscaler itself.
            docs.push(json!({
                "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                "metadata": values.metadata(&replica, &component),
                "spec": {
                    "scaleTargetRef": {"name": replica},
                    "minReplicaCount": serving.min_replicas,
                    "maxReplicaCount": serving.max_replicas,
                    "triggers": [{"type": "prometheus", "metadata": {
                        "serverAddress": values.prometheus_address,
                        "query": format!(
                            "sum(sextant_inference_in_flight{{namespace=\"{}\",pod=~\"{replica}-.*\"}})",
                            values.namespace
                        ),
                        "threshold": serving.target_in_flight.to_string(),
                    }}],
                },
            }));
            continue;
        }
        docs.push(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": values.metadata(&replica, &component),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": replica},
                "minReplicas": serving.min_replicas,
                "maxReplicas": serving.max_replicas,
                "metrics": [{"type": "Pods", "pods": {
                    "metric": {"name": "sextant_inference_in_flight"},
                    "target": {"type": "AverageValue", "averageValue": serving.target_in_flight.to_string()},
                }}],
            },
        }));
    }
    if !values.serving.is_empty() {
        // The Prometheus adapter exposes each pod's gauge as a custom metric.
        let rules = "rules:\n\
             - seriesQuery: 'sextant_inference_in_flight{namespace!=\"\",pod!=\"\"}'\n\
             \x20 resources:\n\
             \x20   overrides:\n\
             \x20     namespace: {resource: namespace}\n\
             \x20     pod: {resource: pod}\n\
             \x20 name: {matches: sextant_inference_in_flight, as: sextant_inference_in_flight}\n\
             \x20 metricsQuery: 'sum(sextant_inference_in_flight{<<.LabelMatchers>>}) by (<<.GroupBy>>)'\n";
        docs.push(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": values.metadata(&format!("{name}-prometheus-adapter-rules"), "autoscaling"),
            "data": {"config.yaml": rules},
        }));
    }

    // A dataset scored over N pods, each writing its part.
    if let Some(batch) = &values.batch {
        let job = format!("{name}-{}", batch.name);
        let env = json!([
            {"name": "SEXTANT_SERVER", "value": values.server_url()},
            secret_env("SEXTANT_TOKEN", &values.token_secret, "token"),
            {"name": "SEXTANT_CACHE_DIR", "value": "/var/cache/sextant"},
        ]);
        let mut container = hardened(
            values,
            "predict",
            json!([
                "predict",
                "--model",
                batch.model,
                "--input",
                format!("/data/{}", batch.input),
                "--output",
                format!(
                    "/data/{}/part-$(JOB_COMPLETION_INDEX).parquet",
                    batch.output
                ),
                "--partition",
                format!("$(JOB_COMPLETION_INDEX)/{}", batch.parts),
            ]),
            env,
            8080,
        );
        container
            .as_object_mut()
            .expect("container")
            .remove("ports");
        container["volumeMounts"]
            .as_array_mut()
            .expect("mounts")
            .push(json!({"name": "data", "mountPath": "/data"}));
        let mut spec = pod_spec(
            values,
            json!([container]),
            &[json!({"name": "data", "persistentVolumeClaim": {"claimName": batch.claim}})],
        );
        spec["restartPolicy"] = json!("Never");
        docs.push(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": values.metadata(&job, "batch"),
            "spec": {
                "completionMode": "Indexed",
                "completions": batch.parts,
                "parallelism": batch.parts,
                "backoffLimit": 3 * batch.parts,
                "template": {"metadata": {"labels": values.labels("batch")}, "spec": spec},
            },
        }));
    }

    // The Prometheus operator's resources (custom resources, not core).
    if values.service_monitor {
        docs.push(json!({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": values.metadata(name, "monitoring"),
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/instance": name, "app.kubernetes.io/name": "sextant"}},
                "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
            },
        }));
    }
    if values.prometheus_rules {
        docs.push(json!({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": values.metadata(name, "monitoring"),
            "spec": {"groups": [{"name": "sextant", "rules": [
                {"alert": "SextantErrorRate", "for": "5m", "labels": {"severity": "warning"},
                 "expr": "sum by (deployment) (rate(sextant_inference_requests_total{outcome=\"failed\"}[5m])) / sum by (deployment) (rate(sextant_inference_requests_total[5m])) > 0.01",
                 "annotations": {"summary": "More than 1% of {{ $labels.deployment }}'s requests fail"}},
                {"alert": "SextantLatencyP99", "for": "10m", "labels": {"severity": "warning"},
                 "expr": "histogram_quantile(0.99, sum by (deployment, le) (rate(sextant_inference_latency_seconds_bucket[5m]))) > 0.5",
                 "annotations": {"summary": "{{ $labels.deployment }}'s p99 latency is over 500 ms"}},
                {"alert": "SextantFeatureDrift", "for": "30m", "labels": {"severity": "warning"},
                 "expr": "sextant_monitor_drifted_features > 0",
                 "annotations": {"summary": "{{ $labels.deployment }} v{{ $labels.version }}: features drifted"}},
                {"alert": "SextantNoLeader", "for": "1m", "labels": {"severity": "critical"},
                 "expr": "sum(sextant_leader) < 1",
                 "annotations": {"summary": "No Sextant server leads the background work (alerts, canaries)"}},
            ]}]},
        }));
    }
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_render_a_hardened_server() {
        let values = Values::parse("").unwrap();
        assert_eq!(values.image(), "ghcr.io/sextant-ml/sextant:0.1.0");
        assert_eq!(values.server_replicas, 2);
        let docs = manifests(&values);
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "Deployment",
                "Service",
                "PodDisruptionBudget",
                "NetworkPolicy"
            ]
        );
        let container = &docs[1]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(
            container["env"][0]["valueFrom"]["secretKeyRef"]["name"],
            "sextant-database"
        );
        for doc in render(&values)
            .split("---\n")
            .filter(|d| !d.trim().is_empty())
        {
            serde_json::from_str::<Value>(doc).expect("each document is JSON, so YAML");
        }
    }

    #[test]
    fn bad_values_are_named() {
        for (yaml, says) in [
            ("name: Sextant_1", "name"),
            ("serving: [{minReplicas: 2}]", "deployment"),
            ("batch: {model: m}", "batch.input"),
            ("server: {replicas: many}", "server.replicas"),
            ("- a list", "mapping"),
        ] {
            let error = Values::parse(yaml).unwrap_err().to_string();
            assert!(error.contains(says), "{yaml}: {error}");
        }
    }
}
