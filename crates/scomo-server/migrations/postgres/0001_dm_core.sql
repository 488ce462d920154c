-- DM core: devices, DM sessions, the command queue, generic alerts,
-- package 0 notifications and admin API tokens.
--
-- Keep in step with ../sqlite/0001_dm_core.sql: same tables, columns and
-- meaning. Times are unix milliseconds. Queue-like tables use AUTOINCREMENT
-- so ids are never reused and order rows FIFO. Device ids use COLLATE "C" so
-- ordering (keyset paging) is byte order, as in SQLite.

CREATE TABLE devices (
    id               TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    origin           TEXT NOT NULL CHECK (origin IN ('provisioned', 'auto')),
    -- Device -> server: MD5(username ":" password), never the password.
    client_auth_type TEXT CHECK (client_auth_type IN ('basic', 'md5', 'hmac')),
    client_username  TEXT,
    client_user_hash BYTEA,
    -- Server -> device: the password itself (basic needs it).
    server_auth_type TEXT CHECK (server_auth_type IN ('basic', 'md5', 'hmac')),
    server_id        TEXT,
    server_password  TEXT,
    -- Raw nonce bytes: issued by us for the device / by the device for us.
    client_nonce     BYTEA,
    server_nonce     BYTEA,
    notify_addr      TEXT,
    -- Copied from device_nodes for fleet filters.
    man              TEXT,
    model            TEXT,
    dev_typ          TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    first_seen_at    BIGINT,
    last_seen_at     BIGINT
);
CREATE INDEX devices_man_model ON devices (man, model);
CREATE INDEX devices_dev_typ ON devices (dev_typ);

-- ./DevInfo and ./DevDetail as last reported.
CREATE TABLE device_nodes (
    device_id  TEXT COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, path)
);

-- Labels; a tag is a label with an empty value.
CREATE TABLE device_labels (
    device_id TEXT COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    key       TEXT COLLATE "C" NOT NULL,
    value     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (device_id, key)
);
CREATE INDEX device_labels_key_value ON device_labels (key, value);

-- Audit log of DM sessions.
CREATE TABLE dm_sessions (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id        TEXT COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    session_id       TEXT NOT NULL,
    node_id          TEXT NOT NULL,
    initiation       BIGINT NOT NULL,
    started_at       BIGINT NOT NULL,
    last_activity_at BIGINT NOT NULL,
    ended_at         BIGINT,
    outcome          TEXT CHECK (outcome IN ('ok', 'auth_failed', 'aborted', 'error', 'lost')),
    messages_in      BIGINT NOT NULL DEFAULT 0,
    messages_out     BIGINT NOT NULL DEFAULT 0,
    detail           TEXT
);
CREATE INDEX dm_sessions_device ON dm_sessions (device_id, id);
CREATE INDEX dm_sessions_open ON dm_sessions (node_id, last_activity_at) WHERE ended_at IS NULL;

-- Batches of DM commands queued for a device (the requeue rule is in
-- src/store/mod.rs).
CREATE TABLE command_batches (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id     TEXT COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    owner         TEXT COLLATE "C" NOT NULL,
    commands      TEXT NOT NULL, -- JSON array of omadm_wire::model::Command
    command_count BIGINT NOT NULL,
    idempotent    BOOLEAN NOT NULL,
    state         TEXT NOT NULL CHECK (state IN
                      ('pending', 'in_flight', 'sent', 'completed', 'unacknowledged', 'cancelled')),
    session_ref   BIGINT REFERENCES dm_sessions (id) ON DELETE SET NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    claimed_at    BIGINT,
    sent_at       BIGINT,
    finished_at   BIGINT,
    -- Delivery of the finished batch to its owner (poll_finished/ack_finished).
    lease_owner   TEXT,
    lease_until   BIGINT,
    reported_at   BIGINT
);
CREATE INDEX command_batches_pending ON command_batches (device_id, id) WHERE state = 'pending';
CREATE INDEX command_batches_session ON command_batches (session_ref) WHERE state IN ('in_flight', 'sent');
CREATE INDEX command_batches_owner ON command_batches (owner, id);
CREATE INDEX command_batches_unreported ON command_batches (id)
    WHERE finished_at IS NOT NULL AND reported_at IS NULL;

-- Status and results per command (index in depth-first pre-order).
CREATE TABLE command_outcomes (
    batch_id    BIGINT NOT NULL REFERENCES command_batches (id) ON DELETE CASCADE,
    cmd_index   BIGINT NOT NULL,
    status      BIGINT NOT NULL,
    results     TEXT NOT NULL, -- JSON array of omadm_wire::model::Results
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (batch_id, cmd_index)
);

-- Exec correlators of queued batches, to route Generic Alerts to owners.
CREATE TABLE batch_correlators (
    device_id  TEXT COLLATE "C" NOT NULL,
    correlator TEXT NOT NULL,
    batch_id   BIGINT NOT NULL REFERENCES command_batches (id) ON DELETE CASCADE,
    PRIMARY KEY (device_id, correlator, batch_id)
);
CREATE INDEX batch_correlators_batch ON batch_correlators (batch_id);

-- Items of received Generic Alerts (1226).
CREATE TABLE generic_alerts (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id    TEXT COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    session_ref  BIGINT REFERENCES dm_sessions (id) ON DELETE SET NULL,
    code         BIGINT NOT NULL,
    correlator   TEXT,
    alert_type   TEXT,
    format       TEXT,
    mark         TEXT,
    source_uri   TEXT,
    target_uri   TEXT,
    data         TEXT, -- JSON of omadm_wire::model::Data
    batch_id     BIGINT REFERENCES command_batches (id) ON DELETE SET NULL,
    owner        TEXT,
    received_at  BIGINT NOT NULL,
    lease_owner  TEXT,
    lease_until  BIGINT,
    processed_at BIGINT
);
CREATE INDEX generic_alerts_device ON generic_alerts (device_id, id);
CREATE INDEX generic_alerts_correlator ON generic_alerts (correlator);
CREATE INDEX generic_alerts_unprocessed ON generic_alerts (id) WHERE processed_at IS NULL;

-- Package 0 deliveries, retried with backoff until the device calls.
CREATE TABLE notifications (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id       TEXT COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'cancelled', 'expired')),
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_attempt_at BIGINT,
    last_error      TEXT,
    claimed_by      TEXT,
    closed_at       BIGINT
);
CREATE UNIQUE INDEX notifications_one_pending ON notifications (device_id) WHERE state = 'pending';
CREATE INDEX notifications_due ON notifications (next_attempt_at, id) WHERE state = 'pending';

-- Admin API tokens: only SHA-256 (hex) of the clear text.
CREATE TABLE api_tokens (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
