//! The wire codec: one compact binary format with a version byte.
//!
//! docs/PROTOCOL.md specifies it field by field. Every read is checked against
//! the bytes that remain; nothing is allocated beyond what the input's length
//! justifies; unknown types, truncation and trailing bytes are typed errors.
//!
//! `types.rs` holds the packet types, `encode.rs` and `decode.rs` the two
//! directions.

mod decode;
mod encode;
mod types;

pub use decode::{MESSAGE_KINDS, decode, message_kind};
pub use encode::{encode, encode_message, encode_update, encode_version_1, finish, to_version_1};
pub use types::{
    MAX_DIGEST_BUCKETS_LOG2, MAX_UPDATES_PER_PACKET, MemberState, Message, Packet, Update, VERSION, VERSION_1,
};

#[cfg(test)]
mod tests;
