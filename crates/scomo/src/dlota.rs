//! OMA Download OTA 1.0 as SCOMO's indirect delivery uses it (`DLOTA.md`):
//! the download descriptor and the install-notify status codes.

use std::fmt;

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::result::ResultCode;

/// Media type of a download descriptor.
pub const DD_CONTENT_TYPE: &str = "application/vnd.oma.dd+xml";
/// Namespace of the `media` root.
pub const DD_NAMESPACE: &str = "http://www.openmobilealliance.org/xmlns/dd";
/// Largest descriptor we parse; real ones are a few hundred bytes.
pub const MAX_DD_SIZE: usize = 64 * 1024;

/// A download descriptor (`DLOTA.md` §2).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DownloadDescriptor {
    /// `DDVersion`; absent means 1.0.
    pub dd_version: Option<String>,
    /// `name`.
    pub name: Option<String>,
    /// `type`s: media types of the object (at least one).
    pub types: Vec<String>,
    /// `size`: object size in bytes.
    pub size: u64,
    /// `objectURI`: where to GET the object.
    pub object_uri: String,
    /// `installNotifyURI`: where to POST the status.
    pub install_notify_uri: Option<String>,
    /// `nextURL` (browsers only).
    pub next_url: Option<String>,
    /// `vendor`.
    pub vendor: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `infoURL`.
    pub info_url: Option<String>,
    /// `iconURI`.
    pub icon_uri: Option<String>,
    /// `installParam`.
    pub install_param: Option<String>,
}

impl DownloadDescriptor {
    /// Parses a descriptor. Elements may come in any order; unknown ones are
    /// ignored. A failure carries the install-notify status to report
    /// (906 invalid descriptor, 951 unsupported DDVersion).
    pub fn parse(bytes: &[u8]) -> Result<DownloadDescriptor, InstallStatus> {
        if bytes.len() > MAX_DD_SIZE {
            return Err(InstallStatus::INVALID_DESCRIPTOR);
        }
        let mut reader = Reader::from_reader(bytes);
        reader.config_mut().trim_text(true);
        let mut dd = DownloadDescriptor::default();
        let mut size = None;
        let mut path: Vec<Vec<u8>> = Vec::new();
        let mut text = String::new();
        loop {
            match reader.read_event() {
                Ok(Event::Start(e)) => {
                    path.push(e.local_name().as_ref().to_vec());
                    text.clear();
                }
                Ok(Event::Empty(_)) => {}
                Ok(Event::Text(t)) => text.push_str(
                    &t.unescape()
                        .map_err(|_| InstallStatus::INVALID_DESCRIPTOR)?,
                ),
                Ok(Event::CData(c)) => text.push_str(
                    std::str::from_utf8(&c).map_err(|_| InstallStatus::INVALID_DESCRIPTOR)?,
                ),
                Ok(Event::End(_)) => {
                    let name = path.pop().unwrap_or_default();
                    if path.len() == 1 && path[0] == b"media" {
                        let value = std::mem::take(&mut text).trim().to_owned();
                        match name.as_slice() {
                            b"DDVersion" => dd.dd_version = Some(value),
                            b"name" => dd.name = Some(value),
                            b"type" => dd.types.push(value),
                            b"size" => size = Some(value),
                            b"objectURI" => dd.object_uri = value,
                            b"installNotifyURI" => dd.install_notify_uri = Some(value),
                            b"nextURL" => dd.next_url = Some(value),
                            b"vendor" => dd.vendor = Some(value),
                            b"description" => dd.description = Some(value),
                            b"infoURL" => dd.info_url = Some(value),
                            b"iconURI" => dd.icon_uri = Some(value),
                            b"installParam" => dd.install_param = Some(value),
                            _ => {}
                        }
                    } else if path.is_empty() && name != b"media" {
                        return Err(InstallStatus::INVALID_DESCRIPTOR);
                    }
                    text.clear();
                }
                Ok(Event::Eof) => break,
                Ok(_) => {}
                Err(_) => return Err(InstallStatus::INVALID_DESCRIPTOR),
            }
        }
        if let Some(v) = &dd.dd_version {
            // Chromium accepts any 1.x; so do we.
            if !(v == "1" || v.starts_with("1.")) {
                return Err(InstallStatus::INVALID_DDVERSION);
            }
        }
        // Chromium tolerates "1,000"; so do we.
        dd.size = size
            .and_then(|s| s.replace(',', "").parse::<u64>().ok())
            .filter(|s| *s > 0)
            .ok_or(InstallStatus::INVALID_DESCRIPTOR)?;
        if dd.types.iter().all(|t| t.is_empty()) || dd.object_uri.is_empty() {
            return Err(InstallStatus::INVALID_DESCRIPTOR);
        }
        Ok(dd)
    }

    /// The descriptor as XML, elements in the order of `DLOTA.md` §2.
    pub fn to_xml(&self) -> String {
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<media xmlns=\"{DD_NAMESPACE}\">\n"
        );
        let mut el = |name: &str, value: &str| {
            out.push_str("  <");
            out.push_str(name);
            out.push('>');
            omadm_wire::xml::escape_into(&mut out, value);
            out.push_str("</");
            out.push_str(name);
            out.push_str(">\n");
        };
        el("DDVersion", self.dd_version.as_deref().unwrap_or("1.0"));
        for (name, value) in [("name", &self.name)] {
            if let Some(v) = value {
                el(name, v);
            }
        }
        for t in &self.types {
            el("type", t);
        }
        el("size", &self.size.to_string());
        el("objectURI", &self.object_uri);
        for (name, value) in [
            ("installNotifyURI", &self.install_notify_uri),
            ("nextURL", &self.next_url),
            ("vendor", &self.vendor),
            ("description", &self.description),
            ("infoURL", &self.info_url),
            ("iconURI", &self.icon_uri),
            ("installParam", &self.install_param),
        ] {
            if let Some(v) = value {
                el(name, v);
            }
        }
        out.push_str("</media>\n");
        out
    }

    /// Whether the device accepts one of the descriptor's media types.
    pub fn accepts_type(&self, acceptable: impl Fn(&str) -> bool) -> bool {
        self.types.iter().any(|t| acceptable(t))
    }
}

/// An install-notify status code (`DLOTA.md` §4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct InstallStatus(pub u16);

macro_rules! statuses {
    ($($name:ident = $val:literal, $text:literal;)*) => {
        impl InstallStatus {
            $(#[doc = $text] pub const $name: InstallStatus = InstallStatus($val);)*

            /// The canonical text of the code.
            pub fn text(self) -> &'static str {
                match self.0 { $($val => $text,)* _ => "Unknown" }
            }
        }
    };
}

statuses! {
    SUCCESS = 900, "Success";
    INSUFFICIENT_MEMORY = 901, "Insufficient memory";
    USER_CANCELLED = 902, "User Cancelled";
    LOSS_OF_SERVICE = 903, "Loss of Service";
    ATTRIBUTE_MISMATCH = 905, "Attribute mismatch";
    INVALID_DESCRIPTOR = 906, "Invalid descriptor";
    INVALID_DDVERSION = 951, "Invalid DDVersion";
    DEVICE_ABORTED = 952, "Device Aborted";
    NON_ACCEPTABLE_CONTENT = 953, "Non-Acceptable Content";
    LOADER_ERROR = 954, "Loader Error";
}

impl InstallStatus {
    /// The POST body: `<code> <text>` and a newline.
    pub fn body(self) -> String {
        format!("{} {}\n", self.0, self.text())
    }

    /// Parses a POST body by its leading three digits (texts vary between
    /// implementations, `DLOTA.md` §3).
    pub fn parse_body(body: &str) -> Option<InstallStatus> {
        let digits = body.trim_start().get(..3)?;
        let code: u16 = digits.parse().ok()?;
        (900..=999).contains(&code).then_some(InstallStatus(code))
    }

    /// The SCOMO result a failed download reports for this status (our
    /// mapping, `DLOTA.md` §5; not normative).
    pub fn result_code(self) -> ResultCode {
        match self.0 {
            900 => ResultCode::SUCCESSFUL,
            901 => ResultCode::DOWNLOAD_OUT_OF_MEMORY,
            902 => ResultCode::USER_CANCELLED,
            953 => ResultCode::UNSUPPORTED_ENVIRONMENT,
            _ => ResultCode::DOWNLOAD_FAILED,
        }
    }
}

impl fmt::Debug for InstallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstallStatus({} {})", self.0, self.text())
    }
}

impl fmt::Display for InstallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<media xmlns="http://www.openmobilealliance.org/xmlns/dd">
  <DDVersion>1.0</DDVersion>
  <name>Example App</name>
  <garbage><x>ignored</x></garbage>
  <type>application/vnd.example.package</type>
  <size>135,230</size>
  <objectURI>https://cdn.example.com/pkg/app-1.2.bin?a=1&amp;b=2</objectURI>
  <installNotifyURI>https://dl.example.com/notify?id=42</installNotifyURI>
  <installParam>key1=v1;key2=v2</installParam>
</media>"#;

    #[test]
    fn parses_the_example_and_round_trips() {
        let dd = DownloadDescriptor::parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(dd.size, 135_230);
        assert_eq!(
            dd.object_uri,
            "https://cdn.example.com/pkg/app-1.2.bin?a=1&b=2"
        );
        assert_eq!(dd.types, vec!["application/vnd.example.package".to_owned()]);
        assert_eq!(dd.install_param.as_deref(), Some("key1=v1;key2=v2"));
        let again = DownloadDescriptor::parse(dd.to_xml().as_bytes()).unwrap();
        assert_eq!(
            DownloadDescriptor {
                dd_version: Some("1.0".into()),
                ..dd.clone()
            },
            again
        );
    }

    #[test]
    fn invalid_descriptors() {
        let no_size = EXAMPLE.replace("<size>135,230</size>", "");
        assert_eq!(
            DownloadDescriptor::parse(no_size.as_bytes()),
            Err(InstallStatus(906))
        );
        let zero = EXAMPLE.replace("135,230", "0");
        assert_eq!(
            DownloadDescriptor::parse(zero.as_bytes()),
            Err(InstallStatus(906))
        );
        let v2 = EXAMPLE.replace("<DDVersion>1.0", "<DDVersion>2.0");
        assert_eq!(
            DownloadDescriptor::parse(v2.as_bytes()),
            Err(InstallStatus(951))
        );
        assert_eq!(
            DownloadDescriptor::parse(b"<media><size>"),
            Err(InstallStatus(906))
        );
        assert_eq!(
            DownloadDescriptor::parse(b"not xml at all"),
            Err(InstallStatus(906))
        );
    }

    #[test]
    fn notify_bodies() {
        assert_eq!(InstallStatus::SUCCESS.body(), "900 Success\n");
        assert_eq!(
            InstallStatus::parse_body("905 attribute mismatch\r\n"),
            Some(InstallStatus(905))
        );
        assert_eq!(InstallStatus::parse_body("hello"), None);
        assert_eq!(InstallStatus::parse_body("200 OK"), None);
        assert_eq!(
            InstallStatus(903).result_code(),
            ResultCode::DOWNLOAD_FAILED
        );
        assert_eq!(InstallStatus(901).result_code(), ResultCode(1404));
    }
}
