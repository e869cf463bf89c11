//! Response framing: how a response is delimited on the wire, decided from
//! the request, the status, the app's headers and the body's size hint
//! (RFC 9112 §6, Kestrel's automatic framing). Pure logic, unit-tested.

use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, StatusCode, Version};
use http_body::SizeHint;

use crate::codec::ConnectionHeader;

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body on the wire (HEAD, 1xx, 204, 304).
    NoBody,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (HTTP/1.0 without a length, or an app-set
    /// Transfer-Encoding whose last coding is not chunked).
    CloseDelimited,
}

/// What the driver knows of the request when it frames the response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestFacts {
    pub is_head: bool,
    pub version: Version,
    /// The request allows keep-alive and the server is not shutting down.
    pub keep_alive: bool,
}

/// The decided framing and the framing headers to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub framing: Framing,
    pub keep_alive: bool,
    pub content_length: Option<u64>,
    pub chunked_header: bool,
    pub connection: Option<ConnectionHeader>,
}

/// A response the server refuses to send as the app built it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PlanError {
    #[error("the response has an invalid Content-Length header")]
    InvalidContentLength,
    #[error("an informational (1xx) status other than 101 is not a final response")]
    InformationalStatus,
}

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Decide the framing. Removes the app's `Content-Length`, `Connection` and
/// (unless kept for an app-chosen coding) `Transfer-Encoding` headers from
/// `headers`: the encoder writes the framing headers itself.
pub(crate) fn plan(
    req: &RequestFacts,
    status: StatusCode,
    headers: &mut HeaderMap,
    hint: &SizeHint,
) -> Result<Plan, PlanError> {
    if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
        return Err(PlanError::InformationalStatus);
    }
    let mut keep_alive = req.keep_alive;
    // One pass over the app's headers (standard names compare by tag, no
    // hashing); the map is only searched for what is actually there.
    let (mut has_connection, mut has_length, mut has_te) = (false, false, false);
    for (name, value) in headers.iter() {
        if name == CONNECTION {
            has_connection = true;
            keep_alive &= !has_token(value.as_bytes(), "close");
        } else if name == CONTENT_LENGTH {
            has_length = true;
        } else if name == TRANSFER_ENCODING {
            has_te = true;
        }
    }
    if has_connection {
        headers.remove(CONNECTION);
    }
    let app_length = match has_length.then(|| headers.remove(CONTENT_LENGTH)).flatten() {
        None => None,
        Some(v) => Some(
            std::str::from_utf8(v.as_bytes())
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(PlanError::InvalidContentLength)?,
        ),
    };

    let no_body = req.is_head
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status == StatusCode::SWITCHING_PROTOCOLS;

    let mut plan = Plan {
        framing: Framing::NoBody,
        keep_alive,
        content_length: None,
        chunked_header: false,
        connection: None,
    };

    if status == StatusCode::SWITCHING_PROTOCOLS {
        // The connection stops being HTTP/1 after a 101.
        plan.keep_alive = false;
        if has_te {
            headers.remove(TRANSFER_ENCODING);
        }
        plan.connection = Some(ConnectionHeader::Upgrade);
        return Ok(plan);
    }

    if no_body {
        if status == StatusCode::NO_CONTENT {
            // RFC 9110 §8.6: no Content-Length in a 204.
            if has_te {
                headers.remove(TRANSFER_ENCODING);
            }
        } else if req.is_head || status == StatusCode::NOT_MODIFIED {
            // What a GET would have answered, when known.
            plan.content_length = app_length.or_else(|| {
                if status == StatusCode::NOT_MODIFIED {
                    None
                } else {
                    hint.exact()
                }
            });
            if plan.content_length.is_some() && has_te {
                headers.remove(TRANSFER_ENCODING);
            }
        }
    } else if let Some(te) = has_te.then(|| headers.get(TRANSFER_ENCODING)).flatten() {
        // The app chose a transfer coding: keep its header as written.
        let last_is_chunked = te
            .as_bytes()
            .rsplit(|b| *b == b',')
            .next()
            .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        if last_is_chunked && req.version == Version::HTTP_11 {
            plan.framing = Framing::Chunked;
        } else {
            if !last_is_chunked {
                tracing::debug!(target: "kestrel", "the response's last transfer coding is not chunked; the connection closes to end the body");
            }
            headers.remove(TRANSFER_ENCODING);
            plan.framing = Framing::CloseDelimited;
            plan.keep_alive = false;
        }
    } else if let Some(n) = app_length.or_else(|| hint.exact()) {
        plan.framing = Framing::Length(n);
        plan.content_length = Some(n);
    } else if req.version == Version::HTTP_11 {
        plan.framing = Framing::Chunked;
        plan.chunked_header = true;
    } else {
        plan.framing = Framing::CloseDelimited;
        plan.keep_alive = false;
    }

    plan.connection = if !plan.keep_alive {
        Some(ConnectionHeader::Close)
    } else if req.version == Version::HTTP_10 {
        Some(ConnectionHeader::KeepAlive)
    } else {
        None
    };
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn facts(version: Version) -> RequestFacts {
        RequestFacts {
            is_head: false,
            version,
            keep_alive: true,
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
}
