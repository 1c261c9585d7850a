//! The substituter with the real `nix` (Debian's nix-bin) on loopback.
//! Nix builds small derivations, two builder keys sign them, `nix copy --to
//! file://` publishes them as the upstream cache, attestations go to a real
//! `vouch-log`, and `nix copy --from http://<vouch substituter>` must get a
//! path only when the acceptance rule holds: two trusted builders agreeing,
//! none disagreeing. The substituter also sits behind the lying-log proxy
//! (`vouch_tests::lying`) with Nix asking it, and must refuse every lie.

use std::path::Path;
use std::process::Command;

use vouch_spec::attestation::Attestation;
use vouch_spec::nix::NixSecretKey;
use vouch_tests::nixtool::{
    copy_from, key_file, must, narinfo, nix_build, publish, sh_derivation, sign, vouch_verify,
    NIX_CONFIG,
};
use vouch_tests::{binary, builder, free_port, static_server, temp_dir, Log};

fn submit(log: &Log, a: &Attestation) {
    let (s, b) = log.submit(&a.encode(), false);
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
}

#[test]
fn nix_copies_only_what_enough_trusted_builders_agree_on() {
    let dir = temp_dir("nix");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let nonce = std::process::id();
    std::fs::write(
        dir.join("default.nix"),
        format!(
            "rec {{\n  dep = {};\n  hello = {};\n  lonely = {};\n}}",
            sh_derivation("vouch-e2e-dep", &format!("echo dep {nonce} > $out")),
            sh_derivation(
                "vouch-e2e-hello",
                &format!("echo hello {nonce} > $out; echo ${{dep}} >> $out")
            ),
            sh_derivation("vouch-e2e-lonely", &format!("echo lonely {nonce} > $out")),
        ),
    )
    .unwrap();
    let nixfile = dir.join("default.nix");
    let build = |attr: &str| nix_build(&home, &[nixfile.to_str().unwrap(), "-A", attr]);
    let (hello, dep, lonely) = (build("hello"), build("dep"), build("lonely"));
    let keys = [builder(21), builder(22), builder(23)];
    for k in &keys[..2] {
        sign(&home, &dir, k, &[&hello, &dep, &lonely]);
    }
    // `vouch attest --from-fs` serialises the NAR itself and finds the
    // references by scanning: it must agree with Nix on all of it.
    let kf = key_file(&dir, &keys[0]);
    let fs = Command::new(binary("vouch"))
        .args(["attest", "--from-fs", "--key"])
        .arg(&kf)
        .arg(&hello)
        .output()
        .unwrap();
    assert!(
        fs.status.success(),
        "{}",
        String::from_utf8_lossy(&fs.stderr)
    );
    let via_nix = Command::new(binary("vouch"))
        .args(["attest", "--key"])
        .arg(&kf)
        .arg(&hello)
        .env("NIX_CONFIG", NIX_CONFIG)
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(
        via_nix.status.success(),
        "{}",
        String::from_utf8_lossy(&via_nix.stderr)
    );
    let (a_fs, a_nix) = (
        Attestation::parse(&fs.stdout).unwrap(),
        Attestation::parse(&via_nix.stdout).unwrap(),
    );
    assert_eq!(
        (a_fs.nar_hash, a_fs.nar_size, &a_fs.references),
        (a_nix.nar_hash, a_nix.nar_size, &a_nix.references)
    );
    assert_eq!(a_fs.references.len(), 1, "hello refers to dep");
    let cache = dir.join("cache-upstream");
    publish(&home, &cache, &[&hello, &lonely]);
    let (_up, upstream) = static_server(&cache);

    let log = Log::start("");
    std::fs::write(
        dir.join("policy"),
        format!("log {}\nquorum none\n", log.vkey),
    )
    .unwrap();
    let trusted: Vec<String> = keys.iter().map(|k| format!("\"{}\"", k.public())).collect();
    std::fs::write(
        dir.join("client.toml"),
        format!(
            "log_url = \"{}\"\npolicy_file = \"{}\"\ntrusted_builders = [{}]\nrequired_builders = 2\nstate_dir = \"{}\"\n",
            log.url,
            dir.join("policy").display(),
            trusted.join(", "),
            dir.join("client-state").display()
        ),
    )
    .unwrap();
    let (_sub, sub) = vouch_tests::substituter(&dir.join("client.toml"), &upstream, &[]);
    let pubkeys: Vec<String> = keys.iter().map(|k| k.public().to_string()).collect();
    let tpk = pubkeys.join(" ");
    let copy = |path: &str, dest: &Path| copy_from(&home, &sub, dest, path, &tpk);

    // Only builder 1 has attested: under a two-builder policy Nix gets nothing.
    for p in [&hello, &dep] {
        submit(
            &log,
            &Attestation::from_narinfo(&narinfo(&cache, p), &keys[0].public()).unwrap(),
        );
    }
    let dest1 = dir.join("store1");
    let (ok, out) = copy(&hello, &dest1);
    assert!(!ok, "nix copied with one attestation:\n{out}");
    assert!(!dest1.join(hello.trim_start_matches('/')).exists());

    // Builder 2 agrees: now Nix copies the path and its dependency.
    for p in [&hello, &dep] {
        submit(
            &log,
            &Attestation::from_narinfo(&narinfo(&cache, p), &keys[1].public()).unwrap(),
        );
    }
    let dest2 = dir.join("store2");
    let (ok, out) = copy(&hello, &dest2);
    assert!(ok, "nix copy failed with two agreeing builders:\n{out}");
    let copied = std::fs::read_to_string(dest2.join(hello.trim_start_matches('/'))).unwrap();
    assert!(copied.starts_with(&format!("hello {nonce}")));

    // A trusted builder disagrees on `lonely`: rejected although two agree.
    let ni = narinfo(&cache, &lonely);
    for k in &keys[..2] {
        submit(&log, &Attestation::from_narinfo(&ni, &k.public()).unwrap());
    }
    let mut other = ni.nar_hash;
    other[0] ^= 0xff;
    submit(
        &log,
        &Attestation::sign(
            ni.store_path.clone(),
            other,
            ni.nar_size,
            ni.references.clone(),
            None,
            &keys[2],
        ),
    );
    let dest3 = dir.join("store3");
    let (ok, out) = copy(&lonely, &dest3);
    assert!(!ok, "nix copied a path a trusted builder disputes:\n{out}");

    // The decisions are visible in the substituter's metrics.
    let m = ureq::get(&format!("{sub}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(m.contains("decision=\"too_few_builders\""), "{m}");
    assert!(m.contains("decision=\"disagreement\""), "{m}");
    assert!(m.contains("decision=\"accepted\""), "{m}");

    // `vouch verify` explains the same decisions.
    let client = dir.join("client.toml");
    let (code, out) = vouch_verify(&client, &cache, &hello, &[]);
    assert!(code == Some(0) && out.starts_with("ACCEPT"), "{out}");
    let (code, out) = vouch_verify(&client, &cache, &lonely, &[]);
    assert_eq!(code, Some(2));
    assert!(out.contains("attest a different NAR"), "{out}");

    // Offline: tlog-proofs published beside the narinfos suffice, with the
    // log out of reach.
    for p in [&hello, &dep] {
        let o = Command::new(binary("vouch"))
            .args(["proof", "--log", &log.url, "--out"])
            .arg(&cache)
            .arg(p)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).lines().count(),
            2,
            "two attestations each"
        );
    }
    let (_, out) = vouch_verify(&client, &cache, &hello, &[0, 1]);
    assert!(out.starts_with("ACCEPT"), "{out}");
    let (code, _) = vouch_verify(&client, &cache, &hello, &[0]);
    assert_eq!(code, Some(2), "one proof is one builder");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let offline_cfg = std::fs::read_to_string(dir.join("client.toml"))
        .unwrap()
        .replace(&log.url, &dead)
        .replace("client-state", "client-state-offline");
    std::fs::write(dir.join("client-offline.toml"), offline_cfg).unwrap();
    let (_sub2, sub2) =
        vouch_tests::substituter(&dir.join("client-offline.toml"), &upstream, &["--bundles"]);
    let dest5 = dir.join("store5");
    let (ok, out) = copy_from(&home, &sub2, &dest5, &hello, &tpk);
    assert!(ok, "offline substituter refused:\n{out}");

    // A checkpoint without the witness quorum the client requires: refused.
    let w =
        vouch_spec::cosignature::CosignatureSigner::from_seed("w.vouch.test", &[9; 32]).unwrap();
    std::fs::write(
        dir.join("policy-witnessed"),
        format!(
            "log {}\nwitness w {}\nquorum w\n",
            log.vkey,
            w.verifier().vkey()
        ),
    )
    .unwrap();
    let cfg2 = std::fs::read_to_string(dir.join("client.toml"))
        .unwrap()
        .replace("/policy\"", "/policy-witnessed\"")
        .replace("client-state", "client-state-2");
    std::fs::write(dir.join("client-witnessed.toml"), cfg2).unwrap();
    let (code, out) = vouch_verify(&dir.join("client-witnessed.toml"), &cache, &hello, &[]);
    assert_eq!(code, Some(2));
    assert!(out.contains("witness quorum not met"), "{out}");
    let (_sub3, sub3) =
        vouch_tests::substituter(&dir.join("client-witnessed.toml"), &upstream, &[]);
    let dest6 = dir.join("store6");
    let (ok, out) = copy_from(&home, &sub3, &dest6, &hello, &tpk);
    assert!(
        !ok,
        "nix copied under a checkpoint without witness quorum:\n{out}"
    );
    let m3 = ureq::get(&format!("{sub3}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(m3.contains("decision=\"bad_checkpoint\""), "{m3}");

    // A fork: the same log key and origin serve a different history at the
    // same address. The substituter refuses, and keeps refusing.
    let (vkey, port) = (log.vkey.clone(), log.port);
    let fork_dir = temp_dir("nixfork");
    std::fs::copy(log.dir.join("log.key"), fork_dir.join("log.key")).unwrap();
    drop(log);
    let mut fork = Log::start_in(fork_dir, vkey, "", true);
    for i in 0..20 {
        submit(&fork, &vouch_tests::attestation(&keys[0], 5000 + i, 0));
    }
    for k in &keys[..2] {
        submit(
            &fork,
            &Attestation::from_narinfo(&narinfo(&cache, &hello), &k.public()).unwrap(),
        );
        submit(
            &fork,
            &Attestation::from_narinfo(&narinfo(&cache, &dep), &k.public()).unwrap(),
        );
    }
    fork.terminate();
    fork.port = port;
    fork.url = format!("http://127.0.0.1:{port}");
    fork.restart();
    let dest4 = dir.join("store4");
    let (ok, out) = copy(&hello, &dest4);
    assert!(!ok, "nix copied from a forked log:\n{out}");
    let (code, text) = vouch_verify(&client, &cache, &hello, &[]);
    assert_eq!(code, Some(2));
    assert!(
        text.contains("forked") || text.contains("refused"),
        "{text}"
    );
    let m = ureq::get(&format!("{sub}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(m.contains("decision=\"log_fork\""), "{m}");
    let evidence: Vec<_> = std::fs::read_dir(dir.join("client-state"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "fork"))
        .collect();
    assert_eq!(evidence.len(), 1, "fork evidence is recorded");
    let ev = std::fs::read_to_string(evidence[0].path()).unwrap();
    assert!(
        ev.contains("Checkpoint seen before") && ev.matches(vouch_tests::ORIGIN).count() >= 2,
        "{ev}"
    );
    let _ = Command::new("chmod").args(["-R", "u+w"]).arg(&dir).status();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn post_build_hook_spools_and_the_sender_delivers() {
    let dir = temp_dir("hook");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let key = builder(31);
    let keyfile = key_file(&dir, &key);
    let spool = dir.join("spool");
    let hook = dir.join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nexec {} post-build-hook --key {} --spool {}\n",
            binary("vouch").display(),
            keyfile.display(),
            spool.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&hook)
        .status()
        .unwrap();
    std::fs::write(
        dir.join("default.nix"),
        sh_derivation(
            "vouch-e2e-hooked",
            &format!("echo hooked {} > $out", std::process::id()),
        ),
    )
    .unwrap();
    let path = nix_build(
        &home,
        &[
            dir.join("default.nix").to_str().unwrap(),
            "--option",
            "post-build-hook",
            hook.to_str().unwrap(),
        ],
    );
    let spooled = spooled_files(&spool);
    assert_eq!(
        spooled.len(),
        1,
        "the hook spooled one attestation for {path}"
    );

    let log = Log::start("");
    let st = Command::new(binary("vouch"))
        .args(["sender", "--once", "--log", &log.url, "--spool"])
        .arg(&spool)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(spooled_files(&spool).is_empty());
    let hp = &Path::new(&path).file_name().unwrap().to_str().unwrap()[..32];
    let (s, body) = log.get(&format!("/vouch/v1/lookup/{hp}"));
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let entry = vouch_spec::attestation::Entry::decode(
        v["entries"][0]["entry"].as_str().unwrap().as_bytes(),
    )
    .unwrap();
    assert_eq!(entry.path.full(), path);
    assert_eq!(entry.key, key.public());
    entry.verify(None).unwrap();
    // The attested NAR hash is the one Nix itself reports.
    let info = must(&home, &["nix", "path-info", "--json", &path]);
    let json = info.rsplit("--- stdout ---").next().unwrap_or(&info);
    assert_eq!(path_info_nar_hash(json.trim()), entry.nar_hash);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The attestation files a spool directory holds.
fn spooled_files(spool: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(spool)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "attestation"))
                .collect()
        })
        .unwrap_or_default()
}

/// The NAR hash `nix path-info --json` printed for its one path (SRI
/// `sha256-<base64>` or `sha256:<nix32>`, in either JSON shape Nix uses).
fn path_info_nar_hash(json: &str) -> [u8; 32] {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let info = match &v {
        serde_json::Value::Array(a) => a[0].clone(),
        serde_json::Value::Object(m) => m.values().next().unwrap().clone(),
        _ => panic!("unexpected path-info JSON {json}"),
    };
    let h = info["narHash"].as_str().unwrap();
    match h.strip_prefix("sha256-") {
        Some(b) => vouch_spec::b64::decode(b).unwrap().try_into().unwrap(),
        None => vouch_spec::nix::narinfo::parse_sha256("narHash", h).unwrap(),
    }
}

#[test]
fn backfill_logs_an_existing_cache_and_resumes() {
    let dir = temp_dir("backfill");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let nonce = std::process::id();
    std::fs::write(
        dir.join("default.nix"),
        format!(
            "{{\n  a = {};\n  b = {};\n}}",
            sh_derivation("vouch-bf-a", &format!("echo a {nonce} > $out")),
            sh_derivation("vouch-bf-b", &format!("echo b {nonce} > $out")),
        ),
    )
    .unwrap();
    let nixfile = dir.join("default.nix");
    let build = |attr: &str| nix_build(&home, &[nixfile.to_str().unwrap(), "-A", attr]);
    let (a, b) = (build("a"), build("b"));
    // A key made by `vouch keygen` is a Nix key: `nix store sign` uses it.
    let kf = dir.join("cache-key.sec");
    let kg = Command::new(binary("vouch"))
        .args(["keygen", "--name", "cache.vouch.test-1", "--out"])
        .arg(&kf)
        .output()
        .unwrap();
    assert!(
        kg.status.success(),
        "{}",
        String::from_utf8_lossy(&kg.stderr)
    );
    let cache_key = NixSecretKey::parse(&std::fs::read_to_string(&kf).unwrap()).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&kg.stdout).trim(),
        cache_key.public().to_string()
    );
    sign(&home, &dir, &cache_key, &[&a, &b]);
    let cache = dir.join("cache");
    publish(&home, &cache, &[&a, &b]);
    let (_up, upstream) = static_server(&cache);
    let log = Log::start("");
    // Two real paths, a hash the cache lacks, a comment.
    std::fs::write(
        dir.join("paths"),
        format!("# from the cache\n{a}\n0000000000000000000000000000000z\n{b}\n"),
    )
    .unwrap();
    let run = || {
        Command::new(binary("vouch"))
            .args([
                "backfill",
                "--cache",
                &upstream,
                "--log",
                &log.url,
                "--key",
                &cache_key.public().to_string(),
                "--batch",
                "1",
                "--rate",
                "100",
                "--paths",
            ])
            .arg(dir.join("paths"))
            .arg("--state")
            .arg(dir.join("state"))
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(
        out.contains("3 paths: 2 attestations submitted, 1 missing"),
        "{out}"
    );
    for p in [&a, &b] {
        let hp = &Path::new(p).file_name().unwrap().to_str().unwrap()[..32];
        let (_, body) = log.get(&format!("/vouch/v1/lookup/{hp}"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let e = vouch_spec::attestation::Entry::decode(
            v["entries"][0]["entry"].as_str().unwrap().as_bytes(),
        )
        .unwrap();
        assert_eq!(
            e.key,
            cache_key.public(),
            "the cache's own signature is logged as is"
        );
        assert_eq!(e.sig, narinfo(&cache, p).sigs[0].sig);
    }
    // A rerun resumes after the last line: nothing left to do.
    let second = run();
    assert!(second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("backfilled 0 paths"),
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `vouch_substituter_decisions_total{decision="label"}` of a substituter.
fn decisions(sub: &str, label: &str) -> u64 {
    let m = ureq::get(&format!("{sub}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    m.lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "vouch_substituter_decisions_total{{decision=\"{label}\"}} "
            ))
        })
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// The substituter with real Nix behind it and a lying log in front of the
/// log: a witnessed log (a real `vouch-witness` cosigns every checkpoint)
/// reached through the lying proxy. Nix copies the path while the proxy is
/// honest, and gets nothing for each lie, and the substituter names the
/// reason — proving inclusion from lookup proofs and from tiles alike. A
/// proof bundle for another entry is refused by the offline substituter.
#[test]
fn the_substituter_refuses_every_lie_and_nix_gets_nothing() {
    use vouch_spec::note::Note;
    use vouch_tests::lying::{Lie, Proxy};
    let dir = temp_dir("nixlie");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        dir.join("default.nix"),
        sh_derivation(
            "vouch-e2e-lied-about",
            &format!("echo lied about {} > $out", std::process::id()),
        ),
    )
    .unwrap();
    let pkg = nix_build(&home, &[dir.join("default.nix").to_str().unwrap()]);
    let keys = [builder(41), builder(42)];
    for k in &keys {
        sign(&home, &dir, k, &[&pkg]);
    }
    let cache = dir.join("cache");
    publish(&home, &cache, &[&pkg]);
    let (_up, upstream) = static_server(&cache);

    // A log whose every served checkpoint is cosigned by a real witness.
    let (ldir, vkey) = vouch_tests::log_keygen();
    let w = vouch_tests::Witness::start(
        "w.vouch.test",
        &format!(
            "[[log]]\norigin = \"{}\"\nvkeys = [\"{vkey}\"]\n",
            vouch_tests::ORIGIN
        ),
    );
    std::fs::write(
        ldir.join("witnesses"),
        format!("log {vkey}\nwitness w {} {}\nquorum w\n", w.vkey, w.url),
    )
    .unwrap();
    let log = Log::start_in(
        ldir.clone(),
        vkey.clone(),
        &format!("witness_policy = \"{}\"", ldir.join("witnesses").display()),
        false,
    );
    // Fillers first, so the path's inclusion proofs cross a full tile.
    let fill: Vec<u8> = (0..300)
        .flat_map(|i| vouch_tests::attestation(&keys[0], 9000 + i, 0).encode())
        .collect();
    assert_eq!(log.submit(&fill, true).0, 200);
    for k in &keys {
        let a = Attestation::from_narinfo(&narinfo(&cache, &pkg), &k.public()).unwrap();
        assert_eq!(log.submit(&a.encode(), true).0, 200);
    }
    let old_cp = log.get("/checkpoint").1;
    assert_eq!(
        log.submit(&vouch_tests::attestation(&keys[0], 9999, 0).encode(), true)
            .0,
        200
    );
    let real = log.get("/checkpoint").1;

    let proxy = Proxy::start(&log.url);
    std::fs::write(
        dir.join("policy"),
        format!("log {vkey}\nwitness w {}\nquorum w\n", w.vkey),
    )
    .unwrap();
    let trusted: Vec<String> = keys.iter().map(|k| format!("\"{}\"", k.public())).collect();
    let sub_for = |mode: &str, lookup_proofs: bool, log_url: &str, extra: &[&str]| {
        let cfg = dir.join(format!("client-{mode}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "log_url = \"{log_url}\"\npolicy_file = \"{}\"\ntrusted_builders = [{}]\nrequired_builders = 2\nmax_checkpoint_age_secs = 3600\nlookup_proofs = {lookup_proofs}\nstate_dir = \"{}\"\n",
                dir.join("policy").display(),
                trusted.join(", "),
                dir.join(format!("state-{mode}")).display()
            ),
        )
        .unwrap();
        vouch_tests::substituter(&cfg, &upstream, extra)
    };
    let tpk = keys
        .iter()
        .map(|k| k.public().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let attempt = std::cell::Cell::new(0);
    let copy = |sub: &str| {
        attempt.set(attempt.get() + 1);
        let dest = dir.join(format!("store{}", attempt.get()));
        let (ok, out) = copy_from(&home, sub, &dest, &pkg, &tpk);
        assert_eq!(ok, dest.join(pkg.trim_start_matches('/')).exists(), "{out}");
        (ok, out)
    };

    // The witness's key, to forge what only it could sign.
    let wkey = vouch_spec::cosignature::CosignatureSigner::from_skey(
        &std::fs::read_to_string(w.dir.join("witness.key")).unwrap(),
    )
    .unwrap();
    let note = Note::parse(&real).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let log_sig_only = Note {
        text: note.text.clone(),
        sigs: vec![note.sigs[0].clone()],
    };
    let with = |s: vouch_spec::note::Signature| {
        let mut n = log_sig_only.clone();
        n.sigs.push(s);
        n.to_bytes()
    };
    let mut forged_log = note.clone();
    forged_log.sigs[0].sig[10] ^= 1;
    let stranger =
        vouch_spec::cosignature::CosignatureSigner::from_seed("w.vouch.test", &[8; 32]).unwrap();
    let mut forged_w = wkey.cosign(&note.text, now).unwrap();
    forged_w.sig[20] ^= 1;
    let lies = [
        ("rollback", Lie::Checkpoint(old_cp.clone()), "rollback"),
        ("entry bytes", Lie::EntryBytes, "bad_entry"),
        ("hash tile", Lie::TileBitFlip, "bad_entry"),
        (
            "forged log signature",
            Lie::Checkpoint(forged_log.to_bytes()),
            "bad_checkpoint",
        ),
        (
            "no cosignature",
            Lie::Checkpoint(log_sig_only.to_bytes()),
            "bad_checkpoint",
        ),
        (
            "unknown witness",
            Lie::Checkpoint(with(stranger.cosign(&note.text, now).unwrap())),
            "bad_checkpoint",
        ),
        (
            "forged cosignature",
            Lie::Checkpoint(with(forged_w)),
            "bad_checkpoint",
        ),
        (
            "stale cosignature",
            Lie::Checkpoint(with(wkey.cosign(&note.text, now - 7200).unwrap())),
            "stale_checkpoint",
        ),
    ];
    for (mode, lookup_proofs) in [("lookup", true), ("tiles", false)] {
        let (_s, sub) = sub_for(mode, lookup_proofs, &proxy.url, &[]);
        proxy.set(Lie::Honest);
        let (ok, out) = copy(&sub);
        assert!(
            ok,
            "{mode}: nix copy failed through an honest proxy:\n{out}"
        );
        for (name, lie, label) in &lies {
            proxy.set(lie.clone());
            let before = decisions(&sub, label);
            let (ok, out) = copy(&sub);
            assert!(
                !ok,
                "{mode}: nix copied the path under a {name} lie:\n{out}"
            );
            // (Nix may ask more than once.)
            assert!(
                decisions(&sub, label) > before,
                "{mode}: the {name} lie was not refused as {label}"
            );
        }
        // Honest again: accepted again (none of the lies was remembered).
        proxy.set(Lie::Honest);
        assert!(copy(&sub).0, "{mode}: honest again");
    }

    // Offline, from tlog-proofs published beside the narinfo: the right
    // two are accepted; a proof for another entry in place of one is not.
    let o = Command::new(binary("vouch"))
        .args(["proof", "--log", &log.url, "--out"])
        .arg(&cache)
        .arg(&pkg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (_off, off) = sub_for("offline", true, &dead, &["--bundles"]);
    // Bad input: a NAR path walking out of nar/, a name that is no store
    // path hash: 4xx with a reason, nothing fetched.
    for (path, want) in [
        ("/nar/%2e%2e/nix-cache-info", "400"),
        ("/nar/a/../../etc/passwd", "400"),
        ("/not-a-hash.narinfo", "404"),
    ] {
        let mut c = std::net::TcpStream::connect(off.trim_start_matches("http://")).unwrap();
        std::io::Write::write_all(
            &mut c,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut resp = String::new();
        let _ = std::io::Read::read_to_string(&mut c, &mut resp);
        assert!(
            resp.starts_with(&format!("HTTP/1.1 {want}")),
            "{path}: {resp}"
        );
        assert!(resp.contains("not a"), "{path}: {resp}");
    }
    assert!(copy(&off).0, "offline substituter refused the right proofs");
    let hp = &Path::new(&pkg).file_name().unwrap().to_str().unwrap()[..32];
    let other = log.get("/vouch/v1/bundle/5").1;
    std::fs::write(cache.join(format!("{hp}.vouch/1.tlog-proof")), other).unwrap();
    let before = decisions(&off, "bad_entry");
    assert!(!copy(&off).0, "nix copied with a proof for another entry");
    assert!(decisions(&off, "bad_entry") > before);
    let _ = Command::new("chmod").args(["-R", "u+w"]).arg(&dir).status();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Report mode: real Nix gets a path nobody attested (Nix's own signature
/// check passes), while the substituter logs and counts the refusal
/// enforcing would have made; in enforce mode the same path is refused.
#[test]
fn report_mode_serves_an_unattested_path_and_counts_what_enforcing_would_refuse() {
    let dir = temp_dir("report");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        dir.join("default.nix"),
        sh_derivation(
            "vouch-e2e-unattested",
            &format!("echo unattested {} > $out", std::process::id()),
        ),
    )
    .unwrap();
    let path = nix_build(&home, &[dir.join("default.nix").to_str().unwrap()]);
    let k = builder(24);
    sign(&home, &dir, &k, &[&path]);
    let cache = dir.join("cache");
    publish(&home, &cache, &[&path]);
    let (_up, upstream) = static_server(&cache);
    let log = Log::start("");
    std::fs::write(
        dir.join("policy"),
        format!("log {}\nquorum none\n", log.vkey),
    )
    .unwrap();
    std::fs::write(
        dir.join("client.toml"),
        format!(
            "log_url = \"{}\"\npolicy_file = \"{}\"\ntrusted_builders = [\"{}\"]\nstate_dir = \"{}\"\n\n[substituter]\nmode = \"report\"\n",
            log.url,
            dir.join("policy").display(),
            k.public(),
            dir.join("state").display()
        ),
    )
    .unwrap();
    let port = free_port();
    let stderr = dir.join("substituter.log");
    let _sub = vouch_tests::Proc(
        Command::new(binary("vouch"))
            .args(["substituter", "--config"])
            .arg(dir.join("client.toml"))
            .args([
                "--upstream",
                &upstream,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env("VOUCH_LOG", "warn")
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap(),
    );
    vouch_tests::wait_port(port);
    let sub = format!("http://127.0.0.1:{port}");
    let tpk = k.public().to_string();
    let (ok, out) = copy_from(&home, &sub, &dir.join("dest"), &path, &tpk);
    assert!(ok, "report mode serves what the upstream has:\n{out}");
    assert_eq!(decisions(&sub, "too_few_builders"), 1);
    let m = ureq::get(&format!("{sub}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        m.contains("vouch_substituter_report_only_total{decision=\"too_few_builders\"} 1"),
        "{m}"
    );
    let logged = std::fs::read_to_string(&stderr).unwrap();
    assert!(
        logged.contains("would reject")
            && logged.contains("too_few_builders")
            && logged.contains(&path),
        "{logged}"
    );
    // The same path in enforce mode: refused.
    let enforce = std::fs::read_to_string(dir.join("client.toml"))
        .unwrap()
        .replace("mode = \"report\"", "mode = \"enforce\"")
        .replace("state\"", "state-enforce\"");
    std::fs::write(dir.join("enforce.toml"), enforce).unwrap();
    let (_sub2, sub2) = vouch_tests::substituter(&dir.join("enforce.toml"), &upstream, &[]);
    let (ok, _) = copy_from(&home, &sub2, &dir.join("dest2"), &path, &tpk);
    assert!(!ok, "enforce mode refuses it");
    let _ = std::fs::remove_dir_all(&dir);
}
