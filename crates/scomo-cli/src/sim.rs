//! `scomo sim`: N simulated devices against a running server
//! (`scomo_sim`). Provisions them through the REST API, registers them,
//! then answers the server until Ctrl-C/SIGTERM or a stop condition, and
//! prints a summary table (or one JSON object with `--json`).

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use scomo_sim::{Model, Rates, SimAuth, SimConfig, StopWhen};

/// `scomo sim` flags.
#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    /// The server's base URL (REST API; the DM endpoint is `<URL>/dm`).
    #[arg(long, env = "SCOMO_URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The DM endpoint, when not `<server>/dm`; repeat it for several nodes
    /// (device n talks to the (n mod k)-th).
    #[arg(long)]
    dm_url: Vec<String>,
    /// API token for provisioning (without it, devices must exist).
    #[arg(long, env = "SCOMO_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The server's ServerID.
    #[arg(long, default_value = "scomo")]
    server_id: String,
    /// The server's password towards devices (its `dm.server_password`).
    #[arg(long, env = "SCOMO_SERVER_PASSWORD", hide_env_values = true)]
    server_password: String,
    /// Number of devices.
    #[arg(long, short = 'n', default_value_t = 100)]
    devices: u32,
    /// DevIds are `<prefix>-<n>`.
    #[arg(long, default_value = "sim")]
    prefix: String,
    /// Seed of every draw (credentials, models, latencies, outcomes).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A device model `MAN:MOD:DEVTYP[=WEIGHT]`; repeat for a mix.
    #[arg(long = "model")]
    models: Vec<String>,
    /// A label every device gets, `KEY=VALUE`; repeatable.
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Client auth: md5 or basic.
    #[arg(long, default_value = "md5")]
    auth: String,
    /// DM sessions at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Downloads at once.
    #[arg(long, default_value_t = 64)]
    download_concurrency: usize,
    /// Registration sessions started per second (0: no limit).
    #[arg(long, default_value_t = 0.0)]
    register_rate: f64,
    /// Skip the registration sessions.
    #[arg(long)]
    no_register: bool,
    /// Install time in milliseconds: `MS` or `MIN-MAX`.
    #[arg(long, default_value = "0")]
    install_latency_ms: String,
    /// Fraction of operations failing with 1500 (download primitives).
    #[arg(long, default_value_t = 0.0)]
    download_server_fault: f64,
    /// Fraction of operations failing with the device-fault code.
    #[arg(long, default_value_t = 0.0)]
    device_fault: f64,
    /// Fraction of operations the user declines (1401).
    #[arg(long, default_value_t = 0.0)]
    user_decline: f64,
    /// UDP port for package 0 (0: any); devices are 127.1.x.y:PORT.
    #[arg(long, default_value_t = 0)]
    notify_port: u16,
    /// Do not listen for package 0 (devices get no notification address).
    #[arg(long)]
    no_notify: bool,
    /// Stop after nothing happened for this many seconds.
    #[arg(long)]
    exit_after_idle: Option<u64>,
    /// Write this file (empty) once every device is registered, for scripts
    /// that start work on the fleet then.
    #[arg(long)]
    ready_file: Option<std::path::PathBuf>,
    /// Stop once every device had this many reports acknowledged.
    #[arg(long)]
    reports_per_device: Option<u32>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: SimArgs) -> anyhow::Result<()> {
    let cfg = config(&args)?;
    let stop = StopWhen {
        idle: args.exit_after_idle.map(Duration::from_secs),
        all_reported: args.reports_per_device.is_some(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let tty = std::io::stderr().is_terminal();
    let devices = cfg.devices;
    let mut ticks = 0u64;
    let mut ready = args.ready_file.clone();
    let summary = rt.block_on(scomo_sim::run(
        cfg,
        stop,
        move |sim| {
            if let Some(path) = &ready {
                if sim.registered() >= u64::from(devices) {
                    if let Err(e) = std::fs::write(path, b"") {
                        eprintln!("cannot write {}: {e}", path.display());
                    }
                    ready = None;
                }
            }
            ticks += 1;
            if !tty && !ticks.is_multiple_of(10) {
                return;
            }
            let s = sim.summary();
            let line = format!(
                "{:>6.0}s registered {}/{} sessions {} ({} failed) reports {} ops {} downloads {}",
                s.wall_s,
                s.registered,
                devices,
                s.sessions.values().sum::<u64>(),
                s.sessions_failed,
                s.reports_delivered,
                s.ops_total(),
                s.downloads
            );
            let mut err = std::io::stderr();
            if tty {
                let width = 30usize;
                let done = (s.registered as usize * width)
                    .checked_div(devices as usize)
                    .unwrap_or(0)
                    .min(width);
                let _ = write!(
                    err,
                    "\r[{}{}] {line}",
                    "#".repeat(done),
                    " ".repeat(width - done)
                );
            } else {
                let _ = writeln!(err, "{line}");
            }
            let _ = err.flush();
        },
        crate::shutdown_signal(),
    ))?;
    if tty {
        eprintln!();
    }
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{summary}");
    }
    Ok(())
}

fn config(a: &SimArgs) -> anyhow::Result<SimConfig> {
    let base = a.server.trim_end_matches('/').to_owned();
    let models = if a.models.is_empty() {
        SimConfig::default().models
    } else {
        a.models
            .iter()
            .map(|m| Model::parse(m).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?
    };
    let labels = a
        .labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--label {l:?} is not KEY=VALUE"))
        })
        .collect::<anyhow::Result<_>>()?;
    let (lo, hi) = latency(&a.install_latency_ms)?;
    let auth = match a.auth.to_ascii_lowercase().as_str() {
        "md5" => SimAuth::Md5,
        "basic" => SimAuth::Basic,
        other => bail!("--auth {other:?} is not md5 or basic"),
    };
    let cfg = SimConfig {
        server_url: a
            .dm_url
            .first()
            .cloned()
            .unwrap_or_else(|| format!("{base}/dm")),
        more_server_urls: a.dm_url.iter().skip(1).cloned().collect(),
        api_url: base,
        api_token: a.token.clone(),
        server_id: a.server_id.clone(),
        server_password: a.server_password.clone(),
        devices: a.devices,
        prefix: a.prefix.clone(),
        seed: a.seed,
        auth,
        models,
        labels,
        concurrency: a.concurrency,
        download_concurrency: a.download_concurrency,
        register_rate: a.register_rate,
        register: !a.no_register,
        install_latency_min: lo,
        install_latency_max: hi,
        rates: Rates {
            download_server_fault: a.download_server_fault,
            device_fault: a.device_fault,
            user_decline: a.user_decline,
        },
        notify_port: a.notify_port,
        notify: !a.no_notify,
        report_target: a.reports_per_device.unwrap_or(0),
        ..SimConfig::default()
    };
    cfg.validate().map_err(anyhow::Error::msg)?;
    Ok(cfg)
}

/// `MS` or `MIN-MAX` milliseconds.
fn latency(s: &str) -> anyhow::Result<(Duration, Duration)> {
    let ms = |v: &str| {
        v.trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .with_context(|| format!("--install-latency-ms {s:?}: {v:?} is not milliseconds"))
    };
    match s.split_once('-') {
        Some((a, b)) => Ok((ms(a)?, ms(b)?)),
        None => {
            let d = ms(s)?;
            Ok((d, d))
        }
    }
}
