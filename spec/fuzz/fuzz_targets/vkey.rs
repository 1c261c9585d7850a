#![no_main]
//! Fuzz target: vkey.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(v) = vouch_spec::note::Vkey::parse(s) {
            assert_eq!(v.encode(), s);
        }
        let _ = vouch_spec::note::Ed25519Verifier::from_vkey(s);
        let _ = vouch_spec::cosignature::CosignatureVerifier::from_vkey(s);
        let _ = vouch_spec::note::Ed25519Signer::from_skey(s);
    }
});
