//! The machine's ceilings for what ingest must do per entry: verify an
//! Ed25519 signature (alone and in batches, as the log does) and SHA-256.

use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::Serialize;

/// Rates on one core, operations per second.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Ceilings {
    /// `verify_strict` one at a time.
    pub ed25519_verify: f64,
    /// `ed25519_dalek::verify_batch` in batches of 256 (a request's worth):
    /// the ceiling issue 18's ratios are taken against.
    pub ed25519_batch256: f64,
    /// The log's own batch check (`vouch_spec::batch::first_invalid`,
    /// each key's terms summed) on 256 signatures by 16 keys, as
    /// `vouch-bench ingest` submits them. Ratios in BENCHMARKS.md stay
    /// against `ed25519_batch256`, the ceiling issue 18 names.
    #[serde(default)]
    pub log_batch256_16keys: f64,
    /// The same on 256 signatures by 256 keys (nothing to sum).
    #[serde(default)]
    pub log_batch256_256keys: f64,
    /// SHA-256 of 64-byte inputs.
    pub sha256_64b: f64,
    /// SHA-256 of 700-byte inputs (a typical entry's leaf hash).
    pub sha256_700b: f64,
    /// Cores the log can use.
    pub cores: usize,
}

fn rate(secs: f64, mut f: impl FnMut() -> u64) -> f64 {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs_f64(secs) {
        n += f();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// `verify_batch` of 256 signatures per second on this thread.
fn batch256_rate(secs: f64, msgs: &[Vec<u8>], sigs: &[Signature], vks: &[VerifyingKey]) -> f64 {
    let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
    rate(secs, || {
        if ed25519_dalek::verify_batch(&refs, sigs, vks).is_ok() {
            256
        } else {
            0
        }
    })
}

/// [`Ceilings::ed25519_batch256`] alone, measured for about `secs`
/// seconds on this thread.
pub fn batch256(secs: f64) -> f64 {
    let i = inputs();
    batch256_rate(secs, &i.msgs, &i.sigs, &i.vks)
}

/// 256 keys, each signing one message shaped like a Nix fingerprint.
struct Inputs {
    keys: Vec<SigningKey>,
    vks: Vec<VerifyingKey>,
    msgs: Vec<Vec<u8>>,
    sigs: Vec<Signature>,
}

fn inputs() -> Inputs {
    let keys: Vec<SigningKey> = (0..256u32)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            SigningKey::from_bytes(&seed)
        })
        .collect();
    // Messages shaped like Nix fingerprints (~400 bytes).
    let msgs: Vec<Vec<u8>> = (0..256u32)
        .map(|i| {
            format!(
                "1;/nix/store/{i:032}-pkg;sha256:{};{}",
                "a".repeat(52),
                "r".repeat(300)
            )
            .into_bytes()
        })
        .collect();
    let sigs = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    let vks = keys.iter().map(|k| k.verifying_key()).collect();
    Inputs {
        keys,
        vks,
        msgs,
        sigs,
    }
}

/// Measures each ceiling for about `secs` seconds on this thread.
pub fn measure(secs: f64) -> Ceilings {
    let Inputs {
        keys,
        vks,
        msgs,
        sigs,
    } = inputs();
    let mut i = 0;
    let ed25519_verify = rate(secs, || {
        i = (i + 1) % 256;
        u64::from(vks[i].verify_strict(&msgs[i], &sigs[i]).is_ok())
    });
    let ed25519_batch256 = batch256_rate(secs, &msgs, &sigs, &vks);
    let log_batch = |distinct: usize| {
        let sigs: Vec<Signature> = (0..256)
            .map(|i| keys[i % distinct].sign(&msgs[i]))
            .collect();
        let items: Vec<vouch_spec::batch::Item> = (0..256)
            .map(|i| vouch_spec::batch::Item {
                msg: &msgs[i],
                sig: sigs[i].to_bytes(),
                key: vks[i % distinct],
            })
            .collect();
        rate(secs, || {
            if vouch_spec::batch::first_invalid(&items).is_none() {
                256
            } else {
                0
            }
        })
    };
    let log_batch256_16keys = log_batch(16);
    let log_batch256_256keys = log_batch(256);
    let block = [7u8; 64];
    let sha256_64b = rate(secs, || {
        for _ in 0..1000 {
            std::hint::black_box(vouch_spec::hash::sha256(std::hint::black_box(&block)));
        }
        1000
    });
    let entry = [7u8; 700];
    let sha256_700b = rate(secs, || {
        for _ in 0..100 {
            std::hint::black_box(vouch_spec::hash::sha256(std::hint::black_box(&entry)));
        }
        100
    });
    Ceilings {
        ed25519_verify,
        ed25519_batch256,
        log_batch256_16keys,
        log_batch256_256keys,
        sha256_64b,
        sha256_700b,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}
