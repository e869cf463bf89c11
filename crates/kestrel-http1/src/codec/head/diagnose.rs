//! What a failed parse means: the rejection (and status) for httparse's
//! errors and for versions httparse does not know.

use super::*;

pub(super) enum VersionFix {
    /// `HTTP/1.x` with x ≥ 2 at this offset: serve as HTTP/1.1.
    Rewrite(usize),
    /// The version may still turn out well-formed.
    NeedMore,
    Reject(RequestRejection),
}

/// httparse only knows HTTP/1.0 and HTTP/1.1; decides what another version
/// means (RFC 9110 §2.5, RFC 9112 §2.3).
pub(super) fn classify_version(input: &[u8], allow_bare_lf: bool) -> VersionFix {
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
pub(super) fn map_error(
    e: httparse::Error,
    input: &[u8],
    line_len: Option<usize>,
) -> RequestRejection {
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
pub(super) fn request_line_terminated(input: &[u8]) -> bool {
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
pub(super) fn classify_token_error(input: &[u8]) -> RequestRejection {
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
pub(super) fn classify_header_name_error(
    input: &[u8],
    line_len: Option<usize>,
) -> RequestRejection {
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
