//! Sextant's native API (`/api/v1`): users, groups, tokens, permissions,
//! model policies, transition requests and the audit log. These types are
//! also the OpenAPI schemas (`utoipa::ToSchema`), so the published document
//! is generated from what the server actually parses and sends.

// Field names say what they hold; fields that need more carry doc comments,
// which utoipa copies into the OpenAPI document.
#![allow(missing_docs)]
use serde::{Deserialize, Serialize};
use sextant_core as core;
use utoipa::{IntoParams, ToSchema};

/// The error body of every failed request.
#[derive(Debug, Serialize, ToSchema)]
pub struct Error {
    /// Machine-readable code, e.g. `PERMISSION_DENIED`.
    pub error_code: String,
    /// What went wrong, for a person.
    pub message: String,
}

/// A user account.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub username: String,
    pub is_admin: bool,
    pub disabled: bool,
    /// Whether a password is set (the bootstrap admin has none at first).
    pub has_password: bool,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub groups: Vec<String>,
}

impl From<core::User> for User {
    fn from(user: core::User) -> User {
        User {
            username: user.username,
            is_admin: user.is_admin,
            disabled: user.disabled,
            has_password: user.has_password,
            created_at: user.created_at,
            groups: user.groups,
        }
    }
}

/// What a grant is on (documents `resource_type` fields, which are
/// strings on the wire).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ResourceTypeName {
    Experiment,
    RegisteredModel,
    Deployment,
}

/// A permission's name (documents `permission` fields).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum PermissionName {
    Read,
    Edit,
    Manage,
    Approve,
    Invoke,
    Deploy,
}

/// A token scope's name (documents `scopes` items).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum TokenScopeName {
    Read,
    Write,
    Invoke,
}

/// A registry stage a transition may target (documents `stage` fields).
#[derive(ToSchema)]
#[allow(dead_code)]
pub enum StageName {
    None,
    Staging,
    Production,
    Archived,
}

/// A stage a model policy may protect (documents `protected_stages`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub enum ProtectedStageName {
    Staging,
    Production,
    Archived,
}

/// A transition request's state (documents `status` filters).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum RequestStatusName {
    Pending,
    Approved,
    Rejected,
    Cancelled,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(pattern = r"^[\p{L}\p{N}._@-]{1,256}$")]
    pub username: String,
    /// At least 8 characters; stored only as an argon2id hash.
    #[schema(min_length = 8)]
    pub password: String,
    #[serde(default)]
    pub is_admin: bool,
}

/// Changes to a user; absent fields stay as they are. Only admins change
/// `is_admin` and `disabled`; users may change their own password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[schema(min_length = 8)]
    pub password: Option<String>,
    pub is_admin: Option<bool>,
    pub disabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Users {
    pub users: Vec<User>,
}

/// Who the caller is, and with what.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    pub username: String,
    pub is_admin: bool,
    /// Whether the server requires authentication at all.
    pub auth_enabled: bool,
    /// The token used, if any.
    pub token_id: Option<String>,
    /// The token's scopes; absent for a password login (no restriction).
    pub scopes: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Group {
    pub name: String,
    pub created_at: i64,
    pub members: Vec<String>,
}

impl From<core::Group> for Group {
    fn from(group: core::Group) -> Group {
        Group {
            name: group.name,
            created_at: group.created_at,
            members: group.members,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    #[schema(pattern = r"^[\p{L}\p{N}._@-]{1,256}$")]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Groups {
    pub groups: Vec<Group>,
}

/// An API token as listed; the secret is never shown again.
#[derive(Debug, Serialize, ToSchema)]
pub struct Token {
    pub token_id: String,
    pub username: String,
    pub name: String,
    /// Any of `read`, `write`, `invoke`.
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl From<core::ApiToken> for Token {
    fn from(token: core::ApiToken) -> Token {
        Token {
            token_id: token.token_id,
            username: token.username,
            name: token.name,
            scopes: token
                .scopes
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
            created_at: token.created_at,
            expires_at: token.expires_at,
            last_used_at: token.last_used_at,
            revoked_at: token.revoked_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A label, e.g. `ci` or `notebook` (not `bootstrap`).
    #[schema(pattern = r"^(?!\s*bootstrap\s*$)\s*\S.{0,254}$", max_length = 256)]
    pub name: String,
    /// Any of `read`, `write`, `invoke`; default `read`, `write`.
    #[schema(value_type = Option<Vec<TokenScopeName>>)]
    pub scopes: Option<Vec<String>>,
    /// Lifetime in seconds; absent means the token does not expire.
    #[serde(default, deserialize_with = "crate::wire::opt_i64")]
    #[schema(minimum = 1, maximum = 3_153_600_000_i64)]
    pub expires_in_seconds: Option<i64>,
    /// Admins may create a token for another user.
    #[schema(pattern = r"^[\p{L}\p{N}._@-]{1,256}$")]
    pub username: Option<String>,
}

/// The only response that carries a token's secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// Send as `Authorization: Bearer <token>` (`MLFLOW_TRACKING_TOKEN`).
    pub token: String,
    #[serde(flatten)]
    pub info: Token,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Tokens {
    pub tokens: Vec<Token>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokensQuery {
    /// Admins: list this user's tokens (`*` for everyone's).
    #[param(pattern = r"^([\p{L}\p{N}._@-]{1,256}|\*)$")]
    pub username: Option<String>,
}

/// One permission of a user or group on a resource.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// `experiment`, `registered_model` or `deployment`.
    #[schema(value_type = ResourceTypeName)]
    pub resource_type: String,
    /// Experiment id, registered model name or deployment name.
    #[schema(min_length = 1)]
    pub resource_id: String,
    /// `user:NAME` or `group:NAME`.
    #[schema(pattern = r"^(user|group):[\p{L}\p{N}._@-]{1,256}$")]
    pub principal: String,
    /// `read`, `edit`, `manage`, `approve`, `invoke` or `deploy`.
    #[schema(value_type = PermissionName)]
    pub permission: String,
}

impl From<core::Grant> for Grant {
    fn from(grant: core::Grant) -> Grant {
        Grant {
            resource_type: grant.resource_kind.as_str().to_string(),
            resource_id: grant.resource_id,
            principal: format!("{}:{}", grant.principal_kind, grant.principal_name),
            permission: grant.permission.as_str().to_string(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Grants {
    pub grants: Vec<Grant>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GrantsQuery {
    /// With `resource_id`: the grants on one resource (needs manage on it).
    /// Otherwise the grants on every resource of this type (or with this
    /// id, or at all) that the caller manages; admins see every grant.
    #[param(inline, value_type = Option<ResourceTypeName>)]
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
}

/// Which promotion targets of a model need an approved request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelPolicy {
    /// Among `Staging`, `Production`, `Archived` (`None` is never protected).
    #[schema(value_type = Vec<ProtectedStageName>)]
    pub protected_stages: Vec<String>,
    pub protected_aliases: Vec<String>,
    /// Whether a requester may approve their own request.
    pub allow_self_approval: bool,
}

impl From<core::ModelPolicy> for ModelPolicy {
    fn from(policy: core::ModelPolicy) -> ModelPolicy {
        ModelPolicy {
            protected_stages: policy
                .protected_stages
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
            protected_aliases: policy.protected_aliases,
            allow_self_approval: policy.allow_self_approval,
        }
    }
}

/// Ask for a model version to move to a stage or alias.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTransitionRequest {
    #[schema(min_length = 1)]
    pub name: String,
    /// The version number, as a number or a string.
    #[schema(value_type = String, pattern = r"^[1-9][0-9]{0,17}$")]
    pub version: serde_json::Value,
    /// `Staging`, `Production`, `Archived` or `None`; give this or `alias`.
    #[schema(value_type = Option<StageName>)]
    pub stage: Option<String>,
    /// An alias to point at the version; give this or `stage`.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,256}$")]
    pub alias: Option<String>,
    /// With `stage`: archive the versions now in that stage.
    #[serde(default)]
    pub archive_existing_versions: bool,
    #[serde(default)]
    pub comment: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionRequest {
    pub request_id: i64,
    pub name: String,
    pub version: i64,
    /// `stage` or `alias`.
    pub target_kind: String,
    pub target: String,
    pub archive_existing_versions: bool,
    /// `pending`, `approved`, `rejected` or `cancelled`.
    pub status: String,
    pub requested_by: String,
    pub requested_at: i64,
    pub comment: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub decision_comment: Option<String>,
}

impl From<core::TransitionRequest> for TransitionRequest {
    fn from(r: core::TransitionRequest) -> TransitionRequest {
        TransitionRequest {
            request_id: r.request_id,
            name: r.name,
            version: r.version,
            target_kind: r.target.kind().to_string(),
            target: r.target.value().to_string(),
            archive_existing_versions: r.archive_existing,
            status: r.status.as_str().to_string(),
            requested_by: r.requested_by,
            requested_at: r.requested_at,
            comment: r.comment,
            decided_by: r.decided_by,
            decided_at: r.decided_at,
            decision_comment: r.decision_comment,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionRequests {
    pub requests: Vec<TransitionRequest>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TransitionRequestsQuery {
    /// Registered model name.
    pub name: Option<String>,
    /// A version number (empty means any).
    #[serde(default, deserialize_with = "crate::wire::opt_i64")]
    #[param(value_type = Option<String>, pattern = r"^[0-9]{0,18}$")]
    pub version: Option<i64>,
    /// `pending`, `approved`, `rejected` or `cancelled`.
    #[param(inline, value_type = Option<RequestStatusName>)]
    pub status: Option<String>,
}

/// Approve, reject or cancel a request.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(default)]
    pub comment: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Position in the log, from 1 without gaps.
    pub seq: i64,
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
    pub actor: String,
    /// Client address (and proxies, from `X-Forwarded-For`).
    pub source: String,
    pub user_agent: String,
    pub method: String,
    /// The route, e.g. `/mlflow/registered-models/alias`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    /// HTTP status of the answer.
    pub status: i64,
    /// `ok`, `denied` or `failed`.
    pub outcome: String,
    pub detail: String,
    /// State before the change, as JSON text, where it applies.
    pub before: Option<String>,
    pub after: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl From<core::AuditEntry> for AuditEntry {
    fn from(e: core::AuditEntry) -> AuditEntry {
        AuditEntry {
            seq: e.seq,
            ts: e.entry.ts,
            actor: e.entry.actor,
            source: e.entry.source,
            user_agent: e.entry.user_agent,
            method: e.entry.method,
            action: e.entry.action,
            resource_type: e.entry.resource_type,
            resource_id: e.entry.resource_id,
            status: e.entry.status,
            outcome: e.entry.outcome,
            detail: e.entry.detail,
            before: e.entry.before,
            after: e.entry.after,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `page_token` for the next page; absent on the last one.
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub actor: Option<String>,
    /// Inclusive, milliseconds since the epoch.
    #[serde(default, deserialize_with = "crate::wire::query_i64")]
    pub since: Option<i64>,
    /// Exclusive, milliseconds since the epoch.
    #[serde(default, deserialize_with = "crate::wire::query_i64")]
    pub until: Option<i64>,
    /// Page size, 1 to 10000 (default 1000).
    #[serde(default, deserialize_with = "crate::wire::query_i64")]
    #[param(minimum = 1, maximum = 10000)]
    pub max_results: Option<i64>,
    /// The `next_page_token` of the previous page.
    #[param(pattern = r"^[0-9]{0,18}$")]
    pub page_token: Option<String>,
}

/// The export's filter: `AuditQuery` without paging, since the export
/// streams every matching entry.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditExportQuery {
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub actor: Option<String>,
    /// Inclusive, milliseconds since the epoch.
    #[serde(default, deserialize_with = "crate::wire::query_i64")]
    pub since: Option<i64>,
    /// Exclusive, milliseconds since the epoch.
    #[serde(default, deserialize_with = "crate::wire::query_i64")]
    pub until: Option<i64>,
}

impl From<AuditExportQuery> for AuditQuery {
    fn from(query: AuditExportQuery) -> AuditQuery {
        AuditQuery {
            resource_type: query.resource_type,
            resource_id: query.resource_id,
            actor: query.actor,
            since: query.since,
            until: query.until,
            max_results: None,
            page_token: None,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyQuery {
    /// The `head_hash` of an earlier verification, kept outside the
    /// database: the log must still contain that entry (detects a cut tail).
    pub expected_head: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditVerification {
    /// Whether the whole chain is intact.
    pub ok: bool,
    pub entries_checked: i64,
    /// The first entry found edited, missing or out of place.
    pub first_bad_seq: Option<i64>,
    pub problem: Option<String>,
    /// Hash of the last good entry: keep it elsewhere to detect a cut tail.
    pub head_hash: Option<String>,
}

impl From<core::AuditVerification> for AuditVerification {
    fn from(v: core::AuditVerification) -> AuditVerification {
        AuditVerification {
            ok: v.first_bad.is_none(),
            entries_checked: v.entries_checked,
            first_bad_seq: v.first_bad.as_ref().map(|(seq, _)| *seq),
            problem: v.first_bad.map(|(_, why)| why),
            head_hash: v.head_hash,
        }
    }
}

/// Spend the bootstrap token printed at first start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    pub token: String,
    /// The admin's new password (at least 8 characters).
    #[schema(min_length = 8)]
    pub password: String,
}

// ------------------------------------------------------------ quality gates

/// A validation spec to attach to a registered model: every new version is
/// validated against it, and versions that fail cannot be promoted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutValidationSpec {
    /// The spec's YAML (or JSON) text.
    #[schema(min_length = 1, max_length = 1048576)]
    pub spec: String,
}

/// A registered model's validation spec.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ValidationSpec {
    pub name: String,
    pub spec: String,
    /// SHA-256 of the spec's text, recorded with every validation.
    pub sha256: String,
    /// Test ids, in the spec's order.
    pub tests: Vec<String>,
    pub updated_by: Option<String>,
    pub updated_at: i64,
}

/// Where a validation stands.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValidationStatusName {
    Pending,
    Passed,
    Failed,
    Error,
    Overridden,
}

/// One model version's validation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionValidation {
    pub name: String,
    pub version: i64,
    #[schema(value_type = ValidationStatusName)]
    pub status: String,
    pub spec_sha256: String,
    /// Blocking checks that failed or could not run.
    pub failed_checks: Vec<String>,
    /// Why the validation could not run, when it could not.
    pub message: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub override_by: Option<String>,
    pub override_reason: Option<String>,
    /// The report (`sextant validate --format json`'s), once finished.
    #[schema(value_type = Object)]
    pub report: Option<serde_json::Value>,
}

impl From<core::VersionValidation> for VersionValidation {
    fn from(v: core::VersionValidation) -> VersionValidation {
        VersionValidation {
            report: v
                .report
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok()),
            name: v.name,
            version: v.version,
            status: v.status.as_str().to_string(),
            spec_sha256: v.spec_sha256,
            failed_checks: v.failed_checks,
            message: v.message,
            started_at: v.started_at,
            finished_at: v.finished_at,
            override_by: v.override_by,
            override_reason: v.override_reason,
        }
    }
}

/// An administrator's decision to let a failed version through.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationOverride {
    /// Why (kept in the audit log).
    #[schema(min_length = 1, max_length = 2000, pattern = "\\S")]
    pub reason: String,
}
