//! `/api/v1/deployments/{name}/alerts…` and `…/retrain…`: alert rules over
//! monitored metrics, their history, and retraining triggers with the runs
//! they started.

use axum::extract::{Path, State};
use axum::Json;
use sextant_monitor::alerts::RuleState;
use sextant_store::AlertRuleRecord;

use crate::alerting::{self, StoredRule, TriggerConfig};
use crate::error::{ApiError, ApiResult};
use crate::serving::now_micros;
use crate::AppState;

/// Firings and resolutions listed with the rules.
const HISTORY: i64 = 100;

/// A deployment's alert rules with their current state, and recent history.
#[utoipa::path(get, path = "/api/v1/deployments/{name}/alerts", tag = "monitoring",
    params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    state.store().get_deployment(&name).await?;
    let rules: Vec<serde_json::Value> = state
        .store()
        .alert_rules(Some(&name))
        .await?
        .iter()
        .map(rule_json)
        .collect();
    let events = events_json(state.store().alert_events(Some(&name), HISTORY).await?);
    Ok(Json(
        serde_json::json!({"deployment": name, "rules": rules, "events": events}),
    ))
}

fn rule_json(record: &AlertRuleRecord) -> serde_json::Value {
    let stored: Option<StoredRule> = serde_json::from_str(&record.rule).ok();
    let state: RuleState = serde_json::from_str(&record.state).unwrap_or_default();
    serde_json::json!({
        "name": record.name,
        "rule": stored.as_ref().map(|s| &s.spec),
        "webhooks": stored.as_ref().map(|s| &s.webhooks),
        "state": state,
        "created_by": record.created_by,
        "creation_time": record.creation_time,
        "last_updated_time": record.last_updated_time,
    })
}

fn events_json(events: Vec<sextant_store::AlertEventRecord>) -> Vec<serde_json::Value> {
    events
        .into_iter()
        .map(|e| {
            serde_json::json!({
                "deployment": e.deployment,
                "rule": e.rule,
                "status": e.status,
                "severity": e.severity,
                "value": serde_json::from_str::<serde_json::Value>(&e.value).unwrap_or_default(),
                "started_us": e.started_at,
                "ended_us": e.ended_at,
                "time_us": e.time,
            })
        })
        .collect()
}

/// Creates or replaces an alert rule (its state starts afresh).
///
/// The body is the rule: `{"metric": "feature_drift_share", "condition":
/// {"threshold": {"op": ">", "value": 0.3}}, "for_windows": 3,
/// "hysteresis": 0.2, "severity": "critical", "labels": {…},
/// "annotations": {…}, "webhooks": ["https://…"]}`, or a baseline
/// condition `{"baseline": {"k_sigma": 3, "direction": "above"}}`.
#[utoipa::path(put, path = "/api/v1/deployments/{name}/alerts/{rule}", tag = "monitoring",
    params(("name" = String, Path), ("rule" = String, Path)),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object), (status = 400, body = sextant_api::v1::Error), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn put(
    State(state): State<AppState>,
    Path((name, rule_name)): Path<(String, String)>,
    axum::Extension(principal): axum::Extension<sextant_governance::Principal>,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Json<serde_json::Value>> {
    state.store().get_deployment(&name).await?;
    let (stored, _) = alerting::parse_rule(&rule_name, body, state.alerting().outbound())?;
    let now = now_micros();
    let record = AlertRuleRecord {
        deployment: name.clone(),
        name: rule_name,
        rule: serde_json::to_string(&stored).expect("rules serialise"),
        state: serde_json::to_string(&RuleState::default()).expect("states serialise"),
        created_by: principal.name().to_string(),
        creation_time: now,
        last_updated_time: now,
    };
    state.store().put_alert_rule(&record).await?;
    Ok(Json(rule_json(&record)))
}

/// Deletes an alert rule (its history stays).
#[utoipa::path(delete, path = "/api/v1/deployments/{name}/alerts/{rule}", tag = "monitoring",
    params(("name" = String, Path), ("rule" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path((name, rule_name)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    state.store().get_deployment(&name).await?;
    state.store().delete_alert_rule(&name, &rule_name).await?;
    Ok(Json(serde_json::json!({})))
}

/// Evaluates the deployment's rules now (the server also does it on its
/// own every `--alert-check-seconds`), returning every metric's value and
/// each rule's state and transition.
#[utoipa::path(post, path = "/api/v1/deployments/{name}/alerts/evaluate", tag = "monitoring",
    params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn evaluate(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    state.store().get_deployment(&name).await?;
    let evaluations = alerting::evaluate_deployment(&state, &name).await?;
    Ok(Json(
        serde_json::json!({"deployment": name, "evaluations": evaluations}),
    ))
}

/// The current value of every metric alert rules can watch.
#[utoipa::path(get, path = "/api/v1/deployments/{name}/alerts/metrics", tag = "monitoring",
    params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    state.store().get_deployment(&name).await?;
    let snapshot = alerting::metric_snapshot_with_context(&state, &name, None).await?;
    Ok(Json(
        serde_json::json!({"deployment": name, "metrics": snapshot.metrics, "about": snapshot.context}),
    ))
}

/// Alerts of every deployment: what fires now, and recent history.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "monitoring",
    responses((status = 200, body = Object)))]
pub(crate) async fn all(State(state): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let rules = state.store().alert_rules(None).await?;
    let firing: Vec<serde_json::Value> = rules
        .iter()
        .filter(|r| {
            matches!(
                serde_json::from_str::<RuleState>(&r.state).map(|s| s.alert()),
                Ok(sextant_monitor::alerts::AlertState::Firing { .. })
            )
        })
        .map(|r| serde_json::json!({"deployment": r.deployment, "rule": rule_json(r)}))
        .collect();
    let events = events_json(state.store().alert_events(None, HISTORY).await?);
    Ok(Json(
        serde_json::json!({"firing": firing, "events": events}),
    ))
}

/// Sets the deployment's retraining trigger: `{"webhook": "https://…"}` or
/// `{"command": ["python", "train.py"]}` (with `--allow-trigger-commands`),
/// `"on_alerts": ["rule", …]` (or `["*"]`), `"schedule_seconds": 86400`.
#[utoipa::path(put, path = "/api/v1/deployments/{name}/retrain-trigger", tag = "monitoring",
    params(("name" = String, Path)),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object), (status = 400, body = sextant_api::v1::Error), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn put_trigger(
    State(state): State<AppState>,
    Path(name): Path<String>,
    axum::Extension(principal): axum::Extension<sextant_governance::Principal>,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Json<serde_json::Value>> {
    state.store().get_deployment(&name).await?;
    let config: TriggerConfig = serde_json::from_value(body)
        .map_err(|e| ApiError::invalid(format!("not a retraining trigger: {e}")))?;
    config
        .validate(
            state.alerting().config.allow_commands,
            state.alerting().outbound(),
        )
        .map_err(ApiError::invalid)?;
    let encoded = serde_json::to_string(&config).expect("triggers serialise");
    let actor = principal.name().to_string();
    state
        .store()
        .set_retrain_trigger(&name, Some(&encoded), &actor, now_micros())
        .await?;
    Ok(Json(
        serde_json::json!({"deployment": name, "trigger": config}),
    ))
}

/// The deployment's retraining trigger and its recent runs.
#[utoipa::path(get, path = "/api/v1/deployments/{name}/retrain-trigger", tag = "monitoring",
    params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn get_trigger(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    state.store().get_deployment(&name).await?;
    let trigger: Option<serde_json::Value> = state
        .store()
        .retrain_trigger(&name)
        .await?
        .and_then(|t| serde_json::from_str(&t).ok());
    let runs = runs_json(state.store().trigger_runs(&name, HISTORY).await?);
    Ok(Json(
        serde_json::json!({"deployment": name, "trigger": trigger, "runs": runs}),
    ))
}

/// Removes the deployment's retraining trigger (its runs stay listed).
#[utoipa::path(delete, path = "/api/v1/deployments/{name}/retrain-trigger", tag = "monitoring",
    params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn delete_trigger(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    state.store().get_deployment(&name).await?;
    state
        .store()
        .set_retrain_trigger(&name, None, "-", now_micros())
        .await?;
    Ok(Json(serde_json::json!({})))
}

/// Starts a retraining run now (`{"reason": "…"}` optional).
#[utoipa::path(post, path = "/api/v1/deployments/{name}/retrain", tag = "monitoring",
    params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 400, body = sextant_api::v1::Error), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn retrain(
    State(state): State<AppState>,
    Path(name): Path<String>,
    axum::Extension(principal): axum::Extension<sextant_governance::Principal>,
    body: axum::body::Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    state.store().get_deployment(&name).await?;
    let body: serde_json::Value = if body.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?
    };
    let Some(config) = state.store().retrain_trigger(&name).await? else {
        return Err(ApiError::invalid(format!(
            "deployment '{name}' has no retraining trigger: PUT /api/v1/deployments/{name}/retrain-trigger first"
        )));
    };
    let config: TriggerConfig = serde_json::from_str(&config)
        .map_err(|e| ApiError::Internal(format!("stored trigger unreadable: {e}")))?;
    let actor = principal.name().to_string();
    let detail = serde_json::json!({"requested_by": actor, "note": body.get("reason")});
    let run = alerting::start_trigger(&state, &name, &config, "manual", detail).await?;
    Ok(Json(run_json(run)))
}

fn runs_json(runs: Vec<sextant_store::TriggerRunRecord>) -> Vec<serde_json::Value> {
    runs.into_iter().map(run_json).collect()
}

fn run_json(run: sextant_store::TriggerRunRecord) -> serde_json::Value {
    serde_json::json!({
        "id": run.id,
        "deployment": run.deployment,
        "reason": run.reason,
        "detail": serde_json::from_str::<serde_json::Value>(&run.detail).unwrap_or_default(),
        "status": run.status,
        "output": run.output,
        "started_us": run.started_at,
        "finished_us": run.finished_at,
    })
}
