//! The monitor's web view: an overview of the log (size, ingest rate, the
//! latest checkpoint and who cosigned it how long ago), a search by store
//! path or hash part, a page per path, per builder and per disagreement,
//! and plots (attestations over time; confirmed and unconfirmed per
//! builder). Every page is HTML rendered on the server (`maud`: templates
//! checked at compile time, every interpolation escaped, since store path
//! names and key names are untrusted input), works without JavaScript,
//! loads nothing from elsewhere (a strict Content-Security-Policy), and has
//! a JSON twin under `/api/`.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use super::db::MonitorDb;
use super::report::{self, key_name, AttestationReport, PathReport};
use super::Status;

/// What the pages read.
pub struct Web {
    /// The database.
    pub db: Arc<MonitorDb>,
    /// The log's origin.
    pub origin: String,
    /// The monitor's progress.
    pub status: Arc<Mutex<Status>>,
    /// Metrics, served at `/metrics`.
    pub registry: Arc<vouch::metrics::Registry>,
}

type St = State<Arc<Web>>;

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}\
header{background:#23395d;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center;flex-wrap:wrap}\
header a{color:#fff;text-decoration:none;font-weight:600}main{padding:1em 1.2em;max-width:72em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border-bottom:1px solid #ddd;padding:.3em .7em;text-align:left;vertical-align:top}\
th{background:#eef1f6}code,pre{font-family:ui-monospace,monospace;font-size:.9em;word-break:break-all}\
pre{background:#fff;border:1px solid #ddd;padding:.6em;white-space:pre-wrap}.bad{color:#b00020;font-weight:600}\
.good{color:#1b7a2f}.muted{color:#666}form{display:inline}input[type=search]{width:22em;padding:.2em}\
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{background:#fff;border:1px solid #ddd;padding:.6em 1em;min-width:10em}\
.card b{display:block;font-size:1.4em}img{max-width:100%;background:#fff;border:1px solid #ddd}";

fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn page(title: &str, body: Markup) -> Response {
    let m = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Vouch monitor" }
                link rel="stylesheet" href="/style.css";
            }
            body {
                header {
                    a href="/" { "Vouch monitor" }
                    a href="/disagreements" { "Disagreements" }
                    a href="/builders" { "Builders" }
                    form action="/search" method="get" {
                        input type="search" name="q" placeholder="store path or hash part" aria-label="search";
                        " "
                        button type="submit" { "Search" }
                    }
                }
                main { (body) }
            }
        }
    };
    secure(
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            m.into_string(),
        )
            .into_response(),
    )
}

fn error(status: StatusCode, msg: &str) -> Response {
    let mut r = page("Error", html! { h1 { "Error" } p { (msg) } });
    *r.status_mut() = status;
    r
}

fn json<T: serde::Serialize>(v: T) -> Response {
    secure(Json(v).into_response())
}

/// Percent-encodes a path segment (key names and base64 hold `/`, `+`, `=`).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn ago(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s ago"),
        s if s < 7200 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

fn db_error(e: super::db::DbError) -> Response {
    tracing::error!(error = %e, "web view");
    error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
}

fn status(w: &Web) -> Status {
    w.status.lock().map(|s| s.clone()).unwrap_or_default()
}

async fn overview(State(w): St) -> Response {
    let o = match report::overview(&w.db, &w.origin, &status(&w), crate::now()) {
        Ok(o) => o,
        Err(e) => return db_error(e),
    };
    let size = o.checkpoint.lines().nth(1).unwrap_or("0").to_string();
    page(
        "Overview",
        html! {
            h1 { "Log " code { (o.origin) } }
            div class="cards" {
                div class="card" { "entries read" b { (o.entries) } }
                div class="card" { "checkpoint size" b { (size) } }
                div class="card" { "ingest" b { (format!("{:.1}/s", o.ingest_per_sec)) } }
                div class="card" { "disagreements" b class=(if o.disagreements > 0 { "bad" } else { "good" }) { (o.disagreements) } }
                div class="card" { "retired keys used" b class=(if o.violations.is_empty() { "good" } else { "bad" }) { (o.violations.len()) } }
            }
            @if let Some(e) = &o.last_error { p class="bad" { "Last round failed: " (e) } }
            @if !o.violations.is_empty() {
                h2 class="bad" { "Entries by retired keys (the log appended what it must refuse)" }
                (violations_table(&o.violations))
            }
            @if !o.transitions.is_empty() {
                h2 { "Key transitions" }
                (transitions_table(&o.transitions))
            }
            h2 { "Latest checkpoint" }
            pre { (o.checkpoint) }
            @if o.cosigners.is_empty() {
                p class="muted" { "No witness cosigned it." }
            } @else {
                table { tr { th { "witness" } th { "cosigned" } }
                    @for c in &o.cosigners { tr { td { code { (c.name) } } td { (ago(c.age_secs)) } } }
                }
            }
            h2 { "Attestations over time" }
            img src="/plot/hours.svg" alt="attestations read per hour";
            h2 { "Confirmed and unconfirmed per builder" }
            img src="/plot/builders.svg" alt="confirmed and unconfirmed attestations per builder";
            (builders_table(&o.builders))
        },
    )
}

fn transitions_table(t: &[super::db::TransitionRecord]) -> Markup {
    html! {
        table id="transitions" {
            tr { th { "index (cutoff)" } th { "old key" } th { "new key" } }
            @for r in t {
                tr {
                    td { (r.index) }
                    td { a href={ "/builder/" (seg(&r.old)) } { code { (report::key_name(&r.old)) } } }
                    td {
                        @match &r.new {
                            Some(n) => a href={ "/builder/" (seg(n)) } { code { (report::key_name(n)) } },
                            None => span class="muted" { "retired (no successor)" },
                        }
                    }
                }
            }
        }
    }
}

fn violations_table(v: &[super::db::Violation]) -> Markup {
    html! {
        table id="violations" {
            tr { th { "index" } th { "key" } th { "cutoff" } th { "what" } }
            @for r in v {
                tr class="bad" {
                    td { (r.index) }
                    td { a href={ "/builder/" (seg(&r.key)) } { code { (report::key_name(&r.key)) } } }
                    td { (r.cutoff) }
                    td {
                        (r.what)
                        @if let Some(p) = &r.path { " of " a href={ "/path/" (seg(super::db::base_name(p))) } { code { (p) } } }
                    }
                }
            }
        }
    }
}

fn builders_table(b: &[report::BuilderReport]) -> Markup {
    html! {
        table {
            tr { th { "builder" } th { "attestations" } th { "confirmed" } th { "disagreeing" } th { "unconfirmed past grace" } th { "last index" } }
            @for r in b {
                tr {
                    td { a href={ "/builder/" (seg(&r.key)) } { code { (r.name) } } }
                    td { (r.stats.attestations) }
                    td class="good" { (r.stats.confirmed) }
                    td class=(if r.stats.disagreeing > 0 { "bad" } else { "" }) { (r.stats.disagreeing) }
                    td class=(if r.stats.overdue > 0 { "bad" } else { "" }) { (r.stats.overdue) }
                    td { (r.stats.last_index) }
                }
            }
        }
    }
}

async fn builders_page(State(w): St) -> Response {
    match report::builders(&w.db) {
        Ok(b) => page("Builders", html! { h1 { "Builders" } (builders_table(&b)) }),
        Err(e) => db_error(e),
    }
}

fn attestations_table(atts: &[AttestationReport]) -> Markup {
    html! {
        table {
            tr { th { "builder" } th { "NAR hash" } th { "NAR size" } th { "index" } th { "status" } }
            @for a in atts {
                tr {
                    td { a href={ "/builder/" (seg(&a.key)) } { code { (a.name) } } }
                    td { code class=(if a.disagrees { "bad" } else { "" }) { (a.nar_hash) } }
                    td { (a.nar_size) }
                    td { (a.index) }
                    td {
                        @if a.disagrees { span class="bad" { "disagrees" } " " }
                        @if a.confirmed { span class="good" { "confirmed" } }
                        @else if a.unconfirmed_past_grace { span class="bad" { "unconfirmed past grace" } }
                        @else { span class="muted" { "unconfirmed" } }
                    }
                }
            }
        }
    }
}

fn path_markup(r: &PathReport) -> Markup {
    html! {
        h1 { "Path" }
        p { code id="path" { (r.path) } }
        @if r.disagreement {
            p class="bad" id="verdict" { "Builders disagree on this path." }
        } @else {
            p class="good" id="verdict" { "No disagreement." }
        }
        (attestations_table(&r.attestations))
        p class="muted" { "JSON: " a href={ "/api/path/" (seg(super::db::base_name(&r.path))) } { "this page" } }
    }
}

async fn path_page(State(w): St, Path(base): Path<String>) -> Response {
    match w.db.path(&base) {
        Ok(Some(r)) => {
            let r = PathReport::from(r);
            page(&r.path.clone(), path_markup(&r))
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            &format!("no attestation of {base} was read"),
        ),
        Err(e) => db_error(e),
    }
}

async fn path_api(State(w): St, Path(base): Path<String>) -> Response {
    match w.db.path(&base) {
        Ok(Some(r)) => json(PathReport::from(r)),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "no such path"})),
        )
            .into_response(),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

async fn search_page(State(w): St, Query(q): Query<SearchQuery>) -> Response {
    let results = match report::search(&w.db, &q.q, 50) {
        Ok(r) => r,
        Err(e) => return db_error(e),
    };
    if results.len() == 1 {
        let r = &results[0];
        return page(&r.path.clone(), path_markup(r));
    }
    page(
        "Search",
        html! {
            h1 { "Search" }
            p { "Paths matching " code { (q.q) } ": " (results.len()) }
            ul {
                @for r in &results {
                    li { a href={ "/path/" (seg(super::db::base_name(&r.path))) } { code { (r.path) } }
                        @if r.disagreement { " " span class="bad" { "disagreement" } } }
                }
            }
        },
    )
}

async fn search_api(State(w): St, Query(q): Query<SearchQuery>) -> Response {
    match report::search(&w.db, &q.q, 50) {
        Ok(r) => json(r),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    after: u64,
}

async fn builder_page(State(w): St, Path(key): Path<String>, Query(p): Query<Page>) -> Response {
    let r = match report::builder(&w.db, &key, p.after, 100) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                &format!("no attestation by {key} was read"),
            )
        }
        Err(e) => return db_error(e),
    };
    let s = &r.stats;
    page(
        &r.name.clone(),
        html! {
            h1 { "Builder " code id="builder" { (r.name) } }
            p { code { (r.key) } }
            div class="cards" {
                div class="card" { "attestations" b { (s.attestations) } }
                div class="card" { "independently confirmed" b class="good" { (s.confirmed) } }
                div class="card" { "disagreeing" b class=(if s.disagreeing > 0 { "bad" } else { "" }) { (s.disagreeing) } }
                div class="card" { "unconfirmed past grace" b class=(if s.overdue > 0 { "bad" } else { "" }) { (s.overdue) } }
            }
            p { "First seen at index " (s.first_index) ", last at index " (s.last_index) "." }
            @if !r.transitions.is_empty() {
                h2 { "Transitions" }
                (transitions_table(&r.transitions))
            }
            @if !r.violations.is_empty() {
                h2 class="bad" { "Entries at or after its cutoff (the log must refuse these)" }
                (violations_table(&r.violations))
            }
            h2 { "What it attested" }
            table {
                tr { th { "index" } th { "path" } }
                @for (i, b) in &r.attested {
                    tr { td { (i) } td { a href={ "/path/" (seg(b)) } { code { (b) } } } }
                }
            }
            @if let Some(n) = r.next { p { a href={ "/builder/" (seg(&r.key)) "?after=" (n) } { "more" } } }
        },
    )
}

async fn builder_api(State(w): St, Path(key): Path<String>, Query(p): Query<Page>) -> Response {
    match report::builder(&w.db, &key, p.after, 1000) {
        Ok(Some(r)) => json(r),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "no such builder"})),
        )
            .into_response(),
        Err(e) => db_error(e),
    }
}

async fn disagreements_page(State(w): St) -> Response {
    let d = match report::disagreements(&w.db, "", 500) {
        Ok(d) => d,
        Err(e) => return db_error(e),
    };
    page(
        "Disagreements",
        html! {
            h1 { "Disagreements" }
            @if d.is_empty() { p class="good" { "None." } }
            table {
                tr { th { "path" } th { "NARs" } th { "found at index" } }
                @for x in &d {
                    tr {
                        td { a href={ "/disagreement/" (seg(super::db::base_name(&x.path))) } { code { (x.path) } } }
                        td { (x.attestations.iter().map(|a| a.nar_hash.as_str()).collect::<std::collections::BTreeSet<_>>().len()) }
                        td { (x.index) }
                    }
                }
            }
        },
    )
}

async fn disagreement_page(State(w): St, Path(base): Path<String>) -> Response {
    let d = match report::disagreement(&w.db, &base) {
        Ok(d) => d,
        Err(e) => return db_error(e),
    };
    match d {
        Some(x) => page(
            &x.path.clone(),
            html! {
                h1 { "Disagreement" }
                p { code id="path" { (x.path) } }
                p class="bad" { "Builders attested different NARs for this path (found at index " (x.index) ")." }
                (attestations_table(&x.attestations))
            },
        ),
        None => error(StatusCode::NOT_FOUND, &format!("no disagreement on {base}")),
    }
}

async fn disagreements_api(State(w): St) -> Response {
    match report::disagreements(&w.db, "", 10_000) {
        Ok(d) => json(d),
        Err(e) => db_error(e),
    }
}

async fn overview_api(State(w): St) -> Response {
    match report::overview(&w.db, &w.origin, &status(&w), crate::now()) {
        Ok(o) => json(o),
        Err(e) => db_error(e),
    }
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

fn svg(m: Markup) -> Response {
    secure(([(header::CONTENT_TYPE, "image/svg+xml")], m.into_string()).into_response())
}

/// Bars of attestations read per hour.
async fn plot_hours(State(w): St) -> Response {
    let hours = w.db.hours().unwrap_or_default();
    let (width, height) = (720.0, 200.0);
    let max = hours.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1) as f64;
    let bw = ((width - 60.0) / hours.len().max(1) as f64).min(24.0);
    svg(html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(width) height=(height + 30.0) viewBox={ "0 0 " (width) " " (height + 30.0) } {
            text x="4" y="14" font-size="12" { "max " (max) " per hour" }
            @for (i, (h, n)) in hours.iter().enumerate() {
                @let bh = (*n as f64 / max) * (height - 20.0);
                rect x=(50.0 + i as f64 * bw) y=(height - bh) width=((bw - 2.0).max(1.0)) height=(bh) fill="#23395d" {
                    title { (n) " attestations, hour " (h) }
                }
            }
            text x="50" y=(height + 20.0) font-size="12" { "hours (oldest left)" }
        }
    })
}

/// Confirmed and unconfirmed attestations per builder (stacked bars).
async fn plot_builders(State(w): St) -> Response {
    let mut b = report::builders(&w.db).unwrap_or_default();
    b.sort_by_key(|r| std::cmp::Reverse(r.stats.attestations));
    b.truncate(20);
    let row = 22.0;
    let (width, height) = (720.0, 30.0 + row * b.len().max(1) as f64);
    let max = b
        .iter()
        .map(|r| r.stats.attestations)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let scale = (width - 260.0) / max;
    svg(html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(width) height=(height) viewBox={ "0 0 " (width) " " (height) } {
            rect x="250" y="4" width="10" height="10" fill="#1b7a2f" {}
            text x="264" y="13" font-size="11" { "confirmed" }
            rect x="340" y="4" width="10" height="10" fill="#c9a227" {}
            text x="354" y="13" font-size="11" { "unconfirmed" }
            @for (i, r) in b.iter().enumerate() {
                @let y = 24.0 + i as f64 * row;
                @let c = r.stats.confirmed as f64 * scale;
                @let u = (r.stats.attestations - r.stats.confirmed.min(r.stats.attestations)) as f64 * scale;
                text x="4" y=(y + 13.0) font-size="11" { (key_name(&r.key)) }
                rect x="250" y=(y) width=(c) height=(row - 6.0) fill="#1b7a2f" { title { (r.stats.confirmed) " confirmed" } }
                rect x=(250.0 + c) y=(y) width=(u) height=(row - 6.0) fill="#c9a227" { title { (r.stats.attestations - r.stats.confirmed.min(r.stats.attestations)) " unconfirmed" } }
            }
        }
    })
}

async fn metrics(State(w): St) -> Response {
    vouch::metrics::response(&w.registry)
}

/// The web view's routes.
pub fn router(w: Arc<Web>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/builders", get(builders_page))
        .route("/search", get(search_page))
        .route("/path/{base}", get(path_page))
        .route("/builder/{key}", get(builder_page))
        .route("/disagreements", get(disagreements_page))
        .route("/disagreement/{base}", get(disagreement_page))
        .route("/api/overview", get(overview_api))
        .route("/api/search", get(search_api))
        .route("/api/path/{base}", get(path_api))
        .route("/api/builder/{key}", get(builder_api))
        .route("/api/disagreements", get(disagreements_api))
        .route("/plot/hours.svg", get(plot_hours))
        .route("/plot/builders.svg", get(plot_builders))
        .route("/style.css", get(style))
        .route("/metrics", get(metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page") })
        .with_state(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_names_is_escaped_and_segments_encoded() {
        let r = PathReport {
            path: "/nix/store/00000000000000000000000000000000-x".into(),
            disagreement: false,
            attestations: vec![AttestationReport {
                key: "<script>alert(1)</script>:AAAA".into(),
                name: "<script>alert(1)</script>".into(),
                nar_hash: "sha256:<b>".into(),
                nar_size: 1,
                index: 0,
                confirmed: false,
                disagrees: false,
                unconfirmed_past_grace: false,
            }],
        };
        let html = path_markup(&r).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert_eq!(seg("a/b+c= <"), "a%2Fb%2Bc%3D%20%3C");
    }
}
