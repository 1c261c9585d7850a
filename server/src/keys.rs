//! The log's signing key on disk: a C2SP skey (`PRIVATE+KEY+…`) in a file
//! that only its owner may read (see `vouch::keyfile`).

use std::path::Path;

use anyhow::Context;
use vouch::keyfile;
use vouch_spec::note::Ed25519Signer;

/// Writes a new key for `origin` to `path` (mode 0600, never overwriting).
pub fn generate(path: &Path, origin: &str) -> anyhow::Result<Ed25519Signer> {
    let signer = Ed25519Signer::from_seed(origin, &keyfile::random_seed()?)
        .with_context(|| format!("origin {origin:?} is not a valid key name"))?;
    keyfile::create(path, &signer.skey()).context("the key file must not exist yet")?;
    Ok(signer)
}

/// Loads a key, refusing files that group or others can read or write.
pub fn load(path: &Path) -> anyhow::Result<Ed25519Signer> {
    let text = keyfile::read(path)?;
    Ed25519Signer::from_skey(&text).with_context(|| {
        format!(
            "key file {} is not a C2SP Ed25519 private key",
            path.display()
        )
    })
}
