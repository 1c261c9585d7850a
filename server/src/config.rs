//! `vouch-log` configuration: a TOML file whose every field has an embedded
//! default, overridden by command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything the log can be told.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The log's origin (checkpoint first line and key name). Unset: the
    /// key's name, or `vouch.localhost/log` for a key made on first start.
    pub origin: Option<String>,
    /// Where RocksDB and the generated key live.
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The log's private key (C2SP skey); default `<data_dir>/log.key`, created on first start.
    pub key_file: Option<PathBuf>,
    /// Largest batch the sequencer integrates at once (entries).
    pub batch_max_entries: usize,
    /// Longest a submission waits for its batch to fill (milliseconds).
    pub batch_max_wait_ms: u64,
    /// Submissions that may wait for the sequencer before 503.
    pub queue_capacity: usize,
    /// Largest submission body (bytes); larger is 413.
    pub max_body_bytes: usize,
    /// Most attestations in one submission; more is 413.
    pub max_attestations_per_request: usize,
    /// Seconds a client has to send its whole body; slower is 408.
    pub body_timeout_secs: u64,
    /// Submission bytes held in memory at once, counted as they arrive and
    /// until the sequencer has logged them (at least `max_body_bytes`); a
    /// submission that would overrun it is 503 with Retry-After, so slow
    /// clients cannot pile up.
    pub submit_memory_bytes: usize,
    /// Connections served at once (lowered to half the file-descriptor
    /// limit); more are answered 503 with Retry-After.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers.
    pub header_timeout_secs: u64,
    /// Seconds after which a connection is closed once its current request
    /// is answered (and dropped 30 s later if it still has not finished).
    pub max_connection_age_secs: u64,
    /// Submissions per second allowed per client address (0: unlimited).
    pub rate_limit_per_second: f64,
    /// Burst allowed above the per-address rate.
    pub rate_limit_burst: f64,
    /// Attestations per second allowed per builder key (0: unlimited).
    pub builder_rate_limit_per_second: f64,
    /// Burst allowed above the per-key rate.
    pub builder_rate_limit_burst: f64,
    /// Builder keys (`name:base64`) allowed to submit; empty: anyone.
    pub allowed_builders: Vec<String>,
    /// Reverse proxies or CDNs (addresses or CIDR ranges) whose
    /// `Forwarded` / `X-Forwarded-For` headers give the client address for
    /// rate limits; from any other peer these headers are ignored.
    pub trusted_proxies: Vec<String>,
    /// `max-age` of `/checkpoint` (seconds).
    pub checkpoint_max_age_secs: u64,
    /// How long a `wait=1` submission waits for a served checkpoint (seconds).
    pub wait_timeout_secs: u64,
    /// Refuse new entries (503) while the data directory's filesystem has
    /// less than this many bytes free, so the database never runs out of
    /// space mid-write; submissions resume once space returns.
    pub min_free_disk_bytes: u64,
    /// A C2SP tlog-policy file naming the witnesses (with their submission
    /// URLs) and the quorum; when set, `/checkpoint` serves only checkpoints
    /// that met the quorum.
    pub witness_policy: Option<PathBuf>,
    /// Timeout of one request to a witness (milliseconds).
    pub witness_timeout_ms: u64,
    /// Attempts per witness per checkpoint.
    pub witness_attempts: u32,
    /// Publishing the read path to object storage (`[publish]`).
    pub publish: PublishConfig,
}

/// Where the log publishes its read path (`spec/PROTOCOL.md` §4.3).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// Checkpoint, hash tiles and entry bundles: `file:///dir` or
    /// `s3://bucket[/prefix]`, served by a web server or CDN as the log's
    /// read-only tlog-tiles prefix.
    pub tiles: Option<String>,
    /// Each attestation's tlog-proof as `<hash part>.vouch/<n>.tlog-proof`,
    /// beside a binary cache's narinfos: `file:///dir` or `s3://…`.
    pub proofs: Option<String>,
    /// How to reach an S3-compatible service (both destinations).
    pub s3: crate::objects::S3Settings,
}

/// The origin a log made without one is given.
pub const DEFAULT_ORIGIN: &str = "vouch.localhost/log";

impl Default for Config {
    fn default() -> Config {
        Config {
            origin: None,
            data_dir: PathBuf::from("vouch-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            key_file: None,
            batch_max_entries: 4096,
            batch_max_wait_ms: 20,
            queue_capacity: 1024,
            max_body_bytes: 16 << 20,
            max_attestations_per_request: 1000,
            body_timeout_secs: 30,
            submit_memory_bytes: 256 << 20,
            max_connections: 4096,
            header_timeout_secs: 10,
            max_connection_age_secs: 300,
            rate_limit_per_second: 0.0,
            rate_limit_burst: 100.0,
            builder_rate_limit_per_second: 0.0,
            builder_rate_limit_burst: 10000.0,
            allowed_builders: Vec::new(),
            trusted_proxies: Vec::new(),
            checkpoint_max_age_secs: 2,
            wait_timeout_secs: 30,
            min_free_disk_bytes: 64 << 20,
            witness_policy: None,
            witness_timeout_ms: 5000,
            witness_attempts: 3,
            publish: PublishConfig::default(),
        }
    }
}

impl Config {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config {}: {e}", path.display()))
    }

    /// The key file to use.
    pub fn key_path(&self) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("log.key"))
    }
}
