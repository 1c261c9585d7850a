//! # vouch: the Vouch client
//!
//! The verification library ([`verifier`]: the acceptance rule of
//! `spec/PROTOCOL.md` §7 with durable per-log state in [`state`]), reading
//! logs over HTTP ([`fetch`]), and the Nix substituter proxy
//! ([`substituter`]). The `vouch` binary is the CLI over these.
#![forbid(unsafe_code)]

pub mod backfill;
pub mod fetch;
pub mod keyfile;
pub mod nar;
pub mod pathinfo;
pub mod serve;
pub mod spool;
pub mod state;
pub mod substituter;
pub mod verifier;

/// Logs to stderr through `tracing`, filtered by `VOUCH_LOG` (default
/// `info`), with colour only on a terminal. Shared by every Vouch binary.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VOUCH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
