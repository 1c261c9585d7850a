//! `vouch-witness`: cosign a log's checkpoints (C2SP tlog-witness),
//! mirror a log (C2SP tlog-mirror), or monitor a Vouch log for disagreeing
//! builders and misbehaviour.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vouch_witness::{config::Config, mirror, monitor, pull, Witness};

/// Witness and monitor for Vouch and other C2SP tlog-tiles logs.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a cosigning key (mode 0600) and print its cosignature/v1 vkey.
    Keygen {
        /// The witness's cosigner name, e.g. witness.example.org/vouch.
        #[arg(long)]
        name: String,
        /// Where to write the private key; must not exist.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the witness: POST <submission prefix>/add-checkpoint, GET
    /// <monitoring prefix>/<origin hash>/checkpoint, and pull mode for
    /// configured logs that have a URL.
    Serve {
        /// TOML configuration (key_file, data_dir, listen, [[log]] origin/vkeys/url).
        #[arg(long)]
        config: PathBuf,
        /// Override the listen address.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Override the key file (under systemd: `--key %d/witness.key`
        /// with `LoadCredential=`).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Run a mirror (C2SP tlog-mirror): keep a verified copy of each
    /// configured log and serve it as tlog-tiles at <monitoring
    /// prefix>/<origin hash>/, with the mirror's cosignature on its
    /// checkpoint. Logs with a URL are followed; any client may also push
    /// with POST <submission prefix>/add-checkpoint and /add-entries.
    Mirror {
        /// TOML configuration, as for `serve` (key_file holds the mirror's
        /// cosigning key, which must not be a witness's).
        #[arg(long)]
        config: PathBuf,
        /// Override the listen address.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Override the key file.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Follow a Vouch log: verify every entry and checkpoint, report
    /// disagreeing builders, unconfirmed watched keys and log misbehaviour
    /// as JSON lines on stdout, and serve the reports as web pages.
    Monitor {
        /// The log's tlog-tiles prefix, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        log: String,
        /// The log's verifier key (vkey).
        #[arg(long)]
        vkey: String,
        /// The monitor's database directory (RocksDB), resumed from and
        /// committed to after every chunk of entries. Without it, a
        /// temporary one is used and removed at exit (a one-off check).
        #[arg(long)]
        state: Option<PathBuf>,
        /// A builder key (Nix name:base64) whose attestations need an
        /// independent builder to agree; repeatable.
        #[arg(long)]
        watch: Vec<String>,
        /// Seconds a watched key's attestation may stay unconfirmed.
        #[arg(long, default_value_t = 3600)]
        grace_secs: u64,
        /// Catch up once and exit: 0 clean, 1 builder problems, 2 log misbehaviour.
        #[arg(long)]
        once: bool,
        /// Seconds between rounds when following.
        #[arg(long, default_value_t = 10)]
        interval_secs: u64,
        /// Threads fetching and verifying entries.
        #[arg(long, default_value_t = default_jobs())]
        jobs: usize,
        /// Serve the web view (overview, search, paths, builders,
        /// disagreements, each also as JSON under /api/) and /metrics here.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Serve Prometheus metrics at this address (/metrics).
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
    },
    /// Print a monitor's reports as JSON from its database (safe while
    /// the monitor runs).
    Report {
        /// The monitor's database directory.
        #[arg(long)]
        state: PathBuf,
        #[command(subcommand)]
        what: ReportWhat,
    },
}

#[derive(Subcommand)]
enum ReportWhat {
    /// Everything concluded: entries read, every builder's counters, every
    /// disagreement with all its attestations.
    All,
    /// Every builder key with its counters.
    Builders,
    /// One builder key's record and a page of what it attested (the
    /// CT-style record of what a watched key signed).
    Builder {
        /// The key (Nix name:base64).
        key: String,
        /// Start the page at this entry index.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Page size.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Every builder's NAR hash and size for store paths matching a full
    /// store path, a base name or (the beginning of) a hash part.
    Path {
        /// What to look for.
        query: String,
    },
    /// The disagreements, with every attestation of their paths.
    Disagreements,
    /// Every key transition (retirement or handover, with its cutoff) and
    /// every entry a log appended by a key at or after its cutoff.
    Transitions,
}

/// Reads the TOML configuration `serve` and `mirror` share, with the
/// command line's overrides.
fn load_config(
    path: &std::path::Path,
    listen: Option<SocketAddr>,
    key: Option<PathBuf>,
) -> anyhow::Result<Config> {
    let mut cfg = Config::load(path).map_err(anyhow::Error::msg)?;
    if let Some(l) = listen {
        cfg.listen = l;
    }
    if let Some(k) = key {
        cfg.key_file = k;
    }
    Ok(cfg)
}

/// The trusted proxies and per-client rate of `add-checkpoint` (and the
/// mirror's `add-entries`) from the shared configuration.
fn front_of(cfg: &Config) -> anyhow::Result<vouch_witness::Front> {
    Ok(vouch_witness::Front::new(
        vouch::client_addr::TrustedProxies::parse(&cfg.trusted_proxies)
            .map_err(anyhow::Error::msg)?,
        cfg.rate_limit_per_second,
        cfg.rate_limit_burst,
    ))
}

/// Serves `router` on the configured address with the configured
/// connection limits until SIGTERM or SIGINT.
fn serve(cfg: &Config, what: &str, router: axum::Router) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("listening on {}", cfg.listen))?;
        tracing::info!(addr = %listener.local_addr()?, "{what} serving");
        vouch::serve::notify_ready();
        let limits = vouch::serve::Limits {
            max_connections: cfg.max_connections.max(1),
            header_timeout: Duration::from_secs(cfg.header_timeout_secs.max(1)),
            ..vouch::serve::Limits::default()
        }
        .fit_to_fd_limit();
        vouch::serve::serve(listener, router, limits, vouch::serve::shutdown_signal()).await;
        anyhow::Ok(0)
    })
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn main() {
    vouch::init_logging();
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(3);
        }
    }
}

fn run() -> anyhow::Result<i32> {
    match Cli::parse().command {
        Command::Keygen { name, out } => {
            let s = vouch_witness::keygen(&out, &name)?;
            println!("{}", s.verifier().vkey());
            Ok(0)
        }
        Command::Serve {
            config,
            listen,
            key,
        } => {
            let cfg = load_config(&config, listen, key)?;
            let front = front_of(&cfg)?;
            let signer = vouch_witness::load_key(&cfg.key_file)?;
            let w = Arc::new(Witness::new(signer, &cfg.data_dir, &cfg.logs)?);
            println!("{}", w.vkey());
            for l in &cfg.logs {
                eprintln!(
                    "log {}: cosigned checkpoint at http://{}{}",
                    l.origin,
                    cfg.listen,
                    vouch_witness::monitoring_path(&cfg.monitoring_prefix, &l.origin)
                );
            }
            let w2 = w.clone();
            let interval = Duration::from_secs(cfg.poll_interval_secs.max(1));
            let http = vouch::http::HttpClient::from_env()?;
            std::thread::Builder::new()
                .name("pull".into())
                .spawn(move || pull::run(w2, http, interval))?;
            let router =
                vouch_witness::router(w, front, &cfg.submission_prefix, &cfg.monitoring_prefix);
            serve(&cfg, "witness", router)
        }
        Command::Mirror {
            config,
            listen,
            key,
        } => {
            let cfg = load_config(&config, listen, key)?;
            let signer = vouch_witness::load_key(&cfg.key_file)?;
            let m = Arc::new(mirror::Mirror::new(signer, &cfg.data_dir, &cfg.logs)?);
            println!("{}", m.vkey());
            for l in &cfg.logs {
                eprintln!(
                    "log {}: mirrored at http://{}{}/{}/",
                    l.origin,
                    cfg.listen,
                    cfg.monitoring_prefix.trim_end_matches('/'),
                    vouch_witness::store::origin_hash(&l.origin)
                );
            }
            let metrics = mirror::follow::Metrics::default();
            let mut registry = vouch::metrics::Registry::default();
            metrics.register(&mut registry);
            let m2 = m.clone();
            let interval = Duration::from_secs(cfg.poll_interval_secs.max(1));
            let http = vouch::http::HttpClient::from_env()?;
            std::thread::Builder::new()
                .name("follow".into())
                .spawn(move || mirror::follow::run(m2, http, interval, metrics))?;
            let router = mirror::http::router(
                m,
                registry,
                front_of(&cfg)?,
                &cfg.submission_prefix,
                &cfg.monitoring_prefix,
            );
            serve(&cfg, "mirror", router)
        }
        Command::Monitor {
            log,
            vkey,
            state,
            watch,
            grace_secs,
            once,
            interval_secs,
            jobs,
            listen,
            metrics_listen,
        } => {
            let temporary = state.is_none();
            let state = state.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("vouch-monitor-{}", std::process::id()))
            });
            let _cleanup = Cleanup(temporary.then(|| state.clone()));
            let mut m = monitor::Monitor::new(
                monitor::Settings {
                    url: log,
                    vkey,
                    state: state.clone(),
                    watch,
                    grace_secs,
                    jobs,
                },
                vouch::http::HttpClient::from_env()?,
            )
            .with_context(|| format!("opening the monitor database {}", state.display()))?;
            let mut registry = vouch::metrics::Registry::default();
            m.counters.register(&mut registry);
            let registry = Arc::new(registry);
            if let Some(addr) = listen {
                let web = Arc::new(monitor::web::Web {
                    db: m.db.clone(),
                    origin: m.origin().to_string(),
                    status: m.status.clone(),
                    registry: registry.clone(),
                });
                let local = vouch::serve::spawn(addr, monitor::web::router(web))
                    .with_context(|| format!("listening on {addr}"))?;
                eprintln!("monitor web view at http://{local}/");
            }
            if let Some(addr) = metrics_listen {
                vouch::serve::spawn(
                    addr,
                    axum::Router::new().route("/metrics", vouch::metrics::route(registry)),
                )
                .with_context(|| format!("listening on {addr}"))?;
            }
            vouch::serve::notify_ready();
            if once {
                return Ok(m.round()?.0);
            }
            loop {
                match m.round() {
                    Ok(s) if s.0 == 2 => {
                        tracing::error!("log misbehaviour detected (see the report on stdout)")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "monitor round failed"),
                }
                std::thread::sleep(Duration::from_secs(interval_secs));
            }
        }
        Command::Report { state, what } => {
            let db = monitor::db::MonitorDb::open_read_only(&state)
                .with_context(|| format!("opening the monitor database {}", state.display()))?;
            use monitor::report;
            let out = match what {
                ReportWhat::All => serde_json::to_value(report::conclusions(&db)?)?,
                ReportWhat::Builders => serde_json::to_value(report::builders(&db)?)?,
                ReportWhat::Builder { key, after, limit } => {
                    match report::builder(&db, &key, after, limit)? {
                        Some(r) => serde_json::to_value(r)?,
                        None => anyhow::bail!("no attestation by {key} was read"),
                    }
                }
                ReportWhat::Path { query } => {
                    serde_json::to_value(report::search(&db, &query, 100)?)?
                }
                ReportWhat::Disagreements => {
                    serde_json::to_value(report::disagreements(&db, "", usize::MAX)?)?
                }
                ReportWhat::Transitions => serde_json::json!({
                    "transitions": db.transitions()?,
                    "violations": db.violations()?,
                }),
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(0)
        }
    }
}

/// Removes a temporary database at exit.
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}
