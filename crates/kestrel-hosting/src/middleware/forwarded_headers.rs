//! Forwarded headers: behind a reverse proxy (nginx), let the app see the
//! client's address, scheme and host that the proxy forwarded in
//! `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` — only when
//! the proxy is trusted. After ASP.NET Core's `ForwardedHeadersMiddleware`.
//!
//! How it works (as ASP.NET Core does it):
//!
//! - Each header is a comma-separated list, one entry per hop, the nearest
//!   proxy's last. Entries are consumed from the end, at most
//!   [`forward_limit`](ForwardedHeaders::forward_limit) of them (default 1).
//! - Before consuming an entry, the address it came from must be trusted:
//!   first the connection's peer, then each forwarded address in turn. Trusted
//!   means listed in [`known_proxy`](ForwardedHeaders::known_proxy) or inside a
//!   [`known_network`](ForwardedHeaders::known_network) (defaults: `::1` and
//!   `127.0.0.0/8`, as in ASP.NET Core; IPv4-mapped IPv6 addresses count as
//!   IPv4). A Unix-socket peer (nginx `proxy_pass http://unix:…`) has no
//!   address: it is trusted only with
//!   [`trust_unix_socket_peers(true)`](ForwardedHeaders::trust_unix_socket_peers).
//!   With both lists cleared ([`clear_known`](ForwardedHeaders::clear_known))
//!   every peer is trusted, as in ASP.NET Core: only do that when nothing but
//!   the proxy can reach the server.
//! - An unparsable address, an invalid scheme or host, or a forwarded host
//!   outside [`allowed_hosts`](ForwardedHeaders::allowed_hosts) stops the
//!   walk; what was consumed so far is applied.
//! - When anything was applied, the original values move to
//!   `X-Original-For` (`ip:port` of the peer), `X-Original-Proto` and
//!   `X-Original-Host`; the unconsumed entries stay in the `X-Forwarded-*`
//!   headers (which are removed when all were consumed); an applied
//!   `X-Forwarded-Host` replaces `Host` (and the target URI's authority when it
//!   has one).
//!
//! Every request then carries a [`ForwardedInfo`] extension with the
//! effective client address, scheme and host (the connection's own when
//! nothing was forwarded): read it instead of the connection's remote address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::BitOr;
use std::str::FromStr;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::{header, Request};
use kestrel_core::{ConnectionInfo, RequestBody, RequestFeaturesExt, TlsInfo};
use kestrel_transport::Address;

use super::host_filtering::HostFiltering;
use crate::pipeline::{BoxResponseFuture, Middleware, Next};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_ORIGINAL_FOR: HeaderName = HeaderName::from_static("x-original-for");
const X_ORIGINAL_PROTO: HeaderName = HeaderName::from_static("x-original-proto");
const X_ORIGINAL_HOST: HeaderName = HeaderName::from_static("x-original-host");

/// Which `X-Forwarded-*` headers to honour (ASP.NET Core's `ForwardedHeaders`
/// flags). Combine with `|`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ForwardedHeader(u8);

impl ForwardedHeader {
    /// None.
    pub const NONE: ForwardedHeader = ForwardedHeader(0);
    /// `X-Forwarded-For`: the client address.
    pub const FOR: ForwardedHeader = ForwardedHeader(1);
    /// `X-Forwarded-Proto`: the scheme the client used.
    pub const PROTO: ForwardedHeader = ForwardedHeader(2);
    /// `X-Forwarded-Host`: the `Host` the client sent.
    pub const HOST: ForwardedHeader = ForwardedHeader(4);
    /// All three.
    pub const ALL: ForwardedHeader = ForwardedHeader(7);

    /// Whether all of `other` is in `self`.
    pub fn contains(self, other: ForwardedHeader) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for ForwardedHeader {
    type Output = ForwardedHeader;
    fn bitor(self, rhs: Self) -> Self {
        ForwardedHeader(self.0 | rhs.0)
    }
}

impl fmt::Debug for ForwardedHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names = Vec::new();
        for (flag, name) in [
            (Self::FOR, "FOR"),
            (Self::PROTO, "PROTO"),
            (Self::HOST, "HOST"),
        ] {
            if self.contains(flag) {
                names.push(name);
            }
        }
        if names.is_empty() {
            names.push("NONE");
        }
        f.write_str(&names.join(" | "))
    }
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`), for
/// [`ForwardedHeaders::known_network`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix_len: u8,
}

/// An invalid [`IpNetwork`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid IP network '{0}' (expected CIDR notation such as 10.0.0.0/8)")]
pub struct IpNetworkError(String);

impl IpNetwork {
    /// A network from its address and prefix length (fails when the prefix
    /// is longer than the address).
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<Self, IpNetworkError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(IpNetworkError(format!("{addr}/{prefix_len}")));
        }
        Ok(IpNetwork { addr, prefix_len })
    }

    /// The network's address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` is inside the network (IPv4-mapped IPv6 addresses are
    /// compared as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNetwork {
    type Err = IpNetworkError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IpNetworkError(s.to_string());
        let (addr, len) = s.trim().split_once('/').ok_or_else(err)?;
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let len: u8 = len.parse().map_err(|_| err())?;
        IpNetwork::new(addr, len).map_err(|_| err())
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// The effective client address, scheme and host of a request, after
/// forwarded headers were applied (the connection's own values when nothing
/// was forwarded or the peer is not trusted). Inserted in every request's
/// extensions by [`ForwardedHeaders`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForwardedInfo {
    /// The client's address (port 0 when the proxy sent only an IP); `None`
    /// when the peer has no IP address (Unix socket, in-memory) and nothing
    /// was forwarded.
    pub remote_addr: Option<SocketAddr>,
    /// The scheme (`http`, `https`, …).
    pub scheme: String,
    /// The host (the `Host` header, or the forwarded host), if any.
    pub host: Option<String>,
    /// Whether any forwarded value was applied.
    pub forwarded: bool,
}

/// The forwarded-headers middleware. Cheap to clone.
#[derive(Clone)]
pub struct ForwardedHeaders {
    inner: Arc<Options>,
}

#[derive(Clone)]
struct Options {
    headers: ForwardedHeader,
    known_proxies: Vec<IpAddr>,
    known_networks: Vec<IpNetwork>,
    forward_limit: Option<usize>,
    require_header_symmetry: bool,
    trust_unix: bool,
    allowed_hosts: Option<HostFiltering>,
}

impl fmt::Debug for ForwardedHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.inner;
        f.debug_struct("ForwardedHeaders")
            .field("headers", &o.headers)
            .field("known_proxies", &o.known_proxies)
            .field("known_networks", &o.known_networks)
            .field("forward_limit", &o.forward_limit)
            .field("require_header_symmetry", &o.require_header_symmetry)
            .field("trust_unix_socket_peers", &o.trust_unix)
            .field("allowed_hosts", &o.allowed_hosts)
            .finish()
    }
}

impl Default for ForwardedHeaders {
    fn default() -> Self {
        Self::new()
    }
}

impl ForwardedHeaders {
    /// Honour `X-Forwarded-For` and `X-Forwarded-Proto` (the pair ASP.NET
    /// Core's nginx guide enables) from `::1` and `127.0.0.0/8`, one hop.
    pub fn new() -> Self {
        ForwardedHeaders {
            inner: Arc::new(Options {
                headers: ForwardedHeader::FOR | ForwardedHeader::PROTO,
                known_proxies: vec![IpAddr::V6(Ipv6Addr::LOCALHOST)],
                known_networks: vec![IpNetwork {
                    addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                    prefix_len: 8,
                }],
                forward_limit: Some(1),
                require_header_symmetry: false,
                trust_unix: false,
                allowed_hosts: None,
            }),
        }
    }

    fn opts(&mut self) -> &mut Options {
        Arc::make_mut(&mut self.inner)
    }

    /// Choose the headers to honour (e.g. `ForwardedHeader::ALL`). Enable
    /// `HOST` only behind a proxy that sets it, and consider
    /// [`allowed_hosts`](Self::allowed_hosts).
    pub fn headers(mut self, headers: ForwardedHeader) -> Self {
        self.opts().headers = headers;
        self
    }

    /// Trust one more proxy address.
    pub fn known_proxy(mut self, ip: IpAddr) -> Self {
        self.opts().known_proxies.push(ip.to_canonical());
        self
    }

    /// Trust one more network.
    pub fn known_network(mut self, network: IpNetwork) -> Self {
        self.opts().known_networks.push(network);
        self
    }

    /// Forget the known proxies and networks, defaults included. With both
    /// lists empty, **every** peer is trusted (as in ASP.NET Core).
    pub fn clear_known(mut self) -> Self {
        let o = self.opts();
        o.known_proxies.clear();
        o.known_networks.clear();
        self
    }

    /// How many hops to consume at most (`None`: no limit). Default 1.
    pub fn forward_limit(mut self, limit: Option<usize>) -> Self {
        self.opts().forward_limit = limit;
        self
    }

    /// Require the enabled headers to have the same number of entries, and
    /// ignore them all otherwise. Default off.
    pub fn require_header_symmetry(mut self, on: bool) -> Self {
        self.opts().require_header_symmetry = on;
        self
    }

    /// Trust peers on Unix-socket endpoints (a local nginx proxying to
    /// `http://unix:/run/app.sock`). Default off: anyone who can connect to
    /// the socket could then claim any client address, so restrict the
    /// socket's permissions to the proxy.
    pub fn trust_unix_socket_peers(mut self, on: bool) -> Self {
        self.opts().trust_unix = on;
        self
    }

    /// Accept a forwarded host only if it passes these allowed hosts
    /// (same `;`-separated rules as [`HostFiltering`]).
    pub fn allowed_hosts(mut self, hosts: HostFiltering) -> Self {
        self.opts().allowed_hosts = Some(hosts);
        self
    }

    fn check_known(&self) -> bool {
        !self.inner.known_proxies.is_empty() || !self.inner.known_networks.is_empty()
    }

    fn is_known(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.inner.known_proxies.contains(&ip)
            || self.inner.known_networks.iter().any(|n| n.contains(ip))
    }

    /// Apply the forwarded headers to `req` and record a [`ForwardedInfo`].
    pub fn apply(&self, req: &mut Request<RequestBody>) {
        let conn = req.features().and_then(|f| f.connection());
        let peer = conn.map(|c| c.remote_addr().clone());
        let original_scheme = request_scheme(req, conn);
        let original_host = request_host(req);
        let peer_ip = match &peer {
            Some(Address::Ip(sa)) => Some(*sa),
            _ => None,
        };
        let mut info = ForwardedInfo {
            remote_addr: peer_ip,
            scheme: original_scheme,
            host: original_host,
            forwarded: false,
        };
        let o = &*self.inner;
        let want_for = o.headers.contains(ForwardedHeader::FOR);
        let want_proto = o.headers.contains(ForwardedHeader::PROTO);
        let want_host = o.headers.contains(ForwardedHeader::HOST);
        let for_list = if want_for {
            values(req, &X_FORWARDED_FOR)
        } else {
            Vec::new()
        };
        let proto_list = if want_proto {
            values(req, &X_FORWARDED_PROTO)
        } else {
            Vec::new()
        };
        let host_list = if want_host {
            values(req, &X_FORWARDED_HOST)
        } else {
            Vec::new()
        };
        let mut entries = for_list.len().max(proto_list.len()).max(host_list.len());
        if entries == 0 {
            req.extensions_mut().insert(info);
            return;
        }
        let symmetric = (!want_for || !want_proto || for_list.len() == proto_list.len())
            && (!want_for || !want_host || for_list.len() == host_list.len())
            && (!want_proto || !want_host || proto_list.len() == host_list.len());
        if o.require_header_symmetry && !symmetric {
            tracing::warn!(target: "kestrel::hosting::forwarded_headers", "Parameter count mismatch between X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host; forwarded headers ignored");
            req.extensions_mut().insert(info);
            return;
        }
        if let Some(limit) = o.forward_limit {
            entries = entries.min(limit);
        }
        let nth_from_end = |list: &Vec<String>, i: usize| -> Option<String> {
            list.len()
                .checked_sub(i + 1)
                .and_then(|j| list.get(j))
                .cloned()
        };
        let check_known = self.check_known();
        // The address whose claims are being considered: first the peer.
        let mut current = peer_ip;
        let mut current_is_unix = matches!(peer, Some(Address::Unix(_)));
        let (mut scheme, mut host) = (info.scheme.clone(), info.host.clone());
        let mut consumed = 0usize;
        for i in 0..entries {
            if check_known {
                let trusted = match current {
                    Some(sa) => self.is_known(sa.ip()),
                    None => current_is_unix && o.trust_unix,
                };
                if !trusted {
                    tracing::debug!(target: "kestrel::hosting::forwarded_headers", peer = ?current, "Unknown proxy: forwarded headers not applied");
                    break;
                }
            }
            if want_for {
                match nth_from_end(&for_list, i) {
                    Some(text) => match parse_endpoint(&text) {
                        Some(sa) => {
                            current = Some(sa);
                            current_is_unix = false;
                        }
                        None => {
                            tracing::debug!(target: "kestrel::hosting::forwarded_headers", value = %text, "Unparsable X-Forwarded-For entry");
                            break;
                        }
                    },
                    None if o.require_header_symmetry => break,
                    None => {}
                }
            }
            if want_proto {
                match nth_from_end(&proto_list, i) {
                    Some(p) if valid_scheme(&p) => scheme = p.to_ascii_lowercase(),
                    Some(_) => break,
                    None if o.require_header_symmetry => break,
                    None => {}
                }
            }
            if want_host {
                match nth_from_end(&host_list, i) {
                    Some(h)
                        if valid_host(&h)
                            && o.allowed_hosts
                                .as_ref()
                                .is_none_or(|f| f.is_host_allowed(&h)) =>
                    {
                        host = Some(h)
                    }
                    Some(_) => break,
                    None if o.require_header_symmetry => break,
                    None => {}
                }
            }
            consumed += 1;
        }
        if consumed == 0 {
            req.extensions_mut().insert(info);
            return;
        }
        let headers = req.headers_mut();
        if want_for && current != info.remote_addr {
            if let Some(sa) = info.remote_addr {
                if let Ok(v) = HeaderValue::from_str(&sa.to_string()) {
                    headers.insert(X_ORIGINAL_FOR, v);
                }
            }
            keep_rest(headers, X_FORWARDED_FOR, &for_list, consumed);
            info.remote_addr = current;
        }
        if want_proto && !proto_list.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&info.scheme) {
                headers.insert(X_ORIGINAL_PROTO, v);
            }
            keep_rest(headers, X_FORWARDED_PROTO, &proto_list, consumed);
            info.scheme = scheme;
        }
        if want_host && !host_list.is_empty() && host != info.host {
            if let Some(original) = &info.host {
                if let Ok(v) = HeaderValue::from_str(original) {
                    headers.insert(X_ORIGINAL_HOST, v);
                }
            }
            keep_rest(headers, X_FORWARDED_HOST, &host_list, consumed);
            if let Some(h) = &host {
                if let Ok(v) = HeaderValue::from_str(h) {
                    headers.insert(header::HOST, v);
                }
                if req.uri().authority().is_some() {
                    let mut parts = req.uri().clone().into_parts();
                    if let Ok(a) = h.parse() {
                        parts.authority = Some(a);
                        if let Ok(uri) = http::Uri::from_parts(parts) {
                            *req.uri_mut() = uri;
                        }
                    }
                }
            }
            info.host = host;
        }
        info.forwarded = true;
        req.extensions_mut().insert(info);
    }
}

/// The unconsumed entries stay; the header goes when all were consumed.
fn keep_rest(headers: &mut http::HeaderMap, name: HeaderName, list: &[String], consumed: usize) {
    let keep = list.len().saturating_sub(consumed);
    headers.remove(&name);
    if keep > 0 {
        if let Ok(v) = HeaderValue::from_str(&list[..keep].join(", ")) {
            headers.insert(name, v);
        }
    }
}

/// All comma-separated entries of every `name` header, trimmed, non-empty.
fn values(req: &Request<RequestBody>, name: &HeaderName) -> Vec<String> {
    let mut out = Vec::new();
    for v in req.headers().get_all(name) {
        let Ok(s) = v.to_str() else {
            // An unreadable header: stop at it, as an unparsable entry would.
            out.push(String::new());
            continue;
        };
        out.extend(
            s.split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_string),
        );
    }
    out
}

/// `1.2.3.4`, `1.2.3.4:5`, `::1`, `[::1]`, `[::1]:5` (port 0 when absent).
fn parse_endpoint(text: &str) -> Option<SocketAddr> {
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Some(sa);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<Ipv6Addr>()
        .ok()
        .map(|ip| SocketAddr::new(IpAddr::V6(ip), 0))
}

/// RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
fn valid_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// A `host[:port]` authority without user info.
fn valid_host(s: &str) -> bool {
    !s.contains('@') && s.parse::<http::uri::Authority>().is_ok()
}

/// The scheme the request arrived with.
fn request_scheme(req: &Request<RequestBody>, conn: Option<&ConnectionInfo>) -> String {
    if let Some(s) = req.uri().scheme_str() {
        return s.to_ascii_lowercase();
    }
    let tls = conn.is_some_and(|c| {
        c.features().get::<TlsInfo>().is_some()
            || c.endpoint()
                .is_some_and(|e| e.as_str().starts_with("https://"))
    });
    if tls { "https" } else { "http" }.to_string()
}

/// The request's host: `Host`, else the target's authority.
fn request_host(req: &Request<RequestBody>) -> Option<String> {
    match req.headers().get(header::HOST) {
        Some(v) => v
            .to_str()
            .ok()
            .map(str::to_string)
            .filter(|s| !s.is_empty()),
        None => req.uri().authority().map(|a| a.as_str().to_string()),
    }
}

impl Middleware for ForwardedHeaders {
    fn call(&self, mut req: Request<RequestBody>, next: Next) -> BoxResponseFuture {
        self.apply(&mut req);
        next.run(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let n: IpNetwork = "10.0.0.0/8".parse().expect("net");
        assert!(n.contains("10.1.2.3".parse().expect("ip")));
        assert!(n.contains("::ffff:10.1.2.3".parse().expect("ip")));
        assert!(!n.contains("11.0.0.1".parse().expect("ip")));
        let all: IpNetwork = "0.0.0.0/0".parse().expect("net");
        assert!(all.contains("1.2.3.4".parse().expect("ip")));
        let v6: IpNetwork = "fd00::/8".parse().expect("net");
        assert!(v6.contains("fd12::1".parse().expect("ip")));
        assert!("10.0.0.0/33".parse::<IpNetwork>().is_err());
        assert!("10.0.0.0".parse::<IpNetwork>().is_err());
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("1.2.3.4"),
            Some("1.2.3.4:0".parse().expect("sa"))
        );
        assert_eq!(
            parse_endpoint("[::1]:80"),
            Some("[::1]:80".parse().expect("sa"))
        );
        assert_eq!(
            parse_endpoint("[::1]"),
            Some("[::1]:0".parse().expect("sa"))
        );
        assert_eq!(parse_endpoint("::1"), Some("[::1]:0".parse().expect("sa")));
        assert_eq!(parse_endpoint("unknown"), None);
        assert!(valid_scheme("https") && !valid_scheme("ht tp") && !valid_scheme(""));
        assert!(valid_host("example.com:443") && !valid_host("a@b") && !valid_host("a b"));
    }
}
