-- Web UI, version 5 (the same on SQLite and PostgreSQL).
--
-- Saved views: a page's whole state (its path and query string, which can be
-- tens of kilobytes for a comparison of many runs) under a short id, so a
-- view is shared as `/v/{id}`. The id is derived from the target, so saving
-- the same view twice gives the same link. Opening a view applies the
-- opener's permissions like any other page. Times are milliseconds.
CREATE TABLE saved_views (
    view_id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- A counter per (run, metric) that every write of that metric's points
-- moves on, so the UI can keep a metric's history in memory and know, with
-- one small query, whether it is still whole. No row means nothing has been
-- written since this table exists (generation 0).
CREATE TABLE metric_generations (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    generation BIGINT NOT NULL,
    PRIMARY KEY (run_id, key)
);

-- Child runs by parent (the runs table counts them, a run page lists them):
-- only the parent tags, whose values are run ids.
CREATE INDEX run_tags_by_parent ON run_tags (value) WHERE key = 'mlflow.parentRunId';
