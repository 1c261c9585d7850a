#![no_main]
//! Fuzz target: narinfo.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = vouch_spec::nix::NarInfo::parse(data) {
        // Writing and re-reading gives the same value.
        let again = vouch_spec::nix::NarInfo::parse(n.to_text().as_bytes()).unwrap();
        assert_eq!(again, n);
        let _ = n.fingerprint();
    }
});
