use tokio::io::{AsyncRead, AsyncWrite};

/// A duplex byte stream: what a transport hands out and what connection
/// middleware (TLS, logging) wraps.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed duplex byte stream.
pub type BoxIo = Box<dyn Io>;
