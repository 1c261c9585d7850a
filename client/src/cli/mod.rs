//! The `vouch` command's own code, linked by nothing but the binary: the
//! substituter, backfill, the post-build hook's spool and NAR
//! serialisation. Everything protocol-level comes from the library.

pub mod backfill;
pub mod nar;
pub mod pathinfo;
pub mod progress;
pub mod spool;
pub mod substituter;
