//! [`SessionStore`] on SQL, and the requeue rule (see [`crate::store`]).

use async_trait::async_trait;
use omadm_wire::AlertCode;

use super::{begin_write, check_len, count, opt_ts, page_limit, pick, ts, with_pool, SqlStore};
use crate::store::error::{Result, StoreError};
use crate::store::model::{
    MessageReport, MessageWrite, NewSession, RequeueReport, SessionEnd, SessionKey, SessionOutcome,
    SessionRecord, Timestamp,
};
use crate::store::SessionStore;

/// Longest SessionID, node id or detail text stored.
const MAX_SESSION_TEXT_LEN: usize = 1024;

macro_rules! session_cols {
    () => {
        "id, device_id, session_id, node_id, initiation, started_at, last_activity_at, \
         ended_at, outcome, messages_in, messages_out, detail"
    };
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: i64,
    device_id: String,
    session_id: String,
    node_id: String,
    initiation: i64,
    started_at: i64,
    last_activity_at: i64,
    ended_at: Option<i64>,
    outcome: Option<String>,
    messages_in: i64,
    messages_out: i64,
    detail: Option<String>,
}

// The requeue rule, per ended session `$2` (`$1` in the statements that need
// no time). Each repeats the condition of the partial index
// `command_batches_session` (`state IN ('in_flight', 'sent')`): SQLite uses
// a partial index only when the query names its condition, and otherwise
// scans every batch ever queued, once per rule and ended session. Order matters: completed first, so a batch with every status is
// not resent; outcomes dropped before the batch they belong to is requeued.
pub(crate) const RULE_COMPLETED: &str = "UPDATE command_batches SET state = 'completed', finished_at = $1 \
     WHERE session_ref = $2 AND state IN ('in_flight', 'sent') AND state = 'sent' AND command_count <= \
     (SELECT COUNT(*) FROM command_outcomes o WHERE o.batch_id = command_batches.id)";
pub(crate) const RULE_NEVER_SENT: &str = "UPDATE command_batches SET state = 'pending', session_ref = NULL, \
     claimed_at = NULL WHERE session_ref = $1 AND state IN ('in_flight', 'sent') AND state = 'in_flight'";
pub(crate) const RULE_DROP_PARTIAL: &str = "DELETE FROM command_outcomes WHERE batch_id IN \
     (SELECT id FROM command_batches WHERE session_ref = $1 AND state IN ('in_flight', 'sent') \
     AND state = 'sent' AND idempotent)";
pub(crate) const RULE_RESEND: &str =
    "UPDATE command_batches SET state = 'pending', session_ref = NULL, \
     claimed_at = NULL, sent_at = NULL WHERE session_ref = $1 AND state IN ('in_flight', 'sent') \
     AND state = 'sent' AND idempotent";
pub(crate) const RULE_UNACKNOWLEDGED: &str =
    "UPDATE command_batches SET state = 'unacknowledged', \
     finished_at = $1 WHERE session_ref = $2 AND state IN ('in_flight', 'sent') AND state = 'sent'";

/// Applies the requeue rule to the batches of the just-ended session
/// `$session`, inside the transaction `$tx`; evaluates to a [`RequeueReport`].
macro_rules! settle_session {
    ($tx:ident, $session:expr, $now:expr) => {{
        let session: i64 = $session;
        let now: i64 = $now;
        let completed = sqlx::query(RULE_COMPLETED)
            .bind(now)
            .bind(session)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        let never_sent = sqlx::query(RULE_NEVER_SENT)
            .bind(session)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        sqlx::query(RULE_DROP_PARTIAL)
            .bind(session)
            .execute(&mut *$tx)
            .await?;
        let resent = sqlx::query(RULE_RESEND)
            .bind(session)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        let unacknowledged = sqlx::query(RULE_UNACKNOWLEDGED)
            .bind(now)
            .bind(session)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        RequeueReport {
            sessions_closed: 1,
            completed,
            requeued: never_sent + resent,
            unacknowledged,
        }
    }};
}

pub(crate) use settle_session;

/// [`settle_session!`] on the SQLite group writer's connection.
pub(crate) fn settle_session_lite(
    c: &rusqlite::Connection,
    session: i64,
    now: i64,
) -> Result<RequeueReport> {
    use super::lite::exec;
    let completed = exec(c, RULE_COMPLETED, &[&now, &session])?;
    let never_sent = exec(c, RULE_NEVER_SENT, &[&session])?;
    exec(c, RULE_DROP_PARTIAL, &[&session])?;
    let resent = exec(c, RULE_RESEND, &[&session])?;
    let unacknowledged = exec(c, RULE_UNACKNOWLEDGED, &[&now, &session])?;
    Ok(RequeueReport {
        sessions_closed: 1,
        completed,
        requeued: never_sent + resent,
        unacknowledged,
    })
}

/// Why a write to session `$key` matched no open session, inside `$conn`.
macro_rules! session_gone {
    ($conn:expr, $key:expr) => {{
        let key: SessionKey = $key;
        let ended: Option<Option<i64>> =
            sqlx::query_scalar("SELECT ended_at FROM dm_sessions WHERE id = $1")
                .bind(key.0)
                .fetch_optional($conn)
                .await?;
        match ended {
            None => StoreError::UnknownSession { session: key },
            Some(_) => StoreError::SessionEnded { session: key },
        }
    }};
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn start_session(&self, session: &NewSession, now: Timestamp) -> Result<SessionKey> {
        check_len("session id", &session.session_id, MAX_SESSION_TEXT_LEN)?;
        check_len("node id", &session.node_id, MAX_SESSION_TEXT_LEN)?;
        with_pool!(self, |pool, _pg| {
            let id: Result<i64, sqlx::Error> = sqlx::query_scalar(
                "INSERT INTO dm_sessions (device_id, session_id, node_id, initiation, started_at, \
                 last_activity_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            )
            .bind(&session.device_id)
            .bind(&session.session_id)
            .bind(&session.node_id)
            .bind(i64::from(session.initiation.0))
            .bind(ts(now))
            .fetch_one(pool)
            .await;
            match id {
                Ok(id) => Ok(SessionKey(id)),
                Err(e) => Err(unknown_device_on_fk(e, &session.device_id)),
            }
        })
    }

    async fn touch_session(&self, session: SessionKey, now: Timestamp) -> Result<()> {
        with_pool!(self, |pool, _pg| {
            let n = sqlx::query(
                "UPDATE dm_sessions SET last_activity_at = $2 WHERE id = $1 AND ended_at IS NULL",
            )
            .bind(session.0)
            .bind(ts(now))
            .execute(pool)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(session_gone!(pool, session));
            }
            Ok(())
        })
    }

    async fn finish_session(
        &self,
        session: SessionKey,
        end: &SessionEnd,
        now: Timestamp,
    ) -> Result<RequeueReport> {
        if let Some(d) = &end.detail {
            check_len("session detail", d, MAX_SESSION_TEXT_LEN)?;
        }
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            let n = sqlx::query(
                "UPDATE dm_sessions SET ended_at = $2, last_activity_at = $2, outcome = $3, \
                 messages_in = $4, messages_out = $5, detail = $6 \
                 WHERE id = $1 AND ended_at IS NULL",
            )
            .bind(session.0)
            .bind(ts(now))
            .bind(end.outcome.as_str())
            .bind(i64::from(end.messages_in))
            .bind(i64::from(end.messages_out))
            .bind(end.detail.as_deref())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(session_gone!(&mut *tx, session));
            }
            let report = settle_session!(tx, session.0, ts(now));
            tx.commit().await?;
            Ok(report)
        })
    }

    async fn close_node_sessions(&self, node_id: &str, now: Timestamp) -> Result<RequeueReport> {
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            let open: Vec<i64> = sqlx::query_scalar(pick(
                pg,
                "SELECT id FROM dm_sessions WHERE node_id = $1 AND ended_at IS NULL \
                 ORDER BY id FOR UPDATE SKIP LOCKED",
                "SELECT id FROM dm_sessions WHERE node_id = $1 AND ended_at IS NULL ORDER BY id",
            ))
            .bind(node_id)
            .fetch_all(&mut *tx)
            .await?;
            let mut report = RequeueReport::default();
            for id in open {
                sqlx::query(
                    "UPDATE dm_sessions SET ended_at = $2, outcome = 'lost', \
                     detail = 'node restarted' WHERE id = $1",
                )
                .bind(id)
                .bind(ts(now))
                .execute(&mut *tx)
                .await?;
                report.merge(settle_session!(tx, id, ts(now)));
            }
            tx.commit().await?;
            Ok(report)
        })
    }

    async fn close_idle_sessions(
        &self,
        idle_since: Timestamp,
        now: Timestamp,
    ) -> Result<RequeueReport> {
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            let idle: Vec<i64> = sqlx::query_scalar(pick(
                pg,
                "SELECT id FROM dm_sessions WHERE ended_at IS NULL AND last_activity_at < $1 \
                 ORDER BY id FOR UPDATE SKIP LOCKED",
                // The partial index of open sessions, not the whole audit log.
                "SELECT id FROM dm_sessions INDEXED BY dm_sessions_open \
                 WHERE ended_at IS NULL AND last_activity_at < $1 ORDER BY id",
            ))
            .bind(ts(idle_since))
            .fetch_all(&mut *tx)
            .await?;
            let mut report = RequeueReport::default();
            for id in idle {
                sqlx::query(
                    "UPDATE dm_sessions SET ended_at = $2, outcome = 'lost', \
                     detail = 'idle' WHERE id = $1",
                )
                .bind(id)
                .bind(ts(now))
                .execute(&mut *tx)
                .await?;
                report.merge(settle_session!(tx, id, ts(now)));
            }
            tx.commit().await?;
            Ok(report)
        })
    }

    async fn session(&self, session: SessionKey) -> Result<Option<SessionRecord>> {
        with_pool!(self, |pool, _pg| {
            let row: Option<SessionRow> = sqlx::query_as(concat!(
                "SELECT ",
                session_cols!(),
                " FROM dm_sessions WHERE id = $1"
            ))
            .bind(session.0)
            .fetch_optional(pool)
            .await?;
            row.map(session_from_row).transpose()
        })
    }

    async fn write_message(&self, write: MessageWrite, now: Timestamp) -> Result<MessageReport> {
        self.write_message_impl(write, now).await
    }

    async fn sessions(
        &self,
        device_id: &str,
        before: Option<SessionKey>,
        limit: u32,
    ) -> Result<Vec<SessionRecord>> {
        with_pool!(self, |pool, _pg| {
            let rows: Vec<SessionRow> = sqlx::query_as(concat!(
                "SELECT ",
                session_cols!(),
                " FROM dm_sessions WHERE device_id = $1 AND ($2 IS NULL OR id < $2) \
                 ORDER BY id DESC LIMIT $3"
            ))
            .bind(device_id)
            .bind(before.map(|k| k.0))
            .bind(page_limit(limit))
            .fetch_all(pool)
            .await?;
            rows.into_iter().map(session_from_row).collect()
        })
    }
}

fn session_from_row(r: SessionRow) -> Result<SessionRecord> {
    let outcome = match r.outcome {
        None => None,
        Some(o) => Some(
            SessionOutcome::parse(&o).ok_or_else(|| StoreError::Corrupt {
                what: "dm_sessions.outcome",
                reason: format!("unknown value {o:?}"),
            })?,
        ),
    };
    let initiation = u16::try_from(r.initiation).map_err(|_| StoreError::Corrupt {
        what: "dm_sessions.initiation",
        reason: format!("{} is not an alert code", r.initiation),
    })?;
    Ok(SessionRecord {
        key: SessionKey(r.id),
        device_id: r.device_id,
        session_id: r.session_id,
        node_id: r.node_id,
        initiation: AlertCode(initiation),
        started_at: Timestamp::from_unix_millis(r.started_at),
        last_activity_at: Timestamp::from_unix_millis(r.last_activity_at),
        ended_at: opt_ts(r.ended_at),
        outcome,
        messages_in: count("dm_sessions.messages_in", r.messages_in)?,
        messages_out: count("dm_sessions.messages_out", r.messages_out)?,
        detail: r.detail,
    })
}

/// A foreign-key violation on insert means the device does not exist.
pub(crate) fn unknown_device_on_fk(e: sqlx::Error, device_id: &str) -> StoreError {
    let fk = e
        .as_database_error()
        .is_some_and(|d| d.is_foreign_key_violation());
    if fk {
        StoreError::UnknownDevice {
            id: device_id.to_owned(),
        }
    } else {
        StoreError::Database(e)
    }
}
