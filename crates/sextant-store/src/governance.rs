//! Identities, grants, model policies and promotion requests.
//!
//! Hashing passwords and tokens is the caller's business (`sextant-governance`):
//! this module stores what it is given and never sees a secret.

use sextant_core::{
    ApiToken, Grant, Group, ModelPolicy, Permission, PrincipalKind, RequestStatus, ResourceKind,
    Stage, TokenScope, TransitionRequest, TransitionTarget, User,
};
use sqlx::any::AnyRow;

use crate::db::{self, SqlBuilder};
use crate::{now_ms, registry, Backend, Result, Store, StoreError};

/// The advisory lock (PostgreSQL) that serialises changes to admin rights.
const USERS_LOCK: i64 = 7_391_003;

/// What `Store::credentials` returns for a login.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user_id: i64,
    pub password_hash: Option<String>,
    pub disabled: bool,
}

/// A token found by its secret's hash, with the state of its owner.
#[derive(Debug, Clone)]
pub struct TokenOwner {
    pub token: ApiToken,
    pub user_disabled: bool,
}

/// The fields of a new transition request.
#[derive(Debug, Clone)]
pub struct NewTransitionRequest {
    pub name: String,
    pub version: i64,
    pub target: TransitionTarget,
    pub archive_existing: bool,
    pub requested_by: String,
    pub comment: String,
}

/// Filters for listing transition requests; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct TransitionFilter {
    pub name: Option<String>,
    pub version: Option<i64>,
    pub status: Option<RequestStatus>,
}

fn user_not_found(username: &str) -> StoreError {
    StoreError::NotFound(format!("User '{username}' does not exist"))
}

fn group_not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("Group '{name}' does not exist"))
}

fn user_from_row(row: &AnyRow) -> Result<User> {
    Ok(User {
        user_id: db::int(row, "user_id")?,
        username: db::text(row, "username")?,
        is_admin: db::int(row, "is_admin")? != 0,
        disabled: db::int(row, "disabled")? != 0,
        has_password: db::opt_text(row, "password_hash")?.is_some(),
        created_at: db::int(row, "created_at")?,
        groups: Vec::new(),
    })
}

fn token_from_row(row: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        token_id: db::text(row, "token_id")?,
        user_id: db::int(row, "user_id")?,
        username: db::text(row, "username")?,
        name: db::text(row, "name")?,
        scopes: parse_scopes(&db::text(row, "scopes")?),
        created_at: db::int(row, "created_at")?,
        expires_at: db::opt_int(row, "expires_at")?,
        last_used_at: db::opt_int(row, "last_used_at")?,
        revoked_at: db::opt_int(row, "revoked_at")?,
    })
}

fn parse_scopes(text: &str) -> Vec<TokenScope> {
    text.split(',').filter_map(TokenScope::parse).collect()
}

fn join_scopes(scopes: &[TokenScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn request_from_row(row: &AnyRow) -> Result<TransitionRequest> {
    let target_text = db::text(row, "target")?;
    let target = match db::text(row, "target_kind")?.as_str() {
        "stage" => TransitionTarget::Stage(Stage::parse(&target_text).unwrap_or(Stage::None)),
        _ => TransitionTarget::Alias(target_text),
    };
    Ok(TransitionRequest {
        request_id: db::int(row, "request_id")?,
        name: db::text(row, "name")?,
        version: db::int(row, "version")?,
        target,
        archive_existing: db::int(row, "archive_existing")? != 0,
        status: RequestStatus::parse(&db::text(row, "status")?).unwrap_or(RequestStatus::Pending),
        requested_by: db::text(row, "requested_by")?,
        requested_at: db::int(row, "requested_at")?,
        comment: db::text(row, "comment")?,
        decided_by: db::opt_text(row, "decided_by")?,
        decided_at: db::opt_int(row, "decided_at")?,
        decision_comment: db::opt_text(row, "decision_comment")?,
    })
}

const TOKEN_COLUMNS: &str = "t.token_id, t.user_id, u.username, t.name, t.scopes, t.created_at, \
     t.expires_at, t.last_used_at, t.revoked_at";

impl Store {
    // --- users --------------------------------------------------------------------------

    pub async fn create_user(
        &self,
        username: &str,
        password_hash: Option<&str>,
        is_admin: bool,
    ) -> Result<User> {
        validate_principal_name("user", username)?;
        let inserted = sqlx::query(
            "INSERT INTO users (username, password_hash, is_admin, disabled, created_at) VALUES ($1, $2, $3, 0, $4)",
        )
        .bind(username)
        .bind(password_hash.map(str::to_string))
        .bind(i64::from(is_admin))
        .bind(now_ms())
        .execute(&self.write_pool)
        .await;
        match inserted {
            Ok(_) => self.get_user(username).await,
            Err(err) if db::is_unique_violation(&err) => Err(StoreError::AlreadyExists(format!(
                "User '{username}' already exists"
            ))),
            Err(err) => Err(err.into()),
        }
    }

    pub async fn get_user(&self, username: &str) -> Result<User> {
        let row = sqlx::query("SELECT * FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| user_not_found(username))?;
        let mut user = user_from_row(&row)?;
        user.groups = self.groups_of_user(user.user_id).await?;
        Ok(user)
    }

    pub async fn get_user_by_id(&self, user_id: i64) -> Result<User> {
        let row = sqlx::query("SELECT * FROM users WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("User {user_id} does not exist")))?;
        let mut user = user_from_row(&row)?;
        user.groups = self.groups_of_user(user.user_id).await?;
        Ok(user)
    }

    async fn groups_of_user(&self, user_id: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT g.name FROM user_groups g JOIN group_members m ON m.group_id = g.group_id \
             WHERE m.user_id = $1 ORDER BY g.name",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| db::text(r, "name")).collect()
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY username")
            .fetch_all(&self.pool)
            .await?;
        let mut users = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut user = user_from_row(row)?;
            user.groups = self.groups_of_user(user.user_id).await?;
            users.push(user);
        }
        Ok(users)
    }

    pub async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Makes `username` an active admin with this password, creating the
    /// user if needed: how a restart with `SEXTANT_ADMIN_PASSWORD` brings
    /// back an administrator when none is left.
    pub async fn restore_admin(&self, username: &str, password_hash: &str) -> Result<()> {
        let done = sqlx::query(
            "UPDATE users SET is_admin = 1, disabled = 0, password_hash = $1 WHERE username = $2",
        )
        .bind(password_hash)
        .bind(username)
        .execute(&self.write_pool)
        .await?;
        if done.rows_affected() == 0 {
            self.create_user(username, Some(password_hash), true)
                .await?;
        }
        Ok(())
    }

    /// The stored password hash of a user, for a login attempt.
    pub async fn credentials(&self, username: &str) -> Result<Option<Credentials>> {
        let row =
            sqlx::query("SELECT user_id, password_hash, disabled FROM users WHERE username = $1")
                .bind(username)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| {
            Ok(Credentials {
                user_id: db::int(&row, "user_id")?,
                password_hash: db::opt_text(&row, "password_hash")?,
                disabled: db::int(&row, "disabled")? != 0,
            })
        })
        .transpose()
    }

    pub async fn set_user_password(&self, username: &str, password_hash: &str) -> Result<()> {
        self.update_user_column(
            username,
            "password_hash",
            Some(password_hash.to_string()),
            None,
        )
        .await
    }

    /// Grants or removes admin rights; removing the last active admin's is
    /// refused.
    pub async fn set_user_admin(&self, username: &str, is_admin: bool) -> Result<()> {
        self.change_keeping_an_admin(
            username,
            "UPDATE users SET is_admin = $1 WHERE user_id = $2",
            i64::from(is_admin),
        )
        .await
    }

    /// Disables or enables a user; disabling the last active admin is
    /// refused.
    pub async fn set_user_disabled(&self, username: &str, disabled: bool) -> Result<()> {
        self.change_keeping_an_admin(
            username,
            "UPDATE users SET disabled = $1 WHERE user_id = $2",
            i64::from(disabled),
        )
        .await
    }

    /// The number of admins who can sign in.
    pub async fn count_active_admins(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE is_admin = 1 AND disabled = 0")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Runs `sql` (binding `value` and the user's id) and commits only if an
    /// active admin is left afterwards. Changes to users are serialised
    /// (one write connection on SQLite, an advisory lock on PostgreSQL), so
    /// two admins demoting each other at once cannot both succeed.
    async fn change_keeping_an_admin(&self, username: &str, sql: &str, value: i64) -> Result<()> {
        let mut tx = self.write_pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(USERS_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let user_id: Option<i64> =
            sqlx::query_scalar("SELECT user_id FROM users WHERE username = $1")
                .bind(username)
                .fetch_optional(&mut *tx)
                .await?;
        let user_id = user_id.ok_or_else(|| user_not_found(username))?;
        sqlx::query(sql)
            .bind(value)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let admins: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE is_admin = 1 AND disabled = 0")
                .fetch_one(&mut *tx)
                .await?;
        if admins == 0 {
            tx.rollback().await?;
            return Err(StoreError::Conflict(format!(
                "'{username}' is the last active administrator: make another user an administrator first"
            )));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn update_user_column(
        &self,
        username: &str,
        column: &'static str,
        text: Option<String>,
        int: Option<i64>,
    ) -> Result<()> {
        let sql = format!("UPDATE users SET {column} = $1 WHERE username = $2");
        let query = sqlx::query(&sql);
        let query = match int {
            Some(value) => query.bind(value),
            None => query.bind(text),
        };
        let done = query.bind(username).execute(&self.write_pool).await?;
        if done.rows_affected() == 0 {
            return Err(user_not_found(username));
        }
        Ok(())
    }

    /// Deletes a user with their tokens, memberships and grants; deleting
    /// the last active admin is refused.
    pub async fn delete_user(&self, username: &str) -> Result<()> {
        let user = self.get_user(username).await?;
        let mut tx = self.write_pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(USERS_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let other_admins: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE is_admin = 1 AND disabled = 0 AND user_id <> $1",
        )
        .bind(user.user_id)
        .fetch_one(&mut *tx)
        .await?;
        if user.is_admin && !user.disabled && other_admins == 0 {
            return Err(StoreError::Conflict(format!(
                "'{username}' is the last active administrator: make another user an administrator first"
            )));
        }
        for sql in [
            "DELETE FROM api_tokens WHERE user_id = $1",
            "DELETE FROM group_members WHERE user_id = $1",
            "DELETE FROM permissions WHERE principal_type = 'user' AND principal_id = $1",
            "DELETE FROM users WHERE user_id = $1",
        ] {
            sqlx::query(sql)
                .bind(user.user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // --- groups -------------------------------------------------------------------------

    pub async fn create_group(&self, name: &str) -> Result<Group> {
        validate_principal_name("group", name)?;
        let inserted = sqlx::query("INSERT INTO user_groups (name, created_at) VALUES ($1, $2)")
            .bind(name)
            .bind(now_ms())
            .execute(&self.write_pool)
            .await;
        match inserted {
            Ok(_) => self.get_group(name).await,
            Err(err) if db::is_unique_violation(&err) => Err(StoreError::AlreadyExists(format!(
                "Group '{name}' already exists"
            ))),
            Err(err) => Err(err.into()),
        }
    }

    pub async fn get_group(&self, name: &str) -> Result<Group> {
        let row = sqlx::query("SELECT * FROM user_groups WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| group_not_found(name))?;
        let group_id = db::int(&row, "group_id")?;
        let members = sqlx::query(
            "SELECT u.username FROM users u JOIN group_members m ON m.user_id = u.user_id \
             WHERE m.group_id = $1 ORDER BY u.username",
        )
        .bind(group_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| db::text(r, "username"))
        .collect::<Result<Vec<_>>>()?;
        Ok(Group {
            group_id,
            name: db::text(&row, "name")?,
            created_at: db::int(&row, "created_at")?,
            members,
        })
    }

    pub async fn list_groups(&self) -> Result<Vec<Group>> {
        let names = sqlx::query("SELECT name FROM user_groups ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| db::text(r, "name"))
            .collect::<Result<Vec<_>>>()?;
        let mut groups = Vec::with_capacity(names.len());
        for name in names {
            groups.push(self.get_group(&name).await?);
        }
        Ok(groups)
    }

    pub async fn delete_group(&self, name: &str) -> Result<()> {
        let group = self.get_group(name).await?;
        let mut tx = self.write_pool.begin().await?;
        for sql in [
            "DELETE FROM group_members WHERE group_id = $1",
            "DELETE FROM permissions WHERE principal_type = 'group' AND principal_id = $1",
            "DELETE FROM user_groups WHERE group_id = $1",
        ] {
            sqlx::query(sql)
                .bind(group.group_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn add_group_member(&self, group: &str, username: &str) -> Result<()> {
        let group = self.get_group(group).await?;
        let user = self.get_user(username).await?;
        sqlx::query(
            "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(group.group_id)
        .bind(user.user_id)
        .execute(&self.write_pool)
        .await?;
        Ok(())
    }

    pub async fn remove_group_member(&self, group: &str, username: &str) -> Result<()> {
        let group = self.get_group(group).await?;
        let user = self.get_user(username).await?;
        sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group.group_id)
            .bind(user.user_id)
            .execute(&self.write_pool)
            .await?;
        Ok(())
    }

    // --- tokens -------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub async fn create_token(
        &self,
        token_id: &str,
        secret_sha256: &str,
        user_id: i64,
        name: &str,
        scopes: &[TokenScope],
        expires_at: Option<i64>,
    ) -> Result<ApiToken> {
        sqlx::query(
            "INSERT INTO api_tokens (token_id, secret_sha256, user_id, name, scopes, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token_id)
        .bind(secret_sha256)
        .bind(user_id)
        .bind(name)
        .bind(join_scopes(scopes))
        .bind(now_ms())
        .bind(expires_at)
        .execute(&self.write_pool)
        .await?;
        self.get_token(token_id).await
    }

    pub async fn get_token(&self, token_id: &str) -> Result<ApiToken> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.user_id = t.user_id WHERE t.token_id = $1"
        );
        let row = sqlx::query(&sql)
            .bind(token_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("Token '{token_id}' does not exist")))?;
        token_from_row(&row)
    }

    /// The token whose secret hashes to `secret_sha256`, revoked or not.
    pub async fn token_by_secret(&self, secret_sha256: &str) -> Result<Option<TokenOwner>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS}, u.disabled FROM api_tokens t JOIN users u ON u.user_id = t.user_id \
             WHERE t.secret_sha256 = $1"
        );
        let row = sqlx::query(&sql)
            .bind(secret_sha256)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(TokenOwner {
                token: token_from_row(&row)?,
                user_disabled: db::int(&row, "disabled")? != 0,
            })
        })
        .transpose()
    }

    /// Tokens of one user, or of everyone.
    pub async fn list_tokens(&self, user_id: Option<i64>) -> Result<Vec<ApiToken>> {
        let mut sql = SqlBuilder::new(
            self.backend,
            &format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.user_id = t.user_id"
            ),
        );
        if let Some(user_id) = user_id {
            sql.push(" WHERE t.user_id = ").bind(db::Bind::Int(user_id));
        }
        sql.push(" ORDER BY t.created_at, t.token_id");
        sql.query()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(token_from_row)
            .collect()
    }

    pub async fn revoke_token(&self, token_id: &str) -> Result<()> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE token_id = $2 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(token_id)
        .execute(&self.write_pool)
        .await?;
        if done.rows_affected() == 0 {
            // Revoking twice is fine; revoking what never existed is not.
            self.get_token(token_id).await?;
        }
        Ok(())
    }

    /// Deletes every token of `user_id` called `name` (the bootstrap token).
    pub async fn delete_tokens_named(&self, user_id: i64, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM api_tokens WHERE user_id = $1 AND name = $2")
            .bind(user_id)
            .bind(name)
            .execute(&self.write_pool)
            .await?;
        Ok(())
    }

    pub async fn touch_token(&self, token_id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE token_id = $2")
            .bind(at)
            .bind(token_id)
            .execute(&self.write_pool)
            .await?;
        Ok(())
    }

    // --- permissions --------------------------------------------------------------------

    async fn principal_id(&self, kind: PrincipalKind, name: &str) -> Result<i64> {
        Ok(match kind {
            PrincipalKind::User => self.get_user(name).await?.user_id,
            PrincipalKind::Group => self.get_group(name).await?.group_id,
        })
    }

    pub async fn grant_permission(
        &self,
        resource_kind: ResourceKind,
        resource_id: &str,
        principal_kind: PrincipalKind,
        principal_name: &str,
        permission: Permission,
    ) -> Result<()> {
        let principal_id = self.principal_id(principal_kind, principal_name).await?;
        self.grant_permission_to_id(
            resource_kind,
            resource_id,
            principal_kind,
            principal_id,
            permission,
        )
        .await
    }

    pub async fn grant_permission_to_id(
        &self,
        resource_kind: ResourceKind,
        resource_id: &str,
        principal_kind: PrincipalKind,
        principal_id: i64,
        permission: Permission,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO permissions (resource_type, resource_id, principal_type, principal_id, permission, granted_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(resource_kind.as_str())
        .bind(resource_id)
        .bind(principal_kind.as_str())
        .bind(principal_id)
        .bind(permission.as_str())
        .bind(now_ms())
        .execute(&self.write_pool)
        .await?;
        Ok(())
    }

    /// Removes one grant; `false` when there was none.
    pub async fn revoke_permission(
        &self,
        resource_kind: ResourceKind,
        resource_id: &str,
        principal_kind: PrincipalKind,
        principal_name: &str,
        permission: Permission,
    ) -> Result<bool> {
        let principal_id = self.principal_id(principal_kind, principal_name).await?;
        let done = sqlx::query(
            "DELETE FROM permissions WHERE resource_type = $1 AND resource_id = $2 AND principal_type = $3 \
             AND principal_id = $4 AND permission = $5",
        )
        .bind(resource_kind.as_str())
        .bind(resource_id)
        .bind(principal_kind.as_str())
        .bind(principal_id)
        .bind(permission.as_str())
        .execute(&self.write_pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Grants on one resource, or every grant when `resource` is `None`.
    pub async fn list_grants(&self, resource: Option<(ResourceKind, &str)>) -> Result<Vec<Grant>> {
        let mut sql = SqlBuilder::new(
            self.backend,
            "SELECT p.resource_type, p.resource_id, p.principal_type, p.permission, p.granted_at, \
             COALESCE(u.username, g.name) AS principal_name FROM permissions p \
             LEFT JOIN users u ON p.principal_type = 'user' AND u.user_id = p.principal_id \
             LEFT JOIN user_groups g ON p.principal_type = 'group' AND g.group_id = p.principal_id",
        );
        if let Some((kind, id)) = resource {
            sql.push(" WHERE p.resource_type = ")
                .bind_text(kind.as_str())
                .push(" AND p.resource_id = ")
                .bind_text(id);
        }
        sql.push(" ORDER BY p.resource_type, p.resource_id, p.principal_type, principal_name, p.permission");
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter()
            .filter_map(|row| {
                let parsed = (|| {
                    Ok::<_, StoreError>(Some(Grant {
                        resource_kind: match ResourceKind::parse(&db::text(row, "resource_type")?) {
                            Some(kind) => kind,
                            None => return Ok(None),
                        },
                        resource_id: db::text(row, "resource_id")?,
                        principal_kind: match PrincipalKind::parse(&db::text(
                            row,
                            "principal_type",
                        )?) {
                            Some(kind) => kind,
                            None => return Ok(None),
                        },
                        principal_name: db::opt_text(row, "principal_name")?.unwrap_or_default(),
                        permission: match Permission::parse(&db::text(row, "permission")?) {
                            Some(p) => p,
                            None => return Ok(None),
                        },
                        granted_at: db::int(row, "granted_at")?,
                    }))
                })();
                parsed.transpose()
            })
            .collect()
    }

    /// Every grant that applies to a user: their own and their groups'.
    pub async fn grants_of_user(
        &self,
        user_id: i64,
    ) -> Result<Vec<(ResourceKind, String, Permission)>> {
        let rows = sqlx::query(
            "SELECT resource_type, resource_id, permission FROM permissions \
             WHERE (principal_type = 'user' AND principal_id = $1) \
             OR (principal_type = 'group' AND principal_id IN (SELECT group_id FROM group_members WHERE user_id = $1))",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        let mut grants = Vec::with_capacity(rows.len());
        for row in &rows {
            let kind = ResourceKind::parse(&db::text(row, "resource_type")?);
            let permission = Permission::parse(&db::text(row, "permission")?);
            if let (Some(kind), Some(permission)) = (kind, permission) {
                grants.push((kind, db::text(row, "resource_id")?, permission));
            }
        }
        Ok(grants)
    }

    // --- resource lookups for permission checks -----------------------------------------

    /// The experiment a run belongs to (a run never moves).
    pub async fn experiment_of_run(&self, run_id: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT experiment_id FROM runs WHERE run_id = $1")
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The experiment a logged model belongs to (it never moves).
    pub async fn experiment_of_logged_model(&self, model_id: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT experiment_id FROM logged_models WHERE model_id = $1")
                .bind(model_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn experiment_id_by_name(&self, name: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT experiment_id FROM experiments WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// `(registered model, files, logged model)` of every model version
    /// whose files (`storage_location` or `source`) mention `key` (a run or
    /// logged-model id) or whose logged model is `key`: the versions a
    /// registry reader may reach through that id.
    pub async fn model_versions_using(
        &self,
        key: &str,
    ) -> Result<Vec<(String, Vec<String>, Option<String>)>> {
        // `_` and `%` are LIKE wildcards: escape them so the key matches only itself.
        let escaped = key
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let rows = sqlx::query(
            "SELECT name, storage_location, source, model_id FROM model_versions \
             WHERE model_id = $1 OR storage_location LIKE $2 ESCAPE '\\' OR source LIKE $2 ESCAPE '\\'",
        )
        .bind(key)
        .bind(format!("%{escaped}%"))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    db::text(row, "name")?,
                    vec![db::text(row, "storage_location")?, db::text(row, "source")?],
                    db::opt_text(row, "model_id")?,
                ))
            })
            .collect()
    }

    // --- model policies -----------------------------------------------------------------

    pub async fn model_policy(&self, name: &str) -> Result<ModelPolicy> {
        let row = sqlx::query("SELECT * FROM model_policies WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(ModelPolicy::default_for(name));
        };
        Ok(ModelPolicy {
            name: name.to_string(),
            protected_stages: db::text(&row, "protected_stages")?
                .split(',')
                .filter_map(Stage::parse)
                .collect(),
            protected_aliases: db::text(&row, "protected_aliases")?
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
            allow_self_approval: db::int(&row, "allow_self_approval")? != 0,
        })
    }

    pub async fn set_model_policy(&self, policy: &ModelPolicy) -> Result<()> {
        self.require_registered_model(&policy.name).await?;
        for alias in &policy.protected_aliases {
            registry::validate_alias(alias)?;
        }
        let stages = policy
            .protected_stages
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",");
        sqlx::query(
            "INSERT INTO model_policies (name, protected_stages, protected_aliases, allow_self_approval) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET protected_stages = excluded.protected_stages, \
             protected_aliases = excluded.protected_aliases, allow_self_approval = excluded.allow_self_approval",
        )
        .bind(&policy.name)
        .bind(stages)
        .bind(policy.protected_aliases.join(","))
        .bind(i64::from(policy.allow_self_approval))
        .execute(&self.write_pool)
        .await?;
        Ok(())
    }

    // --- transition requests ------------------------------------------------------------

    pub async fn create_transition_request(
        &self,
        new: &NewTransitionRequest,
    ) -> Result<TransitionRequest> {
        // The version must exist; the target must be valid.
        self.get_model_version(&new.name, &new.version.to_string())
            .await?;
        if let TransitionTarget::Alias(alias) = &new.target {
            registry::validate_alias(alias)?;
        }
        let mut tx = self.write_pool.begin().await?;
        sqlx::query(
            "INSERT INTO transition_requests (name, version, target_kind, target, archive_existing, status, \
             requested_by, requested_at, comment) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8)",
        )
        .bind(&new.name)
        .bind(new.version)
        .bind(new.target.kind())
        .bind(new.target.value())
        .bind(i64::from(new.archive_existing))
        .bind(&new.requested_by)
        .bind(now_ms())
        .bind(&new.comment)
        .execute(&mut *tx)
        .await?;
        let request_id: i64 =
            sqlx::query_scalar("SELECT MAX(request_id) FROM transition_requests WHERE name = $1")
                .bind(&new.name)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        self.get_transition_request(request_id).await
    }

    pub async fn get_transition_request(&self, request_id: i64) -> Result<TransitionRequest> {
        let row = sqlx::query("SELECT * FROM transition_requests WHERE request_id = $1")
            .bind(request_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!("Transition request {request_id} does not exist"))
            })?;
        request_from_row(&row)
    }

    pub async fn list_transition_requests(
        &self,
        filter: &TransitionFilter,
    ) -> Result<Vec<TransitionRequest>> {
        let mut sql = SqlBuilder::new(
            self.backend,
            "SELECT * FROM transition_requests WHERE 1 = 1",
        );
        if let Some(name) = &filter.name {
            sql.push(" AND name = ").bind_text(name.clone());
        }
        if let Some(version) = filter.version {
            sql.push(" AND version = ").bind(db::Bind::Int(version));
        }
        if let Some(status) = filter.status {
            sql.push(" AND status = ").bind_text(status.as_str());
        }
        sql.push(" ORDER BY request_id");
        sql.query()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(request_from_row)
            .collect()
    }

    /// Decides a pending request. Approving applies the transition in the
    /// same transaction, so the registry never shows an approved request
    /// without its effect, nor the effect without the approval. A request
    /// decided meanwhile by someone else is refused.
    pub async fn decide_transition_request(
        &self,
        request_id: i64,
        status: RequestStatus,
        decided_by: &str,
        comment: &str,
    ) -> Result<TransitionRequest> {
        let request = self.get_transition_request(request_id).await?;
        let now = now_ms();
        let mut tx = self.write_pool.begin().await?;
        let done = sqlx::query(
            "UPDATE transition_requests SET status = $1, decided_by = $2, decided_at = $3, decision_comment = $4 \
             WHERE request_id = $5 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(decided_by)
        .bind(now)
        .bind(comment)
        .bind(request_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::InvalidInput(format!(
                "Transition request {request_id} is already {}",
                request.status
            )));
        }
        if status == RequestStatus::Approved {
            match &request.target {
                TransitionTarget::Stage(stage) => {
                    registry::apply_stage(
                        &mut tx,
                        &request.name,
                        request.version,
                        *stage,
                        request.archive_existing,
                        now,
                    )
                    .await?;
                }
                TransitionTarget::Alias(alias) => {
                    registry::apply_alias(&mut tx, &request.name, alias, request.version).await?;
                }
            }
        }
        tx.commit().await?;
        self.get_transition_request(request_id).await
    }
}

/// Users and groups are named in URLs and in principal strings (`user:NAME`).
fn validate_principal_name(what: &str, name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if valid {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "Invalid {what} name '{name}': use 1 to 256 letters, digits, '-', '_', '.' or '@'"
        )))
    }
}
