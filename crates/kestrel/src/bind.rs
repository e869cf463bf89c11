//! Binding endpoints (Kestrel's `AddressBinder`): which endpoints win, and how
//! each kind of address becomes one or more listeners.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use kestrel_core::endpoint::DEFAULT_URL;
use kestrel_core::{
    BindTarget, BoundAddress, HttpProtocols, KestrelServerOptions, ListenOptions, Scheme, ServerUrl,
};
use kestrel_transport::tcp::{bind_tcp, TcpOptions};
use kestrel_transport::Listener;

use crate::error::StartError;

/// Server-wide HTTPS defaults (Kestrel's `ConfigureHttpsDefaults`), applied
/// to every `https://` URL endpoint. Without a certificate in them, the
/// development certificate is used, as Kestrel falls back to its dev cert.
#[derive(Debug, Clone, Default)]
pub(crate) struct HttpsDefaults {
    #[cfg(feature = "tls")]
    pub options: Option<kestrel_tls::HttpsOptions>,
}

impl HttpsDefaults {
    /// The HTTPS options for an `https://` URL endpoint, loading the
    /// development certificate (once per start) when no certificate is set.
    #[cfg(feature = "tls")]
    fn resolve(
        &self,
        cache: &mut Option<kestrel_tls::HttpsOptions>,
    ) -> Result<kestrel_tls::HttpsOptions, StartError> {
        if let Some(resolved) = cache {
            return Ok(resolved.clone());
        }
        let mut options = self.options.clone().unwrap_or_default();
        if !options.has_server_certificate() {
            let dev = kestrel_tls::DevCertificate::load_or_create()?;
            tracing::info!(target: "kestrel", path = %dev.path().display(), "using the development certificate for HTTPS endpoints without a certificate");
            options.server_certificate = Some(dev.certificate().clone());
        }
        *cache = Some(options.clone());
        Ok(options)
    }
}

/// An endpoint to bind: its options and scheme.
pub(crate) struct EndpointPlan {
    pub options: ListenOptions,
    pub scheme: Scheme,
}

/// One bound listener, with the endpoint it belongs to.
pub(crate) struct BoundListener {
    pub listener: Box<dyn Listener>,
    pub endpoint: Arc<ListenOptions>,
    pub address: BoundAddress,
    /// The QUIC listener on the same address and port, when the endpoint
    /// serves HTTP/3.
    #[cfg(feature = "http3")]
    pub quic: Option<QuicSide>,
}

/// An HTTP/3 endpoint's UDP side.
#[cfg(feature = "http3")]
pub(crate) enum QuicSide {
    /// Bound and serving.
    Bound(kestrel_transport::quic::QuicListener),
    /// In the process that took over in a zero-downtime restart: the UDP
    /// port is still the previous process's, whose QUIC connections drain
    /// on it (a UDP socket cannot be shared as a TCP listener is: their
    /// datagrams would reach this process). It is bound once the previous
    /// process lets it go; meanwhile clients use HTTP/1.1 and HTTP/2.
    Waiting {
        addr: std::net::SocketAddr,
        tls: kestrel_tls::EndpointTls,
        options: kestrel_transport::quic::QuicOptions,
    },
}

#[cfg(feature = "http3")]
impl QuicSide {
    /// The UDP address (bound, or to be bound).
    pub fn socket_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            QuicSide::Bound(q) => q.socket_addr(),
            QuicSide::Waiting { addr, .. } => Some(*addr),
        }
    }
}

/// Decide the endpoints, as Kestrel does: code-configured `listen` endpoints
/// win over URLs (with a warning) unless `prefer_urls`; then the URLs; then
/// `http://localhost:5000`. `https://` URLs get the HTTPS defaults (with
/// the `tls` feature; without it they are an error).
pub(crate) fn plan_endpoints(
    options: &KestrelServerOptions,
    urls: &[String],
    prefer_urls: bool,
    https: &HttpsDefaults,
) -> Result<Vec<EndpointPlan>, StartError> {
    #[cfg(feature = "tls")]
    let mut resolved_https = None;
    #[cfg(not(feature = "tls"))]
    let _ = https;
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    let mut from_urls = |list: &[String]| -> Result<Vec<EndpointPlan>, StartError> {
        let mut plans = Vec::new();
        for entry in list {
            for url in ServerUrl::parse_list(entry)? {
                let mut opts = ListenOptions::new(url.target);
                options.apply_endpoint_defaults(&mut opts);
                if url.scheme == Scheme::Https {
                    #[cfg(feature = "tls")]
                    {
                        use kestrel_tls::ListenOptionsHttpsExt;
                        opts.try_use_https(https.resolve(&mut resolved_https)?)?;
                    }
                    #[cfg(not(feature = "tls"))]
                    return Err(StartError::TlsNotConfigured(url.original));
                }
                plans.push(EndpointPlan {
                    options: opts,
                    scheme: url.scheme,
                });
            }
        }
        Ok(plans)
    };
    let has_urls = urls.iter().any(|u| !u.trim().is_empty());
    if has_urls && (prefer_urls || options.listen.is_empty()) {
        if prefer_urls && !options.listen.is_empty() {
            tracing::info!(target: "kestrel", "overriding endpoints defined in code: binding to the URLs ({}) because prefer_urls is set", urls.join(";"));
        }
        return from_urls(urls);
    }
    if !options.listen.is_empty() {
        if has_urls {
            tracing::warn!(target: "kestrel", "overriding address(es) '{}': binding to the endpoints configured in code instead", urls.join(";"));
        }
        return Ok(options
            .listen
            .iter()
            .map(|o| EndpointPlan {
                options: o.clone(),
                scheme: o.scheme,
            })
            .collect());
    }
    tracing::debug!(target: "kestrel", "no URLs or endpoints configured: binding to the default address {DEFAULT_URL}");
    from_urls(&[DEFAULT_URL.to_string()])
}

fn bind_err(address: impl Into<String>, source: io::Error) -> StartError {
    StartError::Bind {
        address: address.into(),
        source,
    }
}

/// An error that means "this address family is not available here", which
/// `localhost` and any-IP binding tolerate.
fn family_unavailable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported
    ) || matches!(
        e.raw_os_error(),
        Some(97 /* EAFNOSUPPORT */) | Some(99 /* EADDRNOTAVAIL */)
    )
}

/// An inherited listener and its display address.
type Inherited = (Box<dyn Listener>, BoundAddress);

/// The QUIC transport options of HTTP/3 endpoints (nothing without the
/// `http3` feature).
#[cfg(feature = "http3")]
pub(crate) type QuicSettings = kestrel_transport::quic::QuicOptions;
/// The QUIC transport options of HTTP/3 endpoints (nothing without the
/// `http3` feature).
#[cfg(not(feature = "http3"))]
pub(crate) type QuicSettings = ();

/// The listener inherited from the previous process for `addr` (a
/// zero-downtime restart), with its display address.
fn inherited_tcp(
    addr: SocketAddr,
    tcp: &TcpOptions,
    scheme: Scheme,
) -> Result<Option<Inherited>, StartError> {
    #[cfg(unix)]
    if let Some(l) = crate::handover::take_tcp(addr, tcp) {
        let l = l.map_err(|e| bind_err(BoundAddress::ip(scheme, addr).to_string(), e))?;
        let bound = match l.local_addr() {
            kestrel_transport::Address::Ip(a) => *a,
            _ => addr,
        };
        return Ok(Some((l, BoundAddress::ip(scheme, bound))));
    }
    #[cfg(not(unix))]
    let _ = (addr, tcp, scheme);
    Ok(None)
}

/// How an endpoint is named in errors: its configuration section, or its
/// address.
fn endpoint_name(options: &ListenOptions, scheme: Scheme) -> String {
    let address = match &options.target {
        BindTarget::Ip(addr) => BoundAddress::ip(scheme, *addr).to_string(),
        BindTarget::Localhost(port) => BoundAddress::localhost(scheme, *port).to_string(),
        BindTarget::AnyIp(port) => format!("{}://*:{port}", scheme.as_str()),
        other => format!("{other:?}"),
    };
    match &options.config_name {
        Some(name) => format!("'Kestrel:Endpoints:{name}' ({address})"),
        None => address,
    }
}

/// Bind one endpoint into one or more listeners: TCP (or the endpoint's
/// transport), and, for an HTTPS endpoint whose protocols include HTTP/3, a
/// QUIC listener on each TCP listener's address and port (after port 0, the
/// port TCP got).
///
/// `keep_alive_timeout` (the server's `KeepAliveTimeout`) is the QUIC idle
/// timeout of HTTP/3 connections.
pub(crate) fn bind_endpoint(
    plan: EndpointPlan,
    tcp: &TcpOptions,
    quic: &QuicSettings,
    keep_alive_timeout: std::time::Duration,
) -> Result<Vec<BoundListener>, StartError> {
    let wants_h3 = plan.options.protocols.contains(HttpProtocols::HTTP3);
    if wants_h3 && (plan.scheme != Scheme::Https || plan.options.tls_config().is_none()) {
        return Err(StartError::Http3NeedsTls(endpoint_name(
            &plan.options,
            plan.scheme,
        )));
    }
    #[cfg(not(feature = "http3"))]
    if wants_h3 {
        tracing::warn!(target: "kestrel", endpoint = %endpoint_name(&plan.options, plan.scheme), "HTTP/3 is not compiled in (the `http3` feature of the `kestrel` crate): serving HTTP/1.1 and HTTP/2 only");
    }
    #[cfg_attr(not(feature = "http3"), allow(unused_mut))]
    let mut listeners = bind_transport(plan, tcp)?;
    #[cfg(feature = "http3")]
    if wants_h3 {
        for l in &mut listeners {
            l.quic = Some(bind_quic(l, quic, keep_alive_timeout)?);
        }
    }
    #[cfg(not(feature = "http3"))]
    let _ = (quic, keep_alive_timeout);
    Ok(listeners)
}

/// The QUIC listener for `l`'s endpoint, on the address and port its TCP
/// listener is bound to, with the endpoint's certificate.
#[cfg(feature = "http3")]
fn bind_quic(
    l: &BoundListener,
    quic: &QuicSettings,
    keep_alive_timeout: std::time::Duration,
) -> Result<QuicSide, StartError> {
    use kestrel_transport::quic::{QuicBindError, QuicListener};
    let quic_err = |source: QuicBindError| StartError::Quic {
        address: l.address.to_string(),
        source,
    };
    let addr = match l.listener.local_addr() {
        kestrel_transport::Address::Ip(a) => *a,
        other => {
            return Err(StartError::Unsupported(format!(
                "HTTP/3 on {} ({other:?}): QUIC needs an IP address",
                l.address
            )))
        }
    };
    let tls = l
        .endpoint
        .tls_config()
        .and_then(|c| c.downcast_ref::<kestrel_tls::EndpointTls>())
        .ok_or_else(|| StartError::Http3NeedsTls(endpoint_name(&l.endpoint, Scheme::Https)))?;
    // Kestrel's QuicTransportOptions defaults, with the idle timeout from
    // KeepAliveTimeout and the endpoint's TLS handshake timeout.
    let mut options = quic.clone();
    options.idle_timeout = keep_alive_timeout;
    options.handshake_timeout = tls.handshake_timeout;
    let quic = match QuicListener::bind(addr, (*tls.server_config).clone(), &options) {
        Ok(quic) => quic,
        Err(QuicBindError::Bind { source, .. })
            if source.kind() == std::io::ErrorKind::AddrInUse && crate::handover::is_handover() =>
        {
            tracing::info!(target: "kestrel", address = %l.address, udp = %addr, "HTTP/3 on {} waits for the previous process to release UDP {addr} (zero-downtime restart); HTTP/1.1 and HTTP/2 are served meanwhile", l.address);
            return Ok(QuicSide::Waiting {
                addr,
                tls: tls.clone(),
                options,
            });
        }
        Err(e) => return Err(quic_err(e)),
    };
    tracing::info!(target: "kestrel", address = %l.address, udp = %addr, "Now listening on: {} (HTTP/3 over QUIC, UDP {addr})", l.address);
    Ok(QuicSide::Bound(quic))
}

/// Bind one endpoint's transport into one or more listeners.
fn bind_transport(plan: EndpointPlan, tcp: &TcpOptions) -> Result<Vec<BoundListener>, StartError> {
    let scheme = plan.scheme;
    let endpoint = Arc::new(plan.options);
    let mk = |listener: Box<dyn Listener>, address: BoundAddress| BoundListener {
        listener,
        endpoint: endpoint.clone(),
        address,
        #[cfg(feature = "http3")]
        quic: None,
    };
    match endpoint.target.clone() {
        BindTarget::Ip(addr) => {
            if let Some(l) = inherited_tcp(addr, tcp, scheme)? {
                return Ok(vec![mk(l.0, l.1)]);
            }
            let l = bind_tcp(addr, tcp)
                .map_err(|e| bind_err(BoundAddress::ip(scheme, addr).to_string(), e))?;
            let bound = l.local_socket_addr();
            Ok(vec![mk(Box::new(l), BoundAddress::ip(scheme, bound))])
        }
        BindTarget::Localhost(port) => {
            let shown = BoundAddress::localhost(scheme, port);
            let mut out = Vec::new();
            for ip in [
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ] {
                let addr = SocketAddr::new(ip, port);
                if let Some((l, _)) = inherited_tcp(addr, tcp, scheme)? {
                    out.push(mk(l, shown.clone()));
                    continue;
                }
                match bind_tcp(addr, tcp) {
                    Ok(l) => out.push(mk(Box::new(l), shown.clone())),
                    Err(e) if family_unavailable(&e) => {
                        tracing::warn!(target: "kestrel", "unable to bind to {shown} on the {} loopback interface: {e}", if ip.is_ipv4() { "IPv4" } else { "IPv6" });
                    }
                    Err(e) => return Err(bind_err(format!("{shown} ({addr})"), e)),
                }
            }
            if out.is_empty() {
                return Err(bind_err(
                    shown.to_string(),
                    io::Error::new(
                        io::ErrorKind::AddrNotAvailable,
                        "neither 127.0.0.1 nor ::1 could be bound",
                    ),
                ));
            }
            Ok(out)
        }
        BindTarget::AnyIp(port) => {
            let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
            let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
            for any in [v6, v4] {
                if let Some(l) = inherited_tcp(any, tcp, scheme)? {
                    return Ok(vec![mk(l.0, l.1)]);
                }
            }
            let dual = TcpOptions {
                only_v6: Some(false),
                ..tcp.clone()
            };
            match bind_tcp(v6, &dual) {
                Ok(l) => {
                    let bound = l.local_socket_addr();
                    Ok(vec![mk(Box::new(l), BoundAddress::ip(scheme, bound))])
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    Err(bind_err(BoundAddress::ip(scheme, v6).to_string(), e))
                }
                Err(e) => {
                    tracing::debug!(target: "kestrel", "binding [::]:{port} failed ({e}); falling back to 0.0.0.0");
                    let l = bind_tcp(v4, tcp)
                        .map_err(|e| bind_err(BoundAddress::ip(scheme, v4).to_string(), e))?;
                    let bound = l.local_socket_addr();
                    Ok(vec![mk(Box::new(l), BoundAddress::ip(scheme, bound))])
                }
            }
        }
        #[cfg(all(unix, feature = "unix"))]
        BindTarget::Unix(path) => {
            let display = BoundAddress::unix(scheme, &path);
            if let Some(l) = crate::handover::take_unix(&path) {
                let l = l.map_err(|e| bind_err(display.to_string(), e))?;
                return Ok(vec![mk(l, display)]);
            }
            let opts = kestrel_transport::unix::UnixOptions {
                backlog: tcp.backlog,
                mode: endpoint.unix_socket_mode,
                group: endpoint.unix_socket_group.clone(),
            };
            let l = kestrel_transport::unix::bind_unix(&path, &opts)
                .map_err(|e| bind_err(display.to_string(), e.into()))?;
            Ok(vec![mk(Box::new(l), display)])
        }
        #[cfg(unix)]
        BindTarget::Fd(fd) => {
            // An inherited, already-listening socket (systemd socket
            // activation, Kestrel's ListenHandle): adopted, never re-bound.
            let shown = BoundAddress::fd(scheme);
            let owned = kestrel_transport::tcp::take_systemd_fd(fd)
                .map_err(|e| bind_err(shown.to_string(), e))?;
            let l = kestrel_transport::tcp::from_owned_fd(owned, tcp)
                .map_err(|e| bind_err(shown.to_string(), e))?;
            let display = match l.local_addr() {
                kestrel_transport::Address::Ip(a) => BoundAddress::ip(scheme, *a),
                kestrel_transport::Address::Unix(p) if !p.as_os_str().is_empty() => {
                    BoundAddress::unix(scheme, p)
                }
                _ => shown,
            };
            Ok(vec![mk(l, display)])
        }
        BindTarget::Custom(transport) => {
            // A transport of the caller's: its factory binds the listener;
            // from here on its connections go the way of every other.
            let l = transport
                .bind()
                .map_err(|e| bind_err(format!("{}://{}", scheme.as_str(), transport.name()), e))?;
            let display = transport.display(scheme, l.local_addr());
            Ok(vec![mk(l, display)])
        }
        #[allow(unreachable_patterns)]
        other => Err(StartError::Unsupported(format!("{other:?}"))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_http3_endpoint_from_configuration_without_tls_is_named_by_its_section() {
        let mut options = ListenOptions::new(BindTarget::Ip("127.0.0.1:0".parse().unwrap()));
        options.protocols = HttpProtocols::HTTP1_AND_HTTP2_AND_HTTP3;
        options.config_name = Some("Web".into());
        let plan = EndpointPlan {
            options,
            scheme: Scheme::Http,
        };
        let err = match bind_endpoint(
            plan,
            &TcpOptions::default(),
            &QuicSettings::default(),
            std::time::Duration::from_secs(130),
        ) {
            Err(e) => e,
            Ok(_) => panic!("HTTP/3 without TLS must not bind"),
        };
        assert!(matches!(err, StartError::Http3NeedsTls(_)), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("'Kestrel:Endpoints:Web' (http://127.0.0.1:0)"),
            "{message}"
        );
    }
}
