//! `KestrelServer`: binds the endpoints, accepts connections, runs each
//! through its endpoint's connection middleware and the protocol driver, and
//! shuts down gracefully.

use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use kestrel_core::connection::{ConnectionEndReason, ConnectionHandle, ConnectionId};
use kestrel_core::events;
use kestrel_core::limits::HEARTBEAT_INTERVAL;
use kestrel_core::metrics::{self, EndpointTags};
use kestrel_core::middleware::MiddlewareLimits;
use kestrel_core::runtime::{AdmittedConnection, ConnectionRuntime};
use kestrel_core::selection::{SelectedProtocol, SelectionLimits};
use kestrel_core::{
    Application, BoundAddress, HttpProtocols, KestrelServerOptions, ListenOptions, OptionsError,
    ServerAddresses, ServerLimits,
};
use kestrel_http1::{Http1Connection, Http1Error};
#[cfg(feature = "http2")]
use kestrel_http2::Http2Connection;
use kestrel_transport::tcp::TcpOptions;
use kestrel_transport::Listener;
use tokio::sync::watch;

use crate::bind::{bind_endpoint, plan_endpoints, BoundListener, HttpsDefaults};
use crate::endpoints::{EndpointGroup, Endpoints, LiveAddresses, SpawnAccept, TrackedConnections};
use crate::error::StartError;
use crate::live_limits::LiveLimits;

/// The Kestrel server: options, endpoints and transport settings. Start it
/// with [`start`](Self::start), which binds and returns a [`RunningServer`].
///
/// ```no_run
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use kestrel::{KestrelServer, RequestBody};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let server = KestrelServer::default()
///     .urls(["http://127.0.0.1:0"])
///     .start(|_req: Request<RequestBody>| async {
///         Response::new(Full::new(Bytes::from_static(b"Hello, World!")))
///     })
///     .await?;
/// println!("listening on {}", server.addresses());
/// server.stop().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct KestrelServer {
    options: KestrelServerOptions,
    urls: Vec<String>,
    prefer_urls: bool,
    tcp: TcpOptions,
    quic: crate::bind::QuicSettings,
    heartbeat_interval: Option<Duration>,
    https: HttpsDefaults,
}

impl KestrelServer {
    /// A server with these options.
    pub fn new(options: KestrelServerOptions) -> Self {
        KestrelServer {
            options,
            ..Default::default()
        }
    }

    /// The options, to adjust.
    pub fn options_mut(&mut self) -> &mut KestrelServerOptions {
        &mut self.options
    }

    /// Adjust the options in place.
    pub fn configure(mut self, f: impl FnOnce(&mut KestrelServerOptions)) -> Self {
        f(&mut self.options);
        self
    }

    /// URLs to listen on (ASP.NET Core's `UseUrls`); each entry may hold
    /// several URLs separated by `;`. Endpoints configured in code win over
    /// these, with a warning, unless [`prefer_urls`](Self::prefer_urls).
    pub fn urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.urls = urls.into_iter().map(Into::into).collect();
        self
    }

    /// Let URLs win over endpoints configured in code (`PreferHostingUrls`).
    pub fn prefer_urls(mut self, prefer: bool) -> Self {
        self.prefer_urls = prefer;
        self
    }

    /// Socket options of TCP endpoints (backlog, `TCP_NODELAY`, …).
    pub fn tcp_options(mut self, tcp: TcpOptions) -> Self {
        self.tcp = tcp;
        self
    }

    /// QUIC transport options of HTTP/3 endpoints (Kestrel's
    /// `QuicTransportOptions`: stream counts, buffer sizes, backlog; the
    /// defaults are Kestrel's). The QUIC idle timeout is always the
    /// server's `keep_alive_timeout`, and the handshake timeout each
    /// endpoint's `HttpsOptions::handshake_timeout`: those two fields are
    /// not read from here.
    #[cfg(feature = "http3")]
    pub fn quic_options(mut self, quic: kestrel_transport::quic::QuicOptions) -> Self {
        self.quic = quic;
        self
    }

    /// HTTPS settings for every `https://` URL endpoint (Kestrel's
    /// `ConfigureHttpsDefaults`). Without a certificate in them (or without
    /// this call), those endpoints serve the development certificate
    /// ([`tls::DevCertificate`](crate::tls::DevCertificate)). Endpoints
    /// configured in code choose their own with
    /// [`use_https`](crate::tls::ListenOptionsHttpsExt::use_https).
    #[cfg(feature = "tls")]
    pub fn https_defaults(mut self, options: kestrel_tls::HttpsOptions) -> Self {
        self.https.options = Some(options);
        self
    }

    /// The heartbeat interval (1 s, as in Kestrel). Shorter values make tests
    /// of timeouts faster; they are not meant for production.
    #[doc(hidden)]
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = Some(interval);
        self
    }

    /// Validate the options, bind every endpoint, and start serving `app`.
    /// Must be called inside a tokio runtime.
    pub async fn start<A: Application>(self, app: A) -> Result<RunningServer, StartError> {
        self.options.validate()?;
        let plans = plan_endpoints(&self.options, &self.urls, self.prefer_urls, &self.https)?;
        let mut bound: Vec<(Option<String>, Vec<BoundListener>)> = Vec::new();
        for plan in plans {
            let name = plan.options.config_name.clone();
            bound.push((
                name,
                bind_endpoint(
                    plan,
                    &self.tcp,
                    &self.quic,
                    self.options.limits.keep_alive_timeout,
                )?,
            ));
        }
        let mut addresses: Vec<BoundAddress> = Vec::new();
        for b in bound.iter().flat_map(|(_, l)| l) {
            if !addresses.contains(&b.address) {
                addresses.push(b.address.clone());
            }
        }
        for a in &addresses {
            tracing::info!(target: "kestrel", address = %a, "Now listening on: {a}");
        }
        let addresses = ServerAddresses::new(addresses);

        // The clock, heartbeat, admission and shutdown: the same runtime a
        // framework author uses around the drivers (docs/embedding.md).
        let runtime = Arc::new(ConnectionRuntime::with_heartbeat_interval(
            &self.options.limits,
            self.heartbeat_interval.unwrap_or(HEARTBEAT_INTERVAL),
        ));
        let live = Arc::new(LiveAddresses::new(addresses.clone()));
        let live_limits = Arc::new(LiveLimits::new(&self.options, runtime.manager().clone()));
        let shared = Arc::new(ServerShared {
            app,
            limits: live_limits.clone(),
            runtime: runtime.clone(),
            addresses: live.clone(),
        });
        let spawn: SpawnAccept = Arc::new(move |listener, stop, tracked| {
            Box::pin(accept_loop(listener, shared.clone(), stop, tracked))
        });
        let groups = bound
            .into_iter()
            .map(|(name, listeners)| EndpointGroup::start(name, listeners, &spawn))
            .collect();
        Ok(RunningServer {
            addresses,
            runtime,
            limits: live_limits,
            endpoints: Endpoints {
                groups,
                live,
                spawn,
            },
            tcp: self.tcp,
            quic: self.quic,
            shutdown_timeout: self.options.shutdown_timeout,
        })
    }
}

pub(crate) struct ServerShared<A> {
    pub(crate) app: A,
    /// Read once per connection, when it starts.
    pub(crate) limits: Arc<LiveLimits>,
    /// Also held by [`RunningServer`]; the heartbeat stops when the last
    /// holder (accept loops, connection tasks, the server) is gone.
    pub(crate) runtime: Arc<ConnectionRuntime>,
    pub(crate) addresses: Arc<LiveAddresses>,
}

/// Accept on one bound listener, and on its QUIC listener when the endpoint
/// serves HTTP/3 (both stop on the same signal).
async fn accept_loop<A: Application>(
    #[cfg_attr(not(feature = "http3"), allow(unused_mut))] mut bound: BoundListener,
    shared: Arc<ServerShared<A>>,
    stop: watch::Receiver<bool>,
    tracked: Arc<TrackedConnections>,
) {
    #[cfg(feature = "http3")]
    if let Some(quic) = bound.quic.take() {
        let h3 = crate::http3_endpoint::accept_loop(
            quic,
            bound.address.clone(),
            shared.clone(),
            stop.clone(),
            tracked.clone(),
        );
        tokio::join!(stream_accept_loop(bound, shared, stop, tracked), h3);
        return;
    }
    stream_accept_loop(bound, shared, stop, tracked).await
}

/// Accept stream connections (TCP, Unix, custom transports).
async fn stream_accept_loop<A: Application>(
    mut bound: BoundListener,
    shared: Arc<ServerShared<A>>,
    mut stop: watch::Receiver<bool>,
    tracked: Arc<TrackedConnections>,
) {
    let tags = EndpointTags::new(bound.listener.local_addr());
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            r = poll_fn(|cx| bound.listener.poll_accept(cx)) => r,
        };
        match accepted {
            // Refused connections are closed and logged by the runtime.
            Ok(conn) => match shared.runtime.admit(conn) {
                Ok(admitted) => {
                    let handle = admitted.handle().clone();
                    tracked.add(&handle);
                    let task = tokio::spawn(serve_connection(
                        admitted,
                        bound.endpoint.clone(),
                        bound.address.clone(),
                        tags.clone(),
                        shared.clone(),
                    ));
                    handle.attach_task(task.abort_handle());
                }
                Err(_) => metrics::connection_rejected(&tags),
            },
            Err(e) => {
                tracing::error!(target: "kestrel::connections", endpoint = %bound.address, error = %e, "accepting a connection failed; retrying shortly");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracing::debug!(target: "kestrel", endpoint = %bound.address, "stopped accepting connections");
}

// Neither of these is an `async fn`: an `async fn` keeps its arguments twice
// in its state (as arguments and as locals), and an `async` block that awaits
// a captured future keeps it twice too; every connection task, idle ones
// included, reserves room for the largest state.
fn serve_connection<A: Application>(
    admitted: AdmittedConnection,
    endpoint: Arc<ListenOptions>,
    address: BoundAddress,
    tags: EndpointTags,
    shared: Arc<ServerShared<A>>,
) -> impl Future<Output = ()> + Send {
    let id = admitted.id();
    let handle = admitted.handle().clone();
    let started = metrics::ENABLED.then(std::time::Instant::now);
    metrics::connection_started(&tags);
    // `client` is filled in when connection middleware (the PROXY protocol)
    // replaces the peer's address with the client's.
    let span = tracing::debug_span!(target: "kestrel::connections", "connection", connection_id = %id, remote = %admitted.connection().remote_addr, client = tracing::field::Empty, endpoint = %address);
    // Named here, outside the connection's future: every value that future
    // captures takes room in it for the connection's whole life.
    let admitted = admitted
        .with_endpoint(address)
        .with_server_addresses(shared.addresses.current());
    ServeConnection {
        run: tracing::Instrument::instrument(run_connection(admitted, endpoint, shared), span),
        end: Some(ConnectionEnd {
            id,
            handle,
            started,
            tags,
        }),
    }
}

/// What [`serve_connection`] records when the connection ends.
struct ConnectionEnd {
    id: ConnectionId,
    handle: Arc<ConnectionHandle>,
    started: Option<std::time::Instant>,
    tags: EndpointTags,
}

pin_project_lite::pin_project! {
    /// A connection's task: its protocol run, then the stop metrics and event.
    struct ServeConnection<F> {
        #[pin]
        run: F,
        end: Option<ConnectionEnd>,
    }
}

impl<F: Future<Output = Option<&'static str>>> Future for ServeConnection<F> {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let this = self.project();
        let version = std::task::ready!(this.run.poll(cx));
        if let Some(end) = this.end.take() {
            if let Some(started) = end.started {
                metrics::connection_stopped(
                    &end.tags,
                    started.elapsed(),
                    version,
                    end.handle.end_reason(),
                );
            }
            events::connection_stop(end.id);
        }
        Poll::Ready(())
    }
}

/// Run the connection middleware, pick the protocol and serve; returns the
/// protocol version spoken (`"1.1"`, `"2"`), if any.
// An `async fn` would hold the arguments twice (see above).
#[allow(clippy::manual_async_fn)]
fn run_connection<A: Application>(
    mut admitted: AdmittedConnection,
    endpoint: Arc<ListenOptions>,
    shared: Arc<ServerShared<A>>,
) -> impl Future<Output = Option<&'static str>> + Send {
    // `admitted` is used in place (never rebound), so the future holds it once.
    async move {
        let id = admitted.id();
        let handle = admitted.handle().clone();
        // The limits in force when the connection starts, for its whole life.
        let settings = shared.limits.current();
        if let Some(address) = admitted.endpoint() {
            events::connection_start(id, &admitted.connection().remote_addr, address);
        }
        if !endpoint.middleware().is_empty() {
            // The peer's address, to see whether middleware replaced it (no
            // clone, which allocates for Unix peers, when there is none).
            let peer = admitted.connection().remote_addr.clone();
            let limits = MiddlewareLimits::new(settings.request_headers_timeout);
            if let Err(e) = admitted.run_middleware(endpoint.middleware(), limits).await {
                handle.set_end_reason(middleware_end_reason(&e));
                tracing::debug!(target: "kestrel::connections", connection_id = %id, error = %e, "connection middleware closed the connection");
                return None;
            }
            if peer != admitted.connection().remote_addr {
                let client = &admitted.connection().remote_addr;
                tracing::Span::current().record("client", tracing::field::display(client));
            }
        }
        #[cfg(feature = "http3")]
        crate::http3_endpoint::advertise(&endpoint, &mut admitted);
        let protocols = compiled_protocols(endpoint.protocols, &admitted)?;
        // ALPN over TLS; on cleartext, the endpoint's protocols and the preface.
        let limits = SelectionLimits::new(
            settings.request_headers_timeout,
            settings.max_request_line_size,
        );
        match admitted.select_protocol(protocols, limits).await {
            SelectedProtocol::Http1 => {
                // The driver holds the slot: an upgraded connection keeps its place in
                // the upgraded count for as long as the app holds the stream.
                let result = Http1Connection::from_admitted(admitted, settings.http1.clone())
                    .serve(&shared.app)
                    .await;
                // The end reason (metrics' error.type), recorded here only:
                // the driver's outcome carries it.
                let reason = match &result {
                    Ok(close) => close.end_reason(),
                    Err(e) => e.end_reason(),
                };
                if let Some(reason) = reason {
                    handle.set_end_reason(reason);
                }
                if let Err(e) = &result {
                    if !matches!(e, Http1Error::BadRequest(_)) {
                        tracing::debug!(target: "kestrel::connections", connection_id = %id, error = %e, "connection ended with an error")
                    }
                }
                Some("1.1")
            }
            #[cfg(feature = "http2")]
            SelectedProtocol::Http2 => {
                // Boxed: the HTTP/2 driver's state is large, and every
                // connection task would otherwise reserve room for it, HTTP/1
                // ones included (idle memory per connection).
                let result = Box::pin(
                    Http2Connection::from_admitted(admitted, settings.http2.clone())
                        .serve(&shared.app),
                )
                .await;
                if let Err(e) = result {
                    // The end reason (metrics' error.type) the error carries.
                    if let Some(reason) = e.end_reason() {
                        handle.set_end_reason(reason);
                    }
                    tracing::debug!(target: "kestrel::connections", connection_id = %id, error = %e, "HTTP/2 connection ended with an error")
                }
                Some("2")
            }
            _ => None,
        }
    }
}

/// The endpoint's protocols this build can speak: without the `http2`
/// feature, HTTP/2 is left out (with a warning, or a close on an
/// HTTP/2-only cleartext endpoint). `None`: close the connection.
fn compiled_protocols(
    protocols: HttpProtocols,
    admitted: &AdmittedConnection,
) -> Option<HttpProtocols> {
    if cfg!(feature = "http2") || !protocols.contains(HttpProtocols::HTTP2) {
        return Some(protocols);
    }
    let h1 = protocols.contains(HttpProtocols::HTTP1);
    if admitted.tls().is_none() {
        if !h1 {
            tracing::warn!(target: "kestrel::connections", connection_id = %admitted.id(), "an HTTP/2-only endpoint needs the `http2` feature of the `kestrel` crate: closing the connection");
            return None;
        }
        tracing::debug!(target: "kestrel::connections", connection_id = %admitted.id(), "HTTP/2 is not compiled in (feature `http2`): serving HTTP/1.x only");
    }
    Some(if h1 {
        HttpProtocols::HTTP1
    } else {
        HttpProtocols::NONE
    })
}

/// The end reason of a connection closed by its connection middleware: a
/// bad or late PROXY header is a request-headers problem; otherwise TLS is
/// the middleware that fails in practice.
fn middleware_end_reason(e: &std::io::Error) -> ConnectionEndReason {
    #[cfg(feature = "proxy-protocol")]
    if e.get_ref()
        .is_some_and(|inner| inner.is::<kestrel_proxy_protocol::ProxyProtocolError>())
    {
        return if e.kind() == std::io::ErrorKind::TimedOut {
            ConnectionEndReason::RequestHeadersTimeout
        } else {
            ConnectionEndReason::InvalidRequestHeaders
        };
    }
    let _ = e;
    ConnectionEndReason::TlsHandshakeFailed
}

/// A started server: its addresses, and the way to stop it.
#[derive(Debug)]
pub struct RunningServer {
    pub(crate) addresses: ServerAddresses,
    runtime: Arc<ConnectionRuntime>,
    pub(crate) limits: Arc<LiveLimits>,
    pub(crate) endpoints: Endpoints,
    pub(crate) tcp: TcpOptions,
    pub(crate) quic: crate::bind::QuicSettings,
    shutdown_timeout: Duration,
}

impl RunningServer {
    /// The bound addresses in Kestrel's display form (with real ports after port 0).
    pub fn addresses(&self) -> &ServerAddresses {
        &self.addresses
    }

    /// The UDP addresses HTTP/3 is served on (feature `http3`): one per
    /// TCP listener of each HTTPS endpoint whose protocols include `Http3`,
    /// on the same address and port.
    pub fn http3_addresses(&self) -> Vec<std::net::SocketAddr> {
        self.endpoints
            .groups
            .iter()
            .flat_map(|g| g.quic_addresses.iter().copied())
            .collect()
    }

    /// Live connections right now (HTTP and upgraded).
    pub fn live_connections(&self) -> usize {
        self.runtime.live_connections()
    }

    /// Connections refused so far under `max_concurrent_connections`.
    pub fn rejected_connections(&self) -> u64 {
        self.runtime.manager().rejected_connections()
    }

    /// The limits new connections are served with.
    pub fn limits(&self) -> ServerLimits {
        self.limits.limits()
    }

    /// Serve connections accepted from now on with `limits` (a
    /// configuration reload of `Kestrel:Limits` comes here). Connections
    /// already open keep the limits they started with; the connection
    /// counts (`max_concurrent_connections`,
    /// `max_concurrent_upgraded_connections`) apply to admissions and
    /// upgrades from now on, and never close an open connection. Invalid
    /// limits are refused and change nothing. Returns whether the limits
    /// changed.
    pub fn update_limits(&self, limits: ServerLimits) -> Result<bool, OptionsError> {
        self.limits.set(limits)
    }

    /// Stop gracefully within the configured shutdown timeout.
    pub async fn stop(self) {
        let timeout = self.shutdown_timeout;
        self.stop_with_timeout(timeout).await
    }

    /// Run until `signal` completes, then stop gracefully.
    pub async fn stop_on(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.stop().await
    }

    /// Stop gracefully: stop accepting (listeners are closed and Unix socket
    /// files removed), ask every connection to close after its current
    /// request (`Connection: close`; idle connections close at once), wait up
    /// to `timeout` for them, then abort the rest.
    pub async fn stop_with_timeout(mut self, timeout: Duration) {
        for g in &self.endpoints.groups {
            g.signal_stop();
        }
        for g in &mut self.endpoints.groups {
            g.stop_accepting().await;
        }
        // Close requested, wait, abort what is left, end what ignores it:
        // no connection task outlives the server.
        self.runtime.shutdown(timeout).await;
    }
}
