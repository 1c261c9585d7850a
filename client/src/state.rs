//! The client's durable memory of each log: the latest checkpoint it
//! verified, replaced only by compare-and-swap under a file lock, and the
//! fork flag with its evidence, which makes the client refuse the log until
//! an operator clears it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// Another process moved the state on between read and write.
    #[error("client state for {0} changed concurrently; retry")]
    Conflict(String),
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

    /// The latest verified checkpoint (signed note bytes), if any.
    pub fn checkpoint(&self, origin: &str) -> Result<Option<Vec<u8>>, StateError> {
        let p = self.base(origin).with_extension("checkpoint");
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }

    /// Replaces the checkpoint with `new` if the stored one is still
    /// `expected` (durably: write, fsync, rename, fsync the directory).
    pub fn compare_and_swap(
        &self,
        origin: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<(), StateError> {
        let _lock = self.lock(origin)?;
        if self.checkpoint(origin)?.as_deref() != expected {
            return Err(StateError::Conflict(origin.to_string()));
        }
        let p = self.base(origin).with_extension("checkpoint");
        let tmp = p.with_extension("tmp");
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(new)
            .and_then(|_| f.sync_all())
            .map_err(io(&tmp))?;
        std::fs::rename(&tmp, &p).map_err(io(&p))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(())
    }

    /// Fork evidence, if the log was caught forking.
    pub fn fork(&self, origin: &str) -> Result<Option<String>, StateError> {
        let p = self.base(origin).with_extension("fork");
        match std::fs::read_to_string(&p) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }

    /// Records fork evidence (both checkpoints, in full).
    pub fn set_fork(&self, origin: &str, evidence: &str) -> Result<PathBuf, StateError> {
        let p = self.base(origin).with_extension("fork");
        let mut f = File::create(&p).map_err(io(&p))?;
        f.write_all(evidence.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(io(&p))?;
        Ok(p)
    }

    /// Clears the fork flag (operator action, after investigation).
    pub fn clear_fork(&self, origin: &str) -> Result<(), StateError> {
        let p = self.base(origin).with_extension("fork");
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&p)(e)),
            _ => Ok(()),
        }
    }
}
