//! The request-head parser: syntax, targets, Host, versions, splits.

use bytes::BytesMut;
use http::{Method, StatusCode, Version};

use crate::codec::{BodyKind, HeadParser, RequestHead, RequestRejection as R, TargetForm};

type Parsed = Result<Option<RequestHead>, R>;

fn parse_with(parser: &HeadParser, input: &[u8]) -> (Parsed, BytesMut) {
    let mut buf = BytesMut::from(input);
    let r = parser.parse(&mut buf);
    (r, buf)
}

fn parse(input: &[u8]) -> Parsed {
    parse_with(&HeadParser::default(), input).0
}

fn ok(input: &[u8]) -> RequestHead {
    match parse(input) {
        Ok(Some(head)) => head,
        other => panic!(
            "expected a head for {:?}, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

fn err(input: &[u8]) -> R {
    match parse(input) {
        Err(e) => e,
        other => panic!(
            "expected an error for {:?}, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

fn err_with(parser: &HeadParser, input: &[u8]) -> R {
    match parse_with(parser, input).0 {
        Err(e) => e,
        other => panic!(
            "expected an error for {:?}, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

fn get(extra: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: example.com\r\n{extra}\r\n").into_bytes()
}

fn post(extra: &str) -> Vec<u8> {
    format!("POST /upload HTTP/1.1\r\nHost: example.com\r\n{extra}\r\n").into_bytes()
}

/// Whole-input result, as text, plus what stayed in the buffer.
fn outcome(parser: &HeadParser, input: &[u8]) -> String {
    let (r, rest) = parse_with(parser, input);
    format!("{r:?} rest={rest:?}")
}

/// Feeding `input` split at every byte boundary gives the same result as
/// feeding it whole; every strict prefix gives `Ok(None)` or (for invalid
/// input) the final error.
fn check_splits(parser: &HeadParser, input: &[u8]) {
    let whole = outcome(parser, input);
    let whole_err = parse_with(parser, input).0.err();
    for k in 0..input.len() {
        let mut buf = BytesMut::from(&input[..k]);
        match parser.parse(&mut buf) {
            Ok(None) => {}
            Err(e) if Some(e) == whole_err => continue,
            Ok(Some(head)) => {
                // The prefix already held the whole head.
                buf.extend_from_slice(&input[k..]);
                assert_eq!(format!("{:?} rest={buf:?}", Ok::<_, R>(Some(head))), whole);
                continue;
            }
            other => panic!(
                "prefix {k} of {:?}: {other:?}, whole: {whole}",
                String::from_utf8_lossy(input)
            ),
        }
        buf.extend_from_slice(&input[k..]);
        let r = parser.parse(&mut buf);
        assert_eq!(
            format!("{r:?} rest={buf:?}"),
            whole,
            "split at {k} of {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn simple_get_zero_copy() {
    let input = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Custom: some value  \r\nAccept: */*\r\n\r\nBODY";
    let mut buf = BytesMut::from(&input[..]);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let head = HeadParser::default().parse(&mut buf).unwrap().unwrap();
    assert_eq!(&buf[..], b"BODY");
    assert_eq!(head.method, Method::GET);
    assert_eq!(head.uri, "/index.html?q=1");
    assert_eq!(head.version, Version::HTTP_11);
    assert_eq!(head.target_form, TargetForm::Origin);
    assert_eq!(head.body, BodyKind::Empty);
    assert!(head.keep_alive);
    assert!(!head.expect_continue);
    assert!(!head.upgrade);
    assert_eq!(head.headers.len(), 3);
    assert_eq!(head.headers["x-custom"], "some value");
    for value in head.headers.values() {
        assert!(
            range.contains(&(value.as_bytes().as_ptr() as usize)),
            "value copied"
        );
    }
    let path = head.uri.path().as_ptr() as usize;
    assert!(range.contains(&path), "uri copied");
}

#[test]
fn splits_valid_requests() {
    let parser = HeadParser::default();
    let cases: Vec<Vec<u8>> = vec![
        get(""),
        b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET".to_vec(),
        b"GET / HTTP/1.2\r\nHost: a\r\n\r\n".to_vec(),
        b"GET / HTTP/1.0\r\n\r\n".to_vec(),
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n".to_vec(),
        b"GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\nEmpty:\r\nX:  y \r\n\r\n".to_vec(),
        b"PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\n".to_vec(),
    ];
    for case in cases {
        assert!(matches!(parse(&case), Ok(Some(_))), "{case:?}");
        check_splits(&parser, &case);
    }
    let lenient = HeadParser {
        allow_bare_lf: true,
        ..HeadParser::default()
    };
    check_splits(&lenient, b"\n\r\nGET / HTTP/1.9\nHost: a\nX: y\r\n\n");
}

#[test]
fn splits_invalid_requests() {
    let parser = HeadParser::default();
    let cases: Vec<Vec<u8>> = vec![
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n".to_vec(),
        b"GET / HTTP/1.10\r\nHost: a\r\n\r\n".to_vec(),
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\nHost: a\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: a\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(),
        b"GET /\x7f HTTP/1.1\r\n\r\n".to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
    ];
    for case in cases {
        assert!(parse(&case).is_err(), "{case:?}");
        check_splits(&parser, &case);
    }
    let small = HeadParser {
        max_request_line_size: 20,
        max_request_headers_total_size: 20,
        max_request_header_count: 2,
        ..HeadParser::default()
    };
    check_splits(&small, b"GET /aaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n");
    check_splits(
        &small,
        b"GET / HTTP/1.1\r\nHost: a\r\nX: bbbbbbbbbbbbbbbbbbbbbb\r\n\r\n",
    );
    check_splits(&small, b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n");
}

/// Regressions found by `fuzz/` (request_head target).
#[test]
fn fuzz_regressions() {
    let lenient = HeadParser {
        allow_bare_lf: true,
        allow_host_header_override: true,
        ..HeadParser::default()
    };
    // A NewLine error right after the version must be classified the
    // same whether or not the line's LF has arrived.
    let input = b"CONST / HTTP/1.0x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n";
    assert_eq!(err_with(&lenient, input), R::InvalidRequestLine);
    check_splits(&lenient, input);
    check_splits(&HeadParser::default(), input);
    // A CR that may begin an empty line does not count against limits.
    let tiny = HeadParser {
        max_request_line_size: 0,
        ..HeadParser::default()
    };
    check_splits(&tiny, b"\r\n\r\n");
    assert_eq!(err_with(&tiny, b"\r\n\r\nG"), R::RequestLineTooLong);
}

#[test]
fn pipelined_requests() {
    let input = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /4";
    let parser = HeadParser::default();
    let mut buf = BytesMut::from(&input[..]);
    let one = parser.parse(&mut buf).unwrap().unwrap();
    assert_eq!(one.uri, "/1");
    let two = parser.parse(&mut buf).unwrap().unwrap();
    assert_eq!(two.uri, "/2");
    assert_eq!(two.body, BodyKind::Length(3));
    let _ = buf.split_to(3);
    let three = parser.parse(&mut buf).unwrap().unwrap();
    assert_eq!(three.uri, "/3");
    assert!(!three.keep_alive);
    assert!(parser.parse(&mut buf).unwrap().is_none());
    assert_eq!(&buf[..], b"GET /4");
}

#[test]
fn leading_empty_lines() {
    let parser = HeadParser::default();
    let (r, rest) = parse_with(&parser, b"\r\n\r\n");
    assert!(r.unwrap().is_none());
    assert!(rest.is_empty(), "empty lines are consumed");
    let (r, rest) = parse_with(&parser, b"\r\n\r");
    assert!(r.unwrap().is_none());
    assert_eq!(&rest[..], b"\r");
    assert_eq!(
        err(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        R::InvalidRequestLine
    );
    assert_eq!(
        err(b"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        R::InvalidRequestLine
    );
    let lenient = HeadParser {
        allow_bare_lf: true,
        ..HeadParser::default()
    };
    assert!(
        parse_with(&lenient, b"\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .0
            .unwrap()
            .is_some()
    );
}

#[test]
fn versions() {
    let head = ok(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n");
    assert_eq!(head.version, Version::HTTP_11);
    let head = ok(b"GET / HTTP/1.9\r\nHost: a\r\n\r\n");
    assert_eq!(head.version, Version::HTTP_11);
    let head = ok(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(head.version, Version::HTTP_10);
    assert!(!head.keep_alive);
    for v in ["HTTP/2.0", "HTTP/0.9", "HTTP/3.0", "HTTP/9.9"] {
        let e = err(format!("GET / {v}\r\nHost: a\r\n\r\n").as_bytes());
        assert_eq!(e, R::UnrecognizedHttpVersion, "{v}");
        assert_eq!(e.status(), StatusCode::HTTP_VERSION_NOT_SUPPORTED);
    }
    // Known at the end of the request line already.
    assert_eq!(err(b"GET / HTTP/2.0\r\n"), R::UnrecognizedHttpVersion);
    for v in [
        "HTTP/1.10",
        "HTTP/1",
        "HTTP/1.",
        "FOO/1.1",
        "http/1.1",
        "HTTP/1.1 ",
        "HTTP/11",
        "HTTP/2",
        "HTTP/1.x",
        "HTTP/10.0",
        " HTTP/1.1",
    ] {
        let e = err(format!("GET / {v}\r\nHost: a\r\n\r\n").as_bytes());
        assert_eq!(e, R::InvalidRequestLine, "{v}");
    }
    assert_eq!(
        err(b"GET / HTTP/1.2\nHost: a\r\n\r\n"),
        R::InvalidRequestLine
    );
    assert_eq!(err(b"GET / HTTP/1.2\rX"), R::InvalidRequestLine);
    assert_eq!(err(b"GET /\r\n\r\n"), R::InvalidRequestLine);
    assert_eq!(err(b"GET\r\n\r\n"), R::InvalidRequestLine);
    // Partial versions wait for more input.
    for p in [
        "GET / H",
        "GET / HTTP/",
        "GET / HTTP/2",
        "GET / HTTP/2.0",
        "GET / HTTP/1.2\r",
    ] {
        assert!(parse(p.as_bytes()).unwrap().is_none(), "{p}");
    }
}

#[test]
fn request_line_syntax() {
    assert_eq!(
        err(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"),
        R::InvalidRequestLine
    );
    assert_eq!(
        err(b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n"),
        R::InvalidRequestLine
    );
    assert_eq!(
        err(b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n"),
        R::InvalidRequestLine
    );
    assert_eq!(
        err(b" GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        R::InvalidRequestLine
    );
    assert_eq!(
        err(b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"),
        R::InvalidRequestLine
    );
    assert_eq!(
        err(b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n"),
        R::InvalidRequestTarget
    );
    assert_eq!(
        err(b"GET /a\xffb HTTP/1.1\r\nHost: a\r\n\r\n"),
        R::InvalidRequestTarget
    );
    assert_eq!(
        err(b"GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n"),
        R::InvalidRequestLine
    );
    let head = ok(b"PURGE /cache HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(head.method.as_str(), "PURGE");
}

#[test]
fn target_forms() {
    let head = ok(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(head.target_form, TargetForm::Asterisk);
    let e = err(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(e, R::OptionsMethodRequired);
    assert_eq!((e.status().as_u16(), e.allow()), (405, Some("OPTIONS")));

    let head = ok(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    assert_eq!(head.target_form, TargetForm::Authority);
    assert_eq!(head.uri.authority().unwrap().as_str(), "example.com:443");
    ok(b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n");
    let e = err(b"GET example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    assert_eq!(e, R::ConnectMethodRequired);
    assert_eq!((e.status().as_u16(), e.allow()), (405, Some("CONNECT")));
    for t in [
        "/",
        "*",
        "http://example.com/",
        "example.com",
        "example.com:",
        "u@example.com:443",
    ] {
        let e = err(format!("CONNECT {t} HTTP/1.1\r\nHost: example.com:443\r\n\r\n").as_bytes());
        assert_eq!(e, R::InvalidRequestTarget, "{t}");
    }

    let head = ok(b"GET http://example.com/a?b HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(head.target_form, TargetForm::Absolute);
    assert_eq!(head.uri.path(), "/a");
    ok(b"POST HTTPS://EXAMPLE.com:8443 HTTP/1.1\r\nHost: example.com:8443\r\nContent-Length: 0\r\n\r\n");
    for t in [
        "ftp://example.com/",
        "mailto:a@b",
        "example.com",
        "a/b",
        "http://",
        "http:///x",
        "http://u:p@example.com/",
        "/a#frag",
        "http://example.com/#x",
        "http://ex ample/",
    ] {
        let e = err(format!("GET {t} HTTP/1.1\r\nHost: example.com\r\n\r\n").as_bytes());
        assert!(
            matches!(e, R::InvalidRequestTarget | R::InvalidRequestLine),
            "{t}: {e:?}"
        );
    }
    assert_eq!(
        err(b"GET ftp://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"),
        R::InvalidRequestTarget
    );
}

#[test]
fn host_header() {
    assert_eq!(err(b"GET / HTTP/1.1\r\n\r\n"), R::MissingHostHeader);
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
        R::MultipleHostHeaders
    );
    assert_eq!(
        err(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"),
        R::MultipleHostHeaders
    );
    ok(b"GET / HTTP/1.0\r\n\r\n");
    // Empty Host is accepted for origin-form (RFC 9112 §3.2/§3.3).
    ok(b"GET / HTTP/1.1\r\nHost:\r\n\r\n");
    ok(b"GET / HTTP/1.1\r\nHost: \r\n\r\n");
    for h in [
        "example.com",
        "EXAMPLE.com:8080",
        "127.0.0.1",
        "[::1]",
        "[::1]:80",
        "a-b_c~d.e",
        "%41b",
        "x:",
        "[v1.fe]",
    ] {
        ok(format!("GET / HTTP/1.1\r\nHost: {h}\r\n\r\n").as_bytes());
    }
    for h in [
        "user@example.com",
        "exa mple.com",
        "a:b",
        "a:80:81",
        ":80",
        "[::1",
        "[]",
        "[::g]",
        "a/b",
        "%4",
        "a\"b",
        "a:80 x",
    ] {
        let e = err(format!("GET / HTTP/1.1\r\nHost: {h}\r\n\r\n").as_bytes());
        assert_eq!(e, R::InvalidHostHeader, "{h}");
    }

    // Absolute form: Host must match the authority.
    ok(b"GET http://Example.com/ HTTP/1.1\r\nHost: example.COM:80\r\n\r\n");
    ok(b"GET http://example.com:80/ HTTP/1.1\r\nHost: example.com\r\n\r\n");
    ok(b"GET https://example.com/ HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    ok(b"GET http://example.com/ HTTP/1.0\r\n\r\n");
    assert_eq!(
        err(b"GET http://example.com/ HTTP/1.1\r\n\r\n"),
        R::MissingHostHeader
    );
    for h in ["other.com", "example.com:8080", "example.com:443", ""] {
        let e = err(format!("GET http://example.com/ HTTP/1.1\r\nHost: {h}\r\n\r\n").as_bytes());
        assert_eq!(e, R::InvalidHostHeader, "{h}");
    }
    let parser = HeadParser {
        allow_host_header_override: true,
        ..HeadParser::default()
    };
    let head = parse_with(
        &parser,
        b"GET http://example.com:81/ HTTP/1.1\r\nHost: other\r\n\r\n",
    )
    .0
    .unwrap()
    .unwrap();
    assert_eq!(head.headers["host"], "example.com:81");
    assert_eq!(head.headers.get_all("host").iter().count(), 1);

    // Authority form: same host; Host may omit the port.
    ok(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    ok(b"CONNECT example.com:443 HTTP/1.1\r\nHost: EXAMPLE.com:443\r\n\r\n");
    for h in ["other.com:443", "example.com:444", ""] {
        let e = err(format!("CONNECT example.com:443 HTTP/1.1\r\nHost: {h}\r\n\r\n").as_bytes());
        assert_eq!(e, R::InvalidHostHeader, "{h}");
    }
}

mod framing;
