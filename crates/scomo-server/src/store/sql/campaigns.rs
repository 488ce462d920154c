//! [`CampaignStore`] on SQL.

use async_trait::async_trait;
use sqlx::QueryBuilder;

use super::devices::push_filter;
use super::lite;
use super::{begin_write, check_len, opt_ts, page_limit, ts, with_pool, SqlStore};
use crate::store::campaigns_model::{
    CampaignId, CampaignMember, CampaignRecord, CampaignUpdate, FinishedMemberJob, MemberOutcome,
    NewCampaign,
};
use crate::store::error::{Result, StoreError};
use crate::store::jobs_model::{JobId, JobState};
use crate::store::model::{DeviceFilter, Timestamp};
use crate::store::CampaignStore;

/// Longest campaign name.
const MAX_NAME_LEN: usize = 256;
/// Longest definition or status (JSON).
const MAX_JSON_LEN: usize = 1024 * 1024;
/// Members inserted per statement (two binds each).
const INSERT_CHUNK: usize = 500;

macro_rules! campaign_cols {
    () => {
        "id, name, definition, state, reason, current_stage, epoch, status, command, owner, \
         lease_until, created_at, updated_at, finished_at"
    };
}

macro_rules! member_cols {
    () => {
        "seq, device_id, stage, job_id, started_at, outcome, result_code, class, epoch, finished_at"
    };
}

const CLAIM_CAMPAIGNS: &str = concat!(
    "UPDATE campaigns SET owner = $1, lease_until = $2 WHERE finished_at IS NULL \
     AND (owner IS NULL OR owner = $1 OR lease_until IS NULL OR lease_until < $3) RETURNING ",
    campaign_cols!()
);
const SAVE_CAMPAIGN: &str = "UPDATE campaigns SET state = $3, reason = $4, current_stage = $5, \
     epoch = $6, status = $7, updated_at = $8, \
     finished_at = CASE WHEN $9 = 1 THEN $8 ELSE NULL END, \
     owner = CASE WHEN $9 = 1 THEN NULL ELSE owner END, \
     lease_until = CASE WHEN $9 = 1 THEN NULL ELSE lease_until END \
     WHERE id = $1 AND owner = $2 AND finished_at IS NULL";
const START_MEMBER: &str =
    "UPDATE campaign_devices SET stage = $3, job_id = NULL, started_at = $4 \
     WHERE campaign_id = $1 AND device_id = $2 AND outcome IS NULL";
const SET_MEMBER_JOB: &str =
    "UPDATE campaign_devices SET job_id = $3 WHERE campaign_id = $1 AND device_id = $2";
const FINISH_MEMBER: &str = "UPDATE campaign_devices SET outcome = $3, result_code = $4, \
     class = $5, epoch = $6, finished_at = $7 \
     WHERE campaign_id = $1 AND device_id = $2 AND outcome IS NULL";
/// The member's row in `campaign_finished` goes once its outcome is in.
const CLEAR_FINISHED: &str = "DELETE FROM campaign_finished WHERE campaign_id = $1 AND job_id = \
     (SELECT job_id FROM campaign_devices WHERE campaign_id = $1 AND device_id = $2)";
/// Whether job $1 is over (no row: deleted with its device). PostgreSQL
/// locks it, so that recording a member's job and ending that job in two
/// concurrent transactions cannot both miss the other: whichever comes
/// second sees the first.
const JOB_ENDED: &str = "SELECT finished_at FROM jobs WHERE id = $1";
const JOB_ENDED_PG: &str = "SELECT finished_at FROM jobs WHERE id = $1 FOR SHARE";
const NOTE_MEMBER_ENDED: &str = "INSERT INTO campaign_finished (campaign_id, job_id) \
     VALUES ($1, $2) ON CONFLICT DO NOTHING";
/// The job $1 is over: queued for its campaign's owner when a running
/// member has it (written in the transaction that ends the job).
pub(crate) const NOTE_JOB_ENDED: &str = "INSERT INTO campaign_finished (campaign_id, job_id) \
     SELECT campaign_id, job_id FROM campaign_devices WHERE job_id = $1 AND outcome IS NULL \
     ON CONFLICT DO NOTHING";
const CLEAR_CAMPAIGN_FINISHED: &str = "DELETE FROM campaign_finished WHERE campaign_id = $1";

#[derive(sqlx::FromRow)]
struct CampaignRow {
    id: i64,
    name: String,
    definition: String,
    state: String,
    reason: Option<String>,
    current_stage: Option<i64>,
    epoch: i64,
    status: Option<String>,
    command: Option<String>,
    owner: Option<String>,
    lease_until: Option<i64>,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
}

impl CampaignRow {
    /// The row of a rusqlite query selecting `campaign_cols!()`.
    fn from_lite(r: &rusqlite::Row<'_>) -> rusqlite::Result<CampaignRow> {
        Ok(CampaignRow {
            id: r.get(0)?,
            name: r.get(1)?,
            definition: r.get(2)?,
            state: r.get(3)?,
            reason: r.get(4)?,
            current_stage: r.get(5)?,
            epoch: r.get(6)?,
            status: r.get(7)?,
            command: r.get(8)?,
            owner: r.get(9)?,
            lease_until: r.get(10)?,
            created_at: r.get(11)?,
            updated_at: r.get(12)?,
            finished_at: r.get(13)?,
        })
    }
}

impl From<CampaignRow> for CampaignRecord {
    fn from(r: CampaignRow) -> CampaignRecord {
        CampaignRecord {
            id: CampaignId(r.id),
            name: r.name,
            definition: r.definition,
            state: r.state,
            reason: r.reason,
            current_stage: r.current_stage.and_then(|s| u32::try_from(s).ok()),
            epoch: r.epoch,
            status: r.status,
            command: r.command,
            owner: r.owner,
            lease_until: opt_ts(r.lease_until),
            created_at: Timestamp::from_unix_millis(r.created_at),
            updated_at: Timestamp::from_unix_millis(r.updated_at),
            finished_at: opt_ts(r.finished_at),
        }
    }
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    seq: i64,
    device_id: String,
    stage: Option<i64>,
    job_id: Option<i64>,
    started_at: Option<i64>,
    outcome: Option<String>,
    result_code: Option<i64>,
    class: Option<String>,
    epoch: Option<i64>,
    finished_at: Option<i64>,
}

impl From<MemberRow> for CampaignMember {
    fn from(r: MemberRow) -> CampaignMember {
        CampaignMember {
            seq: r.seq,
            device_id: r.device_id,
            stage: r.stage.and_then(|s| u32::try_from(s).ok()),
            job_id: r.job_id.map(JobId),
            started_at: opt_ts(r.started_at),
            outcome: r.outcome,
            result_code: r.result_code.and_then(|c| u16::try_from(c).ok()),
            class: r.class,
            epoch: r.epoch,
            finished_at: opt_ts(r.finished_at),
        }
    }
}

#[derive(sqlx::FromRow)]
struct FinishedRow {
    device_id: String,
    job_id: i64,
    state: Option<String>,
    result_code: Option<i64>,
}

fn check_json(field: &'static str, s: &str) -> Result<()> {
    if s.len() > MAX_JSON_LEN {
        return Err(StoreError::Invalid {
            field,
            reason: format!("{} bytes, at most {MAX_JSON_LEN}", s.len()),
        });
    }
    Ok(())
}

#[async_trait]
impl CampaignStore for SqlStore {
    async fn create_campaign(&self, c: &NewCampaign, now: Timestamp) -> Result<CampaignRecord> {
        check_len("campaign name", &c.name, MAX_NAME_LEN)?;
        check_json("campaign definition", &c.definition)?;
        let row: CampaignRow = with_pool!(self, |pool, _pg| {
            sqlx::query_as(concat!(
                "INSERT INTO campaigns (name, definition, state, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) RETURNING ",
                campaign_cols!()
            ))
            .bind(&c.name)
            .bind(&c.definition)
            .bind(&c.state)
            .bind(ts(now))
            .fetch_one(pool)
            .await?
        });
        Ok(row.into())
    }

    async fn campaign(&self, id: CampaignId) -> Result<Option<CampaignRecord>> {
        let row: Option<CampaignRow> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(concat!(
                "SELECT ",
                campaign_cols!(),
                " FROM campaigns WHERE id = $1"
            ))
            .bind(id.0)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(Into::into))
    }

    async fn list_campaigns(
        &self,
        before: Option<CampaignId>,
        limit: u32,
    ) -> Result<Vec<CampaignRecord>> {
        let rows: Vec<CampaignRow> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(concat!(
                "SELECT ",
                campaign_cols!(),
                " FROM campaigns WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2"
            ))
            .bind(before.map(|b| b.0))
            .bind(page_limit(limit))
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn request_campaign_command(
        &self,
        id: CampaignId,
        command: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let n = with_pool!(self, |pool, _pg| {
            sqlx::query(
                "UPDATE campaigns SET command = $2, updated_at = $3 \
                 WHERE id = $1 AND finished_at IS NULL",
            )
            .bind(id.0)
            .bind(command)
            .bind(ts(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n > 0)
    }

    async fn take_campaign_command(&self, id: CampaignId, owner: &str) -> Result<Option<String>> {
        let cmd: Option<Option<String>> = with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            let cmd: Option<Option<String>> = sqlx::query_scalar(
                "SELECT command FROM campaigns WHERE id = $1 AND owner = $2 AND command IS NOT NULL",
            )
            .bind(id.0)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
            if cmd.is_some() {
                sqlx::query("UPDATE campaigns SET command = NULL WHERE id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            cmd
        });
        Ok(cmd.flatten())
    }

    async fn claim_campaigns(
        &self,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<CampaignRecord>> {
        let rows: Vec<CampaignRow> = with_pool!(self, |pool, _pg| {
            // Most of the time there is nothing to run: look before taking
            // the write lock.
            let live: Option<i64> =
                sqlx::query_scalar("SELECT id FROM campaigns WHERE finished_at IS NULL LIMIT 1")
                    .fetch_optional(pool)
                    .await?;
            if live.is_none() {
                return Ok(Vec::new());
            }
            if let Some(writer) = &self.writer {
                let owner = owner.to_owned();
                writer
                    .write(move |c| {
                        lite::all(
                            c,
                            CLAIM_CAMPAIGNS,
                            &[&owner, &ts(until), &ts(now)],
                            CampaignRow::from_lite,
                        )
                    })
                    .await?
            } else {
                sqlx::query_as(CLAIM_CAMPAIGNS)
                    .bind(owner)
                    .bind(ts(until))
                    .bind(ts(now))
                    .fetch_all(pool)
                    .await?
            }
        });
        let mut out: Vec<CampaignRecord> = rows.into_iter().map(Into::into).collect();
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    async fn save_campaign(
        &self,
        id: CampaignId,
        owner: &str,
        u: &CampaignUpdate,
        now: Timestamp,
    ) -> Result<bool> {
        check_json("campaign status", &u.status)?;
        // On SQLite the campaign's writes go through the group writer, so
        // that its page cache stays valid (another connection's commit
        // would empty it).
        if let Some(writer) = &self.writer {
            let (owner, u) = (owner.to_owned(), u.clone());
            let n = writer
                .write(move |c| {
                    let n = lite::exec(
                        c,
                        SAVE_CAMPAIGN,
                        &[
                            &id.0,
                            &owner,
                            &u.state,
                            &u.reason,
                            &u.current_stage.map(i64::from),
                            &u.epoch,
                            &u.status,
                            &ts(now),
                            &i64::from(u.finished),
                        ],
                    )?;
                    if n > 0 && u.finished {
                        // Ends of members that got an outcome some other way.
                        lite::exec(c, CLEAR_CAMPAIGN_FINISHED, &[&id.0])?;
                    }
                    Ok(n)
                })
                .await?;
            return Ok(n > 0);
        }
        let n = with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            let n = sqlx::query(SAVE_CAMPAIGN)
                .bind(id.0)
                .bind(owner)
                .bind(&u.state)
                .bind(&u.reason)
                .bind(u.current_stage.map(i64::from))
                .bind(u.epoch)
                .bind(&u.status)
                .bind(ts(now))
                .bind(i64::from(u.finished))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n > 0 && u.finished {
                sqlx::query(CLEAR_CAMPAIGN_FINISHED)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            n
        });
        Ok(n > 0)
    }

    async fn add_members(
        &self,
        id: CampaignId,
        devices: &[String],
        _now: Timestamp,
    ) -> Result<Vec<String>> {
        for d in devices {
            check_len("device id", d, super::devices::MAX_DEVICE_ID_LEN)?;
        }
        let mut added: Vec<(i64, String)> = Vec::new();
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            for chunk in devices.chunks(INSERT_CHUNK) {
                let mut qb =
                    QueryBuilder::new("INSERT INTO campaign_devices (campaign_id, device_id) ");
                qb.push_values(chunk, |mut b, d| {
                    b.push_bind(id.0).push_bind(d.clone());
                });
                qb.push(
                    " ON CONFLICT (campaign_id, device_id) DO NOTHING RETURNING seq, device_id",
                );
                let rows: Vec<(i64, String)> = qb.build_query_as().fetch_all(&mut *tx).await?;
                added.extend(rows);
            }
            tx.commit().await?;
        });
        added.sort_by_key(|(seq, _)| *seq);
        Ok(added.into_iter().map(|(_, d)| d).collect())
    }

    async fn members(
        &self,
        id: CampaignId,
        after_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<CampaignMember>> {
        let limit = i64::from(limit.max(1));
        let rows: Vec<MemberRow> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(concat!(
                "SELECT ",
                member_cols!(),
                " FROM campaign_devices WHERE campaign_id = $1 AND ($2 IS NULL OR seq > $2) \
                 ORDER BY seq LIMIT $3"
            ))
            .bind(id.0)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn start_members(
        &self,
        id: CampaignId,
        starts: &[(String, u32)],
        now: Timestamp,
    ) -> Result<()> {
        if starts.is_empty() {
            return Ok(());
        }
        if let Some(writer) = &self.writer {
            let starts = starts.to_vec();
            return writer
                .write(move |c| {
                    for (device, stage) in &starts {
                        lite::exec(
                            c,
                            START_MEMBER,
                            &[&id.0, device, &i64::from(*stage), &ts(now)],
                        )?;
                    }
                    Ok(())
                })
                .await;
        }
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            for (device, stage) in starts {
                sqlx::query(START_MEMBER)
                    .bind(id.0)
                    .bind(device)
                    .bind(i64::from(*stage))
                    .bind(ts(now))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn set_member_jobs(&self, id: CampaignId, jobs: &[(String, JobId)]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        if let Some(writer) = &self.writer {
            let jobs = jobs.to_vec();
            return writer
                .write(move |c| {
                    for (device, job) in &jobs {
                        lite::exec(c, SET_MEMBER_JOB, &[&id.0, device, &job.0])?;
                        // A job that is over already was not queued when it
                        // ended (its member had no job yet).
                        let ended =
                            lite::first(c, JOB_ENDED, &[&job.0], |r| r.get::<_, Option<i64>>(0))?;
                        // Gone with its device, or finished.
                        if ended.is_none_or(|finished| finished.is_some()) {
                            lite::exec(c, NOTE_MEMBER_ENDED, &[&id.0, &job.0])?;
                        }
                    }
                    Ok(())
                })
                .await;
        }
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            for (device, job) in jobs {
                sqlx::query(SET_MEMBER_JOB)
                    .bind(id.0)
                    .bind(device)
                    .bind(job.0)
                    .execute(&mut *tx)
                    .await?;
                let ended: Option<Option<i64>> =
                    sqlx::query_scalar(if pg { JOB_ENDED_PG } else { JOB_ENDED })
                        .bind(job.0)
                        .fetch_optional(&mut *tx)
                        .await?;
                // Gone with its device, or finished.
                if ended.is_none_or(|finished| finished.is_some()) {
                    sqlx::query(NOTE_MEMBER_ENDED)
                        .bind(id.0)
                        .bind(job.0)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn finish_members(
        &self,
        id: CampaignId,
        outcomes: &[(String, MemberOutcome)],
        now: Timestamp,
    ) -> Result<u64> {
        if outcomes.is_empty() {
            return Ok(0);
        }
        if let Some(writer) = &self.writer {
            let outcomes = outcomes.to_vec();
            return writer
                .write(move |c| {
                    let mut n = 0;
                    for (device, o) in &outcomes {
                        n += lite::exec(
                            c,
                            FINISH_MEMBER,
                            &[
                                &id.0,
                                device,
                                &o.outcome,
                                &o.result_code.map(i64::from),
                                &o.class,
                                &o.epoch,
                                &ts(now),
                            ],
                        )?;
                        lite::exec(c, CLEAR_FINISHED, &[&id.0, device])?;
                    }
                    Ok(n)
                })
                .await;
        }
        let n = with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            let mut n = 0;
            for (device, o) in outcomes {
                n += sqlx::query(FINISH_MEMBER)
                    .bind(id.0)
                    .bind(device)
                    .bind(&o.outcome)
                    .bind(o.result_code.map(i64::from))
                    .bind(&o.class)
                    .bind(o.epoch)
                    .bind(ts(now))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query(CLEAR_FINISHED)
                    .bind(id.0)
                    .bind(device)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            n
        });
        Ok(n)
    }

    async fn finished_member_jobs(
        &self,
        id: CampaignId,
        limit: u32,
    ) -> Result<Vec<FinishedMemberJob>> {
        let limit = i64::from(limit.max(1));
        // A job deleted with its device counts as cancelled.
        let rows: Vec<FinishedRow> = with_pool!(self, |pool, _pg| {
            // What the jobs' ends queued (`campaign_finished`): never a walk
            // over the members still running.
            sqlx::query_as(
                "SELECT m.device_id, f.job_id, j.state, j.result_code \
                 FROM campaign_finished f \
                 JOIN campaign_devices m ON m.campaign_id = f.campaign_id \
                 AND m.job_id = f.job_id AND m.outcome IS NULL \
                 LEFT JOIN jobs j ON j.id = f.job_id \
                 WHERE f.campaign_id = $1 ORDER BY f.job_id LIMIT $2",
            )
            .bind(id.0)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| FinishedMemberJob {
                device_id: r.device_id,
                job_id: JobId(r.job_id),
                state: r
                    .state
                    .as_deref()
                    .and_then(JobState::parse)
                    .unwrap_or(JobState::Cancelled),
                result_code: r.result_code.and_then(|c| u16::try_from(c).ok()),
            })
            .collect())
    }

    async fn select_new_devices(
        &self,
        id: CampaignId,
        filter: &DeviceFilter,
        limit: u32,
    ) -> Result<Vec<String>> {
        let limit = i64::from(limit.max(1));
        let ids: Vec<String> = with_pool!(self, |pool, _pg| {
            let mut qb = QueryBuilder::new("SELECT d.id FROM devices d");
            push_filter(&mut qb, filter);
            qb.push(
                " AND NOT EXISTS (SELECT 1 FROM campaign_devices m WHERE m.device_id = d.id \
                 AND m.campaign_id = ",
            )
            .push_bind(id.0)
            .push(") ORDER BY d.id LIMIT ")
            .push_bind(limit);
            qb.build_query_scalar().fetch_all(pool).await?
        });
        Ok(ids)
    }

    async fn deployed_versions(&self, component_id: &str) -> Result<Vec<(String, Option<String>)>> {
        let rows: Vec<(String, Option<String>)> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(
                "SELECT device_id, version FROM inventory WHERE kind = 'deployed' AND item_id = $1",
            )
            .bind(component_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}
