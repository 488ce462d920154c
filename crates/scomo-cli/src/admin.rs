//! `scomo admin`: the REST API from the command line.
//!
//! `--server URL --token T` (or `SCOMO_URL` / `SCOMO_TOKEN`); `--json` prints
//! the API's JSON unchanged for scripts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// The server's base URL.
    #[arg(
        long,
        env = "SCOMO_URL",
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    /// API token (the server writes the first one to <data-dir>/admin.token).
    #[arg(
        long,
        env = "SCOMO_TOKEN",
        value_name = "T",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    /// Read the API token from this file.
    #[arg(long, value_name = "FILE", global = true, conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// PEM CA certificate to trust for an https:// server.
    #[arg(long, env = "SCOMO_CA_CERT", value_name = "FILE", global = true)]
    ca_cert: Option<PathBuf>,
    /// Print the API's JSON response.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once per process; boxing would only obscure the clap derive"
)]
enum AdminCommand {
    /// The device registry.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Batches of DM commands queued for devices.
    #[command(subcommand)]
    Batch(BatchCommand),
    /// SCOMO jobs: one operation on one device.
    #[command(subcommand)]
    Job(crate::admin_jobs::JobCommand),
    /// A device's inventory: deployed components and delivered packages.
    Inventory {
        /// The DevId.
        #[arg(long)]
        device: String,
    },
    /// Catalog rules: which package a device gets.
    #[command(subcommand)]
    Catalog(crate::admin_jobs::CatalogCommand),
    /// The package repository.
    #[command(subcommand)]
    Package(PackageCommand),
    /// Campaigns: one operation over many devices, staged and paced.
    #[command(subcommand)]
    Campaign(crate::admin_campaign::CampaignCommand),
}

#[derive(Debug, Subcommand)]
enum PackageCommand {
    /// Upload a delivery package (tar.gz or zip with scomo-package.toml).
    Upload {
        /// The package file.
        file: PathBuf,
        /// Base64 Ed25519 signature over the file's SHA-256 digest.
        #[arg(long, value_name = "B64")]
        signature: Option<String>,
    },
    /// List packages.
    List {
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Start after this PkgID.
        #[arg(long)]
        after: Option<String>,
    },
    /// One package.
    Show {
        /// The PkgID.
        pkg_id: String,
    },
    /// Delete a package and its file (refused while a download URL is live).
    Delete {
        /// The PkgID.
        pkg_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// Provision a device with its credentials.
    Add {
        /// DevId, e.g. IMEI:490154203237518.
        #[arg(long)]
        id: String,
        /// The device's user name.
        #[arg(long)]
        username: String,
        /// The device's password (only its MD5 is stored).
        #[arg(long)]
        password: String,
        /// basic, md5 or hmac.
        #[arg(long, default_value = "md5")]
        auth: String,
        /// The server's password toward this device (default: the server's).
        #[arg(long, value_name = "P")]
        server_password: Option<String>,
        /// Where package 0 goes: udp://HOST:PORT or http://HOST:PORT.
        #[arg(long, value_name = "ADDR")]
        notify: Option<String>,
        /// A label KEY=VALUE (repeatable).
        #[arg(long, value_name = "KEY=VALUE")]
        label: Vec<String>,
    },
    /// List devices.
    List {
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Start after this device id.
        #[arg(long)]
        after: Option<String>,
        /// Only ids starting with this.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// One device with the DevInfo/DevDetail values it reported.
    Show {
        /// The DevId.
        id: String,
    },
    /// Delete a device and everything about it.
    Delete {
        /// The DevId.
        id: String,
    },
    /// Send package 0 now.
    Notify {
        /// The DevId.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum BatchCommand {
    /// Queue a batch: a JSON file of {"commands": [...]}, or --get URIs.
    Add {
        /// The DevId.
        #[arg(long)]
        device: String,
        /// JSON file (`-` for standard input).
        #[arg(long, value_name = "FILE", conflicts_with = "get")]
        file: Option<PathBuf>,
        /// Get these nodes (repeatable).
        #[arg(long, value_name = "URI")]
        get: Vec<String>,
        /// Sending it twice is harmless.
        #[arg(long)]
        idempotent: bool,
    },
    /// A batch with its statuses and results.
    Show {
        /// The DevId.
        #[arg(long)]
        device: String,
        /// The batch id.
        id: i64,
    },
}

pub(crate) fn run(args: AdminArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: AdminArgs) -> Result<()> {
    let client = Client::new(&args)?;
    let json_out = args.json;
    let v = match args.command {
        AdminCommand::Device(cmd) => match cmd {
            DeviceCommand::Add {
                id,
                username,
                password,
                auth,
                server_password,
                notify,
                label,
            } => {
                let mut labels = BTreeMap::new();
                for l in label {
                    let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                    labels.insert(k.to_owned(), v.to_owned());
                }
                let mut body = json!({
                    "id": id, "username": username, "password": password, "auth": auth,
                    "labels": labels,
                });
                if let Some(p) = server_password {
                    body["server_password"] = json!(p);
                }
                if let Some(n) = notify {
                    body["notify_addr"] = json!(n);
                }
                let v = client.send("POST", "/devices", Some(body)).await?;
                if !json_out {
                    println!(
                        "provisioned {} ({} auth, user {})",
                        text(&v["id"]),
                        text(&v["auth"]),
                        text(&v["username"])
                    );
                }
                v
            }
            DeviceCommand::List {
                limit,
                after,
                prefix,
            } => {
                let mut q = vec![format!("limit={limit}")];
                if let Some(a) = after {
                    q.push(format!("after={}", enc(&a)));
                }
                if let Some(p) = prefix {
                    q.push(format!("prefix={}", enc(&p)));
                }
                let v = client
                    .send("GET", &format!("/devices?{}", q.join("&")), None)
                    .await?;
                if !json_out {
                    print_devices(&v);
                }
                v
            }
            DeviceCommand::Show { id } => {
                let v = client
                    .send("GET", &format!("/devices/{}", enc(&id)), None)
                    .await?;
                if !json_out {
                    print_device(&v);
                }
                v
            }
            DeviceCommand::Delete { id } => {
                client
                    .send("DELETE", &format!("/devices/{}", enc(&id)), None)
                    .await?;
                if !json_out {
                    println!("deleted {id}");
                }
                json!({"deleted": id})
            }
            DeviceCommand::Notify { id } => {
                let v = client
                    .send("POST", &format!("/devices/{}/notify", enc(&id)), None)
                    .await?;
                if !json_out {
                    println!("package 0 for {id} queued to {}", text(&v["notify_addr"]));
                }
                v
            }
        },
        AdminCommand::Job(cmd) => crate::admin_jobs::job(&client, cmd, json_out).await?,
        AdminCommand::Inventory { device } => {
            crate::admin_jobs::inventory(&client, &device, json_out).await?
        }
        AdminCommand::Catalog(cmd) => crate::admin_jobs::catalog(&client, cmd, json_out).await?,
        AdminCommand::Campaign(cmd) => {
            crate::admin_campaign::campaign(&client, cmd, json_out).await?
        }
        AdminCommand::Batch(cmd) => match cmd {
            BatchCommand::Add {
                device,
                file,
                get,
                idempotent,
            } => {
                let mut body = match file {
                    Some(path) => {
                        let text = if path.as_os_str() == "-" {
                            std::io::read_to_string(std::io::stdin())?
                        } else {
                            std::fs::read_to_string(&path)
                                .with_context(|| format!("cannot read {}", path.display()))?
                        };
                        serde_json::from_str::<Value>(&text)
                            .with_context(|| "the batch file is not JSON".to_string())?
                    }
                    None if !get.is_empty() => json!({
                        "commands": get.iter().map(|u| json!({"op": "get", "target": u})).collect::<Vec<_>>()
                    }),
                    None => bail!("give --file FILE or at least one --get URI"),
                };
                if idempotent {
                    body["idempotent"] = json!(true);
                }
                let v = client
                    .send(
                        "POST",
                        &format!("/devices/{}/commands", enc(&device)),
                        Some(body),
                    )
                    .await?;
                if !json_out {
                    println!("batch {} queued for {device}", text(&v["id"]));
                }
                v
            }
            BatchCommand::Show { device, id } => {
                let v = client
                    .send(
                        "GET",
                        &format!("/devices/{}/commands/{id}", enc(&device)),
                        None,
                    )
                    .await?;
                if !json_out {
                    print_batch(&v);
                }
                v
            }
        },
        AdminCommand::Package(cmd) => package_command(&client, cmd, json_out).await?,
    };
    if json_out {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}

async fn package_command(client: &Client, cmd: PackageCommand, json_out: bool) -> Result<Value> {
    Ok(match cmd {
        PackageCommand::Upload { file, signature } => {
            let f = tokio::fs::File::open(&file)
                .await
                .with_context(|| format!("cannot open {}", file.display()))?;
            let len = f.metadata().await?.len();
            let mut path = "/packages".to_owned();
            if let Some(s) = signature {
                path.push_str(&format!("?signature={}", enc(&s)));
            }
            // Streamed from the file, never read whole.
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                f,
                64 * 1024,
            ));
            let v = client.upload(&path, body, len).await?;
            if !json_out {
                println!(
                    "uploaded {} ({} bytes, sha256 {})",
                    text(&v["pkg_id"]),
                    text(&v["size"]),
                    text(&v["sha256"])
                );
            }
            v
        }
        PackageCommand::List { limit, after } => {
            let mut q = vec![format!("limit={limit}")];
            if let Some(a) = after {
                q.push(format!("after={}", enc(&a)));
            }
            let v = client
                .send("GET", &format!("/packages?{}", q.join("&")), None)
                .await?;
            if !json_out {
                print_packages(&v);
            }
            v
        }
        PackageCommand::Show { pkg_id } => {
            let v = client
                .send("GET", &format!("/packages/{}", enc(&pkg_id)), None)
                .await?;
            if !json_out {
                print_package(&v);
            }
            v
        }
        PackageCommand::Delete { pkg_id } => {
            client
                .send("DELETE", &format!("/packages/{}", enc(&pkg_id)), None)
                .await?;
            if !json_out {
                println!("deleted {pkg_id}");
            }
            json!({"deleted": pkg_id})
        }
    })
}

/// Time allowed for an upload (the usual 30 s is for small requests).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(3600);

pub(crate) struct Client {
    http: reqwest::Client,
    /// Without an overall timeout: for the event stream.
    stream_http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(args: &AdminArgs) -> Result<Client> {
        let token = match (&args.token, &args.token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the token file {}", f.display()))?
                .trim()
                .to_owned(),
            (None, None) => bail!(
                "no API token: pass --token T (or set SCOMO_TOKEN); the server wrote its \
                 first one to <data-dir>/admin.token"
            ),
        };
        let builder = |b: reqwest::ClientBuilder| -> Result<reqwest::Client> {
            let mut b = b
                .connect_timeout(Duration::from_secs(10))
                .user_agent(concat!("scomo-admin/", env!("CARGO_PKG_VERSION")));
            if let Some(ca) = &args.ca_cert {
                let pem =
                    std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
                for cert in reqwest::Certificate::from_pem_bundle(&pem)? {
                    b = b.add_root_certificate(cert);
                }
            }
            Ok(b.build()?)
        };
        Ok(Client {
            http: builder(reqwest::Client::builder().timeout(Duration::from_secs(30)))?,
            stream_http: builder(reqwest::Client::builder())?,
            base: args.server.trim_end_matches('/').to_owned(),
            token,
        })
    }

    async fn upload(&self, path: &str, body: reqwest::Body, len: u64) -> Result<Value> {
        let url = format!("{}/api/v1{path}", self.base);
        let resp = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .timeout(UPLOAD_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        Self::answer(resp).await
    }

    /// Opens the server's event stream (`/api/v1/events?<query>`).
    pub(crate) async fn events(&self, query: &str) -> Result<crate::admin_jobs::EventStream> {
        let url = format!("{}/api/v1/events?{query}", self.base);
        let resp = self
            .stream_http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if !resp.status().is_success() {
            bail!(
                "the server answered {} to GET {url}",
                resp.status().as_u16()
            );
        }
        Ok(crate::admin_jobs::EventStream::new(resp))
    }

    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}/api/v1{path}", self.base);
        let method: reqwest::Method = method.parse()?;
        let mut r = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&b)?);
        }
        let resp = r.send().await.with_context(|| format!("{method} {url}"))?;
        Self::answer(resp).await
    }

    /// The JSON of a successful response, or an error with the API's message.
    async fn answer(resp: reqwest::Response) -> Result<Value> {
        let status = resp.status();
        let text = resp.text().await?;
        let v: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() {
            bail!(
                "the server answered {} {}: {}",
                status.as_u16(),
                v["code"].as_str().unwrap_or("error"),
                v["message"].as_str().unwrap_or(&v.to_string())
            );
        }
        Ok(v)
    }
}

/// Percent-encodes a path segment or query value.
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_devices(v: &Value) {
    let empty = Vec::new();
    let devices = v["devices"].as_array().unwrap_or(&empty);
    println!(
        "{:<32} {:<11} {:<16} {:<16} LAST SEEN",
        "ID", "ORIGIN", "MAN", "MOD"
    );
    for d in devices {
        println!(
            "{:<32} {:<11} {:<16} {:<16} {}",
            text(&d["id"]),
            text(&d["origin"]),
            text(&d["man"]),
            text(&d["model"]),
            text(&d["last_seen_at"])
        );
    }
    if let Some(next) = v["next_after"].as_str() {
        println!("(more: --after {next})");
    }
}

fn print_device(d: &Value) {
    for key in [
        "id",
        "origin",
        "auth",
        "username",
        "own_server_password",
        "notify_addr",
        "man",
        "model",
        "dev_typ",
        "created_at",
        "first_seen_at",
        "last_seen_at",
    ] {
        println!("{key:<20} {}", text(&d[key]));
    }
    if let Some(labels) = d["labels"].as_object() {
        for (k, v) in labels {
            println!("{:<20} {k}={}", "label", text(v));
        }
    }
    if let Some(nodes) = d["nodes"].as_object() {
        for (k, v) in nodes {
            println!("{k:<32} {}", text(v));
        }
    }
}

fn print_packages(v: &Value) {
    let empty = Vec::new();
    println!(
        "{:<36} {:<10} {:<12} {:>12}  SHA256",
        "PKGID", "VERSION", "ENV", "SIZE"
    );
    for p in v["packages"].as_array().unwrap_or(&empty) {
        println!(
            "{:<36} {:<10} {:<12} {:>12}  {}",
            text(&p["pkg_id"]),
            text(&p["version"]),
            text(&p["env_type"]),
            text(&p["size"]),
            text(&p["sha256"])
        );
    }
    if let Some(next) = v["next_after"].as_str() {
        println!("(more: --after {next})");
    }
}

fn print_package(p: &Value) {
    for key in [
        "pkg_id",
        "name",
        "version",
        "env_type",
        "pkg_type",
        "size",
        "sha256",
        "signature",
        "created_at",
    ] {
        println!("{key:<12} {}", text(&p[key]));
    }
    let empty = Vec::new();
    for c in p["components"].as_array().unwrap_or(&empty) {
        println!(
            "{:<12} {} {} ({})",
            "component",
            text(&c["id"]),
            text(&c["version"]),
            text(&c["name"])
        );
    }
}

fn print_batch(b: &Value) {
    for key in [
        "id",
        "device_id",
        "owner",
        "state",
        "attempts",
        "command_count",
        "created_at",
        "finished_at",
    ] {
        println!("{key:<14} {}", text(&b[key]));
    }
    let empty = Vec::new();
    for o in b["outcomes"].as_array().unwrap_or(&empty) {
        let results: Vec<String> = o["results"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(|r| format!("{}={}", text(&r["source"]), text(&r["data"])))
            .collect();
        println!(
            "  [{}] {} {}",
            text(&o["index"]),
            text(&o["status"]),
            results.join(" ")
        );
    }
}
