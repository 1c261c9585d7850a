//! Mirrors (C2SP tlog-mirror, `spec/PROTOCOL.md` §6.5): `vouch-witness
//! mirror` follows a growing `vouch-log`, serves a copy that Go's
//! reference `sumdb/tlog` verifies, and with the log stopped real Nix
//! substitutes through `vouch substituter --bundles` reading the
//! checkpoint (cosigned by the mirror, which the client's policy requires)
//! and tiles from the mirror. A forked upstream is refused and the mirror
//! keeps serving the history it had; bad `add-entries` requests get the
//! statuses the spec gives, and a SIGKILLed mirror resumes where it was.

use std::io::Write;

use vouch_spec::attestation::Attestation;
use vouch_spec::merkle::MemoryTree;
use vouch_spec::mirror::{encode_package, packages, MirrorInfo, UploadHeader};
use vouch_spec::note::{Ed25519Signer, Note, NoteVerifier};
use vouch_tests::nixtool::{copy_from, narinfo, signed_hello};
use vouch_tests::{
    attestation, builder, static_server, temp_dir, wait_until, Log, Witness, ORIGIN,
};

fn origin_hash(origin: &str) -> String {
    vouch_spec::hex::encode(&vouch_spec::hash::sha256(origin.as_bytes()))
}

/// GET under the mirror's copy of `origin`.
fn mirror_get(m: &Witness, origin: &str, path: &str) -> (u16, Vec<u8>) {
    vouch_tests::response(ureq::get(&format!("{}/{}/{path}", m.url, origin_hash(origin))).call())
}

fn mirrored_size(m: &Witness, origin: &str) -> Option<u64> {
    let (s, b) = mirror_get(m, origin, "checkpoint");
    (s == 200)
        .then(|| vouch_tests::checkpoint_size(&b))
        .flatten()
}

/// POST add-entries; returns (status, body).
fn add_entries(m: &Witness, body: &[u8], gzip: bool) -> (u16, Vec<u8>) {
    let req = ureq::post(&format!("{}/add-entries", m.url))
        .set("Content-Type", "application/octet-stream")
        .set("Connection", "close");
    if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(body).unwrap();
        let z = enc.finish().unwrap();
        vouch_tests::response(req.set("Content-Encoding", "gzip").send_bytes(&z))
    } else {
        vouch_tests::response(req.send_bytes(body))
    }
}

fn metric(m: &Witness, name: &str) -> u64 {
    let (_, b) = vouch_tests::response(ureq::get(&format!("{}/metrics", m.url)).call());
    String::from_utf8_lossy(&b)
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn a_mirror_follows_a_growing_log_and_nix_substitutes_through_it_with_the_log_stopped() {
    let dir = temp_dir("mirror");
    let cache = dir.join("cache");
    let keys = [builder(51), builder(52)];
    let (home, hello) = signed_hello(&dir, "mirror", &keys, &cache);

    let mut log = Log::start(&format!(
        "[publish]\nproofs = \"file://{}\"\n",
        cache.display()
    ));
    let mirror = Witness::start_mirror(
        "mirror.vouch.test/m1",
        &format!(
            "[[log]]\norigin = \"{ORIGIN}\"\nvkeys = [\"{}\"]\nurl = \"{}\"\n",
            log.vkey, log.url
        ),
    );
    for k in &keys {
        let a = Attestation::from_narinfo(&narinfo(&cache, &hello), &k.public()).unwrap();
        assert_eq!(log.submit(&a.encode(), true).0, 200);
    }
    wait_until("the mirror has both entries", 60, || {
        mirrored_size(&mirror, ORIGIN).is_some_and(|s| s >= 2)
    });
    // The log grows past several bundles and a partial one; the mirror
    // follows.
    for chunk in 0..4u64 {
        let body: Vec<u8> = (0..250)
            .flat_map(|i| attestation(&builder(53), chunk * 250 + i, 0).encode())
            .collect();
        assert_eq!(log.submit(&body, true).0, 200);
    }
    let size = 1002;
    wait_until("the mirror follows the log to 1002", 60, || {
        mirrored_size(&mirror, ORIGIN) == Some(size)
    });
    assert!(metric(&mirror, "vouch_mirror_entries_total") >= size);

    // Its checkpoint is the log's, signed by the log, cosigned by the
    // mirror (tlog-cosignature over the same text).
    let (_, cp) = mirror_get(&mirror, ORIGIN, "checkpoint");
    let note = Note::parse(&cp).unwrap();
    let log_verifier = vouch_spec::note::Ed25519Verifier::from_vkey(&log.vkey).unwrap();
    let cosigner = vouch_spec::cosignature::CosignatureVerifier::from_vkey(&mirror.vkey).unwrap();
    let opened = vouch_spec::note::open(
        &cp,
        &[
            &log_verifier as &dyn NoteVerifier,
            &cosigner as &dyn NoteVerifier,
        ],
    )
    .unwrap();
    assert!(opened.signed_by(0).is_some() && opened.signed_by(1).is_some());
    let (_, log_cp) = log.get("/checkpoint");
    assert_eq!(Note::parse(&log_cp).unwrap().text, note.text);
    // Every tile and bundle, checked by Go against the checkpoint.
    let copy = vouch_tests::mirror_tiles(|p| mirror_get(&mirror, ORIGIN, p), size, &cp);
    vouch_tests::go_verify_log(&copy, &log.vkey, size);
    // The same bytes as the log serves.
    for t in vouch_spec::tile::Tile::all_for_size(size) {
        assert_eq!(
            mirror_get(&mirror, ORIGIN, &t.path()),
            log.get(&format!("/{}", t.path())),
            "{}",
            t.path()
        );
    }
    // Beyond the mirrored tree: 404 with a reason.
    let (s, why) = mirror_get(&mirror, ORIGIN, "tile/0/004");
    assert_eq!(s, 404, "{}", String::from_utf8_lossy(&why));

    // The log stops. The client reads checkpoint and tiles from the
    // mirror, requires the mirror's cosignature, and takes the proofs
    // from beside the narinfos.
    log.kill();
    let (_up, upstream) = static_server(&cache);
    std::fs::write(
        dir.join("policy"),
        format!("log {}\nwitness m1 {}\nquorum m1\n", log.vkey, mirror.vkey),
    )
    .unwrap();
    let trusted: Vec<String> = keys.iter().map(|k| format!("\"{}\"", k.public())).collect();
    let config = dir.join("client.toml");
    std::fs::write(
        &config,
        format!(
            "log_url = \"{}/{}\"\npolicy_file = \"{}\"\ntrusted_builders = [{}]\nrequired_builders = 2\nstate_dir = \"{}\"\n",
            mirror.url,
            origin_hash(ORIGIN),
            dir.join("policy").display(),
            trusted.join(", "),
            dir.join("state").display()
        ),
    )
    .unwrap();
    let (_sub, sub) = vouch_tests::substituter(&config, &upstream, &["--bundles"]);
    let tpk = keys
        .iter()
        .map(|k| k.public().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let (ok, out) = copy_from(&home, &sub, &dir.join("store"), &hello, &tpk);
    assert!(ok, "nix copy through the mirror failed:\n{out}");
    let kept = std::fs::read_dir(dir.join("state"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .any(|b| vouch_tests::checkpoint_size(&b) == Some(size));
    assert!(kept, "the client keeps the mirror's size-{size} checkpoint");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `n` distinct entries.
fn entries(tag: &str, n: u64) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{tag} entry {i}").into_bytes())
        .collect()
}

/// An `add-entries` body for `[start, end)` of `log`, with proofs in the
/// tree of `end`.
fn upload_body(origin: &str, log: &[Vec<u8>], start: u64, end: u64) -> Vec<u8> {
    upload_prefix(origin, log, start, end, usize::MAX)
}

/// The first `take` packages of that body.
fn upload_prefix(origin: &str, log: &[Vec<u8>], start: u64, end: u64, take: usize) -> Vec<u8> {
    let tree =
        MemoryTree::from_leaves(log[..end as usize].iter().map(|e| vouch_spec::leaf_hash(e)));
    let mut body = UploadHeader {
        origin: origin.into(),
        start,
        end,
        ticket: vec![],
    }
    .encode();
    for span in packages(start, end).take(take) {
        let proof = vouch_spec::subtree::prove(span.subtree_start, span.end, end, &tree)
            .unwrap()
            .unwrap();
        encode_package(
            &mut body,
            &log[span.start as usize..span.end as usize],
            &proof,
        );
    }
    body
}

#[test]
fn a_mirror_refuses_a_fork_and_bad_uploads_and_resumes_after_sigkill() {
    let dir = temp_dir("mirror-fork");
    let signer = Ed25519Signer::from_seed("fork.vouch.test/log", &[61; 32]).unwrap();
    let origin = "fork.vouch.test/log";
    let vkey = signer.verifier().vkey();
    let site = dir.join("site");
    let honest = entries("honest", 700);
    vouch_tests::static_log::write(&site, &signer, &honest[..300]);
    let (_srv, url) = static_server(&site);
    let mut mirror = Witness::start_mirror(
        "mirror.vouch.test/m2",
        &format!("[[log]]\norigin = \"{origin}\"\nvkeys = [\"{vkey}\"]\nurl = \"{url}\"\n"),
    );
    wait_until("the mirror copies 300 entries", 60, || {
        mirrored_size(&mirror, origin) == Some(300)
    });
    let (_, at300) = mirror_get(&mirror, origin, "checkpoint");

    // SIGKILL and restart: the same checkpoint, then it follows on.
    mirror.restart();
    assert_eq!(mirror_get(&mirror, origin, "checkpoint").1, at300);
    vouch_tests::static_log::write(&site, &signer, &honest[..500]);
    wait_until("the restarted mirror follows to 500", 60, || {
        mirrored_size(&mirror, origin) == Some(500)
    });
    let (_, at500) = mirror_get(&mirror, origin, "checkpoint");

    // The log forks: a history of 700 entries that does not extend the
    // 500 it signed. The mirror refuses it and keeps serving its copy.
    let mut forked = honest.clone();
    forked[10] = b"a rewritten entry".to_vec();
    vouch_tests::static_log::write(&site, &signer, &forked);
    wait_until("the mirror reports the fork", 60, || {
        metric(
            &mirror,
            "vouch_mirror_refused_total{origin=\"fork.vouch.test/log\",reason=\"inconsistent\"}",
        ) >= 1
    });
    assert_eq!(mirror_get(&mirror, origin, "checkpoint").1, at500);
    let (s, _) = mirror_get(&mirror, origin, "tile/entries/000.p/10");
    assert_eq!(s, 200);
    let copy = vouch_tests::mirror_tiles(|p| mirror_get(&mirror, origin, p), 500, &at500);
    vouch_tests::go_verify_log(&copy, &vkey, 500);

    // Pushed uploads. The honest log moves on to 700; a client pushes the
    // checkpoint (the witness's add-checkpoint) and then entries.
    let honest_tree = MemoryTree::from_leaves(honest.iter().map(|e| vouch_spec::leaf_hash(e)));
    let cp700 = Note::sign(
        &vouch_spec::checkpoint::Checkpoint::new(origin, 700, honest_tree.root()).to_text(),
        &[&signer],
    )
    .unwrap()
    .to_bytes();
    let proof = vouch_spec::consistency::prove(500, 700, &honest_tree).unwrap();
    let add_cp = vouch_spec::witness::AddCheckpoint {
        old_size: 500,
        proof,
        checkpoint: cp700.clone(),
    };
    let (s, _, b) = mirror.add_checkpoint(&add_cp.encode());
    assert_eq!(
        (s, b.as_slice()),
        (200, &b""[..]),
        "accepted, not cosigned yet"
    );

    // A tampered entry: 422, nothing stored.
    let mut tampered = honest.clone();
    tampered[505] = b"tampered".to_vec();
    let mut body = UploadHeader {
        origin: origin.into(),
        start: 500,
        end: 700,
        ticket: vec![],
    }
    .encode();
    let good_tree = &honest_tree;
    for span in packages(500, 700) {
        let p = vouch_spec::subtree::prove(span.subtree_start, span.end, 700, good_tree)
            .unwrap()
            .unwrap();
        encode_package(
            &mut body,
            &tampered[span.start as usize..span.end as usize],
            &p,
        );
    }
    let (s, why) = add_entries(&mirror, &body, false);
    assert_eq!(s, 422, "{}", String::from_utf8_lossy(&why));
    // Unknown origin: 404. A start past the next entry: 409 with the
    // mirror's position. An end that is no checkpoint: 409. Garbage: 400.
    let (s, _) = add_entries(
        &mirror,
        &upload_body("nobody.example/log", &honest, 500, 700),
        false,
    );
    assert_eq!(s, 404);
    let (s, info) = add_entries(&mirror, &upload_body(origin, &honest, 600, 700), false);
    assert_eq!(s, 409);
    assert_eq!(
        MirrorInfo::parse(&info),
        Some(MirrorInfo {
            size: 700,
            next: 500,
            ticket: vec![]
        })
    );
    let (s, _) = add_entries(&mirror, &upload_body(origin, &honest, 500, 650), false);
    assert_eq!(s, 409);
    let (s, _) = add_entries(&mirror, b"\x00\x05abc", false);
    assert_eq!(s, 400);
    assert_eq!(mirror_get(&mirror, origin, "checkpoint").1, at500);

    // A prefix of the packages: 202 and the next entry; the rest, gzipped:
    // 200 with the mirror's cosignature on the 700 checkpoint.
    let first = upload_prefix(origin, &honest, 500, 700, 1);
    let (s, info) = add_entries(&mirror, &first, false);
    assert_eq!(s, 202, "{}", String::from_utf8_lossy(&info));
    assert_eq!(MirrorInfo::parse(&info).map(|i| i.next), Some(512));
    let (s, sigs) = add_entries(&mirror, &upload_body(origin, &honest, 512, 700), true);
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&sigs));
    let cosigner = vouch_spec::cosignature::CosignatureVerifier::from_vkey(&mirror.vkey).unwrap();
    let line = String::from_utf8(sigs).unwrap();
    let sig = vouch_spec::note::Signature::parse_line(line.trim_end(), 1).unwrap();
    let text = Note::parse(&cp700).unwrap().text;
    assert!(
        cosigner.verify(text.as_bytes(), &sig.sig),
        "the mirror's cosignature"
    );
    let (_, served) = mirror_get(&mirror, origin, "checkpoint");
    assert_eq!(vouch_tests::checkpoint_size(&served), Some(700));
    let copy = vouch_tests::mirror_tiles(|p| mirror_get(&mirror, origin, p), 700, &served);
    vouch_tests::go_verify_log(&copy, &vkey, 700);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The mirror's submission endpoints are rate-limited per client like the
/// witness's: a client over its burst gets 429 with `Retry-After`, before
/// the mirror reads its body, and its reads are not limited.
#[test]
fn a_mirror_rate_limits_uploads_per_client() {
    let mirror = Witness::start_mirror(
        "mirror.vouch.test/m3",
        &format!(
            "rate_limit_per_second = 0.001\nrate_limit_burst = 2.0\n[[log]]\norigin = \"{ORIGIN}\"\nvkeys = [\"{}\"]\n",
            Ed25519Signer::from_seed(ORIGIN, &[5; 32]).unwrap().verifier().vkey()
        ),
    );
    // Two bad uploads within the burst are read and refused for what they
    // are; the third is refused for the rate.
    for _ in 0..2 {
        let (s, _) = add_entries(&mirror, b"not an upload", false);
        assert_eq!(s, 400);
    }
    let r = ureq::post(&format!("{}/add-entries", mirror.url))
        .set("Connection", "close")
        .send_bytes(b"not an upload");
    let Err(ureq::Error::Status(429, resp)) = r else {
        panic!("want 429, got {r:?}");
    };
    assert_eq!(resp.header("Retry-After"), Some("1"));
    let (s, _) = vouch_tests::response(
        ureq::post(&format!("{}/add-checkpoint", mirror.url)).send_bytes(b"x"),
    );
    assert_eq!(s, 429, "add-checkpoint shares the client's budget");
    assert!(metric(&mirror, "vouch_mirror_entries_total") == 0);
}
