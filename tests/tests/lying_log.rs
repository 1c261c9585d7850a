//! A lying log: a proxy between its readers and a real `vouch-log` that
//! tampers with what it serves. The client library must refuse every case
//! and say why, both when it proves inclusion from the tlog-proofs in lookup
//! answers and when it proves it from the log's tiles; so must a witness
//! pulling through the proxy, and the monitor. A split view (the log's key
//! signing two histories, shown to different parties) is its own case.
//! The substituter with real Nix behind the proxy is in `nix_e2e.rs`.

use vouch::verifier::{ClientConfig, Verifier};
use vouch_spec::accept::Rejection;
use vouch_spec::cosignature::CosignatureSigner;
use vouch_spec::note::Note;
use vouch_tests::lying::{Lie, Proxy};
use vouch_tests::{
    attestation, both_builders, builder, checkpoint_size, client_config, log_keygen, narinfo_for,
    narinfo_of, temp_dir, wait_until, Log, Witness, ORIGIN,
};

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
    assert_eq!(
        log.submit(&vouch_tests::both_builders(300, 0), false).0,
        200
    );
    let old_cp = log.get("/checkpoint").1;
    assert_eq!(
        log.submit(&attestation(&builder(1), 999, 0).encode(), false)
            .0,
        200
    );
    let p = Proxy::start(&log.url);
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
        lookup_proofs,
        ..client_config(&p.url, &dir.join(policy), &dir.join(state))
    };
    let v = Verifier::new(cfg("policy", "state")).unwrap();
    let set = |l: Lie| p.set(l);
    // Honest: accepted (and the client now remembers size 601).
    v.check_narinfo(&narinfo_for(10)).unwrap();

    // Rollback to an older (consistent) checkpoint.
    set(Lie::Checkpoint(old_cp.clone()));
    let e = v.check_narinfo(&narinfo_for(10)).unwrap_err();
    assert!(
        matches!(
            e.rule(),
            Some(Rejection::Rollback {
                seen: 601,
                served: 600,
                ..
            })
        ),
        "{e}"
    );

    // Entry bytes swapped in the lookup: its inclusion proof fails.
    set(Lie::EntryBytes);
    let e = v.check_narinfo(&narinfo_for(10)).unwrap_err();
    assert!(matches!(e.rule(), Some(Rejection::BadEntry { .. })), "{e}");

    // A hash tile altered: the proof built from it does not reach the root.
    set(Lie::TileBitFlip);
    let e = v.check_narinfo(&narinfo_for(10)).unwrap_err();
    assert!(matches!(e.rule(), Some(Rejection::BadEntry { .. })), "{e}");

    // A checkpoint with a forged log signature.
    let mut forged = Note::parse(&log.get("/checkpoint").1).unwrap();
    forged.sigs[0].sig[10] ^= 1;
    set(Lie::Checkpoint(forged.to_bytes()));
    let e = v.check_narinfo(&narinfo_for(10)).unwrap_err();
    assert!(
        matches!(e.rule(), Some(Rejection::Checkpoint { .. })),
        "{e}"
    );

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
    assert!(matches!(e.rule(), Some(Rejection::Stale { .. })), "{e}");
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
    assert!(matches!(e.rule(), Some(Rejection::BadEntry { .. })), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A client of the log behind `url` with the policy file `policy`.
fn client(url: &str, policy: &std::path::Path, state: &std::path::Path) -> Verifier {
    Verifier::new(client_config(url, policy, state)).unwrap()
}

/// A split view: the log's key signs two histories and proxies show clients
/// different ones. The second history attests another NAR for path 10 —
/// what an attacker would show one victim. The witness refuses to cosign
/// it, so a client requiring a witness quorum refuses it; a client that
/// saw the first history and is then shown the second detects the fork even
/// without witnesses; a witness pulling through a proxy never moves to it.
#[test]
fn a_split_view_is_refused_by_witnesses_and_clients() {
    let (dir, vkey) = log_keygen();
    let log_toml = format!("[[log]]\norigin = \"{ORIGIN}\"\nvkeys = [\"{vkey}\"]\n");
    let w = Witness::start("w1.vouch.test", &log_toml);
    std::fs::write(
        dir.join("witnesses"),
        format!("log {vkey}\nwitness w1 {} {}\nquorum w1\n", w.vkey, w.url),
    )
    .unwrap();
    let fork_dir = temp_dir("fork");
    std::fs::copy(dir.join("log.key"), fork_dir.join("log.key")).unwrap();
    let honest = Log::start_in(
        dir.clone(),
        vkey.clone(),
        &format!(
            "witness_policy = \"{}\"\nwait_timeout_secs = 10",
            dir.join("witnesses").display()
        ),
        false,
    );
    let fork = Log::start_in(fork_dir, vkey.clone(), "", true);
    let (s, b) = honest.submit(&both_builders(40, 0), true);
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&b).contains("\"covered\":true"));
    assert_eq!(fork.submit(&both_builders(50, 1), false).0, 200);
    assert_eq!(checkpoint_size(&honest.get("/checkpoint").1), Some(80));
    assert_eq!(checkpoint_size(&fork.get("/checkpoint").1), Some(100));

    let cdir = temp_dir("split");
    let (with_w, without_w) = (cdir.join("policy-w"), cdir.join("policy-none"));
    std::fs::write(
        &with_w,
        format!("log {vkey}\nwitness w1 {}\nquorum w1\n", w.vkey),
    )
    .unwrap();
    std::fs::write(&without_w, format!("log {vkey}\nquorum none\n")).unwrap();
    let (pa, pb) = (Proxy::start(&honest.url), Proxy::start(&fork.url));
    let victim = narinfo_of(&attestation(&builder(1), 10, 1));

    // Client A sees the honest log, cosigned by the witness: accepted.
    client(&pa.url, &with_w, &cdir.join("a"))
        .check_narinfo(&narinfo_for(10))
        .unwrap();
    // Client B is shown the other history: it is validly signed by the log
    // (a client without witnesses accepts it) but no witness cosigned it.
    client(&pb.url, &without_w, &cdir.join("b-none"))
        .check_narinfo(&victim)
        .expect("the fork is signed by the log's key: only witnesses tell");
    let e = client(&pb.url, &with_w, &cdir.join("b"))
        .check_narinfo(&victim)
        .unwrap_err();
    assert!(e.to_string().contains("witness quorum not met"), "{e}");

    // A client without witnesses that saw the honest history, then is
    // shown the fork: it detects the fork, keeps evidence, and refuses the
    // log from then on, whichever history it is shown.
    let c = client(&pa.url, &without_w, &cdir.join("c"));
    c.check_narinfo(&narinfo_for(10)).unwrap();
    pa.route(&fork.url);
    let e = c.check_narinfo(&victim).unwrap_err();
    assert!(
        matches!(
            e.rule(),
            Some(Rejection::Fork {
                old_size: 80,
                new_size: 100,
                ..
            })
        ),
        "{e}"
    );
    pa.route(&honest.url);
    let e = c.check_narinfo(&narinfo_for(10)).unwrap_err();
    assert!(matches!(e.rule(), Some(Rejection::Refused { .. })), "{e}");

    // The witness refuses the fork when the operator pushes it (422) and
    // keeps the honest checkpoint.
    let fork_log =
        vouch::log_client::LogClient::new(vouch::http::HttpClient::from_env().unwrap(), &fork.url);
    let req = vouch_spec::witness::AddCheckpoint {
        old_size: 80,
        proof: fork_log.consistency_proof(80, 100).unwrap(),
        checkpoint: fork.get("/checkpoint").1,
    };
    let (s, _, b) = w.add_checkpoint(&req.encode());
    assert_eq!(s, 422, "{}", String::from_utf8_lossy(&b));
    let kept = w.cosigned(ORIGIN).unwrap();
    assert_eq!(
        Note::parse(&kept).unwrap().text,
        Note::parse(&honest.get("/checkpoint").1).unwrap().text
    );

    // A witness pulling through a proxy that switches to the fork stays on
    // the honest history and says why.
    let pc = Proxy::start(&honest.url);
    let wp = Witness::start(
        "w2.vouch.test",
        &format!("{log_toml}url = \"{}\"\n", pc.url),
    );
    wait_until("the pulling witness to cosign size 80", 20, || {
        wp.cosigned(ORIGIN).and_then(|c| checkpoint_size(&c)) == Some(80)
    });
    pc.route(&fork.url);
    wait_until("the pulling witness to refuse the fork", 20, || {
        wp.log_text().contains("poll failed")
    });
    let kept = wp.cosigned(ORIGIN).unwrap();
    assert_eq!(checkpoint_size(&kept), Some(80));
    assert_eq!(
        Note::parse(&kept).unwrap().text,
        Note::parse(&honest.get("/checkpoint").1).unwrap().text
    );
    let why = wp.log_text();
    assert!(
        why.contains("possible log misbehaviour") && why.contains("does not match the old root"),
        "{why}"
    );
    let _ = std::fs::remove_dir_all(&cdir);
}

/// A witness pulling a log through a lying proxy: an altered hash tile, a
/// forged log signature and a rollback never move it, and it says why;
/// once the proxy is honest again it catches up.
#[test]
fn a_pulling_witness_refuses_every_lie() {
    let log = Log::start("");
    assert_eq!(log.submit(&both_builders(25, 0), false).0, 200);
    let old = log.get("/checkpoint").1;
    assert_eq!(log.submit(&both_builders(100, 3), false).0, 200);
    let p = Proxy::start(&log.url);
    let w = Witness::start(
        "w.vouch.test",
        &format!(
            "[[log]]\norigin = \"{ORIGIN}\"\nvkeys = [\"{}\"]\nurl = \"{}\"\n",
            log.vkey, p.url
        ),
    );
    let cosigned = || {
        w.cosigned(ORIGIN)
            .and_then(|c| checkpoint_size(&c))
            .unwrap_or(0)
    };
    wait_until("the witness to cosign size 250", 20, || cosigned() == 250);
    // Each lie is told until the witness has refused it at least once more.
    let refuse = |lie: Lie, why: &str| {
        let before = w.log_text().matches("poll failed").count();
        p.set(lie);
        wait_until(why, 20, || {
            w.log_text().matches("poll failed").count() > before
        });
        assert_eq!(cosigned(), 250);
        let text = w.log_text();
        assert!(text.contains(why), "{text}");
    };
    assert_eq!(log.submit(&both_builders(300, 4), false).0, 200);
    refuse(Lie::TileBitFlip, "does not match the old root");
    let mut forged = Note::parse(&log.get("/checkpoint").1).unwrap();
    forged.sigs[0].sig[10] ^= 1;
    refuse(Lie::Checkpoint(forged.to_bytes()), "signature");
    // A rollback is not news: the witness keeps its checkpoint.
    p.set(Lie::Checkpoint(old));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(cosigned(), 250);
    p.set(Lie::Honest);
    wait_until("the witness to catch up to 850", 20, || cosigned() == 850);
}

/// The monitor reads every entry bundle: one with an entry left out is
/// refused, and it says which.
#[test]
fn the_monitor_refuses_a_bundle_with_an_entry_dropped() {
    let log = Log::start("");
    assert_eq!(log.submit(&both_builders(200, 0), false).0, 200);
    let p = Proxy::start(&log.url);
    p.set(Lie::DropEntry);
    let dir = temp_dir("monitor-lie");
    let out = std::process::Command::new(vouch_tests::binary("vouch-witness"))
        .args([
            "monitor", "--once", "--log", &p.url, "--vkey", &log.vkey, "--state",
        ])
        .arg(dir.join("monitor"))
        .env("VOUCH_LOG", "warn")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("tile/entries/000: entry bundle holds 255 entries, want 256"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
