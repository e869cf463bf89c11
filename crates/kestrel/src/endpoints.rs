//! The endpoints of a running server, each with its own accept loops, stop
//! signal and connections, so that a configuration reload can bind new
//! endpoints and stop and drain removed ones while the others serve on
//! untouched (Kestrel's `KestrelConfigurationLoader.Reload` with
//! `TransportManager.StopEndpointsAsync`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use kestrel_core::connection::ConnectionHandle;
use kestrel_core::{BindTarget, BoundAddress, ServerAddresses};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::bind::BoundListener;

/// Starts the accept loop of one listener (it captures the server's app and
/// shared state, which this module does not need to know).
pub(crate) type SpawnAccept = Arc<
    dyn Fn(
            BoundListener,
            watch::Receiver<bool>,
            Arc<TrackedConnections>,
        ) -> Pin<Box<dyn Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// The server's addresses as new connections should see them (Kestrel's
/// `IServerAddressesFeature`), replaced when endpoints change.
#[derive(Debug, Default)]
pub(crate) struct LiveAddresses(RwLock<ServerAddresses>);

impl LiveAddresses {
    pub(crate) fn new(addresses: ServerAddresses) -> Self {
        LiveAddresses(RwLock::new(addresses))
    }

    /// The addresses now.
    pub(crate) fn current(&self) -> ServerAddresses {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, addresses: ServerAddresses) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = addresses;
    }
}

/// The connections one endpoint accepted (weakly held: a finished
/// connection drops out by itself).
#[derive(Debug, Default)]
pub(crate) struct TrackedConnections(Mutex<Vec<Weak<ConnectionHandle>>>);

impl TrackedConnections {
    /// Remember an accepted connection.
    pub(crate) fn add(&self, handle: &Arc<ConnectionHandle>) {
        let mut list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if list.len() >= 64 && list.len().is_power_of_two() {
            list.retain(|w| w.strong_count() > 0);
        }
        list.push(Arc::downgrade(handle));
    }

    fn live(&self) -> Vec<Arc<ConnectionHandle>> {
        let mut list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.iter().filter_map(Weak::upgrade).collect()
    }
}

/// One endpoint (one `ListenOptions`): its listeners' accept loops.
pub(crate) struct EndpointGroup {
    /// `Kestrel:Endpoints:<Name>`, if it came from configuration.
    pub(crate) name: Option<String>,
    /// Where it is bound (what a changed endpoint at the same place has to
    /// wait for).
    pub(crate) target: Option<BindTarget>,
    pub(crate) addresses: Vec<BoundAddress>,
    stop: watch::Sender<bool>,
    loops: JoinSet<()>,
    connections: Arc<TrackedConnections>,
    /// The UDP addresses of the endpoint's QUIC listeners (HTTP/3).
    pub(crate) quic_addresses: Vec<std::net::SocketAddr>,
    /// Copies of the listening sockets, for a zero-downtime restart (closed
    /// as soon as the endpoint stops accepting).
    #[cfg(unix)]
    sockets: Vec<std::os::fd::OwnedFd>,
}

impl std::fmt::Debug for EndpointGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointGroup")
            .field("name", &self.name)
            .field("addresses", &self.addresses)
            .finish_non_exhaustive()
    }
}

impl EndpointGroup {
    /// Start accepting on `listeners`.
    pub(crate) fn start(
        name: Option<String>,
        listeners: Vec<BoundListener>,
        spawn: &SpawnAccept,
    ) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let connections = Arc::new(TrackedConnections::default());
        let target = listeners.first().map(|l| l.endpoint.target.clone());
        let mut addresses = Vec::new();
        let mut loops = JoinSet::new();
        #[cfg_attr(not(feature = "http3"), allow(unused_mut))]
        let mut quic_addresses = Vec::new();
        #[cfg(unix)]
        let mut sockets = Vec::new();
        for l in listeners {
            #[cfg(feature = "http3")]
            if let Some(a) = l.quic.as_ref().and_then(|q| q.socket_addr()) {
                quic_addresses.push(a);
            }
            #[cfg(unix)]
            if let Some(fd) = l.listener.as_fd() {
                match fd.try_clone_to_owned() {
                    Ok(fd) => sockets.push(fd),
                    Err(e) => {
                        tracing::warn!(target: "kestrel", address = %l.address, error = %e, "cannot keep a copy of the listening socket; a zero-downtime restart will not hand it over")
                    }
                }
            }
            if !addresses.contains(&l.address) {
                addresses.push(l.address.clone());
            }
            loops.spawn(spawn(l, stop_rx.clone(), connections.clone()));
        }
        EndpointGroup {
            name,
            target,
            addresses,
            stop,
            loops,
            connections,
            quic_addresses,
            #[cfg(unix)]
            sockets,
        }
    }

    /// Ask the accept loops to stop (without waiting).
    pub(crate) fn signal_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stop accepting and wait until the listeners are closed (Unix socket
    /// files removed).
    pub(crate) async fn stop_accepting(&mut self) {
        self.signal_stop();
        while self.loops.join_next().await.is_some() {}
        #[cfg(unix)]
        self.sockets.clear();
    }

    /// Ask this endpoint's connections to close after their current request
    /// (`Connection: close`, HTTP/2 GOAWAY; idle ones at once), wait up to
    /// `timeout`, then abort the rest.
    pub(crate) async fn drain(self, timeout: Duration) {
        let live = self.connections.live();
        let count = live.len();
        for h in &live {
            h.request_close();
        }
        drop(live);
        let tracked = self.connections.clone();
        let wait = async {
            while !tracked.live().is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(timeout, wait).await.is_err() {
            let left = self.connections.live();
            tracing::debug!(target: "kestrel::connections", endpoint = ?self.addresses, remaining = left.len(), "some connections of a removed endpoint did not close within the shutdown timeout; aborting them");
            for h in &left {
                h.abort();
            }
        }
        tracing::debug!(target: "kestrel", endpoint = ?self.addresses, connections = count, "removed endpoint drained");
    }
}

/// Every endpoint of a running server.
pub(crate) struct Endpoints {
    pub(crate) groups: Vec<EndpointGroup>,
    pub(crate) live: Arc<LiveAddresses>,
    pub(crate) spawn: SpawnAccept,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

impl Endpoints {
    /// The addresses of every endpoint, in order, without duplicates.
    pub(crate) fn addresses(&self) -> ServerAddresses {
        let mut out: Vec<BoundAddress> = Vec::new();
        for g in &self.groups {
            for a in &g.addresses {
                if !out.contains(a) {
                    out.push(a.clone());
                }
            }
        }
        ServerAddresses::new(out)
    }

    /// Publish the addresses to new connections; returns them.
    pub(crate) fn publish(&self) -> ServerAddresses {
        let a = self.addresses();
        self.live.set(a.clone());
        a
    }
}

impl crate::RunningServer {
    /// Copies of every listening socket (TCP and Unix), for handing them to
    /// a new process of this server (a zero-downtime restart: `kill -USR2`,
    /// see `kestrel_hosting::restart`). The server keeps accepting on its own.
    #[cfg(unix)]
    pub fn listening_sockets(&self) -> std::io::Result<Vec<std::os::fd::OwnedFd>> {
        let mut out = Vec::new();
        for g in &self.endpoints.groups {
            for fd in &g.sockets {
                out.push(fd.try_clone()?);
            }
        }
        Ok(out)
    }

    /// Change endpoints while serving (what a configuration reload does,
    /// Kestrel's `KestrelConfigurationLoader.Reload`): the endpoints whose
    /// [`config_name`](kestrel_core::ListenOptions::config_name) is in
    /// `remove` stop accepting (their listeners close, Unix socket files are
    /// removed) and their connections are asked to close and given
    /// `drain_timeout` before they are aborted; the endpoints of `add` are
    /// bound and start accepting. Other endpoints, and their connections,
    /// are left alone. The server addresses (and what new connections see
    /// of them) follow, and each new address is logged as "Now listening on".
    ///
    /// Endpoints of `add` at a new place are bound first: if one of them
    /// cannot be bound (address in use, bad Unix socket path), nothing
    /// changes and the error names the address. An endpoint of `add` at the
    /// place of a removed one can only be bound once that one is closed; if
    /// that fails, the error is returned with the rest already applied.
    pub async fn reconfigure_endpoints(
        &mut self,
        remove: &[String],
        add: Vec<kestrel_core::ListenOptions>,
        drain_timeout: Duration,
    ) -> Result<(), crate::StartError> {
        use crate::bind::{bind_endpoint, EndpointPlan};
        let removing = |g: &EndpointGroup| {
            g.name
                .as_deref()
                .is_some_and(|n| remove.iter().any(|r| r.eq_ignore_ascii_case(n)))
        };
        let freed: Vec<BindTarget> = self
            .endpoints
            .groups
            .iter()
            .filter(|g| removing(g))
            .filter_map(|g| g.target.clone())
            .collect();
        let (later, now): (Vec<_>, Vec<_>) =
            add.into_iter().partition(|o| freed.contains(&o.target));
        let bind = |o: kestrel_core::ListenOptions| {
            let name = o.config_name.clone();
            let plan = EndpointPlan {
                scheme: o.scheme,
                options: o,
            };
            let keep_alive = self.limits.limits().keep_alive_timeout;
            bind_endpoint(plan, &self.tcp, &self.quic, keep_alive).map(|l| (name, l))
        };
        let mut bound = Vec::new();
        for o in now {
            // On error the listeners bound so far are dropped (closed): nothing changed.
            bound.push(bind(o)?);
        }
        let mut stopped = Vec::new();
        let mut kept = Vec::new();
        for g in std::mem::take(&mut self.endpoints.groups) {
            if removing(&g) {
                g.signal_stop();
                stopped.push(g);
            } else {
                kept.push(g);
            }
        }
        self.endpoints.groups = kept;
        let before: Vec<BoundAddress> = self.endpoints.addresses().iter().cloned().collect();
        for g in &mut stopped {
            g.stop_accepting().await;
            for a in &g.addresses {
                tracing::info!(target: "kestrel", address = %a, endpoint = g.name.as_deref().unwrap_or(""), "Stopped listening on: {a}");
            }
        }
        let mut late_error = None;
        for o in later {
            match bind(o) {
                Ok(b) => bound.push(b),
                Err(e) => {
                    tracing::error!(target: "kestrel", error = %e, "a changed endpoint could not be bound again: {e}");
                    late_error = Some(e);
                }
            }
        }
        for (name, listeners) in bound {
            let group = EndpointGroup::start(name, listeners, &self.endpoints.spawn);
            self.endpoints.groups.push(group);
        }
        self.addresses = self.endpoints.publish();
        for a in self.addresses.iter().filter(|a| !before.contains(a)) {
            tracing::info!(target: "kestrel", address = %a, "Now listening on: {a}");
        }
        for g in stopped {
            tokio::spawn(g.drain(drain_timeout));
        }
        match late_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
