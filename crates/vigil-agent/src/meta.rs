//! How the agent encodes metadata in a member's 512-byte meta blob.
//!
//! The blob is UTF-8 text, one `key=value` per line, keys sorted, lines joined
//! by `\n` (no trailing newline). A key is 1–64 bytes of `A-Z a-z 0-9 _ . - /`;
//! a value is any UTF-8 without a newline. The whole blob is at most
//! [`vigil_proto::MAX_META_LEN`] (512) bytes.
//!
//! Decoding is lenient, since a library user may publish any bytes: see
//! [`vigil_act::meta::parse_meta`] (shared with failover groups).

use std::collections::BTreeMap;

/// Metadata that cannot be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetaError {
    /// A key is empty, too long, or has a character outside `A-Za-z0-9_.-/`.
    #[error("key `{0}` must be 1-64 characters of A-Z a-z 0-9 _ . - /")]
    BadKey(String),
    /// A value holds a newline.
    #[error("value of `{0}` must not contain a newline")]
    BadValue(String),
    /// The encoding is longer than 512 bytes.
    #[error("metadata encodes to {0} bytes; at most 512 are allowed")]
    TooLong(usize),
}

fn key_ok(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/'))
}

/// Encodes key/value pairs as `key=value` lines.
pub fn encode(meta: &BTreeMap<String, String>) -> Result<Vec<u8>, MetaError> {
    let mut out = String::new();
    for (k, v) in meta {
        if !key_ok(k) {
            return Err(MetaError::BadKey(k.clone()));
        }
        if v.contains(['\n', '\r']) {
            return Err(MetaError::BadValue(k.clone()));
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    if out.len() > vigil_proto::MAX_META_LEN {
        return Err(MetaError::TooLong(out.len()));
    }
    Ok(out.into_bytes())
}

/// Decodes a meta blob leniently: [`vigil_act::meta::parse_meta`], the one
/// parser that failover groups use too.
pub use vigil_act::meta::parse_meta as decode;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_as_sorted_lines() {
        let m: BTreeMap<String, String> =
            [("zone", "eu-1"), ("role", "db=primary")].map(|(k, v)| (k.into(), v.into())).into();
        let bytes = encode(&m).unwrap();
        assert_eq!(bytes, b"role=db=primary\nzone=eu-1");
        assert_eq!(decode(&bytes), m);
    }

    #[test]
    fn bad_keys_values_and_sizes_are_refused() {
        let one = |k: &str, v: &str| encode(&[(k.to_string(), v.to_string())].into());
        assert_eq!(one("a b", "x"), Err(MetaError::BadKey("a b".into())));
        assert_eq!(one("", "x"), Err(MetaError::BadKey(String::new())));
        assert_eq!(one("k", "x\ny"), Err(MetaError::BadValue("k".into())));
        assert_eq!(one("k", &"v".repeat(600)), Err(MetaError::TooLong(602)));
        assert!(one("k", &"v".repeat(510)).is_ok());
    }

    #[test]
    fn foreign_bytes_decode_leniently() {
        let m = decode(b"plain\nk=v\n\xff=x");
        assert_eq!(m.get("plain").map(String::as_str), Some(""));
        assert_eq!(m.get("k").map(String::as_str), Some("v"));
        assert_eq!(m.len(), 3);
    }
}
