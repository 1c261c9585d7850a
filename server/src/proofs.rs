//! Proof assembly from the stored tiles (`spec/PROTOCOL.md` §5.2–5.6):
//! tlog-proofs for entries under a published head, and RFC 6962 inclusion
//! and consistency proofs for the proof API. Blocking (they read the
//! store): call from a blocking context.

use vouch_spec::consistency;
use vouch_spec::hash::Hash;
use vouch_spec::tlog_proof;

use crate::error::ApiError;
use crate::nodes::TreeReader;
use crate::published::Published;

fn proof_error(e: impl std::fmt::Display) -> ApiError {
    // The sizes were checked against the tree before asking: a failure
    // here is a missing or damaged tile.
    ApiError::Internal(format!("building a proof from the stored tiles: {e}"))
}

/// The tlog-proof of entry `index` (whose bytes are `entry`) under `head`,
/// as text.
pub fn tlog_proof(
    tree: &TreeReader,
    index: u64,
    entry: &[u8],
    head: &Published,
) -> Result<String, ApiError> {
    let proof = inclusion(tree, index, head.size)?;
    let text = tlog_proof::encode_parts(Some(entry), index, &proof, &head.checkpoint);
    String::from_utf8(text)
        .map_err(|_| ApiError::Internal(format!("the stored entry {index} is not UTF-8")))
}

/// The tlog-proof of the stored entry `index` under `head`.
pub fn bundle(tree: &TreeReader, index: u64, head: &Published) -> Result<String, ApiError> {
    let entry = tree
        .reads()
        .entry(index)?
        .ok_or_else(|| ApiError::Internal(format!("entry {index} is missing from the store")))?;
    tlog_proof(tree, index, &entry, head)
}

/// The inclusion proof of `index` in the tree of `size` (`index < size`,
/// `size` at most the stored tree's).
pub fn inclusion(tree: &TreeReader, index: u64, size: u64) -> Result<Vec<Hash>, ApiError> {
    tree.inclusion(index, size, &tree.nodes(size))
        .map_err(proof_error)
}

/// The consistency proof from `old` to `new` (`1 ≤ old ≤ new`, `new` at
/// most the stored tree's).
pub fn consistency(tree: &TreeReader, old: u64, new: u64) -> Result<Vec<Hash>, ApiError> {
    consistency::prove(old, new, &tree.nodes(new)).map_err(proof_error)
}
