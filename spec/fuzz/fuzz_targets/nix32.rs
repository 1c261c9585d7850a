#![no_main]
//! Fuzz target: nix32.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let n = usize::from(data[0] % 64);
    if let Ok(s) = std::str::from_utf8(&data[1..]) {
        if let Ok(bytes) = vouch_spec::nix::nix32::decode(s, n) {
            assert_eq!(vouch_spec::nix::nix32::encode(&bytes), s);
        }
        let _ = vouch_spec::nix::StorePath::parse(s);
        let _ = vouch_spec::nix::NixPublicKey::parse(s);
        let _ = vouch_spec::nix::NixSecretKey::parse(s);
        let _ = vouch_spec::nix::NixSignature::parse(s);
    }
});
