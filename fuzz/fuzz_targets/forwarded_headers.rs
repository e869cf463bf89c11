//! `X-Forwarded-For`/`-Proto`/`-Host` through `ForwardedHeaders::apply`,
//! with options and the peer picked by the input. (No `Forwarded`
//! (RFC 7239) parser exists: ASP.NET Core's middleware, which this one
//! follows, does not read it either.)
//!
//! Properties: no panic; an untrusted peer changes nothing; the client
//! address is the peer's or one the X-Forwarded-For list names; an applied
//! scheme is an RFC 3986 scheme in lower case; an applied host is a valid
//! authority (and allowed when `AllowedHosts` is set); at most
//! `forward_limit` entries are consumed, from the end, and what is left of
//! X-Forwarded-For is the list's start.
#![no_main]

use std::net::{IpAddr, SocketAddr};

use http::Request;
use kestrel_core::connection::ConnectionId;
use kestrel_core::{ConnectionInfo, RequestBody, RequestFeatures};
use kestrel_hosting::middleware::{
    ForwardedHeader, ForwardedHeaders, ForwardedInfo, HostFiltering,
};
use kestrel_transport::{Address, TransportKind};
use libfuzzer_sys::fuzz_target;

fn entries(req: &Request<RequestBody>, name: &str) -> Vec<String> {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

fuzz_target!(|input: &[u8]| {
    let Some((&opts, rest)) = input.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split('\n');
    let limit = match opts & 3 {
        0 => None,
        n => Some(usize::from(n)),
    };
    let mut fh = ForwardedHeaders::new()
        .forward_limit(limit)
        .require_header_symmetry(opts & 4 != 0);
    if opts & 8 != 0 {
        fh = fh.headers(ForwardedHeader::ALL);
    }
    let allowed = HostFiltering::new("example.com;*.example.net").expect("hosts");
    if opts & 16 != 0 {
        fh = fh.allowed_hosts(allowed.clone());
    }
    let trusted = opts & 32 == 0;
    let peer: SocketAddr = if trusted {
        "127.0.0.1:5000"
    } else {
        "10.0.0.1:5000"
    }
    .parse()
    .expect("addr");
    let mut builder = Request::builder().uri("/").header("host", "origin.test");
    for name in [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-for",
    ] {
        if let Some(v) = lines.next() {
            builder = builder.header(name, v);
        }
    }
    let Ok(mut req) = builder.body(RequestBody::empty()) else {
        return;
    };
    let info = ConnectionInfo::new(
        ConnectionId(1),
        Address::Ip("127.0.0.1:80".parse().expect("addr")),
        Address::Ip(peer),
        TransportKind::Tcp,
        None,
        http::Extensions::new(),
    );
    req.extensions_mut()
        .insert(RequestFeatures::new().with_connection(Some(info)));
    let before = req.headers().clone();
    let xff = entries(&req, "x-forwarded-for");
    fh.apply(&mut req);
    let info = req
        .extensions()
        .get::<ForwardedInfo>()
        .expect("ForwardedInfo")
        .clone();
    if !trusted || !info.forwarded {
        assert_eq!(
            req.headers(),
            &before,
            "headers changed without anything applied"
        );
        assert_eq!(info.remote_addr, Some(peer));
        assert!(!info.forwarded);
        return;
    }
    if let Some(addr) = info.remote_addr {
        if addr != peer {
            let ip: IpAddr = addr.ip();
            assert!(
                xff.iter().any(|e| e.contains(&ip.to_string())
                    || e.parse::<SocketAddr>().ok() == Some(addr)
                    || e.trim_matches(['[', ']']).parse::<IpAddr>().ok() == Some(ip)),
                "{addr} is not in {xff:?}"
            );
        }
    }
    let mut chars = info.scheme.chars();
    assert!(
        chars.next().is_some_and(|c| c.is_ascii_lowercase()),
        "scheme {:?}",
        info.scheme
    );
    assert!(
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.')),
        "scheme {:?}",
        info.scheme
    );
    if let Some(host) = &info.host {
        if host != "origin.test" {
            assert!(
                host.parse::<http::uri::Authority>().is_ok() && !host.contains('@'),
                "host {host:?}"
            );
            if opts & 16 != 0 {
                assert!(
                    allowed.is_host_allowed(host),
                    "host {host:?} is not allowed"
                );
            }
        }
    }
    let left = entries(&req, "x-forwarded-for");
    if left != xff {
        assert!(
            xff.starts_with(&left),
            "X-Forwarded-For left {left:?} of {xff:?}"
        );
        if let Some(limit) = limit {
            assert!(
                xff.len() - left.len() <= limit,
                "more than {limit} entries consumed"
            );
        }
    }
});
