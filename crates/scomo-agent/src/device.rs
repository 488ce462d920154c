//! The device's persistent state: the management tree, in `tree.json` in
//! the data directory, written crash-safely after every change.
//!
//! DevInfo, DevDetail and the DM account come from the configuration at
//! every start (so a changed config takes effect); the nonces in the DM
//! account's `AAuthData` and everything servers or the SCOMO client wrote
//! survive restarts.

use std::path::{Path, PathBuf};

use omadm::auth::{AuthType, Credentials, Nonce};
use omadm::{AuthConfig, NonceState};
use omadm_tree::stdobj::{self, AppAddr, AppAuth, DevDetailConfig, DevInfoConfig, DmAccConfig};
use omadm_tree::{Tree, TreeError};

use crate::config::{AgentConfig, AuthKind};
use crate::persist;

/// Name of the DM account node the agent manages.
pub const ACCOUNT: &str = "scomo";
const CLCRED: &str = "CLCRED";
const SRVCRED: &str = "SRVCRED";

/// Why the device state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// File system trouble.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `tree.json` does not parse or breaks a tree invariant.
    #[error("{path} is corrupt: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The configuration cannot be expressed in the tree.
    #[error("cannot build the management tree: {0}")]
    Tree(#[from] TreeError),
}

/// The management tree and where it lives.
#[derive(Debug)]
pub struct DeviceState {
    /// The tree.
    pub tree: Tree,
    path: PathBuf,
    /// The server nonce before the last rotation, still accepted until the
    /// server uses the new one (`omadm` explains why); kept beside the tree.
    previous_server_nonce: Option<Nonce>,
    previous_path: PathBuf,
    /// What `previous_path` holds, to write it only when it changes.
    previous_on_disk: Option<Nonce>,
}

impl DeviceState {
    /// Loads `tree.json` from `data_dir` (or starts a new tree) and applies
    /// the configuration's DevInfo, DevDetail and DM account.
    pub fn open(data_dir: &Path, config: &AgentConfig) -> Result<DeviceState, StateError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StateError::Io {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join("tree.json");
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        let tree = match persist::read_optional(&path).map_err(io)? {
            Some(bytes) => {
                let tree: Tree =
                    serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                tree.validate().map_err(|e| StateError::Corrupt {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                tree
            }
            None => Tree::default(),
        };
        let previous_path = data_dir.join("server-nonce.prev");
        let previous_server_nonce = persist::read_optional(&previous_path)
            .map_err(|source| StateError::Io {
                path: previous_path.clone(),
                source,
            })?
            .filter(|b| !b.is_empty())
            .map(Nonce::from_bytes);
        let mut state = DeviceState {
            tree,
            path,
            previous_on_disk: previous_server_nonce.clone(),
            previous_server_nonce,
            previous_path,
        };
        state.apply_config(config)?;
        state.save()?;
        Ok(state)
    }

    fn apply_config(&mut self, config: &AgentConfig) -> Result<(), StateError> {
        let d = &config.device;
        let nonces = self.nonces();
        stdobj::install_dev_info(
            &mut self.tree,
            &DevInfoConfig {
                dev_id: d.id.clone(),
                man: d.man.clone(),
                model: d.model.clone(),
                dm_v: format!("scomo {}", env!("CARGO_PKG_VERSION")),
                lang: d.lang.clone(),
            },
        )?;
        stdobj::install_dev_detail(
            &mut self.tree,
            &DevDetailConfig {
                dev_typ: d.dev_typ.clone(),
                oem: d.oem.clone(),
                fw_v: d.fwv.clone(),
                sw_v: d.swv.clone(),
                hw_v: d.hwv.clone(),
                lrg_obj: true,
            },
        )?;
        let s = &config.server;
        let auth_type = auth_type(s.auth);
        stdobj::install_dm_account(
            &mut self.tree,
            &DmAccConfig {
                account: ACCOUNT.into(),
                server_id: s.server_id.clone(),
                name: Some("scomo server".into()),
                addrs: vec![AppAddr {
                    name: "1".into(),
                    addr: s.url.clone(),
                    addr_type: "URI".into(),
                }],
                aauth_pref: Some(auth_type.dmacc_name().into()),
                auths: vec![
                    AppAuth {
                        name: "1".into(),
                        level: CLCRED.into(),
                        auth_type: auth_type.dmacc_name().into(),
                        auth_name: Some(s.username.clone()),
                        secret: Some(s.password.clone()),
                        data: Some(nonces.client_nonce.as_bytes().to_vec()),
                    },
                    AppAuth {
                        name: "2".into(),
                        level: SRVCRED.into(),
                        auth_type: auth_type.dmacc_name().into(),
                        auth_name: Some(s.server_id.clone()),
                        secret: Some(s.server_password.clone()),
                        data: Some(nonces.server_nonce.as_bytes().to_vec()),
                    },
                ],
            },
        )?;
        Ok(())
    }

    /// The server nonce still accepted beside the current one.
    pub fn previous_server_nonce(&self) -> Option<Nonce> {
        self.previous_server_nonce.clone()
    }

    /// Records the server nonce still accepted beside the current one
    /// (written at the next [`DeviceState::save`]).
    pub fn set_previous_server_nonce(&mut self, nonce: Option<Nonce>) {
        self.previous_server_nonce = nonce;
    }

    /// Writes the tree to disk (temp file, fsync, rename), and the previous
    /// server nonce before it.
    pub fn save(&mut self) -> Result<(), StateError> {
        if self.previous_on_disk != self.previous_server_nonce {
            let prev = self
                .previous_server_nonce
                .as_ref()
                .map(|n| n.as_bytes().to_vec())
                .unwrap_or_default();
            persist::write_atomic(&self.previous_path, &prev).map_err(|source| StateError::Io {
                path: self.previous_path.clone(),
                source,
            })?;
            self.previous_on_disk = self.previous_server_nonce.clone();
        }
        let bytes = serde_json::to_vec(&self.tree).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        persist::write_atomic(&self.path, &bytes).map_err(|source| StateError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// The nonces stored in the DM account (empty before the first session).
    pub fn nonces(&self) -> NonceState {
        let mut state = NonceState::default();
        for acc in stdobj::dm_accounts(&self.tree)
            .into_iter()
            .filter(|a| a.account == ACCOUNT)
        {
            for auth in acc.auths {
                let nonce = Nonce::from_bytes(auth.data.unwrap_or_default());
                match auth.level.as_str() {
                    CLCRED => state.client_nonce = nonce,
                    SRVCRED => state.server_nonce = nonce,
                    _ => {}
                }
            }
        }
        state
    }

    /// Stores new nonces in the DM account.
    pub fn set_nonces(&mut self, nonces: &NonceState) -> Result<(), StateError> {
        let base = format!("./DMAcc/{ACCOUNT}/AppAuth");
        self.tree.set_leaf(
            format!("{base}/1/AAuthData").as_str(),
            nonces.client_nonce.as_bytes().to_vec(),
            omadm_tree::Format::Bin,
        )?;
        self.tree.set_leaf(
            format!("{base}/2/AAuthData").as_str(),
            nonces.server_nonce.as_bytes().to_vec(),
            omadm_tree::Format::Bin,
        )?;
        Ok(())
    }

    /// The `./DevInfo` leaves for package 1, as (URI, value).
    pub fn dev_info(&self) -> Vec<(String, String)> {
        stdobj::dev_info_items(&self.tree)
            .into_iter()
            .filter_map(|item| {
                let uri = item.source?.loc_uri;
                let value = item
                    .data
                    .and_then(|d| d.as_str().map(str::to_owned))
                    .unwrap_or_default();
                Some((uri, value))
            })
            .collect()
    }
}

/// The omadm auth type of a configured scheme.
pub fn auth_type(kind: AuthKind) -> AuthType {
    match kind {
        AuthKind::Basic => AuthType::Basic,
        AuthKind::Md5 => AuthType::Md5,
        AuthKind::Hmac => AuthType::Hmac,
    }
}

/// Client (CLCRED) and server (SRVCRED) credentials from the configuration.
pub fn auth_configs(config: &AgentConfig) -> (AuthConfig, AuthConfig) {
    let s = &config.server;
    let t = auth_type(s.auth);
    (
        AuthConfig::new(t, Credentials::new(s.username.clone(), s.password.clone())),
        AuthConfig::new(
            t,
            Credentials::new(s.server_id.clone(), s.server_password.clone()),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> AgentConfig {
        let mut c = AgentConfig::default();
        c.device.id = "IMEI:42".into();
        c.server.username = "u".into();
        c.server.password = "p".into();
        c.server.server_password = "sp".into();
        c.agent.data_dir = dir.to_owned();
        c
    }

    #[test]
    fn nonces_and_server_writes_survive_a_restart_config_is_reapplied() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        let mut s = DeviceState::open(dir.path(), &c).unwrap();
        assert!(s.nonces().client_nonce.is_empty());
        let n = NonceState {
            client_nonce: Nonce::from_bytes(b"cn".to_vec()),
            server_nonce: Nonce::from_bytes(b"sn".to_vec()),
        };
        s.set_nonces(&n).unwrap();
        s.tree
            .set_leaf("./Vendor/x", "kept", omadm_tree::Format::Chr)
            .unwrap();
        s.save().unwrap();
        drop(s);
        c.device.man = "NewMan".into();
        let s = DeviceState::open(dir.path(), &c).unwrap();
        assert_eq!(s.nonces(), n);
        assert_eq!(s.tree.value_str("./Vendor/x"), Some("kept"));
        assert!(s
            .dev_info()
            .contains(&("./DevInfo/Man".to_owned(), "NewMan".to_owned())));
        assert!(s
            .dev_info()
            .contains(&("./DevInfo/DevId".to_owned(), "IMEI:42".to_owned())));
    }

    #[test]
    fn a_corrupt_tree_file_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tree.json"), b"{not json").unwrap();
        let err = DeviceState::open(dir.path(), &config(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("tree.json is corrupt"), "{err}");
        assert_eq!(
            std::fs::read(dir.path().join("tree.json")).unwrap(),
            b"{not json"
        );
    }
}
