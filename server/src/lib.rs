//! # vouch-log: the Vouch transparency log server
//!
//! A thin shell around `vouch-spec` and the shared `vouch` library. The
//! data path, one file each (see `ARCHITECTURE.md`): a submission is
//! admitted ([`admission`]), parsed and its signatures verified
//! ([`verify`]), sequenced in batches ([`sequencer`]) that are integrated
//! into tiles independently of storage (`vouch_spec::integrate`) and committed
//! atomically ([`store`], RocksDB); the new checkpoint is published
//! ([`published`]), sent to witnesses when a policy asks for a quorum
//! ([`witnessing`]), and served with tiles, lookups and proofs
//! ([`http`], [`nodes`], [`proofs`]). Every error has its status in
//! [`error`].
#![forbid(unsafe_code)]

pub mod admission;
pub mod config;
pub mod error;
pub mod http;
pub mod interior;
pub mod keys;
pub mod nodes;
pub mod objects;
pub mod proofs;
pub mod published;
pub mod publisher;
pub mod sequencer;
pub mod store;
pub mod verify;
pub mod witnessing;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use vouch_spec::nix::NixPublicKey;

/// Why the log could not start (or stopped with an error).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is not usable.
    #[error("{0}")]
    Config(String),
    /// The key does not fit the configuration.
    #[error("the key's origin {key:?} is not the configured origin {origin:?}: a key signs for one log (leave --origin and `origin` unset to use the key's)")]
    KeyOrigin {
        /// The key's name.
        key: String,
        /// The configured origin.
        origin: String,
    },
    /// A file or socket could not be used.
    #[error("{what}: {err}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        err: std::io::Error,
    },
    /// The data directory cannot be served.
    #[error("{0}")]
    Recover(#[from] sequencer::RecoverError),
    /// Storage failed.
    #[error("{0}")]
    Store(#[from] store::StoreError),
    /// The outgoing HTTP client cannot be built.
    #[error("{0}")]
    Http(#[from] vouch::http::HttpError),
    /// The sequencer thread panicked.
    #[error("the sequencer panicked")]
    SequencerPanicked,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |err| StartError::Io { what, err }
}

/// Runs the log until SIGINT or SIGTERM, then finishes the batch in flight.
pub async fn serve(
    cfg: config::Config,
    signer: vouch_spec::note::Ed25519Signer,
) -> Result<(), StartError> {
    let origin = keys::origin(&signer);
    if let Some(configured) = cfg.origin.as_ref().filter(|o| **o != origin) {
        return Err(StartError::KeyOrigin {
            key: origin,
            origin: configured.clone(),
        });
    }
    let allowed = cfg
        .allowed_builders
        .iter()
        .map(|k| {
            NixPublicKey::parse(k)
                .map_err(|e| StartError::Config(format!("allowed_builders: {k:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(&cfg.data_dir).map_err(io(format!(
        "creating data directory {}",
        cfg.data_dir.display()
    )))?;
    let rocks = Arc::new(store::RocksStore::open(&cfg.data_dir.join("db"))?);
    let store: Arc<dyn store::Store> = rocks.clone();
    let durable = sequencer::recover(&*store, &signer, &origin)?;
    tracing::info!(%origin, size = durable.size, vkey = %signer.verifier().vkey(), "log state recovered");
    let root =
        vouch_spec::compact::CompactRange::from_parts(durable.size, durable.frontier.clone())
            .map_err(|e| store::StoreError::Corrupt(e.to_string()))?
            .root();
    let signed = published::Published {
        size: durable.size,
        root,
        checkpoint: Arc::new(durable.checkpoint.clone()),
    };
    let policy = match &cfg.witness_policy {
        None => None,
        Some(p) => {
            let text =
                std::fs::read(p).map_err(io(format!("reading witness policy {}", p.display())))?;
            let policy = vouch_spec::policy::Policy::parse(&text)
                .map_err(|e| StartError::Config(format!("witness policy {}: {e}", p.display())))?;
            if let Some(w) = policy.witnesses.iter().find(|w| w.url.is_none()) {
                return Err(StartError::Config(format!(
                    "witness policy {}: witness {} has no URL to send checkpoints to",
                    p.display(),
                    w.name
                )));
            }
            Some(policy)
        }
    };
    let served = match (&policy, store.witnessed()?) {
        (Some(_), Some(cp)) => {
            let c = vouch_spec::note::Note::parse(&cp)
                .ok()
                .and_then(|n| vouch_spec::checkpoint::Checkpoint::parse(&n.text).ok())
                .ok_or_else(|| {
                    store::StoreError::Corrupt("the witnessed checkpoint does not parse".into())
                })?;
            Some(published::Published {
                size: c.size,
                root: c.root,
                checkpoint: Arc::new(cp),
            })
        }
        _ => None,
    };
    let heads = Arc::new(published::Shared::new(signed, served, policy.is_some()));
    let tree = Arc::new(nodes::TreeReader::new(rocks.clone()));
    if let Some(policy) = policy {
        let timeout = Duration::from_millis(cfg.witness_timeout_ms);
        let http = vouch::http::HttpClient::new(
            &vouch::http::HttpSettings {
                connect_timeout: timeout,
                read_timeout: timeout,
                ..vouch::http::HttpSettings::default()
            },
            vouch::http::ProxyEnv::from_env(),
        )?;
        let ctx = witnessing::Context {
            heads: heads.clone(),
            tree: tree.clone(),
            store: store.clone(),
            http,
        };
        let settings = witnessing::Settings {
            policy,
            timeout,
            attempts: cfg.witness_attempts,
        };
        std::thread::Builder::new()
            .name("witnessing".into())
            .spawn(move || witnessing::run(ctx, settings))
            .map_err(io("starting the witnessing thread"))?;
    }
    let mut registry = Registry::default();
    for (kind, url) in [
        (publisher::Kind::Tiles, &cfg.publish.tiles),
        (publisher::Kind::Proofs, &cfg.publish.proofs),
    ] {
        let Some(url) = url else { continue };
        let backend = objects::open(url, &cfg.publish.s3)
            .map_err(|e| StartError::Config(format!("[publish]: {e}")))?;
        tracing::info!(destination = %backend.describe(), ?kind, "publishing");
        let p = publisher::Publisher::new(
            kind,
            backend,
            store.clone(),
            tree.clone(),
            heads.clone(),
            &mut registry,
        );
        std::thread::Builder::new()
            .name(format!("publish-{kind:?}").to_lowercase())
            .spawn(move || p.run())
            .map_err(io("starting a publisher thread"))?;
    }
    let (sequencer, seq) = sequencer::start(
        store.clone(),
        signer,
        sequencer::Settings {
            max_entries: cfg.batch_max_entries.max(1),
            max_wait: Duration::from_millis(cfg.batch_max_wait_ms),
            origin: origin.clone(),
            data_dir: cfg.data_dir.clone(),
            min_free_disk_bytes: cfg.min_free_disk_bytes,
            queue_capacity: cfg.queue_capacity,
        },
        durable,
        heads.clone(),
        &mut registry,
    )
    .map_err(io("starting the sequencer"))?;
    let admission = admission::Admission::new(admission::Limits {
        rate_per_second: cfg.rate_limit_per_second,
        rate_burst: cfg.rate_limit_burst.max(1.0),
        builder_rate_per_second: cfg.builder_rate_limit_per_second,
        builder_rate_burst: cfg.builder_rate_limit_burst.max(1.0),
        allowed,
        max_body_bytes: cfg.max_body_bytes,
        body_timeout: Duration::from_secs(cfg.body_timeout_secs),
        // At least one largest body must fit.
        submit_memory_bytes: cfg.submit_memory_bytes.max(cfg.max_body_bytes),
    });
    let app = http::router(Arc::new(http::AppState::new(
        heads,
        tree,
        sequencer,
        admission,
        http::Settings {
            max_attestations: cfg.max_attestations_per_request,
            checkpoint_max_age: cfg.checkpoint_max_age_secs,
            wait_timeout: Duration::from_secs(cfg.wait_timeout_secs),
            trusted_proxies: vouch::client_addr::TrustedProxies::parse(&cfg.trusted_proxies)
                .map_err(StartError::Config)?,
        },
        registry,
    )));
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(io(format!("listening on {}", cfg.listen)))?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving");
    }
    vouch::serve::notify_ready();
    let conn_limits = vouch::serve::Limits {
        max_connections: cfg.max_connections.max(1),
        header_timeout: Duration::from_secs(cfg.header_timeout_secs.max(1)),
        max_connection_age: Duration::from_secs(cfg.max_connection_age_secs.max(1)),
        ..vouch::serve::Limits::default()
    }
    .fit_to_fd_limit();
    vouch::serve::serve(listener, app, conn_limits, vouch::serve::shutdown_signal()).await;
    tracing::info!("HTTP stopped; waiting for the sequencer to finish its batch");
    // Dropping the router dropped the last handle: the sequencer drains
    // its queue and returns.
    tokio::task::spawn_blocking(move || seq.join())
        .await
        .map_err(|_| StartError::SequencerPanicked)?
        .map_err(|_| StartError::SequencerPanicked)??;
    tracing::info!("stopped cleanly");
    Ok(())
}
