//! A lying log: a proxy between the client library and a real `vouch-log`
//! that tampers with what it serves. The verifier must refuse every case and
//! say why, both when it proves inclusion from the tlog-proofs in lookup
//! answers and when it proves it from the log's tiles.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use vouch::verifier::{ClientConfig, Rejection, Verifier};
use vouch_spec::cosignature::CosignatureSigner;
use vouch_spec::note::Note;
use vouch_spec::tlog_proof::TlogProof;
use vouch_tests::{attestation, builder, narinfo_for, temp_dir, Log};

#[derive(Clone, Debug, PartialEq)]
enum Lie {
    Honest,
    /// Serve this checkpoint instead of the real one (at `/checkpoint` and
    /// inside the tlog-proofs of lookup answers).
    Checkpoint(Vec<u8>),
    /// Flip a byte in every hash tile and in the first hash of every proof
    /// in lookup answers.
    TileBitFlip,
    /// Swap a byte in every entry returned by lookup.
    EntryBytes,
}

struct Proxy {
    url: String,
    lie: Arc<Mutex<Lie>>,
}

fn proxy(upstream: String) -> Proxy {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let lie = Arc::new(Mutex::new(Lie::Honest));
    let lie2 = lie.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let (upstream, lie) = (upstream.clone(), lie2.clone());
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    return;
                }
                let path = line.split(' ').nth(1).unwrap_or("/").to_string();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                        break;
                    }
                }
                let (status, mut body) = match ureq::get(&format!("{upstream}{path}")).call() {
                    Ok(resp) => {
                        let mut b = Vec::new();
                        resp.into_reader().read_to_end(&mut b).unwrap();
                        (200, b)
                    }
                    Err(ureq::Error::Status(s, resp)) => {
                        (s, resp.into_string().unwrap_or_default().into_bytes())
                    }
                    Err(_) => (502, Vec::new()),
                };
                match (&*lie.lock().unwrap(), path.as_str()) {
                    (Lie::Checkpoint(cp), "/checkpoint") => body = cp.clone(),
                    (Lie::Checkpoint(cp), p) if p.starts_with("/vouch/v1/lookup/") => {
                        body = edit_proofs(&body, |t| t.checkpoint = cp.clone())
                    }
                    (Lie::TileBitFlip, p) if p.starts_with("/vouch/v1/lookup/") => {
                        body = edit_proofs(&body, |t| {
                            if let Some(h) = t.proof.first_mut() {
                                h.0[0] ^= 1
                            }
                        })
                    }
                    (Lie::TileBitFlip, p)
                        if p.starts_with("/tile/")
                            && !p.starts_with("/tile/entries/")
                            && !body.is_empty() =>
                    {
                        body[0] ^= 1
                    }
                    (Lie::EntryBytes, p) if p.starts_with("/vouch/v1/lookup/") => {
                        let s = String::from_utf8(body)
                            .unwrap()
                            .replace("nar-size 10", "nar-size 20");
                        body = s.into_bytes();
                    }
                    _ => {}
                }
                let mut c = conn;
                let _ = write!(
                    c,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = c.write_all(&body);
            });
        }
    });
    Proxy { url, lie }
}

/// Applies `f` to every tlog-proof in a lookup answer.
fn edit_proofs(body: &[u8], f: impl Fn(&mut TlogProof)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(body).unwrap();
    for e in v["entries"].as_array_mut().unwrap() {
        if let Some(text) = e["proof"].as_str() {
            let mut t = TlogProof::parse(text.as_bytes()).unwrap();
            f(&mut t);
            e["proof"] = String::from_utf8(t.encode()).unwrap().into();
        }
    }
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn the_verifier_refuses_every_lie_from_lookup_proofs() {
    refuses_every_lie(true);
}

#[test]
fn the_verifier_refuses_every_lie_from_tiles() {
    refuses_every_lie(false);
}

fn refuses_every_lie(lookup_proofs: bool) {
    let log = Log::start("");
    let body: Vec<u8> = (0..300)
        .flat_map(|i| {
            [
                attestation(&builder(1), i, 0).encode(),
                attestation(&builder(2), i, 0).encode(),
            ]
        })
        .flatten()
        .collect();
    assert_eq!(log.submit(&body, false).0, 200);
    let old_cp = log.get("/checkpoint").1;
    assert_eq!(
        log.submit(&attestation(&builder(1), 999, 0).encode(), false)
            .0,
        200
    );
    let p = proxy(log.url.clone());
    let dir = temp_dir("lying");
    let w = CosignatureSigner::from_seed("w.vouch.test", &[7; 32]).unwrap();
    std::fs::write(
        dir.join("policy"),
        format!("log {}\nquorum none\n", log.vkey),
    )
    .unwrap();
    std::fs::write(
        dir.join("policy-w"),
        format!(
            "log {}\nwitness w {}\nquorum w\n",
            log.vkey,
            w.verifier().vkey()
        ),
    )
    .unwrap();
    let cfg = |policy: &str, state: &str| ClientConfig {
        log_url: p.url.clone(),
        policy_file: dir.join(policy),
        trusted_builders: vec![
            builder(1).public().to_string(),
            builder(2).public().to_string(),
        ],
        required_builders: 2,
        reject_disagreement: true,
        max_checkpoint_age_secs: 3600,
        state_dir: dir.join(state),
        lookup_proofs,
    };
    let v = Verifier::new(cfg("policy", "state")).unwrap();
    let set = |l: Lie| *p.lie.lock().unwrap() = l;
    // Honest: accepted (and the client now remembers size 601).
    v.check_narinfo(&narinfo_for(10)).unwrap();

    // Rollback to an older (consistent) checkpoint.
    set(Lie::Checkpoint(old_cp.clone()));
    let e = v.check_narinfo(&narinfo_for(10)).unwrap_err();
    assert!(
        matches!(
            e,
            Rejection::Rollback {
                seen: 601,
                served: 600,
                ..
            }
        ),
        "{e}"
    );

    // Entry bytes swapped in the lookup: its inclusion proof fails.
    set(Lie::EntryBytes);
    let e = v.check_narinfo(&narinfo_for(10)).unwrap_err();
    assert!(matches!(e, Rejection::BadEntry { .. }), "{e}");

    // A hash tile altered: the proof built from it does not reach the root.
    set(Lie::TileBitFlip);
    let e = v.check_narinfo(&narinfo_for(10)).unwrap_err();
    assert!(matches!(e, Rejection::BadEntry { .. }), "{e}");

    // A checkpoint with a forged log signature.
    let mut forged = Note::parse(&log.get("/checkpoint").1).unwrap();
    forged.sigs[0].sig[10] ^= 1;
    set(Lie::Checkpoint(forged.to_bytes()));
    let e = v.check_narinfo(&narinfo_for(10)).unwrap_err();
    assert!(matches!(e, Rejection::Checkpoint { .. }), "{e}");

    // Witness cosignatures: unknown one (no quorum), forged known one, stale one.
    let vw = Verifier::new(cfg("policy-w", "state-w")).unwrap();
    let real = log.get("/checkpoint").1;
    let note = Note::parse(&real).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let stranger = CosignatureSigner::from_seed("w.vouch.test", &[8; 32]).unwrap();
    let with = |s: vouch_spec::note::Signature| {
        let mut n = note.clone();
        n.sigs.push(s);
        n.to_bytes()
    };
    set(Lie::Checkpoint(with(
        stranger.cosign(&note.text, now).unwrap(),
    )));
    let e = vw.check_narinfo(&narinfo_for(10)).unwrap_err();
    assert!(e.to_string().contains("witness quorum not met"), "{e}");
    let mut bad = w.cosign(&note.text, now).unwrap();
    bad.sig[20] ^= 1;
    set(Lie::Checkpoint(with(bad)));
    let e = vw.check_narinfo(&narinfo_for(10)).unwrap_err();
    assert!(e.to_string().contains("does not verify"), "{e}");
    set(Lie::Checkpoint(with(
        w.cosign(&note.text, now - 7200).unwrap(),
    )));
    let e = vw.check_narinfo(&narinfo_for(10)).unwrap_err();
    assert!(matches!(e, Rejection::Stale { .. }), "{e}");
    set(Lie::Checkpoint(with(w.cosign(&note.text, now).unwrap())));
    vw.check_narinfo(&narinfo_for(10)).unwrap();

    // A proof bundle for another entry (offline).
    set(Lie::Honest);
    let b = |i: u64| {
        vouch_spec::tlog_proof::TlogProof::parse(&log.get(&format!("/vouch/v1/bundle/{i}")).1)
            .unwrap()
    };
    v.check_narinfo_offline(&narinfo_for(10), &[b(20), b(21)])
        .unwrap();
    let e = v
        .check_narinfo_offline(&narinfo_for(10), &[b(20), b(23)])
        .unwrap_err();
    assert!(matches!(e, Rejection::BadEntry { .. }), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
