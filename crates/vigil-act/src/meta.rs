//! The metadata convention used by the agent and failover groups: UTF-8
//! `key=value` lines, at most 512 bytes in all. Keys are non-empty and contain
//! neither `=` nor a line break; values contain no line break.

use std::collections::BTreeMap;

/// Parses `key=value` lines, leniently, since a member may publish any
/// bytes: bytes that are not UTF-8 are replaced (U+FFFD), empty lines are
/// skipped, a line without `=` is a key with an empty value, keys are
/// trimmed and an empty key is skipped, and a later duplicate key wins. The
/// agent's API shows metadata parsed this way.
pub fn parse_meta(bytes: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .filter_map(|line| {
            let (k, v) = line.split_once('=').unwrap_or((line, ""));
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Encodes key/value pairs as `key=value` lines, sorted by key. Refuses keys
/// or values that would not parse back.
pub fn encode_meta(pairs: &BTreeMap<String, String>) -> Result<Vec<u8>, String> {
    let mut out = String::new();
    for (k, v) in pairs {
        if k.trim().is_empty() || k.contains('=') || k.contains(['\n', '\r']) {
            return Err(format!("metadata key {k:?} must be non-empty, without '=' or line breaks"));
        }
        if v.contains(['\n', '\r']) {
            return Err(format!("metadata value of {k:?} must not contain line breaks"));
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(k.trim());
        out.push('=');
        out.push_str(v);
    }
    if out.len() > vigil_proto::MAX_META_LEN {
        return Err(format!(
            "metadata is {} bytes; at most {} are allowed",
            out.len(),
            vigil_proto::MAX_META_LEN
        ));
    }
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_bad_pairs_are_refused() {
        let pairs: BTreeMap<String, String> =
            [("role", "db"), ("port", "5432"), ("note", "a=b")].map(|(k, v)| (k.into(), v.into())).into();
        let bytes = encode_meta(&pairs).unwrap();
        assert_eq!(bytes, b"note=a=b\nport=5432\nrole=db");
        assert_eq!(parse_meta(&bytes), pairs);
        assert!(encode_meta(&[("a=b".to_string(), "1".to_string())].into()).is_err());
        assert!(encode_meta(&[("k".to_string(), "x\ny".to_string())].into()).is_err());
        assert!(encode_meta(&[("k".to_string(), "x".repeat(600))].into()).is_err());
        let lenient = parse_meta(b"plain\n\n=x\nk = v\n\xff=y\nk=w");
        let expect: BTreeMap<String, String> =
            [("plain", ""), ("k", "w"), ("\u{FFFD}", "y")].map(|(k, v)| (k.into(), v.into())).into();
        assert_eq!(lenient, expect);
    }
}
