-- Tracking and registry schema, version 1 (SQLite flavour).
-- Tables keyed by a composite primary key are WITHOUT ROWID: each row is
-- stored once, in key order, instead of in a rowid table plus an index.
-- The PostgreSQL file of the same number holds the same tables and indexes.
CREATE TABLE experiments (
    experiment_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    artifact_location TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL,
    creation_time INTEGER NOT NULL,
    last_update_time INTEGER NOT NULL
);
CREATE TABLE experiment_tags (
    experiment_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key)
);
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    experiment_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    end_time INTEGER,
    artifact_uri TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL,
    deleted_time INTEGER
);
CREATE INDEX runs_by_experiment ON runs (experiment_id, start_time DESC, run_id);
CREATE TABLE params (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE run_tags (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
-- Every metric point ever logged. Identical points are stored once, so a
-- client that retries a batch does not duplicate history.
CREATE TABLE metrics (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    step INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    value REAL NOT NULL,
    is_nan INTEGER NOT NULL,
    model_id TEXT,
    dataset_name TEXT,
    dataset_digest TEXT,
    PRIMARY KEY (run_id, key, step, timestamp, value, is_nan)
) WITHOUT ROWID;
-- The latest point per (run, key): greatest (step, timestamp, value).
-- Search filters and orders on it without rescanning history.
CREATE TABLE latest_metrics (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    step INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    value REAL NOT NULL,
    is_nan INTEGER NOT NULL,
    model_id TEXT,
    dataset_name TEXT,
    dataset_digest TEXT,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX latest_metrics_by_key_value ON latest_metrics (key, value);
CREATE TABLE datasets (
    dataset_id TEXT PRIMARY KEY,
    experiment_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source TEXT NOT NULL,
    dataset_schema TEXT,
    profile TEXT,
    UNIQUE (experiment_id, name, digest)
);
CREATE TABLE run_dataset_inputs (
    run_id TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    context TEXT,
    tags_json TEXT NOT NULL,
    PRIMARY KEY (run_id, dataset_id)
);
CREATE TABLE run_model_inputs (
    run_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    PRIMARY KEY (run_id, model_id)
);
CREATE TABLE run_model_outputs (
    run_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    PRIMARY KEY (run_id, model_id)
);
CREATE TABLE logged_models (
    model_id TEXT PRIMARY KEY,
    experiment_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    artifact_uri TEXT NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT,
    model_type TEXT,
    source_run_id TEXT,
    creation_timestamp_ms INTEGER NOT NULL,
    last_updated_timestamp_ms INTEGER NOT NULL,
    lifecycle_stage TEXT NOT NULL
);
CREATE INDEX logged_models_by_experiment ON logged_models (experiment_id, creation_timestamp_ms DESC);
CREATE TABLE logged_model_tags (
    model_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);
CREATE TABLE logged_model_params (
    model_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);
CREATE TABLE registered_models (
    name TEXT PRIMARY KEY,
    creation_timestamp INTEGER NOT NULL,
    last_updated_timestamp INTEGER NOT NULL,
    description TEXT,
    -- Highest version number ever handed out, so deleted numbers are never reused.
    last_version INTEGER NOT NULL
);
CREATE TABLE registered_model_tags (
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
);
CREATE TABLE model_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    creation_timestamp INTEGER NOT NULL,
    last_updated_timestamp INTEGER NOT NULL,
    user_id TEXT,
    current_stage TEXT NOT NULL,
    description TEXT,
    source TEXT NOT NULL,
    storage_location TEXT NOT NULL,
    run_id TEXT,
    run_link TEXT,
    model_id TEXT,
    PRIMARY KEY (name, version)
);
CREATE TABLE model_version_tags (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, version, key)
);
CREATE TABLE registered_model_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, alias)
);
