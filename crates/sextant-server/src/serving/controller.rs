//! Background loops of serving: loading stored deployments at start,
//! following a server from a replica, and driving canaries.

use std::collections::BTreeMap;
use std::time::Duration;

use sextant_api::deployments as dto;
use sextant_core::{ArmHealth, CanaryDecision, DeploymentSpec, Policy};
use sextant_store::{DeploymentRecord, Store};
use tokio::sync::watch;

use super::follow;
use super::source::Source;
use super::stats::quantile_ms;
use super::Serving;

/// The actor named in revisions the controller makes.
pub const CONTROLLER: &str = "sextant-controller";

/// Loads every stored deployment (embedded server start-up). Failures are
/// logged and shown in the deployment's status; the server serves the
/// others.
pub async fn load_stored(store: &Store, serving: &Serving) {
    let records = match store.list_deployments(&sextant_core::Readable::All).await {
        Ok(records) => records,
        Err(err) => {
            tracing::error!(error = %err, "cannot list deployments");
            return;
        }
    };
    for record in records {
        match decode_spec(&record.spec) {
            Ok(spec) => {
                let _ = serving.apply(&record.name, record.revision, &spec).await;
            }
            Err(err) => {
                tracing::error!(deployment = record.name, error = %err, "stored spec is unreadable")
            }
        }
    }
}

/// How often a server looks for deployment changes made through another
/// server on the same database.
pub const FOLLOW_STORED_PERIOD: Duration = Duration::from_secs(2);

/// Every server on a shared database serves what the store holds: a
/// change made through another server (a new revision, a new or deleted
/// deployment) is served here within `period`. A revision that failed to
/// load here is not tried again until a newer one is stored. Stops when
/// `stop` turns true.
pub async fn follow_stored(
    store: Store,
    serving: Serving,
    period: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut shared = std::collections::HashMap::new();
    let mut last_pruned = std::time::Instant::now();
    while next_round(period, &mut stop).await {
        let records = match store.list_deployments(&sextant_core::Readable::All).await {
            Ok(records) => records,
            Err(err) => {
                tracing::warn!(error = %err, "cannot list deployments to follow");
                continue;
            }
        };
        for record in &records {
            let seen = serving
                .deployment(&record.name)
                .map(|slot| slot.latest().0.max(slot.live().revision));
            if seen.is_some_and(|revision| revision >= record.revision) {
                continue;
            }
            if seen.is_none() {
                // Deleted here since the listing? Then it stays deleted.
                if store.get_deployment(&record.name).await.is_err() {
                    continue;
                }
            }
            match decode_spec(&record.spec) {
                Ok(spec) => {
                    let _ = serving.apply(&record.name, record.revision, &spec).await;
                }
                Err(err) => {
                    tracing::error!(deployment = record.name, error = %err, "stored spec is unreadable")
                }
            }
        }
        let stored: std::collections::HashSet<&str> =
            records.iter().map(|r| r.name.as_str()).collect();
        for name in serving.deployment_names() {
            if !stored.contains(name.as_str()) && store.get_deployment(&name).await.is_err() {
                tracing::info!(deployment = name, "deleted through another server");
                serving.remove(&name);
            }
        }
        share_counters(&store, &serving, &mut shared).await;
        if serving.leads_background_work() && last_pruned.elapsed() > REPORT_RETENTION {
            let before = sextant_governance::now_ms() - REPORT_RETENTION.as_millis() as i64;
            if let Err(err) = store.prune_arm_reports(before).await {
                tracing::debug!(error = %err, "cannot prune old arm reports");
            }
            last_pruned = std::time::Instant::now();
        }
    }
}

/// How long a reporter's counters count after its last report: servers
/// store theirs every [`FOLLOW_STORED_PERIOD`] and replicas report every few
/// seconds, so one silent this long has stopped.
const REPORT_FRESHNESS_MS: i64 = 60_000;

/// Stored reports older than this are deleted (by the leader).
const REPORT_RETENTION: Duration = Duration::from_secs(600);

/// Stores this server's own counters of each deployment's live revision
/// (`deployment_arm_reports`), when they moved since the last time, so the
/// leader judges canaries on every server's traffic.
async fn share_counters(
    store: &Store,
    serving: &Serving,
    shared: &mut std::collections::HashMap<String, (i64, u64)>,
) {
    for name in serving.deployment_names() {
        let Some(slot) = serving.deployment(&name) else {
            continue;
        };
        let live = slot.live();
        let arms: BTreeMap<String, dto::ArmCounters> =
            live.revision_counters().into_iter().collect();
        let requests: u64 = arms.values().map(|c| c.requests).sum();
        if requests == 0 || shared.get(&name) == Some(&(live.revision, requests)) {
            continue;
        }
        let Ok(json) = serde_json::to_string(&arms) else {
            continue;
        };
        let reporter = &serving.config().replica_name;
        match store
            .put_arm_report(&name, reporter, live.revision, &json)
            .await
        {
            Ok(()) => {
                shared.insert(name, (live.revision, requests));
            }
            Err(err) => tracing::debug!(deployment = name, error = %err, "cannot share counters"),
        }
    }
}

/// The counters of `deployment`'s `revision` over every process that
/// serves it: this server's own, live, plus the last report stored by each
/// other server and replica within [`REPORT_FRESHNESS_MS`]; and the names
/// of those others. What the canary controller, alerting and the status
/// endpoint read, so that every server sees the same figures.
pub(crate) async fn cluster_counters(
    store: &Store,
    serving: &Serving,
    deployment: &str,
    revision: i64,
) -> (
    std::collections::HashMap<String, dto::ArmCounters>,
    Vec<String>,
) {
    let mut sums = serving.local_revision_counters(deployment, revision);
    let since = sextant_governance::now_ms() - REPORT_FRESHNESS_MS;
    let reports = match store.arm_reports(deployment, since).await {
        Ok(reports) => reports,
        Err(err) => {
            tracing::warn!(deployment, error = %err, "cannot read other processes' counters");
            Vec::new()
        }
    };
    let own = &serving.config().replica_name;
    let mut reporters = Vec::new();
    for report in reports {
        if report.revision != revision || &report.reporter == own {
            continue;
        }
        reporters.push(report.reporter.clone());
        let Ok(arms) = serde_json::from_str::<BTreeMap<String, dto::ArmCounters>>(&report.arms)
        else {
            continue;
        };
        for (arm, counters) in &arms {
            super::stats::add_counters(sums.entry(arm.clone()).or_default(), counters);
        }
    }
    (sums, reporters)
}

/// Waits `period`; false when `stop` turned true first.
async fn next_round(period: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(period) => true,
        _ = stop.changed() => false,
    }
}

pub fn decode_spec(json: &str) -> Result<DeploymentSpec, String> {
    let document: dto::DeploymentSpec = serde_json::from_str(json).map_err(|e| e.to_string())?;
    DeploymentSpec::try_from(&document)
}

pub fn encode_spec(spec: &DeploymentSpec) -> String {
    serde_json::to_string(&dto::DeploymentSpec::from(spec)).expect("specs serialize")
}

/// A replica's loop: every `poll`, fetch each deployment's latest revision
/// from the source and serve it once loaded; report this replica's
/// counters to the server. Stops when `stop` turns true.
pub async fn follow(
    serving: Serving,
    names: Vec<String>,
    poll: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        for name in &names {
            match serving.source().deployment(name).await {
                Ok((revision, spec)) => {
                    let _ = serving.apply(name, revision, &spec).await;
                }
                Err(err) => {
                    tracing::warn!(deployment = name, error = %err, "cannot fetch deployment")
                }
            }
            report(&serving, name).await;
            fetch_profile(&serving, name).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Takes the server's reference profile for `name` when it has one this
/// replica does not, so every replica judges drift and outliers against
/// the same reference as the server (instead of a window of its own).
async fn fetch_profile(serving: &Serving, name: &str) {
    let Source::Remote(server) = serving.source() else {
        return;
    };
    let monitor = serving.monitor_or_create(name);
    let mut request = server.get(&format!("/api/v1/deployments/{name}/monitoring/profile"));
    if let Some(current) = monitor.profile() {
        request = request.query(&[("known", current.source.created_us)]);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(err) => {
            tracing::debug!(deployment = name, error = %err, "cannot fetch the reference profile");
            return;
        }
    };
    // 204: ours is current; 404: the server has none yet.
    if response.status() != reqwest::StatusCode::OK {
        return;
    }
    match response.json::<super::monitoring::StoredProfile>().await {
        Ok(stored) => {
            tracing::info!(
                deployment = name,
                source = stored.source.kind,
                "reference profile taken from the server"
            );
            monitor.set_profile(Some(std::sync::Arc::new(stored)));
        }
        Err(err) => {
            tracing::warn!(deployment = name, error = %err, "the server's reference profile is unreadable")
        }
    }
}

/// Sends this replica's counters of `name`'s current revision to the
/// server it follows (which uses them to judge canaries).
async fn report(serving: &Serving, name: &str) {
    let Source::Remote(server) = serving.source() else {
        return;
    };
    let Some(slot) = serving.deployment(name) else {
        return;
    };
    let live = slot.live();
    let report = dto::ReplicaReport {
        replica: serving.config().replica_name.clone(),
        revision: live.revision,
        arms: live
            .revision_counters()
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
    };
    let sent = server
        .post(&format!("/api/v1/deployments/{name}/report"))
        .json(&report)
        .send()
        .await;
    if let Err(err) = sent {
        tracing::debug!(deployment = name, error = %err, "cannot report counters");
    }
}

/// The embedded server's canary loop: every `period`, judges each running
/// canary on the counters of its current step (this server's and its
/// replicas') and steps, promotes or rolls it back. Changes are stored as
/// revisions by [`CONTROLLER`], so replicas pick them up like any other.
pub async fn drive_canaries(
    store: Store,
    serving: Serving,
    period: Duration,
    mut stop: watch::Receiver<bool>,
) {
    while next_round(period, &mut stop).await {
        if !serving.leads_background_work() {
            continue;
        }
        let records = match store.list_deployments(&sextant_core::Readable::All).await {
            Ok(records) => records,
            Err(err) => {
                tracing::warn!(error = %err, "canary controller cannot list deployments");
                continue;
            }
        };
        for record in records {
            let Ok(spec) = decode_spec(&record.spec) else {
                continue;
            };
            if spec.policy == Policy::Single {
                follow_alias(&store, &serving, &record, &spec).await;
                continue;
            }
            let Policy::Canary(policy) = &spec.policy else {
                continue;
            };
            let (counters, _) =
                cluster_counters(&store, &serving, &record.name, record.revision).await;
            let canary = counters.get("canary").cloned().unwrap_or_default();
            let health = ArmHealth {
                requests: canary.requests - canary.rejected,
                errors: canary.errors,
                p99_ms: quantile_ms(&canary, 0.99),
            };
            let now = sextant_governance::now_ms();
            let (next, action, reason) = match policy.decide(&spec, health, now) {
                CanaryDecision::Wait => continue,
                CanaryDecision::Step(next) => {
                    let weight = next.arm("canary").map_or(0, |a| a.weight);
                    (
                        next,
                        "canary_step",
                        format!("canary healthy: {weight}% of traffic"),
                    )
                }
                CanaryDecision::Promote(next) => (
                    next,
                    "promote",
                    "canary healthy through every step".to_string(),
                ),
                CanaryDecision::Rollback(next, reason) => (next, "auto_rollback", reason),
            };
            // A promotion moves the alias the deployment follows; a
            // protected one only through an approved request, so the canary
            // waits at its last step until someone moves it.
            let alias_move = if action == "promote" {
                follow::needed(&store, &next).await
            } else {
                None
            };
            if let Some(moving) = &alias_move {
                if follow::protected(&store, moving).await {
                    tracing::warn!(deployment = record.name, alias = moving.alias, version = moving.version,
                        "canary healthy, but promoting it moves a protected alias: waiting for an approved transition request");
                    continue;
                }
            }
            let changed = store_and_serve(&store, &serving, &record, &next, action, &reason).await;
            if let (true, Some(moving)) = (changed, &alias_move) {
                if let Err(err) = follow::apply(&store, moving, CONTROLLER, &record.name).await {
                    tracing::warn!(deployment = record.name, cause = %err, "the alias did not move with the promotion");
                }
            }
        }
    }
}

/// A deployment following an alias that moved: starts its `on_alias_move`
/// rollout. A version whose alias-started canary rolled itself back is not
/// tried again until the alias moves elsewhere.
async fn follow_alias(
    store: &Store,
    serving: &Serving,
    record: &DeploymentRecord,
    spec: &DeploymentSpec,
) {
    let Some(alias) = spec.followed_alias() else {
        return;
    };
    let model = &spec.primary().model;
    let Ok(target) = store.get_model_version_by_alias(&model.name, alias).await else {
        return;
    };
    let now = sextant_governance::now_ms();
    let Some(next) = spec.follow(target.version, now) else {
        return;
    };
    if let Ok(history) = store.deployment_history(&record.name, 10).await {
        let failed_before = history.windows(2).any(|pair| {
            pair[0].action == "auto_rollback"
                && decode_spec(&pair[1].spec).is_ok_and(|before| {
                    before
                        .arm("canary")
                        .is_some_and(|arm| arm.model.version == target.version)
                })
        });
        if failed_before {
            return;
        }
    }
    let action = if next.policy == Policy::Single {
        "follow_alias"
    } else {
        "canary"
    };
    let reason = format!("@{alias} moved to version {}", target.version);
    store_and_serve(store, serving, record, &next, action, &reason).await;
}

/// The controller's change of a deployment: the snapshot first (a revision
/// the server cannot serve is not stored), then the revision, its audit
/// entry, and the switch. Whether the change was made (a change based on a
/// revision someone else moved past loses the race and is retried next
/// round).
async fn store_and_serve(
    store: &Store,
    serving: &Serving,
    record: &DeploymentRecord,
    next: &DeploymentSpec,
    action: &str,
    reason: &str,
) -> bool {
    if let Err(err) = serving
        .prepare(&record.name, record.revision + 1, next)
        .await
    {
        tracing::warn!(deployment = record.name, action, error = %err, "the controller cannot prepare the next revision");
        return false;
    }
    let encoded = encode_spec(next);
    match store
        .update_deployment(
            &record.name,
            record.revision,
            &encoded,
            None,
            action,
            reason,
            CONTROLLER,
        )
        .await
    {
        Ok(updated) => {
            tracing::info!(
                deployment = record.name,
                action,
                reason,
                revision = updated.revision,
                "deployment controller"
            );
            let entry = sextant_core::NewAuditEntry {
                ts: sextant_governance::now_ms(),
                actor: CONTROLLER.into(),
                source: "-".into(),
                method: "-".into(),
                action: action.into(),
                resource_type: "deployment".into(),
                resource_id: record.name.clone(),
                status: 200,
                outcome: "ok".into(),
                detail: reason.to_owned(),
                before: Some(record.spec.clone()),
                after: Some(encoded),
                ..sextant_core::NewAuditEntry::default()
            };
            if let Err(err) = store.append_audit(entry).await {
                tracing::error!(cause = %err, "audit entry lost");
            }
            let _ = serving.apply(&record.name, updated.revision, next).await;
            true
        }
        Err(err) => {
            tracing::info!(deployment = record.name, action, error = %err, "the controller's change lost a race; retrying next round");
            false
        }
    }
}
