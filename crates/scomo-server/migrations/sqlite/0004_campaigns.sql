-- Campaigns: one SCOMO operation rolled out over many devices, and the
-- devices each one has taken.
--
-- Keep in step with ../postgres/0004_campaigns.sql. Times are unix milliseconds.

CREATE TABLE campaigns (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    -- The definition as created (JSON, see campaign::CampaignDef).
    definition    TEXT NOT NULL,
    state         TEXT NOT NULL,
    -- Why it is paused or aborted (JSON), when it is.
    reason        TEXT,
    current_stage INTEGER,
    -- Bumped by every resume: error thresholds count only outcomes of the
    -- current epoch.
    epoch         INTEGER NOT NULL DEFAULT 0,
    -- The last progress snapshot (JSON counts per stage and in total).
    status        TEXT,
    -- An operator command (pause, resume, cancel) the owner has not applied yet.
    command       TEXT,
    -- The node running it, while its lease lasts.
    owner         TEXT,
    lease_until   INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    finished_at   INTEGER
);
CREATE INDEX campaigns_live ON campaigns (id) WHERE finished_at IS NULL;

-- One row per device a campaign has taken, in arrival order (seq).
CREATE TABLE campaign_devices (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    device_id   TEXT NOT NULL,
    -- Set when its job starts.
    stage       INTEGER,
    job_id      INTEGER,
    started_at  INTEGER,
    -- Set when its job is over: succeeded, failed, timed_out, mismatch, cancelled.
    outcome     TEXT,
    result_code INTEGER,
    -- The result class of a failure (device_fault, download_server_fault, user_declined, other).
    class       TEXT,
    epoch       INTEGER,
    finished_at INTEGER,
    UNIQUE (campaign_id, device_id)
);
CREATE INDEX campaign_devices_running ON campaign_devices (campaign_id, job_id)
    WHERE job_id IS NOT NULL AND outcome IS NULL;
