//! The connection runtime: what a server runs around its protocol drivers,
//! in one object, for framework authors who accept connections themselves
//! (and for the `kestrel` facade, which uses it too).
//!
//! A [`ConnectionRuntime`] owns
//!
//! * the [`Clock`] and the heartbeat task that ticks it every second (the
//!   cached `Date` header, every deadline: keep-alive, request headers,
//!   minimum data rates). The task stops when the runtime is dropped;
//! * the [`ConnectionManager`]: admission under `max_concurrent_connections`,
//!   the registry the heartbeat and shutdown walk;
//! * graceful shutdown with a timeout ([`shutdown`](ConnectionRuntime::shutdown)):
//!   close requested, wait, abort what is left, end the tasks that ignore it.
//!
//! [`admit`](ConnectionRuntime::admit) takes a transport [`Connection`] and
//! returns an [`AdmittedConnection`]: the connection's slot
//! ([`ConnectionGuard`]), its [`ConnectionHandle`] (the same one the
//! heartbeat visits), the clock, and the I/O, from which the drivers
//! (`kestrel_http1::Http1Connection::from_admitted`,
//! `kestrel_http2::Http2Connection::from_admitted`) build themselves. A
//! driver cannot be given a handle that does not match its slot, nor one that
//! no heartbeat visits: they take nothing else.
//!
//! ```no_run
//! use kestrel_core::runtime::ConnectionRuntime;
//! use kestrel_core::ServerLimits;
//! # async fn demo(conn: kestrel_transport::Connection) {
//! let runtime = ConnectionRuntime::new(&ServerLimits::default());
//! match runtime.admit(conn) {
//!     Ok(admitted) => { /* hand `admitted` to a driver, in a task */ }
//!     Err(_refused) => { /* over max_concurrent_connections: already closed */ }
//! }
//! runtime.shutdown(std::time::Duration::from_secs(5)).await;
//! # }
//! ```

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use kestrel_transport::{BoxIo, Connection};

use crate::connection::{
    ConnectionGuard, ConnectionHandle, ConnectionId, ConnectionLimitError, ConnectionManager,
};
use crate::endpoint::BoundAddress;
use crate::features::{ConnectionInfo, ServerAddresses, TlsInfo};
use crate::heartbeat::{spawn_heartbeat, Clock};
use crate::limits::{ServerLimits, HEARTBEAT_INTERVAL};
use crate::middleware::{ConnectionMiddleware, MiddlewareLimits};

/// The clock, heartbeat, admission and shutdown of a server's connections
/// (Kestrel's `ServiceContext`: `Heartbeat`, `ConnectionManager`,
/// `DateHeaderValueManager`). See the [module docs](self).
///
/// Create it inside a tokio runtime (it spawns the heartbeat task). Share it
/// behind an `Arc` between an accept loop and the code that stops the server;
/// the heartbeat stops when the last reference is dropped.
pub struct ConnectionRuntime {
    clock: Arc<Clock>,
    manager: Arc<ConnectionManager>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for ConnectionRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionRuntime")
            .field("live_connections", &self.manager.live_connections())
            .field("limits", &self.manager.limits())
            .finish_non_exhaustive()
    }
}

impl ConnectionRuntime {
    /// A runtime admitting connections under `limits`'
    /// `max_concurrent_connections` and `max_concurrent_upgraded_connections`,
    /// with Kestrel's 1 s heartbeat.
    ///
    /// # Panics
    /// Outside a tokio runtime (the heartbeat is a tokio task).
    pub fn new(limits: &ServerLimits) -> Self {
        Self::with_heartbeat_interval(limits, HEARTBEAT_INTERVAL)
    }

    /// The same with another heartbeat interval. Shorter intervals make
    /// tests of timeouts faster; they are not meant for production.
    pub fn with_heartbeat_interval(limits: &ServerLimits, interval: Duration) -> Self {
        let manager = ConnectionManager::new(
            limits.max_concurrent_connections,
            limits.max_concurrent_upgraded_connections,
        );
        let clock = Clock::new(interval);
        clock.tick();
        let heartbeat = spawn_heartbeat(clock.clone(), manager.clone());
        ConnectionRuntime {
            clock,
            manager,
            heartbeat,
        }
    }

    /// The clock every admitted connection reads time from.
    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    /// The connection registry (counts, limits, signals to every connection).
    pub fn manager(&self) -> &Arc<ConnectionManager> {
        &self.manager
    }

    /// Admit `conn` under `max_concurrent_connections`. On refusal the
    /// connection is closed (dropped), Kestrel's ConnectionRejected event
    /// (24) is logged and the rejected count grows.
    pub fn admit(&self, conn: Connection) -> Result<AdmittedConnection, Rejected> {
        let id = self.manager.next_id();
        match self.manager.try_admit(id) {
            Ok(guard) => Ok(AdmittedConnection {
                guard,
                clock: self.clock.clone(),
                conn,
                features: http::Extensions::new(),
                endpoint: None,
                addresses: ServerAddresses::default(),
                buffered: BytesMut::new(),
            }),
            Err(error) => {
                crate::events::connection_rejected(id, &error);
                drop(conn);
                Err(Rejected { id, error })
            }
        }
    }

    /// Admit a multiplexed (QUIC) connection, as [`admit`](Self::admit)
    /// does a stream: it takes a place under `max_concurrent_connections`
    /// and gets a handle the heartbeat and shutdown visit; over the limit it
    /// is closed (dropped), event 24 is logged and `Err` returned.
    #[cfg(feature = "multiplexed")]
    pub fn admit_multiplexed(
        &self,
        conn: kestrel_transport::multiplexed::MultiplexedConnection,
    ) -> Result<AdmittedMultiplexed, Rejected> {
        let id = self.manager.next_id();
        match self.manager.try_admit(id) {
            Ok(guard) => Ok(AdmittedMultiplexed {
                guard,
                clock: self.clock.clone(),
                conn,
                endpoint: None,
                addresses: ServerAddresses::default(),
            }),
            Err(error) => {
                crate::events::connection_rejected(id, &error);
                drop(conn);
                Err(Rejected { id, error })
            }
        }
    }

    /// Connections admitted and not yet ended (upgraded ones included).
    pub fn live_connections(&self) -> usize {
        self.manager.live_connections()
    }

    /// Stop gracefully: ask every connection to close after its current
    /// request (`Connection: close`, GOAWAY; idle connections close at once),
    /// wait up to `timeout` for them to end, then abort the rest, and cancel
    /// the tasks of any that do not end within a second of being aborted
    /// (tasks registered with [`ConnectionHandle::attach_task`]).
    ///
    /// Stop accepting before calling this: connections admitted meanwhile
    /// are asked to close too, but only once.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownOutcome {
        let m = &self.manager;
        m.request_close_all();
        if tokio::time::timeout(timeout, m.wait_drained())
            .await
            .is_ok()
        {
            return ShutdownOutcome::Graceful;
        }
        let left = m.live_connections();
        crate::events::not_all_connections_closed_gracefully(left);
        m.abort_all();
        if tokio::time::timeout(Duration::from_secs(1), m.wait_drained())
            .await
            .is_ok()
        {
            return ShutdownOutcome::Aborted(left);
        }
        crate::events::not_all_connections_aborted();
        // Whatever did not end when aborted is cancelled: no connection
        // task outlives the shutdown.
        let stuck = m.live_connections();
        m.end_tasks();
        let _ = tokio::time::timeout(Duration::from_secs(1), m.wait_drained()).await;
        ShutdownOutcome::Cancelled(stuck)
    }
}

impl Drop for ConnectionRuntime {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// How a [`ConnectionRuntime::shutdown`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownOutcome {
    /// Every connection closed within the timeout.
    Graceful,
    /// This many connections were still open at the timeout and were
    /// aborted; all of them ended.
    Aborted(usize),
    /// This many connections did not end when aborted: their tasks were
    /// cancelled (Kestrel's event 21).
    Cancelled(usize),
}

/// A connection refused by [`ConnectionRuntime::admit`] (already closed).
#[derive(Debug, thiserror::Error)]
#[error("connection {id} rejected: {error}")]
pub struct Rejected {
    /// The id the connection was given.
    pub id: ConnectionId,
    /// The limit that refused it.
    #[source]
    pub error: ConnectionLimitError,
}

/// A connection that holds its place in a [`ConnectionRuntime`]: its slot
/// (dropping it, or the driver that took it, releases the place), its
/// handle (visited by the runtime's heartbeat), the clock, the transport
/// connection, what connection middleware recorded, and the bytes already
/// read from it (by protocol selection).
///
/// Hand it to a driver (`Http1Connection::from_admitted`,
/// `Http2Connection::from_admitted`), or take it apart with
/// [`into_parts`](Self::into_parts) to write one.
pub struct AdmittedConnection {
    guard: ConnectionGuard,
    clock: Arc<Clock>,
    conn: Connection,
    features: http::Extensions,
    endpoint: Option<BoundAddress>,
    addresses: ServerAddresses,
    buffered: BytesMut,
}

impl fmt::Debug for AdmittedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmittedConnection")
            .field("id", &self.id())
            .field("connection", &self.conn)
            .field("buffered", &self.buffered.len())
            .finish_non_exhaustive()
    }
}

impl AdmittedConnection {
    /// The connection id.
    pub fn id(&self) -> ConnectionId {
        self.guard.id()
    }

    /// The connection's control block (deadlines, signals, end reason).
    pub fn handle(&self) -> &Arc<ConnectionHandle> {
        self.guard.handle()
    }

    /// The runtime's clock.
    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    /// The transport connection (its addresses and kind).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// What connection middleware recorded (e.g. [`TlsInfo`]).
    pub fn features(&self) -> &http::Extensions {
        &self.features
    }

    /// Record a typed value for every request on this connection (in
    /// [`ConnectionInfo::features`]).
    pub fn features_mut(&mut self) -> &mut http::Extensions {
        &mut self.features
    }

    /// The TLS handshake's outcome, if TLS middleware ran.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.features.get::<TlsInfo>()
    }

    /// The endpoint that accepted the connection, if named.
    pub fn endpoint(&self) -> Option<&BoundAddress> {
        self.endpoint.as_ref()
    }

    /// Name the endpoint that accepted the connection (in
    /// [`ConnectionInfo::endpoint`]).
    pub fn with_endpoint(mut self, endpoint: BoundAddress) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// The server's addresses, for every request on this connection
    /// (Kestrel's `IServerAddressesFeature`).
    pub fn with_server_addresses(mut self, addresses: ServerAddresses) -> Self {
        self.addresses = addresses;
        self
    }

    /// The bytes already read from the connection (by protocol selection),
    /// which a driver must read first.
    pub fn buffered(&self) -> &[u8] {
        &self.buffered
    }

    pub(crate) fn io_and_buffer(&mut self) -> (&mut BoxIo, &mut BytesMut) {
        (&mut self.conn.io, &mut self.buffered)
    }

    /// Run connection middleware over the connection, outermost first
    /// (TLS, the PROXY protocol, connection logging…). They see
    /// [`MiddlewareLimits`] in their features. After an error the stream is
    /// gone (the middleware that failed dropped it): drop the connection,
    /// which releases its slot.
    pub async fn run_middleware(
        &mut self,
        middleware: &[Arc<dyn ConnectionMiddleware>],
        limits: MiddlewareLimits,
    ) -> io::Result<()> {
        if middleware.is_empty() {
            return Ok(());
        }
        self.features.insert(limits);
        for mw in middleware {
            let conn = std::mem::replace(&mut self.conn, closed_connection());
            self.conn = mw.call(conn, &mut self.features).await?;
        }
        Ok(())
    }

    /// Take the connection apart: the I/O, its [`ConnectionInfo`] (with the
    /// connection-timeout feature bound to this connection and the server
    /// addresses), the slot and the clock, and the bytes already read.
    pub fn into_parts(self) -> AdmittedParts {
        let handle = self.guard.handle().clone();
        let info = ConnectionInfo::new(
            self.guard.id(),
            self.conn.local_addr,
            self.conn.remote_addr,
            self.conn.kind,
            self.endpoint,
            self.features,
        )
        .with_server_addresses(self.addresses)
        .with_timeout_feature(handle, self.clock.clone());
        AdmittedParts {
            io: self.conn.io,
            info,
            guard: self.guard,
            clock: self.clock,
            buffered: self.buffered,
        }
    }
}

/// A stand-in while connection middleware holds the connection.
fn closed_connection() -> Connection {
    Connection {
        io: Box::new(tokio::io::empty()),
        local_addr: kestrel_transport::Address::Unknown,
        remote_addr: kestrel_transport::Address::Unknown,
        kind: kestrel_transport::TransportKind::Other,
    }
}

/// An [`AdmittedConnection`] taken apart, for a driver.
#[non_exhaustive]
pub struct AdmittedParts {
    /// The byte stream (after connection middleware).
    pub io: BoxIo,
    /// The connection's info, for every request's extensions.
    pub info: ConnectionInfo,
    /// The connection's slot; its handle is the one the heartbeat visits.
    pub guard: ConnectionGuard,
    /// The runtime's clock.
    pub clock: Arc<Clock>,
    /// Bytes already read from `io`, to be read first.
    pub buffered: BytesMut,
}

impl fmt::Debug for AdmittedParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmittedParts")
            .field("info", &self.info)
            .field("buffered", &self.buffered.len())
            .finish_non_exhaustive()
    }
}

/// A multiplexed (QUIC) connection admitted by the runtime: its slot, its
/// handle, the clock and the connection, from which a multiplexed driver
/// (`kestrel_http3::Http3Connection::from_admitted`) builds itself.
#[cfg(feature = "multiplexed")]
pub struct AdmittedMultiplexed {
    guard: ConnectionGuard,
    clock: Arc<Clock>,
    conn: kestrel_transport::multiplexed::MultiplexedConnection,
    endpoint: Option<BoundAddress>,
    addresses: ServerAddresses,
}

#[cfg(feature = "multiplexed")]
impl fmt::Debug for AdmittedMultiplexed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmittedMultiplexed")
            .field("id", &self.id())
            .field("connection", &self.conn)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "multiplexed")]
impl AdmittedMultiplexed {
    /// The connection's id.
    pub fn id(&self) -> ConnectionId {
        self.guard.id()
    }

    /// The handle the heartbeat and shutdown visit.
    pub fn handle(&self) -> &Arc<ConnectionHandle> {
        self.guard.handle()
    }

    /// The connection (addresses, handshake).
    pub fn connection(&self) -> &kestrel_transport::multiplexed::MultiplexedConnection {
        &self.conn
    }

    /// Name the endpoint that accepted it (for `ConnectionInfo`).
    pub fn with_endpoint(mut self, endpoint: BoundAddress) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// The server's addresses (for `ConnectionInfo`).
    pub fn with_server_addresses(mut self, addresses: ServerAddresses) -> Self {
        self.addresses = addresses;
        self
    }

    /// Take it apart for a driver: the connection, its `ConnectionInfo`
    /// (with the connection-timeout feature), the slot and the clock.
    pub fn into_parts(self) -> MultiplexedParts {
        let handle = self.guard.handle().clone();
        let info = ConnectionInfo::new(
            self.guard.id(),
            self.conn.local_addr.clone(),
            self.conn.remote_addr.clone(),
            self.conn.kind,
            self.endpoint,
            http::Extensions::new(),
        )
        .with_server_addresses(self.addresses)
        .with_timeout_feature(handle, self.clock.clone());
        MultiplexedParts {
            conn: self.conn,
            info,
            guard: self.guard,
            clock: self.clock,
        }
    }
}

/// The pieces of an [`AdmittedMultiplexed`], for a driver.
#[cfg(feature = "multiplexed")]
#[non_exhaustive]
pub struct MultiplexedParts {
    /// The connection's streams, addresses and handshake.
    pub conn: kestrel_transport::multiplexed::MultiplexedConnection,
    /// What every request sees of the connection.
    pub info: ConnectionInfo,
    /// The slot (dropping it releases the place) and the handle.
    pub guard: ConnectionGuard,
    /// The runtime's clock.
    pub clock: Arc<Clock>,
}

#[cfg(feature = "multiplexed")]
impl fmt::Debug for MultiplexedParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiplexedParts")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
