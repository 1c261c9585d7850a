#![no_main]
//! Fuzz target: transition (key retirement and handover, §3.6).
use libfuzzer_sys::fuzz_target;

use vouch_spec::transition::{kind, Transition};

fuzz_target!(|data: &[u8]| {
    let _ = kind(data);
    if let Ok(t) = Transition::decode(data) {
        assert_eq!(t.encode(), data);
        let _ = t.verify();
    }
});
