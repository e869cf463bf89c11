//! Parses the input as the start of a PROXY protocol connection (v1 or v2):
//! whole, and fed one byte more at a time as the middleware reads it. Must
//! never panic; every prefix of a complete header is `Incomplete`; the
//! incremental run agrees with the whole one; a header never claims more
//! bytes than it was given, and re-parsing exactly those bytes gives it again.
#![no_main]

use kestrel_proxy_protocol::parse::{parse, Parsed, MAX_V1_HEADER, MAX_V2_HEADER};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = parse(data);
    if let Ok(Parsed::Complete { header, consumed }) = &whole {
        assert!(*consumed <= data.len());
        assert!(*consumed <= MAX_V1_HEADER.max(MAX_V2_HEADER));
        assert_eq!(
            parse(&data[..*consumed]),
            Ok(Parsed::Complete {
                header: header.clone(),
                consumed: *consumed
            })
        );
        let _ = (header.tlvs.alpn(), header.tlvs.authority(), header.tlvs.ssl());
    }
    // Byte by byte: the first answer that is not Incomplete must be the
    // whole input's answer, at or before the end.
    let mut incremental = Ok(Parsed::Incomplete);
    for end in 0..=data.len() {
        incremental = parse(&data[..end]);
        if incremental != Ok(Parsed::Incomplete) {
            break;
        }
    }
    match (&whole, &incremental) {
        (Ok(Parsed::Complete { consumed, .. }), Ok(Parsed::Complete { consumed: c2, .. })) => {
            assert_eq!(consumed, c2)
        }
        (a, b) => assert_eq!(a, b),
    }
});
