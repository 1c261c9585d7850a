//! Prometheus exposition for every Vouch server (the log, the witness, the
//! substituter, the monitor): metrics live in a `prometheus-client`
//! [`Registry`] and are served at `GET /metrics` by the server's own
//! serving loop ([`crate::serve`]), in the OpenMetrics text format.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
pub use prometheus_client;
pub use prometheus_client::registry::Registry;

/// The exposition's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry's metrics in the text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// A `GET /metrics` route serving `registry`.
pub fn route<S: Clone + Send + Sync + 'static>(
    registry: Arc<Registry>,
) -> axum::routing::MethodRouter<S> {
    axum::routing::get(move || {
        let registry = registry.clone();
        async move { response(&registry) }
    })
}

/// Serves `registry` at `GET /metrics` on `addr` from a thread of its own
/// (for programs without a server of their own: the monitor, the
/// rebuilder).
pub fn serve_in_background(
    addr: std::net::SocketAddr,
    registry: Registry,
) -> std::io::Result<std::net::SocketAddr> {
    crate::serve::spawn(
        addr,
        axum::Router::new().route("/metrics", route(Arc::new(registry))),
    )
}

/// The registry as an HTTP response.
pub fn response(registry: &Registry) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(registry)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;

    #[test]
    fn counters_render_with_labels_and_total() {
        let mut r = Registry::default();
        let f = Family::<Vec<(String, String)>, Counter>::default();
        r.register("vouch_test_decisions", "Decisions.", f.clone());
        f.get_or_create(&vec![("decision".into(), "log_fork".into())])
            .inc();
        let text = render(&r);
        assert!(
            text.contains("vouch_test_decisions_total{decision=\"log_fork\"} 1"),
            "{text}"
        );
    }
}
