//! Response framing: status line and header section, chunk headers, last
//! chunk with trailers (RFC 9112 §4, §5, §7.1).

use bytes::{BufMut, BytesMut};
use http::{header, HeaderMap, StatusCode};

pub use kestrel_core::framing::ConnectionHeader;

fn connection_line(c: ConnectionHeader) -> &'static [u8] {
    match c {
        ConnectionHeader::Close => b"connection: close\r\n",
        ConnectionHeader::KeepAlive => b"connection: keep-alive\r\n",
        ConnectionHeader::Upgrade => b"connection: upgrade\r\n",
    }
}

/// Everything needed to write a response head.
#[derive(Debug)]
pub struct ResponseHead<'a> {
    /// The status code.
    pub status: StatusCode,
    /// The application's headers, written in order (one line per value).
    pub headers: &'a HeaderMap,
    /// The Date value (already formatted), written as `date: <value>` unless
    /// `headers` already has Date.
    pub date: Option<&'a [u8]>,
    /// The Server value (e.g. `b"Kestrel"`), written unless `headers`
    /// already has Server.
    pub server: Option<&'a [u8]>,
    /// Write `content-length: n` (the caller removed any app-set one).
    pub content_length: Option<u64>,
    /// Write `transfer-encoding: chunked`.
    pub chunked: bool,
    /// Write a `connection` header.
    pub connection: Option<ConnectionHeader>,
}

/// The `100 Continue` interim response.
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The CRLF that ends every chunk's data.
pub const CHUNK_SUFFIX: &[u8] = b"\r\n";

const CRLF: &[u8] = b"\r\n";
const COLON_SP: &[u8] = b": ";
const TRANSFER_ENCODING_CHUNKED: &[u8] = b"transfer-encoding: chunked\r\n";
const CONTENT_LENGTH: &[u8] = b"content-length: ";
const DATE: &[u8] = b"date: ";
const SERVER: &[u8] = b"server: ";

/// Writes the response head: `HTTP/1.1 <code> <reason>\r\n` (the canonical
/// reason phrase, or none for unknown codes), the application's headers in
/// order, then Date, Server, Content-Length, Transfer-Encoding and
/// Connection as requested, then the empty line. Reserves space once.
pub fn encode_response_head(head: &ResponseHead<'_>, dst: &mut BytesMut) {
    // Status line (at most "HTTP/1.1 999 " + reason + CRLF) and the end.
    // One pass sizes the app's headers and notices a Date or Server it set
    // (standard names compare by tag: no hashing).
    let mut size = 15 + 2 + 40;
    let (mut has_date, mut has_server) = (false, false);
    for (name, value) in head.headers {
        size += name.as_str().len() + value.len() + 4;
        has_date |= name == header::DATE;
        has_server |= name == header::SERVER;
    }
    let date = head.date.filter(|_| !has_date);
    let server = head.server.filter(|_| !has_server);
    if let Some(date) = date {
        size += DATE.len() + date.len() + 2;
    }
    if let Some(server) = server {
        size += SERVER.len() + server.len() + 2;
    }
    if head.content_length.is_some() {
        size += CONTENT_LENGTH.len() + 20 + 2;
    }
    if head.chunked {
        size += TRANSFER_ENCODING_CHUNKED.len();
    }
    if head.connection.is_some() {
        size += 24;
    }
    dst.reserve(size);

    write_status_line(head.status, dst);
    for (name, value) in head.headers {
        dst.put_slice(name.as_str().as_bytes());
        dst.put_slice(COLON_SP);
        dst.put_slice(value.as_bytes());
        dst.put_slice(CRLF);
    }
    if let Some(date) = date {
        dst.put_slice(DATE);
        dst.put_slice(date);
        dst.put_slice(CRLF);
    }
    if let Some(server) = server {
        dst.put_slice(SERVER);
        dst.put_slice(server);
        dst.put_slice(CRLF);
    }
    if let Some(len) = head.content_length {
        dst.put_slice(CONTENT_LENGTH);
        dst.put_slice(itoa::Buffer::new().format(len).as_bytes());
        dst.put_slice(CRLF);
    }
    if head.chunked {
        dst.put_slice(TRANSFER_ENCODING_CHUNKED);
    }
    if let Some(connection) = head.connection {
        dst.put_slice(connection_line(connection));
    }
    dst.put_slice(CRLF);
}

fn write_status_line(status: StatusCode, dst: &mut BytesMut) {
    if let Some(line) = common_status_line(status) {
        dst.put_slice(line);
        return;
    }
    dst.put_slice(b"HTTP/1.1 ");
    dst.put_slice(status.as_str().as_bytes());
    dst.put_u8(b' ');
    if let Some(reason) = status.canonical_reason() {
        dst.put_slice(reason.as_bytes());
    }
    dst.put_slice(CRLF);
}

/// Precomputed status lines for the codes servers send most.
fn common_status_line(status: StatusCode) -> Option<&'static [u8]> {
    Some(match status.as_u16() {
        100 => b"HTTP/1.1 100 Continue\r\n",
        101 => b"HTTP/1.1 101 Switching Protocols\r\n",
        200 => b"HTTP/1.1 200 OK\r\n",
        201 => b"HTTP/1.1 201 Created\r\n",
        202 => b"HTTP/1.1 202 Accepted\r\n",
        204 => b"HTTP/1.1 204 No Content\r\n",
        206 => b"HTTP/1.1 206 Partial Content\r\n",
        301 => b"HTTP/1.1 301 Moved Permanently\r\n",
        302 => b"HTTP/1.1 302 Found\r\n",
        303 => b"HTTP/1.1 303 See Other\r\n",
        304 => b"HTTP/1.1 304 Not Modified\r\n",
        307 => b"HTTP/1.1 307 Temporary Redirect\r\n",
        308 => b"HTTP/1.1 308 Permanent Redirect\r\n",
        400 => b"HTTP/1.1 400 Bad Request\r\n",
        401 => b"HTTP/1.1 401 Unauthorized\r\n",
        403 => b"HTTP/1.1 403 Forbidden\r\n",
        404 => b"HTTP/1.1 404 Not Found\r\n",
        405 => b"HTTP/1.1 405 Method Not Allowed\r\n",
        408 => b"HTTP/1.1 408 Request Timeout\r\n",
        409 => b"HTTP/1.1 409 Conflict\r\n",
        411 => b"HTTP/1.1 411 Length Required\r\n",
        412 => b"HTTP/1.1 412 Precondition Failed\r\n",
        413 => b"HTTP/1.1 413 Payload Too Large\r\n",
        414 => b"HTTP/1.1 414 URI Too Long\r\n",
        415 => b"HTTP/1.1 415 Unsupported Media Type\r\n",
        417 => b"HTTP/1.1 417 Expectation Failed\r\n",
        426 => b"HTTP/1.1 426 Upgrade Required\r\n",
        429 => b"HTTP/1.1 429 Too Many Requests\r\n",
        431 => b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        500 => b"HTTP/1.1 500 Internal Server Error\r\n",
        501 => b"HTTP/1.1 501 Not Implemented\r\n",
        502 => b"HTTP/1.1 502 Bad Gateway\r\n",
        503 => b"HTTP/1.1 503 Service Unavailable\r\n",
        504 => b"HTTP/1.1 504 Gateway Timeout\r\n",
        505 => b"HTTP/1.1 505 HTTP Version Not Supported\r\n",
        _ => return None,
    })
}

/// Writes a chunk header: the size in lowercase hex, then CRLF. The caller
/// writes `len` bytes of data and then [`CHUNK_SUFFIX`]. `len` must not be 0
/// (that is the last chunk: use [`encode_last_chunk`]).
pub fn encode_chunk_header(len: usize, dst: &mut BytesMut) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut tmp = [0u8; 2 * std::mem::size_of::<usize>() + 2];
    let mut i = tmp.len() - 2;
    tmp[i] = b'\r';
    tmp[i + 1] = b'\n';
    let mut n = len;
    loop {
        i -= 1;
        tmp[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&tmp[i..]);
}

/// Writes the last chunk `0\r\n`, the trailer fields (if any) and the final
/// CRLF.
pub fn encode_last_chunk(trailers: Option<&HeaderMap>, dst: &mut BytesMut) {
    let Some(trailers) = trailers.filter(|t| !t.is_empty()) else {
        dst.extend_from_slice(b"0\r\n\r\n");
        return;
    };
    let mut size = 5;
    for (name, value) in trailers {
        size += name.as_str().len() + value.len() + 4;
    }
    dst.reserve(size);
    dst.put_slice(b"0\r\n");
    for (name, value) in trailers {
        dst.put_slice(name.as_str().as_bytes());
        dst.put_slice(COLON_SP);
        dst.put_slice(value.as_bytes());
        dst.put_slice(CRLF);
    }
    dst.put_slice(CRLF);
}
