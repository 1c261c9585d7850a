//! Interoperability with Go's reference implementation of signed notes and
//! tiled logs (`golang.org/x/mod/sumdb/{note,tlog}`, Debian's
//! golang-golang-x-mod-dev), driven through `testdata/go/interop.go`.
//!
//! Vouch writes a 70,000-entry tlog-tiles log and a signed checkpoint; Go
//! opens the note, authenticates every tile against the root and every entry
//! against its tile, and returns its own inclusion and consistency proofs,
//! which Vouch verifies. Keys and signed notes are exchanged both ways.
//! Needs `go` (CI installs it); fails, rather than skips, without it.

use std::path::{Path, PathBuf};
use std::process::Command;

use vouch_spec::checkpoint::Checkpoint;
use vouch_spec::merkle::{MemoryTree, NodeId, NodeSource};
use vouch_spec::note::{open, Ed25519Signer, Ed25519Verifier, Note};
use vouch_spec::tile::{encode_hashes, Tile, TileKind, TILE_HEIGHT};
use vouch_spec::{bundle, consistency, inclusion, leaf_hash, Hash};

fn go(args: &[&str]) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/go/interop.go");
    let out = Command::new("go")
        .arg("run")
        .arg(&src)
        .args(args)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOFLAGS", "")
        .output()
        .expect("running `go` (install golang-go and golang-golang-x-mod-dev, as .ci/run does)");
    assert!(
        out.status.success(),
        "go {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vouch-go-interop-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, rel: &str, data: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn hashes(s: &str) -> Vec<Hash> {
    s.split(' ')
        .filter(|x| !x.is_empty())
        .map(|h| Hash::from_base64(h).unwrap())
        .collect()
}

#[test]
fn go_reference_reads_a_vouch_log_and_its_proofs_verify_here() {
    const SIZE: u64 = 70_000;
    let dir = tempdir("log");
    let entries: Vec<Vec<u8>> = (0..SIZE)
        .map(|i| format!("entry {i} {}", "x".repeat((i % 50) as usize)).into_bytes())
        .collect();
    let tree = MemoryTree::from_leaves(entries.iter().map(|e| leaf_hash(e)));
    for t in Tile::all_for_size(SIZE) {
        let TileKind::Hash { level } = t.kind else {
            unreachable!()
        };
        let hs: Vec<Hash> = t
            .span()
            .map(|i| tree.node(NodeId::new(level * TILE_HEIGHT, i)).unwrap())
            .collect();
        write(&dir, &t.path(), &encode_hashes(&hs));
        if level == 0 {
            let b = Tile {
                kind: TileKind::Entries,
                ..t
            };
            let es: Vec<&Vec<u8>> = b.span().map(|i| &entries[i as usize]).collect();
            write(&dir, &b.path(), &bundle::encode(&es).unwrap());
        }
    }
    let signer = Ed25519Signer::from_seed("example.com/vouch-interop", &[11; 32]).unwrap();
    let text = Checkpoint::new("example.com/vouch-interop", SIZE, tree.root()).to_text();
    write(
        &dir,
        "checkpoint",
        &Note::sign(&text, &[&signer]).unwrap().to_bytes(),
    );

    let out = go(&[
        "verify-log",
        dir.to_str().unwrap(),
        &signer.verifier().vkey(),
    ]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("ok 70000"));
    let (mut incl, mut cons) = (0, 0);
    for line in lines {
        let parts: Vec<&str> = line.splitn(4, ' ').collect();
        match parts[0] {
            "incl" => {
                let (i, n): (u64, u64) = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
                let p = hashes(parts.get(3).unwrap_or(&""));
                assert_eq!(
                    p,
                    inclusion::prove(i, n, &tree).unwrap(),
                    "Go and Vouch disagree on inclusion {i}"
                );
                inclusion::verify(i, n, &leaf_hash(&entries[i as usize]), &p, &tree.root())
                    .unwrap();
                incl += 1;
            }
            "cons" => {
                let (old, n): (u64, u64) = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
                let rest: Vec<&str> = parts[3].splitn(2, ' ').collect();
                let old_root = Hash::from_base64(rest[0]).unwrap();
                assert_eq!(Some(old_root), tree.root_at(old));
                let p = hashes(rest.get(1).unwrap_or(&""));
                assert_eq!(
                    p,
                    consistency::prove(old, n, &tree).unwrap(),
                    "Go and Vouch disagree on {old}->{n}"
                );
                consistency::verify(old, n, &p, &old_root, &tree.root()).unwrap();
                cons += 1;
            }
            other => panic!("unexpected line {other:?}"),
        }
    }
    assert_eq!((incl, cons), (6, 7));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn keys_and_notes_cross_between_go_and_vouch() {
    // Go generates a key pair; Vouch parses both halves and they match.
    let out = go(&["generate", "example.com/go-made"]);
    let mut l = out.lines();
    let (skey, vkey) = (l.next().unwrap(), l.next().unwrap());
    let signer = Ed25519Signer::from_skey(skey).unwrap();
    assert_eq!(signer.verifier(), Ed25519Verifier::from_vkey(vkey).unwrap());
    assert_eq!(signer.skey(), skey);
    // Go signs, Vouch verifies.
    let dir = tempdir("notes");
    let text = "example.com/go-made\n42\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n";
    std::fs::write(dir.join("text"), text).unwrap();
    let signed = go(&["sign", skey, dir.join("text").to_str().unwrap()]);
    let opened = open(signed.as_bytes(), &[&signer.verifier()]).unwrap();
    assert_eq!(opened.note.text, text);
    // Vouch signs with a Vouch-made skey, Go verifies.
    let mine = Ed25519Signer::from_seed("example.com/vouch-made", &[12; 32]).unwrap();
    std::fs::write(
        dir.join("note"),
        Note::sign(text, &[&mine]).unwrap().to_bytes(),
    )
    .unwrap();
    assert_eq!(
        go(&[
            "verify-note",
            &mine.verifier().vkey(),
            dir.join("note").to_str().unwrap()
        ]),
        "ok\n"
    );
    // And Go's signer accepts Vouch's skey encoding.
    let again = go(&["sign", &mine.skey(), dir.join("text").to_str().unwrap()]);
    assert_eq!(
        again.as_bytes(),
        Note::sign(text, &[&mine]).unwrap().to_bytes()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
