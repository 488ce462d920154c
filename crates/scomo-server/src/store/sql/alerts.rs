//! [`AlertStore`] on SQL.

use async_trait::async_trait;
use omadm_wire::model::Data;
use omadm_wire::AlertCode;

use super::queue::{MAX_JSON_LEN, MAX_TAG_LEN};
use super::{begin_write, check_len, opt_ts, page_limit, pick, ts, with_pool, SqlStore};
use crate::store::error::{Result, StoreError};
use crate::store::model::{AlertId, BatchId, Lease, NewAlert, SessionKey, StoredAlert, Timestamp};
use crate::store::AlertStore;

/// Longest alert type, format, mark or URI.
const MAX_ALERT_TEXT_LEN: usize = 2048;

macro_rules! alert_cols {
    () => {
        "id, device_id, session_ref, code, correlator, alert_type, format, mark, source_uri, \
         target_uri, data, batch_id, owner, received_at, processed_at"
    };
}

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: i64,
    device_id: String,
    session_ref: Option<i64>,
    code: i64,
    correlator: Option<String>,
    alert_type: Option<String>,
    format: Option<String>,
    mark: Option<String>,
    source_uri: Option<String>,
    target_uri: Option<String>,
    data: Option<String>,
    batch_id: Option<i64>,
    owner: Option<String>,
    received_at: i64,
    processed_at: Option<i64>,
}

/// The newest batch that sent a Correlator to a device: `(id, owner)`.
pub(crate) const ALERT_LINK: &str = "SELECT b.id, b.owner FROM batch_correlators k \
     JOIN command_batches b ON b.id = k.batch_id \
     WHERE k.device_id = $1 AND k.correlator = $2 ORDER BY b.id DESC LIMIT 1";

/// Stores one alert row; returns its id.
pub(crate) const INSERT_ALERT: &str = "INSERT INTO generic_alerts (device_id, session_ref, code, \
     correlator, alert_type, format, mark, source_uri, target_uri, data, batch_id, owner, \
     received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id";

/// Stores a Generic Alert in the transaction (or connection) `$c`, linked
/// to the newest batch that sent its Correlator; evaluates to its id. A
/// macro, as the bodies of [`with_pool!`] are, to run on either backend
/// (`record_alert` and the per-message write path share it).
macro_rules! insert_alert {
    ($c:ident, $alert:expr, $session:expr, $data:expr, $now:expr) => {{
        let alert: &$crate::store::NewAlert = $alert;
        let link: Option<(i64, String)> = match &alert.correlator {
            None => None,
            Some(c) => {
                sqlx::query_as($crate::store::sql::alerts::ALERT_LINK)
                    .bind(&alert.device_id)
                    .bind(c)
                    .fetch_optional(&mut *$c)
                    .await?
            }
        };
        let (batch_id, owner) = link.unzip();
        let id: std::result::Result<i64, sqlx::Error> =
            sqlx::query_scalar($crate::store::sql::alerts::INSERT_ALERT)
                .bind(&alert.device_id)
                .bind($session)
                .bind(i64::from(alert.code.0))
                .bind(alert.correlator.as_deref())
                .bind(alert.alert_type.as_deref())
                .bind(alert.format.as_deref())
                .bind(alert.mark.as_deref())
                .bind(alert.source_uri.as_deref())
                .bind(alert.target_uri.as_deref())
                .bind($data.as_deref())
                .bind(batch_id)
                .bind(owner)
                .bind($now)
                .fetch_one(&mut *$c)
                .await;
        id.map_err(|e| $crate::store::sql::sessions::unknown_device_on_fk(e, &alert.device_id))?
    }};
}
pub(super) use insert_alert;

/// [`insert_alert!`] on the SQLite group writer's connection.
pub(crate) fn insert_alert_lite(
    c: &rusqlite::Connection,
    alert: &NewAlert,
    session: Option<i64>,
    data: &Option<String>,
    now: i64,
) -> Result<i64> {
    use super::lite::first;
    let link = match &alert.correlator {
        None => None,
        Some(k) => first(c, ALERT_LINK, &[&alert.device_id, k], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?,
    };
    let (batch_id, owner) = link.unzip();
    let id = first(
        c,
        INSERT_ALERT,
        &[
            &alert.device_id,
            &session,
            &i64::from(alert.code.0),
            &alert.correlator,
            &alert.alert_type,
            &alert.format,
            &alert.mark,
            &alert.source_uri,
            &alert.target_uri,
            data,
            &batch_id,
            &owner,
            &now,
        ],
        |r| r.get::<_, i64>(0),
    )
    .map_err(|e| super::lite::unknown_device(e, &alert.device_id))?;
    super::lite::returned(id, "alert")
}

#[async_trait]
impl AlertStore for SqlStore {
    async fn record_alert(&self, alert: &NewAlert, now: Timestamp) -> Result<AlertId> {
        let data = alert_data(alert)?;
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            let id = insert_alert!(tx, alert, alert.session.map(|s| s.0), data, ts(now));
            tx.commit().await?;
            Ok(AlertId(id))
        })
    }

    async fn alerts(
        &self,
        device_id: &str,
        before: Option<AlertId>,
        limit: u32,
    ) -> Result<Vec<StoredAlert>> {
        let rows: Vec<AlertRow> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(concat!(
                "SELECT ",
                alert_cols!(),
                " FROM generic_alerts WHERE device_id = $1 AND ($2 IS NULL OR id < $2) \
                 ORDER BY id DESC LIMIT $3"
            ))
            .bind(device_id)
            .bind(before.map(|a| a.0))
            .bind(page_limit(limit))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(alert_from_row).collect()
    }

    async fn alerts_by_correlator(&self, correlator: &str) -> Result<Vec<StoredAlert>> {
        let rows: Vec<AlertRow> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(concat!(
                "SELECT ",
                alert_cols!(),
                " FROM generic_alerts WHERE correlator = $1 ORDER BY id"
            ))
            .bind(correlator)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(alert_from_row).collect()
    }

    async fn poll_alerts(
        &self,
        owner_prefix: Option<&str>,
        lease: &Lease,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<StoredAlert>> {
        check_len("lease consumer", &lease.consumer, MAX_TAG_LEN)?;
        let mut rows: Vec<AlertRow> = with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            let rows = sqlx::query_as(pick(
                pg,
                concat!(
                    "WITH picked AS MATERIALIZED (SELECT id FROM generic_alerts \
                     WHERE processed_at IS NULL AND (lease_until IS NULL OR lease_until <= $3) \
                     AND ($4 IS NULL OR substr(owner, 1, length($4)) = $4) \
                     ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED) \
                     UPDATE generic_alerts SET lease_owner = $1, lease_until = $2 \
                     WHERE id IN (SELECT id FROM picked) RETURNING ",
                    alert_cols!()
                ),
                concat!(
                    "WITH picked AS MATERIALIZED (SELECT id FROM generic_alerts \
                     WHERE processed_at IS NULL AND (lease_until IS NULL OR lease_until <= $3) \
                     AND ($4 IS NULL OR substr(owner, 1, length($4)) = $4) \
                     ORDER BY id LIMIT $5) \
                     UPDATE generic_alerts SET lease_owner = $1, lease_until = $2 \
                     WHERE id IN (SELECT id FROM picked) RETURNING ",
                    alert_cols!()
                ),
            ))
            .bind(&lease.consumer)
            .bind(ts(lease.until))
            .bind(ts(now))
            .bind(owner_prefix)
            .bind(page_limit(limit))
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            rows
        });
        rows.sort_by_key(|r| r.id);
        rows.into_iter().map(alert_from_row).collect()
    }

    async fn ack_alerts(&self, alerts: &[AlertId], now: Timestamp) -> Result<u64> {
        const ACK: &str = "UPDATE generic_alerts SET processed_at = $2 \
             WHERE id = $1 AND processed_at IS NULL";
        if let Some(writer) = &self.writer {
            let alerts = alerts.to_vec();
            return writer
                .write(move |c| {
                    let mut acked = 0;
                    for a in &alerts {
                        acked += super::lite::exec(c, ACK, &[&a.0, &ts(now)])?;
                    }
                    Ok(acked)
                })
                .await;
        }
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            let mut acked = 0;
            for a in alerts {
                acked += sqlx::query(ACK)
                    .bind(a.0)
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

fn alert_from_row(r: AlertRow) -> Result<StoredAlert> {
    let code = u16::try_from(r.code).map_err(|_| StoreError::Corrupt {
        what: "generic_alerts.code",
        reason: format!("{} is not an alert code", r.code),
    })?;
    let data: Option<Data> = match r.data {
        None => None,
        Some(j) => Some(serde_json::from_str(&j).map_err(|e| StoreError::Corrupt {
            what: "generic_alerts.data",
            reason: e.to_string(),
        })?),
    };
    Ok(StoredAlert {
        id: AlertId(r.id),
        alert: NewAlert {
            device_id: r.device_id,
            session: r.session_ref.map(SessionKey),
            code: AlertCode(code),
            correlator: r.correlator,
            alert_type: r.alert_type,
            format: r.format,
            mark: r.mark,
            source_uri: r.source_uri,
            target_uri: r.target_uri,
            data,
        },
        batch: r.batch_id.map(BatchId),
        owner: r.owner,
        received_at: Timestamp::from_unix_millis(r.received_at),
        processed_at: opt_ts(r.processed_at),
    })
}

/// Checks an alert's fields and serializes its data.
pub(crate) fn alert_data(alert: &NewAlert) -> Result<Option<String>> {
    if let Some(c) = &alert.correlator {
        check_len("correlator", c, MAX_TAG_LEN)?;
    }
    for (field, v) in [
        ("alert type", &alert.alert_type),
        ("alert format", &alert.format),
        ("alert mark", &alert.mark),
        ("alert source", &alert.source_uri),
        ("alert target", &alert.target_uri),
    ] {
        if let Some(v) = v {
            check_len(field, v, MAX_ALERT_TEXT_LEN)?;
        }
    }
    let data = match &alert.data {
        None => None,
        Some(d) => {
            let json = serde_json::to_string(d).map_err(|source| StoreError::Serialize {
                what: "alert data",
                source,
            })?;
            if json.len() > MAX_JSON_LEN {
                return Err(StoreError::Invalid {
                    field: "alert data",
                    reason: format!("{} bytes, at most {MAX_JSON_LEN}", json.len()),
                });
            }
            Some(json)
        }
    };
    Ok(data)
}
