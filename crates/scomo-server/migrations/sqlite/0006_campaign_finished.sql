-- Campaign members whose job is over and whose outcome the campaign has not
-- recorded yet: written with what ends the job, read and cleared by the
-- campaign's owner.
--
-- Keep in step with ../postgres/0006_campaign_finished.sql.
--
-- The owner used to find them by walking every running member of the
-- campaign and its job, each round, and a round follows every job that
-- ends: with jobs that take minutes (real downloads and installs) and tens
-- of thousands of members running, each ending job cost a walk over all of
-- them. A row is added in the transaction that ends the job (its last
-- update, or the deletion of its device), or that records the member's job
-- when that job has already ended.
CREATE TABLE campaign_finished (
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    job_id      INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, job_id)
);

-- A job's running member, for the job's end.
CREATE INDEX campaign_devices_job ON campaign_devices (job_id)
    WHERE job_id IS NOT NULL AND outcome IS NULL;

-- Jobs that ended before this migration.
INSERT INTO campaign_finished (campaign_id, job_id)
SELECT m.campaign_id, m.job_id FROM campaign_devices m LEFT JOIN jobs j ON j.id = m.job_id
WHERE m.job_id IS NOT NULL AND m.outcome IS NULL AND (j.id IS NULL OR j.finished_at IS NOT NULL);
