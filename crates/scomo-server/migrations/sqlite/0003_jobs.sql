-- SCOMO jobs, their history, the locks that keep two jobs off one
-- component, each device's inventory as last read, and catalog rules.
--
-- Keep in step with ../postgres/0003_jobs.sql. Times are unix milliseconds.

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id    TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    op           TEXT NOT NULL,
    pkg_id       TEXT,
    component_id TEXT,
    delivery     TEXT NOT NULL,
    origin       TEXT NOT NULL,
    state        TEXT NOT NULL,
    -- Bumped by every update: updates are fenced on it.
    rev          INTEGER NOT NULL DEFAULT 0,
    batch_id     INTEGER,
    -- The plan and progress (JSON, see store::jobs_model::JobPlan).
    plan         TEXT NOT NULL,
    result_code  INTEGER,
    outcome      TEXT,
    detail       TEXT,
    wake_at      INTEGER,
    deadline_at  INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    finished_at  INTEGER
);
CREATE INDEX jobs_device ON jobs (device_id, id);
CREATE INDEX jobs_state ON jobs (state, id);
CREATE INDEX jobs_wake ON jobs (wake_at) WHERE finished_at IS NULL;
CREATE INDEX jobs_deadline ON jobs (deadline_at) WHERE finished_at IS NULL;

CREATE TABLE job_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    state   TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX job_events_job ON job_events (job_id, id);

-- One row per (device, component or package) a live job works on.
CREATE TABLE job_locks (
    device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    lock_key  TEXT NOT NULL,
    job_id    INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (device_id, lock_key)
);
CREATE INDEX job_locks_job ON job_locks (job_id);

CREATE TABLE inventory (
    device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('delivered', 'deployed')),
    entry      TEXT NOT NULL,
    item_id    TEXT,
    name       TEXT,
    version    TEXT,
    state      INTEGER,
    status     INTEGER,
    pkg_id_ref TEXT,
    env_type   TEXT,
    PRIMARY KEY (device_id, kind, entry)
);
CREATE INDEX inventory_item ON inventory (kind, item_id, version);

CREATE TABLE inventory_reads (
    device_id TEXT PRIMARY KEY NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    read_at   INTEGER NOT NULL,
    method    TEXT NOT NULL
);

CREATE TABLE catalog_rules (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    priority     INTEGER NOT NULL DEFAULT 0,
    man          TEXT,
    model        TEXT,
    dev_typ      TEXT,
    env_type     TEXT,
    pkg_id       TEXT NOT NULL,
    op           TEXT NOT NULL,
    delivery     TEXT NOT NULL,
    enabled      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   INTEGER NOT NULL
);
