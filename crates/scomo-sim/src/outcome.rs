//! Injected outcomes: what the simulated execution environment makes of a
//! device's k-th operation. A pure function of (seed, device index, k,
//! rates), so a test can compute exactly what a campaign over the fleet
//! yields (`SCOMO.md` §8 for the result codes).

use scomo::{Primitive, ResultCode};
use serde::{Deserialize, Serialize};

/// Failure rates per SCOMO result class, each a fraction in `0.0..=1.0`;
/// together at most 1. The rest succeeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// The alternate download server fails (1500). Applies to the download
    /// primitives only; other primitives succeed instead.
    pub download_server_fault: f64,
    /// The device fails (1404 Download, 1405 install, 1408 remove, 1409
    /// activate, 1410 deactivate).
    pub device_fault: f64,
    /// The user declines the operation (1401).
    pub user_decline: f64,
}

impl Rates {
    /// Checks every rate is a fraction and their sum at most 1.
    pub fn validate(&self) -> Result<(), String> {
        let all = [
            ("download_server_fault", self.download_server_fault),
            ("device_fault", self.device_fault),
            ("user_decline", self.user_decline),
        ];
        for (name, r) in all {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("{name} must be within 0..=1, is {r}"));
            }
        }
        let sum: f64 = all.iter().map(|(_, r)| r).sum();
        if sum > 1.0 + 1e-9 {
            return Err(format!("the failure rates add up to {sum}, more than 1"));
        }
        Ok(())
    }
}

/// What the simulated environment does with one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Injected {
    /// It works (if the download and the package do).
    Success,
    /// The user declines it.
    UserDecline,
    /// The alternate download server fails.
    DownloadServerFault,
    /// The device fails.
    DeviceFault,
}

impl Injected {
    /// The result code the device reports for `primitive` under this
    /// injection, assuming the real download and package are fine.
    pub fn result_code(self, primitive: Primitive) -> ResultCode {
        match self {
            Injected::Success => ResultCode::SUCCESSFUL,
            Injected::UserDecline => ResultCode::USER_CANCELLED,
            Injected::DownloadServerFault if primitive.downloads() => {
                ResultCode::DOWNLOAD_SERVER_ERROR
            }
            Injected::DownloadServerFault => ResultCode::SUCCESSFUL,
            Injected::DeviceFault => device_fault_code(primitive),
        }
    }
}

/// The device-fault code of each primitive.
pub(crate) fn device_fault_code(p: Primitive) -> ResultCode {
    match p {
        Primitive::Download => ResultCode::DOWNLOAD_OUT_OF_MEMORY,
        Primitive::DownloadInstall
        | Primitive::DownloadInstallInactive
        | Primitive::Install
        | Primitive::InstallInactive => ResultCode::INSTALL_FAILED,
        Primitive::RemoveDelivered | Primitive::RemoveDeployed => ResultCode::REMOVE_FAILED,
        Primitive::Activate => ResultCode::ACTIVATE_FAILED,
        Primitive::Deactivate => ResultCode::DEACTIVATE_FAILED,
    }
}

/// The injection for operation `k` (0-based, counting the Execs the device
/// accepted) of device `device`.
pub fn expected_outcome(seed: u64, device: u64, k: u64, rates: &Rates) -> Injected {
    let u = unit(mix(seed, device, k, 0x6f75_7463_6f6d_6521));
    let mut edge = rates.user_decline;
    if u < edge {
        return Injected::UserDecline;
    }
    edge += rates.download_server_fault;
    if u < edge {
        return Injected::DownloadServerFault;
    }
    edge += rates.device_fault;
    if u < edge {
        return Injected::DeviceFault;
    }
    Injected::Success
}

/// A 64-bit hash of the inputs (SplitMix64 finaliser over a mix).
pub(crate) fn mix(seed: u64, device: u64, k: u64, salt: u64) -> u64 {
    let mut x = seed
        ^ salt
        ^ device.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A hash as a fraction in `0.0..1.0` (53 bits).
pub(crate) fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_and_close_to_the_rates() {
        let rates = Rates {
            download_server_fault: 0.1,
            device_fault: 0.2,
            user_decline: 0.05,
        };
        let mut counts = std::collections::HashMap::new();
        for d in 0..20_000 {
            let o = expected_outcome(7, d, 0, &rates);
            assert_eq!(o, expected_outcome(7, d, 0, &rates));
            *counts.entry(o).or_insert(0u32) += 1;
        }
        let share = |o| f64::from(counts[&o]) / 20_000.0;
        assert!((share(Injected::UserDecline) - 0.05).abs() < 0.01);
        assert!((share(Injected::DownloadServerFault) - 0.1).abs() < 0.01);
        assert!((share(Injected::DeviceFault) - 0.2).abs() < 0.01);
        assert_ne!(
            (0..64)
                .map(|k| expected_outcome(1, 3, k, &rates))
                .collect::<Vec<_>>(),
            (0..64)
                .map(|k| expected_outcome(2, 3, k, &rates))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn codes_by_primitive() {
        use Injected::*;
        assert_eq!(UserDecline.result_code(Primitive::Activate).0, 1401);
        assert_eq!(
            DownloadServerFault
                .result_code(Primitive::DownloadInstall)
                .0,
            1500
        );
        assert_eq!(DownloadServerFault.result_code(Primitive::Install).0, 1200);
        assert_eq!(DeviceFault.result_code(Primitive::DownloadInstall).0, 1405);
        assert_eq!(DeviceFault.result_code(Primitive::Download).0, 1404);
        assert_eq!(DeviceFault.result_code(Primitive::RemoveDeployed).0, 1408);
        assert!(Rates {
            device_fault: 0.7,
            user_decline: 0.4,
            ..Rates::default()
        }
        .validate()
        .is_err());
    }
}
