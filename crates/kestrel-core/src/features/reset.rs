//! The stream-reset feature (Kestrel's `IHttpResetFeature`), for protocols
//! whose requests are streams (HTTP/2, HTTP/3).

use std::fmt;
use std::sync::Arc;

/// What a protocol driver gives [`StreamReset`]: its per-stream state.
pub trait ResetSource: Send + Sync + 'static {
    /// Reset the stream with the protocol's error `code`; nothing once the
    /// stream has completed.
    fn reset(&self, code: u32);
    /// The stream's id.
    fn stream_id(&self) -> u64;
}

/// Lets the app reset its request's stream (Kestrel's `IHttpResetFeature`):
/// present on HTTP/2 (and HTTP/3) requests, absent on HTTP/1.
///
/// ```
/// # use http::{Request, Response};
/// # use kestrel_core::{RequestBody, RequestFeaturesExt};
/// async fn app(req: Request<RequestBody>) -> Response<String> {
///     if let Some(reset) = req.features().and_then(|f| f.reset()) {
///         reset.reset(0x8); // CANCEL
///     }
///     Response::new(String::new()) // discarded once the stream is reset
/// }
/// ```
#[derive(Clone)]
pub struct StreamReset {
    source: Arc<dyn ResetSource>,
}

impl StreamReset {
    /// The feature over a driver's stream state.
    pub fn new(source: Arc<dyn ResetSource>) -> Self {
        StreamReset { source }
    }

    /// Reset the stream with the protocol's error `code` (HTTP/2: RST_STREAM):
    /// the client sees the stream fail, nothing more of the response is sent,
    /// and the application's response, if it returns one, is discarded. Does
    /// nothing once the stream has completed.
    pub fn reset(&self, code: u32) {
        self.source.reset(code);
    }

    /// The stream id.
    pub fn stream_id(&self) -> u64 {
        self.source.stream_id()
    }
}

impl fmt::Debug for StreamReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReset")
            .field("stream_id", &self.stream_id())
            .finish()
    }
}
