//! tower interop (the `tower` feature): any `tower::Service<Request<RequestBody>>`
//! — an axum `Router`, a `tower-http` stack — runs as a Kestrel
//! [`Application`] ([`ServiceApp`]) or as a pipeline's terminal handler
//! ([`ApplicationBuilder::run_service`]), and any `tower::Layer` is a
//! middleware ([`ApplicationBuilder::use_layer`]).
//!
//! ```ignore
//! let router = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
//! let mut app = ApplicationBuilder::new();
//! app.use_middleware(HostFiltering::new("example.com")?);
//! app.use_layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(30)));
//! app.run_service(router);
//! server.start(app.build()).await?;
//! ```
//!
//! Services are cloned once per request (the tower convention: `poll_ready`
//! then `call` on the clone), so they must be `Clone + Send + Sync`; wrap a
//! service that is not `Sync` in `tower::util::BoxCloneSyncService`.
//! A layer is applied once, when the pipeline is built, to a service that
//! runs the rest of the pipeline ([`NextService`]), so a layer's shared
//! state (a concurrency limit, a rate limit) is shared by all requests.

use std::future::{poll_fn, Future};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use kestrel_core::{Application, BoxError, RequestBody};
use tower_layer::Layer;
use tower_service::Service;

use crate::pipeline::{box_response, ApplicationBuilder, Body, BoxResponseFuture, Next};

/// A tower service as a Kestrel [`Application`].
#[derive(Clone, Debug)]
pub struct ServiceApp<S> {
    service: S,
}

impl<S> ServiceApp<S> {
    /// Wrap `service`.
    pub fn new(service: S) -> Self {
        ServiceApp { service }
    }

    /// The wrapped service.
    pub fn into_inner(self) -> S {
        self.service
    }
}

impl<S, B> Application for ServiceApp<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Body = B;

    fn call(
        &self,
        request: Request<RequestBody>,
    ) -> impl Future<Output = Result<Response<B>, BoxError>> + Send {
        let mut service = self.service.clone();
        async move {
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            service.call(request).await.map_err(Into::into)
        }
    }
}

/// The rest of a pipeline as a tower service: what a layer given to
/// [`ApplicationBuilder::use_layer`] wraps. Always ready.
#[derive(Clone, Debug)]
pub struct NextService {
    next: Next,
}

impl NextService {
    /// The rest of the pipeline.
    pub fn new(next: Next) -> Self {
        NextService { next }
    }
}

impl Service<Request<RequestBody>> for NextService {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<RequestBody>) -> BoxResponseFuture {
        self.next.clone().run(req)
    }
}

impl ApplicationBuilder {
    /// Use a tower service as the terminal handler (an axum `Router`).
    pub fn run_service<S, B>(&mut self, service: S) -> &mut Self
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.run(ServiceApp::new(service))
    }

    /// Use a tower layer as a middleware: it wraps the rest of the pipeline
    /// ([`NextService`]) once, when the pipeline is built.
    pub fn use_layer<L, S, B>(&mut self, layer: L) -> &mut Self
    where
        L: Layer<NextService, Service = S> + Send + 'static,
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.use_wrap(Box::new(move |next: Next| {
            let service = layer.layer(NextService::new(next));
            std::sync::Arc::new(move |req: Request<RequestBody>| -> BoxResponseFuture {
                let mut service = service.clone();
                Box::pin(async move {
                    poll_fn(|cx| service.poll_ready(cx))
                        .await
                        .map_err(Into::into)?;
                    service
                        .call(req)
                        .await
                        .map(box_response)
                        .map_err(Into::into)
                })
            })
        }))
    }
}
