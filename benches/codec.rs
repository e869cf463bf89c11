//! Micro-benchmarks of the HTTP/1 codec, without a network: the request-head
//! parser, the chunked decoder and the response-head encoder.
//!
//! `cargo bench --bench codec` runs them; `.ci/run` runs them once each in
//! test mode (`cargo bench --bench codec -- --test`) so they keep compiling
//! and working.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode};
use kestrel::http1::codec::{
    encode_response_head, ChunkedDecoder, ChunkedEvent, HeadParser, ResponseHead,
};

fn main() {
    divan::main();
}

const SMALL: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

const BROWSER: &[u8] = b"GET /api/items?page=2&sort=name HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Connection: keep-alive\r\n\
Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Cache-Control: max-age=0\r\n\r\n";

fn parse_one(input: &[u8]) {
    let parser = HeadParser::default();
    let mut buf = BytesMut::from(input);
    let head = parser.parse(&mut buf).expect("valid").expect("complete");
    divan::black_box(head);
}

#[divan::bench]
fn parse_small_head() {
    parse_one(divan::black_box(SMALL));
}

#[divan::bench]
fn parse_browser_head() {
    parse_one(divan::black_box(BROWSER));
}

#[divan::bench]
fn parse_16_pipelined_heads(bencher: divan::Bencher<'_, '_>) {
    let input: Vec<u8> = SMALL.repeat(16);
    let parser = HeadParser::default();
    bencher.bench(|| {
        let mut buf = BytesMut::from(&input[..]);
        for _ in 0..16 {
            divan::black_box(parser.parse(&mut buf).expect("valid").expect("complete"));
        }
    });
}

fn chunked_body(chunk: usize, chunks: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let data = vec![b'x'; chunk];
    for _ in 0..chunks {
        out.extend_from_slice(format!("{chunk:x}\r\n").as_bytes());
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[divan::bench(args = [16, 1024, 16 * 1024])]
fn decode_chunked_64k(bencher: divan::Bencher<'_, '_>, chunk: usize) {
    let input = chunked_body(chunk, 64 * 1024 / chunk);
    bencher.bench(|| {
        let mut buf = BytesMut::from(&input[..]);
        let mut dec = ChunkedDecoder::new(32 * 1024, 100);
        let mut total = 0;
        loop {
            match dec.decode(&mut buf).expect("valid") {
                Some(ChunkedEvent::Data(d)) => total += d.len(),
                Some(ChunkedEvent::End) | None => break,
                Some(ChunkedEvent::Trailers(_)) => {}
            }
        }
        divan::black_box(total)
    });
}

#[divan::bench]
fn encode_hello_head(bencher: divan::Bencher<'_, '_>) {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    let date = b"Sun, 22 Nov 2026 04:30:55 GMT";
    let mut dst = BytesMut::with_capacity(1024);
    bencher.bench_local(|| {
        dst.clear();
        let head = ResponseHead {
            status: StatusCode::OK,
            headers: &headers,
            date: Some(date),
            server: Some(b"Kestrel"),
            content_length: Some(13),
            chunked: false,
            connection: None,
        };
        encode_response_head(&head, &mut dst);
        divan::black_box(&dst);
    });
    divan::black_box(Bytes::new());
}
