//! The request-head parser: request line and header section (RFC 9112 §2–§3,
//! §5–§6), on top of `httparse`, with Kestrel's limits.
//!
//! [`HeadParser`] runs httparse within the limits and builds the head;
//! [`diagnose`] says what a parse failure means (which status), [`target`]
//! checks the request target and Host, [`fields`] reads the header fields the
//! framing and connection rules depend on.

mod diagnose;
mod fields;
mod target;

use diagnose::*;
use fields::*;
use target::*;

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};
use memchr::{memchr, memchr2, memchr3, memchr_iter};

use super::rejection::RequestRejection;

/// Header slots kept on the stack; larger header-count limits use the heap.
const STACK_HEADERS: usize = 128;
/// Header slots tried first. The span array is initialised on every parse,
/// and most requests have far fewer headers than the limit (100): a head
/// with more is parsed again with room for the whole limit.
const FIRST_HEADERS: usize = 24;

/// Parses request heads (request line + header section) out of a byte buffer.
///
/// The parser is a plain configuration value: it keeps no state between
/// calls, so one instance can be shared by every connection.
#[derive(Debug, Clone)]
pub struct HeadParser {
    /// Maximum length of the request line, including its CRLF (default 8192).
    /// A longer line is rejected with [`RequestRejection::RequestLineTooLong`]
    /// (414).
    pub max_request_line_size: usize,
    /// Maximum size of the header section: all field lines including their
    /// CRLFs; the final empty line (CRLF) is granted on top of it (default
    /// 32768). Larger → [`RequestRejection::HeadersExceedMaxTotalSize`] (431).
    pub max_request_headers_total_size: usize,
    /// Maximum number of header field lines (default 100). More →
    /// [`RequestRejection::TooManyHeaders`] (431).
    pub max_request_header_count: usize,
    /// Accept a bare LF as a line terminator (default `false`: a bare LF is
    /// rejected with 400, RFC 9112 §2.2 lets a recipient choose).
    pub allow_bare_lf: bool,
    /// For absolute-form targets whose authority differs from the Host
    /// header: `false` (default) rejects with
    /// [`RequestRejection::InvalidHostHeader`], `true` replaces Host with the
    /// target's authority.
    pub allow_host_header_override: bool,
}

impl Default for HeadParser {
    fn default() -> Self {
        Self {
            max_request_line_size: 8192,
            max_request_headers_total_size: 32768,
            max_request_header_count: 100,
            allow_bare_lf: false,
            allow_host_header_override: false,
        }
    }
}

/// How the length of the request body is determined (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body (no framing header, or `Content-Length: 0`).
    Empty,
    /// A body of exactly this many bytes (never 0).
    Length(u64),
    /// A body in the chunked transfer coding.
    Chunked,
}

/// The form of the request target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetForm {
    /// `absolute-path [ "?" query ]`, e.g. `/index.html?x=1`.
    Origin,
    /// An absolute `http` or `https` URI, e.g. `http://example.com/`.
    Absolute,
    /// `host:port`, only with CONNECT.
    Authority,
    /// `*`, only with OPTIONS.
    Asterisk,
}

/// A parsed and validated request head.
#[derive(Debug)]
pub struct RequestHead {
    /// The request method.
    pub method: Method,
    /// The request target as sent (origin-, absolute-, authority- or
    /// asterisk-form).
    pub uri: Uri,
    /// [`Version::HTTP_10`] or [`Version::HTTP_11`] (HTTP/1.2+ is served as
    /// HTTP/1.1).
    pub version: Version,
    /// The header fields, in the order received; values share the receive
    /// buffer (no copy).
    pub headers: HeaderMap,
    /// How the body is framed.
    pub body: BodyKind,
    /// The form of the request target.
    pub target_form: TargetForm,
    /// Whether the connection may be reused after this request: for
    /// HTTP/1.1 unless Connection has `close`, for HTTP/1.0 only with
    /// `keep-alive` (and no `close`).
    pub keep_alive: bool,
    /// HTTP/1.1 request with `Expect: 100-continue`.
    pub expect_continue: bool,
    /// HTTP/1.1 request whose Connection has `upgrade` and which carries an
    /// Upgrade header.
    pub upgrade: bool,
}

/// Byte offsets of one header field inside the head (u32 to keep the
/// per-parse stack array small; a head is far below 4 GiB).
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    name_start: u32,
    name_end: u32,
    value_start: u32,
    value_end: u32,
}

impl Span {
    fn name(&self) -> std::ops::Range<usize> {
        self.name_start as usize..self.name_end as usize
    }

    fn value(&self) -> std::ops::Range<usize> {
        self.value_start as usize..self.value_end as usize
    }
}

/// What `httparse` found, as offsets into the scanned input.
struct Scanned {
    head_len: usize,
    method_end: usize,
    target_start: usize,
    target_end: usize,
    minor: u8,
    header_count: usize,
}

enum Scan {
    Complete(Scanned),
    Partial,
    Error(httparse::Error),
}

// Boxing the head would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Step {
    Done(RequestHead),
    Partial,
    Retry,
}

impl HeadParser {
    /// Parses one request head from the front of `buf`.
    ///
    /// * `Ok(Some(head))`: exactly the head's bytes were removed from `buf`
    ///   (whatever follows — body, pipelined requests — stays).
    /// * `Ok(None)`: the head is incomplete and no limit is exceeded yet;
    ///   nothing was consumed except empty lines preceding the request line
    ///   (RFC 9112 §2.2), which are always skipped and consumed so that they
    ///   cannot pile up. (An `HTTP/1.x` version with x ≥ 2 may have been
    ///   rewritten to `HTTP/1.1` in place, RFC 9110 §2.5.)
    /// * `Err(reason)`: the request must be rejected with `reason.status()`
    ///   and the connection closed.
    pub fn parse(&self, buf: &mut BytesMut) -> Result<Option<RequestHead>, RequestRejection> {
        self.skip_empty_lines(buf)?;
        // A lone CR may still become an empty line: undecided, whatever the
        // limits.
        if buf.is_empty() || &buf[..] == b"\r" {
            return Ok(None);
        }
        // The second round only happens after an HTTP/1.2+ version was
        // rewritten to HTTP/1.1 in place, which cannot trigger again.
        for _ in 0..2 {
            match self.attempt(buf)? {
                Step::Done(head) => return Ok(Some(head)),
                Step::Partial => return Ok(None),
                Step::Retry => {}
            }
        }
        Err(RequestRejection::InvalidRequestLine)
    }

    /// Consumes CRLF (and, if allowed, LF) lines before the request line.
    fn skip_empty_lines(&self, buf: &mut BytesMut) -> Result<(), RequestRejection> {
        let mut i = 0;
        loop {
            match &buf[i..] {
                [b'\r', b'\n', ..] => i += 2,
                [b'\n', ..] if self.allow_bare_lf => i += 1,
                [b'\n', ..] => return Err(RequestRejection::InvalidRequestLine),
                _ => break,
            }
        }
        buf.advance(i);
        Ok(())
    }

    fn attempt(&self, buf: &mut BytesMut) -> Result<Step, RequestRejection> {
        // The limits are enforced by never showing httparse more bytes than
        // a head within the limits can have: whatever it reports (error,
        // completion) then lies inside the limits, and "partial" on a full
        // window means a limit is exceeded. This makes the outcome
        // independent of how the input was split into reads.
        let max_line = self.max_request_line_size;
        let search = buf.len().min(max_line);
        let (line_len, window) = match memchr(b'\n', &buf[..search]) {
            Some(i) => (
                Some(i + 1),
                (i + 1)
                    .saturating_add(self.max_request_headers_total_size)
                    .saturating_add(2),
            ),
            None => (None, max_line),
        };
        let truncated = buf.len() >= window;
        let limit_error = if line_len.is_some() {
            RequestRejection::HeadersExceedMaxTotalSize
        } else {
            RequestRejection::RequestLineTooLong
        };
        let input_len = buf.len().min(window);

        let count = self.max_request_header_count;
        let mut first = [Span::default(); FIRST_HEADERS];
        let first = &mut first[..count.min(FIRST_HEADERS)];
        if let Some(step) =
            self.attempt_with(buf, input_len, line_len, truncated, limit_error, first)?
        {
            return Ok(step);
        }
        // More headers than the first try had room for (and the limit allows).
        let step = if count <= STACK_HEADERS {
            let mut spans = [Span::default(); STACK_HEADERS];
            self.attempt_with(
                buf,
                input_len,
                line_len,
                truncated,
                limit_error,
                &mut spans[..count],
            )?
        } else {
            let mut spans = vec![Span::default(); count];
            self.attempt_with(buf, input_len, line_len, truncated, limit_error, &mut spans)?
        };
        // With room for the whole limit, too many headers is an error.
        step.ok_or(RequestRejection::TooManyHeaders)
    }

    #[allow(clippy::too_many_arguments)]
    fn attempt_with(
        &self,
        buf: &mut BytesMut,
        input_len: usize,
        line_len: Option<usize>,
        truncated: bool,
        limit_error: RequestRejection,
        spans: &mut [Span],
    ) -> Result<Option<Step>, RequestRejection> {
        let scan = scan(&buf[..input_len], spans);
        let step = match scan {
            Scan::Complete(scanned) => {
                if !self.allow_bare_lf {
                    let head = &buf[..scanned.head_len];
                    match line_len {
                        Some(line_len) => {
                            check_line_ends(head, line_len, &spans[..scanned.header_count])?
                        }
                        None => check_crlf(head, scanned.head_len)?,
                    }
                }
                let head = buf.split_to(scanned.head_len).freeze();
                self.build(head, &scanned, spans).map(Step::Done)
            }
            Scan::Partial if truncated => Err(limit_error),
            Scan::Partial => Ok(Step::Partial),
            Scan::Error(httparse::Error::Version) => {
                match classify_version(&buf[..input_len], self.allow_bare_lf) {
                    VersionFix::Rewrite(at) => {
                        buf[at..at + 8].copy_from_slice(b"HTTP/1.1");
                        Ok(Step::Retry)
                    }
                    VersionFix::NeedMore if truncated => Err(limit_error),
                    VersionFix::NeedMore => Ok(Step::Partial),
                    VersionFix::Reject(r) => Err(r),
                }
            }
            // Room for more headers than this try had: the caller tries again.
            Scan::Error(httparse::Error::TooManyHeaders)
                if spans.len() < self.max_request_header_count =>
            {
                return Ok(None);
            }
            Scan::Error(e) => Err(map_error(e, &buf[..input_len], line_len)),
        };
        step.map(Some)
    }

    fn build(
        &self,
        head: Bytes,
        scanned: &Scanned,
        spans: &[Span],
    ) -> Result<RequestHead, RequestRejection> {
        let method = Method::from_bytes(&head[..scanned.method_end])
            .map_err(|_| RequestRejection::InvalidRequestLine)?;
        let version = if scanned.minor == 0 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        let target = head.slice(scanned.target_start..scanned.target_end);
        let (uri, target_form, authority) = parse_target(&method, target)?;

        let mut headers = HeaderMap::try_with_capacity(scanned.header_count)
            .map_err(|_| RequestRejection::TooManyHeaders)?;
        let mut info = HeaderInfo::default();
        for span in spans.iter().take(scanned.header_count) {
            let name = HeaderName::from_bytes(&head[span.name()])
                .map_err(|_| RequestRejection::InvalidCharactersInHeaderName)?;
            let raw = &head[span.value()];
            info.observe(&name, raw, span.value());
            let value = HeaderValue::from_maybe_shared(head.slice(span.value()))
                .map_err(|_| RequestRejection::InvalidRequestHeader)?;
            headers
                .try_append(name, value)
                .map_err(|_| RequestRejection::TooManyHeaders)?;
        }

        // Host (RFC 9112 §3.2, RFC 9110 §7.2).
        let is_11 = version == Version::HTTP_11;
        match info.host_count {
            0 if is_11 => return Err(RequestRejection::MissingHostHeader),
            0 | 1 => {}
            _ => return Err(RequestRejection::MultipleHostHeaders),
        }
        let host = info.host.map(|r| &head[r]);
        match target_form {
            TargetForm::Origin | TargetForm::Asterisk => {
                // The target URI's authority comes from Host. RFC 9112 §3.2
                // has clients send an empty Host when the target URI has no
                // authority, and §3.3 lets the server decide what an empty
                // authority means: like Kestrel we accept an empty Host here
                // and leave it to the application. Non-empty values must be
                // `uri-host [ ":" port ]` with a non-empty host.
                if let Some(host) = host {
                    if !host.is_empty() && split_authority(host).is_none() {
                        return Err(RequestRejection::InvalidHostHeader);
                    }
                }
            }
            TargetForm::Absolute => {
                // RFC 9112 §3.2.2: the target's authority wins over Host; a
                // Host that differs is rejected (or replaced, if allowed).
                if let (Some(host), Some(authority)) = (host, authority.as_ref()) {
                    let default_port: &[u8] = if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
                        b"443"
                    } else {
                        b"80"
                    };
                    if !host_matches(host, authority, Some(default_port)) {
                        if self.allow_host_header_override {
                            let value = HeaderValue::from_maybe_shared(authority.clone())
                                .map_err(|_| RequestRejection::InvalidRequestTarget)?;
                            headers
                                .try_insert(header::HOST, value)
                                .map_err(|_| RequestRejection::TooManyHeaders)?;
                        } else {
                            return Err(RequestRejection::InvalidHostHeader);
                        }
                    }
                }
            }
            TargetForm::Authority => {
                // CONNECT: Host must name the same host; its port may be
                // omitted (RFC 9110 §9.3.6's example), else must be equal.
                if let (Some(host), Some(authority)) = (host, authority.as_ref()) {
                    if !host_matches(host, authority, None) {
                        return Err(RequestRejection::InvalidHostHeader);
                    }
                }
            }
        }

        // Framing (RFC 9112 §6.1–§6.3).
        let body = if info.te_present {
            if !is_11 {
                return Err(RequestRejection::TransferEncodingInHttp10);
            }
            if info.cl_present {
                return Err(RequestRejection::TransferEncodingWithContentLength);
            }
            // The final coding decides first (RFC 9112 §6.3): a body whose
            // last coding is not `chunked` cannot be framed, so 400 and close,
            // whatever the other codings are. 501 is for an unknown coding
            // applied before a final `chunked` (`gzip, chunked` is known).
            if !info.te_last_chunked || info.te_chunked_count != 1 {
                return Err(RequestRejection::FinalTransferCodingNotChunked);
            }
            if info.te_unsupported {
                return Err(RequestRejection::UnsupportedTransferCoding);
            }
            if info.te_chunked_params {
                return Err(RequestRejection::InvalidRequestHeader);
            }
            BodyKind::Chunked
        } else if info.cl_present {
            match info.cl {
                ContentLength::Invalid => return Err(RequestRejection::InvalidContentLength),
                ContentLength::Multiple => return Err(RequestRejection::MultipleContentLengths),
                ContentLength::Value(0) | ContentLength::Unset => BodyKind::Empty,
                ContentLength::Value(n) => BodyKind::Length(n),
            }
        } else if !is_11 && (method == Method::POST || method == Method::PUT) {
            return Err(RequestRejection::LengthRequiredHttp10);
        } else {
            BodyKind::Empty
        };

        let keep_alive = if is_11 {
            !info.conn_close
        } else {
            info.conn_keep_alive && !info.conn_close
        };
        Ok(RequestHead {
            method,
            uri,
            version,
            headers,
            body,
            target_form,
            keep_alive,
            expect_continue: is_11 && info.expect_continue,
            upgrade: is_11 && info.conn_upgrade && info.upgrade_present,
        })
    }
}

/// Runs httparse over `input` with room for exactly `count` headers (so that
/// header `count + 1` yields `TooManyHeaders`), recording offsets in `spans`.
fn scan(input: &[u8], spans: &mut [Span]) -> Scan {
    let count = spans.len();
    if count <= STACK_HEADERS {
        let mut storage = [const { MaybeUninit::uninit() }; STACK_HEADERS];
        scan_with(input, &mut storage[..count], spans)
    } else {
        let mut storage = Vec::with_capacity(count);
        storage.resize_with(count, MaybeUninit::uninit);
        scan_with(input, &mut storage, spans)
    }
}

fn scan_with<'b>(
    input: &'b [u8],
    storage: &mut [MaybeUninit<httparse::Header<'b>>],
    spans: &mut [Span],
) -> Scan {
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(input, storage) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Scan::Partial,
        Err(e) => return Scan::Error(e),
    };
    let base = input.as_ptr() as usize;
    // Offset of `part` inside `input[..head_len]`, checked so that a surprise
    // can never turn into an out-of-bounds slice later.
    let offset = |part: &[u8]| -> Option<(usize, usize)> {
        let start = (part.as_ptr() as usize).checked_sub(base)?;
        let end = start.checked_add(part.len())?;
        (end <= head_len).then_some((start, end))
    };
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Scan::Error(httparse::Error::Token);
    };
    let Some((_, method_end)) = offset(method.as_bytes()) else {
        return Scan::Error(httparse::Error::Token);
    };
    let Some((target_start, target_end)) = offset(path.as_bytes()) else {
        return Scan::Error(httparse::Error::Token);
    };
    let header_count = req.headers.len();
    if header_count > spans.len() {
        return Scan::Error(httparse::Error::TooManyHeaders);
    }
    let narrow = |(start, end): (usize, usize)| -> Option<(u32, u32)> {
        Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
    };
    for (h, span) in req.headers.iter().zip(spans.iter_mut()) {
        let (Some((name_start, name_end)), Some((value_start, value_end))) = (
            offset(h.name.as_bytes()).and_then(narrow),
            offset(h.value).and_then(narrow),
        ) else {
            return Scan::Error(httparse::Error::HeaderValue);
        };
        *span = Span {
            name_start,
            name_end,
            value_start,
            value_end,
        };
    }
    Scan::Complete(Scanned {
        head_len,
        method_end,
        target_start,
        target_end,
        minor,
        header_count,
    })
}

/// Every line of a complete head must end in CRLF (httparse accepts bare LF).
///
/// httparse (with its default configuration: no obs-fold, no skipped
/// invalid lines) accepts an LF only as a line end, so the LFs of the head
/// are exactly: the request line's end (`line_len`), each field line's end
/// (after the value, past trailing SP/HTAB, which httparse trims), and the
/// empty line's. Checking those is checking every LF, without scanning the
/// head again. `check_crlf` is the scanning version (and the reference the
/// tests compare with).
fn check_line_ends(head: &[u8], line_len: usize, spans: &[Span]) -> Result<(), RequestRejection> {
    if line_len < 2 || head.get(line_len - 2) != Some(&b'\r') {
        return Err(RequestRejection::InvalidRequestLine);
    }
    for span in spans {
        let mut i = span.value_end as usize;
        while matches!(head.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        if head.get(i) != Some(&b'\r') {
            return Err(RequestRejection::InvalidRequestHeadersNoCrlf);
        }
    }
    let n = head.len();
    if n < 2 || head[n - 2] != b'\r' {
        return Err(RequestRejection::InvalidRequestHeadersNoCrlf);
    }
    Ok(())
}

/// Every LF of the head must be preceded by CR (httparse accepts bare LF).
fn check_crlf(head: &[u8], line_len: usize) -> Result<(), RequestRejection> {
    for i in memchr_iter(b'\n', head) {
        if i == 0 || head[i - 1] != b'\r' {
            return Err(if i < line_len {
                RequestRejection::InvalidRequestLine
            } else {
                RequestRejection::InvalidRequestHeadersNoCrlf
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod line_end_tests {
    use super::*;

    /// The line-end check agrees with a scan of every LF, for every CRLF of
    /// these heads turned into a bare LF (one at a time, and all at once).
    #[test]
    fn line_ends_agree_with_a_full_scan() {
        let heads: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
            b"POST /a HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Trail: v \t \r\nX-Blank:   \r\nContent-Length: 0\r\n\r\n",
        ];
        for head in heads {
            let mut variants = vec![head.to_vec()];
            for (i, _) in head.iter().enumerate().filter(|(_, &b)| b == b'\r') {
                let mut v = head.to_vec();
                v.remove(i);
                variants.push(v);
            }
            variants.push(head.iter().copied().filter(|&b| b != b'\r').collect());
            for v in variants {
                let mut buf = BytesMut::from(&v[..]);
                let got = HeadParser::default().parse(&mut buf).err();
                let line_len = memchr(b'\n', &v).map_or(v.len(), |i| i + 1);
                let want = check_crlf(&v, line_len).err();
                assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&v));
            }
        }
    }
}
