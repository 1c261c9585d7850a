#![no_main]
//! Fuzz target: attestation.
use libfuzzer_sys::fuzz_target;

use vouch_spec::attestation::{Attestation, Entry};

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = Entry::decode(data) {
        assert_eq!(e.encode(), data);
        let _ = e.verify(None);
    }
    if let Ok(a) = Attestation::parse(data) {
        assert_eq!(a.encode(), data);
        let _ = a.to_entry();
    }
});
