//! A client of one Vouch log (`spec/PROTOCOL.md` §4–5) over the shared
//! [`HttpClient`]: its checkpoint, lookups, submissions, proofs and
//! reference lists, parsed into the wire types of [`crate::api`]. Reading
//! its tiles, and proofs computed from them, is in [`crate::tiles`].
//!
//! Everything a log answers is untrusted: callers verify checkpoints
//! against keys, and entries and proofs against verified checkpoints.

use vouch_spec::hash::Hash;

use crate::api::{LogUrl, LookupResponse, SubmitResponse};
use crate::http::{HttpClient, HttpError};

/// Largest checkpoint note accepted (with its cosignatures).
pub const MAX_CHECKPOINT_BYTES: u64 = 1 << 20;

/// Largest lookup answer accepted.
pub const MAX_LOOKUP_BYTES: u64 = 64 << 20;

/// Why something could not be fetched from a log.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request failed (the error names the URL).
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The answer is not what the protocol says.
    #[error("{url}: {msg}")]
    Invalid {
        /// The URL.
        url: String,
        /// What was wrong with it.
        msg: String,
    },
}

impl FetchError {
    /// An answer from `url` that does not parse.
    pub fn invalid(url: &str, msg: impl std::fmt::Display) -> FetchError {
        FetchError::Invalid {
            url: url.to_string(),
            msg: msg.to_string(),
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, FetchError::Http(e) if e.is_transient())
    }
}

/// One log, reached through the shared HTTP client.
#[derive(Clone, Debug)]
pub struct LogClient {
    http: HttpClient,
    url: LogUrl,
}

impl LogClient {
    /// The log at `prefix`.
    pub fn new(http: HttpClient, prefix: &str) -> LogClient {
        LogClient {
            http,
            url: LogUrl::new(prefix),
        }
    }

    /// Its URLs.
    pub fn url(&self) -> &LogUrl {
        &self.url
    }

    /// The HTTP client.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The served checkpoint (signed note bytes, unverified).
    pub fn checkpoint(&self) -> Result<Vec<u8>, FetchError> {
        Ok(self
            .http
            .get(&self.url.checkpoint(), MAX_CHECKPOINT_BYTES)?)
    }

    /// The entries for a store path hash part, with tlog-proofs if `proofs`.
    pub fn lookup(&self, hash_part: &str, proofs: bool) -> Result<LookupResponse, FetchError> {
        let url = self.url.lookup(hash_part, proofs);
        let body = self.http.get(&url, MAX_LOOKUP_BYTES)?;
        serde_json::from_slice(&body).map_err(|e| FetchError::invalid(&url, e))
    }

    /// The transitions naming an Ed25519 key (§5.7), with tlog-proofs if
    /// `proofs`.
    pub fn transitions(&self, key: &[u8; 32], proofs: bool) -> Result<LookupResponse, FetchError> {
        let url = self.url.transitions(key, proofs);
        let body = self.http.get(&url, MAX_LOOKUP_BYTES)?;
        serde_json::from_slice(&body).map_err(|e| FetchError::invalid(&url, e))
    }

    /// Submits one transition statement (§5.7).
    pub fn submit_transition(&self, body: &[u8], wait: bool) -> Result<SubmitResponse, FetchError> {
        let url = self.url.transition(wait);
        let answer = self.http.post(&url, "text/plain", body, 1 << 20)?;
        serde_json::from_slice(&answer).map_err(|e| FetchError::invalid(&url, e))
    }

    /// The tlog-proof text of the entry at `index` under the served checkpoint.
    pub fn bundle(&self, index: u64) -> Result<Vec<u8>, FetchError> {
        Ok(self.http.get(&self.url.bundle(index), 1 << 20)?)
    }

    /// A digest-form entry's reference list (base names, one per line),
    /// checked against its digest; `None` if the log does not have it.
    pub fn references(&self, digest: &[u8; 32]) -> Result<Option<Vec<String>>, FetchError> {
        let url = self.url.references(digest);
        let Some(body) = self.http.get_found(&url, 8 << 20)? else {
            return Ok(None);
        };
        let text = String::from_utf8(body).map_err(|e| FetchError::invalid(&url, e))?;
        let names: Vec<String> = text.lines().map(str::to_string).collect();
        Ok(Some(names))
    }

    /// Submits concatenated attestations (§5.2). Error statuses come back
    /// as [`HttpError::Status`] with the log's reason.
    pub fn submit(&self, body: &[u8], wait: bool) -> Result<SubmitResponse, FetchError> {
        let url = self.url.submit(wait);
        let answer = self.http.post(&url, "text/plain", body, 256 << 20)?;
        serde_json::from_slice(&answer).map_err(|e| FetchError::invalid(&url, e))
    }

    /// A consistency proof from the log's proof API (§5.4). Clients that
    /// can should compute proofs from tiles instead
    /// ([`LogClient::consistency_proof`]), which a CDN can serve.
    pub fn consistency_from_api(&self, old: u64, new: u64) -> Result<Vec<Hash>, FetchError> {
        let url = self.url.consistency(old, new);
        let body = self.http.get(&url, 1 << 20)?;
        let r: crate::api::ConsistencyResponse =
            serde_json::from_slice(&body).map_err(|e| FetchError::invalid(&url, e))?;
        r.proof
            .iter()
            .map(|h| Hash::from_base64(h).map_err(|e| FetchError::invalid(&url, e)))
            .collect()
    }
}
