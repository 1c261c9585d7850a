//! The log's HTTP handlers: C2SP tlog-tiles reads (`spec/PROTOCOL.md`
//! §4.2) and the Vouch APIs (§5). Handlers only: errors and their statuses
//! are [`crate::error`], admission [`crate::admission`], the verify step
//! [`crate::verify`], proofs [`crate::proofs`]; URLs and JSON bodies are
//! the shared `vouch::api`.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use vouch::api::{
    routes, ConsistencyResponse, InclusionResponse, LookupEntry, LookupResponse, SubmitResponse,
    SubmitResult,
};
use vouch_spec::hex;
use vouch_spec::tile::{parse_decimal, Tile, TileKind, TILE_WIDTH};

use crate::admission::Admission;
use crate::error::ApiError;
use crate::nodes::TreeReader;
use crate::published::Shared;
use crate::sequencer::SequencerHandle;

/// Settings of the handlers themselves.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Most attestations per request.
    pub max_attestations: usize,
    /// `/checkpoint` max-age (seconds).
    pub checkpoint_max_age: u64,
    /// How long `wait=1` waits for a served checkpoint to cover the entries.
    pub wait_timeout: Duration,
    /// Proxies whose forwarding headers name the client.
    pub trusted_proxies: vouch::client_addr::TrustedProxies,
}

/// Everything a handler needs.
pub struct AppState {
    /// The tree heads.
    pub heads: Arc<Shared>,
    /// Nodes and data from the store.
    pub tree: Arc<TreeReader>,
    /// The way into the sequencer.
    pub sequencer: SequencerHandle,
    /// Rates, allow-list, body budget.
    pub admission: Admission,
    /// Handler settings.
    pub settings: Settings,
    registry: Arc<Registry>,
    requests: Family<Vec<(String, String)>, Counter>,
    /// Where submissions are parsed and verified, one per core at a time.
    verifiers: crate::verify::Verifiers,
}

impl AppState {
    /// Handler state; registers the request counter in `registry` (which
    /// is then served at `/metrics`).
    pub fn new(
        heads: Arc<Shared>,
        tree: Arc<TreeReader>,
        sequencer: SequencerHandle,
        admission: Admission,
        settings: Settings,
        mut registry: Registry,
    ) -> AppState {
        let requests = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "vouch_log_http_requests",
            "HTTP responses by route and status.",
            requests.clone(),
        );
        AppState {
            verifiers: crate::verify::Verifiers::per_core(),
            heads,
            tree,
            sequencer,
            admission,
            settings,
            registry: Arc::new(registry),
            requests,
        }
    }
}

type St = State<Arc<AppState>>;

/// The router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(routes::CHECKPOINT, get(checkpoint))
        .route(routes::TILE, get(tile))
        .route(routes::SUBMIT, post(submit))
        .route(routes::LOOKUP, get(lookup))
        .route(routes::TRANSITION, post(submit_transition))
        .route(routes::TRANSITIONS, get(transitions))
        .route(routes::INCLUSION, get(inclusion_proof))
        .route(routes::CONSISTENCY, get(consistency_proof))
        .route(routes::REFERENCES, get(references))
        .route(routes::BUNDLE, get(bundle))
        .route(routes::METRICS, get(metrics))
        .fallback(|| async {
            ApiError::NotFound("no such endpoint (see spec/PROTOCOL.md §4.2 and §5)".into())
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
    st.requests
        .get_or_create(&vec![
            ("route".into(), route),
            ("status".into(), r.status().as_u16().to_string()),
        ])
        .inc();
    r
}

async fn metrics(State(st): St) -> Response {
    vouch::metrics::response(&st.registry)
}

/// Whether the request's `If-None-Match` names `etag` (or `*`).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// A 304 answer carrying the validators a cache needs.
fn answer_not_modified(etag: &str, cache_control: &str) -> Response {
    let mut r = axum::http::StatusCode::NOT_MODIFIED.into_response();
    if let (Ok(e), Ok(c)) = (
        HeaderValue::from_str(etag),
        HeaderValue::from_str(cache_control),
    ) {
        r.headers_mut().insert(header::ETAG, e);
        r.headers_mut().insert(header::CACHE_CONTROL, c);
    }
    r
}

async fn checkpoint(State(st): St, headers: HeaderMap) -> Result<Response, ApiError> {
    let p = st.heads.current();
    if p.checkpoint.is_empty() {
        return Err(ApiError::unavailable(
            "no checkpoint has met the witness quorum yet",
            5,
        ));
    }
    // The bytes change with every new head or cosignature: their hash.
    let etag = format!(
        "\"{}\"",
        &hex::encode(&vouch_spec::hash::sha256(&p.checkpoint))[..32]
    );
    let cache = format!("public, max-age={}", st.settings.checkpoint_max_age);
    if not_modified(&headers, &etag) {
        return Ok(answer_not_modified(&etag, &cache));
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (header::CACHE_CONTROL, cache),
            (header::ETAG, etag),
        ],
        p.checkpoint.as_ref().clone(),
    )
        .into_response())
}

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

async fn tile(
    State(st): St,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let full = format!("tile/{path}");
    let t = Tile::parse_path(&full).map_err(|e| ApiError::NotFound(e.to_string()))?;
    // Tiles exist up to the newest durable checkpoint (witnesses need them
    // before the checkpoint is served).
    let size = st.heads.signed().size;
    let exists = Tile::in_tree(t.kind, t.index, size).is_some_and(|have| have.width >= t.width);
    if !exists {
        return Err(ApiError::NotFound(format!(
            "{full} is beyond the tree of size {size}"
        )));
    }
    // A tile path (full, or partial with its width) names immutable
    // contents, so the path is a strong validator (one per encoding).
    let gzip = t.kind == TileKind::Entries && accepts_gzip(&headers);
    let etag = format!("\"{full}{}\"", if gzip { "+gzip" } else { "" });
    if not_modified(&headers, &etag) {
        return Ok(answer_not_modified(&etag, IMMUTABLE));
    }
    let tree = st.tree.clone();
    let body = read_inline(move || -> Result<Vec<u8>, ApiError> {
        match t.kind {
            TileKind::Hash { level } => {
                let data = tree.reads().tile(level, t.index)?.ok_or_else(|| {
                    ApiError::Internal(format!("{full} is in the tree but not in the store"))
                })?;
                data.get(..usize::from(t.width) * 32)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| {
                        ApiError::Internal(format!("{full}: the stored tile is too short"))
                    })
            }
            TileKind::Entries => {
                let entries = tree
                    .reads()
                    .entries(t.index * TILE_WIDTH, usize::from(t.width))?;
                if entries.len() != usize::from(t.width) {
                    return Err(ApiError::Internal(format!(
                        "{full}: {} of {} entries stored",
                        entries.len(),
                        t.width
                    )));
                }
                let mut data = Vec::with_capacity(entries.iter().map(|e| e.len() + 2).sum());
                for e in &entries {
                    vouch_spec::bundle::push(&mut data, e)
                        .map_err(|e| ApiError::Internal(format!("{full}: {e}")))?;
                }
                Ok(data)
            }
        }
    })?;
    let body = if gzip {
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 2),
            flate2::Compression::fast(),
        );
        enc.write_all(&body)
            .and_then(|_| enc.finish())
            .map_err(|e| ApiError::Internal(format!("compressing {}: {e}", t.path())))?
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
    if let Ok(e) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(header::ETAG, e);
    }
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
struct FlagQuery {
    wait: Option<String>,
    proof: Option<String>,
}

/// A `0`/`1` query flag.
fn flag(name: &str, v: Option<&str>) -> Result<bool, ApiError> {
    match v {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(w) => Err(ApiError::BadRequest(format!("{name}={w:?}: want 0 or 1"))),
    }
}

async fn submit(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<FlagQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    sequence_body(st, peer, q, headers, body, |st, bytes| {
        let atts = crate::verify::parse(bytes, st.settings.max_attestations)?;
        st.admission.check_builders(&atts)?;
        crate::verify::verify(atts)
    })
    .await
}

/// `POST /vouch/v1/transition` (§5.7): one transition statement.
async fn submit_transition(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<FlagQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    sequence_body(st, peer, q, headers, body, |st, bytes| {
        let t = crate::verify::transition(bytes)?;
        st.admission.check_keys(std::iter::once(&t.signer))?;
        Ok(vec![t])
    })
    .await
}

/// The shared body of the submission endpoints: address rate, content
/// type, body within its limits, then `prepare` (parse, admit, verify) on
/// the blocking pool, sequencing, and with `wait=1` the proofs (§5.2).
async fn sequence_body(
    st: Arc<AppState>,
    peer: SocketAddr,
    q: FlagQuery,
    headers: HeaderMap,
    body: Body,
    prepare: fn(&AppState, &[u8]) -> Result<Vec<crate::sequencer::Prepared>, ApiError>,
) -> Result<Response, ApiError> {
    let client = vouch::client_addr::client_addr(peer.ip(), &headers, &st.settings.trusted_proxies);
    st.admission.check_address(client)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/plain"))
    {
        return Err(ApiError::UnsupportedMediaType(
            "submissions must be Content-Type: text/plain".into(),
        ));
    }
    let wait = flag("wait", q.wait.as_deref())?;
    let max = st.admission.limits().max_body_bytes;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max as u64 {
            return Err(ApiError::TooLarge(format!(
                "body of {len} bytes exceeds the limit of {max}"
            )));
        }
    }
    // Held until the sequencer has logged the entries, so bodies being
    // read and jobs queued together stay within the memory budget.
    let (bytes, _reserved) = st.admission.read_body(body).await?;
    let st2 = st.clone();
    let prepared = st.verifiers.run(move || prepare(&st2, &bytes)).await??;
    let n = prepared.len();
    let assigned = st
        .sequencer
        .submit(prepared)?
        .await
        .map_err(|_| ApiError::unavailable("the log is shutting down; entries were not logged", 5))?
        .map_err(ApiError::refused)?;
    debug_assert_eq!(assigned.len(), n);
    let mut proofs: Vec<Option<String>> = vec![None; n];
    let mut covered = None;
    if wait {
        let max = assigned.iter().map(|a| a.index).max().unwrap_or(0);
        let mut sub = st.heads.subscribe();
        let heads = st.heads.clone();
        let ok = tokio::time::timeout(st.settings.wait_timeout, async move {
            while heads.current().size <= max {
                if sub.changed().await.is_err() {
                    return false;
                }
            }
            true
        })
        .await
        .unwrap_or(false);
        covered = Some(ok);
        if ok {
            let st2 = st.clone();
            let a2 = assigned.clone();
            proofs =
                tokio::task::spawn_blocking(move || -> Result<Vec<Option<String>>, ApiError> {
                    let p = st2.heads.current();
                    a2.iter()
                        .map(|a| crate::proofs::bundle(&st2.tree, a.index, &p).map(Some))
                        .collect()
                })
                .await??;
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
    Ok(Json(SubmitResponse { entries, covered }).into_response())
}

async fn lookup(
    State(st): St,
    Path(hash): Path<String>,
    Query(q): Query<FlagQuery>,
) -> Result<Response, ApiError> {
    let with_proof = flag("proof", q.proof.as_deref())?;
    if !vouch_spec::nix::store_path::valid_hash_part(&hash) {
        return Err(ApiError::BadRequest(format!(
            "{hash:?} is not a store path hash part (32 nix32 digits)"
        )));
    }
    let mut hp = [0u8; 32];
    hp.copy_from_slice(hash.as_bytes());
    indexed(st, with_proof, move |r| r.path_indexes(&hp)).await
}

/// `GET /vouch/v1/transitions/<64 hex digits>` (§5.7): the transitions
/// naming an Ed25519 key, old or new, like a lookup.
async fn transitions(
    State(st): St,
    Path(key): Path<String>,
    Query(q): Query<FlagQuery>,
) -> Result<Response, ApiError> {
    let with_proof = flag("proof", q.proof.as_deref())?;
    let k: [u8; 32] = hex::decode(&key)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{key:?} is not an Ed25519 public key as 64 lowercase hex digits"
            ))
        })?;
    indexed(st, with_proof, move |r| r.key_indexes(&k)).await
}

/// Runs a read of the store on the async worker that serves the request.
///
/// Reads are memory or page-cache reads of microseconds (RocksDB's index
/// and filter blocks stay resident, tiles above level 0 are cached with
/// all their nodes), so they do not need the blocking pool; handing each
/// one to it cost two thread switches per request, a third of the log's
/// CPU under lookups (BENCHMARKS.md, "Where the log's time goes under
/// lookups"). Work that takes milliseconds (verifying a submission) still
/// goes to the blocking pool.
fn read_inline<T>(read: impl FnOnce() -> T) -> T {
    read()
}

/// The entries at the indexes `which` names that the current checkpoint
/// covers, in index order, each with its tlog-proof if `with_proof`.
async fn indexed(
    st: Arc<AppState>,
    with_proof: bool,
    which: impl FnOnce(&dyn crate::store::Reads) -> Result<Vec<u64>, crate::store::StoreError>
        + Send
        + 'static,
) -> Result<Response, ApiError> {
    let p = st.heads.current();
    let r = read_inline(move || -> Result<LookupResponse, ApiError> {
        let mut entries = Vec::new();
        for index in which(st.tree.reads())? {
            if index >= p.size {
                continue;
            }
            let e = st.tree.reads().entry(index)?.ok_or_else(|| {
                ApiError::Internal(format!("entry {index} is missing from the store"))
            })?;
            let proof = if with_proof {
                Some(crate::proofs::tlog_proof(&st.tree, index, &e, &p)?)
            } else {
                None
            };
            let entry = String::from_utf8(e).map_err(|_| {
                ApiError::Internal(format!("the stored entry {index} is not UTF-8"))
            })?;
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
    })?;
    // The entry and its proof are text with a newline escape per line
    // (about one in sixteen characters), plus the fields' names.
    let size = r.entries.iter().fold(64, |n, e| {
        let text = e.entry.len() + e.proof.as_ref().map_or(0, String::len);
        n + text + text / 16 + 64
    });
    json_sized(&r, size)
}

/// `value` as a JSON answer, written into a buffer of `size` bytes (about
/// the answer's): axum's `Json` starts from 128 bytes and doubles, which
/// for a lookup's few kilobytes is five reallocations and copies.
fn json_sized<T: serde::Serialize>(value: &T, size: usize) -> Result<Response, ApiError> {
    let mut buf = Vec::with_capacity(size);
    serde_json::to_writer(&mut buf, value)
        .map_err(|e| ApiError::Internal(format!("encoding the answer as JSON: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        buf,
    )
        .into_response())
}

fn query_number(q: &HashMap<String, String>, name: &str) -> Result<u64, ApiError> {
    let v = q
        .get(name)
        .ok_or_else(|| ApiError::BadRequest(format!("missing query parameter {name}")))?;
    parse_decimal(v).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{name}={v:?} is not a decimal without leading zeros"
        ))
    })
}

async fn inclusion_proof(
    State(st): St,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (index, size) = (query_number(&q, "index")?, query_number(&q, "size")?);
    let current = st.heads.current().size;
    if size > current || index >= size {
        return Err(ApiError::BadRequest(format!(
            "need index < size <= {current}, got index={index} size={size}"
        )));
    }
    let proof = read_inline(move || crate::proofs::inclusion(&st.tree, index, size))?;
    Ok(Json(InclusionResponse {
        index,
        size,
        proof: proof.iter().map(|h| h.to_base64()).collect(),
    })
    .into_response())
}

async fn consistency_proof(
    State(st): St,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (old, new) = (query_number(&q, "old")?, query_number(&q, "new")?);
    let current = st.heads.current().size;
    if old == 0 || old > new || new > current {
        return Err(ApiError::BadRequest(format!(
            "need 1 <= old <= new <= {current}, got old={old} new={new}"
        )));
    }
    let proof = read_inline(move || crate::proofs::consistency(&st.tree, old, new))?;
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
        .ok_or_else(|| {
            ApiError::BadRequest(format!("{digest:?} is not 64 lowercase hex digits"))
        })?;
    let list = read_inline(move || st.tree.reads().references(&d))?;
    let list =
        list.ok_or_else(|| ApiError::NotFound(format!("no reference list with digest {digest}")))?;
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
        .ok_or_else(|| ApiError::BadRequest(format!("{index:?} is not a decimal index")))?;
    let p = st.heads.current();
    if i >= p.size {
        return Err(ApiError::NotFound(format!(
            "index {i} is beyond the tree of size {}",
            p.size
        )));
    }
    let text = read_inline(move || crate::proofs::bundle(&st.tree, i, &p))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn query_flags_are_zero_or_one() {
        assert_eq!(flag("wait", None), Ok(false));
        assert_eq!(flag("wait", Some("1")), Ok(true));
        assert!(matches!(
            flag("wait", Some("true")),
            Err(ApiError::BadRequest(_))
        ));
    }
}
