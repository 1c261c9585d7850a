//! The text every line-oriented Vouch format is written in
//! (`spec/PROTOCOL.md` §1, conventions): UTF-8 with `\n` line ends, the
//! last line ended too, and no control character other than the newline
//! (`\r`, the other C0 bytes, DEL). Attestations, narinfos and transition
//! statements share this check before their own line grammar.

/// `data` as text if it is line text: valid UTF-8, ending with `\n`, with
/// no control character but the newline. `None` otherwise.
pub(crate) fn line_text(data: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(data).ok()?;
    (text.ends_with('\n') && !has_control(data)).then_some(text)
}

/// Whether `b` holds a control character other than the newline (C0 or
/// DEL). Each 64-byte block is checked without an early exit so that it
/// compiles to vector compares; a byte-at-a-time `any` cost 2 % of the
/// log's CPU under ingest (BENCHMARKS.md, issue 18, twelfth session).
fn has_control(b: &[u8]) -> bool {
    b.chunks(64).any(|block| {
        block.iter().fold(false, |bad, &c| {
            bad | ((c < 0x20) & (c != b'\n')) | (c == 0x7f)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn line_text_accepts_only_newline_terminated_clean_utf8() {
        assert_eq!(line_text(b"a b\nc\n"), Some("a b\nc\n"));
        assert_eq!(line_text("é\n".as_bytes()), Some("é\n"));
        assert_eq!(line_text(b"a\nb"), None);
        assert_eq!(line_text(b""), None);
        assert_eq!(line_text(b"a\r\n"), None);
        assert_eq!(line_text(b"a\tb\n"), None);
        assert_eq!(line_text(b"a\x7f\n"), None);
        assert_eq!(line_text(b"\xff\n"), None);
    }

    proptest! {
        /// The block-wise scan finds exactly the bytes the byte-wise
        /// definition finds, wherever they sit in a block.
        #[test]
        fn control_scan_is_the_definition(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let plain = b.iter().any(|&c| (c < 0x20 && c != b'\n') || c == 0x7f);
            prop_assert_eq!(has_control(&b), plain);
        }

        #[test]
        fn control_scan_finds_one_byte(len in 1usize..200, at in any::<prop::sample::Index>(), c in prop_oneof![0u8..0x0a, 0x0bu8..0x20, Just(0x7fu8)]) {
            let mut b = vec![b'a'; len];
            b[at.index(len)] = c;
            prop_assert!(has_control(&b));
            b[at.index(len)] = b'\n';
            prop_assert!(!has_control(&b));
        }
    }
}
