//! A whole HTTP/3 connection: `Http3Connection` (h3 over this project's
//! `h3::quic` adapter) on the in-memory multiplexed transport, serving an
//! app that reads each request body and echoes it. The client opens its
//! control stream with SETTINGS, then acts from the input: well-formed GET
//! and POST requests (a QPACK block of static references and literals),
//! request streams of raw frames of any type and length (finished, reset or
//! left open), raw bytes on the control stream, unidirectional streams of
//! any type and content, and resets of earlier streams; then it goes away.
//!
//! Properties: no panic, and the connection ends (time is paused, so the
//! request-headers timeout fires at once when nothing else happens).
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use kestrel_core::connection::ConnectionId;
use kestrel_core::heartbeat::Clock;
use kestrel_core::RequestBody;
use kestrel_http3::{Http3Config, Http3Connection};
use kestrel_transport::multiplexed::memory::connection_pair;
use kestrel_transport::multiplexed::{
    BidiStream, BoxRecvStream, BoxSendStream, HandshakeInfo, MultiplexedConnection, MultiplexedStreams,
    SendStreamExt, StreamOpenerExt,
};
use kestrel_transport::{Address, TransportKind};
use libfuzzer_sys::fuzz_target;

fn varint(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=0x3f => out.push(v as u8),
        0x40..=0x3fff => out.extend_from_slice(&(0x4000 | v as u16).to_be_bytes()),
        0x4000..=0x3fff_ffff => out.extend_from_slice(&(0x8000_0000 | v as u32).to_be_bytes()),
        _ => out.extend_from_slice(&(0xc000_0000_0000_0000 | (v & 0x3fff_ffff_ffff_ffff)).to_be_bytes()),
    }
}

fn frame(out: &mut Vec<u8>, ty: u64, payload: &[u8]) {
    varint(out, ty);
    varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// A request's QPACK field section: `:method` (static 17 GET, 20 POST),
/// `:scheme https`, `:path` and `:authority` literals with static names.
fn request_block(post: bool, path: &[u8]) -> Vec<u8> {
    let mut block = vec![0x00, 0x00, 0xc0 | if post { 20 } else { 17 }, 0xc0 | 23];
    for (index, value) in [(1u8, path), (0, &b"localhost"[..])] {
        block.push(0x50 | index);
        block.push(value.len().min(127) as u8);
        block.extend_from_slice(&value[..value.len().min(127)]);
    }
    block
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
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        taken.to_vec()
    }
}

/// What the client does to a stream after writing it.
enum Then {
    Finish,
    Reset(u64),
    LeaveOpen,
}

async fn write(send: &mut BoxSendStream, bytes: &[u8], then: Then) {
    if send.write_all(bytes).await.is_err() {
        return;
    }
    match then {
        Then::Finish => {
            let _ = send.finish().await;
        }
        Then::Reset(code) => send.reset(code),
        Then::LeaveOpen => {}
    }
}

async fn app(req: Request<RequestBody>) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    Ok(Response::new(Full::new(body)))
}

fuzz_target!(|input: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let (client, server) = connection_pair();
        let conn = MultiplexedConnection {
            streams: Box::new(server),
            local_addr: Address::Memory("fuzz".into()),
            remote_addr: Address::Memory("client".into()),
            kind: TransportKind::Memory,
            handshake: HandshakeInfo::with_alpn(&b"h3"[..]),
        };
        let mut config = Http3Config::default();
        config.request_headers_timeout = Duration::from_secs(5);
        let clock = Clock::new(Duration::from_secs(1));
        let h3 = Http3Connection::new(conn, Arc::new(config), clock, ConnectionId(1));
        let mut client: Box<dyn MultiplexedStreams> = Box::new(client);
        let opener = client.opener();
        let mut input = Input(input);
        let drive_client = async {
            let mut opener = opener;
            let Ok(mut control) = opener.open_uni().await else {
                return;
            };
            let mut hello = vec![0x00];
            frame(&mut hello, 0x04, &[]);
            write(&mut control, &hello, Then::LeaveOpen).await;
            let mut open: Vec<BoxSendStream> = Vec::new();
            // Kept unread until the end (the server's writes wait on them).
            let mut responses: Vec<BoxRecvStream> = Vec::new();
            while !input.0.is_empty() {
                let op = input.byte();
                match op % 6 {
                    0 | 1 => {
                        // A well-formed request, its body in DATA frames.
                        let post = op & 0x10 != 0;
                        let path_len = usize::from(input.byte() % 16);
                        let mut path = b"/".to_vec();
                        path.extend(input.bytes(path_len).iter().map(|b| b'a' + b % 26));
                        let mut bytes = Vec::new();
                        frame(&mut bytes, 0x01, &request_block(post, &path));
                        for _ in 0..input.byte() % 4 {
                            let len = usize::from(input.byte());
                            frame(&mut bytes, 0x00, &input.bytes(len));
                        }
                        let Ok(BidiStream { mut send, recv }) = opener.open_bidi().await else {
                            return;
                        };
                        responses.push(recv);
                        let then = if op & 0x20 != 0 { Then::Reset(0x10c) } else { Then::Finish };
                        write(&mut send, &bytes, then).await;
                        open.push(send);
                    }
                    2 => {
                        // Raw frames on a request stream.
                        let mut bytes = Vec::new();
                        for _ in 0..1 + input.byte() % 3 {
                            let ty = u64::from(input.byte() % 16);
                            let len = usize::from(input.byte() % 64);
                            frame(&mut bytes, ty, &input.bytes(len));
                        }
                        let Ok(BidiStream { mut send, recv }) = opener.open_bidi().await else {
                            return;
                        };
                        responses.push(recv);
                        let then = match input.byte() % 3 {
                            0 => Then::Finish,
                            1 => Then::Reset(u64::from(input.byte())),
                            _ => Then::LeaveOpen,
                        };
                        write(&mut send, &bytes, then).await;
                        open.push(send);
                    }
                    3 => {
                        // Raw bytes on the control stream.
                        let len = usize::from(input.byte() % 32);
                        let bytes = input.bytes(len);
                        write(&mut control, &bytes, Then::LeaveOpen).await;
                    }
                    4 => {
                        // A unidirectional stream of any type and content.
                        let Ok(mut uni) = opener.open_uni().await else {
                            return;
                        };
                        let len = usize::from(input.byte() % 32);
                        let bytes = input.bytes(len);
                        let then = if op & 0x10 != 0 { Then::Finish } else { Then::LeaveOpen };
                        write(&mut uni, &bytes, then).await;
                        open.push(uni);
                    }
                    _ => {
                        // Reset a stream opened earlier.
                        if !open.is_empty() {
                            let i = usize::from(input.byte()) % open.len();
                            open[i].reset(0x10c);
                        }
                    }
                }
            }
            // Let the server work, then go away.
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(open);
            drop(responses);
            drop(control);
        };
        let serve = async {
            let _ = h3.serve(&app).await;
        };
        let all = async {
            tokio::join!(serve, async {
                drive_client.await;
                client.close(0x100, b"");
            });
        };
        tokio::time::timeout(Duration::from_secs(600), all)
            .await
            .expect("the connection ended");
    });
});
