//! [`DeviceStore`] on SQL.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::{Database, QueryBuilder};

use super::{begin_write, check_len, opt_ts, page_limit, ts, with_pool, SqlStore};
use crate::store::error::{Result, StoreError};
use crate::store::model::{
    AuthType, ClientCredentials, Device, DeviceFilter, DeviceOrigin, DevicePage, DevicePageRequest,
    DeviceUpdate, NewDevice, NonceUpdate, Nonces, ServerCredentials, Timestamp, DEVDETAIL_DEV_TYP,
    DEVINFO_MAN, DEVINFO_MOD,
};
use crate::store::DeviceStore;

/// Longest DevId accepted.
pub(crate) const MAX_DEVICE_ID_LEN: usize = 256;
/// Longest label key.
pub(crate) const MAX_LABEL_KEY_LEN: usize = 128;
/// Longest label value.
pub(crate) const MAX_LABEL_VALUE_LEN: usize = 512;
/// Most DevInfo/DevDetail nodes recorded per call.
pub(crate) const MAX_DEVICE_NODES: usize = 512;
/// Longest node path.
pub(crate) const MAX_NODE_PATH_LEN: usize = 1024;
/// Longest node value.
pub(crate) const MAX_NODE_VALUE_LEN: usize = 8192;
/// Longest notification address, user name or server id.
pub(crate) const MAX_ADDR_LEN: usize = 1024;

macro_rules! device_cols {
    () => {
        "id, origin, client_auth_type, client_username, client_user_hash, server_auth_type, \
         server_id, server_password, client_nonce, server_nonce, notify_addr, man, model, \
         dev_typ, created_at, first_seen_at, last_seen_at"
    };
}

#[derive(sqlx::FromRow)]
struct DeviceRow {
    id: String,
    origin: String,
    client_auth_type: Option<String>,
    client_username: Option<String>,
    client_user_hash: Option<Vec<u8>>,
    server_auth_type: Option<String>,
    server_id: Option<String>,
    server_password: Option<String>,
    client_nonce: Option<Vec<u8>>,
    server_nonce: Option<Vec<u8>>,
    notify_addr: Option<String>,
    man: Option<String>,
    model: Option<String>,
    dev_typ: Option<String>,
    created_at: i64,
    first_seen_at: Option<i64>,
    last_seen_at: Option<i64>,
}

impl DeviceRow {
    /// The row of a rusqlite query selecting `device_cols!()`.
    fn from_lite(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRow> {
        Ok(DeviceRow {
            id: r.get(0)?,
            origin: r.get(1)?,
            client_auth_type: r.get(2)?,
            client_username: r.get(3)?,
            client_user_hash: r.get(4)?,
            server_auth_type: r.get(5)?,
            server_id: r.get(6)?,
            server_password: r.get(7)?,
            client_nonce: r.get(8)?,
            server_nonce: r.get(9)?,
            notify_addr: r.get(10)?,
            man: r.get(11)?,
            model: r.get(12)?,
            dev_typ: r.get(13)?,
            created_at: r.get(14)?,
            first_seen_at: r.get(15)?,
            last_seen_at: r.get(16)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct LabelRow {
    device_id: String,
    key: String,
    value: String,
}

/// Inserts a provisioned device and its labels in the transaction `$tx`;
/// false (nothing written) when the id exists. A macro, as the bodies of
/// [`with_pool!`] are, to run on either backend's transaction.
macro_rules! insert_device {
    ($tx:ident, $device:expr, $now:expr) => {{
        let device: &NewDevice = $device;
        let client = device.client_credentials.as_ref();
        let server = device.server_credentials.as_ref();
        let inserted = sqlx::query(
            "INSERT INTO devices (id, origin, client_auth_type, client_username, \
             client_user_hash, server_auth_type, server_id, server_password, notify_addr, \
             created_at, updated_at) \
             VALUES ($1, 'provisioned', $2, $3, $4, $5, $6, $7, $8, $9, $9) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&device.id)
        .bind(client.map(|c| c.auth_type.as_str()))
        .bind(client.map(|c| c.username.as_str()))
        .bind(client.map(|c| c.user_hash.to_vec()))
        .bind(server.map(|s| s.auth_type.as_str()))
        .bind(server.map(|s| s.server_id.as_str()))
        .bind(server.map(|s| s.password.as_str()))
        .bind(device.notify_addr.as_deref())
        .bind(ts($now))
        .execute(&mut *$tx)
        .await?
        .rows_affected()
            > 0;
        if inserted {
            for (k, v) in &device.labels {
                sqlx::query(
                    "INSERT INTO device_labels (device_id, key, value) VALUES ($1, $2, $3)",
                )
                .bind(&device.id)
                .bind(k)
                .bind(v)
                .execute(&mut *$tx)
                .await?;
            }
        }
        inserted
    }};
}

#[async_trait]
impl DeviceStore for SqlStore {
    async fn provision_device(&self, device: &NewDevice, now: Timestamp) -> Result<Device> {
        check_len("device id", &device.id, MAX_DEVICE_ID_LEN)?;
        check_credentials(
            device.client_credentials.as_ref(),
            device.server_credentials.as_ref(),
        )?;
        if let Some(addr) = &device.notify_addr {
            check_notify_addr(addr)?;
        }
        for (k, v) in &device.labels {
            check_label(k, v)?;
        }
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            if !insert_device!(tx, device, now) {
                return Err(StoreError::DeviceExists {
                    id: device.id.clone(),
                });
            }
            tx.commit().await?;
        });
        self.device(&device.id)
            .await?
            .ok_or_else(|| StoreError::UnknownDevice {
                id: device.id.clone(),
            })
    }

    async fn auto_register(&self, id: &str, now: Timestamp) -> Result<bool> {
        check_len("device id", id, MAX_DEVICE_ID_LEN)?;
        with_pool!(self, |pool, _pg| {
            let n = sqlx::query(
                "INSERT INTO devices (id, origin, created_at, updated_at) \
                 VALUES ($1, 'auto', $2, $2) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(ts(now))
            .execute(pool)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
    }

    async fn device(&self, id: &str) -> Result<Option<Device>> {
        const DEVICE: &str = concat!("SELECT ", device_cols!(), " FROM devices WHERE id = $1");
        const LABELS: &str = "SELECT device_id, key, value FROM device_labels WHERE device_id = $1";
        if let Some(lite) = &self.lite {
            // Every DM session starts here: on SQLite, read in place.
            return lite.read(|c| {
                let Some(row) = super::lite::first(c, DEVICE, &[&id], DeviceRow::from_lite)? else {
                    return Ok(None);
                };
                let labels = super::lite::all(c, LABELS, &[&id], |r| Ok((r.get(1)?, r.get(2)?)))?;
                Ok(Some(device_from_row(row, labels.into_iter().collect())?))
            });
        }
        with_pool!(self, |pool, _pg| {
            let row: Option<DeviceRow> =
                sqlx::query_as(DEVICE).bind(id).fetch_optional(pool).await?;
            let Some(row) = row else { return Ok(None) };
            let labels: Vec<LabelRow> = sqlx::query_as(LABELS).bind(id).fetch_all(pool).await?;
            let labels = labels.into_iter().map(|l| (l.key, l.value)).collect();
            Ok(Some(device_from_row(row, labels)?))
        })
    }

    async fn list_devices(
        &self,
        filter: &DeviceFilter,
        page: &DevicePageRequest,
    ) -> Result<DevicePage> {
        let limit = page_limit(page.limit);
        with_pool!(self, |pool, _pg| {
            let mut qb = QueryBuilder::new(concat!("SELECT ", device_cols!(), " FROM devices d"));
            push_filter(&mut qb, filter);
            if let Some(after) = &page.after {
                qb.push(" AND d.id > ").push_bind(after.clone());
            }
            qb.push(" ORDER BY d.id LIMIT ").push_bind(limit + 1);
            let mut rows: Vec<DeviceRow> = qb.build_query_as().fetch_all(pool).await?;
            let more = rows.len() as i64 > limit;
            rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));

            let mut labels: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
            if !rows.is_empty() {
                let mut qb = QueryBuilder::new(
                    "SELECT device_id, key, value FROM device_labels WHERE device_id IN (",
                );
                let mut ids = qb.separated(", ");
                for r in &rows {
                    ids.push_bind(r.id.clone());
                }
                qb.push(")");
                let found: Vec<LabelRow> = qb.build_query_as().fetch_all(pool).await?;
                for l in found {
                    labels
                        .entry(l.device_id)
                        .or_default()
                        .insert(l.key, l.value);
                }
            }
            let next_after = if more {
                rows.last().map(|r| r.id.clone())
            } else {
                None
            };
            let devices = rows
                .into_iter()
                .map(|r| {
                    let l = labels.remove(&r.id).unwrap_or_default();
                    device_from_row(r, l)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(DevicePage {
                devices,
                next_after,
            })
        })
    }

    async fn count_devices(&self, filter: &DeviceFilter) -> Result<u64> {
        with_pool!(self, |pool, _pg| {
            let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM devices d");
            push_filter(&mut qb, filter);
            let n: i64 = qb.build_query_scalar().fetch_one(pool).await?;
            Ok(u64::try_from(n).unwrap_or_default())
        })
    }

    async fn delete_device(&self, id: &str) -> Result<bool> {
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            // Its jobs go with it (ON DELETE CASCADE): those of campaign
            // members end here, for their campaigns to count as cancelled.
            // Locked first on PostgreSQL (see `set_member_jobs`).
            let running: Vec<i64> = sqlx::query_scalar(if pg {
                "SELECT id FROM jobs WHERE device_id = $1 AND finished_at IS NULL FOR UPDATE"
            } else {
                "SELECT id FROM jobs WHERE device_id = $1 AND finished_at IS NULL"
            })
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            let n = sqlx::query("DELETE FROM devices WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            for job in running {
                sqlx::query(super::campaigns::NOTE_JOB_ENDED)
                    .bind(job)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(n > 0)
        })
    }

    async fn update_device(&self, id: &str, update: &DeviceUpdate, now: Timestamp) -> Result<()> {
        check_credentials(
            update.client_credentials.as_ref().and_then(Option::as_ref),
            update.server_credentials.as_ref().and_then(Option::as_ref),
        )?;
        if let Some(Some(addr)) = &update.notify_addr {
            check_notify_addr(addr)?;
        }
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            let n = sqlx::query("UPDATE devices SET updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(ts(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::UnknownDevice { id: id.to_owned() });
            }
            if let Some(c) = &update.client_credentials {
                let c = c.as_ref();
                sqlx::query(
                    "UPDATE devices SET client_auth_type = $2, client_username = $3, \
                     client_user_hash = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(c.map(|c| c.auth_type.as_str()))
                .bind(c.map(|c| c.username.as_str()))
                .bind(c.map(|c| c.user_hash.to_vec()))
                .execute(&mut *tx)
                .await?;
            }
            if let Some(s) = &update.server_credentials {
                let s = s.as_ref();
                sqlx::query(
                    "UPDATE devices SET server_auth_type = $2, server_id = $3, \
                     server_password = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(s.map(|s| s.auth_type.as_str()))
                .bind(s.map(|s| s.server_id.as_str()))
                .bind(s.map(|s| s.password.as_str()))
                .execute(&mut *tx)
                .await?;
            }
            if let Some(addr) = &update.notify_addr {
                sqlx::query("UPDATE devices SET notify_addr = $2 WHERE id = $1")
                    .bind(id)
                    .bind(addr.as_deref())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    async fn set_label(&self, id: &str, key: &str, value: &str, now: Timestamp) -> Result<()> {
        check_label(key, value)?;
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            let n = sqlx::query("UPDATE devices SET updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(ts(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::UnknownDevice { id: id.to_owned() });
            }
            sqlx::query(
                "INSERT INTO device_labels (device_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (device_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(id)
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    async fn remove_label(&self, id: &str, key: &str) -> Result<bool> {
        with_pool!(self, |pool, _pg| {
            let n = sqlx::query("DELETE FROM device_labels WHERE device_id = $1 AND key = $2")
                .bind(id)
                .bind(key)
                .execute(pool)
                .await?
                .rows_affected();
            Ok(n > 0)
        })
    }

    async fn record_device_info(
        &self,
        id: &str,
        nodes: &BTreeMap<String, String>,
        now: Timestamp,
    ) -> Result<()> {
        check_nodes(nodes)?;
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            let n = sqlx::query(
                "UPDATE devices SET last_seen_at = $2, first_seen_at = COALESCE(first_seen_at, $2), \
                 updated_at = $2, man = COALESCE($3, man), model = COALESCE($4, model), \
                 dev_typ = COALESCE($5, dev_typ) WHERE id = $1",
            )
            .bind(id)
            .bind(ts(now))
            .bind(nodes.get(DEVINFO_MAN))
            .bind(nodes.get(DEVINFO_MOD))
            .bind(nodes.get(DEVDETAIL_DEV_TYP))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::UnknownDevice { id: id.to_owned() });
            }
            for (path, value) in nodes {
                sqlx::query(
                    "INSERT INTO device_nodes (device_id, path, value, updated_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (device_id, path) \
                     DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at \
                     WHERE device_nodes.value IS DISTINCT FROM excluded.value",
                )
                .bind(id)
                .bind(path)
                .bind(value)
                .bind(ts(now))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    async fn device_nodes(&self, id: &str) -> Result<BTreeMap<String, String>> {
        with_pool!(self, |pool, _pg| {
            let rows: Vec<(String, String)> =
                sqlx::query_as("SELECT path, value FROM device_nodes WHERE device_id = $1")
                    .bind(id)
                    .fetch_all(pool)
                    .await?;
            Ok(rows.into_iter().collect())
        })
    }

    async fn update_nonces(&self, id: &str, update: &NonceUpdate, now: Timestamp) -> Result<()> {
        with_pool!(self, |pool, _pg| {
            let n = sqlx::query(
                "UPDATE devices SET client_nonce = COALESCE($2, client_nonce), \
                 server_nonce = COALESCE($3, server_nonce), updated_at = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(update.client.as_deref())
            .bind(update.server.as_deref())
            .bind(ts(now))
            .execute(pool)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::UnknownDevice { id: id.to_owned() });
            }
            Ok(())
        })
    }
}

/// Appends ` WHERE …` for `filter` (always a WHERE, so callers can append
/// ` AND …`).
pub(super) fn push_filter<DB: Database>(qb: &mut QueryBuilder<DB>, filter: &DeviceFilter)
where
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> i32: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    qb.push(" WHERE 1 = 1");
    if let Some(man) = &filter.man {
        qb.push(" AND d.man = ").push_bind(man.clone());
    }
    if let Some(model) = &filter.model {
        qb.push(" AND d.model = ").push_bind(model.clone());
    }
    if let Some(dev_typ) = &filter.dev_typ {
        qb.push(" AND d.dev_typ = ").push_bind(dev_typ.clone());
    }
    for label in &filter.labels {
        qb.push(" AND EXISTS (SELECT 1 FROM device_labels l WHERE l.device_id = d.id AND l.key = ")
            .push_bind(label.key.clone());
        if let Some(value) = &label.value {
            qb.push(" AND l.value = ").push_bind(value.clone());
        }
        qb.push(")");
    }
    if let Some(prefix) = &filter.id_prefix {
        // `>=` lets an index find the start; `substr` (in characters on both
        // databases) is the exact test, free of LIKE's wildcards and case rules.
        // INT4: PostgreSQL has no substr(text, int, bigint).
        let chars = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
        qb.push(" AND d.id >= ")
            .push_bind(prefix.clone())
            .push(" AND substr(d.id, 1, ")
            .push_bind(chars)
            .push(") = ")
            .push_bind(prefix.clone());
    }
}

fn device_from_row(r: DeviceRow, labels: BTreeMap<String, String>) -> Result<Device> {
    let origin =
        DeviceOrigin::parse(&r.origin).ok_or_else(|| corrupt("devices.origin", &r.origin))?;
    let client_credentials = match (r.client_auth_type, r.client_username, r.client_user_hash) {
        (Some(t), Some(username), Some(hash)) => Some(ClientCredentials {
            auth_type: auth_type(&t)?,
            username,
            user_hash: hash
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt {
                    what: "devices.client_user_hash",
                    reason: format!("{} bytes, expected 16", hash.len()),
                })?,
        }),
        _ => None,
    };
    let server_credentials = match (r.server_auth_type, r.server_id, r.server_password) {
        (Some(t), Some(server_id), Some(password)) => Some(ServerCredentials {
            auth_type: auth_type(&t)?,
            server_id,
            password,
        }),
        _ => None,
    };
    Ok(Device {
        id: r.id,
        origin,
        client_credentials,
        server_credentials,
        nonces: Nonces {
            client: r.client_nonce,
            server: r.server_nonce,
        },
        notify_addr: r.notify_addr,
        man: r.man,
        model: r.model,
        dev_typ: r.dev_typ,
        labels,
        created_at: Timestamp::from_unix_millis(r.created_at),
        first_seen_at: opt_ts(r.first_seen_at),
        last_seen_at: opt_ts(r.last_seen_at),
    })
}

fn auth_type(s: &str) -> Result<AuthType> {
    AuthType::parse(s).ok_or_else(|| corrupt("devices.*_auth_type", s))
}

fn corrupt(what: &'static str, value: &str) -> StoreError {
    StoreError::Corrupt {
        what,
        reason: format!("unknown value {value:?}"),
    }
}

/// Checks DevInfo/DevDetail values before they are recorded.
pub(crate) fn check_nodes(nodes: &BTreeMap<String, String>) -> Result<()> {
    if nodes.len() > MAX_DEVICE_NODES {
        return Err(StoreError::Invalid {
            field: "nodes",
            reason: format!("{} nodes, at most {MAX_DEVICE_NODES}", nodes.len()),
        });
    }
    for (path, value) in nodes {
        check_len("node path", path, MAX_NODE_PATH_LEN)?;
        if value.len() > MAX_NODE_VALUE_LEN {
            return Err(StoreError::Invalid {
                field: "node value",
                reason: format!(
                    "{path}: {} bytes, at most {MAX_NODE_VALUE_LEN}",
                    value.len()
                ),
            });
        }
    }
    Ok(())
}

fn check_credentials(
    client: Option<&ClientCredentials>,
    server: Option<&ServerCredentials>,
) -> Result<()> {
    if let Some(c) = client {
        check_len("client username", &c.username, MAX_ADDR_LEN)?;
    }
    if let Some(s) = server {
        check_len("server id", &s.server_id, MAX_ADDR_LEN)?;
        if s.password.len() > MAX_ADDR_LEN {
            return Err(StoreError::Invalid {
                field: "server password",
                reason: format!("longer than {MAX_ADDR_LEN} bytes"),
            });
        }
    }
    Ok(())
}

/// Accepts `udp://host:port`, `http://…` and `https://…`.
fn check_notify_addr(addr: &str) -> Result<()> {
    check_len("notify address", addr, MAX_ADDR_LEN)?;
    let ok = ["udp://", "http://", "https://"]
        .iter()
        .any(|s| addr.len() > s.len() && addr.starts_with(s));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            field: "notify address",
            reason: format!("{addr:?} is not udp://HOST:PORT, http://… or https://…"),
        })
    }
}

fn check_label(key: &str, value: &str) -> Result<()> {
    check_len("label key", key, MAX_LABEL_KEY_LEN)?;
    if value.len() > MAX_LABEL_VALUE_LEN {
        return Err(StoreError::Invalid {
            field: "label value",
            reason: format!("{key}: longer than {MAX_LABEL_VALUE_LEN} bytes"),
        });
    }
    Ok(())
}

#[async_trait]
impl crate::store::DeviceBulkStore for SqlStore {
    async fn provision_devices(
        &self,
        devices: &[NewDevice],
        now: Timestamp,
    ) -> Result<Vec<crate::store::BulkOutcome>> {
        use crate::store::BulkOutcome;
        let check = |d: &NewDevice| -> Result<()> {
            check_len("device id", &d.id, MAX_DEVICE_ID_LEN)?;
            check_credentials(d.client_credentials.as_ref(), d.server_credentials.as_ref())?;
            if let Some(addr) = &d.notify_addr {
                check_notify_addr(addr)?;
            }
            d.labels.iter().try_for_each(|(k, v)| check_label(k, v))
        };
        let mut out: Vec<BulkOutcome> = devices
            .iter()
            .map(|d| match check(d) {
                Ok(()) => BulkOutcome::Created,
                Err(e) => BulkOutcome::Invalid(e.to_string()),
            })
            .collect();
        if !out.contains(&BulkOutcome::Created) {
            return Ok(out);
        }
        with_pool!(self, |pool, pg| {
            let mut tx = begin_write!(pool, pg);
            for (device, outcome) in devices.iter().zip(out.iter_mut()) {
                if *outcome != BulkOutcome::Created {
                    continue;
                }
                if !insert_device!(tx, device, now) {
                    *outcome = BulkOutcome::Exists;
                }
            }
            tx.commit().await?;
        });
        Ok(out)
    }
}
