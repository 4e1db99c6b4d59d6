//! Governance records: users, groups, API tokens, permission grants,
//! promotion (transition) requests and audit-log entries, plus the rules
//! that say which permission implies which.

use crate::entities::Stage;

string_enum!(
    /// What a permission is granted on.
    ResourceKind { Experiment => "experiment", RegisteredModel => "registered_model", Deployment => "deployment" }
);

string_enum!(
    /// A permission held on one resource. `read`, `edit` and `manage` are
    /// MLflow's levels (each implies the ones before); `approve` lets a user
    /// decide promotion requests of a registered model and is granted on its
    /// own, so that whoever owns a model does not approve its promotions;
    /// `invoke` lets a caller use a deployment; `deploy` lets a user serve a
    /// registered model's versions in a deployment (which runs what the
    /// model holds on the server), granted by admins only.
    Permission { Read => "read", Edit => "edit", Manage => "manage", Approve => "approve", Invoke => "invoke", Deploy => "deploy" }
);

impl Permission {
    /// The permissions that holding `self` grants, itself included.
    pub fn implies(self) -> PermissionSet {
        use Permission::*;
        let implied: &[Permission] = match self {
            Read => &[Read],
            Edit => &[Read, Edit, Invoke],
            Manage => &[Read, Edit, Manage, Invoke],
            Approve => &[Read, Approve],
            Invoke => &[Read, Invoke],
            Deploy => &[Read, Deploy],
        };
        implied
            .iter()
            .fold(PermissionSet::EMPTY, |set, p| set.with(*p))
    }
}

/// A set of permissions, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PermissionSet(u8);

impl PermissionSet {
    pub const EMPTY: PermissionSet = PermissionSet(0);

    fn bit(permission: Permission) -> u8 {
        1 << (permission as u8)
    }

    pub fn with(self, permission: Permission) -> PermissionSet {
        PermissionSet(self.0 | PermissionSet::bit(permission))
    }

    /// Adds `held` and everything it implies.
    pub fn grant(self, held: Permission) -> PermissionSet {
        PermissionSet(self.0 | held.implies().0)
    }

    pub fn contains(self, permission: Permission) -> bool {
        self.0 & PermissionSet::bit(permission) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Which resources of one kind a caller may read. `Only` an empty set
/// means none: a search narrowed to what the caller may read can never
/// widen to everything because that set happens to be empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readable {
    All,
    Only(Vec<String>),
}

impl Readable {
    pub fn contains(&self, id: &str) -> bool {
        match self {
            Readable::All => true,
            Readable::Only(ids) => ids.iter().any(|readable| readable == id),
        }
    }

    /// The requested ids the caller may read.
    pub fn intersect(&self, requested: Vec<String>) -> Vec<String> {
        requested
            .into_iter()
            .filter(|id| self.contains(id.trim()))
            .collect()
    }

    /// What a search that names `requested` ids may return: an empty
    /// request means every readable resource, a non-empty one the readable
    /// ids among those requested.
    pub fn narrowed_to(&self, requested: Vec<String>) -> Readable {
        if requested.is_empty() {
            self.clone()
        } else {
            Readable::Only(self.intersect(requested))
        }
    }
}

string_enum!(
    /// Who a grant is for.
    PrincipalKind { User => "user", Group => "group" }
);

string_enum!(
    /// What an API token may be used for. `read` covers every request that
    /// changes nothing, `write` every other request the user may make, and
    /// `invoke` calls to deployments.
    TokenScope { Read => "read", Write => "write", Invoke => "invoke" }
);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub user_id: i64,
    pub username: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub has_password: bool,
    pub created_at: i64,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub group_id: i64,
    pub name: String,
    pub created_at: i64,
    pub members: Vec<String>,
}

/// An API token as listed: never the secret, which exists only in the
/// response that created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub token_id: String,
    pub user_id: i64,
    pub username: String,
    pub name: String,
    pub scopes: Vec<TokenScope>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// One permission held by a user or a group on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub resource_kind: ResourceKind,
    pub resource_id: String,
    pub principal_kind: PrincipalKind,
    pub principal_name: String,
    pub permission: Permission,
    pub granted_at: i64,
}

/// Which promotion targets of a registered model need an approved request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPolicy {
    pub name: String,
    pub protected_stages: Vec<Stage>,
    pub protected_aliases: Vec<String>,
    /// Whether the requester may approve their own request.
    pub allow_self_approval: bool,
}

impl ModelPolicy {
    /// The policy of a model nobody configured: every stage but `None` and
    /// the alias `champion` are protected; nobody approves their own request.
    pub fn default_for(name: &str) -> ModelPolicy {
        ModelPolicy {
            name: name.to_string(),
            protected_stages: vec![Stage::Staging, Stage::Production, Stage::Archived],
            protected_aliases: vec!["champion".to_string()],
            allow_self_approval: false,
        }
    }

    pub fn protects(&self, target: &TransitionTarget) -> bool {
        match target {
            TransitionTarget::Stage(stage) => self.protected_stages.contains(stage),
            TransitionTarget::Alias(alias) => self.protected_aliases.iter().any(|a| a == alias),
        }
    }
}

/// Where a promotion moves a model version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionTarget {
    Stage(Stage),
    Alias(String),
}

impl TransitionTarget {
    pub fn kind(&self) -> &'static str {
        match self {
            TransitionTarget::Stage(_) => "stage",
            TransitionTarget::Alias(_) => "alias",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            TransitionTarget::Stage(stage) => stage.as_str(),
            TransitionTarget::Alias(alias) => alias,
        }
    }
}

impl std::fmt::Display for TransitionTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransitionTarget::Stage(stage) => write!(f, "stage {stage}"),
            TransitionTarget::Alias(alias) => write!(f, "alias @{alias}"),
        }
    }
}

string_enum!(
    /// Life of a transition request: `pending` until someone decides it.
    RequestStatus { Pending => "pending", Approved => "approved", Rejected => "rejected", Cancelled => "cancelled" }
);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRequest {
    pub request_id: i64,
    pub name: String,
    pub version: i64,
    pub target: TransitionTarget,
    pub archive_existing: bool,
    pub status: RequestStatus,
    pub requested_by: String,
    pub requested_at: i64,
    pub comment: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub decision_comment: Option<String>,
}

/// An audit-log entry before the log numbers and chains it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewAuditEntry {
    pub ts: i64,
    pub actor: String,
    pub source: String,
    pub user_agent: String,
    pub method: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub status: i64,
    pub outcome: String,
    pub detail: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// An entry as stored: numbered from 1 without gaps, and chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub entry: NewAuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// What checking the audit chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerification {
    pub entries_checked: i64,
    /// The first entry whose hash, link or number is wrong, and why.
    pub first_bad: Option<(i64, String)>,
    pub head_hash: Option<String>,
}

/// A registered model's validation spec: the YAML every new version is
/// validated against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationSpecRecord {
    pub name: String,
    pub spec: String,
    pub sha256: String,
    pub updated_by: Option<String>,
    pub updated_at: i64,
}

/// Where a version's validation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationStatus {
    Pending,
    Passed,
    Failed,
    /// The validation could not run (unreadable data, a model that does not load).
    Error,
    /// Failed or errored, and an administrator let it through with a reason.
    Overridden,
}

impl ValidationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationStatus::Pending => "pending",
            ValidationStatus::Passed => "passed",
            ValidationStatus::Failed => "failed",
            ValidationStatus::Error => "error",
            ValidationStatus::Overridden => "overridden",
        }
    }

    pub fn parse(text: &str) -> Option<ValidationStatus> {
        Some(match text {
            "pending" => ValidationStatus::Pending,
            "passed" => ValidationStatus::Passed,
            "failed" => ValidationStatus::Failed,
            "error" => ValidationStatus::Error,
            "overridden" => ValidationStatus::Overridden,
            _ => return None,
        })
    }
}

/// One model version's validation against its model's spec.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionValidation {
    pub name: String,
    pub version: i64,
    pub status: ValidationStatus,
    pub spec_sha256: String,
    /// Blocking assertions that failed or could not run.
    pub failed_checks: Vec<String>,
    /// The report (JSON text) once the validation finished.
    pub report: Option<String>,
    /// Why it errored, when it did.
    pub message: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub override_by: Option<String>,
    pub override_reason: Option<String>,
}
