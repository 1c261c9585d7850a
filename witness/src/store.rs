//! The witness's durable state: per log, the latest cosigned checkpoint,
//! in a file replaced atomically (write, fsync, rename, fsync directory).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use vouch_spec::checkpoint::Checkpoint;
use vouch_spec::note::Note;
use vouch_spec::witness::WitnessState;

/// File name for a log's state: the hex SHA-256 of its origin.
pub fn origin_hash(origin: &str) -> String {
    vouch_spec::hex::encode(&vouch_spec::hash::sha256(origin.as_bytes()))
}

/// The state file for `origin` under `dir`.
pub fn path(dir: &Path, origin: &str) -> PathBuf {
    dir.join(format!("{}.checkpoint", origin_hash(origin)))
}

/// Reads the stored checkpoint note for `origin`, if any.
pub fn load(dir: &Path, origin: &str) -> anyhow::Result<Option<(WitnessState, Vec<u8>)>> {
    let p = path(dir, origin);
    let data = match std::fs::read(&p) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
    };
    let note =
        Note::parse(&data).with_context(|| format!("{} is not a signed note", p.display()))?;
    let cp = Checkpoint::parse(&note.text)
        .with_context(|| format!("{} is not a checkpoint", p.display()))?;
    anyhow::ensure!(
        cp.origin == origin,
        "{} holds origin {:?}, not {origin:?}",
        p.display(),
        cp.origin
    );
    Ok(Some((
        WitnessState {
            size: cp.size,
            root: cp.root,
        },
        data,
    )))
}

/// Replaces the stored checkpoint atomically and durably.
pub fn save(dir: &Path, origin: &str, note: &[u8]) -> anyhow::Result<()> {
    let p = path(dir, origin);
    let tmp = p.with_extension("tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(note)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &p)
        .with_context(|| format!("renaming {} to {}", tmp.display(), p.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}
