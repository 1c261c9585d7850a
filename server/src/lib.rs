//! # vouch-log: the Vouch transparency log server
//!
//! A thin shell around `vouch-spec`: a sequencer thread that commits batches
//! to RocksDB ([`store`]), and an axum HTTP server ([`http`]) that serves
//! C2SP tlog-tiles and the submission, lookup and proof APIs of
//! `spec/PROTOCOL.md`.
#![forbid(unsafe_code)]

pub mod config;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod sequencer;
pub mod state;
pub mod store;
pub mod verify;
pub mod witnessing;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use vouch_spec::nix::NixPublicKey;

/// Runs the log until SIGINT or SIGTERM, then finishes the batch in flight.
pub async fn serve(
    cfg: config::Config,
    signer: vouch_spec::note::Ed25519Signer,
) -> anyhow::Result<()> {
    if signer.verifier().vkey().split('+').next() != Some(cfg.origin.as_str()) {
        anyhow::bail!(
            "the key's name does not match the origin {:?}; generate a key for this origin",
            cfg.origin
        );
    }
    let allowed = cfg
        .allowed_builders
        .iter()
        .map(|k| NixPublicKey::parse(k).with_context(|| format!("allowed_builders: {k:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    let db_dir = cfg.data_dir.join("db");
    let store: Arc<dyn store::Store> = Arc::new(
        store::RocksStore::open(&db_dir)
            .with_context(|| format!("opening {}", db_dir.display()))?,
    );
    let durable = sequencer::recover(&*store, &signer, &cfg.origin)?;
    tracing::info!(origin = %cfg.origin, size = durable.size, vkey = %signer.verifier().vkey(), "log state recovered");
    let root =
        vouch_spec::compact::CompactRange::from_parts(durable.size, durable.frontier.clone())?
            .root();
    let published = state::Published {
        size: durable.size,
        root,
        checkpoint: Arc::new(durable.checkpoint.clone()),
    };
    let policy = match &cfg.witness_policy {
        None => None,
        Some(p) => {
            let text = std::fs::read(p)
                .with_context(|| format!("reading witness policy {}", p.display()))?;
            let policy = vouch_spec::policy::Policy::parse(&text)
                .with_context(|| format!("witness policy {}", p.display()))?;
            if let Some(w) = policy.witnesses.iter().find(|w| w.url.is_none()) {
                anyhow::bail!(
                    "witness policy {}: witness {} has no URL to send checkpoints to",
                    p.display(),
                    w.name
                );
            }
            Some(policy)
        }
    };
    let served = match (&policy, store.witnessed()?) {
        (Some(_), Some(cp)) => {
            let note = vouch_spec::note::Note::parse(&cp)?;
            let c = vouch_spec::checkpoint::Checkpoint::parse(&note.text)?;
            Some(state::Published {
                size: c.size,
                root: c.root,
                checkpoint: Arc::new(cp),
            })
        }
        _ => None,
    };
    let shared = Arc::new(state::Shared::new(
        store.clone(),
        published,
        served,
        policy.is_some(),
    ));
    if let Some(policy) = policy {
        let settings = witnessing::Settings {
            policy,
            timeout: Duration::from_millis(cfg.witness_timeout_ms),
            attempts: cfg.witness_attempts,
        };
        let s = shared.clone();
        std::thread::Builder::new()
            .name("witnessing".into())
            .spawn(move || witnessing::run(s, settings))?;
    }
    let metrics = Arc::new(metrics::Metrics::default());
    metrics
        .entries
        .store(durable.size, std::sync::atomic::Ordering::Relaxed);
    let (tx, rx) = std::sync::mpsc::sync_channel(cfg.queue_capacity);
    let settings = sequencer::Settings {
        max_entries: cfg.batch_max_entries.max(1),
        max_wait: Duration::from_millis(cfg.batch_max_wait_ms),
        origin: cfg.origin.clone(),
        data_dir: cfg.data_dir.clone(),
        min_free_disk_bytes: cfg.min_free_disk_bytes,
    };
    let (s2, m2, st2) = (shared.clone(), metrics.clone(), store.clone());
    let seq = std::thread::Builder::new()
        .name("sequencer".into())
        .spawn(move || sequencer::run(st2, signer, settings, durable, rx, s2, m2))?;
    let limits = http::Limits {
        max_body_bytes: cfg.max_body_bytes,
        max_attestations: cfg.max_attestations_per_request,
        body_timeout: Duration::from_secs(cfg.body_timeout_secs),
        rate_per_second: cfg.rate_limit_per_second,
        rate_burst: cfg.rate_limit_burst.max(1.0),
        allowed,
        builder_rate_per_second: cfg.builder_rate_limit_per_second,
        builder_rate_burst: cfg.builder_rate_limit_burst.max(1.0),
        checkpoint_max_age: cfg.checkpoint_max_age_secs,
        wait_timeout: Duration::from_secs(cfg.wait_timeout_secs),
        // At least one largest body must fit.
        submit_memory_bytes: cfg.submit_memory_bytes.max(cfg.max_body_bytes),
    };
    let app = http::router(Arc::new(http::AppState::new(shared, tx, metrics, limits)));
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "serving");
    let conn_limits = vouch::serve::Limits {
        max_connections: cfg.max_connections.max(1),
        header_timeout: Duration::from_secs(cfg.header_timeout_secs.max(1)),
        max_connection_age: Duration::from_secs(cfg.max_connection_age_secs.max(1)),
        ..vouch::serve::Limits::default()
    }
    .fit_to_fd_limit();
    vouch::serve::serve(listener, app, conn_limits, shutdown_signal()).await;
    tracing::info!("HTTP stopped; waiting for the sequencer to finish its batch");
    tokio::task::spawn_blocking(move || seq.join())
        .await?
        .map_err(|_| anyhow::anyhow!("sequencer panicked"))??;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
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
