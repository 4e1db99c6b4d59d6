//! Alerts and retraining triggers.
//!
//! Every `period` (and on `POST …/alerts/evaluate`) each deployment with
//! alert rules gets a snapshot of its monitored metrics: drift, missing
//! values and outliers of the last monitoring window, error rate and
//! latency since the previous evaluation, and realised and estimated
//! performance from the labels of the last hour. Each rule is evaluated on
//! its metric (`sextant_monitor::alerts`, Prometheus' pending/firing/
//! resolved semantics); a firing or resolution is stored, written to the
//! audit log, posted to the webhooks as Alertmanager's JSON, and, when the
//! deployment's retraining trigger listens for that rule, starts a run.
//!
//! A retraining trigger runs a command (only when the server was started
//! with `--allow-trigger-commands`: the command runs with the server's
//! rights) or posts to a webhook, with the deployment, its model, the
//! reason and the data window; every run is recorded with its outcome.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sextant_api::deployments::ArmCounters;
use sextant_monitor::alerts::{
    alertmanager_payload, evaluate, AlertInstance, AlertRule, AlertRuleSpec, RuleState, Transition,
};
use sextant_store::{AlertEventRecord, TriggerRunRecord};

use crate::error::{ApiError, ApiResult};
use crate::outbound::{OutboundClient, OutboundPolicy};
use crate::serving::now_micros;
use crate::AppState;

/// Server-wide alerting settings.
#[derive(Debug, Clone, Default)]
pub struct AlertingConfig {
    /// Webhooks that receive every alert (Alertmanager's JSON).
    pub webhooks: Vec<String>,
    /// Whether retraining triggers may run commands on this host.
    pub allow_commands: bool,
    /// Link back to this server in alerts (`externalURL`).
    pub external_url: String,
}

/// Alerting state of a process.
#[derive(Default)]
pub struct Alerting {
    pub config: AlertingConfig,
    /// Counters at the previous evaluation, per deployment, for rates
    /// over the interval since.
    previous: Mutex<HashMap<String, ArmCounters>>,
    client: OutboundClient,
}

/// A rule as stored: what the user sent, plus where to notify.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredRule {
    pub spec: AlertRuleSpec,
    #[serde(default)]
    pub webhooks: Vec<String>,
}

/// What a retraining trigger does and when.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerConfig {
    /// Program and arguments to run (needs `--allow-trigger-commands`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// URL that receives a POST with the run's JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Alert rules whose firing starts a run; `["*"]` for any.
    #[serde(default)]
    pub on_alerts: Vec<String>,
    /// Also run every this many seconds (none by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_seconds: Option<u64>,
    /// Longest a command may run before it is killed (default 1 hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

impl TriggerConfig {
    pub fn validate(&self, allow_commands: bool, outbound: &OutboundPolicy) -> Result<(), String> {
        match (&self.command, &self.webhook) {
            (None, None) => return Err("a trigger needs a command or a webhook".into()),
            (Some(command), _) if command.is_empty() || command[0].trim().is_empty() => {
                return Err("command is a non-empty list: the program, then its arguments".into())
            }
            (Some(_), _) if !allow_commands => {
                return Err("this server does not run trigger commands (start it with --allow-trigger-commands), use a webhook".into())
            }
            _ => {}
        }
        if let Some(url) = &self.webhook {
            outbound.check_url(url)?;
        }
        if self.schedule_seconds == Some(0) {
            return Err("schedule_seconds must be positive".into());
        }
        Ok(())
    }
}

/// An http(s) URL, or a message saying why not.
pub fn check_url(url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(()),
        _ => Err(format!("'{url}' is not an http(s) URL")),
    }
}

impl Alerting {
    /// `outbound` says which internal hosts users' webhooks may reach; the
    /// hosts of the operator's own `config.webhooks` are added.
    pub fn new(config: AlertingConfig, outbound: &OutboundPolicy) -> Alerting {
        // The operator's own webhooks may be internal: they chose them.
        let mut policy = outbound.clone();
        policy.allowed_hosts.extend(
            config
                .webhooks
                .iter()
                .filter_map(|url| reqwest::Url::parse(url).ok())
                .filter_map(|url| {
                    url.host_str()
                        .map(|h| h.trim_matches(['[', ']']).to_string())
                }),
        );
        Alerting {
            config,
            previous: Mutex::new(HashMap::new()),
            client: OutboundClient::new(policy),
        }
    }

    /// What users' webhook URLs may reach.
    pub fn outbound(&self) -> &OutboundPolicy {
        self.client.policy()
    }
}

/// Evaluates every deployment's rules every `period` until `stopped`; runs
/// scheduled triggers when they are due.
pub async fn run(
    state: AppState,
    period: Duration,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_scheduled: HashMap<String, i64> = HashMap::new();
    let mut resumed_validations = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        // Servers sharing a database evaluate once: on the leader.
        if !state.serving().is_none_or(|s| s.leads_background_work()) {
            continue;
        }
        // Validations a stopped server left pending start again, once,
        // where background work runs.
        if !resumed_validations {
            resumed_validations = true;
            crate::validation::resume_pending(&state).await;
        }
        let deployments: std::collections::BTreeSet<String> =
            match state.store().alert_rules(None).await {
                Ok(rules) => rules.into_iter().map(|r| r.deployment).collect(),
                Err(err) => {
                    tracing::warn!(cause = %err, "cannot read alert rules");
                    continue;
                }
            };
        for deployment in deployments {
            if let Err(err) = evaluate_deployment(&state, &deployment).await {
                tracing::warn!(deployment, cause = ?err, "alert evaluation failed");
            }
        }
        let now = now_micros();
        if let Ok(triggers) = state.store().retrain_triggers().await {
            for (deployment, config) in triggers {
                let Ok(config) = serde_json::from_str::<TriggerConfig>(&config) else {
                    continue;
                };
                let Some(every) = config.schedule_seconds else {
                    continue;
                };
                let last = *last_scheduled.entry(deployment.clone()).or_insert(now);
                if now - last >= every as i64 * 1_000_000 {
                    last_scheduled.insert(deployment.clone(), now);
                    let detail = serde_json::json!({"schedule_seconds": every});
                    if let Err(err) =
                        start_trigger(&state, &deployment, &config, "schedule", detail).await
                    {
                        tracing::warn!(deployment, cause = ?err, "scheduled retraining did not start");
                    }
                }
            }
        }
    }
}

/// The current value of every metric rules can watch on `deployment`.
/// With `watched`, the performance report (a store query per version and,
/// for regressors, a read of the prediction log) is built only when one of
/// those metrics is not among the cheaper ones.
pub async fn metric_snapshot(
    state: &AppState,
    deployment: &str,
    watched: Option<&std::collections::BTreeSet<String>>,
) -> ApiResult<BTreeMap<String, f64>> {
    Ok(metric_snapshot_with_context(state, deployment, watched)
        .await?
        .metrics)
}

/// Metrics and what they describe.
#[derive(Debug, Default)]
pub struct MetricSnapshot {
    pub metrics: BTreeMap<String, f64>,
    /// `drift_version` and `performance_version`: the model version the
    /// drift and performance figures are of (the one that served, or was
    /// labelled, most; during a canary or an A/B test the others are in
    /// `GET …/monitoring` and `…/performance`), `versions_served`: how many
    /// versions served in the drift window, `drifted_features`: their names.
    pub context: BTreeMap<String, String>,
}

/// [`metric_snapshot`] with what the figures describe.
pub async fn metric_snapshot_with_context(
    state: &AppState,
    deployment: &str,
    watched: Option<&std::collections::BTreeSet<String>>,
) -> ApiResult<MetricSnapshot> {
    let mut metrics = BTreeMap::new();
    let mut context = BTreeMap::new();
    let now = now_micros();
    if let Some(serving) = state.serving() {
        // Drift of the last monitoring window, for the version that served most.
        if let Some(monitor) = serving.monitor(deployment) {
            let reports: Vec<_> = monitor
                .versions()
                .iter()
                .filter_map(|v| {
                    Some((
                        v.model.to_string(),
                        v.report(now, Duration::from_secs(300))?,
                    ))
                })
                .collect();
            let served = reports.iter().filter(|(_, r)| r.rows > 0).count();
            let report = reports
                .into_iter()
                .max_by_key(|(_, r)| r.rows)
                .map(|(model, report)| {
                    context.insert("drift_version".to_string(), model);
                    context.insert("versions_served".to_string(), served.to_string());
                    let drifted: Vec<&str> = report
                        .features
                        .iter()
                        .filter(|f| f.drifted)
                        .map(|f| f.name.as_str())
                        .collect();
                    if !drifted.is_empty() {
                        context.insert("drifted_features".to_string(), drifted.join(", "));
                    }
                    report
                });
            if let Some(report) = report {
                metrics.insert("requests".into(), report.requests as f64);
                metrics.insert("rows".into(), report.rows as f64);
                metrics.insert("outlier_rate".into(), report.outlier_rate);
                metrics.insert("feature_drift_share".into(), report.drift_share);
                metrics.insert("drifted_features".into(), report.drifted_features as f64);
                let mut worst_missing: f64 = 0.0;
                for feature in &report.features {
                    let name = &feature.name;
                    metrics.insert(format!("drift.{name}.psi"), feature.psi);
                    metrics.insert(
                        format!("drift.{name}.jensen_shannon"),
                        feature.jensen_shannon,
                    );
                    metrics.insert(
                        format!("drift.{name}.drifted"),
                        f64::from(u8::from(feature.drifted)),
                    );
                    metrics.insert(format!("missing.{name}"), feature.missing_share);
                    worst_missing = worst_missing.max(feature.missing_share);
                }
                metrics.insert("missing_share_max".into(), worst_missing);
                if let Some(prediction) = &report.prediction {
                    metrics.insert("prediction_drift.psi".into(), prediction.psi);
                    metrics.insert(
                        "prediction_drift.jensen_shannon".into(),
                        prediction.jensen_shannon,
                    );
                    metrics.insert(
                        "prediction_drift.drifted".into(),
                        f64::from(u8::from(prediction.drifted)),
                    );
                }
            }
        }
        if let Some(monitor) = serving.monitor(deployment) {
            // Explanation drift of the version with the most explained rows.
            let explained = monitor
                .versions()
                .iter()
                .filter_map(|v| {
                    let report = v.explanations.report(now, Duration::from_secs(300))?;
                    Some((v.model.to_string(), report))
                })
                .filter(|(_, r)| r.explained_rows > 0)
                .max_by_key(|(_, r)| r.explained_rows);
            if let Some((model, report)) = explained {
                context.insert("explanation_version".to_string(), model);
                if report.drift.is_finite() {
                    metrics.insert("explanation_drift".into(), report.drift);
                }
                metrics.insert(
                    "explanation.top_driver_changed".into(),
                    f64::from(u8::from(report.top_driver_changed)),
                );
                for feature in &report.features {
                    let name = &feature.name;
                    if feature.mean_abs_shap.is_finite() {
                        metrics.insert(
                            format!("explanation.{name}.mean_abs_shap"),
                            feature.mean_abs_shap,
                        );
                    }
                    if feature.drift.is_finite() {
                        metrics.insert(format!("explanation.{name}.drift"), feature.drift);
                    }
                }
                if let Some(top) = &report.top_driver {
                    context.insert("top_driver".to_string(), top.clone());
                }
                if let Some(top) = &report.reference_top_driver {
                    context.insert("reference_top_driver".to_string(), top.clone());
                }
                let drifted: Vec<&str> = report
                    .features
                    .iter()
                    .filter(|f| f.drifted)
                    .map(|f| f.name.as_str())
                    .collect();
                if !drifted.is_empty() {
                    context.insert(
                        "explanation_drifted_features".to_string(),
                        drifted.join(", "),
                    );
                }
            }
        }
        if let Some(report) = serving.abuse().report(deployment, now) {
            let totals = &report.totals;
            metrics.insert("abuse.flagged_clients".into(), totals.flagged as f64);
            metrics.insert("abuse.rate_spike".into(), totals.rate_spike as f64);
            metrics.insert(
                "abuse.near_duplicates".into(),
                totals.near_duplicates as f64,
            );
            metrics.insert("abuse.extraction".into(), totals.extraction as f64);
            metrics.insert(
                "abuse.boundary_probing".into(),
                totals.boundary_probing as f64,
            );
        }
        // Errors and latency since the previous evaluation.
        if let Ok(record) = state.store().get_deployment(deployment).await {
            let (counters, _) = crate::serving::controller::cluster_counters(
                state.store(),
                serving,
                deployment,
                record.revision,
            )
            .await;
            let mut total = ArmCounters::default();
            for arm in counters.values() {
                crate::serving::add_counters(&mut total, arm);
            }
            let previous = state
                .alerting()
                .previous
                .lock()
                .expect("alerting lock")
                .insert(deployment.to_string(), total.clone());
            let interval = match previous {
                Some(before) if before.requests <= total.requests => difference(&total, &before),
                _ => total,
            };
            if interval.requests > 0 {
                metrics.insert("requests_interval".into(), interval.requests as f64);
                metrics.insert(
                    "error_rate".into(),
                    interval.errors as f64 / interval.requests as f64,
                );
                for (name, q) in [("latency_p50_ms", 0.5), ("latency_p99_ms", 0.99)] {
                    if let Some(ms) = crate::serving::quantile_ms(&interval, q) {
                        metrics.insert(name.into(), ms);
                    }
                }
            }
        }
    }
    if watched.is_some_and(|names| names.iter().all(|name| metrics.contains_key(name))) {
        return Ok(MetricSnapshot { metrics, context });
    }
    // Performance from the labels of the last hour.
    let query = crate::routes::feedback::PerformanceQuery::last_hour();
    let performance = crate::routes::feedback::performance_of(state, deployment, &query).await?;
    let primary = performance["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .max_by_key(|v| v["overall"]["labelled"].as_u64().unwrap_or(0));
    if let Some(version) = primary {
        if let (Some(name), Some(number)) = (
            version["model"]["name"].as_str(),
            version["model"]["version"].as_str(),
        ) {
            context.insert(
                "performance_version".to_string(),
                format!("{name}/{number}"),
            );
        }
        let overall = &version["overall"];
        if let Some(figures) = overall["metrics"].as_object() {
            for (name, value) in figures {
                if let Some(value) = value.as_f64() {
                    metrics.insert(name.clone(), value);
                }
            }
        }
        if let Some(coverage) = overall["coverage"].as_f64() {
            metrics.insert("label_coverage".into(), coverage);
        }
        if let Some(delay) = overall["label_delay"]["median_seconds"].as_f64() {
            metrics.insert("label_delay_seconds".into(), delay);
        }
        metrics.insert(
            "concept_drift".into(),
            f64::from(u8::from(version["concept_drift"] == true)),
        );
        let windows = version["windows"].as_array().cloned().unwrap_or_default();
        if let Some(drift) = windows
            .iter()
            .rev()
            .find_map(|w| w["label_drift"].as_object().cloned())
        {
            metrics.insert(
                "label_drift".into(),
                f64::from(u8::from(drift["drifted"] == true)),
            );
            if let Some(statistic) = drift["statistic"].as_f64() {
                metrics.insert("label_drift.statistic".into(), statistic);
            }
        }
        // DLE's estimates for a regressor, from the latest window with rows.
        if let Some(window) = version["estimated_regression"]["windows"]
            .as_array()
            .and_then(|w| w.iter().rev().find(|w| w["mae"].is_object()))
        {
            for name in ["mae", "mse", "rmse", "mape"] {
                if let Some(value) = window[name]["value"].as_f64() {
                    metrics.insert(format!("estimated_{name}"), value);
                }
            }
        }
        if let Some(estimated) = windows
            .iter()
            .rev()
            .find_map(|w| w["estimated"].as_object().cloned())
        {
            for name in ["accuracy", "f1", "roc_auc"] {
                if let Some(value) = estimated.get(name).and_then(|v| v.as_f64()) {
                    metrics.insert(format!("estimated_{name}"), value);
                }
            }
        }
    }
    Ok(MetricSnapshot { metrics, context })
}

/// What an alert on `metric` is about, in words, for its notification: the
/// drifted features and the model version its figures are of.
fn alert_context(metric: &str, context: &BTreeMap<String, String>) -> Vec<(&'static str, String)> {
    let mut notes = Vec::new();
    if metric == "explanation_drift" || metric.starts_with("explanation.") {
        for (key, label) in [
            ("top_driver", "top_driver"),
            ("reference_top_driver", "reference_top_driver"),
            ("explanation_drifted_features", "drifted_features"),
            ("explanation_version", "model_version"),
        ] {
            if let Some(value) = context.get(key) {
                notes.push((label, value.clone()));
            }
        }
        return notes;
    }
    let about_drift = metric == "feature_drift_share"
        || metric == "drifted_features"
        || metric == "outlier_rate"
        || metric == "missing_share_max"
        || ["drift.", "missing.", "prediction_drift."]
            .iter()
            .any(|prefix| metric.starts_with(prefix));
    if about_drift {
        if matches!(metric, "feature_drift_share" | "drifted_features") {
            if let Some(features) = context.get("drifted_features") {
                notes.push(("drifted_features", features.clone()));
            }
        }
        if let Some(version) = context.get("drift_version") {
            let served: usize = context
                .get("versions_served")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            let text = if served > 1 {
                format!("{version} (the version that served most of the {served} in the window)")
            } else {
                version.clone()
            };
            notes.push(("model_version", text));
        }
    } else if let Some(version) = context.get("performance_version") {
        notes.push(("model_version", version.clone()));
    }
    notes
}

fn difference(after: &ArmCounters, before: &ArmCounters) -> ArmCounters {
    ArmCounters {
        requests: after.requests - before.requests,
        errors: after.errors.saturating_sub(before.errors),
        rejected: after.rejected.saturating_sub(before.rejected),
        latency_buckets: after
            .latency_buckets
            .iter()
            .enumerate()
            .map(|(i, a)| a.saturating_sub(before.latency_buckets.get(i).copied().unwrap_or(0)))
            .collect(),
    }
}

/// One evaluation of a rule, as the API reports it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleEvaluation {
    pub rule: String,
    pub metric: String,
    pub value: Option<f64>,
    pub state: RuleState,
    pub transition: Option<Transition>,
}

/// Evaluates `deployment`'s rules now: stores their states, records and
/// announces transitions, starts triggered runs.
pub async fn evaluate_deployment(
    state: &AppState,
    deployment: &str,
) -> ApiResult<Vec<RuleEvaluation>> {
    let rules = state.store().alert_rules(Some(deployment)).await?;
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    let watched: std::collections::BTreeSet<String> = rules
        .iter()
        .filter_map(|r| serde_json::from_str::<StoredRule>(&r.rule).ok())
        .map(|stored| stored.spec.metric)
        .collect();
    let MetricSnapshot { metrics, context } =
        metric_snapshot_with_context(state, deployment, Some(&watched)).await?;
    let now = now_micros();
    let mut evaluations = Vec::new();
    let mut announced = Vec::new();
    for record in rules {
        let Ok(stored) = serde_json::from_str::<StoredRule>(&record.rule) else {
            tracing::warn!(
                deployment,
                rule = record.name,
                "unreadable alert rule skipped"
            );
            continue;
        };
        let Ok(rule) = AlertRule::try_from(stored.spec.clone()) else {
            continue;
        };
        let mut rule_state: RuleState = serde_json::from_str(&record.state).unwrap_or_default();
        let value = metrics.get(rule.metric()).copied();
        let transition = evaluate(&rule, &mut rule_state, now, value);
        let encoded = serde_json::to_string(&rule_state).expect("states serialise");
        state
            .store()
            .set_alert_state(deployment, &record.name, &encoded, now)
            .await?;
        if let Some(transition) = transition {
            let mut alert = AlertInstance::new(&rule, &transition, deployment);
            // Name what the figure is about: "feature_drift_share is 0.4"
            // alone sends a person to the dashboard.
            let notes = alert_context(rule.metric(), &context);
            if !notes.is_empty() && !rule.annotations().contains_key("summary") {
                let words: Vec<String> = notes
                    .iter()
                    .map(|(key, value)| match *key {
                        "drifted_features" => format!("drifted: {value}"),
                        _ => format!("model version {value}"),
                    })
                    .collect();
                if let Some(summary) = alert.annotations.get_mut("summary") {
                    summary.push_str(&format!("; {}", words.join("; ")));
                }
            }
            for (key, value) in notes {
                alert.annotations.entry(key.to_string()).or_insert(value);
            }
            alert.generator_url = format!(
                "{}/api/v1/deployments/{deployment}/alerts",
                state.alerting().config.external_url.trim_end_matches('/')
            );
            record_transition(state, deployment, &alert).await?;
            announced.push((alert, stored.webhooks.clone()));
        }
        evaluations.push(RuleEvaluation {
            rule: record.name,
            metric: rule.metric().to_string(),
            value,
            state: rule_state,
            transition,
        });
    }
    for (alert, webhooks) in &announced {
        notify(state, deployment, alert, webhooks).await;
    }
    // Retraining on alerts the trigger listens for.
    if let Some(config) = state.store().retrain_trigger(deployment).await? {
        if let Ok(config) = serde_json::from_str::<TriggerConfig>(&config) {
            for (alert, _) in &announced {
                let listens = config
                    .on_alerts
                    .iter()
                    .any(|name| name == "*" || *name == alert.rule);
                if listens && alert.status == sextant_monitor::alerts::AlertStatus::Firing {
                    let detail = serde_json::json!({
                        "alert": alert.rule,
                        "value": alert.value,
                        "started_us": alert.started_us,
                        "labels": alert.labels,
                    });
                    start_trigger(state, deployment, &config, "alert", detail).await?;
                }
            }
        }
    }
    Ok(evaluations)
}

/// Stores a firing or resolution and writes it to the audit log.
async fn record_transition(
    state: &AppState,
    deployment: &str,
    alert: &AlertInstance,
) -> ApiResult<()> {
    let event = AlertEventRecord {
        deployment: deployment.to_string(),
        rule: alert.rule.clone(),
        status: alert.status.as_str().to_string(),
        severity: alert.severity.as_str().to_string(),
        value: serde_json::to_string(&alert.value).unwrap_or_else(|_| "null".into()),
        started_at: alert.started_us,
        ended_at: alert.ended_us,
        time: alert.ended_us.unwrap_or(alert.started_us),
    };
    state.store().record_alert_event(&event).await?;
    let entry = sextant_core::NewAuditEntry {
        ts: sextant_governance::now_ms(),
        actor: "sextant-alerting".into(),
        source: "-".into(),
        method: "-".into(),
        action: format!("alert.{}", alert.status.as_str()),
        resource_type: "deployment".into(),
        resource_id: deployment.to_string(),
        status: 200,
        outcome: "ok".into(),
        detail: format!(
            "{} ({}): {} = {}",
            alert.rule,
            alert.severity.as_str(),
            alert
                .annotations
                .get("summary")
                .cloned()
                .unwrap_or_default(),
            alert.value
        ),
        ..sextant_core::NewAuditEntry::default()
    };
    state.store().append_audit(entry).await?;
    Ok(())
}

/// Posts the alert to the server's and the rule's webhooks; failures are
/// logged (the alert is stored either way).
async fn notify(state: &AppState, deployment: &str, alert: &AlertInstance, webhooks: &[String]) {
    let alerting = state.alerting();
    let targets = alerting.config.webhooks.iter().chain(webhooks);
    let group = BTreeMap::from([
        ("alertname".to_string(), alert.rule.clone()),
        ("deployment".to_string(), deployment.to_string()),
    ]);
    let payload = alertmanager_payload(
        "sextant",
        &group,
        std::slice::from_ref(alert),
        &alerting.config.external_url,
    );
    for url in targets {
        match alerting.client.post_json(url, &payload).await {
            Ok(status) if status.is_success() => {}
            Ok(status) => tracing::warn!(url, %status, "alert webhook refused"),
            Err(cause) => tracing::warn!(url, cause, "alert webhook unreachable"),
        }
    }
}

/// Starts a run of `deployment`'s trigger and records it; the run goes on
/// in the background and its end is recorded too.
pub async fn start_trigger(
    state: &AppState,
    deployment: &str,
    config: &TriggerConfig,
    reason: &str,
    detail: serde_json::Value,
) -> ApiResult<TriggerRunRecord> {
    let record = state.store().get_deployment(deployment).await?;
    let spec: serde_json::Value = serde_json::from_str(&record.spec).unwrap_or_default();
    let now = now_micros();
    let id = crate::serving::prediction_id();
    let window_end = now;
    let window_start = now - 3600 * 1_000_000;
    let body = serde_json::json!({
        "run_id": id,
        "deployment": deployment,
        "models": spec["arms"].as_array().map(|arms| arms.iter().map(|a| a["model"].clone()).collect::<Vec<_>>()),
        "reason": reason,
        "detail": detail,
        "window": {"start_us": window_start, "end_us": window_end},
        "prediction_log": format!("predictions/{deployment}/"),
    });
    let mut run = TriggerRunRecord {
        id: id.clone(),
        deployment: deployment.to_string(),
        reason: reason.to_string(),
        detail: body.to_string(),
        status: "running".into(),
        output: String::new(),
        started_at: now,
        finished_at: None,
    };
    state.store().put_trigger_run(&run).await?;
    let entry = sextant_core::NewAuditEntry {
        ts: sextant_governance::now_ms(),
        actor: "sextant-alerting".into(),
        source: "-".into(),
        method: "-".into(),
        action: "retrain.start".into(),
        resource_type: "deployment".into(),
        resource_id: deployment.to_string(),
        status: 200,
        outcome: "ok".into(),
        detail: format!("run {id} ({reason})"),
        ..sextant_core::NewAuditEntry::default()
    };
    state.store().append_audit(entry).await?;
    let (state_for_run, config, started) = (state.clone(), config.clone(), run.clone());
    let task = async move {
        let mut run = started;
        let (status, output) = execute(&state_for_run, &config, &body).await;
        run.status = status.into();
        run.output = output;
        run.finished_at = Some(now_micros());
        if let Err(err) = state_for_run.store().put_trigger_run(&run).await {
            tracing::error!(cause = %err, "cannot record the end of a retraining run");
        }
    };
    match state.serving() {
        Some(serving) => serving.spawn(task),
        None => {
            tokio::spawn(task);
        }
    }
    run.output = String::new();
    Ok(run)
}

/// Most output kept from a command.
const MAX_OUTPUT: usize = 64 * 1024;

async fn execute(
    state: &AppState,
    config: &TriggerConfig,
    body: &serde_json::Value,
) -> (&'static str, String) {
    if let Some(url) = &config.webhook {
        // The run's output is shown to whoever may read the deployment:
        // it says whether delivery worked, never why not (which would map
        // the network behind the server); the log keeps the reason.
        return match state.alerting().client.post_json(url, body).await {
            Ok(status) if status.is_success() => {
                ("succeeded", format!("webhook answered {status}"))
            }
            Ok(status) => {
                tracing::warn!(url, %status, "retraining webhook refused");
                (
                    "failed",
                    "the webhook did not accept the run; the server log has the details".into(),
                )
            }
            Err(cause) => {
                tracing::warn!(url, cause, "retraining webhook unreachable");
                (
                    "failed",
                    "the webhook could not be reached; the server log has the details".into(),
                )
            }
        };
    }
    let Some(command) = &config.command else {
        return ("failed", "nothing to run".into());
    };
    if !state.alerting().config.allow_commands {
        return ("failed", "this server does not run trigger commands".into());
    }
    let mut process = tokio::process::Command::new(&command[0]);
    process
        .args(&command[1..])
        .env("SEXTANT_TRIGGER", body.to_string())
        .env(
            "SEXTANT_RUN_ID",
            body["run_id"].as_str().unwrap_or_default(),
        )
        .env(
            "SEXTANT_DEPLOYMENT",
            body["deployment"].as_str().unwrap_or_default(),
        )
        .env(
            "SEXTANT_REASON",
            body["reason"].as_str().unwrap_or_default(),
        )
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    let timeout = Duration::from_secs(config.timeout_seconds.unwrap_or(3600));
    match tokio::time::timeout(timeout, process.output()).await {
        Err(_) => ("failed", format!("killed after {} s", timeout.as_secs())),
        Ok(Err(err)) => ("failed", format!("cannot start {}: {err}", command[0])),
        Ok(Ok(output)) => {
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            if text.len() > MAX_OUTPUT {
                let mut cut = text.len() - MAX_OUTPUT;
                while !text.is_char_boundary(cut) {
                    cut += 1;
                }
                text = text[cut..].to_string();
            }
            let status = if output.status.success() {
                "succeeded"
            } else {
                "failed"
            };
            (status, text)
        }
    }
}

/// A rule from a request body: the rule's fields plus optional `webhooks`.
pub fn parse_rule(
    name: &str,
    body: serde_json::Value,
    outbound: &OutboundPolicy,
) -> ApiResult<(StoredRule, AlertRule)> {
    let serde_json::Value::Object(mut object) = body else {
        return Err(ApiError::invalid("an alert rule is a JSON object"));
    };
    let webhooks: Vec<String> = match object.remove("webhooks") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(value) => serde_json::from_value(value)
            .map_err(|_| ApiError::invalid("webhooks is a list of URLs"))?,
    };
    for url in &webhooks {
        outbound.check_url(url).map_err(ApiError::invalid)?;
    }
    match object.get("name") {
        None => {
            object.insert("name".into(), name.into());
        }
        Some(serde_json::Value::String(given)) if given == name => {}
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "the body's name differs from '{name}' in the path"
            )))
        }
    }
    let spec: AlertRuleSpec = serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| ApiError::invalid(format!("not an alert rule: {e}")))?;
    let rule = AlertRule::try_from(spec.clone()).map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok((StoredRule { spec, webhooks }, rule))
}
