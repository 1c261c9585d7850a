//! Logged key transitions (`spec/PROTOCOL.md` §3.6) end to end with the
//! real `nix`: a cache key hands over to a new one with `vouch key
//! handover`; paths the old key signed before the handover are still
//! substituted, a path it signed after (the stolen-old-key case) is refused
//! by the log (403 naming the transition) and by the substituter although
//! plain Nix trusting the old key takes it, and a path signed by the new
//! key is accepted by a client that only ever trusted the old key. A lying
//! log that appends a post-cutoff attestation anyway is caught by the
//! monitor.

use std::process::Command;

use serde_json::Value;
use vouch_spec::attestation::Attestation;
use vouch_spec::nix::NixSecretKey;
use vouch_spec::note::Ed25519Signer;
use vouch_spec::transition::Transition;
use vouch_tests::nixtool::{
    copy_from, key_file, narinfo, nix_build, publish, sh_derivation, sign, vouch_verify,
};
use vouch_tests::{binary, builder, response, static_server, temp_dir, Log};

fn post_transition(log: &Log, body: &[u8]) -> (u16, String) {
    let (s, b) = response(
        ureq::post(&format!("{}/vouch/v1/transition?wait=1", log.url))
            .set("Content-Type", "text/plain")
            .send_bytes(body),
    );
    (s, String::from_utf8_lossy(&b).into_owned())
}

fn submit(log: &Log, a: &Attestation) -> (u16, String) {
    let (s, b) = log.submit(&a.encode(), false);
    (s, String::from_utf8_lossy(&b).into_owned())
}

#[test]
fn a_handover_cuts_off_the_old_key_and_carries_trust_to_the_new_one() {
    let dir = temp_dir("transition");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let nonce = std::process::id();
    let drv = |name: &str| {
        format!(
            "{name} = {};",
            sh_derivation(
                &format!("vouch-kt-{name}"),
                &format!("echo {name} {nonce} > $out")
            )
        )
    };
    std::fs::write(
        dir.join("default.nix"),
        format!(
            "{{\n{}\n{}\n{}\n}}",
            drv("before"),
            drv("after"),
            drv("renewed")
        ),
    )
    .unwrap();
    let nixfile = dir.join("default.nix");
    let build = |attr: &str| nix_build(&home, &[nixfile.to_str().unwrap(), "-A", attr]);
    let (before, after, renewed) = (build("before"), build("after"), build("renewed"));
    let (old, new) = (builder(31), builder(32));
    let (old_file, new_file) = (key_file(&dir, &old), key_file(&dir, &new));

    let log = Log::start("");
    let cache = dir.join("cache");

    // The old key signs `before`, which is logged.
    sign(&home, &dir, &old, &[&before]);
    publish(&home, &cache, &[&before]);
    let a_before = Attestation::from_narinfo(&narinfo(&cache, &before), &old.public()).unwrap();
    let (s, b) = submit(&log, &a_before);
    assert_eq!(s, 200, "{b}");

    // A handover signed by one key only is refused, and logs nothing.
    let mut forged = Transition::handover(&old, &new);
    forged.new = Some((new.public(), forged.old_sig));
    let (s, b) = post_transition(&log, &forged.encode());
    assert_eq!(s, 403, "{b}");
    assert!(
        b.contains("new key") && b.contains("does not verify"),
        "{b}"
    );
    let (s, b) = post_transition(&log, b"vouch/transition/v1\nold nonsense\n");
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("transition line 2"), "{b}");

    // `vouch key handover` logs it and prints the lines that pin it.
    let out = Command::new(binary("vouch"))
        .args(["key", "handover", "--log", &log.url, "--old"])
        .arg(&old_file)
        .arg("--new")
        .arg(&new_file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cutoff = 1u64;
    assert!(
        text.contains(&format!(
            "{} handed over to {} at index {cutoff} (logged now)",
            old.name(),
            new.name()
        )),
        "{text}"
    );
    let pin: toml::Table = toml::from_str(
        text.split_once("# To pin it in a client configuration (so no log can hide it):\n")
            .unwrap()
            .1,
    )
    .unwrap();
    assert_eq!(pin["pinned_transitions"][0]["index"].as_integer(), Some(1));

    // The stolen-old-key case: the old key signs a new path. Plain Nix
    // trusting the old key takes it; the log refuses the attestation.
    sign(&home, &dir, &old, &[&after]);
    // The new key signs `renewed`.
    sign(&home, &dir, &new, &[&renewed]);
    publish(&home, &cache, &[&after, &renewed]);
    let (s, b) = submit(
        &log,
        &Attestation::from_narinfo(&narinfo(&cache, &after), &old.public()).unwrap(),
    );
    assert_eq!(s, 403, "{b}");
    assert!(
        b.contains(&format!("retired by its transition at index {cutoff}")),
        "{b}"
    );
    // The cutoff survives a SIGKILL of the log: the refusal is the same
    // after the restart.
    let mut log = log;
    log.restart();
    let (s, b) = submit(
        &log,
        &Attestation::from_narinfo(&narinfo(&cache, &after), &old.public()).unwrap(),
    );
    assert_eq!(s, 403, "after a restart: {b}");
    // A re-submission of what the old key attested before is still the
    // duplicate it was.
    let (s, b) = submit(&log, &a_before);
    assert_eq!(s, 200, "{b}");
    assert!(b.contains("\"duplicate\":true"), "{b}");
    // A second transition by the old key (to whoever stole it) is refused.
    let (s, b) = post_transition(&log, &Transition::retire(&old).encode());
    assert_eq!(s, 403, "{b}");
    let (s, b) = submit(
        &log,
        &Attestation::from_narinfo(&narinfo(&cache, &renewed), &new.public()).unwrap(),
    );
    assert_eq!(s, 200, "{b}");
    // The log answers transitions by key (old or new), with proofs.
    for k in [&old, &new] {
        let (s, b) = log.get(&format!(
            "/vouch/v1/transitions/{}?proof=1",
            vouch_spec::hex::encode(k.public().key().as_bytes())
        ));
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(s, 200);
        assert_eq!(v["entries"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v["entries"][0]["index"], cutoff);
        assert!(v["entries"][0]["proof"].is_string());
    }
    assert_eq!(log.get("/vouch/v1/transitions/ABC").0, 400);

    // A client that only ever trusted the old key.
    std::fs::write(
        dir.join("policy"),
        format!("log {}\nquorum none\n", log.vkey),
    )
    .unwrap();
    let config = |name: &str, extra: &str| {
        let p = dir.join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                "log_url = \"{}\"\npolicy_file = \"{}\"\ntrusted_builders = [\"{}\"]\nstate_dir = \"{}\"\n{extra}",
                log.url,
                dir.join("policy").display(),
                old.public(),
                dir.join(format!("{name}-state")).display()
            ),
        )
        .unwrap();
        p
    };
    let client = config("client", "");
    let (_up, upstream) = static_server(&cache);
    let (_sub, sub) = vouch_tests::substituter(&client, &upstream, &[]);
    // Nix itself trusts both keys, as RFC 149 has it ship the new key
    // ahead of the rotation; Vouch's configuration names only the old one.
    let tpk = format!("{} {}", old.public(), new.public());
    let copy = |path: &str, to: &str| copy_from(&home, &sub, &dir.join(to), path, &tpk);
    let (ok, out) = copy(&before, "s1");
    assert!(ok, "signed before the handover, refused:\n{out}");
    let (ok, out) = copy(&renewed, "s2");
    assert!(ok, "signed by the new key, refused:\n{out}");
    let (ok, out) = copy(&after, "s3");
    assert!(!ok, "the old key after its handover, substituted:\n{out}");
    // … although plain Nix, trusting the old key, takes it.
    let (ok, out) = copy_from(
        &home,
        &format!("file://{}", cache.display()),
        &dir.join("s4"),
        &after,
        &old.public().to_string(),
    );
    assert!(ok, "plain nix refused the old key's signature:\n{out}");
    // `vouch verify` says why, naming the transition.
    let (code, out) = vouch_verify(&client, &cache, &after, &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(&format!(
            "{} handed over to {} at index {cutoff}",
            old.name(),
            new.name()
        )),
        "{out}"
    );
    let (code, out) = vouch_verify(&client, &cache, &renewed, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("continuing"), "{out}");
    // A client that does not follow handovers refuses the new key.
    let strict = config("strict", "follow_handovers = false\n");
    let (code, out) = vouch_verify(&strict, &cache, &renewed, &[]);
    assert_eq!(code, Some(2), "{out}");
    // Offline, with the transition pinned and the old key's proof of
    // `before`: accepted; the new key's `renewed` too.
    let entry = String::from_utf8(Transition::handover(&old, &new).encode()).unwrap();
    let pinned = config(
        "pinned",
        &format!("[[pinned_transitions]]\nindex = {cutoff}\nentry = \"\"\"\n{entry}\"\"\"\n"),
    );
    for p in [&before, &renewed] {
        let o = Command::new(binary("vouch"))
            .args(["proof", "--log", &log.url, "--out"])
            .arg(&cache)
            .arg(p)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let (code, out) = vouch_verify(&pinned, &cache, p, &[0]);
        assert_eq!(code, Some(0), "{out}");
    }
    // A pinned transition that does not verify is a configuration error.
    let bad = config(
        "bad",
        &format!(
            "[[pinned_transitions]]\nindex = 1\nentry = \"\"\"\n{}\"\"\"\n",
            String::from_utf8(forged.encode()).unwrap()
        ),
    );
    let (code, _) = vouch_verify(&bad, &cache, &before, &[]);
    assert_ne!(code, Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_monitor_reports_a_lying_log_that_appends_after_a_cutoff() {
    let dir = temp_dir("transition-lie");
    let (old, new) = (builder(33), builder(34));
    let signer = Ed25519Signer::from_seed(vouch_tests::ORIGIN, &[77; 32]).unwrap();
    let vkey = signer.verifier().vkey();
    // Honest history: old key attests, hands over; new key attests. Then
    // the lie: the old key attests again after its cutoff (index 2), and
    // hands over a second time (to whoever stole it).
    let entries = vec![
        vouch_tests::attestation(&old, 1, 0).to_entry().encode(),
        vouch_tests::attestation(&new, 1, 0).to_entry().encode(),
        Transition::handover(&old, &new).encode(),
        vouch_tests::attestation(&new, 2, 0).to_entry().encode(),
        vouch_tests::attestation(&old, 3, 0).to_entry().encode(),
        Transition::handover(&old, &builder(35)).encode(),
        // The stolen old key under another name: the same Ed25519 key,
        // so past the same cutoff.
        vouch_tests::attestation(
            &NixSecretKey::from_seed("stolen.example-1", &[33; 32]).unwrap(),
            4,
            0,
        )
        .to_entry()
        .encode(),
    ];
    let tiles = dir.join("log");
    vouch_tests::static_log::write(&tiles, &signer, &entries);
    let (_srv, url) = static_server(&tiles);
    let state = dir.join("monitor");
    let out = Command::new(binary("vouch-witness"))
        .args([
            "monitor", "--once", "--log", &url, "--vkey", &vkey, "--state",
        ])
        .arg(&state)
        .env("VOUCH_LOG", "warn")
        .output()
        .unwrap();
    let reports: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(out.status.code(), Some(2), "{reports:?}");
    let used: Vec<&Value> = reports
        .iter()
        .filter(|r| r["kind"] == "retired_key_used")
        .collect();
    assert_eq!(used.len(), 3, "{reports:?}");
    assert_eq!(used[0]["index"], 4);
    assert_eq!(used[0]["cutoff"], 2);
    assert_eq!(used[0]["what"], "attestation");
    assert_eq!(used[1]["index"], 5);
    assert_eq!(used[1]["what"], "transition");
    assert_eq!(
        (&used[2]["index"], &used[2]["cutoff"]),
        (&6.into(), &2.into())
    );
    assert!(used[2]["key"]
        .as_str()
        .unwrap()
        .starts_with("stolen.example-1:"));
    assert!(reports
        .iter()
        .any(|r| r["kind"] == "transition" && r["index"] == 2));
    // The builder report lists the key's transitions and its violations.
    let rep = Command::new(binary("vouch-witness"))
        .args(["report", "--state"])
        .arg(&state)
        .args(["builder", &old.public().to_string()])
        .output()
        .unwrap();
    assert!(
        rep.status.success(),
        "{}",
        String::from_utf8_lossy(&rep.stderr)
    );
    let v: Value = serde_json::from_slice(&rep.stdout).unwrap();
    assert_eq!(v["transitions"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["transitions"][0]["new"], new.public().to_string());
    // All three, the one under the other name included.
    assert_eq!(v["violations"].as_array().unwrap().len(), 3, "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}
