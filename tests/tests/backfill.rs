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

/// The post-build sender delivers a spool in one batch; when the log
/// refuses one attestation its `Vouch-Refused` header names it, so the
/// sender moves that one to `rejected/` and sends the others together
/// (without the header it had to resend them one request each).
#[test]
fn the_sender_rejects_the_named_attestation_and_sends_the_rest_at_once() {
    let dir = temp_dir("spool-refused");
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    for i in 300..303u64 {
        let mut a = attestation(&builder(1), i, 0);
        if i == 301 {
            // The signature of another NAR hash.
            a.sig = attestation(&builder(1), i, 1).sig;
        }
        std::fs::write(
            spool.join(format!("{}-b1.attestation", a.path.hash_part())),
            a.encode(),
        )
        .unwrap();
    }
    let log = Log::start("");
    let st = Command::new(binary("vouch"))
        .args(["sender", "--once", "--log", &log.url, "--spool"])
        .arg(&spool)
        .env("VOUCH_LOG", "warn")
        .status()
        .unwrap();
    assert!(st.success());
    let rejected: Vec<String> = std::fs::read_dir(spool.join("rejected"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let bad = attestation(&builder(1), 301, 0)
        .path
        .hash_part()
        .to_string();
    assert!(
        rejected
            .iter()
            .any(|n| n.starts_with(&bad) && n.ends_with(".attestation")),
        "{rejected:?}"
    );
    let reason =
        std::fs::read_to_string(spool.join("rejected").join(format!("{bad}-b1.reason"))).unwrap();
    assert!(reason.starts_with("HTTP 403: attestation "), "{reason}");
    assert_eq!(
        vouch_tests::checkpoint_size(&log.get("/checkpoint").1),
        Some(2)
    );
    // The two good ones went in one request: one committed batch.
    let metrics = String::from_utf8(log.get("/metrics").1).unwrap();
    assert!(
        metrics.lines().any(|l| l == "vouch_log_batches_total 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("batches"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
