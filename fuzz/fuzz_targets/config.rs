//! Agent config file parsing: any text is either a config or an error
//! message; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match vigil_agent::config::parse_file(text) {
            Ok(_) => {}
            Err(message) => assert!(!message.is_empty()),
        }
    }
});
