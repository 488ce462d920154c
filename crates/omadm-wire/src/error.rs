//! Decode errors and the limits that bound decoding.

use crate::codes::StatusCode;

/// Bounds on what a decoder accepts. Exceeding one is a [`DecodeError`],
/// never an unbounded allocation or a panic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded message, in bytes.
    pub max_message_size: usize,
    /// Deepest element nesting (SyncML is 1, SyncHdr 2, ...).
    pub max_depth: usize,
    /// Most elements in one message.
    pub max_elements: usize,
    /// Longest single string or opaque value, in bytes.
    pub max_string_len: usize,
}

impl Limits {
    /// Default largest message: generous for large-object chunks, small
    /// enough that a hostile peer cannot make us buffer much.
    pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
    /// Default nesting bound; real DM messages stay under 16.
    pub const DEFAULT_MAX_DEPTH: usize = 48;
    /// Default element bound.
    pub const DEFAULT_MAX_ELEMENTS: usize = 200_000;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: Self::DEFAULT_MAX_MESSAGE_SIZE,
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_elements: Self::DEFAULT_MAX_ELEMENTS,
            max_string_len: Self::DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// Why a message could not be decoded, and where.
///
/// One pointer wide: the offset and the kind live on the heap, so that the
/// `Result`s the decoders pass for every event and value stay small (a
/// 64-byte error made each of them 64 bytes, issue #2). Errors are rare;
/// their allocation is not.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} (at byte {})", .0.kind, .0.offset)]
pub struct DecodeError(Box<Located>);

/// The payload of a [`DecodeError`].
#[derive(Clone, Debug, PartialEq, Eq)]
struct Located {
    offset: usize,
    kind: DecodeErrorKind,
}

impl std::fmt::Debug for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodeError")
            .field("offset", &self.0.offset)
            .field("kind", &self.0.kind)
            .finish()
    }
}

/// What was wrong with an undecodable message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The message is larger than [`Limits::max_message_size`].
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Elements nest deeper than [`Limits::max_depth`].
    #[error("elements nest deeper than the limit of {limit}")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// More elements than [`Limits::max_elements`].
    #[error("more than {limit} elements")]
    TooManyElements {
        /// The limit.
        limit: usize,
    },
    /// A string or opaque value longer than [`Limits::max_string_len`].
    #[error("a value of {len} bytes exceeds the limit of {limit} bytes")]
    StringTooLong {
        /// Length of the value.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Not well-formed XML.
    #[error("malformed XML: {0}")]
    Xml(String),
    /// Not well-formed WBXML.
    #[error("malformed WBXML: {0}")]
    Wbxml(String),
    /// The input ended in the middle of the document.
    #[error("unexpected end of input inside {0}")]
    UnexpectedEof(String),
    /// The document is well-formed but is not a SyncML message.
    #[error("not a SyncML message: {0}")]
    NotSyncMl(String),
    /// A required element is absent.
    #[error("<{parent}> is missing <{missing}>")]
    Missing {
        /// The element that should have held it.
        parent: &'static str,
        /// The missing child.
        missing: &'static str,
    },
    /// An element's content is not a valid value.
    #[error("<{element}> holds {value:?}, {expected}")]
    InvalidValue {
        /// The element.
        element: &'static str,
        /// What it held (truncated).
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// An element that has no place where it appeared.
    #[error("unexpected <{found}> inside <{parent}>")]
    Unexpected {
        /// The element found.
        found: String,
        /// Its parent.
        parent: String,
    },
}

impl DecodeError {
    /// An error of this kind at this byte offset.
    #[cold]
    pub fn new(offset: usize, kind: DecodeErrorKind) -> DecodeError {
        DecodeError(Box::new(Located { offset, kind }))
    }

    /// Byte offset in the input where the problem was found.
    pub fn offset(&self) -> usize {
        self.0.offset
    }

    /// What was wrong.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.0.kind
    }

    /// What was wrong, by value.
    pub fn into_kind(self) -> DecodeErrorKind {
        self.0.kind
    }

    /// The SyncML status a receiver answers this error with: 413 for an
    /// oversize message, 400 (bad request) otherwise.
    pub fn status(&self) -> StatusCode {
        match self.0.kind {
            DecodeErrorKind::MessageTooLarge { .. } | DecodeErrorKind::StringTooLong { .. } => {
                StatusCode::REQUEST_ENTITY_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }
}
