//! Nix binary cache signing keys and signatures (Nix src/libutil/signature,
//! `nix key generate-secret`, `nix-store --generate-binary-cache-key`), and
//! the narinfo fingerprint they sign (src/libstore/path-info.cc
//! `ValidPathInfo::fingerprint`):
//!
//! ```text
//! 1;<store path>;sha256:<nix32 NAR hash>;<NAR size>;<comma-separated reference paths>
//! ```
//!
//! A key is `<name>:<base64>`: 64 bytes (libsodium seed ‖ public key) for a
//! secret key, 32 for a public key. A signature is `<name>:<base64 of 64 bytes>`.

use std::fmt;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use super::nix32;
use super::store_path::StorePath;
use crate::b64;
use crate::note::{ed25519_key, ed25519_verify};

/// Why a key or signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NixKeyError {
    /// No `:` separating a non-empty name from the data.
    #[error("{what} is not <name>:<base64> with a non-empty name")]
    Form {
        /// "public key", "secret key" or "signature".
        what: &'static str,
    },
    /// The base64 is not canonical.
    #[error("{what} {name:?} is not canonical base64")]
    Base64 {
        /// What was parsed.
        what: &'static str,
        /// The key name.
        name: String,
    },
    /// Wrong decoded length.
    #[error("{what} {name:?} decodes to {got} bytes, want {want}")]
    Length {
        /// What was parsed.
        what: &'static str,
        /// The key name.
        name: String,
        /// Bytes found.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// Not a valid Ed25519 public key, or a secret key whose halves disagree.
    #[error("{what} {name:?} is not a valid Ed25519 key")]
    Invalid {
        /// What was parsed.
        what: &'static str,
        /// The key name.
        name: String,
    },
}

fn split<'a>(s: &'a str, what: &'static str) -> Result<(&'a str, &'a str), NixKeyError> {
    let (name, data) = s.split_once(':').ok_or(NixKeyError::Form { what })?;
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(NixKeyError::Form { what });
    }
    Ok((name, data))
}

fn decode_len(
    name: &str,
    data: &str,
    want: usize,
    what: &'static str,
) -> Result<Vec<u8>, NixKeyError> {
    let raw = b64::decode(data).map_err(|_| NixKeyError::Base64 {
        what,
        name: name.to_string(),
    })?;
    if raw.len() != want {
        return Err(NixKeyError::Length {
            what,
            name: name.to_string(),
            got: raw.len(),
            want,
        });
    }
    Ok(raw)
}

/// Keys decompressed recently on this thread: a log or monitor parses the
/// same few builder keys in every entry, and decompressing one (a square
/// root in the field) costs about as much as a third of a signature check.
/// A pure memo: the answer for given bytes never changes.
const KEY_CACHE: usize = 4096;

thread_local! {
    static KEYS: std::cell::RefCell<std::collections::HashMap<[u8; 32], Option<VerifyingKey>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

fn cached_key(raw: &[u8]) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = raw.try_into().ok()?;
    KEYS.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(k) = c.get(&bytes) {
            return *k;
        }
        if c.len() >= KEY_CACHE {
            c.clear();
        }
        let k = ed25519_key(raw);
        c.insert(bytes, k);
        k
    })
}

/// A Nix public key, `<name>:<base64 32 bytes>`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NixPublicKey {
    name: String,
    key: VerifyingKey,
}

impl NixPublicKey {
    /// Length of the `name:base64` form.
    pub fn encoded_len(&self) -> usize {
        self.name.len() + 1 + 44
    }

    /// Appends the `name:base64` form (what [`fmt::Display`] writes) to `out`.
    pub fn push_to(&self, out: &mut String) {
        out.push_str(&self.name);
        out.push(':');
        b64::push(self.key.as_bytes(), out);
    }

    /// Parses the `name:base64` form (surrounding whitespace, as in a key
    /// file's final newline, is not accepted here; trim it first).
    pub fn parse(s: &str) -> Result<NixPublicKey, NixKeyError> {
        const WHAT: &str = "public key";
        let (name, data) = split(s, WHAT)?;
        let raw = decode_len(name, data, 32, WHAT)?;
        let key = cached_key(&raw).ok_or(NixKeyError::Invalid {
            what: WHAT,
            name: name.to_string(),
        })?;
        Ok(NixPublicKey {
            name: name.to_string(),
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Ed25519 key.
    pub fn key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Whether `sig` is this key's valid signature over `fingerprint`.
    pub fn verify(&self, fingerprint: &str, sig: &NixSignature) -> bool {
        sig.name == self.name && ed25519_verify(&self.key, fingerprint.as_bytes(), &sig.sig)
    }
}

impl fmt::Display for NixPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(self.encoded_len());
        self.push_to(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for NixPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NixPublicKey({self})")
    }
}

/// A Nix secret key, `<name>:<base64 64 bytes>` (seed ‖ public key).
#[derive(Clone)]
pub struct NixSecretKey {
    name: String,
    key: SigningKey,
}

impl fmt::Debug for NixSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NixSecretKey({}:…)", self.name)
    }
}

impl NixSecretKey {
    /// Parses the `name:base64` form of a secret key file.
    pub fn parse(s: &str) -> Result<NixSecretKey, NixKeyError> {
        const WHAT: &str = "secret key";
        let (name, data) = split(s, WHAT)?;
        let raw = decode_len(name, data, 64, WHAT)?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&raw[..32]);
        let key = SigningKey::from_bytes(&seed);
        if key.verifying_key().as_bytes() != &raw[32..] {
            return Err(NixKeyError::Invalid {
                what: WHAT,
                name: name.to_string(),
            });
        }
        Ok(NixSecretKey {
            name: name.to_string(),
            key,
        })
    }

    /// A key named `name` from a 32-byte seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<NixSecretKey, NixKeyError> {
        if name.is_empty()
            || name.contains(':')
            || name.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(NixKeyError::Form { what: "secret key" });
        }
        Ok(NixSecretKey {
            name: name.to_string(),
            key: SigningKey::from_bytes(seed),
        })
    }

    /// The secret key file contents (without newline).
    pub fn encode(&self) -> String {
        let mut raw = self.key.to_bytes().to_vec();
        raw.extend_from_slice(self.key.verifying_key().as_bytes());
        format!("{}:{}", self.name, b64::encode(raw))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public half.
    pub fn public(&self) -> NixPublicKey {
        NixPublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// Signs a fingerprint.
    pub fn sign(&self, fingerprint: &str) -> NixSignature {
        NixSignature {
            name: self.name.clone(),
            sig: self.key.sign(fingerprint.as_bytes()).to_bytes(),
        }
    }
}

/// A `Sig:` value: `<key name>:<base64 of a 64-byte Ed25519 signature>`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NixSignature {
    /// Name of the key that signed.
    pub name: String,
    /// The signature.
    pub sig: [u8; 64],
}

impl NixSignature {
    /// Parses a `Sig:` value.
    pub fn parse(s: &str) -> Result<NixSignature, NixKeyError> {
        const WHAT: &str = "signature";
        let (name, data) = split(s, WHAT)?;
        let raw = decode_len(name, data, 64, WHAT)?;
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&raw);
        Ok(NixSignature {
            name: name.to_string(),
            sig,
        })
    }
}

impl fmt::Display for NixSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, b64::encode(self.sig))
    }
}

impl fmt::Debug for NixSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NixSignature({self})")
    }
}

/// The fingerprint a cache signature covers. `references` are sorted by the
/// caller's set order; Nix sorts them as strings, and so does this function.
pub fn fingerprint(
    path: &StorePath,
    nar_hash: &[u8; 32],
    nar_size: u64,
    references: &[StorePath],
) -> String {
    let mut out = String::with_capacity(
        path.full_len() + 72 + references.iter().map(|r| r.full_len() + 1).sum::<usize>(),
    );
    out.push_str("1;");
    path.push_full(&mut out);
    out.push_str(";sha256:");
    out.push_str(&nix32::encode(nar_hash));
    out.push(';');
    out.push_str(&nar_size.to_string());
    out.push(';');
    push_references_field(&mut out, references);
    out
}

/// The fingerprint's reference field: full paths, sorted, comma-separated
/// (what a digest-form entry's `references-sha256` covers).
pub fn references_field(refs: &[StorePath]) -> String {
    let mut out = String::with_capacity(refs.iter().map(|r| r.full_len() + 1).sum());
    push_references_field(&mut out, refs);
    out
}

/// Appends [`references_field`] to `out`, written in place: the log makes
/// one per submitted attestation, and building each full path, joining
/// and formatting cost about a dozen allocations.
fn push_references_field(out: &mut String, refs: &[StorePath]) {
    let mut sorted: Vec<&StorePath> = refs.iter().collect();
    sorted.sort_by(|a, b| a.cmp_full(b));
    for (i, r) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        r.push_full(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The fingerprint written in place is Nix's definition: sorted
        /// full paths joined by commas, even across store directories
        /// whose order differs from their full paths' order.
        #[test]
        fn fingerprint_is_the_plain_definition(
            refs in proptest::collection::vec((0usize..3, 0u8..40, "[a-z0-9][a-z0-9+._-]{0,11}"), 0..8),
            size in any::<u64>(),
            hash in any::<[u8; 32]>(),
        ) {
            let dirs = ["/nix/store", "/nix/store2", "/nix/stor"];
            let sp = |d: usize, h: u8, name: &str| {
                let digits = nix32::encode(&[h; 20]);
                StorePath::from_base(dirs[d], &format!("{digits}-{name}")).unwrap()
            };
            let path = sp(0, 1, "p");
            let refs: Vec<StorePath> = refs.iter().map(|(d, h, n)| sp(*d, *h, n)).collect();
            let mut full: Vec<String> = refs.iter().map(|r| r.full()).collect();
            full.sort();
            let plain = format!(
                "1;{};sha256:{};{};{}",
                path.full(),
                nix32::encode(&hash),
                size,
                full.join(",")
            );
            prop_assert_eq!(references_field(&refs), full.join(","));
            prop_assert_eq!(fingerprint(&path, &hash, size, &refs), plain);
        }
    }

    #[test]
    fn parse_and_roundtrip() {
        let sk = NixSecretKey::from_seed("test-1", &[5; 32]).unwrap();
        let sk2 = NixSecretKey::parse(&sk.encode()).unwrap();
        assert_eq!(sk2.public(), sk.public());
        let pk = NixPublicKey::parse(&sk.public().to_string()).unwrap();
        let sig = sk.sign("1;x");
        assert!(pk.verify("1;x", &NixSignature::parse(&sig.to_string()).unwrap()));
        assert!(!pk.verify("1;y", &sig));
        // Mismatched halves of a secret key.
        let mut raw = b64::decode(sk.encode().split_once(':').unwrap().1).unwrap();
        raw[40] ^= 1;
        assert!(NixSecretKey::parse(&format!("test-1:{}", b64::encode(&raw))).is_err());
        for bad in ["", ":AAAA", "x", "x:AAAA", "x: AAAA"] {
            assert!(NixPublicKey::parse(bad).is_err(), "{bad}");
            assert!(NixSignature::parse(bad).is_err(), "{bad}");
        }
        assert!(format!("{sk:?}").find(&sk.encode()[10..]).is_none());
    }

    proptest::proptest! {
        #[test]
        fn parsers_roundtrip(s in "[a-z0-9.-]{1,12}:[A-Za-z0-9+/=]{0,90}") {
            if let Ok(k) = NixPublicKey::parse(&s) { proptest::prop_assert_eq!(k.to_string(), s.clone()); }
            if let Ok(k) = NixSignature::parse(&s) { proptest::prop_assert_eq!(k.to_string(), s.clone()); }
            if let Ok(k) = NixSecretKey::parse(&s) { proptest::prop_assert_eq!(k.encode(), s); }
        }
    }
}
