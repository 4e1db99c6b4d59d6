-- Governance, version 2 (SQLite flavour): identities, grants, promotion
-- workflow and the hash-chained audit log. The PostgreSQL file of the same number
-- holds the same tables and indexes.
CREATE TABLE users (
    user_id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    -- argon2id PHC string; NULL until a password is set (bootstrap admin).
    password_hash TEXT,
    is_admin BIGINT NOT NULL,
    disabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE user_groups (
    group_id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE TABLE group_members (
    group_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_by_user ON group_members (user_id);
-- Only the SHA-256 of a token is kept; the token itself is shown once.
CREATE TABLE api_tokens (
    token_id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);
-- One row per (resource, principal, permission); principal_type is 'user' or 'group'.
CREATE TABLE permissions (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    principal_type TEXT NOT NULL,
    principal_id BIGINT NOT NULL,
    permission TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (resource_type, resource_id, principal_type, principal_id, permission)
);
CREATE INDEX permissions_by_principal ON permissions (principal_type, principal_id);
CREATE TABLE model_policies (
    name TEXT PRIMARY KEY,
    protected_stages TEXT NOT NULL,
    protected_aliases TEXT NOT NULL,
    allow_self_approval BIGINT NOT NULL
);
CREATE TABLE transition_requests (
    request_id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    target_kind TEXT NOT NULL,
    target TEXT NOT NULL,
    archive_existing BIGINT NOT NULL,
    status TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    comment TEXT NOT NULL,
    decided_by TEXT,
    decided_at BIGINT,
    decision_comment TEXT
);
CREATE INDEX transition_requests_by_model ON transition_requests (name, version, request_id);
-- Append-only. Each entry's hash covers its fields and the previous entry's
-- hash, so editing or deleting a row breaks the chain from there on.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    ts BIGINT NOT NULL,
    actor TEXT NOT NULL,
    source TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    method TEXT NOT NULL,
    action TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    status BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    before_state TEXT,
    after_state TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_by_resource ON audit_log (resource_type, resource_id, seq);
CREATE INDEX audit_by_actor ON audit_log (actor, seq);
CREATE INDEX audit_by_time ON audit_log (ts);
-- Append-only at the database too: the application never changes or removes
-- an entry, and whoever drops these triggers to do so still breaks the chain.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
