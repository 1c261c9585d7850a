//! The log's durable storage behind two narrow traits, with RocksDB behind
//! both: [`Store`], what the sequencer needs (its state, one atomic commit
//! per batch, duplicate detection, the edge tiles through
//! [`TileReader`]), and [`Reads`], what the HTTP readers need (tiles,
//! interior nodes, entries, the path index, reference lists). Publishing
//! tiles elsewhere (object storage) reads committed state through
//! [`Reads`].
//!
//! Durability contract: one [`Store::commit`] is one atomic, synced write
//! (the new entries, the hash tiles they touched, the interior nodes of
//! tiles they filled, the dedup and path indexes, and the new sequencer
//! state with its signed checkpoint): when it returns `Ok` all of it
//! survives a crash, when it returns `Err` none of it was acknowledged
//! (though a write whose sync failed may still turn out durable; the
//! sequencer follows [`Store::state`] after a failure). Tiles are stored
//! under their coordinates with their current contents (full, or the widest
//! partial so far), so serving one is a single read and a partial tile
//! `.p/W` is a prefix of what is stored; a full tile's interior record is
//! stored after its hashes in the same value. Entries are stored one per index
//! (a lookup reads one, not a bundle of 256) in their own column family
//! (`entries`: append-only keys that compaction never has to merge),
//! and an entry bundle is a range scan over them. Stores created before
//! that family keep their older entries in the default one, and still
//! read; once opened by this version, earlier versions cannot open them.
//! The path index is one record per store path holding its entries'
//! indexes, which a lookup reads with one point read and each commit
//! extends; stores created before keep one key per path and index, read
//! with a prefix scan (see [`LAYOUT_KEY`]). Duplicates of path entries
//! are found through those lists and the level-0 tiles; only transitions
//! (and every entry in stores of earlier layouts) have leaf-hash keys
//! ([`PATH_DEDUP_LAYOUT`]).

use std::path::Path;

use vouch_spec::hash::{Hash, HASH_LEN};

use vouch_spec::integrate::{IntegrateError, TileReader};

/// Storage failures. Any of them means nothing of the commit was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The disk is full (or nearly: below the configured free space).
    #[error("{0}")]
    DiskFull(String),
    /// The database failed an operation (an I/O error, a busy or closed
    /// database).
    #[error("storage failed: {0}")]
    Io(String),
    /// After a failed write the database is open read-only until it can be
    /// reopened for writing.
    #[error(
        "the database is read-only after a failed write; writes resume once it can be reopened"
    )]
    ReadOnly,
    /// Stored bytes are not what this version wrote.
    #[error("stored state is corrupt: {0}")]
    Corrupt(String),
}

impl From<IntegrateError<StoreError>> for StoreError {
    fn from(e: IntegrateError<StoreError>) -> StoreError {
        match e {
            IntegrateError::Read(e) => e,
            IntegrateError::Edge(m) => StoreError::Corrupt(m),
        }
    }
}

/// What the sequencer needs to restart exactly where it stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurableState {
    /// Entries in the log.
    pub size: u64,
    /// The compact range (frontier hashes, largest subtree first).
    pub frontier: Vec<Hash>,
    /// The signed checkpoint for `size`.
    pub checkpoint: Vec<u8>,
}

impl DurableState {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(9 + self.frontier.len() * HASH_LEN + self.checkpoint.len());
        v.extend_from_slice(&self.size.to_be_bytes());
        v.push(self.frontier.len() as u8);
        for h in &self.frontier {
            v.extend_from_slice(&h.0);
        }
        v.extend_from_slice(&self.checkpoint);
        v
    }

    fn decode(b: &[u8]) -> Result<DurableState, StoreError> {
        let bad = || StoreError::Corrupt("sequencer state record".into());
        let size = u64::from_be_bytes(b.get(..8).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
        let n = usize::from(*b.get(8).ok_or_else(bad)?);
        let frontier = b
            .get(9..9 + n * HASH_LEN)
            .and_then(vouch_spec::hash::split_hashes)
            .ok_or_else(bad)?;
        Ok(DurableState {
            size,
            frontier,
            checkpoint: b[9 + n * HASH_LEN..].to_vec(),
        })
    }
}

/// Everything one batch writes.
#[derive(Default, Debug)]
pub struct Commit {
    /// Hash tiles: (tile level, tile index, hashes).
    pub tiles: Vec<(u8, u64, Vec<Hash>)>,
    /// New entries: (index, canonical bytes).
    pub entries: Vec<(u64, Vec<u8>)>,
    /// Interior nodes of full tiles: (tile level, tile index, record of
    /// the tile's rows 4 to 7, see [`crate::interior::INTERIOR_ROWS`]).
    pub interiors: Vec<(u8, u64, Vec<u8>)>,
    /// Leaf hash → index of every new entry, for exact duplicate
    /// detection ([`Store::leaf_indexes`]). A store may keep only those
    /// of entries no path list holds (see [`PATH_DEDUP_LAYOUT`]).
    pub leaves: Vec<(Hash, u64)>,
    /// (store path hash part, index) for lookups.
    pub paths: Vec<([u8; 32], u64)>,
    /// Reference lists of digest-form entries: (digest, list).
    pub references: Vec<([u8; 32], Vec<u8>)>,
    /// (Ed25519 key, index) for each key a transition names, for lookups
    /// by key.
    pub keys: Vec<([u8; 32], u64)>,
    /// (retired Ed25519 key, its cutoff): the index of its first
    /// transition (§3.6). Written once per key.
    pub retirements: Vec<([u8; 32], u64)>,
    /// The new state, written last in the same atomic batch.
    pub state: Option<DurableState>,
}

/// What the sequencer needs (see the module documentation for the
/// durability contract of [`Store::commit`]).
pub trait Store: Reads {
    /// The last committed state, if any.
    fn state(&self) -> Result<Option<DurableState>, StoreError>;
    /// Writes a commit atomically and durably (synced), or not at all.
    fn commit(&self, c: Commit) -> Result<(), StoreError>;
    /// For each probe, the index of the logged entry with its leaf hash,
    /// if there is one. A probe is a leaf hash and, for an entry indexed
    /// by store path, that path's hash part (none for a transition): a
    /// logged duplicate of a path entry has the same path, so a store may
    /// look for it among that path's entries only.
    fn leaf_indexes(
        &self,
        probes: &[(Hash, Option<[u8; 32]>)],
    ) -> Result<Vec<Option<u64>>, StoreError>;
    /// Saves the newest checkpoint that met the witness quorum (with cosignatures), durably.
    fn put_witnessed(&self, checkpoint: &[u8]) -> Result<(), StoreError>;
    /// The newest checkpoint that met the witness quorum.
    fn witnessed(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every retired key with its cutoff (few: one per key transition).
    fn retirements(&self) -> Result<Vec<([u8; 32], u64)>, StoreError>;
    /// A named progress marker (how far a publisher got), if set.
    fn marker(&self, name: &str) -> Result<Option<u64>, StoreError>;
    /// Sets a named progress marker, durably.
    fn put_marker(&self, name: &str, value: u64) -> Result<(), StoreError>;
    /// Makes the store writable again after a failed commit, if it can.
    fn reopen(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Part of a stored hash tile, for a proof through it: which bytes of the
/// tile were asked for, and the interior record if stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TilePart {
    /// The stored tile's length in bytes (a full tile's is
    /// [`FULL_TILE_BYTES`]).
    pub len: usize,
    /// Where [`TilePart::bytes`] start in the tile.
    pub start: usize,
    /// The tile's bytes in the range asked for, cut to the tile's length.
    pub bytes: Vec<u8>,
    /// For a full tile, its interior record
    /// ([`crate::interior::INTERIOR_ROWS`]), if stored.
    pub interior: Option<Vec<u8>>,
}

impl TilePart {
    /// `range` of `tile` (cut to its length) with `interior`.
    fn new(tile: &[u8], range: std::ops::Range<usize>, interior: Option<Vec<u8>>) -> TilePart {
        let start = range.start.min(tile.len());
        let end = range.end.clamp(start, tile.len());
        TilePart {
            len: tile.len(),
            start,
            bytes: tile[start..end].to_vec(),
            interior,
        }
    }
}

/// What the readers need: committed data only.
pub trait Reads: Send + Sync + 'static {
    /// Stored contents of a hash tile (full, or the widest partial so far).
    fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// The bytes in `range` of a hash tile as [`Reads::tile`] has it and,
    /// for a full tile, its stored interior record: what an inclusion proof
    /// through a full level-0 tile needs (at most 8 of its 256 hashes),
    /// in one read and without copying the rest.
    fn tile_part(
        &self,
        level: u8,
        index: u64,
        range: std::ops::Range<usize>,
    ) -> Result<Option<TilePart>, StoreError>;
    /// The entry at `index`.
    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Up to `count` consecutive entries from `start` (fewer if the log ends).
    fn entries(&self, start: u64, count: usize) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Indexes of entries for a store path hash part, ascending.
    fn path_indexes(&self, hash_part: &[u8; 32]) -> Result<Vec<u64>, StoreError>;
    /// Indexes of the transitions naming an Ed25519 key, ascending.
    fn key_indexes(&self, key: &[u8; 32]) -> Result<Vec<u64>, StoreError>;
    /// A digest-form entry's reference list.
    fn references(&self, digest: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Hashes from stored tile bytes (a multiple of 32 bytes).
pub fn decode_tile(level: u8, index: u64, data: &[u8]) -> Result<Vec<Hash>, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("tile {level}/{index} is {} bytes", data.len()));
    let width = u16::try_from(data.len() / HASH_LEN).map_err(|_| corrupt())?;
    let tile = vouch_spec::tile::Tile {
        kind: vouch_spec::tile::TileKind::Hash { level },
        index,
        width,
    };
    vouch_spec::tile::decode_hashes(&tile, data).map_err(|_| corrupt())
}

/// The hashes of a stored hash tile (as wide as stored), or `None`.
pub fn read_hashes<R: Reads + ?Sized>(
    reads: &R,
    level: u8,
    index: u64,
) -> Result<Option<Vec<Hash>>, StoreError> {
    reads
        .tile(level, index)?
        .map(|d| decode_tile(level, index, &d))
        .transpose()
}

/// A store's hash tiles, as `vouch_spec::integrate` reads them.
pub struct TileReads<'a, R: ?Sized>(pub &'a R);

impl<R: Reads + ?Sized> TileReader for TileReads<'_, R> {
    type Error = StoreError;
    fn read_hashes(&self, level: u8, index: u64) -> Result<Option<Vec<Hash>>, StoreError> {
        read_hashes(self.0, level, index)
    }
}

const STATE_KEY: &[u8] = b"S";
const WITNESSED_KEY: &[u8] = b"W";

fn tile_key(level: u8, index: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[0] = b't';
    k[1] = level;
    k[2..].copy_from_slice(&index.to_be_bytes());
    k
}

fn entry_key(index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'e';
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

fn interior_key(level: u8, index: u64) -> [u8; 10] {
    let mut k = tile_key(level, index);
    k[0] = b'n';
    k
}

fn leaf_key(h: &Hash) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[0] = b'i';
    k[1..].copy_from_slice(&h.0);
    k
}

fn path_key(hash_part: &[u8; 32], index: u64) -> [u8; 41] {
    indexed_key(b'p', hash_part, index)
}

/// The key of a store path's index list (in [`LISTS_LAYOUT`] stores):
/// its value is the indexes of the path's entries, ascending, 8 bytes
/// big-endian each.
fn path_list_key(hash_part: &[u8; 32]) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[0] = b'q';
    k[1..].copy_from_slice(hash_part);
    k
}

/// The indexes in a path list record.
fn decode_list(hash_part: &[u8; 32], v: &[u8]) -> Result<Vec<u64>, StoreError> {
    if v.is_empty() || !v.len().is_multiple_of(8) {
        return Err(StoreError::Corrupt(format!(
            "the index list of store path {} is {} bytes",
            String::from_utf8_lossy(hash_part),
            v.len()
        )));
    }
    Ok(v.chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default()))
        .collect())
}

/// `tag ‖ id ‖ index`: one index record (store path or transition key).
fn indexed_key(tag: u8, id: &[u8; 32], index: u64) -> [u8; 41] {
    let mut k = [0u8; 41];
    k[0] = tag;
    k[1..33].copy_from_slice(id);
    k[33..].copy_from_slice(&index.to_be_bytes());
    k
}

fn transition_key(key: &[u8; 32], index: u64) -> [u8; 41] {
    indexed_key(b'k', key, index)
}

fn marker_key(name: &str) -> Vec<u8> {
    let mut k = b"M".to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

fn retired_key(key: &[u8; 32]) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[0] = b'x';
    k[1..].copy_from_slice(key);
    k
}

fn refs_key(d: &[u8; 32]) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[0] = b'r';
    k[1..].copy_from_slice(d);
    k
}

/// RocksDB on local disk.
pub struct RocksStore {
    dir: std::path::PathBuf,
    /// The open database; after a failed write it is reopened in place
    /// (read-only while it cannot be opened for writing).
    db: std::sync::RwLock<Db>,
    /// Entries written before they had their own column family may be in
    /// the default one: true for stores created before it (no
    /// [`LAYOUT_KEY`]), whose readers then look there too.
    legacy_entries: bool,
    /// The path index is kept as lists ([`LISTS_LAYOUT`] and later).
    path_lists: bool,
    /// Path entries have no leaf-hash keys ([`PATH_DEDUP_LAYOUT`]).
    dedup_by_path: bool,
}

struct Db {
    db: rocksdb::DB,
    writable: bool,
}

fn db_err(e: rocksdb::Error) -> StoreError {
    let msg = e.to_string();
    if msg.contains("No space left on device") {
        StoreError::DiskFull(format!("disk full: {msg}"))
    } else if e.kind() == rocksdb::ErrorKind::Corruption {
        StoreError::Corrupt(msg)
    } else {
        StoreError::Io(msg)
    }
}

fn poisoned() -> StoreError {
    StoreError::Io("database lock poisoned by a panic".into())
}

fn options() -> rocksdb::Options {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // The default family holds random hashes (leaf-hash and path index
    // keys, hash tiles), which LZ4 cannot shrink much; compressing them
    // cost compaction, the bulk of the log's background CPU at 1e7
    // entries, and every read a decompression (BENCHMARKS.md, issue 18).
    // The entries have their own family, compressed.
    opts.set_compression_type(rocksdb::DBCompressionType::None);
    opts.set_bottommost_compression_type(rocksdb::DBCompressionType::None);
    // Every commit is synced; the WAL is the durability mechanism.
    opts.set_manual_wal_flush(false);
    opts.increase_parallelism(2);
    // Lookups and dedup probe keys that are mostly absent (every new
    // entry's leaf hash): a Bloom filter answers those without reading
    // a block. Path index keys share a 33-byte prefix per store path.
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_block_cache(&rocksdb::Cache::new_lru_cache(256 << 20));
    // Index and filter blocks stay resident outside the block cache (about
    // 10 bytes per entry): random lookups would otherwise evict them
    // from the cache and reload a whole SST's filter per read, which
    // measured 30x slower lookups at 1e7 entries.
    opts.set_block_based_table_factory(&table);
    opts.set_prefix_extractor(rocksdb::SliceTransform::create_fixed_prefix(33));
    // The same for the memtables: dedup probes every new leaf hash, and a
    // skip-list search per absent key cost ~3% of the log's CPU under
    // ingest (perf, BENCHMARKS.md); a Bloom filter over the 33-byte prefixes
    // (leaf keys are exactly that long) answers them first.
    opts.set_memtable_prefix_bloom_ratio(0.05);
    // Random lookups miss the block cache at scale; reading those blocks
    // through a mapping of the table files costs no system call and no
    // copy, where pread (with readahead) took an eighth of the log's CPU
    // under lookups at 1e7 entries (BENCHMARKS.md).
    opts.set_allow_mmap_reads(true);
    // Without the entries, 64 MiB of memtable holds three times as many
    // (small, random) index keys, and inserting into that deeper skip list
    // cost the sequencer more than the entries' separate family saved at
    // small sizes; 16 MiB holds about as many keys as 64 MiB did with them.
    opts.set_write_buffer_size(16 << 20);
    // Index keys are random, so every compaction from level 0 rewrites
    // the whole base level it lands on; compacting after 8 flushed files
    // instead of 4, into a base level of up to 1 GiB, halves how often
    // that happens. At 1e7 entries the log spent 17.9 instead of 20 µs of
    // CPU per ingested entry, lookups unchanged (BENCHMARKS.md, issue 18),
    // for ~340 MiB more resident index and filter blocks. A read checks
    // more level-0 files (up to 8 before a compaction starts), each
    // behind its Bloom filter.
    opts.set_level_zero_file_num_compaction_trigger(8);
    opts.set_max_bytes_for_level_base(1 << 30);
    opts
}

/// The column family of the entries, apart from the indexes: entry keys
/// only ever grow, so each flushed file lies beyond every older one and
/// compaction moves it down the levels without rewriting it. Sharing a
/// column family with the random-keyed indexes (leaf hashes, store paths)
/// made every compaction rewrite the entries with them: a fifth of the
/// log's CPU under ingest at 1e7 (BENCHMARKS.md).
const ENTRIES_CF: &str = "entries";

/// Present in stores created since [`ENTRIES_CF`] (all their entries are
/// there): value `2`, [`LISTS_LAYOUT`] for stores whose path index is
/// kept as lists, or [`PATH_DEDUP_LAYOUT`]. A store keeps the layout it
/// was created with. This version refuses to open a layout it does not
/// know; versions before [`LISTS_LAYOUT`] did not check, and on a store
/// of a later layout would find none of its store paths (and, on one of
/// [`PATH_DEDUP_LAYOUT`], none of its path entries' duplicates).
const LAYOUT_KEY: &[u8] = b"L";

/// The layout whose path index is one record per store path, the list of
/// its entries' indexes ([`path_list_key`]), read with one point read;
/// earlier layouts have one key per (path, index) ([`path_key`]), read
/// with a prefix scan. A scan builds an iterator over every level and
/// level-0 file; a point read stops at the one file whose Bloom filter and
/// key range hold the key (BENCHMARKS.md, issue 18).
const LISTS_LAYOUT: u8 = 3;

/// The layout of new stores: [`LISTS_LAYOUT`]'s path lists, and no
/// leaf-hash key ([`leaf_key`]) for an entry a path list holds. A
/// duplicate of a path entry has the same store path, so
/// [`Store::leaf_indexes`] finds it by comparing the leaf hashes of the
/// path's listed entries, read from the level-0 tiles. A new path costs
/// one read of its (absent) list in place of the leaf-hash key's; a
/// listed path one tile read per entry already listed (paths have a few,
/// one per builder that attested them). The leaf-hash keys were half of the random keys a commit inserted and
/// compaction rewrote, and probing them one of the commit's two batched
/// reads (BENCHMARKS.md, issue 18, fifteenth session). Transitions,
/// which no path list holds, keep their leaf-hash keys.
const PATH_DEDUP_LAYOUT: u8 = 4;

fn entries_options() -> rocksdb::Options {
    let mut opts = rocksdb::Options::default();
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts.set_bottommost_compression_type(rocksdb::DBCompressionType::Lz4);
    // Every read is of an entry that exists: no Bloom filter. No block
    // cache either: entries are read at random (a lookup, a bundle) or in
    // order once (a mirror, the monitor), so a cached block was almost
    // never read again, and inserting each one (an allocation, a copy,
    // the cache's lock, an eviction) cost more than decompressing it from
    // the mapped file each time: 0.433 against 0.395 of the HTTP ceiling
    // for lookups at 1e7 entries (BENCHMARKS.md, issue 18, seventh
    // session).
    let mut table = rocksdb::BlockBasedOptions::default();
    table.disable_cache();
    opts.set_block_based_table_factory(&table);
    opts
}

/// The database's options (which are also the default family's) and
/// both families, built once per opening.
fn column_families() -> (rocksdb::Options, Vec<rocksdb::ColumnFamilyDescriptor>) {
    let opts = options();
    let cfs = vec![
        rocksdb::ColumnFamilyDescriptor::new(rocksdb::DEFAULT_COLUMN_FAMILY_NAME, opts.clone()),
        rocksdb::ColumnFamilyDescriptor::new(ENTRIES_CF, entries_options()),
    ];
    (opts, cfs)
}

fn open_db(dir: &Path) -> Result<rocksdb::DB, StoreError> {
    let (opts, cfs) = column_families();
    rocksdb::DB::open_cf_descriptors(&opts, dir, cfs).map_err(db_err)
}

fn entries_cf(db: &rocksdb::DB) -> Result<&rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(ENTRIES_CF)
        .ok_or_else(|| StoreError::Corrupt(format!("column family {ENTRIES_CF} is missing")))
}

impl RocksStore {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<RocksStore, StoreError> {
        let db = open_db(dir)?;
        let mut layout = db.get(LAYOUT_KEY).map_err(db_err)?;
        if layout.is_none() && db.get(STATE_KEY).map_err(db_err)?.is_none() {
            // A new store: every entry goes to its own column family, the
            // path index is kept as lists, and they find path entries'
            // duplicates.
            let mut wo = rocksdb::WriteOptions::default();
            wo.set_sync(true);
            db.put_opt(LAYOUT_KEY, [PATH_DEDUP_LAYOUT], &wo)
                .map_err(db_err)?;
            layout = Some(vec![PATH_DEDUP_LAYOUT]);
        }
        let (path_lists, dedup_by_path) = match layout.as_deref() {
            None | Some([2]) => (false, false),
            Some([LISTS_LAYOUT]) => (true, false),
            Some([PATH_DEDUP_LAYOUT]) => (true, true),
            Some(other) => {
                return Err(StoreError::Corrupt(format!(
                    "the store in {} has layout {other:?}, which this version does not know \
                     (it writes layout {PATH_DEDUP_LAYOUT}): a later version wrote it",
                    dir.display()
                )))
            }
        };
        Ok(RocksStore {
            dir: dir.to_path_buf(),
            db: std::sync::RwLock::new(Db { db, writable: true }),
            legacy_entries: layout.is_none(),
            path_lists,
            dedup_by_path,
        })
    }

    fn db(&self) -> Result<std::sync::RwLockReadGuard<'_, Db>, StoreError> {
        self.db.read().map_err(|_| poisoned())
    }
}

impl Store for RocksStore {
    fn state(&self) -> Result<Option<DurableState>, StoreError> {
        self.db()?
            .db
            .get(STATE_KEY)
            .map_err(db_err)?
            .map(|b| DurableState::decode(&b))
            .transpose()
    }

    fn commit(&self, c: Commit) -> Result<(), StoreError> {
        let mut batch = rocksdb::WriteBatch::default();
        let mut interiors: std::collections::HashMap<(u8, u64), &[u8]> = c
            .interiors
            .iter()
            .map(|(l, i, d)| ((*l, *i), &d[..]))
            .collect();
        for (l, i, hashes) in &c.tiles {
            let mut value = vouch_spec::tile::encode_hashes(hashes);
            // A full tile's interior record goes in the same value (see
            // `split_tile_value`); a record of the wrong size could not
            // be told apart from the tile, so it goes under its own key.
            if value.len() == FULL_TILE_BYTES {
                if let Some(rec) = interiors.remove(&(*l, *i)) {
                    if rec.len() == INTERIOR_BYTES {
                        value.extend_from_slice(rec);
                    } else {
                        interiors.insert((*l, *i), rec);
                    }
                }
            }
            batch.put(tile_key(*l, *i), value);
        }
        let g = self.db()?;
        let entries = entries_cf(&g.db)?;
        for (i, data) in &c.entries {
            batch.put_cf(entries, entry_key(*i), data);
        }
        for ((l, i), data) in interiors {
            batch.put(interior_key(l, i), data);
        }
        // The index keys are random; inserted in key order, each memtable
        // insert starts its skip-list search from the one before, a few
        // steps away, instead of from the top: the sequencer's inserts were
        // a tenth of the log's CPU under ingest (perf, BENCHMARKS.md).
        let listed: std::collections::HashSet<u64> = if self.dedup_by_path {
            c.paths.iter().map(|(_, i)| *i).collect()
        } else {
            Default::default()
        };
        let mut leaves: Vec<([u8; 33], u64)> = c
            .leaves
            .iter()
            .filter(|(_, i)| !listed.contains(i))
            .map(|(h, i)| (leaf_key(h), *i))
            .collect();
        leaves.sort_unstable_by_key(|a| a.0);
        for (k, i) in &leaves {
            batch.put(k, i.to_be_bytes());
        }
        if self.path_lists {
            path_lists(&g.db, &c.paths, &mut batch)?;
        } else {
            let mut paths: Vec<[u8; 41]> = c.paths.iter().map(|(p, i)| path_key(p, *i)).collect();
            paths.sort_unstable();
            for k in &paths {
                batch.put(k, []);
            }
        }
        for (d, list) in &c.references {
            batch.put(refs_key(d), list);
        }
        for (key, i) in &c.keys {
            batch.put(transition_key(key, *i), []);
        }
        for (key, i) in &c.retirements {
            batch.put(retired_key(key), i.to_be_bytes());
        }
        if let Some(s) = &c.state {
            batch.put(STATE_KEY, s.encode());
        }
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(true);
        if !g.writable {
            return Err(StoreError::ReadOnly);
        }
        g.db.write_opt(batch, &wo).map_err(db_err)
    }

    fn leaf_indexes(
        &self,
        probes: &[(Hash, Option<[u8; 32]>)],
    ) -> Result<Vec<Option<u64>>, StoreError> {
        let g = self.db()?;
        let default = default_cf(&g.db)?;
        let mut found = vec![None; probes.len()];
        // Probes with a leaf-hash key: every one in earlier layouts,
        // transitions only in `PATH_DEDUP_LAYOUT`.
        let keyed: Vec<usize> = (0..probes.len())
            .filter(|&k| !self.dedup_by_path || probes[k].1.is_none())
            .collect();
        let keys: Vec<[u8; 33]> = keyed.iter().map(|&k| leaf_key(&probes[k].0)).collect();
        let ro = rocksdb::ReadOptions::default();
        for (&k, v) in keyed
            .iter()
            .zip(g.db.batched_multi_get_cf_opt(default, &keys, false, &ro))
        {
            found[k] = v
                .map_err(db_err)?
                .map(|b| {
                    let a: [u8; 8] = (&*b)
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("leaf index record".into()))?;
                    Ok::<u64, StoreError>(u64::from_be_bytes(a))
                })
                .transpose()?;
        }
        if !self.dedup_by_path {
            return Ok(found);
        }
        // The others among their paths' listed entries.
        let mut by_path: std::collections::BTreeMap<&[u8; 32], Vec<usize>> = Default::default();
        for (k, (_, path)) in probes.iter().enumerate() {
            if let Some(p) = path {
                by_path.entry(p).or_default().push(k);
            }
        }
        let keys: Vec<[u8; 33]> = by_path.keys().map(|p| path_list_key(p)).collect();
        for ((p, ks), v) in by_path
            .iter()
            .zip(g.db.batched_multi_get_cf_opt(default, &keys, true, &ro))
        {
            let Some(v) = v.map_err(db_err)? else {
                continue;
            };
            for index in decode_list(p, &v)? {
                let leaf = level0_hash(&g.db, index)?;
                for &k in ks {
                    if probes[k].0 == leaf {
                        found[k] = Some(index);
                    }
                }
            }
        }
        Ok(found)
    }

    fn put_witnessed(&self, checkpoint: &[u8]) -> Result<(), StoreError> {
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(true);
        self.db()?
            .db
            .put_opt(WITNESSED_KEY, checkpoint, &wo)
            .map_err(db_err)
    }

    fn witnessed(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.db()?.db.get(WITNESSED_KEY).map_err(db_err)
    }

    fn marker(&self, name: &str) -> Result<Option<u64>, StoreError> {
        self.db()?
            .db
            .get(marker_key(name))
            .map_err(db_err)?
            .map(|v| {
                <[u8; 8]>::try_from(v.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt(format!("marker {name}")))
            })
            .transpose()
    }

    fn put_marker(&self, name: &str, value: u64) -> Result<(), StoreError> {
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(true);
        self.db()?
            .db
            .put_opt(marker_key(name), value.to_be_bytes(), &wo)
            .map_err(db_err)
    }

    fn retirements(&self) -> Result<Vec<([u8; 32], u64)>, StoreError> {
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_total_order_seek(true);
        let g = self.db()?;
        let mut out = Vec::new();
        for item in g.db.iterator_opt(
            rocksdb::IteratorMode::From(b"x", rocksdb::Direction::Forward),
            ro,
        ) {
            let (k, v) = item.map_err(db_err)?;
            if k.first() != Some(&b'x') {
                break;
            }
            let bad = || StoreError::Corrupt("retirement record".into());
            let key: [u8; 32] = k.get(1..).and_then(|k| k.try_into().ok()).ok_or_else(bad)?;
            let i: [u8; 8] = (*v).try_into().map_err(|_| bad())?;
            out.push((key, u64::from_be_bytes(i)));
        }
        Ok(out)
    }

    fn reopen(&self) -> Result<(), StoreError> {
        // RocksDB takes no more writes after an I/O error (its background
        // error is sticky) until it is reopened; reopening replays the WAL,
        // which holds every acknowledged commit and stops at a torn record.
        let mut g = self.db.write().map_err(|_| poisoned())?;
        // Release the old handle (and its LOCK file) before reopening: keep
        // a read-only handle in its place meanwhile so readers never miss.
        let (opts, cfs) = column_families();
        let ro = rocksdb::DB::open_cf_descriptors_read_only(&opts, &self.dir, cfs, false)
            .map_err(db_err)?;
        *g = Db {
            db: ro,
            writable: false,
        };
        *g = Db {
            db: open_db(&self.dir)?,
            writable: true,
        };
        Ok(())
    }
}

/// Read options for what only answers to readers are built from (entries,
/// path indexes, interior records): block checksums are not verified.
/// Every such answer is a Merkle proof the reader checks against a signed
/// root, so a corrupt block makes a proof that is refused, never one that
/// is accepted; the checksums cost a twentieth of the log's CPU under
/// random lookups at 1e7 entries (BENCHMARKS.md). What the sequencer
/// reads to extend the tree (tiles, leaf indexes) is verified as before.
fn answer_reads() -> rocksdb::ReadOptions {
    let mut ro = rocksdb::ReadOptions::default();
    ro.set_verify_checksums(false);
    ro
}

/// A full hash tile's bytes (256 hashes).
pub(crate) const FULL_TILE_BYTES: usize = vouch_spec::tile::TILE_WIDTH as usize * HASH_LEN;
/// An interior record's bytes.
const INTERIOR_BYTES: usize = crate::interior::INTERIOR_HASHES * HASH_LEN;

/// A stored tile value split into the tile and, for a full tile, the
/// interior record stored after it: one value, so a proof through a
/// random level-0 tile costs one read instead of two (BENCHMARKS.md,
/// issue 18). Stores written before keep the record under its own key:
/// their full tiles are exactly [`FULL_TILE_BYTES`] and split to `None`.
fn split_tile_value(value: &[u8]) -> (&[u8], Option<&[u8]>) {
    if value.len() == FULL_TILE_BYTES + INTERIOR_BYTES {
        let (tile, rec) = value.split_at(FULL_TILE_BYTES);
        (tile, Some(rec))
    } else {
        (value, None)
    }
}

impl Reads for RocksStore {
    fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let g = self.db()?;
        let value = g.db.get_pinned(tile_key(level, index)).map_err(db_err)?;
        Ok(value.map(|v| split_tile_value(&v).0.to_vec()))
    }

    fn tile_part(
        &self,
        level: u8,
        index: u64,
        range: std::ops::Range<usize>,
    ) -> Result<Option<TilePart>, StoreError> {
        let g = self.db()?;
        // Pinned: only the part asked for is copied out of the block.
        let Some(value) =
            g.db.get_pinned_opt(tile_key(level, index), &answer_reads())
                .map_err(db_err)?
        else {
            return Ok(None);
        };
        let (tile, rec) = split_tile_value(&value);
        let rec = match rec {
            Some(r) => Some(r.to_vec()),
            None if tile.len() == FULL_TILE_BYTES => {
                g.db.get_opt(interior_key(level, index), &answer_reads())
                    .map_err(db_err)?
            }
            None => None,
        };
        Ok(Some(TilePart::new(tile, range, rec)))
    }

    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let g = self.db()?;
        let found =
            g.db.get_cf_opt(entries_cf(&g.db)?, entry_key(index), &answer_reads())
                .map_err(db_err)?;
        match found {
            None if self.legacy_entries => {
                g.db.get_opt(entry_key(index), &answer_reads())
                    .map_err(db_err)
            }
            found => Ok(found),
        }
    }

    fn entries(&self, start: u64, count: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::with_capacity(count);
        let g = self.db()?;
        let cf = entries_cf(&g.db)?;
        // A legacy store has its older entries in the default column
        // family and the newer ones in their own: a range may span both.
        let (mut in_cf, mut misses) = (true, 0);
        loop {
            let at = start + out.len() as u64;
            let got = scan_entries(&g.db, in_cf.then_some(cf), at, count - out.len(), &mut out)?;
            if out.len() == count || !self.legacy_entries {
                break;
            }
            misses = if got == 0 { misses + 1 } else { 0 };
            if misses == 2 {
                break; // in neither: the log ends here
            }
            in_cf = !in_cf;
        }
        Ok(out)
    }

    fn path_indexes(&self, hash_part: &[u8; 32]) -> Result<Vec<u64>, StoreError> {
        if !self.path_lists {
            return self.indexes(path_key(hash_part, 0));
        }
        let g = self.db()?;
        let list =
            g.db.get_pinned_opt(path_list_key(hash_part), &answer_reads())
                .map_err(db_err)?;
        list.map_or(Ok(Vec::new()), |v| decode_list(hash_part, &v))
    }

    fn key_indexes(&self, key: &[u8; 32]) -> Result<Vec<u64>, StoreError> {
        self.indexes(transition_key(key, 0))
    }

    fn references(&self, digest: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db()?.db.get(refs_key(digest)).map_err(db_err)
    }
}

fn default_cf(db: &rocksdb::DB) -> Result<&rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
        .ok_or_else(|| StoreError::Corrupt("the default column family is missing".into()))
}

/// The level-0 hash (the leaf hash) of the committed entry at `index`,
/// from its stored tile.
fn level0_hash(db: &rocksdb::DB, index: u64) -> Result<Hash, StoreError> {
    let tile = index / vouch_spec::tile::TILE_WIDTH;
    let at = (index % vouch_spec::tile::TILE_WIDTH) as usize * HASH_LEN;
    let missing =
        || StoreError::Corrupt(format!("level-0 tile {tile} has no hash for entry {index}"));
    let value = db
        .get_pinned_opt(tile_key(0, tile), &answer_reads())
        .map_err(db_err)?
        .ok_or_else(missing)?;
    let hash: [u8; HASH_LEN] = split_tile_value(&value)
        .0
        .get(at..at + HASH_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(missing)?;
    Ok(Hash(hash))
}

/// Puts into `batch` the index list of every store path in `paths`: the
/// stored list with this commit's indexes appended. Reads what earlier
/// commits stored, so commits must come one at a time (the sequencer's).
fn path_lists(
    db: &rocksdb::DB,
    paths: &[([u8; 32], u64)],
    batch: &mut rocksdb::WriteBatch,
) -> Result<(), StoreError> {
    let mut lists: std::collections::BTreeMap<&[u8; 32], Vec<u64>> = Default::default();
    for (p, i) in paths {
        lists.entry(p).or_default().push(*i);
    }
    // Sorted keys: each memtable insert starts near the one before.
    let keys: Vec<[u8; 33]> = lists.keys().map(|p| path_list_key(p)).collect();
    let stored = db.batched_multi_get_cf_opt(
        default_cf(db)?,
        &keys,
        true,
        &rocksdb::ReadOptions::default(),
    );
    for ((p, new), (k, old)) in lists.into_iter().zip(keys.iter().zip(stored)) {
        let mut v = match old.map_err(db_err)? {
            Some(old) => {
                let last = decode_list(p, &old)?.last().copied();
                if last.is_some_and(|l| new.first().is_some_and(|f| *f <= l)) {
                    return Err(StoreError::Corrupt(format!(
                        "store path {} is listed at {last:?}, after the new index {new:?}",
                        String::from_utf8_lossy(p)
                    )));
                }
                old.to_vec()
            }
            None => Vec::with_capacity(new.len() * 8),
        };
        for i in new {
            v.extend_from_slice(&i.to_be_bytes());
        }
        batch.put(k, v);
    }
    Ok(())
}

/// Appends up to `count` consecutive entries from `start` found in `cf`
/// (the default column family for `None`) to `out`; how many.
fn scan_entries(
    db: &rocksdb::DB,
    cf: Option<&rocksdb::ColumnFamily>,
    start: u64,
    count: usize,
    out: &mut Vec<Vec<u8>>,
) -> Result<usize, StoreError> {
    let first = entry_key(start);
    // Entry keys are shorter than the default family's prefix extractor.
    let mut ro = rocksdb::ReadOptions::default();
    ro.set_total_order_seek(true);
    let mode = rocksdb::IteratorMode::From(&first, rocksdb::Direction::Forward);
    let iter = match cf {
        Some(cf) => db.iterator_cf_opt(cf, ro, mode),
        None => db.iterator_opt(mode, ro),
    };
    let mut n = 0;
    for (k, item) in (start..).zip(iter) {
        if n == count {
            break;
        }
        let (key, value) = item.map_err(db_err)?;
        if *key != entry_key(k) {
            break;
        }
        out.push(value.to_vec());
        n += 1;
    }
    Ok(n)
}

impl RocksStore {
    /// The indexes under one 33-byte index prefix, ascending.
    fn indexes(&self, start: [u8; 41]) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        let mut ro = answer_reads();
        ro.set_prefix_same_as_start(true);
        let g = self.db()?;
        for item in g.db.iterator_opt(
            rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward),
            ro,
        ) {
            let (k, _) = item.map_err(db_err)?;
            if k.len() != 41 || k[..33] != start[..33] {
                break;
            }
            out.push(u64::from_be_bytes(
                k[33..]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("index key".into()))?,
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_roundtrip() {
        let s = DurableState {
            size: 5,
            frontier: vec![Hash([1; 32]), Hash([2; 32])],
            checkpoint: b"cp\n".to_vec(),
        };
        assert_eq!(DurableState::decode(&s.encode()).unwrap(), s);
        assert!(DurableState::decode(&[0; 3]).is_err());
    }

    /// A full tile and its interior record are one value; `tile` still
    /// answers with the tile alone, and a store written before (record
    /// under its own key) still reads.
    #[test]
    fn interior_record_rides_with_its_tile() {
        let dir = std::env::temp_dir().join(format!("vouch-store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = RocksStore::open(&dir).unwrap();
        let full: Vec<Hash> = (0..=255u8).map(|b| Hash([b; 32])).collect();
        let rec = vec![7u8; INTERIOR_BYTES];
        store
            .commit(Commit {
                tiles: vec![(0, 0, full.clone()), (0, 1, full[..3].to_vec())],
                interiors: vec![(0, 0, rec.clone())],
                ..Commit::default()
            })
            .unwrap();
        let tile = vouch_spec::tile::encode_hashes(&full);
        assert_eq!(store.tile(0, 0).unwrap(), Some(tile.clone()));
        let part = |i, range| store.tile_part(0, i, range).unwrap();
        assert_eq!(
            part(0, 64..96),
            Some(TilePart {
                len: FULL_TILE_BYTES,
                start: 64,
                bytes: tile[64..96].to_vec(),
                interior: Some(rec.clone()),
            })
        );
        // The range is cut to the tile; a partial tile has no record.
        assert_eq!(
            part(0, 8000..9000).map(|p| (p.start, p.bytes)),
            Some((8000, tile[8000..].to_vec()))
        );
        assert_eq!(store.tile(0, 1).unwrap().map(|t| t.len()), Some(96));
        assert_eq!(
            part(1, 0..512),
            Some(TilePart {
                len: 96,
                start: 0,
                bytes: tile[..96].to_vec(),
                interior: None,
            })
        );
        assert_eq!(part(0, 9000..9100).map(|p| p.bytes.len()), Some(0));
        assert_eq!(part(2, 0..32), None);
        // The earlier layout: the record under its own key.
        {
            let g = store.db().unwrap();
            g.db.put(tile_key(0, 5), &tile).unwrap();
            g.db.put(interior_key(0, 5), &rec).unwrap();
        }
        assert_eq!(store.tile(0, 5).unwrap(), Some(tile.clone()));
        assert_eq!(
            part(5, 0..FULL_TILE_BYTES),
            Some(TilePart {
                len: FULL_TILE_BYTES,
                start: 0,
                bytes: tile,
                interior: Some(rec),
            })
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// New stores keep one index list per store path, appended to by each
    /// commit (several entries of one path in a commit included); a store
    /// of layout 2 keeps one key per path and index, and both read alike.
    #[test]
    fn path_index_lists_and_keys_read_alike() {
        let dir = std::env::temp_dir().join(format!("vouch-store-lists-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (a, b, c) = ([b'a'; 32], [b'b'; 32], [b'c'; 32]);
        let commit = |store: &RocksStore, paths: Vec<([u8; 32], u64)>| {
            store.commit(Commit {
                paths,
                ..Commit::default()
            })
        };
        for layout in [PATH_DEDUP_LAYOUT, LISTS_LAYOUT, 2] {
            if layout != PATH_DEDUP_LAYOUT {
                let db = open_db(&dir).unwrap();
                db.put(LAYOUT_KEY, [layout]).unwrap();
                db.put(STATE_KEY, b"s").unwrap();
            }
            let store = RocksStore::open(&dir).unwrap();
            assert_eq!(store.path_lists, layout != 2);
            commit(&store, vec![(a, 0), (b, 1), (a, 2)]).unwrap();
            commit(&store, vec![(a, 3), (c, 4)]).unwrap();
            assert_eq!(store.path_indexes(&a).unwrap(), vec![0, 2, 3]);
            assert_eq!(store.path_indexes(&b).unwrap(), vec![1]);
            assert_eq!(store.path_indexes(&c).unwrap(), vec![4]);
            assert!(store.path_indexes(&[b'd'; 32]).unwrap().is_empty());
            let g = store.db().unwrap();
            let keyed = g.db.get(path_key(&a, 2)).unwrap().is_some();
            let listed = g.db.get(path_list_key(&a)).unwrap().is_some();
            assert_eq!((keyed, listed), (layout == 2, layout != 2));
            drop(g);
            if layout != 2 {
                // An index at or before the listed ones is refused, and
                // the list is unchanged.
                assert!(matches!(
                    commit(&store, vec![(a, 3)]),
                    Err(StoreError::Corrupt(_))
                ));
                assert_eq!(store.path_indexes(&a).unwrap(), vec![0, 2, 3]);
                // A record that is not whole indexes reads as corrupt.
                store
                    .db()
                    .unwrap()
                    .db
                    .put(path_list_key(&b), [1, 2, 3])
                    .unwrap();
                assert!(matches!(
                    store.path_indexes(&b),
                    Err(StoreError::Corrupt(_))
                ));
            }
            drop(store);
            let _ = std::fs::remove_dir_all(&dir);
        }
        // A layout this version does not know is refused, not read as
        // another.
        {
            let db = open_db(&dir).unwrap();
            db.put(LAYOUT_KEY, [PATH_DEDUP_LAYOUT + 1]).unwrap();
            db.put(STATE_KEY, b"s").unwrap();
        }
        assert!(matches!(
            RocksStore::open(&dir),
            Err(StoreError::Corrupt(m)) if m.contains("layout [5]")
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Duplicates are found whatever the layout: in new stores through the
    /// path lists and the level-0 tiles (path entries have no leaf-hash
    /// key), in stores of earlier layouts through the leaf-hash keys;
    /// transitions through their leaf-hash keys in both.
    #[test]
    fn duplicates_are_found_through_path_lists_or_leaf_keys() {
        let dir = std::env::temp_dir().join(format!("vouch-store-dedup-{}", std::process::id()));
        let leaf = |i: u64| vouch_spec::leaf_hash(format!("entry {i}").as_bytes());
        let (a, b) = ([b'a'; 32], [b'b'; 32]);
        for layout in [PATH_DEDUP_LAYOUT, LISTS_LAYOUT] {
            let _ = std::fs::remove_dir_all(&dir);
            if layout != PATH_DEDUP_LAYOUT {
                let db = open_db(&dir).unwrap();
                db.put(LAYOUT_KEY, [layout]).unwrap();
                db.put(STATE_KEY, b"s").unwrap();
            }
            let store = RocksStore::open(&dir).unwrap();
            assert_eq!(store.dedup_by_path, layout == PATH_DEDUP_LAYOUT);
            // Entries 0..300 (a full level-0 tile and part of the next):
            // path a at 1 and 257, path b at 2, a transition at 3, the
            // rest on paths of their own.
            let own = |i: u64| {
                let mut p = [b'z'; 32];
                p[..8].copy_from_slice(&i.to_be_bytes());
                p
            };
            let path_of = |i: u64| match i {
                1 | 257 => Some(a),
                2 => Some(b),
                3 => None,
                _ => Some(own(i)),
            };
            let mut c = Commit::default();
            let leaves: Vec<Hash> = (0..300).map(leaf).collect();
            c.tiles = vec![
                (0, 0, leaves[..256].to_vec()),
                (0, 1, leaves[256..].to_vec()),
            ];
            for i in 0..300u64 {
                c.leaves.push((leaf(i), i));
                match path_of(i) {
                    Some(p) => c.paths.push((p, i)),
                    None => c.keys.push(([b'k'; 32], i)),
                }
            }
            store.commit(c).unwrap();
            let probes: Vec<(Hash, Option<[u8; 32]>)> = vec![
                (leaf(257), Some(a)),
                (leaf(1), Some(a)),
                (leaf(2), Some(b)),
                (leaf(3), None),
                (leaf(299), path_of(299)),
                // New: another leaf on a listed path, a new path, a new
                // transition.
                (leaf(1000), Some(a)),
                (leaf(1001), Some([b'n'; 32])),
                (leaf(1002), None),
            ];
            assert_eq!(
                store.leaf_indexes(&probes).unwrap(),
                vec![
                    Some(257),
                    Some(1),
                    Some(2),
                    Some(3),
                    Some(299),
                    None,
                    None,
                    None
                ],
                "layout {layout}"
            );
            let g = store.db().unwrap();
            let path_keyed = g.db.get(leaf_key(&leaf(1))).unwrap().is_some();
            assert_eq!(path_keyed, layout != PATH_DEDUP_LAYOUT);
            assert!(g.db.get(leaf_key(&leaf(3))).unwrap().is_some());
            if layout == PATH_DEDUP_LAYOUT {
                // A listed entry whose tile is missing is corruption, not
                // a new entry.
                g.db.delete(tile_key(0, 1)).unwrap();
                drop(g);
                assert!(matches!(
                    store.leaf_indexes(&[(leaf(1000), Some(a))]),
                    Err(StoreError::Corrupt(m)) if m.contains("entry 257")
                ));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// New stores keep entries in their own column family; a store from
    /// before it (entries in the default one, no layout record) reads its
    /// old entries there, its new ones in the family, and ranges across.
    #[test]
    fn entries_have_their_column_family_and_older_stores_still_read() {
        let dir = std::env::temp_dir().join(format!("vouch-store-cf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let entry = |i: u64| format!("entry {i}\n").into_bytes();
        let commit = |store: &RocksStore, r: std::ops::Range<u64>| {
            store
                .commit(Commit {
                    entries: r.map(|i| (i, entry(i))).collect(),
                    ..Commit::default()
                })
                .unwrap()
        };
        let store = RocksStore::open(&dir).unwrap();
        assert!(!store.legacy_entries);
        commit(&store, 0..3);
        {
            let g = store.db().unwrap();
            assert_eq!(
                g.db.get(entry_key(1)).unwrap(),
                None,
                "not in the default family"
            );
        }
        assert_eq!(store.entry(1).unwrap(), Some(entry(1)));
        assert_eq!(
            store.entries(0, 5).unwrap(),
            (0..3).map(entry).collect::<Vec<_>>()
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);

        // A store as earlier versions wrote it: entries 0..4 in the default
        // family, a state record, no layout record.
        {
            let db = open_db(&dir).unwrap();
            for i in 0..4 {
                db.put(entry_key(i), entry(i)).unwrap();
            }
            db.put(STATE_KEY, b"s").unwrap();
        }
        let store = RocksStore::open(&dir).unwrap();
        assert!(store.legacy_entries);
        commit(&store, 4..7);
        for i in 0..7 {
            assert_eq!(store.entry(i).unwrap(), Some(entry(i)), "entry {i}");
        }
        assert_eq!(store.entry(7).unwrap(), None);
        assert_eq!(
            store.entries(2, 4).unwrap(),
            (2..6).map(entry).collect::<Vec<_>>()
        );
        assert_eq!(
            store.entries(0, 10).unwrap(),
            (0..7).map(entry).collect::<Vec<_>>()
        );
        assert_eq!(
            store.entries(5, 10).unwrap(),
            (5..7).map(entry).collect::<Vec<_>>()
        );
        assert!(store.entries(9, 3).unwrap().is_empty());
        // Reopening (as after a failed write) keeps both.
        store.reopen().unwrap();
        assert_eq!(store.entries(0, 10).unwrap().len(), 7);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A store in memory, for unit tests of what sits above the trait.
#[cfg(test)]
#[derive(Default)]
pub struct MemStore {
    kv: std::sync::Mutex<std::collections::BTreeMap<Vec<u8>, Vec<u8>>>,
}

#[cfg(test)]
impl MemStore {
    fn get(&self, k: &[u8]) -> Option<Vec<u8>> {
        self.kv.lock().unwrap().get(k).cloned()
    }

    /// Drops every interior record, as in a store written before them.
    pub fn forget_interiors(&self) {
        self.kv
            .lock()
            .unwrap()
            .retain(|k, _| k.first() != interior_key(0, 0).first());
    }
}

#[cfg(test)]
impl Store for MemStore {
    fn state(&self) -> Result<Option<DurableState>, StoreError> {
        self.get(STATE_KEY)
            .map(|b| DurableState::decode(&b))
            .transpose()
    }
    fn commit(&self, c: Commit) -> Result<(), StoreError> {
        let mut kv = self.kv.lock().unwrap();
        for (l, i, h) in c.tiles {
            kv.insert(tile_key(l, i).to_vec(), vouch_spec::tile::encode_hashes(&h));
        }
        for (l, i, d) in c.interiors {
            kv.insert(interior_key(l, i).to_vec(), d);
        }
        for (i, d) in c.entries {
            kv.insert(entry_key(i).to_vec(), d);
        }
        for (h, i) in c.leaves {
            kv.insert(leaf_key(&h).to_vec(), i.to_be_bytes().to_vec());
        }
        for (p, i) in c.paths {
            kv.insert(path_key(&p, i).to_vec(), Vec::new());
        }
        for (k, i) in c.retirements {
            kv.insert(retired_key(&k).to_vec(), i.to_be_bytes().to_vec());
        }
        if let Some(s) = c.state {
            kv.insert(STATE_KEY.to_vec(), s.encode());
        }
        Ok(())
    }
    fn leaf_indexes(
        &self,
        probes: &[(Hash, Option<[u8; 32]>)],
    ) -> Result<Vec<Option<u64>>, StoreError> {
        Ok(probes
            .iter()
            .map(|(h, _)| {
                self.get(&leaf_key(h))
                    .map(|b| u64::from_be_bytes(b.try_into().unwrap()))
            })
            .collect())
    }
    fn put_witnessed(&self, _: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }
    fn witnessed(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
    fn marker(&self, name: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .get(&marker_key(name))
            .map(|v| u64::from_be_bytes(v[..].try_into().unwrap())))
    }
    fn put_marker(&self, name: &str, value: u64) -> Result<(), StoreError> {
        self.kv
            .lock()
            .unwrap()
            .insert(marker_key(name), value.to_be_bytes().to_vec());
        Ok(())
    }
    fn retirements(&self) -> Result<Vec<([u8; 32], u64)>, StoreError> {
        let kv = self.kv.lock().unwrap();
        Ok(kv
            .iter()
            .filter(|(k, _)| k.first() == Some(&b'x'))
            .map(|(k, v)| {
                (
                    k[1..].try_into().unwrap(),
                    u64::from_be_bytes(v[..].try_into().unwrap()),
                )
            })
            .collect())
    }
}

#[cfg(test)]
impl Reads for MemStore {
    fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get(&tile_key(level, index)))
    }
    fn tile_part(
        &self,
        level: u8,
        index: u64,
        range: std::ops::Range<usize>,
    ) -> Result<Option<TilePart>, StoreError> {
        Ok(self
            .get(&tile_key(level, index))
            .map(|t| TilePart::new(&t, range, self.get(&interior_key(level, index)))))
    }
    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get(&entry_key(index)))
    }
    fn entries(&self, start: u64, count: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok((start..start + count as u64)
            .map_while(|i| self.get(&entry_key(i)))
            .collect())
    }
    fn path_indexes(&self, _: &[u8; 32]) -> Result<Vec<u64>, StoreError> {
        Ok(Vec::new())
    }
    fn key_indexes(&self, _: &[u8; 32]) -> Result<Vec<u64>, StoreError> {
        Ok(Vec::new())
    }
    fn references(&self, _: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
}
