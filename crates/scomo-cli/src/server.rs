//! `scomo server`: the DM server. Configuration layers, lowest first:
//! defaults < TOML file (`--config`) < `SCOMO_*` environment < flags.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use scomo_server::{run, tls_acceptor, AppState, Config, Listener};
use tracing::info;

#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// TOML configuration file (unknown keys are rejected).
    #[arg(long, env = "SCOMO_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the configuration, print it (secrets redacted) and exit.
    #[arg(long)]
    check_config: bool,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SCOMO_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Data directory: embedded database, node id, admin token [default: ./scomo-data].
    #[arg(long, env = "SCOMO_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://USER@HOST/DB [default: SQLite in the data directory].
    #[arg(
        long,
        env = "SCOMO_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// PostgreSQL schema to use (created if missing).
    #[arg(long, env = "SCOMO_DATABASE_SCHEMA", value_name = "NAME")]
    database_schema: Option<String>,
    /// This node's URL as devices reach it; goes into every RespURI.
    #[arg(long, env = "SCOMO_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// The ServerID devices know this server by [default: scomo].
    #[arg(long, env = "SCOMO_SERVER_ID", value_name = "ID")]
    server_id: Option<String>,
    /// This node's name in the session log [default: generated, kept in the data directory].
    #[arg(long, env = "SCOMO_NODE_ID", value_name = "ID")]
    node_id: Option<String>,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, env = "SCOMO_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "SCOMO_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Server password for devices provisioned without their own.
    #[arg(
        long,
        env = "SCOMO_SERVER_PASSWORD",
        value_name = "P",
        hide_env_values = true
    )]
    server_password: Option<String>,
    /// Register unknown devices on first contact, without credentials.
    #[arg(
        long,
        env = "SCOMO_INSECURE_AUTO_REGISTER",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    insecure_auto_register: Option<bool>,
    /// Seconds of silence after which a DM session is dropped.
    #[arg(long, env = "SCOMO_SESSION_IDLE_TIMEOUT", value_name = "SECS")]
    session_idle_timeout: Option<u64>,
    /// Largest DM message accepted, in bytes.
    #[arg(long, env = "SCOMO_MAX_MSG_SIZE", value_name = "BYTES")]
    max_msg_size: Option<u64>,
    /// Delay before the second package 0 attempt, in milliseconds.
    #[arg(long, env = "SCOMO_NOTIFY_RETRY_MS", value_name = "MS")]
    notify_retry_ms: Option<u64>,
}

impl ServerArgs {
    /// Overrides `c` with every flag (or `SCOMO_*` variable) given.
    fn apply(self, c: &mut Config) {
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = self.data_dir {
            c.data_dir = v;
        }
        if let Some(v) = self.database_url {
            c.database_url = Some(v);
        }
        if let Some(v) = self.database_schema {
            c.database.pg_schema = Some(v);
        }
        if let Some(v) = self.public_url {
            c.public_url = Some(v);
        }
        if let Some(v) = self.server_id {
            c.server_id = v;
        }
        if let Some(v) = self.node_id {
            c.node_id = Some(v);
        }
        if let Some(v) = self.tls_cert {
            c.tls.cert = Some(v);
        }
        if let Some(v) = self.tls_key {
            c.tls.key = Some(v);
        }
        if let Some(v) = self.server_password {
            c.dm.server_password = Some(v);
        }
        if let Some(v) = self.insecure_auto_register {
            c.devices.insecure_auto_register = v;
        }
        if let Some(v) = self.session_idle_timeout {
            c.dm.session_idle_timeout_secs = v;
        }
        if let Some(v) = self.max_msg_size {
            c.dm.max_msg_size = v;
        }
        if let Some(v) = self.notify_retry_ms {
            c.notify.retry_initial_ms = v;
        }
    }
}

pub(crate) fn run_server(args: ServerArgs) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Config::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => Config::default(),
    };
    let check = args.check_config;
    args.apply(&mut config);
    config.validate()?;
    if check {
        println!("# configuration is valid");
        print!("{}", config.to_redacted_toml());
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let tls = match (&config.tls.cert, &config.tls.key) {
            (Some(c), Some(k)) => Some(tls_acceptor(c, k)?),
            _ => None,
        };
        let addr = config.listen_addr()?;
        let state = AppState::open(config).await?;
        let listener = Listener::bind(addr, tls)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let url = listener.url()?;
        info!(
            node = %state.node_id(),
            public_url = state.public_url().unwrap_or(&url),
            database = %scomo_server::config::redact_url(&state.config().effective_database_url()),
            "scomo server listening on {url}"
        );
        let store = state.store().clone();
        run(state, listener, crate::shutdown_signal()).await?;
        store.close().await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use clap::Args as _;
    use scomo_server::config::reference::KEYS;

    /// The flags and variables the configuration reference names are the
    /// ones `scomo server` has, and every flag that sets a key is in it.
    #[test]
    fn reference_flags_match_the_cli() {
        let cmd = super::ServerArgs::augment_args(clap::Command::new("server"));
        let args: Vec<(String, Option<String>)> = cmd
            .get_arguments()
            .filter_map(|a| {
                let long = a.get_long()?.to_owned();
                let env = a.get_env().map(|e| e.to_string_lossy().into_owned());
                Some((long, env))
            })
            .collect();
        for k in KEYS {
            if let Some(flag) = k.flag {
                let found = args.iter().find(|(l, _)| l == flag);
                let (_, env) = found.unwrap_or_else(|| panic!("{}: no flag --{flag}", k.key));
                assert_eq!(env.as_deref(), k.env, "{}: environment variable", k.key);
            }
        }
        for (long, _) in &args {
            if !matches!(long.as_str(), "config" | "check-config") {
                assert!(
                    KEYS.iter().any(|k| k.flag == Some(long.as_str())),
                    "--{long} sets a key the reference does not name"
                );
            }
        }
    }
}
