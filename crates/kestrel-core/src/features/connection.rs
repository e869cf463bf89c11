//! Connection-wide features: what every request on a connection shares.

use std::fmt;
use std::sync::Arc;

use std::time::Duration;

use kestrel_transport::{Address, TransportKind};

use crate::connection::{ConnectionHandle, ConnectionId, TimeoutReason};
use crate::endpoint::BoundAddress;
use crate::heartbeat::Clock;

/// The connection a request arrived on (Kestrel's `IHttpConnectionFeature`).
/// Cheap to clone.
#[derive(Clone)]
pub struct ConnectionInfo {
    inner: Arc<ConnectionInner>,
}

struct ConnectionInner {
    id: ConnectionId,
    local_addr: Address,
    remote_addr: Address,
    transport: TransportKind,
    endpoint: Option<BoundAddress>,
    addresses: ServerAddresses,
    features: http::Extensions,
    timeout: Option<ConnectionTimeout>,
}

impl ConnectionInfo {
    /// Describe a connection. `features` are what connection middleware recorded.
    pub fn new(
        id: ConnectionId,
        local_addr: Address,
        remote_addr: Address,
        transport: TransportKind,
        endpoint: Option<BoundAddress>,
        features: http::Extensions,
    ) -> Self {
        ConnectionInfo {
            inner: Arc::new(ConnectionInner {
                id,
                local_addr,
                remote_addr,
                transport,
                endpoint,
                addresses: ServerAddresses::default(),
                features,
                timeout: None,
            }),
        }
    }

    /// The inner record, cloned only if the info is already shared.
    fn into_inner(self) -> ConnectionInner {
        Arc::try_unwrap(self.inner).unwrap_or_else(|shared| ConnectionInner {
            id: shared.id,
            local_addr: shared.local_addr.clone(),
            remote_addr: shared.remote_addr.clone(),
            transport: shared.transport,
            endpoint: shared.endpoint.clone(),
            addresses: shared.addresses.clone(),
            features: shared.features.clone(),
            timeout: shared.timeout.clone(),
        })
    }

    /// The same, with the server's addresses (Kestrel's `IServerAddressesFeature`).
    pub fn with_server_addresses(self, addresses: ServerAddresses) -> Self {
        let inner = ConnectionInner {
            addresses,
            ..self.into_inner()
        };
        ConnectionInfo {
            inner: Arc::new(inner),
        }
    }

    /// The same, with the connection-timeout feature bound to the live connection.
    pub fn with_timeout_feature(self, handle: Arc<ConnectionHandle>, clock: Arc<Clock>) -> Self {
        let inner = ConnectionInner {
            timeout: Some(ConnectionTimeout { handle, clock }),
            ..self.into_inner()
        };
        ConnectionInfo {
            inner: Arc::new(inner),
        }
    }

    /// The connection-timeout feature (Kestrel's `IConnectionTimeoutFeature`),
    /// when the connection is served by a server.
    pub fn timeout(&self) -> Option<&ConnectionTimeout> {
        self.inner.timeout.as_ref()
    }

    /// The addresses the server listens on (Kestrel's `IServerAddressesFeature`).
    pub fn server_addresses(&self) -> &ServerAddresses {
        &self.inner.addresses
    }

    /// The connection id.
    pub fn id(&self) -> ConnectionId {
        self.inner.id
    }

    /// The server's address on this connection.
    pub fn local_addr(&self) -> &Address {
        &self.inner.local_addr
    }

    /// The client's address.
    pub fn remote_addr(&self) -> &Address {
        &self.inner.remote_addr
    }

    /// The transport kind (tcp, unix, memory).
    pub fn transport(&self) -> TransportKind {
        self.inner.transport
    }

    /// The endpoint that accepted the connection, in display form.
    pub fn endpoint(&self) -> Option<&BoundAddress> {
        self.inner.endpoint.as_ref()
    }

    /// Typed values that connection middleware recorded (e.g. the TLS handshake).
    pub fn features(&self) -> &http::Extensions {
        &self.inner.features
    }
}

impl fmt::Debug for ConnectionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionInfo")
            .field("id", &self.inner.id)
            .field("local_addr", &self.inner.local_addr)
            .field("remote_addr", &self.inner.remote_addr)
            .field("transport", &self.inner.transport)
            .finish_non_exhaustive()
    }
}

/// The addresses the server listens on, in display form (Kestrel's
/// `IServerAddressesFeature`): filled after binding, read-only afterwards.
#[derive(Clone, Default)]
pub struct ServerAddresses {
    list: Arc<[BoundAddress]>,
}

impl ServerAddresses {
    /// The given list.
    pub fn new(list: Vec<BoundAddress>) -> Self {
        ServerAddresses { list: list.into() }
    }

    /// The addresses.
    pub fn iter(&self) -> impl Iterator<Item = &BoundAddress> {
        self.list.iter()
    }

    /// How many addresses.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl fmt::Debug for ServerAddresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|a| a.as_str()))
            .finish()
    }
}

impl fmt::Display for ServerAddresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.list.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(a.as_str())?;
        }
        Ok(())
    }
}

/// Lets the app close its connection after a deadline (Kestrel's
/// `IConnectionTimeoutFeature`). Checked on the heartbeat, like every
/// deadline; when it passes, the connection is aborted.
#[derive(Clone)]
pub struct ConnectionTimeout {
    handle: Arc<ConnectionHandle>,
    clock: Arc<Clock>,
}

/// A refused connection-timeout change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeoutFeatureError {
    /// `set_timeout` while another app timeout is pending (use `reset_timeout`).
    #[error("a connection timeout is already set; use reset_timeout to replace it")]
    AlreadySet,
}

impl fmt::Debug for ConnectionTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionTimeout")
            .field("connection", &self.handle.id())
            .finish_non_exhaustive()
    }
}

impl ConnectionTimeout {
    /// Close the connection after `timeout` unless canceled or reset; fails
    /// if an app timeout is already pending.
    pub fn set_timeout(&self, timeout: Duration) -> Result<(), TimeoutFeatureError> {
        if self.handle.timeout().armed() == TimeoutReason::TimeoutFeature {
            return Err(TimeoutFeatureError::AlreadySet);
        }
        self.reset_timeout(timeout);
        Ok(())
    }

    /// Close the connection after `timeout`, replacing any pending deadline.
    pub fn reset_timeout(&self, timeout: Duration) {
        self.handle.timeout().set(
            TimeoutReason::TimeoutFeature,
            timeout,
            self.clock.ticks(),
            self.clock.interval(),
        );
    }

    /// Cancel a deadline set with `set_timeout` or `reset_timeout`.
    pub fn cancel_timeout(&self) {
        if self.handle.timeout().armed() == TimeoutReason::TimeoutFeature {
            self.handle.timeout().cancel();
        }
    }
}
