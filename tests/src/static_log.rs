//! A log written out as static tlog-tiles files by the test itself: the
//! checkpoint, hash tiles and entry bundles of whatever entries the test
//! chooses, signed with a key the test holds. Served by
//! [`crate::static_server`], it is a lying log that appends what an honest
//! `vouch-log` refuses (say, an attestation by a key after its transition),
//! for the monitors that must catch it.

use std::path::Path;

use vouch_spec::bundle;
use vouch_spec::checkpoint::Checkpoint;
use vouch_spec::merkle::{MemoryTree, NodeId, NodeSource};
use vouch_spec::note::{Ed25519Signer, Note};
use vouch_spec::tile::{encode_hashes, Tile, TileKind, TILE_WIDTH};

/// Writes the log of `entries` under `dir` (`checkpoint`, `tile/…`),
/// signed by `signer` (whose name is the origin).
pub fn write(dir: &Path, signer: &Ed25519Signer, entries: &[Vec<u8>]) {
    let tree = MemoryTree::from_leaves(entries.iter().map(|e| vouch_spec::leaf_hash(e)));
    let size = entries.len() as u64;
    let put = |rel: String, data: &[u8]| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("tile path has a parent")).unwrap();
        std::fs::write(p, data).unwrap();
    };
    for t in Tile::all_for_size(size) {
        let TileKind::Hash { level } = t.kind else {
            continue;
        };
        let hashes: Vec<_> = t
            .span()
            .map(|i| tree.node(NodeId::new(level * 8, i)).unwrap())
            .collect();
        put(t.path(), &encode_hashes(&hashes));
    }
    for b in 0..size.div_ceil(TILE_WIDTH) {
        let t = Tile::in_tree(TileKind::Entries, b, size).unwrap();
        let span = t.span();
        put(
            t.path(),
            &bundle::encode(&entries[span.start as usize..span.end as usize]).unwrap(),
        );
    }
    let origin = vouch_spec::note::NoteSigner::name(signer).to_string();
    let text = Checkpoint::new(&origin, size, tree.root()).to_text();
    put(
        "checkpoint".into(),
        &Note::sign(&text, &[signer]).unwrap().to_bytes(),
    );
}
