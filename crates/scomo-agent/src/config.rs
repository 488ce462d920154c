//! Agent configuration: one TOML file (unknown keys rejected), overridden by
//! `SCOMO_*` environment variables and flags in the binary.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub mod reference;

/// The whole agent configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// What the device reports in ./DevInfo and ./DevDetail.
    pub device: DeviceConfig,
    /// The DM server this agent is managed by (./DMAcc/<x>).
    pub server: ServerConfig,
    /// Runtime settings.
    pub agent: RuntimeConfig,
    /// The SCOMO client: MO placement, validation, environments, policies.
    pub scomo: crate::scomo_client::ScomoConfig,
}

/// ./DevInfo and ./DevDetail values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceConfig {
    /// DevInfo/DevId, also the SyncHdr Source (e.g. `IMEI:493005100592800`).
    pub id: String,
    /// DevInfo/Man.
    pub man: String,
    /// DevInfo/Mod.
    #[serde(rename = "mod")]
    pub model: String,
    /// DevInfo/Lang.
    pub lang: String,
    /// DevDetail/DevTyp.
    pub dev_typ: String,
    /// DevDetail/OEM.
    pub oem: String,
    /// DevDetail/FwV.
    pub fwv: String,
    /// DevDetail/SwV.
    pub swv: String,
    /// DevDetail/HwV.
    pub hwv: String,
}

/// The management server account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// DM endpoint, `http(s)://host:port/dm`.
    pub url: String,
    /// The server's ServerID (DMAcc ServerID; package 0 names it).
    pub server_id: String,
    /// Client credentials: user name (SyncHdr LocName).
    pub username: String,
    /// Client credentials: password.
    pub password: String,
    /// Server credentials: the password the server proves itself with, also
    /// the key of package-0 digests.
    pub server_password: String,
    /// Authentication scheme for DM sessions.
    pub auth: AuthKind,
    /// Message encoding.
    pub encoding: EncodingKind,
    /// PEM file of an extra CA to trust for HTTPS (self-signed servers).
    pub ca_cert: Option<PathBuf>,
}

/// Runtime settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Where the tree, journal, outbox, downloads and components live.
    pub data_dir: PathBuf,
    /// Seconds between client-initiated sessions; 0 disables polling.
    pub poll_interval_secs: u64,
    /// Package-0 listener: `udp://ADDR:PORT` or `http://ADDR:PORT`; empty
    /// disables it.
    pub notify_listen: String,
    /// Largest message the agent accepts (MaxMsgSize it advertises).
    pub max_msg_size: u32,
    /// Largest object the agent accepts (MaxObjSize it advertises).
    pub max_obj_size: u64,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            id: String::new(),
            man: "scomo".into(),
            model: "scomo-agent".into(),
            lang: "en".into(),
            dev_typ: "linux".into(),
            oem: "scomo".into(),
            fwv: String::new(),
            swv: env!("CARGO_PKG_VERSION").into(),
            hwv: String::new(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            url: "http://127.0.0.1:8080/dm".into(),
            server_id: "scomo".into(),
            username: String::new(),
            password: String::new(),
            server_password: String::new(),
            auth: AuthKind::Md5,
            encoding: EncodingKind::Xml,
            ca_cert: None,
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            data_dir: PathBuf::from("scomo-agent-data"),
            poll_interval_secs: 3600,
            notify_listen: String::new(),
            max_msg_size: 65_536,
            max_obj_size: 512 * 1024 * 1024,
        }
    }
}

/// DM authentication schemes the agent speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// `syncml:auth-basic`.
    Basic,
    /// `syncml:auth-md5`.
    Md5,
    /// `syncml:auth-MAC` (HMAC header).
    Hmac,
}

/// DM message encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingKind {
    /// `application/vnd.syncml.dm+xml`.
    Xml,
    /// `application/vnd.syncml.dm+wbxml`.
    Wbxml,
}

impl From<EncodingKind> for omadm_wire::Encoding {
    fn from(e: EncodingKind) -> Self {
        match e {
            EncodingKind::Xml => omadm_wire::Encoding::Xml,
            EncodingKind::Wbxml => omadm_wire::Encoding::Wbxml,
        }
    }
}

/// A value that is not one of the accepted choices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not valid for {what}; expected one of {expected}")]
pub struct BadChoice {
    what: &'static str,
    value: String,
    expected: &'static str,
}

impl FromStr for AuthKind {
    type Err = BadChoice;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "basic" => Ok(AuthKind::Basic),
            "md5" => Ok(AuthKind::Md5),
            "hmac" => Ok(AuthKind::Hmac),
            _ => Err(BadChoice {
                what: "auth",
                value: s.into(),
                expected: "basic, md5, hmac",
            }),
        }
    }
}

impl FromStr for EncodingKind {
    type Err = BadChoice;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "xml" => Ok(EncodingKind::Xml),
            "wbxml" => Ok(EncodingKind::Wbxml),
            _ => Err(BadChoice {
                what: "encoding",
                value: s.into(),
                expected: "xml, wbxml",
            }),
        }
    }
}

impl fmt::Display for AuthKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthKind::Basic => "basic",
            AuthKind::Md5 => "md5",
            AuthKind::Hmac => "hmac",
        })
    }
}

impl fmt::Display for EncodingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodingKind::Xml => "xml",
            EncodingKind::Wbxml => "wbxml",
        })
    }
}

/// What is wrong with a configuration; names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML does not parse or has unknown keys.
    #[error("invalid configuration: {0}")]
    Syntax(String),
    /// The `[scomo]` section has an unusable value.
    #[error("{0}")]
    Scomo(String),
    /// A key has an unusable value.
    #[error("invalid configuration: {key} = {value:?}: {reason}")]
    Invalid {
        /// The key, e.g. `server.url`.
        key: &'static str,
        /// Its value (secrets are never echoed).
        value: String,
        /// What would be accepted.
        reason: &'static str,
    },
}

impl AgentConfig {
    /// Parses TOML text (unknown keys are an error).
    pub fn from_toml(text: &str) -> Result<AgentConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))
    }

    /// Checks that the agent can run with this configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, value: &str, reason| ConfigError::Invalid {
            key,
            value: value.into(),
            reason,
        };
        if self.device.id.trim().is_empty() {
            return Err(invalid(
                "device.id",
                &self.device.id,
                "set the device id (e.g. IMEI:...)",
            ));
        }
        let url = self.server.url.as_str();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                "server.url",
                url,
                "must be an http:// or https:// URL",
            ));
        }
        if self.server.server_id.is_empty() {
            return Err(invalid("server.server_id", "", "must not be empty"));
        }
        if self.server.username.is_empty() {
            return Err(invalid("server.username", "", "set the client user name"));
        }
        if self.server.password.is_empty() {
            return Err(invalid(
                "server.password",
                "(empty)",
                "set the client password",
            ));
        }
        let n = self.agent.notify_listen.as_str();
        if !(n.is_empty() || n.starts_with("udp://") || n.starts_with("http://")) {
            return Err(invalid(
                "agent.notify_listen",
                n,
                "use udp://ADDR:PORT or http://ADDR:PORT, or leave empty",
            ));
        }
        if self.agent.max_msg_size < 1024 {
            return Err(invalid(
                "agent.max_msg_size",
                &self.agent.max_msg_size.to_string(),
                "must be at least 1024 bytes",
            ));
        }
        self.scomo
            .validate()
            .map_err(|e| ConfigError::Scomo(e.to_string()))?;
        Ok(())
    }

    /// The configuration as a commented TOML file (what `scomo agent init`
    /// writes). Secrets are written: the file is the device's credential
    /// store, to be kept mode 0600.
    pub fn commented_toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let d = &self.device;
        let s = &self.server;
        let a = &self.agent;
        let mut out = String::new();
        out.push_str("# scomo agent configuration. Every key can be overridden by a flag\n");
        out.push_str("# (scomo agent --help) or a SCOMO_* environment variable.\n\n");
        out.push_str("[device]\n");
        out.push_str(&format!(
            "# Unique device id (./DevInfo/DevId), also the DM SyncHdr source.\nid = {}\n",
            q(&d.id)
        ));
        out.push_str(&format!(
            "# ./DevInfo/Man and ./DevInfo/Mod: catalog rules match on them.\nman = {}\nmod = {}\n",
            q(&d.man),
            q(&d.model)
        ));
        out.push_str(&format!("lang = {}\n", q(&d.lang)));
        out.push_str(&format!(
            "# ./DevDetail values.\ndev_typ = {}\noem = {}\nfwv = {}\nswv = {}\nhwv = {}\n\n",
            q(&d.dev_typ),
            q(&d.oem),
            q(&d.fwv),
            q(&d.swv),
            q(&d.hwv)
        ));
        out.push_str("[server]\n");
        out.push_str(&format!(
            "# DM endpoint of the scomo server.\nurl = {}\n",
            q(&s.url)
        ));
        out.push_str(&format!(
            "# The server's ServerID; package-0 notifications must name it.\nserver_id = {}\n",
            q(&s.server_id)
        ));
        out.push_str(&format!("# Client credentials (what the server provisioned for this device).\nusername = {}\npassword = {}\n", q(&s.username), q(&s.password)));
        out.push_str(&format!("# Server credentials: how the server proves itself and signs package 0.\nserver_password = {}\n", q(&s.server_password)));
        out.push_str(&format!(
            "# basic | md5 | hmac\nauth = {}\n",
            q(&s.auth.to_string())
        ));
        out.push_str(&format!(
            "# xml | wbxml\nencoding = {}\n",
            q(&s.encoding.to_string())
        ));
        match &s.ca_cert {
            Some(p) => out.push_str(&format!("ca_cert = {}\n", q(&p.display().to_string()))),
            None => out.push_str("# PEM file of an extra CA to trust for https:// (self-signed servers).\n# ca_cert = \"/etc/scomo/ca.pem\"\n"),
        }
        out.push_str("\n[agent]\n");
        out.push_str(&format!(
            "# Tree, journal, alert outbox, downloads and installed components.\ndata_dir = {}\n",
            q(&a.data_dir.display().to_string())
        ));
        out.push_str(&format!("# Seconds between client-initiated sessions (0: only on notification).\npoll_interval_secs = {}\n", a.poll_interval_secs));
        out.push_str(&format!("# Package-0 listener: udp://ADDR:PORT or http://ADDR:PORT (empty: none).\nnotify_listen = {}\n", q(&a.notify_listen)));
        out.push_str(&format!("# Largest DM message and object this device accepts.\nmax_msg_size = {}\nmax_obj_size = {}\n", a.max_msg_size, a.max_obj_size));
        out.push('\n');
        out.push_str(&self.scomo.commented_toml());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AgentConfig {
        let mut c = AgentConfig::default();
        c.device.id = "IMEI:1".into();
        c.server.username = "dev1".into();
        c.server.password = "p\"w".into();
        c.server.server_password = "spw".into();
        c.agent.notify_listen = "udp://127.0.0.1:7000".into();
        c
    }

    #[test]
    fn commented_toml_parses_back_to_the_same_config() {
        let c = sample();
        let text = c.commented_toml();
        assert!(text.contains("# basic | md5 | hmac"));
        assert_eq!(AgentConfig::from_toml(&text).unwrap(), c);
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = AgentConfig::from_toml("[server]\nurll = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("urll"), "{err}");
        let mut c = sample();
        c.server.url = "ftp://x".into();
        assert!(c.validate().unwrap_err().to_string().contains("server.url"));
        let mut c = sample();
        c.server.password.clear();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("server.password"), "{err}");
        assert_eq!("HMAC".parse::<AuthKind>(), Ok(AuthKind::Hmac));
        assert!("digest"
            .parse::<AuthKind>()
            .unwrap_err()
            .to_string()
            .contains("basic, md5, hmac"));
    }
}
