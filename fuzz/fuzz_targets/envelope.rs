//! The envelope as the runtime opens it (checks before decryption, replay
//! window, both versions), sealing round trips with tampering, and the
//! replay window against a model: `vigil::fuzzing::envelope_case`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vigil::fuzzing::envelope_case(data));
