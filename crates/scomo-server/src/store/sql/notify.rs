//! [`NotificationStore`] on SQL.

use async_trait::async_trait;

use super::lite;
use super::queue::MAX_TAG_LEN;
use super::sessions::unknown_device_on_fk;
use super::{begin_write, check_len, count, opt_ts, page_limit, pick, ts, with_pool, SqlStore};
use crate::store::error::{Result, StoreError};
use crate::store::model::{
    Backoff, Lease, Notification, NotificationId, NotificationState, Timestamp,
};
use crate::store::NotificationStore;

/// Longest error text kept from a failed attempt (longer ones are cut).
const MAX_ERROR_LEN: usize = 1024;

macro_rules! notification_cols {
    () => {
        "id, device_id, state, created_at, next_attempt_at, attempts, last_attempt_at, last_error"
    };
}

pub(super) const ENQUEUE_SQLITE: &str = "INSERT INTO notifications (device_id, state, created_at, \
     next_attempt_at) VALUES ($1, 'pending', $2, $3) \
     ON CONFLICT (device_id) WHERE state = 'pending' DO UPDATE \
     SET next_attempt_at = min(notifications.next_attempt_at, excluded.next_attempt_at) \
     RETURNING id";
// The claim of due notifications, in two parts around its LIMIT.
const CLAIM_PICK: &str = "WITH picked AS MATERIALIZED (SELECT id FROM notifications \
     WHERE state = 'pending' AND next_attempt_at <= $3 ORDER BY next_attempt_at, id";
const CLAIM_UPDATE: &str = concat!(
    ") UPDATE notifications SET next_attempt_at = $2, claimed_by = $1 \
     WHERE id IN (SELECT id FROM picked) RETURNING ",
    notification_cols!()
);

/// The claim with `limit` as its LIMIT clause: `$4` (with `FOR UPDATE SKIP
/// LOCKED` on PostgreSQL), or on the SQLite writer the number itself (a
/// bound LIMIT makes SQLite re-prepare the statement at every bind).
fn claim_sql(limit: &str) -> String {
    format!("{CLAIM_PICK} LIMIT {limit}{CLAIM_UPDATE}")
}
pub(super) const ENQUEUE_PG: &str = "INSERT INTO notifications (device_id, state, created_at, \
     next_attempt_at) VALUES ($1, 'pending', $2, $3) \
     ON CONFLICT (device_id) WHERE state = 'pending' DO UPDATE \
     SET next_attempt_at = LEAST(notifications.next_attempt_at, excluded.next_attempt_at) \
     RETURNING id";
const ATTEMPT_STATE: &str = "SELECT state, attempts FROM notifications WHERE id = $1";
const RECORD_ATTEMPT: &str = "UPDATE notifications SET state = $2, attempts = $3, \
     last_attempt_at = $4, last_error = $5, next_attempt_at = $6, closed_at = $7, \
     claimed_by = NULL WHERE id = $1";
const NOTIFICATION: &str = concat!(
    "SELECT ",
    notification_cols!(),
    " FROM notifications WHERE id = $1"
);

/// What an attempt leaves: the state, the next attempt's time and the
/// closing time, after `attempts` attempts.
fn after_attempt(
    attempts: i64,
    backoff: &Backoff,
    now: Timestamp,
) -> (&'static str, Timestamp, Option<i64>) {
    let n = u32::try_from(attempts).unwrap_or(u32::MAX);
    if n >= backoff.max_attempts {
        ("expired", now, Some(ts(now)))
    } else {
        ("pending", now + backoff.delay(n), None)
    }
}

fn no_notification(id: NotificationId) -> StoreError {
    StoreError::Invalid {
        field: "notification id",
        reason: format!("no notification {}", id.0),
    }
}

#[derive(sqlx::FromRow)]
struct NotificationRow {
    id: i64,
    device_id: String,
    state: String,
    created_at: i64,
    next_attempt_at: i64,
    attempts: i64,
    last_attempt_at: Option<i64>,
    last_error: Option<String>,
}

impl NotificationRow {
    /// The row of a rusqlite query selecting `notification_cols!()`.
    fn from_lite(r: &rusqlite::Row<'_>) -> rusqlite::Result<NotificationRow> {
        Ok(NotificationRow {
            id: r.get(0)?,
            device_id: r.get(1)?,
            state: r.get(2)?,
            created_at: r.get(3)?,
            next_attempt_at: r.get(4)?,
            attempts: r.get(5)?,
            last_attempt_at: r.get(6)?,
            last_error: r.get(7)?,
        })
    }
}

#[async_trait]
impl NotificationStore for SqlStore {
    async fn enqueue_notification(
        &self,
        device_id: &str,
        due_at: Timestamp,
        now: Timestamp,
    ) -> Result<NotificationId> {
        if let Some(writer) = &self.writer {
            let device_id = device_id.to_owned();
            return writer
                .write(move |c| {
                    let id = lite::first(
                        c,
                        ENQUEUE_SQLITE,
                        &[&device_id, &ts(now), &ts(due_at)],
                        |r| r.get(0),
                    )
                    .map_err(|e| lite::unknown_device(e, &device_id))?;
                    lite::returned(id, "notification").map(NotificationId)
                })
                .await;
        }
        with_pool!(self, |pool, pg| {
            let id: std::result::Result<i64, sqlx::Error> =
                sqlx::query_scalar(pick(pg, ENQUEUE_PG, ENQUEUE_SQLITE))
                    .bind(device_id)
                    .bind(ts(now))
                    .bind(ts(due_at))
                    .fetch_one(pool)
                    .await;
            Ok(NotificationId(
                id.map_err(|e| unknown_device_on_fk(e, device_id))?,
            ))
        })
    }

    async fn claim_due_notifications(
        &self,
        lease: &Lease,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<Notification>> {
        check_len("lease consumer", &lease.consumer, MAX_TAG_LEN)?;
        if lease.until <= now {
            return Err(StoreError::Invalid {
                field: "lease",
                reason: "must end after now".into(),
            });
        }
        if let Some(writer) = &self.writer {
            // Through the group writer on SQLite: its page cache stays
            // valid (another connection's commit would empty it).
            let (consumer, until, limit) =
                (lease.consumer.clone(), ts(lease.until), page_limit(limit));
            let mut rows = writer
                .write(move |c| {
                    lite::all(
                        c,
                        &claim_sql(&limit.to_string()),
                        &[&consumer, &until, &ts(now)],
                        NotificationRow::from_lite,
                    )
                })
                .await?;
            rows.sort_by_key(|r| r.id);
            return rows.into_iter().map(notification_from_row).collect();
        }
        let mut rows: Vec<NotificationRow> = with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            // Built from constants only.
            let sql = sqlx::AssertSqlSafe(claim_sql(pick(pg, "$4 FOR UPDATE SKIP LOCKED", "$4")));
            let rows = sqlx::query_as(sql)
                .bind(&lease.consumer)
                .bind(ts(lease.until))
                .bind(ts(now))
                .bind(page_limit(limit))
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows
        });
        rows.sort_by_key(|r| r.id);
        rows.into_iter().map(notification_from_row).collect()
    }

    async fn record_notification_attempt(
        &self,
        id: NotificationId,
        error: Option<&str>,
        backoff: &Backoff,
        now: Timestamp,
    ) -> Result<Notification> {
        let error = error.map(|e| truncate(e, MAX_ERROR_LEN));
        if let Some(writer) = &self.writer {
            let backoff = *backoff;
            let row = writer
                .write(move |c| {
                    let current = lite::first(c, ATTEMPT_STATE, &[&id.0], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                    })?;
                    let Some((state, attempts)) = current else {
                        return Err(no_notification(id));
                    };
                    if state == "pending" {
                        let attempts = attempts.saturating_add(1);
                        let (next_state, next_at, closed) = after_attempt(attempts, &backoff, now);
                        lite::exec(
                            c,
                            RECORD_ATTEMPT,
                            &[
                                &id.0,
                                &next_state,
                                &attempts,
                                &ts(now),
                                &error,
                                &ts(next_at),
                                &closed,
                            ],
                        )?;
                    }
                    lite::first(c, NOTIFICATION, &[&id.0], NotificationRow::from_lite)?
                        .ok_or_else(|| no_notification(id))
                })
                .await?;
            return notification_from_row(row);
        }
        let row: NotificationRow = with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            let current: Option<(String, i64)> = sqlx::query_as(pick(
                pg,
                "SELECT state, attempts FROM notifications WHERE id = $1 FOR UPDATE",
                ATTEMPT_STATE,
            ))
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((state, attempts)) = current else {
                return Err(no_notification(id));
            };
            if state == "pending" {
                let attempts = attempts.saturating_add(1);
                let (next_state, next_at, closed) = after_attempt(attempts, backoff, now);
                sqlx::query(RECORD_ATTEMPT)
                    .bind(id.0)
                    .bind(next_state)
                    .bind(attempts)
                    .bind(ts(now))
                    .bind(error.as_deref())
                    .bind(ts(next_at))
                    .bind(closed)
                    .execute(&mut *tx)
                    .await?;
            }
            let row = sqlx::query_as(NOTIFICATION)
                .bind(id.0)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            row
        });
        notification_from_row(row)
    }

    async fn cancel_notifications(&self, device_id: &str, now: Timestamp) -> Result<u64> {
        with_pool!(self, |pool, _pg| {
            let n = sqlx::query(
                "UPDATE notifications SET state = 'cancelled', closed_at = $2 \
                 WHERE device_id = $1 AND state = 'pending'",
            )
            .bind(device_id)
            .bind(ts(now))
            .execute(pool)
            .await?
            .rows_affected();
            Ok(n)
        })
    }

    async fn notification(&self, id: NotificationId) -> Result<Option<Notification>> {
        let row: Option<NotificationRow> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(concat!(
                "SELECT ",
                notification_cols!(),
                " FROM notifications WHERE id = $1"
            ))
            .bind(id.0)
            .fetch_optional(pool)
            .await?
        });
        row.map(notification_from_row).transpose()
    }
}

fn notification_from_row(r: NotificationRow) -> Result<Notification> {
    let state = NotificationState::parse(&r.state).ok_or_else(|| StoreError::Corrupt {
        what: "notifications.state",
        reason: format!("unknown value {:?}", r.state),
    })?;
    Ok(Notification {
        id: NotificationId(r.id),
        device_id: r.device_id,
        state,
        created_at: Timestamp::from_unix_millis(r.created_at),
        next_attempt_at: Timestamp::from_unix_millis(r.next_attempt_at),
        attempts: count("notifications.attempts", r.attempts)?,
        last_attempt_at: opt_ts(r.last_attempt_at),
        last_error: r.last_error,
    })
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
