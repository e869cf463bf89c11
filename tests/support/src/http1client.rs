//! Helpers for the middleware tests: run a pipeline on a real Kestrel server
//! and talk HTTP/1.x to it over a raw socket, with the replies parsed.

use std::net::SocketAddr;
use std::time::Duration;

use kestrel::{Application, KestrelServer, KestrelServerOptions, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Start `app` on `http://127.0.0.1:0`.
pub async fn start<A: Application>(app: A) -> (RunningServer, SocketAddr) {
    start_on("http://127.0.0.1:0", app).await
}

/// Start `app` on `url` (port 0).
pub async fn start_on<A: Application>(url: &str, app: A) -> (RunningServer, SocketAddr) {
    let server = KestrelServer::new(KestrelServerOptions::default())
        .urls([url])
        .start(app)
        .await
        .expect("server starts");
    let first = server
        .addresses()
        .iter()
        .next()
        .expect("an address")
        .as_str()
        .to_string();
    let addr = first
        .trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|_| "127.0.0.1:0".parse().unwrap());
    (server, addr)
}

/// A parsed response.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The header fields, in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked when it was chunked.
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Parse a whole response (one, read to close).
pub fn parse(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_txt = String::from_utf8_lossy(&b[..nl]);
        let size = usize::from_str_radix(size_txt.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[nl + 2 + size + 2..];
    }
}

/// Send raw request bytes, read until the server closes, parse.
pub async fn send(addr: SocketAddr, request: &str) -> Reply {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the server answers within 10 s")
        .ok();
    parse(&out)
}

/// `GET path` over HTTP/1.1 with `Host` and extra header lines, `Connection: close`.
pub async fn get(addr: SocketAddr, path: &str, host: &str, extra: &[&str]) -> Reply {
    request(addr, "GET", path, host, extra).await
}

/// `method path` over HTTP/1.1 with `Host` and extra header lines, `Connection: close`.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    extra: &[&str],
) -> Reply {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    send(addr, &req).await
}
