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
