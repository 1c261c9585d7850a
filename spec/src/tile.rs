//! C2SP tlog-tiles (`tlog-tiles.md`, "Merkle Tree" and "Log entries"): tile
//! coordinates, their URL paths, their contents, and reading tree nodes out
//! of tiles.
//!
//! A hash tile at level `L` and index `N` holds up to 256 hashes of level
//! `8·L` nodes, `N·256 ..`; a full tile is 8,192 bytes. Node levels between
//! multiples of 8 are recomputed from the tile's hashes.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use crate::hash::{node_hash, Hash, HASH_LEN};
use crate::merkle::{NodeId, NodeSource};

/// Node levels covered by one tile.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 256;
/// Highest tile level that can exist (`8·7 = 56 ≤ 63`).
pub const MAX_TILE_LEVEL: u8 = 63;

/// What a tile holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TileKind {
    /// Merkle tree hashes at node level `8 * level`.
    Hash {
        /// The tile level `L` (0..=63).
        level: u8,
    },
    /// An entry bundle (`tile/entries/...`).
    Entries,
}

/// One tile or entry bundle, as addressed by the tlog-tiles URL space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tile {
    /// Hash tile (with level) or entry bundle.
    pub kind: TileKind,
    /// Index of the tile within its level.
    pub index: u64,
    /// Number of hashes or entries: 256 for a full tile, 1..=255 for a partial one.
    pub width: u16,
}

/// Why a tile path was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TilePathError {
    /// The path does not start with `tile/`.
    #[error("tile path {0:?} does not start with \"tile/\"")]
    Prefix(String),
    /// The level is not a canonical decimal in 0..=63 or `entries`.
    #[error("tile path {0:?} has a bad level (want 0..=63 without leading zeros, or \"entries\")")]
    Level(String),
    /// The index is not canonical `x001/x234/067` form, or overflows.
    #[error("tile path {0:?} has a bad index (want zero-padded 3-digit elements, all but the last prefixed with x, no leading x000)")]
    Index(String),
    /// The `.p/<W>` suffix is malformed or the width not in 1..=255.
    #[error("tile path {0:?} has a bad partial width (want .p/1 to .p/255 without leading zeros)")]
    Width(String),
}

impl Tile {
    /// A full hash tile.
    pub fn full(level: u8, index: u64) -> Tile {
        Tile {
            kind: TileKind::Hash { level },
            index,
            width: TILE_WIDTH as u16,
        }
    }

    /// Whether the tile is full (256 wide).
    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    /// The path below the log prefix, e.g. `tile/0/x001/234.p/5`.
    pub fn path(&self) -> String {
        let mut s = String::from("tile/");
        match self.kind {
            TileKind::Hash { level } => s.push_str(&level.to_string()),
            TileKind::Entries => s.push_str("entries"),
        }
        s.push('/');
        s.push_str(&encode_index(self.index));
        if !self.is_full() {
            s.push_str(".p/");
            s.push_str(&self.width.to_string());
        }
        s
    }

    /// Parses a path below the log prefix (`tile/<L>/<N>[.p/<W>]` or
    /// `tile/entries/<N>[.p/<W>]`), accepting only the canonical form.
    pub fn parse_path(path: &str) -> Result<Tile, TilePathError> {
        let err_level = || TilePathError::Level(path.to_string());
        let rest = path
            .strip_prefix("tile/")
            .ok_or_else(|| TilePathError::Prefix(path.to_string()))?;
        let (level, rest) = rest.split_once('/').ok_or_else(err_level)?;
        let kind = if level == "entries" {
            TileKind::Entries
        } else {
            let l = parse_decimal(level).ok_or_else(err_level)?;
            if l > u64::from(MAX_TILE_LEVEL) {
                return Err(err_level());
            }
            TileKind::Hash { level: l as u8 }
        };
        let (index_part, width) = match rest.split_once(".p/") {
            Some((i, w)) => {
                let w = parse_decimal(w)
                    .filter(|w| (1..TILE_WIDTH).contains(w))
                    .ok_or_else(|| TilePathError::Width(path.to_string()))?;
                (i, w as u16)
            }
            None => (rest, TILE_WIDTH as u16),
        };
        let index =
            decode_index(index_part).ok_or_else(|| TilePathError::Index(path.to_string()))?;
        Ok(Tile { kind, index, width })
    }

    /// The entries (for bundles and level-0 tiles) or level-`8L` node
    /// indexes this tile holds.
    pub fn span(&self) -> Range<u64> {
        let start = self.index * TILE_WIDTH;
        start..start + u64::from(self.width)
    }

    /// The tile of this kind and index as it exists in a tree of `size`
    /// leaves, or `None` if the tree has no such tile yet.
    pub fn in_tree(kind: TileKind, index: u64, size: u64) -> Option<Tile> {
        let level = match kind {
            TileKind::Hash { level } => level,
            TileKind::Entries => 0,
        };
        let count = level_width(level, size);
        let start = index.checked_mul(TILE_WIDTH)?;
        if start >= count {
            return None;
        }
        let width = (count - start).min(TILE_WIDTH) as u16;
        Some(Tile { kind, index, width })
    }

    /// Every hash tile (full and partial) that a tree of `size` leaves has,
    /// lowest level first. Entry bundles follow the level-0 tiles one to one.
    pub fn all_for_size(size: u64) -> Vec<Tile> {
        let mut out = Vec::new();
        for level in 0..=MAX_TILE_LEVEL {
            let count = level_width(level, size);
            if count == 0 {
                break;
            }
            for index in 0..count.div_ceil(TILE_WIDTH) {
                out.extend(Tile::in_tree(TileKind::Hash { level }, index, size));
            }
        }
        out
    }
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// The number of level-`8·level` nodes in a tree of `size` leaves.
fn level_width(level: u8, size: u64) -> u64 {
    let shift = u32::from(level) * u32::from(TILE_HEIGHT);
    size.checked_shr(shift).unwrap_or(0)
}

/// `1234067` → `x001/x234/067`.
pub fn encode_index(mut n: u64) -> String {
    let mut parts = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        parts.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    parts.reverse();
    parts.join("/")
}

fn decode_index(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split('/').collect();
    let mut n: u64 = 0;
    for (i, p) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let digits = if last { *p } else { p.strip_prefix('x')? };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // A leading all-zero group is a non-canonical spelling.
        if i == 0 && !last && digits == "000" {
            return None;
        }
        let d: u64 = digits.parse().ok()?;
        n = n.checked_mul(1000)?.checked_add(d)?;
    }
    Some(n)
}

/// Parses a canonical unsigned decimal: ASCII digits, no sign, no leading
/// zeros (except `0` itself), no overflow.
pub fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Why tile contents were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileDataError {
    /// The byte length does not match the tile width.
    #[error("tile {tile} must be {want} bytes, got {got}")]
    Length {
        /// The tile.
        tile: String,
        /// Bytes expected.
        want: usize,
        /// Bytes received.
        got: usize,
    },
    /// An entry bundle was given where a hash tile was expected.
    #[error("{0} is an entry bundle, not a hash tile")]
    NotHashTile(String),
}

/// Splits hash tile bytes into hashes, checking the length matches the width.
pub fn decode_hashes(tile: &Tile, data: &[u8]) -> Result<Vec<Hash>, TileDataError> {
    if tile.kind == TileKind::Entries {
        return Err(TileDataError::NotHashTile(tile.path()));
    }
    let want = usize::from(tile.width) * HASH_LEN;
    if data.len() != want {
        return Err(TileDataError::Length {
            tile: tile.path(),
            want,
            got: data.len(),
        });
    }
    Ok(crate::hash::split_hashes(data).unwrap_or_default())
}

/// Concatenates hashes into tile bytes.
pub fn encode_hashes(hashes: &[Hash]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hashes.len() * HASH_LEN);
    for h in hashes {
        out.extend_from_slice(&h.0);
    }
    out
}

/// The row above `row`: each pair of hashes hashed together (RFC 6962
/// §2.1 interior nodes); an odd last hash has no parent yet.
fn parent_row(row: &[Hash]) -> Vec<Hash> {
    row.chunks_exact(2)
        .map(|p| node_hash(&p[0], &p[1]))
        .collect()
}

/// The node `row` levels above a tile's base, at position `pos` of that
/// row, computed from the tile's hashes (the `2^row` hashes below it).
/// `None` if `hashes` does not hold them all. With [`TileNodes`], the one
/// way Vouch computes nodes inside a tile.
pub fn tile_node(hashes: &[Hash], row: u8, pos: usize) -> Option<Hash> {
    let span = 1usize.checked_shl(u32::from(row))?;
    let start = pos.checked_mul(span)?;
    let mut nodes = hashes.get(start..start.checked_add(span)?)?.to_vec();
    while nodes.len() > 1 {
        nodes = parent_row(&nodes);
    }
    nodes.first().copied()
}

/// Every complete node inside one tile: `row(r)` holds the nodes `r`
/// levels above the tile's base, as many as its hashes complete (row 0 is
/// the hashes themselves). Equal, node for node, to [`tile_node`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileNodes {
    rows: Vec<Vec<Hash>>,
}

impl TileNodes {
    /// The nodes of a tile holding `hashes`.
    pub fn new(hashes: Vec<Hash>) -> TileNodes {
        let mut rows = vec![hashes];
        while let Some(last) = rows.last().filter(|r| r.len() >= 2) {
            let next = parent_row(last);
            rows.push(next);
        }
        TileNodes { rows }
    }

    /// The tile's hashes.
    pub fn hashes(&self) -> &[Hash] {
        &self.rows[0]
    }

    /// The complete nodes `row` levels above the base.
    pub fn row(&self, row: u8) -> &[Hash] {
        self.rows.get(usize::from(row)).map_or(&[], Vec::as_slice)
    }

    /// One node, if complete.
    pub fn node(&self, row: u8, pos: usize) -> Option<Hash> {
        self.row(row).get(pos).copied()
    }
}

/// Where a node's hash comes from: the tile holding the level-`8L` hashes
/// below it, and which of that tile's positions to hash together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLocation {
    /// Tile level `L`.
    pub tile_level: u8,
    /// Tile index.
    pub tile_index: u64,
    /// Positions within the tile whose MTH is the node.
    pub positions: Range<usize>,
}

/// Locates `node` within the tiles.
pub fn locate(node: NodeId) -> NodeLocation {
    let tile_level = node.level / TILE_HEIGHT;
    let r = node.level % TILE_HEIGHT;
    let first = node.index << r;
    let tile_index = first / TILE_WIDTH;
    let pos = (first % TILE_WIDTH) as usize;
    NodeLocation {
        tile_level,
        tile_index,
        positions: pos..pos + (1usize << r),
    }
}

/// Hash tiles of one tree, held in memory, that answer node queries.
///
/// The tiles are untrusted: proofs computed from them must still be verified
/// against a signed root (which is how a client authenticates tiles).
#[derive(Clone, Debug)]
pub struct TileSet {
    size: u64,
    tiles: BTreeMap<(u8, u64), Vec<Hash>>,
}

/// A node whose tile is missing or too narrow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileSetError {
    /// The node is not inside the tree.
    #[error("node at level {} index {} is outside the tree of size {size}", .node.level, .node.index)]
    OutsideTree {
        /// The node.
        node: NodeId,
        /// The tree size.
        size: u64,
    },
    /// The tile is not in the set.
    #[error("tile {0} is needed but was not supplied")]
    Missing(String),
}

impl TileSet {
    /// An empty set for the tree of `size` leaves.
    pub fn new(size: u64) -> TileSet {
        TileSet {
            size,
            tiles: BTreeMap::new(),
        }
    }

    /// The tree size this set serves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tiles (as they exist at this tree size) needed to read `nodes`.
    pub fn tiles_for(size: u64, nodes: &[NodeId]) -> Vec<Tile> {
        let mut out: Vec<Tile> = nodes
            .iter()
            .filter_map(|n| {
                let loc = locate(*n);
                Tile::in_tree(
                    TileKind::Hash {
                        level: loc.tile_level,
                    },
                    loc.tile_index,
                    size,
                )
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Adds a tile's contents (checked against its width).
    pub fn insert(&mut self, tile: &Tile, data: &[u8]) -> Result<(), TileDataError> {
        let hashes = decode_hashes(tile, data)?;
        if let TileKind::Hash { level } = tile.kind {
            self.tiles.insert((level, tile.index), hashes);
        }
        Ok(())
    }
}

impl NodeSource for TileSet {
    type Error = TileSetError;
    fn node(&self, node: NodeId) -> Result<Hash, TileSetError> {
        if node.leaves().end > self.size || node.level >= 64 {
            return Err(TileSetError::OutsideTree {
                node,
                size: self.size,
            });
        }
        let loc = locate(node);
        let missing = || {
            let t = Tile::in_tree(
                TileKind::Hash {
                    level: loc.tile_level,
                },
                loc.tile_index,
                self.size,
            );
            TileSetError::Missing(t.map_or_else(|| format!("{node:?}"), |t| t.path()))
        };
        let hashes = self
            .tiles
            .get(&(loc.tile_level, loc.tile_index))
            .ok_or_else(missing)?;
        tile_node(
            hashes,
            node.level % TILE_HEIGHT,
            loc.positions.start >> (node.level % TILE_HEIGHT),
        )
        .ok_or_else(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::merkle::{tree_root, MemoryTree};
    use proptest::prelude::*;

    #[test]
    fn index_encoding() {
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(5), "005");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(decode_index("x001/x234/067"), Some(1234067));
        for bad in [
            "1",
            "01",
            "0005",
            "x000/005",
            "001/002",
            "x001/x234",
            "x1/000",
            "x001/00a",
            "",
            "/000",
            "000/",
        ] {
            assert_eq!(decode_index(bad), None, "{bad}");
        }
        assert_eq!(decode_index(&encode_index(u64::MAX)), Some(u64::MAX));
        assert_eq!(decode_index("x018/x446/x744/x073/x709/x551/616"), None);
    }

    #[test]
    fn paths() {
        let t = Tile::parse_path("tile/0/x001/234.p/5").unwrap();
        assert_eq!(
            t,
            Tile {
                kind: TileKind::Hash { level: 0 },
                index: 1234,
                width: 5
            }
        );
        assert_eq!(t.path(), "tile/0/x001/234.p/5");
        let e = Tile::parse_path("tile/entries/000").unwrap();
        assert_eq!(
            e,
            Tile {
                kind: TileKind::Entries,
                index: 0,
                width: 256
            }
        );
        for bad in [
            "tile/00/000",
            "tile/64/000",
            "tile/1/000.p/0",
            "tile/1/000.p/256",
            "tile/1/000.p/05",
            "tile/1/000.p/",
            "tile/1/000.p",
            "tile/-1/000",
            "tile/1/000/",
            "tiles/1/000",
            "tile/1",
            "tile/entry/000",
            "tile/1/000.p/5/6",
            "tile/+1/000",
            "tile/1/x000/000",
        ] {
            assert!(Tile::parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spec_example_size_70000() {
        // tlog-tiles: 273 full level-0 tiles, one partial of width 112, one
        // full level-1 tile, one partial level-1 of width 17, one level-2 of width 1.
        let tiles = Tile::all_for_size(70_000);
        let l0: Vec<_> = tiles
            .iter()
            .filter(|t| t.kind == TileKind::Hash { level: 0 })
            .collect();
        assert_eq!(l0.len(), 274);
        assert_eq!(l0.iter().filter(|t| t.is_full()).count(), 273);
        assert_eq!(l0.last().unwrap().width, 112);
        let l1: Vec<_> = tiles
            .iter()
            .filter(|t| t.kind == TileKind::Hash { level: 1 })
            .collect();
        assert_eq!(l1.len(), 2);
        assert_eq!(l1[1].width, 17);
        let l2: Vec<_> = tiles
            .iter()
            .filter(|t| t.kind == TileKind::Hash { level: 2 })
            .collect();
        assert_eq!(l2.len(), 1);
        assert_eq!(l2[0].width, 1);
        assert_eq!(tiles.len(), 277);
        // Size 256: one full level-0 tile and a level-1 tile of width 1.
        let t256 = Tile::all_for_size(256);
        assert_eq!(
            t256,
            vec![
                Tile::full(0, 0),
                Tile {
                    kind: TileKind::Hash { level: 1 },
                    index: 0,
                    width: 1
                }
            ]
        );
    }

    fn tiles_of(tree: &MemoryTree) -> TileSet {
        let size = tree.size();
        let mut set = TileSet::new(size);
        for t in Tile::all_for_size(size) {
            let TileKind::Hash { level } = t.kind else {
                unreachable!()
            };
            let hashes: Vec<Hash> = t
                .span()
                .map(|i| tree.node(NodeId::new(level * TILE_HEIGHT, i)).unwrap())
                .collect();
            set.insert(&t, &encode_hashes(&hashes)).unwrap();
        }
        set
    }

    #[test]
    fn nodes_from_tiles_equal_tree_nodes() {
        for size in [1u64, 255, 256, 257, 65535, 65536, 65537, 70000] {
            let tree = MemoryTree::from_leaves((0..size).map(|i| leaf_hash(&i.to_be_bytes())));
            let set = tiles_of(&tree);
            assert_eq!(tree_root(size, &set).unwrap(), tree.root(), "size {size}");
            for probe in [0u64, size / 3, size - 1] {
                let p = crate::inclusion::prove(probe, size, &set).unwrap();
                assert_eq!(p, crate::inclusion::prove(probe, size, &tree).unwrap());
                let nodes: Vec<NodeId> = crate::inclusion::proof_ranges(probe, size)
                    .unwrap()
                    .into_iter()
                    .flat_map(crate::merkle::range_nodes)
                    .collect();
                for t in TileSet::tiles_for(size, &nodes) {
                    assert!(Tile::all_for_size(size).contains(&t));
                }
            }
        }
    }

    proptest! {
        #[test]
        fn path_roundtrip(level in 0u8..=63, index in any::<u64>(), width in 1u16..=256, entries in any::<bool>()) {
            let kind = if entries { TileKind::Entries } else { TileKind::Hash { level } };
            let t = Tile { kind, index, width };
            prop_assert_eq!(Tile::parse_path(&t.path()), Ok(t));
        }

        /// Every node inside a tile, whichever way it is asked for, is the
        /// RFC 6962 root of the hashes below it.
        #[test]
        fn tile_nodes_are_the_subtree_roots(n in 1usize..=256, seed in any::<u8>()) {
            let hashes: Vec<Hash> = (0..n).map(|i| leaf_hash(&[seed, i as u8])).collect();
            let t = TileNodes::new(hashes.clone());
            for row in 0..=8u8 {
                let span = 1usize << row;
                prop_assert_eq!(t.row(row).len(), n / span);
                for pos in 0..n / span {
                    let want = crate::hash::naive_root(&hashes[pos * span..(pos + 1) * span]);
                    prop_assert_eq!(t.node(row, pos), Some(want));
                    prop_assert_eq!(tile_node(&hashes, row, pos), Some(want));
                }
                prop_assert_eq!(tile_node(&hashes, row, n / span), None);
            }
        }

        #[test]
        fn parse_path_never_panics_and_is_canonical(s in "tile/[0-9a-z./x-]{0,30}") {
            if let Ok(t) = Tile::parse_path(&s) {
                prop_assert_eq!(t.path(), s);
            }
        }
    }
}
