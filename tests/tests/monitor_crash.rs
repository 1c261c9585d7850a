//! The monitor's durability (issue 15): SIGKILLed at random moments while
//! it follows a growing log, resumed from its database each time, it ends
//! with exactly the conclusions of a monitor that was never interrupted:
//! nothing lost, nothing counted twice.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vouch_tests::{attestation, binary, builder, temp_dir, Log};

/// A small deterministic generator (the seed is printed, to replay a failure).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One wave of submissions: builders 1 and 2 agree on paths
/// `[from, from + n)`, builder 3 attests every 7th path and disagrees on
/// every 50th, builder 4 attests every 3rd path alone.
fn wave(log: &Log, from: u64, n: u64) {
    let mut atts = Vec::new();
    for i in from..from + n {
        atts.push(attestation(&builder(1), i, 0).encode());
        atts.push(attestation(&builder(2), i, 0).encode());
        if i % 7 == 0 {
            atts.push(attestation(&builder(3), i, u8::from(i % 50 == 0)).encode());
        }
        if i % 3 == 0 {
            atts.push(attestation(&builder(4), 1_000_000 + i, 0).encode());
        }
    }
    // The log takes at most 1000 attestations per request.
    for chunk in atts.chunks(1000) {
        let (status, body) = log.submit(&chunk.concat(), false);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
}

fn monitor_cmd(log: &Log, state: &Path) -> Command {
    let mut c = Command::new(binary("vouch-witness"));
    c.args(["monitor", "--log", &log.url, "--vkey", &log.vkey, "--state"])
        .arg(state)
        .env("VOUCH_LOG", "warn");
    c
}

/// `report all` with the times (which differ between runs) taken out.
fn conclusions(state: &Path) -> Value {
    let out = Command::new(binary("vouch-witness"))
        .args(["report", "--state"])
        .arg(state)
        .arg("all")
        .output()
        .expect("vouch-witness report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Value = serde_json::from_slice(&out.stdout).expect("report is JSON");
    for b in v["builders"].as_array_mut().into_iter().flatten() {
        if let Some(o) = b.as_object_mut() {
            o.remove("first_seen");
            o.remove("last_seen");
        }
    }
    for d in v["disagreements"].as_array_mut().into_iter().flatten() {
        if let Some(o) = d.as_object_mut() {
            o.remove("found");
        }
    }
    v
}

fn disagreement_paths(jsonl: &str) -> BTreeSet<String> {
    jsonl
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "disagreement")
        .filter_map(|r| r["path"].as_str().map(str::to_string))
        .collect()
}

fn entries_read(state: &Path) -> u64 {
    conclusions(state)["entries"].as_u64().unwrap_or(0)
}

#[test]
fn a_monitor_killed_at_random_moments_concludes_what_an_unkilled_one_does() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let dir = temp_dir("monitor-crash");
    let log = Log::start("");
    wave(&log, 0, 2000);

    // Follow the log while it grows, killing the monitor at random moments.
    let killed = dir.join("killed");
    let mut stdout_killed = String::new();
    let mut sizes = BTreeSet::new();
    let mut interrupted = 0;
    let (mut next, waves) = (2000u64, 8u64);
    // How long this machine's monitor takes to read a wave (about 7,400
    // entries), from a first uninterrupted run over the first 2,000 paths
    // (about 4,950 entries, start-up included), so that kills land mid-read
    // on slow and fast machines alike.
    let t = Instant::now();
    let out = monitor_cmd(&log, &killed).arg("--once").output().unwrap();
    stdout_killed.push_str(&String::from_utf8_lossy(&out.stdout));
    let read_ms = (t.elapsed().as_millis() as u64 * 3 / 2).max(100);
    eprintln!("a wave takes about {read_ms} ms to read");
    let mut kills = 0;
    let start = Instant::now();
    while kills < waves + 3 {
        // A backlog of over 7000 entries (more than one chunk of the
        // monitor's) before it starts, and more while it reads.
        if kills < waves {
            wave(&log, next, 3000);
            next += 3000;
        }
        let out = std::fs::File::create(dir.join("run.jsonl")).unwrap();
        let mut child = monitor_cmd(&log, &killed)
            .args(["--interval-secs", "0", "--jobs", "2"])
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the monitor");
        if kills < waves {
            wave(&log, next, 100);
            next += 100;
        }
        std::thread::sleep(Duration::from_millis(30 + rng.below(read_ms)));
        let published = vouch_tests::checkpoint_size(&log.get("/checkpoint").1).unwrap_or(0);
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        kills += 1;
        stdout_killed.push_str(&std::fs::read_to_string(dir.join("run.jsonl")).unwrap());
        let read = entries_read(&killed);
        interrupted += usize::from(read < published);
        sizes.insert(read);
        assert!(start.elapsed() < Duration::from_secs(600));
    }
    // Then let it finish, uninterrupted.
    let out = monitor_cmd(&log, &killed).arg("--once").output().unwrap();
    // 1 if this last run still found a disagreement, 0 if the killed ones had.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout_killed.push_str(&String::from_utf8_lossy(&out.stdout));

    // A monitor that was never interrupted.
    let clean = dir.join("clean");
    let t = Instant::now();
    let out = monitor_cmd(&log, &clean).arg("--once").output().unwrap();
    eprintln!("an unkilled monitor read the log in {:?}", t.elapsed());
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout_clean = String::from_utf8_lossy(&out.stdout).into_owned();

    let total = entries_read(&clean);
    eprintln!("positions after kills: {sizes:?} of {total}; {interrupted} kills mid-read");
    assert!(
        interrupted >= 3,
        "at least 3 kills landed while the monitor was still reading ({interrupted}); positions {sizes:?} of {total}"
    );
    let (a, b) = (conclusions(&killed), conclusions(&clean));
    assert_eq!(a["entries"], b["entries"]);
    assert_eq!(a["builders"], b["builders"], "builder counters");
    assert_eq!(a["disagreements"], b["disagreements"]);
    // Builder 3 disagrees on paths 0, 350, 700, … (every 50th that is also a 7th).
    let expected = (0..next).filter(|i| i % 350 == 0).count();
    assert_eq!(b["disagreements"].as_array().map(Vec::len), Some(expected));
    // Every finding was reported at least once, even by the killed runs.
    let reported_clean = disagreement_paths(&stdout_clean);
    assert_eq!(reported_clean.len(), expected);
    assert_eq!(disagreement_paths(&stdout_killed), reported_clean);
    let _ = std::fs::remove_dir_all(&dir);
}
