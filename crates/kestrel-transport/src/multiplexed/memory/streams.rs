//! The streams of an in-memory connection: the acceptor, the opener and the
//! send and receive halves, over the connection's shared state.

use super::*;

/// A stream half's reference to its connection and end (uncounted).
#[derive(Debug)]
pub(super) struct StreamRef {
    shared: Arc<Shared>,
    side: Side,
}

/// One end of an in-memory multiplexed connection (made by
/// [`connection_pair`] or a [`MemoryMultiplexedConnector`]).
#[derive(Debug)]
pub struct MemoryStreams {
    pub(super) end: EndRef,
}

impl MemoryStreams {
    /// Which end this is.
    pub fn side(&self) -> Side {
        self.end.side
    }
}

impl MultiplexedStreams for MemoryStreams {
    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream, ConnectionError>> {
        let side = self.end.side;
        let mut state = self.end.shared.lock();
        if let Some(e) = state.error_for(side) {
            return Poll::Ready(Err(e));
        }
        let end = state.end(side);
        match end.incoming_bidi.pop_front() {
            Some(stream) => Poll::Ready(Ok(stream)),
            None => {
                end.accept_bidi = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn poll_accept_uni(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BoxRecvStream, ConnectionError>> {
        let side = self.end.side;
        let mut state = self.end.shared.lock();
        if let Some(e) = state.error_for(side) {
            return Poll::Ready(Err(e));
        }
        let end = state.end(side);
        match end.incoming_uni.pop_front() {
            Some(stream) => Poll::Ready(Ok(stream)),
            None => {
                end.accept_uni = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn opener(&self) -> Box<dyn StreamOpener> {
        Box::new(MemoryOpener {
            end: self.end.another(),
        })
    }

    fn close(&mut self, code: u64, reason: &[u8]) {
        self.end.close(code, reason);
    }

    fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<ConnectionError> {
        let side = self.end.side;
        let mut state = self.end.shared.lock();
        match state.error_for(side) {
            Some(e) => Poll::Ready(e),
            None => {
                state.end(side).closed = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Opens streams on one end of an in-memory connection.
#[derive(Debug)]
pub(super) struct MemoryOpener {
    end: EndRef,
}

impl StreamOpener for MemoryOpener {
    fn poll_open_bidi(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream, ConnectionError>> {
        Poll::Ready(
            self.end
                .open(Direction::Bidirectional)
                .and_then(|(_, recv, send)| {
                    // A bidirectional open always has a receiving half.
                    recv.map(|recv| BidiStream { send, recv })
                        .ok_or(ConnectionError::TransportClosed { code: 0x01 })
                }),
        )
    }

    fn poll_open_uni(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<Result<BoxSendStream, ConnectionError>> {
        Poll::Ready(
            self.end
                .open(Direction::Unidirectional)
                .map(|(_, _, send)| send),
        )
    }

    fn close(&mut self, code: u64, reason: &[u8]) {
        self.end.close(code, reason);
    }

    fn clone_opener(&self) -> Box<dyn StreamOpener> {
        Box::new(MemoryOpener {
            end: self.end.another(),
        })
    }
}

/// The sending half of an in-memory stream.
#[derive(Debug)]
pub(super) struct MemorySendStream {
    end: StreamRef,
    id: StreamId,
}

impl MemorySendStream {
    /// The half of `side` on an already inserted pipe.
    pub(super) fn new(shared: Arc<Shared>, side: Side, id: StreamId) -> MemorySendStream {
        MemorySendStream {
            end: StreamRef { shared, side },
            id,
        }
    }
}

impl SendStream for MemorySendStream {
    fn id(&self) -> StreamId {
        self.id
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, StreamError>> {
        let side = self.end.side;
        let mut state = self.end.shared.lock();
        if let Some(e) = state.error_for(side) {
            return Poll::Ready(Err(e.into()));
        }
        let capacity = state.capacity;
        let Some(pipe) = state.pipe(self.id, side) else {
            return Poll::Ready(Err(StreamError::ClosedStream));
        };
        if let Some(code) = pipe.stopped {
            return Poll::Ready(Err(StreamError::Stopped { code }));
        }
        if pipe.writer != Writer::Open {
            return Poll::Ready(Err(StreamError::ClosedStream));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if pipe.buffered >= capacity {
            pipe.writer_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(capacity - pipe.buffered);
        pipe.chunks.push_back(Bytes::copy_from_slice(&buf[..n]));
        pipe.buffered += n;
        pipe.wake_reader();
        Poll::Ready(Ok(n))
    }

    fn poll_finish(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), StreamError>> {
        let side = self.end.side;
        let mut state = self.end.shared.lock();
        if let Some(e) = state.error_for(side) {
            return Poll::Ready(Err(e.into()));
        }
        let Some(pipe) = state.pipe(self.id, side) else {
            return Poll::Ready(Err(StreamError::ClosedStream));
        };
        if let Some(code) = pipe.stopped {
            return Poll::Ready(Err(StreamError::Stopped { code }));
        }
        match pipe.writer {
            Writer::Open => {
                pipe.writer = Writer::Finished;
                pipe.wake_reader();
                Poll::Ready(Ok(()))
            }
            Writer::Finished => Poll::Ready(Ok(())),
            Writer::Reset => Poll::Ready(Err(StreamError::ClosedStream)),
        }
    }

    fn reset(&mut self, code: u64) {
        let side = self.end.side;
        let mut state = self.end.shared.lock();
        if let Some(pipe) = state.pipe(self.id, side) {
            if pipe.writer != Writer::Reset && pipe.reader == Reader::Open {
                pipe.writer = Writer::Reset;
                pipe.reset = Some(code);
                pipe.chunks.clear();
                pipe.buffered = 0;
                pipe.wake_reader();
            }
        }
    }
}

impl Drop for MemorySendStream {
    fn drop(&mut self) {
        let side = self.end.side;
        let mut state = self.end.shared.lock();
        if let Some(pipe) = state.pipe(self.id, side) {
            // Dropped without finish or reset: finish (as quinn does).
            if pipe.writer == Writer::Open {
                pipe.writer = Writer::Finished;
                pipe.wake_reader();
            }
            pipe.writer_gone = true;
        }
        state.drop_pipe_if_unused(self.id, side);
    }
}

/// The receiving half of an in-memory stream.
#[derive(Debug)]
pub(super) struct MemoryRecvStream {
    end: StreamRef,
    id: StreamId,
    sender: Side,
}

impl MemoryRecvStream {
    /// The half of `side` reading what `sender` writes on `id` (the pipe
    /// must already be inserted).
    pub(super) fn new(
        shared: Arc<Shared>,
        side: Side,
        id: StreamId,
        sender: Side,
    ) -> MemoryRecvStream {
        MemoryRecvStream {
            end: StreamRef { shared, side },
            id,
            sender,
        }
    }

    /// Stop reading: the writer's next write fails with `code`.
    fn stop(&mut self, code: u64) {
        let mut state = self.end.shared.lock();
        if let Some(pipe) = state.pipe(self.id, self.sender) {
            if pipe.reader == Reader::Open {
                pipe.reader = Reader::Stopped;
                if pipe.writer != Writer::Reset {
                    pipe.stopped = Some(code);
                }
                pipe.chunks.clear();
                pipe.buffered = 0;
                pipe.wake_writer();
            }
        }
    }
}

impl RecvStream for MemoryRecvStream {
    fn id(&self) -> StreamId {
        self.id
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamError>> {
        let side = self.end.side;
        let mut state = self.end.shared.lock();
        if let Some(e) = state.error_for(side) {
            return Poll::Ready(Err(e.into()));
        }
        let Some(pipe) = state.pipe(self.id, self.sender) else {
            return Poll::Ready(Err(StreamError::ClosedStream));
        };
        if pipe.reader == Reader::Stopped {
            return Poll::Ready(Err(StreamError::ClosedStream));
        }
        if let Some(code) = pipe.reset {
            pipe.reader = Reader::Done;
            return Poll::Ready(Err(StreamError::Reset { code }));
        }
        if let Some(chunk) = pipe.chunks.pop_front() {
            pipe.buffered -= chunk.len();
            pipe.wake_writer();
            return Poll::Ready(Ok(Some(chunk)));
        }
        if pipe.writer == Writer::Finished {
            pipe.reader = Reader::Done;
            return Poll::Ready(Ok(None));
        }
        pipe.reader_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn stop_sending(&mut self, code: u64) {
        self.stop(code);
    }
}

impl Drop for MemoryRecvStream {
    fn drop(&mut self) {
        // Dropped before the end: ask the peer to stop with code 0.
        self.stop(0);
        let mut state = self.end.shared.lock();
        if let Some(pipe) = state.pipe(self.id, self.sender) {
            pipe.reader_gone = true;
        }
        state.drop_pipe_if_unused(self.id, self.sender);
    }
}
