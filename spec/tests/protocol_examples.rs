//! The worked examples in `spec/PROTOCOL.md` §9 are computed here and must
//! appear in the document byte for byte, so the document cannot drift from
//! the code. Run with `VOUCH_PRINT_EXAMPLES=1 cargo test -p vouch-spec
//! --test protocol_examples -- --nocapture` to print them.

use vouch_spec::attestation::{Attestation, Entry};
use vouch_spec::checkpoint::Checkpoint;
use vouch_spec::cosignature::CosignatureSigner;
use vouch_spec::merkle::MemoryTree;
use vouch_spec::nix::{NarInfo, NixPublicKey, NixSecretKey};
use vouch_spec::note::{Ed25519Signer, Note};
use vouch_spec::policy::Policy;
use vouch_spec::tlog_proof::TlogProof;
use vouch_spec::transition::Transition;
use vouch_spec::{inclusion, node_hash};

const HELLO: &str = include_str!("../testdata/nix/hello.narinfo");

fn key(n: u8) -> NixPublicKey {
    let text = match n {
        1 => include_str!("../testdata/nix/builder-1.pub"),
        _ => include_str!("../testdata/nix/builder-2.pub"),
    };
    NixPublicKey::parse(text.trim_end()).unwrap()
}

/// Every example block, in document order, as (label, text).
fn examples() -> Vec<(&'static str, String)> {
    let narinfo = NarInfo::parse(HELLO.as_bytes()).unwrap();
    let e1 = Attestation::from_narinfo(&narinfo, &key(1))
        .unwrap()
        .to_entry();
    let e2 = Attestation::from_narinfo(&narinfo, &key(2))
        .unwrap()
        .to_entry();
    let (b1, b2) = (e1.encode(), e2.encode());
    assert_eq!(Entry::decode(&b1).unwrap(), e1);
    let (l1, l2) = (e1.leaf_hash(), e2.leaf_hash());
    let tree = MemoryTree::from_leaves([l1, l2]);
    assert_eq!(tree.root(), node_hash(&l1, &l2));

    let log = Ed25519Signer::from_seed("log.vouch.example/demo", &[1; 32]).unwrap();
    let witness = CosignatureSigner::from_seed("witness.vouch.example/w1", &[2; 32]).unwrap();
    let text = Checkpoint::new("log.vouch.example/demo", 2, tree.root()).to_text();
    let mut note = Note::sign(&text, &[&log]).unwrap();
    note.sigs.push(witness.cosign(&text, 1795400000).unwrap());
    let checkpoint = String::from_utf8(note.to_bytes()).unwrap();

    let policy_text = format!(
        "log {}\nwitness w1 {}\nquorum w1\n",
        log.verifier().vkey(),
        witness.verifier().vkey()
    );
    let policy = Policy::parse(policy_text.as_bytes()).unwrap();
    let proof = TlogProof {
        extra: Some(b2.clone()),
        index: 1,
        proof: inclusion::prove(1, 2, &tree).unwrap(),
        checkpoint: note.to_bytes(),
    };
    proof.verify(&l2, &policy).unwrap();

    vec![
        ("fingerprint", narinfo.fingerprint()),
        (
            "entry length",
            format!("so the entry is {} bytes", b1.len()),
        ),
        ("entry", String::from_utf8(b1).unwrap()),
        (
            "leaf hashes",
            format!(
                "entry 0 (builder-1): {}\nentry 1 (builder-2): {}\nroot (size 2):       {}",
                l1.to_hex(),
                l2.to_hex(),
                tree.root().to_hex()
            ),
        ),
        ("policy", policy_text),
        ("checkpoint", checkpoint),
        ("tlog-proof", String::from_utf8(proof.encode()).unwrap()),
        ("handover", handover()),
    ]
}

/// §9.6: builder-1's key hands over to builder-2's, signed by both.
fn handover() -> String {
    let secret = |text: &str| NixSecretKey::parse(text.trim_end()).unwrap();
    let t = Transition::handover(
        &secret(include_str!("../testdata/nix/builder-1.sec")),
        &secret(include_str!("../testdata/nix/builder-2.sec")),
    );
    let bytes = t.encode();
    let d = Transition::decode(&bytes).unwrap();
    d.verify().unwrap();
    assert_eq!(d.old, key(1));
    String::from_utf8(bytes).unwrap()
}

#[test]
fn protocol_md_contains_every_worked_example() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md")).unwrap();
    let print = std::env::var_os("VOUCH_PRINT_EXAMPLES").is_some();
    for (label, text) in examples() {
        if print {
            println!("--- {label}\n{text}\n---");
            continue;
        }
        assert!(
            doc.contains(&text),
            "PROTOCOL.md lacks the {label} example:\n{text}"
        );
    }
}
