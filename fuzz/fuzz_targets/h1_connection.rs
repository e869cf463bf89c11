//! A whole HTTP/1.1 connection: `Http1Connection` over an in-memory duplex
//! stream, serving an app that echoes request bodies. The input is a
//! configuration byte, split points with pauses, and the client's bytes
//! (sent in those pieces, then the client's write side is shut).
//!
//! Properties:
//! * no panic, and the connection ends (no hang);
//! * every response is well framed (status line, headers, a body framed by
//!   Content-Length or chunked, nothing left over);
//! * no more responses than complete request heads sent (and than requests
//!   the app saw), besides one rejection;
//! * a request the server rejects (any status >= 400: the app only answers
//!   200) gets `Connection: close`, and the connection ends after it;
//! * a body is never delivered beyond its framing: with Content-Length no
//!   more than that many bytes (exactly that many when the read succeeds),
//!   without framing none, and only bytes the client sent.
#![no_main]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use kestrel_core::RequestBody;
use kestrel_http1::codec::HeadParser;
use kestrel_http1::{
    Address, Connection, ConnectionRuntime, Http1Config, Http1Connection, ServerLimits,
    TransportKind,
};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug)]
struct Seen {
    head: bool,
    content_length: Option<u64>,
    chunked: bool,
    body: Vec<u8>,
    read_ok: bool,
}

fn config(selector: u8) -> Http1Config {
    let mut c = Http1Config::default();
    c.request_body_drain_timeout = Duration::from_millis(50);
    match selector % 4 {
        0 => {}
        1 => {
            c.parser = HeadParser {
                max_request_line_size: 32,
                max_request_headers_total_size: 64,
                max_request_header_count: 4,
                ..HeadParser::default()
            };
            c.max_request_body_size = Some(16);
        }
        2 => {
            c.parser.allow_bare_lf = true;
            c.parser.allow_host_header_override = true;
        }
        _ => {
            c.read_ahead = 8;
            c.max_response_buffer_size = Some(4);
        }
    }
    c
}

/// Count the ends of request heads in `input` (an upper bound on the
/// complete requests in it).
fn head_ends(input: &[u8]) -> usize {
    input
        .windows(2)
        .enumerate()
        .filter(|(i, w)| w == b"\n\n" || (w == b"\r\n" && *i >= 1 && input[i - 1] == b'\n'))
        .count()
}

#[derive(Debug)]
struct Parsed {
    status: u16,
    close: bool,
}

/// Split the server's output into responses; panics if it is not a
/// sequence of well-framed responses.
fn responses(mut out: &[u8], seen: &[Seen]) -> Vec<Parsed> {
    let mut finals = Vec::new();
    while !out.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(out) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!(
                "ill-formed response head ({other:?}): {:?}",
                String::from_utf8_lossy(out)
            ),
        };
        let status = resp.code.expect("a status");
        let mut content_length = None;
        let mut chunked = false;
        let mut close = false;
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let v = std::str::from_utf8(h.value).expect("ascii content-length");
                assert!(content_length.is_none(), "two Content-Length headers");
                content_length = Some(v.parse::<usize>().expect("a numeric Content-Length"));
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                assert_eq!(h.value, b"chunked", "response Transfer-Encoding");
                chunked = true;
            } else if h.name.eq_ignore_ascii_case("connection") {
                close |= h.value.eq_ignore_ascii_case(b"close");
            }
        }
        assert!(
            !(chunked && content_length.is_some()),
            "both Content-Length and chunked"
        );
        out = &out[n..];
        if (100..200).contains(&status) {
            assert_eq!(status, 100, "only 100 Continue is interim here");
            continue;
        }
        let head_request = seen.get(finals.len()).is_some_and(|s| s.head);
        if head_request || status == 204 || status == 304 {
            // No body.
        } else if chunked {
            loop {
                let line_end = out
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .expect("a chunk size line");
                let size =
                    usize::from_str_radix(std::str::from_utf8(&out[..line_end]).expect("hex"), 16)
                        .expect("a chunk size");
                out = &out[line_end + 2..];
                if size == 0 {
                    assert!(out.starts_with(b"\r\n"), "the chunked body ends with CRLF");
                    out = &out[2..];
                    break;
                }
                assert!(out.len() >= size + 2, "a truncated chunk");
                assert_eq!(&out[size..size + 2], b"\r\n", "a chunk ends with CRLF");
                out = &out[size + 2..];
            }
        } else if let Some(len) = content_length {
            assert!(
                out.len() >= len,
                "a response body shorter than its Content-Length"
            );
            out = &out[len..];
        } else {
            // Close-delimited (HTTP/1.0): the rest of the output.
            assert!(close || status < 400, "close-delimited");
            out = &[];
        }
        finals.push(Parsed { status, close });
    }
    finals
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let selector = input[0];
    let cuts = usize::from(input[1] % 9).min(input.len() - 2);
    let (cut_bytes, data) = input[2..].split_at(cuts);
    let mut points: Vec<(usize, u8)> = cut_bytes
        .iter()
        .map(|&b| (usize::from(b) * data.len() / 256, b % 8))
        .collect();
    points.sort_unstable();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let app = move |req: Request<RequestBody>| {
        let log = log.clone();
        async move {
            let header = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            // A list of identical values (`2, 2`) is one length (RFC 9110 §8.6).
            let content_length = header("content-length")
                .and_then(|v| v.split(',').next().and_then(|n| n.trim().parse().ok()));
            let chunked = header("transfer-encoding").is_some();
            let head = req.method() == http::Method::HEAD;
            let mut body = req.into_body();
            let mut got = Vec::new();
            let mut read_ok = true;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => {
                        if let Ok(data) = f.into_data() {
                            got.extend_from_slice(&data);
                        }
                    }
                    Err(_) => {
                        read_ok = false;
                        break;
                    }
                }
            }
            log.lock().expect("log").push(Seen {
                head,
                content_length,
                chunked,
                body: got.clone(),
                read_ok,
            });
            Ok::<_, std::io::Error>(Response::new(Full::new(Bytes::from(got))))
        }
    };
    let out = rt.block_on(async {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let runtime = ConnectionRuntime::new(&ServerLimits::default());
        let Ok(admitted) = runtime.admit(memory_connection(server)) else {
            return Vec::new();
        };
        let conn = Http1Connection::from_admitted(admitted, Arc::new(config(selector)));
        let (mut rd, mut wr) = tokio::io::split(client);
        let writer = async {
            let mut start = 0;
            for &(at, pause) in &points {
                if wr.write_all(&data[start..at]).await.is_err() {
                    return;
                }
                start = at;
                for _ in 0..pause {
                    tokio::task::yield_now().await;
                }
            }
            let _ = wr.write_all(&data[start..]).await;
            let _ = wr.shutdown().await;
        };
        let reader = async {
            let mut out = Vec::new();
            let _ = rd.read_to_end(&mut out).await;
            out
        };
        let all = async {
            let (_, _, out) = tokio::join!(conn.serve(&app), writer, reader);
            out
        };
        tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .expect("the connection ended")
    });

    let seen = seen.lock().expect("log");
    let finals = responses(&out, &seen);
    // Answers to requests (a rejection may answer a head that never ended,
    // e.g. one over the size limits).
    let answers = finals.iter().filter(|r| r.status < 400).count();
    assert!(
        answers <= head_ends(data),
        "{answers} responses for at most {} requests",
        head_ends(data)
    );
    assert!(
        answers <= seen.len(),
        "{answers} responses for {} requests the app saw",
        seen.len()
    );
    for (i, r) in finals.iter().enumerate() {
        if r.status >= 400 {
            assert!(r.close, "a rejection without Connection: close");
            assert_eq!(i, finals.len() - 1, "a response after a rejection");
        }
    }
    for s in seen.iter() {
        match s.content_length {
            Some(n) if !s.chunked => {
                assert!(
                    s.body.len() as u64 <= n,
                    "{} body bytes for Content-Length {n}",
                    s.body.len()
                );
                if s.read_ok {
                    assert_eq!(
                        s.body.len() as u64,
                        n,
                        "a complete body shorter than its Content-Length"
                    );
                }
                if !s.body.is_empty() {
                    assert!(
                        data.windows(s.body.len()).any(|w| w == s.body),
                        "body bytes the client never sent"
                    );
                }
            }
            None if !s.chunked => assert!(s.body.is_empty(), "a body without framing"),
            _ => assert!(s.body.len() <= data.len(), "more body than input"),
        }
    }
});

/// The fuzzer's bytes as an in-memory transport connection.
fn memory_connection(io: tokio::io::DuplexStream) -> Connection {
    Connection {
        io: Box::new(io),
        local_addr: Address::Memory("fuzz".into()),
        remote_addr: Address::Memory("client".into()),
        kind: TransportKind::Memory,
    }
}
