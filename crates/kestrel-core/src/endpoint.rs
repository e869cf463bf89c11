//! Endpoint addresses: parsing Kestrel's URL forms and naming bound addresses.
//!
//! | URL | binds |
//! |---|---|
//! | `http://65.55.39.10:80/`, `http://[::1]:80` | that IP address |
//! | `http://localhost:5000` | 127.0.0.1 and ::1, separately |
//! | `http://*:80`, `http://+:80`, `http://contoso.com:80` | every address, IPv4 and IPv6 (dual-mode `[::]`) |
//! | `http://unix:/run/app.sock`, `unix:/run/app.sock` | a Unix domain socket |
//!
//! A transport of the caller's is a [`BindTarget::Custom`] (from code only).
//!
//! Several URLs are separated by `;`. Port 0 asks for a dynamic port (refused
//! for `localhost`, as in Kestrel, because the two sockets could get different ports).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use kestrel_transport::{Address, Listener, ListenerFactory, ListenerOnce};

/// The default URL when nothing is configured.
pub const DEFAULT_URL: &str = "http://localhost:5000";

/// URL scheme of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Cleartext HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Where an endpoint binds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BindTarget {
    /// One IP address and port.
    Ip(SocketAddr),
    /// 127.0.0.1 and ::1 at this port, bound separately.
    Localhost(u16),
    /// Every address: `[::]` dual-mode, or `0.0.0.0` where IPv6 is unavailable.
    AnyIp(u16),
    /// A Unix domain socket at this absolute path.
    Unix(PathBuf),
    /// An inherited, already-bound socket (systemd socket activation, Kestrel's `ListenHandle`).
    Fd(i32),
    /// A transport of the caller's: its [`ListenerFactory`] binds the
    /// listener (see [`BindTarget::custom`] and [`BindTarget::listener`]).
    Custom(CustomTransport),
}

impl BindTarget {
    /// An endpoint whose listener `factory` binds: any transport (vsock, a
    /// TLS terminator, io_uring, …) plugged into the server with
    /// everything a built-in endpoint gets.
    pub fn custom(factory: impl ListenerFactory) -> BindTarget {
        BindTarget::Custom(CustomTransport::new(factory))
    }

    /// An endpoint on a listener bound beforehand (say the in-memory
    /// transport's [`memory_listener`](kestrel_transport::memory::memory_listener)):
    /// it can be bound once, so a reconfiguration cannot bind it again.
    pub fn listener(listener: impl Listener) -> BindTarget {
        BindTarget::custom(ListenerOnce::new(listener))
    }
}

/// A transport of the caller's, as a [`BindTarget`]: a shared
/// [`ListenerFactory`], so that options holding it stay cloneable. Two
/// targets are equal when they share the same factory.
#[derive(Clone)]
pub struct CustomTransport {
    factory: Arc<dyn ListenerFactory>,
}

impl CustomTransport {
    /// A target bound by `factory`.
    pub fn new(factory: impl ListenerFactory) -> CustomTransport {
        CustomTransport {
            factory: Arc::new(factory),
        }
    }

    /// Bind the listener.
    pub fn bind(&self) -> std::io::Result<Box<dyn Listener>> {
        self.factory.bind()
    }

    /// The factory's name (before the listener is bound).
    pub fn name(&self) -> String {
        self.factory.name()
    }

    /// How the endpoint is shown once bound to `local`: `scheme://` and the
    /// listener's address (`http://memory:test`), or the factory's name
    /// when the address is unknown.
    pub fn display(&self, scheme: Scheme, local: &Address) -> BoundAddress {
        let shown = match local {
            Address::Unknown => self.name(),
            a => a.to_string(),
        };
        BoundAddress::other(format!("{}://{shown}", scheme.as_str()))
    }
}

impl fmt::Debug for CustomTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CustomTransport")
            .field(&self.factory.name())
            .finish()
    }
}

impl PartialEq for CustomTransport {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.factory, &other.factory)
    }
}

impl Eq for CustomTransport {}

impl std::hash::Hash for CustomTransport {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.factory) as *const () as usize).hash(state);
    }
}

impl From<CustomTransport> for BindTarget {
    fn from(t: CustomTransport) -> Self {
        BindTarget::Custom(t)
    }
}

impl From<SocketAddr> for BindTarget {
    fn from(a: SocketAddr) -> Self {
        BindTarget::Ip(a)
    }
}

impl From<(IpAddr, u16)> for BindTarget {
    fn from((ip, port): (IpAddr, u16)) -> Self {
        BindTarget::Ip(SocketAddr::new(ip, port))
    }
}

impl From<(Ipv4Addr, u16)> for BindTarget {
    fn from((ip, port): (Ipv4Addr, u16)) -> Self {
        BindTarget::Ip(SocketAddr::new(ip.into(), port))
    }
}

impl From<(Ipv6Addr, u16)> for BindTarget {
    fn from((ip, port): (Ipv6Addr, u16)) -> Self {
        BindTarget::Ip(SocketAddr::new(ip.into(), port))
    }
}

/// A URL that could not be used as an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The URL does not start with `http://` or `https://` (or `unix:`).
    #[error("unrecognized scheme in server address '{0}': 'http://' or 'https://' is required")]
    UnsupportedScheme(String),
    /// The URL has a path other than `/` (Kestrel does not support a path base).
    #[error("a path base can only be configured using the application's pipeline, not in the server address '{0}'")]
    PathBase(String),
    /// The host part is empty or malformed.
    #[error("invalid host in server address '{0}'")]
    InvalidHost(String),
    /// The port is not a number from 0 to 65535.
    #[error("invalid port in server address '{0}'")]
    InvalidPort(String),
    /// Port 0 with `localhost`.
    #[error("dynamic port binding is not supported when binding to localhost; use 127.0.0.1 or [::1] instead ('{0}')")]
    DynamicPortOnLocalhost(String),
    /// A Unix socket path that is not absolute.
    #[error("Unix socket path must be absolute in server address '{0}'")]
    RelativeUnixPath(String),
    /// The URL list had no entries.
    #[error("no server address given")]
    Empty,
}

/// One parsed server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Where it binds.
    pub target: BindTarget,
    /// The URL as written.
    pub original: String,
}

impl ServerUrl {
    /// Parse one URL (see the [module docs](self)).
    pub fn parse(url: &str) -> Result<ServerUrl, UrlError> {
        let original = url.trim().to_string();
        let err_url = || original.clone();
        let lower = original.to_ascii_lowercase();
        let (scheme, rest) = if let Some(r) = strip_prefix_ci(&original, &lower, "http://") {
            (Scheme::Http, r)
        } else if let Some(r) = strip_prefix_ci(&original, &lower, "https://") {
            (Scheme::Https, r)
        } else if let Some(r) = strip_prefix_ci(&original, &lower, "unix:") {
            (
                Scheme::Http,
                &original[original.len() - r.len() - "unix:".len()..],
            )
        } else {
            return Err(UrlError::UnsupportedScheme(err_url()));
        };

        // `unix:/path` (after the scheme, or alone): everything after `unix:` is the path.
        // Compared as bytes: the URL may hold non-ASCII text, and byte 5
        // need not be a char boundary.
        if rest
            .as_bytes()
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"unix:"))
        {
            let path = &rest[5..];
            if path.is_empty() || !path.starts_with('/') {
                return Err(UrlError::RelativeUnixPath(err_url()));
            }
            return Ok(ServerUrl {
                scheme,
                target: BindTarget::Unix(PathBuf::from(path)),
                original,
            });
        }

        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if !(path.is_empty() || path == "/") {
            return Err(UrlError::PathBase(err_url()));
        }
        if authority.contains('@') {
            return Err(UrlError::InvalidHost(err_url()));
        }
        let (host, port) =
            split_host_port(authority).ok_or_else(|| UrlError::InvalidHost(err_url()))?;
        let port = match port {
            None => match scheme {
                Scheme::Http => 80,
                Scheme::Https => 443,
            },
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| UrlError::InvalidPort(err_url()))?,
        };
        let target = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            let ip: Ipv6Addr = v6.parse().map_err(|_| UrlError::InvalidHost(err_url()))?;
            BindTarget::Ip(SocketAddr::new(ip.into(), port))
        } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
            BindTarget::Ip(SocketAddr::new(ip.into(), port))
        } else if host.eq_ignore_ascii_case("localhost") {
            if port == 0 {
                return Err(UrlError::DynamicPortOnLocalhost(err_url()));
            }
            BindTarget::Localhost(port)
        } else if host == "*" || host == "+" || is_host_name(host) {
            BindTarget::AnyIp(port)
        } else {
            return Err(UrlError::InvalidHost(err_url()));
        };
        Ok(ServerUrl {
            scheme,
            target,
            original,
        })
    }

    /// Parse a `;`-separated list of URLs; empty entries are skipped.
    pub fn parse_list(urls: &str) -> Result<Vec<ServerUrl>, UrlError> {
        let list: Vec<ServerUrl> = urls
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(ServerUrl::parse)
            .collect::<Result<_, _>>()?;
        if list.is_empty() {
            return Err(UrlError::Empty);
        }
        Ok(list)
    }
}

fn strip_prefix_ci<'a>(original: &'a str, lower: &str, prefix: &str) -> Option<&'a str> {
    lower.starts_with(prefix).then(|| &original[prefix.len()..])
}

/// Split `host[:port]`, where host may be a bracketed IPv6 literal.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.is_empty() {
        return None;
    }
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let host = &authority[..=end];
        let rest = &authority[end + 1..];
        return match rest {
            "" => Some((host, None)),
            r => r.strip_prefix(':').map(|p| (host, Some(p))),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && !h.is_empty() => Some((h, Some(p))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The display name of a bound endpoint, as Kestrel reports it in
/// `IServerAddressesFeature` (`http://127.0.0.1:54321`, `http://[::]:80`,
/// `http://localhost:5000`, `http://unix:/tmp/k.sock`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BoundAddress(String);

impl BoundAddress {
    /// The display name for a bound IP socket.
    pub fn ip(scheme: Scheme, addr: SocketAddr) -> Self {
        BoundAddress(format!("{}://{}", scheme.as_str(), addr))
    }

    /// The display name for `localhost` at `port`.
    pub fn localhost(scheme: Scheme, port: u16) -> Self {
        BoundAddress(format!("{}://localhost:{port}", scheme.as_str()))
    }

    /// The display name for a Unix socket path.
    pub fn unix(scheme: Scheme, path: &std::path::Path) -> Self {
        BoundAddress(format!("{}://unix:{}", scheme.as_str(), path.display()))
    }

    /// The display name for an inherited file descriptor.
    pub fn fd(scheme: Scheme) -> Self {
        BoundAddress(format!("{}://<file handle>", scheme.as_str()))
    }

    /// A display name of the caller's choosing (custom transports).
    pub fn other(name: impl Into<String>) -> Self {
        BoundAddress(name.into())
    }

    /// The display name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BoundAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> BindTarget {
        ServerUrl::parse(url)
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .target
    }

    #[test]
    fn seed_url_forms() {
        assert_eq!(
            target("http://65.55.39.10:80/"),
            BindTarget::Ip("65.55.39.10:80".parse().unwrap())
        );
        assert_eq!(
            target("http://0.0.0.0:5000"),
            BindTarget::Ip("0.0.0.0:5000".parse().unwrap())
        );
        assert_eq!(
            target("http://[::1]:80"),
            BindTarget::Ip("[::1]:80".parse().unwrap())
        );
        assert_eq!(
            target("http://[::]:0"),
            BindTarget::Ip("[::]:0".parse().unwrap())
        );
        assert_eq!(
            target("http://[0:0:0:0:0:ffff:4137:270a]:80/"),
            BindTarget::Ip("[::ffff:65.55.39.10]:80".parse().unwrap())
        );
        assert_eq!(target("http://contoso.com:80/"), BindTarget::AnyIp(80));
        assert_eq!(target("http://*:80/"), BindTarget::AnyIp(80));
        assert_eq!(target("http://+:8080"), BindTarget::AnyIp(8080));
        assert_eq!(
            target("http://localhost:5000/"),
            BindTarget::Localhost(5000)
        );
        assert_eq!(target("HTTP://LocalHost:5000"), BindTarget::Localhost(5000));
        assert_eq!(
            target("http://unix:/run/dan-live.sock"),
            BindTarget::Unix("/run/dan-live.sock".into())
        );
        assert_eq!(
            target("unix:/tmp/k.sock"),
            BindTarget::Unix("/tmp/k.sock".into())
        );
        assert_eq!(target("http://example.com"), BindTarget::AnyIp(80));
        let u = ServerUrl::parse("https://localhost:5001").unwrap();
        assert_eq!(
            (u.scheme, u.target),
            (Scheme::Https, BindTarget::Localhost(5001))
        );
        assert_eq!(target("https://*"), BindTarget::AnyIp(443));
    }

    #[test]
    fn rejected_urls() {
        let e = |u: &str| ServerUrl::parse(u).unwrap_err();
        assert!(matches!(e("ftp://x:1"), UrlError::UnsupportedScheme(_)));
        assert!(matches!(
            e("localhost:5000"),
            UrlError::UnsupportedScheme(_)
        ));
        assert!(matches!(
            e("http://localhost:5000/base"),
            UrlError::PathBase(_)
        ));
        assert!(matches!(
            e("http://localhost:0"),
            UrlError::DynamicPortOnLocalhost(_)
        ));
        assert!(matches!(
            e("http://127.0.0.1:70000"),
            UrlError::InvalidPort(_)
        ));
        assert!(matches!(e("http://127.0.0.1:x"), UrlError::InvalidPort(_)));
        assert!(matches!(e("http://:80"), UrlError::InvalidHost(_)));
        assert!(matches!(e("http://[::1:80"), UrlError::InvalidHost(_)));
        assert!(matches!(e("http://user@host:80"), UrlError::InvalidHost(_)));
        assert!(matches!(
            e("http://unix:relative.sock"),
            UrlError::RelativeUnixPath(_)
        ));
        assert!(matches!(e("http://bad_host!:80"), UrlError::InvalidHost(_)));
        assert_eq!(ServerUrl::parse_list(" ; "), Err(UrlError::Empty));
    }

    #[test]
    fn url_lists() {
        let list = ServerUrl::parse_list(
            "http://localhost:5000;http://127.0.0.1:0; http://unix:/tmp/a.sock",
        )
        .unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(
            list[1].target,
            BindTarget::Ip("127.0.0.1:0".parse().unwrap())
        );
    }

    #[test]
    fn display_names() {
        assert_eq!(
            BoundAddress::ip(Scheme::Http, "127.0.0.1:54321".parse().unwrap()).as_str(),
            "http://127.0.0.1:54321"
        );
        assert_eq!(
            BoundAddress::ip(Scheme::Http, "[::]:80".parse().unwrap()).as_str(),
            "http://[::]:80"
        );
        assert_eq!(
            BoundAddress::localhost(Scheme::Http, 5000).as_str(),
            "http://localhost:5000"
        );
        assert_eq!(
            BoundAddress::unix(Scheme::Http, std::path::Path::new("/tmp/k.sock")).as_str(),
            "http://unix:/tmp/k.sock"
        );
    }

    /// Found by the `config_values` fuzz target: a URL with non-ASCII text
    /// where `unix:` could start (`http://\u{FFFD}…`) panicked, slicing
    /// inside a character.
    #[test]
    fn a_non_ascii_url_is_an_error_not_a_panic() {
        for url in [
            "http://\u{FFFD}\u{FFFD}calhost:5000",
            "http://ab\u{e9}:1",
            "unix:\u{e9}",
        ] {
            assert!(ServerUrl::parse(url).is_err(), "{url}");
        }
        assert!(matches!(
            ServerUrl::parse("http://unix:/tmp/\u{e9}.sock").map(|u| u.target),
            Ok(BindTarget::Unix(_))
        ));
    }
}
