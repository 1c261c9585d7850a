//! The one HTTP client every outgoing request of every Vouch party goes
//! through: the substituter to its upstreams and the log, the sender,
//! backfill, the CLI, the monitor, the witness's pull mode, and the log's
//! requests to its witnesses.
//!
//! - **TLS** through rustls, with the trust roots found the way Nix finds
//!   them: the PEM file named by `NIX_SSL_CERT_FILE`, else the one named by
//!   `SSL_CERT_FILE`, else the system store (falling back to Mozilla's
//!   roots, built in, when the system has none).
//! - **Proxies** from the usual environment: `https_proxy` for `https://`
//!   URLs, `http_proxy` for `http://` ones (either in capitals too), else
//!   `all_proxy`; `no_proxy` lists hosts reached directly, as curl reads it
//!   (`*`, exact names and addresses, and domain suffixes with or without a
//!   leading dot).
//! - **Timeouts** for connecting and for each read, so no caller can hang on
//!   a silent peer.
//! - **`file://` URLs** are read from disk, so a binary cache made by
//!   `nix copy --to file://…` is a cache like any other; a missing file is
//!   a 404.
//!
//! Every error names the URL and what failed ([`HttpError`]), in words a
//! user can act on: an unknown certificate issuer, a certificate for
//! another host, an expired one, plain HTTP spoken to a TLS port and TLS to
//! a plain one.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
use vouch_spec::refused::Refused;

/// Timeouts and identity of the client.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Time allowed to resolve and connect (TLS handshake included).
    pub connect_timeout: Duration,
    /// Time allowed for the response headers, and for the whole body of a
    /// bounded fetch ([`HttpClient::get`], [`HttpClient::post`]).
    pub read_timeout: Duration,
    /// Time allowed for a whole streamed body ([`HttpClient::get_reader`],
    /// NARs), which may be large.
    pub stream_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            stream_timeout: Duration::from_secs(3600),
        }
    }
}

/// What went wrong with a TLS connection, in the user's terms.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlsProblem {
    /// The chain does not end in a trusted root.
    #[error("the server's certificate is issued by an unknown authority (trust roots: NIX_SSL_CERT_FILE, else SSL_CERT_FILE, else the system store)")]
    UnknownIssuer,
    /// The certificate names other hosts.
    #[error("the server's certificate is for another host name")]
    WrongHost,
    /// The certificate has expired (or is not valid yet).
    #[error("the server's certificate has expired or is not yet valid")]
    Expired,
    /// A TLS client was answered in plain text.
    #[error("the server does not speak TLS on this port (is it plain http://?)")]
    NotTls,
    /// A plain-HTTP request reached a port that expects TLS.
    #[error("the server expects TLS on this port: use https://")]
    PlainToTlsPort,
    /// Anything else rustls refused.
    #[error("{0}")]
    Other(String),
}

/// Why a request failed. Each names the URL once.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The server answered with an error status.
    #[error("{url}: HTTP {status}{}", reason_suffix(.reason))]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The first line of the body (control characters removed).
        reason: String,
        /// `Retry-After` in seconds, when given.
        retry_after: Option<u64>,
        /// `Vouch-Refused`: the statement of a submission the log refused
        /// (`spec/PROTOCOL.md` §5.1), when given and well formed.
        refused: Option<Refused>,
    },
    /// TLS failed.
    #[error("{url}: {problem}")]
    Tls {
        /// The URL.
        url: String,
        /// What failed.
        problem: TlsProblem,
    },
    /// No connection could be made.
    #[error("{url}: cannot connect: {msg}")]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        msg: String,
    },
    /// A timeout expired.
    #[error("{url}: timed out {what}")]
    Timeout {
        /// The URL.
        url: String,
        /// While doing what.
        what: &'static str,
    },
    /// The exchange broke off or was not HTTP.
    #[error("{url}: {msg}")]
    Transfer {
        /// The URL.
        url: String,
        /// What happened.
        msg: String,
    },
    /// The body was larger than the caller allows.
    #[error("{url}: the response is larger than {max} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        max: u64,
    },
    /// The URL cannot be fetched by this client.
    #[error("{url}: {msg}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why not.
        msg: String,
    },
    /// A `file://` URL could not be read.
    #[error("{url}: {err}")]
    File {
        /// The URL.
        url: String,
        /// The error.
        err: std::io::Error,
    },
    /// The trust roots could not be loaded.
    #[error("{0}")]
    Roots(String),
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

impl HttpError {
    /// The status of a [`HttpError::Status`], or of a missing file (404).
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            HttpError::File { err, .. } if err.kind() == std::io::ErrorKind::NotFound => Some(404),
            _ => None,
        }
    }

    /// Whether the resource is simply not there (404 or 410).
    pub fn is_not_found(&self) -> bool {
        matches!(self.status(), Some(404 | 410))
    }

    /// Whether trying again later may succeed: connection failures,
    /// timeouts, broken transfers, 408, 429 and 5xx. TLS and URL problems,
    /// other 4xx and local file errors (other than a missing file, which
    /// is a 404) are not.
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Status { status, .. } => matches!(status, 408 | 425 | 429 | 500..=599),
            HttpError::Connect { .. } | HttpError::Timeout { .. } | HttpError::Transfer { .. } => {
                true
            }
            _ => false,
        }
    }

    /// The statement of a submission the log refused (`Vouch-Refused`).
    pub fn refused(&self) -> Option<Refused> {
        match self {
            HttpError::Status { refused, .. } => *refused,
            _ => None,
        }
    }

    /// `Retry-After` of an error status, if given.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            HttpError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The URL the error is about.
    pub fn url(&self) -> &str {
        match self {
            HttpError::Status { url, .. }
            | HttpError::Tls { url, .. }
            | HttpError::Connect { url, .. }
            | HttpError::Timeout { url, .. }
            | HttpError::Transfer { url, .. }
            | HttpError::TooLarge { url, .. }
            | HttpError::BadUrl { url, .. }
            | HttpError::File { url, .. } => url,
            HttpError::Roots(_) => "",
        }
    }
}

/// Where the trust roots came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootsSource {
    /// A PEM file named by this environment variable.
    File {
        /// `NIX_SSL_CERT_FILE` or `SSL_CERT_FILE`.
        var: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The operating system's store.
    System,
    /// Mozilla's roots built into the binary (the system store was empty).
    BuiltIn,
}

/// Hosts to reach without a proxy, as `no_proxy` lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    /// Lowercase names or addresses, without a leading dot: each matches
    /// itself and, for names, every subdomain.
    entries: Vec<String>,
}

impl NoProxy {
    /// Parses a `no_proxy` value: comma- or space-separated entries; `*`
    /// alone means every host; a leading `.` or `*.` is ignored; ports and
    /// IPv6 brackets are dropped.
    pub fn parse(value: &str) -> NoProxy {
        let mut np = NoProxy::default();
        for raw in value
            .split([',', ' '])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            if raw == "*" {
                np.all = true;
                continue;
            }
            let e = raw.trim_start_matches("*.").trim_start_matches('.');
            let e = if let Some(v6) = e.strip_prefix('[') {
                v6.split(']').next().unwrap_or_default()
            } else if e.matches(':').count() == 1 {
                e.split(':').next().unwrap_or_default()
            } else {
                e
            };
            if !e.is_empty() {
                np.entries.push(e.to_ascii_lowercase());
            }
        }
        np
    }

    /// Whether `host` (a name or an address, without port) is reached
    /// directly.
    pub fn matches(&self, host: &str) -> bool {
        if self.all {
            return true;
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        self.entries.iter().any(|e| {
            host == *e
                || (host.len() > e.len()
                    && host.ends_with(e.as_str())
                    && host.as_bytes()[host.len() - e.len() - 1] == b'.')
        })
    }
}

/// The proxy settings of the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    /// For `http://` URLs.
    pub http: Option<String>,
    /// For `https://` URLs.
    pub https: Option<String>,
    /// Hosts reached directly.
    pub no_proxy: NoProxy,
}

impl ProxyEnv {
    /// Reads `http_proxy`, `https_proxy`, `all_proxy` and `no_proxy`
    /// (lowercase first, then capitals); empty values count as unset.
    pub fn from_env() -> ProxyEnv {
        ProxyEnv::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`ProxyEnv::from_env`] over any variable lookup.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> ProxyEnv {
        let var = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| get(n).filter(|v| !v.trim().is_empty()))
        };
        let all = var(&["all_proxy", "ALL_PROXY"]);
        ProxyEnv {
            http: var(&["http_proxy", "HTTP_PROXY"]).or_else(|| all.clone()),
            https: var(&["https_proxy", "HTTPS_PROXY"]).or(all),
            no_proxy: NoProxy::parse(&var(&["no_proxy", "NO_PROXY"]).unwrap_or_default()),
        }
    }
}

/// The scheme and host of a URL, as far as choosing a proxy needs them.
fn scheme_host(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit('@').next()?;
    let host = if hostport.starts_with('[') {
        hostport.split(']').next().map(|h| &h[1..])?
    } else {
        hostport.split(':').next()?
    };
    Some((scheme, host))
}

/// The shared client. Cloning is cheap and shares connections.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    stream_timeout: Duration,
    direct: ureq::Agent,
    http_proxy: Option<ureq::Agent>,
    https_proxy: Option<ureq::Agent>,
    no_proxy: NoProxy,
    roots: RootsSource,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("roots", &self.inner.roots)
            .field("http_proxy", &self.inner.http_proxy.is_some())
            .field("https_proxy", &self.inner.https_proxy.is_some())
            .finish()
    }
}

/// Loads the trust roots as Nix does (see the module documentation).
pub fn load_roots() -> Result<(RootCerts, RootsSource), HttpError> {
    for var in ["NIX_SSL_CERT_FILE", "SSL_CERT_FILE"] {
        let Some(path) = std::env::var_os(var).filter(|v| !v.is_empty()) else {
            continue;
        };
        let path = PathBuf::from(path);
        let pem = std::fs::read(&path).map_err(|e| {
            HttpError::Roots(format!("{var}={}: cannot read it: {e}", path.display()))
        })?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                Ok(_) => {}
                Err(e) => {
                    return Err(HttpError::Roots(format!(
                        "{var}={}: not a PEM certificate bundle: {e}",
                        path.display()
                    )))
                }
            }
        }
        if certs.is_empty() {
            return Err(HttpError::Roots(format!(
                "{var}={} holds no PEM certificates",
                path.display()
            )));
        }
        return Ok((
            RootCerts::new_with_certs(&certs),
            RootsSource::File { var, path },
        ));
    }
    let native = rustls_native_certs::load_native_certs();
    let certs: Vec<_> = native
        .certs
        .iter()
        .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    if certs.is_empty() {
        tracing::debug!(errors = ?native.errors, "no system trust roots; using the built-in ones");
        return Ok((RootCerts::WebPki, RootsSource::BuiltIn));
    }
    Ok((RootCerts::new_with_certs(&certs), RootsSource::System))
}

impl HttpClient {
    /// The client for this process: trust roots and proxies from the
    /// environment, default timeouts.
    pub fn from_env() -> Result<HttpClient, HttpError> {
        HttpClient::new(&HttpSettings::default(), ProxyEnv::from_env())
    }

    /// A client with these timeouts and proxies.
    pub fn new(settings: &HttpSettings, proxies: ProxyEnv) -> Result<HttpClient, HttpError> {
        let (roots, source) = load_roots()?;
        let agent = |proxy: Option<&str>| -> Result<ureq::Agent, HttpError> {
            let proxy = proxy
                .map(|p| {
                    ureq::Proxy::new(p).map_err(|e| HttpError::BadUrl {
                        url: p.to_string(),
                        msg: format!("not a usable proxy: {e}"),
                    })
                })
                .transpose()?;
            Ok(ureq::Agent::config_builder()
                .http_status_as_error(false)
                .user_agent(concat!("vouch/", env!("CARGO_PKG_VERSION")))
                .tls_config(
                    TlsConfig::builder()
                        .provider(TlsProvider::Rustls)
                        .root_certs(roots.clone())
                        .build(),
                )
                .proxy(proxy)
                .timeout_connect(Some(settings.connect_timeout))
                .timeout_recv_response(Some(settings.read_timeout))
                .timeout_recv_body(Some(settings.read_timeout))
                .timeout_send_body(Some(settings.read_timeout))
                .max_idle_connections_per_host(16)
                .build()
                .into())
        };
        Ok(HttpClient {
            inner: Arc::new(Inner {
                stream_timeout: settings.stream_timeout,
                direct: agent(None)?,
                http_proxy: proxies
                    .http
                    .as_deref()
                    .map(|p| agent(Some(p)))
                    .transpose()?,
                https_proxy: proxies
                    .https
                    .as_deref()
                    .map(|p| agent(Some(p)))
                    .transpose()?,
                no_proxy: proxies.no_proxy,
                roots: source,
            }),
        })
    }

    /// Where the trust roots came from.
    pub fn roots(&self) -> &RootsSource {
        &self.inner.roots
    }

    fn agent(&self, url: &str) -> Result<&ureq::Agent, HttpError> {
        let bad = |msg: &str| HttpError::BadUrl {
            url: url.to_string(),
            msg: msg.to_string(),
        };
        let (scheme, host) = scheme_host(url).ok_or_else(|| bad("not an absolute URL"))?;
        let proxy = match scheme {
            "http" => self.inner.http_proxy.as_ref(),
            "https" => self.inner.https_proxy.as_ref(),
            _ => return Err(bad("only http://, https:// and file:// URLs are supported")),
        };
        Ok(match proxy {
            Some(p) if !self.inner.no_proxy.matches(host) => p,
            _ => &self.inner.direct,
        })
    }

    /// GET `url`: the body of a 2xx answer, at most `max` bytes.
    pub fn get(&self, url: &str, max: u64) -> Result<Vec<u8>, HttpError> {
        let mut r = self.open(url, None)?;
        let mut body = Vec::new();
        (&mut r)
            .take(max.saturating_add(1))
            .read_to_end(&mut body)
            .map_err(|e| read_error(url, e))?;
        if body.len() as u64 > max {
            return Err(HttpError::TooLarge {
                url: url.to_string(),
                max,
            });
        }
        Ok(body)
    }

    /// [`HttpClient::get`], with 404 and 410 as `None`.
    pub fn get_found(&self, url: &str, max: u64) -> Result<Option<Vec<u8>>, HttpError> {
        match self.get(url, max) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET `url` as a stream (a 2xx answer's body), allowed
    /// [`HttpSettings::stream_timeout`] in all.
    pub fn get_reader(&self, url: &str) -> Result<Box<dyn Read + Send>, HttpError> {
        self.open(url, Some(self.inner.stream_timeout))
    }

    fn open(
        &self,
        url: &str,
        body_timeout: Option<Duration>,
    ) -> Result<Box<dyn Read + Send>, HttpError> {
        if let Some(path) = url.strip_prefix("file://") {
            return std::fs::File::open(path)
                .map(|f| Box::new(f) as Box<dyn Read + Send>)
                .map_err(|err| HttpError::File {
                    url: url.to_string(),
                    err,
                });
        }
        let agent = self.agent(url)?;
        let mut attempt = 1;
        let resp = loop {
            let mut req = agent.get(url);
            if let Some(t) = body_timeout {
                req = req.config().timeout_recv_body(Some(t)).build();
            }
            match req.call() {
                Ok(resp) => break resp,
                Err(e) if attempt < GET_ATTEMPTS && closed_before_answering(&e) => {
                    tracing::debug!(url, attempt, error = %e, "connection closed before an answer; retrying the GET");
                    attempt += 1;
                }
                Err(e) => return Err(classify(url, e)),
            }
        };
        let resp = check_status(url, resp)?;
        Ok(Box::new(resp.into_body().into_reader()))
    }

    /// POST `body` to `url` with this content type: the body of a 2xx
    /// answer (at most `max` bytes); any other status is an error.
    pub fn post(
        &self,
        url: &str,
        content_type: &str,
        body: &[u8],
        max: u64,
    ) -> Result<Vec<u8>, HttpError> {
        if url.starts_with("file://") {
            return Err(HttpError::BadUrl {
                url: url.to_string(),
                msg: "cannot POST to a file:// URL".into(),
            });
        }
        let resp = self
            .agent(url)?
            .post(url)
            .header("Content-Type", content_type)
            .send(body)
            .map_err(|e| classify(url, e))?;
        let resp = check_status(url, resp)?;
        let mut out = Vec::new();
        resp.into_body()
            .into_reader()
            .take(max.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| read_error(url, e))?;
        if out.len() as u64 > max {
            return Err(HttpError::TooLarge {
                url: url.to_string(),
                max,
            });
        }
        Ok(out)
    }
}

/// Turns a non-2xx answer into [`HttpError::Status`], reading a reason
/// from its body.
fn check_status(
    url: &str,
    resp: ureq::http::Response<ureq::Body>,
) -> Result<ureq::http::Response<ureq::Body>, HttpError> {
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(resp);
    }
    let retry_after = resp
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let refused = resp
        .headers()
        .get(vouch_spec::refused::HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(Refused::parse);
    let mut text = Vec::new();
    let _ = resp
        .into_body()
        .into_reader()
        .take(4096)
        .read_to_end(&mut text);
    let text = String::from_utf8_lossy(&text);
    if status == 400 && text.contains("plain HTTP request was sent to HTTPS port") {
        return Err(HttpError::Tls {
            url: url.to_string(),
            problem: TlsProblem::PlainToTlsPort,
        });
    }
    Err(HttpError::Status {
        url: url.to_string(),
        status,
        reason: first_line(&text),
        retry_after,
        refused,
    })
}

/// The first non-empty line of an error body, without markup-looking HTML
/// noise or control characters, at most 300 characters.
fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('<'))
        .unwrap_or_default();
    line.chars().filter(|c| !c.is_control()).take(300).collect()
}

fn read_error(url: &str, e: std::io::Error) -> HttpError {
    match e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
        Some(ureq::Error::BodyExceedsLimit(max)) => HttpError::TooLarge {
            url: url.to_string(),
            max: *max,
        },
        Some(ureq::Error::Timeout(_)) => HttpError::Timeout {
            url: url.to_string(),
            what: "reading the body",
        },
        _ if e.kind() == std::io::ErrorKind::TimedOut => HttpError::Timeout {
            url: url.to_string(),
            what: "reading the body",
        },
        _ => HttpError::Transfer {
            url: url.to_string(),
            msg: format!("reading the body: {e}"),
        },
    }
}

fn tls_problem(e: &rustls::Error) -> TlsProblem {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => TlsProblem::UnknownIssuer,
            C::NotValidForName | C::NotValidForNameContext { .. } => TlsProblem::WrongHost,
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => TlsProblem::Expired,
            other => TlsProblem::Other(format!("bad certificate: {other:?}")),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            TlsProblem::NotTls
        }
        other => TlsProblem::Other(other.to_string()),
    }
}

/// Tries of one GET whose connection the server closed before any answer
/// (RFC 9112 §9.3.1): enough to get past every stale connection in a small
/// pool without hiding a server that closes every connection it takes.
const GET_ATTEMPTS: u32 = 4;

/// Whether the connection ended before any byte of an answer arrived: most
/// often a kept-alive connection that the server closed (idle, or at its
/// maximum age) just as this request went out on it, which is not the
/// server's answer and which an idempotent request may simply repeat.
fn closed_before_answering(e: &ureq::Error) -> bool {
    matches!(e, ureq::Error::Io(io) if matches!(
        io.kind(),
        std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
    ))
}

/// Maps ureq's error to ours, finding rustls's reason inside I/O errors.
fn classify(url: &str, e: ureq::Error) -> HttpError {
    let url_s = url.to_string();
    let tls = |problem| HttpError::Tls {
        url: url.to_string(),
        problem,
    };
    match e {
        ureq::Error::Rustls(r) => tls(tls_problem(&r)),
        ureq::Error::Io(io) => {
            if let Some(r) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return tls(tls_problem(r));
            }
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::AddrNotAvailable
                | std::io::ErrorKind::HostUnreachable
                | std::io::ErrorKind::NetworkUnreachable => HttpError::Connect {
                    url: url_s,
                    msg: io.to_string(),
                },
                std::io::ErrorKind::TimedOut => HttpError::Timeout {
                    url: url_s,
                    what: "waiting for the server",
                },
                _ => HttpError::Transfer {
                    url: url_s,
                    msg: io.to_string(),
                },
            }
        }
        ureq::Error::Timeout(t) => HttpError::Timeout {
            url: url_s,
            what: match t {
                ureq::Timeout::Resolve | ureq::Timeout::Connect => "connecting",
                ureq::Timeout::RecvBody => "reading the body",
                _ => "waiting for the response",
            },
        },
        ureq::Error::HostNotFound => HttpError::Connect {
            url: url_s,
            msg: "host not found".into(),
        },
        ureq::Error::ConnectionFailed => HttpError::Connect {
            url: url_s,
            msg: "connection failed".into(),
        },
        ureq::Error::Protocol(p) if url.starts_with("http://") => HttpError::Transfer {
            url: url_s,
            msg: format!("the answer is not HTTP ({p}); if the port speaks TLS, use https://"),
        },
        ureq::Error::BadUri(m) => HttpError::BadUrl { url: url_s, msg: m },
        ureq::Error::Tls(m) => tls(TlsProblem::Other(m.to_string())),
        other => HttpError::Transfer {
            url: url_s,
            msg: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_matches_as_curl_does() {
        let np = NoProxy::parse("localhost, .internal.example,*.corp.example ,10.0.0.1:8080,[::1]");
        for direct in [
            "localhost",
            "LOCALHOST",
            "a.internal.example",
            "internal.example",
            "x.y.corp.example",
            "10.0.0.1",
            "::1",
            "[::1]",
        ] {
            assert!(np.matches(direct), "{direct}");
        }
        for proxied in [
            "example.org",
            "notinternal.example",
            "10.0.0.10",
            "localhost.evil",
        ] {
            assert!(!np.matches(proxied), "{proxied}");
        }
        assert!(NoProxy::parse("*").matches("anything.example"));
        assert!(!NoProxy::parse("").matches("localhost"));
    }

    #[test]
    fn proxies_are_chosen_per_scheme_from_the_environment() {
        let env = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            ProxyEnv::from_lookup(move |k| {
                vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
            })
        };
        let e = env(&[
            ("https_proxy", "http://p1:3128"),
            ("HTTP_PROXY", "http://p2:3128"),
            ("no_proxy", "cache.local"),
        ]);
        assert_eq!(e.https.as_deref(), Some("http://p1:3128"));
        assert_eq!(e.http.as_deref(), Some("http://p2:3128"));
        assert!(e.no_proxy.matches("cache.local"));
        let e = env(&[("ALL_PROXY", "http://all:1"), ("http_proxy", "")]);
        assert_eq!(e.https.as_deref(), Some("http://all:1"));
        assert_eq!(e.http.as_deref(), Some("http://all:1"));
        assert_eq!(env(&[]), ProxyEnv::default());
    }

    #[test]
    fn urls_are_split_for_proxy_choice() {
        assert_eq!(
            scheme_host("https://user:pw@Cache.example:8443/nix-cache-info"),
            Some(("https", "Cache.example"))
        );
        assert_eq!(scheme_host("http://[::1]:80/x"), Some(("http", "::1")));
        assert_eq!(scheme_host("http://h?q"), Some(("http", "h")));
        assert_eq!(scheme_host("nope"), None);
    }

    #[test]
    fn file_urls_read_from_disk_and_missing_files_are_404() {
        let dir = std::env::temp_dir().join(format!("vouch-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("nix-cache-info"), "StoreDir: /nix/store\n").unwrap();
        let c = HttpClient::new(&HttpSettings::default(), ProxyEnv::default()).unwrap();
        let url = format!("file://{}", dir.display());
        assert_eq!(
            c.get(&format!("{url}/nix-cache-info"), 100).unwrap(),
            b"StoreDir: /nix/store\n"
        );
        assert!(matches!(
            c.get(&format!("{url}/nix-cache-info"), 5),
            Err(HttpError::TooLarge { max: 5, .. })
        ));
        let e = c.get(&format!("{url}/x.narinfo"), 100).unwrap_err();
        assert!(e.is_not_found() && !e.is_transient(), "{e}");
        assert_eq!(c.get_found(&format!("{url}/x.narinfo"), 100).unwrap(), None);
        let e = c.get("ftp://example.org/x", 1).unwrap_err();
        assert!(
            e.to_string().contains("only http://, https:// and file://"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A server that answers one request per connection and then closes
    /// the kept-alive connection as the next request arrives (as a server
    /// does at a connection's maximum age): every GET still succeeds, on a
    /// new connection. A server that closes every connection unanswered is
    /// still an error, after [`GET_ATTEMPTS`] tries.
    #[test]
    fn a_get_on_a_connection_closed_before_answering_is_repeated() {
        use std::io::{BufRead, BufReader, Write};
        use std::net::TcpListener;
        use std::sync::atomic::{AtomicU32, Ordering};
        fn read_request(r: &mut BufReader<std::net::TcpStream>) -> bool {
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return false,
                    Ok(_) if line == "\r\n" => return true,
                    Ok(_) => {}
                }
            }
        }
        const ANSWERING: u32 = 3;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU32::new(0));
        let counted = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
                let Ok(read) = stream.try_clone() else { return };
                let mut r = BufReader::new(read);
                if n <= ANSWERING && read_request(&mut r) {
                    let mut w = stream;
                    let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                }
                // The next request on this connection is read and dropped.
                read_request(&mut r);
            }
        });
        let client = HttpClient::new(&HttpSettings::default(), ProxyEnv::default()).unwrap();
        let url = format!("http://{addr}/x");
        for _ in 0..ANSWERING {
            assert_eq!(client.get(&url, 10).unwrap(), b"ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), ANSWERING);
        // The last answering connection, then new ones, all closed.
        let e = client.get(&url, 10).unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            ANSWERING + GET_ATTEMPTS - 1
        );
    }

    #[test]
    fn errors_name_the_url_once_and_keep_the_reason() {
        let e = HttpError::Status {
            url: "http://log/checkpoint".into(),
            status: 503,
            reason: first_line("\n<html>\nno checkpoint has met the witness quorum yet\n"),
            retry_after: Some(5),
            refused: None,
        };
        assert_eq!(
            e.to_string(),
            "http://log/checkpoint: HTTP 503: no checkpoint has met the witness quorum yet"
        );
        assert!(e.is_transient());
        assert_eq!(e.retry_after(), Some(5));
        assert_eq!(first_line("bad\u{1b}[31m red\n"), "bad[31m red");
    }
}
