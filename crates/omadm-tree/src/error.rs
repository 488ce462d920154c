//! Tree errors, each mapped to the SyncML status it produces.

use omadm_wire::StatusCode;

/// Why a tree operation failed. Every variant maps to one SyncML status
/// ([`TreeError::status`]), which is what a server command gets back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// The URI is not a valid device URI (`DM_TND` §6: no trailing `/`, no
    /// `..`, `./` only as prefix). Status 400.
    #[error("malformed uri {uri:?}: {reason}")]
    MalformedUri {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The URI exceeds one of the `DevDetail/URI` limits. Status 414.
    #[error("uri {uri:?} exceeds {limit} of {max}")]
    UriTooLong {
        /// The URI as given.
        uri: String,
        /// `MaxDepth`, `MaxTotLen` or `MaxSegLen`.
        limit: &'static str,
        /// The configured limit.
        max: usize,
    },
    /// No node at that path. Status 404.
    #[error("no node at {path}")]
    NotFound {
        /// The missing node.
        path: String,
    },
    /// A node already exists at that path (or a rename clashes). Status 418.
    #[error("a node already exists at {path}")]
    AlreadyExists {
        /// The existing node.
        path: String,
    },
    /// The node or property does not support the command at all, whatever
    /// the ACL says (AccessType, permanent node, root, leaf parent). Status 405.
    #[error("{command} not allowed on {path}: {reason}")]
    NotAllowed {
        /// The command.
        command: &'static str,
        /// The node.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// An optional feature (property, `?list=` form, alert) is not
    /// supported. Status 406.
    #[error("not supported: {feature}")]
    NotSupported {
        /// What was asked for.
        feature: String,
    },
    /// The ACL does not grant the command to this server. Status 425.
    #[error("server {server_id:?} lacks {command} rights on {path}")]
    PermissionDenied {
        /// The server.
        server_id: String,
        /// The ACL command that was needed.
        command: &'static str,
        /// The node whose ACL was checked.
        path: String,
    },
    /// Unknown format or media type, or a value that is not valid for its
    /// format (e.g. `abc` as `int`). Status 415.
    #[error("unsupported format or value: {reason}")]
    UnsupportedFormat {
        /// What is wrong.
        reason: String,
    },
    /// A malformed request body: bad ACL text, bad node name, bad TNDS
    /// document. Status 400.
    #[error("bad request: {reason}")]
    BadRequest {
        /// What is wrong.
        reason: String,
    },
    /// A mandatory part of the command is missing (no Item, no Target).
    /// Status 412.
    #[error("incomplete command: {reason}")]
    Incomplete {
        /// What is missing.
        reason: &'static str,
    },
    /// A value is larger than the tree accepts. Status 413.
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Which value.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The tree holds as many nodes as it may. Status 420.
    #[error("device full: the tree may hold at most {limit} nodes")]
    DeviceFull {
        /// The node limit.
        limit: usize,
    },
    /// The command is refused for a reason other than ACL (e.g. Copy onto an
    /// interior node). Status 403.
    #[error("{path} cannot be changed: {reason}")]
    Forbidden {
        /// The node.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// A management object's hook vetoed the change with this status.
    #[error("change of {path} rejected with status {status}")]
    Rejected {
        /// The node.
        path: String,
        /// The status the hook chose.
        status: StatusCode,
    },
    /// Anything else. Status 500.
    #[error("command failed: {reason}")]
    Failed {
        /// Why.
        reason: String,
    },
}

impl TreeError {
    /// The SyncML status this error produces (`DM-PROTOCOL.md` §6).
    pub fn status(&self) -> StatusCode {
        match self {
            TreeError::MalformedUri { .. } | TreeError::BadRequest { .. } => {
                StatusCode::BAD_REQUEST
            }
            TreeError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            TreeError::NotFound { .. } => StatusCode::NOT_FOUND,
            TreeError::AlreadyExists { .. } => StatusCode::ALREADY_EXISTS,
            TreeError::NotAllowed { .. } => StatusCode::COMMAND_NOT_ALLOWED,
            TreeError::NotSupported { .. } => StatusCode::OPTIONAL_FEATURE_NOT_SUPPORTED,
            TreeError::PermissionDenied { .. } => StatusCode::PERMISSION_DENIED,
            TreeError::UnsupportedFormat { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            TreeError::Incomplete { .. } => StatusCode::INCOMPLETE_COMMAND,
            TreeError::TooLarge { .. } => StatusCode::REQUEST_ENTITY_TOO_LARGE,
            TreeError::DeviceFull { .. } => StatusCode::DEVICE_FULL,
            TreeError::Forbidden { .. } => StatusCode::FORBIDDEN,
            TreeError::Rejected { status, .. } => *status,
            TreeError::Failed { .. } => StatusCode::COMMAND_FAILED,
        }
    }

    pub(crate) fn not_found(path: impl std::fmt::Display) -> TreeError {
        TreeError::NotFound {
            path: path.to_string(),
        }
    }

    pub(crate) fn not_allowed(
        command: &'static str,
        path: impl std::fmt::Display,
        reason: &'static str,
    ) -> TreeError {
        TreeError::NotAllowed {
            command,
            path: path.to_string(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(TreeError::not_found("./A").status(), StatusCode(404));
        assert_eq!(
            TreeError::not_allowed("Delete", ".", "root").status(),
            StatusCode(405)
        );
        assert_eq!(TreeError::DeviceFull { limit: 1 }.status(), StatusCode(420));
        let r = TreeError::Rejected {
            path: "./X".into(),
            status: StatusCode(1402),
        };
        assert_eq!(r.status(), StatusCode(1402));
        assert_eq!(TreeError::not_found("./A").to_string(), "no node at ./A");
    }
}
