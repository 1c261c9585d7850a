//! `vouch substituter`: an HTTP binary cache in front of upstream caches
//! that serves a narinfo only when the acceptance rule holds for it.
//! Rejections are 404 (Nix treats other errors as a broken cache and stops
//! using it) and are logged with their reason; `nix-cache-info` and NARs
//! pass through, streamed.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use vouch_spec::nix::NarInfo;
use vouch_spec::tlog_proof::TlogProof;

use crate::verifier::Verifier;

/// The proxy's state.
pub struct Substituter {
    /// The verifier.
    pub verifier: Verifier,
    /// Upstream cache URLs, tried in order.
    pub upstreams: Vec<String>,
    /// Verify with tlog-proofs published beside the narinfo, not the log.
    pub bundles: bool,
    agent: ureq::Agent,
    decisions: Mutex<BTreeMap<String, u64>>,
}

impl Substituter {
    /// A proxy for `upstreams`.
    pub fn new(verifier: Verifier, upstreams: Vec<String>) -> Substituter {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(std::time::Duration::from_secs(10))
            .build();
        Substituter {
            verifier,
            upstreams,
            bundles: false,
            agent,
            decisions: Mutex::new(BTreeMap::new()),
        }
    }

    fn count(&self, label: &str) {
        if let Ok(mut d) = self.decisions.lock() {
            *d.entry(label.to_string()).or_default() += 1;
        }
    }

    /// First upstream answering 200 for `path`.
    fn upstream(&self, path: &str) -> Option<ureq::Response> {
        self.upstreams.iter().find_map(|u| {
            self.agent
                .get(&format!("{}/{path}", u.trim_end_matches('/')))
                .call()
                .ok()
        })
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
        s.upstream("nix-cache-info")
            .and_then(|r| r.into_string().ok())
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
    let s2 = s.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, (String, String)> {
        let resp = s2.upstream(&format!("{hash}.narinfo")).ok_or_else(|| ("not_upstream".to_string(), format!("{hash}.narinfo: no upstream cache has it")))?;
        let mut body = Vec::new();
        resp.into_reader().take(8 << 20).read_to_end(&mut body).map_err(|e| ("upstream_error".to_string(), e.to_string()))?;
        let n = NarInfo::parse(&body).map_err(|e| ("bad_narinfo".to_string(), format!("{hash}.narinfo from upstream: {e}")))?;
        if n.store_path.hash_part() != hash {
            return Err(("bad_narinfo".into(), format!("{hash}.narinfo describes {}", n.store_path)));
        }
        let decision = if s2.bundles {
            let mut proofs = Vec::new();
            for i in 0..64 {
                let Some(r) = s2.upstream(&format!("{hash}.vouch/{i}.tlog-proof")) else { break };
                let mut b = Vec::new();
                r.into_reader().take(1 << 20).read_to_end(&mut b).map_err(|e| ("upstream_error".to_string(), e.to_string()))?;
                proofs.push(TlogProof::parse(&b).map_err(|e| ("bad_bundle".to_string(), format!("{hash}.vouch/{i}.tlog-proof: {e}")))?);
            }
            s2.verifier.check_narinfo_offline(&n, &proofs)
        } else {
            s2.verifier.check_narinfo(&n)
        };
        match decision {
            Ok(a) => {
                tracing::info!(path = %n.store_path, builders = ?a.builders, tree_size = a.tree_size, "accepted");
                Ok(body)
            }
            Err(e) => Err((e.label().to_string(), e.to_string())),
        }
    })
    .await;
    match result {
        Ok(Ok(body)) => {
            s.count("accepted");
            ([(header::CONTENT_TYPE, "text/x-nix-narinfo")], body).into_response()
        }
        Ok(Err((label, reason))) => {
            s.count(&label);
            if label != "not_upstream" {
                tracing::warn!(reason = %reason, "rejected");
            }
            not_found(format!("{reason}\n"))
        }
        Err(e) => not_found(format!("internal error: {e}\n")),
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
        let Some(resp) = s.upstream(&path) else {
            let _ = ok_tx.send(false);
            return;
        };
        let _ = ok_tx.send(true);
        let mut r = resp.into_reader();
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
    let mut out = String::from("# HELP vouch_substituter_decisions_total narinfo decisions by outcome or rejection reason.\n# TYPE vouch_substituter_decisions_total counter\n");
    if let Ok(d) = s.decisions.lock() {
        for (k, v) in d.iter() {
            out.push_str(&format!(
                "vouch_substituter_decisions_total{{decision=\"{k}\"}} {v}\n"
            ));
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
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
    use super::valid_nar_path;

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
}
