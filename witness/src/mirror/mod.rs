//! A C2SP tlog-mirror (`tlog-mirror.md`; `spec/PROTOCOL.md` §6.5): a
//! cosigner that keeps a verified copy of a log and serves it as tlog-tiles
//! under `<monitoring prefix>/<origin hash>/`, so reads survive the log
//! being down.
//!
//! Updates come in the spec's three stages: `add-checkpoint` (the witness's
//! checks, `vouch_spec::witness`, against the newest pending checkpoint;
//! nothing is cosigned), `add-entries` (each package authenticated by its
//! subtree consistency proof before it is stored, `vouch_spec::mirror` and
//! `vouch_spec::subtree`), and then the mirror checkpoint, cosigned only
//! once every entry it covers is durably stored and the stored tree's root
//! equals its root. [`follow`] is the mirror's own client: it pulls a log's
//! checkpoint, entries and proofs and feeds them through the same two
//! calls, so a pushed update and a pulled one are checked alike.
//!
//! Concurrency: each log's state sits behind one lock, held while a
//! package is verified and committed (not while a body is read), so
//! uploads from several clients interleave safely, as the spec requires.

pub mod db;
pub mod follow;
pub mod http;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use vouch_spec::checkpoint::Checkpoint;
use vouch_spec::cosignature::CosignatureSigner;
use vouch_spec::hash::{leaf_hash, naive_root, Hash};
use vouch_spec::integrate::integrate;
use vouch_spec::merkle::{range_nodes, tree_root};
use vouch_spec::mirror::{
    check_upload, package_count, packages, parse_package, BodyError, MirrorInfo, MirrorView,
    UploadHeader, UploadRefusal, PACKAGE_WIDTH,
};
use vouch_spec::note::{Ed25519Verifier, Note, NoteVerifier};
use vouch_spec::tile::{Tile, TileKind, TileSet};
use vouch_spec::witness::{
    check_add_checkpoint, encode_response, AddCheckpoint, Rejection, WitnessState,
};

use crate::config::LogConfig;
use crate::store::origin_hash;
use db::{DbError, MirrorDb};

/// Pending checkpoints a mirror keeps accepting as `upload_end`, so an
/// upload that started before a newer checkpoint arrived still completes.
pub const PENDING_KEPT: usize = 16;

/// A checkpoint the mirror holds, parsed.
#[derive(Clone, Debug)]
struct Held {
    size: u64,
    root: Hash,
    note: Vec<u8>,
}

impl Held {
    fn parse(note: Vec<u8>) -> Option<Held> {
        let n = Note::parse(&note).ok()?;
        let c = Checkpoint::parse(&n.text).ok()?;
        Some(Held {
            size: c.size,
            root: c.root,
            note,
        })
    }
}

/// One log's state in memory, mirrored from its database.
struct State {
    pending: Vec<Held>,
    mirror: Option<Held>,
    edge: vouch_spec::compact::CompactRange,
}

impl State {
    fn view(&self) -> MirrorView {
        MirrorView {
            pending: self.pending.iter().map(|h| (h.size, h.root)).collect(),
            mirror: self
                .mirror
                .as_ref()
                .map_or((0, Hash::empty_root()), |h| (h.size, h.root)),
            next: self.edge.size(),
        }
    }

    fn newest_pending(&self) -> WitnessState {
        self.pending
            .last()
            .map_or_else(WitnessState::empty, |h| WitnessState {
                size: h.size,
                root: h.root,
            })
    }
}

/// One mirrored log.
pub struct MirrorLog {
    /// Its origin.
    pub origin: String,
    /// Its keys.
    pub keys: Vec<Ed25519Verifier>,
    /// Where to follow it from (its tlog-tiles prefix), if anywhere.
    pub url: Option<String>,
    db: MirrorDb,
    state: Mutex<State>,
}

/// Why a mirror could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A configured log vkey does not parse.
    #[error(transparent)]
    Config(#[from] crate::SetupError),
    /// A log's database could not be opened or is damaged.
    #[error("log {origin}: {err}")]
    Db {
        /// The log.
        origin: String,
        /// What failed.
        err: DbError,
    },
    /// A stored checkpoint does not parse.
    #[error("log {0}: a stored checkpoint is damaged")]
    Damaged(String),
}

/// Why an update was refused or failed, with the status C2SP gives.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// `add-checkpoint` refused, as a witness would.
    #[error(transparent)]
    Checkpoint(#[from] Rejection),
    /// 404: `add-entries` for a log the mirror does not mirror.
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    /// 400: the body could not be read before any package was stored.
    #[error("bad add-entries body: {0}")]
    Body(#[from] BodyError),
    /// 409 or 422: `upload_start`/`upload_end` refused.
    #[error("{refusal}")]
    Upload {
        /// Why.
        refusal: UploadRefusal,
        /// The 409 body.
        info: MirrorInfo,
    },
    /// 409: the mirror checkpoint moved past `upload_end` meanwhile.
    #[error("the mirror checkpoint is already past upload_end {end}")]
    Superseded {
        /// `upload_end`.
        end: u64,
        /// The 409 body.
        info: MirrorInfo,
    },
    /// 422: a package's subtree consistency proof does not verify.
    #[error("package [{start}, {end}): {err}")]
    Unauthenticated {
        /// The package's first entry.
        start: u64,
        /// One past its last.
        end: u64,
        /// Why.
        err: vouch_spec::subtree::SubtreeError,
    },
    /// 500: the mirror's own failure.
    #[error("the mirror failed: {0}")]
    Internal(String),
}

impl From<DbError> for MirrorError {
    fn from(e: DbError) -> MirrorError {
        MirrorError::Internal(e.to_string())
    }
}

impl MirrorError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            MirrorError::Checkpoint(r) => r.status(),
            MirrorError::UnknownOrigin(_) => 404,
            MirrorError::Body(_) => 400,
            MirrorError::Upload { refusal, .. } => refusal.status(),
            MirrorError::Superseded { .. } => 409,
            MirrorError::Unauthenticated { .. } => 422,
            MirrorError::Internal(_) => 500,
        }
    }

    /// The `text/x.tlog.mirror-info` body a 409 carries.
    pub fn info(&self) -> Option<&MirrorInfo> {
        match self {
            MirrorError::Upload { info, refusal } if refusal.status() == 409 => Some(info),
            MirrorError::Superseded { info, .. } => Some(info),
            _ => None,
        }
    }
}

/// What an `add-entries` achieved.
#[derive(Debug, PartialEq, Eq)]
pub enum Uploaded {
    /// 200: every entry is stored and the mirror checkpoint is at least
    /// `upload_end`: the mirror's cosignature lines on it.
    Done(Vec<u8>),
    /// 202: some packages stored, more needed from `next`.
    Partial(MirrorInfo),
}

/// The mirror.
pub struct Mirror {
    signer: CosignatureSigner,
    logs: HashMap<String, Arc<MirrorLog>>,
    by_hash: HashMap<String, String>,
}

fn lock(log: &MirrorLog) -> Result<MutexGuard<'_, State>, MirrorError> {
    log.state
        .lock()
        .map_err(|_| MirrorError::Internal("state lock poisoned by a panic".into()))
}

impl Mirror {
    /// Opens the mirror's databases under `dir`, one per configured log.
    pub fn new(
        signer: CosignatureSigner,
        dir: &Path,
        logs: &[LogConfig],
    ) -> Result<Mirror, SetupError> {
        let mut map = HashMap::new();
        let mut by_hash = HashMap::new();
        for l in logs {
            let keys = crate::log_verifiers(l)?;
            let hash = origin_hash(&l.origin);
            let (db, stored) = MirrorDb::open(&dir.join(&hash)).map_err(|err| SetupError::Db {
                origin: l.origin.clone(),
                err,
            })?;
            let damaged = || SetupError::Damaged(l.origin.clone());
            let pending = stored
                .pending
                .into_iter()
                .map(|n| Held::parse(n).ok_or_else(damaged))
                .collect::<Result<Vec<_>, _>>()?;
            let mirror = stored
                .mirror
                .map(|n| Held::parse(n).ok_or_else(damaged))
                .transpose()?;
            by_hash.insert(hash, l.origin.clone());
            map.insert(
                l.origin.clone(),
                Arc::new(MirrorLog {
                    origin: l.origin.clone(),
                    keys,
                    url: l.url.clone(),
                    db,
                    state: Mutex::new(State {
                        pending,
                        mirror,
                        edge: stored.edge,
                    }),
                }),
            );
        }
        Ok(Mirror {
            signer,
            logs: map,
            by_hash,
        })
    }

    /// The mirrored logs.
    pub fn logs(&self) -> impl Iterator<Item = &Arc<MirrorLog>> {
        self.logs.values()
    }

    /// The log with this origin hash (hex SHA-256 of the origin).
    pub fn by_hash(&self, hash: &str) -> Option<&Arc<MirrorLog>> {
        self.logs.get(self.by_hash.get(hash)?)
    }

    /// The mirror's cosigner vkey.
    pub fn vkey(&self) -> String {
        self.signer.verifier().vkey()
    }

    /// `add-checkpoint`: the witness's checks against the newest pending
    /// checkpoint; an accepted checkpoint becomes the newest pending one,
    /// durably, with every signature line it came with (the log's and any
    /// witnesses', for clients whose policy needs them). Nothing is
    /// cosigned.
    pub fn add_checkpoint(&self, req: &AddCheckpoint) -> Result<(), MirrorError> {
        let origin = crate::note_origin(&req.checkpoint);
        let Some(log) = self.logs.get(&origin) else {
            check_add_checkpoint(req, |_| None, |_| WitnessState::empty())?;
            return Err(Rejection::UnknownOrigin(origin).into());
        };
        let keys: Vec<&dyn NoteVerifier> =
            log.keys.iter().map(|k| k as &dyn NoteVerifier).collect();
        let mut st = lock(log)?;
        let current = st.newest_pending();
        let accepted = check_add_checkpoint(
            req,
            |o| (o == log.origin).then_some(keys),
            |_| current.clone(),
        )?;
        if accepted.checkpoint.size == current.size {
            // The same checkpoint again (a witness answers the same).
            return Ok(());
        }
        let mut notes: Vec<Vec<u8>> = st.pending.iter().map(|h| h.note.clone()).collect();
        notes.push(accepted.note.to_bytes());
        let drop = notes.len().saturating_sub(PENDING_KEPT);
        notes.drain(..drop);
        log.db.put_pending(&notes)?;
        let kept = st.pending.len();
        st.pending.drain(..drop.min(kept));
        st.pending.push(Held {
            size: accepted.checkpoint.size,
            root: accepted.checkpoint.root,
            note: accepted.note.to_bytes(),
        });
        Ok(())
    }

    /// `add-entries`: authenticates and stores each package of `body` in
    /// turn, then moves the mirror checkpoint to `upload_end` and cosigns
    /// it. `now` is the cosignature's timestamp.
    pub fn add_entries(&self, body: &[u8], now: u64) -> Result<Uploaded, MirrorError> {
        let (header, mut rest) = UploadHeader::parse(body)?;
        let log = self
            .logs
            .get(&header.origin)
            .ok_or_else(|| MirrorError::UnknownOrigin(header.origin.clone()))?;
        let root = {
            let st = lock(log)?;
            let view = st.view();
            check_upload(&view, &header).map_err(|refusal| {
                let size = match refusal {
                    UploadRefusal::Gap { .. } | UploadRefusal::TooMuchExcess { .. } => header.end,
                    _ => view.pending.last().map_or(0, |p| p.0),
                };
                MirrorError::Upload {
                    refusal,
                    info: MirrorInfo {
                        size,
                        next: view.next,
                        ticket: Vec::new(),
                    },
                }
            })?
        };
        // Lazily: a new mirror of a big log is sent a long sequence.
        let total = package_count(header.start, header.end);
        let mut stored = 0u64;
        for span in packages(header.start, header.end) {
            if stored > 0 && rest.is_empty() {
                break;
            }
            let (package, after) = match parse_package(rest, span) {
                Ok(p) => p,
                Err(e) if stored == 0 => return Err(e.into()),
                // The spec: discard what follows the last whole package.
                Err(_) => break,
            };
            rest = after;
            self.store_package(log, &span, &package, header.end, &root)?;
            stored += 1;
        }
        let mut st = lock(log)?;
        let info = |st: &State| MirrorInfo {
            size: header.end,
            next: st.edge.size(),
            ticket: Vec::new(),
        };
        if stored < total || st.edge.size() < header.end {
            return Ok(Uploaded::Partial(info(&st)));
        }
        let mirror_size = st.mirror.as_ref().map_or(0, |m| m.size);
        if header.end < mirror_size {
            return Err(MirrorError::Superseded {
                end: header.end,
                info: MirrorInfo {
                    size: st.pending.last().map_or(0, |p| p.size),
                    ..info(&st)
                },
            });
        }
        if header.end == mirror_size {
            if let Some(m) = &st.mirror {
                return Ok(Uploaded::Done(self.own_lines(&m.note)));
            }
        }
        let Some(cp) = st.pending.iter().find(|p| p.size == header.end).cloned() else {
            // Dropped from the pending list while this upload ran.
            return Err(MirrorError::Superseded {
                end: header.end,
                info: MirrorInfo {
                    size: st.pending.last().map_or(0, |p| p.size),
                    ..info(&st)
                },
            });
        };
        // Every package was proven against some pending checkpoint, all
        // consistent with this one; check the stored tree anyway before
        // signing anything about it.
        let stored_root = stored_root(&log.db, cp.size)?;
        if stored_root != cp.root {
            return Err(MirrorError::Internal(format!(
                "the stored tree of size {} has root {stored_root}, the checkpoint says {}",
                cp.size, cp.root
            )));
        }
        let note = Note::parse(&cp.note)
            .map_err(|e| MirrorError::Internal(format!("pending checkpoint: {e}")))?;
        let cosig = self
            .signer
            .cosign(&note.text, now.max(1))
            .ok_or_else(|| MirrorError::Internal(format!("the clock ({now}) is out of range")))?;
        let mut signed = note;
        signed
            .sigs
            .retain(|s| s.name != cosig.name || s.key_id != cosig.key_id);
        signed.sigs.push(cosig.clone());
        let bytes = signed.to_bytes();
        log.db.put_mirror(&bytes)?;
        st.mirror = Some(Held {
            size: cp.size,
            root: cp.root,
            note: bytes,
        });
        Ok(Uploaded::Done(encode_response(&[cosig])))
    }

    /// The mirror's own signature lines in a stored mirror checkpoint.
    fn own_lines(&self, note: &[u8]) -> Vec<u8> {
        let name = self.signer.verifier().name().to_string();
        let sigs: Vec<_> = Note::parse(note)
            .map(|n| n.sigs.into_iter().filter(|s| s.name == name).collect())
            .unwrap_or_default();
        encode_response(&sigs)
    }

    /// Verifies one package against the root of `upload_end` and stores
    /// the entries the mirror does not have yet.
    fn store_package(
        &self,
        log: &MirrorLog,
        span: &vouch_spec::mirror::PackageSpan,
        package: &vouch_spec::mirror::Package<'_>,
        end: u64,
        root: &Hash,
    ) -> Result<(), MirrorError> {
        let bundle_index = span.subtree_start / PACKAGE_WIDTH;
        let mut st = lock(log)?;
        let next = st.edge.size();
        // Entries of the bundle before the package come from storage:
        // the package starts at or before the next entry.
        let stored_bundle = log.db.bundle(bundle_index)?.unwrap_or_default();
        let stored_entries = vouch_spec::bundle::decode(&stored_bundle)
            .map_err(|e| MirrorError::Internal(format!("stored bundle {bundle_index}: {e}")))?;
        let before = (span.start - span.subtree_start) as usize;
        if stored_entries.len() < before || next < span.start {
            return Err(MirrorError::Internal(format!(
                "package [{}, {}) starts past the {} stored entries of bundle {bundle_index}",
                span.start,
                span.end,
                stored_entries.len()
            )));
        }
        let leaves: Vec<Hash> = stored_entries[..before]
            .iter()
            .chain(package.entries.iter())
            .map(|e| leaf_hash(e))
            .collect();
        vouch_spec::subtree::verify(
            span.subtree_start,
            span.end,
            &naive_root(&leaves),
            end,
            root,
            &package.proof,
        )
        .map_err(|err| MirrorError::Unauthenticated {
            start: span.start,
            end: span.end,
            err,
        })?;
        if span.end <= next {
            return Ok(());
        }
        // Append the entries from `next` on.
        let have = (next - span.subtree_start) as usize;
        let new_from = (next - span.start) as usize;
        let kept = stored_entries.get(..have).ok_or_else(|| {
            MirrorError::Internal(format!(
                "bundle {bundle_index} holds {} entries, the next entry {next} needs {have}",
                stored_entries.len()
            ))
        })?;
        let mut bundle = Vec::new();
        for e in kept
            .iter()
            .copied()
            .chain(package.entries[new_from..].iter().copied())
        {
            vouch_spec::bundle::push(&mut bundle, e)
                .map_err(|e| MirrorError::Internal(format!("bundle {bundle_index}: {e}")))?;
        }
        let integrated = integrate(&log.db, &st.edge, &leaves[have..])
            .map_err(|e| MirrorError::Internal(format!("integrating: {e:?}")))?;
        log.db
            .commit(bundle_index, &bundle, &integrated.tiles, &integrated.range)?;
        st.edge = integrated.range;
        Ok(())
    }
}

impl MirrorLog {
    /// The mirror checkpoint, cosigned, if any.
    pub fn checkpoint(&self) -> Option<Vec<u8>> {
        let st = self.state.lock().ok()?;
        st.mirror.as_ref().map(|m| m.note.clone())
    }

    /// The mirror checkpoint's size (0 if none).
    pub fn size(&self) -> u64 {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.mirror.as_ref().map(|m| m.size))
            .unwrap_or(0)
    }

    /// The newest pending checkpoint's size and the next entry.
    pub fn progress(&self) -> (u64, u64) {
        self.state
            .lock()
            .map(|s| (s.newest_pending().size, s.edge.size()))
            .unwrap_or((0, 0))
    }

    /// A hash tile or entry bundle as served for the mirror checkpoint: the
    /// stored one cut to the width `tile` names; `None` if the tile is not
    /// in the mirror checkpoint's tree.
    pub fn tile(&self, tile: &Tile) -> Result<Option<Vec<u8>>, DbError> {
        let size = self.size();
        let exists =
            Tile::in_tree(tile.kind, tile.index, size).is_some_and(|t| t.width >= tile.width);
        if !exists {
            return Ok(None);
        }
        let width = usize::from(tile.width);
        match tile.kind {
            TileKind::Hash { level } => Ok(self
                .db
                .tile(level, tile.index)?
                .and_then(|d| d.get(..width * 32).map(<[u8]>::to_vec))),
            TileKind::Entries => {
                let Some(data) = self.db.bundle(tile.index)? else {
                    return Ok(None);
                };
                let entries = vouch_spec::bundle::decode(&data).map_err(|e| DbError::Damaged {
                    what: "entry bundle",
                    why: e.to_string(),
                })?;
                let Some(entries) = entries.get(..width) else {
                    return Ok(None);
                };
                vouch_spec::bundle::encode(entries)
                    .map(Some)
                    .map_err(|e| DbError::Damaged {
                        what: "entry bundle",
                        why: e.to_string(),
                    })
            }
        }
    }
}

/// The root of the stored tree of `size` leaves, from the stored tiles
/// (cut to the widths a tree of that size has).
fn stored_root(db: &MirrorDb, size: u64) -> Result<Hash, MirrorError> {
    let nodes = range_nodes(0..size);
    let mut set = TileSet::new(size);
    for t in TileSet::tiles_for(size, &nodes) {
        let TileKind::Hash { level } = t.kind else {
            continue;
        };
        let data = db
            .tile(level, t.index)?
            .and_then(|d| d.get(..usize::from(t.width) * 32).map(<[u8]>::to_vec))
            .ok_or_else(|| MirrorError::Internal(format!("tile {} is not stored", t.path())))?;
        set.insert(&t, &data)
            .map_err(|e| MirrorError::Internal(format!("tile {}: {e}", t.path())))?;
    }
    tree_root(size, &set).map_err(|e| MirrorError::Internal(format!("stored tree: {e}")))
}
