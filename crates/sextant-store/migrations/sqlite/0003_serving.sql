-- Serving, version 3 (the same on SQLite and PostgreSQL): deployments and their revision history. The spec is
-- the JSON document of sextant-api's `v1::DeploymentSpec`, opaque to the
-- store. Every change appends a revision; the deployment row holds the
-- latest one, and its `revision` guards concurrent changes.
CREATE TABLE deployments (
    name TEXT PRIMARY KEY,
    revision BIGINT NOT NULL,
    spec TEXT NOT NULL,
    description TEXT NOT NULL,
    created_by TEXT NOT NULL,
    creation_time BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL
);
CREATE TABLE deployment_revisions (
    name TEXT NOT NULL,
    revision BIGINT NOT NULL,
    spec TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    time BIGINT NOT NULL,
    PRIMARY KEY (name, revision)
);
