//! SCOMO result codes (`SCOMO.md` §8; OMA-TS-DM-SCOMO-V1_0 §8.7).

use std::fmt;

/// A SCOMO result code, reported in the OperationComplete alert. Open: any
/// value round-trips; the vendor ranges are recognised by class.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct ResultCode(pub u16);

/// What kind of outcome a result code stands for. Campaigns use it to tell
/// device faults from download-server faults and from user declines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultClass {
    /// 1200, 1250–1299.
    Success,
    /// 1401: the user declined.
    UserDeclined,
    /// 1400–1499 except 1401: the device (or its package) failed.
    DeviceFault,
    /// 1500–1599: the alternate download server failed.
    DownloadServerFault,
    /// Anything else.
    Unknown,
}

macro_rules! codes {
    ($($name:ident = $val:literal, $text:literal;)*) => {
        impl ResultCode {
            $(#[doc = $text] pub const $name: ResultCode = ResultCode($val);)*
        }
        fn standard_meaning(code: u16) -> Option<&'static str> {
            match code { $($val => Some($text),)* _ => None }
        }
    };
}

codes! {
    SUCCESSFUL = 1200, "successful";
    CLIENT_ERROR = 1400, "client error";
    USER_CANCELLED = 1401, "user cancelled or did not accept the operation";
    DOWNLOAD_FAILED = 1402, "download failed";
    ALTERNATE_DOWNLOAD_AUTH_FAILED = 1403, "alternate download authentication failure";
    DOWNLOAD_OUT_OF_MEMORY = 1404, "download failed: device out of memory";
    INSTALL_FAILED = 1405, "install failed";
    INSTALL_OUT_OF_MEMORY = 1406, "install failed: device out of memory";
    PACKAGE_VALIDATION_FAILED = 1407, "failed package validation";
    REMOVE_FAILED = 1408, "remove failed";
    ACTIVATE_FAILED = 1409, "activate failed";
    DEACTIVATE_FAILED = 1410, "deactivate failed";
    NOT_IMPLEMENTED = 1411, "not implemented";
    UNDEFINED_ERROR = 1412, "undefined error";
    UNSUPPORTED_ENVIRONMENT = 1413, "operation rejected: unsupported environment type";
    DOWNLOAD_SERVER_ERROR = 1500, "alternate download server error";
    DOWNLOAD_SERVER_UNAVAILABLE = 1501, "alternate download server unavailable";
}

impl ResultCode {
    /// The code's class.
    pub fn class(self) -> ResultClass {
        match self.0 {
            1200 | 1250..=1299 => ResultClass::Success,
            1401 => ResultClass::UserDeclined,
            1400..=1499 => ResultClass::DeviceFault,
            1500..=1599 => ResultClass::DownloadServerFault,
            _ => ResultClass::Unknown,
        }
    }

    /// Whether the operation succeeded.
    pub fn is_success(self) -> bool {
        self.class() == ResultClass::Success
    }

    /// What the code means, in words (vendor ranges named as such).
    pub fn meaning(self) -> &'static str {
        if let Some(m) = standard_meaning(self.0) {
            return m;
        }
        match self.0 {
            1250..=1299 => "successful (vendor-specified result)",
            1450..=1499 => "client error (vendor-specified)",
            1550..=1599 => "alternate download server error (vendor-specified)",
            _ => "unknown result code",
        }
    }
}

impl fmt::Debug for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResultCode({} {})", self.0, self.meaning())
    }
}

impl fmt::Display for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(ResultCode::SUCCESSFUL.class(), ResultClass::Success);
        assert_eq!(ResultCode(1251).class(), ResultClass::Success);
        assert_eq!(
            ResultCode::USER_CANCELLED.class(),
            ResultClass::UserDeclined
        );
        assert_eq!(
            ResultCode::PACKAGE_VALIDATION_FAILED.class(),
            ResultClass::DeviceFault
        );
        assert_eq!(ResultCode(1460).class(), ResultClass::DeviceFault);
        assert_eq!(
            ResultCode::DOWNLOAD_SERVER_UNAVAILABLE.class(),
            ResultClass::DownloadServerFault
        );
        assert_eq!(
            ResultCode(1551).meaning(),
            "alternate download server error (vendor-specified)"
        );
        assert_eq!(ResultCode(999).class(), ResultClass::Unknown);
    }
}
