//! The `vouch` command's own code, linked by nothing but the binary: the
//! substituter, backfill, the rebuilder, the post-build hook's spool,
//! running Nix, and NAR serialisation. Everything protocol-level comes from the library.

pub mod backfill;
pub mod nar;
pub mod nixcmd;
pub mod pathinfo;
pub mod progress;
pub mod rebuild;
pub mod spool;
pub mod substituter;
