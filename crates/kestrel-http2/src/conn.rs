//! The HTTP/2 connection driver: the `h2` connection and every stream of it
//! polled from one task, under the connection's deadlines and signals.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use h2::server::SendResponse;
use h2::{Ping, PingPong, Reason, RecvStream};
use http::Request;
use kestrel_core::connection::{
    ConnectionEndReason, ConnectionGuard, ConnectionHandle, Signal, TimeoutReason,
};
use kestrel_core::heartbeat::{Clock, DateSlot};
use kestrel_core::{events, AdmittedConnection, Application, ConnectionInfo};
use kestrel_transport::{BoxIo, Rewind};
use tokio::time::Sleep;

use crate::body::StreamState;
use crate::config::{Http2Config, ENHANCE_YOUR_CALM_WINDOW_TICKS};
use crate::io::{CountingIo, ReadCounter};
use crate::stream::{serve_stream, StreamCtx};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long a closing connection may take to flush its GOAWAY.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection ended other than by a clean close.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Http2Error {
    /// The socket failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// A connection error: the client broke the protocol (or an `h2` limit),
    /// and the server sent GOAWAY with this HTTP/2 error code.
    #[error("HTTP/2 connection error {code:#x}: {message}")]
    Protocol {
        /// The HTTP/2 error code (e.g. 0x1 PROTOCOL_ERROR, 0xb ENHANCE_YOUR_CALM).
        code: u32,
        /// What went wrong.
        message: String,
    },
    /// The client closed the connection with a GOAWAY carrying an error code.
    #[error("the client sent GOAWAY with error code {code:#x}")]
    RemoteGoAway {
        /// The client's HTTP/2 error code.
        code: u32,
    },
    /// The client did not send the connection preface within the
    /// request-headers timeout.
    #[error("the client did not send the HTTP/2 connection preface in time")]
    PrefaceTimeout,
    /// A header block (a HEADERS frame and any CONTINUATION frames, up to
    /// the end of the one with END_HEADERS) was not completed within the
    /// request-headers timeout (GOAWAY INTERNAL_ERROR, as Kestrel does).
    #[error("a header block was not completed within the request-headers timeout")]
    RequestHeadersTimeout,
    /// The client did not answer the keep-alive PING in time (GOAWAY INTERNAL_ERROR).
    #[error("the client did not answer the keep-alive ping in time")]
    KeepAlivePingTimeout,
    /// Too many streams were refused with ENHANCE_YOUR_CALM (GOAWAY ENHANCE_YOUR_CALM).
    #[error("too many streams were refused with ENHANCE_YOUR_CALM")]
    TooManyEnhanceYourCalms,
    /// The server aborted the connection (shutdown timeout).
    #[error("the connection was aborted by the server")]
    Aborted,
    /// A request body arrived below its minimum data rate (GOAWAY
    /// INTERNAL_ERROR, as Kestrel does).
    #[error("a request body arrived below the minimum data rate")]
    MinRequestBodyDataRate,
    /// The client took a response below its minimum data rate (GOAWAY
    /// INTERNAL_ERROR, as Kestrel does).
    #[error("the client read a response below the minimum data rate")]
    MinResponseDataRate,
    /// The connection timeout the application set (Kestrel's
    /// `IConnectionTimeoutFeature`) passed.
    #[error("the connection timeout set by the application passed")]
    ConnectionTimeout,
}

impl Http2Error {
    /// Why the connection ended, as Kestrel reports it (`error.type` of
    /// `kestrel.connection.duration`); `None` when the client ended it.
    pub fn end_reason(&self) -> Option<ConnectionEndReason> {
        Some(match self {
            Http2Error::Io(_) => ConnectionEndReason::ConnectionReset,
            Http2Error::Protocol { .. } | Http2Error::TooManyEnhanceYourCalms => {
                ConnectionEndReason::ProtocolError
            }
            Http2Error::RemoteGoAway { .. } => return None,
            Http2Error::PrefaceTimeout | Http2Error::RequestHeadersTimeout => {
                ConnectionEndReason::RequestHeadersTimeout
            }
            Http2Error::KeepAlivePingTimeout => ConnectionEndReason::KeepAliveTimeout,
            Http2Error::Aborted => ConnectionEndReason::AppShutdownTimeout,
            Http2Error::MinRequestBodyDataRate => ConnectionEndReason::MinRequestBodyDataRate,
            Http2Error::MinResponseDataRate => ConnectionEndReason::MinResponseDataRate,
            Http2Error::ConnectionTimeout => ConnectionEndReason::ServerTimeout,
        })
    }
}

impl From<h2::Error> for Http2Error {
    fn from(e: h2::Error) -> Self {
        if e.is_io() {
            return match e.into_io() {
                Some(io) => Http2Error::Io(io),
                None => Http2Error::Io(io::Error::other("I/O error")),
            };
        }
        let code = e
            .reason()
            .map_or(u32::from(Reason::INTERNAL_ERROR), u32::from);
        if e.is_go_away() && e.is_remote() {
            Http2Error::RemoteGoAway { code }
        } else {
            Http2Error::Protocol {
                code,
                message: e.to_string(),
            }
        }
    }
}

/// An HTTP/2 connection, ready to serve an [`Application`].
///
/// The stream must start with the client's connection preface (the facade
/// replays the bytes it read while choosing the protocol).
pub struct Http2Connection {
    io: BoxIo,
    config: Arc<Http2Config>,
    handle: Arc<ConnectionHandle>,
    clock: Arc<Clock>,
    info: ConnectionInfo,
    guard: ConnectionGuard,
}

impl Http2Connection {
    /// The driver of an admitted connection: it replays the bytes protocol
    /// selection already read (the preface) before reading the connection,
    /// obeys the connection's signals and deadlines (the runtime's heartbeat
    /// visits its handle), puts its [`ConnectionInfo`] into every request's
    /// extensions, and holds its slot until it ends.
    pub fn from_admitted(admitted: AdmittedConnection, config: Arc<Http2Config>) -> Self {
        let parts = admitted.into_parts();
        let io: BoxIo = if parts.buffered.is_empty() {
            parts.io
        } else {
            Box::new(Rewind::new(parts.buffered.freeze(), parts.io))
        };
        Http2Connection {
            io,
            config,
            handle: parts.guard.handle().clone(),
            clock: parts.clock,
            info: parts.info,
            guard: parts.guard,
        }
    }

    /// Serve streams until the connection closes.
    pub async fn serve<A: Application>(self, app: &A) -> Result<(), Http2Error> {
        let Http2Connection {
            io,
            config,
            handle,
            clock,
            info,
            guard,
        } = self;
        // The slot is released when the connection ends.
        let _guard = guard;
        let info = Some(info);
        let counter = Arc::new(ReadCounter::default());
        let io = CountingIo::new(
            io,
            counter.clone(),
            config.limits.max_control_frames_per_second,
            clock.clone(),
        );

        // The preface (and our SETTINGS) under the request-headers deadline.
        handle.timeout().set(
            TimeoutReason::RequestHeaders,
            config.request_headers_timeout,
            clock.ticks(),
            clock.interval(),
        );
        let handshake = config.builder().handshake::<_, Bytes>(io);
        let mut handshake = pin!(handshake);
        let conn = poll_fn(|cx| {
            match handle.poll_signal(cx) {
                Poll::Ready(Signal::Aborted) => return Poll::Ready(Err(Http2Error::Aborted)),
                Poll::Ready(Signal::TimedOut(_)) => {
                    return Poll::Ready(Err(Http2Error::PrefaceTimeout))
                }
                Poll::Ready(Signal::CloseRequested) => return Poll::Ready(Ok(None)),
                _ => {}
            }
            handshake
                .as_mut()
                .poll(cx)
                .map(|r| r.map(Some).map_err(Http2Error::from))
        })
        .await;
        handle.timeout().cancel();
        let mut conn = match conn {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(()),
            Err(e) => {
                events::http2_connection_error(handle.id(), &e, true);
                return Err(e);
            }
        };

        let ping = match config.limits.keep_alive_ping_delay {
            Some(delay) => conn.ping_pong().map(|p| KeepAlivePing {
                pong: p,
                delay,
                timeout: config.limits.keep_alive_ping_timeout,
                sleep: Box::pin(tokio::time::sleep(delay)),
                last_read: counter.get(),
                waiting: false,
            }),
            None => None,
        };
        let rated: Mutex<Vec<Arc<StreamState>>> = Mutex::new(Vec::new());
        let ctx = StreamCtx {
            config: &config,
            clock: &clock,
            date: Mutex::new(DateSlot::new(clock.date())),
            reads: &counter,
            info: info.as_ref(),
            conn_id: handle.id(),
            handle: &handle,
            rated: &rated,
            metrics: Mutex::new(kestrel_core::metrics::RequestMetrics::new("2")),
        };
        let mut driver = Driver {
            conn,
            handle: &handle,
            clock: &clock,
            config: &config,
            counter: &counter,
            ping,
            keep_alive_armed: false,
            headers_armed: None,
            graceful: false,
            last_stream_id: 0,
            eyc_count: 0,
            eyc_window_start: 0,
            rated: &rated,
            rate_timer: None,
            rate_timer_armed: false,
            rated_pruned: false,
        };
        let mut streams = FuturesUnordered::new();
        let make = |req: Request<RecvStream>, respond: SendResponse<Bytes>| {
            serve_stream(app, &ctx, req, respond)
        };
        let end = poll_fn(|cx| driver.poll(cx, &mut streams, &make)).await;
        // Streams still running are cancelled with the connection.
        drop(streams);
        handle.timeout().cancel();
        let result = match end {
            End::Closed => Ok(()),
            End::Error(e) => {
                events::http2_connection_error(handle.id(), &e, false);
                Err(e)
            }
            End::Close(reason, outcome) => {
                events::http2_connection_closing(handle.id(), Some(u32::from(reason)), None);
                driver.conn.abrupt_shutdown(reason);
                driver.flush_close().await;
                outcome
            }
        };
        events::http2_connection_closed(handle.id(), driver.last_stream_id);
        result
    }
}

struct KeepAlivePing {
    pong: PingPong,
    delay: Duration,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    last_read: u64,
    waiting: bool,
}

enum End {
    /// `h2` closed the connection (graceful shutdown done, or the client left).
    Closed,
    /// A connection error.
    Error(Http2Error),
    /// Close with GOAWAY(last stream id, reason), then end with the outcome.
    Close(Reason, Result<(), Http2Error>),
}

struct Driver<'a> {
    conn: h2::server::Connection<CountingIo, Bytes>,
    handle: &'a ConnectionHandle,
    clock: &'a Clock,
    config: &'a Http2Config,
    counter: &'a ReadCounter,
    ping: Option<KeepAlivePing>,
    keep_alive_armed: bool,
    /// The header block (by number) whose request-headers deadline is armed.
    headers_armed: Option<u64>,
    graceful: bool,
    last_stream_id: u32,
    eyc_count: u32,
    eyc_window_start: u64,
    /// Streams with data rates to check (shared with the streams).
    rated: &'a Mutex<Vec<Arc<StreamState>>>,
    /// One timer per connection, ticking every heartbeat interval while
    /// there are streams to check (not one per stream).
    rate_timer: Option<Pin<Box<Sleep>>>,
    rate_timer_armed: bool,
    /// Completed streams were taken off `rated` before the next check; the
    /// timer keeps ticking until then, as if they were still listed.
    rated_pruned: bool,
}

impl Driver<'_> {
    fn poll<F, M>(
        &mut self,
        cx: &mut Context<'_>,
        streams: &mut FuturesUnordered<F>,
        make: &M,
    ) -> Poll<End>
    where
        F: Future<Output = ()>,
        M: Fn(Request<RecvStream>, SendResponse<Bytes>) -> F,
    {
        match self.handle.poll_signal(cx) {
            Poll::Ready(Signal::Aborted) => {
                return Poll::Ready(End::Close(Reason::INTERNAL_ERROR, Err(Http2Error::Aborted)))
            }
            Poll::Ready(Signal::TimedOut(TimeoutReason::KeepAlive)) if streams.is_empty() => {
                events::connection_keep_alive(self.handle.id());
                return Poll::Ready(End::Close(Reason::NO_ERROR, Ok(())));
            }
            Poll::Ready(Signal::TimedOut(TimeoutReason::RequestHeaders))
                if self.headers_armed.is_some() =>
            {
                tracing::debug!(target: "kestrel::bad_requests", connection_id = %self.handle.id(), timeout = ?self.config.request_headers_timeout, "a header block was not completed within the request-headers timeout: closing the HTTP/2 connection");
                return Poll::Ready(End::Close(
                    Reason::INTERNAL_ERROR,
                    Err(Http2Error::RequestHeadersTimeout),
                ));
            }
            Poll::Ready(Signal::TimedOut(TimeoutReason::TimeoutFeature)) => {
                // The app's connection timeout (`ConnectionTimeout`): abort.
                tracing::debug!(target: "kestrel::connections", connection_id = %self.handle.id(), "the connection timeout set by the application expired: aborting");
                return Poll::Ready(End::Close(
                    Reason::INTERNAL_ERROR,
                    Err(Http2Error::ConnectionTimeout),
                ));
            }
            Poll::Ready(Signal::CloseRequested) if !self.graceful => {
                self.graceful = true;
                if streams.is_empty() {
                    return Poll::Ready(End::Close(Reason::NO_ERROR, Ok(())));
                }
                // GOAWAY(2^31-1), a PING, and once it is answered GOAWAY(last
                // stream id); h2 closes when the active streams are done.
                events::http2_connection_closing(self.handle.id(), None, Some(streams.len()));
                self.conn.graceful_shutdown();
            }
            Poll::Ready(Signal::Idle) => {
                // h2 owns the buffers; nothing to release, and no need to be told again.
                self.handle.set_buffers_released(true);
            }
            _ => {}
        }
        // Streams first, so the frames they queue go out with the next poll
        // of the connection; then every stream h2 has ready is accepted
        // before any of them runs, so that the responses of a batch of
        // requests leave in one write (polling the connection flushes it).
        while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
        loop {
            let mut accepted = false;
            loop {
                match self.conn.poll_accept(cx) {
                    Poll::Ready(Some(Ok((req, mut respond)))) => {
                        let id = u32::from(respond.stream_id());
                        self.last_stream_id = self.last_stream_id.max(id);
                        if streams.len() >= self.config.max_tracked_streams {
                            respond.send_reset(Reason::ENHANCE_YOUR_CALM);
                            if self.refused_too_often() {
                                return Poll::Ready(End::Close(
                                    Reason::ENHANCE_YOUR_CALM,
                                    Err(Http2Error::TooManyEnhanceYourCalms),
                                ));
                            }
                            continue;
                        }
                        streams.push(make(req, respond));
                        accepted = true;
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(End::Error(e.into())),
                    Poll::Ready(None) => return Poll::Ready(End::Closed),
                    Poll::Pending => break,
                }
            }
            if !accepted {
                break;
            }
            // Run the new streams; the next `poll_accept` writes what they queued.
            while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
        }
        // A frame `h2` would answer with another error code than RFC 9113's
        // (a control frame of the wrong length, an initial window size over
        // 2^31-1): it was withheld from `h2`; close with the RFC's code.
        if let Some(reason) = self.counter.violation() {
            return Poll::Ready(End::Close(
                reason,
                Err(Http2Error::Protocol {
                    code: u32::from(reason),
                    message: if reason == Reason::ENHANCE_YOUR_CALM {
                        format!(
                            "more than {} PING/SETTINGS frames from the client within {:?}",
                            self.config
                                .limits
                                .max_control_frames_per_second
                                .unwrap_or(0),
                            crate::io::CONTROL_FRAME_PERIOD
                        )
                    } else {
                        format!("malformed frame from the client ({reason})")
                    },
                }),
            ));
        }
        // The request-headers deadline runs while a header block is in
        // progress (from its HEADERS frame's header until the whole frame
        // with END_HEADERS is read), each block its own: `h2` reads nothing
        // else on the connection meanwhile. An app-set connection timeout
        // is left alone.
        let app_deadline = self.handle.timeout().armed() == TimeoutReason::TimeoutFeature;
        let block = self.counter.header_block_open();
        let slot_lost = self.handle.timeout().armed() != TimeoutReason::RequestHeaders;
        match block {
            // A new block, or the app's deadline replaced ours and is gone.
            Some(n) if !app_deadline && (self.headers_armed != Some(n) || slot_lost) => {
                self.handle.timeout().set(
                    TimeoutReason::RequestHeaders,
                    self.config.request_headers_timeout,
                    self.clock.ticks(),
                    self.clock.interval(),
                );
                self.headers_armed = Some(n);
                // The slot held the keep-alive deadline, if any.
                if self.keep_alive_armed {
                    self.keep_alive_armed = false;
                    self.handle.set_buffers_released(false);
                }
            }
            None if self.headers_armed.is_some() => {
                if !slot_lost {
                    self.handle.timeout().cancel();
                }
                self.headers_armed = None;
            }
            _ => {}
        }
        // The keep-alive deadline runs while no stream is active.
        let idle = streams.is_empty() && !self.graceful;
        if idle && !self.keep_alive_armed && !app_deadline && self.headers_armed.is_none() {
            self.handle.timeout().set(
                TimeoutReason::KeepAlive,
                self.config.keep_alive_timeout,
                self.clock.ticks(),
                self.clock.interval(),
            );
            self.keep_alive_armed = true;
        } else if !idle && self.keep_alive_armed {
            if !app_deadline {
                self.handle.timeout().cancel();
            }
            self.handle.set_buffers_released(false);
            self.keep_alive_armed = false;
        }
        if let Some(end) = self.poll_ping(cx) {
            return Poll::Ready(end);
        }
        self.prune_rated(streams.len());
        if let Some(end) = self.poll_rates(cx) {
            return Poll::Ready(end);
        }
        Poll::Pending
    }

    /// Take completed streams off `rated` once they outnumber the open ones:
    /// otherwise the next check (once per heartbeat interval) would be the
    /// first to let them go, and under load that is every stream served in
    /// the interval, all kept in memory. The checks see the same streams.
    fn prune_rated(&mut self, open: usize) {
        let mut rated = lock(self.rated);
        if rated.len() > 2 * open + 32 {
            let before = rated.len();
            rated.retain(|s| !s.is_completed());
            self.rated_pruned |= rated.len() != before;
        }
    }

    /// Every heartbeat interval while streams are open, check each stream's
    /// minimum request body and response data rates.
    fn poll_rates(&mut self, cx: &mut Context<'_>) -> Option<End> {
        if lock(self.rated).is_empty() && !self.rated_pruned {
            self.rate_timer_armed = false;
            return None;
        }
        let interval = self.clock.interval();
        let timer = self
            .rate_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(interval)));
        if !self.rate_timer_armed {
            timer.as_mut().reset(self.clock.now() + interval);
            self.rate_timer_armed = true;
        }
        while timer.as_mut().poll(cx).is_ready() {
            timer.as_mut().reset(self.clock.now() + interval);
            self.rated_pruned = false;
            if let Some(end) = check_rates(self.clock, self.config, self.handle, self.rated) {
                return Some(end);
            }
        }
        None
    }
}

/// One check of every stream's rates. Like Kestrel, a stream below its
/// rate closes the connection: GOAWAY INTERNAL_ERROR (events 27 / 28).
fn check_rates(
    clock: &Clock,
    config: &Http2Config,
    handle: &ConnectionHandle,
    rated: &Mutex<Vec<Arc<StreamState>>>,
) -> Option<End> {
    let now = clock.precise_ticks();
    let mut rated = lock(rated);
    rated.retain(|s| !s.is_completed());
    // Bytes received but not read by the app hold the connection's
    // receive window; when it is low the client cannot send, so waiting
    // time does not count against anyone (Kestrel's rule).
    let buffered: u64 = rated.iter().map(|s| s.buffered() as u64).sum();
    let count_reads = buffered * 2 < u64::from(config.limits.initial_connection_window_size);
    for s in rated.iter() {
        match s.tick_rates(now, count_reads) {
            Some(TimeoutReason::ReadDataRate) => {
                events::request_body_minimum_data_rate_not_satisfied(
                    handle.id(),
                    Some(s.stream_id()),
                );
                s.time_out_body();
                return Some(End::Close(
                    Reason::INTERNAL_ERROR,
                    Err(Http2Error::MinRequestBodyDataRate),
                ));
            }
            Some(TimeoutReason::WriteDataRate) => {
                events::response_minimum_data_rate_not_satisfied(handle.id(), Some(s.stream_id()));
                return Some(End::Close(
                    Reason::INTERNAL_ERROR,
                    Err(Http2Error::MinResponseDataRate),
                ));
            }
            _ => {}
        }
    }
    None
}

impl Driver<'_> {
    /// Count a stream refused with ENHANCE_YOUR_CALM; true when too many
    /// were refused within the window (Kestrel's event 64).
    fn refused_too_often(&mut self) -> bool {
        let now = self.clock.ticks();
        let window = ENHANCE_YOUR_CALM_WINDOW_TICKS * self.clock.interval().as_millis() as u64;
        if now.saturating_sub(self.eyc_window_start) > window {
            self.eyc_window_start = now;
            self.eyc_count = 0;
        }
        self.eyc_count += 1;
        if self.eyc_count > self.config.max_enhance_your_calm {
            events::http2_too_many_enhance_your_calms(self.handle.id(), self.eyc_count);
            return true;
        }
        false
    }

    /// The keep-alive PING: after `delay` without a byte from the client,
    /// ping; without an answer within `timeout`, close with INTERNAL_ERROR.
    fn poll_ping(&mut self, cx: &mut Context<'_>) -> Option<End> {
        let p = self.ping.as_mut()?;
        if p.waiting {
            match p.pong.poll_pong(cx) {
                Poll::Ready(Ok(_)) => {
                    p.waiting = false;
                    p.last_read = self.counter.get();
                    p.sleep.as_mut().reset(self.clock.now() + p.delay);
                }
                Poll::Ready(Err(_)) => return None,
                Poll::Pending => {}
            }
        }
        loop {
            if p.sleep.as_mut().poll(cx).is_pending() {
                return None;
            }
            if p.waiting {
                tracing::debug!(target: "kestrel::http2", connection_id = %self.handle.id(), "the client did not answer the keep-alive ping in time");
                return Some(End::Close(
                    Reason::INTERNAL_ERROR,
                    Err(Http2Error::KeepAlivePingTimeout),
                ));
            }
            let read = self.counter.get();
            if read != p.last_read {
                p.last_read = read;
                p.sleep.as_mut().reset(self.clock.now() + p.delay);
                continue;
            }
            if p.pong.send_ping(Ping::opaque()).is_ok() {
                p.waiting = true;
                p.sleep.as_mut().reset(self.clock.now() + p.timeout);
                // Register for the pong.
                let _ = p.pong.poll_pong(cx);
            } else {
                p.sleep.as_mut().reset(self.clock.now() + p.delay);
            }
        }
    }

    /// Drive the connection until `h2` has flushed its GOAWAY and closed,
    /// bounded in time and by an abort.
    async fn flush_close(&mut self) {
        let conn = &mut self.conn;
        let handle = self.handle;
        let aborted_already = handle.is_aborted();
        let flush = poll_fn(|cx| {
            if !aborted_already {
                if let Poll::Ready(Signal::Aborted) = handle.poll_signal(cx) {
                    return Poll::Ready(());
                }
            }
            conn.poll_closed(cx).map(|_| ())
        });
        let _ = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, flush).await;
    }
}
