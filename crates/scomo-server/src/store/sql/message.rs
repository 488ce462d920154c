//! [`SessionStore::write_message`](crate::store::SessionStore::write_message):
//! everything one DM message changes, in one transaction.
//!
//! A session used to write each kind of change in a transaction of its own
//! (session row, DevInfo, nonces, outcomes, claim, mark sent, touch,
//! finish: about eight commits per session, each an fsync on SQLite). Here
//! one message is one transaction; on SQLite it also joins the group
//! commit of the concurrent sessions ([`super::writer`]). The statements
//! are those of the single-purpose methods, with the same fences.

use std::collections::BTreeMap;

use super::alerts::alert_data;
use super::devices::check_nodes;
use super::queue::{batch_from_row, check_index, to_json, BatchRow, MAX_TAG_LEN};
use super::sessions::{
    settle_session, unknown_device_on_fk, RULE_COMPLETED, RULE_DROP_PARTIAL, RULE_NEVER_SENT,
    RULE_RESEND, RULE_UNACKNOWLEDGED,
};
use super::{check_len, lite, page_limit, ts, Pool, SqlStore};
use crate::store::error::{Result, StoreError};
use crate::store::model::{
    BatchId, MessageOutcome, MessageReport, MessageWrite, RequeueReport, SessionKey, Timestamp,
    DEVDETAIL_DEV_TYP, DEVINFO_MAN, DEVINFO_MOD,
};

macro_rules! batch_cols {
    () => {
        "id, device_id, owner, commands, command_count, idempotent, state, session_ref, \
         attempts, created_at, claimed_at, sent_at, finished_at"
    };
}

/// Outcome rows per INSERT (5 parameters each, well under SQLite's and
/// PostgreSQL's limits).
const OUTCOMES_PER_STATEMENT: usize = 500;

/// Longest SessionID or node id stored (as `start_session`).
const MAX_SESSION_TEXT_LEN: usize = 1024;

/// A [`MessageWrite`] checked and serialized, ready to run.
struct Prepared {
    w: MessageWrite,
    /// Serialized results, one per outcome.
    results: Vec<String>,
    /// Serialized data, one per alert.
    alert_data: Vec<Option<String>>,
}

impl Prepared {
    /// Checks and serializes in the caller's task, so the writer (which
    /// holds the write lock) only runs statements.
    fn new(w: MessageWrite) -> Result<Prepared> {
        if let Some(s) = &w.start {
            check_len("session id", &s.session_id, MAX_SESSION_TEXT_LEN)?;
            check_len("node id", &s.node_id, MAX_SESSION_TEXT_LEN)?;
        }
        if w.session.is_none() && w.start.is_none() {
            return Err(StoreError::Invalid {
                field: "session",
                reason: "a message write needs a session or a session start".into(),
            });
        }
        check_nodes(&w.nodes)?;
        if let Some(end) = &w.finish {
            if let Some(d) = &end.detail {
                check_len("session detail", d, MAX_SESSION_TEXT_LEN)?;
            }
        }
        let alert_data = w.alerts.iter().map(alert_data).collect::<Result<_>>()?;
        for a in &w.alerts {
            if let Some(c) = &a.correlator {
                check_len("correlator", c, MAX_TAG_LEN)?;
            }
        }
        let results = w
            .outcomes
            .iter()
            .map(|o| to_json("results", &o.results))
            .collect::<Result<_>>()?;
        Ok(Prepared {
            w,
            results,
            alert_data,
        })
    }
}

// The statements of one message. PostgreSQL runs them through sqlx
// (`apply_pg`), SQLite through rusqlite on the group-commit writer thread
// (`apply_lite`); the SQL text is shared where the dialects agree.

const START_SESSION: &str = "INSERT INTO dm_sessions (device_id, session_id, node_id, initiation, \
     started_at, last_activity_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id";
// The device reported its DevInfo: seen now, and the message's nonces (if
// any) in the same statement, one update of the row instead of two.
const DEVICE_SEEN: &str = "UPDATE devices SET last_seen_at = $2, \
     first_seen_at = COALESCE(first_seen_at, $2), updated_at = $2, man = COALESCE($3, man), \
     model = COALESCE($4, model), dev_typ = COALESCE($5, dev_typ), \
     client_nonce = COALESCE($6, client_nonce), server_nonce = COALESCE($7, server_nonce) \
     WHERE id = $1";
const NODES_INSERT: &str = "INSERT INTO device_nodes (device_id, path, value, updated_at) ";
// A node's `updated_at` is when its value last changed: a device reports
// the same DevInfo every session, and rewriting an unchanged row would dirty
// its pages (and the WAL) for nothing.
const NODES_CONFLICT: &str = " ON CONFLICT (device_id, path) \
     DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at \
     WHERE device_nodes.value IS DISTINCT FROM excluded.value";
const NODE_UPSERT: &str = "INSERT INTO device_nodes (device_id, path, value, updated_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (device_id, path) \
     DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at \
     WHERE device_nodes.value IS DISTINCT FROM excluded.value";
const NONCES: &str = "UPDATE devices SET client_nonce = COALESCE($2, client_nonce), \
     server_nonce = COALESCE($3, server_nonce), updated_at = $4 WHERE id = $1";
const CANCEL_NOTIFICATIONS: &str = "UPDATE notifications SET state = 'cancelled', closed_at = $2 \
     WHERE device_id = $1 AND state = 'pending'";
const HELD_PG: &str = "SELECT id, command_count FROM command_batches WHERE session_ref = $1 \
     AND state IN ('in_flight', 'sent') ORDER BY id FOR UPDATE";
const HELD: &str = "SELECT id, command_count FROM command_batches WHERE session_ref = $1 \
     AND state IN ('in_flight', 'sent') ORDER BY id";
const OUTCOMES_INSERT: &str =
    "INSERT INTO command_outcomes (batch_id, cmd_index, status, results, recorded_at) ";
const OUTCOMES_CONFLICT: &str = " ON CONFLICT (batch_id, cmd_index) DO UPDATE \
     SET status = excluded.status, results = excluded.results, recorded_at = excluded.recorded_at";
const OUTCOME_UPSERT: &str = "INSERT INTO command_outcomes (batch_id, cmd_index, status, results, \
     recorded_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (batch_id, cmd_index) DO UPDATE \
     SET status = excluded.status, results = excluded.results, recorded_at = excluded.recorded_at";
const BATCH_STATE: &str =
    "UPDATE command_batches SET state = $2, sent_at = COALESCE(sent_at, $3), \
     finished_at = CASE WHEN $2 = 'completed' THEN $3 ELSE finished_at END WHERE id = $1";
const SESSION_ENDED_PG: &str = "SELECT ended_at FROM dm_sessions WHERE id = $1 FOR UPDATE";
const SESSION_ENDED: &str = "SELECT ended_at FROM dm_sessions WHERE id = $1";
// Claimed and marked sent at once: the message carrying them is built right
// after this write and leaves only once it is committed, so "sent"
// (possibly seen) is the truth from here.
const CLAIM_PG: &str = concat!(
    "WITH picked AS MATERIALIZED (SELECT id FROM command_batches \
     WHERE device_id = $3 AND state = 'pending' ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) \
     UPDATE command_batches SET state = 'sent', session_ref = $1, \
     claimed_at = $2, sent_at = $2, attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM picked) AND state = 'pending' RETURNING ",
    batch_cols!()
);
/// The SQLite claim with its limit written in: SQLite re-prepares a
/// statement whose LIMIT is a bound parameter every time it is bound (the
/// value is folded into the plan), which cost more than the claim itself.
fn claim_lite(limit: u32) -> String {
    format!(
        concat!(
            "WITH picked AS MATERIALIZED (SELECT id FROM command_batches \
             WHERE device_id = $3 AND state = 'pending' ORDER BY id LIMIT {}) \
             UPDATE command_batches SET state = 'sent', session_ref = $1, \
             claimed_at = $2, sent_at = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM picked) AND state = 'pending' RETURNING ",
            batch_cols!()
        ),
        page_limit(limit)
    )
}
// A swept session is caught by the next claim or outcome fence; the
// activity time alone is not worth failing the message.
const TOUCH: &str =
    "UPDATE dm_sessions SET last_activity_at = $2 WHERE id = $1 AND ended_at IS NULL";
const FINISH: &str = "UPDATE dm_sessions SET ended_at = $2, last_activity_at = $2, outcome = $3, \
     messages_in = $4, messages_out = $5, detail = $6 WHERE id = $1 AND ended_at IS NULL";
// The requeue rule has nothing to settle when the session holds no batch
// any more (the usual end): one read instead of its five statements.
const HOLDING: &str = "SELECT COUNT(*) FROM command_batches WHERE session_ref = $1 \
     AND state IN ('in_flight', 'sent')";

/// An update of the device's row that matched nothing: the device is gone.
fn device_updated(rows: u64, device_id: &str) -> Result<()> {
    if rows == 0 {
        return Err(StoreError::UnknownDevice {
            id: device_id.to_owned(),
        });
    }
    Ok(())
}

fn no_session() -> StoreError {
    StoreError::Invalid {
        field: "session",
        reason: "a message write needs a session or a session start".into(),
    }
}

/// The batches a message's outcomes go to (with their size) and the
/// outcomes to write with their serialized results.
type SortedOutcomes<'p> = (
    BTreeMap<BatchId, i64>,
    Vec<(&'p MessageOutcome, &'p String)>,
);

/// Which of `ids` the session still holds (with their size, from `holds`)
/// and which are gone; the outcomes to write, each checked against its
/// batch's size.
fn sort_outcomes<'p>(
    p: &'p Prepared,
    holds: &BTreeMap<BatchId, i64>,
    report: &mut MessageReport,
) -> Result<SortedOutcomes<'p>> {
    let w = &p.w;
    let mut ids: Vec<BatchId> = w.outcomes.iter().map(|o| o.batch).collect();
    ids.extend_from_slice(&w.complete);
    ids.sort();
    ids.dedup();
    let mut held = BTreeMap::new();
    for b in &ids {
        match holds.get(b) {
            Some(n) => {
                held.insert(*b, *n);
            }
            None => report.outcomes.gone.push(*b),
        }
    }
    let mut rows = Vec::with_capacity(w.outcomes.len());
    for (o, json) in w.outcomes.iter().zip(&p.results) {
        let Some(n) = held.get(&o.batch) else {
            continue;
        };
        check_index(o.index, *n)?;
        rows.push((o, json));
    }
    Ok((held, rows))
}

/// The state a held batch is left in by this message.
fn batch_state(w: &MessageWrite, b: &BatchId) -> &'static str {
    if w.complete.contains(b) {
        "completed"
    } else {
        "sent"
    }
}

/// A session's start or its open/ended check failed: which.
fn session_check(session: SessionKey, found: Option<Option<i64>>) -> Result<()> {
    match found {
        None => Err(StoreError::UnknownSession { session }),
        Some(Some(_)) => Err(StoreError::SessionEnded { session }),
        Some(None) => Ok(()),
    }
}

fn sorted_claims(rows: Vec<BatchRow>) -> Result<Vec<crate::store::Batch>> {
    let mut claimed = rows
        .into_iter()
        .map(|r| batch_from_row(r, Vec::new()))
        .collect::<Result<Vec<_>>>()?;
    claimed.sort_by_key(|b| b.id);
    Ok(claimed)
}

/// The message's statements on PostgreSQL, in the transaction `c`.
async fn apply_pg(c: &mut sqlx::PgConnection, p: Prepared, now: i64) -> Result<MessageReport> {
    let w = &p.w;
    let mut report = MessageReport::default();
    let session = match (w.session, &w.start) {
        (Some(k), _) => k,
        (None, Some(s)) => {
            let id: std::result::Result<i64, sqlx::Error> = sqlx::query_scalar(START_SESSION)
                .bind(&s.device_id)
                .bind(&s.session_id)
                .bind(&s.node_id)
                .bind(i64::from(s.initiation.0))
                .bind(now)
                .fetch_one(&mut *c)
                .await;
            SessionKey(id.map_err(|e| unknown_device_on_fk(e, &s.device_id))?)
        }
        (None, None) => return Err(no_session()),
    };
    report.session = Some(session);

    let nonces = w
        .nonces
        .as_ref()
        .filter(|u| u.client.is_some() || u.server.is_some());
    if !w.nodes.is_empty() {
        let n = sqlx::query(DEVICE_SEEN)
            .bind(&w.device_id)
            .bind(now)
            .bind(w.nodes.get(DEVINFO_MAN))
            .bind(w.nodes.get(DEVINFO_MOD))
            .bind(w.nodes.get(DEVDETAIL_DEV_TYP))
            .bind(nonces.and_then(|u| u.client.as_deref()))
            .bind(nonces.and_then(|u| u.server.as_deref()))
            .execute(&mut *c)
            .await?
            .rows_affected();
        device_updated(n, &w.device_id)?;
        let mut qb = sqlx::QueryBuilder::new(NODES_INSERT);
        qb.push_values(&w.nodes, |mut b, (path, value)| {
            b.push_bind(w.device_id.clone())
                .push_bind(path.clone())
                .push_bind(value.clone())
                .push_bind(now);
        });
        qb.push(NODES_CONFLICT);
        qb.build().execute(&mut *c).await?;
    }

    if let (Some(u), true) = (nonces, w.nodes.is_empty()) {
        let n = sqlx::query(NONCES)
            .bind(&w.device_id)
            .bind(u.client.as_deref())
            .bind(u.server.as_deref())
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected();
        device_updated(n, &w.device_id)?;
    }

    if w.cancel_notifications {
        sqlx::query(CANCEL_NOTIFICATIONS)
            .bind(&w.device_id)
            .bind(now)
            .execute(&mut *c)
            .await?;
    }

    for (alert, data) in w.alerts.iter().zip(&p.alert_data) {
        let id = super::alerts::insert_alert!(c, alert, Some(session.0), data, now);
        report.alerts.push(crate::store::AlertId(id));
    }

    if !w.outcomes.is_empty() || !w.complete.is_empty() {
        // One read for every batch the session still holds.
        let rows: Vec<(i64, i64)> = sqlx::query_as(HELD_PG)
            .bind(session.0)
            .fetch_all(&mut *c)
            .await?;
        let holds = rows.into_iter().map(|(id, n)| (BatchId(id), n)).collect();
        let (held, rows) = sort_outcomes(&p, &holds, &mut report)?;
        // One statement per chunk of outcomes (5 parameters a row).
        for chunk in rows.chunks(OUTCOMES_PER_STATEMENT) {
            let mut qb = sqlx::QueryBuilder::new(OUTCOMES_INSERT);
            qb.push_values(chunk, |mut b, (o, json)| {
                b.push_bind(o.batch.0)
                    .push_bind(i64::from(o.index))
                    .push_bind(i64::from(o.status.0))
                    .push_bind((*json).clone())
                    .push_bind(now);
            });
            qb.push(OUTCOMES_CONFLICT);
            qb.build().execute(&mut *c).await?;
        }
        for b in held.keys() {
            let state = batch_state(w, b);
            sqlx::query(BATCH_STATE)
                .bind(b.0)
                .bind(state)
                .bind(now)
                .execute(&mut *c)
                .await?;
            if state == "completed" {
                report.outcomes.completed.push(*b);
            }
        }
    }

    if let Some(limit) = w.claim {
        // As claim_batches: the session row orders this claim against a
        // concurrent finish_session (row lock).
        let found: Option<Option<i64>> = sqlx::query_scalar(SESSION_ENDED_PG)
            .bind(session.0)
            .fetch_optional(&mut *c)
            .await?;
        session_check(session, found)?;
        let rows: Vec<BatchRow> = sqlx::query_as(CLAIM_PG)
            .bind(session.0)
            .bind(now)
            .bind(&w.device_id)
            .bind(page_limit(limit))
            .fetch_all(&mut *c)
            .await?;
        report.claimed = sorted_claims(rows)?;
    }

    if w.touch && w.finish.is_none() {
        sqlx::query(TOUCH)
            .bind(session.0)
            .bind(now)
            .execute(&mut *c)
            .await?;
    }

    if let Some(end) = &w.finish {
        let n = sqlx::query(FINISH)
            .bind(session.0)
            .bind(now)
            .bind(end.outcome.as_str())
            .bind(i64::from(end.messages_in))
            .bind(i64::from(end.messages_out))
            .bind(end.detail.as_deref())
            .execute(&mut *c)
            .await?
            .rows_affected();
        if n > 0 {
            let holding: i64 = sqlx::query_scalar(HOLDING)
                .bind(session.0)
                .fetch_one(&mut *c)
                .await?;
            report.finished = Some(if holding == 0 {
                RequeueReport {
                    sessions_closed: 1,
                    ..RequeueReport::default()
                }
            } else {
                settle_session!(c, session.0, now)
            });
        }
    }
    Ok(report)
}

/// The message's statements on SQLite, on the group writer's connection
/// (inside its savepoint). The claimed rows come back undecoded: the
/// caller parses their commands, off the writer thread every write waits
/// for.
fn apply_lite(
    c: &rusqlite::Connection,
    p: &Prepared,
    now: i64,
) -> Result<(MessageReport, Vec<BatchRow>)> {
    let w = &p.w;
    let mut report = MessageReport::default();
    let session = match (w.session, &w.start) {
        (Some(k), _) => k,
        (None, Some(s)) => {
            let id = lite::first(
                c,
                START_SESSION,
                &[
                    &s.device_id,
                    &s.session_id,
                    &s.node_id,
                    &i64::from(s.initiation.0),
                    &now,
                ],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| lite::unknown_device(e, &s.device_id))?;
            SessionKey(lite::returned(id, "session")?)
        }
        (None, None) => return Err(no_session()),
    };
    report.session = Some(session);

    let nonces = w
        .nonces
        .as_ref()
        .filter(|u| u.client.is_some() || u.server.is_some());
    let (client_nonce, server_nonce) = match nonces {
        Some(u) => (u.client.as_deref(), u.server.as_deref()),
        None => (None, None),
    };
    if !w.nodes.is_empty() {
        let n = lite::exec(
            c,
            DEVICE_SEEN,
            &[
                &w.device_id,
                &now,
                &w.nodes.get(DEVINFO_MAN),
                &w.nodes.get(DEVINFO_MOD),
                &w.nodes.get(DEVDETAIL_DEV_TYP),
                &client_nonce,
                &server_nonce,
            ],
        )?;
        device_updated(n, &w.device_id)?;
        for (path, value) in &w.nodes {
            lite::exec(c, NODE_UPSERT, &[&w.device_id, path, value, &now])?;
        }
    } else if nonces.is_some() {
        let n = lite::exec(
            c,
            NONCES,
            &[&w.device_id, &client_nonce, &server_nonce, &now],
        )?;
        device_updated(n, &w.device_id)?;
    }

    if w.cancel_notifications {
        lite::exec(c, CANCEL_NOTIFICATIONS, &[&w.device_id, &now])?;
    }

    for (alert, data) in w.alerts.iter().zip(&p.alert_data) {
        let id = super::alerts::insert_alert_lite(c, alert, Some(session.0), data, now)?;
        report.alerts.push(crate::store::AlertId(id));
    }

    if !w.outcomes.is_empty() || !w.complete.is_empty() {
        let holds = lite::all(c, HELD, &[&session.0], |r| {
            Ok((BatchId(r.get(0)?), r.get::<_, i64>(1)?))
        })?
        .into_iter()
        .collect();
        let (held, rows) = sort_outcomes(p, &holds, &mut report)?;
        for (o, json) in rows {
            lite::exec(
                c,
                OUTCOME_UPSERT,
                &[
                    &o.batch.0,
                    &i64::from(o.index),
                    &i64::from(o.status.0),
                    json,
                    &now,
                ],
            )?;
        }
        for b in held.keys() {
            let state = batch_state(w, b);
            lite::exec(c, BATCH_STATE, &[&b.0, &state, &now])?;
            if state == "completed" {
                report.outcomes.completed.push(*b);
            }
        }
    }

    let mut claimed = Vec::new();
    if let Some(limit) = w.claim {
        let found = lite::first(c, SESSION_ENDED, &[&session.0], |r| {
            r.get::<_, Option<i64>>(0)
        })?;
        session_check(session, found)?;
        claimed = lite::all(
            c,
            &claim_lite(limit),
            &[&session.0, &now, &w.device_id],
            BatchRow::from_lite,
        )?;
    }

    if w.touch && w.finish.is_none() {
        lite::exec(c, TOUCH, &[&session.0, &now])?;
    }

    if let Some(end) = &w.finish {
        let n = lite::exec(
            c,
            FINISH,
            &[
                &session.0,
                &now,
                &end.outcome.as_str(),
                &i64::from(end.messages_in),
                &i64::from(end.messages_out),
                &end.detail,
            ],
        )?;
        if n > 0 {
            let holding = lite::first(c, HOLDING, &[&session.0], |r| r.get::<_, i64>(0))?;
            report.finished = Some(if holding.unwrap_or(0) == 0 {
                RequeueReport {
                    sessions_closed: 1,
                    ..RequeueReport::default()
                }
            } else {
                super::sessions::settle_session_lite(c, session.0, now)?
            });
        }
    }
    Ok((report, claimed))
}

impl SqlStore {
    pub(crate) async fn write_message_impl(
        &self,
        write: MessageWrite,
        now: Timestamp,
    ) -> Result<MessageReport> {
        let p = Prepared::new(write)?;
        let now = ts(now);
        match (&self.pool, &self.writer) {
            (Pool::Postgres(pool), _) => {
                let mut tx = pool.begin().await?;
                let report = apply_pg(&mut tx, p, now).await?;
                tx.commit().await?;
                Ok(report)
            }
            (Pool::Sqlite(_), Some(writer)) => {
                let (mut report, claimed) =
                    writer.write(move |conn| apply_lite(conn, &p, now)).await?;
                report.claimed = sorted_claims(claimed)?;
                Ok(report)
            }
            (Pool::Sqlite(_), None) => Err(StoreError::GroupCommit {
                reason: "the store has no writer".into(),
            }),
        }
    }
}
