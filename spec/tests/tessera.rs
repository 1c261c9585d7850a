//! A real C2SP tlog-tiles log written by Tessera (testdata/tessera-log): open
//! every checkpoint with the log's vkey, rebuild the tree from the entry
//! bundles, match every hash tile byte for byte, and check consistency
//! between every pair of sizes using proofs computed from the tiles alone.

use std::path::{Path, PathBuf};

use vouch_spec::checkpoint::{open_checkpoint, Checkpoint};
use vouch_spec::merkle::{tree_root, MemoryTree, NodeId, NodeSource};
use vouch_spec::note::Ed25519Verifier;
use vouch_spec::tile::{encode_hashes, Tile, TileKind, TileSet};
use vouch_spec::{bundle, consistency, inclusion, leaf_hash};

const VKEY: &str = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";
/// The entries as Tessera's test wrote them (spelling included).
const WORDS: [&str; 15] = [
    "one", "two", "three", "four", "five", "six", "seven", "eit", "nain", "ten", "ileven", "twelf",
    "threeten", "fourten", "fivten",
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tessera-log")
}

fn read(p: &str) -> Vec<u8> {
    std::fs::read(dir().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn checkpoint(n: u64) -> Checkpoint {
    let v = Ed25519Verifier::from_vkey(VKEY).unwrap();
    let opened = open_checkpoint(&read(&format!("checkpoint.{n}")), &[&v]).unwrap();
    assert_eq!(opened.checkpoint.origin, "example.com/log/testdata");
    assert_eq!(opened.checkpoint.size, n);
    opened.checkpoint
}

/// The tiles a client would fetch for a tree of `size`.
fn tiles(size: u64) -> TileSet {
    let mut set = TileSet::new(size);
    for t in Tile::all_for_size(size) {
        set.insert(&t, &read(&t.path())).unwrap();
    }
    set
}

#[test]
fn every_checkpoint_opens_and_matches_the_entries_and_tiles() {
    let latest = Ed25519Verifier::from_vkey(VKEY).unwrap();
    let head = open_checkpoint(&read("checkpoint"), &[&latest])
        .unwrap()
        .checkpoint;
    assert_eq!(head.size, 15);
    let mut tree = MemoryTree::new();
    for n in 0..=15u64 {
        let cp = checkpoint(n);
        if n > 0 {
            // The entry bundle for this size holds every entry so far.
            let bundle_tile = Tile::in_tree(TileKind::Entries, 0, n).unwrap();
            assert_eq!(bundle_tile.path(), format!("tile/entries/000.p/{n}"));
            let data = read(&bundle_tile.path());
            let entries = bundle::decode_width(&data, n as usize).unwrap();
            assert_eq!(bundle::encode(&entries).unwrap(), data);
            assert_eq!(entries[n as usize - 1], WORDS[n as usize - 1].as_bytes());
            tree.push(leaf_hash(entries[n as usize - 1]));
            for (i, e) in entries.iter().enumerate() {
                assert_eq!(tree.node(NodeId::new(0, i as u64)).unwrap(), leaf_hash(e));
            }
            // The level-0 hash tile is exactly our leaf hashes.
            let hashes: Vec<_> = (0..n)
                .map(|i| tree.node(NodeId::new(0, i)).unwrap())
                .collect();
            assert_eq!(read(&format!("tile/0/000.p/{n}")), encode_hashes(&hashes));
        }
        assert_eq!(tree.root(), cp.root, "root at size {n}");
        if n > 0 {
            assert_eq!(
                tree_root(n, &tiles(n)).unwrap(),
                cp.root,
                "root from tiles at size {n}"
            );
        }
    }
    assert_eq!(head, checkpoint(15));
}

#[test]
fn consistency_and_inclusion_between_every_pair_from_tiles_alone() {
    for new in 1..=15u64 {
        let set = tiles(new);
        let new_cp = checkpoint(new);
        for old in 1..=new {
            let old_cp = checkpoint(old);
            let p = consistency::prove(old, new, &set).unwrap();
            consistency::verify(old, new, &p, &old_cp.root, &new_cp.root)
                .unwrap_or_else(|e| panic!("{old} -> {new}: {e}"));
        }
        for i in 0..new {
            let p = inclusion::prove(i, new, &set).unwrap();
            inclusion::verify(
                i,
                new,
                &leaf_hash(WORDS[i as usize].as_bytes()),
                &p,
                &new_cp.root,
            )
            .unwrap();
        }
    }
}

#[test]
fn a_tampered_checkpoint_or_tile_is_caught() {
    let v = Ed25519Verifier::from_vkey(VKEY).unwrap();
    let mut cp = read("checkpoint.7");
    let pos = cp.iter().position(|b| *b == b'\n').unwrap() + 1;
    cp[pos] = b'8';
    assert!(open_checkpoint(&cp, &[&v]).is_err());
    let mut tile = read("tile/0/000.p/7");
    tile[100] ^= 1;
    let mut set = TileSet::new(7);
    set.insert(
        &Tile::in_tree(TileKind::Hash { level: 0 }, 0, 7).unwrap(),
        &tile,
    )
    .unwrap();
    assert_ne!(tree_root(7, &set).unwrap(), checkpoint(7).root);
}
