//! The request-head parser: body framing, connection options, header
//! syntax, the limits and request-smuggling vectors.

use super::*;

#[test]
fn framing() {
    assert_eq!(
        ok(&post("Transfer-Encoding: chunked\r\n")).body,
        BodyKind::Chunked
    );
    assert_eq!(
        ok(&post("Transfer-Encoding: gzip, CHUNKED\r\n")).body,
        BodyKind::Chunked
    );
    assert_eq!(
        ok(&post(
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"
        ))
        .body,
        BodyKind::Chunked
    );
    assert_eq!(
        ok(&post("Transfer-Encoding: ,chunked, \r\n")).body,
        BodyKind::Chunked
    );
    assert_eq!(
        ok(&post(
            "Transfer-Encoding: deflate;q=1 , x-gzip, compress, x-compress,chunked\r\n"
        ))
        .body,
        BodyKind::Chunked
    );

    // RFC 9112 §6.3: the final coding is checked first, so a body whose
    // last coding is not chunked is a 400 (and a close) even when an
    // earlier or the last coding is unknown.
    for te in [
        "Transfer-Encoding: chunked, identity\r\n",
        "Transfer-Encoding: identity\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        "Transfer-Encoding: xchunked\r\n",
        "Transfer-Encoding: \"chunked\"\r\n",
    ] {
        let e = err(&post(te));
        assert_eq!(
            (e, e.status().as_u16()),
            (R::FinalTransferCodingNotChunked, 400),
            "{te:?}"
        );
    }
    // 501 stays for an unknown coding before a final chunked.
    for te in [
        "Transfer-Encoding: identity, chunked\r\n",
        "Transfer-Encoding: br, chunked\r\n",
        "Transfer-Encoding: x\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let e = err(&post(te));
        assert_eq!(
            (e, e.status().as_u16()),
            (R::UnsupportedTransferCoding, 501),
            "{te:?}"
        );
    }
    assert_eq!(
        err(&post("Transfer-Encoding: chunked, gzip\r\n")),
        R::FinalTransferCodingNotChunked
    );
    assert_eq!(
        err(&post("Transfer-Encoding: chunked, chunked\r\n")),
        R::FinalTransferCodingNotChunked
    );
    assert_eq!(
        err(&post(
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
        )),
        R::FinalTransferCodingNotChunked
    );
    assert_eq!(
        err(&post("Transfer-Encoding: gzip\r\n")),
        R::FinalTransferCodingNotChunked
    );
    assert_eq!(
        err(&post("Transfer-Encoding: , \r\n")),
        R::FinalTransferCodingNotChunked
    );
    assert_eq!(
        err(&post("Transfer-Encoding:\r\n")),
        R::FinalTransferCodingNotChunked
    );
    assert_eq!(
        err(&post("Transfer-Encoding: chunked;a=b\r\n")),
        R::InvalidRequestHeader
    );
    assert_eq!(
        err(&post("Transfer-Encoding : chunked\r\n")),
        R::InvalidRequestHeader
    );
    assert_eq!(
        err(&post("Transfer-Encoding\t: chunked\r\n")),
        R::InvalidRequestHeader
    );
    assert_eq!(
        err(&post(" Transfer-Encoding: chunked\r\n")),
        R::InvalidRequestHeader
    );
    let e = err(&post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"));
    assert_eq!(
        (e, e.status().as_u16()),
        (R::TransferEncodingWithContentLength, 400)
    );
    assert_eq!(
        err(&post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n")),
        R::TransferEncodingWithContentLength
    );
    assert_eq!(
        err(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
        R::TransferEncodingInHttp10
    );

    assert_eq!(ok(&post("Content-Length: 5\r\n")).body, BodyKind::Length(5));
    assert_eq!(ok(&post("Content-Length: 0\r\n")).body, BodyKind::Empty);
    assert_eq!(
        ok(&post("Content-Length: 007\r\n")).body,
        BodyKind::Length(7)
    );
    assert_eq!(
        ok(&post("Content-Length: 5, 5\r\n")).body,
        BodyKind::Length(5)
    );
    assert_eq!(
        ok(&post("Content-Length: 5\r\nContent-Length: 5\r\n")).body,
        BodyKind::Length(5)
    );
    assert_eq!(
        ok(&post("Content-Length: 18446744073709551615\r\n")).body,
        BodyKind::Length(u64::MAX)
    );
    for v in [
        "+5",
        "-1",
        "",
        "5a",
        "0x5",
        "5 5",
        "5,",
        ",5",
        "18446744073709551616",
        "1.0",
        "５",
    ] {
        assert_eq!(
            err(&post(&format!("Content-Length: {v}\r\n"))),
            R::InvalidContentLength,
            "{v}"
        );
    }
    assert_eq!(
        err(&post("Content-Length: 5, 6\r\n")),
        R::MultipleContentLengths
    );
    assert_eq!(
        err(&post("Content-Length: 5\r\nContent-Length: 6\r\n")),
        R::MultipleContentLengths
    );
    assert_eq!(
        err(&post("Content-Length: 5\r\nContent-Length: 6, x\r\n")),
        R::InvalidContentLength
    );

    assert_eq!(err(b"POST / HTTP/1.0\r\n\r\n"), R::LengthRequiredHttp10);
    assert_eq!(err(b"PUT / HTTP/1.0\r\n\r\n"), R::LengthRequiredHttp10);
    assert_eq!(
        ok(b"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\n").body,
        BodyKind::Length(2)
    );
    assert_eq!(ok(b"DELETE / HTTP/1.0\r\n\r\n").body, BodyKind::Empty);
    assert_eq!(
        ok(b"POST / HTTP/1.1\r\nHost: a\r\n\r\n").body,
        BodyKind::Empty
    );
}

#[test]
fn connection_expect_upgrade() {
    assert!(!ok(&get("Connection: close\r\n")).keep_alive);
    assert!(
        !ok(&get(
            "Connection: Keep-Alive\r\nConnection: foo , CLOSE\r\n"
        ))
        .keep_alive
    );
    assert!(ok(&get("Connection: keep-alive\r\n")).keep_alive);
    assert!(ok(b"GET / HTTP/1.0\r\nConnection: foo,Keep-Alive\r\n\r\n").keep_alive);
    assert!(!ok(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
    assert!(!ok(b"GET / HTTP/1.0\r\n\r\n").keep_alive);

    assert!(ok(&get("Expect: 100-Continue\r\n")).expect_continue);
    assert!(!ok(&get("Expect: 200-ok\r\n")).expect_continue);
    assert!(
        !ok(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
            .expect_continue
    );

    assert!(
        ok(&get(
            "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
        ))
        .upgrade
    );
    assert!(!ok(&get("Upgrade: websocket\r\n")).upgrade);
    assert!(!ok(&get("Connection: upgrade\r\n")).upgrade);
    assert!(!ok(b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n").upgrade);
}

#[test]
fn header_syntax() {
    assert_eq!(err(&get("X: a\r\n  folded\r\n")), R::InvalidRequestHeader);
    assert_eq!(err(&get("X: a\r\n\tfolded\r\n")), R::InvalidRequestHeader);
    assert_eq!(
        err(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n"),
        R::InvalidRequestHeader
    );
    assert_eq!(err(&get("X: a\x00b\r\n")), R::InvalidRequestHeader);
    assert_eq!(err(&get("X: a\x7fb\r\n")), R::InvalidRequestHeader);
    assert_eq!(err(&get("X: a\rb\r\n")), R::InvalidRequestHeader);
    assert_eq!(err(&get("X@Y: 1\r\n")), R::InvalidCharactersInHeaderName);
    assert_eq!(err(&get("X\"Y: 1\r\n")), R::InvalidCharactersInHeaderName);
    assert_eq!(err(&get("NoColon\r\n")), R::InvalidRequestHeader);
    assert_eq!(err(&get(": empty-name\r\n")), R::InvalidRequestHeader);
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\n\rX"),
        R::InvalidRequestHeader
    );
    let head = ok(&get("X: € obs-text\r\n"));
    assert_eq!(head.headers["x"].as_bytes(), b"\xe2\x82\xac obs-text");

    // Bare LF (RFC 9112 §2.2): rejected by default.
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\n\r\n"),
        R::InvalidRequestHeadersNoCrlf
    );
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\n\n"),
        R::InvalidRequestHeadersNoCrlf
    );
    assert_eq!(
        err(b"GET / HTTP/1.1\nHost: a\r\n\r\n"),
        R::InvalidRequestLine
    );
    let lenient = HeadParser {
        allow_bare_lf: true,
        ..HeadParser::default()
    };
    let head = parse_with(&lenient, b"GET / HTTP/1.1\nHost: a\nX: y\n\n")
        .0
        .unwrap()
        .unwrap();
    assert_eq!(head.headers["x"], "y");
    assert_eq!(
        err_with(&lenient, b"GET / HTTP/1.1\r\nHost: a\r\nX: y\rZ\r\n\r\n"),
        R::InvalidRequestHeader
    );
}

#[test]
fn request_line_limit() {
    let parser = HeadParser {
        max_request_line_size: 32,
        ..HeadParser::default()
    };
    // "GET /" + path + " HTTP/1.1\r\n" = 16 + path bytes.
    let line = |n: usize| format!("GET /{} HTTP/1.1\r\n", "a".repeat(n));
    let exact = line(16);
    assert_eq!(exact.len(), 32);
    let ok_input = format!("{exact}Host: a\r\n\r\n");
    assert!(parse_with(&parser, ok_input.as_bytes())
        .0
        .unwrap()
        .is_some());
    check_splits(&parser, ok_input.as_bytes());
    let over = format!("{}Host: a\r\n\r\n", line(17));
    let e = err_with(&parser, over.as_bytes());
    assert_eq!((e, e.status().as_u16()), (R::RequestLineTooLong, 414));
    check_splits(&parser, over.as_bytes());
    // On partial input: 31 bytes without LF may still fit, 32 cannot.
    assert!(parse_with(&parser, &exact.as_bytes()[..31])
        .0
        .unwrap()
        .is_none());
    assert_eq!(
        err_with(&parser, &line(17).as_bytes()[..32]),
        R::RequestLineTooLong
    );
    assert_eq!(
        err_with(&parser, "x".repeat(100).as_bytes()),
        R::RequestLineTooLong
    );
    assert_eq!(
        err_with(&parser, "x(".repeat(100).as_bytes()),
        R::InvalidRequestLine
    );
    assert_eq!(
        err_with(&parser, "GET /".repeat(100).as_bytes()),
        R::InvalidRequestLine
    );
    assert_eq!(
        err_with(&parser, format!("GET /{}", "a".repeat(100)).as_bytes()),
        R::RequestLineTooLong
    );
    // Leading empty lines do not count.
    let padded = format!("\r\n\r\n{ok_input}");
    assert!(parse_with(&parser, padded.as_bytes()).0.unwrap().is_some());
}

#[test]
fn header_size_limit() {
    let parser = HeadParser {
        max_request_headers_total_size: 30,
        ..HeadParser::default()
    };
    // "Host: a\r\n" (9) + "X: " + v + "\r\n" (5 + v) = 30 with v = 16.
    let section = |v: usize| format!("Host: a\r\nX: {}\r\n", "v".repeat(v));
    let input = |v: usize| format!("GET / HTTP/1.1\r\n{}\r\n", section(v));
    assert_eq!(section(16).len(), 30);
    assert!(parse_with(&parser, input(16).as_bytes())
        .0
        .unwrap()
        .is_some());
    check_splits(&parser, input(16).as_bytes());
    let e = err_with(&parser, input(17).as_bytes());
    assert_eq!(
        (e, e.status().as_u16()),
        (R::HeadersExceedMaxTotalSize, 431)
    );
    check_splits(&parser, input(17).as_bytes());
    // Partial: 31 bytes of headers could still end as 30 + CRLF... but
    // 32 incomplete bytes cannot.
    let long = format!("GET / HTTP/1.1\r\n{}", "h".repeat(32));
    assert_eq!(
        err_with(&parser, long.as_bytes()),
        R::HeadersExceedMaxTotalSize
    );
    let short = format!("GET / HTTP/1.1\r\n{}", "h".repeat(31));
    assert!(parse_with(&parser, short.as_bytes()).0.unwrap().is_none());
}

#[test]
fn header_count_limit() {
    // 23–25 straddle the parser's first try (room for 24 headers).
    for max in [0usize, 1, 3, 23, 24, 25, 100, 127, 128, 129, 200] {
        let parser = HeadParser {
            max_request_header_count: max,
            ..HeadParser::default()
        };
        let input = |n: usize| {
            let mut s = String::from("GET / HTTP/1.0\r\n");
            for i in 0..n {
                s.push_str(&format!("X-{i}: {i}\r\n"));
            }
            s.push_str("\r\n");
            s
        };
        let head = parse_with(&parser, input(max).as_bytes())
            .0
            .unwrap()
            .unwrap();
        assert_eq!(head.headers.len(), max);
        let e = err_with(&parser, input(max + 1).as_bytes());
        assert_eq!(
            (e, e.status().as_u16()),
            (R::TooManyHeaders, 431),
            "max {max}"
        );
        // Detected on partial input too.
        let partial = input(max + 1);
        let partial = &partial.as_bytes()[..partial.len() - 2];
        assert_eq!(err_with(&parser, partial), R::TooManyHeaders);
        if max <= 3 || max == 25 {
            check_splits(&parser, input(max).as_bytes());
            check_splits(&parser, input(max + 1).as_bytes());
        }
    }
}

#[test]
fn smuggling_vectors() {
    let cases: &[(&str, R)] = &[
        (
            "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
            R::TransferEncodingWithContentLength,
        ),
        (
            "Transfer-Encoding: chunked, identity\r\n",
            R::FinalTransferCodingNotChunked,
        ),
        ("Transfer-Encoding : chunked\r\n", R::InvalidRequestHeader),
        (
            "Transfer-Encoding: xchunked\r\n",
            R::FinalTransferCodingNotChunked,
        ),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n",
            R::FinalTransferCodingNotChunked,
        ),
        ("Transfer-Encoding:\x0bchunked\r\n", R::InvalidRequestHeader),
        (
            "Transfer-Encoding: chunked\r\n\tx\r\n",
            R::InvalidRequestHeader,
        ),
        (
            "Content-Length: 3\r\nContent-Length: 4\r\n",
            R::MultipleContentLengths,
        ),
        ("Content-Length: +3\r\n", R::InvalidContentLength),
        (
            "Content-Length: 3\r\n Content-Length: 4\r\n",
            R::InvalidRequestHeader,
        ),
        (
            "Content-Length\x00: 3\r\n",
            R::InvalidCharactersInHeaderName,
        ),
    ];
    for (extra, expected) in cases {
        let e = err(&post(extra));
        assert_eq!(e, *expected, "{extra:?}");
        assert!(e.status().is_client_error() || e.status().as_u16() == 501);
    }
}
