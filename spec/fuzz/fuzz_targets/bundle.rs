#![no_main]
//! Fuzz target: bundle.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = vouch_spec::bundle::decode(data) {
        assert_eq!(vouch_spec::bundle::encode(&entries).unwrap(), data);
    }
});
