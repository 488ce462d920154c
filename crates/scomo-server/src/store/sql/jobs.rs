//! [`JobStore`] on SQL.

use async_trait::async_trait;

use super::lite;
use super::sessions::unknown_device_on_fk;
use super::{begin_write, check_len, opt_ts, page_limit, ts, with_pool, SqlStore};
use crate::store::error::{Result, StoreError};
use crate::store::jobs_model::{
    CatalogRule, Delivery, Inventory, InventoryEntry, InventoryKind, Job, JobEvent, JobFilter,
    JobId, JobOp, JobOrigin, JobState, JobUpdate, NewCatalogRule, NewJob, RuleId,
};
use crate::store::model::{BatchId, Timestamp};
use crate::store::JobStore;

/// Longest id, name or version stored.
const MAX_TEXT_LEN: usize = 1024;
/// Longest plan (JSON).
const MAX_PLAN_LEN: usize = 256 * 1024;
/// Longest outcome detail or history line.
const MAX_NOTE_LEN: usize = 4096;

macro_rules! job_cols {
    () => {
        "id, device_id, op, pkg_id, component_id, delivery, origin, state, rev, batch_id, plan, \
         result_code, outcome, detail, wake_at, deadline_at, created_at, updated_at, finished_at"
    };
}

// Statements of the writes every job makes, shared by the PostgreSQL
// (sqlx) and the SQLite (group writer, rusqlite) code.
const JOB_LOCK_HOLDER: &str = "SELECT job_id FROM job_locks WHERE device_id = $1 AND lock_key = $2";
const INSERT_JOB: &str = concat!(
    "INSERT INTO jobs (device_id, op, pkg_id, component_id, delivery, origin, state, \
     plan, wake_at, deadline_at, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING ",
    job_cols!()
);
const INSERT_JOB_LOCK: &str =
    "INSERT INTO job_locks (device_id, lock_key, job_id) VALUES ($1, $2, $3)";
const INSERT_JOB_EVENT: &str =
    "INSERT INTO job_events (job_id, at, state, message) VALUES ($1, $2, $3, $4)";
const UPDATE_JOB: &str = concat!(
    "UPDATE jobs SET state = $3, rev = rev + 1, batch_id = $4, plan = $5, \
     result_code = $6, outcome = $7, detail = $8, wake_at = $9, deadline_at = $10, \
     updated_at = $11, finished_at = CASE WHEN $12 = 1 THEN $11 ELSE NULL END \
     WHERE id = $1 AND rev = $2 AND finished_at IS NULL RETURNING ",
    job_cols!()
);
// The fence of an update that writes more than the job row: checked first,
// so nothing else is written for an update that does not apply.
const JOB_AT_REV: &str =
    "SELECT state FROM jobs WHERE id = $1 AND rev = $2 AND finished_at IS NULL";
const JOB_AT_REV_PG: &str =
    "SELECT state FROM jobs WHERE id = $1 AND rev = $2 AND finished_at IS NULL FOR UPDATE";
const DELETE_JOB_LOCKS: &str = "DELETE FROM job_locks WHERE job_id = $1";
const DELETE_INVENTORY: &str = "DELETE FROM inventory WHERE device_id = $1";
const INSERT_INVENTORY: &str = "INSERT INTO inventory (device_id, kind, entry, item_id, name, \
     version, state, status, pkg_id_ref, env_type) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (device_id, kind, entry) DO NOTHING";
const INVENTORY_READ: &str = "INSERT INTO inventory_reads (device_id, read_at, method) \
     VALUES ($1, $2, $3) ON CONFLICT (device_id) DO UPDATE SET read_at = $2, method = $3";

fn lock_conflict(holder: i64, lock: &str, device_id: &str) -> StoreError {
    StoreError::Conflict {
        what: format!("job {holder} is already working on {lock:?} on device {device_id:?}"),
    }
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    device_id: String,
    op: String,
    pkg_id: Option<String>,
    component_id: Option<String>,
    delivery: String,
    origin: String,
    state: String,
    rev: i64,
    batch_id: Option<i64>,
    plan: String,
    result_code: Option<i64>,
    outcome: Option<String>,
    detail: Option<String>,
    wake_at: Option<i64>,
    deadline_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
}

impl JobRow {
    /// The row of a rusqlite query selecting `job_cols!()`.
    fn from_lite(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
        Ok(JobRow {
            id: r.get(0)?,
            device_id: r.get(1)?,
            op: r.get(2)?,
            pkg_id: r.get(3)?,
            component_id: r.get(4)?,
            delivery: r.get(5)?,
            origin: r.get(6)?,
            state: r.get(7)?,
            rev: r.get(8)?,
            batch_id: r.get(9)?,
            plan: r.get(10)?,
            result_code: r.get(11)?,
            outcome: r.get(12)?,
            detail: r.get(13)?,
            wake_at: r.get(14)?,
            deadline_at: r.get(15)?,
            created_at: r.get(16)?,
            updated_at: r.get(17)?,
            finished_at: r.get(18)?,
        })
    }
}

fn corrupt(what: &'static str, v: &str) -> StoreError {
    StoreError::Corrupt {
        what,
        reason: format!("unknown value {v:?}"),
    }
}

fn job_from_row(r: JobRow) -> Result<Job> {
    Ok(Job {
        id: JobId(r.id),
        op: JobOp::parse(&r.op).ok_or_else(|| corrupt("jobs.op", &r.op))?,
        delivery: Delivery::parse(&r.delivery)
            .ok_or_else(|| corrupt("jobs.delivery", &r.delivery))?,
        origin: JobOrigin::parse(&r.origin).ok_or_else(|| corrupt("jobs.origin", &r.origin))?,
        state: JobState::parse(&r.state).ok_or_else(|| corrupt("jobs.state", &r.state))?,
        device_id: r.device_id,
        pkg_id: r.pkg_id,
        component_id: r.component_id,
        rev: r.rev,
        batch_id: r.batch_id.map(BatchId),
        plan: r.plan,
        result_code: r.result_code.and_then(|c| u16::try_from(c).ok()),
        outcome: r.outcome,
        detail: r.detail,
        wake_at: opt_ts(r.wake_at),
        deadline_at: opt_ts(r.deadline_at),
        created_at: Timestamp::from_unix_millis(r.created_at),
        updated_at: Timestamp::from_unix_millis(r.updated_at),
        finished_at: opt_ts(r.finished_at),
    })
}

fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[derive(sqlx::FromRow)]
struct InventoryRow {
    kind: String,
    entry: String,
    item_id: Option<String>,
    name: Option<String>,
    version: Option<String>,
    state: Option<i64>,
    status: Option<i64>,
    pkg_id_ref: Option<String>,
    env_type: Option<String>,
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: i64,
    name: String,
    priority: i64,
    man: Option<String>,
    model: Option<String>,
    dev_typ: Option<String>,
    env_type: Option<String>,
    pkg_id: String,
    op: String,
    delivery: String,
    enabled: bool,
    created_at: i64,
}

fn rule_from_row(r: RuleRow) -> Result<CatalogRule> {
    Ok(CatalogRule {
        id: RuleId(r.id),
        rule: NewCatalogRule {
            name: r.name,
            priority: r.priority,
            man: r.man,
            model: r.model,
            dev_typ: r.dev_typ,
            env_type: r.env_type,
            pkg_id: r.pkg_id,
            op: JobOp::parse(&r.op).ok_or_else(|| corrupt("catalog_rules.op", &r.op))?,
            delivery: Delivery::parse(&r.delivery)
                .ok_or_else(|| corrupt("catalog_rules.delivery", &r.delivery))?,
            enabled: r.enabled,
        },
        created_at: Timestamp::from_unix_millis(r.created_at),
    })
}

#[async_trait]
impl JobStore for SqlStore {
    async fn create_job(&self, job: &NewJob, now: Timestamp) -> Result<Job> {
        for (field, v) in [
            ("package id", &job.pkg_id),
            ("component id", &job.component_id),
        ] {
            if let Some(v) = v {
                check_len(field, v, MAX_TEXT_LEN)?;
            }
        }
        if job.plan.len() > MAX_PLAN_LEN {
            return Err(StoreError::Invalid {
                field: "job plan",
                reason: format!("{} bytes, at most {MAX_PLAN_LEN}", job.plan.len()),
            });
        }
        for l in &job.locks {
            check_len("job lock", l, MAX_TEXT_LEN)?;
        }
        if let Some(writer) = &self.writer {
            let job = job.clone();
            let row = writer
                .write(move |c| {
                    for l in &job.locks {
                        let holder =
                            lite::first(c, JOB_LOCK_HOLDER, &[&job.device_id, l], |r| r.get(0))?;
                        if let Some(h) = holder {
                            return Err(lock_conflict(h, l, &job.device_id));
                        }
                    }
                    let row = lite::first(
                        c,
                        INSERT_JOB,
                        &[
                            &job.device_id,
                            &job.op.as_str(),
                            &job.pkg_id,
                            &job.component_id,
                            &job.delivery.as_str(),
                            &job.origin.as_str(),
                            &job.state.as_str(),
                            &job.plan,
                            &job.wake_at.map(ts),
                            &job.deadline_at.map(ts),
                            &ts(now),
                        ],
                        JobRow::from_lite,
                    )
                    .map_err(|e| lite::unknown_device(e, &job.device_id))?;
                    let row = lite::returned(row, "job")?;
                    for l in &job.locks {
                        lite::exec(c, INSERT_JOB_LOCK, &[&job.device_id, l, &row.id])?;
                    }
                    let event = format!("created by {}", job.origin);
                    lite::exec(
                        c,
                        INSERT_JOB_EVENT,
                        &[&row.id, &ts(now), &job.state.as_str(), &event],
                    )?;
                    Ok(row)
                })
                .await?;
            return job_from_row(row);
        }
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            for l in &job.locks {
                let holder: Option<i64> = sqlx::query_scalar(JOB_LOCK_HOLDER)
                    .bind(&job.device_id)
                    .bind(l)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(h) = holder {
                    return Err(lock_conflict(h, l, &job.device_id));
                }
            }
            let row: JobRow = sqlx::query_as(INSERT_JOB)
                .bind(&job.device_id)
                .bind(job.op.as_str())
                .bind(&job.pkg_id)
                .bind(&job.component_id)
                .bind(job.delivery.as_str())
                .bind(job.origin.as_str())
                .bind(job.state.as_str())
                .bind(&job.plan)
                .bind(job.wake_at.map(ts))
                .bind(job.deadline_at.map(ts))
                .bind(ts(now))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| unknown_device_on_fk(e, &job.device_id))?;
            for l in &job.locks {
                sqlx::query(INSERT_JOB_LOCK)
                    .bind(&job.device_id)
                    .bind(l)
                    .bind(row.id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(INSERT_JOB_EVENT)
                .bind(row.id)
                .bind(ts(now))
                .bind(job.state.as_str())
                .bind(format!("created by {}", job.origin))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            job_from_row(row)
        })
    }

    async fn job(&self, id: JobId) -> Result<Option<Job>> {
        const JOB: &str = concat!("SELECT ", job_cols!(), " FROM jobs WHERE id = $1");
        if let Some(lite) = &self.lite {
            return lite
                .read(|c| lite::first(c, JOB, &[&id.0], JobRow::from_lite))?
                .map(job_from_row)
                .transpose();
        }
        let row: Option<JobRow> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(JOB).bind(id.0).fetch_optional(pool).await?
        });
        row.map(job_from_row).transpose()
    }

    async fn list_jobs(
        &self,
        filter: &JobFilter,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<Job>> {
        let rows: Vec<JobRow> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(concat!(
                "SELECT ",
                job_cols!(),
                " FROM jobs WHERE ($1 IS NULL OR device_id = $1) AND ($2 IS NULL OR state = $2) \
                 AND ($3 = 0 OR finished_at IS NULL) AND ($4 IS NULL OR id < $4) \
                 AND ($5 IS NULL OR pkg_id = $5) ORDER BY id DESC LIMIT $6"
            ))
            .bind(&filter.device_id)
            .bind(filter.state.map(JobState::as_str))
            .bind(i64::from(filter.live))
            .bind(before.map(|b| b.0))
            .bind(&filter.pkg_id)
            .bind(page_limit(limit))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(job_from_row).collect()
    }

    async fn update_job(
        &self,
        id: JobId,
        rev: i64,
        update: &JobUpdate,
        now: Timestamp,
    ) -> Result<Option<Job>> {
        if update.plan.len() > MAX_PLAN_LEN {
            return Err(StoreError::Invalid {
                field: "job plan",
                reason: format!("{} bytes, at most {MAX_PLAN_LEN}", update.plan.len()),
            });
        }
        let terminal = update.state.is_terminal();
        let batch = update
            .enqueue
            .as_ref()
            .map(super::queue::PreparedBatch::new)
            .transpose()?;
        if let Some(t) = &update.token {
            check_len("download token", &t.token, MAX_TEXT_LEN)?;
        }
        // What goes with the update is written only if it applies: a
        // fenced update must not leave a batch or token behind.
        let extras = batch.is_some() || update.token.is_some() || update.notify;
        if let Some(writer) = &self.writer {
            let update = update.clone();
            let row = writer
                .write(move |c| {
                    let mut batch_id = update.batch_id;
                    if extras {
                        if lite::first(c, JOB_AT_REV, &[&id.0, &rev], |r| r.get::<_, String>(0))?
                            .is_none()
                        {
                            return Ok(None);
                        }
                        if let Some(t) = &update.token {
                            let n = lite::exec(
                                c,
                                super::packages::INSERT_DL_TOKEN,
                                &[&t.token, &t.pkg_id, &t.job_id, &ts(t.expires_at), &ts(now)],
                            )?;
                            if n == 0 {
                                return Err(StoreError::UnknownPackage {
                                    pkg_id: t.pkg_id.clone(),
                                });
                            }
                        }
                        if let Some(b) = &batch {
                            batch_id = Some(b.insert_lite(c, now)?);
                        }
                    }
                    let Some(row) = lite::first(
                        c,
                        UPDATE_JOB,
                        &[
                            &id.0,
                            &rev,
                            &update.state.as_str(),
                            &batch_id.map(|b| b.0),
                            &update.plan,
                            &update.result_code.map(i64::from),
                            &update.outcome.as_deref().map(|s| clip(s, MAX_NOTE_LEN)),
                            &update.detail.as_deref().map(|s| clip(s, MAX_NOTE_LEN)),
                            &update.wake_at.map(ts),
                            &update.deadline_at.map(ts),
                            &ts(now),
                            &i64::from(terminal),
                        ],
                        JobRow::from_lite,
                    )?
                    else {
                        return Ok(None);
                    };
                    if terminal {
                        lite::exec(c, DELETE_JOB_LOCKS, &[&id.0])?;
                        lite::exec(c, super::campaigns::NOTE_JOB_ENDED, &[&id.0])?;
                    }
                    if let Some(msg) = &update.event {
                        lite::exec(
                            c,
                            INSERT_JOB_EVENT,
                            &[
                                &id.0,
                                &ts(now),
                                &update.state.as_str(),
                                &clip(msg, MAX_NOTE_LEN),
                            ],
                        )?;
                    }
                    if update.notify {
                        lite::first(
                            c,
                            super::notify::ENQUEUE_SQLITE,
                            &[&row.device_id, &ts(now), &ts(now)],
                            |r| r.get::<_, i64>(0),
                        )?;
                    }
                    Ok(Some(row))
                })
                .await?;
            return row.map(job_from_row).transpose();
        }
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            let mut batch_id = update.batch_id;
            if extras {
                let at_rev: Option<String> =
                    sqlx::query_scalar(if pg { JOB_AT_REV_PG } else { JOB_AT_REV })
                        .bind(id.0)
                        .bind(rev)
                        .fetch_optional(&mut *tx)
                        .await?;
                if at_rev.is_none() {
                    return Ok(None);
                }
                if let Some(t) = &update.token {
                    let n = sqlx::query(super::packages::INSERT_DL_TOKEN)
                        .bind(&t.token)
                        .bind(&t.pkg_id)
                        .bind(t.job_id)
                        .bind(ts(t.expires_at))
                        .bind(ts(now))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if n == 0 {
                        return Err(StoreError::UnknownPackage {
                            pkg_id: t.pkg_id.clone(),
                        });
                    }
                }
                if let Some(b) = &batch {
                    batch_id = Some(super::queue::insert_batch!(&mut *tx, b, now));
                }
            }
            let row: Option<JobRow> = sqlx::query_as(UPDATE_JOB)
                .bind(id.0)
                .bind(rev)
                .bind(update.state.as_str())
                .bind(batch_id.map(|b| b.0))
                .bind(&update.plan)
                .bind(update.result_code.map(i64::from))
                .bind(update.outcome.as_deref().map(|s| clip(s, MAX_NOTE_LEN)))
                .bind(update.detail.as_deref().map(|s| clip(s, MAX_NOTE_LEN)))
                .bind(update.wake_at.map(ts))
                .bind(update.deadline_at.map(ts))
                .bind(ts(now))
                .bind(i64::from(terminal))
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            if terminal {
                sqlx::query(DELETE_JOB_LOCKS)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(super::campaigns::NOTE_JOB_ENDED)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(msg) = &update.event {
                sqlx::query(INSERT_JOB_EVENT)
                    .bind(id.0)
                    .bind(ts(now))
                    .bind(update.state.as_str())
                    .bind(clip(msg, MAX_NOTE_LEN))
                    .execute(&mut *tx)
                    .await?;
            }
            if update.notify {
                let _: i64 = sqlx::query_scalar(if pg {
                    super::notify::ENQUEUE_PG
                } else {
                    super::notify::ENQUEUE_SQLITE
                })
                .bind(&row.device_id)
                .bind(ts(now))
                .bind(ts(now))
                .fetch_one(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            job_from_row(row).map(Some)
        })
    }

    async fn note_job(&self, id: JobId, message: &str, now: Timestamp) -> Result<()> {
        with_pool!(self, |pool, _pg| {
            sqlx::query(
                "INSERT INTO job_events (job_id, at, state, message) \
                 SELECT id, $2, state, $3 FROM jobs WHERE id = $1",
            )
            .bind(id.0)
            .bind(ts(now))
            .bind(clip(message, MAX_NOTE_LEN))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn job_events(&self, id: JobId) -> Result<Vec<JobEvent>> {
        let rows: Vec<(i64, String, String)> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(
                "SELECT at, state, message FROM job_events WHERE job_id = $1 ORDER BY id",
            )
            .bind(id.0)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(at, state, message)| {
                Ok(JobEvent {
                    at: Timestamp::from_unix_millis(at),
                    state: JobState::parse(&state)
                        .ok_or_else(|| corrupt("job_events.state", &state))?,
                    message,
                })
            })
            .collect()
    }

    async fn due_jobs(&self, now: Timestamp, limit: u32) -> Result<Vec<Job>> {
        let rows: Vec<JobRow> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(concat!(
                "SELECT ",
                job_cols!(),
                " FROM jobs WHERE finished_at IS NULL AND \
                 ((wake_at IS NOT NULL AND wake_at <= $1) OR (deadline_at IS NOT NULL AND deadline_at <= $1)) \
                 ORDER BY id LIMIT $2"
            ))
            .bind(ts(now))
            .bind(page_limit(limit))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(job_from_row).collect()
    }

    async fn replace_inventory(
        &self,
        device_id: &str,
        entries: &[InventoryEntry],
        method: &str,
        now: Timestamp,
    ) -> Result<()> {
        for e in entries {
            check_len("inventory entry", &e.entry, MAX_TEXT_LEN)?;
            for v in [&e.item_id, &e.name, &e.version, &e.pkg_id_ref, &e.env_type]
                .into_iter()
                .flatten()
            {
                if v.len() > MAX_TEXT_LEN {
                    return Err(StoreError::Invalid {
                        field: "inventory value",
                        reason: format!("{} bytes, at most {MAX_TEXT_LEN}", v.len()),
                    });
                }
            }
        }
        if let Some(writer) = &self.writer {
            let (device_id, entries, method) =
                (device_id.to_owned(), entries.to_vec(), method.to_owned());
            return writer
                .write(move |c| {
                    lite::exec(c, DELETE_INVENTORY, &[&device_id])?;
                    for e in &entries {
                        let Some(kind) = e.kind else { continue };
                        lite::exec(
                            c,
                            INSERT_INVENTORY,
                            &[
                                &device_id,
                                &kind.as_str(),
                                &e.entry,
                                &e.item_id,
                                &e.name,
                                &e.version,
                                &e.state.map(i64::from),
                                &e.status.map(i64::from),
                                &e.pkg_id_ref,
                                &e.env_type,
                            ],
                        )
                        .map_err(|err| lite::unknown_device(err, &device_id))?;
                    }
                    lite::exec(c, INVENTORY_READ, &[&device_id, &ts(now), &method])
                        .map_err(|err| lite::unknown_device(err, &device_id))?;
                    Ok(())
                })
                .await;
        }
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            sqlx::query(DELETE_INVENTORY)
                .bind(device_id)
                .execute(&mut *tx)
                .await?;
            for e in entries {
                let Some(kind) = e.kind else { continue };
                sqlx::query(INSERT_INVENTORY)
                    .bind(device_id)
                    .bind(kind.as_str())
                    .bind(&e.entry)
                    .bind(&e.item_id)
                    .bind(&e.name)
                    .bind(&e.version)
                    .bind(e.state.map(i64::from))
                    .bind(e.status.map(i64::from))
                    .bind(&e.pkg_id_ref)
                    .bind(&e.env_type)
                    .execute(&mut *tx)
                    .await
                    .map_err(|err| unknown_device_on_fk(err, device_id))?;
            }
            sqlx::query(INVENTORY_READ)
                .bind(device_id)
                .bind(ts(now))
                .bind(method)
                .execute(&mut *tx)
                .await
                .map_err(|err| unknown_device_on_fk(err, device_id))?;
            tx.commit().await?;
        });
        Ok(())
    }

    async fn inventory(&self, device_id: &str) -> Result<Option<Inventory>> {
        with_pool!(self, |pool, _pg| {
            let read: Option<(i64, String)> =
                sqlx::query_as("SELECT read_at, method FROM inventory_reads WHERE device_id = $1")
                    .bind(device_id)
                    .fetch_optional(pool)
                    .await?;
            let Some((read_at, method)) = read else {
                return Ok(None);
            };
            let rows: Vec<InventoryRow> = sqlx::query_as(
                "SELECT kind, entry, item_id, name, version, state, status, pkg_id_ref, env_type \
                 FROM inventory WHERE device_id = $1 ORDER BY kind, entry",
            )
            .bind(device_id)
            .fetch_all(pool)
            .await?;
            let entries = rows
                .into_iter()
                .map(|r| {
                    Ok(InventoryEntry {
                        kind: Some(
                            InventoryKind::parse(&r.kind)
                                .ok_or_else(|| corrupt("inventory.kind", &r.kind))?,
                        ),
                        entry: r.entry,
                        item_id: r.item_id,
                        name: r.name,
                        version: r.version,
                        state: r.state.and_then(|v| u16::try_from(v).ok()),
                        status: r.status.and_then(|v| u16::try_from(v).ok()),
                        pkg_id_ref: r.pkg_id_ref,
                        env_type: r.env_type,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Some(Inventory {
                read_at: Timestamp::from_unix_millis(read_at),
                method,
                entries,
            }))
        })
    }

    async fn create_rule(&self, rule: &NewCatalogRule, now: Timestamp) -> Result<CatalogRule> {
        check_len("rule name", &rule.name, MAX_TEXT_LEN)?;
        check_len("package id", &rule.pkg_id, MAX_TEXT_LEN)?;
        for v in [&rule.man, &rule.model, &rule.dev_typ, &rule.env_type]
            .into_iter()
            .flatten()
        {
            check_len("rule match value", v, MAX_TEXT_LEN)?;
        }
        let row: RuleRow = with_pool!(self, |pool, _pg| {
            sqlx::query_as(
                "INSERT INTO catalog_rules (name, priority, man, model, dev_typ, env_type, pkg_id, \
                 op, delivery, enabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 RETURNING id, name, priority, man, model, dev_typ, env_type, pkg_id, op, delivery, \
                 enabled, created_at",
            )
            .bind(&rule.name)
            .bind(rule.priority)
            .bind(&rule.man)
            .bind(&rule.model)
            .bind(&rule.dev_typ)
            .bind(&rule.env_type)
            .bind(&rule.pkg_id)
            .bind(rule.op.as_str())
            .bind(rule.delivery.as_str())
            .bind(rule.enabled)
            .bind(ts(now))
            .fetch_one(pool)
            .await?
        });
        rule_from_row(row)
    }

    async fn rules(&self) -> Result<Vec<CatalogRule>> {
        let rows: Vec<RuleRow> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(
                "SELECT id, name, priority, man, model, dev_typ, env_type, pkg_id, op, delivery, \
                 enabled, created_at FROM catalog_rules ORDER BY priority DESC, id",
            )
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(rule_from_row).collect()
    }

    async fn delete_rule(&self, id: RuleId) -> Result<bool> {
        with_pool!(self, |pool, _pg| {
            let n = sqlx::query("DELETE FROM catalog_rules WHERE id = $1")
                .bind(id.0)
                .execute(pool)
                .await?
                .rows_affected();
            Ok(n > 0)
        })
    }
}
