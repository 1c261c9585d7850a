//! The second builder, with the real Nix: builder A builds and attests a
//! reproducible derivation and one whose output varies between builds;
//! `vouch rebuild`, as builder B on another store, rebuilds both from the
//! log's entries and attests what it got; a substituter requiring two
//! builders then serves the reproducible path to Nix and refuses the other,
//! and the monitor reports the disagreement with both hashes. A missing
//! derivation, a failing build and one over its time budget each end with
//! a recorded reason and no attestation; a rebuilder killed mid-run repeats
//! no finished derivation when restarted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vouch_spec::attestation::Entry;
use vouch_spec::nix::NixSecretKey;
use vouch_tests::nixtool::{
    copy_from, key_file, must, nix_build, publish, sh_derivation, sign, NIX_CONFIG,
};
use vouch_tests::{binary, builder, static_server, temp_dir, Log};

/// Nix's settings for the rebuilder's chroot store: its builds see the
/// host's /bin and libraries (the test derivations run /bin/sh).
fn rebuild_nix_config() -> String {
    format!("{NIX_CONFIG}\nextra-sandbox-paths = /bin /lib /lib64 /usr")
}

struct World {
    dir: PathBuf,
    home: PathBuf,
    nixfile: PathBuf,
    log: Log,
    a: NixSecretKey,
    b_key: PathBuf,
    store_b: PathBuf,
}

impl World {
    fn build(&self, attr: &str) -> String {
        nix_build(&self.home, &[self.nixfile.to_str().unwrap(), "-A", attr])
    }

    /// A attests `path` (from the default store) and submits it.
    fn attest_by_a(&self, path: &str) {
        let kf = key_file(&self.dir, &self.a);
        let out = Command::new(binary("vouch"))
            .args(["attest", "--key"])
            .arg(&kf)
            .arg(path)
            .env("NIX_CONFIG", NIX_CONFIG)
            .env("HOME", &self.home)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (s, b) = self.log.submit(&out.stdout, false);
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    }

    fn rebuild_cmd(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(binary("vouch"));
        c.args([
            "rebuild",
            "--log",
            &self.log.url,
            "--log-vkey",
            &self.log.vkey,
            "--key",
        ])
        .arg(&self.b_key)
        .args(["--watch", &self.a.public().to_string(), "--store"])
        .arg(&self.store_b)
        .arg("--state")
        .arg(self.dir.join("state-b"))
        .args(extra)
        .env("NIX_CONFIG", rebuild_nix_config())
        .env("HOME", &self.home)
        .env("VOUCH_LOG", "info");
        c
    }

    fn rebuild(&self, extra: &[&str]) -> Output {
        self.rebuild_cmd(extra).output().unwrap()
    }

    /// The entries in the log for a path: (key name, nix32 NAR hash).
    fn entries(&self, path: &str) -> Vec<(String, [u8; 32])> {
        let hash = &Path::new(path).file_name().unwrap().to_str().unwrap()[..32];
        let (_, body) = self.log.get(&format!("/vouch/v1/lookup/{hash}"));
        let v: Value = serde_json::from_slice(&body).unwrap();
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let e = Entry::decode(e["entry"].as_str().unwrap().as_bytes()).unwrap();
                (e.key.name().to_string(), e.nar_hash)
            })
            .collect()
    }

    /// The recorded outcomes: `done/<drv>.json`. A rebuilder killed while
    /// recording may leave its hidden temporary file (`.<name>.<pid>.<n>.tmp`)
    /// beside them; that is not a record, and the rebuilder never reads it.
    fn done(&self) -> Vec<Value> {
        std::fs::read_dir(self.dir.join("state-b/done"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn world() -> World {
    let dir = temp_dir("rebuild");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let nonce = format!(
        "{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    );
    let drv = |name: &str, script: &str| {
        format!(
            "{name} = {};",
            sh_derivation(&format!("vouch-rb-{name}"), script)
        )
    };
    let nix = [
        drv("repro", &format!("echo reproducible {nonce} > $out")),
        drv(
            "nondet",
            &format!("echo {nonce} > $out; /bin/date +%s%N >> $out"),
        ),
        drv("fails", &format!("echo {nonce}; exit 1")),
        drv(
            "hangs",
            &format!("echo {nonce}; /bin/sleep 120; echo > $out"),
        ),
        drv(
            "slow1",
            &format!("/bin/sleep 2; echo 1 {nonce} > $out; /bin/date +%s%N >> $out"),
        ),
        drv(
            "slow2",
            &format!("/bin/sleep 2; echo 2 {nonce} > $out; /bin/date +%s%N >> $out"),
        ),
        drv(
            "slow3",
            &format!("/bin/sleep 2; echo 3 {nonce} > $out; /bin/date +%s%N >> $out"),
        ),
    ];
    let nixfile = dir.join("default.nix");
    std::fs::write(&nixfile, format!("{{\n{}\n}}\n", nix.join("\n"))).unwrap();
    let b = builder(52);
    let b_key = key_file(&dir, &b);
    World {
        store_b: dir.join("store-b"),
        dir,
        home,
        nixfile,
        log: Log::start(""),
        a: builder(51),
        b_key,
    }
}

#[test]
fn a_second_builder_confirms_the_reproducible_path_and_exposes_the_other() {
    let w = world();
    let (repro, nondet) = (w.build("repro"), w.build("nondet"));
    w.attest_by_a(&repro);
    w.attest_by_a(&nondet);
    // A path A attested whose derivation nobody has.
    let orphan = vouch_tests::attestation(&w.a, 77, 0);
    assert_eq!(w.log.submit(&orphan.encode(), false).0, 200);

    let out = w.rebuild(&["--expr", w.nixfile.to_str().unwrap()]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("rebuilt 2: 1 agreed, 1 disagreed") && stdout.contains("1 no derivation"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("DISAGREES {nondet}")), "{stdout}");

    // B's attestations are in the log: the same NAR for the reproducible
    // path, another for the other one.
    let (a_name, b_name) = (w.a.name().to_string(), builder(52).name().to_string());
    let r = w.entries(&repro);
    let n = w.entries(&nondet);
    let hash_of = |es: &[(String, [u8; 32])], k: &str| {
        es.iter()
            .find(|(n, _)| n == k)
            .map(|(_, h)| *h)
            .unwrap_or_else(|| panic!("{k} attested: {es:?}"))
    };
    assert_eq!(hash_of(&r, &a_name), hash_of(&r, &b_name));
    assert_ne!(hash_of(&n, &a_name), hash_of(&n, &b_name));
    let orphan_done: Vec<Value> = w
        .done()
        .into_iter()
        .filter(|o| o["outcome"] == "no_derivation")
        .collect();
    assert_eq!(orphan_done.len(), 1);
    assert_eq!(orphan_done[0]["path"], orphan.path.full());
    assert_eq!(
        w.entries(&orphan.path.full()).len(),
        1,
        "no attestation by B"
    );

    // A substituter requiring both builders serves the reproducible path
    // to Nix and refuses the other.
    let cache = w.dir.join("cache");
    sign(&w.home, &w.dir, &w.a, &[&repro, &nondet]);
    publish(&w.home, &cache, &[&repro, &nondet]);
    let (_up, upstream) = static_server(&cache);
    std::fs::write(
        w.dir.join("policy"),
        format!("log {}\nquorum none\n", w.log.vkey),
    )
    .unwrap();
    std::fs::write(
        w.dir.join("client.toml"),
        format!(
            "log_url = \"{}\"\npolicy_file = \"{}\"\ntrusted_builders = [\"{}\", \"{}\"]\nrequired_builders = 2\nstate_dir = \"{}\"\n",
            w.log.url,
            w.dir.join("policy").display(),
            w.a.public(),
            builder(52).public(),
            w.dir.join("client-state").display()
        ),
    )
    .unwrap();
    let (_sub, sub) = vouch_tests::substituter(&w.dir.join("client.toml"), &upstream, &[]);
    let tpk = w.a.public().to_string();
    let (ok, out) = copy_from(&w.home, &sub, &w.dir.join("dest"), &repro, &tpk);
    assert!(ok, "two builders agree on the reproducible path:\n{out}");
    let (ok, _) = copy_from(&w.home, &sub, &w.dir.join("dest2"), &nondet, &tpk);
    assert!(!ok, "the builders disagree on the other one");

    // The monitor reports the disagreement with both hashes.
    let m = Command::new(binary("vouch-witness"))
        .args([
            "monitor",
            "--log",
            &w.log.url,
            "--vkey",
            &w.log.vkey,
            "--once",
        ])
        .env("VOUCH_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(m.status.code(), Some(1));
    let reports: Vec<Value> = String::from_utf8_lossy(&m.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let d: Vec<&Value> = reports
        .iter()
        .filter(|r| r["kind"] == "disagreement" && r["path"] == nondet.as_str())
        .collect();
    assert_eq!(d.len(), 1, "{reports:?}");
    let hashes: std::collections::BTreeSet<&str> = d[0]["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["nar_hash"].as_str().unwrap())
        .collect();
    assert_eq!(hashes.len(), 2, "both hashes are reported: {:?}", d[0]);

    // A failing build and one over its time budget: recorded, no attestation.
    let inst = |attr: &str| -> String {
        let out = must(
            &w.home,
            &[
                "nix-instantiate",
                "--store",
                w.store_b.to_str().unwrap(),
                w.nixfile.to_str().unwrap(),
                "-A",
                attr,
            ],
        );
        out.lines()
            .rev()
            .find(|l| l.ends_with(".drv"))
            .unwrap()
            .trim()
            .to_string()
    };
    let (fails, hangs) = (inst("fails"), inst("hangs"));
    std::fs::write(w.dir.join("list"), format!("{fails}\n{hangs}\n")).unwrap();
    let t = Instant::now();
    let out = w.rebuild(&[
        "--paths",
        w.dir.join("list").to_str().unwrap(),
        "--timeout",
        "3",
        "--jobs",
        "2",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        t.elapsed() < Duration::from_secs(100),
        "the budget cut the build short"
    );
    assert!(
        stdout.contains("1 build failed") && stdout.contains("1 timed out"),
        "{stdout}"
    );
    let done = w.done();
    let failed = done
        .iter()
        .find(|o| o["outcome"] == "failed")
        .expect("a failed record");
    assert_eq!(failed["drv"], fails.as_str());
    assert!(
        failed["reason"].as_str().unwrap().contains("exit code 1"),
        "{failed}"
    );
    let timed = done
        .iter()
        .find(|o| o["outcome"] == "timed_out")
        .expect("a timed-out record");
    assert_eq!(timed["drv"], hangs.as_str());
    let before = vouch_tests::checkpoint_size(&w.log.get("/checkpoint").1);
    // Run again: nothing is rebuilt, nothing new attested.
    let out = w.rebuild(&[
        "--paths",
        w.dir.join("list").to_str().unwrap(),
        "--timeout",
        "3",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("rebuilt 0:"));
    assert_eq!(
        vouch_tests::checkpoint_size(&w.log.get("/checkpoint").1),
        before
    );
    let _ = std::fs::remove_dir_all(&w.dir);
}

#[test]
fn a_rebuilder_killed_mid_run_repeats_no_finished_derivation() {
    let w = world();
    let slow: Vec<String> = ["slow1", "slow2", "slow3"]
        .iter()
        .map(|a| w.build(a))
        .collect();
    for p in &slow {
        w.attest_by_a(p);
    }
    let expr = w.nixfile.to_str().unwrap().to_string();
    let mut first = w
        .rebuild_cmd(&["--expr", &expr, "--jobs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while w.done().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no derivation finished"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the rebuilder ended too soon"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = first.kill();
    let _ = first.wait();
    let finished = w.done().len();
    assert!(
        (1..3).contains(&finished),
        "killed mid-run ({finished} done)"
    );
    let out = w.rebuild(&["--expr", &expr]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each output varies between builds: a derivation built twice would
    // show two different attestations by B.
    let b_name = builder(52).name().to_string();
    for p in &slow {
        let by_b = w
            .entries(p)
            .into_iter()
            .filter(|(k, _)| *k == b_name)
            .count();
        assert_eq!(by_b, 1, "{p} rebuilt exactly once");
    }
    assert_eq!(w.done().len(), 3);
    let _ = std::fs::remove_dir_all(&w.dir);
}
