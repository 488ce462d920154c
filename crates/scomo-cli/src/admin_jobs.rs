//! `scomo admin job|inventory|catalog`: SCOMO operations from the command
//! line. `job create --wait` follows the job on the server's event stream
//! (Server-Sent Events) and exits 0 only when it succeeded.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::{json, Value};

use crate::admin::{enc, text, Client};

#[derive(Debug, Subcommand)]
pub(crate) enum JobCommand {
    /// Start a SCOMO operation on a device.
    Create {
        /// The DevId.
        #[arg(long)]
        device: String,
        /// Download, DownloadInstall, DownloadInstallInactive, Install,
        /// InstallInactive, Update, Remove, Activate or Deactivate.
        #[arg(long)]
        op: String,
        /// The package (PkgID).
        #[arg(long)]
        package: Option<String>,
        /// The component (ID).
        #[arg(long)]
        component: Option<String>,
        /// direct, http or dlota (download-type operations; default http).
        #[arg(long)]
        delivery: Option<String>,
        /// Not before this time (RFC 3339 or unix seconds).
        #[arg(long)]
        at: Option<String>,
        /// A further step after this one succeeded: OP or OP@TIME
        /// (repeatable), e.g. --then Activate@2026-12-01T02:00:00Z.
        #[arg(long, value_name = "OP[@TIME]")]
        then: Vec<String>,
        /// Seconds each step may take before the job times out.
        #[arg(long)]
        timeout: Option<u64>,
        /// Wait for the job to end, showing its progress; exit 0 only when
        /// it succeeded.
        #[arg(long)]
        wait: bool,
    },
    /// One job with its history.
    Show {
        /// The job id.
        id: i64,
    },
    /// Jobs, newest first.
    List {
        /// Only this device's.
        #[arg(long)]
        device: Option<String>,
        /// Only in this state.
        #[arg(long)]
        state: Option<String>,
        /// Only live ones.
        #[arg(long)]
        live: bool,
        /// Page size.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Cancel a live job.
    Cancel {
        /// The job id.
        id: i64,
    },
    /// Wait for a job to end (exit 0 only when it succeeded).
    Wait {
        /// The job id.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CatalogCommand {
    /// Add a rule: matching devices get the package.
    Add {
        /// A name for it.
        #[arg(long)]
        name: String,
        /// The package to give.
        #[arg(long)]
        package: String,
        /// DevInfo/Man to match.
        #[arg(long)]
        man: Option<String>,
        /// DevInfo/Mod to match.
        #[arg(long)]
        model: Option<String>,
        /// DevDetail/DevTyp to match.
        #[arg(long)]
        dev_typ: Option<String>,
        /// The package's EnvType to match.
        #[arg(long)]
        env_type: Option<String>,
        /// DownloadInstall (default), DownloadInstallInactive, Download or Update.
        #[arg(long)]
        op: Option<String>,
        /// http (default), dlota or direct.
        #[arg(long)]
        delivery: Option<String>,
        /// Higher wins.
        #[arg(long, default_value_t = 0)]
        priority: i64,
    },
    /// List the rules.
    List,
    /// Delete a rule.
    Delete {
        /// The rule id.
        id: i64,
    },
}

/// A time flag as the API takes it: unix seconds as a number, else the
/// text (RFC 3339).
pub(crate) fn time_value(t: &str) -> Value {
    match t.parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) => json!(t),
    }
}

pub(crate) async fn job(client: &Client, cmd: JobCommand, json_out: bool) -> Result<Value> {
    match cmd {
        JobCommand::Create {
            device,
            op,
            package,
            component,
            delivery,
            at,
            then,
            timeout,
            wait,
        } => {
            let mut body = json!({"device": device, "op": op});
            for (k, v) in [
                ("package", package),
                ("component", component),
                ("delivery", delivery),
            ] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            if let Some(at) = at {
                body["at"] = time_value(&at);
            }
            if let Some(t) = timeout {
                body["timeout_secs"] = json!(t);
            }
            if !then.is_empty() {
                body["then"] = then
                    .iter()
                    .map(|s| match s.split_once('@') {
                        Some((op, at)) => json!({"op": op, "at": time_value(at)}),
                        None => json!({"op": s}),
                    })
                    .collect();
            }
            let v = client.send("POST", "/jobs", Some(body)).await?;
            if !json_out {
                println!(
                    "job {} created: {} on {} ({})",
                    text(&v["id"]),
                    text(&v["op"]),
                    text(&v["device_id"]),
                    text(&v["state"])
                );
            }
            match (wait, v["id"].as_i64()) {
                (true, Some(id)) => wait_for(client, id, json_out).await,
                _ => Ok(v),
            }
        }
        JobCommand::Show { id } => {
            let v = client.send("GET", &format!("/jobs/{id}"), None).await?;
            if !json_out {
                print_job(&v);
            }
            Ok(v)
        }
        JobCommand::List {
            device,
            state,
            live,
            limit,
        } => {
            let mut q = vec![format!("limit={limit}")];
            if let Some(d) = device {
                q.push(format!("device={}", enc(&d)));
            }
            if let Some(s) = state {
                q.push(format!("state={}", enc(&s)));
            }
            if live {
                q.push("live=true".into());
            }
            let v = client
                .send("GET", &format!("/jobs?{}", q.join("&")), None)
                .await?;
            if !json_out {
                println!(
                    "{:>6} {:<24} {:<24} {:<16} {:<16} OUTCOME",
                    "ID", "DEVICE", "OP", "PACKAGE", "STATE"
                );
                for j in v.as_array().into_iter().flatten() {
                    println!(
                        "{:>6} {:<24} {:<24} {:<16} {:<16} {}",
                        text(&j["id"]),
                        text(&j["device_id"]),
                        text(&j["op"]),
                        text(&j["package"]),
                        text(&j["state"]),
                        text(&j["outcome"])
                    );
                }
            }
            Ok(v)
        }
        JobCommand::Cancel { id } => {
            let v = client
                .send("POST", &format!("/jobs/{id}/cancel"), None)
                .await?;
            if !json_out {
                println!("job {id} {}", text(&v["state"]));
            }
            Ok(v)
        }
        JobCommand::Wait { id } => wait_for(client, id, json_out).await,
    }
}

/// Follows a job until it ends: each history line as it happens, then the
/// outcome. Errors (exit status 1) unless it succeeded.
async fn wait_for(client: &Client, id: i64, json_out: bool) -> Result<Value> {
    let mut printed = 0usize;
    let mut events = client.events("kinds=job").await?;
    loop {
        let v = client.send("GET", &format!("/jobs/{id}"), None).await?;
        if !json_out {
            let history = v["history"].as_array().cloned().unwrap_or_default();
            for h in history.iter().skip(printed) {
                println!(
                    "  {}  {:<16} {}",
                    text(&h["at"]),
                    text(&h["state"]),
                    text(&h["message"])
                );
            }
            printed = printed.max(history.len());
        }
        if v["finished"] == true {
            if v["state"] == "succeeded" {
                if !json_out {
                    println!("job {id} succeeded");
                }
                return Ok(v);
            }
            if json_out {
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            bail!(
                "job {id} ended {}: {}{}",
                text(&v["state"]),
                text(&v["outcome"]),
                v["detail"]
                    .as_str()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            );
        }
        // Until an event about this job (or a quiet minute: look anyway).
        let _ = tokio::time::timeout(Duration::from_secs(60), events.next_about(id)).await;
    }
}

pub(crate) async fn inventory(client: &Client, device: &str, json_out: bool) -> Result<Value> {
    let v = client
        .send("GET", &format!("/devices/{}/inventory", enc(device)), None)
        .await?;
    if !json_out {
        match v["read_at"].as_str() {
            None => println!("{device}: inventory not read yet"),
            Some(t) => println!("{device}: inventory read {t} ({})", text(&v["method"])),
        }
        println!(
            "{:<10} {:<28} {:<20} {:<12} {:<10} {:>6}",
            "KIND", "ID", "NAME", "VERSION", "STATE", "STATUS"
        );
        for (kind, list) in [("deployed", &v["deployed"]), ("delivered", &v["delivered"])] {
            for e in list.as_array().into_iter().flatten() {
                println!(
                    "{:<10} {:<28} {:<20} {:<12} {:<10} {:>6}",
                    kind,
                    text(&e["id"]),
                    text(&e["name"]),
                    text(&e["version"]),
                    text(&e["state"]),
                    text(&e["status"])
                );
            }
        }
    }
    Ok(v)
}

pub(crate) async fn catalog(client: &Client, cmd: CatalogCommand, json_out: bool) -> Result<Value> {
    match cmd {
        CatalogCommand::Add {
            name,
            package,
            man,
            model,
            dev_typ,
            env_type,
            op,
            delivery,
            priority,
        } => {
            let mut body = json!({"name": name, "package": package, "priority": priority});
            for (k, v) in [
                ("man", man),
                ("model", model),
                ("dev_typ", dev_typ),
                ("env_type", env_type),
                ("op", op),
                ("delivery", delivery),
            ] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            let v = client.send("POST", "/catalog/rules", Some(body)).await?;
            if !json_out {
                println!("rule {} added", text(&v["id"]));
            }
            Ok(v)
        }
        CatalogCommand::List => {
            let v = client.send("GET", "/catalog/rules", None).await?;
            if !json_out {
                println!(
                    "{:>4} {:<24} {:>4} {:<20} {:<24} MATCH",
                    "ID", "NAME", "PRIO", "PACKAGE", "OP"
                );
                for r in v.as_array().into_iter().flatten() {
                    let m: Vec<String> = ["man", "model", "dev_typ", "env_type"]
                        .iter()
                        .filter(|k| !r[**k].is_null())
                        .map(|k| format!("{k}={}", text(&r[*k])))
                        .collect();
                    println!(
                        "{:>4} {:<24} {:>4} {:<20} {:<24} {}",
                        text(&r["id"]),
                        text(&r["name"]),
                        text(&r["priority"]),
                        text(&r["package"]),
                        format!("{} ({})", text(&r["op"]), text(&r["delivery"])),
                        if m.is_empty() {
                            "any".into()
                        } else {
                            m.join(" ")
                        }
                    );
                }
            }
            Ok(v)
        }
        CatalogCommand::Delete { id } => {
            client
                .send("DELETE", &format!("/catalog/rules/{id}"), None)
                .await?;
            if !json_out {
                println!("rule {id} deleted");
            }
            Ok(json!({"deleted": id}))
        }
    }
}

fn print_job(v: &Value) {
    for key in [
        "id",
        "device_id",
        "op",
        "package",
        "component",
        "delivery",
        "origin",
        "state",
        "result_code",
        "result_meaning",
        "outcome",
        "detail",
        "created_at",
        "finished_at",
    ] {
        println!("{key:<15} {}", text(&v[key]));
    }
    if let Some(steps) = v["steps"].as_array() {
        let s: Vec<String> = steps.iter().map(text).collect();
        println!(
            "{:<15} {} (at {})",
            "steps",
            s.join(" → "),
            text(&v["step"])
        );
    }
    for d in v["downloads"].as_array().into_iter().flatten() {
        println!(
            "{:<15} {} bytes served, {} complete, notify {}, error {}",
            "download",
            text(&d["bytes_served"]),
            text(&d["downloads_completed"]),
            text(&d["notify_status"]),
            text(&d["last_error"])
        );
    }
    for h in v["history"].as_array().into_iter().flatten() {
        println!(
            "  {}  {:<16} {}",
            text(&h["at"]),
            text(&h["state"]),
            text(&h["message"])
        );
    }
}

/// A Server-Sent Events stream from `/api/v1/events`.
pub(crate) struct EventStream {
    resp: reqwest::Response,
    buf: String,
}

impl EventStream {
    pub(crate) fn new(resp: reqwest::Response) -> EventStream {
        EventStream {
            resp,
            buf: String::new(),
        }
    }

    /// The next event's data (JSON), skipping keep-alives.
    async fn next(&mut self) -> Result<Option<Value>> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim)
                    .collect();
                if data.is_empty() {
                    continue;
                }
                return Ok(Some(serde_json::from_str(&data).unwrap_or(Value::Null)));
            }
            match self.resp.chunk().await.context("the event stream broke")? {
                Some(c) => self.buf.push_str(&String::from_utf8_lossy(&c)),
                None => return Ok(None),
            }
        }
    }

    /// Waits for an event about job `id` (or the stream's end).
    pub(crate) async fn next_about(&mut self, id: i64) {
        while let Ok(Some(ev)) = self.next().await {
            if ev["id"].as_i64() == Some(id) {
                return;
            }
        }
        // The stream ended: do not spin; the caller looks again later.
        std::future::pending::<()>().await;
    }
}
