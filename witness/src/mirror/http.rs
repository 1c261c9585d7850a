//! The mirror's HTTP routes (C2SP tlog-mirror): `POST <submission
//! prefix>/add-checkpoint` and `/add-entries` (gzip bodies accepted), and
//! the mirrored log as tlog-tiles under `<monitoring prefix>/<origin
//! hash>/` (`checkpoint`, `tile/...`), plus `/metrics`. Statuses come from
//! [`MirrorError::status`]; every refusal carries its reason.

use std::io::Read;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use vouch_spec::mirror::INFO_CONTENT_TYPE;
use vouch_spec::tile::Tile;
use vouch_spec::witness::{AddCheckpoint, Rejection, SIZE_CONTENT_TYPE};

use super::{Mirror, MirrorError, Uploaded};
use crate::text;

/// Largest `add-entries` body, after decompression: 32 packages of 256
/// entries of up to 64 KiB would be 512 MiB, but Vouch entries are a few
/// hundred bytes; 64 MiB leaves a wide margin and bounds memory.
pub const MAX_ENTRIES_BODY: usize = 64 << 20;

/// Time allowed to send an `add-entries` body.
pub const ENTRIES_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

type St = State<(
    Arc<Mirror>,
    Arc<vouch::metrics::Registry>,
    Arc<crate::Front>,
)>;
type Peer = axum::extract::ConnectInfo<std::net::SocketAddr>;

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

async fn body_bytes(body: axum::body::Body, max: usize) -> Result<Vec<u8>, Response> {
    use vouch::serve::BodyError;
    vouch::serve::read_body(body, max, ENTRIES_TIMEOUT, |_| true)
        .await
        .map(|b| b.to_vec())
        .map_err(|e| {
            let s = match e {
                BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
                BodyError::Read(_) | BodyError::Refused => StatusCode::BAD_REQUEST,
            };
            text(s, format!("{e}\n"))
        })
}

async fn add_checkpoint(
    State((m, _, front)): St,
    peer: Peer,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    if let Some(r) = front.over_rate(peer.0.ip(), &headers) {
        return r;
    }
    let body = match body_bytes(body, crate::MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req = match AddCheckpoint::parse(&body) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    match tokio::task::spawn_blocking(move || m.add_checkpoint(&req)).await {
        // The mirror cosigns later, once it holds the entries: empty body.
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(MirrorError::Checkpoint(Rejection::Conflict { current, .. }))) => (
            StatusCode::CONFLICT,
            [(header::CONTENT_TYPE, SIZE_CONTENT_TYPE)],
            format!("{current}\n"),
        )
            .into_response(),
        Ok(Err(e)) => text(status(e.status()), format!("{e}\n")),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the mirror failed: {e}\n"),
        ),
    }
}

/// The body, gunzipped if it says so (bounded after decompression too).
fn decoded(headers: &HeaderMap, body: Vec<u8>) -> Result<Vec<u8>, (StatusCode, String)> {
    match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("identity") => Ok(body),
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body.as_slice())
                .take(MAX_ENTRIES_BODY as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| (StatusCode::BAD_REQUEST, format!("gzip body: {e}\n")))?;
            if out.len() > MAX_ENTRIES_BODY {
                return Err((
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is larger than {MAX_ENTRIES_BODY} bytes once gunzipped\n"),
                ));
            }
            Ok(out)
        }
        Some(other) => Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding {other:?} is not supported (gzip is)\n"),
        )),
    }
}

async fn add_entries(
    State((m, _, front)): St,
    peer: Peer,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let mut r = match front.over_rate(peer.0.ip(), &headers) {
        Some(r) => r,
        None => add_entries_inner(m, headers, body).await,
    };
    r.headers_mut()
        .insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    r
}

async fn add_entries_inner(m: Arc<Mirror>, headers: HeaderMap, body: axum::body::Body) -> Response {
    let body = match body_bytes(body, MAX_ENTRIES_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let body = match decoded(&headers, body) {
        Ok(b) => b,
        Err((code, why)) => return text(code, why),
    };
    let info = |code: StatusCode, i: &vouch_spec::mirror::MirrorInfo| {
        (
            code,
            [(header::CONTENT_TYPE, INFO_CONTENT_TYPE)],
            i.encode(),
        )
            .into_response()
    };
    match tokio::task::spawn_blocking(move || m.add_entries(&body, crate::now())).await {
        Ok(Ok(Uploaded::Done(lines))) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            lines,
        )
            .into_response(),
        Ok(Ok(Uploaded::Partial(i))) => info(StatusCode::ACCEPTED, &i),
        Ok(Err(e)) => match e.info() {
            Some(i) => info(StatusCode::CONFLICT, i),
            None => text(status(e.status()), format!("{e}\n")),
        },
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the mirror failed: {e}\n"),
        ),
    }
}

async fn read(State((m, _, _)): St, UrlPath((hash, path)): UrlPath<(String, String)>) -> Response {
    let Some(log) = m.by_hash(&hash).cloned() else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no mirrored log has origin hash {hash}\n"),
        );
    };
    if path == "checkpoint" {
        return match log.checkpoint() {
            Some(cp) => (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                cp,
            )
                .into_response(),
            None => text(
                StatusCode::NOT_FOUND,
                format!("{} is not mirrored yet\n", log.origin),
            ),
        };
    }
    let tile = match Tile::parse_path(&path) {
        Ok(t) => t,
        Err(e) => return text(StatusCode::NOT_FOUND, format!("{e}\n")),
    };
    match tokio::task::spawn_blocking(move || log.tile(&tile)).await {
        Ok(Ok(Some(data))) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CACHE_CONTROL, IMMUTABLE),
            ],
            data,
        )
            .into_response(),
        Ok(Ok(None)) => text(
            StatusCode::NOT_FOUND,
            format!("{path} is not in the mirrored tree\n"),
        ),
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

async fn metrics(State((_, r, _)): St) -> Response {
    vouch::metrics::response(&r)
}

/// The mirror's routes; `front` rate-limits `add-checkpoint` and
/// `add-entries` per client address, as the witness does.
pub fn router(
    m: Arc<Mirror>,
    registry: vouch::metrics::Registry,
    front: crate::Front,
    submission_prefix: &str,
    monitoring_prefix: &str,
) -> Router {
    let sub = submission_prefix.trim_end_matches('/');
    let mon = monitoring_prefix.trim_end_matches('/');
    Router::new()
        .route(&format!("{sub}/add-checkpoint"), post(add_checkpoint))
        .route(&format!("{sub}/add-entries"), post(add_entries))
        .route(&format!("{mon}/{{hash}}/{{*path}}"), get(read))
        .route("/metrics", get(metrics))
        .with_state((m, Arc::new(registry), Arc::new(front)))
}
