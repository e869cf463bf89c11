//! In-memory transport, for tests and for embedding a server in-process.
//!
//! [`memory_listener`] makes a named listener and a [`MemoryConnector`] for it.
//! Each [`MemoryConnector::connect`] creates a [`tokio::io::duplex`] pair, queues
//! the server half for the listener and returns the client half.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use kestrel_transport::{memory::memory_listener, ListenerExt};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let (mut listener, connector) = memory_listener("test");
//! let mut client = connector.connect().await?;
//! let mut conn = listener.accept().await?;
//! client.write_all(b"ping").await?;
//! let mut buf = [0; 4];
//! conn.io.read_exact(&mut buf).await?;
//! assert_eq!(&buf, b"ping");
//! # Ok(())
//! # }
//! ```

use std::io;
use std::task::{Context, Poll};

use tokio::io::DuplexStream;
use tokio::sync::mpsc;

use crate::{Address, Connection, Listener, TransportKind};

/// The buffer size of each direction of a connection made by
/// [`MemoryConnector::connect`].
pub const DEFAULT_CAPACITY: usize = 64 * 1024;

/// Create an in-memory listener named `name` and a connector for it.
///
/// The connection queue is unbounded (there is no backlog): connections made
/// before the listener accepts them wait in the queue. Dropping the listener
/// drops the queued connections (their clients read end-of-stream), and later
/// connects fail with [`io::ErrorKind::ConnectionRefused`].
pub fn memory_listener(name: impl Into<String>) -> (MemoryListener, MemoryConnector) {
    let name = name.into();
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = MemoryListener {
        rx,
        local_addr: Address::Memory(name.clone()),
        name: name.clone(),
        next_id: 1,
    };
    (listener, MemoryConnector { tx, name })
}

/// Opens connections to a [`MemoryListener`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MemoryConnector {
    tx: mpsc::UnboundedSender<DuplexStream>,
    name: String,
}

impl MemoryConnector {
    /// Connect to the listener, with [`DEFAULT_CAPACITY`] (64 KiB) buffered
    /// per direction. Fails with [`io::ErrorKind::ConnectionRefused`] if the
    /// listener has been dropped.
    pub async fn connect(&self) -> io::Result<DuplexStream> {
        self.connect_with_capacity(DEFAULT_CAPACITY).await
    }

    /// Connect to the listener with `capacity` bytes buffered per direction
    /// (a writer waits once that many bytes are unread). Fails with
    /// [`io::ErrorKind::ConnectionRefused`] if the listener has been dropped.
    pub async fn connect_with_capacity(&self, capacity: usize) -> io::Result<DuplexStream> {
        let (client, server) = tokio::io::duplex(capacity);
        self.tx.send(server).map_err(|_| {
            io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("memory listener {:?} is gone", self.name),
            )
        })?;
        Ok(client)
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the listener has been dropped (connects would be refused).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The listening side of the in-memory transport.
///
/// Connections have local address `Address::Memory(name)` and remote address
/// `Address::Memory("{name}#{n}")`, `n` counting accepted connections from 1.
///
/// When every [`MemoryConnector`] has been dropped, [`poll_accept`] stays
/// `Pending` forever rather than returning an error: like a socket nobody
/// connects to, a listener does not end because no one connects. Servers stop
/// listening on shutdown, not because clients went away.
///
/// [`poll_accept`]: Listener::poll_accept
#[derive(Debug)]
pub struct MemoryListener {
    rx: mpsc::UnboundedReceiver<DuplexStream>,
    local_addr: Address,
    name: String,
    next_id: u64,
}

impl MemoryListener {
    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Listener for MemoryListener {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Connection>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(stream)) => {
                let n = self.next_id;
                self.next_id += 1;
                Poll::Ready(Ok(Connection {
                    io: Box::new(stream),
                    local_addr: self.local_addr.clone(),
                    remote_addr: Address::Memory(format!("{}#{n}", self.name)),
                    kind: TransportKind::Memory,
                }))
            }
            // All connectors are gone: nothing can ever arrive, so never wake.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    fn local_addr(&self) -> &Address {
        &self.local_addr
    }
}
