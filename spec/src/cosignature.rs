//! C2SP tlog-cosignature (`tlog-cosignature.md`), the Ed25519
//! `cosignature/v1` type (signature type 0x04): a witness's timestamped
//! statement that a checkpoint is the largest consistent one it has seen.
//!
//! The signed message is `cosignature/v1\ntime <T>\n` followed by the
//! checkpoint note text; the signature is `u64 timestamp (big-endian) || Ed25519 signature`.

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::note::{
    check_skey_id, ed25519_key, ed25519_verify, encode_skey, key_id, parse_skey, valid_key_name,
    NoteError, NoteVerifier, Signature, Vkey, ALG_COSIGNATURE_V1,
};

/// Largest allowed timestamp (2^63 − 1).
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// The message a `cosignature/v1` signs for `checkpoint_text` at `timestamp`.
pub fn message(checkpoint_text: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{checkpoint_text}").into_bytes()
}

/// Splits cosignature bytes (after the key ID) into timestamp and Ed25519 signature.
pub fn split(sig: &[u8]) -> Option<(u64, &[u8])> {
    if sig.len() != 72 {
        return None;
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&sig[..8]);
    let t = u64::from_be_bytes(ts);
    (t <= MAX_TIMESTAMP).then_some((t, &sig[8..]))
}

/// A witness's cosignature verifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// A verifier for the cosigner `name` with this key.
    pub fn new(name: &str, key: VerifyingKey) -> Result<CosignatureVerifier, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::BadKeyName(name.to_string()));
        }
        Ok(CosignatureVerifier {
            name: name.to_string(),
            key_id: key_id(name, ALG_COSIGNATURE_V1, key.as_bytes()),
            key,
        })
    }

    /// Parses a type-0x04 vkey.
    pub fn from_vkey(s: &str) -> Result<CosignatureVerifier, NoteError> {
        let v = Vkey::parse(s)?;
        if v.alg != ALG_COSIGNATURE_V1 {
            return Err(NoteError::BadKey {
                key: s.to_string(),
                why: "not a cosignature/v1 (type 0x04) key",
            });
        }
        let key = ed25519_key(&v.key).ok_or(NoteError::BadKey {
            key: s.to_string(),
            why: "not a valid Ed25519 point",
        })?;
        CosignatureVerifier::new(&v.name, key)
    }

    /// The vkey text.
    pub fn vkey(&self) -> String {
        Vkey {
            name: self.name.clone(),
            key_id: self.key_id,
            alg: ALG_COSIGNATURE_V1,
            key: self.key.as_bytes().to_vec(),
        }
        .encode()
    }

    /// The public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The timestamp of a valid cosignature by this key on `text`.
    pub fn verify_timestamp(&self, text: &[u8], sig: &[u8]) -> Option<u64> {
        let (t, s) = split(sig)?;
        let text = std::str::from_utf8(text).ok()?;
        ed25519_verify(&self.key, &message(text, t), s).then_some(t)
    }
}

impl NoteVerifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn verify(&self, text: &[u8], sig: &[u8]) -> bool {
        self.verify_timestamp(text, sig).is_some()
    }
}

/// A witness's cosigning key.
#[derive(Clone)]
pub struct CosignatureSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for CosignatureSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CosignatureSigner({}+{:08x})", self.name, self.key_id)
    }
}

impl CosignatureSigner {
    /// A cosigner `name` from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<CosignatureSigner, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::BadKeyName(name.to_string()));
        }
        let key = SigningKey::from_bytes(seed);
        Ok(CosignatureSigner {
            name: name.to_string(),
            key_id: key_id(name, ALG_COSIGNATURE_V1, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<id>+base64(0x04 || seed)`.
    pub fn from_skey(s: &str) -> Result<CosignatureSigner, NoteError> {
        let (name, id, seed) = parse_skey(
            s,
            ALG_COSIGNATURE_V1,
            "not a cosignature/v1 (type 0x04) 32-byte seed",
        )?;
        let signer = CosignatureSigner::from_seed(name, &seed)?;
        check_skey_id(signer.key_id, id)?;
        Ok(signer)
    }

    /// The skey text (secret).
    pub fn skey(&self) -> String {
        encode_skey(
            &self.name,
            self.key_id,
            ALG_COSIGNATURE_V1,
            self.key.as_bytes(),
        )
    }

    /// The matching verifier.
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Cosigns checkpoint note text at `timestamp` (must be ≤ 2^63 − 1 and non-zero).
    pub fn cosign(&self, checkpoint_text: &str, timestamp: u64) -> Option<Signature> {
        if timestamp == 0 || timestamp > MAX_TIMESTAMP {
            return None;
        }
        let s = self.key.sign(&message(checkpoint_text, timestamp));
        let mut sig = timestamp.to_be_bytes().to_vec();
        sig.extend_from_slice(&s.to_bytes());
        Some(Signature {
            name: self.name.clone(),
            key_id: self.key_id,
            sig,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::{open, Ed25519Signer, Note};

    const CHECKPOINT: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    #[test]
    fn spec_example_message_and_signature_layout() {
        assert_eq!(
            String::from_utf8(message(CHECKPOINT, 1679315147)).unwrap(),
            "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
        // The spec's example cosignature line carries that same timestamp.
        let sig = Signature::parse_line(
            "\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==",
            1,
        )
        .unwrap();
        assert_eq!(sig.key_id, 0x8d66cf3f);
        assert_eq!(split(&sig.sig).unwrap().0, 1679315147);
    }

    #[test]
    fn cosign_and_verify() {
        let log = Ed25519Signer::from_seed("example.com/behind-the-sofa", &[1; 32]).unwrap();
        let w = CosignatureSigner::from_seed("witness.example.com/w1", &[2; 32]).unwrap();
        let mut note = Note::sign(CHECKPOINT, &[&log]).unwrap();
        note.sigs.push(w.cosign(CHECKPOINT, 1679315147).unwrap());
        let wv = w.verifier();
        let opened = open(&note.to_bytes(), &[&log.verifier(), &wv]).unwrap();
        assert_eq!(opened.verified, vec![(0, 0), (1, 1)]);
        assert_eq!(
            wv.verify_timestamp(CHECKPOINT.as_bytes(), &note.sigs[1].sig),
            Some(1679315147)
        );
        assert_eq!(CosignatureVerifier::from_vkey(&wv.vkey()).unwrap(), wv);
        assert!(crate::note::Ed25519Verifier::from_vkey(&wv.vkey()).is_err());
        assert_eq!(
            CosignatureSigner::from_skey(&w.skey()).unwrap().verifier(),
            wv
        );
        // The same key as a plain note signer has a different key ID.
        assert_ne!(
            wv.key_id(),
            Ed25519Signer::from_seed("witness.example.com/w1", &[2; 32])
                .unwrap()
                .verifier()
                .key_id()
        );
        // A tampered timestamp fails.
        let mut bad = note.clone();
        bad.sigs[1].sig[7] ^= 1;
        assert!(open(&bad.to_bytes(), &[&log.verifier(), &wv]).is_err());
        assert!(w.cosign(CHECKPOINT, 0).is_none());
        assert!(w.cosign(CHECKPOINT, MAX_TIMESTAMP + 1).is_none());
    }
}
