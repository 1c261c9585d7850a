#![no_main]
//! Fuzz target: tlog_proof.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = vouch_spec::tlog_proof::TlogProof::parse(data) {
        assert_eq!(p.encode(), data);
    }
});
