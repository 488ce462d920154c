//! The Status and State node values (`SCOMO.md` §3).
//!
//! Each is a `u16`-backed enum; [`parse`](DownloadStatus::from_value) accepts
//! the decimal string a tree or a Results item carries.

macro_rules! value_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $val:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[repr(u16)]
        pub enum $name { $($(#[$vm])* $var = $val,)* }

        impl $name {
            /// The value as the node carries it.
            pub fn value(self) -> u16 {
                self as u16
            }

            /// The value for a number, if the table has it.
            pub fn from_value(v: u16) -> Option<Self> {
                match v { $($val => Some(Self::$var),)* _ => None }
            }

            /// Parses a node value (decimal text, surrounding whitespace ignored).
            pub fn parse(s: &str) -> Option<Self> {
                s.trim().parse().ok().and_then(Self::from_value)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.value())
            }
        }
    };
}

value_enum! {
    /// `Download/<x>/Status`.
    DownloadStatus {
        /// Nothing downloaded yet.
        Idle = 10,
        /// Download failed, no data kept.
        DownloadFailed = 20,
        /// Download started.
        DownloadProgressing = 30,
        /// The whole package was received.
        DownloadComplete = 40,
        /// Installation (DownloadInstall*) started.
        InstallProgressing = 50,
        /// Install failed; the package is still on the device.
        InstallFailedWithData = 60,
        /// Install failed; the package was deleted.
        InstallFailedWithoutData = 70,
    }
}

value_enum! {
    /// `Inventory/Delivered/<x>/Status`.
    DeliveredStatus {
        /// No Install/Remove running.
        Idle = 10,
        /// Remove failed; the package is still present.
        RemoveFailed = 20,
        /// Remove started.
        RemoveProgressing = 30,
        /// Install started.
        InstallProgressing = 40,
        /// Install failed; the package is still present.
        InstallFailedWithData = 50,
        /// Install failed; the package was deleted.
        InstallFailedWithoutData = 60,
    }
}

impl DeliveredStatus {
    /// Parses a value the way a tolerant server must: Verizon's client writes
    /// 70 for install-failed-without-data (`SCOMO.md` §3.2).
    pub fn parse_tolerant(s: &str) -> Option<Self> {
        match s.trim() {
            "70" => Some(DeliveredStatus::InstallFailedWithoutData),
            other => Self::parse(other),
        }
    }
}

value_enum! {
    /// `Inventory/Deployed/<x>/Status`.
    DeployedStatus {
        /// No operation running.
        Idle = 10,
        /// Remove failed; the component is still installed.
        RemoveFailed = 20,
        /// Remove started.
        RemoveProgressing = 30,
        /// Activate failed; still inactive.
        ActivateFailed = 40,
        /// Activate started.
        ActivateProgressing = 50,
        /// Deactivate failed; still active.
        DeactivateFailed = 60,
        /// Deactivate started.
        DeactivateProgressing = 70,
    }
}

value_enum! {
    /// `Inventory/Delivered/<x>/State`.
    DpState {
        /// On the device, not installed.
        Delivered = 10,
        /// Its components are installed.
        Installed = 20,
    }
}

value_enum! {
    /// `Inventory/Deployed/<x>/State`.
    DcState {
        /// Installed, not active.
        Inactive = 10,
        /// Installed and active.
        Active = 20,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_and_print() {
        assert_eq!(
            DownloadStatus::parse(" 40 "),
            Some(DownloadStatus::DownloadComplete)
        );
        assert_eq!(DownloadStatus::parse("41"), None);
        assert_eq!(DcState::Active.to_string(), "20");
        assert_eq!(DeliveredStatus::parse("70"), None);
        assert_eq!(
            DeliveredStatus::parse_tolerant("70"),
            Some(DeliveredStatus::InstallFailedWithoutData)
        );
    }
}
