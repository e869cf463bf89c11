//! Static files from a web root (ASP.NET Core's `UseDefaultFiles` +
//! `UseStaticFiles`).
//!
//! - `GET` and `HEAD` only; other methods, unknown paths, directories without
//!   a default file and unknown file types go to the next stage (so the app
//!   can answer them). There is no directory listing.
//! - `Content-Type` from the file extension (`mime_guess`); files of unknown
//!   type are not served unless
//!   [`serve_unknown_file_types`](StaticFiles::serve_unknown_file_types) is set.
//! - `ETag` (strong, from modification time and length), `Last-Modified`,
//!   `Accept-Ranges: bytes`; `If-Match` / `If-Unmodified-Since` → `412`,
//!   `If-None-Match` / `If-Modified-Since` → `304`; a single `Range`
//!   (`bytes=a-b`, `a-`, `-n`) → `206` with `Content-Range`, unsatisfiable →
//!   `416`, honouring `If-Range`; multiple ranges are answered with the whole
//!   file (`200`), as ASP.NET Core does.
//! - A directory request serves its default file (`index.html`); without
//!   the trailing `/` it is first redirected (`301`) to the path with one.
//! - Files are streamed with `tokio::fs` in 64 KiB chunks, never read whole.
//!
//! Path safety: the request path (below the [`PathBase`]
//! and [`request_path`](StaticFiles::request_path)) is split on `/` and each
//! segment percent-decoded; a segment that is `.` or `..`, or that decodes
//! to a `/`, `\`, NUL or invalid UTF-8, or an invalid `%` escape, is answered
//! `400 Bad Request`. The resolved file is then canonicalized (symbolic links
//! resolved) and must lie under the canonicalized web root, else `404`.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use kestrel_core::RequestBody;
use tokio::io::{AsyncSeekExt, SeekFrom};

use crate::pipeline::{
    box_body, empty_response, Body, BoxResponseFuture, Middleware, Next, PathBase,
};

const CHUNK: usize = 64 * 1024;

/// The static-files middleware. Cheap to clone.
#[derive(Clone, Debug)]
pub struct StaticFiles {
    inner: Arc<Options>,
}

#[derive(Clone, Debug)]
struct Options {
    root: PathBuf,
    canonical_root: OnceLock<PathBuf>,
    request_path: String,
    default_files: Vec<String>,
    unknown_type: Option<HeaderValue>,
}

impl StaticFiles {
    /// Serve the files under `web_root` at the site's root, with
    /// `index.html` as the default file of directories.
    pub fn new(web_root: impl Into<PathBuf>) -> Self {
        StaticFiles {
            inner: Arc::new(Options {
                root: web_root.into(),
                canonical_root: OnceLock::new(),
                request_path: String::new(),
                default_files: vec!["index.html".to_string()],
                unknown_type: None,
            }),
        }
    }

    /// Serve under a URL prefix (ASP.NET Core's `RequestPath`, e.g. `/static`).
    pub fn request_path(mut self, prefix: &str) -> Self {
        Arc::make_mut(&mut self.inner).request_path = prefix.trim_end_matches('/').to_string();
        self
    }

    /// The default files tried, in order, for a directory (empty: none).
    pub fn default_files<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Arc::make_mut(&mut self.inner).default_files = names.into_iter().map(Into::into).collect();
        self
    }

    /// Also serve files whose type the extension does not tell, with
    /// `content_type` (ASP.NET Core's `ServeUnknownFileTypes` +
    /// `DefaultContentType`). An invalid value leaves them unserved.
    pub fn serve_unknown_file_types(mut self, content_type: &str) -> Self {
        Arc::make_mut(&mut self.inner).unknown_type = HeaderValue::from_str(content_type).ok();
        self
    }

    /// The web root.
    pub fn web_root(&self) -> &Path {
        &self.inner.root
    }

    async fn canonical_root(&self) -> io::Result<PathBuf> {
        if let Some(root) = self.inner.canonical_root.get() {
            return Ok(root.clone());
        }
        let root = tokio::fs::canonicalize(&self.inner.root).await?;
        Ok(self.inner.canonical_root.get_or_init(|| root).clone())
    }

    async fn serve(
        self,
        req: Request<RequestBody>,
        next: Next,
    ) -> Result<Response<Body>, kestrel_core::BoxError> {
        let below_base = {
            let path = req.uri().path();
            let base = req
                .extensions()
                .get::<PathBase>()
                .map_or(0, |b| b.as_str().len());
            path.get(base..).unwrap_or("").to_string()
        };
        let Some(rel) = strip_prefix(&below_base, &self.inner.request_path) else {
            return next.run(req).await;
        };
        let Some(segments) = decode_segments(rel) else {
            tracing::debug!(target: "kestrel::hosting::static_files", path = %req.uri().path(), "Refused a static file path");
            return Ok(empty_response(StatusCode::BAD_REQUEST));
        };
        let Ok(root) = self.canonical_root().await else {
            return next.run(req).await;
        };
        let mut target = root.clone();
        target.extend(&segments);
        let Ok(meta) = tokio::fs::metadata(&target).await else {
            return next.run(req).await;
        };
        let (file_path, meta) = if meta.is_dir() {
            if self.inner.default_files.is_empty() {
                return next.run(req).await;
            }
            let mut found = None;
            for name in &self.inner.default_files {
                let candidate = target.join(name);
                if let Ok(m) = tokio::fs::metadata(&candidate).await {
                    if m.is_file() {
                        found = Some((candidate, m));
                        break;
                    }
                }
            }
            let Some(found) = found else {
                return next.run(req).await;
            };
            if !req.uri().path().ends_with('/') {
                let location = match req.uri().query() {
                    Some(q) => format!("{}/?{q}", req.uri().path()),
                    None => format!("{}/", req.uri().path()),
                };
                let mut resp = empty_response(StatusCode::MOVED_PERMANENTLY);
                if let Ok(v) = HeaderValue::from_str(&location) {
                    resp.headers_mut().insert(header::LOCATION, v);
                }
                return Ok(resp);
            }
            found
        } else if meta.is_file() {
            (target, meta)
        } else {
            return next.run(req).await;
        };
        // Symbolic links must not lead out of the root.
        match tokio::fs::canonicalize(&file_path).await {
            Ok(real) if real.starts_with(&root) => {}
            _ => return Ok(empty_response(StatusCode::NOT_FOUND)),
        }
        let content_type = match mime_guess::from_path(&file_path).first_raw() {
            Some(ct) => HeaderValue::from_static(ct),
            None => match &self.inner.unknown_type {
                Some(ct) => ct.clone(),
                None => return next.run(req).await,
            },
        };
        let len = meta.len();
        let modified = meta.modified().ok();
        let modified_secs = modified.and_then(|m| m.duration_since(UNIX_EPOCH).ok());
        let etag = {
            let nanos = modified_secs.map_or(0, |d| d.as_nanos());
            format!("\"{nanos:x}-{len:x}\"")
        };
        let last_modified_secs = modified_secs.map(|d| d.as_secs());
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&etag) {
            headers.insert(header::ETAG, v);
        }
        if let Some(m) = modified {
            if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(m)) {
                headers.insert(header::LAST_MODIFIED, v);
            }
        }

        match evaluate_preconditions(req.headers(), &etag, last_modified_secs) {
            Precondition::Proceed => {}
            Precondition::Failed => {
                return Ok(with_headers(StatusCode::PRECONDITION_FAILED, headers))
            }
            Precondition::NotModified => {
                return Ok(with_headers(StatusCode::NOT_MODIFIED, headers))
            }
        }

        headers.insert(header::CONTENT_TYPE, content_type);
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        let is_head = req.method() == Method::HEAD;
        let mut status = StatusCode::OK;
        let (mut start, mut count) = (0u64, len);
        if !is_head && if_range_allows(req.headers(), &etag, last_modified_secs) {
            if let Some(spec) = req.headers().get(header::RANGE) {
                match parse_range(spec.as_bytes(), len) {
                    RangeResult::Ignore => {}
                    RangeResult::Unsatisfiable => {
                        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                            headers.insert(header::CONTENT_RANGE, v);
                        }
                        headers.remove(header::CONTENT_TYPE);
                        return Ok(with_headers(StatusCode::RANGE_NOT_SATISFIABLE, headers));
                    }
                    RangeResult::Range(s, e) => {
                        status = StatusCode::PARTIAL_CONTENT;
                        start = s;
                        count = e - s + 1;
                        if let Ok(v) = HeaderValue::from_str(&format!("bytes {s}-{e}/{len}")) {
                            headers.insert(header::CONTENT_RANGE, v);
                        }
                    }
                }
            }
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
        if is_head {
            return Ok(with_headers(status, headers));
        }
        let mut file = tokio::fs::File::open(&file_path).await?;
        if start > 0 {
            file.seek(SeekFrom::Start(start)).await?;
        }
        let mut resp = Response::new(box_body(FileBody {
            file,
            remaining: count,
            buf: BytesMut::new(),
        }));
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        Ok(resp)
    }
}

fn with_headers(status: StatusCode, headers: HeaderMap) -> Response<Body> {
    let mut resp = empty_response(status);
    *resp.headers_mut() = headers;
    resp
}

/// `path` below `prefix` (segment boundary, ASCII case-insensitive).
fn strip_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(path);
    }
    let head = path.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = path.get(prefix.len()..)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// Split and percent-decode the path; refuse traversal and encoded separators.
fn decode_segments(path: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for raw in path.split('/') {
        if raw.is_empty() {
            continue;
        }
        let seg = String::from_utf8(percent_decode(raw)?).ok()?;
        if seg == "." || seg == ".." || seg.contains(['/', '\\', '\0']) {
            return None;
        }
        out.push(seg);
    }
    Some(out)
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex(*b.get(i + 1)?)?;
            let lo = hex(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

enum Precondition {
    Proceed,
    Failed,
    NotModified,
}

/// RFC 9110 §13.2.2 evaluation order, for GET/HEAD.
fn evaluate_preconditions(h: &HeaderMap, etag: &str, modified: Option<u64>) -> Precondition {
    if let Some(v) = h.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        if !etag_list_matches(v, etag, true) {
            return Precondition::Failed;
        }
    } else if let (Some(since), Some(m)) = (http_date(h.get(header::IF_UNMODIFIED_SINCE)), modified)
    {
        if m > since {
            return Precondition::Failed;
        }
    }
    if let Some(v) = h.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        if etag_list_matches(v, etag, false) {
            return Precondition::NotModified;
        }
    } else if let (Some(since), Some(m)) = (http_date(h.get(header::IF_MODIFIED_SINCE)), modified) {
        if m <= since {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// `If-Range`: a strong ETag that matches, or the exact `Last-Modified` date.
fn if_range_allows(h: &HeaderMap, etag: &str, modified: Option<u64>) -> bool {
    let Some(v) = h.get(header::IF_RANGE) else {
        return true;
    };
    let Ok(s) = v.to_str() else {
        return false;
    };
    let s = s.trim();
    if s.starts_with('"') || s.starts_with("W/") {
        return s == etag;
    }
    matches!((http_date(Some(v)), modified), (Some(d), Some(m)) if d == m)
}

fn http_date(v: Option<&HeaderValue>) -> Option<u64> {
    let s = v?.to_str().ok()?;
    let t = httpdate::parse_http_date(s.trim()).ok()?;
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

fn etag_list_matches(list: &str, etag: &str, strong: bool) -> bool {
    list.split(',').map(str::trim).any(|candidate| {
        if candidate == "*" {
            return true;
        }
        if strong {
            candidate == etag
        } else {
            candidate.strip_prefix("W/").unwrap_or(candidate) == etag
        }
    })
}

enum RangeResult {
    Ignore,
    Unsatisfiable,
    /// Inclusive first and last byte.
    Range(u64, u64),
}

fn parse_range(v: &[u8], len: u64) -> RangeResult {
    let Ok(s) = std::str::from_utf8(v) else {
        return RangeResult::Ignore;
    };
    let s = s.trim();
    let Some(spec) = s
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("bytes="))
        .and_then(|_| s.get(6..))
    else {
        return RangeResult::Ignore;
    };
    if spec.contains(',') {
        return RangeResult::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeResult::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
    if a.is_empty() {
        // Suffix: the last `b` bytes.
        if !digits(b) {
            return RangeResult::Ignore;
        }
        let Ok(n) = b.parse::<u64>() else {
            return RangeResult::Ignore;
        };
        if n == 0 || len == 0 {
            return RangeResult::Unsatisfiable;
        }
        let n = n.min(len);
        return RangeResult::Range(len - n, len - 1);
    }
    if !digits(a) || !(b.is_empty() || digits(b)) {
        return RangeResult::Ignore;
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeResult::Ignore;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        b.parse::<u64>().unwrap_or(u64::MAX)
    };
    if end < start {
        return RangeResult::Ignore;
    }
    if start >= len {
        return RangeResult::Unsatisfiable;
    }
    RangeResult::Range(start, end.min(len - 1))
}

/// A file (or part of one) streamed in chunks.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: BytesMut,
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining).map_or(CHUNK, |r| r.min(CHUNK));
        if this.buf.capacity() < want {
            this.buf.reserve(want);
        }
        match tokio_util::io::poll_read_buf(Pin::new(&mut this.file), cx, &mut this.buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(0)) => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was being sent",
            )))),
            Poll::Ready(Ok(_)) => {
                let mut chunk = this.buf.split().freeze();
                let cap = usize::try_from(this.remaining).unwrap_or(usize::MAX);
                if chunk.len() > cap {
                    chunk.truncate(cap);
                }
                this.remaining -= chunk.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

impl Middleware for StaticFiles {
    fn call(&self, req: Request<RequestBody>, next: Next) -> BoxResponseFuture {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return next.run(req);
        }
        Box::pin(self.clone().serve(req, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str, len: u64) -> Option<(u64, u64)> {
        match parse_range(s.as_bytes(), len) {
            RangeResult::Range(a, b) => Some((a, b)),
            RangeResult::Unsatisfiable => Some((u64::MAX, u64::MAX)),
            RangeResult::Ignore => None,
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-4", 10), Some((0, 4)));
        assert_eq!(range("bytes=5-", 10), Some((5, 9)));
        assert_eq!(range("bytes=-3", 10), Some((7, 9)));
        assert_eq!(range("bytes=-30", 10), Some((0, 9)));
        assert_eq!(range("bytes=2-100", 10), Some((2, 9)));
        assert_eq!(range("bytes=10-", 10), Some((u64::MAX, u64::MAX)));
        assert_eq!(range("bytes=-0", 10), Some((u64::MAX, u64::MAX)));
        assert_eq!(range("bytes=0-1,3-4", 10), None);
        assert_eq!(range("bytes=4-2", 10), None);
        assert_eq!(range("items=0-1", 10), None);
        assert_eq!(range("bytes=a-b", 10), None);
    }

    #[test]
    fn paths() {
        assert!(decode_segments("/a/b%20c.txt").is_some_and(|s| s == ["a", "b c.txt"]));
        for bad in [
            "/../x",
            "/a/%2e%2e/x",
            "/a%2fb",
            "/a%5cb",
            "/a%00",
            "/%zz",
            "/.",
            "/a/%2E%2E",
        ] {
            assert!(decode_segments(bad).is_none(), "{bad}");
        }
        assert_eq!(strip_prefix("/static/a", "/static"), Some("/a"));
        assert_eq!(strip_prefix("/staticx", "/static"), None);
    }

    #[test]
    fn etags() {
        assert!(etag_list_matches("\"a\", W/\"x\"", "\"x\"", false));
        assert!(!etag_list_matches("W/\"x\"", "\"x\"", true));
        assert!(etag_list_matches("*", "\"x\"", true));
    }
}
