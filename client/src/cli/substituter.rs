//! `vouch substituter`: an HTTP binary cache in front of upstream caches
//! that serves a narinfo only when the acceptance rule holds for it.
//!
//! - **Enforce** (the default): a rejected narinfo is answered 404 (Nix
//!   treats other errors as a broken cache and stops using it), with the
//!   reason logged and counted.
//! - **Report**: every narinfo the upstream has is served, so only Nix's
//!   own signature checks apply; what enforcing would have decided is
//!   logged and counted with its reason (`vouch_substituter_report_only`),
//!   so a user can see what turning enforcement on would cost.
//!
//! Decisions are cached per narinfo for `decision_cache_secs` (Nix asks for
//! the same narinfo many times). Upstreams are tried in the order of the
//! `Priority` their `nix-cache-info` states (lower first; the order given
//! breaks ties and stands for upstreams that state none).
//! `nix-cache-info` and NARs pass through, NARs streamed.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Deserialize;
use vouch::http::{HttpClient, HttpError};
use vouch::metrics::Registry;
use vouch::verifier::Verifier;
use vouch_spec::nix::NarInfo;
use vouch_spec::tlog_proof::TlogProof;

/// What the substituter does with a rejection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Serve only accepted narinfos.
    #[default]
    Enforce,
    /// Serve everything; log and count what enforcing would refuse.
    Report,
}

/// The `[substituter]` table of the client configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Enforce or report.
    pub mode: Mode,
    /// Seconds a decision is reused for the same narinfo.
    pub decision_cache_secs: u64,
    /// Upstream caches (the `--upstream` flags add to these).
    pub upstreams: Vec<String>,
    /// Address to listen on.
    pub listen: std::net::SocketAddr,
    /// Verify with tlog-proofs published beside each narinfo instead of
    /// asking the log.
    pub bundles: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::Enforce,
            decision_cache_secs: 30,
            upstreams: Vec::new(),
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8082)),
            bundles: false,
        }
    }
}

/// Cached decisions at most (the table is cleared beyond).
const MAX_CACHED: usize = 100_000;

/// How long the upstreams' priorities are trusted before being re-read.
const PRIORITY_TTL: Duration = Duration::from_secs(3600);

/// A decision about one narinfo: the upstream's bytes to serve (with, in
/// report mode, the label of the refusal enforcing would have made), or
/// why not (metric label, reason).
#[derive(Clone, Debug)]
enum Decision {
    Serve(Vec<u8>, Option<String>),
    Refuse(String, String),
}

/// The proxy's state.
pub struct Substituter {
    verifier: Verifier,
    settings: Settings,
    /// Upstream cache URLs, as configured.
    upstreams: Vec<String>,
    http: HttpClient,
    /// Upstreams in priority order, and when that was read.
    ordered: Mutex<Option<(Instant, Vec<String>)>>,
    cache: Mutex<HashMap<String, (Instant, Decision)>>,
    decisions: Family<Vec<(String, String)>, Counter>,
    report_only: Family<Vec<(String, String)>, Counter>,
    registry: Arc<Registry>,
}

/// The `Priority:` of a `nix-cache-info` (Nix's default is 50).
fn priority(info: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix("Priority:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(50)
}

impl Substituter {
    /// A proxy for `upstreams`, fetching through `http`.
    pub fn new(
        verifier: Verifier,
        upstreams: Vec<String>,
        http: HttpClient,
        settings: Settings,
    ) -> Substituter {
        let mut registry = Registry::default();
        let decisions = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "vouch_substituter_decisions",
            "narinfo decisions by outcome or rejection reason",
            decisions.clone(),
        );
        let report_only = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "vouch_substituter_report_only",
            "narinfos served in report mode that enforcing would have refused, by reason",
            report_only.clone(),
        );
        Substituter {
            verifier,
            settings,
            upstreams,
            http,
            ordered: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
            decisions,
            report_only,
            registry: Arc::new(registry),
        }
    }

    fn count(&self, family: &Family<Vec<(String, String)>, Counter>, label: &str) {
        family
            .get_or_create(&vec![("decision".to_string(), label.to_string())])
            .inc();
    }

    /// The upstreams in priority order (re-read hourly).
    fn ordered(&self) -> Vec<String> {
        if let Ok(g) = self.ordered.lock() {
            if let Some((at, list)) = g.as_ref() {
                if at.elapsed() < PRIORITY_TTL {
                    return list.clone();
                }
            }
        }
        let mut ranked: Vec<(u64, usize, String)> = self
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let url = format!("{}/nix-cache-info", u.trim_end_matches('/'));
                let p = match self.http.get(&url, 64 << 10) {
                    Ok(b) => priority(&String::from_utf8_lossy(&b)),
                    Err(e) => {
                        tracing::warn!(error = %e, "upstream's nix-cache-info unreadable; default priority");
                        50
                    }
                };
                (p, i, u.trim_end_matches('/').to_string())
            })
            .collect();
        ranked.sort();
        let list: Vec<String> = ranked.into_iter().map(|(_, _, u)| u).collect();
        if let Ok(mut g) = self.ordered.lock() {
            *g = Some((Instant::now(), list.clone()));
        }
        list
    }

    /// The first upstream's answer for `path` (a 2xx body, at most `max`
    /// bytes): `Ok(None)` if every upstream says 404.
    fn upstream(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>, HttpError> {
        let mut last = None;
        for u in self.ordered() {
            match self.http.get_found(&format!("{u}/{path}"), max) {
                Ok(Some(b)) => return Ok(Some(b)),
                Ok(None) => {}
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// The first upstream that has `path`, as a stream.
    fn upstream_stream(&self, path: &str) -> Option<Box<dyn Read + Send>> {
        self.ordered()
            .into_iter()
            .find_map(|u| self.http.get_reader(&format!("{u}/{path}")).ok())
    }

    fn cached(&self, hash: &str) -> Option<Decision> {
        let ttl = Duration::from_secs(self.settings.decision_cache_secs);
        let g = self.cache.lock().ok()?;
        let (at, d) = g.get(hash)?;
        (at.elapsed() < ttl).then(|| d.clone())
    }

    fn remember(&self, hash: &str, d: &Decision) {
        if self.settings.decision_cache_secs == 0 {
            return;
        }
        if let Ok(mut g) = self.cache.lock() {
            if g.len() >= MAX_CACHED {
                g.clear();
            }
            g.insert(hash.to_string(), (Instant::now(), d.clone()));
        }
    }

    /// Fetches and judges one narinfo (blocking).
    fn decide(&self, hash: &str) -> Decision {
        let refuse = |label: &str, reason: String| Decision::Refuse(label.to_string(), reason);
        let body = match self.upstream(&format!("{hash}.narinfo"), 8 << 20) {
            Ok(Some(b)) => b,
            Ok(None) => {
                return refuse(
                    "not_upstream",
                    format!("{hash}.narinfo: no upstream cache has it"),
                )
            }
            Err(e) => return refuse("upstream_error", e.to_string()),
        };
        let n = match NarInfo::parse(&body) {
            Ok(n) => n,
            Err(e) => return refuse("bad_narinfo", format!("{hash}.narinfo from upstream: {e}")),
        };
        if n.store_path.hash_part() != hash {
            return refuse(
                "bad_narinfo",
                format!("{hash}.narinfo describes {}", n.store_path),
            );
        }
        let decision = if self.settings.bundles {
            let mut proofs = Vec::new();
            for i in 0..64 {
                match self.upstream(&format!("{hash}.vouch/{i}.tlog-proof"), 1 << 20) {
                    Ok(Some(b)) => match TlogProof::parse(&b) {
                        Ok(p) => proofs.push(p),
                        Err(e) => {
                            return refuse(
                                "bad_bundle",
                                format!("{hash}.vouch/{i}.tlog-proof: {e}"),
                            )
                        }
                    },
                    Ok(None) => break,
                    Err(e) => return refuse("upstream_error", e.to_string()),
                }
            }
            self.verifier.verdict_published(&n, &proofs).outcome
        } else {
            self.verifier.check_narinfo(&n)
        };
        match decision {
            Ok(a) => {
                tracing::info!(path = %n.store_path, builders = ?a.builders, tree_size = a.tree_size, "accepted");
                Decision::Serve(body, None)
            }
            Err(e) => {
                let label = e.label();
                let reason = format!("{}: {e}", n.store_path);
                if self.settings.mode == Mode::Report {
                    // Served anyway; Nix's own signature checks decide.
                    tracing::warn!(mode = "report", decision = label, reason = %reason, "would reject; serving it (report mode)");
                    return Decision::Serve(body, Some(label.to_string()));
                }
                Decision::Refuse(label.to_string(), reason)
            }
        }
    }
}

type St = State<Arc<Substituter>>;

fn not_found(msg: String) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg,
    )
        .into_response()
}

async fn cache_info(State(s): St) -> Response {
    let r = tokio::task::spawn_blocking(move || {
        s.upstream("nix-cache-info", 64 << 10)
            .ok()
            .flatten()
            .and_then(|b| String::from_utf8(b).ok())
    })
    .await
    .ok()
    .flatten();
    match r {
        Some(text) => ([(header::CONTENT_TYPE, "text/x-nix-cache-info")], text).into_response(),
        None => (
            StatusCode::BAD_GATEWAY,
            "no upstream cache answered nix-cache-info\n",
        )
            .into_response(),
    }
}

async fn file(State(s): St, Path(name): Path<String>) -> Response {
    if let Some(hash) = name.strip_suffix(".narinfo") {
        return narinfo(s, hash.to_string()).await;
    }
    not_found(format!("{name}: not a narinfo\n"))
}

async fn narinfo(s: Arc<Substituter>, hash: String) -> Response {
    if !vouch_spec::nix::store_path::valid_hash_part(&hash) {
        return not_found(format!("{hash}: not a store path hash\n"));
    }
    let decision = match s.cached(&hash) {
        Some(d) => d,
        None => {
            let s2 = s.clone();
            let h2 = hash.clone();
            match tokio::task::spawn_blocking(move || s2.decide(&h2)).await {
                Ok(d) => {
                    // Upstream failures are not remembered: the next ask retries.
                    if !matches!(&d, Decision::Refuse(l, _) if l == "upstream_error") {
                        s.remember(&hash, &d);
                    }
                    match &d {
                        Decision::Serve(_, None) => s.count(&s.decisions, "accepted"),
                        Decision::Serve(_, Some(label)) => {
                            s.count(&s.decisions, label);
                            s.count(&s.report_only, label);
                        }
                        Decision::Refuse(label, reason) => {
                            s.count(&s.decisions, label);
                            if label != "not_upstream" {
                                tracing::warn!(reason = %reason, "rejected");
                            }
                        }
                    }
                    d
                }
                Err(e) => {
                    return (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("internal error: {e}\n"),
                    )
                        .into_response()
                }
            }
        }
    };
    match decision {
        Decision::Serve(body, _) => {
            ([(header::CONTENT_TYPE, "text/x-nix-narinfo")], body).into_response()
        }
        Decision::Refuse(_, reason) => not_found(format!("{reason}\n")),
    }
}

/// A NAR path a narinfo's `URL:` may name below `nar/`: segments of
/// `[A-Za-z0-9._+-]`, none `.` or `..`, so a request cannot walk the
/// upstream's other paths.
fn valid_nar_path(rest: &str) -> bool {
    !rest.is_empty()
        && rest.len() <= 256
        && rest.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
        })
}

async fn nar(State(s): St, Path(rest): Path<String>) -> Response {
    if !valid_nar_path(&rest) {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("nar/{rest:?}: not a NAR file name\n"),
        )
            .into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let path = format!("nar/{rest}");
    let (ok_tx, ok_rx) = tokio::sync::oneshot::channel::<bool>();
    tokio::task::spawn_blocking(move || {
        let Some(mut r) = s.upstream_stream(&path) else {
            let _ = ok_tx.send(false);
            return;
        };
        let _ = ok_tx.send(true);
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    if !ok_rx.await.unwrap_or(false) {
        return not_found(format!("nar/{rest}: no upstream cache has it\n"));
    }
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    (
        [(header::CONTENT_TYPE, "application/x-nix-nar")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn metrics(State(s): St) -> Response {
    vouch::metrics::response(&s.registry)
}

/// The proxy's routes.
pub fn router(s: Arc<Substituter>) -> Router {
    Router::new()
        .route("/nix-cache-info", get(cache_info))
        .route("/metrics", get(metrics))
        .route("/nar/{*rest}", get(nar))
        .route("/{name}", get(file))
        .with_state(s)
}

#[cfg(test)]
mod tests {
    use super::{priority, valid_nar_path};

    #[test]
    fn nar_paths_cannot_leave_nar() {
        for ok in [
            "1ab2cd.nar.xz",
            "0sx6ws8hjrpw8vrbmfl6hsss5vdyn7ck1gfb4bk7hyc8qx11jw6w.nar",
            "x/y.nar.zst",
        ] {
            assert!(valid_nar_path(ok), "{ok}");
        }
        for bad in [
            "",
            "..",
            "../nix-cache-info",
            "a/../../b",
            "a//b",
            "a b",
            "%2e",
            "a\\b",
        ] {
            assert!(!valid_nar_path(bad), "{bad}");
        }
    }

    #[test]
    fn priorities_come_from_nix_cache_info() {
        assert_eq!(priority("StoreDir: /nix/store\nPriority: 40\n"), 40);
        assert_eq!(priority("StoreDir: /nix/store\n"), 50);
        assert_eq!(priority("Priority: x\n"), 50);
    }
}
