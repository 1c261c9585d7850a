//! Which statement of a submission the log refused, and why: the
//! `Vouch-Refused` header of a 400 or 403 answer to a submission
//! (`spec/PROTOCOL.md` §5.1, §5.2). A submission is all or nothing, so a
//! submitter that logs many statements at once (backfill, the post-build
//! spool) drops the one named here and sends the rest again; the header
//! lets it do so without reading the human reason in the body.
//!
//! The value is `<position> <why>`: the statement's 0-based place in the
//! request body, in decimal without leading zeros, one space, and one of
//! the [`Why`] words. Nothing else is accepted.

use std::fmt;

use crate::tile::parse_decimal;

/// The header's name, `Vouch-Refused` (header names are case-insensitive;
/// lower case is how HTTP/2 sends them and what `http` accepts as static).
pub const HEADER: &str = "vouch-refused";

/// Why a statement was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Why {
    /// It does not decode canonically (400).
    Malformed,
    /// A signature over it does not verify (403).
    Signature,
    /// Its key is not on the log's allow-list (403).
    NotAllowed,
    /// Its key was retired by a logged transition before it (403, §3.6).
    Retired,
}

impl Why {
    /// The header's word for it.
    pub fn word(self) -> &'static str {
        match self {
            Why::Malformed => "malformed",
            Why::Signature => "signature",
            Why::NotAllowed => "not-allowed",
            Why::Retired => "retired",
        }
    }

    /// Whether a submitter should drop the statement and send the rest:
    /// true for every reason but [`Why::NotAllowed`], which refuses every
    /// statement of that key alike (the submitter is misconfigured).
    pub fn drop_and_resend(self) -> bool {
        !matches!(self, Why::NotAllowed)
    }
}

/// One refused statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Refused {
    /// Its 0-based place among the statements of the request body.
    pub position: usize,
    /// Why.
    pub why: Why,
}

impl Refused {
    /// Parses a header value; `None` unless it is exactly the canonical
    /// `<position> <why>`.
    pub fn parse(value: &str) -> Option<Refused> {
        let (n, w) = value.split_once(' ')?;
        let position = usize::try_from(parse_decimal(n)?).ok()?;
        let why = [
            Why::Malformed,
            Why::Signature,
            Why::NotAllowed,
            Why::Retired,
        ]
        .into_iter()
        .find(|why| why.word() == w)?;
        Some(Refused { position, why })
    }
}

impl fmt::Display for Refused {
    /// The header value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.position, self.why.word())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_only_the_canonical_form() {
        assert_eq!(
            Refused::parse("3 signature"),
            Some(Refused {
                position: 3,
                why: Why::Signature
            })
        );
        assert_eq!(
            Refused::parse("0 retired").map(|r| r.why),
            Some(Why::Retired)
        );
        for bad in [
            "",
            "3",
            "3  signature",
            " 3 signature",
            "03 signature",
            "3 Signature",
            "3 signature ",
            "-1 retired",
            "3 unknown",
            "x signature",
        ] {
            assert_eq!(Refused::parse(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn round_trips(position in any::<u32>(), w in 0usize..4) {
            let why = [Why::Malformed, Why::Signature, Why::NotAllowed, Why::Retired][w];
            let r = Refused { position: position as usize, why };
            prop_assert_eq!(Refused::parse(&r.to_string()), Some(r));
        }

        #[test]
        fn never_panics(s in "\\PC{0,30}") {
            if let Some(r) = Refused::parse(&s) { prop_assert_eq!(r.to_string(), s); }
        }
    }
}
