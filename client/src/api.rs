//! The log's HTTP interface, `spec/PROTOCOL.md` §4.2 and §5: the one place
//! that spells its paths ([`routes`] for the server's router, [`LogUrl`]
//! for clients) and the JSON bodies the log answers with, which the log
//! serialises and every client parses. Readers ignore unknown fields (§5).

use serde::{Deserialize, Serialize};
use vouch_spec::tile::Tile;

/// Paths relative to the log's prefix, in the form axum's router takes.
pub mod routes {
    /// `GET`: the served checkpoint (§4.2).
    pub const CHECKPOINT: &str = "/checkpoint";
    /// `GET`: hash tiles and entry bundles (§4.2).
    pub const TILE: &str = "/tile/{*path}";
    /// `POST`: attestations (§5.2).
    pub const SUBMIT: &str = "/vouch/v1/submit";
    /// `GET`: entries for a store path hash part (§5.3).
    pub const LOOKUP: &str = "/vouch/v1/lookup/{hash}";
    /// `POST`: one key transition statement (§5.7).
    pub const TRANSITION: &str = "/vouch/v1/transition";
    /// `GET`: the transitions naming an Ed25519 key (§5.7).
    pub const TRANSITIONS: &str = "/vouch/v1/transitions/{key}";
    /// `GET`: an inclusion proof (§5.4).
    pub const INCLUSION: &str = "/vouch/v1/proof/inclusion";
    /// `GET`: a consistency proof (§5.4).
    pub const CONSISTENCY: &str = "/vouch/v1/proof/consistency";
    /// `GET`: a digest-form entry's reference list (§5.5).
    pub const REFERENCES: &str = "/vouch/v1/references/{digest}";
    /// `GET`: a tlog-proof for one entry (§5.6).
    pub const BUNDLE: &str = "/vouch/v1/bundle/{index}";
    /// `GET`: Prometheus metrics.
    pub const METRICS: &str = "/metrics";
}

/// A log's URL prefix, and every URL under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogUrl(String);

impl LogUrl {
    /// The log at `prefix` (its tlog-tiles prefix; a trailing `/` is dropped).
    pub fn new(prefix: &str) -> LogUrl {
        LogUrl(prefix.trim_end_matches('/').to_string())
    }

    /// The prefix, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.0
    }

    /// `<prefix>/checkpoint`.
    pub fn checkpoint(&self) -> String {
        format!("{}/checkpoint", self.0)
    }

    /// `<prefix>/tile/...` for a hash tile or an entry bundle.
    pub fn tile(&self, t: &Tile) -> String {
        format!("{}/{}", self.0, t.path())
    }

    /// The submission endpoint, waiting for a covering checkpoint if `wait`.
    pub fn submit(&self, wait: bool) -> String {
        format!(
            "{}/vouch/v1/submit{}",
            self.0,
            if wait { "?wait=1" } else { "" }
        )
    }

    /// The lookup of a hash part, with tlog-proofs if `proofs`.
    pub fn lookup(&self, hash_part: &str, proofs: bool) -> String {
        format!(
            "{}/vouch/v1/lookup/{hash_part}{}",
            self.0,
            if proofs { "?proof=1" } else { "" }
        )
    }

    /// The transition submission endpoint.
    pub fn transition(&self, wait: bool) -> String {
        format!(
            "{}/vouch/v1/transition{}",
            self.0,
            if wait { "?wait=1" } else { "" }
        )
    }

    /// The transitions naming an Ed25519 key, with tlog-proofs if `proofs`.
    pub fn transitions(&self, key: &[u8; 32], proofs: bool) -> String {
        format!(
            "{}/vouch/v1/transitions/{}{}",
            self.0,
            vouch_spec::hex::encode(key),
            if proofs { "?proof=1" } else { "" }
        )
    }

    /// The inclusion proof of `index` in the tree of `size`.
    pub fn inclusion(&self, index: u64, size: u64) -> String {
        format!(
            "{}/vouch/v1/proof/inclusion?index={index}&size={size}",
            self.0
        )
    }

    /// The consistency proof from `old` to `new`.
    pub fn consistency(&self, old: u64, new: u64) -> String {
        format!("{}/vouch/v1/proof/consistency?old={old}&new={new}", self.0)
    }

    /// The reference list with this digest.
    pub fn references(&self, digest: &[u8; 32]) -> String {
        format!(
            "{}/vouch/v1/references/{}",
            self.0,
            vouch_spec::hex::encode(digest)
        )
    }

    /// The tlog-proof of the entry at `index`.
    pub fn bundle(&self, index: u64) -> String {
        format!("{}/vouch/v1/bundle/{index}", self.0)
    }
}

impl std::fmt::Display for LogUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One attestation's result in a submission answer (§5.2), in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitResult {
    /// Its index in the log.
    pub index: u64,
    /// Its leaf hash, base64.
    pub leaf_hash: String,
    /// Whether it was in the log already.
    pub duplicate: bool,
    /// With `wait=1`: its tlog-proof under the covering checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
}

/// The answer to a submission (§5.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitResponse {
    /// The results, in request order.
    pub entries: Vec<SubmitResult>,
    /// With `wait=1`: whether a served checkpoint covered them in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covered: Option<bool>,
}

/// One entry of a lookup answer (§5.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupEntry {
    /// Its index.
    pub index: u64,
    /// The entry text (§3.2).
    pub entry: String,
    /// With `proof=1`: its tlog-proof under the served checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
}

/// A lookup answer (§5.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupResponse {
    /// The size of the checkpoint served at lookup time.
    pub tree_size: u64,
    /// The entries for the path, in index order.
    pub entries: Vec<LookupEntry>,
}

/// An inclusion proof answer (§5.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionResponse {
    /// The leaf index.
    pub index: u64,
    /// The tree size.
    pub size: u64,
    /// The proof hashes, base64.
    pub proof: Vec<String>,
}

/// A consistency proof answer (§5.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyResponse {
    /// The old size.
    pub old: u64,
    /// The new size.
    pub new: u64,
    /// The proof hashes, base64.
    pub proof: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_spelled_once_and_match_the_routes() {
        let u = LogUrl::new("https://log.example/vouch/");
        assert_eq!(u.checkpoint(), "https://log.example/vouch/checkpoint");
        assert_eq!(
            u.lookup("00000000000000000000000000000000", true),
            "https://log.example/vouch/vouch/v1/lookup/00000000000000000000000000000000?proof=1"
        );
        assert_eq!(
            u.submit(true),
            "https://log.example/vouch/vouch/v1/submit?wait=1"
        );
        assert_eq!(
            u.tile(&Tile::full(0, 1)),
            "https://log.example/vouch/tile/0/001"
        );
        for (url, route) in [
            (u.submit(false), routes::SUBMIT),
            (u.inclusion(1, 2), routes::INCLUSION),
            (u.consistency(1, 2), routes::CONSISTENCY),
        ] {
            assert!(url.split('?').next().unwrap().ends_with(route), "{url}");
        }
    }

    #[test]
    fn readers_ignore_unknown_fields() {
        let r: LookupResponse = serde_json::from_str(
            r#"{"tree_size":3,"entries":[{"index":1,"entry":"e","later":true}],"more":1}"#,
        )
        .unwrap();
        assert_eq!(r.entries[0].proof, None);
    }
}
