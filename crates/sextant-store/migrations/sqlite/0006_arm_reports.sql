-- Several servers, version 6 (the same on SQLite and PostgreSQL).
--
-- Each process's counters of the deployment revision it serves, per arm, so
-- that the server leading background work judges a canary on the traffic of
-- every server and replica, not only its own. A reporter is a server process
-- or a serving replica (whichever server received its report); each keeps
-- one row per deployment, replaced as it reports. `arms` is JSON: arm name to
-- cumulative counters of that revision. Times are milliseconds.
CREATE TABLE deployment_arm_reports (
    deployment TEXT NOT NULL,
    reporter TEXT NOT NULL,
    revision BIGINT NOT NULL,
    arms TEXT NOT NULL,
    reported_at BIGINT NOT NULL,
    PRIMARY KEY (deployment, reporter)
);
