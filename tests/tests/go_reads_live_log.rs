//! Go's reference tlog client code reads a running `vouch-log`: the tiles,
//! bundles and checkpoint it serves over HTTP are mirrored byte for byte
//! into a directory, and `spec/testdata/go/interop.go` (golang.org/x/mod
//! sumdb/note and sumdb/tlog) authenticates every tile and entry against the
//! signed checkpoint. Needs `go` and golang-golang-x-mod-dev (.ci/run installs them).

use std::process::Command;

use vouch_spec::tile::{Tile, TileKind};
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
    let mirror = vouch_tests::temp_dir("mirror");
    let (s, cp) = log.get("/checkpoint");
    assert_eq!(s, 200);
    std::fs::write(mirror.join("checkpoint"), &cp).unwrap();
    let size: u64 = String::from_utf8_lossy(&cp)
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(size, 600);
    for t in Tile::all_for_size(size) {
        let mut paths = vec![t.path()];
        if t.kind == (TileKind::Hash { level: 0 }) {
            paths.push(
                Tile {
                    kind: TileKind::Entries,
                    ..t
                }
                .path(),
            );
        }
        for p in paths {
            let (s, data) = log.get(&format!("/{p}"));
            assert_eq!(s, 200, "{p}");
            let f = mirror.join(&p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, data).unwrap();
        }
    }
    let src =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/testdata/go/interop.go");
    let out = Command::new("go")
        .arg("run")
        .arg(&src)
        .args(["verify-log", mirror.to_str().unwrap(), &log.vkey])
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .output()
        .expect("running `go` (install golang-go and golang-golang-x-mod-dev, as .ci/run does)");
    assert!(
        out.status.success(),
        "Go rejected the log: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok 600\n"));
    let _ = std::fs::remove_dir_all(&mirror);
}
