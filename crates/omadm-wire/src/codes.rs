//! Open code points: SyncML status codes and DM alert codes.
//!
//! Both are newtypes over `u16` so that any value a peer sends round-trips
//! unchanged; the named constants cover every code of the digest
//! (`DM-PROTOCOL.md` §5 and §6, from SyncML RepPro 1.2 and DM RepPro 1.2).

use std::fmt;

/// A SyncML status code (`OMA-TS-SyncML_RepPro-V1_2` §10, DM RepPro §7).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct StatusCode(pub u16);

macro_rules! named_codes {
    ($ty:ident { $($(#[$m:meta])* $name:ident = $val:literal, $text:literal;)* }) => {
        impl $ty {
            $($(#[$m])* #[doc = $text] pub const $name: $ty = $ty($val);)*

            /// The standard's short name for this code, if it has one.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some($text),)*
                    _ => None,
                }
            }
        }
    };
}

named_codes!(StatusCode {
    IN_PROGRESS = 101, "in progress";
    OK = 200, "ok";
    ITEM_ADDED = 201, "item added";
    ACCEPTED = 202, "accepted for processing";
    NON_AUTHORITATIVE = 203, "non-authoritative response";
    NO_CONTENT = 204, "no content";
    RESET_CONTENT = 205, "reset content";
    PARTIAL_CONTENT = 206, "partial content";
    CONFLICT_MERGED = 207, "conflict resolved with merge";
    CONFLICT_CLIENT_WON = 208, "conflict resolved with client's command winning";
    CONFLICT_DUPLICATE = 209, "conflict resolved with duplicate";
    DELETE_WITHOUT_ARCHIVE = 210, "delete without archive";
    ITEM_NOT_DELETED = 211, "item not deleted";
    AUTHENTICATION_ACCEPTED = 212, "authentication accepted";
    CHUNK_ACCEPTED = 213, "chunked item accepted and buffered";
    OPERATION_CANCELLED = 214, "operation cancelled";
    NOT_EXECUTED = 215, "not executed";
    ATOMIC_ROLLBACK_OK = 216, "atomic roll back ok";
    MULTIPLE_CHOICES = 300, "multiple choices";
    MOVED_PERMANENTLY = 301, "moved permanently";
    FOUND = 302, "found";
    SEE_OTHER = 303, "see other";
    NOT_MODIFIED = 304, "not modified";
    USE_PROXY = 305, "use proxy";
    BAD_REQUEST = 400, "bad request";
    INVALID_CREDENTIALS = 401, "invalid credentials";
    PAYMENT_REQUIRED = 402, "payment required";
    FORBIDDEN = 403, "forbidden";
    NOT_FOUND = 404, "not found";
    COMMAND_NOT_ALLOWED = 405, "command not allowed";
    OPTIONAL_FEATURE_NOT_SUPPORTED = 406, "optional feature not supported";
    MISSING_CREDENTIALS = 407, "missing credentials";
    REQUEST_TIMEOUT = 408, "request timeout";
    CONFLICT = 409, "conflict";
    GONE = 410, "gone";
    SIZE_REQUIRED = 411, "size required";
    INCOMPLETE_COMMAND = 412, "incomplete command";
    REQUEST_ENTITY_TOO_LARGE = 413, "request entity too large";
    URI_TOO_LONG = 414, "uri too long";
    UNSUPPORTED_MEDIA_TYPE = 415, "unsupported media type or format";
    REQUESTED_SIZE_TOO_BIG = 416, "requested size too big";
    RETRY_LATER = 417, "retry later";
    ALREADY_EXISTS = 418, "already exists";
    CONFLICT_SERVER_DATA = 419, "conflict resolved with server data";
    DEVICE_FULL = 420, "device full";
    UNKNOWN_SEARCH_GRAMMAR = 421, "unknown search grammar";
    BAD_CGI_SCRIPT = 422, "bad cgi script";
    SOFT_DELETE_CONFLICT = 423, "soft-delete conflict";
    SIZE_MISMATCH = 424, "size mismatch";
    PERMISSION_DENIED = 425, "permission denied";
    PARTIAL_ITEM_NOT_ACCEPTED = 426, "partial item not accepted";
    ITEM_NOT_EMPTY = 427, "item not empty";
    MOVE_FAILED = 428, "move failed";
    COMMAND_FAILED = 500, "command failed";
    NOT_IMPLEMENTED = 501, "command not implemented";
    BAD_GATEWAY = 502, "bad gateway";
    SERVICE_UNAVAILABLE = 503, "service unavailable";
    GATEWAY_TIMEOUT = 504, "gateway timeout";
    DTD_VERSION_NOT_SUPPORTED = 505, "dtd version not supported";
    PROCESSING_ERROR = 506, "processing error";
    ATOMIC_FAILED = 507, "atomic failed";
    REFRESH_REQUIRED = 508, "refresh required";
    RESERVED_509 = 509, "reserved";
    DATA_STORE_FAILURE = 510, "data store failure";
    SERVER_FAILURE = 511, "server failure";
    SYNCHRONIZATION_FAILED = 512, "synchronization failed";
    PROTOCOL_VERSION_NOT_SUPPORTED = 513, "protocol version not supported";
    OPERATION_CANCELLED_BEFORE_PROCESSING = 514, "operation cancelled before processing";
    ATOMIC_ROLLBACK_FAILED = 516, "atomic roll back failed";
    ATOMIC_RESPONSE_TOO_LARGE = 517, "atomic response too large to fit";
});

impl StatusCode {
    /// 2xx, and the 12xx application success class.
    pub fn is_success(self) -> bool {
        matches!(self.0, 200..=299 | 1200..=1299)
    }
}

impl fmt::Debug for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "StatusCode({} {n})", self.0),
            None => write!(f, "StatusCode({})", self.0),
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A DM alert code (`OMA-TS-DM_Protocol-V1_2` §8.7, digest §5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct AlertCode(pub u16);

named_codes!(AlertCode {
    DISPLAY = 1100, "display";
    CONFIRM_OR_REJECT = 1101, "confirm or reject";
    TEXT_INPUT = 1102, "text input";
    SINGLE_CHOICE = 1103, "single choice";
    MULTIPLE_CHOICE = 1104, "multiple choice";
    SERVER_INITIATED_MGMT = 1200, "server-initiated management";
    CLIENT_INITIATED_MGMT = 1201, "client-initiated management";
    NEXT_MESSAGE = 1222, "next message";
    SESSION_ABORT = 1223, "session abort";
    CLIENT_EVENT = 1224, "client event";
    NO_END_OF_DATA = 1225, "no end of data";
    GENERIC_ALERT = 1226, "generic alert";
});

impl AlertCode {
    /// User-interaction alerts (1100–1104), which only a server may send.
    pub fn is_user_interaction(self) -> bool {
        (1100..=1104).contains(&self.0)
    }
}

impl fmt::Debug for AlertCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "AlertCode({} {n})", self.0),
            None => write!(f, "AlertCode({})", self.0),
        }
    }
}

impl fmt::Display for AlertCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_keep_their_value() {
        assert_eq!(StatusCode(599).name(), None);
        assert_eq!(StatusCode(599).to_string(), "599");
        assert_eq!(StatusCode::SIZE_MISMATCH, StatusCode(424));
        assert_eq!(AlertCode(1299).name(), None);
        assert_eq!(AlertCode::GENERIC_ALERT.name(), Some("generic alert"));
    }

    #[test]
    fn success_classes() {
        assert!(StatusCode::ACCEPTED.is_success());
        assert!(StatusCode(1200).is_success());
        assert!(!StatusCode::ATOMIC_FAILED.is_success());
    }
}
