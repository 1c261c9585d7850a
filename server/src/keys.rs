//! The log's signing key on disk: a C2SP skey (`PRIVATE+KEY+…`) in a file
//! that only its owner may read.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context};
use vouch_spec::note::Ed25519Signer;

/// A fresh random 32-byte seed.
pub fn random_seed() -> anyhow::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).context("reading the system's random number generator")?;
    Ok(seed)
}

/// Writes a new key for `origin` to `path` (mode 0600, never overwriting).
pub fn generate(path: &Path, origin: &str) -> anyhow::Result<Ed25519Signer> {
    let signer = Ed25519Signer::from_seed(origin, &random_seed()?)
        .with_context(|| format!("origin {origin:?} is not a valid key name"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "creating key file {} (it must not exist yet)",
                path.display()
            )
        })?;
    writeln!(f, "{}", signer.skey())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(signer)
}

/// Loads a key, refusing files that group or others can read or write.
pub fn load(path: &Path) -> anyhow::Result<Ed25519Signer> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("reading key file {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "key file {} has mode {mode:o}: it must be readable only by its owner (run: chmod 600 {})",
            path.display(),
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading key file {}", path.display()))?;
    Ed25519Signer::from_skey(text.trim_end()).with_context(|| {
        format!(
            "key file {} is not a C2SP Ed25519 private key",
            path.display()
        )
    })
}
