//! What a new user met in their first hour, each fixed, each checked
//! against the real binaries: a log key names its origin; `file://` caches
//! work; pointers in messages lead somewhere; `vouch policy` writes the
//! policy; usage errors, exit codes and messages say one thing once; the
//! witness prints its monitoring URLs; `clear-fork` tells the truth; `vouch
//! --help` says what it is for; the benchmark's load generator cannot hang.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vouch_tests::{
    attestation, binary, builder, free_port, log_keygen, narinfo_of, temp_dir, wait_port,
    wait_until, Log, Proc, ORIGIN,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(binary(bin))
        .args(args)
        .env("VOUCH_LOG", "warn")
        .output()
        .expect("running a vouch binary")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A client configuration for `log` trusting builder 1 (k = 1).
fn client(dir: &Path, log: &Log) -> PathBuf {
    std::fs::write(
        dir.join("policy"),
        format!("log {}\nquorum none\n", log.vkey),
    )
    .unwrap();
    let cfg = dir.join("client.toml");
    std::fs::write(
        &cfg,
        format!(
            "log_url = \"{}\"\npolicy_file = \"{}\"\ntrusted_builders = [\"{}\"]\nstate_dir = \"{}\"\n",
            log.url,
            dir.join("policy").display(),
            builder(1).public(),
            dir.join("state").display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn serve_takes_the_origin_from_the_key_and_a_mismatch_names_both() {
    let dir = temp_dir("origin");
    let key = dir.join("log.key");
    assert!(run(
        "vouch-log",
        &[
            "keygen",
            "--origin",
            "log.example.org/x",
            "--out",
            key.to_str().unwrap()
        ]
    )
    .status
    .success());
    // Without --origin: the key's origin is served.
    let port = free_port();
    let _log = Proc(
        Command::new(binary("vouch-log"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--key"])
            .arg(&key)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(port);
    let cp = ureq::get(&format!("http://127.0.0.1:{port}/checkpoint"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(cp.starts_with("log.example.org/x\n"), "{cp}");
    // An explicit --origin that is not the key's: an error naming both.
    let o = run(
        "vouch-log",
        &[
            "serve",
            "--origin",
            "log.example.org/other",
            "--listen",
            "127.0.0.1:0",
            "--key",
            key.to_str().unwrap(),
            "--data-dir",
            dir.join("data2").to_str().unwrap(),
        ],
    );
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("log.example.org/x") && err.contains("log.example.org/other"),
        "{err}"
    );
    assert!(!err.contains("generate a key for this origin"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn file_caches_work_for_the_substituter_and_backfill() {
    let dir = temp_dir("filecache");
    let log = Log::start("");
    // A cache on disk, as `nix copy --to file://` lays it out, with the
    // narinfo signed by builder 1.
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(
        cache.join("nix-cache-info"),
        "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n",
    )
    .unwrap();
    let a = attestation(&builder(1), 7, 0);
    let mut n = narinfo_of(&a);
    n.sigs.push(a.nix_signature());
    let hash = a.path.hash_part().to_string();
    std::fs::write(cache.join(format!("{hash}.narinfo")), n.to_text()).unwrap();
    std::fs::write(dir.join("paths"), format!("{}\n", a.path)).unwrap();
    let url = format!("file://{}", cache.display());
    let o = run(
        "vouch",
        &[
            "backfill",
            "--cache",
            &url,
            "--log",
            &log.url,
            "--key",
            &builder(1).public().to_string(),
            "--paths",
            dir.join("paths").to_str().unwrap(),
            "--state",
            dir.join("backfill.state").to_str().unwrap(),
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("1 attestations submitted, 0 missing"), "{out}");
    let cfg = client(&dir, &log);
    let (_sub, sub) = vouch_tests::substituter(&cfg, &url, &[]);
    let (s, b) = vouch_tests::response(ureq::get(&format!("{sub}/nix-cache-info")).call());
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&b).contains("Priority: 40"));
    let (s, b) = vouch_tests::response(ureq::get(&format!("{sub}/{hash}.narinfo")).call());
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_readme_tells_what_a_new_user_needs() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    // Nix still checks Sig: after Vouch, with the nix.conf lines that work.
    for must in [
        "Nix still checks `Sig:` after Vouch accepts a path",
        "lacks a\nvalid signature",
        "trusted-public-keys = ",
        "substituters = http://127.0.0.1:8082",
        // The minimal policy, and how to have one written.
        "quorum none",
        "vouch policy --log-vkey",
        // Where a narinfo comes from.
        "the file the cache serves as `<hash part>.narinfo`",
        // What the first build costs, measured, on what.
        "2-core",
    ] {
        assert!(readme.contains(must), "README must say {must:?}");
    }
    assert!(!readme.contains("about 10 minutes"));
    // Every "README.md, section X" in a message leads to a heading X, and
    // every "PROTOCOL.md §N" to a section N.
    let headings: Vec<&str> = readme
        .lines()
        .filter_map(|l| {
            l.trim_start_matches('#')
                .strip_prefix(' ')
                .filter(|_| l.starts_with('#'))
        })
        .collect();
    let protocol = std::fs::read_to_string(repo().join("spec/PROTOCOL.md")).unwrap();
    let mut pointers = 0;
    for dir in ["client/src", "server/src", "witness/src"] {
        for f in walk(&repo().join(dir)) {
            let src = std::fs::read_to_string(&f).unwrap();
            for (i, _) in src.match_indices("README.md, section ") {
                let rest = &src[i + "README.md, section ".len()..];
                let name: String = rest
                    .trim_start_matches('\\')
                    .trim_start_matches('"')
                    .chars()
                    .take_while(|c| *c != '"' && *c != '\\')
                    .collect();
                assert!(
                    headings.iter().any(|h| *h == name),
                    "{}: README has no section {name:?}",
                    f.display()
                );
                pointers += 1;
            }
            for (i, _) in src.match_indices("PROTOCOL.md §") {
                let n: String = src[i + "PROTOCOL.md §".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                let n = n.trim_end_matches('.');
                assert!(
                    protocol.contains(&format!("## {n}."))
                        || protocol.contains(&format!("### {n} ")),
                    "{}: PROTOCOL.md has no §{n}",
                    f.display()
                );
                pointers += 1;
            }
        }
    }
    assert!(pointers >= 3, "the pointers were found ({pointers})");
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

#[test]
fn vouch_policy_writes_a_policy_clients_accept() {
    let log = Log::start("");
    let o = run("vouch", &["policy", "--log-vkey", &log.vkey]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(out, format!("log {}\nquorum none\n", log.vkey));
    let w = run(
        "vouch-witness",
        &[
            "keygen",
            "--name",
            "w.example/1",
            "--out",
            temp_dir("wk").join("k").to_str().unwrap(),
        ],
    );
    let wv = String::from_utf8_lossy(&w.stdout).trim().to_string();
    let o = run(
        "vouch",
        &[
            "policy",
            "--log-vkey",
            &log.vkey,
            "--witness-vkey",
            &wv,
            "--witness-url",
            "https://w.example",
        ],
    );
    let (out, _) = text(&o);
    let p = vouch_spec::policy::Policy::parse(out.as_bytes()).unwrap();
    assert_eq!(p.witnesses.len(), 1);
    assert_eq!(p.witnesses[0].url.as_deref(), Some("https://w.example"));
    assert!(!run("vouch", &["policy", "--log-vkey", "nonsense"])
        .status
        .success());
    // And a verifier accepts a path with the written policy.
    let dir = temp_dir("policy");
    let a = attestation(&builder(1), 3, 0);
    assert_eq!(log.submit(&a.encode(), false).0, 200);
    let cfg = client(&dir, &log);
    std::fs::write(
        dir.join("policy"),
        run("vouch", &["policy", "--log-vkey", &log.vkey]).stdout,
    )
    .unwrap();
    std::fs::write(dir.join("x.narinfo"), narinfo_of(&a).to_text()).unwrap();
    let o = run(
        "vouch",
        &[
            "verify",
            "--config",
            cfg.to_str().unwrap(),
            dir.join("x.narinfo").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn submit_has_usage_errors_documented_output_and_proof_files() {
    let log = Log::start("");
    let dir = temp_dir("submit");
    // No files: a usage error, nothing sent.
    let o = run("vouch", &["submit", "--log", &log.url]);
    assert_eq!(o.status.code(), Some(2), "clap's usage error status");
    assert!(text(&o).1.contains("required"), "{}", text(&o).1);
    assert_eq!(
        vouch_tests::checkpoint_size(&log.get("/checkpoint").1),
        Some(0)
    );
    // Lines as documented in --help, and proof files with --proofs.
    let a = attestation(&builder(1), 5, 0);
    std::fs::write(dir.join("a.att"), a.encode()).unwrap();
    let f = dir.join("a.att");
    let o = run(
        "vouch",
        &[
            "submit",
            "--log",
            &log.url,
            "--wait",
            "--proofs",
            dir.join("proofs").to_str().unwrap(),
            f.to_str().unwrap(),
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("0 {} new", a.path));
    assert_eq!(lines[1], "covered by checkpoint 1");
    let proof = PathBuf::from(lines[2]);
    assert!(proof.ends_with(format!("{}.vouch/0.tlog-proof", a.path.hash_part())));
    vouch_spec::tlog_proof::TlogProof::parse(&std::fs::read(&proof).unwrap()).unwrap();
    let o = run("vouch", &["submit", "--log", &log.url, f.to_str().unwrap()]);
    assert_eq!(text(&o).0, format!("0 {} duplicate\n", a.path));
    let o = run(
        "vouch",
        &["submit", "--log", &log.url, "--json", f.to_str().unwrap()],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["entries"][0]["duplicate"], true);
    let help = text(&run("vouch", &["submit", "--help"])).0;
    assert!(
        help.contains("<index> <store path> new|duplicate"),
        "{help}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn verify_says_each_thing_once_and_exit_codes_tell_rejected_from_unreachable() {
    let log = Log::start("");
    let dir = temp_dir("verify");
    let cfg = client(&dir, &log);
    let a = attestation(&builder(1), 9, 0);
    std::fs::write(dir.join("x.narinfo"), narinfo_of(&a).to_text()).unwrap();
    let narinfo = dir.join("x.narinfo");
    // Rejected (nobody attested it): status 2, the path named once.
    let o = run(
        "vouch",
        &[
            "verify",
            "--config",
            cfg.to_str().unwrap(),
            narinfo.to_str().unwrap(),
        ],
    );
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    let first = out.lines().next().unwrap();
    assert!(first.starts_with("REJECT /nix/store/"), "{first}");
    assert_eq!(first.matches(&a.path.full()).count(), 1, "{first}");
    // Unreachable log: status 3, the URL named once.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let text_cfg = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&log.url, &dead);
    std::fs::write(&cfg, text_cfg).unwrap();
    let o = run(
        "vouch",
        &[
            "verify",
            "--config",
            cfg.to_str().unwrap(),
            narinfo.to_str().unwrap(),
        ],
    );
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert_eq!(out.matches(&dead).count(), 1, "{out}");
    let help = text(&run("vouch", &["--help"])).0;
    assert!(
        help.contains("2 verify rejected") && help.contains("3 the log"),
        "{help}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_witness_prints_its_monitoring_urls_and_clear_fork_tells_the_truth() {
    let (_, vkey) = log_keygen();
    let w = vouch_tests::Witness::start(
        "w.first-hour.test",
        &format!("[[log]]\norigin = \"{ORIGIN}\"\nvkeys = [\"{vkey}\"]\n"),
    );
    let hash = vouch_spec::hex::encode(&vouch_spec::hash::sha256(ORIGIN.as_bytes()));
    wait_until("the witness prints its monitoring URL", 10, || {
        std::fs::read_to_string(w.dir.join("stderr.log"))
            .unwrap_or_default()
            .contains(&format!(
                "log {ORIGIN}: cosigned checkpoint at http://127.0.0.1:{}/{hash}/checkpoint",
                w.port
            ))
    });
    // clear-fork: "nothing to clear" when there is nothing; "cleared" when
    // there was a fork record.
    let log = Log::start("");
    let dir = temp_dir("clearfork");
    let cfg = client(&dir, &log);
    let (out, _) = text(&run(
        "vouch",
        &["clear-fork", "--config", cfg.to_str().unwrap()],
    ));
    assert!(
        out.contains("no fork is recorded") && !out.contains("cleared"),
        "{out}"
    );
    let base = vouch_spec::hex::encode(&vouch_spec::hash::sha256(ORIGIN.as_bytes()));
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::write(dir.join("state").join(format!("{base}.fork")), "evidence").unwrap();
    let (out, _) = text(&run(
        "vouch",
        &["clear-fork", "--config", cfg.to_str().unwrap()],
    ));
    assert!(out.contains("cleared the fork record"), "{out}");
    assert!(!dir.join("state").join(format!("{base}.fork")).exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn vouch_help_opens_with_what_it_does_for_its_user() {
    let help = text(&run("vouch", &["--help"])).0;
    let first = help.lines().next().unwrap();
    assert!(
        first.contains("Nix substitutes") && !first.contains("library"),
        "{first}"
    );
}

#[test]
fn the_benchmark_load_generator_exits_when_the_log_dies() {
    let mut log = Log::start("");
    let mut bench = Command::new(binary("vouch-bench"))
        .args([
            "ingest",
            "--stream",
            "--log",
            &log.url,
            "--entries",
            "2000000",
            "--connections",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vouch-bench is built with the workspace");
    wait_until("the load generator is submitting", 30, || {
        vouch_tests::checkpoint_size(&log.get("/checkpoint").1).unwrap_or(0) > 0
    });
    log.kill();
    let t = Instant::now();
    loop {
        if let Some(status) = bench.try_wait().unwrap() {
            assert!(!status.success(), "a run whose log died fails");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "vouch-bench is still running 90 s after the log died"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
