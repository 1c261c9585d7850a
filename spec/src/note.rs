//! C2SP signed-note (`signed-note.md`): notes, signature lines, Ed25519
//! signers and verifiers, verifier keys (vkeys), signer keys (skeys, in the
//! `PRIVATE+KEY+…` form of Go's `golang.org/x/mod/sumdb/note`), and key IDs.
//!
//! [`open`] applies the spec's rules: signatures from unknown keys are
//! ignored, a signature from a known key that fails to verify rejects the
//! whole note, and a note with no verified known signature is rejected.

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::b64;
use crate::hash::sha256;
use crate::hex;

/// Signature type byte for plain Ed25519 note signatures.
pub const ALG_ED25519: u8 = 0x01;
/// Signature type byte for timestamped Ed25519 cosignatures (tlog-cosignature).
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// The most signature lines [`Note::parse`] accepts (the spec requires ≥ 16).
pub const MAX_SIGNATURES: usize = 100;
/// The largest note [`Note::parse`] accepts, in bytes.
pub const MAX_NOTE_LEN: usize = 1 << 20;

/// Why a note, key or signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note is not valid UTF-8 or contains a control character other than newline.
    #[error("note is not UTF-8 text without control characters (byte {0})")]
    BadText(usize),
    /// The note is larger than [`MAX_NOTE_LEN`].
    #[error("note is {0} bytes, more than the {MAX_NOTE_LEN} accepted")]
    TooLarge(usize),
    /// No blank line separates text from signatures, or nothing follows it.
    #[error("note has no signature block after a blank line")]
    NoSignatures,
    /// The text is empty or does not end in a newline.
    #[error("note text must be non-empty and end with a newline")]
    BadTextEnd,
    /// A signature line is malformed.
    #[error("malformed signature line {line}: {why}")]
    BadSignatureLine {
        /// 1-based line number within the signature block.
        line: usize,
        /// What is wrong with it.
        why: &'static str,
    },
    /// More than [`MAX_SIGNATURES`] signature lines.
    #[error("note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// A signature from a known key failed to verify.
    #[error("signature by {name} (key ID {key_id:08x}) does not verify")]
    InvalidSignature {
        /// Key name.
        name: String,
        /// Key ID.
        key_id: u32,
    },
    /// No signature from a known key is present.
    #[error("note has no signature from a known key (signed by: {0})")]
    NoKnownSignature(String),
    /// A key name is empty or contains a space or `+`.
    #[error("key name {0:?} is empty or contains whitespace or '+'")]
    BadKeyName(String),
    /// A vkey or skey string is malformed.
    #[error("malformed key {key:?}: {why}")]
    BadKey {
        /// The key text (a vkey; never a private key).
        key: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// One signature line: `— <name> base64(key ID || signature)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// Key name.
    pub name: String,
    /// Key ID (first four bytes of the decoded signature).
    pub key_id: u32,
    /// The signature bytes after the key ID.
    pub sig: Vec<u8>,
}

impl Signature {
    /// The line, including the final newline.
    pub fn line(&self) -> String {
        let mut raw = self.key_id.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.sig);
        format!("\u{2014} {} {}\n", self.name, b64::encode(raw))
    }

    /// Parses one line without its final newline.
    pub fn parse_line(line: &str, number: usize) -> Result<Signature, NoteError> {
        let bad = |why| NoteError::BadSignatureLine { line: number, why };
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or(bad("does not start with an em dash and a space"))?;
        let (name, sig64) = rest
            .split_once(' ')
            .ok_or(bad("no space between key name and signature"))?;
        if !valid_key_name(name) {
            return Err(bad("key name is empty or contains whitespace or '+'"));
        }
        let raw = b64::decode(sig64).map_err(|_| bad("signature is not canonical base64"))?;
        if raw.len() < 5 {
            return Err(bad("signature is shorter than a key ID and one byte"));
        }
        Ok(Signature {
            name: name.to_string(),
            key_id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
            sig: raw[4..].to_vec(),
        })
    }
}

/// A note: text plus signature lines, not yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The text, ending in a newline (signatures are over these bytes).
    pub text: String,
    /// Signature lines in order.
    pub sigs: Vec<Signature>,
}

/// Whether `name` is a valid key name: non-empty, no Unicode whitespace, no `+`.
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// Checks the signed-note character rules: UTF-8, no control character but newline.
pub fn check_text(data: &[u8]) -> Result<&str, NoteError> {
    let text = std::str::from_utf8(data).map_err(|e| NoteError::BadText(e.valid_up_to()))?;
    if let Some(i) = text.bytes().position(|b| b < 0x20 && b != b'\n') {
        return Err(NoteError::BadText(i));
    }
    Ok(text)
}

impl Note {
    /// Parses a signed note's syntax. Use [`open`] to verify it.
    pub fn parse(data: &[u8]) -> Result<Note, NoteError> {
        if data.len() > MAX_NOTE_LEN {
            return Err(NoteError::TooLarge(data.len()));
        }
        let s = check_text(data)?;
        let split = s.rfind("\n\n").ok_or(NoteError::NoSignatures)?;
        let (text, sigs) = (&s[..split + 1], &s[split + 2..]);
        if sigs.is_empty() || !sigs.ends_with('\n') {
            return Err(NoteError::NoSignatures);
        }
        let mut out = Vec::new();
        for (i, line) in sigs[..sigs.len() - 1].split('\n').enumerate() {
            if out.len() == MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            out.push(Signature::parse_line(line, i + 1)?);
        }
        Ok(Note {
            text: text.to_string(),
            sigs: out,
        })
    }

    /// The encoded note: text, blank line, signature lines.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = self.text.clone();
        s.push('\n');
        for sig in &self.sigs {
            s.push_str(&sig.line());
        }
        s.into_bytes()
    }

    /// Signs `text` with each signer.
    pub fn sign(text: &str, signers: &[&dyn NoteSigner]) -> Result<Note, NoteError> {
        if text.is_empty() || !text.ends_with('\n') {
            return Err(NoteError::BadTextEnd);
        }
        check_text(text.as_bytes())?;
        let sigs = signers
            .iter()
            .map(|s| Signature {
                name: s.name().to_string(),
                key_id: s.key_id(),
                sig: s.sign(text.as_bytes()),
            })
            .collect();
        Ok(Note {
            text: text.to_string(),
            sigs,
        })
    }
}

/// A key that verifies note signatures.
pub trait NoteVerifier {
    /// Key name.
    fn name(&self) -> &str;
    /// Key ID.
    fn key_id(&self) -> u32;
    /// Whether `sig` (without the key ID) is a valid signature of `text`.
    fn verify(&self, text: &[u8], sig: &[u8]) -> bool;
}

/// A key that signs notes.
pub trait NoteSigner {
    /// Key name.
    fn name(&self) -> &str;
    /// Key ID.
    fn key_id(&self) -> u32;
    /// The signature (without the key ID) over `text`.
    fn sign(&self, text: &[u8]) -> Vec<u8>;
}

/// A note whose signatures were checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedNote {
    /// The note as parsed.
    pub note: Note,
    /// Indexes into `note.sigs` of the verified signatures, one per known key,
    /// in the order of `verifiers` given to [`open`].
    pub verified: Vec<(usize, usize)>,
}

impl OpenedNote {
    /// Whether the verifier at `verifier_index` signed the note.
    pub fn signed_by(&self, verifier_index: usize) -> Option<&Signature> {
        self.verified
            .iter()
            .find(|(v, _)| *v == verifier_index)
            .map(|(_, s)| &self.note.sigs[*s])
    }
}

/// Parses and verifies a note (signed-note §Signatures): ignores unknown
/// keys, rejects the note if a known key's signature fails, and requires at
/// least one verified known signature.
pub fn open(data: &[u8], verifiers: &[&dyn NoteVerifier]) -> Result<OpenedNote, NoteError> {
    let note = Note::parse(data)?;
    let verified = verify_sigs(&note, verifiers)?;
    if verified.is_empty() {
        let names: Vec<&str> = note.sigs.iter().map(|s| s.name.as_str()).collect();
        return Err(NoteError::NoKnownSignature(names.join(", ")));
    }
    Ok(OpenedNote { note, verified })
}

/// Verifies every signature by a known key; returns (verifier index,
/// signature index) pairs. An empty result is not an error here.
pub fn verify_sigs(
    note: &Note,
    verifiers: &[&dyn NoteVerifier],
) -> Result<Vec<(usize, usize)>, NoteError> {
    let mut verified: Vec<(usize, usize)> = Vec::new();
    for (si, sig) in note.sigs.iter().enumerate() {
        for (vi, v) in verifiers.iter().enumerate() {
            if v.name() != sig.name || v.key_id() != sig.key_id {
                continue;
            }
            if !v.verify(note.text.as_bytes(), &sig.sig) {
                return Err(NoteError::InvalidSignature {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            }
            if !verified.iter().any(|(x, _)| *x == vi) {
                verified.push((vi, si));
            }
        }
    }
    verified.sort();
    Ok(verified)
}

/// `SHA-256(name || "\n" || alg || key)[:4]` as a big-endian integer.
pub fn key_id(name: &str, alg: u8, key: &[u8]) -> u32 {
    let mut buf = Vec::with_capacity(name.len() + 2 + key.len());
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.push(alg);
    buf.extend_from_slice(key);
    let h = sha256(&buf);
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

/// A vkey split into its parts, any algorithm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vkey {
    /// Key name.
    pub name: String,
    /// Key ID.
    pub key_id: u32,
    /// Signature type byte.
    pub alg: u8,
    /// Public key material after the type byte.
    pub key: Vec<u8>,
}

impl Vkey {
    /// Parses `<name>+<hex key ID>+<base64(type || key)>`, checking the key
    /// ID when the type's rule is the standard one (0x01 and 0x04).
    pub fn parse(s: &str) -> Result<Vkey, NoteError> {
        let bad = |why| NoteError::BadKey {
            key: s.to_string(),
            why,
        };
        // The base64 key may itself contain '+', so split off two parts only.
        let mut parts = s.splitn(3, '+');
        let (Some(name), Some(id), Some(k)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("want three parts separated by '+'"));
        };
        if !valid_key_name(name) {
            return Err(NoteError::BadKeyName(name.to_string()));
        }
        let id_bytes = hex::decode(id)
            .filter(|b| b.len() == 4)
            .ok_or(bad("key ID is not 8 lowercase hex digits"))?;
        let key_id = u32::from_be_bytes([id_bytes[0], id_bytes[1], id_bytes[2], id_bytes[3]]);
        let raw = b64::decode(k).map_err(|_| bad("key is not canonical base64"))?;
        let (&alg, key) = raw.split_first().ok_or(bad("key is empty"))?;
        if matches!(alg, ALG_ED25519 | ALG_COSIGNATURE_V1) {
            if key.len() != 32 {
                return Err(bad("Ed25519 key is not 32 bytes"));
            }
            if key_id != self::key_id(name, alg, key) {
                return Err(bad("key ID does not match the name and key"));
            }
        }
        Ok(Vkey {
            name: name.to_string(),
            key_id,
            alg,
            key: key.to_vec(),
        })
    }

    /// Encodes the vkey.
    pub fn encode(&self) -> String {
        let mut raw = vec![self.alg];
        raw.extend_from_slice(&self.key);
        format!("{}+{:08x}+{}", self.name, self.key_id, b64::encode(raw))
    }
}

/// An Ed25519 note verifier (signature type 0x01).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519Verifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl Ed25519Verifier {
    /// A verifier for `name` with this public key.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Ed25519Verifier, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::BadKeyName(name.to_string()));
        }
        let key_id = key_id(name, ALG_ED25519, key.as_bytes());
        Ok(Ed25519Verifier {
            name: name.to_string(),
            key_id,
            key,
        })
    }

    /// Parses an Ed25519 vkey.
    pub fn from_vkey(s: &str) -> Result<Ed25519Verifier, NoteError> {
        let v = Vkey::parse(s)?;
        if v.alg != ALG_ED25519 {
            return Err(NoteError::BadKey {
                key: s.to_string(),
                why: "not an Ed25519 (type 0x01) key",
            });
        }
        let key = ed25519_key(&v.key).ok_or(NoteError::BadKey {
            key: s.to_string(),
            why: "not a valid Ed25519 point",
        })?;
        Ed25519Verifier::new(&v.name, key)
    }

    /// The vkey text.
    pub fn vkey(&self) -> String {
        Vkey {
            name: self.name.clone(),
            key_id: self.key_id,
            alg: ALG_ED25519,
            key: self.key.as_bytes().to_vec(),
        }
        .encode()
    }

    /// The public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }
}

/// Decodes 32 bytes as an Ed25519 public key.
pub fn ed25519_key(bytes: &[u8]) -> Option<VerifyingKey> {
    let arr: [u8; 32] = bytes.try_into().ok()?;
    VerifyingKey::from_bytes(&arr).ok()
}

/// Verifies an Ed25519 signature with RFC 8032's strict checks (canonical
/// encodings, no small-order public key), as every Vouch party must.
pub fn ed25519_verify(key: &VerifyingKey, msg: &[u8], sig: &[u8]) -> bool {
    let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
        return false;
    };
    key.verify_strict(msg, &sig).is_ok()
}

impl NoteVerifier for Ed25519Verifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn verify(&self, text: &[u8], sig: &[u8]) -> bool {
        ed25519_verify(&self.key, text, sig)
    }
}

fn skey_error(why: &'static str) -> NoteError {
    // Errors never echo the private key.
    NoteError::BadKey {
        key: "PRIVATE+KEY+…".to_string(),
        why,
    }
}

/// Splits Go's `PRIVATE+KEY+<name>+<hex key ID>+<base64(type || seed)>`
/// into name, key ID text and seed, requiring signature type `alg`.
pub(crate) fn parse_skey<'a>(
    s: &'a str,
    alg: u8,
    wrong_type: &'static str,
) -> Result<(&'a str, &'a str, [u8; 32]), NoteError> {
    let rest = s
        .trim_end_matches('\n')
        .strip_prefix("PRIVATE+KEY+")
        .ok_or(skey_error("does not start with PRIVATE+KEY+"))?;
    // The base64 key may itself contain '+', so split off two parts only.
    let mut parts = rest.splitn(3, '+');
    let (Some(name), Some(id), Some(k)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(skey_error("want name, key ID and key separated by '+'"));
    };
    let raw = b64::decode(k).map_err(|_| skey_error("key is not canonical base64"))?;
    if raw.len() != 33 || raw[0] != alg {
        return Err(skey_error(wrong_type));
    }
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&raw[1..]);
    Ok((name, id, seed))
}

/// Checks an skey's key ID text against the ID computed from its name and key.
pub(crate) fn check_skey_id(computed: u32, text: &str) -> Result<(), NoteError> {
    if format!("{computed:08x}") != text {
        return Err(skey_error("key ID does not match the name and key"));
    }
    Ok(())
}

/// Encodes an skey.
pub(crate) fn encode_skey(name: &str, key_id: u32, alg: u8, seed: &[u8; 32]) -> String {
    let mut raw = vec![alg];
    raw.extend_from_slice(seed);
    format!("PRIVATE+KEY+{name}+{key_id:08x}+{}", b64::encode(raw))
}

/// An Ed25519 note signer (signature type 0x01).
#[derive(Clone)]
pub struct Ed25519Signer {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        write!(f, "Ed25519Signer({}+{:08x})", self.name, self.key_id)
    }
}

impl Ed25519Signer {
    /// A signer for `name` from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Ed25519Signer, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::BadKeyName(name.to_string()));
        }
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(name, ALG_ED25519, key.verifying_key().as_bytes());
        Ok(Ed25519Signer {
            name: name.to_string(),
            key_id,
            key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`.
    pub fn from_skey(s: &str) -> Result<Ed25519Signer, NoteError> {
        let (name, id, seed) =
            parse_skey(s, ALG_ED25519, "not an Ed25519 (type 0x01) 32-byte seed")?;
        let signer = Ed25519Signer::from_seed(name, &seed)?;
        check_skey_id(signer.key_id, id)?;
        Ok(signer)
    }

    /// The skey text (secret: handle with care).
    pub fn skey(&self) -> String {
        encode_skey(&self.name, self.key_id, ALG_ED25519, self.key.as_bytes())
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Ed25519Verifier {
        Ed25519Verifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The raw signing key (for cosigners reusing the seed, and for tests).
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

impl NoteSigner for Ed25519Signer {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn sign(&self, text: &[u8]) -> Vec<u8> {
        self.key.sign(text).to_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    const NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

    #[test]
    fn spec_example_verifies() {
        let v = Ed25519Verifier::from_vkey(VKEY).unwrap();
        assert_eq!(v.vkey(), VKEY);
        let opened = open(NOTE.as_bytes(), &[&v]).unwrap();
        assert_eq!(opened.note.text, "This is an example message.\n");
        assert_eq!(opened.verified, vec![(0, 0)]);
        assert_eq!(opened.note.to_bytes(), NOTE.as_bytes());
    }

    #[test]
    fn bad_known_signature_rejects_note_and_unknown_is_ignored() {
        let v = Ed25519Verifier::from_vkey(VKEY).unwrap();
        let other = Ed25519Signer::from_seed("example.com/other", &[7; 32]).unwrap();
        // Unknown signer appended: still opens.
        let mut note = Note::parse(NOTE.as_bytes()).unwrap();
        note.sigs.push(Signature {
            name: "example.com/other".into(),
            key_id: other.key_id(),
            sig: other.sign(b"x"),
        });
        assert!(open(&note.to_bytes(), &[&v]).is_ok());
        // Same name, other key ID: ignored. Same ID, other name: ignored.
        note.sigs.push(Signature {
            name: "example.com/foo".into(),
            key_id: 1,
            sig: vec![0; 64],
        });
        note.sigs.push(Signature {
            name: "example.com/bar".into(),
            key_id: v.key_id(),
            sig: vec![0; 64],
        });
        assert!(open(&note.to_bytes(), &[&v]).is_ok());
        // Known name and ID with a bad signature: rejected.
        note.sigs.push(Signature {
            name: "example.com/foo".into(),
            key_id: v.key_id(),
            sig: vec![0; 64],
        });
        assert!(matches!(
            open(&note.to_bytes(), &[&v]),
            Err(NoteError::InvalidSignature { .. })
        ));
        // Only unknown signatures: rejected.
        assert!(matches!(
            open(NOTE.as_bytes(), &[&other.verifier()]),
            Err(NoteError::NoKnownSignature(_))
        ));
    }

    #[test]
    fn malformed_notes() {
        for bad in [
            "no sigs\n",
            "text\n\n",
            "text\n\n\u{2014} a b\n",
            "text\n\n\u{2014} example.com/foo AAAAAA==\n",
            "text\n\n- example.com/foo AAAAAAAA\n",
            "text\r\n\n\u{2014} example.com/foo AAAAAAAA\n",
            "text\n\n\u{2014} example.com/foo AAAAAAAA",
            "text\n\n\u{2014} exa+mple AAAAAAAA\n",
            "text\n\n\u{2014}  AAAAAAAA\n",
        ] {
            assert!(Note::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(Note::parse(b"t\xff\n\n\xe2\x80\x94 a AAAAAAAA\n").is_err());
        let many = format!(
            "t\n\n{}",
            "\u{2014} a AAAAAAAA\n".repeat(MAX_SIGNATURES + 1)
        );
        assert_eq!(
            Note::parse(many.as_bytes()),
            Err(NoteError::TooManySignatures)
        );
    }

    #[test]
    fn skey_roundtrip_and_vkey_checks() {
        let s = Ed25519Signer::from_seed("example.com/log", &[42; 32]).unwrap();
        let s2 = Ed25519Signer::from_skey(&s.skey()).unwrap();
        assert_eq!(s2.verifier(), s.verifier());
        let note = Note::sign("hello\n", &[&s]).unwrap();
        assert!(open(&note.to_bytes(), &[&s.verifier()]).is_ok());
        let vk = s.verifier().vkey();
        assert_eq!(Ed25519Verifier::from_vkey(&vk).unwrap(), s.verifier());
        // Wrong key ID, uppercase hex, bad name, extra part.
        let mut parts: Vec<&str> = vk.split('+').collect();
        let upper = parts[1].to_uppercase();
        parts[1] = &upper;
        if upper.chars().any(|c| c.is_ascii_uppercase()) {
            assert!(Ed25519Verifier::from_vkey(&parts.join("+")).is_err());
        }
        assert!(
            Ed25519Verifier::from_vkey(&vk.replace("example.com/log", "example.com/log2")).is_err()
        );
        assert!(Ed25519Verifier::from_vkey(&format!("{vk}+x")).is_err());
        assert!(Ed25519Verifier::from_vkey(&format!(" {vk}")).is_err());
        assert!(format!("{s:?}").find("PRIVATE").is_none());
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_roundtrips(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(n) = Note::parse(&data) { prop_assert_eq!(n.to_bytes(), data); }
        }
        #[test]
        fn signed_notes_open(text in "[a-z ]{1,40}(\n[a-z ]{1,40}){0,4}\n", seed in any::<[u8; 32]>()) {
            let s = Ed25519Signer::from_seed("example.com/p", &seed).unwrap();
            let n = Note::sign(&text, &[&s]).unwrap();
            let bytes = n.to_bytes();
            prop_assert!(open(&bytes, &[&s.verifier()]).is_ok());
            let mut tampered = bytes.clone();
            tampered[0] ^= 1;
            prop_assert!(open(&tampered, &[&s.verifier()]).is_err());
        }
    }
}
