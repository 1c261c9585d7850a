//! `nix path-info --json` output, in both shapes Nix has printed: the old
//! array of objects with a `path` field (Nix ≤ 2.18) and the newer object
//! keyed by store path. NAR hashes come as SRI (`sha256-<base64>`) or as
//! `sha256:<nix32>`.

use serde_json::Value;
use vouch_spec::nix::narinfo::parse_sha256;
use vouch_spec::nix::StorePath;

/// What an attestation needs from path-info.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathInfo {
    /// The store path.
    pub path: StorePath,
    /// NAR hash.
    pub nar_hash: [u8; 32],
    /// NAR size.
    pub nar_size: u64,
    /// References (full paths).
    pub references: Vec<StorePath>,
    /// Deriver, if known.
    pub deriver: Option<StorePath>,
}

/// Why path-info JSON was rejected.
#[derive(Debug, thiserror::Error)]
#[error("nix path-info JSON: {0}")]
pub struct PathInfoError(String);

fn hash(v: &str) -> Result<[u8; 32], PathInfoError> {
    if let Some(b) = v.strip_prefix("sha256-") {
        let raw = vouch_spec::b64::decode(b)
            .map_err(|_| PathInfoError(format!("narHash {v:?} is not SRI base64")))?;
        return raw
            .try_into()
            .map_err(|_| PathInfoError(format!("narHash {v:?} is not 32 bytes")));
    }
    parse_sha256("narHash", v).map_err(|e| PathInfoError(e.to_string()))
}

fn one(path: &str, o: &Value) -> Result<PathInfo, PathInfoError> {
    let p = StorePath::parse(path).map_err(|e| PathInfoError(e.to_string()))?;
    let nar_hash = hash(
        o["narHash"]
            .as_str()
            .ok_or_else(|| PathInfoError(format!("{path}: no narHash (is the path valid?)")))?,
    )?;
    let nar_size = o["narSize"]
        .as_u64()
        .ok_or_else(|| PathInfoError(format!("{path}: no narSize")))?;
    let references = o["references"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|r| StorePath::parse(r).map_err(|e| PathInfoError(e.to_string())))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    let deriver = o["deriver"]
        .as_str()
        .map(|d| StorePath::parse(d).map_err(|e| PathInfoError(e.to_string())))
        .transpose()?;
    Ok(PathInfo {
        path: p,
        nar_hash,
        nar_size,
        references,
        deriver,
    })
}

/// Parses `nix path-info --json` output.
pub fn parse(json: &[u8]) -> Result<Vec<PathInfo>, PathInfoError> {
    let v: Value = serde_json::from_slice(json).map_err(|e| PathInfoError(e.to_string()))?;
    match v {
        Value::Array(items) => items
            .iter()
            .map(|o| {
                one(
                    o["path"]
                        .as_str()
                        .ok_or_else(|| PathInfoError("array item without \"path\"".into()))?,
                    o,
                )
            })
            .collect(),
        Value::Object(map) => map.iter().map(|(k, o)| one(k, o)).collect(),
        _ => Err(PathInfoError("expected an array or an object".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes() {
        let old = br#"[{"path":"/nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns-vouch-hello","narHash":"sha256-GpoBjl8sAi92inDg1f2bFWvJM9PvW2pXrLH0QgHzHPo=","narSize":184,"references":["/nix/store/i7imialynm0v8ki0s68lbllxx124zyhs-vouch-dep"],"deriver":"/nix/store/4myk779h2pwflpk49k6iljcx8xvk87s1-vouch-hello.drv"}]"#;
        let new = br#"{"/nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns-vouch-hello":{"narHash":"sha256:1yhwyc0l5x5imibnlnzgscrwjsqmkgyxbq3hi9v2y0icby7036hs","narSize":184,"references":["/nix/store/i7imialynm0v8ki0s68lbllxx124zyhs-vouch-dep"],"deriver":"/nix/store/4myk779h2pwflpk49k6iljcx8xvk87s1-vouch-hello.drv"}}"#;
        let a = parse(old).unwrap();
        let b = parse(new).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].nar_size, 184);
        assert!(parse(b"[{}]").is_err());
        assert!(parse(b"3").is_err());
    }
}
