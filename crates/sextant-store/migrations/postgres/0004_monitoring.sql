-- Monitoring, version 4 (the same on SQLite and PostgreSQL).
--
-- Ground-truth labels joined to the predictions they answer: one row per
-- predicted row. `label` and `outcome` are JSON documents (the label as the
-- caller sent it; the prediction's label, value and class probabilities as
-- the server logged them), so the store stays free of model semantics.
-- Times are microseconds since the Unix epoch.
CREATE TABLE feedback (
    deployment TEXT NOT NULL,
    prediction_id TEXT NOT NULL,
    row_index BIGINT NOT NULL,
    label TEXT NOT NULL,
    outcome TEXT NOT NULL,
    model TEXT NOT NULL,
    arm TEXT NOT NULL,
    predicted_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (deployment, prediction_id, row_index)
);
CREATE INDEX feedback_by_time ON feedback (deployment, predicted_at);

-- Alert rules per deployment (the rule and its evaluation state as JSON),
-- and every firing and resolution.
CREATE TABLE alert_rules (
    deployment TEXT NOT NULL,
    name TEXT NOT NULL,
    rule TEXT NOT NULL,
    state TEXT NOT NULL,
    created_by TEXT NOT NULL,
    creation_time BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    PRIMARY KEY (deployment, name)
);
CREATE TABLE alert_events (
    deployment TEXT NOT NULL,
    rule TEXT NOT NULL,
    status TEXT NOT NULL,
    severity TEXT NOT NULL,
    value TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    time BIGINT NOT NULL,
    PRIMARY KEY (deployment, rule, started_at, status)
);
CREATE INDEX alert_events_by_time ON alert_events (deployment, time);

-- Retraining triggers: what to run (JSON), and every run they started.
CREATE TABLE retrain_triggers (
    deployment TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    created_by TEXT NOT NULL,
    last_updated_time BIGINT NOT NULL
);
CREATE TABLE trigger_runs (
    id TEXT PRIMARY KEY,
    deployment TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    status TEXT NOT NULL,
    output TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX trigger_runs_by_time ON trigger_runs (deployment, started_at);
