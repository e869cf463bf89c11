//! One live connection's control block: its deadline, counts and the
//! signals the server sends it.

use super::*;

pub(super) const CLOSE_REQUESTED: u8 = 1;
pub(super) const TIMED_OUT: u8 = 2;
pub(super) const ABORTED: u8 = 4;
/// The connection sat idle (keep-alive) across a heartbeat tick.
pub(super) const IDLE: u8 = 8;
/// The connection holds no buffers while idle: no need to tell it again.
pub(super) const RELEASED: u8 = 16;
/// The connection was upgraded: it counts toward the upgraded connections.
pub(super) const UPGRADED: u8 = 32;

/// The shared control block of one live connection: its id, deadline, and
/// the signals the server sends it (graceful close, timeout, abort).
///
/// The protocol driver polls [`poll_signal`](Self::poll_signal) next to its
/// socket reads, so a signal wakes it wherever it waits.
#[derive(Debug)]
pub struct ConnectionHandle {
    pub(super) id: ConnectionId,
    flags: AtomicU8,
    waker: AtomicWaker,
    timeout: TimeoutControl,
    rates: DataRateControl,
    counters: Arc<Counters>,
    end_reason: AtomicU8,
    /// The task serving the connection, so that a shutdown can end it even
    /// if it does not react to [`abort`](Self::abort).
    pub(super) task: Mutex<Option<tokio::task::AbortHandle>>,
}

/// Connection counts shared by the manager and every handle.
#[derive(Debug)]
pub(super) struct Counters {
    pub(super) active: AtomicU64,
    pub(super) upgraded: AtomicU64,
    pub(super) rejected: AtomicU64,
    /// `max_concurrent_connections`; [`NO_LIMIT`] = none. Atomic so that a
    /// configuration reload can change it while connections are admitted.
    pub(super) max_connections: AtomicU64,
    /// `max_concurrent_upgraded_connections`; [`NO_LIMIT`] = none.
    pub(super) max_upgraded: AtomicU64,
}

/// A connection-count limit that is not set.
pub(super) const NO_LIMIT: u64 = u64::MAX;

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

    pub(super) fn max_connections(&self) -> Option<u64> {
        Self::limit(&self.max_connections)
    }

    pub(super) fn max_upgraded(&self) -> Option<u64> {
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
    /// A handle for a connection that is not tracked by a manager, for unit
    /// tests of features, signals and upgrades.
    ///
    /// No heartbeat visits it, so **none of its deadlines fire**: no
    /// keep-alive or request-headers timeout, no data rates. That is why no
    /// driver takes a handle: `Http1Connection` and `Http2Connection` are
    /// built from an [`AdmittedConnection`](crate::runtime::AdmittedConnection),
    /// whose handle is registered with a
    /// [`ConnectionRuntime`](crate::runtime::ConnectionRuntime) and visited by
    /// its heartbeat. A connection serving the network must be admitted.
    pub fn detached(id: ConnectionId) -> Arc<Self> {
        let counters = Arc::new(Counters {
            active: AtomicU64::new(1),
            ..Default::default()
        });
        Self::with_counters(id, counters)
    }

    pub(super) fn with_counters(id: ConnectionId, counters: Arc<Counters>) -> Arc<Self> {
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
