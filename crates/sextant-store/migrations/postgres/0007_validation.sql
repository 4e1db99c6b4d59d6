-- Quality gates, version 7 (the same on SQLite and PostgreSQL).
--
-- A registered model's validation spec (YAML text and its SHA-256), and each
-- version's validation against it: pending while it runs, then passed,
-- failed or error, with the blocking checks that failed (JSON list) and the
-- whole report (JSON); an administrator's override keeps who and why.
-- Rows move with their model on rename and go with it on delete. Times are
-- milliseconds.
CREATE TABLE validation_specs (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    updated_by TEXT,
    updated_at BIGINT NOT NULL
);

CREATE TABLE model_version_validations (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    status TEXT NOT NULL,
    spec_sha256 TEXT NOT NULL,
    failed_checks TEXT NOT NULL,
    report TEXT,
    message TEXT,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    override_by TEXT,
    override_reason TEXT,
    PRIMARY KEY (name, version)
);
