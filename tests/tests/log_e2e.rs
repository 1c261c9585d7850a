//! The real `vouch-log` binary on loopback: thousands of attestations from
//! concurrent clients, the whole tree verified from outside through the tile
//! API alone, a restart (graceful and SIGKILL) and the same checks again,
//! exact duplicate detection, lookups and the proof APIs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use vouch_spec::attestation::Entry;
use vouch_spec::checkpoint::{open_checkpoint, Checkpoint};
use vouch_spec::merkle::{MemoryTree, NodeId, NodeSource};
use vouch_spec::note::Ed25519Verifier;
use vouch_spec::tile::{decode_hashes, Tile, TileKind, TILE_HEIGHT};
use vouch_spec::tlog_proof::TlogProof;
use vouch_spec::{bundle, consistency, inclusion, leaf_hash, Hash};
use vouch_tests::{attestation, builder, Log};

/// Verifies the whole log from outside: the checkpoint, every tile and
/// bundle byte for byte against a tree rebuilt from the entries, and every
/// entry's signature. Returns the checkpoint and the entries.
fn verify_from_outside(log: &Log) -> (Checkpoint, Vec<Vec<u8>>) {
    let v = Ed25519Verifier::from_vkey(&log.vkey).unwrap();
    let (status, cp) = log.get("/checkpoint");
    assert_eq!(status, 200);
    let cp = open_checkpoint(&cp, &[&v])
        .expect("checkpoint verifies with the log's vkey")
        .checkpoint;
    assert_eq!(cp.origin, vouch_tests::ORIGIN);
    let size = cp.size;
    let mut entries = Vec::new();
    for t in Tile::all_for_size(size)
        .into_iter()
        .filter(|t| t.kind == TileKind::Hash { level: 0 })
    {
        let b = Tile {
            kind: TileKind::Entries,
            ..t
        };
        let (status, data) = log.get(&format!("/{}", b.path()));
        assert_eq!(status, 200, "{}", b.path());
        for e in bundle::decode_width(&data, usize::from(b.width)).unwrap() {
            entries.push(e.to_vec());
        }
    }
    assert_eq!(entries.len() as u64, size);
    let tree = MemoryTree::from_leaves(entries.iter().map(|e| leaf_hash(e)));
    assert_eq!(
        tree.root(),
        cp.root,
        "root recomputed from the entry bundles"
    );
    for t in Tile::all_for_size(size) {
        let (status, data) = log.get(&format!("/{}", t.path()));
        assert_eq!(status, 200, "{}", t.path());
        let TileKind::Hash { level } = t.kind else {
            unreachable!()
        };
        let got = decode_hashes(&t, &data).unwrap();
        let want: Vec<Hash> = t
            .span()
            .map(|i| tree.node(NodeId::new(level * TILE_HEIGHT, i)).unwrap())
            .collect();
        assert_eq!(got, want, "tile {}", t.path());
    }
    for e in &entries {
        Entry::decode(e)
            .expect("canonical entry")
            .verify(None)
            .expect("valid builder signature");
    }
    (cp, entries)
}

#[test]
fn concurrent_submissions_verify_from_outside_and_survive_restarts() {
    const CLIENTS: u64 = 8;
    const PER_CLIENT: u64 = 400;
    const BATCH: u64 = 50;
    let mut log = Log::start("batch_max_wait_ms = 5");
    let acked: Arc<Mutex<BTreeMap<Hash, u64>>> = Arc::default();
    std::thread::scope(|s| {
        for c in 0..CLIENTS {
            let (log, acked) = (&log, acked.clone());
            s.spawn(move || {
                let key = builder(1 + (c % 3) as u8);
                for chunk in 0..PER_CLIENT / BATCH {
                    let mut body = Vec::new();
                    let mut leaves = Vec::new();
                    for j in 0..BATCH {
                        let i = c * PER_CLIENT + chunk * BATCH + j;
                        let a = attestation(&key, i, 0);
                        leaves.push(a.to_entry().leaf_hash());
                        body.extend(a.encode());
                    }
                    let (status, resp) = log.submit(&body, false);
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
                    let v: Value = serde_json::from_slice(&resp).unwrap();
                    let results = v["entries"].as_array().unwrap();
                    assert_eq!(results.len(), leaves.len());
                    let mut a = acked.lock().unwrap();
                    for (r, l) in results.iter().zip(leaves) {
                        assert_eq!(r["leaf_hash"].as_str().unwrap(), l.to_base64());
                        assert!(!r["duplicate"].as_bool().unwrap());
                        assert!(a.insert(l, r["index"].as_u64().unwrap()).is_none());
                    }
                }
            });
        }
    });
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len() as u64, CLIENTS * PER_CLIENT);
    let check_acked = |entries: &[Vec<u8>]| {
        for (leaf, index) in &acked {
            assert_eq!(
                leaf_hash(&entries[*index as usize]),
                *leaf,
                "acknowledged entry at index {index}"
            );
        }
    };
    let (cp1, entries) = verify_from_outside(&log);
    assert_eq!(cp1.size, CLIENTS * PER_CLIENT);
    check_acked(&entries);

    // Duplicates, in a new request and inside one request, return the same index.
    let a = attestation(&builder(1), 5, 0);
    let mut body = a.encode();
    body.extend(a.encode());
    let (status, resp) = log.submit(&body, false);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&resp).unwrap();
    for r in v["entries"].as_array().unwrap() {
        assert_eq!(
            r["index"].as_u64(),
            acked.get(&a.to_entry().leaf_hash()).copied()
        );
        assert!(r["duplicate"].as_bool().unwrap());
    }

    // A disagreeing attestation by another builder, with wait=1: a verifiable tlog-proof.
    let other = attestation(&builder(9), 5, 1);
    let (status, resp) = log.submit(&other.encode(), true);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let v: Value = serde_json::from_slice(&resp).unwrap();
    let r = &v["entries"][0];
    let index = r["index"].as_u64().unwrap();
    assert_eq!(index, cp1.size);
    let proof = TlogProof::parse(r["proof"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(proof.index, index);
    assert_eq!(
        proof.extra.as_deref(),
        Some(other.to_entry().encode().as_slice())
    );
    let policy =
        vouch_spec::policy::Policy::parse(format!("log {}\nquorum none\n", log.vkey).as_bytes())
            .unwrap();
    proof
        .verify(&other.to_entry().leaf_hash(), &policy)
        .unwrap();

    // Lookup finds both attestations of path 5, in index order.
    let hp = vouch_tests::store_path(5).hash_part().to_string();
    let (status, resp) = log.get(&format!("/vouch/v1/lookup/{hp}"));
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&resp).unwrap();
    let found: Vec<u64> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(found, vec![acked[&a.to_entry().leaf_hash()], index]);

    // With proof=1 each entry carries a tlog-proof that verifies offline.
    let (status, resp) = log.get(&format!("/vouch/v1/lookup/{hp}?proof=1"));
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&resp).unwrap();
    for e in v["entries"].as_array().unwrap() {
        let p = TlogProof::parse(e["proof"].as_str().unwrap().as_bytes()).unwrap();
        let entry = Entry::decode(e["entry"].as_str().unwrap().as_bytes()).unwrap();
        assert_eq!(p.index, e["index"].as_u64().unwrap());
        assert_eq!(p.extra.as_deref(), Some(entry.encode().as_slice()));
        p.verify(&entry.leaf_hash(), &policy).unwrap();
    }
    assert_eq!(log.get(&format!("/vouch/v1/lookup/{hp}?proof=2")).0, 400);
    // The answer is written by hand into a buffer of its size, not by
    // axum's Json: it still says it is JSON.
    let r = ureq::get(&format!("{}/vouch/v1/lookup/{hp}?proof=1", log.url))
        .call()
        .unwrap();
    assert_eq!(r.header("Content-Type"), Some("application/json"));

    // The proof APIs agree with the tiles.
    let (cp2, entries) = verify_from_outside(&log);
    let tree = MemoryTree::from_leaves(entries.iter().map(|e| leaf_hash(e)));
    let (status, resp) = log.get(&format!(
        "/vouch/v1/proof/consistency?old={}&new={}",
        cp1.size, cp2.size
    ));
    assert_eq!(status, 200);
    let p = vouch_tests::proof_hashes(&resp);
    consistency::verify(cp1.size, cp2.size, &p, &cp1.root, &cp2.root).unwrap();
    let (status, resp) = log.get(&format!(
        "/vouch/v1/proof/inclusion?index=1234&size={}",
        cp2.size
    ));
    assert_eq!(status, 200);
    let p = vouch_tests::proof_hashes(&resp);
    inclusion::verify(
        1234,
        cp2.size,
        &tree.node(NodeId::new(0, 1234)).unwrap(),
        &p,
        &cp2.root,
    )
    .unwrap();

    // Graceful restart: same tree, same checkpoint.
    assert!(log.terminate(), "vouch-log exits 0 on SIGTERM");
    log.restart();
    let (cp3, entries) = verify_from_outside(&log);
    assert_eq!(cp3, cp2);
    check_acked(&entries);

    // SIGKILL right after acknowledged submissions: all of them survive.
    let mut more = Vec::new();
    for i in 0..200u64 {
        let a = attestation(&builder(4), 100_000 + i, 0);
        let (status, resp) = log.submit(&a.encode(), false);
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(&resp).unwrap();
        more.push((
            a.to_entry().leaf_hash(),
            v["entries"][0]["index"].as_u64().unwrap(),
        ));
    }
    log.kill();
    log.restart();
    let (cp4, entries) = verify_from_outside(&log);
    assert_eq!(cp4.size, cp3.size + 200);
    for (leaf, index) in &more {
        assert_eq!(leaf_hash(&entries[*index as usize]), *leaf);
    }
    check_acked(&entries);
    // Submitted again after the SIGKILL, an acknowledged entry is found
    // as a duplicate at its index (through its path's list and tile).
    let again = attestation(&builder(4), 100_007, 0);
    assert_eq!(again.to_entry().leaf_hash(), more[7].0);
    let (status, resp) = log.submit(&again.encode(), false);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(v["entries"][0]["duplicate"], true, "{v}");
    assert_eq!(v["entries"][0]["index"].as_u64(), Some(more[7].1));
    // And the log keeps appending consistently after recovery.
    let (status, _) = log.submit(&attestation(&builder(4), 200_000, 0).encode(), false);
    assert_eq!(status, 200);
    let (cp5, _) = verify_from_outside(&log);
    let (status, resp) = log.get(&format!(
        "/vouch/v1/proof/consistency?old={}&new={}",
        cp4.size, cp5.size
    ));
    assert_eq!(status, 200);
    let p = vouch_tests::proof_hashes(&resp);
    consistency::verify(cp4.size, cp5.size, &p, &cp4.root, &cp5.root).unwrap();
}

#[test]
fn entry_bundles_are_gzipped_and_tiles_cacheable() {
    let log = Log::start("");
    let body: Vec<u8> = (0..300)
        .flat_map(|i| attestation(&builder(2), i, 0).encode())
        .collect();
    assert_eq!(log.submit(&body, false).0, 200);
    let r = ureq::get(&format!("{}/tile/entries/000", log.url))
        .set("Accept-Encoding", "gzip")
        .call()
        .unwrap();
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    assert!(r.header("Cache-Control").unwrap().contains("immutable"));
    let mut gz = Vec::new();
    std::io::Read::read_to_end(&mut r.into_reader(), &mut gz).unwrap();
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
    assert_eq!(plain, log.get("/tile/entries/000").1);
    assert_eq!(bundle::decode(&plain).unwrap().len(), 256);
    let r = ureq::get(&format!("{}/checkpoint", log.url))
        .call()
        .unwrap();
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    assert!(r.header("Cache-Control").unwrap().contains("max-age=2"));
    // An older partial bundle is still served as a prefix.
    let (status, p10) = log.get("/tile/entries/001.p/10");
    assert_eq!(status, 200);
    assert_eq!(bundle::decode(&p10).unwrap().len(), 10);
    let (status, _) = log.get("/tile/0/001.p/10");
    assert_eq!(status, 200);
    let m = String::from_utf8(log.get("/metrics").1).unwrap();
    assert!(m.contains("vouch_log_entries 300"), "{m}");
    assert!(
        m.contains("vouch_log_http_requests_total{route=\"/vouch/v1/submit\",status=\"200\"} 1"),
        "{m}"
    );
}

#[test]
fn a_path_with_hundreds_of_references_is_logged_in_digest_form() {
    use vouch_spec::attestation::{Attestation, References};
    use vouch_spec::nix::StorePath;
    let log = Log::start("");
    let refs: Vec<StorePath> = (0..400u64)
        .map(|i| {
            let h = vouch_spec::nix::nix32::encode(
                &vouch_spec::hash::sha256(&(i + 7).to_be_bytes())[..20],
            );
            StorePath::from_base(
                "/nix/store",
                &format!("{h}-{}", "a-long-package-name-".repeat(9)),
            )
            .unwrap()
        })
        .collect();
    let a = Attestation::sign(
        vouch_tests::store_path(77),
        [3; 32],
        4242,
        refs.clone(),
        None,
        &builder(1),
    );
    assert!(a.encode().len() > vouch_spec::attestation::MAX_ENTRY_LEN);
    let (s, b) = log.submit(&a.encode(), true);
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let hp = vouch_tests::store_path(77).hash_part().to_string();
    let v: Value = serde_json::from_slice(&log.get(&format!("/vouch/v1/lookup/{hp}")).1).unwrap();
    let e = Entry::decode(v["entries"][0]["entry"].as_str().unwrap().as_bytes()).unwrap();
    let References::Digest(d) = e.references else {
        panic!("expected the digest form")
    };
    // The log serves the full list; it matches the digest and verifies the signature.
    let (s, list) = log.get(&format!(
        "/vouch/v1/references/{}",
        vouch_spec::hex::encode(&d)
    ));
    assert_eq!(s, 200);
    let listed: Vec<StorePath> = String::from_utf8(list)
        .unwrap()
        .lines()
        .map(|l| StorePath::from_base("/nix/store", l).unwrap())
        .collect();
    assert_eq!(listed.len(), 400);
    e.verify(Some(&listed)).unwrap();
    // And the monitor, which fetches the list itself, finds nothing wrong.
    let state = vouch_tests::temp_dir("digest-monitor").join("monitor");
    let out = std::process::Command::new(vouch_tests::binary("vouch-witness"))
        .args([
            "monitor", "--once", "--log", &log.url, "--vkey", &log.vkey, "--state",
        ])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
