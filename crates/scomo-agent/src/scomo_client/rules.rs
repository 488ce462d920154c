//! The protocol decisions of the client, free of I/O: which Status value an
//! entry shows at each phase of an operation (`SCOMO.md` §3–4), which
//! result code a failure produces (§8, `DLOTA.md` §5), and what the
//! OperationComplete report says (§7.2).

use scomo::alert::{ComponentResult, OperationComplete};
use scomo::dlota::InstallStatus;
use scomo::mo::EntryKind;
use scomo::state::{DeliveredStatus, DeployedStatus, DownloadStatus};
use scomo::{Primitive, ResultCode};

/// Where an operation is, as far as its entry's Status is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Phase {
    /// Fetching the package (Download primitives).
    Download,
    /// The whole package is on the device (Download primitives).
    Downloaded,
    /// Installing (DownloadInstall*, Install*).
    Install,
    /// Removing the package or the component.
    Remove,
    /// Activating or deactivating.
    Switch,
}

/// The Status an entry shows while its operation is in `phase`.
pub(crate) fn progress_status(p: Primitive, phase: Phase) -> u16 {
    match p.entry_kind() {
        EntryKind::Download => match phase {
            Phase::Download => DownloadStatus::DownloadProgressing,
            Phase::Downloaded => DownloadStatus::DownloadComplete,
            _ => DownloadStatus::InstallProgressing,
        }
        .value(),
        EntryKind::Delivered => match p {
            Primitive::RemoveDelivered => DeliveredStatus::RemoveProgressing,
            _ => DeliveredStatus::InstallProgressing,
        }
        .value(),
        EntryKind::Deployed => match p {
            Primitive::Activate => DeployedStatus::ActivateProgressing,
            Primitive::Deactivate => DeployedStatus::DeactivateProgressing,
            _ => DeployedStatus::RemoveProgressing,
        }
        .value(),
    }
}

/// The Status an entry shows once its operation succeeded, or `None` when
/// the entry is gone (the removes).
pub(crate) fn success_status(p: Primitive) -> Option<u16> {
    match p {
        Primitive::RemoveDelivered | Primitive::RemoveDeployed => None,
        // Back to IDLE: "no operation running" (SCOMO.md §4.1 rules).
        _ => Some(DownloadStatus::Idle.value()),
    }
}

/// The Status an entry shows after its operation failed in `phase`.
/// `data_kept`: the package is still on the device.
pub(crate) fn failure_status(p: Primitive, phase: Phase, data_kept: bool) -> u16 {
    match p.entry_kind() {
        EntryKind::Download => match phase {
            Phase::Download | Phase::Downloaded => DownloadStatus::DownloadFailed,
            _ if data_kept => DownloadStatus::InstallFailedWithData,
            _ => DownloadStatus::InstallFailedWithoutData,
        }
        .value(),
        EntryKind::Delivered => match p {
            Primitive::RemoveDelivered => DeliveredStatus::RemoveFailed,
            _ if data_kept => DeliveredStatus::InstallFailedWithData,
            _ => DeliveredStatus::InstallFailedWithoutData,
        }
        .value(),
        EntryKind::Deployed => match p {
            Primitive::Activate => DeployedStatus::ActivateFailed,
            Primitive::Deactivate => DeployedStatus::DeactivateFailed,
            _ => DeployedStatus::RemoveFailed,
        }
        .value(),
    }
}

/// Whether a Status value means an operation is running.
pub(crate) fn is_progressing(kind: EntryKind, status: u16) -> bool {
    match kind {
        EntryKind::Download => matches!(
            DownloadStatus::from_value(status),
            Some(
                DownloadStatus::DownloadProgressing
                    | DownloadStatus::DownloadComplete
                    | DownloadStatus::InstallProgressing
            )
        ),
        EntryKind::Delivered => matches!(
            DeliveredStatus::from_value(status),
            Some(DeliveredStatus::RemoveProgressing | DeliveredStatus::InstallProgressing)
        ),
        EntryKind::Deployed => matches!(
            DeployedStatus::from_value(status),
            Some(
                DeployedStatus::RemoveProgressing
                    | DeployedStatus::ActivateProgressing
                    | DeployedStatus::DeactivateProgressing
            )
        ),
    }
}

/// The result code of a failed install step: out of space is 1406, else
/// 1405.
pub(crate) fn install_failure(out_of_space: bool) -> ResultCode {
    if out_of_space {
        ResultCode::INSTALL_OUT_OF_MEMORY
    } else {
        ResultCode::INSTALL_FAILED
    }
}

/// What went wrong with an alternate download, in both vocabularies: the
/// SCOMO result and the DL OTA install-notify status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DownloadFailure {
    pub(crate) result: ResultCode,
    pub(crate) notify: InstallStatus,
}

impl DownloadFailure {
    /// An HTTP error status on the package or descriptor: 401/403/407 are
    /// authentication failures (1403), 5xx the server's fault (1500),
    /// anything else a failed download (1402); all are loader errors (954)
    /// in DL OTA terms.
    pub(crate) fn http(status: u16) -> DownloadFailure {
        let result = match status {
            401 | 403 | 407 => ResultCode::ALTERNATE_DOWNLOAD_AUTH_FAILED,
            500..=599 => ResultCode::DOWNLOAD_SERVER_ERROR,
            _ => ResultCode::DOWNLOAD_FAILED,
        };
        DownloadFailure {
            result,
            notify: InstallStatus::LOADER_ERROR,
        }
    }

    /// The server could not be reached or stopped answering (1501, 903).
    pub(crate) fn unreachable() -> DownloadFailure {
        DownloadFailure {
            result: ResultCode::DOWNLOAD_SERVER_UNAVAILABLE,
            notify: InstallStatus::LOSS_OF_SERVICE,
        }
    }

    /// The transfer broke and could not be resumed (1402, 903).
    pub(crate) fn lost() -> DownloadFailure {
        DownloadFailure {
            result: ResultCode::DOWNLOAD_FAILED,
            notify: InstallStatus::LOSS_OF_SERVICE,
        }
    }

    /// Size or media type differ from what was announced (1402, 905).
    pub(crate) fn mismatch() -> DownloadFailure {
        DownloadFailure {
            result: ResultCode::DOWNLOAD_FAILED,
            notify: InstallStatus::ATTRIBUTE_MISMATCH,
        }
    }

    /// No room for the package (1404, 901).
    pub(crate) fn no_space() -> DownloadFailure {
        DownloadFailure {
            result: ResultCode::DOWNLOAD_OUT_OF_MEMORY,
            notify: InstallStatus::INSUFFICIENT_MEMORY,
        }
    }

    /// A descriptor problem (906, 951, 953): its mapped result.
    pub(crate) fn descriptor(status: InstallStatus) -> DownloadFailure {
        DownloadFailure {
            result: status.result_code(),
            notify: status,
        }
    }

    /// The package failed validation (1407; 952 device aborted).
    pub(crate) fn invalid() -> DownloadFailure {
        DownloadFailure {
            result: ResultCode::PACKAGE_VALIDATION_FAILED,
            notify: InstallStatus::DEVICE_ABORTED,
        }
    }
}

/// Builds the OperationComplete report: one item per resulting component
/// (`targets`: Target URI and Identifier), or a single item without Target
/// when nothing results (failures, removes).
pub(crate) fn report(
    correlator: Option<String>,
    source_uri: &str,
    result: ResultCode,
    targets: &[(Option<String>, Option<String>)],
    fallback_identifier: Option<String>,
) -> OperationComplete {
    let items = if targets.is_empty() {
        vec![ComponentResult {
            source_uri: Some(source_uri.to_owned()),
            target_uri: None,
            result,
            identifier: fallback_identifier,
        }]
    } else {
        targets
            .iter()
            .map(|(target, id)| ComponentResult {
                source_uri: Some(source_uri.to_owned()),
                target_uri: target.clone(),
                result,
                identifier: id.clone(),
            })
            .collect()
    };
    OperationComplete { correlator, items }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_entry_statuses() {
        let p = Primitive::DownloadInstall;
        assert_eq!(progress_status(p, Phase::Download), 30);
        assert_eq!(progress_status(p, Phase::Downloaded), 40);
        assert_eq!(progress_status(p, Phase::Install), 50);
        assert_eq!(failure_status(p, Phase::Download, false), 20);
        assert_eq!(failure_status(p, Phase::Install, false), 70);
        assert_eq!(failure_status(p, Phase::Install, true), 60);
        assert_eq!(success_status(p), Some(10));
        assert!(is_progressing(EntryKind::Download, 50));
        assert!(!is_progressing(EntryKind::Download, 60));
    }

    #[test]
    fn delivered_and_deployed_statuses() {
        assert_eq!(progress_status(Primitive::Install, Phase::Install), 40);
        assert_eq!(
            failure_status(Primitive::InstallInactive, Phase::Install, true),
            50
        );
        assert_eq!(
            progress_status(Primitive::RemoveDelivered, Phase::Remove),
            30
        );
        assert_eq!(
            failure_status(Primitive::RemoveDelivered, Phase::Remove, true),
            20
        );
        assert_eq!(success_status(Primitive::RemoveDelivered), None);
        assert_eq!(progress_status(Primitive::Activate, Phase::Switch), 50);
        assert_eq!(failure_status(Primitive::Activate, Phase::Switch, true), 40);
        assert_eq!(progress_status(Primitive::Deactivate, Phase::Switch), 70);
        assert_eq!(
            failure_status(Primitive::Deactivate, Phase::Switch, true),
            60
        );
        assert_eq!(
            progress_status(Primitive::RemoveDeployed, Phase::Remove),
            30
        );
        assert_eq!(
            failure_status(Primitive::RemoveDeployed, Phase::Remove, true),
            20
        );
        assert!(is_progressing(EntryKind::Deployed, 70));
        assert!(!is_progressing(EntryKind::Delivered, 10));
    }

    #[test]
    fn download_failures() {
        assert_eq!(DownloadFailure::http(401).result, ResultCode(1403));
        assert_eq!(DownloadFailure::http(403).result, ResultCode(1403));
        assert_eq!(DownloadFailure::http(404).result, ResultCode(1402));
        assert_eq!(DownloadFailure::http(503).result, ResultCode(1500));
        assert_eq!(DownloadFailure::unreachable().result, ResultCode(1501));
        assert_eq!(DownloadFailure::no_space().notify, InstallStatus(901));
        assert_eq!(
            DownloadFailure::descriptor(InstallStatus::INVALID_DESCRIPTOR).result,
            ResultCode(1402)
        );
        assert_eq!(install_failure(true), ResultCode(1406));
    }

    #[test]
    fn reports() {
        let r = report(
            Some("c".into()),
            "./SCOMO/Download/p/Operations/DownloadInstall",
            ResultCode::SUCCESSFUL,
            &[
                (
                    Some("./SCOMO/Inventory/Deployed/a".into()),
                    Some("a".into()),
                ),
                (
                    Some("./SCOMO/Inventory/Deployed/b".into()),
                    Some("b".into()),
                ),
            ],
            None,
        );
        assert_eq!(r.items.len(), 2);
        assert_eq!(r.correlator.as_deref(), Some("c"));
        let r = report(None, "s", ResultCode(1405), &[], Some("pkg".into()));
        assert_eq!(r.items.len(), 1);
        assert_eq!(r.items[0].target_uri, None);
        assert_eq!(r.items[0].identifier.as_deref(), Some("pkg"));
    }
}
