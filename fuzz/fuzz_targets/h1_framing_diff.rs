//! Differential framing: the request head at the start of the input is
//! parsed by our `HeadParser` and by `httparse` followed by RFC 9112 §6.3's
//! framing rules written out here independently (hyper's own framing code,
//! `proto::h1::role`, is private; `httparse` is the parser hyper uses, and
//! the rules below are the RFC's strict reading: anything the RFC lets a
//! server reject, the reference rejects). For every head both accept, the
//! body framing (none, length n, chunked), where the body starts, the
//! method and the request target must agree: a disagreement is how request
//! smuggling starts.
#![no_main]

use bytes::BytesMut;
use kestrel_http1::codec::{BodyKind, HeadParser};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
}

struct Reference {
    method: String,
    target: String,
    head_len: usize,
    framing: Framing,
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// `httparse`, then RFC 9112 §6.3. `None`: the reference rejects the head
/// (or it is incomplete).
fn reference(input: &[u8]) -> Option<Reference> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let version = req.version?;
    let mut te: Vec<&[u8]> = Vec::new();
    let mut te_present = false;
    let mut lengths: Vec<&[u8]> = Vec::new();
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te_present = true;
            te.extend(
                h.value
                    .split(|&b| b == b',')
                    .map(trim)
                    .filter(|c| !c.is_empty()),
            );
        } else if h.name.eq_ignore_ascii_case("content-length") {
            lengths.extend(h.value.split(|&b| b == b',').map(trim));
        }
    }
    let framing = if te_present {
        // §6.1: TE in HTTP/1.0, or with Content-Length, may be rejected;
        // a final coding other than chunked must be (§6.3 item 4).
        if version == 0 || !lengths.is_empty() {
            return None;
        }
        let chunked = |c: &[u8]| c.eq_ignore_ascii_case(b"chunked");
        if !te.last().is_some_and(|c| chunked(c)) || te.iter().filter(|c| chunked(c)).count() != 1 {
            return None;
        }
        Framing::Chunked
    } else if !lengths.is_empty() {
        // §6.3 item 5: one value (or a list of identical values) of digits.
        let mut value = None;
        for l in &lengths {
            if l.is_empty() || !l.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n: u64 = std::str::from_utf8(l).ok()?.parse().ok()?;
            if value.is_some_and(|v| v != n) {
                return None;
            }
            value = Some(n);
        }
        match value? {
            0 => Framing::None,
            n => Framing::Length(n),
        }
    } else {
        Framing::None
    };
    Some(Reference {
        method: req.method?.to_owned(),
        target: req.path?.to_owned(),
        head_len,
        framing,
    })
}

fuzz_target!(|input: &[u8]| {
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    let parser = HeadParser {
        allow_bare_lf: first & 1 != 0,
        allow_host_header_override: first & 2 != 0,
        max_request_header_count: 120,
        ..HeadParser::default()
    };
    let Some(reference) = reference(data) else {
        return;
    };
    let mut buf = BytesMut::from(data);
    let Ok(Some(head)) = parser.parse(&mut buf) else {
        return;
    };
    let ours = match head.body {
        BodyKind::Empty => Framing::None,
        BodyKind::Length(n) => Framing::Length(n),
        BodyKind::Chunked => Framing::Chunked,
    };
    assert_eq!(ours, reference.framing, "body framing");
    assert_eq!(
        data.len() - buf.len(),
        reference.head_len,
        "where the body starts"
    );
    assert_eq!(head.method.as_str(), reference.method, "method");
    if reference.target.starts_with('/') {
        let ours = head.uri.path_and_query().map_or("", |p| p.as_str());
        assert_eq!(ours, reference.target, "origin-form target");
    } else if reference.target == "*" {
        assert_eq!(head.uri.to_string(), "*", "asterisk-form target");
    } else if let Some(authority) = head.uri.authority() {
        // absolute-form or authority-form: the authority is in the target.
        assert!(
            reference.target.contains(authority.as_str()),
            "authority {authority} not in the target {:?}",
            reference.target
        );
    }
});
