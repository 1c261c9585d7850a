//! The log's side of witnessing (C2SP tlog-witness as a client): each new
//! signed checkpoint goes to every configured witness in parallel with a
//! consistency proof from the size that witness last cosigned; a 409 tells
//! the right old size and the request is resent. The checkpoint is served
//! only once the collected cosignatures satisfy the log's tlog-policy quorum.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vouch::http::{HttpClient, HttpError};
use vouch_spec::checkpoint::Checkpoint;
use vouch_spec::note::{Note, NoteVerifier, Signature};
use vouch_spec::policy::Policy;
use vouch_spec::tile::parse_decimal;
use vouch_spec::witness::{parse_response, AddCheckpoint};

use crate::nodes::TreeReader;
use crate::published::{Published, Shared};
use crate::store::Store;

/// Witnessing settings.
pub struct Settings {
    /// The policy: witnesses (with submission URLs) and the quorum.
    pub policy: Policy,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Attempts per witness per checkpoint.
    pub attempts: u32,
}

struct WitnessClient {
    /// Size this witness last cosigned, as far as we know.
    size: Mutex<u64>,
}

/// What witnessing reads and writes.
pub struct Context {
    /// The tree heads.
    pub heads: Arc<Shared>,
    /// Nodes for consistency proofs.
    pub tree: Arc<TreeReader>,
    /// Where the witnessed checkpoint is kept.
    pub store: Arc<dyn Store>,
    /// The HTTP client (its timeouts are `Settings::timeout`).
    pub http: HttpClient,
}

/// Sends checkpoints to witnesses until the process ends.
pub fn run(ctx: Context, settings: Settings) {
    let shared = &ctx.heads;
    let clients: Vec<WitnessClient> = settings
        .policy
        .witnesses
        .iter()
        .map(|_| WitnessClient {
            size: Mutex::new(0),
        })
        .collect();
    let current = shared.current();
    let mut witnessed: Option<u64> = (!current.checkpoint.is_empty()).then_some(current.size);
    let mut generation = 0;
    loop {
        let signed = shared.signed();
        if witnessed.is_none_or(|w| signed.size > w) {
            match witness_one(&ctx, &settings, &clients, &signed) {
                Some(p) => {
                    if let Err(e) = ctx.store.put_witnessed(&p.checkpoint) {
                        tracing::warn!(error = %e, "could not save the witnessed checkpoint");
                    }
                    witnessed = Some(p.size);
                    shared.publish(p);
                }
                None => {
                    // No quorum yet: keep serving the last witnessed head, retry soon.
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
            }
        }
        generation = shared.wait_signed(generation, Duration::from_secs(5));
    }
}

fn witness_one(
    ctx: &Context,
    settings: &Settings,
    clients: &[WitnessClient],
    signed: &Published,
) -> Option<Published> {
    let Ok(note) = Note::parse(&signed.checkpoint) else {
        return None;
    };
    let Ok(cp) = Checkpoint::parse(&note.text) else {
        return None;
    };
    let cosigs: Vec<Option<Signature>> = std::thread::scope(|s| {
        let handles: Vec<_> = settings
            .policy
            .witnesses
            .iter()
            .zip(clients)
            .map(|(w, c)| {
                let (cp, note) = (&cp, &note);
                s.spawn(move || ask(ctx, settings, w, c, signed, cp, note))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });
    let got: BTreeSet<usize> = cosigs
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_some())
        .map(|(i, _)| i)
        .collect();
    if !settings.policy.quorum.satisfied(&got) {
        tracing::warn!(
            size = signed.size,
            cosigned = got.len(),
            "witness quorum not reached; not serving this checkpoint yet"
        );
        return None;
    }
    let mut out = note.clone();
    out.sigs.extend(cosigs.into_iter().flatten());
    Some(Published {
        size: signed.size,
        root: signed.root,
        checkpoint: Arc::new(out.to_bytes()),
    })
}

fn ask(
    ctx: &Context,
    settings: &Settings,
    w: &vouch_spec::policy::PolicyWitness,
    c: &WitnessClient,
    signed: &Published,
    cp: &Checkpoint,
    note: &Note,
) -> Option<Signature> {
    let url = format!("{}/add-checkpoint", w.url.as_deref()?.trim_end_matches('/'));
    for attempt in 0..settings.attempts.max(1) {
        let old = c.size.lock().map(|g| *g).unwrap_or(0);
        if old > cp.size {
            tracing::error!(witness = %w.name, old, new = cp.size, "witness is ahead of this log: the log lost state or forked");
            return None;
        }
        let proof = if old == 0 || old == cp.size {
            Vec::new()
        } else {
            match crate::proofs::consistency(&ctx.tree, old, cp.size) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "building a consistency proof for a witness");
                    return None;
                }
            }
        };
        let body = AddCheckpoint {
            old_size: old,
            proof,
            checkpoint: signed.checkpoint.as_ref().clone(),
        }
        .encode();
        match ctx.http.post(&url, "text/plain", &body, 64 << 10) {
            Ok(b) => {
                let sigs = parse_response(&b).ok()?;
                let v: &dyn NoteVerifier = &w.verifier;
                let good = sigs.into_iter().find(|s| {
                    s.name == v.name()
                        && s.key_id == v.key_id()
                        && v.verify(note.text.as_bytes(), &s.sig)
                });
                if good.is_some() {
                    if let Ok(mut g) = c.size.lock() {
                        *g = cp.size;
                    }
                } else {
                    tracing::warn!(witness = %w.name, "witness returned no valid cosignature");
                }
                return good;
            }
            Err(HttpError::Status {
                status: 409,
                reason,
                ..
            }) => match parse_decimal(reason.trim()) {
                // The witness's size, from its text/x.tlog.size body.
                Some(size) => {
                    if let Ok(mut g) = c.size.lock() {
                        *g = size;
                    }
                    continue;
                }
                None => {
                    tracing::warn!(witness = %w.name, body = %reason, "witness answered 409 without a size");
                    return None;
                }
            },
            Err(e @ HttpError::Status { .. }) if !e.is_transient() => {
                tracing::warn!(witness = %w.name, error = %e, "witness refused the checkpoint");
                return None;
            }
            Err(e) => {
                tracing::warn!(witness = %w.name, attempt, error = %e, "witness unreachable");
                std::thread::sleep(Duration::from_millis(100 << attempt.min(4)));
            }
        }
    }
    None
}
