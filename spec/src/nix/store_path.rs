//! Nix store paths: `<store dir>/<32 nix32 digits of a 20-byte hash>-<name>`
//! (Nix src/libstore/path.cc). Names are 1–211 characters from
//! `[A-Za-z0-9+-._?=]` and do not start with a dot.

use std::borrow::Cow;
use std::fmt;

use super::nix32;

/// The default store directory.
pub const DEFAULT_STORE_DIR: &str = "/nix/store";
/// Digits in a store path hash.
pub const HASH_PART_LEN: usize = 32;
/// Longest allowed name.
pub const MAX_NAME_LEN: usize = 211;

/// A parsed store path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePath {
    /// The store directory, absolute, without a trailing slash: borrowed
    /// for [`DEFAULT_STORE_DIR`], so a path in the usual store costs one
    /// allocation, not two (parsing is on the log's submit path).
    store_dir: Cow<'static, str>,
    /// `<hash>-<name>`.
    base: String,
}

/// Why a store path was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorePathError {
    /// Not in the form `<dir>/<hash>-<name>`.
    #[error("{0:?} is not a store path (<store dir>/<32-digit hash>-<name>)")]
    Form(String),
    /// The hash part is not 32 nix32 digits.
    #[error("store path {0:?} has a hash part that is not 32 nix32 digits")]
    Hash(String),
    /// The name is empty, too long, starts with a dot or has a bad character.
    #[error(
        "store path {0:?} has an invalid name (1-211 of A-Za-z0-9+-._?=, not starting with '.')"
    )]
    Name(String),
    /// The store directory is not absolute or ends in a slash.
    #[error("store directory {0:?} must be absolute without a trailing slash")]
    StoreDir(String),
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-._?=".contains(&b))
}

/// Checks a hash part: 32 nix32 digits. (They are exactly the 160 bits of
/// the 20-byte hash, so no padding bits can be set.)
pub fn valid_hash_part(h: &str) -> bool {
    h.len() == HASH_PART_LEN && h.bytes().all(nix32::is_digit)
}

impl StorePath {
    /// Parses a full path such as `/nix/store/<hash>-<name>`.
    pub fn parse(path: &str) -> Result<StorePath, StorePathError> {
        let (dir, base) = path
            .rsplit_once('/')
            .ok_or_else(|| StorePathError::Form(path.to_string()))?;
        StorePath::from_base(dir, base).map_err(|e| match e {
            StorePathError::StoreDir(_) => StorePathError::Form(path.to_string()),
            e => e,
        })
    }

    /// A path from a store directory and a base name `<hash>-<name>`.
    pub fn from_base(store_dir: &str, base: &str) -> Result<StorePath, StorePathError> {
        if !store_dir.starts_with('/') || store_dir.ends_with('/') || store_dir.contains("//") {
            return Err(StorePathError::StoreDir(store_dir.to_string()));
        }
        let full = || format!("{store_dir}/{base}");
        if base.len() < HASH_PART_LEN + 2 || base.as_bytes()[HASH_PART_LEN] != b'-' {
            return Err(StorePathError::Form(full()));
        }
        if !valid_hash_part(&base[..HASH_PART_LEN]) {
            return Err(StorePathError::Hash(full()));
        }
        if !valid_name(&base[HASH_PART_LEN + 1..]) {
            return Err(StorePathError::Name(full()));
        }
        let store_dir = if store_dir == DEFAULT_STORE_DIR {
            Cow::Borrowed(DEFAULT_STORE_DIR)
        } else {
            Cow::Owned(store_dir.to_string())
        };
        Ok(StorePath {
            store_dir,
            base: base.to_string(),
        })
    }

    /// The store directory.
    pub fn store_dir(&self) -> &str {
        &self.store_dir
    }

    /// `<hash>-<name>`, as narinfo `References:` and `Deriver:` write it.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The 32-digit hash part (also the narinfo file name).
    pub fn hash_part(&self) -> &str {
        &self.base[..HASH_PART_LEN]
    }

    /// The name after the hash.
    pub fn name(&self) -> &str {
        &self.base[HASH_PART_LEN + 1..]
    }

    /// The full path.
    pub fn full(&self) -> String {
        let mut s = String::with_capacity(self.full_len());
        self.push_full(&mut s);
        s
    }

    /// Length of [`StorePath::full`] in bytes.
    pub fn full_len(&self) -> usize {
        self.store_dir.len() + 1 + self.base.len()
    }

    /// Appends [`StorePath::full`] to `out` without building it.
    pub fn push_full(&self, out: &mut String) {
        out.push_str(&self.store_dir);
        out.push('/');
        out.push_str(&self.base);
    }

    /// Orders as the [`StorePath::full`] strings order, without building
    /// them (the order of Nix's fingerprint).
    pub fn cmp_full(&self, other: &StorePath) -> std::cmp::Ordering {
        self.full_bytes().cmp(other.full_bytes())
    }

    fn full_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        self.store_dir
            .bytes()
            .chain(std::iter::once(b'/'))
            .chain(self.base.bytes())
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.store_dir, self.base)
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorePath({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_real_paths() {
        let p =
            StorePath::parse("/nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns-vouch-hello").unwrap();
        assert_eq!(p.hash_part(), "71z0irc81f1wmhlqhcxmb0h9y78nfkns");
        assert_eq!(p.name(), "vouch-hello");
        assert_eq!(p.store_dir(), "/nix/store");
        for bad in [
            "/nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns",
            "/nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns-",
            "/nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkne-x",
            "/nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkn-x",
            "/nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns-.x",
            "/nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns-a b",
            "/nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns-a/b",
            "nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns-x",
            "/nix/store//71z0irc81f1wmhlqhcxmb0h9y78nfkns-x",
            "71z0irc81f1wmhlqhcxmb0h9y78nfkns-x",
        ] {
            assert!(StorePath::parse(bad).is_err(), "{bad}");
        }
        let long = format!(
            "/nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns-{}",
            "a".repeat(212)
        );
        assert!(StorePath::parse(&long).is_err());
    }

    #[test]
    fn other_store_directories_are_kept() {
        let p = StorePath::parse("/gnu/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns-x").unwrap();
        assert_eq!(p.store_dir(), "/gnu/store");
        assert_eq!(p.full(), "/gnu/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns-x");
        assert_ne!(
            p,
            StorePath::parse("/nix/store/71z0irc81f1wmhlqhcxmb0h9y78nfkns-x").unwrap()
        );
    }

    proptest! {
        #[test]
        fn roundtrip(hash in "[0-9a-df-np-sv-z]{32}", name in "[a-zA-Z0-9+_?=-][a-zA-Z0-9+._?=-]{0,40}") {
            let s = format!("/nix/store/{hash}-{name}");
            let p = StorePath::parse(&s).unwrap();
            prop_assert_eq!(p.full(), s);
        }

        #[test]
        fn hash_part_check_is_nix32_decoding(h in "[0-9a-z]{30,34}") {
            prop_assert_eq!(valid_hash_part(&h), h.len() == 32 && nix32::decode(&h, 20).is_ok());
        }
    }
}
