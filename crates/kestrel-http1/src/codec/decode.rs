//! Request body decoders: Content-Length and chunked (RFC 9112 §6–§7).

use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue};
use memchr::memchr;

use super::rejection::RequestRejection;

/// Longest accepted chunk-size line (size, extensions and CRLF), so that a
/// client cannot stream an endless chunk extension.
const MAX_CHUNK_SIZE_LINE: usize = 4096;

/// Most significant hex digits in a chunk size (64 bits).
const MAX_CHUNK_SIZE_DIGITS: u8 = 16;

/// Decodes a body of a known length (`Content-Length`).
#[derive(Debug, Clone)]
pub struct LengthDecoder {
    remaining: u64,
}

impl LengthDecoder {
    /// A decoder for a body of exactly `len` bytes.
    pub fn new(len: u64) -> Self {
        Self { remaining: len }
    }

    /// Bytes of the body not yet returned.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Whether the whole body has been returned.
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// Takes up to [`remaining`](Self::remaining) bytes from the front of
    /// `buf` (without copying); `None` if `buf` is empty or the body is done.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Option<Bytes> {
        if self.remaining == 0 || buf.is_empty() {
            return None;
        }
        let n = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        self.remaining -= n as u64;
        Some(buf.split_to(n).freeze())
    }
}

/// What the chunked decoder produced.
#[derive(Debug)]
pub enum ChunkedEvent {
    /// Body data (never empty), sharing the input buffer.
    Data(Bytes),
    /// The trailer fields after the last chunk (only if there were any that
    /// are allowed as trailers).
    Trailers(HeaderMap),
    /// The chunked body is complete; returned again on every later call.
    End,
}

/// Where the chunked decoder is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of the chunk size.
    Size,
    /// Whitespace after the size or an extension value: only `;` may follow.
    SizeLws,
    /// After `;`: optional whitespace, then an extension name.
    ExtPreName,
    /// In an extension name.
    ExtName,
    /// Whitespace after an extension name: `=` or `;` must follow.
    ExtNameLws,
    /// After `=`: optional whitespace, then a token or quoted string.
    ExtPreValue,
    /// In a token extension value.
    ExtToken,
    /// In a quoted-string extension value.
    ExtQuoted,
    /// After a backslash in a quoted string.
    ExtQuotedPair,
    /// After the closing quote of an extension value.
    ExtPostQuote,
    /// After the CR of the chunk-size line.
    SizeLf,
    /// In chunk data (`remaining` bytes left).
    Data,
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer field line or of the final CRLF.
    Trailer,
    /// Done: the final CRLF was consumed.
    End,
}

/// Decodes the chunked transfer coding, accepting input split at any byte.
///
/// Chunk extensions are validated and ignored; trailer fields are returned
/// (minus those that must not be trailers, RFC 9110 §6.5.1, which are
/// dropped silently).
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Chunk size being read, then data bytes left in the chunk.
    remaining: u64,
    /// Significant hex digits of the size read so far.
    significant: u8,
    /// Whether any size digit was read.
    has_digit: bool,
    /// Bytes of the current chunk-size line.
    line_len: usize,
    /// Bytes of the current partial trailer line already searched for LF.
    scanned: usize,
    trailer_size: usize,
    trailer_count: usize,
    max_trailer_size: usize,
    max_trailer_count: usize,
    trailers: HeaderMap,
    /// The error returned before, if any: errors are sticky.
    failed: Option<RequestRejection>,
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body. The trailer section is
    /// bounded like a header section: field lines (with CRLF) beyond
    /// `max_trailer_size` (the final CRLF comes on top) →
    /// [`RequestRejection::HeadersExceedMaxTotalSize`], more than
    /// `max_trailer_count` fields → [`RequestRejection::TooManyHeaders`].
    pub fn new(max_trailer_size: usize, max_trailer_count: usize) -> Self {
        Self {
            state: State::Size,
            remaining: 0,
            significant: 0,
            has_digit: false,
            line_len: 0,
            scanned: 0,
            trailer_size: 0,
            trailer_count: 0,
            max_trailer_size,
            max_trailer_count,
            trailers: HeaderMap::new(),
            failed: None,
        }
    }

    /// Whether the body is complete: the final CRLF was consumed and the
    /// trailers (if any) were handed out.
    pub fn is_done(&self) -> bool {
        self.state == State::End && self.trailers.is_empty()
    }

    /// Decodes from the front of `buf`.
    ///
    /// `Ok(Some(event))` consumed input; `Ok(None)` needs more input (every
    /// complete framing element has been consumed; an incomplete trailer
    /// line stays in `buf`). After the last chunk: [`ChunkedEvent::Trailers`]
    /// first if there were trailer fields, then [`ChunkedEvent::End`], which
    /// is returned again by every later call without consuming anything.
    /// An error is final: later calls return it again.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<ChunkedEvent>, RequestRejection> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let result = self.decode_inner(buf);
        if let Err(e) = result {
            self.failed = Some(e);
        }
        result
    }

    fn decode_inner(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<ChunkedEvent>, RequestRejection> {
        loop {
            match self.state {
                State::End => {
                    if self.trailers.is_empty() {
                        return Ok(Some(ChunkedEvent::End));
                    }
                    return Ok(Some(ChunkedEvent::Trailers(std::mem::take(
                        &mut self.trailers,
                    ))));
                }
                State::Data => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(Some(ChunkedEvent::Data(buf.split_to(n).freeze())));
                }
                State::Trailer => {
                    if !self.trailer_line(buf)? {
                        return Ok(None);
                    }
                }
                _ => {
                    let mut used = 0;
                    let mut result = Ok(());
                    for &b in buf.iter() {
                        used += 1;
                        result = self.step(b);
                        if result.is_err() || matches!(self.state, State::Data | State::Trailer) {
                            break;
                        }
                    }
                    buf.advance(used);
                    result?;
                    if !matches!(self.state, State::Data | State::Trailer) {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// One byte of chunk framing (size line or data suffix).
    fn step(&mut self, b: u8) -> Result<(), RequestRejection> {
        let bad_size = RequestRejection::BadChunkSizeData;
        if !matches!(self.state, State::DataCr | State::DataLf) {
            self.line_len += 1;
            if self.line_len > MAX_CHUNK_SIZE_LINE {
                return Err(bad_size);
            }
        }
        self.state = match (self.state, b) {
            (State::Size, _) if b.is_ascii_hexdigit() => {
                let digit = hex_value(b);
                if self.remaining != 0 || digit != 0 {
                    self.significant = self.significant.saturating_add(1);
                    if self.significant > MAX_CHUNK_SIZE_DIGITS {
                        return Err(bad_size);
                    }
                }
                self.remaining = (self.remaining << 4) | u64::from(digit);
                self.has_digit = true;
                State::Size
            }
            (State::Size, _) if !self.has_digit => return Err(bad_size),
            (State::Size, b';') => State::ExtPreName,
            (State::Size, b' ' | b'\t') => State::SizeLws,
            (State::Size, b'\r') => State::SizeLf,

            (State::SizeLws, b' ' | b'\t') => State::SizeLws,
            (State::SizeLws, b';') => State::ExtPreName,

            (State::ExtPreName, b' ' | b'\t') => State::ExtPreName,
            (State::ExtPreName, _) if is_tchar(b) => State::ExtName,

            (State::ExtName, _) if is_tchar(b) => State::ExtName,
            (State::ExtName, b' ' | b'\t') => State::ExtNameLws,
            (State::ExtName, b'=') => State::ExtPreValue,
            (State::ExtName, b';') => State::ExtPreName,
            (State::ExtName, b'\r') => State::SizeLf,

            (State::ExtNameLws, b' ' | b'\t') => State::ExtNameLws,
            (State::ExtNameLws, b'=') => State::ExtPreValue,
            (State::ExtNameLws, b';') => State::ExtPreName,

            (State::ExtPreValue, b' ' | b'\t') => State::ExtPreValue,
            (State::ExtPreValue, b'"') => State::ExtQuoted,
            (State::ExtPreValue, _) if is_tchar(b) => State::ExtToken,

            (State::ExtToken, _) if is_tchar(b) => State::ExtToken,
            (State::ExtToken, b' ' | b'\t') => State::SizeLws,
            (State::ExtToken, b';') => State::ExtPreName,
            (State::ExtToken, b'\r') => State::SizeLf,

            (State::ExtQuoted, b'"') => State::ExtPostQuote,
            (State::ExtQuoted, b'\\') => State::ExtQuotedPair,
            (State::ExtQuoted, _) if is_qdtext(b) => State::ExtQuoted,
            (State::ExtQuotedPair, _) if b == b'\t' || b == b' ' || is_vchar_or_obs(b) => {
                State::ExtQuoted
            }

            (State::ExtPostQuote, b' ' | b'\t') => State::SizeLws,
            (State::ExtPostQuote, b';') => State::ExtPreName,
            (State::ExtPostQuote, b'\r') => State::SizeLf,

            (State::SizeLf, b'\n') => {
                self.line_len = 0;
                if self.remaining == 0 {
                    self.trailer_size = 0;
                    self.trailer_count = 0;
                    self.scanned = 0;
                    State::Trailer
                } else {
                    State::Data
                }
            }

            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => {
                self.remaining = 0;
                self.significant = 0;
                self.has_digit = false;
                State::Size
            }
            (State::DataCr | State::DataLf, _) => return Err(RequestRejection::BadChunkSuffix),

            _ => return Err(bad_size),
        };
        Ok(())
    }

    /// Consumes one complete trailer line; `Ok(false)` if none is complete.
    fn trailer_line(&mut self, buf: &mut BytesMut) -> Result<bool, RequestRejection> {
        let budget = self.max_trailer_size.saturating_add(2);
        let Some(lf) = memchr(b'\n', &buf[self.scanned.min(buf.len())..]).map(|i| i + self.scanned)
        else {
            self.scanned = buf.len();
            // The section will be at least one byte longer than what is here.
            if self.trailer_size.saturating_add(buf.len()) >= budget {
                return Err(RequestRejection::HeadersExceedMaxTotalSize);
            }
            return Ok(false);
        };
        self.scanned = 0;
        let len = lf + 1;
        self.trailer_size = self.trailer_size.saturating_add(len);
        if self.trailer_size > budget {
            return Err(RequestRejection::HeadersExceedMaxTotalSize);
        }
        if lf == 0 || buf[lf - 1] != b'\r' {
            return Err(RequestRejection::InvalidRequestHeadersNoCrlf);
        }
        if lf == 1 {
            // The final CRLF.
            buf.advance(2);
            self.state = State::End;
            return Ok(true);
        }
        self.trailer_count += 1;
        if self.trailer_count > self.max_trailer_count {
            return Err(RequestRejection::TooManyHeaders);
        }
        let line = &buf[..lf - 1];
        let colon = memchr(b':', line).ok_or(RequestRejection::InvalidRequestHeader)?;
        let name = &line[..colon];
        if name.is_empty() {
            return Err(RequestRejection::InvalidRequestHeader);
        }
        if let Some(&bad) = name.iter().find(|&&b| !is_tchar(b)) {
            // Includes obs-fold (a line starting with whitespace).
            return Err(if bad == b' ' || bad == b'\t' {
                RequestRejection::InvalidRequestHeader
            } else {
                RequestRejection::InvalidCharactersInHeaderName
            });
        }
        let mut start = colon + 1;
        let mut end = line.len();
        while start < end && matches!(line[start], b' ' | b'\t') {
            start += 1;
        }
        while end > start && matches!(line[end - 1], b' ' | b'\t') {
            end -= 1;
        }
        if !line[start..end]
            .iter()
            .all(|&b| b == b' ' || b == b'\t' || is_vchar_or_obs(b))
        {
            return Err(RequestRejection::InvalidRequestHeader);
        }
        let line = buf.split_to(len).freeze();
        let name = HeaderName::from_bytes(&line[..colon])
            .map_err(|_| RequestRejection::InvalidCharactersInHeaderName)?;
        if is_forbidden_trailer(&name) {
            return Ok(true);
        }
        let value = HeaderValue::from_maybe_shared(line.slice(start..end))
            .map_err(|_| RequestRejection::InvalidRequestHeader)?;
        self.trailers
            .try_append(name, value)
            .map_err(|_| RequestRejection::TooManyHeaders)?;
        Ok(true)
    }
}

/// Fields that must not be sent as trailers (RFC 9110 §6.5.1): framing,
/// routing, request modifiers, authentication, payload processing and
/// connection-specific fields. They are dropped.
fn is_forbidden_trailer(name: &HeaderName) -> bool {
    const FORBIDDEN: [HeaderName; 27] = [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::HOST,
        header::TRAILER,
        header::TE,
        header::CONNECTION,
        header::UPGRADE,
        header::CONTENT_ENCODING,
        header::CONTENT_TYPE,
        header::CONTENT_RANGE,
        header::EXPECT,
        header::MAX_FORWARDS,
        header::CACHE_CONTROL,
        header::PRAGMA,
        header::RANGE,
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
        header::IF_RANGE,
        header::AUTHORIZATION,
        header::PROXY_AUTHORIZATION,
        header::COOKIE,
        header::SET_COOKIE,
        header::WWW_AUTHENTICATE,
        header::PROXY_AUTHENTICATE,
        header::DATE,
    ];
    FORBIDDEN.contains(name) || name.as_str() == "keep-alive" || name.as_str() == "proxy-connection"
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b.wrapping_sub(b'A').wrapping_add(10) & 0x0f,
    }
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `VCHAR / obs-text`.
fn is_vchar_or_obs(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// `qdtext` of RFC 9110 §5.6.4.
fn is_qdtext(b: u8) -> bool {
    b == b'\t'
        || b == b' '
        || b == 0x21
        || (0x23..=0x5b).contains(&b)
        || (0x5d..=0x7e).contains(&b)
        || b >= 0x80
}
