//! The agent configuration reference of `docs/operator-guide.md`, generated.
//!
//! [`KEYS`] describes every key of [`AgentConfig`] (with `[scomo]` and one
//! `[[scomo.environments]]` entry); [`markdown`] renders them as a Markdown
//! table whose defaults come from `AgentConfig::default()` and
//! `CommandEnvConfig::default()` (serialized), so they cannot go stale. The
//! test of this module compares the table with the part of
//! `docs/operator-guide.md` between `<!-- BEGIN agent-config -->` and
//! `<!-- END agent-config -->` and fails when a key has no description (or a
//! description names no key) or the document differs; `SCOMO_BLESS=1`
//! rewrites the document.

use super::AgentConfig;
use crate::scomo_client::CommandEnvConfig;

pub use scomo::config_doc::KeyDoc;
use scomo::config_doc::{flag, key};

/// The prefix of the keys of each `[[scomo.environments]]` entry.
pub const ENV_PREFIX: &str = "scomo.environments[]";

/// Every key of [`AgentConfig`], in the order the reference lists them.
pub const KEYS: &[KeyDoc] = &[
    flag("device.id", "string", "device-id", "SCOMO_AGENT_DEVICE_ID", "`./DevInfo/DevId`, also the SyncHdr Source (e.g. `IMEI:493005100592800`); required."),
    flag("device.man", "string", "man", "SCOMO_AGENT_MAN", "`./DevInfo/Man` (catalog rules match on it)."),
    flag("device.mod", "string", "mod", "SCOMO_AGENT_MOD", "`./DevInfo/Mod` (catalog rules match on it)."),
    key("device.lang", "string", "`./DevInfo/Lang`."),
    key("device.dev_typ", "string", "`./DevDetail/DevTyp` (catalog rules match on it)."),
    key("device.oem", "string", "`./DevDetail/OEM`."),
    key("device.fwv", "string", "`./DevDetail/FwV`."),
    key("device.swv", "string", "`./DevDetail/SwV` (default: the agent's version)."),
    key("device.hwv", "string", "`./DevDetail/HwV`."),
    flag("server.url", "string", "server", "SCOMO_AGENT_SERVER", "DM endpoint, `http(s)://host:port/dm`."),
    flag("server.server_id", "string", "server-id", "SCOMO_AGENT_SERVER_ID", "The server's ServerID (DMAcc `ServerID`; package 0 must name it)."),
    flag("server.username", "string", "username", "SCOMO_AGENT_USERNAME", "Client credentials: user name (SyncHdr `LocName`); required."),
    flag("server.password", "string", "password", "SCOMO_AGENT_PASSWORD", "Client credentials: password; required."),
    flag("server.server_password", "string", "server-password", "SCOMO_AGENT_SERVER_PASSWORD", "Server credentials: the password the server proves itself with, also the key of package-0 digests."),
    flag("server.auth", "string", "auth", "SCOMO_AGENT_AUTH", "Authentication scheme of DM sessions: `basic`, `md5` or `hmac`."),
    flag("server.encoding", "string", "encoding", "SCOMO_AGENT_ENCODING", "Message encoding: `xml` or `wbxml`."),
    flag("server.ca_cert", "path", "ca-cert", "SCOMO_AGENT_CA_CERT", "PEM file of an extra CA to trust for HTTPS (self-signed servers)."),
    flag("agent.data_dir", "path", "data-dir", "SCOMO_AGENT_DATA_DIR", "Where the tree, journal, outbox, downloads and components live."),
    flag("agent.poll_interval_secs", "integer", "poll-interval", "SCOMO_AGENT_POLL_INTERVAL", "Seconds between client-initiated sessions; 0 disables polling (sessions only on package 0)."),
    flag("agent.notify_listen", "string", "notify-listen", "SCOMO_AGENT_NOTIFY_LISTEN", "Package-0 listener: `udp://ADDR:PORT` or `http://ADDR:PORT`; empty disables it."),
    flag("agent.max_msg_size", "integer", "max-msg-size", "SCOMO_AGENT_MAX_MSG_SIZE", "Largest message the agent accepts (the MaxMsgSize it advertises; at least 1024)."),
    key("agent.max_obj_size", "integer", "Largest object the agent accepts (the MaxObjSize it advertises)."),
    key("scomo.root", "string", "Where the SCOMO MO is placed in the tree (`SCOMO.md` §1: the placement is not fixed; servers find it by its MO id)."),
    key("scomo.root_acl", "string", "The ACL given to the MO root when it is first created."),
    key("scomo.sync_operations", "string list", "Primitives run synchronously inside the Exec (its Status then carries the outcome: 200, or the SCOMO result code on failure, and no alert is sent): `Install`, `InstallInactive`, `Activate`, `Deactivate`, `RemoveDelivered`, `RemoveDeployed`. Download primitives are always asynchronous."),
    key("scomo.trusted_keys", "string list", "Ed25519 public keys (base64 of the 32 key bytes) packages may be signed with. When any is set, a package without a valid `Ext/Signature` by one of them is refused (1407)."),
    key("scomo.require_sha256", "bool", "Refuse packages that carry no `Ext/SHA256` (1407)."),
    key("scomo.max_package_bytes", "integer", "Largest delivery package, downloaded or pushed (1404 / 413 beyond)."),
    key("scomo.max_extracted_bytes", "integer", "Largest total size of the files an archive package installs (1406 beyond)."),
    key("scomo.max_archive_entries", "integer", "Most entries an archive package may hold (1406 beyond)."),
    key("scomo.reserved_space_bytes", "integer", "Space to keep free on the data directory's file system: a download or install that would eat into it fails with 1404 / 1406 before anything is written."),
    key("scomo.download_connect_timeout_secs", "integer", "Seconds to wait for a download server to accept the connection."),
    key("scomo.download_idle_timeout_secs", "integer", "Seconds without any byte from the download server before the attempt is abandoned (and resumed, while retries are left)."),
    key("scomo.download_retries", "integer", "Further attempts after a broken or failed transfer (each resumes where the previous one stopped)."),
    key("scomo.download_ca_cert", "path", "PEM file of an extra CA trusted for HTTPS downloads."),
    key("scomo.dd_accepted_types", "string list", "Media types accepted in a download descriptor's `type` (empty: any)."),
    key("scomo.hook_timeout_secs", "integer", "Seconds a lifecycle hook or environment program may run."),
    key("scomo.alert_retry_min_secs", "integer", "First delay before a client-initiated session retries sending pending alerts."),
    key("scomo.alert_retry_max_secs", "integer", "Longest delay between such retries."),
    key("scomo.confirm.default", "string", "Confirmation policy of operations not listed in `scomo.confirm.operations`: `accept`, `decline` (reported as 1401) or `command`."),
    key("scomo.confirm.operations", "table", "Policy per primitive name (`Download`, `DownloadInstall`, `DownloadInstallInactive`, `Install`, `InstallInactive`, `Activate`, `Deactivate`, `RemoveDelivered`, `RemoveDeployed`)."),
    key("scomo.confirm.command", "string list", "Program and arguments asked when the policy is `command`. It gets `SCOMO_PRIMITIVE`, `SCOMO_ENTRY`, `SCOMO_PKG_ID`, `SCOMO_NAME`, `SCOMO_DESCRIPTION` in its environment; exit status 0 accepts, anything else (or a timeout) declines."),
    key("scomo.confirm.timeout_secs", "integer", "Seconds to wait for the answer."),
    key("scomo.environments", "list of tables", "Integrator execution environments (`command` kind), one `[[scomo.environments]]` table each, selected by EnvType (see the integrator guide)."),
    key("scomo.environments[].env_type", "string", "The EnvType value this environment serves (not `archive`, which is built in; each at most once)."),
    key("scomo.environments[].install", "string list", "Installs a package (inactive); required."),
    key("scomo.environments[].remove", "string list", "Uninstalls a component; required."),
    key("scomo.environments[].activate", "string list", "Starts a component (empty: nothing to run)."),
    key("scomo.environments[].deactivate", "string list", "Stops a component (empty: nothing to run)."),
    key("scomo.environments[].install_space_bytes", "integer", "Extra bytes of free space an install needs beyond the package size."),
];

/// The default values of `AgentConfig::default()` (and of one
/// `[[scomo.environments]]` entry), by dotted key.
pub fn defaults() -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    if let Ok(v) = serde_json::to_value(AgentConfig::default()) {
        scomo::config_doc::flatten("", &v, &mut out);
    }
    if let Ok(v) = serde_json::to_value(CommandEnvConfig::default()) {
        scomo::config_doc::flatten(ENV_PREFIX, &v, &mut out);
    }
    out
}

/// The reference table (Markdown) of every key, defaults from
/// `AgentConfig::default()`.
pub fn markdown() -> String {
    scomo::config_doc::markdown(KEYS, &defaults())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: &str = "<!-- BEGIN agent-config -->\n";
    const END: &str = "<!-- END agent-config -->";

    #[test]
    fn every_key_is_described_with_its_type() {
        let defaults = defaults();
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
        for d in KEYS {
            assert!(
                defaults.iter().any(|(k, _)| k == d.key),
                "KEYS describes {}, which AgentConfig does not have",
                d.key
            );
        }
    }

    #[test]
    fn operator_guide_has_the_current_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/operator-guide.md");
        let text = std::fs::read_to_string(path).expect("docs/operator-guide.md");
        let start = text.find(BEGIN).expect("BEGIN agent-config marker") + BEGIN.len();
        let end = start + text[start..].find(END).expect("END agent-config marker");
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
            "docs/operator-guide.md's agent configuration table is stale; rerun with \
             SCOMO_BLESS=1 cargo test -p scomo-agent --lib config::reference\n--- expected:\n{want}"
        );
    }
}
