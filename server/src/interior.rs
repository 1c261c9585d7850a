//! The interior record stored with each full hash tile (after its
//! hashes, in the same value, so one read serves a proof): the tile's
//! nodes in rows 4 to 7, so an inclusion proof hashes at most 15 of the
//! tile's hashes (rows 1–3 are recomputed from at most 8 hashes each)
//! instead of 255. Written by [`crate::sequencer`] for each tile
//! `vouch_spec::integrate` fills, read by
//! [`crate::nodes`].

use vouch_spec::hash::HASH_LEN;
use vouch_spec::tile::TileNodes;

/// Rows (heights within a tile) whose nodes are stored beside each full
/// tile, so an inclusion proof never hashes more than 15 tile hashes per
/// tile: the nodes of rows 4, 5, 6 and 7 (16 + 8 + 4 + 2 = 30 hashes, 960
/// bytes per 256 entries). Rows 1–3 are recomputed (at most 7 hashes each).
pub const INTERIOR_ROWS: std::ops::RangeInclusive<u8> = 4..=7;

/// Where the node in `row` at `pos` (within its tile) sits in an interior
/// record, in hashes; `None` for rows that are not stored.
pub fn interior_offset(row: u8, pos: usize) -> Option<usize> {
    if !INTERIOR_ROWS.contains(&row) {
        return None;
    }
    // Rows 4.. hold 16, 8, 4, 2 nodes.
    let before: usize = (4..row).map(|r| 256usize >> r).sum();
    (pos < 256usize >> row).then_some(before + pos)
}

/// Hashes in one interior record.
pub const INTERIOR_HASHES: usize = 30;

/// The interior record of a full tile: its nodes in [`INTERIOR_ROWS`],
/// row by row, at the offsets [`interior_offset`] gives.
pub fn interior_record(nodes: &TileNodes) -> Vec<u8> {
    let mut out = Vec::with_capacity(INTERIOR_HASHES * HASH_LEN);
    for row in INTERIOR_ROWS {
        for h in nodes.row(row) {
            out.extend_from_slice(&h.0);
        }
    }
    out
}
