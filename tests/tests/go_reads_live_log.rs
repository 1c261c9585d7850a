//! Go's reference tlog client code reads a running `vouch-log`: the tiles,
//! bundles and checkpoint it serves over HTTP are mirrored byte for byte
//! into a directory, and `spec/testdata/go/interop.go` (golang.org/x/mod
//! sumdb/note and sumdb/tlog) authenticates every tile and entry against the
//! signed checkpoint. Needs `go` and golang-golang-x-mod-dev (.ci/run installs them).

use vouch_tests::{attestation, builder, Log};

#[test]
fn go_sumdb_tlog_verifies_what_the_log_serves() {
    let log = Log::start("");
    // 600 entries: two full level-0 tiles and bundles, and partial ones.
    for chunk in 0..3u64 {
        let body: Vec<u8> = (0..200)
            .flat_map(|i| attestation(&builder(1), chunk * 200 + i, 0).encode())
            .collect();
        assert_eq!(log.submit(&body, false).0, 200);
    }
    let (s, cp) = log.get("/checkpoint");
    assert_eq!(s, 200);
    let size: u64 = String::from_utf8_lossy(&cp)
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(size, 600);
    let mirror = vouch_tests::mirror_tiles(|p| log.get(&format!("/{p}")), size, &cp);
    vouch_tests::go_verify_log(&mirror, &log.vkey, 600);
    let _ = std::fs::remove_dir_all(&mirror);
}
