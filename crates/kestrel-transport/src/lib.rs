//! # kestrel-transport
//!
//! The lowest layer of Kestrel for Rust: how connections arrive. It defines the
//! [`Listener`] trait (bind once, accept duplex byte streams with their local and
//! remote [`Address`]) and ships the transports Kestrel has:
//!
//! * `tcp` (feature `tcp`, default): TCP on tokio, socket options through `socket2` (`TCP_NODELAY` on,
//!   listen backlog 512, `SO_REUSEADDR`, dual-mode `[::]`), and listeners built
//!   from inherited file descriptors (systemd socket activation, `ListenHandle`);
//! * `unix` (feature `unix`, default): Unix domain sockets (absolute paths only, stale socket files
//!   replaced, the file removed when the listener is dropped, optional mode
//!   and group, see [`SocketGroup`]);
//! * [`memory`]: an in-memory transport for tests and embedding.
//!
//! Behind the `multiplexed` feature, `multiplexed` holds the transport kind
//! QUIC needs (Kestrel's `IMultiplexedConnectionListener`): a
//! `MultiplexedListener` accepts connections that yield bidirectional and
//! unidirectional streams, with an in-memory implementation for tests.
//! Behind the `quic` feature, `quic` is that kind on quinn:
//! `QuicListener` (UDP, rustls with TLS 1.3, Kestrel's QUIC defaults).
//!
//! [`Rewind`] replays bytes already read from a stream (the server sniffs the
//! first bytes of a cleartext connection to tell HTTP/2 from HTTP/1).
//!
//! Anyone can bring a transport of their own by implementing [`Listener`]
//! (and [`ListenerFactory`], which the server calls to bind it; a listener
//! bound beforehand goes in a [`ListenerOnce`]).
//!
//! This crate knows nothing of HTTP, TLS, options or limits: it must not depend on
//! any other `kestrel-*` crate.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod address;
mod io;
mod listener;
pub mod memory;
#[cfg(feature = "multiplexed")]
#[cfg_attr(docsrs, doc(cfg(feature = "multiplexed")))]
pub mod multiplexed;
mod permissions;
#[cfg(feature = "quic")]
#[cfg_attr(docsrs, doc(cfg(feature = "quic")))]
pub mod quic;
mod rewind;
#[cfg(feature = "tcp")]
#[cfg_attr(docsrs, doc(cfg(feature = "tcp")))]
pub mod tcp;
#[cfg(all(unix, feature = "unix"))]
#[cfg_attr(docsrs, doc(cfg(feature = "unix")))]
pub mod unix;

pub use address::{Address, TransportKind};
pub use io::{BoxIo, Io};
pub use listener::{Connection, Listener, ListenerExt, ListenerFactory, ListenerOnce};
pub use permissions::{parse_socket_mode, SocketGroup, SocketGroupError};
pub use rewind::Rewind;
