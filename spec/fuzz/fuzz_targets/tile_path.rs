#![no_main]
//! Fuzz target: tile_path.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(t) = vouch_spec::tile::Tile::parse_path(s) {
            assert_eq!(t.path(), s);
        }
    }
});
