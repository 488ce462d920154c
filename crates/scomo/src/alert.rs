//! The SCOMO result report: Generic Alert 1226 of type
//! `urn:oma:at:scomo:1.0:OperationComplete` (`SCOMO.md` §7.2).
//!
//! We emit exactly the standard shape; we accept the variants deployed
//! clients and test tools send (`QUIRKS.md`): Format `chr`/`text/plain`/
//! `xml`/`int`, alert types named after the primitive, the payload escaped
//! as text or in CDATA, or a bare result code.

use omadm_wire::model::{Alert, Data, Item, Location, Meta};
use omadm_wire::xml::escape_into;
use omadm_wire::AlertCode;

use crate::mo::ALERT_TYPE_OPERATION_COMPLETE;
use crate::result::ResultCode;

/// A decoded (or to-be-sent) OperationComplete report.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OperationComplete {
    /// The Exec's Correlator, echoed verbatim.
    pub correlator: Option<String>,
    /// One entry per resulting component (or one for the whole operation).
    pub items: Vec<ComponentResult>,
}

/// One Item of the report.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ComponentResult {
    /// Source/LocURI: the executed primitive's URI.
    pub source_uri: Option<String>,
    /// Target/LocURI: the resulting inventory entry, if any.
    pub target_uri: Option<String>,
    /// The result code.
    pub result: ResultCode,
    /// Deployed component ID or delivery PkgID.
    pub identifier: Option<String>,
}

/// Why an alert is not a usable SCOMO report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// Not a Generic Alert (1226).
    #[error("not a generic alert (code {0:?})")]
    NotGeneric(Option<u16>),
    /// A Generic Alert whose type is not SCOMO's.
    #[error("alert type {0:?} is not a SCOMO alert type")]
    NotScomo(String),
    /// A SCOMO alert item without a result code.
    #[error("SCOMO alert item has no result code in its data {0:?}")]
    NoResultCode(String),
}

impl OperationComplete {
    /// The Generic Alert that carries this report, with the standard Meta
    /// (Type OperationComplete, Format xml) and `mark` when given.
    pub fn to_alert(&self, mark: Option<&str>) -> Alert {
        let mut alert = Alert::new(AlertCode::GENERIC_ALERT);
        alert.correlator = self.correlator.clone();
        alert.items = self
            .items
            .iter()
            .map(|r| {
                let mut payload = format!("<ResultCode>{}</ResultCode>", r.result.0);
                if let Some(id) = &r.identifier {
                    payload.push_str("<Identifier>");
                    escape_into(&mut payload, id);
                    payload.push_str("</Identifier>");
                }
                Item {
                    source: r.source_uri.clone().map(Location::uri),
                    target: r.target_uri.clone().map(Location::uri),
                    meta: Some(Meta {
                        mark: mark.map(str::to_owned),
                        ..Meta::format_type("xml", ALERT_TYPE_OPERATION_COMPLETE)
                    }),
                    data: Some(Data::Xml(payload)),
                    ..Item::default()
                }
            })
            .collect();
        alert
    }

    /// Reads a SCOMO report out of an alert. Items of other types in the same
    /// alert are ignored; at least one SCOMO item is required.
    pub fn from_alert(alert: &Alert) -> Result<OperationComplete, AlertError> {
        if alert.data != Some(AlertCode::GENERIC_ALERT) {
            return Err(AlertError::NotGeneric(alert.data.map(|c| c.0)));
        }
        let mut items = Vec::new();
        let mut other_type = None;
        for item in &alert.items {
            let ty = item
                .meta
                .as_ref()
                .and_then(|m| m.r#type.as_deref())
                .unwrap_or("")
                .trim();
            if !is_scomo_alert_type(ty) {
                other_type.get_or_insert_with(|| ty.to_owned());
                continue;
            }
            let text = item.data.as_ref().and_then(Data::as_str).unwrap_or("");
            let result = parse_result_code(text)
                .ok_or_else(|| AlertError::NoResultCode(text.chars().take(80).collect()))?;
            items.push(ComponentResult {
                source_uri: item.source.as_ref().map(|l| l.loc_uri.clone()),
                target_uri: item.target.as_ref().map(|l| l.loc_uri.clone()),
                result,
                identifier: element_text(text, "Identifier"),
            });
        }
        if items.is_empty() {
            return Err(AlertError::NotScomo(other_type.unwrap_or_default()));
        }
        Ok(OperationComplete {
            correlator: alert.correlator.clone(),
            items,
        })
    }
}

/// Whether a Generic Alert type is SCOMO's: the standard
/// OperationComplete, or `urn:oma:at:scomo:1.0:<Primitive>` as test tools
/// send (tolerated, never emitted). Compared case-insensitively, trimmed.
pub fn is_scomo_alert_type(ty: &str) -> bool {
    let ty = ty.trim();
    let ty = ty
        .strip_prefix("Reversed-Domain-Name:")
        .map(str::trim)
        .unwrap_or(ty);
    ty.len() >= 18 && ty[..18].eq_ignore_ascii_case("urn:oma:at:scomo:1")
}

/// `<ResultCode>NNNN</ResultCode>` anywhere in the payload, or a bare code.
fn parse_result_code(text: &str) -> Option<ResultCode> {
    let raw = element_text(text, "ResultCode").unwrap_or_else(|| text.trim().to_owned());
    raw.trim().parse().ok().map(ResultCode)
}

/// The text of the first `<name>…</name>` in a small XML fragment, entity
/// references resolved. A tolerant scan, not a parser: the payload may be
/// escaped text, CDATA content or a canonical fragment.
fn element_text(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = text.find(&open)? + open.len();
    let len = text.get(start..)?.find(&close)?;
    let raw = text.get(start..start + len)?;
    Some(unescape(raw.trim()))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> OperationComplete {
        OperationComplete {
            correlator: Some("c-42".into()),
            items: vec![ComponentResult {
                source_uri: Some("./SCOMO/Download/p1/Operations/DownloadInstall".into()),
                target_uri: Some("./SCOMO/Inventory/Deployed/hello".into()),
                result: ResultCode::SUCCESSFUL,
                identifier: Some("com.example.<hello>&co".into()),
            }],
        }
    }

    #[test]
    fn round_trip_through_the_alert_and_both_encodings() {
        let r = report();
        let alert = r.to_alert(Some("informational"));
        assert_eq!(OperationComplete::from_alert(&alert), Ok(r.clone()));
        let msg = omadm_wire::SyncMl {
            header: omadm_wire::model::SyncHdr::new(
                "1",
                1,
                Location::uri("http://s"),
                Location::uri("dev"),
            ),
            body: omadm_wire::model::SyncBody {
                commands: vec![omadm_wire::model::Command::Alert(alert)],
                is_final: true,
            },
        };
        for enc in [omadm_wire::Encoding::Xml, omadm_wire::Encoding::Wbxml] {
            let bytes = omadm_wire::encode(&msg, enc);
            let back = omadm_wire::decode(&bytes, enc, &omadm_wire::Limits::default()).unwrap();
            let omadm_wire::model::Command::Alert(a) = &back.body.commands[0] else {
                panic!()
            };
            assert_eq!(OperationComplete::from_alert(a), Ok(r.clone()), "{enc:?}");
        }
    }

    #[test]
    fn tolerated_variants() {
        let mut a = report().to_alert(None);
        // Test tools: type named after the primitive, bare result code, Format int.
        a.items[0].meta = Some(Meta::format_type(
            "int",
            "urn:oma:at:scomo:1.0:DownloadInstall",
        ));
        a.items[0].data = Some(Data::Text(" 1402 ".into()));
        let r = OperationComplete::from_alert(&a).unwrap();
        assert_eq!(r.items[0].result, ResultCode::DOWNLOAD_FAILED);
        assert_eq!(r.items[0].identifier, None);
        // Escaped payload in a text/plain item.
        a.items[0].meta = Some(Meta::format_type(
            "chr",
            " urn:oma:at:scomo:1.0:OperationComplete ",
        ));
        a.items[0].data = Some(Data::Text(
            "<ResultCode>1405</ResultCode><Identifier>x</Identifier>".into(),
        ));
        let r = OperationComplete::from_alert(&a).unwrap();
        assert_eq!(
            (r.items[0].result, r.items[0].identifier.as_deref()),
            (ResultCode(1405), Some("x"))
        );
    }

    #[test]
    fn not_scomo() {
        let mut a = report().to_alert(None);
        a.items[0].meta = Some(Meta::format_type(
            "xml",
            "org.openmobilealliance.dm.firmwareupdate.download",
        ));
        assert!(matches!(
            OperationComplete::from_alert(&a),
            Err(AlertError::NotScomo(_))
        ));
        a.data = Some(AlertCode::CLIENT_EVENT);
        assert_eq!(
            OperationComplete::from_alert(&a),
            Err(AlertError::NotGeneric(Some(1224)))
        );
        let mut a = report().to_alert(None);
        a.items[0].data = Some(Data::Text("garbage".into()));
        assert!(matches!(
            OperationComplete::from_alert(&a),
            Err(AlertError::NoResultCode(_))
        ));
    }
}
