//! The request body type every protocol hands to the application.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// A boxed error, as carried by application results and response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why reading a request body failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The client closed the connection (or reset the stream) before the body was complete.
    #[error("the client disconnected before the request body was complete")]
    ConnectionAborted,
    /// The body is larger than the request's body-size limit (the client gets 413).
    #[error("the request body is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in force.
        limit: u64,
    },
    /// The body's framing is malformed (the client gets 400).
    #[error("malformed request body: {0}")]
    Malformed(&'static str),
    /// The body arrived too slowly, or the server is shutting down.
    #[error("timed out reading the request body")]
    Timeout,
    /// The request already completed (its response was sent), so the body
    /// can no longer be read.
    #[error("the request has completed; its body can no longer be read")]
    RequestCompleted,
    /// An I/O error on the connection.
    #[error("I/O error while reading the request body: {0}")]
    Io(#[from] io::Error),
}

/// Where a streaming request body comes from: implemented by each protocol
/// driver (HTTP/1 reads it from the connection, HTTP/2 from a stream).
///
/// `token` is the value the body was created with
/// ([`RequestBody::from_source`]): one source can serve the bodies of many
/// requests in turn (say, one per request on a keep-alive connection) without
/// an allocation per request, and refuses a stale body whose request has
/// completed with [`BodyError::RequestCompleted`].
pub trait BodySource: Send + Sync + 'static {
    /// Poll the next frame (data or trailers); `None` at the end.
    fn poll_frame(
        &self,
        token: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>>;
    /// Whether the body is known to be complete.
    fn is_end_stream(&self, token: u64) -> bool;
    /// Bounds on the remaining length.
    fn size_hint(&self, token: u64) -> SizeHint;
}

/// The body of a request, as the application receives it.
///
/// Implements [`http_body::Body`], so `http_body_util::BodyExt::collect` and
/// friends work on it. Reading it for the first time is what sends
/// `100 Continue` to a client that asked for it.
pub struct RequestBody {
    inner: Inner,
}

enum Inner {
    Empty,
    Full(Option<Bytes>),
    Source(Arc<dyn BodySource>, u64),
}

impl RequestBody {
    /// An empty body.
    pub fn empty() -> Self {
        RequestBody {
            inner: Inner::Empty,
        }
    }

    /// A body of the given bytes (for tests and adapters).
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        RequestBody {
            inner: Inner::Full(Some(bytes.into())),
        }
    }

    /// A streaming body read from `source`, identified there by `token`.
    pub fn from_source(source: Arc<dyn BodySource>, token: u64) -> Self {
        RequestBody {
            inner: Inner::Source(source, token),
        }
    }
}

impl Default for RequestBody {
    fn default() -> Self {
        RequestBody::empty()
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.inner {
            Inner::Empty => "empty",
            Inner::Full(_) => "full",
            Inner::Source(..) => "streaming",
        };
        f.debug_struct("RequestBody").field("kind", &kind).finish()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.get_mut().inner {
            Inner::Empty => Poll::Ready(None),
            Inner::Full(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Inner::Source(s, t) => s.poll_frame(*t, cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Empty => true,
            Inner::Full(b) => b.as_ref().is_none_or(|b| b.is_empty()),
            Inner::Source(s, t) => s.is_end_stream(*t),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Empty => SizeHint::with_exact(0),
            Inner::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Source(s, t) => s.size_hint(*t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn full_and_empty_bodies() {
        let b = RequestBody::from_bytes("abc");
        assert_eq!(b.size_hint().exact(), Some(3));
        assert!(!b.is_end_stream());
        let bytes = b.collect().await.expect("collect").to_bytes();
        assert_eq!(&bytes[..], b"abc");
        let e = RequestBody::empty();
        assert!(e.is_end_stream());
        assert!(e.collect().await.expect("collect").to_bytes().is_empty());
    }
}
