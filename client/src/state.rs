//! The client's durable memory of each log (`spec/PROTOCOL.md` §7): the
//! latest checkpoint it verified, replaced only by compare-and-swap under
//! a file lock, and the fork record with its evidence, which makes the
//! client refuse the log until an operator clears it. Files are named by
//! the hex SHA-256 of the origin; every write goes through
//! [`crate::atomic`].

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use vouch_spec::hash::Hash;

use crate::tracker::{CheckpointStore, Fork, Swapped};

/// State-file errors.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing the state directory failed.
    #[error("client state {path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
}

/// Per-log state files under one directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |err| StateError::Io {
        path: path.to_path_buf(),
        err,
    }
}

fn read_optional(p: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match std::fs::read(p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(p)(e)),
    }
}

impl StateDir {
    /// Uses (creating) `dir`.
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
        })
    }

    fn base(&self, origin: &str) -> PathBuf {
        self.dir
            .join(vouch_spec::hex::encode(&vouch_spec::hash::sha256(
                origin.as_bytes(),
            )))
    }

    fn lock(&self, origin: &str) -> Result<File, StateError> {
        let p = self.base(origin).with_extension("lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io(&p))?;
        f.lock().map_err(io(&p))?;
        Ok(f)
    }

    /// Clears the fork record (operator action, after investigation);
    /// returns whether there was one.
    pub fn clear_fork(&self, origin: &str) -> Result<bool, StateError> {
        let p = self.base(origin).with_extension("fork");
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(&p)(e)),
        }
    }
}

impl CheckpointStore for StateDir {
    type Error = StateError;

    fn kept(&self, origin: &str) -> Result<Option<Vec<u8>>, StateError> {
        read_optional(&self.base(origin).with_extension("checkpoint"))
    }

    fn compare_and_swap(
        &self,
        origin: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        _proof: &[Hash],
    ) -> Result<Swapped, StateError> {
        let _lock = self.lock(origin)?;
        if self.kept(origin)?.as_deref() != expected {
            return Ok(Swapped::Moved);
        }
        let p = self.base(origin).with_extension("checkpoint");
        crate::atomic::write(&p, new).map_err(io(&p))?;
        Ok(Swapped::Done)
    }

    fn fork(&self, origin: &str) -> Result<Option<String>, StateError> {
        Ok(read_optional(&self.base(origin).with_extension("fork"))?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    fn record_fork(&self, fork: &Fork, source: &str) -> Result<String, StateError> {
        let p = self.base(&fork.origin).with_extension("fork");
        crate::atomic::write(&p, fork.evidence(source).as_bytes()).map_err(io(&p))?;
        Ok(p.display().to_string())
    }
}
