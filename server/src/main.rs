//! `vouch-log`: run a Vouch transparency log.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vouch_log::config::Config;
use vouch_log::keys;

/// mimalloc in place of glibc's malloc for the Rust side (RocksDB's C++
/// keeps glibc's): answers, proofs, request buffers and values copied out
/// of RocksDB are many small, short-lived allocations, and glibc's malloc
/// was a tenth of the log's CPU under lookups. Measured: 5–12 % less log
/// CPU per lookup and 2 % per ingested entry, for ~180 MiB more peak
/// memory under ingest (BENCHMARKS.md, issue 18).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A transparency log for Nix build attestations (C2SP tlog-tiles, RFC 6962).
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a log signing key (a C2SP private key file, mode 0600) and print its verifier key.
    Keygen {
        /// The log's origin, e.g. log.example.org/vouch; becomes the key name.
        #[arg(long)]
        origin: String,
        /// Where to write the private key; must not exist.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the log. With no flags: data in ./vouch-data, listening on
    /// 127.0.0.1:8080, with a key created on first start.
    Serve {
        /// TOML configuration file; flags given here override it. Every
        /// setting has a default (README.md, section "Running the log").
        #[arg(long)]
        config: Option<PathBuf>,
        /// Directory for the database (and the key, unless --key is given).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address and port to listen on.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// The log's private key file (from `vouch-log keygen`). Without it,
        /// <data-dir>/log.key is used, and created on first start.
        #[arg(long)]
        key: Option<PathBuf>,
        /// The log's origin (checkpoint first line). Unset: the key's own
        /// (its name); if given, it must be the key's.
        #[arg(long)]
        origin: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    vouch::init_logging();
    match Cli::parse().command {
        Command::Keygen { origin, out } => {
            let signer = keys::generate(&out, &origin)?;
            println!("{}", signer.verifier().vkey());
            Ok(())
        }
        Command::Serve {
            config,
            data_dir,
            listen,
            key,
            origin,
        } => {
            let mut cfg = match &config {
                Some(p) => Config::load(p).map_err(anyhow::Error::msg)?,
                None => Config::default(),
            };
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if let Some(k) = key {
                cfg.key_file = Some(k);
            }
            if let Some(o) = origin {
                cfg.origin = Some(o);
            }
            let path = cfg.key_path();
            let signer = if path.exists() {
                keys::load(&path)?
            } else if cfg.key_file.is_none() {
                let origin = cfg
                    .origin
                    .clone()
                    .unwrap_or_else(|| vouch_log::config::DEFAULT_ORIGIN.to_string());
                let s = keys::generate(&path, &origin)?;
                eprintln!("created log key {} for origin {origin}", path.display());
                s
            } else {
                anyhow::bail!(
                    "key file {} does not exist (create one with `vouch-log keygen`)",
                    path.display()
                );
            };
            println!("{}", signer.verifier().vkey());
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            Ok(rt.block_on(vouch_log::serve(cfg, signer))?)
        }
    }
}
