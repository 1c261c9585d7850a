#![no_main]
//! Fuzz target: witness_request.
use libfuzzer_sys::fuzz_target;

use vouch_spec::witness::{parse_response, parse_size_body, AddCheckpoint};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = AddCheckpoint::parse(data) {
        assert_eq!(r.encode(), data);
    }
    let _ = parse_response(data);
    let _ = parse_size_body(data);
});
