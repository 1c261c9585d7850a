//! Crash safety of `vouch-log`: concurrent submitters, SIGKILL at random
//! moments, restart, repeat; then from outside, through the public API only:
//! every acknowledged entry is at its acknowledged index, every checkpoint
//! ever served is a prefix of the final tree, and no size was ever served
//! with two roots. VOUCH_CRASH_ROUNDS sets the rounds (default 5; the full
//! run uses 50).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use vouch_spec::checkpoint::open_checkpoint;
use vouch_spec::merkle::MemoryTree;
use vouch_spec::note::Ed25519Verifier;
use vouch_spec::tile::{Tile, TileKind};
use vouch_spec::{bundle, leaf_hash, Hash};
use vouch_tests::{attestation, builder, Log};

#[test]
fn acknowledged_entries_and_served_checkpoints_survive_sigkill() {
    let rounds: u64 = std::env::var("VOUCH_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut log = Log::start("batch_max_wait_ms = 2");
    let verifier = Ed25519Verifier::from_vkey(&log.vkey).unwrap();
    let acked: Arc<Mutex<BTreeMap<Hash, u64>>> = Arc::default();
    let served: Arc<Mutex<BTreeMap<u64, Hash>>> = Arc::default();
    let next = Arc::new(AtomicU64::new(0));
    let mut seed = 0x9e3779b97f4a7c15u64;
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let url = log.url.clone();
        let mut handles = Vec::new();
        for c in 0..4u8 {
            let (acked, next, stop, url) = (acked.clone(), next.clone(), stop.clone(), url.clone());
            handles.push(std::thread::spawn(move || {
                let key = builder(1 + c);
                while !stop.load(Ordering::Relaxed) {
                    let start = next.fetch_add(20, Ordering::Relaxed);
                    let atts: Vec<_> = (start..start + 20)
                        .map(|i| attestation(&key, i, 0))
                        .collect();
                    let body: Vec<u8> = atts.iter().flat_map(|a| a.encode()).collect();
                    let r = ureq::post(&format!("{url}/vouch/v1/submit"))
                        .set("Content-Type", "text/plain")
                        .timeout(Duration::from_secs(5))
                        .send_bytes(&body);
                    let Ok(r) = r else { continue };
                    let Some(v) = r
                        .into_string()
                        .ok()
                        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                    else {
                        continue;
                    };
                    let mut a = acked.lock().unwrap();
                    for (res, att) in v["entries"].as_array().unwrap().iter().zip(&atts) {
                        a.insert(att.to_entry().leaf_hash(), res["index"].as_u64().unwrap());
                    }
                }
            }));
        }
        // A reader records every checkpoint served.
        {
            let (served, stop, url, verifier) =
                (served.clone(), stop.clone(), url.clone(), verifier.clone());
            handles.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(r) = ureq::get(&format!("{url}/checkpoint"))
                        .timeout(Duration::from_secs(2))
                        .call()
                    {
                        let mut b = Vec::new();
                        if std::io::Read::read_to_end(&mut r.into_reader(), &mut b).is_ok() {
                            let cp = open_checkpoint(&b, &[&verifier])
                                .expect("every served checkpoint verifies")
                                .checkpoint;
                            let mut s = served.lock().unwrap();
                            if let Some(old) = s.insert(cp.size, cp.root) {
                                assert_eq!(old, cp.root, "two roots served for size {}", cp.size);
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(50 + seed % 350));
        log.kill();
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().unwrap();
        }
        log.restart();
        eprintln!(
            "round {round}: {} acknowledged so far",
            acked.lock().unwrap().len()
        );
    }
    // Verify from outside.
    let (_, cp) = log.get("/checkpoint");
    let head = open_checkpoint(&cp, &[&verifier]).unwrap().checkpoint;
    let mut entries = Vec::new();
    for t in Tile::all_for_size(head.size)
        .into_iter()
        .filter(|t| t.kind == TileKind::Hash { level: 0 })
    {
        let b = Tile {
            kind: TileKind::Entries,
            ..t
        };
        let (s, data) = log.get(&format!("/{}", b.path()));
        assert_eq!(s, 200);
        entries.extend(
            bundle::decode_width(&data, usize::from(b.width))
                .unwrap()
                .into_iter()
                .map(<[u8]>::to_vec),
        );
    }
    let tree = MemoryTree::from_leaves(entries.iter().map(|e| leaf_hash(e)));
    assert_eq!(tree.root(), head.root);
    let acked = acked.lock().unwrap();
    assert!(!acked.is_empty());
    for (leaf, index) in acked.iter() {
        assert_eq!(
            tree.root_at(0)
                .map(|_| leaf_hash(&entries[*index as usize])),
            Some(*leaf),
            "acknowledged entry lost at {index}"
        );
    }
    for (size, root) in served.lock().unwrap().iter() {
        assert_eq!(
            tree.root_at(*size),
            Some(*root),
            "served checkpoint at size {size} is not a prefix of the final tree"
        );
    }
    eprintln!(
        "{} rounds, {} acknowledged entries, {} served sizes, final size {}",
        rounds,
        acked.len(),
        served.lock().unwrap().len(),
        head.size
    );
}

/// The client's stored checkpoint under SIGKILL: `vouch verify` processes
/// are killed at random moments while the log grows and they advance the
/// stored checkpoint. After every kill the stored checkpoint is whole, signed
/// by the log, never smaller than before, consistent with the log, and no
/// fork was ever recorded; an unkilled run then accepts.
#[test]
fn the_clients_stored_checkpoint_survives_sigkill() {
    use std::process::{Command, Stdio};
    use vouch_spec::consistency;
    let log = Log::start("batch_max_wait_ms = 1");
    let verifier = Ed25519Verifier::from_vkey(&log.vkey).unwrap();
    let dir = vouch_tests::temp_dir("client-kill");
    std::fs::write(
        dir.join("policy"),
        format!("log {}\nquorum none\n", log.vkey),
    )
    .unwrap();
    // Two clients with the same policy: `calibrate` (own state) times whole
    // runs on this machine, `client` is the one killed.
    for (name, state) in [("client", "state"), ("calibrate", "calibrate-state")] {
        std::fs::write(
            dir.join(format!("{name}.toml")),
            format!(
                "log_url = {:?}\npolicy_file = {:?}\ntrusted_builders = [{:?}]\nrequired_builders = 1\nstate_dir = {:?}\n",
                log.url,
                dir.join("policy").display().to_string(),
                builder(1).public().to_string(),
                dir.join(state).display().to_string()
            ),
        )
        .unwrap();
    }
    let narinfo = dir.join("x.narinfo");
    std::fs::write(&narinfo, vouch_tests::narinfo_for(0).to_text()).unwrap();
    let stored = || -> Option<Vec<u8>> {
        let rd = std::fs::read_dir(dir.join("state")).ok()?;
        rd.flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "checkpoint"))
            .map(|p| std::fs::read(p).unwrap())
    };
    let spawn = |config: &str| {
        Command::new(vouch_tests::binary("vouch"))
            .args(["verify", "--config"])
            .arg(dir.join(config))
            .arg(&narinfo)
            .env("VOUCH_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut last = 0u64;
    let mut seed = 0x2545f4914f6cdd1du64;
    let mut killed = 0;
    let mut run_us = 0u64;
    for round in 0..40u64 {
        let body: Vec<u8> = (round * 5..round * 5 + 5)
            .flat_map(|i| attestation(&builder(1), i, 0).encode())
            .collect();
        // The first batch waits for its checkpoint, so calibration accepts.
        assert_eq!(log.submit(&body, round == 0).0, 200);
        if round == 0 {
            // How long a whole run takes here: CI machines differ 2-3x, so
            // fixed kill times either kill nothing or everything.
            let mut runs: Vec<u64> = (0..5)
                .map(|_| {
                    let t = std::time::Instant::now();
                    let status = spawn("calibrate.toml").wait().unwrap();
                    assert!(status.success(), "an unkilled client accepts");
                    t.elapsed().as_micros() as u64
                })
                .collect();
            runs.sort_unstable();
            run_us = runs[2].max(1);
        }
        let mut child = spawn("client.toml");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Kills land anywhere in the first two run lengths: about half
        // interrupt the client, the rest let it finish and store.
        std::thread::sleep(Duration::from_micros(seed % (2 * run_us)));
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            !std::fs::read_dir(dir.join("state"))
                .map(|rd| rd
                    .flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "fork")))
                .unwrap_or(false),
            "a killed client recorded a fork"
        );
        let Some(bytes) = stored() else { continue };
        let cp = open_checkpoint(&bytes, &[&verifier])
            .expect("the stored checkpoint is whole and signed by the log")
            .checkpoint;
        assert!(
            cp.size >= last,
            "stored checkpoint went back: {} < {last}",
            cp.size
        );
        last = cp.size;
        let (_, now) = log.get("/checkpoint");
        let now = open_checkpoint(&now, &[&verifier]).unwrap().checkpoint;
        if cp.size > 0 && cp.size < now.size {
            let (_, p) = log.get(&format!(
                "/vouch/v1/proof/consistency?old={}&new={}",
                cp.size, now.size
            ));
            consistency::verify(
                cp.size,
                now.size,
                &vouch_tests::proof_hashes(&p),
                &cp.root,
                &now.root,
            )
            .expect("the stored checkpoint is consistent with the log");
        }
    }
    eprintln!("killed {killed} of 40; a run takes {run_us} µs");
    assert!(
        killed > 5,
        "only {killed} of 40 clients were killed mid-run (a run takes {run_us} µs)"
    );
    assert!(last > 0, "clients stored a checkpoint");
    let out = Command::new(vouch_tests::binary("vouch"))
        .args(["verify", "--config"])
        .arg(dir.join("client.toml"))
        .arg(&narinfo)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ACCEPT"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
