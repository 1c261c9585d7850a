//! The one way Vouch replaces a file: write a new file beside it, fsync
//! it, rename it over the old one, fsync the directory. A crash at any
//! moment leaves the old contents or the new, never a mix (perhaps with a
//! hidden temporary `.<name>.<pid>.<n>.tmp` beside them, which a reader
//! listing the directory must skip), and once [`write`] returns the new
//! contents survive power loss. Every writer of state uses it: the client's
//! kept checkpoints and tile cache, the witness's cosigned checkpoints, the
//! spool, and resumable progress files.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `data` atomically and durably (creating its
/// directory). Concurrent writers of one path each write their own
/// temporary file; the last rename wins.
pub fn write(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_mode(path, data, 0o644)
}

/// [`write`] with these permission bits on the new file (before umask).
pub fn write_mode(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d,
        None => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temporaries() {
        let dir = std::env::temp_dir().join(format!("vouch-atomic-{}", std::process::id()));
        let p = dir.join("sub/state");
        write(&p, b"one").unwrap();
        write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state")]);
        // A failing write leaves the old contents and no temporary file.
        std::fs::create_dir_all(dir.join("sub/dir-in-the-way")).unwrap();
        assert!(write(&dir.join("sub/dir-in-the-way"), b"x").is_err());
        assert_eq!(std::fs::read_dir(dir.join("sub")).unwrap().count(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
