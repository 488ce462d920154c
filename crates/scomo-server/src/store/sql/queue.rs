//! [`CommandQueue`] on SQL.

use std::collections::BTreeMap;

use async_trait::async_trait;
use omadm_wire::model::{Command, Results};
use omadm_wire::StatusCode;
use sqlx::QueryBuilder;

use super::lite;
use super::{begin_write, check_len, count, opt_ts, page_limit, pick, ts, with_pool, SqlStore};
use crate::store::error::{Result, StoreError};
use crate::store::model::{
    command_count, correlators, first_unqueueable, Batch, BatchId, BatchState, CommandOutcome,
    Lease, NewBatch, OutcomeWrite, OutcomesReport, SessionKey, Timestamp,
};
use crate::store::CommandQueue;

/// Most commands in a batch, counted as [`command_count`] does.
pub(crate) const MAX_BATCH_COMMANDS: u32 = 1024;
/// Longest owner tag, correlator or lease holder.
pub(crate) const MAX_TAG_LEN: usize = 256;
/// Largest serialized commands or results of one command.
pub(crate) const MAX_JSON_LEN: usize = 16 << 20;

macro_rules! batch_cols {
    () => {
        "id, device_id, owner, commands, command_count, idempotent, state, session_ref, \
         attempts, created_at, claimed_at, sent_at, finished_at"
    };
}

#[derive(sqlx::FromRow)]
pub(crate) struct BatchRow {
    id: i64,
    device_id: String,
    owner: String,
    commands: String,
    command_count: i64,
    idempotent: bool,
    state: String,
    session_ref: Option<i64>,
    attempts: i64,
    created_at: i64,
    claimed_at: Option<i64>,
    sent_at: Option<i64>,
    finished_at: Option<i64>,
}

impl BatchRow {
    /// The row of a rusqlite query selecting `batch_cols!()`.
    pub(crate) fn from_lite(r: &rusqlite::Row<'_>) -> rusqlite::Result<BatchRow> {
        Ok(BatchRow {
            id: r.get(0)?,
            device_id: r.get(1)?,
            owner: r.get(2)?,
            commands: r.get(3)?,
            command_count: r.get(4)?,
            idempotent: r.get(5)?,
            state: r.get(6)?,
            session_ref: r.get(7)?,
            attempts: r.get(8)?,
            created_at: r.get(9)?,
            claimed_at: r.get(10)?,
            sent_at: r.get(11)?,
            finished_at: r.get(12)?,
        })
    }
}

pub(super) const INSERT_BATCH: &str = "INSERT INTO command_batches (device_id, owner, commands, \
     command_count, idempotent, state, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6) \
     RETURNING id";
pub(super) const INSERT_CORRELATOR: &str =
    "INSERT INTO batch_correlators (device_id, correlator, batch_id) \
     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
const ACK_FINISHED: &str = "UPDATE command_batches SET reported_at = $2 \
     WHERE id = $1 AND finished_at IS NOT NULL AND reported_at IS NULL";

/// A [`NewBatch`] checked and serialized, ready to insert.
pub(super) struct PreparedBatch {
    pub(super) device_id: String,
    pub(super) owner: String,
    pub(super) json: String,
    pub(super) count: u32,
    pub(super) idempotent: bool,
    pub(super) correlators: Vec<String>,
}

impl PreparedBatch {
    /// Checks `batch` (owner, command count, what may be queued,
    /// correlators) and serializes its commands, in the caller's task.
    pub(super) fn new(batch: &NewBatch) -> Result<PreparedBatch> {
        check_len("owner", &batch.owner, MAX_TAG_LEN)?;
        let n = command_count(&batch.commands);
        if n == 0 || n > MAX_BATCH_COMMANDS {
            return Err(StoreError::Invalid {
                field: "commands",
                reason: format!("{n} commands, expected 1..={MAX_BATCH_COMMANDS}"),
            });
        }
        if let Some(name) = first_unqueueable(&batch.commands) {
            return Err(StoreError::Invalid {
                field: "commands",
                reason: format!("{name} cannot be queued"),
            });
        }
        let mut tags = Vec::new();
        correlators(&batch.commands, &mut tags);
        for t in &tags {
            check_len("correlator", t, MAX_TAG_LEN)?;
        }
        Ok(PreparedBatch {
            device_id: batch.device_id.clone(),
            owner: batch.owner.clone(),
            json: to_json("commands", &batch.commands)?,
            count: n,
            idempotent: batch.idempotent,
            correlators: tags,
        })
    }

    /// Inserts the batch (pending) and its correlators on SQLite.
    pub(super) fn insert_lite(&self, c: &rusqlite::Connection, now: Timestamp) -> Result<BatchId> {
        let id = lite::first(
            c,
            INSERT_BATCH,
            &[
                &self.device_id,
                &self.owner,
                &self.json,
                &i64::from(self.count),
                &self.idempotent,
                &ts(now),
            ],
            |r| r.get::<_, i64>(0),
        )
        .map_err(|e| lite::unknown_device(e, &self.device_id))?;
        let id = lite::returned(id, "batch")?;
        for t in &self.correlators {
            lite::exec(c, INSERT_CORRELATOR, &[&self.device_id, t, &id])?;
        }
        Ok(BatchId(id))
    }
}

/// Inserts a [`PreparedBatch`] (pending) and its correlators through sqlx
/// on the connection `$conn` (inside a transaction); evaluates to its id.
macro_rules! insert_batch {
    ($conn:expr, $p:expr, $now:expr) => {{
        let p: &$crate::store::sql::queue::PreparedBatch = &$p;
        let id: std::result::Result<i64, sqlx::Error> =
            sqlx::query_scalar($crate::store::sql::queue::INSERT_BATCH)
                .bind(&p.device_id)
                .bind(&p.owner)
                .bind(&p.json)
                .bind(i64::from(p.count))
                .bind(p.idempotent)
                .bind($crate::store::sql::ts($now))
                .fetch_one($conn)
                .await;
        let id =
            id.map_err(|e| $crate::store::sql::sessions::unknown_device_on_fk(e, &p.device_id))?;
        for t in &p.correlators {
            sqlx::query($crate::store::sql::queue::INSERT_CORRELATOR)
                .bind(&p.device_id)
                .bind(t)
                .bind(id)
                .execute($conn)
                .await?;
        }
        BatchId(id)
    }};
}
pub(super) use insert_batch;

#[derive(sqlx::FromRow)]
struct OutcomeRow {
    batch_id: i64,
    cmd_index: i64,
    status: i64,
    results: String,
    recorded_at: i64,
}

/// Why a write to batch `$batch` by `$session` matched nothing, inside `$conn`.
macro_rules! batch_gone {
    ($conn:expr, $batch:expr, $session:expr) => {{
        let batch: BatchId = $batch;
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM command_batches WHERE id = $1")
            .bind(batch.0)
            .fetch_optional($conn)
            .await?;
        match found {
            None => StoreError::UnknownBatch { batch },
            Some(_) => StoreError::NotInFlight {
                batch,
                session: $session,
            },
        }
    }};
}

#[async_trait]
impl CommandQueue for SqlStore {
    async fn enqueue_batch(&self, batch: &NewBatch, now: Timestamp) -> Result<BatchId> {
        let p = PreparedBatch::new(batch)?;
        if let Some(writer) = &self.writer {
            return writer.write(move |c| p.insert_lite(c, now)).await;
        }
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            let id = insert_batch!(&mut *tx, p, now);
            tx.commit().await?;
            Ok(id)
        })
    }

    async fn has_pending_batches(&self, device_id: &str) -> Result<bool> {
        const SQL: &str =
            "SELECT id FROM command_batches WHERE device_id = $1 AND state = 'pending' LIMIT 1";
        if let Some(lite) = &self.lite {
            return lite.read(|c| {
                Ok(super::lite::first(c, SQL, &[&device_id], |r| r.get::<_, i64>(0))?.is_some())
            });
        }
        with_pool!(self, |pool, _pg| {
            let found: Option<i64> = sqlx::query_scalar(SQL)
                .bind(device_id)
                .fetch_optional(pool)
                .await?;
            Ok(found.is_some())
        })
    }

    async fn claim_batches(
        &self,
        session: SessionKey,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<Batch>> {
        let rows: Vec<BatchRow> = with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            // Locking the session row orders this claim against a concurrent
            // finish_session, which settles the batches the claim adds.
            let found: Option<(String, Option<i64>)> = sqlx::query_as(pick(
                pg,
                "SELECT device_id, ended_at FROM dm_sessions WHERE id = $1 FOR UPDATE",
                "SELECT device_id, ended_at FROM dm_sessions WHERE id = $1",
            ))
            .bind(session.0)
            .fetch_optional(&mut *tx)
            .await?;
            let device_id = match found {
                None => return Err(StoreError::UnknownSession { session }),
                Some((_, Some(_))) => return Err(StoreError::SessionEnded { session }),
                Some((device_id, None)) => device_id,
            };
            let rows = sqlx::query_as(pick(
                pg,
                concat!(
                    "WITH picked AS MATERIALIZED (SELECT id FROM command_batches \
                     WHERE device_id = $3 AND state = 'pending' ORDER BY id LIMIT $4 \
                     FOR UPDATE SKIP LOCKED) \
                     UPDATE command_batches SET state = 'in_flight', session_ref = $1, \
                     claimed_at = $2, sent_at = NULL, attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM picked) AND state = 'pending' RETURNING ",
                    batch_cols!()
                ),
                concat!(
                    "WITH picked AS MATERIALIZED (SELECT id FROM command_batches \
                     WHERE device_id = $3 AND state = 'pending' ORDER BY id LIMIT $4) \
                     UPDATE command_batches SET state = 'in_flight', session_ref = $1, \
                     claimed_at = $2, sent_at = NULL, attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM picked) AND state = 'pending' RETURNING ",
                    batch_cols!()
                ),
            ))
            .bind(session.0)
            .bind(ts(now))
            .bind(&device_id)
            .bind(page_limit(limit))
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            rows
        });
        let mut batches = rows
            .into_iter()
            .map(|r| batch_from_row(r, Vec::new()))
            .collect::<Result<Vec<_>>>()?;
        batches.sort_by_key(|b| b.id);
        Ok(batches)
    }

    async fn mark_batch_sent(
        &self,
        batch: BatchId,
        session: SessionKey,
        now: Timestamp,
    ) -> Result<()> {
        with_pool!(self, |pool, _pg| {
            let n = sqlx::query(
                "UPDATE command_batches SET state = 'sent', sent_at = COALESCE(sent_at, $3) \
                 WHERE id = $1 AND session_ref = $2 AND state IN ('in_flight', 'sent')",
            )
            .bind(batch.0)
            .bind(session.0)
            .bind(ts(now))
            .execute(pool)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(batch_gone!(pool, batch, session));
            }
            Ok(())
        })
    }

    async fn record_outcome(
        &self,
        batch: BatchId,
        session: SessionKey,
        index: u32,
        status: StatusCode,
        results: &[Results],
        now: Timestamp,
    ) -> Result<()> {
        let json = to_json("results", results)?;
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            let held: Option<i64> = sqlx::query_scalar(pick(
                pg,
                "SELECT command_count FROM command_batches WHERE id = $1 AND session_ref = $2 \
                 AND state IN ('in_flight', 'sent') FOR UPDATE",
                "SELECT command_count FROM command_batches WHERE id = $1 AND session_ref = $2 \
                 AND state IN ('in_flight', 'sent')",
            ))
            .bind(batch.0)
            .bind(session.0)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(n) = held else {
                return Err(batch_gone!(&mut *tx, batch, session));
            };
            check_index(index, n)?;
            sqlx::query(
                "INSERT INTO command_outcomes (batch_id, cmd_index, status, results, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (batch_id, cmd_index) DO UPDATE \
                 SET status = excluded.status, results = excluded.results, \
                 recorded_at = excluded.recorded_at",
            )
            .bind(batch.0)
            .bind(i64::from(index))
            .bind(i64::from(status.0))
            .bind(&json)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
            // A status proves the batch went out, even if mark_batch_sent
            // was skipped.
            sqlx::query(
                "UPDATE command_batches SET state = 'sent', sent_at = COALESCE(sent_at, $2) \
                 WHERE id = $1 AND state = 'in_flight'",
            )
            .bind(batch.0)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    async fn record_outcomes(
        &self,
        session: SessionKey,
        outcomes: &[OutcomeWrite<'_>],
        complete: &[BatchId],
        now: Timestamp,
    ) -> Result<OutcomesReport> {
        let mut report = OutcomesReport::default();
        if outcomes.is_empty() && complete.is_empty() {
            return Ok(report);
        }
        let jsons = outcomes
            .iter()
            .map(|o| to_json("results", o.results))
            .collect::<Result<Vec<_>>>()?;
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            // Which of the batches this session still holds, with their size.
            let mut held: BTreeMap<BatchId, i64> = BTreeMap::new();
            let mut ids: Vec<BatchId> = outcomes.iter().map(|o| o.batch).collect();
            ids.extend_from_slice(complete);
            ids.sort();
            ids.dedup();
            for b in &ids {
                let n: Option<i64> = sqlx::query_scalar(pick(
                    pg,
                    "SELECT command_count FROM command_batches WHERE id = $1 AND session_ref = $2 \
                     AND state IN ('in_flight', 'sent') FOR UPDATE",
                    "SELECT command_count FROM command_batches WHERE id = $1 AND session_ref = $2 \
                     AND state IN ('in_flight', 'sent')",
                ))
                .bind(b.0)
                .bind(session.0)
                .fetch_optional(&mut *tx)
                .await?;
                match n {
                    Some(n) => {
                        held.insert(*b, n);
                    }
                    None => report.gone.push(*b),
                }
            }
            for (o, json) in outcomes.iter().zip(&jsons) {
                let Some(n) = held.get(&o.batch) else {
                    continue;
                };
                check_index(o.index, *n)?;
                sqlx::query(
                    "INSERT INTO command_outcomes (batch_id, cmd_index, status, results, recorded_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (batch_id, cmd_index) DO UPDATE \
                     SET status = excluded.status, results = excluded.results, \
                     recorded_at = excluded.recorded_at",
                )
                .bind(o.batch.0)
                .bind(i64::from(o.index))
                .bind(i64::from(o.status.0))
                .bind(json)
                .bind(ts(now))
                .execute(&mut *tx)
                .await?;
            }
            for b in held.keys() {
                let state = if complete.contains(b) {
                    "completed"
                } else {
                    "sent"
                };
                sqlx::query(
                    "UPDATE command_batches SET state = $2, sent_at = COALESCE(sent_at, $3), \
                     finished_at = CASE WHEN $2 = 'completed' THEN $3 ELSE finished_at END \
                     WHERE id = $1",
                )
                .bind(b.0)
                .bind(state)
                .bind(ts(now))
                .execute(&mut *tx)
                .await?;
                if state == "completed" {
                    report.completed.push(*b);
                }
            }
            tx.commit().await?;
            Ok(report)
        })
    }

    async fn complete_batch(
        &self,
        batch: BatchId,
        session: SessionKey,
        now: Timestamp,
    ) -> Result<()> {
        with_pool!(self, |pool, _pg| {
            let n = sqlx::query(
                "UPDATE command_batches SET state = 'completed', finished_at = $3 \
                 WHERE id = $1 AND session_ref = $2 AND state IN ('in_flight', 'sent')",
            )
            .bind(batch.0)
            .bind(session.0)
            .bind(ts(now))
            .execute(pool)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(batch_gone!(pool, batch, session));
            }
            Ok(())
        })
    }

    async fn cancel_batch(&self, batch: BatchId, now: Timestamp) -> Result<bool> {
        with_pool!(self, |pool, _pg| {
            // The owner cancelled it, so there is nothing to report back.
            let n = sqlx::query(
                "UPDATE command_batches SET state = 'cancelled', finished_at = $2, \
                 reported_at = $2 WHERE id = $1 AND state = 'pending'",
            )
            .bind(batch.0)
            .bind(ts(now))
            .execute(pool)
            .await?
            .rows_affected();
            Ok(n > 0)
        })
    }

    async fn batch(&self, batch: BatchId) -> Result<Option<Batch>> {
        const BATCH: &str = concat!(
            "SELECT ",
            batch_cols!(),
            " FROM command_batches WHERE id = $1"
        );
        const OUTCOMES: &str = "SELECT batch_id, cmd_index, status, results, recorded_at \
             FROM command_outcomes WHERE batch_id = $1 ORDER BY cmd_index";
        if let Some(lite) = &self.lite {
            // The SCOMO engine reads every batch it finishes: in place.
            return lite.read(|c| {
                let Some(row) = lite::first(c, BATCH, &[&batch.0], BatchRow::from_lite)? else {
                    return Ok(None);
                };
                let outcomes = lite::all(c, OUTCOMES, &[&batch.0], |r| {
                    Ok(OutcomeRow {
                        batch_id: r.get(0)?,
                        cmd_index: r.get(1)?,
                        status: r.get(2)?,
                        results: r.get(3)?,
                        recorded_at: r.get(4)?,
                    })
                })?
                .into_iter()
                .map(outcome_from_row)
                .collect::<Result<Vec<_>>>()?;
                batch_from_row(row, outcomes).map(Some)
            });
        }
        let row: Option<BatchRow> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(BATCH)
                .bind(batch.0)
                .fetch_optional(pool)
                .await?
        });
        match row {
            None => Ok(None),
            Some(r) => Ok(self.with_outcomes(vec![r]).await?.pop()),
        }
    }

    async fn batches_by_owner(
        &self,
        owner_prefix: &str,
        after: Option<BatchId>,
        limit: u32,
    ) -> Result<Vec<Batch>> {
        let rows: Vec<BatchRow> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(concat!(
                "SELECT ",
                batch_cols!(),
                " FROM command_batches WHERE substr(owner, 1, length($1)) = $1 \
                 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
            ))
            .bind(owner_prefix)
            .bind(after.map(|b| b.0))
            .bind(page_limit(limit))
            .fetch_all(pool)
            .await?
        });
        self.with_outcomes(rows).await
    }

    async fn poll_finished(
        &self,
        owner_prefix: &str,
        lease: &Lease,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<Batch>> {
        check_len("lease consumer", &lease.consumer, MAX_TAG_LEN)?;
        let rows: Vec<BatchRow> = with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            let query = sqlx::query_as(pick(
                pg,
                concat!(
                    "WITH picked AS MATERIALIZED (SELECT id FROM command_batches \
                     WHERE finished_at IS NOT NULL AND reported_at IS NULL \
                     AND (lease_until IS NULL OR lease_until <= $3) \
                     AND substr(owner, 1, length($4)) = $4 ORDER BY id LIMIT $5 \
                     FOR UPDATE SKIP LOCKED) \
                     UPDATE command_batches SET lease_owner = $1, lease_until = $2 \
                     WHERE id IN (SELECT id FROM picked) RETURNING ",
                    batch_cols!()
                ),
                POLL_FINISHED_LITE,
            ))
            .bind(&lease.consumer)
            .bind(ts(lease.until))
            .bind(ts(now))
            .bind(owner_prefix)
            .bind(page_limit(limit));
            let query = if pg {
                query
            } else {
                query.bind(format!("{owner_prefix}{}", char::MAX))
            };
            let rows = query.fetch_all(&mut *tx).await?;
            tx.commit().await?;
            rows
        });
        self.with_outcomes(rows).await
    }

    async fn ack_finished(&self, batches: &[BatchId], now: Timestamp) -> Result<u64> {
        if let Some(writer) = &self.writer {
            let batches = batches.to_vec();
            return writer
                .write(move |c| {
                    let mut acked = 0;
                    for b in &batches {
                        acked += lite::exec(c, ACK_FINISHED, &[&b.0, &ts(now)])?;
                    }
                    Ok(acked)
                })
                .await;
        }
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            let mut acked = 0;
            for b in batches {
                acked += sqlx::query(ACK_FINISHED)
                    .bind(b.0)
                    .bind(ts(now))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(acked)
        })
    }
}

impl SqlStore {
    /// Batches from rows, sorted by id, with their outcomes.
    async fn with_outcomes(&self, rows: Vec<BatchRow>) -> Result<Vec<Batch>> {
        let mut outcomes: BTreeMap<i64, Vec<CommandOutcome>> = BTreeMap::new();
        if !rows.is_empty() {
            let found: Vec<OutcomeRow> = with_pool!(self, |pool, _pg| {
                let mut qb = QueryBuilder::new(
                    "SELECT batch_id, cmd_index, status, results, recorded_at \
                     FROM command_outcomes WHERE batch_id IN (",
                );
                let mut ids = qb.separated(", ");
                for r in &rows {
                    ids.push_bind(r.id);
                }
                qb.push(") ORDER BY batch_id, cmd_index");
                qb.build_query_as().fetch_all(pool).await?
            });
            for o in found {
                outcomes
                    .entry(o.batch_id)
                    .or_default()
                    .push(outcome_from_row(o)?);
            }
        }
        let mut batches = rows
            .into_iter()
            .map(|r| {
                let o = outcomes.remove(&r.id).unwrap_or_default();
                batch_from_row(r, o)
            })
            .collect::<Result<Vec<_>>>()?;
        batches.sort_by_key(|b| b.id);
        Ok(batches)
    }
}

/// Refuses an outcome for command `index` of a batch of `n` commands.
pub(crate) fn check_index(index: u32, n: i64) -> Result<()> {
    if i64::from(index) >= n {
        return Err(StoreError::Invalid {
            field: "command index",
            reason: format!("{index} is not below the batch's {n} commands"),
        });
    }
    Ok(())
}

/// `poll_finished` on SQLite. SQLite compares text bytewise: the owner
/// range walks the index of unreported batches (migration 0005) over this
/// prefix only, not every finished batch nobody polls for, nor every batch
/// the prefix ever had (a scan, under the write lock).
const POLL_FINISHED_LITE: &str = concat!(
    "WITH picked AS MATERIALIZED (SELECT id FROM command_batches \
     WHERE finished_at IS NOT NULL AND reported_at IS NULL \
     AND (lease_until IS NULL OR lease_until <= $3) \
     AND owner >= $4 AND owner < $6 \
     AND substr(owner, 1, length($4)) = $4 ORDER BY id LIMIT $5) \
     UPDATE command_batches SET lease_owner = $1, lease_until = $2 \
     WHERE id IN (SELECT id FROM picked) RETURNING ",
    batch_cols!()
);

pub(crate) fn to_json<T: serde::Serialize + ?Sized>(
    what: &'static str,
    value: &T,
) -> Result<String> {
    let json =
        serde_json::to_string(value).map_err(|source| StoreError::Serialize { what, source })?;
    if json.len() > MAX_JSON_LEN {
        return Err(StoreError::Invalid {
            field: what,
            reason: format!("{} bytes serialized, at most {MAX_JSON_LEN}", json.len()),
        });
    }
    Ok(json)
}

pub(crate) fn batch_from_row(r: BatchRow, outcomes: Vec<CommandOutcome>) -> Result<Batch> {
    let commands: Vec<Command> =
        serde_json::from_str(&r.commands).map_err(|e| StoreError::Corrupt {
            what: "command_batches.commands",
            reason: e.to_string(),
        })?;
    let state = BatchState::parse(&r.state).ok_or_else(|| StoreError::Corrupt {
        what: "command_batches.state",
        reason: format!("unknown value {:?}", r.state),
    })?;
    Ok(Batch {
        id: BatchId(r.id),
        device_id: r.device_id,
        owner: r.owner,
        commands,
        command_count: count("command_batches.command_count", r.command_count)?,
        idempotent: r.idempotent,
        state,
        session: r.session_ref.map(SessionKey),
        attempts: count("command_batches.attempts", r.attempts)?,
        created_at: Timestamp::from_unix_millis(r.created_at),
        claimed_at: opt_ts(r.claimed_at),
        sent_at: opt_ts(r.sent_at),
        finished_at: opt_ts(r.finished_at),
        outcomes,
    })
}

fn outcome_from_row(o: OutcomeRow) -> Result<CommandOutcome> {
    let results: Vec<Results> =
        serde_json::from_str(&o.results).map_err(|e| StoreError::Corrupt {
            what: "command_outcomes.results",
            reason: e.to_string(),
        })?;
    let status = u16::try_from(o.status).map_err(|_| StoreError::Corrupt {
        what: "command_outcomes.status",
        reason: format!("{} is not a status code", o.status),
    })?;
    Ok(CommandOutcome {
        index: count("command_outcomes.cmd_index", o.cmd_index)?,
        status: StatusCode(status),
        results,
        recorded_at: Timestamp::from_unix_millis(o.recorded_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use omadm_wire::model::{Data, Item, ItemCommand, Location, Meta};

    fn add_pkg_id() -> Command {
        Command::Add(ItemCommand {
            items: vec![Item {
                target: Some(Location::uri("./SCOMO/Download/j1/PkgID")),
                meta: Some(Meta::format("chr")),
                data: Some(Data::Text("com.example.app".into())),
                ..Item::default()
            }],
            ..ItemCommand::default()
        })
    }

    #[test]
    fn stored_commands_leave_out_what_is_at_its_default() {
        let json = to_json("commands", &[add_pkg_id()]).unwrap();
        assert_eq!(
            json,
            r#"[{"Add":{"items":[{"target":{"loc_uri":"./SCOMO/Download/j1/PkgID"},"meta":{"format":"chr"},"data":{"Text":"com.example.app"}}]}}]"#
        );
        let back: Vec<Command> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, vec![add_pkg_id()]);
    }

    /// The worker's poll must not walk every batch its prefix ever had.
    #[tokio::test]
    async fn polling_finished_batches_walks_the_unreported_ones_only() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = crate::store::SqlStore::open(&crate::store::StoreConfig::new(url))
            .await
            .unwrap();
        store.close().await;
        let c = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
        let mut plan = String::new();
        let mut stmt = c
            .prepare(&format!("EXPLAIN QUERY PLAN {POLL_FINISHED_LITE}"))
            .unwrap();
        let mut rows = stmt
            .query(rusqlite::params!["w", 2, 1, "job:", 100, "job;"])
            .unwrap();
        while let Some(r) = rows.next().unwrap() {
            plan.push_str(&r.get::<_, String>(3).unwrap());
            plan.push('\n');
        }
        assert!(
            plan.contains("USING INDEX command_batches_unreported (owner>? AND owner<?)"),
            "{plan}"
        );
    }

    #[test]
    fn commands_stored_with_every_field_still_read() {
        // The form earlier versions wrote: every field present.
        let full = r#"[{"Add":{"cmd_id":0,"no_resp":false,"archive":false,"sft_del":false,"lang":null,"cred":null,"meta":null,"items":[{"target":{"loc_uri":"./SCOMO/Download/j1/PkgID","loc_name":null},"source":null,"source_parent":null,"target_parent":null,"meta":{"format":"chr","type":null,"mark":null,"size":null,"next_nonce":null,"version":null,"max_msg_size":null,"max_obj_size":null,"emi":[],"field_level":false},"data":{"Text":"com.example.app"},"more_data":false}]}}]"#;
        let back: Vec<Command> = serde_json::from_str(full).unwrap();
        assert_eq!(back, vec![add_pkg_id()]);
    }
}
