//! HTTP/3 endpoints (feature `http3`): the accept loop of an endpoint's QUIC
//! listener. Each connection is admitted through the connection runtime
//! (`max_concurrent_connections`, the handle shutdown signals, connection
//! events and metrics with protocol version "3") and served by
//! `kestrel-http3`'s driver with the server's app.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use kestrel_core::events;
use kestrel_core::framing::AltSvc;
use kestrel_core::metrics::{self, EndpointTags};
use kestrel_core::runtime::AdmittedConnection;
use kestrel_core::runtime::AdmittedMultiplexed;
use kestrel_core::{Application, BoundAddress, HttpProtocols, ListenOptions};
use kestrel_http3::Http3Connection;
use kestrel_transport::multiplexed::MultiplexedListener;
use kestrel_transport::quic::QuicListener;
use tokio::sync::watch;

use crate::bind::QuicSide;
use crate::endpoints::TrackedConnections;
use crate::server::ServerShared;

/// Accept QUIC connections until `stop`; dropping the listener then stops
/// the endpoint's UDP side (connections already accepted run on).
pub(crate) async fn accept_loop<A: Application>(
    quic: QuicSide,
    address: BoundAddress,
    shared: Arc<ServerShared<A>>,
    mut stop: watch::Receiver<bool>,
    tracked: Arc<TrackedConnections>,
) {
    let mut quic = match quic {
        QuicSide::Bound(quic) => quic,
        QuicSide::Waiting { addr, tls, options } => {
            let bound = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => None,
                q = bind_when_free(addr, &tls, &options) => Some(q),
            };
            match bound {
                Some(quic) => {
                    tracing::info!(target: "kestrel", address = %address, udp = %addr, "Now listening on: {address} (HTTP/3 over QUIC, UDP {addr}; released by the previous process)");
                    quic
                }
                None => return,
            }
        }
    };
    let tags = EndpointTags::quic(quic.local_addr());
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            r = poll_fn(|cx| quic.poll_accept(cx)) => r,
        };
        match accepted {
            // Refused connections are closed and logged by the runtime.
            Ok(conn) => match shared.runtime.admit_multiplexed(conn) {
                Ok(admitted) => {
                    let handle = admitted.handle().clone();
                    tracked.add(&handle);
                    let task = tokio::spawn(serve_connection(
                        admitted,
                        address.clone(),
                        tags.clone(),
                        shared.clone(),
                    ));
                    handle.attach_task(task.abort_handle());
                }
                Err(_) => metrics::connection_rejected(&tags),
            },
            Err(e) => {
                tracing::error!(target: "kestrel::connections", endpoint = %address, error = %e, "accepting a QUIC connection failed; retrying shortly");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracing::debug!(target: "kestrel", endpoint = %address, "stopped accepting HTTP/3 connections");
}

/// How often a process that took over in a zero-downtime restart tries to
/// bind the UDP port the previous process still drains on.
const REBIND_INTERVAL: Duration = Duration::from_millis(200);

/// Bind `addr` once it is free (the previous process exited or dropped its
/// QUIC endpoint after draining).
async fn bind_when_free(
    addr: std::net::SocketAddr,
    tls: &kestrel_tls::EndpointTls,
    options: &kestrel_transport::quic::QuicOptions,
) -> QuicListener {
    loop {
        tokio::time::sleep(REBIND_INTERVAL).await;
        match QuicListener::bind(addr, (*tls.server_config).clone(), options) {
            Ok(quic) => return quic,
            Err(e) => {
                tracing::trace!(target: "kestrel", udp = %addr, error = %e, "the UDP port is not free yet")
            }
        }
    }
}

/// One HTTP/3 connection's task: events, metrics, the driver.
async fn serve_connection<A: Application>(
    admitted: AdmittedMultiplexed,
    address: BoundAddress,
    tags: EndpointTags,
    shared: Arc<ServerShared<A>>,
) {
    let id = admitted.id();
    let handle = admitted.handle().clone();
    let started = metrics::ENABLED.then(std::time::Instant::now);
    metrics::connection_started(&tags);
    let span = tracing::debug_span!(target: "kestrel::connections", "connection", connection_id = %id, remote = %admitted.connection().remote_addr, endpoint = %address, protocol = "HTTP/3");
    events::connection_start(id, &admitted.connection().remote_addr, &address);
    let admitted = admitted
        .with_endpoint(address)
        .with_server_addresses(shared.addresses.current());
    // The limits in force when the connection starts, for its whole life.
    let config = shared.limits.current().http3.clone();
    let result = tracing::Instrument::instrument(
        Http3Connection::from_admitted(admitted, config).serve(&shared.app),
        span,
    )
    .await;
    // The driver's outcome decides the end reason (`error.type`).
    let reason = match &result {
        Ok(close) => close.end_reason(),
        Err(e) => {
            tracing::debug!(target: "kestrel::connections", connection_id = %id, error = %e, "HTTP/3 connection ended with an error");
            e.end_reason()
        }
    };
    if let Some(reason) = reason {
        handle.set_end_reason(reason);
    }
    if let Some(started) = started {
        metrics::connection_stopped(&tags, started.elapsed(), Some("3"), handle.end_reason());
    }
    events::connection_stop(id);
}

/// Record `Alt-Svc: h3=":<port>"; ma=86400` on a TCP connection of an
/// endpoint that serves HTTP/3 beside HTTP/1.1 or HTTP/2 (unless it sets
/// `disable_alt_svc_header`): the HTTP/1.1 and HTTP/2 drivers add it to every
/// response the app did not give an `Alt-Svc` of its own
/// (`kestrel_core::framing::add_alt_svc`). The UDP port is the TCP port: the
/// QUIC listener was bound on the TCP listener's address and port, and an
/// HTTP/3 endpoint without it does not start.
pub(crate) fn advertise(endpoint: &ListenOptions, admitted: &mut AdmittedConnection) {
    let p = endpoint.protocols;
    if !p.contains(HttpProtocols::HTTP3)
        || endpoint.disable_alt_svc_header
        || !(p.contains(HttpProtocols::HTTP1) || p.contains(HttpProtocols::HTTP2))
    {
        return;
    }
    if let kestrel_transport::Address::Ip(local) = &admitted.connection().local_addr {
        let value = AltSvc::h3(local.port());
        admitted.features_mut().insert(value);
    }
}
