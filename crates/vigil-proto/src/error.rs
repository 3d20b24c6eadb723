//! Typed errors, one enum per concern.

use thiserror::Error;

/// A member field was refused. Nothing was changed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberError {
    /// Names must not be empty.
    #[error("member name is empty")]
    EmptyName,
    /// Names are at most 128 bytes of UTF-8.
    #[error("member name is {len} bytes; at most 128 are allowed")]
    NameTooLong {
        /// Length given.
        len: usize,
    },
    /// Names are printable: no control characters (newline, escape, ...)
    /// and no invisible formatting characters (bidirectional overrides,
    /// zero-width characters), which would let a name rewrite a terminal
    /// line or pass for another.
    #[error("member name has an unprintable character {ch:?} at byte {at}")]
    NameNotPrintable {
        /// The character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
    /// Metadata is at most 512 bytes.
    #[error("metadata is {len} bytes; at most 512 are allowed")]
    MetaTooLong {
        /// Length given.
        len: usize,
    },
    /// A health reason is at most 128 bytes.
    #[error("health reason is {len} bytes; at most 128 are allowed")]
    ReasonTooLong {
        /// Length given.
        len: usize,
    },
}

/// A packet or stream could not be decoded. It was dropped whole; no state changed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Zero bytes.
    #[error("empty packet")]
    Empty,
    /// The version byte is not one this build speaks.
    #[error("unknown protocol version {0}")]
    UnknownVersion(u8),
    /// The message type byte is unknown.
    #[error("unknown message type {0}")]
    UnknownMessage(u8),
    /// A piggybacked update has an unknown type byte.
    #[error("unknown update type {0}")]
    UnknownUpdate(u8),
    /// The bytes ended inside a field.
    #[error("truncated while reading {0}")]
    Truncated(&'static str),
    /// Bytes remained after the last field.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
    /// A varint ran past 64 bits.
    #[error("varint overflows 64 bits")]
    VarintOverflow,
    /// A field is out of its allowed range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The packet is larger than this member accepts.
    #[error("packet of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Length received.
        len: usize,
        /// Limit.
        max: usize,
    },
}

impl DecodeError {
    /// A short, stable label for counting rejections by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty",
            DecodeError::UnknownVersion(_) => "version",
            DecodeError::UnknownMessage(_) | DecodeError::UnknownUpdate(_) => "unknown_type",
            DecodeError::Truncated(_) => "truncated",
            DecodeError::TrailingBytes(_) => "trailing",
            DecodeError::VarintOverflow | DecodeError::Invalid { .. } => "malformed",
            DecodeError::TooLarge { .. } => "oversized",
        }
    }
}

/// A configuration was refused: names the field and the reason.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("invalid config `{field}`: {reason}")]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// Why it was refused.
    pub reason: String,
}
