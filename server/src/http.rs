//! The HTTP face of the log: C2SP tlog-tiles reads and the Vouch APIs of
//! `spec/PROTOCOL.md` §5. Every error is a status with a one-line reason.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use vouch_spec::attestation::{Attestation, References, HEADER};
use vouch_spec::nix::NixPublicKey;
use vouch_spec::tile::{parse_decimal, Tile, TileKind, TILE_WIDTH};
use vouch_spec::tlog_proof::TlogProof;
use vouch_spec::{hex, inclusion};

use crate::metrics::Metrics;
use crate::sequencer::{Assigned, Job, Prepared};
use crate::state::Shared;

/// Everything a handler needs.
pub struct AppState {
    /// Published head, tiles, store.
    pub shared: Arc<Shared>,
    /// The sequencer's queue.
    pub queue: SyncSender<Job>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Limits and policy.
    pub limits: Limits,
    rate: Mutex<HashMap<IpAddr, (f64, Instant)>>,
    builder_rate: Mutex<HashMap<String, (f64, Instant)>>,
    /// Submission bodies in memory, in KiB permits.
    body_budget: Arc<tokio::sync::Semaphore>,
}

/// Request limits and submission policy.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest body.
    pub max_body_bytes: usize,
    /// Most attestations per request.
    pub max_attestations: usize,
    /// Time allowed to receive a body.
    pub body_timeout: Duration,
    /// Per-address rate (0: off) and burst.
    pub rate_per_second: f64,
    /// Burst.
    pub rate_burst: f64,
    /// Allowed builder keys (empty: anyone).
    pub allowed: Vec<NixPublicKey>,
    /// Attestations per second allowed per builder key (0: off).
    pub builder_rate_per_second: f64,
    /// Burst above the per-key rate.
    pub builder_rate_burst: f64,
    /// `/checkpoint` max-age.
    pub checkpoint_max_age: u64,
    /// How long `wait=1` waits for a served checkpoint to cover the entries.
    pub wait_timeout: Duration,
    /// Submission bodies held at once (bytes).
    pub submit_memory_bytes: usize,
}

impl AppState {
    /// New handler state.
    pub fn new(
        shared: Arc<Shared>,
        queue: SyncSender<Job>,
        metrics: Arc<Metrics>,
        limits: Limits,
    ) -> AppState {
        let kib = (limits.submit_memory_bytes / 1024).clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        AppState {
            shared,
            queue,
            metrics,
            limits,
            rate: Mutex::new(HashMap::new()),
            builder_rate: Mutex::new(HashMap::new()),
            body_budget: Arc::new(tokio::sync::Semaphore::new(kib)),
        }
    }
}

type St = State<Arc<AppState>>;

/// An error response: status and reason.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    reason: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            reason: reason.into(),
            retry_after: None,
        }
    }
    fn bad(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, reason)
    }
    fn not_found(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, reason)
    }
    fn unavailable(reason: impl Into<String>, retry: u64) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: reason.into(),
            retry_after: Some(retry),
        }
    }
    fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "internal error");
        ApiError::unavailable(format!("storage error: {e}"), 5)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.reason),
        )
            .into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// The router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/checkpoint", get(checkpoint))
        .route("/tile/{*path}", get(tile))
        .route("/vouch/v1/submit", post(submit))
        .route("/vouch/v1/lookup/{hash}", get(lookup))
        .route("/vouch/v1/proof/inclusion", get(inclusion_proof))
        .route("/vouch/v1/proof/consistency", get(consistency_proof))
        .route("/vouch/v1/references/{digest}", get(references))
        .route("/vouch/v1/bundle/{index}", get(bundle))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError::not_found("no such endpoint (see spec/PROTOCOL.md §4.2 and §5)")
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

async fn count_requests(State(st): St, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let route = match path {
        "/checkpoint" | "/metrics" | "/vouch/v1/submit" => path.to_string(),
        p if p.starts_with("/tile/entries/") => "/tile/entries".into(),
        p if p.starts_with("/tile/") => "/tile".into(),
        p if p.starts_with("/vouch/v1/") => p.splitn(5, '/').take(4).collect::<Vec<_>>().join("/"),
        _ => "other".into(),
    };
    let r = next.run(req).await;
    st.metrics.record_request(&route, r.status().as_u16());
    r
}

async fn checkpoint(State(st): St) -> Response {
    let p = st.shared.current();
    if p.checkpoint.is_empty() {
        return ApiError::unavailable("no checkpoint has met the witness quorum yet", 5)
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (
                header::CACHE_CONTROL,
                format!("public, max-age={}", st.limits.checkpoint_max_age),
            ),
        ],
        p.checkpoint.as_ref().clone(),
    )
        .into_response()
}

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

async fn tile(
    State(st): St,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let full = format!("tile/{path}");
    let t = Tile::parse_path(&full).map_err(|e| ApiError::not_found(e.to_string()))?;
    // Tiles exist up to the newest durable checkpoint (witnesses need them
    // before the checkpoint is served).
    let size = st.shared.signed().size;
    let exists = Tile::in_tree(t.kind, t.index, size).is_some_and(|have| have.width >= t.width);
    if !exists {
        return Err(ApiError::not_found(format!(
            "{full} is beyond the tree of size {size}"
        )));
    }
    let shared = st.shared.clone();
    let body = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        match t.kind {
            TileKind::Hash { level } => {
                let data = shared
                    .store
                    .tile(level, t.index)
                    .map_err(ApiError::internal)?
                    .ok_or_else(|| ApiError::not_found(format!("{full} not found")))?;
                data.get(..usize::from(t.width) * 32)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| ApiError::not_found(format!("{full} not found")))
            }
            TileKind::Entries => {
                let entries = shared
                    .store
                    .entries(t.index * TILE_WIDTH, usize::from(t.width))
                    .map_err(ApiError::internal)?;
                if entries.len() != usize::from(t.width) {
                    return Err(ApiError::internal(format!(
                        "{full}: {} of {} entries stored",
                        entries.len(),
                        t.width
                    )));
                }
                let mut data = Vec::with_capacity(entries.iter().map(|e| e.len() + 2).sum());
                for e in &entries {
                    vouch_spec::bundle::push(&mut data, e).map_err(ApiError::internal)?;
                }
                Ok(data)
            }
        }
    })
    .await
    .map_err(ApiError::internal)??;
    let gzip = t.kind == TileKind::Entries && accepts_gzip(&headers);
    let body = if gzip {
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 2),
            flate2::Compression::fast(),
        );
        enc.write_all(&body)
            .and_then(|_| enc.finish())
            .map_err(ApiError::internal)?
    } else {
        body
    };
    let mut r = (
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, IMMUTABLE),
        ],
        body,
    )
        .into_response();
    if gzip {
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    Ok(r)
}

fn accepts_gzip(h: &HeaderMap) -> bool {
    h.get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut parts = e.trim().split(';');
            parts
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case("gzip"))
                && !parts.any(|p| p.trim().replace(' ', "") == "q=0")
        })
}

#[derive(Deserialize)]
struct SubmitQuery {
    wait: Option<String>,
}

#[derive(Serialize)]
struct SubmitResult {
    index: u64,
    leaf_hash: String,
    duplicate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    proof: Option<String>,
}

#[derive(Serialize)]
struct SubmitResponse {
    entries: Vec<SubmitResult>,
    /// With `wait=1`: whether a served checkpoint covered every entry in time.
    #[serde(skip_serializing_if = "Option::is_none")]
    covered: Option<bool>,
}

/// Splits a submission body into attestations at each header line.
fn split_attestations(body: &[u8]) -> Result<Vec<&[u8]>, ApiError> {
    let header = format!("{HEADER}\n");
    if !body.starts_with(header.as_bytes()) {
        return Err(ApiError::bad(format!(
            "body must start with the line {HEADER:?}"
        )));
    }
    let mut starts = vec![0usize];
    let needle = format!("\n{HEADER}\n");
    let mut from = 0;
    while let Some(p) = find(&body[from..], needle.as_bytes()) {
        starts.push(from + p + 1);
        from += p + 1;
    }
    starts.push(body.len());
    Ok(starts.windows(2).map(|w| &body[w[0]..w[1]]).collect())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Takes `n` tokens from `key`'s bucket (refilled at `rate`/s up to
/// `burst`); false if there are not enough.
fn take<K: std::hash::Hash + Eq>(
    buckets: &Mutex<HashMap<K, (f64, Instant)>>,
    key: K,
    n: f64,
    rate: f64,
    burst: f64,
) -> bool {
    if rate <= 0.0 {
        return true;
    }
    let Ok(mut m) = buckets.lock() else {
        return true;
    };
    let now = Instant::now();
    if m.len() > 100_000 {
        // Forget keys whose bucket has refilled: they are as good as new.
        m.retain(|_, (t, at)| *t + now.duration_since(*at).as_secs_f64() * rate < burst);
        if m.len() > 100_000 {
            m.clear();
        }
    }
    let (tokens, at) = m.entry(key).or_insert((burst, now));
    *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
    *at = now;
    if *tokens < n {
        return false;
    }
    *tokens -= n;
    true
}

/// The rate-limit bucket of an address: IPv4 addresses (also when mapped
/// into IPv6) one each, IPv6 one per /64, since one host usually holds a
/// whole /64 and could otherwise take a fresh bucket per request.
fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::from(o)
            }
        },
        v4 => v4,
    }
}

impl AppState {
    fn rate_limited(&self, ip: IpAddr) -> bool {
        let key = rate_key(ip);
        !take(
            &self.rate,
            key,
            1.0,
            self.limits.rate_per_second,
            self.limits.rate_burst,
        )
    }
}

/// Reads a submission body within `max_body_bytes` and `body_timeout`,
/// charging what has arrived so far (in KiB) to the log's shared budget
/// for submissions in memory: a slow client holds only what it has sent,
/// and a body that would overrun the budget is refused with 503.
async fn read_body(
    st: &AppState,
    body: Body,
) -> Result<(Bytes, Option<tokio::sync::OwnedSemaphorePermit>), ApiError> {
    use vouch::serve::BodyError;
    let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
    let mut held_kib = 0u32;
    let read = vouch::serve::read_body(
        body,
        st.limits.max_body_bytes,
        st.limits.body_timeout,
        |len| {
            let want = u32::try_from(len.div_ceil(1024)).unwrap_or(u32::MAX);
            if want <= held_kib {
                return true;
            }
            let Ok(more) = st
                .body_budget
                .clone()
                .try_acquire_many_owned(want - held_kib)
            else {
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
        Err(e @ BodyError::TooLarge(_)) => {
            Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))
        }
        Err(e @ BodyError::Timeout(_)) => {
            Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, e.to_string()))
        }
        Err(e @ BodyError::Read(_)) => Err(ApiError::bad(e.to_string())),
        Err(BodyError::Refused) => Err(ApiError::unavailable(
            format!(
                "{} bytes of submissions are in flight already; retry shortly",
                st.limits.submit_memory_bytes
            ),
            1,
        )),
    }
}

async fn submit(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<SubmitQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if st.rate_limited(peer.ip()) {
        return Err(ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            reason: format!(
                "rate limit of {} submissions/s for {} exceeded",
                st.limits.rate_per_second,
                peer.ip()
            ),
            retry_after: Some(1),
        });
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/plain"))
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "submissions must be Content-Type: text/plain",
        ));
    }
    let wait = match q.wait.as_deref() {
        None | Some("0") => false,
        Some("1") => true,
        Some(w) => return Err(ApiError::bad(format!("wait={w:?}: want 0 or 1"))),
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > st.limits.max_body_bytes as u64 {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "body of {len} bytes exceeds the limit of {}",
                    st.limits.max_body_bytes
                ),
            ));
        }
    }
    // Held until the sequencer has logged the entries, so bodies being
    // read and jobs queued together stay within `submit_memory_bytes`.
    let (bytes, _reserved) = read_body(&st, body).await?;
    let st2 = st.clone();
    let prepared = tokio::task::spawn_blocking(move || prepare(&st2, &bytes))
        .await
        .map_err(ApiError::internal)??;
    let n = prepared.len();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = Job {
        entries: prepared,
        reply: tx,
        queued: Instant::now(),
    };
    st.metrics
        .queue_depth
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match st.queue.try_send(job) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            st.metrics
                .queue_depth
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            return Err(ApiError::unavailable(
                "sequencer queue is full; retry later",
                1,
            ));
        }
        Err(TrySendError::Disconnected(_)) => {
            st.metrics
                .queue_depth
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            return Err(ApiError::unavailable("log is shutting down", 5));
        }
    }
    let assigned: Vec<Assigned> = match rx.await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            return Err(ApiError::unavailable(
                format!("entries were not logged: {e}"),
                5,
            ))
        }
        Err(_) => {
            return Err(ApiError::unavailable(
                "log is shutting down; entries were not logged",
                5,
            ))
        }
    };
    debug_assert_eq!(assigned.len(), n);
    let mut proofs: Vec<Option<String>> = vec![None; n];
    let mut witnessed = None;
    if wait {
        let max = assigned.iter().map(|a| a.index).max().unwrap_or(0);
        let mut sub = st.shared.subscribe();
        let covered = tokio::time::timeout(st.limits.wait_timeout, async {
            while st.shared.current().size <= max {
                if sub.changed().await.is_err() {
                    return false;
                }
            }
            true
        })
        .await
        .unwrap_or(false);
        witnessed = Some(covered);
        if covered {
            let st2 = st.clone();
            let a2 = assigned.clone();
            proofs =
                tokio::task::spawn_blocking(move || -> Result<Vec<Option<String>>, ApiError> {
                    let p = st2.shared.current();
                    a2.iter()
                        .map(|a| bundle_text(&st2.shared, a.index, &p).map(Some))
                        .collect()
                })
                .await
                .map_err(ApiError::internal)??;
        }
    }
    let entries = assigned
        .into_iter()
        .zip(proofs)
        .map(|(a, proof)| SubmitResult {
            index: a.index,
            leaf_hash: a.leaf.to_base64(),
            duplicate: a.duplicate,
            proof,
        })
        .collect();
    Ok(Json(SubmitResponse {
        entries,
        covered: witnessed,
    })
    .into_response())
}

/// Parses, checks and prepares every attestation, or rejects the request.
fn prepare(st: &AppState, body: &[u8]) -> Result<Vec<Prepared>, ApiError> {
    let parts = split_attestations(body)?;
    if parts.len() > st.limits.max_attestations {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} attestations exceed the limit of {} per request",
                parts.len(),
                st.limits.max_attestations
            ),
        ));
    }
    let mut atts = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let a =
            Attestation::parse(part).map_err(|e| ApiError::bad(format!("attestation {i}: {e}")))?;
        if !st.limits.allowed.is_empty() && !st.limits.allowed.contains(&a.key) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "attestation {i}: builder key {} is not on this log's allow-list",
                    a.key
                ),
            ));
        }
        atts.push(a);
    }
    let mut per_key: HashMap<String, f64> = HashMap::new();
    for a in &atts {
        *per_key.entry(a.key.to_string()).or_default() += 1.0;
    }
    for (key, n) in per_key {
        if !take(
            &st.builder_rate,
            key.clone(),
            n,
            st.limits.builder_rate_per_second,
            st.limits.builder_rate_burst,
        ) {
            return Err(ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                reason: format!(
                    "rate limit of {} attestations/s for builder key {key} exceeded",
                    st.limits.builder_rate_per_second
                ),
                retry_after: Some(1),
            });
        }
    }
    let fingerprints: Vec<String> = atts.iter().map(|a| a.fingerprint()).collect();
    let items: Vec<crate::verify::Item> = atts
        .iter()
        .zip(&fingerprints)
        .map(|(a, f)| crate::verify::Item {
            msg: f.as_bytes(),
            sig: a.sig,
            key: *a.key.key(),
        })
        .collect();
    if let Some(i) = crate::verify::first_invalid(&items) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "attestation {i} ({}): signature by builder key {} does not verify over the fingerprint",
                atts[i].path, atts[i].key
            ),
        ));
    }
    let mut out = Vec::with_capacity(atts.len());
    for a in atts {
        let entry = a.to_entry();
        let references = match &entry.references {
            References::Inline(_) => None,
            References::Digest(d) => Some((
                *d,
                a.references
                    .iter()
                    .map(|r| format!("{}\n", r.base()))
                    .collect::<String>()
                    .into_bytes(),
            )),
        };
        let mut hash_part = [0u8; 32];
        hash_part.copy_from_slice(a.path.hash_part().as_bytes());
        let bytes = entry.encode();
        out.push(Prepared {
            leaf: vouch_spec::leaf_hash(&bytes),
            bytes,
            hash_part,
            references,
        });
    }
    Ok(out)
}

/// A tlog-proof for `index` under the published head `p`.
fn bundle_text(
    shared: &Shared,
    index: u64,
    p: &crate::state::Published,
) -> Result<String, ApiError> {
    let entry = shared
        .store
        .entry(index)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal(format!("entry {index} missing")))?;
    proof_text(shared, index, entry, p)
}

/// A tlog-proof for entry `index` (whose bytes are `entry`) under `p`.
fn proof_text(
    shared: &Shared,
    index: u64,
    entry: Vec<u8>,
    p: &crate::state::Published,
) -> Result<String, ApiError> {
    let proof =
        inclusion::prove(index, p.size, &shared.nodes(p.size)).map_err(ApiError::internal)?;
    let t = TlogProof {
        extra: Some(entry),
        index,
        proof,
        checkpoint: p.checkpoint.as_ref().clone(),
    };
    String::from_utf8(t.encode()).map_err(ApiError::internal)
}

#[derive(Serialize)]
struct LookupEntry {
    index: u64,
    entry: String,
    /// With `proof=1`: a tlog-proof of the entry under the served checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    proof: Option<String>,
}

#[derive(Deserialize)]
struct LookupQuery {
    proof: Option<String>,
}

#[derive(Serialize)]
struct LookupResponse {
    tree_size: u64,
    entries: Vec<LookupEntry>,
}

async fn lookup(
    State(st): St,
    Path(hash): Path<String>,
    Query(q): Query<LookupQuery>,
) -> Result<Response, ApiError> {
    let with_proof = match q.proof.as_deref() {
        None | Some("0") => false,
        Some("1") => true,
        Some(w) => return Err(ApiError::bad(format!("proof={w:?}: want 0 or 1"))),
    };
    if !vouch_spec::nix::store_path::valid_hash_part(&hash) {
        return Err(ApiError::bad(format!(
            "{hash:?} is not a store path hash part (32 nix32 digits)"
        )));
    }
    let p = st.shared.current();
    let r = tokio::task::spawn_blocking(move || -> Result<LookupResponse, ApiError> {
        let mut hp = [0u8; 32];
        hp.copy_from_slice(hash.as_bytes());
        let mut entries = Vec::new();
        for index in st
            .shared
            .store
            .path_indexes(&hp)
            .map_err(ApiError::internal)?
        {
            if index >= p.size {
                continue;
            }
            let e = st
                .shared
                .store
                .entry(index)
                .map_err(ApiError::internal)?
                .ok_or_else(|| ApiError::internal(format!("entry {index} missing")))?;
            let proof = if with_proof {
                Some(proof_text(&st.shared, index, e.clone(), &p)?)
            } else {
                None
            };
            let entry = String::from_utf8(e).map_err(ApiError::internal)?;
            entries.push(LookupEntry {
                index,
                entry,
                proof,
            });
        }
        Ok(LookupResponse {
            tree_size: p.size,
            entries,
        })
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Json(r).into_response())
}

fn query_number(q: &HashMap<String, String>, name: &str) -> Result<u64, ApiError> {
    let v = q
        .get(name)
        .ok_or_else(|| ApiError::bad(format!("missing query parameter {name}")))?;
    parse_decimal(v).ok_or_else(|| {
        ApiError::bad(format!(
            "{name}={v:?} is not a decimal without leading zeros"
        ))
    })
}

#[derive(Serialize)]
struct InclusionResponse {
    index: u64,
    size: u64,
    proof: Vec<String>,
}

async fn inclusion_proof(
    State(st): St,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (index, size) = (query_number(&q, "index")?, query_number(&q, "size")?);
    let current = st.shared.current().size;
    if size > current || index >= size {
        return Err(ApiError::bad(format!(
            "need index < size <= {current}, got index={index} size={size}"
        )));
    }
    let proof = tokio::task::spawn_blocking(move || {
        inclusion::prove(index, size, &st.shared.nodes(size)).map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Json(InclusionResponse {
        index,
        size,
        proof: proof.iter().map(|h| h.to_base64()).collect(),
    })
    .into_response())
}

#[derive(Serialize)]
struct ConsistencyResponse {
    old: u64,
    new: u64,
    proof: Vec<String>,
}

async fn consistency_proof(
    State(st): St,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (old, new) = (query_number(&q, "old")?, query_number(&q, "new")?);
    let current = st.shared.current().size;
    if old == 0 || old > new || new > current {
        return Err(ApiError::bad(format!(
            "need 1 <= old <= new <= {current}, got old={old} new={new}"
        )));
    }
    let proof = tokio::task::spawn_blocking(move || {
        vouch_spec::consistency::prove(old, new, &st.shared.nodes(new)).map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Json(ConsistencyResponse {
        old,
        new,
        proof: proof.iter().map(|h| h.to_base64()).collect(),
    })
    .into_response())
}

async fn references(State(st): St, Path(digest): Path<String>) -> Result<Response, ApiError> {
    let d: [u8; 32] = hex::decode(&digest)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| ApiError::bad(format!("{digest:?} is not 64 lowercase hex digits")))?;
    let list = tokio::task::spawn_blocking(move || st.shared.store.references(&d))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let list =
        list.ok_or_else(|| ApiError::not_found(format!("no reference list with digest {digest}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, IMMUTABLE),
        ],
        list,
    )
        .into_response())
}

async fn bundle(State(st): St, Path(index): Path<String>) -> Result<Response, ApiError> {
    let i = parse_decimal(&index)
        .ok_or_else(|| ApiError::bad(format!("{index:?} is not a decimal index")))?;
    let p = st.shared.current();
    if i >= p.size {
        return Err(ApiError::not_found(format!(
            "index {i} is beyond the tree of size {}",
            p.size
        )));
    }
    let text = tokio::task::spawn_blocking(move || bundle_text(&st.shared, i, &p))
        .await
        .map_err(ApiError::internal)??;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

async fn metrics(State(st): St) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_concatenated_attestations() {
        let a = format!("{HEADER}\npath x\n");
        let body = format!("{a}{a}{a}");
        assert_eq!(split_attestations(body.as_bytes()).unwrap().len(), 3);
        assert!(split_attestations(b"garbage").is_err());
    }

    #[test]
    fn rate_buckets_are_per_ipv4_address_and_per_ipv6_64() {
        let k = |s: &str| rate_key(s.parse().unwrap());
        assert_eq!(k("192.0.2.1"), k("::ffff:192.0.2.1"));
        assert_ne!(k("192.0.2.1"), k("192.0.2.2"));
        assert_eq!(k("2001:db8:1:2:aaaa::1"), k("2001:db8:1:2:bbbb::2"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
    }

    #[test]
    fn gzip_negotiation() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip;q=0.8"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0"),
        );
        assert!(!accepts_gzip(&h));
    }
}
