#![no_main]
//! Fuzz target: policy.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vouch_spec::policy::Policy::parse(data);
});
