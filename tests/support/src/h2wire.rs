//! A raw HTTP/2 frame writer and reader for tests that must send what no
//! well-behaved client sends (rapid resets, too many streams, silence after
//! a PING) or see frames a client library hides (SETTINGS values, GOAWAY
//! codes). Header blocks are HPACK literals without indexing, so they need
//! no encoder state; frames from the server are not HPACK-decoded.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Frame types.

/// DATA (RFC 9113 §6.1).
pub const DATA: u8 = 0x0;
/// HEADERS (§6.2).
pub const HEADERS: u8 = 0x1;
/// PRIORITY (§6.3).
pub const PRIORITY: u8 = 0x2;
/// RST_STREAM (§6.4).
pub const RST_STREAM: u8 = 0x3;
/// SETTINGS (§6.5).
pub const SETTINGS: u8 = 0x4;
/// PUSH_PROMISE (§6.6).
pub const PUSH_PROMISE: u8 = 0x5;
/// PING (§6.7).
pub const PING: u8 = 0x6;
/// GOAWAY (§6.8).
pub const GOAWAY: u8 = 0x7;
/// WINDOW_UPDATE (§6.9).
pub const WINDOW_UPDATE: u8 = 0x8;
/// CONTINUATION (§6.10).
pub const CONTINUATION: u8 = 0x9;

// Flags.

/// END_STREAM (DATA, HEADERS).
pub const END_STREAM: u8 = 0x1;
/// ACK (SETTINGS, PING).
pub const ACK: u8 = 0x1;
/// END_HEADERS (HEADERS, CONTINUATION).
pub const END_HEADERS: u8 = 0x4;
/// PADDED (DATA, HEADERS).
pub const PADDED: u8 = 0x8;
/// HEADERS carries a priority block (dependency, weight).
pub const PRIORITY_FLAG: u8 = 0x20;

// Error codes (RFC 9113 §7).

/// NO_ERROR.
pub const NO_ERROR: u32 = 0x0;
/// PROTOCOL_ERROR.
pub const PROTOCOL_ERROR: u32 = 0x1;
/// INTERNAL_ERROR.
pub const INTERNAL_ERROR: u32 = 0x2;
/// FLOW_CONTROL_ERROR.
pub const FLOW_CONTROL_ERROR: u32 = 0x3;
/// STREAM_CLOSED.
pub const STREAM_CLOSED: u32 = 0x5;
/// FRAME_SIZE_ERROR.
pub const FRAME_SIZE_ERROR: u32 = 0x6;
/// REFUSED_STREAM.
pub const REFUSED_STREAM: u32 = 0x7;
/// CANCEL.
pub const CANCEL: u32 = 0x8;
/// COMPRESSION_ERROR.
pub const COMPRESSION_ERROR: u32 = 0x9;
/// ENHANCE_YOUR_CALM.
pub const ENHANCE_YOUR_CALM: u32 = 0xb;
/// HTTP_1_1_REQUIRED.
pub const HTTP_1_1_REQUIRED: u32 = 0xd;

/// One frame from the server.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The frame type ([`DATA`], [`HEADERS`], …).
    pub kind: u8,
    /// The flags ([`END_STREAM`], [`ACK`], …).
    pub flags: u8,
    /// The stream identifier (0: the connection).
    pub stream: u32,
    /// The payload, as sent (header blocks are not HPACK-decoded).
    pub payload: Vec<u8>,
}

impl Frame {
    /// SETTINGS parameters (id, value).
    pub fn settings(&self) -> Vec<(u16, u32)> {
        self.payload
            .chunks_exact(6)
            .map(|c| {
                (
                    u16::from_be_bytes([c[0], c[1]]),
                    u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                )
            })
            .collect()
    }

    /// GOAWAY (last stream id, error code).
    pub fn goaway(&self) -> (u32, u32) {
        let p = &self.payload;
        (
            u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff,
            u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        )
    }

    /// The error code of a RST_STREAM, or the increment of a WINDOW_UPDATE.
    pub fn code(&self) -> u32 {
        let p = &self.payload;
        u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff
    }
}

/// Encode one frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK integer with a 7-bit prefix (RFC 7541 §5.1), H bit clear.
pub fn hpack_int(out: &mut Vec<u8>, mut n: usize) {
    if n < 127 {
        out.push(n as u8);
        return;
    }
    out.push(127);
    n -= 127;
    while n >= 128 {
        out.push((n % 128 + 128) as u8);
        n /= 128;
    }
    out.push(n as u8);
}

/// A header block of literals without indexing (new names).
pub fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        hpack_int(&mut out, name.len());
        out.extend_from_slice(name.as_bytes());
        hpack_int(&mut out, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// A GET request's HEADERS frame (END_HEADERS, and END_STREAM if `end`).
pub fn get_headers(stream: u32, path: &str, end: bool) -> Vec<u8> {
    let block = header_block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "localhost"),
        (":path", path),
    ]);
    let flags = END_HEADERS | if end { END_STREAM } else { 0 };
    frame(HEADERS, flags, stream, &block)
}

/// A request's header block: the pseudo-headers in h2spec's order
/// (`:method`, `:scheme`, `:path`, `:authority`), then `extra`.
pub fn request_block(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = vec![
        (":method", method),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
    ];
    fields.extend_from_slice(extra);
    header_block(&fields)
}

/// DATA with `payload` (END_STREAM if `end`).
pub fn data(stream: u32, end: bool, payload: &[u8]) -> Vec<u8> {
    frame(DATA, if end { END_STREAM } else { 0 }, stream, payload)
}

/// PRIORITY: `stream` depends on `depends_on` with `weight` (non-exclusive).
pub fn priority(stream: u32, depends_on: u32, weight: u8) -> Vec<u8> {
    let mut p = depends_on.to_be_bytes().to_vec();
    p.push(weight);
    frame(PRIORITY, 0, stream, &p)
}

/// WINDOW_UPDATE of `increment` on `stream` (0: the connection).
pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

/// PING with `payload` (ACK if `ack`).
pub fn ping(ack: bool, payload: [u8; 8]) -> Vec<u8> {
    frame(PING, if ack { ACK } else { 0 }, 0, &payload)
}

/// RST_STREAM with `code`.
pub fn rst(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// SETTINGS with the given parameters.
pub fn settings(params: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in params {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &p)
}

/// A raw HTTP/2 client connection.
pub struct Wire {
    /// The connection.
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Wire {
    /// A connection over `stream`, which has already sent the preface.
    pub fn over(stream: TcpStream) -> Wire {
        Wire {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connect and send the preface and an empty SETTINGS frame.
    pub async fn connect(addr: SocketAddr) -> Wire {
        let mut w = Wire {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
        };
        let mut hello = PREFACE.to_vec();
        hello.extend(settings(&[]));
        w.send(&hello).await;
        w
    }

    /// Write raw bytes (errors are ignored: the server may have closed).
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next frame, or `None` at end of stream (or a reset); fails after 10 s.
    pub async fn next(&mut self) -> Option<Frame> {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("a frame or the end of the connection within the time limit")
    }

    /// The next frame within `limit`: `Err(())` on timeout.
    pub async fn next_within(&mut self, limit: Duration) -> Result<Option<Frame>, ()> {
        let read = async {
            loop {
                if self.buf.len() >= 9 {
                    let len = (usize::from(self.buf[0]) << 16)
                        | (usize::from(self.buf[1]) << 8)
                        | usize::from(self.buf[2]);
                    if self.buf.len() >= 9 + len {
                        let f = Frame {
                            kind: self.buf[3],
                            flags: self.buf[4],
                            stream: u32::from_be_bytes([
                                self.buf[5],
                                self.buf[6],
                                self.buf[7],
                                self.buf[8],
                            ]) & 0x7fff_ffff,
                            payload: self.buf[9..9 + len].to_vec(),
                        };
                        self.buf.drain(..9 + len);
                        return Some(f);
                    }
                }
                let mut chunk = [0u8; 16 * 1024];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(limit, read).await.map_err(|_| ())
    }

    /// Read frames until one matches `pred` (ACKing the server's SETTINGS
    /// and PINGs on the way); `None` if the connection ends first.
    pub async fn until(&mut self, mut pred: impl FnMut(&Frame) -> bool) -> Option<Frame> {
        loop {
            let f = self.next().await?;
            if pred(&f) {
                return Some(f);
            }
            self.ack(&f).await;
        }
    }

    /// ACK a SETTINGS or PING frame; other frames are ignored.
    pub async fn ack(&mut self, f: &Frame) {
        if f.kind == SETTINGS && f.flags & ACK == 0 {
            self.send(&frame(SETTINGS, ACK, 0, &[])).await;
        } else if f.kind == PING && f.flags & ACK == 0 {
            self.send(&frame(PING, ACK, 0, &f.payload)).await;
        }
    }

    /// Every frame until the server closes the connection (ACKing on the way).
    pub async fn drain(&mut self) -> Vec<Frame> {
        let mut all = Vec::new();
        while let Some(f) = self.next().await {
            self.ack(&f).await;
            all.push(f);
        }
        all
    }
}
