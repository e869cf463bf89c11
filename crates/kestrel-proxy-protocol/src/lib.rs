//! # kestrel-proxy-protocol
//!
//! The PROXY protocol (HAProxy's, versions 1 and 2) for Kestrel for Rust, for
//! endpoints behind HAProxy, AWS NLB, GCP and other layer-4 load balancers:
//! the balancer sends a header with the client's address before the
//! client's bytes, and the server uses that address.
//!
//! * [`parse`]: the sans-IO parser, a pure function of the bytes received so
//!   far (v1 text, v2 binary with TLVs and CRC32C), with typed errors;
//! * [`ProxyProtocolMiddleware`]: connection middleware (ahead of TLS) that
//!   reads the header within the request-headers timeout, sets the
//!   connection's remote and local addresses from it (so `ConnectionInfo`,
//!   logs and the forwarded-headers logic see the client), records a
//!   [`ProxyProtocolFeature`] with the TLVs, and closes the connection on a
//!   missing, malformed, oversized or late header, or a peer that is not a
//!   trusted proxy. A v2 `LOCAL` header (the proxy's own health check) is
//!   served with the proxy's address.
//!
//! ```
//! use kestrel_core::{KestrelServerOptions};
//! use kestrel_proxy_protocol::{ListenOptionsProxyProtocolExt, ProxyProtocolOptions};
//!
//! let mut options = KestrelServerOptions::default();
//! options.listen("127.0.0.1:8080".parse::<std::net::SocketAddr>().unwrap(), |l| {
//!     l.use_proxy_protocol(
//!         ProxyProtocolOptions::new().trust("10.0.0.0/8".parse::<ipnet::IpNet>().unwrap()),
//!     );
//! });
//! ```
//!
//! Configuration (`kestrel-hosting`): `Kestrel:Endpoints:<Name>:ProxyProtocol`
//! = `Off` | `Required`, and `Kestrel:Endpoints:<Name>:TrustedProxies`.

pub mod header;
mod middleware;
pub mod parse;

pub use header::{ProxyAddresses, ProxyCommand, ProxyHeader, ProxyVersion, SslTlv, Tlv, Tlvs};
pub use ipnet::IpNet;
pub use middleware::{
    AfterTlsError, ListenOptionsProxyProtocolExt, ProxyProtocolError, ProxyProtocolFeature,
    ProxyProtocolMiddleware, ProxyProtocolOptions, DEFAULT_HEADER_TIMEOUT,
};
pub use parse::ParseError;
