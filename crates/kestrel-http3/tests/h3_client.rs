//! HTTP/3 end to end: the Rust h3 client (h3 + h3-quinn on a quinn client)
//! against `Http3Connection` served over `kestrel_transport`'s quinn
//! listener, on loopback UDP with a self-signed rcgen certificate.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full, StreamBody};
use kestrel_core::{RequestBody, RequestFeatures};
use kestrel_http3::Http3Config;

mod common;

use common::{client, raw_connection, Client, Server, WAIT};

type AppBody =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

fn full(b: impl Into<Bytes>) -> AppBody {
    Full::new(b.into())
        .map_err(|e: Infallible| match e {})
        .boxed()
}

/// The test application: routes by path.
async fn app(
    req: Request<RequestBody>,
) -> Result<Response<AppBody>, Box<dyn std::error::Error + Send + Sync>> {
    assert_eq!(req.version(), Version::HTTP_3);
    assert!(req.extensions().get::<RequestFeatures>().is_some());
    match req.uri().path() {
        "/hello" => Ok(Response::builder()
            .header("x-method", req.method().as_str())
            .header(
                "x-host",
                req.headers()
                    .get("host")
                    .cloned()
                    .unwrap_or(HeaderValue::from_static("")),
            )
            .body(full("hello over h3"))?),
        "/echo" => {
            let collected = req.into_body().collect().await?;
            let trailers = collected.trailers().cloned();
            let body = collected.to_bytes();
            let mut resp = Response::builder().header("x-received", body.len().to_string());
            if let Some(t) = trailers {
                if let Some(v) = t.get("x-checksum") {
                    resp = resp.header("x-request-trailer", v.clone());
                }
            }
            Ok(resp.body(full(body))?)
        }
        "/trailers" => {
            let mut trailers = HeaderMap::new();
            trailers.insert("x-done", HeaderValue::from_static("yes"));
            let frames: Vec<
                Result<http_body::Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>,
            > = vec![
                Ok(http_body::Frame::data(Bytes::from_static(b"part one, "))),
                Ok(http_body::Frame::data(Bytes::from_static(b"part two"))),
                Ok(http_body::Frame::trailers(trailers)),
            ];
            Ok(Response::new(
                StreamBody::new(futures_util::stream::iter(frames)).boxed(),
            ))
        }
        // The response streams the request body back as it arrives.
        "/stream-echo" => Ok(Response::new(req.into_body().map_err(Into::into).boxed())),
        "/not-modified" => Ok(Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header("etag", "\"v1\"")
            .body(full("dropped"))?),
        "/no-content" => Ok(Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(full("dropped"))?),
        "/panic" => panic!("the app panicked on purpose"),
        "/cl-too-many" => Ok(Response::builder()
            .header("content-length", "3")
            .body(full("abcdef"))?),
        "/cl-empty" => Ok(Response::builder()
            .header("content-length", "5")
            .body(full(""))?),
        "/cl-too-few" => {
            let frames = futures_util::stream::iter(vec![Ok::<
                _,
                Box<dyn std::error::Error + Send + Sync>,
            >(http_body::Frame::data(
                Bytes::from_static(b"abc"),
            ))]);
            Ok(Response::builder()
                .header("content-length", "10")
                .body(StreamBody::new(frames).boxed())?)
        }
        "/body-panic" => {
            let frames = futures_util::stream::unfold(0, |n| async move {
                if n == 0 {
                    let first: Result<
                        http_body::Frame<Bytes>,
                        Box<dyn std::error::Error + Send + Sync>,
                    > = Ok(http_body::Frame::data(Bytes::from_static(b"first")));
                    Some((first, 1))
                } else {
                    panic!("the response body panicked on purpose")
                }
            });
            Ok(Response::new(StreamBody::new(frames).boxed()))
        }
        _ => Ok(Response::builder().status(404).body(full(""))?),
    }
}

fn serve(config: Http3Config) -> Server {
    common::serve_with(config, app)
}

struct Answer {
    head: Response<()>,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

async fn request(
    c: &mut Client,
    req: Request<()>,
    body: &[u8],
    trailers: Option<HeaderMap>,
) -> Result<Answer, h3::error::StreamError> {
    tokio::time::timeout(WAIT, async {
        let mut stream = c.send.send_request(req).await?;
        if !body.is_empty() {
            for chunk in body.chunks(16 * 1024) {
                stream.send_data(Bytes::copy_from_slice(chunk)).await?;
            }
        }
        if let Some(t) = trailers {
            stream.send_trailers(t).await?;
        }
        stream.finish().await?;
        let head = stream.recv_response().await?;
        let mut out = BytesMut::new();
        while let Some(mut chunk) = stream.recv_data().await? {
            out.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
        }
        let trailers = stream.recv_trailers().await?;
        Ok(Answer {
            head,
            body: out.freeze(),
            trailers,
        })
    })
    .await
    .expect("answered in time")
}

fn get(path: &str) -> Request<()> {
    Request::get(format!("https://localhost{path}"))
        .body(())
        .expect("request")
}

#[tokio::test]
async fn get_is_served_with_date_server_and_content_length() {
    let server = serve(Http3Config::default());
    let mut c = client(&server).await;
    let a = request(&mut c, get("/hello"), b"", None)
        .await
        .expect("answer");
    assert_eq!(a.head.status(), StatusCode::OK);
    assert_eq!(a.head.version(), Version::HTTP_3);
    assert_eq!(&a.body[..], b"hello over h3");
    let h = a.head.headers();
    assert_eq!(h["content-length"], "13");
    assert_eq!(h["server"], "Kestrel");
    assert!(h.contains_key("date"));
    assert_eq!(h["x-method"], "GET");
    // `:authority` stands for Host.
    assert_eq!(h["x-host"], "localhost");
    // Several requests on the one connection.
    for _ in 0..3 {
        let a = request(&mut c, get("/hello"), b"", None)
            .await
            .expect("answer");
        assert_eq!(a.head.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn post_body_is_echoed() {
    let server = serve(Http3Config::default());
    let mut c = client(&server).await;
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let req = Request::post("https://localhost/echo")
        .header("content-length", body.len().to_string())
        .body(())
        .expect("request");
    let a = request(&mut c, req, &body, None).await.expect("answer");
    assert_eq!(a.head.status(), StatusCode::OK);
    assert_eq!(
        a.head.headers()["x-received"],
        body.len().to_string().as_str()
    );
    assert_eq!(a.body.len(), body.len());
    assert!(a.body[..] == body[..], "the echoed body differs");
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_and_the_connection_serves_on() {
    let mut config = Http3Config::default();
    config.max_request_body_size = Some(1000);
    let server = serve(config);
    let mut c = client(&server).await;
    // Declared over the limit.
    let body = vec![b'x'; 5000];
    let req = Request::post("https://localhost/echo")
        .header("content-length", "5000")
        .body(())
        .expect("request");
    let a = request(&mut c, req, &body, None).await.expect("answer");
    assert_eq!(a.head.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.head.headers()["content-length"], "0");
    assert!(a.body.is_empty());
    // No declared length: the limit trips on the bytes received.
    let req = Request::post("https://localhost/echo")
        .body(())
        .expect("request");
    let a = request(&mut c, req, &body, None).await.expect("answer");
    assert_eq!(a.head.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // At the limit is fine.
    let req = Request::post("https://localhost/echo")
        .body(())
        .expect("request");
    let a = request(&mut c, req, &body[..1000], None)
        .await
        .expect("answer");
    assert_eq!(a.head.status(), StatusCode::OK);
    assert_eq!(a.body.len(), 1000);
}

#[tokio::test]
async fn head_and_204_have_no_body() {
    let server = serve(Http3Config::default());
    let mut c = client(&server).await;
    let req = Request::builder()
        .method(Method::HEAD)
        .uri("https://localhost/hello")
        .body(())
        .expect("request");
    let a = request(&mut c, req, b"", None).await.expect("answer");
    assert_eq!(a.head.status(), StatusCode::OK);
    // HEAD keeps the length the GET would have.
    assert_eq!(a.head.headers()["content-length"], "13");
    assert!(a.body.is_empty(), "HEAD must have no body");
    let a = request(&mut c, get("/no-content"), b"", None)
        .await
        .expect("answer");
    assert_eq!(a.head.status(), StatusCode::NO_CONTENT);
    assert!(a.body.is_empty(), "204 must have no body");
    assert!(!a.head.headers().contains_key("content-length"));
}

#[tokio::test]
async fn trailers_flow_both_ways() {
    let server = serve(Http3Config::default());
    let mut c = client(&server).await;
    // Response trailers.
    let a = request(&mut c, get("/trailers"), b"", None)
        .await
        .expect("answer");
    assert_eq!(&a.body[..], b"part one, part two");
    let t = a.trailers.expect("response trailers");
    assert_eq!(t["x-done"], "yes");
    // Request trailers reach the app.
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc123"));
    let req = Request::post("https://localhost/echo")
        .body(())
        .expect("request");
    let a = request(&mut c, req, b"payload", Some(trailers))
        .await
        .expect("answer");
    assert_eq!(&a.body[..], b"payload");
    assert_eq!(a.head.headers()["x-request-trailer"], "abc123");
}

#[tokio::test]
async fn a_panicking_app_gives_500_and_the_connection_serves_the_next_request() {
    let server = serve(Http3Config::default());
    let mut c = client(&server).await;
    let a = request(&mut c, get("/panic"), b"", None)
        .await
        .expect("answer");
    assert_eq!(a.head.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(a.head.headers()["content-length"], "0");
    assert!(a.body.is_empty());
    let a = request(&mut c, get("/hello"), b"", None)
        .await
        .expect("answer");
    assert_eq!(a.head.status(), StatusCode::OK);
    assert_eq!(&a.body[..], b"hello over h3");
}

#[tokio::test]
async fn too_many_request_headers_get_431() {
    let mut config = Http3Config::default();
    config.max_request_header_count = 5;
    let server = serve(config);
    let mut c = client(&server).await;
    let mut req = get("/hello");
    for i in 0..10 {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).expect("name"),
            HeaderValue::from_static("v"),
        );
    }
    let a = request(&mut c, req, b"", None).await.expect("answer");
    assert_eq!(a.head.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let a = request(&mut c, get("/hello"), b"", None)
        .await
        .expect("answer");
    assert_eq!(a.head.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_body_that_panics_after_the_response_started_resets_the_stream_with_h3_internal_error() {
    let server = serve(Http3Config::default());
    let mut c = client(&server).await;
    let (head, code) = reset_code(&mut c, "/body-panic").await;
    if let Some(head) = head {
        assert_eq!(head.status(), StatusCode::OK);
    }
    assert_eq!(code, h3::error::Code::H3_INTERNAL_ERROR);
    let a = request(&mut c, get("/hello"), b"", None)
        .await
        .expect("answer");
    assert_eq!(a.head.status(), StatusCode::OK);
}

#[tokio::test]
async fn settings_max_field_section_size_comes_from_max_request_headers_total_size() {
    let mut config = Http3Config::default();
    config.max_request_headers_total_size = 1000;
    let server = serve(config);
    let mut c = client(&server).await;
    // Let the client read the server's SETTINGS first.
    let a = request(&mut c, get("/hello"), b"", None)
        .await
        .expect("answer");
    assert_eq!(a.head.status(), StatusCode::OK);
    let mut req = get("/hello");
    req.headers_mut().insert(
        "x-big",
        HeaderValue::from_str(&"v".repeat(2000)).expect("value"),
    );
    // h3's client refuses to send a field section over the server's setting.
    let err = request(&mut c, req, b"", None)
        .await
        .err()
        .expect("the client must refuse a head over SETTINGS_MAX_FIELD_SECTION_SIZE");
    assert!(
        matches!(err, h3::error::StreamError::HeaderTooBig { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_head_that_never_completes_is_abandoned_after_the_request_headers_timeout() {
    let mut config = Http3Config::default();
    config.request_headers_timeout = Duration::from_millis(400);
    let server = serve(config);
    // A raw QUIC client with ALPN h3: it opens a request stream and sends
    // the start of a HEADERS frame (type 0x01, length 100) and 5 bytes of it.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.cert.clone()).expect("root");
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .expect("tls13")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let config = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic client"),
    ));
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client");
    let conn = endpoint
        .connect_with(config, server.addr, "localhost")
        .expect("connect")
        .await
        .expect("handshake");
    let (mut send, mut recv) = conn.open_bi().await.expect("open");
    send.write_all(&[0x01, 0x40, 0x64, 1, 2, 3, 4, 5])
        .await
        .expect("write");
    let start = std::time::Instant::now();

    // Meanwhile a well-behaved client is served.
    let mut c = client(&server).await;
    let a = request(&mut c, get("/hello"), b"", None)
        .await
        .expect("answer");
    assert_eq!(a.head.status(), StatusCode::OK);

    let err = tokio::time::timeout(WAIT, recv.read_to_end(1024))
        .await
        .expect("in time")
        .expect_err("the stream must be reset");
    let elapsed = start.elapsed();
    assert!(
        matches!(
            err,
            quinn::ReadToEndError::Read(quinn::ReadError::Reset(code)) if code.into_inner() == 0x10b
        ),
        "{err:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(350),
        "reset after {elapsed:?}"
    );
    let stopped = tokio::time::timeout(WAIT, send.stopped())
        .await
        .expect("in time")
        .expect("stopped");
    // H3_REQUEST_REJECTED, Kestrel's code for a request-headers timeout.
    assert_eq!(stopped, Some(quinn::VarInt::from_u32(0x10b)));

    // And after it.
    let a = request(&mut c, get("/hello"), b"", None)
        .await
        .expect("answer");
    assert_eq!(a.head.status(), StatusCode::OK);
}

/// Read a response whose stream must end in a reset: the head, if it
/// arrived before the reset (a QUIC reset may discard what the client has
/// not read yet, the head included), and the reset's code.
async fn reset_code(c: &mut Client, path: &str) -> (Option<Response<()>>, h3::error::Code) {
    let err = tokio::time::timeout(WAIT, async {
        let mut stream = c.send.send_request(get(path)).await?;
        stream.finish().await?;
        let head = match stream.recv_response().await {
            Ok(head) => head,
            Err(e) => return Ok::<_, h3::error::StreamError>((None, e)),
        };
        loop {
            match stream.recv_data().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended cleanly: {head:?}"),
                Err(e) => return Ok((Some(head), e)),
            }
        }
    })
    .await
    .expect("in time")
    .expect("the request was sent");
    match err {
        (head, h3::error::StreamError::RemoteTerminate { code, .. }) => (head, code),
        (_, other) => panic!("expected a reset, got {other:?}"),
    }
}

#[tokio::test]
async fn content_length_mismatches_follow_kestrels_rules() {
    let server = serve(Http3Config::default());
    let mut c = client(&server).await;
    // More bytes than Content-Length: the head went out, the stream is reset.
    let (head, code) = reset_code(&mut c, "/cl-too-many").await;
    if let Some(head) = head {
        assert_eq!(head.headers()["content-length"], "3");
    }
    assert_eq!(code, h3::error::Code::H3_INTERNAL_ERROR);
    // Fewer, after some were sent: reset.
    let (head, code) = reset_code(&mut c, "/cl-too-few").await;
    if let Some(head) = head {
        assert_eq!(head.headers()["content-length"], "10");
    }
    assert_eq!(code, h3::error::Code::H3_INTERNAL_ERROR);
    // Fewer, with nothing sent: the client gets a 500.
    let a = request(&mut c, get("/cl-empty"), b"", None)
        .await
        .expect("answer");
    assert_eq!(a.head.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(a.head.headers()["content-length"], "0");
    // The connection serves on.
    let a = request(&mut c, get("/hello"), b"", None)
        .await
        .expect("answer");
    assert_eq!(a.head.status(), StatusCode::OK);
}

#[tokio::test]
async fn after_the_clients_goaway_the_server_closes_with_h3_no_error() {
    let server = serve(Http3Config::default());
    // A raw QUIC client: its control stream carries SETTINGS (empty) and
    // GOAWAY(0) (RFC 9114 §5.2: it will open no pushes; no request is open).
    let conn = raw_connection(&server).await;
    let mut control = conn.open_uni().await.expect("control stream");
    control
        .write_all(&[0x00, 0x04, 0x00, 0x07, 0x01, 0x00])
        .await
        .expect("write");
    match tokio::time::timeout(WAIT, conn.closed())
        .await
        .expect("closed in time")
    {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code.into_inner(), 0x100, "H3_NO_ERROR")
        }
        other => panic!("expected the server's application close, got {other:?}"),
    }
}

#[tokio::test]
async fn a_field_section_referring_to_the_dynamic_table_closes_that_connection_only() {
    let server = serve(Http3Config::default());
    let mut c = client(&server).await;
    let a = request(&mut c, get("/hello"), b"", None)
        .await
        .expect("answer");
    assert_eq!(a.head.status(), StatusCode::OK);
    // The QPACK dynamic table's capacity is 0: a HEADERS frame whose field
    // section has a Required Insert Count (encoded 2) and an indexed field
    // line into the dynamic table (0x80) cannot be decoded.
    let conn = raw_connection(&server).await;
    let mut control = conn.open_uni().await.expect("control stream");
    control
        .write_all(&[0x00, 0x04, 0x00])
        .await
        .expect("settings");
    let (mut send, _recv) = conn.open_bi().await.expect("request stream");
    send.write_all(&[0x01, 0x03, 0x02, 0x00, 0x80])
        .await
        .expect("headers");
    match tokio::time::timeout(WAIT, conn.closed())
        .await
        .expect("closed in time")
    {
        quinn::ConnectionError::ApplicationClosed(close) => assert_eq!(
            close.error_code.into_inner(),
            0x200,
            "QPACK_DECOMPRESSION_FAILED"
        ),
        other => panic!("expected the server's application close, got {other:?}"),
    }
    // The well-behaved client is still served.
    let a = request(&mut c, get("/hello"), b"", None)
        .await
        .expect("answer");
    assert_eq!(a.head.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_body_over_the_limit_after_the_response_started_resets_the_stream() {
    let mut config = Http3Config::default();
    config.max_request_body_size = Some(1000);
    let server = serve(config);
    let mut c = client(&server).await;
    let code = tokio::time::timeout(WAIT, async {
        let req = Request::post("https://localhost/stream-echo")
            .body(())
            .expect("request");
        let mut stream = c.send.send_request(req).await.expect("sent");
        stream
            .send_data(Bytes::from(vec![b'x'; 500]))
            .await
            .expect("first part");
        // The response has started (its head is here) when the body goes
        // over the limit: too late for 413, the stream is reset.
        let head = stream.recv_response().await.expect("the head");
        assert_eq!(head.status(), StatusCode::OK);
        let _ = stream.send_data(Bytes::from(vec![b'x'; 4500])).await;
        loop {
            match stream.recv_data().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended cleanly"),
                Err(h3::error::StreamError::RemoteTerminate { code, .. }) => return code,
                Err(other) => panic!("expected a reset, got {other:?}"),
            }
        }
    })
    .await
    .expect("in time");
    assert_eq!(code, h3::error::Code::H3_INTERNAL_ERROR);
    // The connection serves on.
    let a = request(&mut c, get("/hello"), b"", None)
        .await
        .expect("answer");
    assert_eq!(a.head.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_304_has_no_body() {
    let server = serve(Http3Config::default());
    let mut c = client(&server).await;
    let a = request(&mut c, get("/not-modified"), b"", None)
        .await
        .expect("answer");
    assert_eq!(a.head.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(a.head.headers()["etag"], "\"v1\"");
    assert!(a.body.is_empty(), "{:?}", a.body);
}
