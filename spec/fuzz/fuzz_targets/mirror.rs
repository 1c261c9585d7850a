#![no_main]
//! Fuzz target: C2SP tlog-mirror `add-entries` bodies and mirror-info
//! bodies (§6.5): whatever parses re-encodes to the same bytes.
use libfuzzer_sys::fuzz_target;

use vouch_spec::mirror::{encode_package, packages, parse_package, MirrorInfo, UploadHeader};

fuzz_target!(|data: &[u8]| {
    if let Some(i) = MirrorInfo::parse(data) {
        assert_eq!(i.encode().as_bytes(), data);
    }
    let Ok((header, mut rest)) = UploadHeader::parse(data) else {
        return;
    };
    let head_len = data.len() - rest.len();
    assert_eq!(header.encode(), &data[..head_len]);
    // Walk at most a few packages of the canonical sequence.
    for span in packages(header.start, header.end).take(4) {
        let Ok((p, after)) = parse_package(rest, span) else {
            return;
        };
        let mut again = Vec::new();
        encode_package(&mut again, &p.entries, &p.proof);
        assert_eq!(again, &rest[..rest.len() - after.len()]);
        rest = after;
    }
});
