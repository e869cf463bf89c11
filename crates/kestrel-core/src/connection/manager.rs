//! Admission and the registry of live connections.

use super::*;

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
