//! `scomo agent`: the device agent daemon, and `scomo agent init`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use scomo_agent::config::{AgentConfig, AuthKind, EncodingKind};
use scomo_agent::Agent;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct AgentArgs {
    #[command(subcommand)]
    command: Option<AgentCommand>,
    /// TOML configuration file (flags and SCOMO_AGENT_* variables override it).
    #[arg(long, env = "SCOMO_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Run one client-initiated session and exit (0 when it completed).
    #[arg(long)]
    once: bool,
    /// Check the configuration and exit.
    #[arg(long)]
    check_config: bool,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Print a commented configuration file built from the flags.
    Init {
        #[command(flatten)]
        settings: Settings,
    },
}

/// Every configuration key as a flag.
#[derive(Debug, Default, Args)]
struct Settings {
    /// DM endpoint of the server, e.g. http://127.0.0.1:8080/dm.
    #[arg(long, env = "SCOMO_AGENT_SERVER", value_name = "URL")]
    server: Option<String>,
    /// Device id (./DevInfo/DevId), e.g. IMEI:490154203237518.
    #[arg(long, env = "SCOMO_AGENT_DEVICE_ID", value_name = "ID")]
    device_id: Option<String>,
    /// Client user name.
    #[arg(long, env = "SCOMO_AGENT_USERNAME", value_name = "U")]
    username: Option<String>,
    /// Client password.
    #[arg(
        long,
        env = "SCOMO_AGENT_PASSWORD",
        value_name = "P",
        hide_env_values = true
    )]
    password: Option<String>,
    /// The server's ServerID.
    #[arg(long, env = "SCOMO_AGENT_SERVER_ID", value_name = "ID")]
    server_id: Option<String>,
    /// The server's password (authenticates the server and package 0).
    #[arg(
        long,
        env = "SCOMO_AGENT_SERVER_PASSWORD",
        value_name = "P",
        hide_env_values = true
    )]
    server_password: Option<String>,
    /// Authentication: basic, md5 or hmac.
    #[arg(long, env = "SCOMO_AGENT_AUTH", value_name = "basic|md5|hmac")]
    auth: Option<AuthKind>,
    /// Message encoding: xml or wbxml.
    #[arg(long, env = "SCOMO_AGENT_ENCODING", value_name = "xml|wbxml")]
    encoding: Option<EncodingKind>,
    /// PEM CA certificate to trust for https:// servers.
    #[arg(long, env = "SCOMO_AGENT_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// Data directory (tree, journal, downloads, components).
    #[arg(long, env = "SCOMO_AGENT_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Package-0 listener, udp://ADDR:PORT or http://ADDR:PORT.
    #[arg(long, env = "SCOMO_AGENT_NOTIFY_LISTEN", value_name = "ADDR")]
    notify_listen: Option<String>,
    /// Seconds between client-initiated sessions (0: never).
    #[arg(long, env = "SCOMO_AGENT_POLL_INTERVAL", value_name = "SECS")]
    poll_interval: Option<u64>,
    /// Largest DM message this device accepts, in bytes.
    #[arg(long, env = "SCOMO_AGENT_MAX_MSG_SIZE", value_name = "BYTES")]
    max_msg_size: Option<u32>,
    /// ./DevInfo/Man.
    #[arg(long, env = "SCOMO_AGENT_MAN")]
    man: Option<String>,
    /// ./DevInfo/Mod.
    #[arg(long = "mod", env = "SCOMO_AGENT_MOD", value_name = "MOD")]
    model: Option<String>,
    /// Any configuration key, as KEY=VALUE with a dotted key and a TOML
    /// value (e.g. `--set device.fwv=\"2.1\"`, `--set scomo.sync_operations=true`);
    /// repeatable, applied after the other flags.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// Applies `--set KEY=VALUE` overrides: the config goes through TOML, so
/// every key the file accepts is settable and checked the same way.
fn apply_overrides(config: &mut AgentConfig, overrides: &[String]) -> Result<()> {
    if overrides.is_empty() {
        return Ok(());
    }
    let mut doc = toml::Value::try_from(&*config).context("cannot represent the configuration")?;
    for o in overrides {
        let (key, raw) = o
            .split_once('=')
            .with_context(|| format!("--set {o:?}: expected KEY=VALUE"))?;
        let mut node = &mut doc;
        let parts: Vec<&str> = key.trim().split('.').collect();
        let (last, parents) = parts
            .split_last()
            .with_context(|| format!("--set {o:?}: empty key"))?;
        for p in parents {
            node = node
                .get_mut(*p)
                .with_context(|| format!("--set {o:?}: no section {p:?}"))?;
        }
        let table = node
            .as_table_mut()
            .with_context(|| format!("--set {o:?}: {key:?} is not inside a section"))?;
        // A key that holds text takes the value as written (`fwv=2.1` is
        // the string "2.1"); other keys take a TOML value (`true`, `[..]`).
        let typed = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"));
        let value = match (table.get(*last), typed) {
            (Some(toml::Value::String(_)), Some(toml::Value::String(v))) => toml::Value::String(v),
            (Some(toml::Value::String(_)), _) => toml::Value::String(raw.trim().to_owned()),
            // Other keys (and unset optional ones) take a TOML value, or text.
            (_, Some(v)) => v,
            (_, None) => toml::Value::String(raw.to_owned()),
        };
        table.insert((*last).to_owned(), value);
    }
    let text = toml::to_string(&doc).context("cannot represent the configuration")?;
    *config = AgentConfig::from_toml(&text).context("in --set")?;
    Ok(())
}

impl Settings {
    fn apply(self, c: &mut AgentConfig) -> Result<()> {
        let overrides = self.set.clone();
        let set = |target: &mut String, v: Option<String>| {
            if let Some(v) = v {
                *target = v;
            }
        };
        set(&mut c.server.url, self.server);
        set(&mut c.device.id, self.device_id);
        set(&mut c.server.username, self.username);
        set(&mut c.server.password, self.password);
        set(&mut c.server.server_id, self.server_id);
        set(&mut c.server.server_password, self.server_password);
        set(&mut c.agent.notify_listen, self.notify_listen);
        set(&mut c.device.man, self.man);
        set(&mut c.device.model, self.model);
        if let Some(v) = self.auth {
            c.server.auth = v;
        }
        if let Some(v) = self.encoding {
            c.server.encoding = v;
        }
        if self.ca_cert.is_some() {
            c.server.ca_cert = self.ca_cert;
        }
        if let Some(v) = self.data_dir {
            c.agent.data_dir = v;
        }
        if let Some(v) = self.poll_interval {
            c.agent.poll_interval_secs = v;
        }
        if let Some(v) = self.max_msg_size {
            c.agent.max_msg_size = v;
        }
        apply_overrides(c, &overrides)
    }
}

pub(crate) fn run(args: AgentArgs) -> Result<()> {
    if let Some(AgentCommand::Init { settings }) = args.command {
        let mut config = AgentConfig::default();
        settings.apply(&mut config)?;
        print!("{}", config.commented_toml());
        return Ok(());
    }
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            AgentConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => AgentConfig::default(),
    };
    args.settings.apply(&mut config)?;
    config.validate()?;
    if args.check_config {
        println!("configuration is valid");
        return Ok(());
    }
    // One thread is plenty for a device (sessions never overlap; file work
    // goes to the blocking pool) and keeps the idle footprint small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Crash injection for the crash-matrix tests: abort right after the
        // named journal step (unset in production).
        let crash = std::env::var(scomo_agent::scomo_client::CRASH_ENV_VAR).ok();
        let crash = scomo_agent::scomo_client::CrashMode::abort_at(crash.as_deref());
        let agent = Agent::with_crash_mode(config, crash)?;
        if args.once {
            let report = agent.run_once().await?;
            anyhow::ensure!(
                report.completed(),
                "the session did not complete: {:?}",
                report.outcome
            );
            return Ok(());
        }
        let listener = agent.bind_notify().await?;
        agent.run(listener, crate::shutdown_signal()).await?;
        Ok(())
    })
}

#[cfg(test)]
mod reference_tests {
    use clap::Args as _;
    use scomo_agent::config::reference::KEYS;

    /// The flags and variables the agent configuration reference names are
    /// the ones `scomo agent` has, and every flag that sets a key is in it.
    #[test]
    fn reference_flags_match_the_cli() {
        let cmd = super::Settings::augment_args(clap::Command::new("agent"));
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
            if long != "set" {
                assert!(
                    KEYS.iter().any(|k| k.flag == Some(long.as_str())),
                    "--{long} sets a key the reference does not name"
                );
            }
        }
    }
}
