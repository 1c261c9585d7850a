//! Backfill's resumable loop against a cache that is down, then up: the
//! first run retries, stops, exits non-zero with the number of paths left
//! and records nothing as done; the rerun logs every path.

use std::process::{Command, Output, Stdio};

use vouch_tests::{
    attestation, binary, builder, free_port, narinfo_of, temp_dir, wait_port, Log, Proc,
};

fn backfill(cache: &str, log: &Log, dir: &std::path::Path) -> Output {
    Command::new(binary("vouch"))
        .args(["backfill", "--cache", cache, "--log", &log.url, "--key"])
        .arg(builder(1).public().to_string())
        .arg("--paths")
        .arg(dir.join("paths"))
        .arg("--state")
        .arg(dir.join("backfill.state"))
        .args(["--attempts", "2", "--rate", "0"])
        .env("VOUCH_LOG", "warn")
        .output()
        .unwrap()
}

/// A directory holding a binary cache of paths `first..first + 5`, each
/// narinfo signed by builder 1 (path `forged` with the signature of
/// another NAR hash), and the list of their paths, `paths`: (dir, cache).
fn cache_of_five(
    name: &str,
    first: u64,
    forged: Option<u64>,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = temp_dir(name);
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let mut list = String::new();
    for i in first..first + 5 {
        let a = attestation(&builder(1), i, 0);
        let mut n = narinfo_of(&a);
        let variant = if forged == Some(i) { 1 } else { 0 };
        n.sigs
            .push(attestation(&builder(1), i, variant).nix_signature());
        std::fs::write(
            cache.join(format!("{}.narinfo", a.path.hash_part())),
            n.to_text(),
        )
        .unwrap();
        list.push_str(&format!("{}\n", a.path));
    }
    std::fs::write(dir.join("paths"), &list).unwrap();
    (dir, cache)
}

#[test]
fn a_cache_that_is_down_leaves_everything_to_do_and_the_rerun_does_it() {
    let (dir, cache) = cache_of_five("backfill-down", 100, None);
    let log = Log::start("");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");

    // Down: connection refused on every attempt.
    let first = backfill(&url, &log, &dir);
    let (out, err) = (
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&first.stderr),
    );
    assert_eq!(first.status.code(), Some(3), "{out}{err}");
    assert!(
        err.contains("5 paths left undone") && err.contains(&url),
        "{err}"
    );
    assert!(out.contains("backfilled 0 paths: 0 attestations"), "{out}");
    assert_eq!(
        std::fs::read_to_string(dir.join("backfill.state"))
            .unwrap_or_default()
            .trim(),
        "0",
        "nothing recorded as done"
    );
    assert_eq!(
        vouch_tests::checkpoint_size(&log.get("/checkpoint").1),
        Some(0)
    );

    // Up: the rerun logs every path.
    let _server = Proc(
        Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(&cache)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(port);
    let second = backfill(&url, &log, &dir);
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{out}");
    assert!(
        out.contains("backfilled 5 paths: 5 attestations submitted"),
        "{out}"
    );
    assert_eq!(
        vouch_tests::checkpoint_size(&log.get("/checkpoint").1),
        Some(5)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An attestation the log refuses for good (a narinfo whose signature does
/// not verify) is named by the log's `Vouch-Refused` header; backfill drops
/// it, logs the rest of its batch, counts it, and exits successfully.
#[test]
fn a_refused_attestation_is_dropped_and_the_rest_of_its_batch_logged() {
    // Path 202 carries the signature of another NAR hash.
    let (dir, cache) = cache_of_five("backfill-refused", 200, Some(202));
    let log = Log::start("");
    let out = backfill(&format!("file://{}", cache.display()), &log, &dir);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("4 attestations submitted") && stdout.contains("1 bad signatures"),
        "{stdout}"
    );
    assert_eq!(
        vouch_tests::checkpoint_size(&log.get("/checkpoint").1),
        Some(4)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
