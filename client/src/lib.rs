//! # vouch: the IO half of the Vouch protocol
//!
//! `vouch-spec` decides (pure functions over bytes); this library does what
//! deciding needs from the world, once, for every Vouch party: the log
//! server, the witness, the monitor and the `vouch` command all link it.
//! The log server using it is intended: it is the shared shell, not the
//! client. The `vouch` binary's own code (its CLI, the substituter,
//! backfill, the post-build hook's spool, NAR serialisation) lives in
//! `src/cli/` and is linked by nothing else.
//!
//! | module | what it does |
//! |---|---|
//! | [`http`] | the one HTTP client: rustls with Nix's trust roots, proxies from the environment, timeouts, `file://`; errors that name the URL |
//! | [`api`] | the log's URLs and JSON bodies (`spec/PROTOCOL.md` §4.2, §5), shared by the server and its clients |
//! | [`log_client`] | a client of one log: checkpoint, lookups, submissions, proofs |
//! | [`tiles`] | reading tlog-tiles: hash tiles, bundles, proofs from tiles, a cache of verified tiles |
//! | [`tracker`] | the checkpoint tracker: kept checkpoint per origin by compare-and-swap, forks as data |
//! | [`state`] | the client's tracker store: files in a state directory |
//! | [`verifier`] | the acceptance rule's IO shell: fetch, decide (`vouch_spec::accept`), persist |
//! | [`serve`] | the serving loop every Vouch server uses, with its connection and body bounds, and systemd readiness |
//! | [`client_addr`] | a request's client address, believing only trusted reverse proxies |
//! | [`metrics`] | Prometheus exposition, shared by every server |
//! | [`ratelimit`] | token buckets by key (client address, builder key) |
//! | [`keyfile`] | private key files (0600, never overwritten, refused when readable by others) |
//! | [`atomic`] | the one atomic, durable file replacement |
//! | [`logging`] | `tracing` to stderr, filtered by `VOUCH_LOG` |
#![forbid(unsafe_code)]

pub mod api;
pub mod atomic;
pub mod client_addr;
pub mod http;
pub mod keyfile;
pub mod log_client;
pub mod logging;
pub mod metrics;
pub mod ratelimit;
pub mod serve;
pub mod state;
pub mod tiles;
pub mod tracker;
pub mod verifier;

pub use logging::init as init_logging;
