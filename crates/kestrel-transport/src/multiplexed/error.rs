//! Why a multiplexed connection or one of its streams ended.

use std::io;

use bytes::Bytes;

/// Why a multiplexed connection is closed, as its streams and acceptors
/// report it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The peer closed the connection with an application error code
    /// (QUIC `CONNECTION_CLOSE` of type 0x1d; for HTTP/3 an `H3_*` code).
    #[error("the peer closed the connection (application error code {code:#x})")]
    ApplicationClosed {
        /// The application error code.
        code: u64,
        /// The peer's reason phrase (may be empty).
        reason: Bytes,
    },
    /// This end closed the connection (with [`MultiplexedStreams::close`] or
    /// [`StreamOpener::close`]).
    ///
    /// [`MultiplexedStreams::close`]: super::MultiplexedStreams::close
    /// [`StreamOpener::close`]: super::StreamOpener::close
    #[error("the connection was closed locally (application error code {code:#x})")]
    LocallyClosed {
        /// The application error code this end sent.
        code: u64,
    },
    /// The transport closed the connection (QUIC `CONNECTION_CLOSE` of type
    /// 0x1c: a protocol violation, a failed handshake, …).
    #[error("the transport closed the connection (transport error code {code:#x})")]
    TransportClosed {
        /// The transport error code.
        code: u64,
    },
    /// The idle timeout elapsed.
    #[error("the connection timed out")]
    TimedOut,
}

impl ConnectionError {
    /// The error code carried by the close, if any.
    pub fn code(&self) -> Option<u64> {
        match self {
            ConnectionError::ApplicationClosed { code, .. }
            | ConnectionError::LocallyClosed { code }
            | ConnectionError::TransportClosed { code } => Some(*code),
            ConnectionError::TimedOut => None,
        }
    }
}

impl From<ConnectionError> for io::Error {
    fn from(e: ConnectionError) -> io::Error {
        let kind = match e {
            ConnectionError::TimedOut => io::ErrorKind::TimedOut,
            ConnectionError::LocallyClosed { .. } => io::ErrorKind::NotConnected,
            _ => io::ErrorKind::ConnectionAborted,
        };
        io::Error::new(kind, e)
    }
}

/// Why a stream operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The peer abandoned its sending side (QUIC `RESET_STREAM`); the bytes
    /// not yet read are lost. Seen by the reader.
    #[error("the peer reset the stream (error code {code:#x})")]
    Reset {
        /// The peer's error code.
        code: u64,
    },
    /// The peer will read no more (QUIC `STOP_SENDING`). Seen by the writer.
    #[error("the peer stopped reading the stream (error code {code:#x})")]
    Stopped {
        /// The peer's error code.
        code: u64,
    },
    /// This end already finished or reset its sending side, or stopped
    /// reading.
    #[error("the stream was already finished, reset or stopped by this end")]
    ClosedStream,
    /// The whole connection is closed.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
}

impl StreamError {
    /// The error code of a reset, a stop or a connection close, if any.
    pub fn code(&self) -> Option<u64> {
        match self {
            StreamError::Reset { code } | StreamError::Stopped { code } => Some(*code),
            StreamError::ClosedStream => None,
            StreamError::Connection(e) => e.code(),
        }
    }
}

impl From<StreamError> for io::Error {
    fn from(e: StreamError) -> io::Error {
        match e {
            StreamError::Connection(c) => c.into(),
            StreamError::Reset { .. } => io::Error::new(io::ErrorKind::ConnectionReset, e),
            StreamError::Stopped { .. } => io::Error::new(io::ErrorKind::BrokenPipe, e),
            StreamError::ClosedStream => io::Error::new(io::ErrorKind::NotConnected, e),
        }
    }
}
