//! Deterministic attestations for benchmarks: entry `i` is always the same
//! path, NAR hash, references and builder, so any phase (lookups, the
//! substituter's upstream) can recompute what an earlier phase submitted.

use std::sync::mpsc::SyncSender;

use vouch_spec::attestation::Attestation;
use vouch_spec::hash::sha256;
use vouch_spec::nix::nix32;
use vouch_spec::nix::{NixSecretKey, StorePath};

/// The `n` builder keys (`bench-builder-K-1`).
pub fn builders(n: usize) -> Vec<NixSecretKey> {
    (0..n)
        .map(|k| {
            let seed = sha256(format!("vouch-bench builder {k}").as_bytes());
            NixSecretKey::from_seed(&format!("bench-builder-{k}-1"), &seed)
                .expect("fixed key names are valid")
        })
        .collect()
}

/// The hash part (32 nix32 digits) of the path of `kind` for entry `i`.
fn hash_part_of(kind: &str, i: u64) -> String {
    let mut seed = kind.as_bytes().to_vec();
    seed.extend_from_slice(&i.to_be_bytes());
    nix32::encode(&sha256(&seed)[..20])
}

fn path(kind: &str, i: u64, suffix: &str) -> StorePath {
    let h = hash_part_of(kind, i);
    StorePath::from_base("/nix/store", &format!("{h}-bench-pkg-{i}-1.0{suffix}"))
        .expect("generated names are valid")
}

/// The store path of entry `i`.
pub fn store_path(i: u64) -> StorePath {
    path("out", i, "")
}

/// The hash part of [`store_path`]`(i)`, without building the path.
pub fn store_path_hash_part(i: u64) -> String {
    hash_part_of("out", i)
}

/// NAR hash and size of entry `i`.
pub fn nar(i: u64) -> ([u8; 32], u64) {
    let mut seed = b"nar".to_vec();
    seed.extend_from_slice(&i.to_be_bytes());
    (sha256(&seed), 4096 + (i.wrapping_mul(7919) % 10_000_000))
}

/// References of entry `i`: up to five earlier paths, like a typical package
/// (its libc, a couple of libraries, itself).
pub fn references(i: u64) -> Vec<StorePath> {
    let mut r: Vec<u64> = [i / 2, i / 3, i / 5, i.saturating_sub(1)]
        .into_iter()
        .filter(|&j| j < i)
        .collect();
    r.push(i);
    r.sort_unstable();
    r.dedup();
    r.into_iter().map(store_path).collect()
}

/// Entry `i`, signed by builder `i % keys.len()`.
pub fn attestation(keys: &[NixSecretKey], i: u64) -> Attestation {
    let (hash, size) = nar(i);
    Attestation::sign(
        store_path(i),
        hash,
        size,
        references(i),
        Some(path("drv", i, ".drv")),
        &keys[(i % keys.len() as u64) as usize],
    )
}

/// The narinfo a binary cache would serve for entry `i`, signed by builder
/// `i % keys.len()` like the attestation.
pub fn narinfo(keys: &[NixSecretKey], i: u64) -> String {
    let a = attestation(keys, i);
    let refs: Vec<&str> = a.references.iter().map(|r| r.base()).collect();
    format!(
        "StorePath: {}\nURL: nar/{}.nar\nCompression: none\nNarHash: {}\nNarSize: {}\nReferences: {}\nDeriver: {}\nSig: {}\n",
        a.path,
        a.path.hash_part(),
        vouch_spec::nix::narinfo::format_sha256(&a.nar_hash),
        a.nar_size,
        refs.join(" "),
        a.deriver.as_ref().map(|d| d.base()).unwrap_or_default(),
        a.nix_signature(),
    )
}

/// A request body: attestations `range` concatenated, and the sum of their
/// log entries' sizes in bytes.
pub fn body(keys: &[NixSecretKey], range: std::ops::Range<u64>) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let mut raw = 0u64;
    for i in range {
        let a = attestation(keys, i);
        raw += a.to_entry().encode().len() as u64;
        out.extend_from_slice(&a.encode());
    }
    (out, raw)
}

/// Generates request bodies of `batch` entries for `range` on `threads`
/// threads, sending each (in no particular order) to `tx`.
pub fn produce(
    keys: &[NixSecretKey],
    range: std::ops::Range<u64>,
    batch: u64,
    threads: usize,
    tx: SyncSender<(Vec<u8>, u64)>,
) {
    let starts: Vec<u64> = range.clone().step_by(batch as usize).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            let tx = tx.clone();
            let (starts, next) = (&starts, &next);
            s.spawn(move || loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&start) = starts.get(k) else { return };
                let end = (start + batch).min(range.end);
                if tx.send(body(keys, start..end)).is_err() {
                    return;
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_deterministic_valid_and_narinfo_matches() {
        let keys = builders(3);
        for i in [0u64, 1, 7, 1_000_003] {
            let a = attestation(&keys, i);
            assert_eq!(a.encode(), attestation(&keys, i).encode());
            a.verify().unwrap();
            let n = vouch_spec::nix::NarInfo::parse(narinfo(&keys, i).as_bytes()).unwrap();
            a.to_entry().matches_narinfo(&n).unwrap();
        }
        assert_ne!(store_path(1), store_path(2));
    }

    /// The lookup generator asks for the paths the ingest generator wrote.
    #[test]
    fn hash_part_is_the_store_paths() {
        for i in [0u64, 1, 7, 1_000_003, 9_999_999] {
            assert_eq!(store_path_hash_part(i), store_path(i).hash_part());
        }
    }
}
