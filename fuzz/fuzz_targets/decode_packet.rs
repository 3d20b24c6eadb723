//! The wire decoder: never panics; what decodes re-encodes to something that
//! decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_proto::codec::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = decode(data) {
        let again = decode(&encode(&packet)).expect("a re-encoded packet decodes");
        assert_eq!(again, packet);
    }
});
