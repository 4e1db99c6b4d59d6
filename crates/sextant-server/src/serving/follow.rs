//! One source of truth for what is deployed: a deployment created from
//! `NAME@ALIAS` follows the alias. When the alias moves (through MLflow's
//! API, an approved transition request, the UI), the controller starts the
//! deployment's `on_alias_move` rollout ([`DeploymentSpec::follow`]); when
//! the deployment's primary changes (a promotion, a blue-green switch, an
//! update, a rollback), the alias moves with it, under the same rules as a
//! direct move: a protected alias moves only through an approved request,
//! so the change is refused until then.

use sextant_core::{DeploymentSpec, NewAuditEntry, TransitionTarget};
use sextant_store::Store;

/// The followed alias of a spec, and where it has to go for the registry to
/// say what the spec serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasMove {
    pub model: String,
    pub alias: String,
    pub version: i64,
    /// The version the alias names now (`None`: the alias was deleted).
    pub from: Option<i64>,
}

/// The alias move `spec` needs, if it follows an alias that names another
/// version than its primary.
pub async fn needed(store: &Store, spec: &DeploymentSpec) -> Option<AliasMove> {
    let alias = spec.followed_alias()?;
    let primary = &spec.primary().model;
    let from = store
        .get_model_version_by_alias(&primary.name, alias)
        .await
        .ok()
        .map(|v| v.version);
    (from != Some(primary.version)).then(|| AliasMove {
        model: primary.name.clone(),
        alias: alias.to_owned(),
        version: primary.version,
        from,
    })
}

/// Whether the model's policy protects the alias (moving it needs an
/// approved transition request).
pub async fn protected(store: &Store, moving: &AliasMove) -> bool {
    store
        .model_policy(&moving.model)
        .await
        .is_ok_and(|policy| policy.protects(&TransitionTarget::Alias(moving.alias.clone())))
}

/// Moves the alias and records who moved it and why.
pub async fn apply(
    store: &Store,
    moving: &AliasMove,
    actor: &str,
    deployment: &str,
) -> Result<(), sextant_store::StoreError> {
    store
        .set_registered_model_alias(&moving.model, &moving.alias, &moving.version.to_string())
        .await?;
    let entry = NewAuditEntry {
        ts: sextant_governance::now_ms(),
        actor: actor.into(),
        source: "-".into(),
        method: "-".into(),
        action: "alias.follow_deployment".into(),
        resource_type: "registered_model".into(),
        resource_id: moving.model.clone(),
        status: 200,
        outcome: "ok".into(),
        detail: format!(
            "@{} moved to version {} with deployment '{deployment}'",
            moving.alias, moving.version
        ),
        before: Some(
            serde_json::json!({"alias": moving.alias, "version": moving.from.map(|v| v.to_string())})
                .to_string(),
        ),
        after: Some(
            serde_json::json!({"alias": moving.alias, "version": moving.version.to_string()})
                .to_string(),
        ),
        ..NewAuditEntry::default()
    };
    if let Err(err) = store.append_audit(entry).await {
        tracing::error!(cause = %err, "audit entry lost");
    }
    Ok(())
}
