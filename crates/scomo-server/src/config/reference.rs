//! The configuration reference of `docs/operator-guide.md`, generated.
//!
//! [`KEYS`] describes every key of [`Config`]; [`markdown`] renders them as
//! a Markdown table whose defaults come from `Config::default()` itself
//! (serialized), so they cannot go stale. The test of this module compares
//! the table with the part of `docs/operator-guide.md` between
//! `<!-- BEGIN server-config -->` and `<!-- END server-config -->` and fails
//! when a key of the struct has no description (or a description names no
//! key) or the document differs; `SCOMO_BLESS=1` rewrites the document.

use super::Config;

pub use scomo::config_doc::KeyDoc;
use scomo::config_doc::{flag, key};

/// Every key of [`Config`], in the order the reference lists them.
pub const KEYS: &[KeyDoc] = &[
    flag("listen", "string", "listen", "SCOMO_LISTEN", "Address to listen on (`IP:PORT`; port 0 picks a free one)."),
    flag("public_url", "string", "public-url", "SCOMO_PUBLIC_URL", "This node's own base URL as devices reach it (`https://dm1.example.com`). It goes into every `RespURI`, so follow-up messages of a session come back to the node that holds it. Unset: `http(s)://<bound address>`, or the request's `Host` when bound to an unspecified address."),
    flag("server_id", "string", "server-id", "SCOMO_SERVER_ID", "The ServerID devices know this server by (DMAcc `ServerID`; package 0 carries it, 1 to 255 bytes)."),
    flag("data_dir", "path", "data-dir", "SCOMO_DATA_DIR", "Where the embedded database (`scomo.db`), the node id (`node-id`), the admin token (`admin.token`) and the package repository (`packages/`) live."),
    flag("database_url", "string", "database-url", "SCOMO_DATABASE_URL", "`sqlite://PATH` or `postgres://USER@HOST/DB`; unset: SQLite in `data_dir/scomo.db`. Its password is redacted in logs and `--check-config`."),
    flag("node_id", "string", "node-id", "SCOMO_NODE_ID", "This node's name in the session audit log (1 to 64 of `[A-Za-z0-9._-]`). Unset: a random name made on first start and kept in `data_dir/node-id`, so a restarted node recognises (and settles) the sessions it held."),
    flag("tls.cert", "path", "tls-cert", "SCOMO_TLS_CERT", "PEM certificate chain; with `tls.key`, the server speaks HTTPS only."),
    flag("tls.key", "path", "tls-key", "SCOMO_TLS_KEY", "PEM private key (PKCS#8, PKCS#1 or SEC1); set both `tls.cert` and `tls.key` or neither."),
    key("database.max_connections", "integer", "Pool size; unset: 4 for SQLite, 10 for PostgreSQL."),
    flag("database.pg_schema", "string", "database-schema", "SCOMO_DATABASE_SCHEMA", "PostgreSQL schema to use (created if missing); unset: the default `search_path`. Lets several deployments (or test runs) share a database server."),
    key("database.sqlite_writer_cache_mib", "integer", "SQLite: the page cache of the connection every write goes through, in MiB (1 to 65536; default 128, filled only as pages are touched). Large fleets on long-running servers gain from a cache that holds their indexes; a small server can lower it."),
    key("database.sqlite_synchronous", "string", "SQLite durability: `full` (every commit is on disk before the response that depends on it leaves; survives power loss) or `normal` (the WAL is synced at checkpoints: survives a crash of the server, a power loss may lose the last commits). Concurrent sessions share each commit either way."),
    flag("dm.max_msg_size", "integer", "max-msg-size", "SCOMO_MAX_MSG_SIZE", "MaxMsgSize the server advertises (bytes, at least 1024); bigger requests are refused with 413."),
    key("dm.max_obj_size", "integer", "MaxObjSize the server advertises (large objects from devices; at least `dm.max_msg_size`)."),
    flag("dm.session_idle_timeout_secs", "integer", "session-idle-timeout", "SCOMO_SESSION_IDLE_TIMEOUT", "A session with no message for this long is dropped (its batches are settled by the requeue rule)."),
    key("dm.max_sessions", "integer", "Sessions held in memory at once on this node; more are answered 503."),
    key("dm.max_batches_per_package", "integer", "Command batches claimed for a device at each package start."),
    flag("dm.server_password", "string", "server-password", "SCOMO_SERVER_PASSWORD", "The server password (SRVCRED `AAuthSecret`) for devices provisioned without their own. Unset: such devices get no server credentials and no package 0."),
    key("dm.auth_per_message", "bool", "Ask for credentials in every message (status 200) instead of once per session (212)."),
    key("dm.read_devdetail", "bool", "Read `./DevDetail` leaves in every session (recorded with DevInfo)."),
    flag("devices.insecure_auto_register", "bool", "insecure-auto-register", "SCOMO_INSECURE_AUTO_REGISTER", "Register unknown devices on first contact, without credentials: any client claiming a new DevId gets a session. For closed networks and tests; provisioned devices keep their credentials either way."),
    key("notify.poll_interval_ms", "integer", "How often the notifier looks for due package-0 notifications (it is also woken when one is asked for on this node)."),
    flag("notify.retry_initial_ms", "integer", "notify-retry-ms", "SCOMO_NOTIFY_RETRY_MS", "Delay before the second package-0 attempt."),
    key("notify.retry_factor", "integer", "Growth of the delay per attempt."),
    key("notify.retry_max_ms", "integer", "The longest delay between attempts."),
    key("notify.max_attempts", "integer", "Attempts before a notification expires."),
    key("notify.ui_mode", "string", "UI mode in package 0: `not-specified`, `background`, `informative` or `user-interaction`."),
    key("scomo.root", "string", "Where devices hold the SCOMO MO (an absolute tree URI; `SCOMO.md` §1: the placement is not fixed, `./SCOMO` is what deployed clients use)."),
    key("scomo.job_timeout_secs", "integer", "A job with no result after this long times out."),
    key("scomo.inventory_max_age_secs", "integer", "The inventory is read at the start of a session when the cached one is older than this (0: never at session start; jobs still read it)."),
    key("scomo.worker_interval_ms", "integer", "How often each node looks for due jobs (timeouts, scheduled steps) and for results no session handled."),
    key("scomo.campaign_rejoin_ms", "integer", "How often a running campaign with a filter looks for devices that started matching it (late joiners)."),
    key("scomo.catalog", "bool", "Apply catalog rules in every session (the device gets what the rules select for it)."),
    key("downloads.url_ttl_secs", "integer", "How long a download URL (`/dl/{token}`) works when the caller does not say (1 second to 10 years)."),
    key("downloads.max_upload_bytes", "integer", "The largest package upload accepted (at least 1024); bigger ones are answered 413."),
];

/// The default values of `Config::default()`, by dotted key.
pub fn defaults() -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    if let Ok(v) = serde_json::to_value(Config::default()) {
        scomo::config_doc::flatten("", &v, &mut out);
    }
    out
}

/// The reference table (Markdown) of every key, defaults from
/// `Config::default()`.
pub fn markdown() -> String {
    scomo::config_doc::markdown(KEYS, &defaults())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: &str = "<!-- BEGIN server-config -->\n";
    const END: &str = "<!-- END server-config -->";

    #[test]
    fn every_key_is_described_with_its_type() {
        let defaults = defaults();
        let documented: Vec<&str> = KEYS.iter().map(|k| k.key).collect();
        for (k, v) in &defaults {
            let doc = KEYS.iter().find(|d| d.key == k);
            let doc = doc.unwrap_or_else(|| {
                panic!("config key {k} has no description in config/reference.rs KEYS")
            });
            let kind_ok = match v {
                serde_json::Value::Null => true,
                serde_json::Value::Bool(_) => doc.ty == "bool",
                serde_json::Value::Number(_) => doc.ty == "integer",
                serde_json::Value::String(_) => doc.ty == "string" || doc.ty == "path",
                _ => doc.ty.contains("list") || doc.ty.contains("table"),
            };
            assert!(kind_ok, "{k}: documented as {} but is {v}", doc.ty);
        }
        for d in documented {
            assert!(
                defaults.iter().any(|(k, _)| k == d),
                "KEYS describes {d}, which Config does not have"
            );
        }
    }

    #[test]
    fn operator_guide_has_the_current_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/operator-guide.md");
        let text = std::fs::read_to_string(path).expect("docs/operator-guide.md");
        let start = text.find(BEGIN).expect("BEGIN server-config marker") + BEGIN.len();
        let end = start + text[start..].find(END).expect("END server-config marker");
        let want = markdown();
        if text[start..end] == want {
            return;
        }
        if std::env::var("SCOMO_BLESS").is_ok_and(|v| v == "1") {
            let new = format!("{}{}{}", &text[..start], want, &text[end..]);
            std::fs::write(path, new).expect("write docs/operator-guide.md");
            return;
        }
        panic!(
            "docs/operator-guide.md's server configuration table is stale; rerun with \
             SCOMO_BLESS=1 cargo test -p scomo-server --lib config::reference\n--- expected:\n{want}"
        );
    }
}
