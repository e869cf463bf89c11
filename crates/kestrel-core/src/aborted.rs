//! The request-aborted signal (Kestrel's `HttpContext.RequestAborted`, from
//! `IHttpRequestLifetimeFeature`): a request's [`RequestAborted`]
//! ([`RequestFeatures::aborted`](crate::RequestFeatures::aborted)) tells the app, and any task it spawned for the request, that
//! the client went away before the request completed.
//!
//! ```no_run
//! # use http::{Request, Response};
//! # use kestrel_core::{RequestBody, RequestFeaturesExt};
//! # async fn app(req: Request<RequestBody>) -> Response<String> {
//! if let Some(aborted) = req.features().and_then(|f| f.aborted()).cloned() {
//!     tokio::spawn(async move {
//!         tokio::select! {
//!             _ = aborted.aborted() => { /* the client left: stop the work */ }
//!             _ = async { /* long-running work for this request */ } => {}
//!         }
//!     });
//! }
//! Response::new(String::new())
//! # }
//! ```
//!
//! Which drivers provide it, and when it fires, is the driver's to say:
//! the HTTP/2 driver inserts it on every stream and fires it when the client
//! resets the stream, when the connection is lost or closed before the
//! response is complete, and when the stream is reset by the server (the
//! app's `StreamReset`, or an error after the response started). The HTTP/1
//! driver inserts it on every request and fires it when the client closes
//! the connection (FIN or reset) while the app works or its response body
//! waits, when the server aborts the connection, and when the response
//! cannot be completed. Neither fires it for a request that completed.
//!
//! An HTTP/2 driver usually stops a request's future as soon as the client
//! resets its stream, so it is work spawned for the request (a response body
//! fed from a task, say) that observes the signal.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// The state behind a [`RequestAborted`]: a flag and its waiters. Protocol
/// drivers embed one where they keep a request's state (see [`AbortSource`])
/// and call [`abort`](Self::abort).
#[derive(Debug, Default)]
pub struct AbortSignal {
    aborted: AtomicBool,
    notify: Notify,
}

impl AbortSignal {
    /// A signal that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fire the signal (once; later calls do nothing). Returns whether this
    /// call fired it.
    pub fn abort(&self) -> bool {
        let first = !self.aborted.swap(true, Ordering::AcqRel);
        if first {
            self.notify.notify_waiters();
        }
        first
    }

    /// Whether the signal fired.
    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the flag is read, so a concurrent `abort`
            // cannot be missed.
            notified.as_mut().enable();
            if self.is_aborted() {
                return;
            }
            notified.await;
        }
    }
}

/// Where a [`RequestAborted`] finds its [`AbortSignal`]: lets a driver keep
/// the signal inside per-request state it already allocates (no allocation
/// of its own per request).
pub trait AbortSource: Send + Sync + 'static {
    /// The request's signal.
    fn abort_signal(&self) -> &AbortSignal;
}

impl AbortSource for AbortSignal {
    fn abort_signal(&self) -> &AbortSignal {
        self
    }
}

/// Whether the client went away before the request completed (Kestrel's
/// `RequestAborted` token): a typed request extension, cheap to clone.
#[derive(Clone)]
pub struct RequestAborted {
    source: Arc<dyn AbortSource>,
}

impl RequestAborted {
    /// The feature over a driver's `source` (used by protocol drivers).
    pub fn new(source: Arc<dyn AbortSource>) -> Self {
        RequestAborted { source }
    }

    /// Whether the request was aborted.
    pub fn is_aborted(&self) -> bool {
        self.source.abort_signal().is_aborted()
    }

    /// Resolves once the request is aborted (at once if it already was);
    /// never, for a request that completes.
    pub async fn aborted(&self) {
        self.source.abort_signal().wait().await
    }
}

impl fmt::Debug for RequestAborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestAborted")
            .field("aborted", &self.is_aborted())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn every_waiter_wakes_once_aborted() {
        let signal = Arc::new(AbortSignal::new());
        let feature = RequestAborted::new(signal.clone());
        assert!(!feature.is_aborted());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let f = feature.clone();
                tokio::spawn(async move { f.aborted().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(
            tokio::time::timeout(Duration::from_millis(20), feature.aborted())
                .await
                .is_err(),
            "not aborted yet"
        );
        assert!(signal.abort());
        assert!(!signal.abort(), "fires once");
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .expect("woken")
                .expect("join");
        }
        assert!(feature.is_aborted());
        // A waiter that comes late returns at once.
        feature.aborted().await;
    }
}
