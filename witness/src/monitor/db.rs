//! The monitor's state on disk (RocksDB), `spec/PROTOCOL.md` §6.4: its
//! position in the log, every store path's attestations, per-builder
//! counters, watched attestations awaiting confirmation, disagreements,
//! and attestations per hour.
//!
//! Durability contract: every change is made through a [`Step`] and
//! written by [`MonitorDb::commit`] in one atomic, synced batch together
//! with the position it reaches, so a SIGKILL at any moment resumes from the
//! last commit: no entry is lost or counted twice, and no counter disagrees
//! with the records it counts. Memory is bounded by one step's working set.
//!
//! Keys (one column family, a prefix byte each):
//! `S` position · `p<base name>` path record · `k<key>` builder counters ·
//! `a<key>\0<index>` what a builder attested (its CT-style record) ·
//! `q<seen><index>` a watched attestation awaiting confirmation ·
//! `d<base name>` a disagreement · `h<hour>` attestations read that hour ·
//! `r<id>` a finding already reported · `u<32 key bytes>` a key's first
//! transition (its cutoff, §3.6), by the Ed25519 key alone, since a Nix
//! key's name is not part of what it signs: a stolen key signing under
//! another name is the same key · `T<index>` every transition ·
//! `v<index>` an entry by a key at or after its cutoff (a log that
//! appended what it must not). Databases written before kept cutoffs
//! under `t<name:base64>`; [`MonitorDb::open`] moves them.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use vouch_spec::nix::NixPublicKey;

/// Why the monitor's database failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// RocksDB failed.
    #[error("monitor database: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A record does not decode.
    #[error("monitor database: record {key}: {err}")]
    Corrupt {
        /// The key.
        key: String,
        /// The error.
        err: serde_json::Error,
    },
}

/// Where the monitor is in the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Entries read and applied.
    pub size: u64,
    /// The compact range of those entries (base64 hashes, largest first).
    pub frontier: Vec<String>,
    /// The last checkpoint fully read and matched (signed note text):
    /// what new checkpoints must extend.
    pub checkpoint: String,
    /// The checkpoint being read towards (`size` may be below its size
    /// after a crash mid-way).
    pub target: String,
}

/// One attestation of a path, as the monitor keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Att {
    /// The builder key (Nix `name:base64`).
    pub key: String,
    /// Its NAR hash (`sha256:<nix32>`).
    pub nar_hash: String,
    /// Its NAR size.
    pub nar_size: u64,
    /// The entry's index.
    pub index: u64,
    /// When the monitor read it (Unix seconds).
    pub seen: u64,
    /// Another key attested the same NAR.
    pub confirmed: bool,
    /// Another attestation of the path names another NAR.
    pub disagrees: bool,
    /// Watched, and not confirmed within the grace period.
    pub overdue: bool,
}

/// Every attestation of one store path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRecord {
    /// The full store path.
    pub path: String,
    /// Its attestations, in log order.
    pub atts: Vec<Att>,
}

impl PathRecord {
    /// Recomputes `confirmed` and `disagrees` for every attestation.
    fn recompute(&mut self) {
        let snapshot: Vec<(String, String, u64)> = self
            .atts
            .iter()
            .map(|a| (a.key.clone(), a.nar_hash.clone(), a.nar_size))
            .collect();
        for a in &mut self.atts {
            a.confirmed = snapshot
                .iter()
                .any(|(k, h, n)| *k != a.key && *h == a.nar_hash && *n == a.nar_size);
            a.disagrees = snapshot
                .iter()
                .any(|(_, h, n)| *h != a.nar_hash || *n != a.nar_size);
            if a.confirmed {
                a.overdue = false;
            }
        }
    }

    /// Whether builders disagree on this path.
    pub fn disagreement(&self) -> bool {
        self.atts.iter().any(|a| a.disagrees)
    }
}

/// Per builder key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStats {
    /// Attestations read.
    pub attestations: u64,
    /// Of those, confirmed by another key.
    pub confirmed: u64,
    /// Of those, on paths where another attestation names another NAR.
    pub disagreeing: u64,
    /// Watched, unconfirmed past the grace period.
    pub overdue: u64,
    /// First and last index.
    pub first_index: u64,
    /// Last index.
    pub last_index: u64,
    /// First and last time seen (Unix seconds).
    pub first_seen: u64,
    /// Last seen.
    pub last_seen: u64,
}

/// A watched attestation awaiting confirmation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Awaiting {
    /// The path's base name.
    pub base: String,
    /// The key.
    pub key: String,
    /// The entry's index.
    pub index: u64,
}

/// A disagreement, by path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disagreement {
    /// The full store path.
    pub path: String,
    /// The index of the entry that made it one.
    pub index: u64,
    /// When it was found (Unix seconds).
    pub found: u64,
}

/// A logged key transition (§3.6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionRecord {
    /// Its index: the old key's cutoff, if it was the key's first.
    pub index: u64,
    /// The key that stops signing (Nix `name:base64`).
    pub old: String,
    /// The key it hands over to, for a handover.
    pub new: Option<String>,
    /// When the monitor read it.
    pub seen: u64,
}

/// An entry by a key at or after its cutoff: an honest log never appends
/// one, so each is evidence against the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The entry's index.
    pub index: u64,
    /// The retired key.
    pub key: String,
    /// The key's cutoff (its first transition's index).
    pub cutoff: u64,
    /// `attestation` or `transition`.
    pub what: String,
    /// The attested path, for an attestation.
    pub path: Option<String>,
    /// When the monitor read it.
    pub seen: u64,
}

/// The block cache, which also holds index and filter blocks: what bounds
/// the database's memory whatever the log's size.
const BLOCK_CACHE: usize = 128 << 20;

/// The monitor's database.
pub struct MonitorDb {
    db: rocksdb::DB,
}

fn decode<T: for<'a> Deserialize<'a>>(key: &[u8], v: &[u8]) -> Result<T, DbError> {
    serde_json::from_slice(v).map_err(|err| DbError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        err,
    })
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Plain data types: serialising cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn key(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(prefix);
    k.extend_from_slice(rest);
    k
}

fn att_key(builder: &str, index: u64) -> Vec<u8> {
    let mut k = key(b'a', builder.as_bytes());
    k.push(0);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn queue_key(seen: u64, index: u64) -> Vec<u8> {
    let mut k = vec![b'q'];
    k.extend_from_slice(&seen.to_be_bytes());
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// The base name (`<hash>-<name>`) of a full store path.
pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

impl MonitorDb {
    /// Opens (creating) the database in `dir`.
    pub fn open(dir: &Path) -> Result<MonitorDb, DbError> {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        table.set_block_cache(&rocksdb::Cache::new_lru_cache(BLOCK_CACHE));
        // Index and filter blocks live in that cache too, so memory stays
        // bounded as the database grows (about 10 bits of filter per key:
        // 25 MB at 1e7 entries, and growing, if kept outside it); the
        // newest level's stay pinned, since every new path probes them.
        // 64 MiB was 11 % slower at 1e7 than no bound; 128 MiB was not
        // (BENCHMARKS.md).
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        opts.set_block_based_table_factory(&table);
        // Bounded memory: small write buffers, whatever the log's size.
        opts.set_write_buffer_size(32 << 20);
        opts.set_max_write_buffer_number(2);
        let db = MonitorDb {
            db: rocksdb::DB::open(&opts, dir)?,
        };
        db.migrate_cutoffs()?;
        Ok(db)
    }

    /// Opens an existing database read-only (for reports while a monitor
    /// runs).
    pub fn open_read_only(dir: &Path) -> Result<MonitorDb, DbError> {
        let opts = rocksdb::Options::default();
        Ok(MonitorDb {
            db: rocksdb::DB::open_for_read_only(&opts, dir, false)?,
        })
    }

    fn get<T: for<'a> Deserialize<'a>>(&self, k: &[u8]) -> Result<Option<T>, DbError> {
        self.db.get(k)?.map(|v| decode(k, &v)).transpose()
    }

    /// The position.
    pub fn position(&self) -> Result<Position, DbError> {
        Ok(self.get(b"S")?.unwrap_or_default())
    }

    /// A path's record, by base name.
    pub fn path(&self, base: &str) -> Result<Option<PathRecord>, DbError> {
        self.get(&key(b'p', base.as_bytes()))
    }

    /// Paths whose base name starts with `prefix` (a hash part, say), at
    /// most `limit`.
    pub fn paths_with_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<PathRecord>, DbError> {
        self.scan(b'p', prefix.as_bytes(), limit)
    }

    /// A builder's counters.
    pub fn builder(&self, k: &str) -> Result<Option<KeyStats>, DbError> {
        self.get(&key(b'k', k.as_bytes()))
    }

    /// Every builder key with its counters.
    pub fn builders(&self) -> Result<Vec<(String, KeyStats)>, DbError> {
        let mut out = Vec::new();
        for item in self.db.prefix_iterator([b'k']) {
            let (k, v) = item?;
            if k.first() != Some(&b'k') {
                break;
            }
            out.push((
                String::from_utf8_lossy(&k[1..]).into_owned(),
                decode(&k, &v)?,
            ));
        }
        Ok(out)
    }

    /// What `builder` attested, from index `after` on, at most `limit`:
    /// (index, base name).
    pub fn attested_by(
        &self,
        builder: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, DbError> {
        let start = att_key(builder, after);
        let prefix = att_key(builder, 0);
        let prefix = &prefix[..prefix.len() - 8];
        let mut out = Vec::new();
        for item in self.db.iterator(rocksdb::IteratorMode::From(
            &start,
            rocksdb::Direction::Forward,
        )) {
            let (k, v) = item?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            let mut ix = [0u8; 8];
            ix.copy_from_slice(&k[k.len() - 8..]);
            out.push((
                u64::from_be_bytes(ix),
                String::from_utf8_lossy(&v).into_owned(),
            ));
        }
        Ok(out)
    }

    /// Disagreements, in base-name order, from `after` (exclusive), at most `limit`.
    pub fn disagreements(&self, after: &str, limit: usize) -> Result<Vec<Disagreement>, DbError> {
        let start = key(b'd', after.as_bytes());
        let mut out = Vec::new();
        for item in self.db.iterator(rocksdb::IteratorMode::From(
            &start,
            rocksdb::Direction::Forward,
        )) {
            let (k, v) = item?;
            if k.first() != Some(&b'd') || out.len() >= limit {
                break;
            }
            if *k == *start {
                continue;
            }
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }

    /// The disagreement on the path with base name `base`, if there is one.
    pub fn disagreement(&self, base: &str) -> Result<Option<Disagreement>, DbError> {
        self.get(&key_d(base))
    }

    /// Attestations read per hour: (hour since the epoch, count).
    pub fn hours(&self) -> Result<Vec<(u64, u64)>, DbError> {
        let mut out = Vec::new();
        for item in self.db.prefix_iterator([b'h']) {
            let (k, v) = item?;
            if k.first() != Some(&b'h') || k.len() != 9 || v.len() != 8 {
                break;
            }
            let mut h = [0u8; 8];
            h.copy_from_slice(&k[1..]);
            let mut n = [0u8; 8];
            n.copy_from_slice(&v);
            out.push((u64::from_be_bytes(h), u64::from_be_bytes(n)));
        }
        Ok(out)
    }

    fn scan<T: for<'a> Deserialize<'a>>(
        &self,
        prefix: u8,
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<T>, DbError> {
        let start = key(prefix, from);
        let mut out = Vec::new();
        for item in self.db.iterator(rocksdb::IteratorMode::From(
            &start,
            rocksdb::Direction::Forward,
        )) {
            let (k, v) = item?;
            if !k.starts_with(&start) || out.len() >= limit {
                break;
            }
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }

    /// Watched attestations seen at or before `until`, oldest first.
    pub fn awaiting_until(
        &self,
        until: u64,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Awaiting)>, DbError> {
        let mut out = Vec::new();
        for item in self.db.prefix_iterator([b'q']) {
            let (k, v) = item?;
            if k.first() != Some(&b'q') || k.len() != 17 || out.len() >= limit {
                break;
            }
            let mut s = [0u8; 8];
            s.copy_from_slice(&k[1..9]);
            if u64::from_be_bytes(s) > until {
                break;
            }
            out.push((k.to_vec(), decode(&k, &v)?));
        }
        Ok(out)
    }

    /// Every transition read, in log order (transitions are few).
    pub fn transitions(&self) -> Result<Vec<TransitionRecord>, DbError> {
        self.scan(b'T', b"", usize::MAX)
    }

    /// Every entry by a key at or after its cutoff, in log order.
    pub fn violations(&self) -> Result<Vec<Violation>, DbError> {
        self.scan(b'v', b"", usize::MAX)
    }

    /// A key's first transition (its cutoff), if it has one.
    pub fn cutoff(&self, key: &[u8; 32]) -> Result<Option<TransitionRecord>, DbError> {
        self.get(&self::key(b'u', key))
    }

    /// Moves cutoffs kept under the old `t<name:base64>` keys to
    /// `u<key bytes>` (the first by index wins, as it did), in one batch.
    fn migrate_cutoffs(&self) -> Result<(), DbError> {
        // Each was written under `t` and its own `old` text.
        let old: Vec<TransitionRecord> = self.scan(b't', b"", usize::MAX)?;
        if old.is_empty() {
            return Ok(());
        }
        let mut firsts: HashMap<[u8; 32], TransitionRecord> = HashMap::new();
        let mut batch = rocksdb::WriteBatch::default();
        for t in old {
            batch.delete(key(b't', t.old.as_bytes()));
            let Ok(pk) = NixPublicKey::parse(&t.old) else {
                continue; // not a key: nothing to cut off
            };
            let bytes = pk.key().to_bytes();
            match firsts.get(&bytes) {
                Some(f) if f.index <= t.index => {}
                _ => {
                    firsts.insert(bytes, t);
                }
            }
        }
        for (bytes, t) in firsts {
            if self.cutoff(&bytes)?.is_none() {
                batch.put(key(b'u', &bytes), encode(&t));
            }
        }
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(true);
        Ok(self.db.write_opt(batch, &wo)?)
    }

    /// Whether a finding was reported before.
    pub fn reported(&self, id: &str) -> Result<bool, DbError> {
        Ok(self.db.get(key(b'r', id.as_bytes()))?.is_some())
    }

    /// A new step over this database.
    pub fn step(&self) -> Step<'_> {
        Step {
            db: self,
            paths: HashMap::new(),
            keys: HashMap::new(),
            hours: HashMap::new(),
            cutoffs: HashMap::new(),
            batch: rocksdb::WriteBatch::default(),
            reported: Vec::new(),
        }
    }

    /// Writes a step and `position` atomically and durably.
    pub fn commit(&self, step: Step<'_>, position: &Position) -> Result<(), DbError> {
        let Step {
            paths,
            keys,
            hours,
            mut batch,
            reported,
            ..
        } = step;
        for (base, rec) in &paths {
            batch.put(key(b'p', base.as_bytes()), encode(rec));
        }
        for (k, s) in &keys {
            batch.put(key(b'k', k.as_bytes()), encode(s));
        }
        for (h, n) in hours {
            let k = key(b'h', &h.to_be_bytes());
            let old = self
                .db
                .get(&k)?
                .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
                .map_or(0, u64::from_be_bytes);
            batch.put(k, (old + n).to_be_bytes());
        }
        for id in reported {
            batch.put(key(b'r', id.as_bytes()), []);
        }
        batch.put(b"S", encode(position));
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }
}

/// Changes to apply together: records are read once into the step and
/// written back at commit.
pub struct Step<'a> {
    db: &'a MonitorDb,
    paths: HashMap<String, PathRecord>,
    keys: HashMap<String, KeyStats>,
    hours: HashMap<u64, u64>,
    /// Cutoffs read or set in this step (`None`: the key has none).
    cutoffs: HashMap<[u8; 32], Option<TransitionRecord>>,
    batch: rocksdb::WriteBatch,
    reported: Vec<String>,
}

/// What applying one attestation changed, for reports.
#[derive(Debug, Default)]
pub struct Applied {
    /// The path now has a disagreement it did not have (or more NARs).
    pub new_disagreement: Option<PathRecord>,
}

impl Step<'_> {
    fn path_mut(&mut self, base: &str, full: &str) -> Result<&mut PathRecord, DbError> {
        if !self.paths.contains_key(base) {
            let rec = self.db.path(base)?.unwrap_or_else(|| PathRecord {
                path: full.to_string(),
                atts: Vec::new(),
            });
            self.paths.insert(base.to_string(), rec);
        }
        Ok(self.paths.get_mut(base).expect("inserted above"))
    }

    fn key_mut(&mut self, k: &str) -> Result<&mut KeyStats, DbError> {
        if !self.keys.contains_key(k) {
            let s = self.db.builder(k)?.unwrap_or_default();
            self.keys.insert(k.to_string(), s);
        }
        Ok(self.keys.get_mut(k).expect("inserted above"))
    }

    /// Applies one valid attestation read at `seen`; `watched` says whether
    /// its key needs independent confirmation.
    pub fn attest(&mut self, full: &str, att: Att, watched: bool) -> Result<Applied, DbError> {
        let base = base_name(full).to_string();
        let (key, index, seen) = (att.key.clone(), att.index, att.seen);
        let rec = self.path_mut(&base, full)?;
        let distinct_before = distinct(rec);
        let before: Vec<(bool, bool, bool)> = rec
            .atts
            .iter()
            .map(|a| (a.confirmed, a.disagrees, a.overdue))
            .collect();
        rec.atts.push(att);
        rec.recompute();
        let after: Vec<(String, bool, bool, bool)> = rec
            .atts
            .iter()
            .map(|a| (a.key.clone(), a.confirmed, a.disagrees, a.overdue))
            .collect();
        let distinct_after = distinct(rec);
        let disagreement = rec.disagreement();
        let rec_copy = (disagreement && distinct_after > distinct_before).then(|| rec.clone());
        // Counters follow the flags of every attestation of the path.
        for (i, (k, c, d, o)) in after.iter().enumerate() {
            let (c0, d0, o0) = before.get(i).copied().unwrap_or((false, false, false));
            let s = self.key_mut(k)?;
            if i == after.len() - 1 {
                s.attestations += 1;
                if s.attestations == 1 {
                    s.first_index = index;
                    s.first_seen = seen;
                }
                s.last_index = index;
                s.last_seen = seen;
            }
            s.confirmed = (s.confirmed + u64::from(*c)).saturating_sub(u64::from(c0));
            s.disagreeing = (s.disagreeing + u64::from(*d)).saturating_sub(u64::from(d0));
            s.overdue = (s.overdue + u64::from(*o)).saturating_sub(u64::from(o0));
        }
        self.batch.put(att_key(&key, index), base.as_bytes());
        if watched {
            self.batch.put(
                queue_key(seen, index),
                encode(&Awaiting {
                    base: base.clone(),
                    key,
                    index,
                }),
            );
        }
        if let Some(rec) = &rec_copy {
            self.batch.put(
                key_d(&base),
                encode(&Disagreement {
                    path: rec.path.clone(),
                    index,
                    found: seen,
                }),
            );
        }
        *self.hours.entry(seen / 3600).or_default() += 1;
        Ok(Applied {
            new_disagreement: rec_copy,
        })
    }

    /// Settles a watched attestation whose grace period ended: drops it
    /// from the queue and, if still unconfirmed, marks it overdue.
    /// Returns the path record if it became overdue.
    pub fn settle(
        &mut self,
        queue_key: &[u8],
        a: &Awaiting,
    ) -> Result<Option<PathRecord>, DbError> {
        self.batch.delete(queue_key);
        let Some(rec) = self.db.path(&a.base)? else {
            return Ok(None);
        };
        let full = rec.path.clone();
        let rec = self.path_mut(&a.base, &full)?;
        let Some(att) = rec.atts.iter_mut().find(|x| x.index == a.index) else {
            return Ok(None);
        };
        if att.confirmed || att.overdue {
            return Ok(None);
        }
        att.overdue = true;
        let copy = rec.clone();
        self.key_mut(&a.key)?.overdue += 1;
        Ok(Some(copy))
    }

    /// The cutoff of an Ed25519 key (whatever name it signs under), as of
    /// this step.
    pub fn cutoff(&mut self, key: &[u8; 32]) -> Result<Option<TransitionRecord>, DbError> {
        if let Some(c) = self.cutoffs.get(key) {
            return Ok(c.clone());
        }
        let c = self.db.cutoff(key)?;
        self.cutoffs.insert(*key, c.clone());
        Ok(c)
    }

    /// Applies a valid transition whose old key is `old` (its Ed25519
    /// bytes): it becomes that key's cutoff unless the key has one already
    /// (then it is a violation, returned as such).
    pub fn transition(
        &mut self,
        old: &[u8; 32],
        t: TransitionRecord,
    ) -> Result<Option<Violation>, DbError> {
        self.batch
            .put(key(b'T', &t.index.to_be_bytes()), encode(&t));
        if let Some(first) = self.cutoff(old)? {
            let v = Violation {
                index: t.index,
                key: t.old.clone(),
                cutoff: first.index,
                what: "transition".into(),
                path: None,
                seen: t.seen,
            };
            self.violation(&v);
            return Ok(Some(v));
        }
        self.batch.put(key(b'u', old), encode(&t));
        self.cutoffs.insert(*old, Some(t));
        Ok(None)
    }

    /// Records an entry by a key at or after its cutoff.
    pub fn violation(&mut self, v: &Violation) {
        self.batch.put(key(b'v', &v.index.to_be_bytes()), encode(v));
    }

    /// Records that a finding was reported (so it is reported once).
    pub fn mark_reported(&mut self, id: String) {
        self.reported.push(id);
    }
}

fn key_d(base: &str) -> Vec<u8> {
    key(b'd', base.as_bytes())
}

/// Distinct (NAR hash, size) pairs on a path.
fn distinct(rec: &PathRecord) -> usize {
    let mut v: Vec<(&str, u64)> = rec
        .atts
        .iter()
        .map(|a| (a.nar_hash.as_str(), a.nar_size))
        .collect();
    v.sort_unstable();
    v.dedup();
    v.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_are_by_key_bytes_and_old_databases_move_theirs() {
        let dir = std::env::temp_dir().join(format!("vouch-monitor-cut-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let k = vouch_spec::nix::NixSecretKey::from_seed("farm-1", &[9; 32]).unwrap();
        let renamed = vouch_spec::nix::NixSecretKey::from_seed("stolen-1", &[9; 32]).unwrap();
        let bytes = k.public().key().to_bytes();
        let rec = |index| TransitionRecord {
            index,
            old: k.public().to_string(),
            new: None,
            seen: 1,
        };
        {
            // A database as an older monitor wrote it: two cutoff records
            // under the key's text (the second a later, renamed record).
            let db = MonitorDb::open(&dir).unwrap();
            db.db
                .put(
                    key(b't', k.public().to_string().as_bytes()),
                    encode(&rec(5)),
                )
                .unwrap();
            let mut later = rec(9);
            later.old = renamed.public().to_string();
            db.db
                .put(key(b't', later.old.as_bytes()), encode(&later))
                .unwrap();
        }
        let db = MonitorDb::open(&dir).unwrap();
        assert_eq!(db.cutoff(&bytes).unwrap().map(|t| t.index), Some(5));
        assert!(db
            .db
            .prefix_iterator([b't'])
            .flatten()
            .all(|(k, _)| k[0] != b't'));
        // A step finds it whatever name the key is used under, and a second
        // transition by the same key is a violation.
        let mut s = db.step();
        assert_eq!(
            s.cutoff(&renamed.public().key().to_bytes())
                .unwrap()
                .map(|t| t.index),
            Some(5)
        );
        assert!(s.transition(&bytes, rec(12)).unwrap().is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn att(key: &str, hash: &str, index: u64) -> Att {
        Att {
            key: key.into(),
            nar_hash: hash.into(),
            nar_size: 1,
            index,
            seen: 7200,
            confirmed: false,
            disagrees: false,
            overdue: false,
        }
    }

    #[test]
    fn counters_follow_confirmations_and_disagreements_across_commits() {
        let dir = std::env::temp_dir().join(format!("vouch-monitor-db-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = MonitorDb::open(&dir).unwrap();
        let p = "/nix/store/00000000000000000000000000000000-x";
        let mut s = db.step();
        s.attest(p, att("farm", "sha256:a", 0), true).unwrap();
        db.commit(
            s,
            &Position {
                size: 1,
                ..Position::default()
            },
        )
        .unwrap();
        assert_eq!(db.builder("farm").unwrap().unwrap().confirmed, 0);
        let mut s = db.step();
        s.attest(p, att("rebuilder", "sha256:a", 1), false).unwrap();
        let applied = s.attest(p, att("other", "sha256:b", 2), false).unwrap();
        assert!(applied.new_disagreement.is_some());
        db.commit(
            s,
            &Position {
                size: 3,
                ..Position::default()
            },
        )
        .unwrap();
        let farm = db.builder("farm").unwrap().unwrap();
        assert_eq!(
            (farm.attestations, farm.confirmed, farm.disagreeing),
            (1, 1, 1)
        );
        let other = db.builder("other").unwrap().unwrap();
        assert_eq!((other.confirmed, other.disagreeing), (0, 1));
        assert_eq!(db.disagreements("", 10).unwrap().len(), 1);
        assert_eq!(
            db.attested_by("farm", 0, 10).unwrap(),
            vec![(0, "00000000000000000000000000000000-x".to_string())]
        );
        assert_eq!(db.paths_with_prefix("0000", 10).unwrap()[0].atts.len(), 3);
        assert_eq!(db.position().unwrap().size, 3);
        assert_eq!(db.hours().unwrap(), vec![(2, 3)]);
        // The watched attestation is confirmed: settling it changes nothing.
        let due = db.awaiting_until(u64::MAX, 10).unwrap();
        assert_eq!(due.len(), 1);
        let mut s = db.step();
        assert!(s.settle(&due[0].0, &due[0].1).unwrap().is_none());
        db.commit(s, &db.position().unwrap()).unwrap();
        assert!(db.awaiting_until(u64::MAX, 10).unwrap().is_empty());
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
