//! [`SimConfig`]: what the simulator simulates and against which server.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::outcome::Rates;

/// One device model of the fleet, with its share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// `./DevInfo/Man`.
    pub man: String,
    /// `./DevInfo/Mod`.
    pub model: String,
    /// `./DevDetail/DevTyp`.
    pub dev_typ: String,
    /// Relative weight among the models (devices get models by a seeded
    /// draw, so the mix is the same for the same seed).
    pub weight: u32,
}

impl Model {
    /// Parses `MAN:MOD:DEVTYP[=WEIGHT]`.
    pub fn parse(s: &str) -> Result<Model, String> {
        let (spec, weight) = match s.rsplit_once('=') {
            Some((spec, w)) => (
                spec,
                w.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("model {s:?}: weight {w:?} is not a number"))?,
            ),
            None => (s, 1),
        };
        let parts: Vec<&str> = spec.split(':').map(str::trim).collect();
        match parts[..] {
            [man, model, dev_typ] if !man.is_empty() && !model.is_empty() => Ok(Model {
                man: man.to_owned(),
                model: model.to_owned(),
                dev_typ: dev_typ.to_owned(),
                weight,
            }),
            _ => Err(format!(
                "model {s:?} is not MAN:MOD:DEVTYP[=WEIGHT] (e.g. Acme:A1:phone=3)"
            )),
        }
    }
}

/// How client credentials are presented.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimAuth {
    /// `syncml:auth-md5` (the default).
    #[default]
    Md5,
    /// `syncml:auth-basic`.
    Basic,
}

/// Everything the simulator needs. Libraries take this struct; the
/// `scomo sim` command builds it from flags.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// The DM endpoint, e.g. `http://127.0.0.1:8080/dm`.
    pub server_url: String,
    /// More DM endpoints (other nodes of the same fleet): device `n` talks
    /// to endpoint `n mod k` of `server_url` and these, so a fleet spreads
    /// over the nodes the way a load balancer would spread it.
    #[serde(default)]
    pub more_server_urls: Vec<String>,
    /// The REST API base, e.g. `http://127.0.0.1:8080` (provisioning).
    pub api_url: String,
    /// The API token (provisioning); `None` skips provisioning.
    pub api_token: Option<String>,
    /// The server's ServerID.
    pub server_id: String,
    /// The server's password towards the devices (server-wide).
    pub server_password: String,
    /// Number of devices.
    pub devices: u32,
    /// DevIds are `<prefix>-<n>`, n from 0.
    pub prefix: String,
    /// The seed of every draw (credentials, models, outcomes, latencies).
    pub seed: u64,
    /// Client auth type.
    pub auth: SimAuth,
    /// The device models (at least one).
    pub models: Vec<Model>,
    /// Extra labels every device is provisioned with (besides `sim` and
    /// `model`).
    pub labels: Vec<(String, String)>,
    /// DM sessions running at once, at most.
    pub concurrency: usize,
    /// Downloads running at once, at most.
    pub download_concurrency: usize,
    /// Registration sessions started per second (0: as fast as the
    /// concurrency allows).
    pub register_rate: f64,
    /// Run a registration session per device after provisioning.
    pub register: bool,
    /// Install time, drawn per operation in `install_latency_min..=max`.
    pub install_latency_min: Duration,
    /// See `install_latency_min`.
    pub install_latency_max: Duration,
    /// Injected failure rates.
    pub rates: Rates,
    /// UDP port package 0 arrives on (0: any free one). Devices' addresses
    /// are `udp://127.a.b.c:PORT`, one per device.
    pub notify_port: u16,
    /// Listen for package 0 at all.
    pub notify: bool,
    /// First retry delay of a report the server did not acknowledge
    /// (doubling up to 30 s).
    pub report_retry: Duration,
    /// HTTP request timeout (DM messages and downloads).
    pub http_timeout: Duration,
    /// Our MaxMsgSize.
    pub max_msg_size: u64,
    /// A device is done once the server acknowledged this many of its
    /// reports (0: no target); see `Sim::devices_done`.
    pub report_target: u32,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            server_url: "http://127.0.0.1:8080/dm".into(),
            more_server_urls: Vec::new(),
            api_url: "http://127.0.0.1:8080".into(),
            api_token: None,
            server_id: "scomo".into(),
            server_password: String::new(),
            devices: 100,
            prefix: "sim".into(),
            seed: 1,
            auth: SimAuth::Md5,
            models: vec![Model {
                man: "SimCo".into(),
                model: "S1".into(),
                dev_typ: "sim".into(),
                weight: 1,
            }],
            labels: Vec::new(),
            concurrency: 64,
            download_concurrency: 64,
            register_rate: 0.0,
            register: true,
            install_latency_min: Duration::ZERO,
            install_latency_max: Duration::ZERO,
            rates: Rates::default(),
            notify_port: 0,
            notify: true,
            report_retry: Duration::from_secs(1),
            http_timeout: Duration::from_secs(60),
            max_msg_size: 64 * 1024,
            report_target: 0,
        }
    }
}

impl SimConfig {
    /// The DM endpoint of device `n`.
    pub fn server_url_of(&self, n: u32) -> &str {
        let k = self.more_server_urls.len() + 1;
        match (n as usize) % k {
            0 => &self.server_url,
            i => self
                .more_server_urls
                .get(i - 1)
                .map_or(self.server_url.as_str(), String::as_str),
        }
    }

    /// Checks the values, naming the first wrong one.
    pub fn validate(&self) -> Result<(), String> {
        if self.devices == 0 {
            return Err("devices must be at least 1".into());
        }
        // 127.1.0.0 + n must stay inside 127/8.
        if self.devices > 0x00FE_FFFF {
            return Err(format!("devices must be at most {}", 0x00FE_FFFF));
        }
        if self.prefix.is_empty() || self.prefix.chars().any(|c| c.is_control() || c == ' ') {
            return Err("prefix must be non-empty text without spaces".into());
        }
        if self.models.is_empty() || self.models.iter().all(|m| m.weight == 0) {
            return Err("at least one model with a weight above 0 is needed".into());
        }
        if self.concurrency == 0 || self.download_concurrency == 0 {
            return Err("concurrency must be at least 1".into());
        }
        if self.install_latency_min > self.install_latency_max {
            return Err("install_latency_min is above install_latency_max".into());
        }
        if !(self.register_rate >= 0.0 && self.register_rate.is_finite()) {
            return Err("register_rate must be 0 or a positive number".into());
        }
        if self.server_password.is_empty() {
            return Err("server_password must be set (the server's dm.server_password)".into());
        }
        self.rates.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_parse() {
        assert_eq!(
            Model::parse("Acme:A1:phone=3").unwrap(),
            Model {
                man: "Acme".into(),
                model: "A1".into(),
                dev_typ: "phone".into(),
                weight: 3
            }
        );
        assert_eq!(Model::parse("Acme:A1:").unwrap().weight, 1);
        assert!(Model::parse("Acme").is_err());
        assert!(Model::parse("Acme:A1:x=y").is_err());
    }
}

#[cfg(test)]
mod url_tests {
    use super::SimConfig;

    #[test]
    fn devices_spread_over_the_endpoints() {
        let cfg = SimConfig {
            server_url: "http://a/dm".into(),
            more_server_urls: vec!["http://b/dm".into()],
            ..SimConfig::default()
        };
        let urls: Vec<&str> = (0..4).map(|n| cfg.server_url_of(n)).collect();
        assert_eq!(
            urls,
            ["http://a/dm", "http://b/dm", "http://a/dm", "http://b/dm"]
        );
        let one = SimConfig::default();
        assert_eq!(one.server_url_of(7), one.server_url);
    }
}
