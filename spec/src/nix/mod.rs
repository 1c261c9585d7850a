//! Nix's own formats, as Nix 2.x reads and writes them: the nix32 base-32
//! encoding, store paths, `.narinfo` files, binary cache signing keys, and the
//! narinfo fingerprint that cache signatures (`Sig:` lines) cover.

pub mod key;
pub mod narinfo;
pub mod nix32;
pub mod store_path;

pub use key::{fingerprint, NixPublicKey, NixSecretKey, NixSignature};
pub use narinfo::NarInfo;
pub use store_path::StorePath;
