//! Session errors, each mapped to the SyncML status (and, at the HTTP edge,
//! the HTTP status) it produces.

use omadm_wire::{DecodeError, StatusCode};

use crate::auth::{AuthError, AuthType};

/// Why a session engine refused a message or ended a session.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The body is not a SyncML DM message (HTTP 400, or 413 for a value
    /// over the decoder limits).
    #[error("undecodable message: {0}")]
    Decode(#[from] DecodeError),
    /// The Content-Type is not a DM type and the body does not look like
    /// XML or WBXML either (HTTP 415).
    #[error("unsupported content type {0:?}")]
    UnsupportedContentType(String),
    /// No Content-Type, and the body looks like neither XML nor WBXML
    /// (HTTP 400).
    #[error("the body is neither XML nor WBXML")]
    UnknownEncoding,
    /// Bigger than the MaxMsgSize this side advertised (HTTP 413).
    #[error("message of {size} bytes exceeds the MaxMsgSize of {limit} bytes")]
    MessageTooLarge {
        /// Size of the body.
        size: usize,
        /// The advertised limit.
        limit: usize,
    },
    /// `VerProto`/`VerDTD` are not DM 1.x / SyncML 1.x.
    #[error("unsupported protocol {ver_proto:?} (VerDTD {ver_dtd:?}), expected DM/1.2")]
    UnsupportedProtocol {
        /// The received `VerProto`.
        ver_proto: String,
        /// The received `VerDTD`.
        ver_dtd: String,
    },
    /// A message of another session.
    #[error("SessionID {found:?} does not belong to session {expected:?}")]
    WrongSession {
        /// This session's id.
        expected: String,
        /// The id received.
        found: String,
    },
    /// A MsgID older than the last one processed (a replay of anything but
    /// the last message).
    #[error("message {msg_id} is out of sequence (last was {last})")]
    OutOfSequence {
        /// The received MsgID.
        msg_id: u32,
        /// The last MsgID processed.
        last: u32,
    },
    /// A first message that is not a package 1 (no Alert 1200/1201 and not
    /// MsgID 1): probably a session this node no longer holds.
    #[error("message {msg_id} of session {session_id:?} does not start a session")]
    NotPackage1 {
        /// Its SessionID.
        session_id: String,
        /// Its MsgID.
        msg_id: u32,
    },
    /// Our credentials were rejected and no (further) retry is possible.
    #[error("authentication failed: the peer answered {status}")]
    AuthenticationFailed {
        /// The peer's SyncHdr status (401 or 407).
        status: StatusCode,
    },
    /// The peer's credentials were missing or wrong too often.
    #[error("the peer did not authenticate ({attempts} attempts)")]
    PeerAuthenticationFailed {
        /// Credentials checked (or challenges issued).
        attempts: u32,
    },
    /// The peer challenged with an authentication type we refuse (a
    /// downgrade to clear-text basic, or one we have no secret for).
    #[error("refusing to answer a {requested} challenge")]
    AuthTypeRefused {
        /// What the peer asked for.
        requested: String,
    },
    /// Credentials could not be built.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The peer rejected the whole message (a SyncHdr status that is
    /// neither success nor an authentication challenge).
    #[error("the peer rejected the message with status {status}")]
    Rejected {
        /// The SyncHdr status.
        status: StatusCode,
    },
    /// The peer's MaxMsgSize is too small to carry even the header and one
    /// byte of data.
    #[error("the peer's MaxMsgSize of {limit} bytes cannot hold a message")]
    MaxMsgSizeTooSmall {
        /// The limit.
        limit: usize,
    },
    /// The runtime reported that the transport failed (no response).
    #[error("transport failed: {0}")]
    Transport(String),
    /// A call that the session's state does not allow.
    #[error("{0}")]
    InvalidState(&'static str),
}

impl SessionError {
    /// The SyncML status this error produces (also the HTTP status at the
    /// server's edge for decode and size errors).
    pub fn status(&self) -> StatusCode {
        match self {
            SessionError::Decode(e) => e.status(),
            SessionError::UnsupportedContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            SessionError::MessageTooLarge { .. } | SessionError::MaxMsgSizeTooSmall { .. } => {
                StatusCode::REQUEST_ENTITY_TOO_LARGE
            }
            SessionError::UnsupportedProtocol { .. } => StatusCode::PROTOCOL_VERSION_NOT_SUPPORTED,
            SessionError::UnknownEncoding
            | SessionError::WrongSession { .. }
            | SessionError::OutOfSequence { .. }
            | SessionError::NotPackage1 { .. } => StatusCode::BAD_REQUEST,
            SessionError::AuthenticationFailed { .. }
            | SessionError::PeerAuthenticationFailed { .. }
            | SessionError::AuthTypeRefused { .. } => StatusCode::INVALID_CREDENTIALS,
            SessionError::Rejected { status } => *status,
            SessionError::Transport(_) => StatusCode::SERVICE_UNAVAILABLE,
            SessionError::Auth(_) | SessionError::InvalidState(_) => StatusCode::COMMAND_FAILED,
        }
    }

    /// The HTTP status a server runtime answers a request with when
    /// `ServerSession` refuses it before producing a SyncML response.
    pub fn http_status(&self) -> u16 {
        match self.status().0 {
            c @ (400 | 401 | 413 | 415) => c,
            505 | 513 => 400,
            _ => 500,
        }
    }
}

pub(crate) fn refused(t: AuthType) -> SessionError {
    SessionError::AuthTypeRefused {
        requested: t.as_str().to_owned(),
    }
}
