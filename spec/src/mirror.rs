//! C2SP tlog-mirror (`tlog-mirror.md`, "add-entries"): the request body,
//! its canonical sequence of entry packages, the `text/x.tlog.mirror-info`
//! body of 409 and 202 answers, and the mirror's checks, as pure functions
//! of the mirror's state. `spec/PROTOCOL.md` §6.5 says how Vouch uses it.
//!
//! A package covers the entries `[start, end)` inside one 256-entry bundle;
//! it is authenticated by the subtree consistency proof
//! ([`crate::subtree`]) of `[subtree_start, end)` — the bundle's first index
//! to the package's end — in the checkpoint of size `upload_end`.

use crate::hash::{Hash, HASH_LEN};
use crate::subtree::MAX_PROOF_HASHES;

/// Entries per package: the tlog-tiles bundle width.
pub const PACKAGE_WIDTH: u64 = 256;
/// Packages a client should send in one request (C2SP: at most 32).
pub const PACKAGES_PER_REQUEST: u64 = 32;
/// `Content-Type` of the 409 and 202 bodies.
pub const INFO_CONTENT_TYPE: &str = "text/x.tlog.mirror-info";

/// The fixed part of an `add-entries` body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadHeader {
    /// The log's origin line.
    pub origin: String,
    /// First index uploaded.
    pub start: u64,
    /// The size of the checkpoint the entries are proven against.
    pub end: u64,
    /// The mirror's opaque ticket, or empty.
    pub ticket: Vec<u8>,
}

/// One package's span: its entries are `[start, end)`, its proof is for the
/// subtree `[subtree_start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackageSpan {
    /// The bundle's first index (a multiple of [`PACKAGE_WIDTH`]).
    pub subtree_start: u64,
    /// The package's first entry.
    pub start: u64,
    /// One past its last entry.
    pub end: u64,
}

/// One package as read from a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package<'a> {
    /// The entries, in order.
    pub entries: Vec<&'a [u8]>,
    /// The subtree consistency proof.
    pub proof: Vec<Hash>,
}

/// Why an `add-entries` body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body ended inside the header or a package.
    #[error("the body ends inside {0}")]
    Truncated(&'static str),
    /// The origin is not UTF-8.
    #[error("the log origin is not UTF-8")]
    OriginNotUtf8,
    /// `upload_start` is past `upload_end`.
    #[error("upload_start {start} is past upload_end {end}")]
    StartAfterEnd {
        /// `upload_start`.
        start: u64,
        /// `upload_end`.
        end: u64,
    },
    /// A package announces more proof hashes than a proof can have.
    #[error("a package holds {0} proof hashes, at most {MAX_PROOF_HASHES} are allowed")]
    TooManyHashes(u8),
}

fn take<'a>(buf: &mut &'a [u8], n: usize, what: &'static str) -> Result<&'a [u8], BodyError> {
    if buf.len() < n {
        return Err(BodyError::Truncated(what));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn u16_at(buf: &mut &[u8], what: &'static str) -> Result<u16, BodyError> {
    let b = take(buf, 2, what)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn u64_at(buf: &mut &[u8], what: &'static str) -> Result<u64, BodyError> {
    let b = take(buf, 8, what)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(u64::from_be_bytes(a))
}

impl UploadHeader {
    /// Reads the header from the front of `body`, returning it and the rest
    /// (the packages).
    pub fn parse(body: &[u8]) -> Result<(UploadHeader, &[u8]), BodyError> {
        let mut buf = body;
        let n = u16_at(&mut buf, "the origin's length")?;
        let origin = take(&mut buf, usize::from(n), "the origin")?;
        let origin = std::str::from_utf8(origin)
            .map_err(|_| BodyError::OriginNotUtf8)?
            .to_string();
        let start = u64_at(&mut buf, "upload_start")?;
        let end = u64_at(&mut buf, "upload_end")?;
        if start > end {
            return Err(BodyError::StartAfterEnd { start, end });
        }
        let t = u16_at(&mut buf, "the ticket's length")?;
        let ticket = take(&mut buf, usize::from(t), "the ticket")?.to_vec();
        Ok((
            UploadHeader {
                origin,
                start,
                end,
                ticket,
            },
            buf,
        ))
    }

    /// The encoded header (an origin or ticket longer than 65,535 bytes is
    /// cut at that length, which a mirror will not recognise).
    pub fn encode(&self) -> Vec<u8> {
        let origin = &self.origin.as_bytes()[..self.origin.len().min(usize::from(u16::MAX))];
        let ticket = &self.ticket[..self.ticket.len().min(usize::from(u16::MAX))];
        let mut out = Vec::with_capacity(22 + origin.len() + ticket.len());
        out.extend_from_slice(&(origin.len() as u16).to_be_bytes());
        out.extend_from_slice(origin);
        out.extend_from_slice(&self.start.to_be_bytes());
        out.extend_from_slice(&self.end.to_be_bytes());
        out.extend_from_slice(&(ticket.len() as u16).to_be_bytes());
        out.extend_from_slice(ticket);
        out
    }
}

/// The canonical sequence of packages for `[start, end)`.
pub fn packages(start: u64, end: u64) -> impl Iterator<Item = PackageSpan> {
    let first = start - start % PACKAGE_WIDTH;
    let mut at = first;
    std::iter::from_fn(move || {
        if start >= end || at >= end {
            return None;
        }
        let span = PackageSpan {
            subtree_start: at,
            start: start.max(at),
            end: end.min(at.saturating_add(PACKAGE_WIDTH)),
        };
        at = at.saturating_add(PACKAGE_WIDTH);
        Some(span)
    })
}

/// How many packages the canonical sequence for `[start, end)` has.
pub fn package_count(start: u64, end: u64) -> u64 {
    if start >= end {
        return 0;
    }
    let first = start / PACKAGE_WIDTH;
    let last = (end - 1) / PACKAGE_WIDTH;
    last - first + 1
}

/// Reads the package for `span` from the front of `buf`, returning it and
/// the rest.
pub fn parse_package(buf: &[u8], span: PackageSpan) -> Result<(Package<'_>, &[u8]), BodyError> {
    let mut buf = buf;
    let count = (span.end - span.start) as usize;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let n = u16_at(&mut buf, "an entry's length")?;
        entries.push(take(&mut buf, usize::from(n), "an entry")?);
    }
    let k = take(&mut buf, 1, "num_hashes")?[0];
    if usize::from(k) > MAX_PROOF_HASHES {
        return Err(BodyError::TooManyHashes(k));
    }
    let mut proof = Vec::with_capacity(usize::from(k));
    for _ in 0..k {
        let b = take(&mut buf, HASH_LEN, "a proof hash")?;
        let mut h = [0u8; HASH_LEN];
        h.copy_from_slice(b);
        proof.push(Hash(h));
    }
    Ok((Package { entries, proof }, buf))
}

/// Appends one package to `out`. Entries longer than 65,535 bytes cannot be
/// mirrored (tlog-tiles bundles cannot hold them either).
pub fn encode_package<E: AsRef<[u8]>>(out: &mut Vec<u8>, entries: &[E], proof: &[Hash]) {
    for e in entries {
        let e = e.as_ref();
        out.extend_from_slice(&(e.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
        out.extend_from_slice(&e[..e.len().min(usize::from(u16::MAX))]);
    }
    out.push(proof.len().min(MAX_PROOF_HASHES) as u8);
    for h in proof.iter().take(MAX_PROOF_HASHES) {
        out.extend_from_slice(&h.0);
    }
}

/// The body of a 409 or 202 answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorInfo {
    /// A valid pending checkpoint's size (`upload_end` when it was valid).
    pub size: u64,
    /// The mirror's next entry.
    pub next: u64,
    /// The ticket.
    pub ticket: Vec<u8>,
}

impl MirrorInfo {
    /// The three lines.
    pub fn encode(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.size,
            self.next,
            crate::b64::encode(&self.ticket)
        )
    }

    /// Parses the three lines.
    pub fn parse(body: &[u8]) -> Option<MirrorInfo> {
        let s = std::str::from_utf8(body).ok()?.strip_suffix('\n')?;
        let mut lines = s.split('\n');
        let size = crate::tile::parse_decimal(lines.next()?)?;
        let next = crate::tile::parse_decimal(lines.next()?)?;
        let ticket = crate::b64::decode(lines.next()?).ok()?;
        lines
            .next()
            .is_none()
            .then_some(MirrorInfo { size, next, ticket })
    }
}

/// What a mirror holds for one log, as far as the checks need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorView {
    /// Sizes of the pending checkpoints it still accepts as `upload_end`,
    /// and their roots (empty if it never received one).
    pub pending: Vec<(u64, Hash)>,
    /// The mirror checkpoint's size and root.
    pub mirror: (u64, Hash),
    /// The first index not yet stored.
    pub next: u64,
}

/// How far behind the mirror's next entry an upload may start: re-sent
/// entries are hashed but not stored, so this bounds the wasted work.
pub const MAX_EXCESS: u64 = PACKAGE_WIDTH * PACKAGES_PER_REQUEST;

/// Why an `add-entries` request is refused before its packages are read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadRefusal {
    /// 422: no pending checkpoint signed by the log yet.
    #[error("the mirror has no checkpoint of this log yet; add-checkpoint first")]
    NoCheckpoint,
    /// 409: `upload_end` is not a size the mirror can prove against.
    #[error("upload_end {end} is not a pending checkpoint's size nor the mirror checkpoint's")]
    UnknownEnd {
        /// `upload_end`.
        end: u64,
    },
    /// 409: `upload_end` is behind the mirror checkpoint.
    #[error("upload_end {end} is behind the mirror checkpoint's size {mirror}")]
    EndBehind {
        /// `upload_end`.
        end: u64,
        /// The mirror checkpoint's size.
        mirror: u64,
    },
    /// 409: `upload_start` leaves a gap after the mirror's next entry.
    #[error("upload_start {start} is past the mirror's next entry {next}")]
    Gap {
        /// `upload_start`.
        start: u64,
        /// The next entry.
        next: u64,
    },
    /// 409: the upload re-sends too many stored entries.
    #[error(
        "upload_start {start} re-sends {excess} stored entries, at most {MAX_EXCESS} are accepted"
    )]
    TooMuchExcess {
        /// `upload_start`.
        start: u64,
        /// The excess.
        excess: u64,
    },
}

impl UploadRefusal {
    /// The HTTP status C2SP tlog-mirror gives.
    pub fn status(&self) -> u16 {
        match self {
            UploadRefusal::NoCheckpoint => 422,
            _ => 409,
        }
    }
}

/// The checks C2SP tlog-mirror makes on `upload_start` and `upload_end`
/// before reading packages, in its order. On success, the root of the
/// checkpoint of size `upload_end` that every package is proven against.
pub fn check_upload(view: &MirrorView, header: &UploadHeader) -> Result<Hash, UploadRefusal> {
    if view.pending.is_empty() {
        return Err(UploadRefusal::NoCheckpoint);
    }
    let end = header.end;
    let root = view
        .pending
        .iter()
        .chain(std::iter::once(&view.mirror))
        .find(|(size, _)| *size == end)
        .map(|(_, root)| *root)
        .ok_or(UploadRefusal::UnknownEnd { end })?;
    if end < view.mirror.0 {
        return Err(UploadRefusal::EndBehind {
            end,
            mirror: view.mirror.0,
        });
    }
    if header.start > view.next {
        return Err(UploadRefusal::Gap {
            start: header.start,
            next: view.next,
        });
    }
    let excess = end.min(view.next) - header.start;
    if excess > MAX_EXCESS {
        return Err(UploadRefusal::TooMuchExcess {
            start: header.start,
            excess,
        });
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_canonical_sequence_matches_the_spec() {
        let spans: Vec<_> = packages(300, 1000).collect();
        assert_eq!(spans.len(), 3);
        assert_eq!(
            spans[0],
            PackageSpan {
                subtree_start: 256,
                start: 300,
                end: 512
            }
        );
        assert_eq!(spans[2].end, 1000);
        assert_eq!(packages(5, 5).count(), 0);
        assert_eq!(packages(0, 256).count(), 1);
        assert_eq!(packages(256, 257).count(), 1);
        assert_eq!(packages(255, 257).count(), 2);
        for (a, b) in [
            (0, 0),
            (5, 5),
            (0, 256),
            (256, 257),
            (255, 257),
            (300, 1000),
            (1, 513),
        ] {
            assert_eq!(
                package_count(a, b),
                packages(a, b).count() as u64,
                "[{a}, {b})"
            );
        }
        assert_eq!(package_count(0, u64::MAX), u64::MAX / 256 + 1);
    }

    #[test]
    fn info_bodies() {
        let i = MirrorInfo {
            size: 10,
            next: 7,
            ticket: vec![],
        };
        assert_eq!(i.encode(), "10\n7\n\n");
        assert_eq!(MirrorInfo::parse(b"10\n7\n\n"), Some(i));
        for bad in ["10\n7\n", "10\n07\n\n", "10\n7\n\n\n", "10\n7\n!\n"] {
            assert_eq!(MirrorInfo::parse(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn checks_in_order() {
        let r = Hash([1; 32]);
        let view = MirrorView {
            pending: vec![(100, r), (120, Hash([2; 32]))],
            mirror: (50, Hash([3; 32])),
            next: 60,
        };
        let h = |start, end| UploadHeader {
            origin: "o".into(),
            start,
            end,
            ticket: vec![],
        };
        assert_eq!(check_upload(&view, &h(60, 100)), Ok(r));
        assert_eq!(check_upload(&view, &h(50, 50)), Ok(Hash([3; 32])));
        assert_eq!(
            check_upload(&view, &h(60, 110)),
            Err(UploadRefusal::UnknownEnd { end: 110 })
        );
        assert_eq!(
            check_upload(&view, &h(61, 100)),
            Err(UploadRefusal::Gap {
                start: 61,
                next: 60
            })
        );
        let empty = MirrorView {
            pending: vec![],
            ..view
        };
        assert_eq!(check_upload(&empty, &h(0, 0)).unwrap_err().status(), 422);
    }

    proptest! {
        /// Any header encodes and parses back; packages of the canonical
        /// sequence partition `[start, end)`; encoded packages parse back.
        #[test]
        fn round_trips(origin in "[ -~]{0,40}", a in 0u64..5000, len in 0u64..3000,
                       ticket in prop::collection::vec(any::<u8>(), 0..20),
                       entries in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..50), 0..5)) {
            let h = UploadHeader { origin, start: a, end: a + len, ticket };
            let mut body = h.encode();
            body.extend_from_slice(b"rest");
            let (back, rest) = UploadHeader::parse(&body).unwrap();
            prop_assert_eq!(&back, &h);
            prop_assert_eq!(rest, b"rest");
            for cut in 0..body.len() - 4 {
                prop_assert!(UploadHeader::parse(&body[..cut]).is_err());
            }
            let mut at = a;
            for p in packages(a, a + len) {
                prop_assert_eq!(p.start, at);
                prop_assert!(p.end > p.start && p.end - p.subtree_start <= PACKAGE_WIDTH);
                prop_assert_eq!(p.subtree_start % PACKAGE_WIDTH, 0);
                prop_assert!(crate::subtree::is_valid(p.subtree_start, p.end));
                at = p.end;
            }
            prop_assert_eq!(at, if len == 0 { a } else { a + len });
            let span = PackageSpan { subtree_start: 0, start: 0, end: entries.len() as u64 };
            let mut out = Vec::new();
            encode_package(&mut out, &entries, &[Hash([7; 32])]);
            let (p, rest) = parse_package(&out, span).unwrap();
            prop_assert!(rest.is_empty());
            prop_assert_eq!(p.entries.len(), entries.len());
            prop_assert_eq!(p.proof, vec![Hash([7; 32])]);
            for cut in 0..out.len() {
                prop_assert!(parse_package(&out[..cut], span).is_err());
            }
        }
    }
}
