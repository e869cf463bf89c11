//! HTTP/3 attack resistance (issue 15): a raw QUIC client with ALPN `h3`
//! (quinn, hand-built frames) misbehaves against `Http3Connection` on the
//! quinn listener, and each test asserts the exact RFC 9114 / RFC 9204 error
//! code it gets (a connection close, or a stream reset / stop), while a
//! well-behaved client (the Rust `h3` client on its own connection) is
//! served during and after the attack, and, where the RFC lets the attacking
//! connection live, that connection serves a request too.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kestrel_core::RequestBody;
use kestrel_http3::Http3Config;

mod common;

use common::{client, raw_connection, Client, Server, WAIT};

// RFC 9114 §8.1 and RFC 9204 §6 error codes.
const H3_NO_ERROR: u64 = 0x100;
const H3_STREAM_CREATION_ERROR: u64 = 0x103;
const H3_CLOSED_CRITICAL_STREAM: u64 = 0x104;
const H3_FRAME_UNEXPECTED: u64 = 0x105;
const H3_MISSING_SETTINGS: u64 = 0x10a;
const H3_REQUEST_REJECTED: u64 = 0x10b;
const H3_REQUEST_CANCELLED: u64 = 0x10c;
const QPACK_ENCODER_STREAM_ERROR: u64 = 0x201;
const QPACK_DECODER_STREAM_ERROR: u64 = 0x202;

type AppBody =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

fn full(b: impl Into<Bytes>) -> AppBody {
    Full::new(b.into())
        .map_err(|e: Infallible| match e {})
        .boxed()
}

/// `/echo` reads the whole request body and sends it back; anything else
/// answers "ok".
async fn app(
    req: Request<RequestBody>,
) -> Result<Response<AppBody>, Box<dyn std::error::Error + Send + Sync>> {
    match req.uri().path() {
        "/echo" => {
            let body = req.into_body().collect().await?.to_bytes();
            Ok(Response::new(full(body)))
        }
        _ => Ok(Response::new(full("ok"))),
    }
}

fn serve(config: Http3Config) -> Server {
    common::serve_with(config, app)
}

fn get(path: &str) -> Request<()> {
    Request::get(format!("https://localhost{path}"))
        .body(())
        .expect("request")
}

/// The well-behaved client gets "ok" for a GET.
async fn assert_served(c: &mut Client) {
    let body = tokio::time::timeout(WAIT, async {
        let mut stream = c.send.send_request(get("/hello")).await?;
        stream.finish().await?;
        let head = stream.recv_response().await?;
        assert_eq!(head.status(), StatusCode::OK);
        let mut out = BytesMut::new();
        while let Some(mut chunk) = stream.recv_data().await? {
            out.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
        }
        Ok::<_, h3::error::StreamError>(out)
    })
    .await
    .expect("served in time")
    .expect("the well-behaved client is served");
    assert_eq!(&body[..], b"ok");
}

// --- QUIC variable-length integers, HTTP/3 frames and QPACK, by hand ---

fn varint(v: u64, out: &mut Vec<u8>) {
    if v < 1 << 6 {
        out.push(v as u8);
    } else if v < 1 << 14 {
        out.extend_from_slice(&(0x4000 | v as u16).to_be_bytes());
    } else if v < 1 << 30 {
        out.extend_from_slice(&(0x8000_0000 | v as u32).to_be_bytes());
    } else {
        out.extend_from_slice(&(0xc000_0000_0000_0000 | v).to_be_bytes());
    }
}

fn frame(ty: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(ty, &mut out);
    varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// An empty SETTINGS frame.
fn settings() -> Vec<u8> {
    frame(0x04, &[])
}

/// The start of a control stream: its type and SETTINGS.
fn control_stream() -> Vec<u8> {
    let mut out = vec![0x00];
    out.extend_from_slice(&settings());
    out
}

/// A QPACK field section (Required Insert Count 0, Base 0) for a GET of
/// `path` on https://localhost, with static-table references only
/// (RFC 9204 appendix A): `:method GET` (17), `:scheme https` (23),
/// `:path` (1) and `:authority` (0) with literal values.
fn get_block(path: &str) -> Vec<u8> {
    let mut b = vec![0x00, 0x00, 0xc0 | 17, 0xc0 | 23];
    // Literal field line with a static name reference: 01NT + 4-bit index.
    b.push(0x50 | 1);
    b.push(path.len() as u8);
    b.extend_from_slice(path.as_bytes());
    b.push(0x50);
    b.push(9);
    b.extend_from_slice(b"localhost");
    b
}

/// Send a GET on a new request stream of a raw connection and read the
/// whole response: its first frame must be HEADERS with `:status 200`
/// (h3 encodes it as the static entry 25, `0xd9`).
async fn raw_get_is_ok(conn: &quinn::Connection) {
    let (mut send, mut recv) = conn.open_bi().await.expect("request stream");
    send.write_all(&frame(0x01, &get_block("/hello")))
        .await
        .expect("headers");
    send.finish().expect("finish");
    let response = tokio::time::timeout(WAIT, recv.read_to_end(64 * 1024))
        .await
        .expect("answered in time")
        .expect("response");
    // HEADERS, its length, the field section's prefix (0, 0), `:status 200`.
    assert_eq!(response[0], 0x01, "first frame is HEADERS: {response:?}");
    assert_eq!(&response[2..5], &[0x00, 0x00, 0xc0 | 25], "{response:?}");
}

/// The application error code the server closed the connection with.
async fn close_code(conn: &quinn::Connection) -> u64 {
    match tokio::time::timeout(WAIT, conn.closed())
        .await
        .expect("closed in time")
    {
        quinn::ConnectionError::ApplicationClosed(close) => close.error_code.into_inner(),
        other => panic!("expected the server's application close, got {other:?}"),
    }
}

/// Open a control stream (type and SETTINGS) on a raw connection.
async fn open_control(conn: &quinn::Connection) -> quinn::SendStream {
    let mut control = conn.open_uni().await.expect("control stream");
    control
        .write_all(&control_stream())
        .await
        .expect("settings");
    control
}

/// Run `attack` on a raw connection while a well-behaved client is served
/// before and after it on its own connection; return the close code.
async fn closes_with<F, Fut>(config: Http3Config, attack: F) -> u64
where
    F: FnOnce(quinn::Connection) -> Fut,
    Fut: std::future::Future<Output = quinn::Connection>,
{
    let server = serve(config);
    let mut c = client(&server).await;
    assert_served(&mut c).await;
    let conn = attack(raw_connection(&server).await).await;
    let code = close_code(&conn).await;
    assert_served(&mut c).await;
    code
}

// --- QPACK ---

#[tokio::test]
async fn a_small_field_section_that_decodes_past_the_limit_gets_431_and_the_connection_serves_on() {
    let _serial = shared().await;
    let mut config = Http3Config::default();
    config.max_request_headers_total_size = 1000;
    let server = serve(config);
    let mut c = client(&server).await;
    let conn = raw_connection(&server).await;
    let _control = open_control(&conn).await;
    // 60 one-byte references to `accept-encoding: gzip, deflate, br`
    // (static entry 31): 66 bytes encoded, 60 × (32 + 32) = 3,840 decoded
    // (RFC 9114 §4.2.2 counts 32 bytes more per field) against 1,000.
    let mut block = get_block("/hello");
    block.extend_from_slice(&[0xc0 | 31; 60]);
    assert!(block.len() < 100);
    let (mut send, mut recv) = conn.open_bi().await.expect("request stream");
    send.write_all(&frame(0x01, &block)).await.expect("headers");
    send.finish().expect("finish");
    // h3 0.0.8 checks the decoded size (RFC 9114 §4.2.2, 32 bytes more per
    // field) as it decodes, stops at the limit and answers 431 with a head
    // alone, then drops the stream: the adapter finishes it (not resets it),
    // so the client reads the answer.
    let answer = tokio::time::timeout(WAIT, recv.read_to_end(64 * 1024))
        .await
        .expect("answered in time")
        .expect("a whole response");
    assert_eq!(answer[0], 0x01, "a HEADERS frame: {answer:?}");
    // `:status` (static name 24) with the value "431", Huffman-coded.
    assert!(
        answer
            .windows(6)
            .any(|w| w == [0x5f, 0x09, 0x83, 0x69, 0x90, 0xff]),
        "431 Request Header Fields Too Large: {answer:?}"
    );
    assert_served(&mut c).await;
    // The attacking connection itself serves on (a stream error only).
    raw_get_is_ok(&conn).await;
}

#[tokio::test]
async fn a_dynamic_table_capacity_above_zero_on_the_encoder_stream_closes_with_qpack_encoder_stream_error(
) {
    let _serial = shared().await;
    let code = closes_with(Http3Config::default(), |conn| async move {
        let control = open_control(&conn).await;
        // Encoder stream (type 0x02): Set Dynamic Table Capacity 4096
        // (001 + 5-bit prefix integer) above our maximum, 0.
        let mut encoder = conn.open_uni().await.expect("encoder stream");
        encoder
            .write_all(&[0x02, 0x3f, 0xe1, 0x1f])
            .await
            .expect("instruction");
        std::mem::forget((control, encoder));
        conn
    })
    .await;
    assert_eq!(code, QPACK_ENCODER_STREAM_ERROR);
}

#[tokio::test]
async fn a_duplicate_of_a_missing_entry_on_the_encoder_stream_closes_with_qpack_encoder_stream_error(
) {
    let _serial = shared().await;
    let code = closes_with(Http3Config::default(), |conn| async move {
        let control = open_control(&conn).await;
        // Duplicate (000 + 5-bit relative index 0): the table is empty.
        let mut encoder = conn.open_uni().await.expect("encoder stream");
        encoder.write_all(&[0x02, 0x00]).await.expect("instruction");
        std::mem::forget((control, encoder));
        conn
    })
    .await;
    assert_eq!(code, QPACK_ENCODER_STREAM_ERROR);
}

#[tokio::test]
async fn an_insert_on_the_encoder_stream_closes_with_qpack_encoder_stream_error() {
    let _serial = shared().await;
    let code = closes_with(Http3Config::default(), |conn| async move {
        let control = open_control(&conn).await;
        // Insert with Static Name Reference (1 T=1 + 6-bit index 1, `:path`)
        // and a value: no entry fits a table of capacity 0.
        let mut encoder = conn.open_uni().await.expect("encoder stream");
        encoder
            .write_all(&[0x02, 0xc1, 0x02, b'/', b'x'])
            .await
            .expect("instruction");
        std::mem::forget((control, encoder));
        conn
    })
    .await;
    assert_eq!(code, QPACK_ENCODER_STREAM_ERROR);
}

#[tokio::test]
async fn an_insert_count_increment_on_the_decoder_stream_closes_with_qpack_decoder_stream_error() {
    let _serial = shared().await;
    let code = closes_with(Http3Config::default(), |conn| async move {
        let control = open_control(&conn).await;
        // Decoder stream (type 0x03): Insert Count Increment 1 (00 + 6-bit),
        // but the server inserted nothing.
        let mut decoder = conn.open_uni().await.expect("decoder stream");
        decoder.write_all(&[0x03, 0x01]).await.expect("instruction");
        std::mem::forget((control, decoder));
        conn
    })
    .await;
    assert_eq!(code, QPACK_DECODER_STREAM_ERROR);
}

#[tokio::test]
async fn a_section_acknowledgment_on_the_decoder_stream_closes_with_qpack_decoder_stream_error() {
    let _serial = shared().await;
    let code = closes_with(Http3Config::default(), |conn| async move {
        let control = open_control(&conn).await;
        // Section Acknowledgment (1 + 7-bit stream id 0): the server never
        // sent a field section that refers to the dynamic table.
        let mut decoder = conn.open_uni().await.expect("decoder stream");
        decoder.write_all(&[0x03, 0x80]).await.expect("instruction");
        std::mem::forget((control, decoder));
        conn
    })
    .await;
    assert_eq!(code, QPACK_DECODER_STREAM_ERROR);
}

#[tokio::test]
async fn valid_encoder_and_decoder_streams_are_accepted_and_the_connection_serves() {
    let _serial = shared().await;
    let server = serve(Http3Config::default());
    let conn = raw_connection(&server).await;
    let _control = open_control(&conn).await;
    // Set Dynamic Table Capacity 0 is within the maximum; Stream
    // Cancellation (01 + 6-bit stream id) is always allowed.
    let mut encoder = conn.open_uni().await.expect("encoder stream");
    encoder.write_all(&[0x02, 0x20]).await.expect("encoder");
    let mut decoder = conn.open_uni().await.expect("decoder stream");
    decoder.write_all(&[0x03, 0x40]).await.expect("decoder");
    raw_get_is_ok(&conn).await;
    raw_get_is_ok(&conn).await;
    assert!(conn.close_reason().is_none());
}

#[tokio::test]
async fn a_second_encoder_stream_closes_with_h3_stream_creation_error() {
    let _serial = shared().await;
    let code = closes_with(Http3Config::default(), |conn| async move {
        let control = open_control(&conn).await;
        let mut one = conn.open_uni().await.expect("encoder stream");
        one.write_all(&[0x02]).await.expect("type");
        let mut two = conn.open_uni().await.expect("second encoder stream");
        two.write_all(&[0x02]).await.expect("type");
        std::mem::forget((control, one, two));
        conn
    })
    .await;
    assert_eq!(code, H3_STREAM_CREATION_ERROR);
}

#[tokio::test]
async fn a_closed_decoder_stream_closes_with_h3_closed_critical_stream() {
    let _serial = shared().await;
    let code = closes_with(Http3Config::default(), |conn| async move {
        let control = open_control(&conn).await;
        let mut decoder = conn.open_uni().await.expect("decoder stream");
        decoder.write_all(&[0x03]).await.expect("type");
        // Let the server see the type before the end (RFC 9114 §6.2: a
        // stream closed before its type is tolerated).
        raw_get_is_ok(&conn).await;
        decoder.finish().expect("finish");
        std::mem::forget(control);
        conn
    })
    .await;
    assert_eq!(code, H3_CLOSED_CRITICAL_STREAM);
}

// --- Stream limits ---

#[tokio::test]
async fn the_101st_concurrent_request_waits_for_credit_and_is_served_once_streams_finish() {
    let _serial = shared().await;
    let server = serve(Http3Config::default());
    let mut c = client(&server).await;
    // 100 requests whose bodies are not finished: the app waits on each.
    let mut open = Vec::new();
    for _ in 0..100 {
        let mut stream = tokio::time::timeout(
            WAIT,
            c.send.send_request(
                Request::post("https://localhost/echo")
                    .body(())
                    .expect("request"),
            ),
        )
        .await
        .expect("opened in time")
        .expect("request");
        stream
            .send_data(Bytes::from_static(b"part"))
            .await
            .expect("data");
        open.push(stream);
    }
    // The 101st waits for the server's stream credit (no error).
    let mut sender = c.send.clone();
    let mut waiting = tokio::spawn(async move {
        let mut stream = sender.send_request(get("/hello")).await?;
        stream.finish().await?;
        let head = stream.recv_response().await?;
        Ok::<_, h3::error::StreamError>(head.status())
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut waiting)
            .await
            .is_err(),
        "the 101st request must wait for credit"
    );
    // Another connection is served meanwhile.
    let mut other = client(&server).await;
    assert_served(&mut other).await;
    // Streams finish, one at a time: the 101st is opened and served once
    // the server announces more credit. quinn announces MAX_STREAMS once
    // more than an eighth of the window (100 / 8 = 12) was freed, so the
    // 13th finished stream at the latest brings it.
    let mut finished = 0;
    let status = loop {
        assert!(
            finished < 13,
            "the 101st was not served after {finished} streams finished"
        );
        let mut stream = open.remove(0);
        stream.finish().await.expect("finish");
        let head = tokio::time::timeout(WAIT, stream.recv_response())
            .await
            .expect("in time")
            .expect("response");
        assert_eq!(head.status(), StatusCode::OK);
        while stream.recv_data().await.expect("data").is_some() {}
        finished += 1;
        if let Ok(status) = tokio::time::timeout(Duration::from_millis(300), &mut waiting).await {
            break status.expect("task").expect("response");
        }
    };
    eprintln!("the 101st request was served after {finished} streams finished");
    assert_eq!(status, StatusCode::OK);
    // The others finish too, and the connection serves on.
    for mut stream in open {
        stream.finish().await.expect("finish");
        let head = tokio::time::timeout(WAIT, stream.recv_response())
            .await
            .expect("in time")
            .expect("response");
        assert_eq!(head.status(), StatusCode::OK);
    }
    assert_served(&mut c).await;
}

/// The tests that measure this process's resident set run alone: the others
/// take [`shared`], those [`exclusive`] (cargo runs a binary's tests in
/// parallel, and their allocations would count).
static SERIAL: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

async fn shared() -> tokio::sync::RwLockReadGuard<'static, ()> {
    SERIAL.read().await
}

async fn exclusive() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    SERIAL.write().await
}

/// The resident set size of this process, in bytes (Linux).
fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_streams_opened_and_reset_at_once_leave_the_server_serving() {
    let _serial = exclusive().await;
    let server = serve(Http3Config::default());
    let mut c = client(&server).await;
    assert_served(&mut c).await;
    let conn = raw_connection(&server).await;
    let mut control = open_control(&conn).await;
    raw_get_is_ok(&conn).await;
    let before = rss();
    let start = Instant::now();
    let attacker = {
        let conn = conn.clone();
        tokio::spawn(async move {
            for _ in 0..10_000 {
                let (mut send, mut recv) = tokio::time::timeout(WAIT, conn.open_bi())
                    .await
                    .expect("stream credit comes back")
                    .expect("open");
                // RESET_STREAM opens the stream on the server; nothing else.
                send.reset(quinn::VarInt::from_u64(H3_REQUEST_CANCELLED).expect("code"))
                    .expect("reset");
                let _ = recv.stop(quinn::VarInt::from_u64(H3_REQUEST_CANCELLED).expect("code"));
            }
        })
    };
    // Served during the storm.
    while !attacker.is_finished() {
        assert_served(&mut c).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    attacker
        .await
        .expect("the attacker opened and reset 10,000 streams");
    eprintln!("10,000 streams opened and reset in {:?}", start.elapsed());
    // The attacking connection is not closed and serves a request.
    assert!(conn.close_reason().is_none(), "{:?}", conn.close_reason());
    raw_get_is_ok(&conn).await;
    assert_served(&mut c).await;
    if let (Some(before), Some(after)) = (before, rss()) {
        let grown = after.saturating_sub(before);
        eprintln!("resident set grew by {} KiB", grown / 1024);
        assert!(grown < 64 << 20, "memory grew by {grown} bytes");
    }
    // h3 forgot every one of them: after the client's GOAWAY, the server
    // closes the connection with H3_NO_ERROR (h3 0.0.8 kept the id of
    // each stream reset before its head, and waited for them for ever).
    control
        .write_all(&frame(0x07, &[0x00]))
        .await
        .expect("goaway");
    assert_eq!(close_code(&conn).await, H3_NO_ERROR);
}

// --- Unidirectional streams that never send their type ---

#[tokio::test]
async fn unidirectional_streams_without_a_type_are_stopped_after_the_request_headers_timeout() {
    let _serial = shared().await;
    let mut config = Http3Config::default();
    config.request_headers_timeout = Duration::from_millis(400);
    let server = serve(config);
    let mut c = client(&server).await;
    let conn = raw_connection(&server).await;
    let _control = open_control(&conn).await;
    // 9 more streams fill the server's 10 unidirectional streams; each sends
    // the first byte of a two-byte stream type and nothing more.
    let start = Instant::now();
    let mut typeless = Vec::new();
    for _ in 0..9 {
        let mut s = conn.open_uni().await.expect("uni stream");
        s.write_all(&[0x40]).await.expect("half a type");
        typeless.push(s);
    }
    assert_served(&mut c).await;
    for s in &mut typeless {
        let code = tokio::time::timeout(WAIT, s.stopped())
            .await
            .expect("stopped in time")
            .expect("stopped");
        assert_eq!(
            code,
            Some(quinn::VarInt::from_u64(H3_STREAM_CREATION_ERROR).expect("code"))
        );
        // RFC 9000 §3.5: a STOP_SENDING is answered with a RESET_STREAM
        // (quinn leaves that to the application); the stream's credit
        // comes back once it arrives.
        s.reset(quinn::VarInt::from_u64(H3_STREAM_CREATION_ERROR).expect("code"))
            .expect("reset");
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(350),
        "stopped after {elapsed:?}"
    );
    // Their credit came back: 9 more streams open (unknown type 0x21,
    // which the server discards), and the connection serves on.
    for _ in 0..9 {
        let mut s = tokio::time::timeout(WAIT, conn.open_uni())
            .await
            .expect("credit came back")
            .expect("uni stream");
        s.write_all(&[0x21]).await.expect("type");
        s.finish().expect("finish");
    }
    raw_get_is_ok(&conn).await;
    assert!(conn.close_reason().is_none());
    assert_served(&mut c).await;
}

// --- A HEADERS frame that never completes ---

#[tokio::test]
async fn a_headers_frame_declaring_more_than_twice_the_limit_is_rejected_at_once() {
    let _serial = shared().await;
    let mut config = Http3Config::default();
    config.request_headers_timeout = Duration::from_secs(5);
    let server = serve(config);
    let mut c = client(&server).await;
    let conn = raw_connection(&server).await;
    let _control = open_control(&conn).await;
    // HEADERS (0x01) declaring 1 GiB, then 1 KiB of it.
    let mut start_of_frame = vec![0x01];
    varint(1 << 30, &mut start_of_frame);
    start_of_frame.extend_from_slice(&[0u8; 1024]);
    let (mut send, mut recv) = conn.open_bi().await.expect("request stream");
    send.write_all(&start_of_frame).await.expect("write");
    let start = Instant::now();
    let err = tokio::time::timeout(WAIT, recv.read_to_end(1024))
        .await
        .expect("in time")
        .expect_err("the stream must be reset");
    assert!(
        matches!(
            err,
            quinn::ReadToEndError::Read(quinn::ReadError::Reset(code)) if code.into_inner() == H3_REQUEST_REJECTED
        ),
        "{err:?}"
    );
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "answered after {elapsed:?}"
    );
    let stopped = tokio::time::timeout(WAIT, send.stopped())
        .await
        .expect("in time")
        .expect("stopped");
    assert_eq!(
        stopped,
        Some(quinn::VarInt::from_u64(H3_REQUEST_REJECTED).expect("code"))
    );
    raw_get_is_ok(&conn).await;
    assert_served(&mut c).await;
}

// --- Control streams and frames ---

#[tokio::test]
async fn a_second_control_stream_closes_with_h3_stream_creation_error() {
    let _serial = shared().await;
    let code = closes_with(Http3Config::default(), |conn| async move {
        let one = open_control(&conn).await;
        raw_get_is_ok(&conn).await;
        let two = open_control(&conn).await;
        std::mem::forget((one, two));
        conn
    })
    .await;
    assert_eq!(code, H3_STREAM_CREATION_ERROR);
}

#[tokio::test]
async fn a_finished_control_stream_closes_with_h3_closed_critical_stream() {
    let _serial = shared().await;
    let code = closes_with(Http3Config::default(), |conn| async move {
        let mut control = open_control(&conn).await;
        raw_get_is_ok(&conn).await;
        control.finish().expect("finish");
        std::mem::forget(control);
        conn
    })
    .await;
    assert_eq!(code, H3_CLOSED_CRITICAL_STREAM);
}

#[tokio::test]
async fn a_reset_control_stream_closes_with_h3_closed_critical_stream() {
    let _serial = shared().await;
    let code = closes_with(Http3Config::default(), |conn| async move {
        let mut control = open_control(&conn).await;
        raw_get_is_ok(&conn).await;
        control
            .reset(quinn::VarInt::from_u64(H3_NO_ERROR).expect("code"))
            .expect("reset");
        conn
    })
    .await;
    assert_eq!(code, H3_CLOSED_CRITICAL_STREAM);
}

#[tokio::test]
async fn a_second_settings_frame_closes_with_h3_frame_unexpected() {
    let _serial = shared().await;
    let code = closes_with(Http3Config::default(), |conn| async move {
        let mut control = open_control(&conn).await;
        control.write_all(&settings()).await.expect("settings");
        std::mem::forget(control);
        conn
    })
    .await;
    assert_eq!(code, H3_FRAME_UNEXPECTED);
}

#[tokio::test]
async fn a_control_stream_not_starting_with_settings_closes_with_h3_missing_settings() {
    let _serial = shared().await;
    let code = closes_with(Http3Config::default(), |conn| async move {
        let mut control = conn.open_uni().await.expect("control stream");
        // GOAWAY(0) before SETTINGS.
        let mut bytes = vec![0x00];
        bytes.extend_from_slice(&frame(0x07, &[0x00]));
        control.write_all(&bytes).await.expect("goaway");
        std::mem::forget(control);
        conn
    })
    .await;
    assert_eq!(code, H3_MISSING_SETTINGS);
}

#[tokio::test]
async fn a_data_frame_on_the_control_stream_closes_with_h3_frame_unexpected() {
    let _serial = shared().await;
    let code = closes_with(Http3Config::default(), |conn| async move {
        let mut control = open_control(&conn).await;
        control
            .write_all(&frame(0x00, b"data"))
            .await
            .expect("data");
        std::mem::forget(control);
        conn
    })
    .await;
    assert_eq!(code, H3_FRAME_UNEXPECTED);
}

#[tokio::test]
async fn a_reserved_http2_frame_type_on_a_request_stream_closes_with_h3_frame_unexpected() {
    let _serial = shared().await;
    for ty in [0x02, 0x06, 0x08, 0x09] {
        let code = closes_with(Http3Config::default(), |conn| async move {
            let control = open_control(&conn).await;
            // PRIORITY, PING, WINDOW_UPDATE or CONTINUATION (RFC 9114 §7.2.8),
            // before the request's HEADERS.
            let (mut send, recv) = conn.open_bi().await.expect("request stream");
            send.write_all(&frame(ty, &[0; 8])).await.expect("frame");
            std::mem::forget((control, send, recv));
            conn
        })
        .await;
        assert_eq!(code, H3_FRAME_UNEXPECTED, "frame type {ty:#x}");
    }
}

#[tokio::test]
async fn a_client_initiated_push_stream_closes_with_h3_stream_creation_error() {
    let _serial = shared().await;
    let code = closes_with(Http3Config::default(), |conn| async move {
        let control = open_control(&conn).await;
        // Push stream (type 0x01) with push id 0: only servers push.
        let mut push = conn.open_uni().await.expect("push stream");
        push.write_all(&[0x01, 0x00]).await.expect("push");
        std::mem::forget((control, push));
        conn
    })
    .await;
    assert_eq!(code, H3_STREAM_CREATION_ERROR);
}

// --- Frames h3 would buffer whole ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_unknown_frame_before_the_head_is_skipped_as_it_arrives() {
    let _serial = exclusive().await;
    let server = serve(Http3Config::default());
    let mut c = client(&server).await;
    let conn = raw_connection(&server).await;
    let _control = open_control(&conn).await;
    raw_get_is_ok(&conn).await;
    // A reserved frame type (0x21, RFC 9114 §7.2.8) of 64 MiB, then the
    // request's HEADERS. h3 0.0.8 buffers a frame whole before skipping an
    // unknown type: it would hold all 64 MiB.
    const SIZE: usize = 64 << 20;
    let (mut send, mut recv) = conn.open_bi().await.expect("request stream");
    let mut header = vec![0x21];
    varint(SIZE as u64, &mut header);
    send.write_all(&header).await.expect("frame header");
    let before = rss();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..SIZE / chunk.len() {
        tokio::time::timeout(WAIT, send.write_all(&chunk))
            .await
            .expect("the server reads on")
            .expect("payload");
    }
    // Give the server the time to read the last window.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rss();
    send.write_all(&frame(0x01, &get_block("/hello")))
        .await
        .expect("headers");
    send.finish().expect("finish");
    let response = tokio::time::timeout(WAIT, recv.read_to_end(64 * 1024))
        .await
        .expect("answered in time")
        .expect("response");
    assert_eq!(&response[2..5], &[0x00, 0x00, 0xc0 | 25], "{response:?}");
    if let (Some(before), Some(after)) = (before, after) {
        let grown = after.saturating_sub(before);
        eprintln!(
            "resident set grew by {} KiB over a 64 MiB unknown frame",
            grown / 1024
        );
        assert!(grown < (SIZE / 2) as u64, "memory grew by {grown} bytes");
    }
    assert_served(&mut c).await;
}

#[tokio::test]
async fn a_huge_goaway_frame_on_the_control_stream_closes_with_h3_excessive_load() {
    let _serial = shared().await;
    let code = closes_with(Http3Config::default(), |conn| async move {
        let mut control = open_control(&conn).await;
        // GOAWAY (0x07) declaring 1 MiB: h3 would buffer it all first.
        let mut header = vec![0x07];
        varint(1 << 20, &mut header);
        control.write_all(&header).await.expect("frame header");
        control.write_all(&[0u8; 1024]).await.expect("payload");
        std::mem::forget(control);
        conn
    })
    .await;
    assert_eq!(code, 0x107, "H3_EXCESSIVE_LOAD");
}

#[tokio::test]
async fn unknown_frames_and_streams_are_ignored() {
    let _serial = shared().await;
    let server = serve(Http3Config::default());
    let conn = raw_connection(&server).await;
    let mut control = open_control(&conn).await;
    // A reserved frame on the control stream (RFC 9114 §7.2.8), a stream
    // of a reserved type (§6.2.3), a reserved frame before and after the
    // request's HEADERS.
    control
        .write_all(&frame(0x21, b"ignored"))
        .await
        .expect("frame");
    let mut grease = conn.open_uni().await.expect("uni");
    grease.write_all(&[0x21, 1, 2, 3]).await.expect("grease");
    grease.finish().expect("finish");
    let (mut send, mut recv) = conn.open_bi().await.expect("request stream");
    let mut bytes = frame(0x1f * 3 + 0x21, b"before");
    bytes.extend_from_slice(&frame(0x01, &get_block("/hello")));
    bytes.extend_from_slice(&frame(0x21, b"after"));
    send.write_all(&bytes).await.expect("request");
    send.finish().expect("finish");
    let response = tokio::time::timeout(WAIT, recv.read_to_end(64 * 1024))
        .await
        .expect("answered in time")
        .expect("response");
    assert_eq!(&response[2..5], &[0x00, 0x00, 0xc0 | 25], "{response:?}");
    raw_get_is_ok(&conn).await;
    assert!(conn.close_reason().is_none());
}

#[tokio::test]
async fn a_data_frame_cut_short_by_the_end_of_the_stream_closes_with_h3_frame_error() {
    let _serial = shared().await;
    let code = closes_with(Http3Config::default(), |conn| async move {
        let control = open_control(&conn).await;
        // A POST to /echo whose DATA frame declares 100 bytes, then the
        // stream's end after 4 (RFC 9114 §7.1: a truncated frame is
        // H3_FRAME_ERROR). h3 0.0.8 reports the body's end instead, and
        // then asserts (panics) when the trailers are read.
        let mut block = vec![0x00, 0x00, 0xc0 | 20, 0xc0 | 23, 0x51, 5];
        block.extend_from_slice(b"/echo");
        block.extend_from_slice(&[0x50, 9]);
        block.extend_from_slice(b"localhost");
        let mut bytes = frame(0x01, &block);
        bytes.extend_from_slice(&[0x00, 100, b'a', b'b', b'c', b'd']);
        let (mut send, recv) = conn.open_bi().await.expect("request stream");
        send.write_all(&bytes).await.expect("request");
        send.finish().expect("finish");
        std::mem::forget((control, send, recv));
        conn
    })
    .await;
    assert_eq!(code, 0x106, "H3_FRAME_ERROR");
}

#[tokio::test]
async fn streams_that_end_are_reset_or_time_out_before_their_head_are_refused_and_forgotten() {
    let _serial = shared().await;
    let mut config = Http3Config::default();
    config.request_headers_timeout = Duration::from_millis(400);
    let server = serve(config);
    let mut c = client(&server).await;
    let conn = raw_connection(&server).await;
    let mut control = open_control(&conn).await;
    // The end of the stream before any frame: H3_REQUEST_INCOMPLETE.
    let (mut send, mut recv) = conn.open_bi().await.expect("request stream");
    send.finish().expect("finish");
    let err = tokio::time::timeout(WAIT, recv.read_to_end(1024))
        .await
        .expect("in time")
        .expect_err("the stream must be reset");
    assert!(
        matches!(
            err,
            quinn::ReadToEndError::Read(quinn::ReadError::Reset(code)) if code.into_inner() == 0x10d
        ),
        "H3_REQUEST_INCOMPLETE: {err:?}"
    );
    // A reset before the head (after a reserved frame, so the server has
    // seen the stream), answered by a reset with H3_REQUEST_CANCELLED.
    let (mut send, mut recv) = conn.open_bi().await.expect("request stream");
    send.write_all(&frame(0x21, b"x")).await.expect("frame");
    raw_get_is_ok(&conn).await;
    send.reset(quinn::VarInt::from_u64(H3_REQUEST_CANCELLED).expect("code"))
        .expect("reset");
    let err = tokio::time::timeout(WAIT, recv.read_to_end(1024))
        .await
        .expect("in time")
        .expect_err("the stream must be reset");
    assert!(
        matches!(
            err,
            quinn::ReadToEndError::Read(quinn::ReadError::Reset(code)) if code.into_inner() == H3_REQUEST_CANCELLED
        ),
        "{err:?}"
    );
    // Half a head, then nothing: refused after the request-headers timeout
    // with H3_REQUEST_REJECTED (Kestrel's code for it).
    let (mut send, mut recv) = conn.open_bi().await.expect("request stream");
    send.write_all(&[0x01, 0x40, 0x64, 1, 2, 3])
        .await
        .expect("half a head");
    let err = tokio::time::timeout(WAIT, recv.read_to_end(1024))
        .await
        .expect("in time")
        .expect_err("the stream must be reset");
    assert!(
        matches!(
            err,
            quinn::ReadToEndError::Read(quinn::ReadError::Reset(code)) if code.into_inner() == H3_REQUEST_REJECTED
        ),
        "{err:?}"
    );
    raw_get_is_ok(&conn).await;
    assert_served(&mut c).await;
    // None of them is waited for: after the client's GOAWAY the server closes.
    control
        .write_all(&frame(0x07, &[0x00]))
        .await
        .expect("goaway");
    assert_eq!(close_code(&conn).await, H3_NO_ERROR);
    assert_served(&mut c).await;
}
