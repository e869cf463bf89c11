//! [`Http3Connection`]: serve an [`Application`] over one multiplexed (QUIC)
//! connection with h3: the connection's accept loop, graceful shutdown
//! (GOAWAY), keep-alive and data-rate checks; each request stream is served
//! by [`crate::stream`].

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use kestrel_core::connection::{
    ConnectionEndReason, ConnectionGuard, ConnectionHandle, ConnectionId, Signal, TimeoutReason,
};
use kestrel_core::heartbeat::{Clock, DateSlot};
use kestrel_core::runtime::AdmittedMultiplexed;
use kestrel_core::{events, Application, ConnectionInfo};
use kestrel_transport::multiplexed::MultiplexedConnection;

use crate::config::Http3Config;
use crate::goaway::GoawayGate;
use crate::guard::GuardedStreams;
use crate::quic::H3Conn;
use crate::stream::{lock, serve_request, StreamCtx};

/// Why an HTTP/3 connection ended with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Http3Error {
    /// The connection failed: a protocol error of either end, or the
    /// transport closed it (h3's error carries the `H3_*` code).
    #[error("HTTP/3 connection error: {0}")]
    Connection(#[from] h3::error::ConnectionError),
}

impl Http3Error {
    /// Why the connection ended, as Kestrel reports it (`error.type` of
    /// `kestrel.connection.duration`).
    pub fn end_reason(&self) -> Option<ConnectionEndReason> {
        match self {
            // A protocol error of either end, or the transport went away.
            Http3Error::Connection(e) if e.is_h3_no_error() => None,
            Http3Error::Connection(_) => Some(ConnectionEndReason::ProtocolError),
        }
    }
}

/// How an HTTP/3 connection ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Http3Close {
    /// The client closed it, or a graceful shutdown completed.
    Done,
    /// No request stream was open for the keep-alive timeout (the driver's
    /// own timer, or QUIC's idle timeout, which is the same value): closed
    /// with GOAWAY and H3_NO_ERROR.
    KeepAliveTimeout,
    /// The connection runtime aborted it (the shutdown timeout passed).
    Aborted,
}

impl Http3Close {
    /// Why the connection ended, as Kestrel reports it; `None` for a plain
    /// close.
    pub fn end_reason(&self) -> Option<ConnectionEndReason> {
        match self {
            Http3Close::KeepAliveTimeout => Some(ConnectionEndReason::KeepAliveTimeout),
            Http3Close::Done | Http3Close::Aborted => None,
        }
    }
}

/// An HTTP/3 connection, ready to serve an [`Application`].
pub struct Http3Connection {
    conn: MultiplexedConnection,
    config: Arc<Http3Config>,
    clock: Arc<Clock>,
    id: ConnectionId,
    info: Option<ConnectionInfo>,
    /// The runtime's slot and handle (from [`from_admitted`](Self::from_admitted)).
    guard: Option<ConnectionGuard>,
}

impl std::fmt::Debug for Http3Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http3Connection")
            .field("conn", &self.conn)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Http3Connection {
    /// A connection over `conn` (its handshake done, ALPN `h3`), with time
    /// and the `Date` header from `clock`.
    pub fn new(
        conn: MultiplexedConnection,
        config: Arc<Http3Config>,
        clock: Arc<Clock>,
        id: ConnectionId,
    ) -> Self {
        Http3Connection {
            conn,
            config,
            clock,
            id,
            info: None,
            guard: None,
        }
    }

    /// A connection admitted by the connection runtime
    /// (`ConnectionRuntime::admit_multiplexed`): it holds the slot until it
    /// ends, its requests see the `ConnectionInfo`, and it follows the
    /// handle's signals: a close request (graceful shutdown) stops accepting
    /// request streams, sends GOAWAY and lets the ones in flight finish; an
    /// abort ends the connection at once.
    pub fn from_admitted(admitted: AdmittedMultiplexed, config: Arc<Http3Config>) -> Self {
        let parts = admitted.into_parts();
        Http3Connection {
            conn: parts.conn,
            config,
            clock: parts.clock,
            id: parts.guard.id(),
            info: Some(parts.info),
            guard: Some(parts.guard),
        }
    }

    /// Put this connection's info into every request's extensions.
    pub fn with_connection_info(mut self, info: ConnectionInfo) -> Self {
        self.info = Some(info);
        self
    }

    /// Serve request streams until the connection closes. A close by the
    /// client with `H3_NO_ERROR`, a graceful shutdown or the keep-alive
    /// timeout is a clean end.
    pub async fn serve<A: Application>(self, app: &A) -> Result<Http3Close, Http3Error> {
        let Http3Connection {
            conn,
            config,
            clock,
            id,
            info,
            guard,
        } = self;
        let handle: Option<Arc<ConnectionHandle>> = guard.as_ref().map(|g| g.handle().clone());
        let _guard = guard;
        let gate = Arc::new(GoawayGate::new());
        let streams = Box::new(GuardedStreams::new(conn.streams, &config, id));
        let h3_conn = H3Conn::new(streams, gate.clone(), id);
        let closed = h3_conn.closed_watch();
        let mut server = match config.builder().build::<_, Bytes>(h3_conn).await {
            Ok(server) => server,
            Err(e) => return end(id, e),
        };
        let ctx = StreamCtx {
            config: &config,
            date: Mutex::new(DateSlot::new(clock.date())),
            clock: &clock,
            info: info.as_ref(),
            id,
            metrics: Mutex::new(kestrel_core::metrics::RequestMetrics::new("3")),
            rated: Mutex::new(Vec::new()),
        };
        let mut rate_check = RateCheck::default();
        let mut keep_alive_armed = false;
        // Each stream's future is boxed once: the request lifecycle's state
        // machine is several KiB, and `FuturesUnordered::push` moved it
        // three times on its way into its task.
        let mut streams = FuturesUnordered::new();
        // Serving: until the client is done, the connection fails, or the
        // runtime asks to close or abort.
        let next = loop {
            let next = {
                let mut accept = pin!(server.accept());
                poll_fn(|cx| {
                    // Drive the running streams while waiting for the next one.
                    while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
                    rate_check.poll(cx, &ctx, streams.len());
                    if let Some(h) = &handle {
                        // The keep-alive deadline runs while no request
                        // stream is open (a client's QUIC PINGs keep QUIC's
                        // idle timer alive, not this one).
                        let idle = streams.is_empty();
                        if idle && !keep_alive_armed {
                            h.timeout().set(
                                TimeoutReason::KeepAlive,
                                config.keep_alive_timeout,
                                clock.ticks(),
                                clock.interval(),
                            );
                            keep_alive_armed = true;
                        } else if !idle && keep_alive_armed {
                            h.timeout().cancel();
                            keep_alive_armed = false;
                        }
                        match h.poll_signal(cx) {
                            Poll::Ready(Signal::Aborted) => return Poll::Ready(Next::Abort),
                            Poll::Ready(Signal::CloseRequested) => return Poll::Ready(Next::Close),
                            Poll::Ready(Signal::TimedOut(TimeoutReason::KeepAlive)) if idle => {
                                return Poll::Ready(Next::KeepAlive)
                            }
                            _ => {}
                        }
                    }
                    accept.as_mut().poll(cx).map(Next::Accepted)
                })
                .await
            };
            match next {
                Next::Accepted(Ok(Some(resolver))) => {
                    streams.push(Box::pin(serve_request(app, &ctx, resolver)))
                }
                other => break other,
            }
        };
        if keep_alive_armed {
            if let Some(h) = &handle {
                h.timeout().cancel();
            }
        }
        let client_done = matches!(next, Next::Accepted(Ok(None)));
        let mut close = Http3Close::Done;
        let result = match next {
            Next::Abort => {
                events::http3_connection_closed(id);
                return Ok(Http3Close::Aborted);
            }
            Next::KeepAlive => {
                events::connection_keep_alive(id);
                close = Http3Close::KeepAliveTimeout;
                server.shutdown(1).await
            }
            Next::Close => {
                // Graceful shutdown: GOAWAY with the first request stream not
                // processed (the gate's id, RFC 9114 §5.2); streams at or
                // past it are refused with H3_REQUEST_REJECTED.
                match server.shutdown(1).await {
                    Ok(()) => {
                        tracing::debug!(target: "kestrel::http3", connection_id = %id, goaway = ?gate.announced(), "close requested: GOAWAY sent");
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            // The client is done (its GOAWAY, and no request left): h3
            // answered with a last GOAWAY of its own (the gate's id).
            Next::Accepted(Ok(None)) => Ok(()),
            Next::Accepted(Err(e)) => Err(e),
            Next::Accepted(Ok(Some(_))) => Ok(()),
        };
        // Closing: the streams in flight finish while new ones are refused.
        // Once none is left the connection lingers (up to CLOSE_LINGER, or
        // until the client closes it): dropping h3's connection closes QUIC
        // at once, and QUIC discards stream data not yet delivered, so the
        // last responses and GOAWAY could be lost. An abort ends it at once.
        {
            // Request streams h3 still accepts (below the GOAWAY id; the
            // gate refuses the others), until the client closes.
            let accepted = futures_util::stream::unfold(&mut server, |server| async move {
                match server.accept().await {
                    Ok(Some(resolver)) => Some((resolver, server)),
                    Ok(None) | Err(_) => None,
                }
            });
            let mut accepted = pin!(accepted);
            // After an error h3's connection is done; after the client's
            // GOAWAY it answers `None` at once, again and again.
            let mut accept_done = result.is_err() || client_done;
            let mut linger = None;
            poll_fn(|cx| {
                if let Some(h) = &handle {
                    if let Poll::Ready(Signal::Aborted) = h.poll_signal(cx) {
                        return Poll::Ready(());
                    }
                }
                while !accept_done {
                    match accepted.as_mut().poll_next_unpin(cx) {
                        Poll::Ready(Some(resolver)) => {
                            streams.push(Box::pin(serve_request(app, &ctx, resolver)))
                        }
                        Poll::Ready(None) => accept_done = true,
                        Poll::Pending => break,
                    }
                }
                while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
                rate_check.poll(cx, &ctx, streams.len());
                if streams.is_empty() {
                    if closed.poll_closed(cx).is_ready() {
                        return Poll::Ready(());
                    }
                    let linger =
                        linger.get_or_insert_with(|| Box::pin(tokio::time::sleep(CLOSE_LINGER)));
                    if linger.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(());
                    }
                }
                Poll::Pending
            })
            .await;
        }
        drop(streams);
        match result {
            Ok(()) => {
                // Dropping h3's connection closes the QUIC connection with
                // H3_NO_ERROR (Kestrel's close code).
                events::http3_connection_closed(id);
                Ok(close)
            }
            Err(e) => end(id, e),
        }
    }
}

/// How long a connection closed by a graceful shutdown stays open after its
/// last response, for that response's data to reach the client before the
/// QUIC close (which discards undelivered stream data), unless the client
/// closes first.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// The connection's check of its streams' minimum data rates, once per
/// heartbeat interval while a stream has one (as HTTP/2's).
#[derive(Default)]
struct RateCheck {
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl RateCheck {
    /// `open`: the streams running now. Finished streams are let go at each
    /// check, and between checks once they outnumber the open ones (so a
    /// busy connection does not keep every stream of an interval); not on
    /// every wake-up, which would lock every stream each time.
    fn poll(&mut self, cx: &mut std::task::Context<'_>, ctx: &StreamCtx<'_>, open: usize) {
        let mut rated = lock(&ctx.rated);
        if rated.len() > 2 * open + 32 {
            rated.retain(|s| !s.is_completed());
        }
        if rated.is_empty() {
            self.timer = None;
            return;
        }
        let interval = ctx.clock.interval();
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(interval)));
        while timer.as_mut().poll(cx).is_ready() {
            timer.as_mut().reset(tokio::time::Instant::now() + interval);
            rated.retain(|s| !s.is_completed());
            let now = ctx.clock.precise_ticks();
            for s in rated.iter() {
                let id = u32::try_from(kestrel_core::features::ResetSource::stream_id(&**s)).ok();
                match s.check_rates(now) {
                    Some(TimeoutReason::ReadDataRate) => {
                        events::request_body_minimum_data_rate_not_satisfied(ctx.id, id)
                    }
                    Some(TimeoutReason::WriteDataRate) => {
                        events::response_minimum_data_rate_not_satisfied(ctx.id, id)
                    }
                    _ => {}
                }
            }
        }
    }
}

/// What the connection's accept loop woke up for.
enum Next<T> {
    Accepted(T),
    Close,
    KeepAlive,
    Abort,
}

/// The end of a connection: a graceful close or a timeout is not an error.
fn end(id: ConnectionId, e: h3::error::ConnectionError) -> Result<Http3Close, Http3Error> {
    if e.is_h3_no_error() {
        events::http3_connection_closed(id);
        Ok(Http3Close::Done)
    } else if is_timeout(&e) {
        // QUIC's idle timeout is the keep-alive timeout.
        events::http3_connection_closed(id);
        Ok(Http3Close::KeepAliveTimeout)
    } else {
        events::http3_connection_error(id, &e);
        Err(e.into())
    }
}

fn is_timeout(e: &h3::error::ConnectionError) -> bool {
    matches!(
        e,
        h3::error::ConnectionError::Timeout { .. }
            | h3::error::ConnectionError::Remote {
                0: h3::quic::ConnectionErrorIncoming::Timeout,
                ..
            }
    )
}
