//! Private key files on disk, shared by every Vouch binary: created with
//! mode 0600 (never overwriting), synced; refused when group or others can
//! read or write them. Error messages name the file and never its contents.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Key-file errors.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Creating, reading or writing failed.
    #[error("key file {path}: {err}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        err: std::io::Error,
    },
    /// Group or others may access it.
    #[error("key file {path} has mode {mode:o}: it must be readable only by its owner (run: chmod 600 {path})")]
    Permissions {
        /// The file.
        path: String,
        /// Its mode.
        mode: u32,
    },
}

/// Writes `text` to a new file at `path`, mode 0600 (no newline added, as
/// `nix key generate-secret` writes them).
pub fn create(path: &Path, text: &str) -> Result<(), KeyFileError> {
    let io = |err| KeyFileError::Io {
        path: path.display().to_string(),
        err,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io)
}

/// Reads a key file (trimmed), refusing one that group or others can access.
pub fn read(path: &Path) -> Result<String, KeyFileError> {
    let io = |err| KeyFileError::Io {
        path: path.display().to_string(),
        err,
    };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(std::fs::read_to_string(path)
        .map_err(io)?
        .trim()
        .to_string())
}

/// A fresh random 32-byte seed from the operating system.
pub fn random_seed() -> Result<[u8; 32], KeyFileError> {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed))
        .map_err(|err| KeyFileError::Io {
            path: "/dev/urandom".into(),
            err,
        })?;
    Ok(seed)
}
