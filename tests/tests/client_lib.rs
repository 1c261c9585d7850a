//! The verification library against a real log: acceptance, the on-disk
//! cache of verified tiles, and the stored checkpoint moving forward only
//! through verified consistency.

use vouch::verifier::{ClientConfig, Verifier};
use vouch_spec::accept::Rejection;
use vouch_tests::{attestation, builder, narinfo_for, temp_dir, Log};

#[test]
fn verifier_accepts_caches_verified_tiles_and_advances_by_consistency() {
    let log = Log::start("");
    assert_eq!(
        log.submit(&vouch_tests::both_builders(300, 0), false).0,
        200
    );
    let dir = temp_dir("client");
    std::fs::write(
        dir.join("policy"),
        format!("log {}\nquorum none\n", log.vkey),
    )
    .unwrap();
    let cfg = ClientConfig {
        max_checkpoint_age_secs: 60,
        lookup_proofs: false,
        ..vouch_tests::client_config(&log.url, &dir.join("policy"), &dir.join("state"))
    };
    let v = Verifier::new(cfg.clone()).unwrap();
    let a = v.check_narinfo(&narinfo_for(5)).unwrap();
    assert_eq!(a.builders.len(), 2);
    assert_eq!(a.tree_size, 600);
    // Entries 10 and 11 sit in the full first level-0 tile: it is now cached.
    let cached: Vec<_> = walk(&dir.join("state/tiles"));
    assert!(
        cached.iter().any(|p| p.ends_with("tile/0/000")),
        "{cached:?}"
    );
    // A corrupted cache makes verification fail, never pass.
    let t = cached.iter().find(|p| p.ends_with("tile/0/000")).unwrap();
    let mut data = std::fs::read(t).unwrap();
    data[5 * 64] ^= 1;
    std::fs::write(t, &data).unwrap();
    assert!(matches!(
        v.check_narinfo(&narinfo_for(5)),
        Err(e) if matches!(e.rule(), Some(Rejection::BadEntry { .. }))
    ));
    std::fs::remove_file(t).unwrap();
    assert!(v.check_narinfo(&narinfo_for(5)).is_ok());
    // With tlog-proofs in the lookup answer: one round trip, no tiles.
    let vp = Verifier::new(ClientConfig {
        lookup_proofs: true,
        state_dir: dir.join("state-p"),
        ..cfg.clone()
    })
    .unwrap();
    let a = vp.check_narinfo(&narinfo_for(5)).unwrap();
    assert_eq!((a.builders.len(), a.tree_size), (2, 600));
    assert!(walk(&dir.join("state-p/tiles")).is_empty());
    // The log grows; the stored checkpoint follows through a consistency proof.
    assert_eq!(
        log.submit(&attestation(&builder(1), 1000, 0).encode(), false)
            .0,
        200
    );
    assert_eq!(v.checkpoint().unwrap().checkpoint.size, 601);
    // A path only one builder attested is refused with the reason.
    let r = v.check_narinfo(&narinfo_for(1000)).unwrap_err();
    assert!(
        matches!(
            r.rule(),
            Some(Rejection::TooFewBuilders {
                agreeing: 1,
                required: 2,
                ..
            })
        ),
        "{r}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn walk(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
