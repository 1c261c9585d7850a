//! Property tests of the acceptance rule (`spec/PROTOCOL.md` §7) as a pure
//! function: its outcome against a direct statement of steps 5–7, its
//! freshness and consistency steps against their definitions, and that no
//! single altered byte in what a client is shown is ever accepted.

use proptest::prelude::*;
use vouch_spec::accept::{
    accept, Candidate, Clock, Decision, Inclusion, Keep, Kept, Rejection, Rule, Shown,
};
use vouch_spec::attestation::Attestation;
use vouch_spec::checkpoint::Checkpoint;
use vouch_spec::cosignature::CosignatureSigner;
use vouch_spec::merkle::MemoryTree;
use vouch_spec::nix::{NarInfo, NixSecretKey, StorePath};
use vouch_spec::note::{Ed25519Signer, Note};
use vouch_spec::policy::{CheckpointCache, Policy};
use vouch_spec::transition::Transition;
use vouch_spec::{consistency, inclusion, tracker};

const ORIGIN: &str = "log.vouch.test/accept";
const NOW: u64 = 1_800_000_000;

fn log_key() -> Ed25519Signer {
    Ed25519Signer::from_seed(ORIGIN, &[1; 32]).unwrap()
}

fn witness(i: u8) -> CosignatureSigner {
    CosignatureSigner::from_seed(&format!("w{i}.vouch.test"), &[100 + i; 32]).unwrap()
}

fn builder(i: u8) -> NixSecretKey {
    NixSecretKey::from_seed(&format!("b{i}.vouch.test-1"), &[200 - i; 32]).unwrap()
}

fn path(i: u64) -> StorePath {
    let h = vouch_spec::nix::nix32::encode(&vouch_spec::hash::sha256(&i.to_be_bytes())[..20]);
    StorePath::from_base("/nix/store", &format!("{h}-p{i}")).unwrap()
}

/// The attestation by builder `b` for path 0, honest (variant 0) or not.
fn attest(b: u8, variant: u8) -> Attestation {
    let mut nar = [7u8; 32];
    nar[0] = variant;
    Attestation::sign(path(0), nar, 100, vec![path(1)], None, &builder(b))
}

fn narinfo() -> NarInfo {
    let a = attest(0, 0);
    let text = format!(
        "StorePath: {}\nURL: nar/x.nar\nNarHash: {}\nNarSize: 100\nReferences: {}\n",
        a.path,
        vouch_spec::nix::narinfo::format_sha256(&a.nar_hash),
        path(1).base()
    );
    NarInfo::parse(text.as_bytes()).unwrap()
}

/// A policy over the test log and witnesses 0..n with quorum `q` of them
/// (`q == 0`: `quorum none`).
fn policy(n: u8, q: usize) -> Policy {
    let mut text = format!("log {}\n", log_key().verifier().vkey());
    for i in 0..n {
        text.push_str(&format!("witness w{i} {}\n", witness(i).verifier().vkey()));
    }
    if q == 0 {
        text.push_str("quorum none\n");
    } else {
        let members: Vec<String> = (0..n).map(|i| format!("w{i}")).collect();
        text.push_str(&format!("group g {q} {}\nquorum g\n", members.join(" ")));
    }
    Policy::parse(text.as_bytes()).unwrap()
}

fn rule(trusted: &[u8], k: usize, reject: bool) -> Rule {
    Rule {
        policy: policy(3, 0),
        trusted: trusted.iter().map(|b| builder(*b).public()).collect(),
        required: k,
        reject_disagreement: reject,
        max_age_secs: 3600,
        follow_handovers: true,
        pinned: Vec::new(),
    }
}

/// A log holding `filler` unrelated entries, then `entries`.
struct World {
    tree: MemoryTree,
    leaves: Vec<Vec<u8>>,
}

impl World {
    fn new(filler: u64, entries: &[Vec<u8>]) -> World {
        World::salted(filler, entries, 9)
    }

    /// Like [`World::new`], with filler entries that depend on `salt`.
    fn salted(filler: u64, entries: &[Vec<u8>], salt: u8) -> World {
        let mut leaves: Vec<Vec<u8>> = (0..filler)
            .map(|i| {
                Attestation::sign(path(10 + i), [salt; 32], 5, vec![], None, &builder(9))
                    .to_entry()
                    .encode()
            })
            .collect();
        leaves.extend(entries.iter().cloned());
        let tree = MemoryTree::from_leaves(leaves.iter().map(|l| vouch_spec::leaf_hash(l)));
        World { tree, leaves }
    }

    fn checkpoint(&self, size: u64, cosigners: &[(u8, u64)]) -> Vec<u8> {
        let text = Checkpoint::new(ORIGIN, size, self.tree.root_at(size).unwrap()).to_text();
        let mut note = Note::sign(&text, &[&log_key()]).unwrap();
        for (w, t) in cosigners {
            note.sigs.push(witness(*w).cosign(&text, *t).unwrap());
        }
        note.to_bytes()
    }

    /// Every entry from `from` on, proven under the tree of `size`.
    fn candidates(&self, from: u64, size: u64) -> Vec<Candidate> {
        (from..size)
            .map(|i| Candidate {
                index: i,
                entry: self.leaves[i as usize].clone(),
                inclusion: Inclusion::InShown(inclusion::prove(i, size, &self.tree).unwrap()),
            })
            .collect()
    }
}

fn decide(rule: &Rule, kept: &Kept, shown: &Shown) -> Decision {
    accept(
        rule,
        kept,
        shown,
        &narinfo(),
        Clock::Now(NOW),
        &mut CheckpointCache::default(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Steps 5–7: the outcome is what §7 says of the agreeing and
    /// disagreeing trusted builders, whatever untrusted keys attest and
    /// whatever the order of the entries.
    #[test]
    fn agreement_is_counted_per_trusted_builder(
        atts in proptest::collection::vec((0u8..6, 0u8..3), 0..10),
        trusted in proptest::collection::btree_set(0u8..6, 0..6),
        k in 1usize..4,
        reject: bool,
        filler in 0u64..40,
    ) {
        let entries: Vec<Vec<u8>> = atts.iter().map(|(b, v)| attest(*b, *v).to_entry().encode()).collect();
        let w = World::new(filler, &entries);
        let size = w.leaves.len() as u64;
        let trusted: Vec<u8> = trusted.into_iter().collect();
        let r = rule(&trusted, k, reject);
        let shown = Shown {
            checkpoint: Some(w.checkpoint(size, &[])),
            consistency: Some(Vec::new()),
            entries: w.candidates(filler, size),
        };
        let d = decide(&r, &Kept::default(), &shown);
        let agree: std::collections::BTreeSet<u8> = atts.iter().filter(|(b, v)| *v == 0 && trusted.contains(b)).map(|(b, _)| *b).collect();
        let disagree = atts.iter().any(|(b, v)| *v != 0 && trusted.contains(b));
        let want_ok = agree.len() >= k && !(reject && disagree);
        prop_assert_eq!(d.outcome.is_ok(), want_ok, "{:?}", d.reasons);
        match &d.outcome {
            Ok(a) => prop_assert_eq!(a.builders.len(), agree.len()),
            Err(Rejection::Disagreement { .. }) => prop_assert!(reject && disagree),
            Err(Rejection::TooFewBuilders { agreeing, .. }) => prop_assert_eq!(*agreeing, agree.len()),
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
        prop_assert_eq!(&d.keep, &Keep::Advance(shown.checkpoint.clone().unwrap()));
        // Every candidate has a reason; none is left unmentioned.
        prop_assert!(d.reasons.iter().filter(|r| r.step >= 5 && r.step <= 6).count() >= atts.len());
    }

    /// Step 5: any altered byte of a counted entry, its proof or its
    /// index makes the decision a rejection naming a bad entry.
    #[test]
    fn an_altered_entry_or_proof_is_never_accepted(
        n in 1u64..60, victim in 0usize..2, what in 0u8..3, at in any::<prop::sample::Index>(), bit in 0u8..8,
    ) {
        let entries = vec![attest(0, 0).to_entry().encode(), attest(1, 0).to_entry().encode()];
        let w = World::new(n, &entries);
        let size = w.leaves.len() as u64;
        let r = rule(&[0, 1], 2, true);
        let mut cands = w.candidates(n, size);
        let c = &mut cands[victim];
        match (what, &mut c.inclusion) {
            (0, _) => { let i = at.index(c.entry.len()); c.entry[i] ^= 1 << bit; }
            (1, Inclusion::InShown(p)) if !p.is_empty() => { let i = at.index(p.len()); p[i].0[usize::from(bit) % 32] ^= 1 << bit; }
            _ => c.index ^= 1 << (bit % 6),
        }
        let shown = Shown { checkpoint: Some(w.checkpoint(size, &[])), consistency: Some(Vec::new()), entries: cands };
        let d = decide(&r, &Kept::default(), &shown);
        prop_assert!(matches!(d.outcome, Err(Rejection::BadEntry { .. })), "{:?}", d.outcome);
    }

    /// Step 3: the quorum counts only cosignatures within `max_age` and not
    /// more than ten minutes in the future.
    #[test]
    fn freshness_is_the_quorum_of_fresh_cosignatures(
        ages in proptest::collection::vec(-1200i64..8000, 3), q in 1usize..4, max_age in 1u64..7200,
    ) {
        let w = World::new(3, &[attest(0, 0).to_entry().encode()]);
        let stamps: Vec<(u8, u64)> = ages.iter().enumerate().map(|(i, a)| (i as u8, (NOW as i64 - a) as u64)).collect();
        let mut r = rule(&[0], 1, true);
        r.policy = policy(3, q);
        r.max_age_secs = max_age;
        let shown = Shown { checkpoint: Some(w.checkpoint(4, &stamps)), consistency: Some(Vec::new()), entries: w.candidates(3, 4) };
        let d = decide(&r, &Kept::default(), &shown);
        let fresh = ages.iter().filter(|a| **a >= -600 && **a <= max_age as i64).count();
        if fresh >= q {
            prop_assert!(d.outcome.is_ok(), "{:?}", d.outcome);
        } else {
            let stale = matches!(d.outcome, Err(Rejection::Stale { .. }));
            prop_assert!(stale, "{:?}", d.outcome);
            prop_assert_eq!(d.keep, Keep::Nothing);
        }
    }

    /// Step 4: a checkpoint of the same history advances the kept one or is
    /// a rollback; one of another history is a fork, kept as evidence.
    #[test]
    fn consistency_advances_rolls_back_or_forks(s in 1u64..40, c in 1u64..40, other: bool) {
        let entry = attest(0, 0).to_entry().encode();
        let w = World::new(40, std::slice::from_ref(&entry));
        let alt = World::salted(41, std::slice::from_ref(&entry), 8);
        let (kw, size) = (if other { &alt } else { &w }, 41u64);
        let kept_bytes = kw.checkpoint(s, &[]);
        let kept_cp = Checkpoint::parse(&Note::parse(&kept_bytes).unwrap().text).unwrap();
        let kept = Kept { checkpoint: Some((kept_bytes.clone(), kept_cp.clone())), forked: false };
        let shown_bytes = w.checkpoint(c.max(s).max(1).min(size), &[]);
        let shown_cp = Checkpoint::parse(&Note::parse(&shown_bytes).unwrap().text).unwrap();
        let proof = match tracker::proof_needed(&kept_cp, &shown_cp) {
            Some((a, b)) => consistency::prove(a, b, &w.tree).unwrap(),
            None => Vec::new(),
        };
        let cands = if shown_cp.size == size { w.candidates(40, size) } else { Vec::new() };
        let shown = Shown { checkpoint: Some(shown_bytes.clone()), consistency: Some(proof), entries: cands };
        let d = decide(&rule(&[0], 1, true), &kept, &shown);
        let differs = other;
        if differs {
            let fork = matches!(d.outcome, Err(Rejection::Fork { .. }));
            prop_assert!(fork, "{:?}", d.outcome);
            match d.keep { Keep::Fork(f) => { prop_assert_eq!(f.old, kept_bytes); prop_assert_eq!(f.new, shown_bytes); } k => prop_assert!(false, "{k:?}") }
        } else if shown_cp.size > s {
            prop_assert_eq!(d.keep, Keep::Advance(shown_bytes));
        } else {
            prop_assert_eq!(d.keep, Keep::Nothing);
        }
    }
}

#[test]
fn a_refused_log_and_an_unsigned_checkpoint_stop_at_their_step() {
    let w = World::new(3, &[attest(0, 0).to_entry().encode()]);
    let shown = Shown {
        checkpoint: Some(w.checkpoint(4, &[])),
        consistency: Some(Vec::new()),
        entries: w.candidates(3, 4),
    };
    let r = rule(&[0], 1, true);
    assert!(decide(&r, &Kept::default(), &shown).outcome.is_ok());
    let refused = decide(
        &r,
        &Kept {
            checkpoint: None,
            forked: true,
        },
        &shown,
    );
    assert!(matches!(refused.outcome, Err(Rejection::Refused { .. })));
    assert_eq!(refused.reasons.len(), 1);
    let mut forged = Note::parse(shown.checkpoint.as_ref().unwrap()).unwrap();
    forged.sigs[0].sig[3] ^= 1;
    let bad = decide(
        &r,
        &Kept::default(),
        &Shown {
            checkpoint: Some(forged.to_bytes()),
            ..shown.clone()
        },
    );
    assert!(matches!(bad.outcome, Err(Rejection::Checkpoint(_))));
    assert_eq!(bad.keep, Keep::Nothing);
}

#[test]
fn offline_bundles_need_their_own_quorum_unless_proven_consistent_with_a_shown_one() {
    let entries = vec![attest(0, 0).to_entry().encode()];
    let w = World::new(5, &entries);
    let mut r = rule(&[0], 1, true);
    r.policy = policy(2, 1);
    let bundle = |cosigned: bool, to_shown: Option<Vec<vouch_spec::Hash>>| Candidate {
        index: 5,
        entry: entries[0].clone(),
        inclusion: Inclusion::Bundle {
            checkpoint: w.checkpoint(6, if cosigned { &[(0, NOW)] } else { &[] }),
            proof: inclusion::prove(5, 6, &w.tree).unwrap(),
            to_shown,
        },
    };
    let offline = |c: Candidate| {
        accept(
            &r,
            &Kept::default(),
            &Shown {
                checkpoint: None,
                consistency: None,
                entries: vec![c],
            },
            &narinfo(),
            Clock::Offline,
            &mut CheckpointCache::default(),
        )
    };
    assert!(offline(bundle(true, None)).outcome.is_ok());
    assert!(matches!(
        offline(bundle(false, None)).outcome,
        Err(Rejection::BadEntry { .. })
    ));
    // Online, an old uncosigned bundle counts once proven consistent with a
    // fresh, witnessed checkpoint.
    let w2 = World::new(5, &[entries[0].clone(), entries[0].clone()]);
    let online = |to: Option<Vec<vouch_spec::Hash>>| {
        decide(
            &r,
            &Kept::default(),
            &Shown {
                checkpoint: Some(w2.checkpoint(7, &[(1, NOW - 5)])),
                consistency: Some(Vec::new()),
                entries: vec![bundle(false, to)],
            },
        )
    };
    let to = consistency::prove(6, 7, &w2.tree).unwrap();
    let d = online(Some(to.clone()));
    assert_eq!(d.outcome.map(|a| a.tree_size), Ok(7), "{:?}", d.reasons);
    let mut bad = to;
    bad[0].0[0] ^= 1;
    assert!(matches!(
        online(Some(bad)).outcome,
        Err(Rejection::BadEntry { .. })
    ));
}

/// Decides over a log of 3 filler entries followed by `entries`, all shown.
fn decide_over(rule: &Rule, entries: &[Vec<u8>]) -> Decision {
    let w = World::new(3, entries);
    let size = w.leaves.len() as u64;
    let shown = Shown {
        checkpoint: Some(w.checkpoint(size, &[])),
        consistency: Some(Vec::new()),
        entries: w.candidates(3, size),
    };
    decide(rule, &Kept::default(), &shown)
}

fn handover(old: u8, new: u8) -> Vec<u8> {
    Transition::handover(&builder(old), &builder(new)).encode()
}

/// Transitions (§3.6, §7 step 6): an old key counts only below its cutoff,
/// a new key continues the old one when the rule follows handovers, and
/// every refusal names the transition.
#[test]
fn transitions_cut_off_old_keys_and_carry_trust_to_new_ones() {
    let b1 = rule(&[1], 1, true);
    // Signed by the old key before its handover: still accepted.
    let d = decide_over(&b1, &[attest(1, 0).to_entry().encode(), handover(1, 2)]);
    assert!(d.outcome.is_ok(), "{:?}", d.reasons);
    // Signed by the old key after the handover (the stolen-key case), and
    // appended by a lying log: refused, naming the transition.
    let d = decide_over(&b1, &[handover(1, 2), attest(1, 0).to_entry().encode()]);
    match d.outcome {
        Err(Rejection::Retired {
            index, transition, ..
        }) => {
            assert_eq!(index, 4);
            assert!(transition.contains("handed over to b2.vouch.test-1 at index 3"));
        }
        o => panic!("{o:?}"),
    }
    // Signed by the new key only: accepted by a client that trusted only
    // the old key, as its continuation …
    let d = decide_over(&b1, &[handover(1, 2), attest(2, 0).to_entry().encode()]);
    assert_eq!(
        d.outcome.as_ref().map(|a| a.builders.clone()),
        Ok(vec![builder(2).public().to_string()]),
        "{:?}",
        d.reasons
    );
    // … but not when the rule does not follow handovers; then the refusal
    // names the transition.
    let strict = Rule {
        follow_handovers: false,
        ..b1.clone()
    };
    let d = decide_over(&strict, &[handover(1, 2), attest(2, 0).to_entry().encode()]);
    match d.outcome {
        Err(Rejection::TooFewBuilders { transitions, .. }) => {
            assert!(
                transitions.contains("b1.vouch.test-1 handed over"),
                "{transitions}"
            )
        }
        o => panic!("{o:?}"),
    }
    // Old and new key together are one builder, not two.
    let k2 = rule(&[1], 2, true);
    let d = decide_over(
        &k2,
        &[
            attest(1, 0).to_entry().encode(),
            handover(1, 2),
            attest(2, 0).to_entry().encode(),
        ],
    );
    assert!(
        matches!(
            d.outcome,
            Err(Rejection::TooFewBuilders { agreeing: 1, .. })
        ),
        "{:?}",
        d.outcome
    );
    // A later handover by the old key (say, by whoever stole it) is not
    // honoured: the first one logged is the transition.
    let d = decide_over(
        &b1,
        &[
            handover(1, 2),
            handover(1, 3),
            attest(3, 0).to_entry().encode(),
        ],
    );
    assert!(
        matches!(d.outcome, Err(Rejection::TooFewBuilders { .. })),
        "{:?}",
        d.outcome
    );
    // A retirement: nothing by the key counts from its index on.
    let retire = Transition::retire(&builder(1)).encode();
    let d = decide_over(&b1, &[retire, attest(1, 0).to_entry().encode()]);
    assert!(matches!(d.outcome, Err(Rejection::Retired { .. })));
    // A handover signed by one key only is a bad entry, never honoured.
    let mut forged = Transition::handover(&builder(1), &builder(3));
    forged.new = Some((builder(3).public(), [0; 64]));
    let d = decide_over(&b1, &[forged.encode(), attest(3, 0).to_entry().encode()]);
    assert!(
        matches!(d.outcome, Err(Rejection::BadEntry { index: 3, .. })),
        "{:?}",
        d.outcome
    );
}

/// A transition pinned in the configuration holds even when the log does
/// not show it (a log hiding a transition cannot un-retire a key).
#[test]
fn pinned_transitions_hold_without_the_log() {
    let pinned = Rule {
        pinned: vec![(3, Transition::handover(&builder(1), &builder(2)))],
        ..rule(&[1], 1, true)
    };
    // The log hides the handover and appended a stolen-key attestation at 3.
    let d = decide_over(&pinned, &[attest(1, 0).to_entry().encode()]);
    assert!(matches!(
        d.outcome,
        Err(Rejection::Retired { index: 3, .. })
    ));
    let d = decide_over(&pinned, &[attest(2, 0).to_entry().encode()]);
    assert!(d.outcome.is_ok(), "{:?}", d.reasons);
}
