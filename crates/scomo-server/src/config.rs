//! Server configuration: one typed struct, read from TOML (unknown keys are
//! an error). The binary layers defaults < TOML file < `SCOMO_*` environment
//! < flags on top of it; this library never reads the environment.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! public_url = "https://dm1.example.com"    # RespURI base of this node
//! server_id = "scomo"                       # the ServerID devices know
//! data_dir = "./scomo-data"
//! # database_url = "postgres://scomo@db/scomo"   (default: SQLite in data_dir)
//!
//! [tls]
//! cert = "/etc/scomo/cert.pem"
//! key = "/etc/scomo/key.pem"
//!
//! [dm]
//! server_password = "..."                   # default SRVCRED password
//!
//! [devices]
//! insecure_auto_register = false
//!
//! [downloads]
//! url_ttl_secs = 86400                      # lifetime of a /dl/{token} URL
//! max_upload_bytes = 1073741824             # largest package accepted
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::{Backoff, StoreConfig};

pub mod reference;

/// The whole server configuration. `Debug` redacts the server password and
/// the database URL's password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on (`IP:PORT`; port 0 picks a free one).
    pub listen: String,
    /// This node's own base URL as devices reach it (`https://dm1.example.com`).
    /// It goes into every `RespURI`, so follow-up messages of a session come
    /// back to the node that holds it. Unset: `http(s)://<bound address>`, or
    /// the request's `Host` when bound to an unspecified address.
    pub public_url: Option<String>,
    /// The ServerID devices know this server by (DMAcc `ServerID`; package 0
    /// carries it, at most 255 bytes).
    pub server_id: String,
    /// Where the embedded database, the node id and the admin token live.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`; unset: SQLite in
    /// `data_dir/scomo.db`.
    pub database_url: Option<String>,
    /// This node's name in the session audit log. Unset: a random name made
    /// on first start and kept in `data_dir/node-id`, so a restarted node
    /// recognises (and settles) the sessions it held.
    pub node_id: Option<String>,
    /// HTTPS.
    pub tls: TlsConfig,
    /// Database pool settings.
    pub database: DatabaseConfig,
    /// DM sessions.
    pub dm: DmConfig,
    /// Device registry policy.
    pub devices: DevicesConfig,
    /// Package 0 delivery.
    pub notify: NotifyConfig,
    /// SCOMO jobs and inventory.
    pub scomo: ScomoConfig,
    /// The package repository and the download server (`/dl`).
    pub downloads: DownloadsConfig,
}

/// SCOMO jobs and inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScomoConfig {
    /// Where devices hold the SCOMO MO. (`SCOMO.md` §1: the placement is not
    /// fixed; `./SCOMO` is what deployed clients use.)
    pub root: String,
    /// A job with no result after this long times out.
    pub job_timeout_secs: u64,
    /// The inventory is read at the start of a session when the cached one
    /// is older than this (0: never at session start; jobs still read it
    /// to find entries and to check results).
    pub inventory_max_age_secs: u64,
    /// How often each node looks for due jobs (timeouts, scheduled steps)
    /// and for results no session handled.
    pub worker_interval_ms: u64,
    /// Apply catalog rules in every session (the device gets what the rules
    /// select for it).
    pub catalog: bool,
    /// How often a running campaign with a filter looks for devices that
    /// started matching (late joiners).
    pub campaign_rejoin_ms: u64,
}

impl Default for ScomoConfig {
    fn default() -> Self {
        ScomoConfig {
            root: scomo::mo::DEFAULT_ROOT.into(),
            job_timeout_secs: 3600,
            inventory_max_age_secs: 3600,
            worker_interval_ms: 1000,
            catalog: true,
            campaign_rejoin_ms: 5000,
        }
    }
}

/// The package repository and the download server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownloadsConfig {
    /// How long a download URL (`/dl/{token}`) works when the caller does
    /// not say.
    pub url_ttl_secs: u64,
    /// The largest package upload accepted; bigger ones are answered 413.
    pub max_upload_bytes: u64,
}

impl Default for DownloadsConfig {
    fn default() -> Self {
        DownloadsConfig {
            url_ttl_secs: 86_400,
            max_upload_bytes: 1 << 30,
        }
    }
}

/// HTTPS: both files or neither.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

/// Database pool settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Pool size (default 4 for SQLite, 10 for PostgreSQL).
    pub max_connections: Option<u32>,
    /// PostgreSQL schema to use (created if missing); unset: the default
    /// `search_path`. Lets several deployments (or test runs) share a server.
    pub pg_schema: Option<String>,
    /// SQLite durability: `full` (default; a commit survives power loss) or
    /// `normal` (survives a crash of the process only).
    pub sqlite_synchronous: crate::store::SqliteSync,
    /// SQLite: the page cache of the writer connection, MiB (default 128;
    /// filled only as pages are touched).
    pub sqlite_writer_cache_mib: Option<u32>,
}

/// DM session settings.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DmConfig {
    /// MaxMsgSize we advertise; bigger requests are refused with 413.
    pub max_msg_size: u64,
    /// MaxObjSize we advertise (large objects from devices).
    pub max_obj_size: u64,
    /// A session with no message for this long is dropped (its batches are
    /// settled by the requeue rule).
    pub session_idle_timeout_secs: u64,
    /// Sessions held in memory at once; more are answered 503.
    pub max_sessions: usize,
    /// Batches claimed for a device at each package start.
    pub max_batches_per_package: u32,
    /// The server password (SRVCRED `AAuthSecret`) for devices provisioned
    /// without their own. Unset: such devices get no server credentials and
    /// no package 0.
    pub server_password: Option<String>,
    /// Ask for credentials in every message (200) instead of once per
    /// session (212).
    pub auth_per_message: bool,
    /// Read `./DevDetail` leaves in every session (recorded with DevInfo).
    pub read_devdetail: bool,
}

/// Device registry policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevicesConfig {
    /// Register unknown devices on first contact, without credentials: any
    /// client claiming a new DevId gets a session. For closed networks and
    /// tests; provisioned devices keep their credentials either way.
    pub insecure_auto_register: bool,
}

/// Package 0 delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// How often the notifier looks for due notifications (it is also woken
    /// when one is asked for on this node).
    pub poll_interval_ms: u64,
    /// Delay before the second attempt.
    pub retry_initial_ms: u64,
    /// Growth of the delay per attempt.
    pub retry_factor: u32,
    /// The longest delay between attempts.
    pub retry_max_ms: u64,
    /// Attempts before a notification expires.
    pub max_attempts: u32,
    /// UI mode in package 0: `not-specified`, `background`, `informative`
    /// or `user-interaction`.
    pub ui_mode: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            server_id: "scomo".into(),
            data_dir: PathBuf::from("./scomo-data"),
            database_url: None,
            node_id: None,
            tls: TlsConfig::default(),
            database: DatabaseConfig::default(),
            dm: DmConfig::default(),
            devices: DevicesConfig::default(),
            notify: NotifyConfig::default(),
            scomo: ScomoConfig::default(),
            downloads: DownloadsConfig::default(),
        }
    }
}

impl Default for DmConfig {
    fn default() -> Self {
        DmConfig {
            max_msg_size: omadm::server::ServerConfig::DEFAULT_MAX_MSG_SIZE,
            max_obj_size: omadm::server::ServerConfig::DEFAULT_MAX_OBJ_SIZE,
            session_idle_timeout_secs: 300,
            max_sessions: 10_000,
            max_batches_per_package: 16,
            server_password: None,
            auth_per_message: false,
            read_devdetail: true,
        }
    }
}

impl fmt::Debug for DmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmConfig")
            .field("max_msg_size", &self.max_msg_size)
            .field("max_obj_size", &self.max_obj_size)
            .field("session_idle_timeout_secs", &self.session_idle_timeout_secs)
            .field("max_sessions", &self.max_sessions)
            .field("max_batches_per_package", &self.max_batches_per_package)
            .field(
                "server_password",
                &self.server_password.as_ref().map(|_| "<redacted>"),
            )
            .field("auth_per_message", &self.auth_per_message)
            .field("read_devdetail", &self.read_devdetail)
            .finish()
    }
}

impl Default for NotifyConfig {
    fn default() -> Self {
        let b = Backoff::default();
        NotifyConfig {
            poll_interval_ms: 1000,
            retry_initial_ms: duration_ms(b.initial),
            retry_factor: b.factor,
            retry_max_ms: duration_ms(b.max_delay),
            max_attempts: b.max_attempts,
            ui_mode: "not-specified".into(),
        }
    }
}

/// The longest download URL lifetime accepted (ten years).
const MAX_URL_TTL_SECS: u64 = 10 * 366 * 86_400;

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What is wrong with a configuration; names the key and what is accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML does not parse or has unknown keys.
    #[error("invalid configuration: {0}")]
    Syntax(String),
    /// A key has an unusable value.
    #[error("invalid configuration: {key} = {value:?}: {reason}")]
    Invalid {
        /// The key, e.g. `dm.max_msg_size`.
        key: &'static str,
        /// Its value (secrets are never echoed).
        value: String,
        /// What would be accepted.
        reason: String,
    },
}

impl Config {
    /// Parses TOML text (unknown keys are an error that names them).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))
    }

    /// Checks every value the server will use.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, value: &str, reason: &str| ConfigError::Invalid {
            key,
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        self.listen_addr()?;
        if let Some(u) = &self.public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 10 {
                return Err(invalid(
                    "public_url",
                    u,
                    "must be an http:// or https:// URL such as https://dm.example.com",
                ));
            }
        }
        if !self.scomo.root.starts_with("./") || self.scomo.root.ends_with('/') {
            return Err(invalid(
                "scomo.root",
                &self.scomo.root,
                "must be an absolute tree URI such as ./SCOMO",
            ));
        }
        if self.scomo.job_timeout_secs == 0
            || self.scomo.worker_interval_ms == 0
            || self.scomo.campaign_rejoin_ms == 0
        {
            return Err(invalid(
                "scomo.job_timeout_secs",
                &self.scomo.job_timeout_secs.to_string(),
                "job_timeout_secs, worker_interval_ms and campaign_rejoin_ms must be positive",
            ));
        }
        if self.server_id.is_empty() || self.server_id.len() > 255 {
            return Err(invalid(
                "server_id",
                &self.server_id,
                "must be 1 to 255 bytes (package 0 carries its length in one byte)",
            ));
        }
        if let Some(url) = &self.database_url {
            let scheme = url.split(':').next().unwrap_or_default();
            if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
                return Err(invalid(
                    "database_url",
                    &redact_url(url),
                    "expected sqlite://PATH or postgres://USER@HOST/DB",
                ));
            }
        }
        if let Some(n) = &self.node_id {
            if n.is_empty()
                || n.len() > 64
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(invalid(
                    "node_id",
                    n,
                    "must be 1 to 64 characters of [A-Za-z0-9._-]",
                ));
            }
        }
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) => {
                return Err(invalid("tls.key", "", "tls.cert is set: set tls.key too"))
            }
            (None, Some(_)) => {
                return Err(invalid("tls.cert", "", "tls.key is set: set tls.cert too"))
            }
            _ => {}
        }
        if let Some(mib) = self.database.sqlite_writer_cache_mib {
            if !(1..=65536).contains(&mib) {
                return Err(invalid(
                    "database.sqlite_writer_cache_mib",
                    &mib.to_string(),
                    "must be 1 to 65536 (MiB)",
                ));
            }
        }
        if self.dm.max_msg_size < 1024 {
            return Err(invalid(
                "dm.max_msg_size",
                &self.dm.max_msg_size.to_string(),
                "must be at least 1024 bytes",
            ));
        }
        if self.dm.max_obj_size < self.dm.max_msg_size {
            return Err(invalid(
                "dm.max_obj_size",
                &self.dm.max_obj_size.to_string(),
                "must be at least dm.max_msg_size",
            ));
        }
        if self.dm.session_idle_timeout_secs == 0 {
            return Err(invalid(
                "dm.session_idle_timeout_secs",
                "0",
                "must be at least 1 second",
            ));
        }
        if self.dm.max_sessions == 0 {
            return Err(invalid("dm.max_sessions", "0", "must be at least 1"));
        }
        if self.dm.max_batches_per_package == 0 {
            return Err(invalid(
                "dm.max_batches_per_package",
                "0",
                "must be at least 1",
            ));
        }
        if matches!(&self.dm.server_password, Some(p) if p.is_empty()) {
            return Err(invalid(
                "dm.server_password",
                "(empty)",
                "leave it unset or give a password",
            ));
        }
        if self.notify.poll_interval_ms == 0 {
            return Err(invalid(
                "notify.poll_interval_ms",
                "0",
                "must be at least 1",
            ));
        }
        if self.notify.retry_factor == 0 {
            return Err(invalid("notify.retry_factor", "0", "must be at least 1"));
        }
        if self.notify.max_attempts == 0 {
            return Err(invalid("notify.max_attempts", "0", "must be at least 1"));
        }
        if self.downloads.url_ttl_secs == 0 || self.downloads.url_ttl_secs > MAX_URL_TTL_SECS {
            return Err(invalid(
                "downloads.url_ttl_secs",
                &self.downloads.url_ttl_secs.to_string(),
                "must be 1 second to 10 years",
            ));
        }
        if self.downloads.max_upload_bytes < 1024 {
            return Err(invalid(
                "downloads.max_upload_bytes",
                &self.downloads.max_upload_bytes.to_string(),
                "must be at least 1024 bytes",
            ));
        }
        self.ui_mode()?;
        Ok(())
    }

    /// `listen` as a socket address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| ConfigError::Invalid {
            key: "listen",
            value: self.listen.clone(),
            reason: "expected IP:PORT, e.g. 127.0.0.1:8080 or [::]:8443".into(),
        })
    }

    /// The database URL in use: `database_url`, or SQLite in `data_dir`.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data_dir.join("scomo.db").display()),
        }
    }

    /// The store settings.
    pub fn store_config(&self) -> StoreConfig {
        let mut c = StoreConfig::new(self.effective_database_url());
        c.max_connections = self.database.max_connections;
        c.pg_schema = self.database.pg_schema.clone();
        c.sqlite_synchronous = self.database.sqlite_synchronous;
        if let Some(mib) = self.database.sqlite_writer_cache_mib {
            c.sqlite_writer_cache_mib = mib;
        }
        c
    }

    /// The file holding the first admin API token.
    pub fn admin_token_path(&self) -> PathBuf {
        self.data_dir.join("admin.token")
    }

    /// The file holding the generated node id.
    pub fn node_id_path(&self) -> PathBuf {
        self.data_dir.join("node-id")
    }

    /// Whether HTTPS is configured.
    pub fn tls_enabled(&self) -> bool {
        self.tls.cert.is_some()
    }

    /// The idle timeout of sessions.
    pub fn session_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.dm.session_idle_timeout_secs)
    }

    /// The default lifetime of a download URL.
    pub fn download_url_ttl(&self) -> Duration {
        Duration::from_secs(self.downloads.url_ttl_secs)
    }

    /// Where uploaded packages are kept: `data_dir/packages`.
    pub fn packages_dir(&self) -> PathBuf {
        self.data_dir.join("packages")
    }

    /// The notification retry schedule.
    pub fn notify_backoff(&self) -> Backoff {
        Backoff {
            initial: Duration::from_millis(self.notify.retry_initial_ms),
            factor: self.notify.retry_factor,
            max_delay: Duration::from_millis(self.notify.retry_max_ms),
            max_attempts: self.notify.max_attempts,
        }
    }

    /// The package 0 UI mode.
    pub fn ui_mode(&self) -> Result<omadm::package0::UiMode, ConfigError> {
        use omadm::package0::UiMode;
        match self.notify.ui_mode.as_str() {
            "not-specified" => Ok(UiMode::NotSpecified),
            "background" => Ok(UiMode::Background),
            "informative" => Ok(UiMode::Informative),
            "user-interaction" => Ok(UiMode::UserInteraction),
            other => Err(ConfigError::Invalid {
                key: "notify.ui_mode",
                value: other.to_owned(),
                reason: "expected not-specified, background, informative or user-interaction"
                    .into(),
            }),
        }
    }

    /// The configuration as TOML (secrets redacted), for `--check-config`.
    pub fn to_redacted_toml(&self) -> String {
        let mut c = self.clone();
        if c.dm.server_password.is_some() {
            c.dm.server_password = Some("<redacted>".into());
        }
        if let Some(u) = &c.database_url {
            c.database_url = Some(redact_url(u));
        }
        toml::to_string(&c).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("server_id", &self.server_id)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("node_id", &self.node_id)
            .field("tls", &self.tls)
            .field("database", &self.database)
            .field("dm", &self.dm)
            .field("devices", &self.devices)
            .field("notify", &self.notify)
            .field("downloads", &self.downloads)
            .finish()
    }
}

/// A database URL with its password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let c = Config::default();
        c.validate().unwrap();
        let text = toml::to_string(&c).unwrap();
        assert_eq!(Config::from_toml(&text).unwrap(), c);
        assert!(c.effective_database_url().starts_with("sqlite://"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = Config::from_toml("listne = \"x\"").unwrap_err().to_string();
        assert!(e.contains("listne"), "{e}");
        let e = Config::from_toml("[dm]\nmax_msg_siz = 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_msg_siz"), "{e}");
        let c = Config {
            listen: "localhost".into(),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("listen"));
        let mut c = Config::default();
        c.tls.cert = Some("c.pem".into());
        assert!(c.validate().unwrap_err().to_string().contains("tls.key"));
        let c = Config {
            database_url: Some("mysql://u:pw@h/db".into()),
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("database_url") && !e.contains("pw"), "{e}");
        let mut c = Config::default();
        c.notify.ui_mode = "loud".into();
        assert!(c.validate().unwrap_err().to_string().contains("ui_mode"));
        let mut c = Config::default();
        c.downloads.url_ttl_secs = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("url_ttl_secs"));
        let mut c = Config::default();
        c.downloads.max_upload_bytes = 10;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("downloads.max_upload_bytes"), "{e}");
        let e = Config::from_toml("[downloads]\nurl_ttl = 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("url_ttl"), "{e}");
        let c =
            Config::from_toml("[downloads]\nurl_ttl_secs = 60\nmax_upload_bytes = 4096").unwrap();
        assert_eq!(c.download_url_ttl(), Duration::from_secs(60));
        assert_eq!(c.downloads.max_upload_bytes, 4096);
    }

    #[test]
    fn the_writer_cache_is_a_setting_within_bounds() {
        assert_eq!(
            Config::default().store_config().sqlite_writer_cache_mib,
            crate::store::DEFAULT_SQLITE_WRITER_CACHE_MIB
        );
        let c = Config::from_toml("[database]\nsqlite_writer_cache_mib = 32").unwrap();
        c.validate().unwrap();
        assert_eq!(c.store_config().sqlite_writer_cache_mib, 32);
        let c = Config::from_toml("[database]\nsqlite_writer_cache_mib = 0").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("database.sqlite_writer_cache_mib"), "{e}");
    }

    #[test]
    fn secrets_are_redacted() {
        let mut c = Config {
            database_url: Some("postgres://scomo:pw@db:5432/scomo".into()),
            ..Config::default()
        };
        c.dm.server_password = Some("hunter2".into());
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{c:?}").contains(":pw@"));
        let t = c.to_redacted_toml();
        assert!(!t.contains("hunter2") && !t.contains(":pw@"), "{t}");
        assert!(t.contains("postgres://scomo:***@db:5432/scomo"), "{t}");
    }
}
