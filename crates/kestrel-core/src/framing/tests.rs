//! The planner's cases: HTTP/1.x framing, bodiless statuses, app-chosen
//! codings and connection headers, and the stream protocols' rules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use http::HeaderValue;

fn facts(version: Version) -> RequestFacts {
    RequestFacts {
        is_head: false,
        version,
        keep_alive: true,
        add_server_header: true,
    }
}

fn run(
    req: RequestFacts,
    status: u16,
    headers: &[(&'static str, &'static str)],
    hint: SizeHint,
) -> Plan {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(*k, HeaderValue::from_static(v));
    }
    plan(
        &req,
        StatusCode::from_u16(status).expect("status"),
        &mut map,
        &hint,
    )
    .expect("plan")
}

#[test]
fn known_length_and_chunked() {
    let p = run(facts(Version::HTTP_11), 200, &[], SizeHint::with_exact(13));
    assert_eq!(
        (p.framing, p.content_length, p.keep_alive, p.connection),
        (Framing::Length(13), Some(13), true, None)
    );
    let p = run(facts(Version::HTTP_11), 200, &[], SizeHint::new());
    assert_eq!((p.framing, p.chunked_header), (Framing::Chunked, true));
    let p = run(
        facts(Version::HTTP_11),
        200,
        &[("content-length", "5")],
        SizeHint::new(),
    );
    assert_eq!(p.framing, Framing::Length(5));
    let p = run(facts(Version::HTTP_11), 200, &[], SizeHint::with_exact(0));
    assert_eq!(
        p.framing,
        Framing::Length(0),
        "an empty body gets Content-Length: 0"
    );
}

#[test]
fn http10_is_never_chunked() {
    let p = run(facts(Version::HTTP_10), 200, &[], SizeHint::new());
    assert_eq!(
        (p.framing, p.keep_alive, p.connection),
        (
            Framing::CloseDelimited,
            false,
            Some(ConnectionHeader::Close)
        )
    );
    let p = run(facts(Version::HTTP_10), 200, &[], SizeHint::with_exact(2));
    assert_eq!(
        (p.framing, p.connection),
        (Framing::Length(2), Some(ConnectionHeader::KeepAlive))
    );
}

#[test]
fn bodiless_statuses_and_head() {
    let p = run(
        facts(Version::HTTP_11),
        204,
        &[("content-length", "0")],
        SizeHint::with_exact(0),
    );
    assert_eq!((p.framing, p.content_length), (Framing::NoBody, None));
    let p = run(facts(Version::HTTP_11), 304, &[], SizeHint::with_exact(10));
    assert_eq!((p.framing, p.content_length), (Framing::NoBody, None));
    let head = RequestFacts {
        is_head: true,
        ..facts(Version::HTTP_11)
    };
    let p = run(head, 200, &[], SizeHint::with_exact(42));
    assert_eq!((p.framing, p.content_length), (Framing::NoBody, Some(42)));
}

#[test]
fn app_connection_close() {
    let p = run(
        facts(Version::HTTP_11),
        200,
        &[("connection", "Close")],
        SizeHint::with_exact(1),
    );
    assert_eq!(
        (p.keep_alive, p.connection),
        (false, Some(ConnectionHeader::Close))
    );
}

#[test]
fn app_transfer_encoding() {
    let p = run(
        facts(Version::HTTP_11),
        200,
        &[("transfer-encoding", "gzip, chunked")],
        SizeHint::new(),
    );
    assert_eq!((p.framing, p.chunked_header), (Framing::Chunked, false));
    let p = run(
        facts(Version::HTTP_11),
        200,
        &[("transfer-encoding", "gzip")],
        SizeHint::new(),
    );
    assert_eq!((p.framing, p.keep_alive), (Framing::CloseDelimited, false));
}

#[test]
fn refused_responses() {
    let mut h = HeaderMap::new();
    h.insert("content-length", HeaderValue::from_static("12x"));
    let r = plan(
        &facts(Version::HTTP_11),
        StatusCode::OK,
        &mut h,
        &SizeHint::new(),
    );
    assert_eq!(r, Err(PlanError::InvalidContentLength));
    let r = plan(
        &facts(Version::HTTP_11),
        StatusCode::CONTINUE,
        &mut HeaderMap::new(),
        &SizeHint::new(),
    );
    assert_eq!(r, Err(PlanError::InformationalStatus));
}

#[test]
fn date_and_server_unless_the_app_set_them() {
    let p = run(facts(Version::HTTP_11), 200, &[], SizeHint::with_exact(1));
    assert_eq!((p.add_date, p.add_server), (true, true));
    let p = run(
        facts(Version::HTTP_11),
        200,
        &[("date", "x"), ("server", "y")],
        SizeHint::with_exact(1),
    );
    assert_eq!((p.add_date, p.add_server), (false, false));
    let quiet = RequestFacts {
        add_server_header: false,
        ..facts(Version::HTTP_2)
    };
    let p = run(quiet, 200, &[], SizeHint::with_exact(1));
    assert_eq!((p.add_date, p.add_server), (true, false));
}

#[test]
fn stream_protocols_frame_by_the_stream() {
    for v in [Version::HTTP_2, Version::HTTP_3] {
        let p = run(facts(v), 200, &[], SizeHint::new());
        assert_eq!(
            (p.framing, p.content_length, p.chunked_header, p.connection),
            (Framing::Stream, None, false, None),
            "{v:?}"
        );
        let p = run(facts(v), 200, &[], SizeHint::with_exact(7));
        assert_eq!((p.framing, p.content_length), (Framing::Length(7), Some(7)));
        let p = run(facts(v), 200, &[("content-length", "3")], SizeHint::new());
        assert_eq!((p.framing, p.content_length), (Framing::Length(3), Some(3)));
        // 204: no Content-Length; 304: only the app's; HEAD: what GET would send.
        let p = run(facts(v), 204, &[("content-length", "0")], SizeHint::new());
        assert_eq!((p.framing, p.content_length), (Framing::NoBody, None));
        let p = run(facts(v), 304, &[], SizeHint::with_exact(9));
        assert_eq!((p.framing, p.content_length), (Framing::NoBody, None));
        let p = run(facts(v), 304, &[("content-length", "9")], SizeHint::new());
        assert_eq!((p.framing, p.content_length), (Framing::NoBody, Some(9)));
        let head = RequestFacts {
            is_head: true,
            ..facts(v)
        };
        let p = run(head, 200, &[], SizeHint::with_exact(42));
        assert_eq!((p.framing, p.content_length), (Framing::NoBody, Some(42)));
        // No 101 on a stream protocol (RFC 9113 §8.6).
        let r = plan(
            &facts(v),
            StatusCode::SWITCHING_PROTOCOLS,
            &mut HeaderMap::new(),
            &SizeHint::new(),
        );
        assert_eq!(r, Err(PlanError::InformationalStatus));
    }
}

#[test]
fn connection_specific_fields_are_stripped() {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("connection", "close"),
        ("keep-alive", "5"),
        ("proxy-connection", "x"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("te", "gzip"),
        ("x-kept", "1"),
    ] {
        h.append(k, HeaderValue::from_static(v));
    }
    let mut removed = Vec::new();
    strip_connection_specific(&mut h, |n| removed.push(n));
    assert_eq!(
        removed,
        [
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
            "te"
        ]
    );
    assert_eq!(h.len(), 1);
    let mut h = HeaderMap::new();
    h.insert("te", HeaderValue::from_static("trailers"));
    strip_connection_specific(&mut h, |_| panic!("te: trailers is allowed"));
    assert_eq!(h.len(), 1);
}

#[test]
fn plan_headers_for_header_maps() {
    let p = run(facts(Version::HTTP_2), 200, &[], SizeHint::with_exact(5));
    let mut h = HeaderMap::new();
    apply_to_headers(&p, &mut h, || HeaderValue::from_static("now"));
    assert_eq!(h["content-length"], "5");
    assert_eq!(h["date"], "now");
    assert_eq!(h["server"], "Kestrel");
}
