//! Server-wide options (Kestrel's `KestrelServerOptions`) and endpoint options
//! (`ListenOptions`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::endpoint::BindTarget;
use crate::limits::ServerLimits;
use crate::middleware::ConnectionMiddleware;
use crate::protocols::HttpProtocols;

/// An option that failed validation at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// An option has a value outside its range.
    #[error("invalid option {name}: {reason}")]
    Invalid {
        /// The option's name.
        name: &'static str,
        /// Why the value is refused.
        reason: &'static str,
    },
}

/// HTTP/1.x parsing leniency switches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Http1Options {
    /// Accept a bare LF as a line ending in request heads and chunked framing.
    /// Off by default (RFC 9112's strict reading); Kestrel accepts bare LF unless
    /// its `DisableHttp1LineFeedTerminators` switch is set.
    pub allow_bare_lf: bool,
}

/// A callback applied to every endpoint's options.
type EndpointDefaults = Arc<dyn Fn(&mut ListenOptions) + Send + Sync>;

/// Server-wide options (Kestrel's `KestrelServerOptions`).
#[derive(Clone)]
pub struct KestrelServerOptions {
    /// Limits for every connection and request.
    pub limits: ServerLimits,
    /// Add `Server: Kestrel` to responses that have no `Server` header. Default true.
    pub add_server_header: bool,
    /// Allow HPACK dynamic-table compression of response headers (HTTP/2). Default true.
    pub allow_response_header_compression: bool,
    /// Allow an HTTP/2 `:scheme` that differs from the transport's. Default false.
    pub allow_alternate_schemes: bool,
    /// For absolute-form HTTP/1 targets, replace a mismatched Host header
    /// instead of answering 400. Default false.
    pub allow_host_header_override: bool,
    /// HTTP/1.x parsing switches.
    pub http1: Http1Options,
    /// How long a graceful shutdown waits for in-flight requests before aborting
    /// them. Default 30 s (the host's default shutdown timeout).
    pub shutdown_timeout: Duration,
    /// Endpoints configured in code (Kestrel's `Listen*` calls). When any exist
    /// they win over URLs.
    pub listen: Vec<ListenOptions>,
    endpoint_defaults: Option<EndpointDefaults>,
}

impl Default for KestrelServerOptions {
    fn default() -> Self {
        KestrelServerOptions {
            limits: ServerLimits::default(),
            add_server_header: true,
            allow_response_header_compression: true,
            allow_alternate_schemes: false,
            allow_host_header_override: false,
            http1: Http1Options::default(),
            shutdown_timeout: Duration::from_secs(30),
            listen: Vec::new(),
            endpoint_defaults: None,
        }
    }
}

impl fmt::Debug for KestrelServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KestrelServerOptions")
            .field("limits", &self.limits)
            .field("add_server_header", &self.add_server_header)
            .field(
                "allow_host_header_override",
                &self.allow_host_header_override,
            )
            .field("http1", &self.http1)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl KestrelServerOptions {
    /// Listen on an endpoint (Kestrel's `Listen`); `configure` adjusts its options.
    pub fn listen(
        &mut self,
        target: impl Into<BindTarget>,
        configure: impl FnOnce(&mut ListenOptions),
    ) -> &mut Self {
        let mut opts = ListenOptions::new(target.into());
        if let Some(defaults) = &self.endpoint_defaults {
            defaults(&mut opts);
        }
        configure(&mut opts);
        self.listen.push(opts);
        self
    }

    /// Listen on `localhost` (127.0.0.1 and ::1) at `port` (Kestrel's `ListenLocalhost`).
    pub fn listen_localhost(
        &mut self,
        port: u16,
        configure: impl FnOnce(&mut ListenOptions),
    ) -> &mut Self {
        self.listen(BindTarget::Localhost(port), configure)
    }

    /// Listen on every IPv4 and IPv6 address at `port` (Kestrel's `ListenAnyIP`).
    pub fn listen_any_ip(
        &mut self,
        port: u16,
        configure: impl FnOnce(&mut ListenOptions),
    ) -> &mut Self {
        self.listen(BindTarget::AnyIp(port), configure)
    }

    /// Listen on a Unix domain socket; the path must be absolute (Kestrel's `ListenUnixSocket`).
    pub fn listen_unix_socket(
        &mut self,
        path: impl Into<std::path::PathBuf>,
        configure: impl FnOnce(&mut ListenOptions),
    ) -> &mut Self {
        self.listen(BindTarget::Unix(path.into()), configure)
    }

    /// Defaults applied to every endpoint configured after this call, and to
    /// endpoints that come from URLs (Kestrel's `ConfigureEndpointDefaults`).
    pub fn configure_endpoint_defaults(
        &mut self,
        f: impl Fn(&mut ListenOptions) + Send + Sync + 'static,
    ) -> &mut Self {
        self.endpoint_defaults = Some(Arc::new(f));
        self
    }

    /// Apply the endpoint defaults to options built elsewhere (e.g. from a URL).
    pub fn apply_endpoint_defaults(&self, opts: &mut ListenOptions) {
        if let Some(defaults) = &self.endpoint_defaults {
            defaults(opts);
        }
    }

    /// Validate every option, as the server does at start-up.
    pub fn validate(&self) -> Result<(), OptionsError> {
        self.limits.validate()?;
        for l in &self.listen {
            if l.protocols == HttpProtocols::NONE {
                return Err(OptionsError::Invalid {
                    name: "listen.protocols",
                    reason: "an endpoint must enable at least one protocol",
                });
            }
            l.validate_unix_socket_permissions()?;
        }
        Ok(())
    }
}

/// Options of one endpoint (Kestrel's `ListenOptions`).
#[derive(Clone)]
pub struct ListenOptions {
    /// Where to bind.
    pub target: BindTarget,
    /// Which HTTP versions it speaks. Default Http1AndHttp2.
    pub protocols: HttpProtocols,
    /// `http` or `https`: how the endpoint's address is shown. The TLS
    /// middleware's `use_https` sets `Https`.
    pub scheme: crate::endpoint::Scheme,
    /// The `Kestrel:Endpoints:<Name>` this endpoint was read from (`None`
    /// for endpoints from code or URLs). A configuration reload replaces
    /// the endpoints by name (Kestrel's `EndpointConfig`).
    pub config_name: Option<String>,
    /// Unix socket endpoints: the socket file's permission bits (e.g.
    /// `0o660`), set when it is bound. `None` (the default) keeps what the
    /// umask gave (typically `0o755`, which lets no other user connect).
    /// Configuration: `Kestrel:Endpoints:<Name>:SocketMode`.
    pub unix_socket_mode: Option<u32>,
    /// Unix socket endpoints: the socket file's group (a name or a numeric
    /// id), set when it is bound. `None` keeps the process's group.
    /// Configuration: `Kestrel:Endpoints:<Name>:SocketGroup`.
    pub unix_socket_group: Option<kestrel_transport::SocketGroup>,
    /// Do not advertise HTTP/3 with `Alt-Svc` on this endpoint's HTTP/1.1
    /// and HTTP/2 responses (Kestrel's `DisableAltSvcHeader`; default
    /// `false`). Only matters on an HTTPS endpoint that serves HTTP/3.
    pub disable_alt_svc_header: bool,
    middleware: Vec<Arc<dyn ConnectionMiddleware>>,
    /// The endpoint's TLS server configuration, type-erased (kestrel-core
    /// knows no TLS library): `kestrel-tls` records its
    /// `rustls::ServerConfig` here, and the facade's QUIC listener reads it.
    tls_config: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl fmt::Debug for ListenOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenOptions")
            .field("target", &self.target)
            .field("protocols", &self.protocols)
            .field("scheme", &self.scheme)
            .field("config_name", &self.config_name)
            .field("unix_socket_mode", &self.unix_socket_mode)
            .field("unix_socket_group", &self.unix_socket_group)
            .field("disable_alt_svc_header", &self.disable_alt_svc_header)
            .field("middleware", &self.middleware.len())
            .field("tls_config", &self.tls_config.is_some())
            .finish()
    }
}

impl ListenOptions {
    /// Options for `target` with the defaults.
    pub fn new(target: BindTarget) -> Self {
        ListenOptions {
            target,
            protocols: HttpProtocols::default(),
            scheme: crate::endpoint::Scheme::Http,
            config_name: None,
            unix_socket_mode: None,
            unix_socket_group: None,
            disable_alt_svc_header: false,
            middleware: Vec::new(),
            tls_config: None,
        }
    }

    /// Record the endpoint's TLS server configuration (`kestrel-tls` records
    /// its `EndpointTls` when HTTPS is configured), for
    /// transports that run TLS themselves (QUIC for HTTP/3).
    pub fn set_tls_config(&mut self, config: Arc<dyn std::any::Any + Send + Sync>) -> &mut Self {
        self.tls_config = Some(config);
        self
    }

    /// The endpoint's TLS server configuration, if one was recorded
    /// ([`set_tls_config`](Self::set_tls_config)); downcast it to the TLS
    /// library's type (`kestrel_tls::EndpointTls` for `kestrel-tls`).
    pub fn tls_config(&self) -> Option<&Arc<dyn std::any::Any + Send + Sync>> {
        self.tls_config.as_ref()
    }

    /// Set the Unix socket file's permission bits (e.g. `0o660`, so that
    /// the socket's group may connect; `0o666` for every user). Only for
    /// Unix socket endpoints (ignored on others); validated at start-up (at
    /// most `0o777`).
    pub fn unix_socket_mode(&mut self, mode: u32) -> &mut Self {
        self.unix_socket_mode = Some(mode);
        self
    }

    /// Set the Unix socket file's group: a name (`"www-data"`, looked up
    /// when the socket is bound) or a numeric id. The process must be a
    /// member of it (or root).
    pub fn unix_socket_group(
        &mut self,
        group: impl Into<kestrel_transport::SocketGroup>,
    ) -> &mut Self {
        self.unix_socket_group = Some(group.into());
        self
    }

    /// Add connection middleware (Kestrel's `ListenOptions.Use`). The first one
    /// added is the outermost: it sees the raw transport stream first.
    pub fn use_middleware(&mut self, mw: impl ConnectionMiddleware) -> &mut Self {
        self.middleware.push(Arc::new(mw));
        self
    }

    /// Check the Unix socket permissions: a mode of at most `0o777`. (Mode
    /// and group are ignored on endpoints that are not Unix sockets, so
    /// endpoint defaults may set them.)
    pub fn validate_unix_socket_permissions(&self) -> Result<(), OptionsError> {
        if self.unix_socket_mode.is_some_and(|m| m > 0o777) {
            return Err(OptionsError::Invalid {
                name: "listen.unix_socket_mode",
                reason: "a socket mode holds permission bits only (at most 0o777)",
            });
        }
        Ok(())
    }

    /// The connection middleware, outermost first.
    pub fn middleware(&self) -> &[Arc<dyn ConnectionMiddleware>] {
        &self.middleware
    }
}
