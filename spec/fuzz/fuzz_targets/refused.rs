#![no_main]
//! Fuzz target: the `Vouch-Refused` header value.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(r) = vouch_spec::refused::Refused::parse(s) {
            assert_eq!(r.to_string(), s);
        }
    }
});
