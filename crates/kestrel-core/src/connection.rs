//! Connection lifecycle: ids, the concurrent-connection limit, per-connection
//! deadlines and the close/abort signals a graceful shutdown sends
//! (Kestrel's `ConnectionManager`, `ResourceCounter` and `TimeoutControl`).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use atomic_waker::AtomicWaker;
use tokio::sync::Notify;

use crate::data_rate::DataRateControl;

/// A connection id, shown as Kestrel shows them (13 base-32 characters, e.g. `0HN7Q2L4TV1AB`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHIJKLMNOPQRSTUV";
        let mut out = [0u8; 13];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 60 - 5 * i as i32;
            let idx = if shift >= 0 {
                (self.0 >> shift) & 31
            } else {
                (self.0 << -shift) & 31
            };
            *slot = ALPHABET[idx as usize];
        }
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a connection's deadline was set (Kestrel's `TimeoutReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum TimeoutReason {
    /// No deadline.
    None = 0,
    /// Waiting for the next request on an idle connection.
    KeepAlive = 1,
    /// Waiting for the rest of a request head.
    RequestHeaders = 2,
    /// Draining an unread request body after the response.
    RequestBodyDrain = 3,
    /// The request body arrives too slowly.
    ReadDataRate = 4,
    /// The client reads the response too slowly.
    WriteDataRate = 5,
    /// A deadline the app set (Kestrel's `IConnectionTimeoutFeature`).
    TimeoutFeature = 6,
}

impl TimeoutReason {
    fn from_u8(v: u8) -> TimeoutReason {
        match v {
            1 => TimeoutReason::KeepAlive,
            2 => TimeoutReason::RequestHeaders,
            3 => TimeoutReason::RequestBodyDrain,
            4 => TimeoutReason::ReadDataRate,
            5 => TimeoutReason::WriteDataRate,
            6 => TimeoutReason::TimeoutFeature,
            _ => TimeoutReason::None,
        }
    }
}

/// A connection's single deadline, in heartbeat ticks (ms), like Kestrel's
/// `TimeoutControl`: `deadline = last tick + timeout + one interval`, checked
/// on each heartbeat. Pure logic over plain numbers, so it is unit-testable.
#[derive(Debug)]
pub struct TimeoutControl {
    deadline: AtomicU64,
    reason: AtomicU8,
    fired: AtomicU8,
}

impl Default for TimeoutControl {
    fn default() -> Self {
        TimeoutControl {
            deadline: AtomicU64::new(u64::MAX),
            reason: AtomicU8::new(TimeoutReason::None as u8),
            fired: AtomicU8::new(TimeoutReason::None as u8),
        }
    }
}

impl TimeoutControl {
    /// Arm the deadline: `now_ticks + timeout + interval`.
    pub fn set(
        &self,
        reason: TimeoutReason,
        timeout: Duration,
        now_ticks: u64,
        interval: Duration,
    ) {
        let deadline = now_ticks
            .saturating_add(timeout.as_millis().min(u64::MAX as u128) as u64)
            .saturating_add(interval.as_millis() as u64);
        self.reason.store(reason as u8, Ordering::Relaxed);
        self.deadline.store(deadline, Ordering::Release);
    }

    /// Disarm the deadline.
    pub fn cancel(&self) {
        self.deadline.store(u64::MAX, Ordering::Release);
        self.reason
            .store(TimeoutReason::None as u8, Ordering::Relaxed);
    }

    /// The armed reason, if any.
    pub fn armed(&self) -> TimeoutReason {
        TimeoutReason::from_u8(self.reason.load(Ordering::Relaxed))
    }

    /// Check the deadline at `now_ticks`; returns the reason when it just expired.
    pub fn check(&self, now_ticks: u64) -> Option<TimeoutReason> {
        let deadline = self.deadline.load(Ordering::Acquire);
        if now_ticks > deadline {
            let reason = self.armed();
            if reason != TimeoutReason::None {
                self.deadline.store(u64::MAX, Ordering::Release);
                self.fired.store(reason as u8, Ordering::Release);
                return Some(reason);
            }
        }
        None
    }

    /// Record an expiry decided elsewhere (a data rate).
    pub fn fire(&self, reason: TimeoutReason) {
        self.fired.store(reason as u8, Ordering::Release);
    }

    /// The reason of the last expiry, taken (reset to none).
    pub fn take_fired(&self) -> TimeoutReason {
        TimeoutReason::from_u8(self.fired.swap(TimeoutReason::None as u8, Ordering::AcqRel))
    }
}

const CLOSE_REQUESTED: u8 = 1;
const TIMED_OUT: u8 = 2;
const ABORTED: u8 = 4;
/// The connection sat idle (keep-alive) across a heartbeat tick.
const IDLE: u8 = 8;
/// The connection holds no buffers while idle: no need to tell it again.
const RELEASED: u8 = 16;
/// The connection was upgraded: it counts toward the upgraded connections.
const UPGRADED: u8 = 32;

/// The shared control block of one live connection: its id, deadline, and
/// the signals the server sends it (graceful close, timeout, abort).
///
/// The protocol driver polls [`poll_signal`](Self::poll_signal) next to its
/// socket reads, so a signal wakes it wherever it waits.
#[derive(Debug)]
pub struct ConnectionHandle {
    id: ConnectionId,
    flags: AtomicU8,
    waker: AtomicWaker,
    timeout: TimeoutControl,
    rates: DataRateControl,
    counters: Arc<Counters>,
    end_reason: AtomicU8,
    /// The task serving the connection, so that a shutdown can end it even
    /// if it does not react to [`abort`](Self::abort).
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

/// Connection counts shared by the manager and every handle.
#[derive(Debug)]
struct Counters {
    active: AtomicU64,
    upgraded: AtomicU64,
    rejected: AtomicU64,
    /// `max_concurrent_connections`; [`NO_LIMIT`] = none. Atomic so that a
    /// configuration reload can change it while connections are admitted.
    max_connections: AtomicU64,
    /// `max_concurrent_upgraded_connections`; [`NO_LIMIT`] = none.
    max_upgraded: AtomicU64,
}

/// A connection-count limit that is not set.
const NO_LIMIT: u64 = u64::MAX;

impl Default for Counters {
    fn default() -> Self {
        Counters {
            active: AtomicU64::new(0),
            upgraded: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            max_connections: AtomicU64::new(NO_LIMIT),
            max_upgraded: AtomicU64::new(NO_LIMIT),
        }
    }
}

impl Counters {
    fn limit(slot: &AtomicU64) -> Option<u64> {
        match slot.load(Ordering::Acquire) {
            NO_LIMIT => None,
            n => Some(n),
        }
    }

    fn max_connections(&self) -> Option<u64> {
        Self::limit(&self.max_connections)
    }

    fn max_upgraded(&self) -> Option<u64> {
        Self::limit(&self.max_upgraded)
    }
}

/// A signal delivered to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Graceful shutdown: finish the current request, then close.
    CloseRequested,
    /// A deadline expired.
    TimedOut(TimeoutReason),
    /// Abort now (shutdown timeout elapsed).
    Aborted,
    /// The connection has been idle (waiting for a request) across a
    /// heartbeat tick: a good time to release its buffers. Reported once;
    /// not again until [`ConnectionHandle::set_buffers_released`] is reset.
    Idle,
}

impl ConnectionHandle {
    /// A handle for a connection that is not tracked by a manager (tests).
    ///
    /// No heartbeat visits it, so **none of its deadlines fire**: no
    /// keep-alive or request-headers timeout, no data rates, and the
    /// driver's cached `Date` is refreshed only by whatever ticks the
    /// clock. To embed a driver with Kestrel's limits, admit the connection
    /// with [`ConnectionManager::try_admit`] and run
    /// [`spawn_heartbeat`](crate::heartbeat::spawn_heartbeat) over that manager.
    pub fn detached(id: ConnectionId) -> Arc<Self> {
        let counters = Arc::new(Counters {
            active: AtomicU64::new(1),
            ..Default::default()
        });
        Self::with_counters(id, counters)
    }

    fn with_counters(id: ConnectionId, counters: Arc<Counters>) -> Arc<Self> {
        Arc::new(ConnectionHandle {
            id,
            flags: AtomicU8::new(0),
            waker: AtomicWaker::new(),
            timeout: TimeoutControl::default(),
            rates: DataRateControl::default(),
            counters,
            end_reason: AtomicU8::new(0),
            task: Mutex::new(None),
        })
    }

    /// Record why the connection ends (the first reason recorded wins).
    pub fn set_end_reason(&self, reason: ConnectionEndReason) {
        let _ =
            self.end_reason
                .compare_exchange(0, reason as u8, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Why the connection ended, if not gracefully.
    pub fn end_reason(&self) -> Option<ConnectionEndReason> {
        ConnectionEndReason::from_u8(self.end_reason.load(Ordering::Acquire))
    }

    /// The connection's minimum-data-rate tracking.
    pub fn rates(&self) -> &DataRateControl {
        &self.rates
    }

    /// Move this connection from the normal count to the upgraded count
    /// (Kestrel's `MaxConcurrentUpgradedConnections`); refused over the limit.
    pub fn try_upgrade(&self) -> Result<(), ConnectionLimitError> {
        if self.flags.load(Ordering::Acquire) & UPGRADED != 0 {
            return Ok(());
        }
        let c = &self.counters;
        if let Some(max) = c.max_upgraded() {
            c.upgraded
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max).then_some(n + 1)
                })
                .map_err(|_| ConnectionLimitError::MaxConcurrentUpgradedConnections(max))?;
        } else {
            c.upgraded.fetch_add(1, Ordering::AcqRel);
        }
        c.active.fetch_sub(1, Ordering::AcqRel);
        self.flags.fetch_or(UPGRADED, Ordering::AcqRel);
        crate::metrics::upgraded_connection(1.0);
        Ok(())
    }

    /// Undo [`try_upgrade`](Self::try_upgrade) (the upgrade did not happen).
    pub fn cancel_upgrade(&self) {
        if self.flags.fetch_and(!UPGRADED, Ordering::AcqRel) & UPGRADED != 0 {
            self.counters.upgraded.fetch_sub(1, Ordering::AcqRel);
            self.counters.active.fetch_add(1, Ordering::AcqRel);
            crate::metrics::upgraded_connection(-1.0);
        }
    }

    /// Count one upgraded HTTP/2 stream (an accepted extended CONNECT, RFC
    /// 8441) toward `max_concurrent_upgraded_connections`; the connection
    /// itself stays in the normal count. Refused over the limit.
    pub fn try_add_upgraded_stream(&self) -> Result<(), ConnectionLimitError> {
        let c = &self.counters;
        match c.max_upgraded() {
            Some(max) => {
                c.upgraded
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < max).then_some(n + 1)
                    })
                    .map_err(|_| ConnectionLimitError::MaxConcurrentUpgradedConnections(max))?;
            }
            None => {
                c.upgraded.fetch_add(1, Ordering::AcqRel);
            }
        }
        crate::metrics::upgraded_connection(1.0);
        Ok(())
    }

    /// Give back a place taken by [`try_add_upgraded_stream`](Self::try_add_upgraded_stream).
    pub fn remove_upgraded_stream(&self) {
        self.counters.upgraded.fetch_sub(1, Ordering::AcqRel);
        crate::metrics::upgraded_connection(-1.0);
    }

    /// Whether the connection was upgraded.
    pub fn is_upgraded(&self) -> bool {
        self.flags.load(Ordering::Acquire) & UPGRADED != 0
    }

    /// The connection id.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// The connection's deadline.
    pub fn timeout(&self) -> &TimeoutControl {
        &self.timeout
    }

    /// Ask the connection to close after its current request.
    pub fn request_close(&self) {
        self.raise(CLOSE_REQUESTED);
    }

    /// Abort the connection now.
    pub fn abort(&self) {
        self.raise(ABORTED);
    }

    /// Whether a graceful close was requested.
    pub fn is_close_requested(&self) -> bool {
        self.flags.load(Ordering::Acquire) & CLOSE_REQUESTED != 0
    }

    /// Record the task that serves this connection (see
    /// [`ConnectionManager::end_tasks`]).
    pub fn attach_task(&self, task: tokio::task::AbortHandle) {
        if let Ok(mut t) = self.task.lock() {
            *t = Some(task);
        }
    }

    /// Whether the connection was aborted.
    pub fn is_aborted(&self) -> bool {
        self.flags.load(Ordering::Acquire) & ABORTED != 0
    }

    fn raise(&self, flag: u8) {
        self.flags.fetch_or(flag, Ordering::AcqRel);
        self.waker.wake();
    }

    /// Check the deadline at `now_ticks` (called by the heartbeat), and tell
    /// a connection idle between requests that it may release its buffers.
    pub fn on_heartbeat(&self, now_ticks: u64) {
        if self.timeout.check(now_ticks).is_some() {
            self.raise(TIMED_OUT);
        } else if let Some(reason) = self.rates.on_tick(now_ticks) {
            self.timeout.fire(reason);
            self.raise(TIMED_OUT);
        } else if self.timeout.armed() == TimeoutReason::KeepAlive
            && self.flags.load(Ordering::Acquire) & (RELEASED | IDLE) == 0
        {
            self.raise(IDLE);
        }
    }

    /// Record whether the connection holds no buffers while idle (so the
    /// heartbeat does not wake it again to release them).
    pub fn set_buffers_released(&self, released: bool) {
        if released {
            self.flags.fetch_or(RELEASED, Ordering::AcqRel);
        } else if self.flags.load(Ordering::Relaxed) & RELEASED != 0 {
            self.flags.fetch_and(!RELEASED, Ordering::AcqRel);
        }
    }

    /// Poll for the most urgent pending signal: abort, then timeout, then close.
    /// A timeout is reported once; abort and close stay raised.
    pub fn poll_signal(&self, cx: &mut Context<'_>) -> Poll<Signal> {
        self.waker.register(cx.waker());
        match self.check_signal() {
            Some(s) => Poll::Ready(s),
            None => Poll::Pending,
        }
    }

    /// The most urgent pending signal, without registering for wake-ups.
    pub fn check_signal(&self) -> Option<Signal> {
        let flags = self.flags.load(Ordering::Acquire);
        if flags == 0 {
            return None;
        }
        if flags & ABORTED != 0 {
            return Some(Signal::Aborted);
        }
        if flags & TIMED_OUT != 0 {
            self.flags.fetch_and(!TIMED_OUT, Ordering::AcqRel);
            let reason = self.timeout.take_fired();
            if reason != TimeoutReason::None {
                return Some(Signal::TimedOut(reason));
            }
        }
        if flags & CLOSE_REQUESTED != 0 {
            return Some(Signal::CloseRequested);
        }
        if flags & IDLE != 0 {
            self.flags.fetch_and(!IDLE, Ordering::AcqRel);
            return Some(Signal::Idle);
        }
        None
    }
}

/// Why a connection ended, when it did not end gracefully: Kestrel's
/// `ConnectionEndReason`, reported as the `error.type` tag of
/// `kestrel.connection.duration`. The first reason recorded wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum ConnectionEndReason {
    /// The idle keep-alive timeout passed.
    KeepAliveTimeout = 1,
    /// A request head did not arrive in time.
    RequestHeadersTimeout,
    /// The request body arrived below the minimum rate.
    MinRequestBodyDataRate,
    /// The client read the response below the minimum rate.
    MinResponseDataRate,
    /// The request line was malformed or too long.
    InvalidRequestLine,
    /// The request headers were malformed, too large or too many.
    InvalidRequestHeaders,
    /// The request body's framing was malformed.
    InvalidRequestBody,
    /// An HTTP version the server does not speak.
    InvalidHttpVersion,
    /// The request body was larger than allowed.
    MaxRequestBodySizeExceeded,
    /// The connection limit was reached.
    MaxConcurrentConnectionsExceeded,
    /// The response body did not match its Content-Length.
    ResponseContentLengthMismatch,
    /// The app failed after the response had started.
    ErrorAfterStartingResponse,
    /// The TLS handshake failed or timed out.
    TlsHandshakeFailed,
    /// The server aborted the connection at the end of the shutdown timeout.
    AppShutdownTimeout,
    /// The connection was reset or failed with an I/O error.
    ConnectionReset,
    /// A deadline set by the app (connection timeout feature) passed.
    ServerTimeout,
    /// An HTTP/2 protocol error.
    ProtocolError,
}

impl ConnectionEndReason {
    const ALL: [ConnectionEndReason; 17] = [
        Self::KeepAliveTimeout,
        Self::RequestHeadersTimeout,
        Self::MinRequestBodyDataRate,
        Self::MinResponseDataRate,
        Self::InvalidRequestLine,
        Self::InvalidRequestHeaders,
        Self::InvalidRequestBody,
        Self::InvalidHttpVersion,
        Self::MaxRequestBodySizeExceeded,
        Self::MaxConcurrentConnectionsExceeded,
        Self::ResponseContentLengthMismatch,
        Self::ErrorAfterStartingResponse,
        Self::TlsHandshakeFailed,
        Self::AppShutdownTimeout,
        Self::ConnectionReset,
        Self::ServerTimeout,
        Self::ProtocolError,
    ];

    /// Kestrel's name for the reason (the `error.type` tag value).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::KeepAliveTimeout => "keep_alive_timeout",
            Self::RequestHeadersTimeout => "request_headers_timeout",
            Self::MinRequestBodyDataRate => "min_request_body_data_rate",
            Self::MinResponseDataRate => "min_response_data_rate",
            Self::InvalidRequestLine => "invalid_request_line",
            Self::InvalidRequestHeaders => "invalid_request_headers",
            Self::InvalidRequestBody => "invalid_request_body",
            Self::InvalidHttpVersion => "invalid_http_version",
            Self::MaxRequestBodySizeExceeded => "max_request_body_size_exceeded",
            Self::MaxConcurrentConnectionsExceeded => "max_concurrent_connections_exceeded",
            Self::ResponseContentLengthMismatch => "response_content_length_mismatch",
            Self::ErrorAfterStartingResponse => "error_after_starting_response",
            Self::TlsHandshakeFailed => "tls_handshake_failed",
            Self::AppShutdownTimeout => "app_shutdown_timeout",
            Self::ConnectionReset => "connection_reset",
            Self::ServerTimeout => "server_timeout",
            Self::ProtocolError => "protocol_error",
        }
    }

    fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get((v as usize).checked_sub(1)?).copied()
    }
}

/// Refusal to take a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionLimitError {
    /// `max_concurrent_connections` is reached.
    #[error("the maximum number of concurrent connections ({0}) has been reached")]
    MaxConcurrentConnections(u64),
    /// `max_concurrent_upgraded_connections` is reached.
    #[error("the maximum number of concurrent upgraded connections ({0}) has been reached")]
    MaxConcurrentUpgradedConnections(u64),
}

/// Tracks every live connection: ids, counts and limits, and the registry the
/// heartbeat and graceful shutdown walk.
#[derive(Debug)]
pub struct ConnectionManager {
    next_id: AtomicU64,
    counters: Arc<Counters>,
    registry: Mutex<HashMap<u64, Arc<ConnectionHandle>>>,
    drained: Notify,
}

impl ConnectionManager {
    /// A manager with the given limits (`None` = unlimited).
    pub fn new(max_connections: Option<u64>, max_upgraded: Option<u64>) -> Arc<Self> {
        // Like Kestrel, seed ids from the clock so they differ across restarts.
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Arc::new(ConnectionManager {
            next_id: AtomicU64::new(seed),
            counters: Arc::new(Counters {
                max_connections: AtomicU64::new(max_connections.unwrap_or(NO_LIMIT)),
                max_upgraded: AtomicU64::new(max_upgraded.unwrap_or(NO_LIMIT)),
                ..Default::default()
            }),
            registry: Mutex::new(HashMap::new()),
            drained: Notify::new(),
        })
    }

    /// Change the connection-count limits (`None` = unlimited), e.g. on a
    /// configuration reload. They apply to connections admitted and upgraded
    /// from now on; connections already open are never closed for them.
    pub fn set_limits(&self, max_connections: Option<u64>, max_upgraded: Option<u64>) {
        let c = &self.counters;
        c.max_connections
            .store(max_connections.unwrap_or(NO_LIMIT), Ordering::Release);
        c.max_upgraded
            .store(max_upgraded.unwrap_or(NO_LIMIT), Ordering::Release);
    }

    /// The connection-count limits in force (`max_concurrent_connections`,
    /// `max_concurrent_upgraded_connections`).
    pub fn limits(&self) -> (Option<u64>, Option<u64>) {
        (
            self.counters.max_connections(),
            self.counters.max_upgraded(),
        )
    }

    /// The next connection id (also given to connections that are then rejected).
    pub fn next_id(&self) -> ConnectionId {
        ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Admit a connection under `max_concurrent_connections`. On refusal the
    /// rejected count grows and the caller closes the connection at once.
    pub fn try_admit(
        self: &Arc<Self>,
        id: ConnectionId,
    ) -> Result<ConnectionGuard, ConnectionLimitError> {
        let c = &self.counters;
        if let Some(max) = c.max_connections() {
            let admitted = c
                .active
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max).then_some(n + 1)
                })
                .is_ok();
            if !admitted {
                c.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(ConnectionLimitError::MaxConcurrentConnections(max));
            }
        } else {
            c.active.fetch_add(1, Ordering::AcqRel);
        }
        let handle = ConnectionHandle::with_counters(id, c.clone());
        if let Ok(mut reg) = self.registry.lock() {
            reg.insert(id.0, handle.clone());
        }
        Ok(ConnectionGuard {
            manager: self.clone(),
            handle,
        })
    }

    /// Connections open now (not counting upgraded ones).
    pub fn active_connections(&self) -> u64 {
        self.counters.active.load(Ordering::Acquire)
    }

    /// Upgraded connections open now.
    pub fn upgraded_connections(&self) -> u64 {
        self.counters.upgraded.load(Ordering::Acquire)
    }

    /// Connections refused so far under `max_concurrent_connections`.
    pub fn rejected_connections(&self) -> u64 {
        self.counters.rejected.load(Ordering::Relaxed)
    }

    /// Live connections of both kinds.
    pub fn live_connections(&self) -> usize {
        self.registry.lock().map(|r| r.len()).unwrap_or(0)
    }

    fn handles(&self) -> Vec<Arc<ConnectionHandle>> {
        self.registry
            .lock()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Check every connection's deadline (called on each heartbeat tick).
    pub fn on_heartbeat(&self, now_ticks: u64) {
        if let Ok(reg) = self.registry.lock() {
            for h in reg.values() {
                h.on_heartbeat(now_ticks);
            }
        }
    }

    /// Ask every connection to close after its current request.
    pub fn request_close_all(&self) {
        for h in self.handles() {
            h.request_close();
        }
    }

    /// Abort every connection (the shutdown timeout passed).
    pub fn abort_all(&self) {
        for h in self.handles() {
            h.set_end_reason(ConnectionEndReason::AppShutdownTimeout);
            h.abort();
        }
    }

    /// Cancel the task of every connection still registered: the last step
    /// of a shutdown, for connections that did not end when aborted. Their
    /// futures are dropped, which releases their places.
    pub fn end_tasks(&self) {
        for h in self.handles() {
            if let Some(task) = h.task.lock().ok().and_then(|mut t| t.take()) {
                task.abort();
            }
        }
    }

    /// Wait until no connection is left.
    pub async fn wait_drained(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.live_connections() == 0 {
                return;
            }
            notified.await;
        }
    }

    fn release(&self, id: ConnectionId, upgraded: bool) {
        if upgraded {
            self.counters.upgraded.fetch_sub(1, Ordering::AcqRel);
            crate::metrics::upgraded_connection(-1.0);
        } else {
            self.counters.active.fetch_sub(1, Ordering::AcqRel);
        }
        let empty = match self.registry.lock() {
            Ok(mut reg) => {
                reg.remove(&id.0);
                reg.is_empty()
            }
            Err(_) => false,
        };
        if empty {
            self.drained.notify_waiters();
        }
    }
}

/// A connection's place in the [`ConnectionManager`]; dropping it releases
/// the place.
#[derive(Debug)]
pub struct ConnectionGuard {
    manager: Arc<ConnectionManager>,
    handle: Arc<ConnectionHandle>,
}

impl ConnectionGuard {
    /// The connection's control block.
    pub fn handle(&self) -> &Arc<ConnectionHandle> {
        &self.handle
    }

    /// The connection id.
    pub fn id(&self) -> ConnectionId {
        self.handle.id
    }

    /// Move this connection from the normal count to the upgraded count
    /// (Kestrel's `MaxConcurrentUpgradedConnections`).
    pub fn upgrade(&mut self) -> Result<(), ConnectionLimitError> {
        self.handle.try_upgrade()
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.manager
            .release(self.handle.id, self.handle.is_upgraded());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[test]
    fn ids_display_like_kestrel() {
        assert_eq!(ConnectionId(0).to_string(), "0000000000000");
        assert_eq!(ConnectionId(1).to_string(), "0000000000001");
        assert_eq!(ConnectionId(u64::MAX).to_string().len(), 13);
        assert_ne!(ConnectionId(5).to_string(), ConnectionId(6).to_string());
    }

    #[test]
    fn deadline_is_tick_plus_timeout_plus_interval() {
        let t = TimeoutControl::default();
        let iv = Duration::from_secs(1);
        t.set(TimeoutReason::KeepAlive, Duration::from_secs(5), 10_000, iv);
        assert_eq!(
            t.check(16_000),
            None,
            "exactly at the deadline is not past it"
        );
        assert_eq!(t.check(16_001), Some(TimeoutReason::KeepAlive));
        assert_eq!(t.check(20_000), None, "fires once");
        assert_eq!(t.take_fired(), TimeoutReason::KeepAlive);
        t.set(TimeoutReason::RequestHeaders, Duration::from_secs(1), 0, iv);
        t.cancel();
        assert_eq!(t.check(1_000_000), None);
    }

    #[test]
    fn limit_admits_n_then_refuses() {
        let m = ConnectionManager::new(Some(2), Some(1));
        let a = m.try_admit(m.next_id()).expect("first");
        let mut b = m.try_admit(m.next_id()).expect("second");
        assert_eq!(
            m.try_admit(m.next_id()).unwrap_err(),
            ConnectionLimitError::MaxConcurrentConnections(2)
        );
        assert_eq!(m.rejected_connections(), 1);
        b.upgrade().expect("upgrade");
        assert_eq!((m.active_connections(), m.upgraded_connections()), (1, 1));
        let mut c = m
            .try_admit(m.next_id())
            .expect("an upgraded connection frees a normal place");
        assert_eq!(
            c.upgrade().unwrap_err(),
            ConnectionLimitError::MaxConcurrentUpgradedConnections(1)
        );
        drop((a, b, c));
        assert_eq!(
            (
                m.active_connections(),
                m.upgraded_connections(),
                m.live_connections()
            ),
            (0, 0, 0)
        );
    }

    #[test]
    fn limits_changed_apply_to_later_admissions_only() {
        let m = ConnectionManager::new(None, Some(0));
        let a = m.try_admit(m.next_id()).expect("first");
        let b = m.try_admit(m.next_id()).expect("second");
        m.set_limits(Some(1), None);
        assert_eq!(m.limits(), (Some(1), None));
        assert_eq!(
            m.try_admit(m.next_id()).unwrap_err(),
            ConnectionLimitError::MaxConcurrentConnections(1),
            "two open, one allowed: the next is refused"
        );
        assert_eq!(m.live_connections(), 2, "open connections are kept");
        drop((a, b));
        let mut c = m.try_admit(m.next_id()).expect("under the new limit");
        c.upgrade().expect("upgrades are no longer limited");
        m.set_limits(None, None);
        let _d = m.try_admit(m.next_id()).expect("no limit any more");
    }

    #[tokio::test]
    async fn signals_wake_and_drain_completes() {
        let m = ConnectionManager::new(None, None);
        let g = m.try_admit(m.next_id()).expect("admit");
        let h = g.handle().clone();
        h.timeout()
            .set(TimeoutReason::KeepAlive, Duration::ZERO, 0, Duration::ZERO);
        m.on_heartbeat(1);
        let s = poll_fn(|cx| h.poll_signal(cx)).await;
        assert_eq!(s, Signal::TimedOut(TimeoutReason::KeepAlive));
        assert_eq!(h.check_signal(), None, "a timeout is reported once");
        let waiter = tokio::spawn({
            let h = h.clone();
            async move { poll_fn(|cx| h.poll_signal(cx)).await }
        });
        tokio::task::yield_now().await;
        m.request_close_all();
        assert_eq!(waiter.await.expect("join"), Signal::CloseRequested);
        m.abort_all();
        assert_eq!(h.check_signal(), Some(Signal::Aborted));
        let idle = ConnectionHandle::detached(ConnectionId(9));
        idle.timeout().set(
            TimeoutReason::KeepAlive,
            Duration::from_secs(100),
            0,
            Duration::ZERO,
        );
        idle.on_heartbeat(1);
        assert_eq!(idle.check_signal(), Some(Signal::Idle));
        assert_eq!(idle.check_signal(), None, "idle is reported once");
        idle.set_buffers_released(true);
        idle.on_heartbeat(2);
        assert_eq!(
            idle.check_signal(),
            None,
            "a connection without buffers is not woken again"
        );
        idle.set_buffers_released(false);
        idle.on_heartbeat(3);
        assert_eq!(idle.check_signal(), Some(Signal::Idle));
        let drained = tokio::spawn({
            let m = m.clone();
            async move { m.wait_drained().await }
        });
        drop(g);
        tokio::time::timeout(Duration::from_secs(5), drained)
            .await
            .expect("drained in time")
            .expect("join");
    }
}
