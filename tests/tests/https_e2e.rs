//! Vouch behind a real TLS reverse proxy: Debian's nginx, with a
//! certificate authority made by the test, in front of the log, a witness,
//! a binary cache and the substituter. Every outgoing request of every
//! Vouch party goes over HTTPS here: the log to its witness, the witness's
//! pull mode, the sender, backfill, the monitor, the substituter to the
//! cache and the log, and real Nix to the substituter. Certificates the
//! client cannot trust are refused with an error naming the URL; behind the
//! proxy, rate limits apply per real client.

use std::path::Path;
use std::process::Command;

use vouch_spec::nix::NixSecretKey;
use vouch_tests::nixtool::{key_file, nix_build, nix_with, publish, sh_derivation, sign};
use vouch_tests::tls::{Nginx, Site, TestCa, PROXY_ADDRESS};
use vouch_tests::{
    binary, builder, checkpoint_size, free_port, log_keygen, temp_dir, wait_until, Log, Proc,
    Witness, ORIGIN,
};

/// Runs a `vouch` or `vouch-witness` command trusting `ca` (and nothing
/// from the caller's environment): (exit code, stdout, stderr).
fn run(bin: &str, args: &[&str], ca: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(binary(bin))
        .args(args)
        .env_remove("NIX_SSL_CERT_FILE")
        .env("SSL_CERT_FILE", ca)
        .env("VOUCH_LOG", "warn")
        .output()
        .expect("running a vouch binary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn hash_part(store_path: &str) -> &str {
    &Path::new(store_path).file_name().unwrap().to_str().unwrap()[..32]
}

#[test]
fn every_party_speaks_https_through_nginx_and_untrusted_certificates_are_refused() {
    let ca = TestCa::new("Vouch test CA");
    let (cert, key) = ca.issue("localhost", &["localhost"]);
    let ca_path = ca.cert.to_str().unwrap().to_string();
    // Nix's variable first: it wins over SSL_CERT_FILE (which this
    // machine may set for the system store).
    let env = [("NIX_SSL_CERT_FILE", ca_path.as_str())];
    let dir = temp_dir("https");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();

    // Real Nix builds three paths; a cache key signs two and publishes
    // them as a binary cache; the third is built with the post-build hook.
    let nonce = std::process::id();
    std::fs::write(
        dir.join("default.nix"),
        format!(
            "{{\n  a = {};\n  b = {};\n  hooked = {};\n}}",
            sh_derivation("vouch-tls-a", &format!("echo a {nonce} > $out")),
            sh_derivation("vouch-tls-b", &format!("echo b {nonce} > $out")),
            sh_derivation("vouch-tls-hooked", &format!("echo hooked {nonce} > $out")),
        ),
    )
    .unwrap();
    let nixfile = dir.join("default.nix");
    let build = |attr: &str| nix_build(&home, &[nixfile.to_str().unwrap(), "-A", attr]);
    let (a, b) = (build("a"), build("b"));
    let cache_key = NixSecretKey::from_seed("cache.tls.test-1", &[31; 32]).unwrap();
    sign(&home, &dir, &cache_key, &[&a, &b]);
    let cache = dir.join("cache");
    publish(&home, &cache, &[&a, &b]);

    // The witness (push) and the log's and substituter's ports, then nginx
    // in front of all of them and of the cache.
    let (log_dir, log_vkey) = log_keygen();
    let w = Witness::start(
        "w1.tls.test",
        &format!("[[log]]\norigin = \"{ORIGIN}\"\nvkeys = [\"{log_vkey}\"]\n"),
    );
    let (log_port, sub_port) = (free_port(), free_port());
    let nginx = Nginx::start(
        &cert,
        &key,
        &[
            Site::Proxy(format!("127.0.0.1:{log_port}")),
            Site::Proxy(format!("127.0.0.1:{}", w.port)),
            Site::Files(cache.clone()),
            Site::Proxy(format!("127.0.0.1:{sub_port}")),
        ],
    );
    let (log_url, witness_url, cache_url, sub_url) = (
        nginx.urls[0].clone(),
        nginx.urls[1].clone(),
        nginx.urls[2].clone(),
        nginx.urls[3].clone(),
    );

    // The log sends every checkpoint to the witness over HTTPS and serves
    // only cosigned ones.
    let policy = format!(
        "log {log_vkey}\nwitness w1 {} {witness_url}\nquorum w1\n",
        w.vkey
    );
    std::fs::write(log_dir.join("witnesses.policy"), &policy).unwrap();
    let log = Log::start_with_env(
        log_dir.clone(),
        log_vkey.clone(),
        &format!(
            "witness_policy = \"{}\"\ntrusted_proxies = [\"{PROXY_ADDRESS}\"]",
            log_dir.join("witnesses.policy").display()
        ),
        true,
        &env,
        log_port,
    );
    assert_eq!(log.get("/checkpoint").0, 200, "cosigned over HTTPS");

    // A second witness pulls the log through nginx.
    let puller = Witness::start_env(
        "w2.tls.test",
        &format!("[[log]]\norigin = \"{ORIGIN}\"\nvkeys = [\"{log_vkey}\"]\nurl = \"{log_url}\"\n"),
        &env,
    );

    // Backfill logs the cache's own signatures, fetched over HTTPS.
    std::fs::write(dir.join("paths"), format!("{a}\n{b}\n")).unwrap();
    let state = dir.join("backfill.state");
    let (code, out, err) = run(
        "vouch",
        &[
            "backfill",
            "--cache",
            &cache_url,
            "--log",
            &log_url,
            "--key",
            &cache_key.public().to_string(),
            "--paths",
            dir.join("paths").to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ],
        &ca.cert,
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("2 attestations submitted"), "{out}");

    // The post-build hook spools an attestation; the sender delivers it
    // over HTTPS.
    let spool = dir.join("spool");
    let bkey = key_file(&dir, &builder(33));
    let hook = dir.join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nexec {} post-build-hook --key {} --spool {}\n",
            binary("vouch").display(),
            bkey.display(),
            spool.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&hook)
        .status()
        .unwrap();
    let spooled = || std::fs::read_dir(&spool).map_or(0, |d| d.count());
    let hooked = nix_build(
        &home,
        &[
            nixfile.to_str().unwrap(),
            "-A",
            "hooked",
            "--option",
            "post-build-hook",
            hook.to_str().unwrap(),
        ],
    );
    assert_eq!(spooled(), 1, "the hook spooled the build's attestation");
    let (code, out, err) = run(
        "vouch",
        &[
            "sender",
            "--once",
            "--log",
            &log_url,
            "--spool",
            spool.to_str().unwrap(),
        ],
        &ca.cert,
    );
    assert_eq!(code, Some(0), "{out}{err}");
    // Served once the witness cosigned a checkpoint covering it.
    wait_until("the hooked build is logged and served", 30, || {
        let (_, body) = log.get(&format!("/vouch/v1/lookup/{}", hash_part(&hooked)));
        String::from_utf8_lossy(&body).contains(&hooked)
    });

    // The monitor reads every entry over HTTPS.
    let (code, out, err) = run(
        "vouch-witness",
        &["monitor", "--log", &log_url, "--vkey", &log_vkey, "--once"],
        &ca.cert,
    );
    assert_eq!(code, Some(0), "{out}{err}");

    // The pulling witness caught up over HTTPS.
    wait_until("the pulling witness cosigns over HTTPS", 60, || {
        puller
            .cosigned(ORIGIN)
            .and_then(|c| checkpoint_size(&c))
            .is_some_and(|s| s >= 3)
    });

    // The substituter fetches the cache and the log over HTTPS; real Nix
    // substitutes through it over HTTPS (nginx in front of it too).
    std::fs::write(
        dir.join("client.policy"),
        format!("log {log_vkey}\nwitness w1 {}\nquorum w1\n", w.vkey),
    )
    .unwrap();
    std::fs::write(
        dir.join("client.toml"),
        format!(
            "log_url = \"{log_url}\"\npolicy_file = \"{}\"\ntrusted_builders = [\"{}\"]\nstate_dir = \"{}\"\n\n[substituter]\nupstreams = [\"{cache_url}\"]\nlisten = \"127.0.0.1:{sub_port}\"\n",
            dir.join("client.policy").display(),
            cache_key.public(),
            dir.join("client-state").display()
        ),
    )
    .unwrap();
    let _sub = Proc(
        Command::new(binary("vouch"))
            .args(["substituter", "--config"])
            .arg(dir.join("client.toml"))
            .env_remove("NIX_SSL_CERT_FILE")
            .env("SSL_CERT_FILE", &ca.cert)
            .env("VOUCH_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    vouch_tests::wait_port(sub_port);
    let dest = dir.join("dest-store");
    let (ok, out) = nix_with(
        &home,
        &[
            "nix",
            "copy",
            "--from",
            &sub_url,
            "--to",
            dest.to_str().unwrap(),
            &a,
            "--option",
            "trusted-public-keys",
            &cache_key.public().to_string(),
        ],
        &env,
    );
    assert!(ok, "Nix substitutes through vouch over HTTPS:\n{out}");
    assert!(dest.join(a.trim_start_matches('/')).exists());

    // Certificates the client cannot trust are refused, naming the URL.
    let other = TestCa::new("Some other CA");
    let out_dir = dir.join("proofs");
    let (code, _, err) = run(
        "vouch",
        &[
            "proof",
            "--log",
            &log_url,
            "--out",
            out_dir.to_str().unwrap(),
            &a,
        ],
        &other.cert,
    );
    assert_ne!(code, Some(0));
    assert!(
        err.contains(&format!("{log_url}/vouch/v1/lookup/")) && err.contains("unknown authority"),
        "{err}"
    );
    let by_ip = log_url.replace("localhost", "127.0.0.1");
    let (code, _, err) = run(
        "vouch",
        &[
            "proof",
            "--log",
            &by_ip,
            "--out",
            out_dir.to_str().unwrap(),
            &a,
        ],
        &ca.cert,
    );
    assert_ne!(code, Some(0));
    assert!(
        err.contains(&by_ip) && err.contains("another host name"),
        "{err}"
    );
    let plain = log_url.replace("https://", "http://");
    let (code, _, err) = run(
        "vouch",
        &[
            "proof",
            "--log",
            &plain,
            "--out",
            out_dir.to_str().unwrap(),
            &a,
        ],
        &ca.cert,
    );
    assert_ne!(code, Some(0));
    assert!(
        err.contains(&plain) && err.contains("use https://"),
        "{err}"
    );
    // The trusted one works (and the URL is named once per error above).
    let (code, out, err) = run(
        "vouch",
        &[
            "proof",
            "--log",
            &log_url,
            "--out",
            out_dir.to_str().unwrap(),
            &a,
        ],
        &ca.cert,
    );
    assert_eq!(code, Some(0), "{out}{err}");

    // Static reads carry what a CDN needs: ETag, immutable caching, HEAD,
    // and 304 for a validator it already holds.
    let curl = |extra: &[&str], path: &str| {
        let out = Command::new("curl")
            .args(["-s", "-D", "-", "-o", "/dev/null", "--cacert", &ca_path])
            .args(extra)
            .arg(format!("{log_url}{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
    };
    let size = checkpoint_size(&log.get("/checkpoint").1).unwrap();
    let tile = format!("/tile/0/000.p/{size}");
    let h = curl(&["-I"], &tile);
    assert!(h.starts_with("http/1.1 200"), "{h}");
    assert!(
        h.contains("cache-control: public, max-age=31536000, immutable"),
        "{h}"
    );
    let etag = h
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an ETag")
        .trim()
        .to_string();
    let h = curl(&["-H", &format!("If-None-Match: {etag}")], &tile);
    assert!(h.starts_with("http/1.1 304"), "{h}");
    let h = curl(&["-I"], "/checkpoint");
    assert!(h.contains("etag: \"") && h.contains("max-age="), "{h}");

    drop(nginx);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `curl` from a chosen loopback address: the status of a submission.
fn submit_from(source: &str, url: &str, ca: &str, body: &Path, xff: Option<&str>) -> String {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--interface",
        source,
    ])
    .args([
        "--cacert",
        ca,
        "-H",
        "Content-Type: text/plain",
        "--data-binary",
    ])
    .arg(format!("@{}", body.display()));
    if let Some(x) = xff {
        c.args(["-H", &format!("X-Forwarded-For: {x}")]);
    }
    let out = c.arg(format!("{url}/vouch/v1/submit")).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn behind_the_proxy_rate_limits_apply_per_real_client_and_forged_headers_are_ignored() {
    let ca = TestCa::new("Vouch test CA");
    let (cert, key) = ca.issue("localhost", &["localhost"]);
    let ca_path = ca.cert.to_str().unwrap();
    let (log_dir, vkey) = log_keygen();
    let port = free_port();
    let nginx = Nginx::start(&cert, &key, &[Site::Proxy(format!("127.0.0.1:{port}"))]);
    let _log = Log::start_with_env(
        log_dir,
        vkey,
        &format!(
            "rate_limit_per_second = 0.001\nrate_limit_burst = 2.0\ntrusted_proxies = [\"{PROXY_ADDRESS}\"]"
        ),
        true,
        &[],
        port,
    );
    let dir = temp_dir("ratelimit");
    let body = dir.join("att");
    std::fs::write(&body, vouch_tests::attestation(&builder(40), 1, 0).encode()).unwrap();
    let via = &nginx.urls[0];
    // Client A (127.0.0.2) through the proxy: its burst of two, then 429,
    // also when it forges X-Forwarded-For (the proxy appends the real one).
    assert_eq!(submit_from("127.0.0.2", via, ca_path, &body, None), "200");
    assert_eq!(submit_from("127.0.0.2", via, ca_path, &body, None), "200");
    assert_eq!(submit_from("127.0.0.2", via, ca_path, &body, None), "429");
    assert_eq!(
        submit_from("127.0.0.2", via, ca_path, &body, Some("203.0.113.9")),
        "429"
    );
    // Client B (127.0.0.3) behind the same proxy has its own bucket.
    assert_eq!(submit_from("127.0.0.3", via, ca_path, &body, None), "200");
    // Directly (the peer is no trusted proxy): forged headers are ignored,
    // whatever they claim each time.
    let direct = format!("http://127.0.0.1:{port}");
    for (i, want) in ["200", "200", "429"].iter().enumerate() {
        let xff = format!("198.51.100.{i}");
        assert_eq!(
            submit_from("127.0.0.4", &direct, ca_path, &body, Some(&xff)),
            *want,
            "direct request {i}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
