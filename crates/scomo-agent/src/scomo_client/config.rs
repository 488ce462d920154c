//! The `[scomo]` section of the agent configuration.
//!
//! ```toml
//! [scomo]
//! root = "./SCOMO"
//! sync_operations = ["Activate", "Deactivate"]
//! trusted_keys = ["<base64 Ed25519 public key>"]
//! reserved_space_bytes = 104857600
//!
//! [scomo.confirm]
//! default = "accept"                 # accept | decline | command
//! command = ["/usr/bin/scomo-ask"]
//! [scomo.confirm.operations]
//! DownloadInstall = "command"
//!
//! [[scomo.environments]]             # EnvType "deb" handled by dpkg wrappers
//! env_type = "deb"
//! install = ["/usr/lib/scomo/deb", "install"]
//! remove = ["/usr/lib/scomo/deb", "remove"]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use scomo::Primitive;
use serde::{Deserialize, Serialize};

/// SCOMO client settings. Every field has a default; unknown keys are
/// rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScomoConfig {
    /// Where the management object is placed in the tree (`SCOMO.md` §1: the
    /// placement is not fixed; servers find it by its MO id).
    pub root: String,
    /// The ACL given to the MO root when it is first created.
    pub root_acl: String,
    /// Primitives run synchronously inside the Exec (the Exec's Status then
    /// carries the outcome: 200, or the SCOMO result code on failure, and no
    /// alert is sent). Names: `Install`, `InstallInactive`, `Activate`,
    /// `Deactivate`, `RemoveDelivered`, `RemoveDeployed`. Download
    /// primitives are always asynchronous.
    pub sync_operations: Vec<String>,
    /// Ed25519 public keys (base64 of the 32 key bytes) packages may be
    /// signed with. When any is set, a package without a valid
    /// `Ext/Signature` by one of them is refused (1407).
    pub trusted_keys: Vec<String>,
    /// Refuse packages that carry no `Ext/SHA256` (1407).
    pub require_sha256: bool,
    /// Largest delivery package, downloaded or pushed (1404 / 413 beyond).
    pub max_package_bytes: u64,
    /// Largest total size of the files an archive package installs (1406
    /// beyond).
    pub max_extracted_bytes: u64,
    /// Most entries an archive package may hold (1406 beyond).
    pub max_archive_entries: u64,
    /// Space to keep free on the data directory's file system: a download
    /// or install that would eat into it fails with 1404 / 1406 before
    /// anything is written.
    pub reserved_space_bytes: u64,
    /// Seconds to wait for a download server to accept the connection.
    pub download_connect_timeout_secs: u64,
    /// Seconds without any byte from the download server before the attempt
    /// is abandoned (and resumed, while retries are left).
    pub download_idle_timeout_secs: u64,
    /// Further attempts after a broken or failed transfer (each resumes
    /// where the previous one stopped).
    pub download_retries: u32,
    /// PEM file of an extra CA trusted for HTTPS downloads.
    pub download_ca_cert: Option<PathBuf>,
    /// Media types accepted in a download descriptor's `type` (empty: any).
    pub dd_accepted_types: Vec<String>,
    /// Seconds a lifecycle hook or environment program may run.
    pub hook_timeout_secs: u64,
    /// First delay before a client-initiated session retries sending
    /// pending alerts.
    pub alert_retry_min_secs: u64,
    /// Longest delay between such retries.
    pub alert_retry_max_secs: u64,
    /// User interaction: which operations need a confirmation.
    pub confirm: ConfirmConfig,
    /// Integrator execution environments (`command` kind), by EnvType.
    pub environments: Vec<CommandEnvConfig>,
}

impl Default for ScomoConfig {
    fn default() -> Self {
        ScomoConfig {
            root: scomo::mo::DEFAULT_ROOT.to_owned(),
            root_acl: "Add=*&Delete=*&Exec=*&Get=*&Replace=*".to_owned(),
            sync_operations: Vec::new(),
            trusted_keys: Vec::new(),
            require_sha256: false,
            max_package_bytes: 512 * 1024 * 1024,
            max_extracted_bytes: 2 * 1024 * 1024 * 1024,
            max_archive_entries: 100_000,
            reserved_space_bytes: 16 * 1024 * 1024,
            download_connect_timeout_secs: 30,
            download_idle_timeout_secs: 60,
            download_retries: 3,
            download_ca_cert: None,
            dd_accepted_types: Vec::new(),
            hook_timeout_secs: 300,
            alert_retry_min_secs: 5,
            alert_retry_max_secs: 3600,
            confirm: ConfirmConfig::default(),
            environments: Vec::new(),
        }
    }
}

/// `[scomo.confirm]`: the user-interaction hook. A decline is reported as
/// 1401 and nothing is done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfirmConfig {
    /// Policy of operations not listed in `operations`.
    pub default: ConfirmPolicy,
    /// Policy per primitive (`Download`, `DownloadInstall`, ...,
    /// `RemoveDelivered`, `RemoveDeployed`).
    pub operations: BTreeMap<String, ConfirmPolicy>,
    /// Program and arguments asked when the policy is `command`. It gets
    /// `SCOMO_PRIMITIVE`, `SCOMO_ENTRY`, `SCOMO_PKG_ID`, `SCOMO_NAME`,
    /// `SCOMO_DESCRIPTION` in its environment; exit status 0 accepts,
    /// anything else (or a timeout) declines.
    pub command: Vec<String>,
    /// Seconds to wait for the answer.
    pub timeout_secs: u64,
}

impl Default for ConfirmConfig {
    fn default() -> Self {
        ConfirmConfig {
            default: ConfirmPolicy::Accept,
            operations: BTreeMap::new(),
            command: Vec::new(),
            timeout_secs: 300,
        }
    }
}

/// What to do when an operation needs the user's consent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfirmPolicy {
    /// Go ahead without asking.
    #[default]
    Accept,
    /// Refuse (1401).
    Decline,
    /// Ask `confirm.command`.
    Command,
}

/// `[[scomo.environments]]`: an execution environment that delegates to
/// programs (dpkg, opkg, RAUC, containers...).
///
/// Every program gets `SCOMO_ENV_TYPE` and `SCOMO_INSTALL_PARAMS`.
/// `install` also gets `SCOMO_PACKAGE` (the package file) and
/// `SCOMO_PKG_ID`, and prints one line per installed component:
/// `ID VERSION [NAME...]`. `activate`, `deactivate` and `remove` get
/// `SCOMO_COMPONENT_ID`, `SCOMO_COMPONENT_VERSION` and
/// `SCOMO_COMPONENT_DIR`. Exit status 0 is success. Programs must be
/// idempotent: after a crash the agent runs the interrupted one again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandEnvConfig {
    /// The EnvType value this environment serves.
    pub env_type: String,
    /// Installs a package (inactive); required.
    pub install: Vec<String>,
    /// Uninstalls a component; required.
    pub remove: Vec<String>,
    /// Starts a component (empty: nothing to run).
    pub activate: Vec<String>,
    /// Stops a component (empty: nothing to run).
    pub deactivate: Vec<String>,
    /// Extra bytes of free space an install needs beyond the package size.
    pub install_space_bytes: u64,
}

/// What is wrong with a `[scomo]` section; names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {key} = {value:?}: {reason}")]
pub struct ScomoConfigError {
    /// The key, e.g. `scomo.trusted_keys`.
    pub key: String,
    /// Its value.
    pub value: String,
    /// What would be accepted.
    pub reason: String,
}

/// The primitive names `sync_operations` and `confirm.operations` use.
pub fn primitive_name(p: Primitive) -> &'static str {
    match p {
        Primitive::Download => "Download",
        Primitive::DownloadInstall => "DownloadInstall",
        Primitive::DownloadInstallInactive => "DownloadInstallInactive",
        Primitive::Install => "Install",
        Primitive::InstallInactive => "InstallInactive",
        Primitive::RemoveDelivered => "RemoveDelivered",
        Primitive::Activate => "Activate",
        Primitive::Deactivate => "Deactivate",
        Primitive::RemoveDeployed => "RemoveDeployed",
    }
}

fn parse_primitive(name: &str) -> Option<Primitive> {
    Primitive::ALL
        .into_iter()
        .find(|p| primitive_name(*p).eq_ignore_ascii_case(name.trim()))
}

impl ScomoConfig {
    /// Parses a `[scomo]` table's TOML text (for tests and tools; the agent
    /// parses it as part of its own file).
    pub fn from_toml(text: &str) -> Result<ScomoConfig, ScomoConfigError> {
        toml::from_str(text).map_err(|e| ScomoConfigError {
            key: "scomo".into(),
            value: String::new(),
            reason: e.message().to_owned(),
        })
    }

    /// Checks every key.
    pub fn validate(&self) -> Result<(), ScomoConfigError> {
        let err = |key: &str, value: &str, reason: &str| ScomoConfigError {
            key: key.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        if omadm_tree::Uri::parse(&self.root).is_err() || self.root == "." {
            return Err(err(
                "scomo.root",
                &self.root,
                "must be a node path like ./SCOMO",
            ));
        }
        if omadm_tree::Acl::parse(&self.root_acl).is_err() {
            return Err(err(
                "scomo.root_acl",
                &self.root_acl,
                "must be an ACL like Add=*&Get=*",
            ));
        }
        for name in &self.sync_operations {
            match parse_primitive(name) {
                None => {
                    return Err(err(
                        "scomo.sync_operations",
                        name,
                        "use Install, InstallInactive, Activate, Deactivate, RemoveDelivered, RemoveDeployed",
                    ))
                }
                Some(p) if p.downloads() => {
                    return Err(err(
                        "scomo.sync_operations",
                        name,
                        "download primitives always run asynchronously",
                    ))
                }
                Some(_) => {}
            }
        }
        for key in &self.trusted_keys {
            if crate::scomo_client::verify::parse_key(key).is_none() {
                return Err(err(
                    "scomo.trusted_keys",
                    key,
                    "must be the base64 of a 32-byte Ed25519 public key",
                ));
            }
        }
        for (name, policy) in &self.confirm.operations {
            if parse_primitive(name).is_none() {
                return Err(err(
                    "scomo.confirm.operations",
                    name,
                    "use a primitive name such as DownloadInstall or RemoveDeployed",
                ));
            }
            if *policy == ConfirmPolicy::Command && self.confirm.command.is_empty() {
                return Err(err(
                    "scomo.confirm.command",
                    "",
                    "set the program asked when a policy is \"command\"",
                ));
            }
        }
        if self.confirm.default == ConfirmPolicy::Command && self.confirm.command.is_empty() {
            return Err(err(
                "scomo.confirm.command",
                "",
                "set the program asked when a policy is \"command\"",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, e) in self.environments.iter().enumerate() {
            let et = e.env_type.trim();
            if et.is_empty() || et.eq_ignore_ascii_case(super::env::ARCHIVE) {
                return Err(err(
                    "scomo.environments.env_type",
                    &e.env_type,
                    "must be set and must not be \"archive\" (built in)",
                ));
            }
            if !seen.insert(et.to_ascii_lowercase()) {
                return Err(err(
                    "scomo.environments.env_type",
                    &e.env_type,
                    "each EnvType may be configured once",
                ));
            }
            if e.install.is_empty() || e.remove.is_empty() {
                return Err(err(
                    "scomo.environments",
                    &i.to_string(),
                    "install and remove programs are required",
                ));
            }
        }
        if self.max_package_bytes == 0 || self.max_extracted_bytes == 0 {
            return Err(err(
                "scomo.max_package_bytes",
                &self.max_package_bytes.to_string(),
                "size limits must be positive",
            ));
        }
        if self.alert_retry_min_secs == 0 || self.alert_retry_max_secs < self.alert_retry_min_secs {
            return Err(err(
                "scomo.alert_retry_min_secs",
                &self.alert_retry_min_secs.to_string(),
                "must be at least 1 and at most alert_retry_max_secs",
            ));
        }
        Ok(())
    }

    /// Whether `p` runs inside the Exec.
    pub fn is_sync(&self, p: Primitive) -> bool {
        !p.downloads()
            && self
                .sync_operations
                .iter()
                .any(|n| parse_primitive(n) == Some(p))
    }

    /// The confirmation policy of `p`.
    pub fn confirm_policy(&self, p: Primitive) -> ConfirmPolicy {
        self.confirm
            .operations
            .iter()
            .find(|(n, _)| parse_primitive(n) == Some(p))
            .map(|(_, policy)| *policy)
            .unwrap_or(self.confirm.default)
    }

    /// The configured trusted keys, decoded (invalid ones are skipped;
    /// [`ScomoConfig::validate`] reports them).
    pub(crate) fn verifying_keys(&self) -> Vec<ed25519_dalek::VerifyingKey> {
        self.trusted_keys
            .iter()
            .filter_map(|k| crate::scomo_client::verify::parse_key(k))
            .collect()
    }
}

impl ScomoConfig {
    /// The `[scomo]` section as commented TOML (for `scomo agent init`).
    pub fn commented_toml(&self) -> String {
        fn q(s: &str) -> String {
            toml::Value::String(s.to_owned()).to_string()
        }
        fn list(v: &[String]) -> String {
            toml::Value::Array(v.iter().map(|s| toml::Value::String(s.clone())).collect())
                .to_string()
        }
        let mut o = String::from("[scomo]\n");
        let mut kv = |comment: &str, key: &str, value: String| {
            o.push_str(&format!("# {comment}\n{key} = {value}\n"));
        };
        kv(
            "Where the SCOMO management object lives (servers find it by its MO id).",
            "root",
            q(&self.root),
        );
        kv(
            "ACL of the MO root when it is created.",
            "root_acl",
            q(&self.root_acl),
        );
        kv(
            "Primitives answered in the Exec itself (Install, InstallInactive, Activate,\n# Deactivate, RemoveDelivered, RemoveDeployed); the others report by alert.",
            "sync_operations",
            list(&self.sync_operations),
        );
        kv(
            "Base64 Ed25519 public keys; when set, packages need a valid Ext/Signature\n# (signature of the package's SHA-256 digest).",
            "trusted_keys",
            list(&self.trusted_keys),
        );
        kv(
            "Refuse packages without Ext/SHA256.",
            "require_sha256",
            self.require_sha256.to_string(),
        );
        kv(
            "Largest package downloaded or pushed, in bytes.",
            "max_package_bytes",
            self.max_package_bytes.to_string(),
        );
        kv(
            "Largest total size of the files one archive package installs.",
            "max_extracted_bytes",
            self.max_extracted_bytes.to_string(),
        );
        kv(
            "Most entries in one archive package.",
            "max_archive_entries",
            self.max_archive_entries.to_string(),
        );
        kv(
            "Bytes always kept free on the data directory's file system.",
            "reserved_space_bytes",
            self.reserved_space_bytes.to_string(),
        );
        kv(
            "Download timeouts (seconds) and retries (each retry resumes).",
            "download_connect_timeout_secs",
            self.download_connect_timeout_secs.to_string(),
        );
        o.push_str(&format!(
            "download_idle_timeout_secs = {}\ndownload_retries = {}\n",
            self.download_idle_timeout_secs, self.download_retries
        ));
        match &self.download_ca_cert {
            Some(p) => o.push_str(&format!(
                "download_ca_cert = {}\n",
                q(&p.display().to_string())
            )),
            None => o.push_str(
                "# Extra CA (PEM) trusted for https:// downloads.\n# download_ca_cert = \"/etc/scomo/dl-ca.pem\"\n",
            ),
        }
        o.push_str(&format!(
            "# Media types accepted from download descriptors (empty: any).\ndd_accepted_types = {}\n",
            list(&self.dd_accepted_types)
        ));
        o.push_str(&format!(
            "# Seconds a lifecycle hook or environment program may run.\nhook_timeout_secs = {}\n",
            self.hook_timeout_secs
        ));
        o.push_str(&format!(
            "# Retry delays (seconds) of sessions that deliver pending results.\nalert_retry_min_secs = {}\nalert_retry_max_secs = {}\n",
            self.alert_retry_min_secs, self.alert_retry_max_secs
        ));
        let policy = |p: ConfirmPolicy| match p {
            ConfirmPolicy::Accept => "accept",
            ConfirmPolicy::Decline => "decline",
            ConfirmPolicy::Command => "command",
        };
        o.push_str(&format!(
            "\n# Ask before operations: accept | decline | command (exit 0 accepts; a decline is 1401).\n[scomo.confirm]\ndefault = {}\ncommand = {}\ntimeout_secs = {}\n",
            q(policy(self.confirm.default)),
            list(&self.confirm.command),
            self.confirm.timeout_secs
        ));
        o.push_str("[scomo.confirm.operations]\n");
        for (name, p) in &self.confirm.operations {
            o.push_str(&format!("{} = {}\n", q(name), q(policy(*p))));
        }
        o.push_str("# DownloadInstall = \"command\"\n");
        if self.environments.is_empty() {
            o.push_str(
                "\n# Execution environments run by programs, selected by EnvType:\n# [[scomo.environments]]\n# env_type = \"deb\"\n# install = [\"/usr/lib/scomo/deb\", \"install\"]   # prints `ID VERSION [NAME]` per component\n# remove = [\"/usr/lib/scomo/deb\", \"remove\"]\n# activate = []\n# deactivate = []\n",
            );
        }
        for e in &self.environments {
            o.push_str(&format!(
                "\n[[scomo.environments]]\nenv_type = {}\ninstall = {}\nremove = {}\nactivate = {}\ndeactivate = {}\ninstall_space_bytes = {}\n",
                q(&e.env_type),
                list(&e.install),
                list(&e.remove),
                list(&e.activate),
                list(&e.deactivate),
                e.install_space_bytes
            ));
        }
        o
    }
}

/// Encodes a public key the way `trusted_keys` expects it.
pub fn encode_key(key: &[u8; 32]) -> String {
    base64::engine::general_purpose::STANDARD.encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip() {
        let c = ScomoConfig::default();
        c.validate().unwrap();
        let text = toml::to_string(&c).unwrap();
        assert_eq!(ScomoConfig::from_toml(&text).unwrap(), c);
    }

    #[test]
    fn bad_values_name_the_key() {
        let c = ScomoConfig {
            sync_operations: vec!["DownloadInstall".into()],
            ..ScomoConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "scomo.sync_operations");
        let c = ScomoConfig {
            trusted_keys: vec!["abc".into()],
            ..ScomoConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "scomo.trusted_keys");
        let mut c = ScomoConfig::default();
        c.confirm
            .operations
            .insert("Install".into(), ConfirmPolicy::Command);
        assert_eq!(c.validate().unwrap_err().key, "scomo.confirm.command");
        let c = ScomoConfig {
            environments: vec![CommandEnvConfig {
                env_type: "archive".into(),
                ..CommandEnvConfig::default()
            }],
            ..ScomoConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "scomo.environments.env_type");
        assert!(ScomoConfig::from_toml("frob = 1").is_err());
    }

    #[test]
    fn commented_toml_parses_back() {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            scomo: ScomoConfig,
        }
        let mut c = ScomoConfig::default();
        let text = c.commented_toml();
        assert_eq!(toml::from_str::<File>(&text).unwrap().scomo, c);
        c.sync_operations = vec!["Activate".into()];
        c.download_ca_cert = Some("/etc/ca.pem".into());
        c.confirm.command = vec!["/bin/ask".into(), "a \"b\"".into()];
        c.confirm
            .operations
            .insert("Install".into(), ConfirmPolicy::Command);
        c.environments.push(CommandEnvConfig {
            env_type: "deb".into(),
            install: vec!["/x".into(), "install".into()],
            remove: vec!["/x".into()],
            install_space_bytes: 5,
            ..CommandEnvConfig::default()
        });
        let text = c.commented_toml();
        assert_eq!(toml::from_str::<File>(&text).unwrap().scomo, c, "{text}");
    }

    #[test]
    fn sync_and_confirm_lookup() {
        let mut c = ScomoConfig::from_toml(
            "sync_operations = [\"activate\", \"RemoveDeployed\"]\n[confirm]\ndefault = \"decline\"\n[confirm.operations]\nInstall = \"accept\"\n",
        )
        .unwrap();
        assert!(c.is_sync(Primitive::Activate));
        assert!(!c.is_sync(Primitive::Deactivate));
        assert_eq!(c.confirm_policy(Primitive::Install), ConfirmPolicy::Accept);
        assert_eq!(
            c.confirm_policy(Primitive::Download),
            ConfirmPolicy::Decline
        );
        c.sync_operations.push("Download".into());
        assert!(!c.is_sync(Primitive::Download));
    }
}
