//! Multiplexed transports (feature `multiplexed`): a connection yields
//! streams, not one byte stream. This is the transport kind QUIC needs, the
//! counterpart of Kestrel's `IMultiplexedConnectionListenerFactory`,
//! `IMultiplexedConnectionListener` and `MultiplexedConnectionContext`.
//!
//! * A [`MultiplexedListener`] accepts [`MultiplexedConnection`]s: addresses,
//!   the handshake's [`HandshakeInfo`] (ALPN, SNI, client certificates: QUIC
//!   always runs TLS 1.3 inside the transport), and the connection's
//!   [`MultiplexedStreams`].
//! * [`MultiplexedStreams`] accepts the streams the peer opens
//!   (bidirectional: [`BidiStream`]; unidirectional: a [`RecvStream`]), hands
//!   out [`StreamOpener`]s for the streams this end opens, and closes the
//!   whole connection with an application error code.
//! * A [`SendStream`] writes bytes, then finishes (FIN) or resets with an
//!   error code; a [`RecvStream`] yields chunks of bytes until the end, or
//!   asks the peer to stop sending with an error code. Each has its
//!   [`StreamId`] (initiator and direction in the two low bits, as in QUIC).
//! * Errors are typed: [`ConnectionError`] (closed by the peer with a code,
//!   closed locally, closed by the transport, timed out) and [`StreamError`]
//!   (reset, stopped, or the connection's error).
//!
//! The traits are object-safe and the connection holds them boxed, like
//! [`Connection`](crate::Connection) holds a [`BoxIo`](crate::BoxIo), so a
//! server takes any implementation without being generic over it. The QUIC
//! implementation is `crate::quic` (feature `quic`, on quinn); [`memory`] is
//! an in-memory one, for tests.
//!
//! # Mapping to Kestrel
//!
//! | Kestrel (.NET)                                         | here |
//! |--------------------------------------------------------|------|
//! | `IMultiplexedConnectionListenerFactory.BindAsync`      | whatever builds the [`MultiplexedListener`] |
//! | `IMultiplexedConnectionListener.AcceptAsync`           | [`MultiplexedListener::poll_accept`] |
//! | `MultiplexedConnectionContext.AcceptAsync`             | [`MultiplexedStreams::poll_accept_bidi`], [`MultiplexedStreams::poll_accept_uni`] |
//! | `MultiplexedConnectionContext.ConnectAsync` (outbound unidirectional) | [`StreamOpener::poll_open_uni`] |
//! | `MultiplexedConnectionContext.Abort` + `IProtocolErrorCodeFeature` | [`MultiplexedStreams::close`] with a code |
//! | `IStreamIdFeature`, `IStreamDirectionFeature`          | [`SendStream::id`], [`RecvStream::id`], [`StreamId::direction`] |
//! | `IStreamAbortFeature.AbortRead` / `AbortWrite`          | [`RecvStream::stop_sending`] / [`SendStream::reset`] |
//! | `ITlsConnectionFeature`, `ITlsApplicationProtocolFeature` | [`HandshakeInfo`] |
//!
//! # Mapping to the `h3` crate's `h3::quic` traits
//!
//! An adapter (the future HTTP/3 driver) wraps these types in newtypes that
//! implement h3's traits, one method to one method:
//!
//! | `h3::quic`                                   | here |
//! |----------------------------------------------|------|
//! | `Connection::poll_accept_bidi`               | [`MultiplexedStreams::poll_accept_bidi`] |
//! | `Connection::poll_accept_recv`               | [`MultiplexedStreams::poll_accept_uni`] |
//! | `Connection::opener` → `OpenStreams`          | [`MultiplexedStreams::opener`] → [`StreamOpener`] (cloneable: [`StreamOpener::clone_opener`]) |
//! | `OpenStreams::poll_open_bidi`                | [`StreamOpener::poll_open_bidi`] |
//! | `OpenStreams::poll_open_send`                | [`StreamOpener::poll_open_uni`] |
//! | `OpenStreams::close(code, reason)`           | [`StreamOpener::close`] |
//! | `SendStream::poll_ready` + `send_data(WriteBuf)` | keep the `WriteBuf` in the adapter; `poll_ready` drives [`SendStream::poll_write`] until it is empty |
//! | `SendStream::poll_finish`                    | [`SendStream::poll_finish`] |
//! | `SendStream::reset(code)`                    | [`SendStream::reset`] |
//! | `SendStream::send_id`, `RecvStream::recv_id` | [`SendStream::id`], [`RecvStream::id`] (h3's `StreamId` converts from the `u64`) |
//! | `SendStreamUnframed::poll_send`              | [`SendStream::poll_write`] |
//! | `RecvStream::poll_data` → `Option<Buf>`      | [`RecvStream::poll_data`] → `Option<Bytes>` (`None` after FIN) |
//! | `RecvStream::stop_sending(code)`             | [`RecvStream::stop_sending`] |
//! | `BidiStream::split`                          | [`BidiStream::split`] |
//! | `ConnectionErrorIncoming::ApplicationClose { error_code }` | [`ConnectionError::ApplicationClosed`] (and [`ConnectionError::LocallyClosed`]) |
//! | `ConnectionErrorIncoming::Timeout`           | [`ConnectionError::TimedOut`] |
//! | `ConnectionErrorIncoming::Undefined` / `InternalError` | [`ConnectionError::TransportClosed`] |
//! | `StreamErrorIncoming::StreamTerminated { error_code }` | [`StreamError::Reset`] (reader) and [`StreamError::Stopped`] (writer) |
//! | `StreamErrorIncoming::ConnectionErrorIncoming` | [`StreamError::Connection`] |
//!
//! h3 is generic over a `B: Buf` for outgoing data; here writes take `&[u8]`
//! (the adapter writes `WriteBuf::chunk()` and advances by what was taken),
//! and reads hand out [`Bytes`] without copying.

mod error;
pub mod memory;
mod stream_id;

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};

use crate::{Address, TransportKind};

pub use error::{ConnectionError, StreamError};
pub use stream_id::{Direction, Side, StreamId};

/// The sending half of a stream.
///
/// Dropping it without [`poll_finish`](SendStream::poll_finish) or
/// [`reset`](SendStream::reset) finishes it (as quinn does): the peer reads
/// the bytes written so far, then the end of the stream.
pub trait SendStream: Send + Unpin + 'static {
    /// The stream's id.
    fn id(&self) -> StreamId;

    /// Write some of `buf`, returning how many bytes were taken (at least
    /// one when `buf` is not empty). `Pending` while the stream's flow
    /// control window is full.
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, StreamError>>;

    /// Finish the stream (QUIC `FIN`): the peer reads the end after the
    /// bytes already written.
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamError>>;

    /// Abandon the stream with an application error code (QUIC
    /// `RESET_STREAM`): the peer's reads fail with [`StreamError::Reset`].
    fn reset(&mut self, code: u64);
}

/// The receiving half of a stream.
///
/// Dropping it before the end asks the peer to stop sending with code 0.
pub trait RecvStream: Send + Unpin + 'static {
    /// The stream's id.
    fn id(&self) -> StreamId;

    /// The next chunk of bytes, or `None` once the peer finished the stream
    /// and everything was read.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamError>>;

    /// Read no more and ask the peer to stop sending, with an application
    /// error code (QUIC `STOP_SENDING`): its writes fail with
    /// [`StreamError::Stopped`].
    fn stop_sending(&mut self, code: u64);
}

/// A boxed [`SendStream`].
pub type BoxSendStream = Box<dyn SendStream>;
/// A boxed [`RecvStream`].
pub type BoxRecvStream = Box<dyn RecvStream>;

impl fmt::Debug for dyn SendStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendStream")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for dyn RecvStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvStream")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for dyn StreamOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamOpener").finish_non_exhaustive()
    }
}

impl fmt::Debug for dyn MultiplexedStreams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiplexedStreams").finish_non_exhaustive()
    }
}

/// A bidirectional stream: a sending and a receiving half with the same id.
pub struct BidiStream {
    /// The sending half.
    pub send: BoxSendStream,
    /// The receiving half.
    pub recv: BoxRecvStream,
}

impl BidiStream {
    /// The stream's id.
    pub fn id(&self) -> StreamId {
        self.recv.id()
    }

    /// The two halves, to drive them from different tasks.
    pub fn split(self) -> (BoxSendStream, BoxRecvStream) {
        (self.send, self.recv)
    }
}

impl fmt::Debug for BidiStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BidiStream")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

/// Opens streams on a connection. A connection hands out as many as needed
/// ([`MultiplexedStreams::opener`]); they are cheap to clone.
pub trait StreamOpener: Send + Sync + 'static {
    /// Open a bidirectional stream. `Pending` while the peer's stream limit
    /// is reached.
    fn poll_open_bidi(&mut self, cx: &mut Context<'_>)
        -> Poll<Result<BidiStream, ConnectionError>>;

    /// Open a unidirectional stream (this end sends, the peer receives).
    /// `Pending` while the peer's stream limit is reached.
    fn poll_open_uni(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BoxSendStream, ConnectionError>>;

    /// Close the whole connection now with an application error code and a
    /// reason phrase: every stream of both ends fails, and the peer sees
    /// [`ConnectionError::ApplicationClosed`] with this code.
    fn close(&mut self, code: u64, reason: &[u8]);

    /// Another opener for the same connection.
    fn clone_opener(&self) -> Box<dyn StreamOpener>;
}

impl Clone for Box<dyn StreamOpener> {
    fn clone(&self) -> Self {
        self.clone_opener()
    }
}

/// The streams of one multiplexed connection: what the peer opens, and
/// openers for what this end opens.
///
/// Dropping it, and every [`StreamOpener`] of the connection, closes the
/// connection with code 0 if nothing closed it before.
pub trait MultiplexedStreams: Send + 'static {
    /// Accept the next bidirectional stream the peer opened. Fails with the
    /// connection's [`ConnectionError`] once it is closed.
    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream, ConnectionError>>;

    /// Accept the next unidirectional stream the peer opened. Fails with the
    /// connection's [`ConnectionError`] once it is closed.
    fn poll_accept_uni(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BoxRecvStream, ConnectionError>>;

    /// An opener for streams of this end.
    fn opener(&self) -> Box<dyn StreamOpener>;

    /// Close the connection now with an application error code and a reason
    /// phrase (see [`StreamOpener::close`]).
    fn close(&mut self, code: u64, reason: &[u8]);

    /// Ready with the reason once the connection is closed, by either end.
    fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<ConnectionError>;
}

/// What the connection's handshake settled (QUIC always runs TLS 1.3): the
/// counterpart of Kestrel's `ITlsConnectionFeature` and
/// `ITlsApplicationProtocolFeature` on a multiplexed connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandshakeInfo {
    /// The ALPN protocol both ends agreed on (`h3` for HTTP/3).
    pub alpn_protocol: Option<Bytes>,
    /// The server name the client asked for (SNI).
    pub server_name: Option<String>,
    /// The client's certificate chain (DER, leaf first), if it sent one.
    pub peer_certificates: Vec<Bytes>,
}

impl HandshakeInfo {
    /// A handshake that agreed on `alpn` (no SNI, no client certificate).
    pub fn with_alpn(alpn: impl Into<Bytes>) -> HandshakeInfo {
        HandshakeInfo {
            alpn_protocol: Some(alpn.into()),
            ..HandshakeInfo::default()
        }
    }

    /// Set the server name (SNI).
    pub fn server_name(mut self, name: impl Into<String>) -> HandshakeInfo {
        self.server_name = Some(name.into());
        self
    }

    /// Set the client's certificate chain (DER, leaf first).
    pub fn peer_certificates(mut self, chain: Vec<Bytes>) -> HandshakeInfo {
        self.peer_certificates = chain;
        self
    }
}

/// One accepted multiplexed connection: its streams plus where it came from
/// and what its handshake settled.
pub struct MultiplexedConnection {
    /// The connection's streams.
    pub streams: Box<dyn MultiplexedStreams>,
    /// The local address.
    pub local_addr: Address,
    /// The peer's address.
    pub remote_addr: Address,
    /// What transport this came over.
    pub kind: TransportKind,
    /// ALPN, SNI and client certificates of the handshake.
    pub handshake: HandshakeInfo,
}

impl fmt::Debug for MultiplexedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiplexedConnection")
            .field("local_addr", &self.local_addr)
            .field("remote_addr", &self.remote_addr)
            .field("kind", &self.kind)
            .field("handshake", &self.handshake)
            .finish_non_exhaustive()
    }
}

/// A bound listener of a multiplexed transport (Kestrel's
/// `IMultiplexedConnectionListener`), the counterpart of
/// [`Listener`](crate::Listener) for transports whose connections carry
/// streams (QUIC).
///
/// As for [`Listener`](crate::Listener), per-connection failures (a failed
/// handshake) are the implementation's to skip; the errors it returns are
/// logged by the server, which polls again. Dropping the listener unbinds it.
pub trait MultiplexedListener: Send + 'static {
    /// Poll for the next connection (its handshake done).
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<MultiplexedConnection>>;

    /// The address this listener is bound to.
    fn local_addr(&self) -> &Address;
}

impl<L: MultiplexedListener + ?Sized> MultiplexedListener for Box<L> {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<MultiplexedConnection>> {
        (**self).poll_accept(cx)
    }

    fn local_addr(&self) -> &Address {
        (**self).local_addr()
    }
}

/// `async` forms of the [`MultiplexedListener`] methods.
pub trait MultiplexedListenerExt: MultiplexedListener {
    /// Accept the next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<MultiplexedConnection>> + Send + '_
    where
        Self: Sized,
    {
        poll_fn(move |cx| self.poll_accept(cx))
    }
}

impl<L: MultiplexedListener + ?Sized> MultiplexedListenerExt for L {}

/// `async` forms of the [`MultiplexedStreams`] methods.
pub trait MultiplexedStreamsExt: MultiplexedStreams {
    /// Accept the next bidirectional stream the peer opened.
    fn accept_bidi(
        &mut self,
    ) -> impl Future<Output = Result<BidiStream, ConnectionError>> + Send + '_ {
        poll_fn(move |cx| self.poll_accept_bidi(cx))
    }

    /// Accept the next unidirectional stream the peer opened.
    fn accept_uni(
        &mut self,
    ) -> impl Future<Output = Result<BoxRecvStream, ConnectionError>> + Send + '_ {
        poll_fn(move |cx| self.poll_accept_uni(cx))
    }

    /// Wait until the connection is closed, by either end.
    fn closed(&mut self) -> impl Future<Output = ConnectionError> + Send + '_ {
        poll_fn(move |cx| self.poll_closed(cx))
    }
}

impl<S: MultiplexedStreams + ?Sized> MultiplexedStreamsExt for S {}

/// `async` forms of the [`StreamOpener`] methods.
pub trait StreamOpenerExt: StreamOpener {
    /// Open a bidirectional stream.
    fn open_bidi(
        &mut self,
    ) -> impl Future<Output = Result<BidiStream, ConnectionError>> + Send + '_ {
        poll_fn(move |cx| self.poll_open_bidi(cx))
    }

    /// Open a unidirectional stream.
    fn open_uni(
        &mut self,
    ) -> impl Future<Output = Result<BoxSendStream, ConnectionError>> + Send + '_ {
        poll_fn(move |cx| self.poll_open_uni(cx))
    }
}

impl<O: StreamOpener + ?Sized> StreamOpenerExt for O {}

/// `async` forms of the [`SendStream`] methods.
pub trait SendStreamExt: SendStream {
    /// Write all of `buf`.
    fn write_all<'a>(
        &'a mut self,
        mut buf: &'a [u8],
    ) -> impl Future<Output = Result<(), StreamError>> + Send + 'a {
        poll_fn(move |cx| {
            while !buf.is_empty() {
                match self.poll_write(cx, buf) {
                    Poll::Ready(Ok(n)) => buf = &buf[n.min(buf.len())..],
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            Poll::Ready(Ok(()))
        })
    }

    /// Finish the stream (FIN).
    fn finish(&mut self) -> impl Future<Output = Result<(), StreamError>> + Send + '_ {
        poll_fn(move |cx| self.poll_finish(cx))
    }
}

impl<S: SendStream + ?Sized> SendStreamExt for S {}

/// `async` forms of the [`RecvStream`] methods.
pub trait RecvStreamExt: RecvStream {
    /// The next chunk, or `None` at the end of the stream.
    fn data(&mut self) -> impl Future<Output = Result<Option<Bytes>, StreamError>> + Send + '_ {
        poll_fn(move |cx| self.poll_data(cx))
    }

    /// Read to the end of the stream, failing with an
    /// [`io::ErrorKind::InvalidData`] error past `limit` bytes.
    fn read_to_end(&mut self, limit: usize) -> impl Future<Output = io::Result<Bytes>> + Send + '_ {
        async move {
            let mut out = BytesMut::new();
            while let Some(chunk) = self.data().await? {
                if out.len() + chunk.len() > limit {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("stream {} is longer than {limit} bytes", self.id()),
                    ));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(out.freeze())
        }
    }
}

impl<S: RecvStream + ?Sized> RecvStreamExt for S {}
