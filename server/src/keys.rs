//! The log's signing key on disk: a C2SP skey (`PRIVATE+KEY+…`) in a file
//! that only its owner may read (see `vouch::keyfile`). The key's name is
//! the log's origin (`spec/PROTOCOL.md` §4.1).

use std::path::Path;

use vouch::keyfile::{self, KeyFileError};
use vouch_spec::note::Ed25519Signer;

/// Why a key could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the file failed, or its mode is too open.
    #[error(transparent)]
    File(#[from] KeyFileError),
    /// The origin cannot be a key name.
    #[error("origin {0:?} is not a valid key name (a schema-less URL: no spaces, no '+')")]
    Origin(String),
    /// The file does not hold a key.
    #[error("key file {0} is not a C2SP Ed25519 private key (make one with `vouch-log keygen`)")]
    NotAKey(String),
}

/// Writes a new key for `origin` to `path` (mode 0600, never overwriting).
pub fn generate(path: &Path, origin: &str) -> Result<Ed25519Signer, KeyError> {
    let signer = Ed25519Signer::from_seed(origin, &keyfile::random_seed()?)
        .map_err(|_| KeyError::Origin(origin.to_string()))?;
    keyfile::create(path, &signer.skey())?;
    Ok(signer)
}

/// Loads a key, refusing files that group or others can read or write.
pub fn load(path: &Path) -> Result<Ed25519Signer, KeyError> {
    let text = keyfile::read(path)?;
    Ed25519Signer::from_skey(&text).map_err(|_| KeyError::NotAKey(path.display().to_string()))
}

/// The origin a key signs for: its name.
pub fn origin(signer: &Ed25519Signer) -> String {
    signer
        .verifier()
        .vkey()
        .split('+')
        .next()
        .unwrap_or_default()
        .to_string()
}
