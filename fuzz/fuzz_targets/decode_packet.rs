//! The wire decoder: never panics; what decodes (version 2 or 1) re-encodes
//! to something that decodes to the same value, in both versions, and the
//! rewrite to version 1 for a member of the previous release agrees with
//! the version-1 encoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_proto::codec::{decode, encode, encode_version_1, to_version_1};

fuzz_target!(|data: &[u8]| {
    let mut v1 = Vec::new();
    let rewritten = to_version_1(data, &mut v1);
    if let Ok(packet) = decode(data) {
        let again = decode(&encode(&packet)).expect("a re-encoded packet decodes");
        assert_eq!(again, packet);
        assert_eq!(decode(&encode_version_1(&packet)).as_ref(), Ok(&packet));
        assert!(rewritten.is_ok(), "a packet that decodes is rewritten");
        assert_eq!(decode(&v1), Ok(packet));
    }
});
