#![no_main]
//! Fuzz target: checkpoint.
use libfuzzer_sys::fuzz_target;

use vouch_spec::note::{Ed25519Signer, NoteVerifier};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(c) = vouch_spec::checkpoint::Checkpoint::parse(s) {
            assert_eq!(c.to_text(), s);
        }
    }
    // Opening a whole signed checkpoint with a fixed key never panics.
    let signer = Ed25519Signer::from_seed("example.com/fuzz", &[1; 32]).unwrap();
    let v = signer.verifier();
    let _ = vouch_spec::checkpoint::open_checkpoint(data, &[&v as &dyn NoteVerifier]);
});
