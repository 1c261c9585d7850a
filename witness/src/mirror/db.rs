//! A mirror's storage for one log: RocksDB, one database per origin.
//!
//! Keys:
//! - `P`: the pending checkpoints still accepted as `upload_end`, oldest
//!   first (JSON list of signed notes, as the log sent them);
//! - `M`: the mirror checkpoint, with the mirror's cosignature;
//! - `N`: the next entry and the tree's right edge there (size, then its
//!   compact range's hashes);
//! - `e` + bundle index (8 bytes, big-endian): the entry bundle, as wide as
//!   stored so far;
//! - `t` + level + tile index: the hash tile's hashes, as wide as stored.
//!
//! Durability contract: every write is one `WriteBatch` written with
//! `sync`, so after a crash the database holds exactly the writes that
//! returned. A package's bundle, tiles and new edge go in one batch, so
//! the next entry never runs ahead of the stored entries and tiles; tiles
//! and bundles only grow at their ends, so a narrower view (an older
//! checkpoint's partial tile) is always a prefix of what is stored.

use std::path::Path;

use vouch_spec::compact::CompactRange;
use vouch_spec::hash::{split_hashes, Hash};
use vouch_spec::integrate::TileReader;

/// Why the mirror's storage failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// RocksDB failed.
    #[error(transparent)]
    Rocks(#[from] rocksdb::Error),
    /// A stored value does not decode.
    #[error("stored {what} is damaged: {why}")]
    Damaged {
        /// Which value.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
}

/// The mirror's durable state for one log, as loaded.
#[derive(Clone, Debug, Default)]
pub struct Stored {
    /// Pending checkpoints, oldest first.
    pub pending: Vec<Vec<u8>>,
    /// The mirror checkpoint, cosigned.
    pub mirror: Option<Vec<u8>>,
    /// The tree's edge at the next entry.
    pub edge: CompactRange,
}

/// One log's database.
pub struct MirrorDb {
    db: rocksdb::DB,
}

fn sync() -> rocksdb::WriteOptions {
    let mut wo = rocksdb::WriteOptions::default();
    wo.set_sync(true);
    wo
}

fn bundle_key(index: u64) -> [u8; 9] {
    let mut k = [b'e'; 9];
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

fn tile_key(level: u8, index: u64) -> [u8; 10] {
    let mut k = [b't'; 10];
    k[1] = level;
    k[2..].copy_from_slice(&index.to_be_bytes());
    k
}

impl MirrorDb {
    /// Opens (creating) the database in `dir` and loads its state.
    pub fn open(dir: &Path) -> Result<(MirrorDb, Stored), DbError> {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_write_buffer_size(16 << 20);
        opts.set_max_write_buffer_number(2);
        let db = MirrorDb {
            db: rocksdb::DB::open(&opts, dir)?,
        };
        let pending = match db.db.get(b"P")? {
            Some(v) => serde_json::from_slice::<Vec<String>>(&v)
                .map_err(|e| DbError::Damaged {
                    what: "pending checkpoints",
                    why: e.to_string(),
                })?
                .into_iter()
                .map(String::into_bytes)
                .collect(),
            None => Vec::new(),
        };
        let mirror = db.db.get(b"M")?;
        let edge = match db.db.get(b"N")? {
            Some(v) => decode_edge(&v)?,
            None => CompactRange::new(),
        };
        Ok((
            db,
            Stored {
                pending,
                mirror,
                edge,
            },
        ))
    }

    /// Replaces the pending checkpoints (oldest first).
    pub fn put_pending(&self, notes: &[Vec<u8>]) -> Result<(), DbError> {
        let texts: Vec<String> = notes
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        let v = serde_json::to_vec(&texts).map_err(|e| DbError::Damaged {
            what: "pending checkpoints",
            why: e.to_string(),
        })?;
        let mut b = rocksdb::WriteBatch::default();
        b.put(b"P", v);
        Ok(self.db.write_opt(b, &sync())?)
    }

    /// Replaces the mirror checkpoint.
    pub fn put_mirror(&self, note: &[u8]) -> Result<(), DbError> {
        let mut b = rocksdb::WriteBatch::default();
        b.put(b"M", note);
        Ok(self.db.write_opt(b, &sync())?)
    }

    /// Commits one package's new entries: the bundle they belong to (as
    /// wide as it now is), every hash tile they touched, and the new edge.
    pub fn commit(
        &self,
        bundle_index: u64,
        bundle: &[u8],
        tiles: &[(u8, u64, Vec<Hash>)],
        edge: &CompactRange,
    ) -> Result<(), DbError> {
        let mut b = rocksdb::WriteBatch::default();
        b.put(bundle_key(bundle_index), bundle);
        for (level, index, hashes) in tiles {
            b.put(
                tile_key(*level, *index),
                vouch_spec::tile::encode_hashes(hashes),
            );
        }
        b.put(b"N", encode_edge(edge));
        Ok(self.db.write_opt(b, &sync())?)
    }

    /// The stored entry bundle `index` (as wide as stored).
    pub fn bundle(&self, index: u64) -> Result<Option<Vec<u8>>, DbError> {
        Ok(self.db.get(bundle_key(index))?)
    }

    /// The stored hash tile (as wide as stored), encoded.
    pub fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, DbError> {
        Ok(self.db.get(tile_key(level, index))?)
    }
}

impl TileReader for MirrorDb {
    type Error = DbError;
    fn read_hashes(&self, level: u8, index: u64) -> Result<Option<Vec<Hash>>, DbError> {
        let Some(data) = self.tile(level, index)? else {
            return Ok(None);
        };
        split_hashes(&data)
            .map(Some)
            .ok_or_else(|| DbError::Damaged {
                what: "hash tile",
                why: format!("{level}/{index} holds {} bytes", data.len()),
            })
    }
}

fn encode_edge(edge: &CompactRange) -> Vec<u8> {
    let mut v = edge.size().to_be_bytes().to_vec();
    for h in edge.hashes() {
        v.extend_from_slice(&h.0);
    }
    v
}

fn decode_edge(v: &[u8]) -> Result<CompactRange, DbError> {
    let damaged = |why: String| DbError::Damaged { what: "edge", why };
    let (size, rest) = v
        .split_first_chunk::<8>()
        .ok_or_else(|| damaged("shorter than its size".into()))?;
    let hashes =
        split_hashes(rest).ok_or_else(|| damaged(format!("{} bytes of hashes", rest.len())))?;
    CompactRange::from_parts(u64::from_be_bytes(*size), hashes).map_err(|e| damaged(e.to_string()))
}
