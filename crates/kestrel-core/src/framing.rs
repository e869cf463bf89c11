//! The response framing planner every protocol uses: how a response is
//! delimited, which framing headers the server writes, whether the
//! connection stays open, and whether `Date` and `Server` are added —
//! decided once from the request, the status, the app's headers and the
//! body's size hint (RFC 9110 §6.4.1, §8.6; RFC 9112 §6; RFC 9113 §8.2.2;
//! Kestrel's automatic framing). Pure logic, unit-tested.
//!
//! HTTP/1.x frames a body by `Content-Length`, chunks, or the connection's
//! close; HTTP/2 and HTTP/3 by the end of their stream, so there a body
//! without a known length is [`Framing::Stream`], and the connection-specific
//! headers RFC 9113 §8.2.2 forbids are removed (Kestrel's event 41).

use http::header::{CONNECTION, CONTENT_LENGTH, DATE, SERVER, TE, TRANSFER_ENCODING};
use http::{HeaderMap, StatusCode, Version};
use http_body::SizeHint;

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body on the wire (HEAD, 1xx, 204, 304).
    NoBody,
    /// Exactly this many bytes.
    Length(u64),
    /// HTTP/1.1's chunked transfer coding.
    Chunked,
    /// HTTP/1.x: until the connection closes (HTTP/1.0 without a length, or
    /// an app-set Transfer-Encoding whose last coding is not chunked).
    CloseDelimited,
    /// HTTP/2 and HTTP/3: until the end of the stream.
    Stream,
}

/// The `Connection` header an HTTP/1.x response gets from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionHeader {
    /// `connection: close`: the connection ends after this response.
    Close,
    /// `connection: keep-alive`: for HTTP/1.0 clients that asked for it.
    KeepAlive,
    /// `connection: upgrade`: for a `101 Switching Protocols` response.
    Upgrade,
}

/// The `Alt-Svc` value a connection advertises on every HTTP/1.1 and HTTP/2
/// response (a connection feature, in `ConnectionInfo::features`): the
/// server records it on connections of an endpoint that also serves HTTP/3
/// (Kestrel's `h3=":<port>"; ma=86400`), unless the endpoint sets
/// `disable_alt_svc_header`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AltSvc(pub http::HeaderValue);

impl AltSvc {
    /// HTTP/3 on `port` of the same host, for 24 hours (Kestrel's value).
    pub fn h3(port: u16) -> AltSvc {
        AltSvc(
            http::HeaderValue::from_maybe_shared(bytes::Bytes::from(format!(
                "h3=\":{port}\"; ma=86400"
            )))
            .unwrap_or_else(|_| http::HeaderValue::from_static("h3=\":443\"; ma=86400")),
        )
    }
}

/// Add the connection's [`AltSvc`] to a response's headers, unless the app
/// set an `Alt-Svc` of its own. HTTP/1.1 and HTTP/2 drivers call this on
/// every response they frame with [`plan`].
pub fn add_alt_svc(headers: &mut HeaderMap, info: Option<&crate::ConnectionInfo>) {
    if let Some(AltSvc(value)) = info.and_then(|i| i.features().get::<AltSvc>()) {
        if !headers.contains_key(http::header::ALT_SVC) {
            headers.insert(http::header::ALT_SVC, value.clone());
        }
    }
}

/// What the driver knows of the request when it frames the response.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts {
    /// The request's method was HEAD.
    pub is_head: bool,
    /// The protocol version the response is written in.
    pub version: Version,
    /// The request allows keep-alive and the server is not shutting down
    /// (HTTP/1.x; ignored by stream protocols).
    pub keep_alive: bool,
    /// Add `Server: Kestrel` unless the app set a `Server` (`add_server_header`).
    pub add_server_header: bool,
}

/// The decided framing and the framing headers to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the connection stays open after this response (HTTP/1.x).
    pub keep_alive: bool,
    /// The `Content-Length` to write, if any (the app's was removed from the headers).
    pub content_length: Option<u64>,
    /// Write `transfer-encoding: chunked` (HTTP/1.1, when the server chose chunking).
    pub chunked_header: bool,
    /// The `Connection` header to write (HTTP/1.x).
    pub connection: Option<ConnectionHeader>,
    /// Add the cached `Date` (the app did not set one).
    pub add_date: bool,
    /// Add `Server: Kestrel`.
    pub add_server: bool,
}

/// A response the server refuses to send as the app built it (it answers 500).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// `Content-Length` is not a number.
    #[error("the response has an invalid Content-Length header")]
    InvalidContentLength,
    /// A 1xx status as the final response (101 is one only on HTTP/1.1).
    #[error("an informational (1xx) status is not a final response")]
    InformationalStatus,
}

/// Whether `version` frames bodies by its streams (HTTP/2, HTTP/3).
pub fn is_multiplexed(version: Version) -> bool {
    version == Version::HTTP_2 || version == Version::HTTP_3
}

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Remove the connection-specific fields HTTP/2 and HTTP/3 forbid (RFC 9113
/// §8.2.2, RFC 9114 §4.2): `Connection`, `Keep-Alive`, `Proxy-Connection`,
/// `Transfer-Encoding`, `Upgrade`, and `TE` other than `trailers`. Calls
/// `removed` with each name removed (for Kestrel's event 41). For response
/// heads and trailers alike.
pub fn strip_connection_specific(headers: &mut HeaderMap, mut removed: impl FnMut(&'static str)) {
    const NAMES: [&str; 5] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ];
    for name in NAMES {
        if headers.remove(name).is_some() {
            removed(name);
        }
    }
    if headers
        .get(TE)
        .is_some_and(|te| te.as_bytes() != b"trailers")
    {
        headers.remove(TE);
        removed("te");
    }
}

/// Decide the framing. Removes the app's `Content-Length`, `Connection` and
/// (unless kept for an app-chosen coding) `Transfer-Encoding` headers from
/// `headers`: the driver writes the framing headers itself, from the plan.
/// Stream protocols call [`strip_connection_specific`] first.
pub fn plan(
    req: &RequestFacts,
    status: StatusCode,
    headers: &mut HeaderMap,
    hint: &SizeHint,
) -> Result<Plan, PlanError> {
    let multiplexed = is_multiplexed(req.version);
    if status.is_informational() && (multiplexed || status != StatusCode::SWITCHING_PROTOCOLS) {
        return Err(PlanError::InformationalStatus);
    }
    let mut keep_alive = req.keep_alive;
    // One pass over the app's headers (standard names compare by tag, no
    // hashing); the map is only searched for what is actually there.
    let (mut has_connection, mut has_length, mut has_te) = (false, false, false);
    let (mut has_date, mut has_server) = (false, false);
    for (name, value) in headers.iter() {
        if name == CONNECTION {
            has_connection = true;
            keep_alive &= !has_token(value.as_bytes(), "close");
        } else if name == CONTENT_LENGTH {
            has_length = true;
        } else if name == TRANSFER_ENCODING {
            has_te = true;
        } else if name == DATE {
            has_date = true;
        } else if name == SERVER {
            has_server = true;
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

    let mut plan = Plan {
        framing: Framing::NoBody,
        keep_alive,
        content_length: None,
        chunked_header: false,
        connection: None,
        add_date: !has_date,
        add_server: req.add_server_header && !has_server,
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

    let no_body =
        req.is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    if no_body {
        if status == StatusCode::NO_CONTENT {
            // RFC 9110 §8.6: no Content-Length in a 204.
            if has_te {
                headers.remove(TRANSFER_ENCODING);
            }
        } else {
            // What a GET would have answered, when known (RFC 9110 §8.6);
            // a 304 only repeats what the app says.
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
    } else if let Some(n) = multiplexed.then(|| app_length.or_else(|| hint.exact())) {
        plan.content_length = n;
        plan.framing = n.map_or(Framing::Stream, Framing::Length);
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

    if !multiplexed {
        plan.connection = if !plan.keep_alive {
            Some(ConnectionHeader::Close)
        } else if req.version == Version::HTTP_10 {
            Some(ConnectionHeader::KeepAlive)
        } else {
            None
        };
    }
    Ok(plan)
}

/// Write the plan's `Content-Length`, `Date` and `Server` into `headers`
/// (for protocols that send a header map, HTTP/2 and HTTP/3; HTTP/1's
/// encoder writes them as bytes). `date` is the cached `Date` value.
pub fn apply_to_headers(
    plan: &Plan,
    headers: &mut HeaderMap,
    date: impl FnOnce() -> http::HeaderValue,
) {
    if let Some(n) = plan.content_length {
        headers.insert(CONTENT_LENGTH, http::HeaderValue::from(n));
    }
    if plan.add_date {
        headers.insert(DATE, date());
    }
    if plan.add_server {
        headers.insert(SERVER, http::HeaderValue::from_static("Kestrel"));
    }
}

#[cfg(test)]
mod tests;
