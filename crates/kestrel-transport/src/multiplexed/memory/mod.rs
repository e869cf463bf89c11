//! An in-memory multiplexed transport: both ends of a connection in one
//! process, for tests of what runs over QUIC (and for embedding).
//!
//! [`connection_pair`] makes a connected client and server end;
//! [`memory_multiplexed_listener`] makes a named [`MultiplexedListener`] and
//! a [`MemoryMultiplexedConnector`] that opens connections to it. Streams
//! behave as QUIC's do: ids follow RFC 9000 (the low bits say who opened the
//! stream and whether it is unidirectional), a finished stream reads to its
//! end, a reset one fails the reader with the code, a stopped one fails the
//! writer with the code, and closing the connection fails every stream and
//! acceptor of both ends, the peer seeing the code and the reason.
//!
//! Each direction of a stream buffers at most the connection's capacity
//! ([`DEFAULT_STREAM_CAPACITY`] unless given): a writer waits until the
//! reader has taken bytes, like QUIC flow control. There is no limit on the
//! number of streams. A stream reaches the peer's acceptor as soon as it is
//! opened (quinn announces it with its first byte).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use kestrel_transport::multiplexed::memory::connection_pair;
//! use kestrel_transport::multiplexed::{
//!     MultiplexedStreams, MultiplexedStreamsExt, RecvStreamExt, SendStreamExt, StreamOpenerExt,
//! };
//!
//! let (client, mut server) = connection_pair();
//! let mut stream = client.opener().open_bidi().await?;
//! stream.send.write_all(b"GET /").await?;
//! stream.send.finish().await?;
//!
//! let mut request = server.accept_bidi().await?;
//! assert_eq!(request.id().as_u64(), 0);
//! assert_eq!(&request.recv.read_to_end(1024).await?[..], b"GET /");
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{
    BidiStream, BoxRecvStream, BoxSendStream, ConnectionError, Direction, HandshakeInfo,
    MultiplexedConnection, MultiplexedListener, MultiplexedStreams, RecvStream, SendStream, Side,
    StreamError, StreamId, StreamOpener,
};
use crate::{Address, TransportKind};

/// How many bytes each direction of a stream buffers before the writer
/// waits, unless [`connection_pair_with_capacity`] says otherwise.
pub const DEFAULT_STREAM_CAPACITY: usize = 64 * 1024;

/// A connected pair of in-memory multiplexed connections: `(client, server)`.
pub fn connection_pair() -> (MemoryStreams, MemoryStreams) {
    connection_pair_with_capacity(DEFAULT_STREAM_CAPACITY)
}

/// As [`connection_pair`], with `capacity` bytes buffered per direction of
/// each stream (at least 1).
pub fn connection_pair_with_capacity(capacity: usize) -> (MemoryStreams, MemoryStreams) {
    let shared = Arc::new(Shared {
        state: Mutex::new(ConnState {
            closed: None,
            ends: [End::default(), End::default()],
            pipes: HashMap::new(),
            capacity: capacity.max(1),
        }),
    });
    let client = MemoryStreams {
        end: EndRef::new(shared.clone(), Side::Client),
    };
    let server = MemoryStreams {
        end: EndRef::new(shared, Side::Server),
    };
    (client, server)
}

/// Create an in-memory multiplexed listener named `name` and a connector for
/// it. As with [`memory_listener`](crate::memory::memory_listener), the
/// queue is unbounded, and connects fail with
/// [`io::ErrorKind::ConnectionRefused`] once the listener is dropped.
pub fn memory_multiplexed_listener(
    name: impl Into<String>,
) -> (MemoryMultiplexedListener, MemoryMultiplexedConnector) {
    let name = name.into();
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = MemoryMultiplexedListener {
        rx,
        local_addr: Address::Memory(name.clone()),
        name: name.clone(),
    };
    (
        listener,
        MemoryMultiplexedConnector {
            tx,
            name,
            next_id: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        },
    )
}

/// Opens connections to a [`MemoryMultiplexedListener`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MemoryMultiplexedConnector {
    tx: mpsc::UnboundedSender<MultiplexedConnection>,
    name: String,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

impl MemoryMultiplexedConnector {
    /// Connect with a handshake that agreed on nothing (no ALPN, no SNI).
    pub fn connect(&self) -> io::Result<MultiplexedConnection> {
        self.connect_with(HandshakeInfo::default())
    }

    /// Connect; the server's end reports `handshake` (say, ALPN `h3`), as
    /// the client's does. The server end's remote address is
    /// `Address::Memory("{name}#{n}")`, `n` counting connections from 1.
    pub fn connect_with(&self, handshake: HandshakeInfo) -> io::Result<MultiplexedConnection> {
        let n = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (client, server) = connection_pair();
        let listener_addr = Address::Memory(self.name.clone());
        let client_addr = Address::Memory(format!("{}#{n}", self.name));
        let server_end = MultiplexedConnection {
            streams: Box::new(server),
            local_addr: listener_addr.clone(),
            remote_addr: client_addr.clone(),
            kind: TransportKind::Memory,
            handshake: handshake.clone(),
        };
        self.tx.send(server_end).map_err(|_| {
            io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("memory multiplexed listener {:?} is gone", self.name),
            )
        })?;
        Ok(MultiplexedConnection {
            streams: Box::new(client),
            local_addr: client_addr,
            remote_addr: listener_addr,
            kind: TransportKind::Memory,
            handshake,
        })
    }
}

/// The listening side of the in-memory multiplexed transport. As the
/// byte-stream [`MemoryListener`](crate::memory::MemoryListener), it stays
/// `Pending` (never fails) once every connector is gone.
#[derive(Debug)]
pub struct MemoryMultiplexedListener {
    rx: mpsc::UnboundedReceiver<MultiplexedConnection>,
    local_addr: Address,
    name: String,
}

impl MemoryMultiplexedListener {
    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl MultiplexedListener for MemoryMultiplexedListener {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<MultiplexedConnection>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(conn)) => Poll::Ready(Ok(conn)),
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    fn local_addr(&self) -> &Address {
        &self.local_addr
    }
}

// ---------------------------------------------------------------------------
// Shared state: one mutex for the whole connection (both ends, every stream).

#[derive(Debug)]
struct Shared {
    state: Mutex<ConnState>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ConnState> {
        // A panic while holding the lock leaves plain data behind: go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug)]
struct Close {
    by: Side,
    code: u64,
    reason: Bytes,
}

#[derive(Debug)]
struct ConnState {
    closed: Option<Close>,
    ends: [End; 2],
    /// One pipe per direction of a stream, keyed by the stream and its sender.
    pipes: HashMap<(StreamId, Side), Pipe>,
    capacity: usize,
}

/// What one end has waiting for it, and the ids of the streams it opens.
#[derive(Debug, Default)]
struct End {
    incoming_bidi: VecDeque<BidiStream>,
    incoming_uni: VecDeque<BoxRecvStream>,
    accept_bidi: Option<Waker>,
    accept_uni: Option<Waker>,
    closed: Option<Waker>,
    next_bidi: u64,
    next_uni: u64,
    /// Live handles of this end (its streams object and openers).
    handles: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    Open,
    Finished,
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    Open,
    /// Read to the end, or saw the reset.
    Done,
    /// Stopped (or dropped) before the end.
    Stopped,
}

/// One direction of one stream.
#[derive(Debug)]
struct Pipe {
    chunks: VecDeque<Bytes>,
    buffered: usize,
    writer: Writer,
    reader: Reader,
    reset: Option<u64>,
    stopped: Option<u64>,
    reader_waker: Option<Waker>,
    writer_waker: Option<Waker>,
    writer_gone: bool,
    reader_gone: bool,
}

impl Pipe {
    fn new() -> Pipe {
        Pipe {
            chunks: VecDeque::new(),
            buffered: 0,
            writer: Writer::Open,
            reader: Reader::Open,
            reset: None,
            stopped: None,
            reader_waker: None,
            writer_waker: None,
            writer_gone: false,
            reader_gone: false,
        }
    }

    fn wake_reader(&mut self) {
        if let Some(w) = self.reader_waker.take() {
            w.wake();
        }
    }

    fn wake_writer(&mut self) {
        if let Some(w) = self.writer_waker.take() {
            w.wake();
        }
    }
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Server => 1,
    }
}

impl ConnState {
    fn end(&mut self, side: Side) -> &mut End {
        &mut self.ends[side_index(side)]
    }

    /// The connection's error as `side` sees it, if it is closed.
    fn error_for(&self, side: Side) -> Option<ConnectionError> {
        self.closed.as_ref().map(|c| {
            if c.by == side {
                ConnectionError::LocallyClosed { code: c.code }
            } else {
                ConnectionError::ApplicationClosed {
                    code: c.code,
                    reason: c.reason.clone(),
                }
            }
        })
    }

    /// Close the connection (the first close wins). What it returns (wakers
    /// to wake, streams never accepted) must be dropped after the lock is
    /// released: a stream's drop takes the lock.
    fn close(&mut self, by: Side, code: u64, reason: &[u8]) -> Leftovers {
        let mut left = Leftovers::default();
        if self.closed.is_some() {
            return left;
        }
        self.closed = Some(Close {
            by,
            code,
            reason: Bytes::copy_from_slice(reason),
        });
        for end in &mut self.ends {
            left.bidi.extend(end.incoming_bidi.drain(..));
            left.uni.extend(end.incoming_uni.drain(..));
            left.wakers.extend(end.accept_bidi.take());
            left.wakers.extend(end.accept_uni.take());
            left.wakers.extend(end.closed.take());
        }
        for pipe in self.pipes.values_mut() {
            pipe.chunks.clear();
            pipe.buffered = 0;
            left.wakers.extend(pipe.reader_waker.take());
            left.wakers.extend(pipe.writer_waker.take());
        }
        left
    }

    fn pipe(&mut self, id: StreamId, sender: Side) -> Option<&mut Pipe> {
        self.pipes.get_mut(&(id, sender))
    }

    fn drop_pipe_if_unused(&mut self, id: StreamId, sender: Side) {
        if self
            .pipes
            .get(&(id, sender))
            .is_some_and(|p| p.writer_gone && p.reader_gone)
        {
            self.pipes.remove(&(id, sender));
        }
    }
}

/// What a close leaves to do once the lock is released.
#[derive(Default)]
struct Leftovers {
    wakers: Vec<Waker>,
    bidi: Vec<BidiStream>,
    uni: Vec<BoxRecvStream>,
}

impl Leftovers {
    fn finish(self) {
        for w in self.wakers {
            w.wake();
        }
        drop(self.bidi);
        drop(self.uni);
    }
}

/// A counted handle on one end of a connection (its streams object and
/// openers): when the last one is dropped and the connection is still open,
/// the end closes it with code 0, as a QUIC connection whose handles are
/// all gone. Stream halves do not count.
#[derive(Debug)]
struct EndRef {
    shared: Arc<Shared>,
    side: Side,
}

impl EndRef {
    fn new(shared: Arc<Shared>, side: Side) -> EndRef {
        shared.lock().end(side).handles += 1;
        EndRef { shared, side }
    }

    fn another(&self) -> EndRef {
        EndRef::new(self.shared.clone(), self.side)
    }

    fn close(&self, code: u64, reason: &[u8]) {
        let left = self.shared.lock().close(self.side, code, reason);
        left.finish();
    }

    /// Open a stream of `direction` from this end: the peer's halves are
    /// queued for its acceptor, this end's are returned.
    fn open(
        &self,
        direction: Direction,
    ) -> Result<(StreamId, Option<BoxRecvStream>, BoxSendStream), ConnectionError> {
        let side = self.side;
        let peer = side.peer();
        let mut state = self.shared.lock();
        if let Some(e) = state.error_for(side) {
            return Err(e);
        }
        let end = state.end(side);
        let index = match direction {
            Direction::Bidirectional => &mut end.next_bidi,
            Direction::Unidirectional => &mut end.next_uni,
        };
        let id =
            StreamId::new(side, direction, *index).ok_or(ConnectionError::TransportClosed {
                // STREAM_LIMIT_ERROR: no stream id is left.
                code: 0x04,
            })?;
        *index += 1;
        state.pipes.insert((id, side), Pipe::new());
        let peer_recv: BoxRecvStream =
            Box::new(MemoryRecvStream::new(self.shared.clone(), peer, id, side));
        let (local_recv, waker) = match direction {
            Direction::Bidirectional => {
                state.pipes.insert((id, peer), Pipe::new());
                let peer_send: BoxSendStream =
                    Box::new(MemorySendStream::new(self.shared.clone(), peer, id));
                let local_recv: BoxRecvStream =
                    Box::new(MemoryRecvStream::new(self.shared.clone(), side, id, peer));
                let peer_end = state.end(peer);
                peer_end.incoming_bidi.push_back(BidiStream {
                    send: peer_send,
                    recv: peer_recv,
                });
                (Some(local_recv), peer_end.accept_bidi.take())
            }
            Direction::Unidirectional => {
                let peer_end = state.end(peer);
                peer_end.incoming_uni.push_back(peer_recv);
                (None, peer_end.accept_uni.take())
            }
        };
        let local_send: BoxSendStream =
            Box::new(MemorySendStream::new(self.shared.clone(), side, id));
        drop(state);
        if let Some(w) = waker {
            w.wake();
        }
        Ok((id, local_recv, local_send))
    }
}

impl Drop for EndRef {
    fn drop(&mut self) {
        let left = {
            let mut state = self.shared.lock();
            let end = state.end(self.side);
            end.handles = end.handles.saturating_sub(1);
            if end.handles == 0 {
                state.close(self.side, 0, b"")
            } else {
                Leftovers::default()
            }
        };
        left.finish();
    }
}

mod streams;

pub use streams::MemoryStreams;
use streams::*;
