//! Governance for Sextant: who the caller is, what they may do, and the
//! gates a promotion must pass.
//!
//! [`Governance`] authenticates an `Authorization` header (HTTP Basic with a
//! password or a token, or Bearer with a token) into a [`Principal`] and
//! answers permission questions about it. Every answer on the request path
//! comes from memory: verified logins, tokens and each user's grants are
//! cached for a few seconds (so another replica's revocation takes effect
//! within [`CACHE_TTL`]), and changes made through this process invalidate
//! its caches at once. No password is hashed per request.
//!
//! This crate knows nothing about HTTP; the server maps [`AuthError`] to 401.

pub mod gates;
pub mod secrets;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use sextant_core::{
    ApiToken, Permission, PermissionSet, Readable, ResourceKind, TokenScope, TransitionRequest,
};
use sextant_store::{Store, StoreError};

pub use crate::gates::{PromotionGate, Veto};

/// How long a cached login, token or set of grants is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// How long a verified password stays cached (its check costs a KDF).
const LOGIN_TTL: Duration = Duration::from_secs(60);
/// Tokens record their last use at most this often.
const TOUCH_EVERY_MS: i64 = 60_000;
/// Caches are dropped wholesale beyond this many entries.
const MAX_CACHED: usize = 100_000;
/// Name of the one-time token that sets the first admin's password.
pub const BOOTSTRAP_TOKEN_NAME: &str = "bootstrap";
/// The first admin's user name.
pub const ADMIN_USERNAME: &str = "admin";

/// The name of the tokens that back web sessions (one per sign-in).
pub const SESSION_TOKEN_NAME: &str = "web session";

/// How long a web session lasts.
pub const SESSION_LIFETIME_MS: i64 = 12 * 3600 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Authentication required: send HTTP Basic credentials (MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD) or a Bearer token (MLFLOW_TRACKING_TOKEN)")]
    Missing,
    #[error("Malformed Authorization header: {0}")]
    Malformed(String),
    #[error("Invalid username or password")]
    InvalidCredentials,
    #[error("Invalid API token")]
    InvalidToken,
    #[error("This API token has expired")]
    TokenExpired,
    #[error("This API token has been revoked")]
    TokenRevoked,
    #[error("This account is disabled")]
    Disabled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An authenticated user as the request path sees them.
#[derive(Debug)]
pub struct Caller {
    pub user_id: i64,
    pub username: String,
    pub is_admin: bool,
    /// What the token allows; `None` for a password login (everything).
    pub scopes: Option<Vec<TokenScope>>,
    pub token_id: Option<String>,
    grants: Arc<UserGrants>,
    /// What every signed-in user holds on every resource (`--default-permission`).
    default: PermissionSet,
}

/// Who is making a request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Authentication is off: the single local user may do everything.
    Anonymous,
    User(Arc<Caller>),
}

impl Principal {
    /// The name the audit log records.
    pub fn name(&self) -> &str {
        match self {
            Principal::Anonymous => "anonymous",
            Principal::User(caller) => &caller.username,
        }
    }

    pub fn is_admin(&self) -> bool {
        match self {
            Principal::Anonymous => true,
            Principal::User(caller) => caller.is_admin,
        }
    }

    pub fn caller(&self) -> Option<&Caller> {
        match self {
            Principal::Anonymous => None,
            Principal::User(caller) => Some(caller),
        }
    }

    /// Whether the credential used allows this kind of request.
    pub fn has_scope(&self, scope: TokenScope) -> bool {
        match self {
            Principal::Anonymous => true,
            Principal::User(caller) => match &caller.scopes {
                None => true,
                Some(scopes) => {
                    scopes.contains(&scope)
                        // Writing includes reading.
                        || (scope == TokenScope::Read && scopes.contains(&TokenScope::Write))
                }
            },
        }
    }

    /// Whether the principal holds `permission` on a resource (admins and
    /// the anonymous local user hold everything).
    pub fn may(&self, kind: ResourceKind, id: &str, permission: Permission) -> bool {
        match self {
            Principal::Anonymous => true,
            Principal::User(caller) => {
                caller.is_admin
                    || caller.default.contains(permission)
                    || caller
                        .grants
                        .on
                        .get(&(kind, id.to_string()))
                        .is_some_and(|set| set.contains(permission))
            }
        }
    }

    /// The resources of `kind` the principal may read.
    pub fn visible(&self, kind: ResourceKind) -> Readable {
        match self {
            Principal::Anonymous => Readable::All,
            Principal::User(caller)
                if caller.is_admin || caller.default.contains(Permission::Read) =>
            {
                Readable::All
            }
            Principal::User(caller) => Readable::Only(
                caller
                    .grants
                    .on
                    .iter()
                    .filter(|((k, _), set)| *k == kind && set.contains(Permission::Read))
                    .map(|((_, id), _)| id.clone())
                    .collect(),
            ),
        }
    }
}

/// A user's account state and effective permissions, loaded together.
#[derive(Debug)]
struct UserGrants {
    username: String,
    is_admin: bool,
    disabled: bool,
    on: HashMap<(ResourceKind, String), PermissionSet>,
}

struct Cached<T> {
    value: T,
    at: Instant,
}

/// A map whose entries expire; reads take a shared lock only.
struct TtlCache<K, V> {
    ttl: Duration,
    map: RwLock<HashMap<K, Cached<V>>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> TtlCache<K, V> {
    fn new(ttl: Duration) -> Self {
        TtlCache {
            ttl,
            map: RwLock::new(HashMap::new()),
        }
    }

    fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|c| c.at.elapsed() < self.ttl)
            .map(|c| c.value.clone())
    }

    fn put(&self, key: K, value: V) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_CACHED {
            map.clear();
        }
        map.insert(
            key,
            Cached {
                value,
                at: Instant::now(),
            },
        );
    }

    fn clear(&self) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[derive(Clone)]
struct CachedToken {
    token: ApiToken,
    user_disabled: bool,
}

struct Inner {
    store: Store,
    auth_enabled: bool,
    default: PermissionSet,
    /// SHA-256 of `username \0 password` → user id.
    logins: TtlCache<String, i64>,
    /// SHA-256 of the token → token.
    tokens: TtlCache<String, CachedToken>,
    grants: TtlCache<i64, Arc<UserGrants>>,
    /// Immutable mappings: a run or logged model never changes experiment.
    run_experiments: TtlCache<String, i64>,
    model_experiments: TtlCache<String, i64>,
    gates: Vec<Arc<dyn PromotionGate>>,
}

/// Authentication, permission checks and promotion gates; cheap to clone.
#[derive(Clone)]
pub struct Governance {
    inner: Arc<Inner>,
}

impl Governance {
    /// `default_permission` is held by every signed-in user on every
    /// resource (MLflow's `default_permission`); `None` grants nothing.
    pub fn new(
        store: Store,
        auth_enabled: bool,
        default_permission: Option<Permission>,
    ) -> Governance {
        let forever = Duration::from_secs(u64::MAX / 4);
        Governance {
            inner: Arc::new(Inner {
                store,
                auth_enabled,
                default: default_permission
                    .map(|p| PermissionSet::EMPTY.grant(p))
                    .unwrap_or_default(),
                logins: TtlCache::new(LOGIN_TTL),
                tokens: TtlCache::new(CACHE_TTL),
                grants: TtlCache::new(CACHE_TTL),
                run_experiments: TtlCache::new(forever),
                model_experiments: TtlCache::new(forever),
                gates: gates::default_gates(),
            }),
        }
    }

    pub fn auth_enabled(&self) -> bool {
        self.inner.auth_enabled
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Who sent a request with this `Authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Principal, AuthError> {
        if !self.inner.auth_enabled {
            return Ok(Principal::Anonymous);
        }
        let header = authorization.ok_or(AuthError::Missing)?;
        let header = std::str::from_utf8(header)
            .map_err(|_| AuthError::Malformed("it is not valid UTF-8".into()))?
            .trim();
        let (scheme, value) = header
            .split_once(' ')
            .map(|(s, v)| (s, v.trim()))
            .unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            if value.is_empty() {
                return Err(AuthError::Malformed("the Bearer token is empty".into()));
            }
            return self.authenticate_token(value).await;
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    AuthError::Malformed(
                        "Basic credentials must be base64 of 'username:password'".into(),
                    )
                })?;
            let (username, password) = decoded.split_once(':').ok_or_else(|| {
                AuthError::Malformed(
                    "Basic credentials must be base64 of 'username:password'".into(),
                )
            })?;
            // Tools that only speak Basic may send a token as the password.
            if password.starts_with(secrets::TOKEN_PREFIX) {
                return self.authenticate_token(password).await;
            }
            return self.authenticate_password(username, password).await;
        }
        Err(AuthError::Malformed(format!(
            "unsupported scheme '{scheme}': use Basic or Bearer"
        )))
    }

    /// Signs a user in for the web UI: checks the password as a login
    /// would, then issues a token (all scopes, [`SESSION_LIFETIME_MS`]) that
    /// the browser keeps in an HttpOnly cookie. Returns the token's secret.
    pub async fn start_session(&self, username: &str, password: &str) -> Result<String, AuthError> {
        let principal = self.authenticate_password(username, password).await?;
        let Some(caller) = principal.caller() else {
            return Err(AuthError::InvalidCredentials);
        };
        let token = secrets::new_token().map_err(|e| AuthError::Store(StoreError::Open(e)))?;
        self.inner
            .store
            .create_token(
                &token.token_id,
                &token.secret_sha256,
                caller.user_id,
                SESSION_TOKEN_NAME,
                &[TokenScope::Read, TokenScope::Write, TokenScope::Invoke],
                Some(now_ms() + SESSION_LIFETIME_MS),
            )
            .await?;
        Ok(token.secret)
    }

    /// Ends a web session: its token is revoked at once on this server.
    pub async fn end_session(&self, secret: &str) -> Result<(), AuthError> {
        let key = secrets::sha256_hex(secret.as_bytes());
        if let Some(found) = self.inner.store.token_by_secret(&key).await? {
            if found.token.name == SESSION_TOKEN_NAME && found.token.revoked_at.is_none() {
                self.inner.store.revoke_token(&found.token.token_id).await?;
            }
        }
        self.credentials_changed();
        Ok(())
    }

    async fn authenticate_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Principal, AuthError> {
        let key = secrets::sha256_hex(format!("{username}\0{password}").as_bytes());
        let user_id = match self.inner.logins.get(&key) {
            Some(user_id) => user_id,
            None => {
                let credentials = self.inner.store.credentials(username).await?;
                let phc = credentials
                    .as_ref()
                    .and_then(|c| c.password_hash.clone())
                    .unwrap_or_else(|| secrets::decoy_hash().to_string());
                let candidate = password.to_string();
                let matches =
                    tokio::task::spawn_blocking(move || secrets::verify_password(&candidate, &phc))
                        .await
                        .unwrap_or(false);
                let Some(credentials) =
                    credentials.filter(|c| matches && c.password_hash.is_some())
                else {
                    return Err(AuthError::InvalidCredentials);
                };
                self.inner.logins.put(key, credentials.user_id);
                credentials.user_id
            }
        };
        self.principal(user_id, None, None).await
    }

    async fn authenticate_token(&self, secret: &str) -> Result<Principal, AuthError> {
        if !secret.starts_with(secrets::TOKEN_PREFIX) {
            return Err(AuthError::InvalidToken);
        }
        let key = secrets::sha256_hex(secret.as_bytes());
        let cached = match self.inner.tokens.get(&key) {
            Some(cached) => cached,
            None => {
                let found = self
                    .inner
                    .store
                    .token_by_secret(&key)
                    .await?
                    .ok_or(AuthError::InvalidToken)?;
                let cached = CachedToken {
                    token: found.token,
                    user_disabled: found.user_disabled,
                };
                self.inner.tokens.put(key.clone(), cached.clone());
                cached
            }
        };
        let token = &cached.token;
        if token.revoked_at.is_some() {
            return Err(AuthError::TokenRevoked);
        }
        let now = now_ms();
        if token.expires_at.is_some_and(|at| at <= now) {
            return Err(AuthError::TokenExpired);
        }
        if cached.user_disabled {
            return Err(AuthError::Disabled);
        }
        if token.name == BOOTSTRAP_TOKEN_NAME {
            // The bootstrap token only sets the first password (its own endpoint).
            return Err(AuthError::InvalidToken);
        }
        if token
            .last_used_at
            .is_none_or(|at| now - at > TOUCH_EVERY_MS)
        {
            let mut touched = cached.clone();
            touched.token.last_used_at = Some(now);
            self.inner.tokens.put(key, touched);
            let store = self.inner.store.clone();
            let token_id = token.token_id.clone();
            tokio::spawn(async move {
                if let Err(err) = store.touch_token(&token_id, now).await {
                    tracing::warn!(cause = %err, "cannot record a token's last use");
                }
            });
        }
        self.principal(
            token.user_id,
            Some(token.scopes.clone()),
            Some(token.token_id.clone()),
        )
        .await
    }

    /// A user as the permission checks see them, with every scope: for
    /// work done on their behalf later (a logged spec is checked against its
    /// version's registrant, whoever asks for it to run).
    pub async fn principal_of_user(&self, user_id: i64) -> Result<Principal, AuthError> {
        self.principal(user_id, None, None).await
    }

    async fn principal(
        &self,
        user_id: i64,
        scopes: Option<Vec<TokenScope>>,
        token_id: Option<String>,
    ) -> Result<Principal, AuthError> {
        let grants = self.grants_of(user_id).await?;
        if grants.disabled {
            return Err(AuthError::Disabled);
        }
        Ok(Principal::User(Arc::new(Caller {
            user_id,
            username: grants.username.clone(),
            is_admin: grants.is_admin,
            scopes,
            token_id,
            grants,
            default: self.inner.default,
        })))
    }

    async fn grants_of(&self, user_id: i64) -> Result<Arc<UserGrants>, AuthError> {
        if let Some(grants) = self.inner.grants.get(&user_id) {
            return Ok(grants);
        }
        let user = match self.inner.store.get_user_by_id(user_id).await {
            Ok(user) => user,
            // Deleted since the login or token was cached.
            Err(StoreError::NotFound(_)) => return Err(AuthError::InvalidCredentials),
            Err(err) => return Err(err.into()),
        };
        let mut on: HashMap<(ResourceKind, String), PermissionSet> = HashMap::new();
        for (kind, id, permission) in self.inner.store.grants_of_user(user_id).await? {
            let set = on.entry((kind, id)).or_default();
            *set = set.grant(permission);
        }
        let grants = Arc::new(UserGrants {
            username: user.username,
            is_admin: user.is_admin,
            disabled: user.disabled,
            on,
        });
        self.inner.grants.put(user_id, grants.clone());
        Ok(grants)
    }

    /// Forget cached grants and account states (after a grant, a revoke, a
    /// membership or an account change).
    pub fn grants_changed(&self) {
        self.inner.grants.clear();
    }

    /// Forget cached logins and tokens (after a password change, a token
    /// revocation or a deleted user).
    pub fn credentials_changed(&self) {
        self.inner.logins.clear();
        self.inner.tokens.clear();
        self.inner.grants.clear();
    }

    /// The experiment of a run, `None` if there is no such run.
    pub async fn experiment_of_run(&self, run_id: &str) -> Result<Option<i64>, StoreError> {
        if let Some(id) = self.inner.run_experiments.get(run_id) {
            return Ok(Some(id));
        }
        let found = self.inner.store.experiment_of_run(run_id).await?;
        if let Some(id) = found {
            self.inner.run_experiments.put(run_id.to_string(), id);
        }
        Ok(found)
    }

    /// The experiment of a logged model, `None` if there is none.
    pub async fn experiment_of_logged_model(
        &self,
        model_id: &str,
    ) -> Result<Option<i64>, StoreError> {
        if let Some(id) = self.inner.model_experiments.get(model_id) {
            return Ok(Some(id));
        }
        let found = self
            .inner
            .store
            .experiment_of_logged_model(model_id)
            .await?;
        if let Some(id) = found {
            self.inner.model_experiments.put(model_id.to_string(), id);
        }
        Ok(found)
    }

    /// Runs every gate on a request about to be approved; the first veto wins.
    pub async fn check_gates(&self, request: &TransitionRequest) -> Result<(), Veto> {
        for gate in &self.inner.gates {
            gate.check(&self.inner.store, request).await?;
        }
        Ok(())
    }

    /// Makes sure an admin can get in when authentication is on. With no
    /// user yet: `admin` is created with `admin_password` if given;
    /// otherwise it is created without a password and a one-time bootstrap
    /// token is returned for the operator (it replaces any earlier one and
    /// expires in 24 hours). Returns `None` when nothing needs printing.
    pub async fn bootstrap(&self, admin_password: Option<&str>) -> Result<Option<String>, String> {
        let store = &self.inner.store;
        let existing = match store.get_user(ADMIN_USERNAME).await {
            Ok(user) => Some(user),
            Err(StoreError::NotFound(_)) => None,
            Err(err) => return Err(err.to_string()),
        };
        let users = store.count_users().await.map_err(|e| e.to_string())?;
        let active_admins = store
            .count_active_admins()
            .await
            .map_err(|e| e.to_string())?;
        // No administrator can sign in (the last one was demoted, disabled or
        // deleted before that was refused): the operator's password brings
        // `admin` back, active and an administrator.
        if let (0, true, Some(password)) = (active_admins, users > 0, admin_password) {
            secrets::check_password_strength(password)
                .map_err(|e| format!("SEXTANT_ADMIN_PASSWORD: {e}"))?;
            let phc = hash_password_blocking(password)
                .await
                .map_err(|e| e.to_string())?;
            store
                .restore_admin(ADMIN_USERNAME, &phc)
                .await
                .map_err(|e| e.to_string())?;
            tracing::warn!(
                user = ADMIN_USERNAME,
                "no active administrator was left: restored one from SEXTANT_ADMIN_PASSWORD"
            );
            self.credentials_changed();
            return Ok(None);
        }
        match (existing, admin_password) {
            (Some(admin), _) if admin.has_password => Ok(None),
            (None, _) if users > 0 => Ok(None),
            (existing, Some(password)) => {
                secrets::check_password_strength(password)
                    .map_err(|e| format!("SEXTANT_ADMIN_PASSWORD: {e}"))?;
                let password = password.to_string();
                let phc = tokio::task::spawn_blocking(move || secrets::hash_password(&password))
                    .await
                    .map_err(|e| e.to_string())??;
                match existing {
                    Some(admin) => {
                        store
                            .set_user_password(ADMIN_USERNAME, &phc)
                            .await
                            .map_err(|e| e.to_string())?;
                        store
                            .delete_tokens_named(admin.user_id, BOOTSTRAP_TOKEN_NAME)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    None => {
                        store
                            .create_user(ADMIN_USERNAME, Some(&phc), true)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                }
                Ok(None)
            }
            (existing, None) => {
                let admin = match existing {
                    Some(admin) => admin,
                    None => store
                        .create_user(ADMIN_USERNAME, None, true)
                        .await
                        .map_err(|e| e.to_string())?,
                };
                store
                    .delete_tokens_named(admin.user_id, BOOTSTRAP_TOKEN_NAME)
                    .await
                    .map_err(|e| e.to_string())?;
                let token = secrets::new_token()?;
                store
                    .create_token(
                        &token.token_id,
                        &token.secret_sha256,
                        admin.user_id,
                        BOOTSTRAP_TOKEN_NAME,
                        &[],
                        Some(now_ms() + 24 * 3600 * 1000),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Some(token.secret))
            }
        }
    }

    /// Spends the bootstrap token: sets the admin's first password.
    pub async fn complete_bootstrap(&self, secret: &str, password: &str) -> Result<(), AuthError> {
        let store = &self.inner.store;
        let key = secrets::sha256_hex(secret.as_bytes());
        let found = store
            .token_by_secret(&key)
            .await?
            .filter(|t| t.token.name == BOOTSTRAP_TOKEN_NAME && t.token.revoked_at.is_none())
            .ok_or(AuthError::InvalidToken)?;
        if found.token.expires_at.is_some_and(|at| at <= now_ms()) {
            return Err(AuthError::TokenExpired);
        }
        secrets::check_password_strength(password)
            .map_err(|e| AuthError::Store(StoreError::InvalidInput(e)))?;
        let phc = hash_password_blocking(password).await?;
        store.set_user_password(&found.token.username, &phc).await?;
        store
            .delete_tokens_named(found.token.user_id, BOOTSTRAP_TOKEN_NAME)
            .await?;
        self.credentials_changed();
        Ok(())
    }
}

/// The token a page sends back with state-changing requests made under a
/// web session (`X-CSRF-Token`, or the form field `csrf_token`): derived
/// from the session's secret, so a page on another site, which cannot read
/// the cookie, cannot compute it.
pub fn csrf_token(session_secret: &str) -> String {
    secrets::sha256_hex(format!("sextant-csrf\0{session_secret}").as_bytes())[..32].to_string()
}

/// Hashes a password off the async threads (it takes tens of milliseconds).
pub async fn hash_password_blocking(password: &str) -> Result<String, StoreError> {
    secrets::check_password_strength(password).map_err(StoreError::InvalidInput)?;
    let password = password.to_string();
    tokio::task::spawn_blocking(move || secrets::hash_password(&password))
        .await
        .map_err(|e| StoreError::Open(e.to_string()))?
        .map_err(StoreError::Open)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
