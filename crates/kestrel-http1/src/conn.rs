//! The HTTP/1 connection driver: one request at a time, in order, with the
//! application run inline in the connection's task.

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
    Application, BoxError, ConnectionInfo, RequestAborted, RequestBody, RequestFeatures,
    UpgradeFeature, Upgraded,
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
    /// The server aborted the connection (shutdown timeout, or a write deadline).
    #[error("the connection was aborted by the server")]
    Aborted,
    /// The application failed after its response had started, so the response was cut short.
    #[error("the response was aborted after it started: {0}")]
    ResponseAborted(BoxError),
}

impl Http1Error {
    /// Why the connection ended, as Kestrel reports it (`error.type` of
    /// `kestrel.connection.duration`), when the error itself says it.
    pub fn end_reason(&self) -> Option<ConnectionEndReason> {
        match self {
            Http1Error::BadRequest(r) => Some(end_reason_of(*r)),
            Http1Error::Io(_) => Some(ConnectionEndReason::ConnectionReset),
            Http1Error::ResponseAborted(_) => Some(ConnectionEndReason::ErrorAfterStartingResponse),
            // Set where the abort was decided (shutdown timeout, a deadline).
            Http1Error::Aborted => None,
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
    /// A connection over `io`, obeying `handle`'s signals and deadlines, with
    /// time from `clock` (whose heartbeat must be running for timeouts to fire).
    pub fn new(
        io: BoxIo,
        config: Arc<Http1Config>,
        handle: Arc<ConnectionHandle>,
        clock: Arc<Clock>,
    ) -> Self {
        Http1Connection {
            io,
            read_buf: BytesMut::new(),
            config,
            handle,
            clock,
            info: None,
            guard: None,
        }
    }

    /// The connection's place in the connection counts: it moves into the
    /// upgraded stream if the connection is upgraded, so that the place is
    /// held for as long as that stream lives.
    pub fn with_guard(mut self, guard: ConnectionGuard) -> Self {
        self.guard = Some(guard);
        self
    }

    /// Bytes already read from the connection (e.g. while sniffing the protocol).
    pub fn with_read_buffer(mut self, buf: BytesMut) -> Self {
        self.read_buf = buf;
        self
    }

    /// Put this connection's info (which carries the server's addresses)
    /// into every request's extensions.
    pub fn with_connection_info(mut self, info: ConnectionInfo) -> Self {
        self.info = Some(info);
        self
    }

    /// Serve requests until the connection closes.
    ///
    /// Not an `async fn`: the driver is built before the future, so the
    /// future's state holds it once, not beside a copy of `self` (every
    /// idle connection pays for the size of this future).
    pub fn serve<A: Application>(
        self,
        app: &A,
    ) -> impl Future<Output = Result<(), Http1Error>> + Send + '_ {
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

// Returned once per request and moved straight out: boxing the head would
// cost an allocation per request for nothing.
#[allow(clippy::large_enum_variant)]
enum HeadOutcome {
    Head(RequestHead),
    Closed,
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
    async fn run<A: Application>(&mut self, app: &A) -> Result<(), Http1Error> {
        let mut token = 0u64;
        // The app's future lives in one allocation reused from request to
        // request (dropped while the connection idles), instead of a box per
        // request; the connection future itself stays small.
        let call = |request: Request<RequestBody>| app.call(request);
        let mut slot = None;
        loop {
            let head = match self.read_head(token == 0, &mut slot).await? {
                HeadOutcome::Head(h) => h,
                HeadOutcome::Closed => return Ok(()),
                HeadOutcome::Reject(r) => {
                    self.write_rejection(r);
                    return Err(Http1Error::BadRequest(r));
                }
            };
            token = token.wrapping_add(1);
            let keep_alive = self.serve_request(&call, &mut slot, head, token).await?;
            if !keep_alive {
                return Ok(());
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

    /// Read until a whole request head is parsed, the connection closes
    /// quietly (EOF, keep-alive timeout, shutdown while idle), or the head is rejected.
    ///
    /// The first request of a connection is under the request-headers
    /// deadline from the moment the connection opened (so a client that
    /// connects and sends nothing is dropped then, quietly); later requests
    /// wait under the keep-alive timeout until their first byte.
    async fn read_head<F>(
        &mut self,
        first: bool,
        app_slot: &mut Option<Pin<Box<F>>>,
    ) -> Result<HeadOutcome, Http1Error> {
        let mut armed: Option<TimeoutReason> = None;
        loop {
            let buffered = {
                let mut c = self.shared.lock();
                if !c.read_buf.is_empty() {
                    match self.config.parser.parse(&mut c.read_buf) {
                        Ok(Some(head)) => {
                            self.handle.timeout().cancel();
                            return Ok(HeadOutcome::Head(head));
                        }
                        Ok(None) => {}
                        Err(r) => {
                            self.handle.timeout().cancel();
                            return Ok(HeadOutcome::Reject(r));
                        }
                    }
                }
                if c.eof {
                    if !c.read_buf.is_empty() {
                        tracing::debug!(target: "kestrel::connections", connection_id = %self.handle.id(), "the client closed the connection in the middle of a request head");
                    }
                    return Ok(HeadOutcome::Closed);
                }
                !c.read_buf.is_empty()
            };
            // The headers timer starts at the first byte of a request; before
            // that the connection is idle and the keep-alive timer runs.
            let want = if buffered || first {
                TimeoutReason::RequestHeaders
            } else {
                TimeoutReason::KeepAlive
            };
            if armed != Some(want) {
                let timeout = match want {
                    TimeoutReason::RequestHeaders => self.config.request_headers_timeout,
                    _ => self.config.keep_alive_timeout,
                };
                self.arm(want, timeout);
                armed = Some(want);
            }
            // Before waiting for input, send what earlier (pipelined) requests produced.
            self.flush().await?;
            let shared = &self.shared;
            let event = poll_fn(|cx| {
                match shared.handle.poll_signal(cx) {
                    Poll::Ready(Signal::Aborted) => return Poll::Ready(Err(Http1Error::Aborted)),
                    Poll::Ready(Signal::TimedOut(r)) => return Poll::Ready(Ok(Some(r))),
                    Poll::Ready(Signal::CloseRequested) if !buffered => {
                        return Poll::Ready(Ok(Some(TimeoutReason::None)));
                    }
                    Poll::Ready(Signal::Idle) if !buffered => {
                        return Poll::Ready(Ok(Some(TimeoutReason::None)));
                    }
                    _ => {}
                }
                shared
                    .lock()
                    .poll_fill(cx)
                    .map(|r| r.map(|_| None).map_err(Http1Error::Io))
            })
            .await?;
            match event {
                None => self.handle.set_buffers_released(false),
                Some(TimeoutReason::None)
                    if self.handle.check_signal().is_none()
                        && !self.handle.is_close_requested() =>
                {
                    // Idle across a heartbeat: hold no buffers while waiting.
                    let released = self.shared.lock().release_read_buffer() && self.wb.release();
                    *app_slot = None;
                    self.handle.set_buffers_released(released);
                }
                Some(TimeoutReason::RequestHeaders) => {
                    if self.shared.lock().read_buf.is_empty() {
                        // Nothing of a request arrived: close without a response.
                        self.handle
                            .set_end_reason(ConnectionEndReason::RequestHeadersTimeout);
                        tracing::debug!(target: "kestrel::connections", connection_id = %self.handle.id(), "request headers timeout before any byte of a request: closing");
                        return Ok(HeadOutcome::Closed);
                    }
                    return Ok(HeadOutcome::Reject(RequestRejection::RequestHeadersTimeout));
                }
                Some(TimeoutReason::KeepAlive) => {
                    self.handle
                        .set_end_reason(ConnectionEndReason::KeepAliveTimeout);
                    events::connection_keep_alive(self.handle.id());
                    return Ok(HeadOutcome::Closed);
                }
                Some(_) => return Ok(HeadOutcome::Closed),
            }
        }
    }

    /// Set up the body state and build the app's request (a plain `fn`, so
    /// the request is not part of the connection future's saved state).
    fn begin_request(&mut self, head: RequestHead, token: u64) -> (Request<RequestBody>, Started) {
        let RequestHead {
            method,
            uri,
            version,
            headers,
            body,
            keep_alive,
            expect_continue,
            upgrade,
            ..
        } = head;
        let is_head = method == Method::HEAD;
        // Read the clock and keep the method only when metrics are compiled in.
        let metrics_start = metrics::ENABLED.then(|| {
            self.request_metrics.started(&method);
            (self.clock.now(), method.clone())
        });
        {
            let parser = &self.config.parser;
            let mut c = self.shared.lock();
            c.body = BodyState {
                token,
                active: true,
                decoder: match body {
                    BodyKind::Empty => None,
                    BodyKind::Length(n) => Some(Decoder::Length(LengthDecoder::new(n))),
                    BodyKind::Chunked => Some(Decoder::Chunked(ChunkedDecoder::new(
                        parser.max_request_headers_total_size,
                        parser.max_request_header_count,
                    ))),
                },
                continue_written: 0,
                waker: None,
                state: RequestBodyState::new(
                    body != BodyKind::Empty,
                    match body {
                        BodyKind::Length(n) => Some(n),
                        _ => None,
                    },
                    expect_continue,
                    self.config.max_request_body_size,
                ),
            };
        }
        let req_body = if body == BodyKind::Empty {
            RequestBody::empty()
        } else {
            RequestBody::from_source(self.shared.clone(), token)
        };
        let mut request = Request::new(req_body);
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.version_mut() = version;
        *request.headers_mut() = headers;
        // A fresh signal unless the last one is unshared and did not fire.
        if Arc::strong_count(&self.abort) > 1 || self.abort.is_aborted() {
            self.abort = Arc::new(AbortSignal::new());
        }
        // An upgrade request that has a body is handled as a normal request.
        let upgrade = (upgrade && body == BodyKind::Empty)
            .then(|| UpgradeFeature::for_request(self.handle.clone(), request.headers()));
        // Every feature in one extension value: one allocation, not one per feature.
        request.extensions_mut().insert(
            RequestFeatures::new()
                .with_connection(self.info.clone())
                .with_limits(self.shared.limits.begin(token, self.config.limit_values()))
                .with_aborted(RequestAborted::new(
                    self.abort.clone() as Arc<dyn AbortSource>
                ))
                .with_upgrade(upgrade.clone()),
        );
        let started = Started {
            is_head,
            version,
            keep_alive,
            upgrade,
            metrics_start,
        };
        (request, started)
    }

    async fn serve_request<B, F, M>(
        &mut self,
        call: &M,
        app_slot: &mut Option<Pin<Box<F>>>,
        head: RequestHead,
        token: u64,
    ) -> Result<bool, Http1Error>
    where
        B: Body<Data = Bytes, Error: Into<BoxError>>,
        F: Future<Output = Result<Response<B>, BoxError>>,
        M: Fn(Request<RequestBody>) -> F,
    {
        let (request, started) = self.begin_request(head, token);
        let Started {
            is_head,
            version,
            keep_alive,
            upgrade,
            metrics_start,
        } = started;
        let mut outcome = self.run_app(call, app_slot, request).await?;

        if let Some(u) = &upgrade {
            match outcome {
                AppOutcome::Response(resp)
                    if resp.status() == StatusCode::SWITCHING_PROTOCOLS && u.is_accepted() =>
                {
                    // Boxed: upgrades are rare, and the connection future
                    // would otherwise reserve room for this path.
                    return Box::pin(self.finish_upgrade(resp, u, version))
                        .await
                        .map(|()| false);
                }
                other => outcome = other,
            }
            u.cancel();
        }
        if let AppOutcome::Response(r) = &outcome {
            if r.status() == StatusCode::SWITCHING_PROTOCOLS {
                outcome = AppOutcome::Failed(
                    "a 101 response requires accepting the upgrade with UpgradeFeature::upgrade first".into(),
                );
            }
        }

        let rejection = self.shared.lock().body.rejection();
        if let Some(r) = rejection {
            if r == RequestRejection::UnexpectedEndOfRequestContent {
                // The client left in the middle of the body.
                self.abort_request("the client closed the connection during the request body");
            }
            // The body was malformed or too large: that decides the answer,
            // whatever the app made of it.
            self.end_request();
            self.write_rejection(r);
            return Err(Http1Error::BadRequest(r));
        }
        let facts = RequestFacts {
            is_head,
            version,
            keep_alive: keep_alive && !self.handle.is_close_requested(),
            add_server_header: self.config.add_server_header,
        };
        let status = match &outcome {
            AppOutcome::Response(r) => r.status(),
            AppOutcome::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut keep_alive = match outcome {
            AppOutcome::Response(resp) => match self.write_response(resp, &facts).await {
                Ok(keep_alive) => keep_alive,
                Err(e) => {
                    // The response could not be completed.
                    self.abort_request("the response was not completed");
                    return Err(e);
                }
            },
            AppOutcome::Failed(e) => {
                self.log_app_error(&e);
                self.write_simple(StatusCode::INTERNAL_SERVER_ERROR, &facts, None)
            }
        };
        if let Some((started, method)) = metrics_start {
            self.request_metrics
                .stopped(&method, status, started.elapsed());
        }
        // One look at the body's state (the common case: it is complete).
        let (mut complete, continue_unanswered) = {
            let c = self.shared.lock();
            let complete = c.body.is_complete();
            (complete, c.body.state.is_awaiting_continue())
        };
        if continue_unanswered {
            // The client may still be waiting for `100 Continue` before it
            // sends the body; the connection cannot be reused.
            keep_alive = false;
        } else if keep_alive && !complete {
            keep_alive = self.drain_body().await?;
            complete = self.shared.lock().body.is_complete();
        }
        if !complete {
            self.linger = true;
        }
        self.end_request();
        Ok(keep_alive && !self.handle.is_close_requested())
    }

    fn end_request(&self) {
        self.shared.lock().body.active = false;
        self.shared.limits.end();
        self.handle.rates().end_read();
    }

    /// Write the app's 101, then hand the raw connection (and any bytes read
    /// past the request head) to the app's `OnUpgrade`.
    async fn finish_upgrade<B>(
        &mut self,
        resp: Response<B>,
        upgrade: &UpgradeFeature,
        version: Version,
    ) -> Result<(), Http1Error>
    where
        B: Body<Data = Bytes, Error: Into<BoxError>>,
    {
        let facts = RequestFacts {
            is_head: false,
            version,
            keep_alive: false,
            add_server_header: self.config.add_server_header,
        };
        self.write_response(resp, &facts).await?;
        self.flush().await?;
        self.end_request();
        self.shared.limits.remove_body_size_limit();
        let (io, buffered) = {
            let mut c = self.shared.lock();
            let buffered = std::mem::take(&mut c.read_buf).freeze();
            (c.io.take(), buffered)
        };
        let Some(io) = io else {
            upgrade.cancel();
            return Err(Http1Error::Aborted);
        };
        tracing::debug!(target: "kestrel::connections", connection_id = %self.handle.id(), "connection upgraded");
        // If the app dropped its OnUpgrade, the connection just closes.
        let _ = upgrade.complete(Upgraded::new(io, buffered, self.guard.take()));
        Ok(())
    }

    /// Run the app; while it is pending, keep flushing earlier responses and
    /// watch for an abort.
    async fn run_app<B, F, M>(
        &mut self,
        call: &M,
        app_slot: &mut Option<Pin<Box<F>>>,
        request: Request<RequestBody>,
    ) -> Result<AppOutcome<B>, Http1Error>
    where
        F: Future<Output = Result<Response<B>, BoxError>>,
        M: Fn(Request<RequestBody>) -> F,
    {
        // A span per request (method, path, protocol) so a subscriber can
        // correlate the app's events; a disabled span costs next to nothing.
        // It is entered around each poll of the app's future (rather than
        // wrapping it, which would move the future once more per request).
        let span = events::request_span(
            request.method(),
            request.uri().path(),
            request.version(),
            self.handle.id(),
            None,
        );
        let fut = call(request);
        let fut = match app_slot {
            Some(slot) => {
                slot.set(fut);
                slot
            }
            None => app_slot.insert(Box::pin(fut)),
        };
        let shared = &self.shared;
        let wb = &mut self.wb;
        let (abort, read_ahead) = (&self.abort, self.config.read_ahead);
        let result = poll_fn(|cx| {
            // A panic in the app is its error, not the server's.
            let polled = {
                let _in_span = span.enter();
                kestrel_core::app::poll_app(fut.as_mut(), cx)
            };
            if let Poll::Ready(r) = polled {
                return Poll::Ready(Some(r));
            }
            match shared.handle.poll_signal(cx) {
                Poll::Ready(Signal::Aborted) => return Poll::Ready(None),
                Poll::Ready(Signal::TimedOut(TimeoutReason::ReadDataRate)) => {
                    events::request_body_minimum_data_rate_not_satisfied(shared.handle.id(), None);
                    shared.lock().reject_body(RequestRejection::RequestBodyTimeout);
                }
                Poll::Ready(Signal::TimedOut(reason)) => {
                    shared.handle.set_end_reason(if reason == TimeoutReason::WriteDataRate {
                        ConnectionEndReason::MinResponseDataRate
                    } else {
                        ConnectionEndReason::ServerTimeout
                    });
                    tracing::debug!(target: "kestrel::connections", connection_id = %shared.handle.id(), ?reason, "aborting the connection: deadline passed while the application ran");
                    return Poll::Ready(None);
                }
                _ => {}
            }
            if !wb.buf.is_empty() {
                // Errors surface at the next write.
                let _ = shared.lock().poll_write_buf(cx, wb, &mut Bytes::new());
            }
            // Watch for the client leaving while the app works.
            if !abort.is_aborted() && shared.lock().poll_client_gone(cx, read_ahead) {
                fire_abort(abort, &shared.handle, "the client closed the connection");
            }
            Poll::Pending
        })
        .await;
        match result {
            None => {
                self.abort_request("the connection was aborted");
                Err(Http1Error::Aborted)
            }
            Some(Ok(Ok(resp))) => Ok(AppOutcome::Response(resp)),
            Some(Ok(Err(e))) => Ok(AppOutcome::Failed(e)),
            Some(Err(panic)) => Ok(AppOutcome::Failed(Box::new(panic))),
        }
    }

    fn log_app_error(&self, e: &BoxError) {
        events::application_error(self.handle.id(), None, e);
    }

    /// Encode a response head with the framing headers `plan` decided.
    fn encode_head(&mut self, status: StatusCode, headers: &HeaderMap, plan: &Plan) {
        let date = self.date.get(self.clock.date());
        let head = ResponseHead {
            status,
            headers,
            date: plan.add_date.then_some(date.as_bytes()),
            server: plan.add_server.then_some(&b"Kestrel"[..]),
            content_length: plan.content_length,
            chunked: plan.chunked_header,
            connection: plan.connection,
        };
        encode_response_head(&head, &mut self.wb.buf);
    }

    /// Answer with an empty body; returns whether the connection stays open.
    fn write_simple(
        &mut self,
        status: StatusCode,
        facts: &RequestFacts,
        allow: Option<&'static str>,
    ) -> bool {
        let keep_alive = facts.keep_alive;
        let connection = if !keep_alive {
            Some(ConnectionHeader::Close)
        } else if facts.version == Version::HTTP_10 {
            Some(ConnectionHeader::KeepAlive)
        } else {
            None
        };
        let mut headers = HeaderMap::new();
        if let Some(allow) = allow {
            headers.insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
        }
        // The server's own answer: `Content-Length: 0`, except to HEAD.
        let plan = Plan {
            framing: Framing::NoBody,
            keep_alive,
            content_length: (!facts.is_head).then_some(0),
            chunked_header: false,
            connection,
            add_date: true,
            add_server: facts.add_server_header,
        };
        self.encode_head(status, &headers, &plan);
        keep_alive
    }

    /// Answer a rejected request with its status; the connection then closes.
    fn write_rejection(&mut self, r: RequestRejection) {
        events::connection_bad_request(self.handle.id(), None, r.name(), r.status().as_u16(), &r);
        self.wb.begin_response();
        let facts = RequestFacts {
            is_head: false,
            version: Version::HTTP_11,
            keep_alive: false,
            add_server_header: self.config.add_server_header,
        };
        self.write_simple(r.status(), &facts, r.allow());
        self.linger = true;
    }

    /// Plan the response's framing and encode its head. Kept out of the
    /// `async fn` so that the response's parts and headers are not held in
    /// the connection future's state while the body is written.
    fn start_response<B>(
        &mut self,
        resp: Response<B>,
        facts: &RequestFacts,
    ) -> ControlFlow<bool, (Plan, B)>
    where
        B: Body<Data = Bytes, Error: Into<BoxError>>,
    {
        let (parts, body) = resp.into_parts();
        let http::response::Parts {
            status,
            mut headers,
            ..
        } = parts;
        self.wb.begin_response();
        self.handle
            .rates()
            .set_write_rate(self.shared.limits.current().min_response_data_rate);
        let plan = match plan(facts, status, &mut headers, &body.size_hint()) {
            Ok(p) => p,
            Err(e) => {
                self.log_app_error(&e.into());
                return ControlFlow::Break(self.write_simple(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    facts,
                    None,
                ));
            }
        };
        self.encode_head(status, &headers, &plan);
        if plan.framing == Framing::NoBody {
            return ControlFlow::Break(plan.keep_alive);
        }
        ControlFlow::Continue((plan, body))
    }

    /// Frame and write the app's response; returns whether the connection stays open.
    async fn write_response<B>(
        &mut self,
        resp: Response<B>,
        facts: &RequestFacts,
    ) -> Result<bool, Http1Error>
    where
        B: Body<Data = Bytes, Error: Into<BoxError>>,
    {
        let (plan, body) = match self.start_response(resp, facts) {
            ControlFlow::Continue(started) => started,
            // Answered already (no body, or refused): whether to keep alive.
            ControlFlow::Break(keep_alive) => return Ok(keep_alive),
        };
        let mut keep_alive = plan.keep_alive;
        let limit = self
            .config
            .max_response_buffer_size
            .unwrap_or(UNLIMITED_RESPONSE_BUFFER);
        let mut body = pin!(body);
        let mut written: u64 = 0;
        let mut trailers: Option<Box<HeaderMap>> = None;
        loop {
            let shared = &self.shared;
            let wb = &mut self.wb;
            let (abort, read_ahead) = (&self.abort, self.config.read_ahead);
            // A body that has all its declared bytes is complete for the
            // client, even if the app has not ended it yet.
            let all_sent = matches!(plan.framing, Framing::Length(n) if written >= n);
            let polled = poll_fn(|cx| {
                match kestrel_core::app::poll_body(body.as_mut(), cx) {
                    Poll::Ready(None) => Poll::Ready(Ok(None)),
                    Poll::Ready(Some(Ok(f))) => Poll::Ready(Ok(Some(f))),
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Err(Some(e))),
                    Poll::Pending => {
                        if let Poll::Ready(Signal::Aborted | Signal::TimedOut(_)) =
                            shared.handle.poll_signal(cx)
                        {
                            return Poll::Ready(Err(None));
                        }
                        // The body is not ready: let the client see what we have.
                        if !wb.buf.is_empty() {
                            match shared.lock().poll_write_buf(cx, wb, &mut Bytes::new()) {
                                Poll::Ready(Err(e)) => return Poll::Ready(Err(Some(e.into()))),
                                Poll::Ready(Ok(())) | Poll::Pending => {}
                            }
                        }
                        // A body fed from elsewhere (events, a long poll)
                        // learns of the client leaving from RequestAborted.
                        if !all_sent
                            && !abort.is_aborted()
                            && shared.lock().poll_client_gone(cx, read_ahead)
                        {
                            fire_abort(abort, &shared.handle, "the client closed the connection");
                        }
                        Poll::Pending
                    }
                }
            })
            .await;
            // Only the data travels past this point (frames and trailers
            // are large; trailers are rare and boxed).
            let mut data = match polled {
                Ok(Some(frame)) => match frame.into_data() {
                    Ok(d) => d,
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            trailers = Some(Box::new(t));
                        }
                        continue;
                    }
                },
                Ok(None) => break,
                Err(None) => return Err(Http1Error::Aborted),
                Err(Some(e)) => return self.fail_response(e, facts),
            };
            match plan.framing {
                Framing::Length(n) => {
                    let remaining = n - written;
                    let overflow = data.len() as u64 > remaining;
                    if overflow {
                        tracing::error!(target: "kestrel", connection_id = %self.handle.id(), content_length = n, "response body is longer than its Content-Length; closing the connection");
                        data.truncate(remaining as usize);
                        keep_alive = false;
                    }
                    written += data.len() as u64;
                    self.push_data(data, limit).await?;
                    if overflow {
                        break;
                    }
                }
                Framing::Chunked => {
                    if !data.is_empty() {
                        encode_chunk_header(data.len(), &mut self.wb.buf);
                        self.push_data(data, limit).await?;
                        self.wb.buf.extend_from_slice(CHUNK_SUFFIX);
                    }
                }
                Framing::CloseDelimited => {
                    written += data.len() as u64;
                    self.push_data(data, limit).await?;
                }
                Framing::NoBody | Framing::Stream => {}
            }
        }
        match plan.framing {
            Framing::Length(n) if written < n => {
                let e: BoxError =
                    format!("response body ended after {written} of its {n} Content-Length bytes")
                        .into();
                return self.fail_response(e, facts);
            }
            Framing::Chunked => encode_last_chunk(trailers.as_deref(), &mut self.wb.buf),
            _ => {}
        }
        Ok(keep_alive)
    }

    /// The response failed: replace it by a 500 if none of it was sent, else abort.
    fn fail_response(&mut self, e: BoxError, facts: &RequestFacts) -> Result<bool, Http1Error> {
        self.log_app_error(&e);
        if self.wb.rollback() {
            Ok(self.write_simple(StatusCode::INTERNAL_SERVER_ERROR, facts, None))
        } else {
            Err(Http1Error::ResponseAborted(e))
        }
    }

    /// Queue `data`; write when the buffer is over `limit` or the data is large.
    async fn push_data(&mut self, data: Bytes, limit: usize) -> Result<(), Http1Error> {
        if data.len() < COPY_THRESHOLD
            && self.wb.buf.len() + data.len() <= limit.max(COPY_THRESHOLD)
        {
            self.wb.buf.extend_from_slice(&data);
            if self.wb.buf.len() < limit {
                return Ok(());
            }
            return self.write_out(Bytes::new()).await;
        }
        self.write_out(data).await
    }

    async fn flush(&mut self) -> Result<(), Http1Error> {
        if self.wb.buf.is_empty() {
            return Ok(());
        }
        self.write_out(Bytes::new()).await
    }

    /// Write the buffer and then `tail`, flushing; a server abort or an
    /// expired deadline interrupts it.
    async fn write_out(&mut self, mut tail: Bytes) -> Result<(), Http1Error> {
        let shared = &self.shared;
        let wb = &mut self.wb;
        let rates = shared.handle.rates();
        rates.start_write(wb.buf.len() + tail.len(), self.clock.ticks());
        let result = poll_fn(|cx| {
            match shared.handle.poll_signal(cx) {
                Poll::Ready(Signal::Aborted) => return Poll::Ready(Err(Http1Error::Aborted)),
                Poll::Ready(Signal::TimedOut(reason)) => {
                    if reason == TimeoutReason::WriteDataRate {
                        shared
                            .handle
                            .set_end_reason(ConnectionEndReason::MinResponseDataRate);
                        events::response_minimum_data_rate_not_satisfied(shared.handle.id(), None);
                    }
                    return Poll::Ready(Err(Http1Error::Aborted));
                }
                _ => {}
            }
            let mut c = shared.lock();
            std::task::ready!(c.poll_write_buf(cx, wb, &mut tail))?;
            c.poll_flush(cx).map_err(Http1Error::Io)
        })
        .await;
        rates.stop_write();
        result
    }

    /// Read and discard what the app left of the request body, within the
    /// drain timeout; returns whether the connection can stay open.
    async fn drain_body(&mut self) -> Result<bool, Http1Error> {
        // The limit the app left in force (it may have changed it without reading).
        let limit = self.shared.limits.current().max_request_body_size;
        let too_large = {
            let mut c = self.shared.lock();
            c.body.state.refresh_unread_limit(limit);
            c.body.state.declared_over_limit()
        };
        if too_large {
            self.handle
                .set_end_reason(ConnectionEndReason::MaxRequestBodySizeExceeded);
            return Ok(false);
        }
        self.handle.rates().end_read();
        self.shared.lock().body.state.end_rate(self.handle.rates());
        self.flush().await?;
        self.arm(
            TimeoutReason::RequestBodyDrain,
            self.config.request_body_drain_timeout,
        );
        let shared = &self.shared;
        let drained = poll_fn(|cx| loop {
            if let Poll::Ready(Signal::Aborted | Signal::TimedOut(_)) =
                shared.handle.poll_signal(cx)
            {
                return Poll::Ready(false);
            }
            let mut c = shared.lock();
            match std::task::ready!(c.poll_body_frame(cx, &shared.handle, None)) {
                None => return Poll::Ready(true),
                Some(Ok(_)) => continue,
                Some(Err(_)) => return Poll::Ready(false),
            }
        })
        .await;
        self.handle.timeout().cancel();
        if !drained {
            events::request_body_drain_timed_out(self.handle.id());
        }
        Ok(drained)
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
    use kestrel_core::connection::ConnectionId;
    use kestrel_core::KestrelServerOptions;

    /// Every idle connection holds this future: it must not grow unnoticed
    /// (docs/performance.md's idle memory per connection depends on it).
    /// Measured in a debug build, plus 5%: 1,440 bytes, or 1,720 with
    /// kestrel-core's `metrics` feature (which the workspace's tests turn on),
    /// where each request also keeps its start time and method.
    const SERVE_FUTURE_BUDGET: usize = if kestrel_core::metrics::ENABLED {
        1_808
    } else {
        1_512
    };

    #[test]
    fn the_connection_future_stays_within_its_budget() {
        let (io, _peer) = tokio::io::duplex(64);
        let config = Arc::new(Http1Config::from_options(&KestrelServerOptions::default()));
        let conn = Http1Connection::new(
            Box::new(io),
            config,
            ConnectionHandle::detached(ConnectionId(1)),
            Clock::new(Duration::from_secs(1)),
        );
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
