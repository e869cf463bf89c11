//! The body decoders: length and chunked, whole and split.

use bytes::{Bytes, BytesMut};

use crate::codec::{ChunkedDecoder, ChunkedEvent, LengthDecoder, RequestRejection as R};

/// Decodes everything; returns (body, trailers as text, rest) or the error.
fn run(dec: &mut ChunkedDecoder, buf: &mut BytesMut) -> Result<Option<(Vec<u8>, String)>, R> {
    let mut body = Vec::new();
    let mut trailers = String::new();
    loop {
        match dec.decode(buf)? {
            None => return Ok(None),
            Some(ChunkedEvent::Data(d)) => {
                assert!(!d.is_empty());
                body.extend_from_slice(&d);
            }
            Some(ChunkedEvent::Trailers(t)) => trailers = format!("{t:?}"),
            Some(ChunkedEvent::End) => return Ok(Some((body, trailers))),
        }
    }
}

fn decode_all(input: &[u8]) -> Result<(Vec<u8>, String, Vec<u8>), R> {
    let mut dec = ChunkedDecoder::new(1024, 10);
    let mut buf = BytesMut::from(input);
    match run(&mut dec, &mut buf)? {
        Some((body, trailers)) => {
            assert!(dec.is_done());
            Ok((body, trailers, buf.to_vec()))
        }
        None => Err(R::ChunkedRequestIncomplete),
    }
}

/// Feeds `input` in pieces of `step` bytes; same result as whole.
fn decode_stepwise(input: &[u8], step: usize) -> Result<(Vec<u8>, String, Vec<u8>), R> {
    let mut dec = ChunkedDecoder::new(1024, 10);
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut trailers = String::new();
    let mut fed = 0;
    loop {
        match dec.decode(&mut buf)? {
            None => {
                if fed >= input.len() {
                    return Err(R::ChunkedRequestIncomplete);
                }
                let end = (fed + step).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
            }
            Some(ChunkedEvent::Data(d)) => body.extend_from_slice(&d),
            Some(ChunkedEvent::Trailers(t)) => trailers = format!("{t:?}"),
            Some(ChunkedEvent::End) => {
                let mut rest = buf.to_vec();
                rest.extend_from_slice(&input[fed..]);
                return Ok((body, trailers, rest));
            }
        }
    }
}

fn check(input: &[u8]) -> Result<(Vec<u8>, String, Vec<u8>), R> {
    let whole = decode_all(input);
    for step in [1, 2, 3, 7] {
        assert_eq!(
            decode_stepwise(input, step),
            whole,
            "step {step} of {input:?}"
        );
    }
    // Every split point.
    for k in 0..input.len() {
        let mut dec = ChunkedDecoder::new(1024, 10);
        let mut buf = BytesMut::from(&input[..k]);
        let mut body = Vec::new();
        let first = loop {
            match dec.decode(&mut buf) {
                Ok(Some(ChunkedEvent::Data(d))) => body.extend_from_slice(&d),
                other => break other,
            }
        };
        match first {
            Ok(None) => {}
            Err(e) => {
                assert_eq!(Err(e), whole.clone().map(|_| ()), "split {k}");
                continue;
            }
            Ok(Some(_)) => continue, // trailers/end reached inside the prefix
        }
        buf.extend_from_slice(&input[k..]);
        let rest = run(&mut dec, &mut buf).map(|r| {
            r.map(|(b, t)| {
                body.extend_from_slice(&b);
                (body.clone(), t, buf.to_vec())
            })
        });
        let rest = match rest {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(R::ChunkedRequestIncomplete),
            Err(e) => Err(e),
        };
        assert_eq!(rest, whole, "split {k} of {input:?}");
    }
    whole
}

#[test]
fn length_decoder() {
    let mut dec = LengthDecoder::new(5);
    let mut buf = BytesMut::from(&b"hel"[..]);
    assert_eq!(dec.decode(&mut buf), Some(Bytes::from_static(b"hel")));
    assert_eq!(dec.remaining(), 2);
    assert_eq!(dec.decode(&mut buf), None);
    buf.extend_from_slice(b"loGET");
    assert_eq!(dec.decode(&mut buf), Some(Bytes::from_static(b"lo")));
    assert!(dec.is_done());
    assert_eq!(dec.decode(&mut buf), None);
    assert_eq!(&buf[..], b"GET");
    let mut big = LengthDecoder::new(u64::MAX);
    assert_eq!(big.decode(&mut buf).map(|b| b.len()), Some(3));
    assert_eq!(big.remaining(), u64::MAX - 3);
}

#[test]
fn basic_and_pipelined() {
    let (body, trailers, rest) = check(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET /").unwrap();
    assert_eq!(body, b"hello world");
    assert!(trailers.is_empty());
    assert_eq!(rest, b"GET /");
    let (body, _, _) = check(b"A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n").unwrap();
    assert_eq!(body.len(), 20);
    let (body, _, _) = check(b"0000000000000000000000001\r\nx\r\n0\r\n\r\n").unwrap();
    assert_eq!(body, b"x");
    check(b"00\r\n\r\n").unwrap();
}

#[test]
fn end_is_sticky_and_data_is_streamed() {
    let mut dec = ChunkedDecoder::new(1024, 10);
    let mut buf = BytesMut::from(&b"ffff\r\nabc"[..]);
    let Ok(Some(ChunkedEvent::Data(d))) = dec.decode(&mut buf) else {
        panic!()
    };
    assert_eq!(
        &d[..],
        b"abc",
        "data is returned before the chunk is complete"
    );
    assert!(dec.decode(&mut buf).unwrap().is_none());
    let mut dec = ChunkedDecoder::new(1024, 10);
    let mut buf = BytesMut::from(&b"0\r\n\r\nrest"[..]);
    assert!(matches!(dec.decode(&mut buf), Ok(Some(ChunkedEvent::End))));
    assert!(dec.is_done());
    assert!(matches!(dec.decode(&mut buf), Ok(Some(ChunkedEvent::End))));
    assert_eq!(&buf[..], b"rest");
}

#[test]
fn chunk_size_errors() {
    // 16 significant digits fit, 17 do not.
    let mut dec = ChunkedDecoder::new(1024, 10);
    let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nab"[..]);
    assert!(matches!(
        dec.decode(&mut buf),
        Ok(Some(ChunkedEvent::Data(_)))
    ));
    assert_eq!(check(b"10000000000000000\r\n"), Err(R::BadChunkSizeData));
    assert_eq!(check(b"fffffffffffffffff\r\n"), Err(R::BadChunkSizeData));
    for bad in [
        &b"g\r\n"[..],
        b"\r\n",
        b"-5\r\n",
        b"0x5\r\n",
        b"+5\r\n",
        b" 5\r\n",
        b"5\n",
        b"5\rx",
        b"5 \r\n",
        b"5\t\r\n",
        b";a\r\n",
        b"5;\r\n",
        b"5; \r\n",
        b"5;=a\r\n",
        b"5;a=\r\n",
        b"5;a b\r\n",
        b"5;a=b c\r\n",
        b"5;a=\"x\r\n",
        b"5;a=\"x\"y\r\n",
        b"5;a=\"\x01\"\r\n",
        b"5;a=b=c\r\n",
        b"5;a =\r\n",
        b"5;a\x00\r\n",
        b"5;a= \r\n",
        b"5;a=\"x\" \r\n",
    ] {
        assert_eq!(
            check(bad),
            Err(R::BadChunkSizeData),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn errors_are_sticky() {
    let mut dec = ChunkedDecoder::new(1024, 10);
    let mut buf = BytesMut::from(&b"fffffffffffffffff"[..]);
    assert_eq!(dec.decode(&mut buf).unwrap_err(), R::BadChunkSizeData);
    for _ in 0..300 {
        buf.extend_from_slice(b"f");
        assert_eq!(dec.decode(&mut buf).unwrap_err(), R::BadChunkSizeData);
    }
    buf.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(dec.decode(&mut buf).unwrap_err(), R::BadChunkSizeData);
    assert!(!dec.is_done());
}

#[test]
fn chunk_suffix_errors() {
    assert_eq!(check(b"5\r\nhelloX\r\n0\r\n\r\n"), Err(R::BadChunkSuffix));
    assert_eq!(check(b"5\r\nhello\n0\r\n\r\n"), Err(R::BadChunkSuffix));
    assert_eq!(check(b"5\r\nhello\r0\r\n\r\n"), Err(R::BadChunkSuffix));
    assert_eq!(check(b"5\r\nhello world\r\n"), Err(R::BadChunkSuffix));
}

#[test]
fn extensions() {
    for ok in [
        &b"5;foo=bar\r\nhello\r\n0\r\n\r\n"[..],
        b"5;foo\r\nhello\r\n0;last\r\n\r\n",
        b"5 ; a = \"q\\\"x;y\" ; b\t;c=d\r\nhello\r\n0\r\n\r\n",
        b"5;a=\"\"\r\nhello\r\n0\r\n\r\n",
        b"5;a=\"\\\\\";b=\"\xff\"\r\nhello\r\n0\r\n\r\n",
        b"5;a;b;c\r\nhello\r\n0\r\n\r\n",
        b"5  ;a\r\nhello\r\n0\r\n\r\n",
        b"5;a=\"x\";b\r\nhello\r\n0\r\n\r\n",
    ] {
        let (body, _, _) =
            check(ok).unwrap_or_else(|e| panic!("{:?}: {e:?}", String::from_utf8_lossy(ok)));
        assert_eq!(body, b"hello");
    }
}

#[test]
fn extension_length_is_bounded() {
    // A size line of exactly 4096 bytes (with CRLF) is fine.
    let mut line = b"5;a=".to_vec();
    line.resize(4094, b'x');
    line.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    assert!(decode_all(&line).is_ok());
    let mut line = b"5;a=".to_vec();
    line.resize(4095, b'x');
    line.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    assert_eq!(decode_all(&line), Err(R::BadChunkSizeData));
    // Streamed endlessly: fails once the bound is crossed.
    let mut dec = ChunkedDecoder::new(1024, 10);
    let mut buf = BytesMut::from(&b"5;a="[..]);
    let mut fed = 4;
    let result = loop {
        match dec.decode(&mut buf) {
            Ok(None) => {
                assert!(buf.is_empty(), "framing bytes are consumed");
                buf.extend_from_slice(&[b'x'; 100]);
                fed += 100;
                assert!(fed < 10_000);
            }
            other => break other,
        }
    };
    assert!(matches!(result, Err(R::BadChunkSizeData)));
    // Leading zeros count too.
    let zeros = vec![b'0'; 5000];
    assert_eq!(decode_all(&zeros), Err(R::BadChunkSizeData));
}

#[test]
fn trailers() {
    let (body, trailers, rest) = check(
        b"5\r\nhello\r\n0\r\nX-Checksum: abc \r\nContent-Length: 5\r\nHost: evil\r\nTransfer-Encoding: chunked\r\nx-other:\t1\r\n\r\nNEXT",
    )
    .unwrap();
    assert_eq!(body, b"hello");
    assert_eq!(trailers, r#"{"x-checksum": "abc", "x-other": "1"}"#);
    assert_eq!(rest, b"NEXT");
    // Only forbidden fields: no Trailers event.
    let (_, trailers, _) = check(b"0\r\nContent-Length: 5\r\n\r\n").unwrap();
    assert!(trailers.is_empty());

    let mut dec = ChunkedDecoder::new(1024, 10);
    let mut buf = BytesMut::from(&b"0\r\nA: 1\r\n\r\n"[..]);
    assert!(matches!(dec.decode(&mut buf), Ok(Some(ChunkedEvent::Trailers(t))) if t["a"] == "1"));
    assert!(dec.is_done());
    assert!(matches!(dec.decode(&mut buf), Ok(Some(ChunkedEvent::End))));
    assert!(matches!(dec.decode(&mut buf), Ok(Some(ChunkedEvent::End))));

    assert_eq!(
        check(b"0\r\nA: 1\r\n folded\r\n\r\n"),
        Err(R::InvalidRequestHeader)
    );
    assert_eq!(check(b"0\r\nA : 1\r\n\r\n"), Err(R::InvalidRequestHeader));
    assert_eq!(check(b"0\r\nNoColon\r\n\r\n"), Err(R::InvalidRequestHeader));
    assert_eq!(check(b"0\r\n: x\r\n\r\n"), Err(R::InvalidRequestHeader));
    assert_eq!(
        check(b"0\r\nA@: x\r\n\r\n"),
        Err(R::InvalidCharactersInHeaderName)
    );
    assert_eq!(
        check(b"0\r\nA: a\x00b\r\n\r\n"),
        Err(R::InvalidRequestHeader)
    );
    assert_eq!(check(b"0\r\nA: a\rb\r\n\r\n"), Err(R::InvalidRequestHeader));
    assert_eq!(
        check(b"0\r\nA: 1\n\r\n"),
        Err(R::InvalidRequestHeadersNoCrlf)
    );
    assert_eq!(check(b"0\r\n\n"), Err(R::InvalidRequestHeadersNoCrlf));
    assert_eq!(check(b"0\r\n\rX\r\n\r\n"), Err(R::InvalidRequestHeader));
}

#[test]
fn trailer_limits() {
    // Size: field lines (with CRLF) up to max, final CRLF on top.
    let section = |v: usize| format!("0\r\nA: {}\r\n\r\n", "v".repeat(v));
    let run_with = |input: &str| {
        let mut dec = ChunkedDecoder::new(10, 2);
        let mut buf = BytesMut::from(input.as_bytes());
        run(&mut dec, &mut buf)
    };
    assert!(run_with(&section(5)).unwrap().is_some()); // "A: vvvvv\r\n" = 10
    assert_eq!(run_with(&section(6)), Err(R::HeadersExceedMaxTotalSize));
    // Partial: an unfinished line that can no longer fit.
    assert_eq!(
        run_with("0\r\nA: vvvvvvvvv"),
        Err(R::HeadersExceedMaxTotalSize)
    );
    assert_eq!(run_with("0\r\nA: vvvvvvvv").unwrap(), None);
    // Count.
    let mut dec = ChunkedDecoder::new(1000, 2);
    let mut buf = BytesMut::from(&b"0\r\nA: 1\r\nB: 2\r\n\r\n"[..]);
    assert!(run(&mut dec, &mut buf).unwrap().is_some());
    let mut dec = ChunkedDecoder::new(1000, 2);
    let mut buf = BytesMut::from(&b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n"[..]);
    assert_eq!(run(&mut dec, &mut buf), Err(R::TooManyHeaders));
    assert_eq!(R::TooManyHeaders.status().as_u16(), 431);
}

mod roundtrip {
    use bytes::BytesMut;
    use proptest::prelude::*;

    use crate::codec::{
        encode_chunk_header, encode_last_chunk, ChunkedDecoder, ChunkedEvent, CHUNK_SUFFIX,
    };

    proptest! {
        #[test]
        fn encode_then_decode(
            body in proptest::collection::vec(any::<u8>(), 0..2000),
            sizes in proptest::collection::vec(1usize..300, 1..20),
            split in proptest::collection::vec(1usize..64, 1..20),
            trailer in proptest::option::of("[a-z]{1,8}"),
        ) {
            let mut wire = BytesMut::new();
            let mut rest = &body[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = sizes[i % sizes.len()].min(rest.len());
                encode_chunk_header(n, &mut wire);
                wire.extend_from_slice(&rest[..n]);
                wire.extend_from_slice(CHUNK_SUFFIX);
                rest = &rest[n..];
                i += 1;
            }
            let mut map = http::HeaderMap::new();
            if let Some(t) = &trailer {
                map.insert("x-trailer", t.parse().unwrap());
            }
            encode_last_chunk(Some(&map), &mut wire);
            wire.extend_from_slice(b"NEXT");

            let mut dec = ChunkedDecoder::new(1024, 10);
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut got_trailer = None;
            let mut fed = 0;
            let mut j = 0;
            loop {
                match dec.decode(&mut buf).unwrap() {
                    None => {
                        let n = split[j % split.len()].min(wire.len() - fed);
                        prop_assert!(n > 0, "decoder wants more than was sent");
                        buf.extend_from_slice(&wire[fed..fed + n]);
                        fed += n;
                        j += 1;
                    }
                    Some(ChunkedEvent::Data(d)) => out.extend_from_slice(&d),
                    Some(ChunkedEvent::Trailers(t)) => {
                        got_trailer = t.get("x-trailer").map(|v| v.to_str().unwrap().to_owned());
                    }
                    Some(ChunkedEvent::End) => break,
                }
            }
            prop_assert_eq!(out, body);
            prop_assert_eq!(got_trailer, trailer);
            let mut tail = buf.to_vec();
            tail.extend_from_slice(&wire[fed..]);
            prop_assert_eq!(tail, b"NEXT".to_vec());
        }
    }
}
