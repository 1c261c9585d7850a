//! `.narinfo` files as Nix writes them (src/libstore/nar-info.cc): lines of
//! `Key: value`. Nix writes the fields in the order StorePath, URL,
//! Compression, FileHash, FileSize, NarHash, NarSize, References, Deriver,
//! System, Sig…, CA, and so does [`NarInfo::to_text`].
//!
//! Parsing accepts the fields in any order (caches differ) but is otherwise
//! strict: every line is `Key: value` ending in a newline, single-valued keys
//! appear once, hashes are `sha256:` + nix32 as Nix writes them, numbers are
//! canonical decimals, and all paths are valid store paths. Unknown keys are
//! kept, in order, so a narinfo round-trips.

use super::key::{fingerprint, NixSignature};
use super::nix32;
use super::store_path::{StorePath, StorePathError};
use crate::tile::parse_decimal;

/// The largest narinfo [`NarInfo::parse`] accepts (references can be many).
pub const MAX_NARINFO_LEN: usize = 4 << 20;

/// A parsed narinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NarInfo {
    /// `StorePath:`.
    pub store_path: StorePath,
    /// `URL:` of the (compressed) NAR, relative to the cache.
    pub url: String,
    /// `Compression:` (absent means bzip2 to Nix; kept as given).
    pub compression: Option<String>,
    /// `FileHash:` (sha256 of the compressed file).
    pub file_hash: Option<[u8; 32]>,
    /// `FileSize:`.
    pub file_size: Option<u64>,
    /// `NarHash:` (sha256 of the NAR serialization).
    pub nar_hash: [u8; 32],
    /// `NarSize:`.
    pub nar_size: u64,
    /// `References:`, as given (Nix treats them as a set).
    pub references: Vec<StorePath>,
    /// `Deriver:` (`None` if absent or `unknown-deriver`).
    pub deriver: Option<StorePath>,
    /// `System:`.
    pub system: Option<String>,
    /// `Sig:` lines.
    pub sigs: Vec<NixSignature>,
    /// `CA:` content address.
    pub ca: Option<String>,
    /// Unknown `Key: value` lines, kept in order.
    pub extra: Vec<(String, String)>,
}

/// Why a narinfo was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NarInfoError {
    /// Larger than [`MAX_NARINFO_LEN`].
    #[error("narinfo is {0} bytes, more than the {MAX_NARINFO_LEN} accepted")]
    TooLarge(usize),
    /// Not UTF-8, contains a control character, or lacks a final newline.
    #[error("narinfo is not newline-terminated UTF-8 text without control characters")]
    NotText,
    /// A line is not `Key: value`.
    #[error("narinfo line {0} is not \"Key: value\"")]
    Line(usize),
    /// A single-valued key appears twice.
    #[error("narinfo has {0} twice")]
    Duplicate(String),
    /// A required key is missing.
    #[error("narinfo has no {0} line")]
    Missing(&'static str),
    /// A value is malformed.
    #[error("narinfo {key}: {why}")]
    Value {
        /// The key.
        key: &'static str,
        /// What is wrong.
        why: String,
    },
    /// A path is malformed.
    #[error("narinfo {key}: {err}")]
    Path {
        /// The key.
        key: &'static str,
        /// The path error.
        err: StorePathError,
    },
}

/// Parses `sha256:<nix32>` as Nix writes narinfo hashes.
pub fn parse_sha256(key: &'static str, v: &str) -> Result<[u8; 32], NarInfoError> {
    let digits = v
        .strip_prefix("sha256:")
        .ok_or_else(|| NarInfoError::Value {
            key,
            why: format!("{v:?} is not sha256:<nix32>"),
        })?;
    let mut out = [0u8; 32];
    nix32::decode_into(digits, &mut out).map_err(|e| NarInfoError::Value {
        key,
        why: e.to_string(),
    })?;
    Ok(out)
}

/// Formats a hash as `sha256:<nix32>`.
pub fn format_sha256(h: &[u8; 32]) -> String {
    format!("sha256:{}", nix32::encode(h))
}

impl NarInfo {
    /// Parses a narinfo.
    pub fn parse(data: &[u8]) -> Result<NarInfo, NarInfoError> {
        if data.len() > MAX_NARINFO_LEN {
            return Err(NarInfoError::TooLarge(data.len()));
        }
        let text = crate::text::line_text(data).ok_or(NarInfoError::NotText)?;
        let mut fields: std::collections::HashMap<&'static str, &str> = Default::default();
        let mut sigs = Vec::new();
        let mut extra = Vec::new();
        const SINGLE: [&str; 11] = [
            "StorePath",
            "URL",
            "Compression",
            "FileHash",
            "FileSize",
            "NarHash",
            "NarSize",
            "References",
            "Deriver",
            "System",
            "CA",
        ];
        for (i, line) in text[..text.len() - 1].split('\n').enumerate() {
            let (k, v) = line.split_once(": ").ok_or(NarInfoError::Line(i + 1))?;
            if k.is_empty() || k.contains(':') || k.contains(' ') {
                return Err(NarInfoError::Line(i + 1));
            }
            if k == "Sig" {
                sigs.push(NixSignature::parse(v).map_err(|e| NarInfoError::Value {
                    key: "Sig",
                    why: e.to_string(),
                })?);
            } else if let Some(key) = SINGLE.iter().find(|s| **s == k) {
                if fields.insert(key, v).is_some() {
                    return Err(NarInfoError::Duplicate(k.to_string()));
                }
            } else {
                extra.push((k.to_string(), v.to_string()));
            }
        }
        let get = |k: &'static str| fields.get(k).copied();
        let need = |k: &'static str| get(k).ok_or(NarInfoError::Missing(k));
        let number = |k: &'static str, v: &str| {
            parse_decimal(v).ok_or_else(|| NarInfoError::Value {
                key: k,
                why: format!("{v:?} is not a decimal"),
            })
        };
        let store_path =
            StorePath::parse(need("StorePath")?).map_err(|err| NarInfoError::Path {
                key: "StorePath",
                err,
            })?;
        let dir = store_path.store_dir().to_string();
        let url = need("URL")?.to_string();
        if url.is_empty() {
            return Err(NarInfoError::Value {
                key: "URL",
                why: "empty".into(),
            });
        }
        let nar_hash = parse_sha256("NarHash", need("NarHash")?)?;
        let nar_size = number("NarSize", need("NarSize")?)?;
        if nar_size == 0 {
            return Err(NarInfoError::Value {
                key: "NarSize",
                why: "must not be 0".into(),
            });
        }
        let references = match get("References") {
            None | Some("") => Vec::new(),
            Some(v) => v
                .split(' ')
                .map(|b| {
                    StorePath::from_base(&dir, b).map_err(|err| NarInfoError::Path {
                        key: "References",
                        err,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let deriver = match get("Deriver") {
            None | Some("unknown-deriver") => None,
            Some(b) => Some(
                StorePath::from_base(&dir, b).map_err(|err| NarInfoError::Path {
                    key: "Deriver",
                    err,
                })?,
            ),
        };
        Ok(NarInfo {
            store_path,
            url,
            compression: get("Compression").map(str::to_string),
            file_hash: get("FileHash")
                .map(|v| parse_sha256("FileHash", v))
                .transpose()?,
            file_size: get("FileSize").map(|v| number("FileSize", v)).transpose()?,
            nar_hash,
            nar_size,
            references,
            deriver,
            system: get("System").map(str::to_string),
            sigs,
            ca: get("CA").map(str::to_string),
            extra,
        })
    }

    /// Writes the narinfo in Nix's field order.
    pub fn to_text(&self) -> String {
        let mut s = format!("StorePath: {}\nURL: {}\n", self.store_path, self.url);
        if let Some(c) = &self.compression {
            s += &format!("Compression: {c}\n");
        }
        if let Some(h) = &self.file_hash {
            s += &format!("FileHash: {}\n", format_sha256(h));
        }
        if let Some(n) = self.file_size {
            s += &format!("FileSize: {n}\n");
        }
        s += &format!(
            "NarHash: {}\nNarSize: {}\n",
            format_sha256(&self.nar_hash),
            self.nar_size
        );
        let refs: Vec<&str> = self.references.iter().map(|r| r.base()).collect();
        s += &format!("References: {}\n", refs.join(" "));
        if let Some(d) = &self.deriver {
            s += &format!("Deriver: {}\n", d.base());
        }
        if let Some(sys) = &self.system {
            s += &format!("System: {sys}\n");
        }
        for sig in &self.sigs {
            s += &format!("Sig: {sig}\n");
        }
        if let Some(ca) = &self.ca {
            s += &format!("CA: {ca}\n");
        }
        for (k, v) in &self.extra {
            s += &format!("{k}: {v}\n");
        }
        s
    }

    /// The fingerprint its `Sig:` lines sign.
    pub fn fingerprint(&self) -> String {
        fingerprint(
            &self.store_path,
            &self.nar_hash,
            self.nar_size,
            &self.references,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nix::key::NixPublicKey;

    const HELLO: &str = include_str!("../../testdata/nix/hello.narinfo");
    const DEP: &str = include_str!("../../testdata/nix/dep.narinfo");

    fn pubkey(name: &str) -> NixPublicKey {
        let text = match name {
            "1" => include_str!("../../testdata/nix/builder-1.pub"),
            _ => include_str!("../../testdata/nix/builder-2.pub"),
        };
        NixPublicKey::parse(text.trim_end()).unwrap()
    }

    #[test]
    fn real_narinfos_roundtrip_and_verify() {
        for text in [HELLO, DEP] {
            let n = NarInfo::parse(text.as_bytes()).unwrap();
            assert_eq!(n.to_text(), text);
            assert_eq!(n.sigs.len(), 2);
            assert!(pubkey("1").verify(&n.fingerprint(), &n.sigs[0]));
            assert!(pubkey("2").verify(&n.fingerprint(), &n.sigs[1]));
            assert!(!pubkey("1").verify(&n.fingerprint(), &n.sigs[1]));
        }
        let n = NarInfo::parse(HELLO.as_bytes()).unwrap();
        assert_eq!(
            n.fingerprint(),
            "1;/nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns-vouch-hello;sha256:1yhwyc0l5x5imibnlnzgscrwjsqmkgyxbq3hi9v2y0icby7036hs;184;/nix/store/i7imialynm0v8ki0s68lbllxx124zyhs-vouch-dep"
        );
    }

    #[test]
    fn nar_hash_matches_nix_path_info_sri() {
        // `nix path-info --json` prints the same hash as SRI base64.
        let n = NarInfo::parse(HELLO.as_bytes()).unwrap();
        let json = include_str!("../../testdata/nix/path-info.json");
        let sri = json
            .split("\"narHash\":\"sha256-")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(crate::b64::decode(sri).unwrap(), n.nar_hash);
    }

    #[test]
    fn rejects_malformed() {
        let cases = [
            HELLO.replace("NarSize: 184", "NarSize: 0184"),
            HELLO.replace("NarSize: 184\n", ""),
            HELLO.replace("NarHash: sha256:", "NarHash: sha512:"),
            HELLO.replace("StorePath: ", "StorePath:"),
            HELLO.replace(
                "References: i7imialynm0v8ki0s68lbllxx124zyhs-vouch-dep",
                "References: i7imialynm0v8ki0s68lbllxx124zyhs-vouch-dep ",
            ),
            HELLO.replace("\n", "\r\n"),
            format!("{HELLO}NarSize: 184\n"),
            HELLO.trim_end().to_string(),
            HELLO.replace(
                "Sig: builder-1.example.org-1:",
                "Sig: builder-1.example.org-1:A",
            ),
        ];
        for c in cases {
            assert!(NarInfo::parse(c.as_bytes()).is_err(), "{c}");
        }
        let unknown = format!("{HELLO}X-Custom: 1\n");
        assert_eq!(
            NarInfo::parse(unknown.as_bytes()).unwrap().to_text(),
            unknown
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_write_is_a_fixed_point(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            if let Ok(n) = NarInfo::parse(&data) {
                let again = NarInfo::parse(n.to_text().as_bytes()).unwrap();
                proptest::prop_assert_eq!(again, n);
            }
        }

        #[test]
        fn mutated_real_narinfo_never_panics(pos in 0usize..700, byte in proptest::prelude::any::<u8>()) {
            let mut b = HELLO.as_bytes().to_vec();
            let p = pos % b.len();
            b[p] = byte;
            if let Ok(n) = NarInfo::parse(&b) {
                proptest::prop_assert_eq!(NarInfo::parse(n.to_text().as_bytes()).unwrap(), n);
            }
        }
    }
}
