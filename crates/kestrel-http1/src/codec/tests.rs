//! Tests of the codec: request heads, body decoders and response encoders.

mod head {
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
            b"GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\nEmpty:\r\nX:  y \r\n\r\n"
                .to_vec(),
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
            let e =
                err(format!("CONNECT {t} HTTP/1.1\r\nHost: example.com:443\r\n\r\n").as_bytes());
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
            let e =
                err(format!("GET http://example.com/ HTTP/1.1\r\nHost: {h}\r\n\r\n").as_bytes());
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
            let e =
                err(format!("CONNECT example.com:443 HTTP/1.1\r\nHost: {h}\r\n\r\n").as_bytes());
            assert_eq!(e, R::InvalidHostHeader, "{h}");
        }
    }

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
        assert!(
            !ok(b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n").upgrade
        );
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
}

mod decode {
    use bytes::{Bytes, BytesMut};

    use crate::codec::{ChunkedDecoder, ChunkedEvent, LengthDecoder, RequestRejection as R};

    /// Decodes everything; returns (body, trailers as text, rest) or the error.
    fn run(dec: &mut ChunkedDecoder, buf: &mut BytesMut) -> Result<Option<(Vec<u8>, String)>, R> {
        let mut body = Vec::new();
        let mut trailers = String::new();
        loop {
            match dec.decode(buf)? {
                None => return Ok(None),
                Some(ChunkedEvent::Data(d)) => {
                    assert!(!d.is_empty());
                    body.extend_from_slice(&d);
                }
                Some(ChunkedEvent::Trailers(t)) => trailers = format!("{t:?}"),
                Some(ChunkedEvent::End) => return Ok(Some((body, trailers))),
            }
        }
    }

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, String, Vec<u8>), R> {
        let mut dec = ChunkedDecoder::new(1024, 10);
        let mut buf = BytesMut::from(input);
        match run(&mut dec, &mut buf)? {
            Some((body, trailers)) => {
                assert!(dec.is_done());
                Ok((body, trailers, buf.to_vec()))
            }
            None => Err(R::ChunkedRequestIncomplete),
        }
    }

    /// Feeds `input` in pieces of `step` bytes; same result as whole.
    fn decode_stepwise(input: &[u8], step: usize) -> Result<(Vec<u8>, String, Vec<u8>), R> {
        let mut dec = ChunkedDecoder::new(1024, 10);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut trailers = String::new();
        let mut fed = 0;
        loop {
            match dec.decode(&mut buf)? {
                None => {
                    if fed >= input.len() {
                        return Err(R::ChunkedRequestIncomplete);
                    }
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
                Some(ChunkedEvent::Data(d)) => body.extend_from_slice(&d),
                Some(ChunkedEvent::Trailers(t)) => trailers = format!("{t:?}"),
                Some(ChunkedEvent::End) => {
                    let mut rest = buf.to_vec();
                    rest.extend_from_slice(&input[fed..]);
                    return Ok((body, trailers, rest));
                }
            }
        }
    }

    fn check(input: &[u8]) -> Result<(Vec<u8>, String, Vec<u8>), R> {
        let whole = decode_all(input);
        for step in [1, 2, 3, 7] {
            assert_eq!(
                decode_stepwise(input, step),
                whole,
                "step {step} of {input:?}"
            );
        }
        // Every split point.
        for k in 0..input.len() {
            let mut dec = ChunkedDecoder::new(1024, 10);
            let mut buf = BytesMut::from(&input[..k]);
            let mut body = Vec::new();
            let first = loop {
                match dec.decode(&mut buf) {
                    Ok(Some(ChunkedEvent::Data(d))) => body.extend_from_slice(&d),
                    other => break other,
                }
            };
            match first {
                Ok(None) => {}
                Err(e) => {
                    assert_eq!(Err(e), whole.clone().map(|_| ()), "split {k}");
                    continue;
                }
                Ok(Some(_)) => continue, // trailers/end reached inside the prefix
            }
            buf.extend_from_slice(&input[k..]);
            let rest = run(&mut dec, &mut buf).map(|r| {
                r.map(|(b, t)| {
                    body.extend_from_slice(&b);
                    (body.clone(), t, buf.to_vec())
                })
            });
            let rest = match rest {
                Ok(Some(v)) => Ok(v),
                Ok(None) => Err(R::ChunkedRequestIncomplete),
                Err(e) => Err(e),
            };
            assert_eq!(rest, whole, "split {k} of {input:?}");
        }
        whole
    }

    #[test]
    fn length_decoder() {
        let mut dec = LengthDecoder::new(5);
        let mut buf = BytesMut::from(&b"hel"[..]);
        assert_eq!(dec.decode(&mut buf), Some(Bytes::from_static(b"hel")));
        assert_eq!(dec.remaining(), 2);
        assert_eq!(dec.decode(&mut buf), None);
        buf.extend_from_slice(b"loGET");
        assert_eq!(dec.decode(&mut buf), Some(Bytes::from_static(b"lo")));
        assert!(dec.is_done());
        assert_eq!(dec.decode(&mut buf), None);
        assert_eq!(&buf[..], b"GET");
        let mut big = LengthDecoder::new(u64::MAX);
        assert_eq!(big.decode(&mut buf).map(|b| b.len()), Some(3));
        assert_eq!(big.remaining(), u64::MAX - 3);
    }

    #[test]
    fn basic_and_pipelined() {
        let (body, trailers, rest) = check(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET /").unwrap();
        assert_eq!(body, b"hello world");
        assert!(trailers.is_empty());
        assert_eq!(rest, b"GET /");
        let (body, _, _) = check(b"A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n").unwrap();
        assert_eq!(body.len(), 20);
        let (body, _, _) = check(b"0000000000000000000000001\r\nx\r\n0\r\n\r\n").unwrap();
        assert_eq!(body, b"x");
        check(b"00\r\n\r\n").unwrap();
    }

    #[test]
    fn end_is_sticky_and_data_is_streamed() {
        let mut dec = ChunkedDecoder::new(1024, 10);
        let mut buf = BytesMut::from(&b"ffff\r\nabc"[..]);
        let Ok(Some(ChunkedEvent::Data(d))) = dec.decode(&mut buf) else {
            panic!()
        };
        assert_eq!(
            &d[..],
            b"abc",
            "data is returned before the chunk is complete"
        );
        assert!(dec.decode(&mut buf).unwrap().is_none());
        let mut dec = ChunkedDecoder::new(1024, 10);
        let mut buf = BytesMut::from(&b"0\r\n\r\nrest"[..]);
        assert!(matches!(dec.decode(&mut buf), Ok(Some(ChunkedEvent::End))));
        assert!(dec.is_done());
        assert!(matches!(dec.decode(&mut buf), Ok(Some(ChunkedEvent::End))));
        assert_eq!(&buf[..], b"rest");
    }

    #[test]
    fn chunk_size_errors() {
        // 16 significant digits fit, 17 do not.
        let mut dec = ChunkedDecoder::new(1024, 10);
        let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nab"[..]);
        assert!(matches!(
            dec.decode(&mut buf),
            Ok(Some(ChunkedEvent::Data(_)))
        ));
        assert_eq!(check(b"10000000000000000\r\n"), Err(R::BadChunkSizeData));
        assert_eq!(check(b"fffffffffffffffff\r\n"), Err(R::BadChunkSizeData));
        for bad in [
            &b"g\r\n"[..],
            b"\r\n",
            b"-5\r\n",
            b"0x5\r\n",
            b"+5\r\n",
            b" 5\r\n",
            b"5\n",
            b"5\rx",
            b"5 \r\n",
            b"5\t\r\n",
            b";a\r\n",
            b"5;\r\n",
            b"5; \r\n",
            b"5;=a\r\n",
            b"5;a=\r\n",
            b"5;a b\r\n",
            b"5;a=b c\r\n",
            b"5;a=\"x\r\n",
            b"5;a=\"x\"y\r\n",
            b"5;a=\"\x01\"\r\n",
            b"5;a=b=c\r\n",
            b"5;a =\r\n",
            b"5;a\x00\r\n",
            b"5;a= \r\n",
            b"5;a=\"x\" \r\n",
        ] {
            assert_eq!(
                check(bad),
                Err(R::BadChunkSizeData),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn errors_are_sticky() {
        let mut dec = ChunkedDecoder::new(1024, 10);
        let mut buf = BytesMut::from(&b"fffffffffffffffff"[..]);
        assert_eq!(dec.decode(&mut buf).unwrap_err(), R::BadChunkSizeData);
        for _ in 0..300 {
            buf.extend_from_slice(b"f");
            assert_eq!(dec.decode(&mut buf).unwrap_err(), R::BadChunkSizeData);
        }
        buf.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(dec.decode(&mut buf).unwrap_err(), R::BadChunkSizeData);
        assert!(!dec.is_done());
    }

    #[test]
    fn chunk_suffix_errors() {
        assert_eq!(check(b"5\r\nhelloX\r\n0\r\n\r\n"), Err(R::BadChunkSuffix));
        assert_eq!(check(b"5\r\nhello\n0\r\n\r\n"), Err(R::BadChunkSuffix));
        assert_eq!(check(b"5\r\nhello\r0\r\n\r\n"), Err(R::BadChunkSuffix));
        assert_eq!(check(b"5\r\nhello world\r\n"), Err(R::BadChunkSuffix));
    }

    #[test]
    fn extensions() {
        for ok in [
            &b"5;foo=bar\r\nhello\r\n0\r\n\r\n"[..],
            b"5;foo\r\nhello\r\n0;last\r\n\r\n",
            b"5 ; a = \"q\\\"x;y\" ; b\t;c=d\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"\"\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"\\\\\";b=\"\xff\"\r\nhello\r\n0\r\n\r\n",
            b"5;a;b;c\r\nhello\r\n0\r\n\r\n",
            b"5  ;a\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"x\";b\r\nhello\r\n0\r\n\r\n",
        ] {
            let (body, _, _) =
                check(ok).unwrap_or_else(|e| panic!("{:?}: {e:?}", String::from_utf8_lossy(ok)));
            assert_eq!(body, b"hello");
        }
    }

    #[test]
    fn extension_length_is_bounded() {
        // A size line of exactly 4096 bytes (with CRLF) is fine.
        let mut line = b"5;a=".to_vec();
        line.resize(4094, b'x');
        line.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        assert!(decode_all(&line).is_ok());
        let mut line = b"5;a=".to_vec();
        line.resize(4095, b'x');
        line.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        assert_eq!(decode_all(&line), Err(R::BadChunkSizeData));
        // Streamed endlessly: fails once the bound is crossed.
        let mut dec = ChunkedDecoder::new(1024, 10);
        let mut buf = BytesMut::from(&b"5;a="[..]);
        let mut fed = 4;
        let result = loop {
            match dec.decode(&mut buf) {
                Ok(None) => {
                    assert!(buf.is_empty(), "framing bytes are consumed");
                    buf.extend_from_slice(&[b'x'; 100]);
                    fed += 100;
                    assert!(fed < 10_000);
                }
                other => break other,
            }
        };
        assert!(matches!(result, Err(R::BadChunkSizeData)));
        // Leading zeros count too.
        let zeros = vec![b'0'; 5000];
        assert_eq!(decode_all(&zeros), Err(R::BadChunkSizeData));
    }

    #[test]
    fn trailers() {
        let (body, trailers, rest) = check(
            b"5\r\nhello\r\n0\r\nX-Checksum: abc \r\nContent-Length: 5\r\nHost: evil\r\nTransfer-Encoding: chunked\r\nx-other:\t1\r\n\r\nNEXT",
        )
        .unwrap();
        assert_eq!(body, b"hello");
        assert_eq!(trailers, r#"{"x-checksum": "abc", "x-other": "1"}"#);
        assert_eq!(rest, b"NEXT");
        // Only forbidden fields: no Trailers event.
        let (_, trailers, _) = check(b"0\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert!(trailers.is_empty());

        let mut dec = ChunkedDecoder::new(1024, 10);
        let mut buf = BytesMut::from(&b"0\r\nA: 1\r\n\r\n"[..]);
        assert!(
            matches!(dec.decode(&mut buf), Ok(Some(ChunkedEvent::Trailers(t))) if t["a"] == "1")
        );
        assert!(dec.is_done());
        assert!(matches!(dec.decode(&mut buf), Ok(Some(ChunkedEvent::End))));
        assert!(matches!(dec.decode(&mut buf), Ok(Some(ChunkedEvent::End))));

        assert_eq!(
            check(b"0\r\nA: 1\r\n folded\r\n\r\n"),
            Err(R::InvalidRequestHeader)
        );
        assert_eq!(check(b"0\r\nA : 1\r\n\r\n"), Err(R::InvalidRequestHeader));
        assert_eq!(check(b"0\r\nNoColon\r\n\r\n"), Err(R::InvalidRequestHeader));
        assert_eq!(check(b"0\r\n: x\r\n\r\n"), Err(R::InvalidRequestHeader));
        assert_eq!(
            check(b"0\r\nA@: x\r\n\r\n"),
            Err(R::InvalidCharactersInHeaderName)
        );
        assert_eq!(
            check(b"0\r\nA: a\x00b\r\n\r\n"),
            Err(R::InvalidRequestHeader)
        );
        assert_eq!(check(b"0\r\nA: a\rb\r\n\r\n"), Err(R::InvalidRequestHeader));
        assert_eq!(
            check(b"0\r\nA: 1\n\r\n"),
            Err(R::InvalidRequestHeadersNoCrlf)
        );
        assert_eq!(check(b"0\r\n\n"), Err(R::InvalidRequestHeadersNoCrlf));
        assert_eq!(check(b"0\r\n\rX\r\n\r\n"), Err(R::InvalidRequestHeader));
    }

    #[test]
    fn trailer_limits() {
        // Size: field lines (with CRLF) up to max, final CRLF on top.
        let section = |v: usize| format!("0\r\nA: {}\r\n\r\n", "v".repeat(v));
        let run_with = |input: &str| {
            let mut dec = ChunkedDecoder::new(10, 2);
            let mut buf = BytesMut::from(input.as_bytes());
            run(&mut dec, &mut buf)
        };
        assert!(run_with(&section(5)).unwrap().is_some()); // "A: vvvvv\r\n" = 10
        assert_eq!(run_with(&section(6)), Err(R::HeadersExceedMaxTotalSize));
        // Partial: an unfinished line that can no longer fit.
        assert_eq!(
            run_with("0\r\nA: vvvvvvvvv"),
            Err(R::HeadersExceedMaxTotalSize)
        );
        assert_eq!(run_with("0\r\nA: vvvvvvvv").unwrap(), None);
        // Count.
        let mut dec = ChunkedDecoder::new(1000, 2);
        let mut buf = BytesMut::from(&b"0\r\nA: 1\r\nB: 2\r\n\r\n"[..]);
        assert!(run(&mut dec, &mut buf).unwrap().is_some());
        let mut dec = ChunkedDecoder::new(1000, 2);
        let mut buf = BytesMut::from(&b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n"[..]);
        assert_eq!(run(&mut dec, &mut buf), Err(R::TooManyHeaders));
        assert_eq!(R::TooManyHeaders.status().as_u16(), 431);
    }

    mod roundtrip {
        use bytes::BytesMut;
        use proptest::prelude::*;

        use crate::codec::{
            encode_chunk_header, encode_last_chunk, ChunkedDecoder, ChunkedEvent, CHUNK_SUFFIX,
        };

        proptest! {
            #[test]
            fn encode_then_decode(
                body in proptest::collection::vec(any::<u8>(), 0..2000),
                sizes in proptest::collection::vec(1usize..300, 1..20),
                split in proptest::collection::vec(1usize..64, 1..20),
                trailer in proptest::option::of("[a-z]{1,8}"),
            ) {
                let mut wire = BytesMut::new();
                let mut rest = &body[..];
                let mut i = 0;
                while !rest.is_empty() {
                    let n = sizes[i % sizes.len()].min(rest.len());
                    encode_chunk_header(n, &mut wire);
                    wire.extend_from_slice(&rest[..n]);
                    wire.extend_from_slice(CHUNK_SUFFIX);
                    rest = &rest[n..];
                    i += 1;
                }
                let mut map = http::HeaderMap::new();
                if let Some(t) = &trailer {
                    map.insert("x-trailer", t.parse().unwrap());
                }
                encode_last_chunk(Some(&map), &mut wire);
                wire.extend_from_slice(b"NEXT");

                let mut dec = ChunkedDecoder::new(1024, 10);
                let mut buf = BytesMut::new();
                let mut out = Vec::new();
                let mut got_trailer = None;
                let mut fed = 0;
                let mut j = 0;
                loop {
                    match dec.decode(&mut buf).unwrap() {
                        None => {
                            let n = split[j % split.len()].min(wire.len() - fed);
                            prop_assert!(n > 0, "decoder wants more than was sent");
                            buf.extend_from_slice(&wire[fed..fed + n]);
                            fed += n;
                            j += 1;
                        }
                        Some(ChunkedEvent::Data(d)) => out.extend_from_slice(&d),
                        Some(ChunkedEvent::Trailers(t)) => {
                            got_trailer = t.get("x-trailer").map(|v| v.to_str().unwrap().to_owned());
                        }
                        Some(ChunkedEvent::End) => break,
                    }
                }
                prop_assert_eq!(out, body);
                prop_assert_eq!(got_trailer, trailer);
                let mut tail = buf.to_vec();
                tail.extend_from_slice(&wire[fed..]);
                prop_assert_eq!(tail, b"NEXT".to_vec());
            }
        }
    }
}

mod encode {
    use bytes::BytesMut;
    use http::{HeaderMap, HeaderValue, StatusCode};

    use crate::codec::{
        encode_chunk_header, encode_last_chunk, encode_response_head, ConnectionHeader,
        ResponseHead, CONTINUE_100,
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
}
