//! The monitor against real logs: a planted disagreement between builders,
//! a watched key nobody confirms, and a planted fork (the same log key and
//! origin serving an inconsistent tree), each reported as JSON and by exit code.

use std::process::Command;

use serde_json::Value;
use vouch_tests::{attestation, binary, builder, Log};

fn monitor(log: &Log, state: &std::path::Path, extra: &[&str]) -> (i32, Vec<Value>) {
    let out = Command::new(binary("vouch-witness"))
        .args([
            "monitor", "--once", "--log", &log.url, "--vkey", &log.vkey, "--state",
        ])
        .arg(state)
        .args(extra)
        .env("VOUCH_LOG", "warn")
        .output()
        .expect("running vouch-witness monitor");
    let reports = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    (out.status.code().unwrap_or(-1), reports)
}

#[test]
fn monitor_reports_disagreement_unconfirmed_keys_and_forks() {
    let dir = vouch_tests::temp_dir("monitor");
    let state = dir.join("monitor");
    let log = Log::start("");
    // Builders 1 and 2 agree on paths 0..10; builder 3 disagrees on path 4.
    let mut body = Vec::new();
    for i in 0..10 {
        body.extend(attestation(&builder(1), i, 0).encode());
        body.extend(attestation(&builder(2), i, 0).encode());
    }
    body.extend(attestation(&builder(3), 4, 7).encode());
    assert_eq!(log.submit(&body, false).0, 200);
    let (code, reports) = monitor(&log, &state, &[]);
    assert_eq!(code, 1, "{reports:?}");
    let dis: Vec<&Value> = reports
        .iter()
        .filter(|r| r["kind"] == "disagreement")
        .collect();
    assert_eq!(dis.len(), 1, "{reports:?}");
    assert_eq!(dis[0]["path"], vouch_tests::store_path(4).full());
    assert_eq!(dis[0]["attestations"].as_array().unwrap().len(), 3);

    // A clean second round from the saved position reports nothing new.
    let (code, reports) = monitor(&log, &state, &[]);
    assert_eq!((code, reports.len()), (0, 0), "{reports:?}");

    // A watched cache key signs paths nobody else builds.
    let cache = builder(5);
    let mut body = Vec::new();
    body.extend(attestation(&cache, 20, 0).encode());
    body.extend(attestation(&cache, 1, 0).encode());
    assert_eq!(log.submit(&body, false).0, 200);
    let watch = cache.public().to_string();
    let (code, reports) = monitor(&log, &state, &["--watch", &watch, "--grace-secs", "0"]);
    assert_eq!(code, 1, "{reports:?}");
    let un: Vec<&Value> = reports
        .iter()
        .filter(|r| r["kind"] == "unconfirmed")
        .collect();
    assert_eq!(
        un.len(),
        1,
        "path 1 is confirmed by builders 1 and 2, path 20 by nobody: {reports:?}"
    );
    assert_eq!(un[0]["path"], vouch_tests::store_path(20).full());

    // A fork: the same key and origin, a different history, at the same URL.
    let (vkey, port) = (log.vkey.clone(), log.port);
    let fork_dir = vouch_tests::temp_dir("fork");
    std::fs::copy(log.dir.join("log.key"), fork_dir.join("log.key")).unwrap();
    drop(log);
    let mut fork = Log::start_in(fork_dir, vkey, "", true);
    let mut body = Vec::new();
    for i in 0..30 {
        body.extend(attestation(&builder(6), 1000 + i, 0).encode());
    }
    assert_eq!(fork.submit(&body, false).0, 200);
    // Move the fork onto the original port so the monitor sees "the same log".
    fork.terminate();
    fork.port = port;
    fork.url = format!("http://127.0.0.1:{port}");
    fork.restart();
    let (code, reports) = monitor(&fork, &state, &[]);
    assert_eq!(code, 2, "{reports:?}");
    let inc: Vec<&Value> = reports
        .iter()
        .filter(|r| r["kind"] == "log_inconsistent")
        .collect();
    assert_eq!(inc.len(), 1, "{reports:?}");
    assert!(inc[0]["old_checkpoint"]
        .as_str()
        .unwrap()
        .contains(vouch_tests::ORIGIN));
    assert!(
        inc[0]["new_checkpoint"]
            .as_str()
            .unwrap()
            .contains("\n30\n"),
        "{:?}",
        inc[0]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
