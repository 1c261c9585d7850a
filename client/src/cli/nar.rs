//! Serialising a filesystem tree as a NAR (Nix ARchive) to hash it, for
//! attesting a path without asking `nix`: the format of Nix's
//! `src/libutil/archive.cc` (strings are length-prefixed, padded to 8 bytes;
//! directory entries sorted by name; only the executable bit is kept).
//! References are found the way Nix finds them: by scanning the contents
//! for the hash parts of store paths, here those present in the store.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

/// NAR hash, NAR size and the hash parts of store paths seen in the contents.
pub struct NarSummary {
    /// SHA-256 of the NAR.
    pub hash: [u8; 32],
    /// Bytes in the NAR.
    pub size: u64,
    /// 32-character hash parts that occur after `<store dir>/` in the contents.
    pub hash_parts: BTreeSet<String>,
}

struct Sink {
    h: Sha256,
    n: u64,
    store_prefix: Vec<u8>,
    found: BTreeSet<String>,
    tail: Vec<u8>,
}

impl Sink {
    fn raw(&mut self, b: &[u8]) {
        self.h.update(b);
        self.n += b.len() as u64;
    }
    fn str(&mut self, b: &[u8]) {
        self.raw(&(b.len() as u64).to_le_bytes());
        self.raw(b);
        let pad = (8 - b.len() % 8) % 8;
        self.raw(&[0u8; 8][..pad]);
    }
    /// Scans file contents (across chunk boundaries) for `<store>/<hash>`.
    fn scan(&mut self, chunk: &[u8]) {
        let keep = self.store_prefix.len() + 32;
        let mut buf = std::mem::take(&mut self.tail);
        buf.extend_from_slice(chunk);
        let p = &self.store_prefix;
        let mut i = 0;
        while i + keep <= buf.len() {
            if buf[i..].starts_with(p) {
                let h = &buf[i + p.len()..i + keep];
                if let Ok(s) = std::str::from_utf8(h) {
                    if vouch_spec::nix::store_path::valid_hash_part(s) {
                        self.found.insert(s.to_string());
                    }
                }
            }
            i += 1;
        }
        self.tail = buf[buf.len().saturating_sub(keep - 1)..].to_vec();
    }
}

fn walk(s: &mut Sink, path: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    s.str(b"(");
    if meta.file_type().is_symlink() {
        s.str(b"type");
        s.str(b"symlink");
        s.str(b"target");
        let t = std::fs::read_link(path)?;
        let t = t.as_os_str().as_encoded_bytes().to_vec();
        s.scan(&t);
        s.tail.clear();
        s.str(&t);
    } else if meta.is_dir() {
        s.str(b"type");
        s.str(b"directory");
        let mut names: Vec<_> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        for name in names {
            s.str(b"entry");
            s.str(b"(");
            s.str(b"name");
            s.str(name.as_encoded_bytes());
            s.str(b"node");
            walk(s, &path.join(&name))?;
            s.str(b")");
        }
    } else {
        s.str(b"type");
        s.str(b"regular");
        if meta.permissions().mode() & 0o100 != 0 {
            s.str(b"executable");
            s.str(b"");
        }
        s.str(b"contents");
        let data = std::fs::read(path)?;
        s.scan(&data);
        s.tail.clear();
        s.str(&data);
    }
    s.str(b")");
    Ok(())
}

/// Serialises `path` as a NAR, hashing it and scanning for references into `store_dir`.
pub fn summarize(path: &Path, store_dir: &str) -> io::Result<NarSummary> {
    let mut s = Sink {
        h: Sha256::new(),
        n: 0,
        store_prefix: format!("{store_dir}/").into_bytes(),
        found: BTreeSet::new(),
        tail: Vec::new(),
    };
    s.str(b"nix-archive-1");
    walk(&mut s, path)?;
    Ok(NarSummary {
        hash: s.h.finalize().into(),
        size: s.n,
        hash_parts: s.found,
    })
}
