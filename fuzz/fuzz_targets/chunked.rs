//! Decodes the input as a chunked body: whole, split in two at `input[0]`,
//! and one byte at a time. Must never panic; all runs must agree.
#![no_main]

use bytes::BytesMut;
use kestrel_http1::codec::{ChunkedDecoder, ChunkedEvent};
use libfuzzer_sys::fuzz_target;

fn run(parts: &[&[u8]], max_size: usize, max_count: usize) -> (Vec<u8>, Vec<String>, Vec<u8>) {
    let mut dec = ChunkedDecoder::new(max_size, max_count);
    let mut buf = BytesMut::new();
    let mut parts = parts.iter();
    let mut data = Vec::new();
    let mut events = Vec::new();
    loop {
        match dec.decode(&mut buf) {
            Ok(Some(ChunkedEvent::Data(chunk))) => {
                assert!(!chunk.is_empty());
                data.extend_from_slice(&chunk);
            }
            Ok(Some(ChunkedEvent::Trailers(t))) => events.push(format!("trailers {t:?}")),
            Ok(Some(ChunkedEvent::End)) => {
                assert!(dec.is_done());
                // End is sticky and consumes nothing.
                let before = buf.len();
                assert!(matches!(dec.decode(&mut buf), Ok(Some(ChunkedEvent::End))));
                assert_eq!(before, buf.len());
                events.push("end".to_owned());
                break;
            }
            Ok(None) => match parts.next() {
                Some(part) => buf.extend_from_slice(part),
                None => {
                    events.push("eof".to_owned());
                    break;
                }
            },
            Err(e) => {
                events.push(format!("error {e:?}"));
                return (data, events, Vec::new());
            }
        }
    }
    let mut rest = buf.to_vec();
    for part in parts {
        rest.extend_from_slice(part);
    }
    (data, events, rest)
}

fuzz_target!(|input: &[u8]| {
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    let (max_size, max_count) = if first & 1 == 0 { (64, 4) } else { (4096, 100) };
    let whole = run(&[data], max_size, max_count);
    let at = usize::from(first).min(data.len());
    let split = run(&[&data[..at], &data[at..]], max_size, max_count);
    assert_eq!(whole, split, "split at {at}");
    if data.len() <= 4096 {
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        let stepped = run(&bytes, max_size, max_count);
        assert_eq!(whole, stepped, "one byte at a time");
    }
});
