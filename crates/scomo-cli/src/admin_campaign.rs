//! `scomo admin campaign ...`: campaigns from the command line, with a live
//! progress display (`create --watch`, `watch`) that follows the server's
//! event stream.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::{json, Value};

use crate::admin::{text, Client};
use crate::admin_jobs::time_value;

#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once per process; boxing would only obscure the clap derive"
)]
pub(crate) enum CampaignCommand {
    /// Roll one operation out over many devices.
    Create {
        /// A name for it.
        #[arg(long)]
        name: String,
        /// The operation: DownloadInstall, Update, Activate, ...
        #[arg(long)]
        op: String,
        /// The package (PkgID).
        #[arg(long)]
        package: Option<String>,
        /// The component (ID).
        #[arg(long)]
        component: Option<String>,
        /// direct, http or dlota.
        #[arg(long)]
        delivery: Option<String>,
        /// A further operation after the first succeeded (repeatable).
        #[arg(long)]
        then: Vec<String>,
        /// These devices (comma-separated or repeated) instead of a filter.
        #[arg(long, value_delimiter = ',')]
        devices: Vec<String>,
        /// Devices with this DevInfo/Man.
        #[arg(long)]
        man: Option<String>,
        /// Devices with this DevInfo/Mod.
        #[arg(long)]
        model: Option<String>,
        /// Devices with this DevDetail/DevTyp.
        #[arg(long)]
        dev_typ: Option<String>,
        /// Devices with this label: KEY=VALUE or KEY (repeatable).
        #[arg(long = "label", value_name = "KEY[=VALUE]")]
        labels: Vec<String>,
        /// Devices by a component's deployed version: ID (deployed),
        /// ID<VERSION (older), ID=VERSION (exactly) or !ID (missing).
        #[arg(long, value_name = "RULE")]
        component_version: Option<String>,
        /// Devices that start matching later do not join.
        #[arg(long)]
        no_late_joiners: bool,
        /// A stage: N% or N devices (repeatable, in order).
        #[arg(long = "stage", value_name = "N%|N")]
        stages: Vec<String>,
        /// Percent of a stage that must succeed before the next opens.
        #[arg(long, default_value_t = 100)]
        success_threshold: u8,
        /// An error threshold: CLASS:MAX_PCT[:MIN_FINISHED][:pause|abort]
        /// with CLASS device_fault, download_server_fault or user_declined.
        #[arg(long = "error-threshold", value_name = "SPEC")]
        error_thresholds: Vec<String>,
        /// Job starts per second at most.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Starts allowed back to back (default: the rate).
        #[arg(long)]
        burst: Option<u32>,
        /// Random extra delay of a rate-limited start, up to this (ms).
        #[arg(long, default_value_t = 0)]
        jitter_ms: u32,
        /// Jobs in flight at most.
        #[arg(long, default_value_t = 100)]
        max_concurrency: u32,
        /// Not before this time (RFC 3339 or unix seconds).
        #[arg(long)]
        start_at: Option<String>,
        /// A daily UTC maintenance window, HH:MM-HH:MM.
        #[arg(long)]
        window: Option<String>,
        /// Seconds each job step may take.
        #[arg(long)]
        timeout: Option<u64>,
        /// Follow the progress until the campaign ends.
        #[arg(long)]
        watch: bool,
    },
    /// Campaigns, newest first.
    List {
        /// Page size.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One campaign with its per-stage counts.
    Show {
        /// The campaign id.
        id: i64,
    },
    /// Follow a campaign's progress until it ends (exit 0 when completed).
    Watch {
        /// The campaign id.
        id: i64,
    },
    /// Stop starting jobs (jobs in flight go on).
    Pause {
        /// The campaign id.
        id: i64,
    },
    /// Go on after a pause.
    Resume {
        /// The campaign id.
        id: i64,
    },
    /// Stop for good and cancel the jobs in flight.
    Cancel {
        /// The campaign id.
        id: i64,
    },
    /// The devices a campaign took, with their outcomes.
    Devices {
        /// The campaign id.
        id: i64,
        /// Page size.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
}

fn component_rule(rule: &str) -> Result<Value> {
    if let Some(id) = rule.strip_prefix('!') {
        return Ok(json!({"id": id, "missing": true}));
    }
    if let Some((id, v)) = rule.split_once('<') {
        return Ok(json!({"id": id, "below": v}));
    }
    if let Some((id, v)) = rule.split_once('=') {
        return Ok(json!({"id": id, "version": v}));
    }
    if rule.is_empty() {
        bail!("--component-version needs a component id");
    }
    Ok(json!({"id": rule}))
}

fn stage(s: &str) -> Result<Value> {
    let bad = || format!("--stage {s:?}: give N% or a number of devices");
    match s.strip_suffix('%') {
        Some(p) => Ok(json!({"percent": p.trim().parse::<u8>().with_context(bad)?})),
        None => Ok(json!({"count": s.trim().parse::<u32>().with_context(bad)?})),
    }
}

fn threshold(s: &str) -> Result<Value> {
    let parts: Vec<&str> = s.split(':').collect();
    let bad =
        || format!("--error-threshold {s:?}: give CLASS:MAX_PCT[:MIN_FINISHED][:pause|abort]");
    let (Some(class), Some(pct)) = (parts.first(), parts.get(1)) else {
        bail!(bad());
    };
    let mut v = json!({"class": class, "max_pct": pct.parse::<u8>().with_context(bad)?,
                       "action": "pause"});
    for p in parts.iter().skip(2) {
        match *p {
            "pause" | "abort" => v["action"] = json!(p),
            n => v["min_finished"] = json!(n.parse::<u32>().with_context(bad)?),
        }
    }
    Ok(v)
}

pub(crate) async fn campaign(
    client: &Client,
    cmd: CampaignCommand,
    json_out: bool,
) -> Result<Value> {
    match cmd {
        CampaignCommand::Create {
            name,
            op,
            package,
            component,
            delivery,
            then,
            devices,
            man,
            model,
            dev_typ,
            labels,
            component_version,
            no_late_joiners,
            stages,
            success_threshold,
            error_thresholds,
            rate,
            burst,
            jitter_ms,
            max_concurrency,
            start_at,
            window,
            timeout,
            watch,
        } => {
            let mut job = json!({"op": op});
            for (k, v) in [
                ("package", package),
                ("component", component),
                ("delivery", delivery),
            ] {
                if let Some(v) = v {
                    job[k] = json!(v);
                }
            }
            if !then.is_empty() {
                job["then"] = json!(then);
            }
            if let Some(t) = timeout {
                job["timeout_secs"] = json!(t);
            }
            let mut select = json!({});
            if !devices.is_empty() {
                select["devices"] = json!(devices);
            }
            for (k, v) in [("man", man), ("model", model), ("dev_typ", dev_typ)] {
                if let Some(v) = v {
                    select[k] = json!(v);
                }
            }
            if !labels.is_empty() {
                select["labels"] = json!(labels);
            }
            if let Some(r) = component_version {
                select["component"] = component_rule(&r)?;
            }
            if no_late_joiners {
                select["late_joiners"] = json!(false);
            }
            let mut body = json!({
                "name": name,
                "job": job,
                "select": select,
                "stages": stages.iter().map(|s| stage(s)).collect::<Result<Vec<_>>>()?,
                "success_threshold_pct": success_threshold,
                "error_thresholds":
                    error_thresholds.iter().map(|s| threshold(s)).collect::<Result<Vec<_>>>()?,
                "rate_per_sec": rate,
                "jitter_ms": jitter_ms,
                "max_concurrency": max_concurrency,
            });
            if let Some(b) = burst {
                body["burst"] = json!(b);
            }
            if let Some(t) = start_at {
                body["start_at"] = time_value(&t);
            }
            if let Some(w) = window {
                let Some((start, end)) = w.split_once('-') else {
                    bail!("--window {w:?}: give HH:MM-HH:MM");
                };
                body["window"] = json!({"start": start, "end": end});
            }
            let v = client.send("POST", "/campaigns", Some(body)).await?;
            if !json_out {
                println!("campaign {} created: {}", text(&v["id"]), text(&v["name"]));
            }
            match (watch, v["id"].as_i64()) {
                (true, Some(id)) => follow(client, id, json_out).await,
                _ => Ok(v),
            }
        }
        CampaignCommand::List { limit } => {
            let v = client
                .send("GET", &format!("/campaigns?limit={limit}"), None)
                .await?;
            if !json_out {
                println!(
                    "{:>5} {:<24} {:<10} {:>8} {:>9} {:>7} {:>8}",
                    "ID", "NAME", "STATE", "DEVICES", "SUCCEEDED", "FAILED", "RUNNING"
                );
                for c in v.as_array().into_iter().flatten() {
                    let t = &c["progress"]["totals"];
                    println!(
                        "{:>5} {:<24} {:<10} {:>8} {:>9} {:>7} {:>8}",
                        text(&c["id"]),
                        text(&c["name"]),
                        text(&c["state"]),
                        text(&t["devices"]),
                        text(&t["succeeded"]),
                        text(&t["failed"]),
                        text(&t["in_flight"])
                    );
                }
            }
            Ok(v)
        }
        CampaignCommand::Show { id } => {
            let v = client
                .send("GET", &format!("/campaigns/{id}"), None)
                .await?;
            if !json_out {
                print_campaign(&v);
            }
            Ok(v)
        }
        CampaignCommand::Watch { id } => follow(client, id, json_out).await,
        CampaignCommand::Pause { id } => command(client, id, "pause", json_out).await,
        CampaignCommand::Resume { id } => command(client, id, "resume", json_out).await,
        CampaignCommand::Cancel { id } => command(client, id, "cancel", json_out).await,
        CampaignCommand::Devices { id, limit } => {
            let v = client
                .send(
                    "GET",
                    &format!("/campaigns/{id}/devices?limit={limit}"),
                    None,
                )
                .await?;
            if !json_out {
                println!(
                    "{:<28} {:>5} {:>7} {:<12} {:>6} CLASS",
                    "DEVICE", "STAGE", "JOB", "OUTCOME", "CODE"
                );
                for m in v.as_array().into_iter().flatten() {
                    let stage = m["stage"].as_u64().map(|s| (s + 1).to_string());
                    println!(
                        "{:<28} {:>5} {:>7} {:<12} {:>6} {}",
                        text(&m["device_id"]),
                        stage.unwrap_or_else(|| "-".into()),
                        text(&m["job_id"]),
                        m["outcome"].as_str().unwrap_or("pending"),
                        text(&m["result_code"]),
                        text(&m["class"])
                    );
                }
            }
            Ok(v)
        }
    }
}

async fn command(client: &Client, id: i64, what: &str, json_out: bool) -> Result<Value> {
    let v = client
        .send("POST", &format!("/campaigns/{id}/{what}"), None)
        .await?;
    if !json_out {
        println!("campaign {id}: {what} asked (now {})", text(&v["state"]));
    }
    Ok(v)
}

/// One line of progress: state, stage, a bar and the counts.
pub(crate) fn progress_line(c: &Value) -> String {
    let p = &c["progress"];
    let t = &p["totals"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let devices = n(&t["devices"]);
    let finished = n(&t["succeeded"]) + n(&t["failed"]) + n(&t["cancelled"]);
    let stages = p["stages"].as_array().map_or(0, Vec::len);
    let stage = c["current_stage"].as_u64().map_or(0, |s| s + 1);
    let width = 20u64;
    let filled = (finished * width).checked_div(devices).unwrap_or(0);
    let bar: String = (0..width)
        .map(|i| if i < filled { '#' } else { '.' })
        .collect();
    let pct = (finished * 100).checked_div(devices).unwrap_or(0);
    format!(
        "{:<9} stage {stage}/{stages} [{bar}] {pct:>3}% {finished}/{devices}: {} ok, {} device \
         faults, {} server faults, {} declined, {} timed out, {} cancelled; {} running",
        text(&c["state"]),
        n(&t["succeeded"]),
        n(&t["device_fault"]) + n(&t["other_failure"]) + n(&t["mismatch"]),
        n(&t["download_server_fault"]),
        n(&t["user_declined"]),
        n(&t["timed_out"]),
        n(&t["cancelled"]),
        n(&t["in_flight"])
    )
}

fn print_campaign(c: &Value) {
    println!("campaign {}: {}", text(&c["id"]), text(&c["name"]));
    println!("  {}", progress_line(c));
    if let Some(r) = c["reason_text"].as_str() {
        println!("  reason: {r}");
    }
    for (i, s) in c["progress"]["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        println!(
            "  stage {:>2} {:<7} devices {:>6}  pending {:>6}  running {:>5}  succeeded {:>6}  failed {:>5}",
            i + 1,
            if s["opened"] == true { "open" } else { "closed" },
            text(&s["devices"]),
            text(&s["pending"]),
            text(&s["in_flight"]),
            text(&s["succeeded"]),
            text(&s["failed"])
        );
    }
}

/// Follows a campaign until it ends: a live line on a terminal, a line per
/// change otherwise. Errors (exit 1) unless it completed.
async fn follow(client: &Client, id: i64, json_out: bool) -> Result<Value> {
    let tty = std::io::stdout().is_terminal() && !json_out;
    let mut events = client.events("kinds=campaign").await?;
    let mut last = String::new();
    loop {
        let c = client
            .send("GET", &format!("/campaigns/{id}"), None)
            .await?;
        let line = progress_line(&c);
        if !json_out && line != last {
            if tty {
                print!("\r\x1b[2K{line}");
                let _ = std::io::stdout().flush();
            } else {
                println!("{line}");
            }
            if c["state"] == "paused" && !last.starts_with("paused") {
                if tty {
                    println!();
                }
                println!("paused: {}", text(&c["reason_text"]));
            }
            last = line;
        }
        if c["finished_at"].is_string() {
            if tty {
                println!();
            }
            if c["state"] == "completed" {
                return Ok(c);
            }
            if json_out {
                println!("{}", serde_json::to_string_pretty(&c)?);
            }
            bail!(
                "campaign {id} ended {}{}",
                text(&c["state"]),
                c["reason_text"]
                    .as_str()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
        }
        // Until the next event about it, or a second (other nodes' progress).
        let _ = tokio::time::timeout(Duration::from_secs(1), events.next_about(id)).await;
    }
}
