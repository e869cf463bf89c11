//! Kestrel as the server of a `kestrel-hosting` web host (feature `hosting`,
//! on by default), as `UseKestrel` plugs Kestrel into ASP.NET Core's `IServer`.
//!
//! ```no_run
//! use kestrel::hosting::WebHostBuilderKestrelExt;
//! use kestrel_hosting::WebHost;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! WebHost::create_default_builder(std::env::args())
//!     .use_kestrel(|options| {
//!         options.limits.max_request_body_size = Some(10 * 1024 * 1024);
//!     })
//!     .configure(|app| {
//!         app.run(|_req: http::Request<kestrel::RequestBody>| async {
//!             http::Response::new(http_body_util::Full::new(bytes::Bytes::from("hello")))
//!         });
//!     })
//!     .build()?
//!     .run()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! What `use_kestrel` reads from configuration (`docs/configuration.md`):
//! `Kestrel:Limits:*` and the top-level switches into
//! [`KestrelServerOptions`]; `Kestrel:Endpoints:<Name>` as listen endpoints
//! (they win over `urls` with a warning, unless `preferHostingUrls`), HTTPS
//! ones with their certificate (PEM or PFX, relative to the content root),
//! `Sni`, `ClientCertificateMode` and `SslProtocols`; Unix socket files'
//! `SocketMode` and `SocketGroup`; `ProxyProtocol` and `TrustedProxies`;
//! `Kestrel:EndpointDefaults`; `Kestrel:Certificates:Default` for `https://`
//! URLs and HTTPS endpoints without a certificate (certificate files are
//! watched and reloaded on change unless
//! `Kestrel:DisableCertificateFileWatching` is `true`); and the sockets passed by
//! systemd socket activation. Then the `configure` callback runs, so code
//! wins over configuration.
//!
//! On a configuration reload (`reloadOnChange`, SIGHUP), `Kestrel:Endpoints`
//! are applied by name, and `Kestrel:Limits` to connections accepted from
//! then on (open ones keep theirs), computed as at start-up: the limits the
//! callback set keep winning ([`CodeLimits`](kestrel_hosting::kestrel_config::CodeLimits)).

use std::time::Duration;

use kestrel_core::{BindTarget, BoxError, HttpProtocols, KestrelServerOptions, ListenOptions};
use kestrel_hosting::kestrel_config::{
    bind_server_options, read_kestrel_section, CodeLimits, EndpointSetting, KestrelConfigError,
    KestrelSection,
};
use kestrel_hosting::pipeline::Pipeline;
use kestrel_hosting::server::{BoxFuture, HostContext, HostingUrls, Server, StartedServer};
use kestrel_hosting::{Configuration, WebHostBuilder};

use crate::server::{KestrelServer, RunningServer};

/// Adds [`use_kestrel`](Self::use_kestrel) to [`WebHostBuilder`].
pub trait WebHostBuilderKestrelExt {
    /// Host the app on Kestrel. `configure` adjusts the options after the
    /// `Kestrel` configuration section was applied.
    fn use_kestrel(
        self,
        configure: impl FnOnce(&mut KestrelServerOptions) + Send + 'static,
    ) -> Self;
}

impl WebHostBuilderKestrelExt for WebHostBuilder {
    fn use_kestrel(
        self,
        configure: impl FnOnce(&mut KestrelServerOptions) + Send + 'static,
    ) -> Self {
        self.use_server(move |ctx: &HostContext| {
            let (server, code_limits) = kestrel_and_code_limits(ctx, configure)?;
            let prometheus_url = ctx
                .configuration
                .get(PROMETHEUS_URL_KEY)
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_string);
            let section = read_kestrel_section(&ctx.configuration, &ctx.content_root)?;
            Ok(Box::new(HostedKestrel {
                server,
                prometheus_url,
                reload: Some(ReloadState {
                    section,
                    content_root: ctx.content_root.clone(),
                    code_limits,
                }),
            }) as Box<dyn Server>)
        })
    }
}

/// The listen options of one `Kestrel:Endpoints:<Name>` entry.
fn config_endpoint(
    ep: &EndpointSetting,
    section: &KestrelSection,
    options: &KestrelServerOptions,
    #[cfg(feature = "tls")] default_cert: Option<&kestrel_tls::Certificate>,
) -> Result<ListenOptions, BoxError> {
    let mut lo = ListenOptions::new(ep.url.target.clone());
    lo.config_name = Some(ep.name.clone());
    options.apply_endpoint_defaults(&mut lo);
    if let Some(p) = ep.tls.protocols {
        lo.protocols = p;
    }
    lo.unix_socket_mode = ep.connection.socket_mode.or(lo.unix_socket_mode);
    if let Some(g) = &ep.connection.socket_group {
        lo.unix_socket_group = Some(g.clone());
    }
    lo.disable_alt_svc_header |= ep.connection.disable_alt_svc_header;
    if lo.protocols == HttpProtocols::NONE {
        return Err(Box::new(KestrelConfigError::Invalid {
            key: format!("Kestrel:Endpoints:{}:Protocols", ep.name),
            value: "None".into(),
            reason: "an endpoint must enable at least one protocol".into(),
        }));
    }
    // PROXY protocol before TLS: it reads the header ahead of the handshake.
    apply_proxy_protocol(&mut lo, ep)?;
    if ep.url.scheme == kestrel_core::Scheme::Https {
        #[cfg(feature = "tls")]
        {
            use kestrel_tls::ListenOptionsHttpsExt;
            let https = tls::endpoint_https(ep, &section.endpoint_defaults, default_cert)?
                .with_certificate_file_watching(!section.disable_certificate_file_watching);
            lo.try_use_https(https)?;
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = section;
            return Err(Box::new(crate::StartError::TlsNotConfigured(
                ep.url.original.clone(),
            )));
        }
    }
    tracing::debug!(target: "kestrel", endpoint = %ep.name, url = %ep.url.original, "endpoint from configuration");
    Ok(lo)
}

/// Build a [`KestrelServer`] from the host's configuration, then `configure`.
/// This is what [`WebHostBuilderKestrelExt::use_kestrel`] does; it is public
/// for tests and for hosting Kestrel without the builder.
pub fn kestrel_from_context(
    ctx: &HostContext,
    configure: impl FnOnce(&mut KestrelServerOptions),
) -> Result<KestrelServer, BoxError> {
    kestrel_and_code_limits(ctx, configure).map(|(server, _)| server)
}

/// [`kestrel_from_context`], and the limits `configure` set (which win over
/// `Kestrel:Limits` at every configuration reload too).
fn kestrel_and_code_limits(
    ctx: &HostContext,
    configure: impl FnOnce(&mut KestrelServerOptions),
) -> Result<(KestrelServer, CodeLimits), BoxError> {
    let config = &ctx.configuration;
    let mut options = KestrelServerOptions::default();
    bind_server_options(config, &mut options)?;
    let configured_limits = options.limits.clone();
    let section = read_kestrel_section(config, &ctx.content_root)?;
    let defaults = section.endpoint_defaults.clone();
    if let Some(p) = defaults.protocols {
        options.configure_endpoint_defaults(move |l: &mut ListenOptions| l.protocols = p);
    }
    #[cfg(unix)]
    let handover = crate::handover::is_handover();
    #[cfg(not(unix))]
    let handover = false;
    // After a zero-downtime restart the inherited sockets are adopted by the
    // endpoints with their addresses (crate::handover), not added as endpoints.
    for fd in ctx.listen_fds.iter().filter(|_| !handover) {
        tracing::info!(target: "kestrel", fd, "listening on a socket passed by systemd");
        options.listen(BindTarget::Fd(*fd), |_| {});
    }
    #[cfg(feature = "tls")]
    let default_cert = match &section.default_certificate {
        Some(c) => Some(tls::load_certificate(c, "Kestrel:Certificates:Default")?),
        None => None,
    };
    for ep in &section.endpoints {
        #[cfg(feature = "tls")]
        let lo = config_endpoint(ep, &section, &options, default_cert.as_ref())?;
        #[cfg(not(feature = "tls"))]
        let lo = config_endpoint(ep, &section, &options)?;
        options.listen.push(lo);
    }
    configure(&mut options);
    let code_limits = CodeLimits::new(configured_limits, options.limits.clone());
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    let mut server = KestrelServer::new(options);
    #[cfg(feature = "tls")]
    {
        let mut https = kestrel_tls::HttpsOptions::new()
            .with_certificate_file_watching(!section.disable_certificate_file_watching);
        tls::apply_settings(&mut https, &defaults, "Kestrel:EndpointDefaults")?;
        if let Some(cert) = default_cert {
            https = https.with_certificate(cert);
        }
        server = server.https_defaults(https);
    }
    Ok((server, code_limits))
}

/// `ProxyProtocol=Required` (and `TrustedProxies`): the PROXY middleware,
/// ahead of TLS.
fn apply_proxy_protocol(
    lo: &mut ListenOptions,
    ep: &kestrel_hosting::kestrel_config::EndpointSetting,
) -> Result<(), BoxError> {
    use kestrel_hosting::endpoint_settings::ProxyProtocolSetting;
    if ep.connection.proxy_protocol != ProxyProtocolSetting::Required {
        return Ok(());
    }
    #[cfg(feature = "proxy-protocol")]
    {
        use kestrel_proxy_protocol::{IpNet, ListenOptionsProxyProtocolExt, ProxyProtocolOptions};
        let mut options = ProxyProtocolOptions::new();
        for net in &ep.connection.trusted_proxies {
            let net = IpNet::new(net.addr(), net.prefix_len()).map_err(|e| {
                Box::new(KestrelConfigError::Invalid {
                    key: format!("Kestrel:Endpoints:{}:TrustedProxies", ep.name),
                    value: net.to_string(),
                    reason: e.to_string(),
                })
            })?;
            options = options.trust(net);
        }
        lo.try_use_proxy_protocol(options)?;
        Ok(())
    }
    #[cfg(not(feature = "proxy-protocol"))]
    {
        let _ = lo;
        Err(Box::new(KestrelConfigError::Invalid {
            key: format!("Kestrel:Endpoints:{}:ProxyProtocol", ep.name),
            value: "Required".into(),
            reason: "this build lacks the `proxy-protocol` feature of the kestrel crate".into(),
        }))
    }
}

#[cfg(feature = "tls")]
mod tls {
    use kestrel_hosting::kestrel_config::{
        CertificateSetting, ClientCertificateModeSetting, EndpointSetting, KestrelConfigError,
        SslProtocolsSetting, TlsSettings,
    };
    use kestrel_tls::{Certificate, ClientCertificateMode, HttpsOptions, TlsVersion};

    fn err(key: &str, e: impl std::fmt::Display) -> KestrelConfigError {
        KestrelConfigError::Invalid {
            key: key.to_string(),
            value: String::new(),
            reason: e.to_string(),
        }
    }

    /// Load a PEM pair (`Path` + `KeyPath`) or a PKCS#12 file (`Path` + `Password`).
    pub(super) fn load_certificate(
        c: &CertificateSetting,
        key: &str,
    ) -> Result<Certificate, KestrelConfigError> {
        let Some(path) = &c.path else {
            return Err(err(&format!("{key}:Path"), "a certificate needs a Path"));
        };
        match &c.key_path {
            Some(kp) => Certificate::from_pem_files(path, kp).map_err(|e| err(key, e)),
            None => {
                let is_pem = path.extension().is_some_and(|e| {
                    e.eq_ignore_ascii_case("pem") || e.eq_ignore_ascii_case("crt")
                });
                if is_pem {
                    // A PEM file holding both the chain and the key.
                    Certificate::from_pem_files(path, path).map_err(|e| err(key, e))
                } else {
                    Certificate::from_pkcs12_file(path, c.password.as_deref().unwrap_or(""))
                        .map_err(|e| err(key, e))
                }
            }
        }
    }

    pub(super) fn apply_settings(
        https: &mut HttpsOptions,
        s: &TlsSettings,
        key: &str,
    ) -> Result<(), KestrelConfigError> {
        if let Some(m) = s.client_certificate_mode {
            https.client_certificate_mode = match m {
                ClientCertificateModeSetting::NoCertificate => ClientCertificateMode::NoCertificate,
                ClientCertificateModeSetting::AllowCertificate => {
                    ClientCertificateMode::AllowCertificate
                }
                ClientCertificateModeSetting::RequireCertificate => {
                    ClientCertificateMode::RequireCertificate
                }
                ClientCertificateModeSetting::DelayCertificate => {
                    return Err(err(
                        &format!("{key}:ClientCertificateMode"),
                        "DelayCertificate is not supported (rustls has no renegotiation); use AllowCertificate",
                    ))
                }
                _ => ClientCertificateMode::NoCertificate,
            };
        }
        if let Some(v) = s.ssl_protocols {
            https.min_protocol_version = match v {
                SslProtocolsSetting::Tls13 => TlsVersion::Tls13,
                _ => TlsVersion::Tls12,
            };
        }
        Ok(())
    }

    /// The HTTPS options of one configured endpoint.
    pub(super) fn endpoint_https(
        ep: &EndpointSetting,
        defaults: &TlsSettings,
        default_cert: Option<&Certificate>,
    ) -> Result<HttpsOptions, KestrelConfigError> {
        let prefix = format!("Kestrel:Endpoints:{}", ep.name);
        let mut https = HttpsOptions::new();
        apply_settings(&mut https, defaults, "Kestrel:EndpointDefaults")?;
        apply_settings(&mut https, &ep.tls, &prefix)?;
        match &ep.tls.certificate {
            Some(c) => {
                https =
                    https.with_certificate(load_certificate(c, &format!("{prefix}:Certificate"))?)
            }
            None => {
                if let Some(c) = default_cert {
                    https = https.with_certificate(c.clone());
                }
            }
        }
        for (host, s) in &ep.sni {
            let sp = format!("{prefix}:Sni:{host}");
            match &s.certificate {
                Some(c) => {
                    https = https.with_sni_certificate(
                        host.clone(),
                        load_certificate(c, &format!("{sp}:Certificate"))?,
                    )
                }
                None => {
                    return Err(err(
                        &format!("{sp}:Certificate"),
                        "an SNI entry needs its own Certificate (per-host protocols and client certificate modes are not supported)",
                    ))
                }
            }
            if s.client_certificate_mode.is_some()
                || s.ssl_protocols.is_some()
                || s.protocols.is_some()
            {
                return Err(err(
                    &sp,
                    "per-host Protocols, SslProtocols and ClientCertificateMode are not supported; set them on the endpoint",
                ));
            }
        }
        if !https.has_server_certificate() {
            https = https
                .with_development_certificate()
                .map_err(|e| err(&prefix, e))?;
        }
        Ok(https)
    }
}

/// The facade's [`Server`]: a [`KestrelServer`] waiting to start.
#[derive(Debug)]
pub struct HostedKestrel {
    server: KestrelServer,
    prometheus_url: Option<String>,
    reload: Option<ReloadState>,
}

/// What a configuration reload compares the new `Kestrel` section with.
#[derive(Debug)]
struct ReloadState {
    section: KestrelSection,
    content_root: std::path::PathBuf,
    /// The limits set in code, kept over `Kestrel:Limits` at each reload.
    code_limits: CodeLimits,
}

/// The configuration key that turns on the Prometheus `/metrics` endpoint
/// (on its own listener; needs the `prometheus` feature).
pub const PROMETHEUS_URL_KEY: &str = "Metrics:Prometheus:Url";

impl HostedKestrel {
    /// Wrap a configured server.
    pub fn new(server: KestrelServer) -> Self {
        HostedKestrel {
            server,
            prometheus_url: None,
            reload: None,
        }
    }
}

impl Server for HostedKestrel {
    fn start(
        self: Box<Self>,
        app: Pipeline,
        urls: HostingUrls,
    ) -> BoxFuture<'static, Result<Box<dyn StartedServer>, BoxError>> {
        Box::pin(async move {
            #[cfg(feature = "prometheus")]
            let prometheus = match &self.prometheus_url {
                Some(url) => Some(crate::prometheus::PrometheusEndpoint::start(url).await?),
                None => None,
            };
            #[cfg(not(feature = "prometheus"))]
            if let Some(url) = &self.prometheus_url {
                return Err(format!(
                    "{PROMETHEUS_URL_KEY} is set ({url}) but this build lacks the `prometheus` feature of the kestrel crate"
                )
                .into());
            }
            let running = self
                .server
                .urls(urls.urls)
                .prefer_urls(urls.prefer_hosting_urls)
                .start(app)
                .await?;
            #[cfg(unix)]
            crate::handover::close_unclaimed();
            Ok(Box::new(StartedKestrel {
                running,
                reload: self.reload,
                #[cfg(feature = "prometheus")]
                prometheus,
            }) as Box<dyn StartedServer>)
        })
    }
}

#[derive(Debug)]
struct StartedKestrel {
    running: RunningServer,
    reload: Option<ReloadState>,
    #[cfg(feature = "prometheus")]
    prometheus: Option<crate::prometheus::PrometheusEndpoint>,
}

impl StartedKestrel {
    /// The `Kestrel` section read again. The whole section is checked
    /// first, as at start-up: an error (naming the key, or the address that
    /// cannot be bound) changes nothing. Then `Kestrel:Limits` apply to
    /// connections accepted from now on (computed as at start-up: the
    /// configuration over the defaults, the limits set in code over those),
    /// and `Kestrel:Endpoints` are applied ([`Self::reload_endpoints`]).
    async fn reload_configuration(
        &mut self,
        configuration: Configuration,
        drain_timeout: Duration,
    ) -> Result<(), BoxError> {
        let Some(state) = &self.reload else {
            return Ok(());
        };
        bind_server_options(&configuration, &mut KestrelServerOptions::default())?;
        let (limits, ignored) = state.code_limits.limits_for(&configuration)?;
        for key in ignored {
            tracing::warn!(target: "kestrel", key, "{key} changed, but the limit is set in code, which wins: the change is not applied");
        }
        let previous = self.running.limits();
        // Before the endpoints, so that an endpoint bound by this reload
        // serves its first connection with the new limits.
        let changed = self.running.update_limits(limits)?;
        if let Err(e) = self.reload_endpoints(configuration, drain_timeout).await {
            if changed {
                // Nothing changes: the limits in force before come back.
                let _ = self.running.update_limits(previous);
            }
            return Err(e);
        }
        if changed {
            tracing::info!(target: "kestrel", "configuration reloaded: Kestrel:Limits changed; connections accepted from now on use the new limits, open ones keep theirs");
        }
        Ok(())
    }

    /// `Kestrel:Endpoints` read again: endpoints added, removed or changed
    /// (by name) are bound, stopped and drained; unchanged ones are left
    /// alone.
    async fn reload_endpoints(
        &mut self,
        configuration: Configuration,
        drain_timeout: Duration,
    ) -> Result<(), BoxError> {
        let Some(state) = &mut self.reload else {
            return Ok(());
        };
        let section = read_kestrel_section(&configuration, &state.content_root)?;
        let old = &state.section;
        let shared_changed = old.endpoint_defaults != section.endpoint_defaults
            || old.default_certificate != section.default_certificate
            || old.disable_certificate_file_watching != section.disable_certificate_file_watching;
        let mut remove = Vec::new();
        let mut added = Vec::new();
        for o in &old.endpoints {
            match section
                .endpoints
                .iter()
                .find(|n| n.name.eq_ignore_ascii_case(&o.name))
            {
                None => remove.push(o.name.clone()),
                Some(n) if n != o || shared_changed => {
                    remove.push(o.name.clone());
                    added.push(n);
                }
                Some(_) => {}
            }
        }
        for n in &section.endpoints {
            if !old
                .endpoints
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&n.name))
            {
                added.push(n);
            }
        }
        if remove.is_empty() && added.is_empty() {
            tracing::debug!(target: "kestrel", "configuration reloaded: Kestrel:Endpoints unchanged");
            state.section = section;
            return Ok(());
        }
        let overridden = !old.endpoints.is_empty()
            && !self
                .running
                .endpoints
                .groups
                .iter()
                .any(|g| g.name.is_some());
        if overridden {
            tracing::warn!(target: "kestrel", "Kestrel:Endpoints changed, but the server listens on the URLs (preferHostingUrls): the change is not applied");
            state.section = section;
            return Ok(());
        }
        let mut options = KestrelServerOptions::default();
        if let Some(p) = section.endpoint_defaults.protocols {
            options.configure_endpoint_defaults(move |l: &mut ListenOptions| l.protocols = p);
        }
        #[cfg(feature = "tls")]
        let default_cert = match &section.default_certificate {
            Some(c)
                if added
                    .iter()
                    .any(|e| e.url.scheme == kestrel_core::Scheme::Https) =>
            {
                Some(tls::load_certificate(c, "Kestrel:Certificates:Default")?)
            }
            _ => None,
        };
        let mut add = Vec::new();
        for ep in &added {
            #[cfg(feature = "tls")]
            add.push(config_endpoint(
                ep,
                &section,
                &options,
                default_cert.as_ref(),
            )?);
            #[cfg(not(feature = "tls"))]
            add.push(config_endpoint(ep, &section, &options)?);
        }
        let names: Vec<&str> = added.iter().map(|e| e.name.as_str()).collect();
        tracing::info!(target: "kestrel", removed = ?remove, added = ?names, "configuration reloaded: applying the changes to Kestrel:Endpoints");
        self.running
            .reconfigure_endpoints(&remove, add, drain_timeout)
            .await?;
        state.section = section;
        Ok(())
    }
}

impl StartedServer for StartedKestrel {
    fn addresses(&self) -> Vec<String> {
        self.running
            .addresses()
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    #[cfg(unix)]
    fn listening_sockets(&self) -> std::io::Result<Vec<std::os::fd::OwnedFd>> {
        self.running.listening_sockets()
    }

    fn handed_over(&mut self) {
        #[cfg(all(unix, feature = "unix"))]
        kestrel_transport::unix::keep_socket_files_on_drop();
    }

    fn reload(
        &mut self,
        configuration: Configuration,
        drain_timeout: Duration,
    ) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(self.reload_configuration(configuration, drain_timeout))
    }

    fn stop(self: Box<Self>, timeout: Duration) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.running.stop_with_timeout(timeout).await;
            #[cfg(feature = "prometheus")]
            if let Some(p) = self.prometheus {
                p.stop().await;
            }
        })
    }
}
