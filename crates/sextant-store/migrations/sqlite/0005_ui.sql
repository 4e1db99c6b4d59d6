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
