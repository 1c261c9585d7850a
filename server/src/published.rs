//! The tree heads the log has: the newest durable signed checkpoint (the
//! sequencer's) and the one served at `/checkpoint` (the same, or with a
//! witness policy the newest that met the quorum, `spec/PROTOCOL.md`
//! §4.2), with ways to wait for either to move.

use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use vouch_spec::hash::Hash;

/// The tree head the log currently serves.
#[derive(Clone, Debug)]
pub struct Published {
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
    /// The signed checkpoint.
    pub checkpoint: Arc<Vec<u8>>,
}

/// Heads shared by the sequencer, the witnessing thread and the HTTP handlers.
///
/// `signed` is the newest durable checkpoint; `current` is the one served at
/// `/checkpoint`: the same when the log has no witness policy, otherwise the
/// newest whose cosignatures meet the quorum (absent until one does).
pub struct Shared {
    current: RwLock<Published>,
    notify: watch::Sender<u64>,
    signed: RwLock<Published>,
    signed_gen: Mutex<u64>,
    signed_cv: Condvar,
    witnessed: bool,
}

impl Shared {
    /// Starts with `signed` durable; serves it at once unless `witnessed`, in
    /// which case `served` (the last witnessed checkpoint, if any) is served.
    pub fn new(signed: Published, served: Option<Published>, witnessed: bool) -> Shared {
        let current = if witnessed {
            served.unwrap_or(Published {
                size: 0,
                root: Hash::empty_root(),
                checkpoint: Arc::new(Vec::new()),
            })
        } else {
            signed.clone()
        };
        let (notify, _) = watch::channel(current.size);
        Shared {
            current: RwLock::new(current),
            notify,
            signed: RwLock::new(signed),
            signed_gen: Mutex::new(0),
            signed_cv: Condvar::new(),
            witnessed,
        }
    }

    /// The newest durable signed checkpoint.
    pub fn signed(&self) -> Published {
        self.signed
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Records a new durable checkpoint (sequencer), serving it directly when
    /// the log has no witness policy.
    pub fn publish_signed(&self, p: Published) {
        if let Ok(mut g) = self.signed.write() {
            if p.size >= g.size {
                *g = p.clone();
            }
        }
        if let Ok(mut g) = self.signed_gen.lock() {
            *g += 1;
            self.signed_cv.notify_all();
        }
        if !self.witnessed {
            self.publish(p);
        }
    }

    /// Waits (up to `timeout`) for a newer signed checkpoint than generation
    /// `seen`; returns the current generation.
    pub fn wait_signed(&self, seen: u64, timeout: Duration) -> u64 {
        let Ok(g) = self.signed_gen.lock() else {
            return seen;
        };
        match self
            .signed_cv
            .wait_timeout_while(g, timeout, |g| *g == seen)
        {
            Ok((g, _)) => *g,
            Err(_) => seen,
        }
    }

    /// The published head.
    pub fn current(&self) -> Published {
        self.current
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Serves a new head (never a smaller one).
    pub fn publish(&self, p: Published) {
        let size = p.size;
        if let Ok(mut g) = self.current.write() {
            if p.size >= g.size {
                *g = p;
            }
        }
        self.notify.send_replace(size);
    }

    /// A receiver that sees every new published size.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }
}
