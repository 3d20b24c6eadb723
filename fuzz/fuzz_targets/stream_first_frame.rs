//! The reader of an inbound stream's first frame (and of the large frame
//! it may announce), on what a peer sends after connecting:
//! `vigil::fuzzing::first_frame_case`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vigil::fuzzing::first_frame_case(data));
