//! Publishing the read path (`spec/PROTOCOL.md` §4.3) to a directory, the
//! way nginx or a CDN pulling from disk serves it: Go's `sumdb/tlog`
//! verifies the published tiles, tlog-proofs land beside the narinfos of
//! a real Nix binary cache, and with `vouch-log` stopped real Nix
//! substitutes through `vouch substituter --bundles` with the narinfo,
//! proofs, checkpoint and tiles all read from static files, a proof
//! published long ago made fresh by a consistency proof from the tiles.
//! SIGKILLs of the log while it publishes leave the published checkpoint
//! verifiable every time, and a restart completes what was left.

use std::path::Path;
use std::time::{Duration, Instant};

use vouch_spec::attestation::Attestation;
use vouch_spec::tile::{Tile, TileKind};
use vouch_tests::nixtool::{copy_from, narinfo, signed_hello};
use vouch_tests::{attestation, builder, static_server, temp_dir, Log};

/// The size of the checkpoint published in `dir`, if any.
fn published_size(dir: &Path) -> Option<u64> {
    let cp = std::fs::read(dir.join("checkpoint")).ok()?;
    vouch_tests::checkpoint_size(&cp)
}

fn wait_published(dir: &Path, size: u64) {
    vouch_tests::wait_until("the log publishes its checkpoint", 60, || {
        published_size(dir).is_some_and(|s| s >= size)
    });
}

#[test]
fn nix_substitutes_from_published_files_with_the_log_stopped() {
    let dir = temp_dir("publish");
    let (bucket, cache) = (dir.join("bucket"), dir.join("cache"));
    let keys = [builder(41), builder(42)];
    let (home, hello) = signed_hello(&dir, "pub", &keys, &cache);

    let mut log = Log::start(&format!(
        "[publish]\ntiles = \"file://{}\"\nproofs = \"file://{}\"\n",
        bucket.display(),
        cache.display()
    ));
    for k in &keys {
        let a = Attestation::from_narinfo(&narinfo(&cache, &hello), &k.public()).unwrap();
        assert_eq!(log.submit(&a.encode(), false).0, 200);
    }
    wait_published(&bucket, 2);
    let hash = &Path::new(&hello).file_name().unwrap().to_str().unwrap()[..32];
    // The proofs beside the narinfos follow the checkpoint on their own
    // marker, with no order between the two publishers: wait for them too.
    vouch_tests::wait_until("both proofs are beside the narinfo", 60, || {
        (0..2).all(|n| cache.join(format!("{hash}.vouch/{n}.tlog-proof")).exists())
    });
    // Later entries (a full tile and more): the proofs above stay under the
    // old checkpoint and must be made fresh from the tiles.
    for chunk in 0..3u64 {
        let body: Vec<u8> = (0..200)
            .flat_map(|i| attestation(&builder(43), chunk * 200 + i, 0).encode())
            .collect();
        assert_eq!(log.submit(&body, false).0, 200);
    }
    wait_published(&bucket, 602);
    vouch_tests::go_verify_log(&bucket, &log.vkey, 602);
    // Cache headers are the backend's business (S3 metadata, nginx for a
    // directory); the objects are exactly the log's own.
    for t in Tile::all_for_size(602) {
        let (s, body) = log.get(&format!("/{}", t.path()));
        assert_eq!(s, 200);
        assert_eq!(std::fs::read(bucket.join(t.path())).unwrap(), body);
    }
    let first = std::fs::read(cache.join(format!("{hash}.vouch/1.tlog-proof"))).unwrap();
    let first = vouch_spec::tlog_proof::TlogProof::parse(&first).unwrap();
    assert!(
        vouch_tests::checkpoint_size(&first.checkpoint).unwrap() <= 2,
        "published under an old checkpoint"
    );

    // The log stops; the files are all there is.
    log.kill();
    let (_cdn, cdn) = static_server(&bucket);
    let (_up, upstream) = static_server(&cache);
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
            "log_url = \"{cdn}\"\npolicy_file = \"{}\"\ntrusted_builders = [{}]\nrequired_builders = 2\nstate_dir = \"{}\"\n",
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
    assert!(ok, "nix copy from published files failed:\n{out}");
    // The client advanced its kept checkpoint to the published one: the
    // freshness came from the bucket, not from the proofs' old checkpoint.
    let kept = std::fs::read_dir(dir.join("state"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .any(|b| vouch_tests::checkpoint_size(&b) == Some(602));
    assert!(kept, "the client keeps the published size-602 checkpoint");
    // A bucket whose checkpoint is not the log's is refused.
    std::fs::write(
        bucket.join("checkpoint"),
        b"log.vouch.test/e2e\n1\nAAAA\n\n",
    )
    .unwrap();
    let (ok, _) = copy_from(&home, &sub, &dir.join("store2"), &hello, &tpk);
    assert!(!ok, "nix copied under a forged published checkpoint");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigkill_while_publishing_leaves_the_bucket_verifiable_and_a_restart_completes_it() {
    let dir = temp_dir("publish-kill");
    let bucket = dir.join("bucket");
    let mut log = Log::start(&format!(
        "batch_max_entries = 300\n[publish]\ntiles = \"file://{}\"\n",
        bucket.display()
    ));
    let mut next = 0u64;
    let mut ahead = 0;
    let mut round = 0u64;
    // Until two kills are seen to land between a round's tiles and its
    // checkpoint (a quarter of them do, measured here).
    while ahead < 2 {
        round += 1;
        assert!(
            round <= 40,
            "no kill landed between tiles and checkpoint in 40 rounds"
        );
        // Submissions keep the publisher busy; the kill lands mid-publish.
        let deadline = Instant::now() + Duration::from_millis(150 + 97 * (round % 8));
        while Instant::now() < deadline {
            let body: Vec<u8> = (0..300)
                .flat_map(|i| attestation(&builder(44), next + i, 0).encode())
                .collect();
            assert_eq!(log.submit(&body, false).0, 200);
            next += 300;
        }
        log.kill();
        // Whatever the moment, the published checkpoint verifies from the
        // published tiles alone.
        if let Some(size) = published_size(&bucket) {
            vouch_tests::go_verify_log(&bucket, &log.vkey, size);
            // A bundle holding entries beyond it: killed between a round's
            // tiles and its checkpoint.
            let beyond = ((size % 256 + 1)..=256).any(|w| {
                let t = Tile {
                    kind: TileKind::Entries,
                    index: size / 256,
                    width: w as u16,
                };
                bucket.join(t.path()).exists()
            });
            if beyond {
                ahead += 1;
            }
        }
        log.restart();
    }
    // The restarted log completes the publication.
    wait_published(&bucket, next);
    vouch_tests::go_verify_log(&bucket, &log.vkey, next);
    assert_eq!(
        std::fs::read(bucket.join("checkpoint")).unwrap(),
        log.get("/checkpoint").1
    );
    eprintln!("{ahead} of {round} kills left tiles published beyond the published checkpoint");
    let _ = std::fs::remove_dir_all(&dir);
}
