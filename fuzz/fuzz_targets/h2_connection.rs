//! A whole HTTP/2 connection: `Http2Connection` over an in-memory duplex
//! stream, serving an app that reads each request body and echoes it. The
//! client sends the preface, then frames built from the input: well-formed
//! requests (HEADERS with a valid HPACK block), DATA, WINDOW_UPDATE, RST_STREAM, SETTINGS, PING, and raw frames of
//! any type, flags, stream and payload; then it shuts its write side.
//!
//! Properties: no panic, the connection ends, and each stream's body as the
//! app read it adds up to what was sent on that stream: exactly the DATA
//! payloads (padding removed) up to END_STREAM when the read succeeded, a
//! prefix of them when it failed.
#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use kestrel_core::{RequestBody, RequestFeaturesExt};
use kestrel_http2::{
    Address, Connection, ConnectionRuntime, Http2Config, Http2Connection, ServerLimits,
    StreamReset, TransportKind, PREFACE,
};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len();
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK literal header field without indexing, new name (RFC 7541 §6.2.2).
fn literal(block: &mut Vec<u8>, name: &str, value: &str) {
    block.push(0);
    block.push(name.len() as u8);
    block.extend_from_slice(name.as_bytes());
    block.push(value.len() as u8);
    block.extend_from_slice(value.as_bytes());
}

/// Reads input bytes, 0 once it is used up.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        taken
    }
}

/// The client's bytes: the preface, then frames from the input.
fn client_bytes(input: &[u8]) -> Vec<u8> {
    let mut input = Input(input);
    let mut out = PREFACE.to_vec();
    frame(&mut out, 0x4, 0, 0, &[]);
    let mut streams: Vec<u32> = Vec::new();
    while !input.0.is_empty() {
        let op = input.byte();
        let pick = |streams: &[u32], b: u8| -> u32 {
            if streams.is_empty() {
                1
            } else {
                streams[usize::from(b) % streams.len()]
            }
        };
        match op % 8 {
            0 | 1 => {
                let id = streams.last().map_or(1, |s| s + 2);
                streams.push(id);
                let mut block = Vec::new();
                literal(&mut block, ":method", "POST");
                literal(&mut block, ":scheme", "http");
                literal(&mut block, ":path", &format!("/s{id}"));
                literal(&mut block, ":authority", "fuzz");
                let flags = END_HEADERS | if op & 0x10 != 0 { END_STREAM } else { 0 };
                frame(&mut out, HEADERS, flags, id, &block);
            }
            2 | 3 => {
                let id = pick(&streams, input.byte());
                let len = usize::from(input.byte());
                let flags = input.byte() & (END_STREAM | PADDED);
                let mut payload = Vec::new();
                if flags & PADDED != 0 {
                    payload.push(input.byte() % 8);
                }
                payload.extend_from_slice(input.bytes(len));
                if flags & PADDED != 0 {
                    payload.extend(std::iter::repeat_n(0, usize::from(payload[0])));
                }
                frame(&mut out, DATA, flags, id, &payload);
            }
            4 => {
                let id = if op & 0x10 != 0 {
                    0
                } else {
                    pick(&streams, input.byte())
                };
                let inc = u32::from_be_bytes([
                    input.byte() & 0x7f,
                    input.byte(),
                    input.byte(),
                    input.byte(),
                ]);
                frame(&mut out, 0x8, 0, id, &inc.to_be_bytes());
            }
            5 => {
                let id = pick(&streams, input.byte());
                frame(&mut out, 0x3, 0, id, &[0, 0, 0, input.byte() % 14]);
            }
            6 => {
                let kind = if op & 0x10 != 0 { 0x6 } else { 0x4 };
                let n = if kind == 0x6 {
                    8
                } else {
                    6 * usize::from(input.byte() % 3)
                };
                let payload = input.bytes(n).to_vec();
                frame(&mut out, kind, 0, 0, &payload);
            }
            _ => {
                let kind = input.byte() % 11;
                let flags = input.byte();
                let id = match input.byte() % 3 {
                    0 => 0,
                    1 => pick(&streams, input.byte()),
                    _ => u32::from(input.byte()),
                };
                let len = usize::from(input.byte() % 64);
                let payload = input.bytes(len).to_vec();
                frame(&mut out, kind, flags, id, &payload);
            }
        }
    }
    out
}

/// What was sent on each stream: DATA payloads up to END_STREAM, and
/// whether a DATA frame's padding was invalid (its content is then not
/// defined: only a prefix is checked).
fn sent(bytes: &[u8]) -> HashMap<u32, (Vec<u8>, bool)> {
    let mut sent: HashMap<u32, (Vec<u8>, bool)> = HashMap::new();
    let mut ended: Vec<u32> = Vec::new();
    let mut rest = &bytes[PREFACE.len()..];
    while rest.len() >= 9 {
        let len = (usize::from(rest[0]) << 16) | (usize::from(rest[1]) << 8) | usize::from(rest[2]);
        let (kind, flags) = (rest[3], rest[4]);
        let id = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
        let Some(payload) = rest.get(9..9 + len) else {
            break;
        };
        rest = &rest[9 + len..];
        if kind != DATA || ended.contains(&id) {
            if kind == HEADERS && flags & END_STREAM != 0 {
                ended.push(id);
            }
            continue;
        }
        let entry = sent.entry(id).or_default();
        let mut data = payload;
        if flags & PADDED != 0 {
            match payload.split_first() {
                Some((&pad, body)) if usize::from(pad) <= body.len() => {
                    data = &body[..body.len() - usize::from(pad)]
                }
                _ => {
                    entry.1 = true;
                    data = &[];
                }
            }
        }
        entry.0.extend_from_slice(data);
        if flags & END_STREAM != 0 {
            ended.push(id);
        }
    }
    sent
}

#[derive(Debug)]
struct Seen {
    stream: Option<u64>,
    body: Vec<u8>,
    read_ok: bool,
}

fuzz_target!(|input: &[u8]| {
    let bytes = client_bytes(input);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let app = move |req: Request<RequestBody>| {
        let log = log.clone();
        async move {
            let stream = req
                .features()
                .and_then(|f| f.reset())
                .map(StreamReset::stream_id);
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
                stream,
                body: got.clone(),
                read_ok,
            });
            Ok::<_, std::io::Error>(Response::new(Full::new(Bytes::from(got))))
        }
    };
    rt.block_on(async {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let runtime = ConnectionRuntime::new(&ServerLimits::default());
        let Ok(admitted) = runtime.admit(memory_connection(server)) else {
            return;
        };
        let conn = Http2Connection::from_admitted(admitted, Arc::new(Http2Config::default()));
        let (mut rd, mut wr) = tokio::io::split(client);
        let writer = async {
            let _ = wr.write_all(&bytes).await;
            let _ = wr.shutdown().await;
        };
        let reader = async {
            let mut out = Vec::new();
            let _ = rd.read_to_end(&mut out).await;
        };
        let all = async {
            let _ = tokio::join!(conn.serve(&app), writer, reader);
        };
        tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .expect("the connection ended");
    });
    let sent = sent(&bytes);
    for s in seen.lock().expect("log").iter() {
        let id = s
            .stream
            .expect("every request has its stream's StreamReset");
        let id = u32::try_from(id).expect("a 31-bit stream id");
        let (expected, bad_padding) = sent.get(&id).cloned().unwrap_or_default();
        if s.read_ok && !bad_padding {
            assert_eq!(
                s.body, expected,
                "stream {id}: the body read is not what was sent"
            );
        } else {
            assert!(
                expected.starts_with(&s.body),
                "stream {id}: the body read is not a prefix of what was sent"
            );
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
