//! The HTTP/1 connection driver: one request at a time, in order, with the
//! application run inline in the connection's task.
//!
//! Split by job: [`read`] reads request heads (and drains unread bodies),
//! [`dispatch`] builds each request and runs the application, [`respond`]
//! frames and writes responses. This module holds the connection's state and
//! its loop.

mod dispatch;
mod read;
mod respond;

use std::future::{poll_fn, Future};
use std::io;
use std::ops::ControlFlow;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body::Body;
use kestrel_core::aborted::{AbortSignal, AbortSource};
use kestrel_core::connection::{ConnectionEndReason, ConnectionGuard};
use kestrel_core::connection::{ConnectionHandle, Signal, TimeoutReason};
use kestrel_core::framing::{plan, Framing, Plan, RequestFacts};
use kestrel_core::heartbeat::{Clock, DateSlot};
use kestrel_core::request_limits::LimitsCell;
use kestrel_core::{events, metrics};
use kestrel_core::{
    AdmittedConnection, Application, BoxError, ConnectionInfo, RequestAborted, RequestBody,
    RequestFeatures, UpgradeFeature, Upgraded,
};
use kestrel_transport::BoxIo;

use crate::codec::{
    encode_chunk_header, encode_last_chunk, encode_response_head, BodyKind, ChunkedDecoder,
    ConnectionHeader, LengthDecoder, RequestHead, RequestRejection, ResponseHead, CHUNK_SUFFIX,
};
use crate::config::Http1Config;
use crate::io::{BodyState, Decoder, Shared, WriteBuf};
use kestrel_core::body_state::RequestBodyState;

/// Data frames smaller than this are copied into the output buffer (and
/// batched); larger ones are written straight from the app's buffer.
const COPY_THRESHOLD: usize = 16 * 1024;
/// Output buffered before a write waits, when `max_response_buffer_size` is unlimited.
const UNLIMITED_RESPONSE_BUFFER: usize = 1024 * 1024;

/// Fire a request's `RequestAborted` (once), with Kestrel's event 66.
fn fire_abort(abort: &AbortSignal, handle: &ConnectionHandle, why: &'static str) {
    if abort.abort() {
        events::request_aborted(Some(handle.id()), None, why);
    }
}

/// Why a connection ended other than by a clean close.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Http1Error {
    /// A request was rejected (the client got the matching status, then the connection closed).
    #[error("bad request: {0}")]
    BadRequest(RequestRejection),
    /// The socket failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The server aborted the connection (its shutdown timeout: the
    /// connection manager records that end reason), or a deadline of no
    /// named reason passed while a response was written.
    #[error("the connection was aborted by the server")]
    Aborted,
    /// A deadline passed while the application ran or its response was
    /// written: the minimum response data rate (`WriteDataRate`) or a
    /// deadline the application set (the connection timeout feature).
    #[error("the connection was aborted: deadline passed ({0:?})")]
    Deadline(TimeoutReason),
    /// The application failed after its response had started, so the response was cut short.
    #[error("the response was aborted after it started: {0}")]
    ResponseAborted(BoxError),
    /// The response body ended before its Content-Length after part of the
    /// response was sent, so the response was cut short.
    #[error(
        "the response body ended after {written} of its {content_length} Content-Length bytes"
    )]
    ResponseTooShort {
        /// The declared Content-Length.
        content_length: u64,
        /// The body bytes the application produced.
        written: u64,
    },
}

impl Http1Error {
    /// Why the connection ended, as Kestrel reports it (`error.type` of
    /// `kestrel.connection.duration`), when the error itself says it.
    pub fn end_reason(&self) -> Option<ConnectionEndReason> {
        match self {
            Http1Error::BadRequest(r) => Some(end_reason_of(*r)),
            Http1Error::Io(_) => Some(ConnectionEndReason::ConnectionReset),
            Http1Error::ResponseAborted(_) => Some(ConnectionEndReason::ErrorAfterStartingResponse),
            Http1Error::ResponseTooShort { .. } => {
                Some(ConnectionEndReason::ResponseContentLengthMismatch)
            }
            Http1Error::Deadline(TimeoutReason::WriteDataRate) => {
                Some(ConnectionEndReason::MinResponseDataRate)
            }
            Http1Error::Deadline(_) => Some(ConnectionEndReason::ServerTimeout),
            // The shutdown timeout's reason is recorded by the connection manager.
            Http1Error::Aborted => None,
        }
    }
}

/// How a connection ended without an error: the client closed it, a
/// response said `Connection: close`, or a timeout closed it quietly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Http1Close {
    /// The client closed the connection, a response closed it, or the server
    /// is shutting down.
    Done,
    /// The keep-alive timeout passed with no new request.
    KeepAliveTimeout,
    /// The request-headers timeout passed before any byte of a request.
    RequestHeadersTimeout,
    /// The application left a request body unread that is larger than the
    /// body-size limit, so it is not drained.
    UnreadBodyTooLarge,
    /// The response body was longer than its Content-Length: the client got
    /// the declared bytes, then the connection closed.
    ResponseContentLengthMismatch,
}

impl Http1Close {
    /// Why the connection ended, as Kestrel reports it (`error.type` of
    /// `kestrel.connection.duration`); `None` for a plain close.
    pub fn end_reason(&self) -> Option<ConnectionEndReason> {
        match self {
            Http1Close::Done => None,
            Http1Close::KeepAliveTimeout => Some(ConnectionEndReason::KeepAliveTimeout),
            Http1Close::RequestHeadersTimeout => Some(ConnectionEndReason::RequestHeadersTimeout),
            Http1Close::UnreadBodyTooLarge => Some(ConnectionEndReason::MaxRequestBodySizeExceeded),
            Http1Close::ResponseContentLengthMismatch => {
                Some(ConnectionEndReason::ResponseContentLengthMismatch)
            }
        }
    }
}

/// An HTTP/1.x connection, ready to serve an [`Application`].
pub struct Http1Connection {
    io: BoxIo,
    read_buf: BytesMut,
    config: Arc<Http1Config>,
    handle: Arc<ConnectionHandle>,
    clock: Arc<Clock>,
    info: Option<ConnectionInfo>,
    guard: Option<ConnectionGuard>,
}

impl Http1Connection {
    /// The driver of an admitted connection: it reads the bytes protocol
    /// selection already read first, obeys the connection's signals and
    /// deadlines (the runtime's heartbeat visits its handle), puts its
    /// [`ConnectionInfo`] into every request's extensions, and holds its
    /// slot until it ends (or, for an upgraded connection, for as long as
    /// the upgraded stream lives).
    pub fn from_admitted(admitted: AdmittedConnection, config: Arc<Http1Config>) -> Self {
        let parts = admitted.into_parts();
        Http1Connection {
            io: parts.io,
            read_buf: parts.buffered,
            config,
            handle: parts.guard.handle().clone(),
            clock: parts.clock,
            info: Some(parts.info),
            guard: Some(parts.guard),
        }
    }

    /// Serve requests until the connection closes.
    ///
    /// Not an `async fn`: the driver is built before the future, so the
    /// future's state holds it once, not beside a copy of `self` (every
    /// idle connection pays for the size of this future).
    pub fn serve<A: Application>(
        self,
        app: &A,
    ) -> impl Future<Output = Result<Http1Close, Http1Error>> + Send + '_ {
        let limits = LimitsCell::new(self.config.limit_values());
        let shared = Shared::new(self.io, self.read_buf, self.handle.clone(), limits);
        let mut driver = Driver {
            date: DateSlot::new(self.clock.date()),
            shared,
            config: self.config,
            handle: self.handle,
            clock: self.clock,
            info: self.info,
            guard: self.guard,
            request_metrics: metrics::RequestMetrics::new("1.1"),
            wb: WriteBuf::new(),
            linger: false,
            abort: Arc::new(AbortSignal::new()),
        };
        async move {
            let result = driver.run(app).await;
            driver
                .close(result.is_ok() || matches!(result, Err(Http1Error::BadRequest(_))))
                .await;
            result
        }
    }
}

struct Driver {
    shared: Arc<Shared>,
    config: Arc<Http1Config>,
    handle: Arc<ConnectionHandle>,
    clock: Arc<Clock>,
    date: DateSlot,
    info: Option<ConnectionInfo>,
    guard: Option<ConnectionGuard>,
    request_metrics: metrics::RequestMetrics,
    wb: WriteBuf,
    /// Unread input may remain at close: shut down our side and drain before closing.
    linger: bool,
    /// The current request's `RequestAborted` signal; reused by the next
    /// request when nobody kept a clone and it did not fire.
    abort: Arc<AbortSignal>,
}

// What the read buffer holds (`Driver::take_head`). Returned by a plain `fn`
// and consumed at once: boxing the head would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Buffered {
    Head(RequestHead),
    Reject(RequestRejection),
    Closed(Http1Close),
    /// A partial head; `any`: some bytes of it arrived.
    Partial {
        any: bool,
    },
}

/// Why waiting for a request head stopped (`Driver::wait_for_head`).
enum HeadStop {
    Closed(Http1Close),
    Reject(RequestRejection),
}

/// What the driver keeps of a request while the app runs.
struct Started {
    is_head: bool,
    version: Version,
    keep_alive: bool,
    upgrade: Option<UpgradeFeature>,
    metrics_start: Option<(tokio::time::Instant, Method)>,
}

enum AppOutcome<B> {
    Response(Response<B>),
    Failed(BoxError),
}

impl Driver {
    async fn run<A: Application>(&mut self, app: &A) -> Result<Http1Close, Http1Error> {
        let mut token = 0u64;
        // The app's future lives in one allocation reused from request to
        // request (dropped while the connection idles), instead of a box per
        // request; the connection future itself stays small.
        let call = |request: Request<RequestBody>| app.call(request);
        let mut slot = None;
        loop {
            let mut armed = None;
            let head = loop {
                let any = match self.take_head() {
                    Buffered::Head(h) => break h,
                    Buffered::Closed(close) => return Ok(close),
                    Buffered::Reject(r) => {
                        self.write_rejection(r);
                        return Err(Http1Error::BadRequest(r));
                    }
                    Buffered::Partial { any } => any,
                };
                let first = token == 0;
                match self
                    .wait_for_head(first, any, &mut armed, &mut slot)
                    .await?
                {
                    ControlFlow::Continue(()) => {}
                    ControlFlow::Break(HeadStop::Closed(close)) => return Ok(close),
                    ControlFlow::Break(HeadStop::Reject(r)) => {
                        self.write_rejection(r);
                        return Err(Http1Error::BadRequest(r));
                    }
                }
            };
            token = token.wrapping_add(1);
            let (fut, span, started) = self.start_app(&call, &mut slot, head, token);
            if let ControlFlow::Break(close) = self.serve_request(fut, span, started).await? {
                return Ok(close);
            }
        }
    }

    /// Fire the current request's `RequestAborted`.
    fn abort_request(&self, why: &'static str) {
        fire_abort(&self.abort, &self.handle, why);
    }

    fn arm(&self, reason: TimeoutReason, timeout: Duration) {
        self.handle
            .timeout()
            .set(reason, timeout, self.clock.ticks(), self.clock.interval());
    }

    /// Send what is buffered, then close. When input may be left unread, shut
    /// down our side first and drain the input for a while, so the peer sees
    /// our last response instead of a reset.
    ///
    /// An abort (the server's shutdown timeout) ends both steps at once:
    /// they watch the connection's signals, not only its socket.
    async fn close(&mut self, graceful: bool) {
        if graceful && self.flush().await.is_ok() {
            let linger = self.linger || !self.shared.lock().read_buf.is_empty();
            // Boxed: a rare path (a rejected request, unread input), and the
            // connection future would otherwise reserve room for it.
            Box::pin(shut_down_and_linger(
                &self.shared,
                linger.then_some(self.config.request_body_drain_timeout),
            ))
            .await;
        }
        self.shared.lock().io = None;
    }
}

/// Shut down our side, then (with `linger`) read and discard the input for
/// up to that long, so the peer sees our last response instead of a reset.
/// An abort (the server's shutdown timeout) ends both steps at once: they
/// watch the connection's signals, not only its socket.
async fn shut_down_and_linger(shared: &Shared, linger: Option<Duration>) {
    let aborted = |cx: &mut std::task::Context<'_>| {
        matches!(shared.handle.poll_signal(cx), Poll::Ready(Signal::Aborted))
    };
    let _ = poll_fn(|cx| {
        if aborted(cx) {
            return Poll::Ready(Ok(()));
        }
        shared.lock().poll_shutdown(cx)
    })
    .await;
    let Some(linger) = linger else {
        return;
    };
    let drain = poll_fn(|cx| loop {
        if aborted(cx) {
            return Poll::Ready(());
        }
        let mut c = shared.lock();
        c.read_buf.clear();
        match std::task::ready!(c.poll_fill(cx)) {
            Ok(0) | Err(_) => return Poll::Ready(()),
            Ok(_) => continue,
        }
    });
    let _ = tokio::time::timeout(linger, drain).await;
}

/// The connection end reason (metrics' `error.type`) of a rejected request.
fn end_reason_of(r: RequestRejection) -> ConnectionEndReason {
    use RequestRejection as R;
    match r {
        R::RequestHeadersTimeout => ConnectionEndReason::RequestHeadersTimeout,
        R::RequestBodyTimeout => ConnectionEndReason::MinRequestBodyDataRate,
        R::RequestBodyTooLarge => ConnectionEndReason::MaxRequestBodySizeExceeded,
        R::UnrecognizedHttpVersion => ConnectionEndReason::InvalidHttpVersion,
        R::InvalidRequestLine
        | R::InvalidRequestTarget
        | R::RequestLineTooLong
        | R::OptionsMethodRequired
        | R::ConnectMethodRequired => ConnectionEndReason::InvalidRequestLine,
        R::UnexpectedEndOfRequestContent
        | R::BadChunkSuffix
        | R::BadChunkSizeData
        | R::ChunkedRequestIncomplete => ConnectionEndReason::InvalidRequestBody,
        _ => ConnectionEndReason::InvalidRequestHeaders,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_core::{ConnectionRuntime, KestrelServerOptions, ServerLimits};
    use kestrel_transport::{Address, Connection, TransportKind};

    /// Every idle connection holds this future: it must not grow unnoticed
    /// (docs/performance.md's idle memory per connection depends on it).
    /// Measured in a debug build, plus 5%: 1,184 bytes, or 1,464 with
    /// kestrel-core's `metrics` feature (which the workspace's tests turn on),
    /// where each request also keeps its start time and method. (1,440 and
    /// 1,720 before the request was built and handed to the app in one plain
    /// `fn`, `start_app`, instead of inside the async path.)
    const SERVE_FUTURE_BUDGET: usize = if kestrel_core::metrics::ENABLED {
        1_540
    } else {
        1_244
    };

    #[tokio::test]
    async fn the_connection_future_stays_within_its_budget() {
        let (io, _peer) = tokio::io::duplex(64);
        let config = Arc::new(Http1Config::from_options(&KestrelServerOptions::default()));
        let runtime = ConnectionRuntime::new(&ServerLimits::default());
        let admitted = runtime
            .admit(Connection {
                io: Box::new(io),
                local_addr: Address::Unknown,
                remote_addr: Address::Unknown,
                kind: TransportKind::Memory,
            })
            .expect("admitted");
        let conn = Http1Connection::from_admitted(admitted, config);
        let app = |_req: Request<RequestBody>| async {
            Response::new(http_body_util::Empty::<Bytes>::new())
        };
        let serve = conn.serve(&app);
        let size = std::mem::size_of_val(&serve);
        assert!(
            size <= SERVE_FUTURE_BUDGET,
            "the HTTP/1 connection future is {size} bytes, over its budget of {SERVE_FUTURE_BUDGET}"
        );
        eprintln!("HTTP/1 connection future: {size} bytes");
    }
}
