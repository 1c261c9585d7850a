//! The read path on a real S3-compatible object store (Garage, started by
//! the test) behind a CDN (Debian's nginx with a test CA, in front of
//! Garage's anonymous website endpoint): `vouch-log` publishes its tiles,
//! bundles and checkpoint, and each attestation's tlog-proof beside the
//! binary cache's narinfos in the same bucket; Go's `sumdb/tlog` verifies
//! what the CDN serves; then, with `vouch-log` stopped, real Nix
//! substitutes through `vouch substituter --bundles` reading the narinfo,
//! the proofs, the checkpoint and the tiles from the CDN alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use vouch_spec::attestation::Attestation;
use vouch_spec::tile::{Tile, TileKind};
use vouch_tests::garage::{Garage, ACCESS_KEY, REGION, SECRET_KEY};
use vouch_tests::nixtool::{copy_from, narinfo, signed_hello};
use vouch_tests::tls::{Nginx, Site, TestCa};
use vouch_tests::{attestation, builder, free_port, log_keygen, temp_dir, wait_port, Log, Proc};

/// `PUT`s a file into the bucket with curl's SigV4 signing.
fn upload(g: &Garage, key: &str, file: &Path) {
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "--aws-sigv4"])
        .arg(format!("aws:amz:{REGION}:s3"))
        .arg("--user")
        .arg(format!("{ACCESS_KEY}:{SECRET_KEY}"))
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .arg("-T")
        .arg(file)
        .arg(format!("{}/{}/{key}", g.s3, g.bucket))
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "uploading {key}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// GET through the CDN: (status, lower-cased headers, body).
fn cdn_get(ca: &Path, url: &str) -> (u16, String, Vec<u8>) {
    let dir = temp_dir("cdn-get");
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(ca)
        .arg("-D")
        .arg(dir.join("h"))
        .arg("-o")
        .arg(dir.join("b"))
        .args(["-w", "%{http_code}", url])
        .output()
        .expect("curl");
    let status = String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0);
    let headers = std::fs::read_to_string(dir.join("h"))
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body = std::fs::read(dir.join("b")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    (status, headers, body)
}

#[test]
fn nix_substitutes_from_an_s3_bucket_behind_a_cdn_with_the_log_stopped() {
    let dir = temp_dir("s3");
    let keys = [builder(51), builder(52)];
    let local = dir.join("cache");
    let (home, hello) = signed_hello(&dir, "s3", &keys, &local);

    // The bucket holds the binary cache under cache/ …
    let garage = Garage::start("vouch");
    for f in files(&local) {
        let rel = f
            .strip_prefix(&local)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        upload(&garage, &format!("cache/{rel}"), &f);
    }
    // … and the log publishes its read path under log/ and the proofs
    // beside the narinfos.
    let (logdir, vkey) = log_keygen();
    let mut log = Log::start_with_env(
        logdir,
        vkey,
        &format!(
            "[publish]\ntiles = \"s3://vouch/log\"\nproofs = \"s3://vouch/cache\"\n{}",
            garage.publish_s3_toml()
        ),
        true,
        &garage.env(),
        free_port(),
    );
    for k in &keys {
        let a = Attestation::from_narinfo(&narinfo(&local, &hello), &k.public()).unwrap();
        assert_eq!(log.submit(&a.encode(), false).0, 200);
    }
    // More entries after them: the proofs stay under an old checkpoint.
    let body: Vec<u8> = (0..300)
        .flat_map(|i| attestation(&builder(53), i, 0).encode())
        .collect();
    assert_eq!(log.submit(&body, false).0, 200);
    let size = 302u64;

    // A CDN with a real TLS certificate in front of the bucket.
    let ca = TestCa::new("s3-cdn");
    let (cert, key) = ca.issue("cdn", &["localhost"]);
    let nginx = Nginx::start(
        &cert,
        &key,
        &[Site::Bucket {
            to: garage.web.clone(),
            host: garage.web_host(),
        }],
    );
    let cdn = nginx.urls[0].clone();
    let ca_file = ca.cert.clone();
    vouch_tests::wait_until("the log publishes to the bucket", 60, || {
        let (s, _, b) = cdn_get(&ca_file, &format!("{cdn}/log/checkpoint"));
        s == 200 && vouch_tests::checkpoint_size(&b) == Some(size)
    });
    // tlog-tiles cache headers, from the object metadata.
    let (s, h, _) = cdn_get(&ca_file, &format!("{cdn}/log/tile/0/000"));
    assert_eq!(s, 200);
    assert!(
        h.contains("cache-control: public, max-age=31536000, immutable"),
        "{h}"
    );
    let (_, h, _) = cdn_get(&ca_file, &format!("{cdn}/log/checkpoint"));
    assert!(h.contains("cache-control: public, max-age=5"), "{h}");

    // Go's sumdb/tlog verifies what the CDN serves.
    let (_, _, cp) = cdn_get(&ca_file, &format!("{cdn}/log/checkpoint"));
    let m = vouch_tests::mirror_tiles(
        |p| {
            let (s, _, b) = cdn_get(&ca_file, &format!("{cdn}/log/{p}"));
            (s, b)
        },
        size,
        &cp,
    );
    vouch_tests::go_verify_log(&m, &log.vkey, size);

    // The log stops. Nix substitutes from the CDN alone.
    log.kill();
    std::fs::write(
        dir.join("policy"),
        format!("log {}\nquorum none\n", log.vkey),
    )
    .unwrap();
    let trusted: Vec<String> = keys.iter().map(|k| format!("\"{}\"", k.public())).collect();
    let config = dir.join("client.toml");
    std::fs::write(
        &config,
        format!(
            "log_url = \"{cdn}/log\"\npolicy_file = \"{}\"\ntrusted_builders = [{}]\nrequired_builders = 2\nstate_dir = \"{}\"\n",
            dir.join("policy").display(),
            trusted.join(", "),
            dir.join("state").display()
        ),
    )
    .unwrap();
    let port = free_port();
    let _sub = Proc(
        Command::new(vouch_tests::binary("vouch"))
            .args([
                "substituter",
                "--bundles",
                "--decision-cache-secs",
                "0",
                "--config",
            ])
            .arg(&config)
            .args([
                "--upstream",
                &format!("{cdn}/cache"),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env("NIX_SSL_CERT_FILE", &ca_file)
            .env("VOUCH_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(port);
    let tpk = keys
        .iter()
        .map(|k| k.public().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let (ok, out) = copy_from(
        &home,
        &format!("http://127.0.0.1:{port}"),
        &dir.join("store"),
        &hello,
        &tpk,
    );
    assert!(ok, "nix copy through the CDN failed:\n{out}");
    // Freshness came from the CDN's checkpoint, not the proofs' old one.
    let kept = files(&dir.join("state"))
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .any(|b| vouch_tests::checkpoint_size(&b) == Some(size));
    assert!(kept, "the client keeps the CDN's size-{size} checkpoint");
    drop(nginx);
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGKILL of the log while it publishes to the bucket: every time, the
/// checkpoint in the bucket verifies from the tiles in the bucket (Go),
/// until two kills are seen to land between a round's tiles and its
/// checkpoint; the restarted log then completes the publication.
#[test]
fn sigkill_while_publishing_to_s3_leaves_the_bucket_verifiable() {
    let garage = Garage::start("vouch");
    let (logdir, vkey) = log_keygen();
    let mut log = Log::start_with_env(
        logdir,
        vkey,
        &format!(
            "batch_max_entries = 300\n[publish]\ntiles = \"s3://vouch/log\"\n{}",
            garage.publish_s3_toml()
        ),
        true,
        &garage.env(),
        free_port(),
    );
    // Anonymous reads from the website endpoint, naming the bucket, on
    // one kept-alive connection: every round mirrors every tile, and a
    // process per tile made the rounds slow as the log grew.
    let host = garage.web_host();
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(30))
        .build();
    let get = |p: &str| {
        vouch_tests::response(
            agent
                .get(&format!("http://{}/log/{p}", garage.web))
                .set("Host", &host)
                .call(),
        )
    };
    let (mut next, mut ahead, mut round) = (0u64, 0, 0u64);
    while ahead < 2 {
        round += 1;
        assert!(
            round <= 40,
            "no kill landed between tiles and checkpoint in 40 rounds"
        );
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_millis(150 + 97 * (round % 8));
        while std::time::Instant::now() < deadline {
            let body: Vec<u8> = (0..300)
                .flat_map(|i| attestation(&builder(54), next + i, 0).encode())
                .collect();
            assert_eq!(log.submit(&body, false).0, 200);
            next += 300;
        }
        log.kill();
        let (s, cp) = get("checkpoint");
        if s == 200 {
            let size = vouch_tests::checkpoint_size(&cp).unwrap();
            let m = vouch_tests::mirror_tiles(get, size, &cp);
            vouch_tests::go_verify_log(&m, &log.vkey, size);
            let _ = std::fs::remove_dir_all(&m);
            let beyond = ((size % 256 + 1)..=256).any(|w| {
                let t = Tile {
                    kind: TileKind::Entries,
                    index: size / 256,
                    width: w as u16,
                };
                get(&t.path()).0 == 200
            });
            if beyond {
                ahead += 1;
            }
        }
        log.restart();
    }
    vouch_tests::wait_until("the restarted log completes the publication", 60, || {
        let (s, cp) = get("checkpoint");
        s == 200 && vouch_tests::checkpoint_size(&cp) == Some(next)
    });
    let (_, cp) = get("checkpoint");
    let m = vouch_tests::mirror_tiles(get, next, &cp);
    vouch_tests::go_verify_log(&m, &log.vkey, next);
    eprintln!("{ahead} of {round} kills left tiles in the bucket beyond its checkpoint");
}
