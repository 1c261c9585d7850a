//! # vouch-spec: the Vouch protocol, as pure functions over bytes
//!
//! This crate is the code every Vouch party shares: the log, witnesses,
//! monitors and clients. It does no IO, has no async and no clocks; callers
//! pass in bytes, times and node hashes and get back values or typed errors.
//! The normative description is `spec/PROTOCOL.md` beside this crate.
//!
//! | module | implements |
//! |---|---|
//! | [`hash`], [`merkle`], [`inclusion`], [`consistency`], [`compact`] | RFC 6962 §2.1 / RFC 9162 §2.1 Merkle trees and proofs |
//! | [`tile`], [`bundle`] | C2SP tlog-tiles |
//! | [`integrate`] | new leaves into a tree's hash tiles, independent of storage |
//! | [`subtree`] | subtrees and subtree consistency proofs (draft-ietf-plants-merkle-tree-certs) |
//! | [`mirror`] | C2SP tlog-mirror `add-entries` bodies and the mirror's checks |
//! | [`note`] | C2SP signed-note |
//! | [`checkpoint`] | C2SP tlog-checkpoint |
//! | [`cosignature`] | C2SP tlog-cosignature (`cosignature/v1`, Ed25519) |
//! | [`witness`] | C2SP tlog-witness request and response bodies |
//! | [`tlog_proof`] | C2SP tlog-proof bundles |
//! | [`policy`] | C2SP tlog-policy |
//! | [`nix`] | Nix's nix32, store paths, narinfo, keys and fingerprints |
//! | [`attestation`] | the Vouch attestation entry (`spec/PROTOCOL.md` §3) |
//! | [`transition`] | the key transition entry: retirement and handover (§3.6) |
//! | [`batch`] | many Ed25519 signatures verified at once, as strictly as one by one |
//! | [`tracker`] | whether a checkpoint extends the one a party kept (§7 step 4, tlog-witness), forks as evidence |
//! | [`refused`] | the `Vouch-Refused` header: which statement of a submission was refused, and why (§5.1) |
//! | [`accept`] | the client acceptance rule (§7) as one function: the decision with every reason |
//!
//! Everything is implemented here from the specifications, on `sha2`,
//! `ed25519-dalek` (and `curve25519-dalek` for batches), `base64` and `hex`
//! only. Other implementations are test
//! oracles, not dependencies: the transparency-dev Merkle vectors, a real
//! Tessera log, the C2SP examples, the real `nix` binary for the Nix vectors,
//! and Go's `golang.org/x/mod/sumdb/note` and `sumdb/tlog`
//! (`tests/go_interop.rs`). The Rust crates `tlog_tiles` and `signed_note`
//! are ports of that same Go code, so we test against the original instead;
//! `rs_merkle` is one more oracle for roots and inclusion proofs
//! (`tests/rs_merkle_oracle.rs`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod accept;
pub mod attestation;
pub mod b64;
pub mod batch;
pub mod bundle;
pub mod checkpoint;
pub mod compact;
pub mod consistency;
pub mod cosignature;
pub mod hash;
pub mod hex;
pub mod inclusion;
pub mod integrate;
pub mod merkle;
pub mod mirror;
pub mod nix;
pub mod note;
pub mod policy;
pub mod refused;
pub mod subtree;
mod text;
pub mod tile;
pub mod tlog_proof;
pub mod tracker;
pub mod transition;
pub mod witness;

pub use hash::{leaf_hash, node_hash, Hash};
