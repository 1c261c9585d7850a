//! Serving HTTP/1.1 on a public port with the bounds every Vouch server
//! needs (the log, the witness and the substituter share this loop):
//!
//! - at most `max_connections` open at once; one more is answered
//!   `503 Service Unavailable` with `Retry-After` and closed (64 such
//!   answers at a time; beyond that, closed at once), so neither the accept
//!   queue nor the descriptors in use grow without bound;
//! - request headers must arrive within `header_timeout` (hyper's
//!   `header_read_timeout`, which `axum::serve` leaves without a timer, so a
//!   client that trickles headers would hold its connection forever);
//! - every connection is asked to close after `max_connection_age` (the
//!   request in flight finishes, keep-alive ends) and dropped `grace` later,
//!   so a client that never reads its response cannot pin a task either.
//!
//! Bodies are read by the handlers that want them, through [`read_body`]:
//! a size limit, a deadline, and a say for the caller (a memory budget) as
//! the bytes arrive. The peer address reaches handlers as
//! `axum::extract::ConnectInfo<SocketAddr>`, as with
//! `into_make_service_with_connect_info`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

/// Connection bounds (see the module documentation).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once; more get 503.
    pub max_connections: usize,
    /// Time allowed for a request's headers to arrive, counted from the
    /// first byte (and for an idle keep-alive connection to send one).
    pub header_timeout: Duration,
    /// After this long a connection is asked to close.
    pub max_connection_age: Duration,
    /// And this much later it is dropped, whatever it is doing.
    pub grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(300),
            grace: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// Lowers `max_connections` to what the process can hold open: raises
    /// the soft file-descriptor limit to the hard one (as Go does at start)
    /// and keeps half of it for everything else (RocksDB's files, outgoing
    /// requests), so a crowd of clients can never starve the database of
    /// descriptors.
    pub fn fit_to_fd_limit(mut self) -> Limits {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let mut l = getrlimit(Resource::Nofile);
        if l.maximum != l.current {
            let raised = rustix::process::Rlimit {
                current: l.maximum,
                maximum: l.maximum,
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                l = getrlimit(Resource::Nofile);
            }
        }
        if let Some(soft) = l.current {
            let fit = usize::try_from(soft / 2).unwrap_or(usize::MAX).max(1);
            if fit < self.max_connections {
                tracing::warn!(
                    configured = self.max_connections,
                    serving = fit,
                    fd_limit = soft,
                    "max_connections lowered to half the file-descriptor limit"
                );
                self.max_connections = fit;
            }
        }
        self
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then asks every
/// connection to finish its request and waits (at most `grace`) for them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(64));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off, don't spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Answer a few at a time; beyond that, just close, so refusals
            // cannot take the descriptors kept for everything else.
            if let Ok(r) = refusing.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream, limits.max_connections).await;
                    drop(r);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req)
        });
        let mut stop = stop_rx.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), svc);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                    return;
                }
                _ = tokio::time::sleep(limits.max_connection_age) => {}
                _ = stop.changed() => {}
            }
            conn.as_mut().graceful_shutdown();
            if tokio::time::timeout(limits.grace, conn).await.is_err() {
                tracing::debug!(%peer, "connection dropped after its grace period");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.grace, slots.acquire_many(all)).await;
}

/// Serves `router` on `addr` from a thread of its own, with its own
/// runtime, through [`serve`] with the default limits, until the process
/// exits (for programs whose main thread does other work: the monitor's web
/// view, metrics beside a batch job). Returns the bound address once it is
/// listening.
pub fn spawn(
    addr: std::net::SocketAddr,
    router: axum::Router,
) -> std::io::Result<std::net::SocketAddr> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr))?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name(format!("serve {local}"))
        .spawn(move || {
            rt.block_on(serve(
                listener,
                router,
                Limits::default().fit_to_fd_limit(),
                std::future::pending(),
            ))
        })?;
    Ok(local)
}

/// Tells systemd the service is ready (`Type=notify` units), when it asked
/// by setting `NOTIFY_SOCKET`; otherwise does nothing. Call once listening.
pub fn notify_ready() {
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|sock| {
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
        match bytes.strip_prefix(b"@") {
            // An abstract socket (Linux).
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                sock.send_to_addr(b"READY=1\n", &addr)
            }
            None => sock.send_to(b"READY=1\n", &path),
        }
    });
    if let Err(e) = sent {
        tracing::warn!(error = %e, "could not tell systemd the service is ready");
    }
}

/// Completes at SIGINT or SIGTERM: the shutdown every Vouch server uses.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested");
}

/// Why a request body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// More than the limit (bytes) was sent: 413.
    #[error("body exceeds the limit of {0} bytes")]
    TooLarge(usize),
    /// Not all of it arrived in time: 408.
    #[error("body not received within {}s", .0.as_secs())]
    Timeout(Duration),
    /// The connection failed mid-body: 400.
    #[error("reading body: {0}")]
    Read(String),
    /// The caller's `admit` refused the bytes received so far.
    #[error("body refused")]
    Refused,
}

/// Reads a request body of at most `max` bytes within `deadline`, asking
/// `admit` (with the length so far) before keeping each chunk, so a
/// caller can charge what has arrived to a memory budget: a slow client
/// then holds only what it has sent.
pub async fn read_body(
    mut body: axum::body::Body,
    max: usize,
    deadline: Duration,
    mut admit: impl FnMut(usize) -> bool,
) -> Result<axum::body::Bytes, BodyError> {
    use http_body_util::BodyExt;
    let mut buf: Vec<u8> = Vec::new();
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            let len = buf.len() + data.len();
            if len > max {
                return Err(BodyError::TooLarge(max));
            }
            if !admit(len) {
                return Err(BodyError::Refused);
            }
            buf.extend_from_slice(&data);
        }
        Ok(())
    };
    match tokio::time::timeout(deadline, read).await {
        Err(_) => Err(BodyError::Timeout(deadline)),
        Ok(r) => r.map(|()| buf.into()),
    }
}

/// Answers a connection over the limit with 503 and closes it. The request
/// is drained briefly first so the close does not reset the answer away.
async fn refuse(mut stream: TcpStream, max: usize) {
    let body = format!("the server is at its limit of {max} connections; retry shortly\n");
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left = 64 * 1024usize;
        while left > 0 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        std::io::Result::Ok(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use std::net::SocketAddr;

    async fn start(limits: Limits) -> (SocketAddr, watch::Sender<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let router = Router::new()
            .route(
                "/",
                get(|ConnectInfo(p): ConnectInfo<SocketAddr>| async move { p.ip().to_string() }),
            )
            .route("/echo", post(|b: axum::body::Bytes| async move { b }));
        let (tx, mut rx) = watch::channel(());
        tokio::spawn(serve(l, router, limits, async move {
            let _ = rx.changed().await;
        }));
        (addr, tx)
    }

    async fn roundtrip(addr: SocketAddr, req: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(req).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn serves_with_the_peer_address_and_refuses_over_the_limit() {
        let (addr, _stop) = start(Limits {
            max_connections: 2,
            ..Limits::default()
        })
        .await;
        let ok = roundtrip(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.ends_with("127.0.0.1"),
            "{ok}"
        );
        // Two idle connections take both slots; a third is refused with 503.
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let refused = roundtrip(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            refused.starts_with("HTTP/1.1 503") && refused.contains("Retry-After: 1"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn slow_headers_are_cut_off() {
        let (addr, _stop) = start(Limits {
            header_timeout: Duration::from_millis(300),
            ..Limits::default()
        })
        .await;
        let t = std::time::Instant::now();
        let cut = roundtrip(addr, b"GET / HTTP/1.1\r\nHost: x\r\n").await;
        assert!(!cut.contains("200 OK"), "{cut}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn old_connections_finish_their_request_and_close() {
        let (addr, _stop) = start(Limits {
            max_connection_age: Duration::from_millis(500),
            grace: Duration::from_millis(300),
            ..Limits::default()
        })
        .await;
        // A keep-alive connection gets its answer, then is closed by age.
        let t = std::time::Instant::now();
        let kept = roundtrip(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(kept.starts_with("HTTP/1.1 200"), "{kept}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        // One that never sends a whole request is dropped after the grace.
        let t = std::time::Instant::now();
        let cut = roundtrip(
            addr,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nab",
        )
        .await;
        assert!(!cut.contains("200 OK"), "{cut}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn bodies_are_limited_admitted_as_they_arrive_and_timed() {
        let body = || axum::body::Body::from(vec![7u8; 3000]);
        let d = Duration::from_secs(5);
        let ok = read_body(body(), 3000, d, |_| true).await.unwrap();
        assert_eq!(ok.len(), 3000);
        assert!(matches!(
            read_body(body(), 2999, d, |_| true).await,
            Err(BodyError::TooLarge(2999))
        ));
        let mut seen = Vec::new();
        let r = read_body(body(), 3000, d, |n| {
            seen.push(n);
            n < 3000
        })
        .await;
        assert!(matches!(r, Err(BodyError::Refused)));
        assert_eq!(seen.last(), Some(&3000));
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(1);
        let never =
            axum::body::Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|c| (c, rx))
            }));
        let r = read_body(never, 10, Duration::from_millis(100), |_| true).await;
        assert!(matches!(r, Err(BodyError::Timeout(_))), "{r:?}");
    }
}
