//! Admission of submissions (`spec/PROTOCOL.md` §5.1 and §8, "Limits a log
//! applies to every client"), decided before any signature is checked:
//! per-address rates, the memory budget of bodies in flight, and, once the
//! body is parsed, the builder-key allow-list and per-key rates.
//!
//! Rates are `vouch::ratelimit` token buckets keyed by client address (an
//! IPv4 address, an IPv6 /64; behind a trusted reverse proxy, the address
//! it reports) and by builder key.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use vouch_spec::attestation::Submitted;
use vouch_spec::nix::NixPublicKey;
use vouch_spec::refused::Why;

use vouch::ratelimit::{rate_key, Buckets};

use crate::error::ApiError;

/// What admission enforces.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Submissions per second per client address (0: off).
    pub rate_per_second: f64,
    /// Burst above the per-address rate.
    pub rate_burst: f64,
    /// Attestations per second per builder key (0: off).
    pub builder_rate_per_second: f64,
    /// Burst above the per-key rate.
    pub builder_rate_burst: f64,
    /// Builder keys allowed to submit (empty: anyone).
    pub allowed: Vec<NixPublicKey>,
    /// Largest body.
    pub max_body_bytes: usize,
    /// Time allowed to receive a body.
    pub body_timeout: Duration,
    /// Submission bytes held in memory at once (at least one largest body).
    pub submit_memory_bytes: usize,
}

/// Admission state shared by the submission handlers.
pub struct Admission {
    limits: Limits,
    addresses: Buckets<IpAddr>,
    builders: Buckets<String>,
    /// Submission bodies in memory, in KiB permits.
    budget: Arc<Semaphore>,
}

impl Admission {
    /// Admission under `limits`.
    pub fn new(limits: Limits) -> Admission {
        let kib = (limits.submit_memory_bytes.max(limits.max_body_bytes) / 1024)
            .clamp(1, Semaphore::MAX_PERMITS);
        Admission {
            addresses: Buckets::new(limits.rate_per_second, limits.rate_burst),
            builders: Buckets::new(limits.builder_rate_per_second, limits.builder_rate_burst),
            budget: Arc::new(Semaphore::new(kib)),
            limits,
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// One submission from `client` (429 over its address's rate).
    pub fn check_address(&self, client: IpAddr) -> Result<(), ApiError> {
        if self.addresses.take(rate_key(client), 1.0) {
            return Ok(());
        }
        Err(ApiError::RateLimited {
            reason: format!(
                "rate limit of {} submissions/s for {client} exceeded",
                self.limits.rate_per_second
            ),
            retry_after: 1,
        })
    }

    /// Reads a submission body within `max_body_bytes` and `body_timeout`,
    /// charging what has arrived so far (in KiB) to the shared budget for
    /// submissions in memory: a slow client holds only what it has sent,
    /// and a body that would overrun the budget is refused with 503. The
    /// permit returned holds the body's share until dropped (once the
    /// sequencer has logged it).
    pub async fn read_body(
        &self,
        body: Body,
    ) -> Result<(Bytes, Option<OwnedSemaphorePermit>), ApiError> {
        let mut held: Option<OwnedSemaphorePermit> = None;
        let mut held_kib = 0u32;
        let read = vouch::serve::read_body(
            body,
            self.limits.max_body_bytes,
            self.limits.body_timeout,
            |len| {
                let want = u32::try_from(len.div_ceil(1024)).unwrap_or(u32::MAX);
                if want <= held_kib {
                    return true;
                }
                let Ok(more) = self.budget.clone().try_acquire_many_owned(want - held_kib) else {
                    return false;
                };
                match held.as_mut() {
                    Some(h) => h.merge(more),
                    None => held = Some(more),
                }
                held_kib = want;
                true
            },
        )
        .await;
        match read {
            Ok(bytes) => Ok((bytes, held)),
            Err(vouch::serve::BodyError::Refused) => Err(ApiError::unavailable(
                format!(
                    "{} bytes of submissions are in flight already; retry shortly",
                    self.limits.submit_memory_bytes
                ),
                1,
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The allow-list (403) and per-key rates (429) for parsed attestations;
    /// a request over a key's budget is refused whole.
    pub fn check_builders(&self, atts: &[Submitted]) -> Result<(), ApiError> {
        self.check_keys(atts.iter().map(|s| &s.attestation.key))
    }

    /// The allow-list (403) and per-key rates (429) for the keys of a
    /// submission's statements, in order.
    pub fn check_keys<'a>(
        &self,
        keys: impl Iterator<Item = &'a NixPublicKey> + Clone,
    ) -> Result<(), ApiError> {
        if !self.limits.allowed.is_empty() {
            if let Some((i, k)) = keys
                .clone()
                .enumerate()
                .find(|(_, k)| !self.limits.allowed.contains(*k))
            {
                return Err(ApiError::statement(
                    i,
                    Why::NotAllowed,
                    format!("entry {i}: builder key {k} is not on this log's allow-list"),
                ));
            }
        }
        // Counted by key first: a submission is mostly one builder's, and
        // the bucket's name (the key's text) is written once per key.
        let mut per_key: HashMap<&NixPublicKey, f64> = HashMap::new();
        for k in keys {
            *per_key.entry(k).or_default() += 1.0;
        }
        for (key, n) in per_key {
            let key = key.to_string();
            if !self.builders.take(key.clone(), n) {
                return Err(ApiError::RateLimited {
                    reason: format!(
                        "rate limit of {} attestations/s for builder key {key} exceeded",
                        self.limits.builder_rate_per_second
                    ),
                    retry_after: 1,
                });
            }
        }
        Ok(())
    }
}
