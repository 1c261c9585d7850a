//! Witness configuration (TOML).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A log the witness cosigns for.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The log's origin.
    pub origin: String,
    /// Its Ed25519 vkeys (any one may sign).
    pub vkeys: Vec<String>,
    /// Its tlog-tiles prefix, for pull mode (the witness fetches checkpoints
    /// and tiles itself). Omit for push only.
    #[serde(default)]
    pub url: Option<String>,
}

/// The witness's settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Private key file (from `vouch-witness keygen`).
    pub key_file: PathBuf,
    /// Where per-log state is kept.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Path prefix of `add-checkpoint` (submission prefix), e.g. "" or "/witness".
    #[serde(default)]
    pub submission_prefix: String,
    /// Path prefix of `<origin hash>/checkpoint` (monitoring prefix).
    #[serde(default)]
    pub monitoring_prefix: String,
    /// Seconds between polls of logs with a URL.
    #[serde(default = "default_poll")]
    pub poll_interval_secs: u64,
    /// Connections served at once (lowered to half the file-descriptor
    /// limit); more are answered 503 with Retry-After.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Reverse proxies (addresses or CIDR ranges) whose `Forwarded` /
    /// `X-Forwarded-For` headers name the client; ignored from anyone else.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// `add-checkpoint` (and a mirror's `add-entries`) requests per second
    /// per client address (0: off; 429).
    #[serde(default)]
    pub rate_limit_per_second: f64,
    /// Burst above that rate.
    #[serde(default = "default_burst")]
    pub rate_limit_burst: f64,
    /// The logs.
    #[serde(default, rename = "log")]
    pub logs: Vec<LogConfig>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("witness-data")
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}

fn default_max_connections() -> usize {
    1024
}

fn default_header_timeout() -> u64 {
    10
}

fn default_burst() -> f64 {
    20.0
}

fn default_poll() -> u64 {
    5
}

impl Config {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config {}: {e}", path.display()))
    }
}
