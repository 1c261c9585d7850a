//! # vouch: the Vouch client
//!
//! The verification library ([`verifier`]: the acceptance rule of
//! `spec/PROTOCOL.md` §7 with durable per-log state in [`state`]), reading
//! logs over HTTP ([`fetch`]), and the Nix substituter proxy
//! ([`substituter`]). The `vouch` binary is the CLI over these.
#![forbid(unsafe_code)]

pub mod backfill;
pub mod fetch;
pub mod keyfile;
pub mod nar;
pub mod pathinfo;
pub mod spool;
pub mod state;
pub mod substituter;
pub mod verifier;
