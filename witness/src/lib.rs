//! # vouch-witness: a C2SP tlog-witness, a C2SP tlog-mirror and a Vouch monitor
//!
//! The witness checks each checkpoint a log (or its own poller) submits for
//! consistency with the last one it cosigned, persists it atomically and
//! durably, and only then returns its `cosignature/v1`. The decision itself
//! is `vouch_spec::witness::check_add_checkpoint`; this crate adds the HTTP
//! shell, the state files, pull mode, the mirror ([`mirror`]) and the
//! monitor.
#![forbid(unsafe_code)]

pub mod config;
pub mod mirror;
pub mod monitor;
pub mod pull;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use vouch_spec::cosignature::CosignatureSigner;
use vouch_spec::note::{Ed25519Verifier, Note, NoteVerifier};
use vouch_spec::witness::{
    check_add_checkpoint, encode_response, AddCheckpoint, Rejection, WitnessState,
    SIZE_CONTENT_TYPE,
};

/// One configured log.
pub struct LogEntry {
    /// Origin.
    pub origin: String,
    /// Its keys.
    pub keys: Vec<Ed25519Verifier>,
    /// Pull URL.
    pub url: Option<String>,
    /// Serialises check-and-update for this log (never rolled back).
    lock: Mutex<Option<(WitnessState, Vec<u8>)>>,
}

/// The witness.
pub struct Witness {
    signer: CosignatureSigner,
    dir: PathBuf,
    logs: HashMap<String, LogEntry>,
    by_hash: HashMap<String, String>,
}

/// Why an `add-checkpoint` was not cosigned: the request's fault (the
/// statuses C2SP tlog-witness gives, 4xx), or the witness's own (500).
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The spec's refusal.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The witness could not do its part (state lock, clock, disk); the
    /// request may be fine.
    #[error("the witness failed: {0}")]
    Internal(String),
}

impl WitnessError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            WitnessError::Rejected(r) => r.status(),
            WitnessError::Internal(_) => 500,
        }
    }
}

/// Why a witness could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A key file could not be made or read.
    #[error(transparent)]
    KeyFile(#[from] vouch::keyfile::KeyFileError),
    /// The key file holds no cosigning key.
    #[error(
        "key file {0} is not a cosignature/v1 private key (make one with `vouch-witness keygen`)"
    )]
    NotAKey(String),
    /// The name cannot be a cosigner name.
    #[error("{0:?} is not a valid cosigner name (a schema-less URL: no spaces, no '+')")]
    Name(String),
    /// A configured log vkey does not parse.
    #[error("log {origin}: vkey {vkey:?}: {err}")]
    Vkey {
        /// The log.
        origin: String,
        /// The vkey as written.
        vkey: String,
        /// What is wrong.
        err: vouch_spec::note::NoteError,
    },
    /// The state directory cannot be used.
    #[error(transparent)]
    State(#[from] store::StateError),
}

impl Witness {
    /// Loads state for every configured log.
    pub fn new(
        signer: CosignatureSigner,
        dir: &Path,
        logs: &[config::LogConfig],
    ) -> Result<Witness, SetupError> {
        store::create_dir(dir)?;
        let mut map = HashMap::new();
        let mut by_hash = HashMap::new();
        for l in logs {
            let keys = log_verifiers(l)?;
            let state = store::load(dir, &l.origin)?;
            by_hash.insert(store::origin_hash(&l.origin), l.origin.clone());
            map.insert(
                l.origin.clone(),
                LogEntry {
                    origin: l.origin.clone(),
                    keys,
                    url: l.url.clone(),
                    lock: Mutex::new(state),
                },
            );
        }
        Ok(Witness {
            signer,
            dir: dir.to_path_buf(),
            logs: map,
            by_hash,
        })
    }

    /// The configured logs.
    pub fn logs(&self) -> impl Iterator<Item = &LogEntry> {
        self.logs.values()
    }

    /// The current size cosigned for `origin` (0 if none).
    pub fn size(&self, origin: &str) -> Option<u64> {
        let l = self.logs.get(origin)?;
        let g = l.lock.lock().ok()?;
        Some(g.as_ref().map_or(0, |s| s.0.size))
    }

    /// Handles an `add-checkpoint`: checks, persists, then cosigns. The
    /// per-log lock is held from reading the state to persisting the new one.
    pub fn add_checkpoint(&self, req: &AddCheckpoint, now: u64) -> Result<Vec<u8>, WitnessError> {
        let origin = note_origin(&req.checkpoint);
        let log = self.logs.get(&origin);
        let mut guard = match log {
            Some(l) => l
                .lock
                .lock()
                .map_err(|_| WitnessError::Internal("state lock poisoned by a panic".into()))?,
            None => {
                // Let the spec function produce the right status (400 or 404).
                return check_add_checkpoint(req, |_| None, |_| WitnessState::empty())
                    .map(|_| Vec::new())
                    .map_err(WitnessError::from);
            }
        };
        let log = log.ok_or_else(|| Rejection::UnknownOrigin(origin.clone()))?;
        let keys: Vec<&dyn NoteVerifier> =
            log.keys.iter().map(|k| k as &dyn NoteVerifier).collect();
        let current = guard
            .as_ref()
            .map_or_else(WitnessState::empty, |s| s.0.clone());
        let accepted = match check_add_checkpoint(
            req,
            |o| (o == log.origin).then_some(keys),
            |_| current.clone(),
        ) {
            Ok(a) => a,
            Err(e) => {
                if matches!(e, Rejection::Inconsistent(_)) {
                    tracing::warn!(origin = %origin, error = %e, checkpoint = %String::from_utf8_lossy(&req.checkpoint), "possible log misbehaviour");
                }
                return Err(e.into());
            }
        };
        let cosig = self
            .signer
            .cosign(&accepted.note.text, now.max(1))
            .ok_or_else(|| WitnessError::Internal(format!("the clock ({now}) is out of range")))?;
        // Keep the log's verified signatures and ours.
        let mut stored = Note {
            text: accepted.note.text.clone(),
            sigs: Vec::new(),
        };
        for s in &accepted.note.sigs {
            if log
                .keys
                .iter()
                .any(|k| k.name() == s.name && k.key_id() == s.key_id)
            {
                stored.sigs.push(s.clone());
            }
        }
        stored.sigs.push(cosig.clone());
        let bytes = stored.to_bytes();
        if let Err(e) = store::save(&self.dir, &origin, &bytes) {
            tracing::error!(error = %e, "persisting witness state failed");
            return Err(WitnessError::Internal(format!(
                "could not persist its state: {e}"
            )));
        }
        *guard = Some((
            WitnessState {
                size: accepted.checkpoint.size,
                root: accepted.checkpoint.root,
            },
            bytes,
        ));
        Ok(encode_response(&[cosig]))
    }

    /// The latest cosigned checkpoint for an origin.
    pub fn cosigned(&self, origin: &str) -> Option<Vec<u8>> {
        let g = self.logs.get(origin)?.lock.lock().ok()?;
        g.as_ref().map(|s| s.1.clone())
    }

    /// The latest cosigned checkpoint for an origin hash.
    pub fn checkpoint_by_hash(&self, hash: &str) -> Option<Vec<u8>> {
        let origin = self.by_hash.get(hash)?;
        let g = self.logs.get(origin)?.lock.lock().ok()?;
        g.as_ref().map(|s| s.1.clone())
    }

    /// This witness's cosigner vkey.
    pub fn vkey(&self) -> String {
        self.signer.verifier().vkey()
    }
}

/// A configured log's verifiers, from its vkeys.
pub fn log_verifiers(l: &config::LogConfig) -> Result<Vec<Ed25519Verifier>, SetupError> {
    l.vkeys
        .iter()
        .map(|k| {
            Ed25519Verifier::from_vkey(k).map_err(|err| SetupError::Vkey {
                origin: l.origin.clone(),
                vkey: k.clone(),
                err,
            })
        })
        .collect()
}

/// The origin line of a signed checkpoint note (empty if it is not one):
/// how an `add-checkpoint` finds its log before anything is verified.
pub fn note_origin(note: &[u8]) -> String {
    Note::parse(note)
        .ok()
        .and_then(|n| n.text.split('\n').next().map(str::to_string))
        .unwrap_or_default()
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(1)
}

/// A plain-text answer (every refusal carries its reason).
pub(crate) fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Largest `add-checkpoint` body: a checkpoint with its signatures and a
/// consistency proof (at most 63 hashes) fit in a few KiB.
pub const MAX_BODY_BYTES: usize = 64 << 10;

/// Time allowed to send an `add-checkpoint` body.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What stands in front of the witness: which proxies may name the
/// client, and the per-client rate of `add-checkpoint` requests.
pub struct Front {
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: vouch::client_addr::TrustedProxies,
    /// Requests per second per client address (0: unlimited).
    pub rate_per_second: f64,
    rates: vouch::ratelimit::Buckets<std::net::IpAddr>,
}

impl Front {
    /// A front with these proxies and this rate (burst `burst`).
    pub fn new(
        trusted_proxies: vouch::client_addr::TrustedProxies,
        rate_per_second: f64,
        burst: f64,
    ) -> Front {
        Front {
            trusted_proxies,
            rate_per_second,
            rates: vouch::ratelimit::Buckets::new(rate_per_second, burst),
        }
    }

    /// The 429 answer (with `Retry-After`) when the client this request
    /// comes from (through trusted proxies) is over its rate; `None` to go on.
    pub fn over_rate(
        &self,
        peer: std::net::IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> Option<Response> {
        let client = vouch::client_addr::client_addr(peer, headers, &self.trusted_proxies);
        if self.rates.take(vouch::ratelimit::rate_key(client), 1.0) {
            return None;
        }
        let mut r = text(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "rate limit of {} requests/s for {client} exceeded\n",
                self.rate_per_second
            ),
        );
        r.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        Some(r)
    }
}

impl Default for Front {
    fn default() -> Front {
        Front::new(Default::default(), 0.0, 1.0)
    }
}

type WState = State<(Arc<Witness>, Arc<Front>)>;

async fn add_checkpoint(
    State((w, front)): WState,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Response {
    use vouch::serve::BodyError;
    if let Some(r) = front.over_rate(peer.ip(), &headers) {
        return r;
    }
    let body = match vouch::serve::read_body(body, MAX_BODY_BYTES, BODY_TIMEOUT, |_| true).await {
        Ok(b) => b,
        Err(e) => {
            let status = match e {
                BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
                BodyError::Read(_) => StatusCode::BAD_REQUEST,
                // No budget is charged here; kept for completeness.
                BodyError::Refused => StatusCode::SERVICE_UNAVAILABLE,
            };
            return text(status, format!("{e}\n"));
        }
    };
    let req = match AddCheckpoint::parse(&body) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let r = tokio::task::spawn_blocking(move || w.add_checkpoint(&req, now())).await;
    match r {
        Ok(Ok(body)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response(),
        Ok(Err(WitnessError::Rejected(Rejection::Conflict { current, .. }))) => (
            StatusCode::CONFLICT,
            [(header::CONTENT_TYPE, SIZE_CONTENT_TYPE)],
            format!("{current}\n"),
        )
            .into_response(),
        Ok(Err(e)) => text(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            format!("{e}\n"),
        ),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the witness failed: {e}\n"),
        ),
    }
}

async fn monitoring(
    State((w, _)): WState,
    UrlPath((hash, leaf)): UrlPath<(String, String)>,
) -> Response {
    if leaf != "checkpoint" {
        return text(StatusCode::NOT_FOUND, "not found\n".into());
    }
    match w.checkpoint_by_hash(&hash) {
        Some(cp) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            cp,
        )
            .into_response(),
        None => text(
            StatusCode::NOT_FOUND,
            format!("no cosigned checkpoint for origin hash {hash}\n"),
        ),
    }
}

/// The witness's routes.
pub fn router(
    w: Arc<Witness>,
    front: Front,
    submission_prefix: &str,
    monitoring_prefix: &str,
) -> Router {
    let sub = submission_prefix.trim_end_matches('/');
    let mon = monitoring_prefix.trim_end_matches('/');
    Router::new()
        .route(&format!("{sub}/add-checkpoint"), post(add_checkpoint))
        .route(&format!("{mon}/{{hash}}/{{leaf}}"), get(monitoring))
        .with_state((w, Arc::new(front)))
}

/// Writes a new cosigning key (mode 0600, never overwriting) and returns it.
pub fn keygen(path: &Path, name: &str) -> Result<CosignatureSigner, SetupError> {
    let s = CosignatureSigner::from_seed(name, &vouch::keyfile::random_seed()?)
        .map_err(|_| SetupError::Name(name.to_string()))?;
    vouch::keyfile::create(path, &s.skey())?;
    Ok(s)
}

/// Loads a cosigning key, refusing files others can read.
pub fn load_key(path: &Path) -> Result<CosignatureSigner, SetupError> {
    let text = vouch::keyfile::read(path)?;
    CosignatureSigner::from_skey(&text).map_err(|_| SetupError::NotAKey(path.display().to_string()))
}

/// The monitoring URL path of a log's cosigned checkpoint under `prefix`
/// (C2SP tlog-witness: `<prefix>/<hex SHA-256 of the origin>/checkpoint`).
pub fn monitoring_path(prefix: &str, origin: &str) -> String {
    format!(
        "{}/{}/checkpoint",
        prefix.trim_end_matches('/'),
        store::origin_hash(origin)
    )
}
