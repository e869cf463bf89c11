//! Parses the input as a stream of pipelined requests (heads and bodies),
//! once whole and once split in two at `input[0]`: must never panic, and
//! both runs must produce the same outcomes.
#![no_main]

use bytes::BytesMut;
use kestrel_http1::codec::{BodyKind, ChunkedDecoder, ChunkedEvent, HeadParser, LengthDecoder};
use libfuzzer_sys::fuzz_target;

enum Body {
    None,
    Length(LengthDecoder),
    Chunked(ChunkedDecoder),
}

/// Feeds `parts` one after another, parsing as far as possible after each.
fn run(parser: &HeadParser, parts: &[&[u8]]) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    let mut parts = parts.iter();
    let mut body = Body::None;
    let mut data = Vec::new();
    // Bounded: every round either consumes input or takes the next part.
    loop {
        let progressed = match &mut body {
            Body::None => match parser.parse(&mut buf) {
                Ok(Some(head)) => {
                    out.push(format!("{head:?}"));
                    body = match head.body {
                        BodyKind::Empty => Body::None,
                        BodyKind::Length(n) => Body::Length(LengthDecoder::new(n)),
                        BodyKind::Chunked => Body::Chunked(ChunkedDecoder::new(1024, 16)),
                    };
                    true
                }
                Ok(None) => false,
                Err(e) => {
                    out.push(format!("error {e:?} {}", e.status()));
                    return out;
                }
            },
            Body::Length(dec) => {
                if let Some(chunk) = dec.decode(&mut buf) {
                    data.extend_from_slice(&chunk);
                }
                if dec.is_done() {
                    out.push(format!("body {data:?}"));
                    data.clear();
                    body = Body::None;
                    true
                } else {
                    false
                }
            }
            Body::Chunked(dec) => match dec.decode(&mut buf) {
                Ok(Some(ChunkedEvent::Data(chunk))) => {
                    assert!(!chunk.is_empty());
                    data.extend_from_slice(&chunk);
                    true
                }
                Ok(Some(ChunkedEvent::Trailers(t))) => {
                    out.push(format!("trailers {t:?}"));
                    true
                }
                Ok(Some(ChunkedEvent::End)) => {
                    assert!(dec.is_done());
                    out.push(format!("chunked body {data:?}"));
                    data.clear();
                    body = Body::None;
                    true
                }
                Ok(None) => false,
                Err(e) => {
                    out.push(format!("body error {e:?} after {data:?}"));
                    return out;
                }
            },
        };
        if !progressed {
            match parts.next() {
                Some(part) => buf.extend_from_slice(part),
                None => {
                    out.push(format!("eof data={data:?}"));
                    return out;
                }
            }
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    let parser = match first % 4 {
        0 => HeadParser::default(),
        1 => HeadParser {
            max_request_line_size: 24,
            max_request_headers_total_size: 40,
            max_request_header_count: 3,
            ..HeadParser::default()
        },
        2 => HeadParser {
            allow_bare_lf: true,
            allow_host_header_override: true,
            ..HeadParser::default()
        },
        _ => HeadParser {
            max_request_header_count: 130,
            max_request_line_size: 0,
            ..HeadParser::default()
        },
    };
    let whole = run(&parser, &[data]);
    let at = usize::from(first).min(data.len());
    let split = run(&parser, &[&data[..at], &data[at..]]);
    assert_eq!(whole, split, "split at {at}");
});
