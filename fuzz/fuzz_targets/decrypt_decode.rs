//! Decryption then decoding, as the runtime does with every datagram and
//! stream frame. Byte 0 chooses: open the rest as an envelope, or seal the
//! rest and check that it opens to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::crypto::{Key, Keyring, Lane};

fuzz_target!(|data: &[u8]| {
    let ring = Keyring::new(Key::from_bytes([7u8; 32]), "fuzz");
    let Some((&mode, rest)) = data.split_first() else { return };
    let lane = if mode & 2 == 0 { Lane::Datagram } else { Lane::Stream };
    if mode & 1 == 0 {
        if let Ok(plain) = ring.open(lane, rest) {
            let _ = vigil_proto::codec::decode(&plain);
        }
    } else {
        let sealed = ring.seal(lane, rest);
        assert_eq!(ring.open(lane, &sealed).expect("own envelope opens"), rest);
    }
});
