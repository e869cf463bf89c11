//! The request-head parser: request line and header section (RFC 9112 §2–§3,
//! §5–§6), on top of `httparse`, with Kestrel's limits.

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
                let line_len = line_len.unwrap_or(scanned.head_len);
                if !self.allow_bare_lf {
                    check_crlf(&buf[..scanned.head_len], line_len)?;
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

enum VersionFix {
    /// `HTTP/1.x` with x ≥ 2 at this offset: serve as HTTP/1.1.
    Rewrite(usize),
    /// The version may still turn out well-formed.
    NeedMore,
    Reject(RequestRejection),
}

/// httparse only knows HTTP/1.0 and HTTP/1.1; decides what another version
/// means (RFC 9110 §2.5, RFC 9112 §2.3).
fn classify_version(input: &[u8], allow_bare_lf: bool) -> VersionFix {
    let reject = VersionFix::Reject(RequestRejection::InvalidRequestLine);
    // httparse got past `method SP target SP`, both without spaces.
    let Some(sp1) = memchr(b' ', input) else {
        return reject;
    };
    let Some(sp2) = memchr(b' ', &input[sp1 + 1..]).map(|i| i + sp1 + 1) else {
        return reject;
    };
    let start = sp2 + 1;
    let rest = &input[start..];
    let end = memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
    let field = &rest[..end];
    // Well-formed prefix of `HTTP/` DIGIT `.` DIGIT?
    let shape_ok = field.len() <= 8
        && field.iter().enumerate().all(|(i, &b)| match i {
            0..=4 => b == b"HTTP/"[i],
            6 => b == b'.',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return reject;
    }
    if end == rest.len() {
        return VersionFix::NeedMore;
    }
    if field.len() < 8 {
        return reject;
    }
    match &rest[end..] {
        [b'\r'] => return VersionFix::NeedMore,
        [b'\r', b'\n', ..] => {}
        [b'\n', ..] if allow_bare_lf => {}
        _ => return reject,
    }
    if field[5] != b'1' {
        VersionFix::Reject(RequestRejection::UnrecognizedHttpVersion)
    } else if field[7] >= b'2' {
        VersionFix::Rewrite(start)
    } else {
        reject
    }
}

/// Maps an httparse error (other than `Version`) to a rejection, looking at
/// the input to tell the request line from the header section.
fn map_error(e: httparse::Error, input: &[u8], line_len: Option<usize>) -> RequestRejection {
    match e {
        httparse::Error::TooManyHeaders => RequestRejection::TooManyHeaders,
        httparse::Error::HeaderValue => RequestRejection::InvalidRequestHeader,
        httparse::Error::HeaderName => classify_header_name_error(input, line_len),
        httparse::Error::Token => classify_token_error(input),
        httparse::Error::NewLine => {
            if request_line_terminated(input) {
                // The bad line ending is in the header section (e.g. the
                // final CR not followed by LF).
                RequestRejection::InvalidRequestHeader
            } else {
                RequestRejection::InvalidRequestLine
            }
        }
        httparse::Error::Status | httparse::Error::Version => RequestRejection::InvalidRequestLine,
    }
}

/// Whether `input` starts with a complete, well-terminated request line
/// `method SP target SP HTTP/1.x (CRLF | LF)`. Positional, so that the answer
/// does not depend on how much input follows.
fn request_line_terminated(input: &[u8]) -> bool {
    if !input.first().is_some_and(|&b| is_tchar(b)) {
        return false;
    }
    let Some(sp1) = memchr(b' ', input) else {
        return false;
    };
    let Some(sp2) = memchr(b' ', &input[sp1 + 1..]).map(|i| i + sp1 + 1) else {
        return false;
    };
    let rest = &input[sp2 + 1..];
    (rest.starts_with(b"HTTP/1.1") || rest.starts_with(b"HTTP/1.0"))
        && (rest[8..].starts_with(b"\r\n") || rest[8..].starts_with(b"\n"))
}

/// httparse's `Token` error: the method or the target is bad.
fn classify_token_error(input: &[u8]) -> RequestRejection {
    let sp = memchr(b' ', input).unwrap_or(input.len());
    let method = &input[..sp];
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) || sp == input.len() {
        return RequestRejection::InvalidRequestLine;
    }
    let rest = &input[sp + 1..];
    let end = memchr3(b' ', b'\r', b'\n', rest).unwrap_or(rest.len());
    if rest[..end].iter().any(|&b| !(0x21..=0x7e).contains(&b)) {
        // Control characters, DEL or non-ASCII (non-UTF-8) in the target.
        RequestRejection::InvalidRequestTarget
    } else {
        // Empty target, or the line ends before the version.
        RequestRejection::InvalidRequestLine
    }
}

/// httparse's `HeaderName` error: obs-fold and whitespace around the name
/// are malformed field lines; anything else is a bad name character.
fn classify_header_name_error(input: &[u8], line_len: Option<usize>) -> RequestRejection {
    let mut rest = &input[line_len.unwrap_or(input.len()).min(input.len())..];
    while !rest.is_empty() {
        let end = memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        rest = &rest[end..];
        if matches!(line.first(), Some(b' ' | b'\t')) {
            return RequestRejection::InvalidRequestHeader;
        }
        let colon = memchr(b':', line);
        let name = &line[..colon.unwrap_or(line.len())];
        if let Some(&bad) = name.iter().find(|&&b| !is_tchar(b)) {
            return if matches!(bad, b' ' | b'\t' | b'\r' | b'\n') {
                RequestRejection::InvalidRequestHeader
            } else {
                RequestRejection::InvalidCharactersInHeaderName
            };
        }
        if colon.is_none() || name.is_empty() {
            return RequestRejection::InvalidRequestHeader;
        }
    }
    RequestRejection::InvalidCharactersInHeaderName
}

/// Splits and validates a request target; returns the authority bytes for
/// absolute- and authority-form.
fn parse_target(
    method: &Method,
    target: Bytes,
) -> Result<(Uri, TargetForm, Option<Bytes>), RequestRejection> {
    let bad = RequestRejection::InvalidRequestTarget;
    // A fragment is not part of any request-target form; http::Uri would
    // silently drop it.
    if target.is_empty() || memchr(b'#', &target).is_some() {
        return Err(bad);
    }
    let (form, authority) = if target[0] == b'/' {
        (TargetForm::Origin, None)
    } else if &target[..] == b"*" {
        (TargetForm::Asterisk, None)
    } else if let Some(scheme_len) = http_scheme_len(&target) {
        // `scheme "://" authority path-abempty [ "?" query ]`
        let start = scheme_len + 3;
        let end = memchr2(b'/', b'?', &target[start..]).map_or(target.len(), |i| i + start);
        let authority = target.slice(start..end);
        if split_authority(&authority).is_none() {
            return Err(bad);
        }
        (TargetForm::Absolute, Some(authority))
    } else if matches!(split_authority(&target), Some((_, Some(port))) if !port.is_empty()) {
        (TargetForm::Authority, Some(target.clone()))
    } else {
        return Err(bad);
    };
    if method == Method::CONNECT {
        if form != TargetForm::Authority {
            return Err(bad);
        }
    } else if form == TargetForm::Authority {
        return Err(RequestRejection::ConnectMethodRequired);
    } else if form == TargetForm::Asterisk && method != Method::OPTIONS {
        return Err(RequestRejection::OptionsMethodRequired);
    }
    let uri = Uri::from_maybe_shared(target).map_err(|_| bad)?;
    Ok((uri, form, authority))
}

/// Length of an `http` / `https` scheme (case-insensitive) followed by `://`.
fn http_scheme_len(target: &[u8]) -> Option<usize> {
    let prefix = |p: &[u8]| target.len() >= p.len() && target[..p.len()].eq_ignore_ascii_case(p);
    if prefix(b"http://") {
        Some(4)
    } else if prefix(b"https://") {
        Some(5)
    } else {
        None
    }
}

/// Splits `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2–3.2.3)
/// into host and optional port (`*DIGIT`, maybe empty). `None` if invalid,
/// including an empty host (RFC 9110 §4.2.1) and any userinfo.
fn split_authority(value: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let (host, after) = if value.first() == Some(&b'[') {
        let close = memchr(b']', value)?;
        let inner = &value[1..close];
        if !valid_ip_literal(inner) {
            return None;
        }
        (&value[..close + 1], &value[close + 1..])
    } else {
        let end = memchr(b':', value).unwrap_or(value.len());
        let host = &value[..end];
        if host.is_empty() || !valid_reg_name(host) {
            return None;
        }
        (host, &value[end..])
    };
    let port = match after {
        [] => None,
        [b':', port @ ..] if port.iter().all(u8::is_ascii_digit) => Some(port),
        _ => return None,
    };
    Some((host, port))
}

/// The bytes a `reg-name` may hold besides percent-encodings (RFC 3986
/// §3.2.2: unreserved and sub-delims), as a table: one load per byte.
const REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"-._~!$&'()*+,;=";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};

fn valid_reg_name(host: &[u8]) -> bool {
    let mut i = 0;
    while i < host.len() {
        let b = host[i];
        if b == b'%' {
            match host.get(i + 1..i + 3) {
                Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {}
                _ => return false,
            }
            i += 3;
            continue;
        }
        if !REG_NAME[usize::from(b)] {
            return false;
        }
        i += 1;
    }
    true
}

/// `IPv6address / IPvFuture` between the brackets (checked for characters,
/// not for IPv6 structure).
fn valid_ip_literal(inner: &[u8]) -> bool {
    match inner {
        [] => false,
        [b'v' | b'V', rest @ ..] => {
            let dot = memchr(b'.', rest).unwrap_or(0);
            dot > 0
                && rest[..dot].iter().all(u8::is_ascii_hexdigit)
                && rest.len() > dot + 1
                && rest[dot + 1..]
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:".contains(&b))
        }
        _ => {
            memchr(b':', inner).is_some()
                && inner
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
    }
}

/// Host header vs. the target's authority: same host (case-insensitive) and
/// same port, where a missing or empty port means `default_port` (absolute
/// form) or "any" for the Host side (authority form, `default_port` None).
fn host_matches<'a>(host: &'a [u8], authority: &'a [u8], default_port: Option<&'a [u8]>) -> bool {
    let (Some((h_host, h_port)), Some((a_host, a_port))) =
        (split_authority(host), split_authority(authority))
    else {
        return false;
    };
    if !h_host.eq_ignore_ascii_case(a_host) {
        return false;
    }
    let effective = |p: Option<&'a [u8]>| -> Option<&'a [u8]> {
        match p {
            Some(p) if !p.is_empty() => Some(trim_zeros(p)),
            _ => default_port.map(trim_zeros),
        }
    };
    match (effective(h_port), effective(a_port)) {
        (Some(h), Some(a)) => h == a,
        // Authority form: Host may omit the port.
        (None, _) => default_port.is_none(),
        (Some(_), None) => false,
    }
}

fn trim_zeros(port: &[u8]) -> &[u8] {
    let first = port.iter().position(|&b| b != b'0').unwrap_or(port.len());
    &port[first..]
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ContentLength {
    #[default]
    Unset,
    Value(u64),
    Multiple,
    Invalid,
}

/// What the semantically relevant header fields said.
#[derive(Default)]
struct HeaderInfo {
    host_count: usize,
    host: Option<std::ops::Range<usize>>,
    cl_present: bool,
    cl: ContentLength,
    te_present: bool,
    te_unsupported: bool,
    te_chunked_params: bool,
    te_chunked_count: usize,
    te_last_chunked: bool,
    conn_close: bool,
    conn_keep_alive: bool,
    conn_upgrade: bool,
    expect_continue: bool,
    upgrade_present: bool,
}

impl HeaderInfo {
    fn observe(&mut self, name: &HeaderName, value: &[u8], range: std::ops::Range<usize>) {
        if *name == header::HOST {
            self.host_count += 1;
            self.host = Some(range);
        } else if *name == header::CONTENT_LENGTH {
            self.cl_present = true;
            for member in value.split(|&b| b == b',') {
                self.content_length_member(trim_ows(member));
            }
        } else if *name == header::TRANSFER_ENCODING {
            self.te_present = true;
            for member in value.split(|&b| b == b',') {
                let member = trim_ows(member);
                if member.is_empty() {
                    continue; // empty list elements are ignored (RFC 9110 §5.6.1)
                }
                let (coding, params) = match memchr(b';', member) {
                    Some(i) => (trim_ows(&member[..i]), true),
                    None => (member, false),
                };
                let chunked = coding.eq_ignore_ascii_case(b"chunked");
                if chunked {
                    self.te_chunked_count += 1;
                    // RFC 9112 §7: chunked defines no parameters; their
                    // presence SHOULD be treated as an error.
                    self.te_chunked_params |= params;
                } else if ![
                    &b"gzip"[..],
                    b"x-gzip",
                    b"deflate",
                    b"compress",
                    b"x-compress",
                ]
                .iter()
                .any(|known| coding.eq_ignore_ascii_case(known))
                {
                    self.te_unsupported = true;
                }
                self.te_last_chunked = chunked;
            }
        } else if *name == header::CONNECTION {
            for token in value.split(|&b| b == b',') {
                let token = trim_ows(token);
                if token.eq_ignore_ascii_case(b"close") {
                    self.conn_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    self.conn_keep_alive = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    self.conn_upgrade = true;
                }
            }
        } else if *name == header::EXPECT {
            self.expect_continue |= value
                .split(|&b| b == b',')
                .any(|m| trim_ows(m).eq_ignore_ascii_case(b"100-continue"));
        } else if *name == header::UPGRADE {
            self.upgrade_present = true;
        }
    }

    fn content_length_member(&mut self, member: &[u8]) {
        if self.cl == ContentLength::Invalid {
            return;
        }
        let Some(n) = parse_decimal(member) else {
            self.cl = ContentLength::Invalid;
            return;
        };
        self.cl = match self.cl {
            ContentLength::Unset => ContentLength::Value(n),
            ContentLength::Value(v) if v == n => ContentLength::Value(v),
            _ => ContentLength::Multiple,
        };
    }
}

/// `1*DIGIT` as u64, `None` if empty, not all digits, or overflowing.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
