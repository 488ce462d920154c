-- Campaigns: one SCOMO operation rolled out over many devices, and the
-- devices each one has taken.
--
-- Keep in step with ../sqlite/0004_campaigns.sql. Times are unix milliseconds.

CREATE TABLE campaigns (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL,
    -- The definition as created (JSON, see campaign::CampaignDef).
    definition    TEXT NOT NULL,
    state         TEXT NOT NULL,
    -- Why it is paused or aborted (JSON), when it is.
    reason        TEXT,
    current_stage BIGINT,
    -- Bumped by every resume: error thresholds count only outcomes of the
    -- current epoch.
    epoch         BIGINT NOT NULL DEFAULT 0,
    -- The last progress snapshot (JSON counts per stage and in total).
    status        TEXT,
    -- An operator command (pause, resume, cancel) the owner has not applied yet.
    command       TEXT,
    -- The node running it, while its lease lasts.
    owner         TEXT,
    lease_until   BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    finished_at   BIGINT
);
CREATE INDEX campaigns_live ON campaigns (id) WHERE finished_at IS NULL;

-- One row per device a campaign has taken, in arrival order (seq).
CREATE TABLE campaign_devices (
    seq         BIGSERIAL PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    device_id   TEXT NOT NULL,
    -- Set when its job starts.
    stage       BIGINT,
    job_id      BIGINT,
    started_at  BIGINT,
    -- Set when its job is over: succeeded, failed, timed_out, mismatch, cancelled.
    outcome     TEXT,
    result_code BIGINT,
    -- The result class of a failure (device_fault, download_server_fault, user_declined, other).
    class       TEXT,
    epoch       BIGINT,
    finished_at BIGINT,
    UNIQUE (campaign_id, device_id)
);
CREATE INDEX campaign_devices_running ON campaign_devices (campaign_id, job_id)
    WHERE job_id IS NOT NULL AND outcome IS NULL;
