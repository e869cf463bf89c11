//! The response encoders: heads, chunks, trailers.

use bytes::BytesMut;
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::codec::{
    encode_chunk_header, encode_last_chunk, encode_response_head, ConnectionHeader, ResponseHead,
    CONTINUE_100,
};

fn head(status: u16, headers: &HeaderMap) -> ResponseHead<'_> {
    ResponseHead {
        status: StatusCode::from_u16(status).unwrap(),
        headers,
        date: None,
        server: None,
        content_length: None,
        chunked: false,
        connection: None,
    }
}

fn encode(head: &ResponseHead<'_>) -> String {
    let mut dst = BytesMut::new();
    encode_response_head(head, &mut dst);
    String::from_utf8(dst.to_vec()).unwrap()
}

#[test]
fn response_head() {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/plain"));
    headers.append("set-cookie", HeaderValue::from_static("a=1"));
    headers.append("set-cookie", HeaderValue::from_static("b=2"));
    let mut h = head(200, &headers);
    h.date = Some(b"Sun, 06 Nov 1994 08:49:37 GMT");
    h.server = Some(b"Kestrel");
    h.content_length = Some(12345);
    h.connection = Some(ConnectionHeader::KeepAlive);
    assert_eq!(
        encode(&h),
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nset-cookie: a=1\r\nset-cookie: b=2\r\n\
         date: Sun, 06 Nov 1994 08:49:37 GMT\r\nserver: Kestrel\r\ncontent-length: 12345\r\n\
         connection: keep-alive\r\n\r\n"
    );

    let mut headers = HeaderMap::new();
    headers.insert("date", HeaderValue::from_static("app-date"));
    headers.insert("server", HeaderValue::from_static("app"));
    let mut h = head(404, &headers);
    h.date = Some(b"server-date");
    h.server = Some(b"Kestrel");
    h.chunked = true;
    h.connection = Some(ConnectionHeader::Close);
    assert_eq!(
        encode(&h),
        "HTTP/1.1 404 Not Found\r\ndate: app-date\r\nserver: app\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\n\r\n"
    );

    let empty = HeaderMap::new();
    let mut h = head(101, &empty);
    h.connection = Some(ConnectionHeader::Upgrade);
    assert_eq!(
        encode(&h),
        "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\n\r\n"
    );
    assert_eq!(encode(&head(599, &empty)), "HTTP/1.1 599 \r\n\r\n");
    assert_eq!(
        encode(&head(418, &empty)),
        "HTTP/1.1 418 I'm a teapot\r\n\r\n"
    );
    let mut h = head(200, &empty);
    h.content_length = Some(u64::MAX);
    assert_eq!(
        encode(&h),
        "HTTP/1.1 200 OK\r\ncontent-length: 18446744073709551615\r\n\r\n"
    );
    assert_eq!(CONTINUE_100, b"HTTP/1.1 100 Continue\r\n\r\n");
}

#[test]
fn status_lines_match_canonical_reasons() {
    let empty = HeaderMap::new();
    for code in 100..=999u16 {
        let status = StatusCode::from_u16(code).unwrap();
        let expected = format!(
            "HTTP/1.1 {code} {}\r\n\r\n",
            status.canonical_reason().unwrap_or("")
        );
        assert_eq!(encode(&head(code, &empty)), expected);
        // And httparse (a client) reads it back.
        let text = encode(&head(code, &empty));
        let mut hs = [httparse::EMPTY_HEADER; 4];
        let mut resp = httparse::Response::new(&mut hs);
        assert!(resp.parse(text.as_bytes()).unwrap().is_complete());
        assert_eq!(resp.code, Some(code));
    }
}

#[test]
fn chunks() {
    let mut dst = BytesMut::new();
    for n in [1usize, 9, 10, 15, 16, 255, 4096, usize::MAX] {
        encode_chunk_header(n, &mut dst);
    }
    assert_eq!(
        &dst[..],
        format!(
            "1\r\n9\r\na\r\nf\r\n10\r\nff\r\n1000\r\n{:x}\r\n",
            usize::MAX
        )
        .as_bytes()
    );
    let mut dst = BytesMut::new();
    encode_last_chunk(None, &mut dst);
    encode_last_chunk(Some(&HeaderMap::new()), &mut dst);
    assert_eq!(&dst[..], b"0\r\n\r\n0\r\n\r\n");
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc"));
    trailers.append("x-more", HeaderValue::from_static("1"));
    let mut dst = BytesMut::new();
    encode_last_chunk(Some(&trailers), &mut dst);
    assert_eq!(&dst[..], b"0\r\nx-checksum: abc\r\nx-more: 1\r\n\r\n");
}
