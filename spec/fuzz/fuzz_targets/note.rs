#![no_main]
//! Fuzz target: note.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Any note that parses re-encodes to the same bytes.
    if let Ok(n) = vouch_spec::note::Note::parse(data) {
        assert_eq!(n.to_bytes(), data);
    }
});
