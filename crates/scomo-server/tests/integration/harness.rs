//! Test databases and fixtures.

use std::sync::Arc;

use omadm_wire::model::{Command, Container, Exec, Item, ItemCommand, Location};
use scomo_server::store::{
    AuthType, ClientCredentials, NewDevice, NewSession, ServerCredentials, SessionKey, SqlStore,
    Store, StoreConfig, Timestamp,
};

/// The variable naming the PostgreSQL server for the battery.
pub(crate) const PG_URL_VAR: &str = "SCOMO_TEST_DATABASE_URL";

/// A database a case can open (and reopen, to simulate a restart).
pub(crate) trait Db {
    /// A fresh handle on the same database.
    async fn open(&self) -> Arc<dyn Store>;
}

/// A SQLite file in a temporary directory, removed at the end.
pub(crate) struct SqliteDb {
    _dir: tempfile::TempDir,
    url: String,
}

impl SqliteDb {
    pub(crate) async fn new() -> SqliteDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("scomo.db").display());
        SqliteDb { _dir: dir, url }
    }
}

impl Db for SqliteDb {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(
            SqlStore::open(&StoreConfig::new(&self.url))
                .await
                .expect("open sqlite store"),
        )
    }
}

/// A schema of its own on the PostgreSQL server, dropped at the end (also
/// when the test panics).
pub(crate) struct PgDb {
    url: String,
    schema: String,
}

impl PgDb {
    pub(crate) async fn new() -> PgDb {
        let url = match std::env::var(PG_URL_VAR) {
            Ok(url) if !url.is_empty() => url,
            _ => panic!(
                "{PG_URL_VAR} is not set: the PostgreSQL half of the store battery needs a \
                 server, e.g. {PG_URL_VAR}=postgres://postgres@127.0.0.1:5432/test \
                 (each test makes and drops its own schema). It fails rather than skips so \
                 that a run without PostgreSQL cannot pass."
            ),
        };
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).expect("randomness");
        let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let schema = format!("scomo_test_{}_{hex}", std::process::id());
        PgDb { url, schema }
    }
}

impl Db for PgDb {
    async fn open(&self) -> Arc<dyn Store> {
        let mut config = StoreConfig::new(&self.url);
        config.pg_schema = Some(self.schema.clone());
        config.max_connections = Some(4);
        Arc::new(
            SqlStore::open(&config)
                .await
                .expect("open postgres store (is the server up?)"),
        )
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let url = self.url.clone();
        let schema = self.schema.clone();
        // Drop runs inside the test's runtime (or during a panic): do the
        // async cleanup on a runtime of its own in another thread.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                use sqlx::Connection as _;
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        });
        if let Ok(Err(e)) = cleanup.join() {
            eprintln!("could not drop test schema {}: {e}", self.schema);
        }
    }
}

/// A fixed time, `secs` after an arbitrary epoch.
pub(crate) fn t(secs: i64) -> Timestamp {
    Timestamp::from_unix_secs(1_700_000_000 + secs)
}

/// A provisioned device with MD5 credentials and a UDP notification address.
pub(crate) fn new_device(id: &str) -> NewDevice {
    NewDevice {
        id: id.to_owned(),
        client_credentials: Some(ClientCredentials::from_password(
            AuthType::Md5,
            id,
            "device-secret",
        )),
        server_credentials: Some(ServerCredentials {
            auth_type: AuthType::Md5,
            server_id: "scomo".into(),
            password: "server-secret".into(),
        }),
        notify_addr: Some("udp://127.0.0.1:4000".into()),
        labels: Default::default(),
    }
}

/// Provisions `id` and opens a client-initiated session for it on `node`.
pub(crate) async fn device_session(store: &dyn Store, id: &str, node: &str) -> SessionKey {
    if store.device(id).await.expect("device").is_none() {
        store
            .provision_device(&new_device(id), t(0))
            .await
            .expect("provision");
    }
    open_session(store, id, node, t(1)).await
}

/// Opens a session.
pub(crate) async fn open_session(
    store: &dyn Store,
    id: &str,
    node: &str,
    now: Timestamp,
) -> SessionKey {
    store
        .start_session(
            &NewSession {
                device_id: id.to_owned(),
                session_id: "1".into(),
                node_id: node.to_owned(),
                initiation: omadm_wire::AlertCode(1201),
            },
            now,
        )
        .await
        .expect("start session")
}

/// `Get <uri>`.
pub(crate) fn get(uri: &str) -> Command {
    Command::Get(ItemCommand {
        items: vec![Item {
            target: Some(Location::uri(uri)),
            ..Item::default()
        }],
        ..ItemCommand::default()
    })
}

/// `Exec <uri>` with a correlator.
pub(crate) fn exec(uri: &str, correlator: &str) -> Command {
    Command::Exec(Exec {
        correlator: Some(correlator.to_owned()),
        items: vec![Item {
            target: Some(Location::uri(uri)),
            ..Item::default()
        }],
        ..Exec::default()
    })
}

/// `Atomic [commands]`.
pub(crate) fn atomic(commands: Vec<Command>) -> Command {
    Command::Atomic(Container {
        commands,
        ..Container::default()
    })
}
