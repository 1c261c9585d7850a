//! Witnesses and the log's side of witnessing, across real processes:
//! a log with three witnesses and a 2-of-3 policy; the witness's refusals
//! (rollback, fork, bad proof, unknown log, forged signature) and state
//! surviving SIGKILL; pull mode against a Tessera log served over loopback.

use std::path::Path;
use std::time::Duration;

use vouch_spec::checkpoint::Checkpoint;
use vouch_spec::consistency;
use vouch_spec::hash::leaf_hash;
use vouch_spec::merkle::MemoryTree;
use vouch_spec::note::{Ed25519Signer, Note};
use vouch_spec::policy::Policy;
use vouch_spec::witness::{parse_response, AddCheckpoint};
use vouch_tests::{
    attestation, builder, checkpoint_size, log_keygen, wait_until, Log, Witness, ORIGIN,
};

fn served_size(log: &Log) -> Option<u64> {
    let (s, b) = log.get("/checkpoint");
    (s == 200).then(|| checkpoint_size(&b)).flatten()
}

#[test]
fn two_of_three_witnesses_publish_and_one_does_not() {
    let (dir, vkey) = log_keygen();
    let log_toml = format!("[[log]]\norigin = \"{ORIGIN}\"\nvkeys = [\"{vkey}\"]\n");
    let mut ws: Vec<Witness> = (1..=3)
        .map(|i| Witness::start(&format!("w{i}.vouch.test"), &log_toml))
        .collect();
    let policy_text = format!(
        "log {vkey}\nwitness w1 {} {}\nwitness w2 {} {}\nwitness w3 {} {}\ngroup all3 2 w1 w2 w3\nquorum all3\n",
        ws[0].vkey, ws[0].url, ws[1].vkey, ws[1].url, ws[2].vkey, ws[2].url
    );
    std::fs::write(dir.join("policy"), &policy_text).unwrap();
    let policy = Policy::parse(policy_text.as_bytes()).unwrap();
    let cfg = format!(
        "witness_policy = \"{}\"\nwitness_timeout_ms = 1000\nwitness_attempts = 2\nwait_timeout_secs = 2",
        dir.join("policy").display()
    );
    let log = Log::start_in(dir, vkey, &cfg, false);
    wait_until("the empty tree to be witnessed", 20, || {
        served_size(&log) == Some(0)
    });

    // All three up: wait=1 returns once a quorum-cosigned checkpoint covers the entry.
    let (s, b) = log.submit(&attestation(&builder(1), 1, 0).encode(), true);
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let cp = log.get("/checkpoint").1;
    let ok = policy
        .verify_checkpoint(&cp)
        .expect("served checkpoint meets the 2-of-3 quorum");
    assert_eq!(ok.checkpoint.size, 1);
    assert_eq!(ok.cosigned.len(), 3);

    // One witness down: still published.
    ws[2].kill();
    let (s, _) = log.submit(&attestation(&builder(1), 2, 0).encode(), true);
    assert_eq!(s, 200);
    let ok = policy.verify_checkpoint(&log.get("/checkpoint").1).unwrap();
    assert_eq!(ok.checkpoint.size, 2);
    assert_eq!(ok.cosigned.len(), 2);

    // Two down: the entry is durable and acknowledged, but no checkpoint
    // without quorum is ever served.
    ws[1].kill();
    let (s, b) = log.submit(&attestation(&builder(1), 3, 0).encode(), true);
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["covered"], false, "wait=1 gives up without quorum: {v}");
    assert!(v["entries"][0]["proof"].is_null());
    for _ in 0..30 {
        let cp = log.get("/checkpoint").1;
        let ok = policy
            .verify_checkpoint(&cp)
            .expect("whatever is served meets the quorum");
        assert_eq!(
            ok.checkpoint.size, 2,
            "a checkpoint without quorum was served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A witness comes back: the log catches it up (409 → right old size) and publishes.
    ws[1].restart();
    wait_until("size 3 to be published", 20, || {
        served_size(&log) == Some(3)
    });
    let ok = policy.verify_checkpoint(&log.get("/checkpoint").1).unwrap();
    assert_eq!(ok.checkpoint.size, 3);
}

/// A log we drive by hand: a key and a tree of n leaves.
struct HandLog {
    signer: Ed25519Signer,
    tree: MemoryTree,
}

impl HandLog {
    fn new(seed: u8, n: u64) -> HandLog {
        HandLog {
            signer: Ed25519Signer::from_seed("hand.vouch.test/log", &[seed; 32]).unwrap(),
            tree: MemoryTree::from_leaves((0..n).map(|i| leaf_hash(&i.to_be_bytes()))),
        }
    }
    fn checkpoint(&self, size: u64) -> Vec<u8> {
        let text = Checkpoint::new(
            "hand.vouch.test/log",
            size,
            self.tree.root_at(size).unwrap(),
        )
        .to_text();
        Note::sign(&text, &[&self.signer]).unwrap().to_bytes()
    }
    fn request(&self, old: u64, new: u64) -> Vec<u8> {
        let proof = if old == 0 || old >= new {
            vec![]
        } else {
            consistency::prove(old, new, &self.tree).unwrap()
        };
        AddCheckpoint {
            old_size: old,
            proof,
            checkpoint: self.checkpoint(new),
        }
        .encode()
    }
}

#[test]
fn witness_refuses_every_bad_request_and_survives_sigkill() {
    let log = HandLog::new(1, 20);
    let toml = format!(
        "[[log]]\norigin = \"hand.vouch.test/log\"\nvkeys = [\"{}\"]\n",
        log.signer.verifier().vkey()
    );
    let mut w = Witness::start("w.vouch.test", &toml);
    let wv = vouch_spec::cosignature::CosignatureVerifier::from_vkey(&w.vkey).unwrap();

    // Unknown log: 404.
    let stranger = HandLog {
        signer: Ed25519Signer::from_seed("other.vouch.test/log", &[2; 32]).unwrap(),
        tree: MemoryTree::new(),
    };
    let body = AddCheckpoint {
        old_size: 0,
        proof: vec![],
        checkpoint: {
            let text = Checkpoint::new("other.vouch.test/log", 0, vouch_spec::Hash::empty_root())
                .to_text();
            Note::sign(&text, &[&stranger.signer]).unwrap().to_bytes()
        },
    }
    .encode();
    assert_eq!(w.add_checkpoint(&body).0, 404);
    // Forged log signature (right name, wrong key): 403.
    let forger = HandLog {
        signer: Ed25519Signer::from_seed("hand.vouch.test/log", &[3; 32]).unwrap(),
        tree: log.tree.clone(),
    };
    assert_eq!(w.add_checkpoint(&forger.request(0, 5)).0, 403);
    // Malformed, non-UTF-8: 400. Oversized: 413. Old size beyond the checkpoint: 400.
    assert_eq!(w.add_checkpoint(b"old x\n\n").0, 400);
    let (s, _, b) = w.add_checkpoint(b"old 0\n\n\xff\xfe\n");
    assert_eq!(s, 400, "{}", String::from_utf8_lossy(&b));
    // (The witness answers before reading all of it, so write over a raw
    // socket and ignore the write error when it hangs up.)
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", w.port)).unwrap();
    let body = vec![b'a'; 100 << 10];
    let _ = std::io::Write::write_all(
        &mut conn,
        format!(
            "POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let _ = std::io::Write::write_all(&mut conn, &body);
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut resp = String::new();
    let _ = std::io::Read::read_to_string(&mut conn, &mut resp);
    assert!(
        resp.starts_with("HTTP/1.1 413") && resp.contains("exceeds the limit"),
        "{resp}"
    );
    assert_eq!(w.add_checkpoint(&log.request(7, 5)).0, 400);
    // A good first checkpoint: 200 with a valid cosignature.
    let (s, _, b) = w.add_checkpoint(&log.request(0, 5));
    assert_eq!(s, 200);
    let sigs = parse_response(&b).unwrap();
    let text = Checkpoint::new("hand.vouch.test/log", 5, log.tree.root_at(5).unwrap()).to_text();
    assert!(sigs
        .iter()
        .any(|s| wv.verify_timestamp(text.as_bytes(), &s.sig).is_some()));
    // Stale old size: 409 with the witness's size.
    let (s, ct, b) = w.add_checkpoint(&log.request(0, 8));
    assert_eq!(
        (s, ct.as_str(), b.as_slice()),
        (409, "text/x.tlog.size", &b"5\n"[..])
    );
    // Rollback: 400 (old size beyond the checkpoint).
    assert_eq!(w.add_checkpoint(&log.request(5, 3)).0, 400);
    // Fork at the same size: 422.
    let fork = HandLog {
        signer: log.signer.clone(),
        tree: MemoryTree::from_leaves((100..120u64).map(|i| leaf_hash(&i.to_be_bytes()))),
    };
    assert_eq!(w.add_checkpoint(&fork.request(5, 5)).0, 422);
    // A fork that grows: the proof cannot connect: 422.
    assert_eq!(w.add_checkpoint(&fork.request(5, 9)).0, 422);
    // A corrupted proof: 422.
    let mut bad = AddCheckpoint::parse(&log.request(5, 8)).unwrap();
    bad.proof[0].0[0] ^= 1;
    assert_eq!(w.add_checkpoint(&bad.encode()).0, 422);
    // A non-empty proof from 0 is refused too (after moving forward properly).
    assert_eq!(w.add_checkpoint(&log.request(5, 8)).0, 200);
    // The monitoring endpoint serves it with both signatures.
    let b = w
        .cosigned("hand.vouch.test/log")
        .expect("a cosigned checkpoint");
    let opened = vouch_spec::note::open(&b, &[&log.signer.verifier(), &wv]).unwrap();
    assert_eq!(opened.verified.len(), 2);
    assert!(opened.note.text.contains("\n8\n"));
    // SIGKILL between requests: the state is still size 8.
    w.kill();
    w.restart();
    let (s, _, b) = w.add_checkpoint(&log.request(0, 9));
    assert_eq!((s, b.as_slice()), (409, &b"8\n"[..]));
    assert_eq!(w.add_checkpoint(&log.request(8, 12)).0, 200);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

#[test]
fn pull_mode_cosigns_a_tessera_log_over_loopback() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/testdata/tessera-log");
    let root = vouch_tests::temp_dir("tessera");
    copy_dir(&src.join("tile"), &root.join("tile"));
    std::fs::copy(src.join("checkpoint.5"), root.join("checkpoint")).unwrap();
    let (_server, url) = vouch_tests::static_server(&root);
    let vkey = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";
    let toml = format!(
        "[[log]]\norigin = \"example.com/log/testdata\"\nvkeys = [\"{vkey}\"]\nurl = \"{url}\"\n"
    );
    let w = Witness::start("w.vouch.test", &toml);
    let size = || {
        w.cosigned("example.com/log/testdata")
            .and_then(|c| checkpoint_size(&c))
    };
    wait_until("the witness to pull size 5", 20, || size() == Some(5));
    // The log grows: the witness proves 5 → 15 from the tiles alone.
    std::fs::copy(src.join("checkpoint.15"), root.join("checkpoint")).unwrap();
    wait_until("the witness to pull size 15", 20, || size() == Some(15));
    // The log serves an older checkpoint: the witness does not roll back.
    std::fs::copy(src.join("checkpoint.12"), root.join("checkpoint")).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(size(), Some(15));
    let b = w.cosigned("example.com/log/testdata").unwrap();
    let wv = vouch_spec::cosignature::CosignatureVerifier::from_vkey(&w.vkey).unwrap();
    let lv = vouch_spec::note::Ed25519Verifier::from_vkey(vkey).unwrap();
    assert_eq!(
        vouch_spec::note::open(&b, &[&lv, &wv])
            .unwrap()
            .verified
            .len(),
        2
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn concurrent_add_checkpoints_never_roll_the_witness_back() {
    let log = HandLog::new(4, 64);
    let toml = format!(
        "[[log]]\norigin = \"hand.vouch.test/log\"\nvkeys = [\"{}\"]\n",
        log.signer.verifier().vkey()
    );
    let w = Witness::start("w.vouch.test", &toml);
    assert_eq!(w.add_checkpoint(&log.request(0, 1)).0, 200);
    // Many clients race, each believing the witness is at some size and
    // pushing some larger one; whatever wins, the state only moves forward.
    let accepted: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..48u64)
            .map(|i| {
                let (w, log) = (&w, &log);
                s.spawn(move || {
                    let mut wins = Vec::new();
                    let mut old = 1 + (i % 8);
                    for step in 0..6u64 {
                        let new = (old + 1 + (i + step) % 5).min(64);
                        let (status, _, body) = w.add_checkpoint(&log.request(old, new));
                        match status {
                            200 => {
                                wins.push(new);
                                old = new;
                            }
                            409 => old = String::from_utf8_lossy(&body).trim().parse().unwrap(),
                            s => panic!("unexpected status {s}"),
                        }
                        if old >= 64 {
                            break;
                        }
                    }
                    wins
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(!accepted.is_empty());
    let max = *accepted.iter().max().unwrap();
    // The witness's state is exactly the largest size it ever cosigned.
    let (s, _, b) = w.add_checkpoint(&log.request(0, 64));
    assert_eq!(
        (
            s,
            String::from_utf8_lossy(&b).trim().parse::<u64>().unwrap()
        ),
        (409, max)
    );
}

/// Racing clients while the witness is SIGKILLed mid-request, round after
/// round (VOUCH_CRASH_ROUNDS, default 5): every cosignature it returned is
/// for a size at or below the one it holds after the restart (it persists
/// before it answers), and what it holds is whole, signed by the log and by
/// it, over the log's root at that size.
#[test]
fn sigkill_mid_request_under_racing_clients_loses_no_cosignature() {
    let log = HandLog::new(5, 4000);
    let toml = format!(
        "[[log]]\norigin = \"hand.vouch.test/log\"\nvkeys = [\"{}\"]\n",
        log.signer.verifier().vkey()
    );
    let mut w = Witness::start("w.vouch.test", &toml);
    let wv = vouch_spec::cosignature::CosignatureVerifier::from_vkey(&w.vkey).unwrap();
    let lv = log.signer.verifier();
    let rounds: u64 = std::env::var("VOUCH_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let (mut acked_max, mut held) = (0u64, 0u64);
    let mut cosigned_total = 0;
    for round in 0..rounds {
        let stop = std::sync::atomic::AtomicBool::new(false);
        let pid = w.child.id().to_string();
        let wr = &w;
        let acked: Vec<u64> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..16u64)
                .map(|i| {
                    let (w, log, stop, wv) = (wr, &log, &stop, &wv);
                    s.spawn(move || {
                        let mut wins = Vec::new();
                        let mut old = held;
                        let mut step = i;
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            step += 1;
                            let new = (old + 1 + step % 7).min(4000);
                            match w.try_add_checkpoint(&log.request(old, new)) {
                                Ok((200, _, b)) => {
                                    let sigs = parse_response(&b).unwrap();
                                    let text = Checkpoint::new(
                                        "hand.vouch.test/log",
                                        new,
                                        log.tree.root_at(new).unwrap(),
                                    )
                                    .to_text();
                                    assert!(sigs.iter().any(|s| wv
                                        .verify_timestamp(text.as_bytes(), &s.sig)
                                        .is_some()));
                                    wins.push(new);
                                    old = new;
                                }
                                Ok((409, _, b)) => {
                                    old = String::from_utf8_lossy(&b).trim().parse().unwrap()
                                }
                                Ok((s, _, b)) => {
                                    panic!("status {s}: {}", String::from_utf8_lossy(&b))
                                }
                                // Killed: the request may or may not have landed.
                                Err(_) => std::thread::sleep(Duration::from_millis(5)),
                            }
                        }
                        wins
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(20 + (round * 37) % 120));
            let killed = std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status()
                .unwrap();
            assert!(killed.success());
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        w.kill();
        cosigned_total += acked.len();
        acked_max = acked_max.max(acked.iter().copied().max().unwrap_or(0));
        w.restart();
        let stored = w
            .cosigned("hand.vouch.test/log")
            .expect("state after restart");
        let opened = vouch_spec::note::open(&stored, &[&lv, &wv]).expect("whole and signed");
        assert_eq!(opened.verified.len(), 2);
        let cp = Checkpoint::parse(&opened.note.text).unwrap();
        assert_eq!(cp.root, log.tree.root_at(cp.size).unwrap());
        assert!(
            cp.size >= acked_max,
            "round {round}: the witness holds {} after SIGKILL but had cosigned {acked_max}",
            cp.size
        );
        assert!(
            cp.size >= held,
            "round {round}: rolled back from {held} to {}",
            cp.size
        );
        held = cp.size;
    }
    assert!(cosigned_total > 0, "no request was ever cosigned");
    eprintln!("{rounds} rounds, {cosigned_total} cosignatures, final size {held}");
}
