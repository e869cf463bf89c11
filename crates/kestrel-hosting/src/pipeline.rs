//! The middleware pipeline: ASP.NET Core's `IApplicationBuilder` in Rust.
//!
//! An [`ApplicationBuilder`] collects middleware ([`Middleware`]: sees the
//! request, answers it or calls [`Next`]), branches ([`ApplicationBuilder::map`],
//! [`ApplicationBuilder::map_when`]) and a terminal handler
//! ([`ApplicationBuilder::run`]); [`ApplicationBuilder::build`] folds them into a
//! [`Pipeline`], which is a [`kestrel_core::Application`] a server can run.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use kestrel_core::RequestBody;
//! use kestrel_hosting::pipeline::{empty_response, ApplicationBuilder, Next};
//!
//! let mut app = ApplicationBuilder::new();
//! app.use_middleware(|req: Request<RequestBody>, next: Next| async move {
//!     if req.uri().path() == "/forbidden" {
//!         return Ok(empty_response(StatusCode::FORBIDDEN));
//!     }
//!     next.run(req).await
//! });
//! app.map("/api", |api| {
//!     api.run(|_req: Request<RequestBody>| async {
//!         Response::new(Full::new(Bytes::from_static(b"api")))
//!     });
//! });
//! app.run(|_req: Request<RequestBody>| async {
//!     Response::new(Full::new(Bytes::from_static(b"Hello")))
//! });
//! let pipeline = app.build();
//! # let _ = pipeline;
//! ```
//!
//! Cost per request: one boxed future per stage that runs, and one boxed
//! response body (not re-boxed when a stage already returns [`Body`]). No locks.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use kestrel_core::{Application, BoxError, RequestBody};

/// The response body every pipeline stage produces: any body, boxed.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// The future a [`Middleware`] returns.
pub type BoxResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send + 'static>>;

/// A type-erased request handler: one stage of a built pipeline.
pub(crate) type Handler =
    Arc<dyn Fn(Request<RequestBody>) -> BoxResponseFuture + Send + Sync + 'static>;

/// Box any response body into a pipeline [`Body`] (without re-boxing a [`Body`]).
pub fn box_body<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut slot = Some(body);
    if let Some(already) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Body>>() {
        if let Some(b) = already.take() {
            return b;
        }
    }
    match slot {
        Some(b) => b.map_err(Into::into).boxed_unsync(),
        None => Empty::new().map_err(|never| match never {}).boxed_unsync(),
    }
}

/// Box the body of a response (see [`box_body`]).
pub fn box_response<B>(response: Response<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    response.map(box_body)
}

/// An empty response with `status` (e.g. `400` from a filter).
pub fn empty_response(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(box_body(Empty::<Bytes>::new()));
    *response.status_mut() = status;
    response
}

/// A middleware (ASP.NET Core's `IMiddleware` / `app.Use`): sees each request
/// and either answers it or passes it on with [`Next::run`], before and after
/// which it may do work of its own.
///
/// Closures `Fn(Request<RequestBody>, Next) -> impl Future<Output =
/// Result<Response<Body>, BoxError>>` are middleware.
pub trait Middleware: Send + Sync + 'static {
    /// Handle `req`, calling `next` to continue down the pipeline.
    fn call(&self, req: Request<RequestBody>, next: Next) -> BoxResponseFuture;
}

impl<F, Fut> Middleware for F
where
    F: Fn(Request<RequestBody>, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, BoxError>> + Send + 'static,
{
    fn call(&self, req: Request<RequestBody>, next: Next) -> BoxResponseFuture {
        Box::pin(self(req, next))
    }
}

/// The rest of the pipeline after a middleware (ASP.NET Core's `next`
/// `RequestDelegate`). Cheap to clone.
#[derive(Clone)]
pub struct Next {
    handler: Handler,
}

impl Next {
    /// Run the rest of the pipeline on `req`.
    pub fn run(self, req: Request<RequestBody>) -> BoxResponseFuture {
        (self.handler)(req)
    }
}

impl fmt::Debug for Next {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Next")
    }
}

/// The path prefix a [`ApplicationBuilder::map`] branch matched (ASP.NET
/// Core's `Request.PathBase`), as a request extension. The request path is not
/// stripped: the path below the branch is `uri().path()[path_base.len()..]`.
/// Nested maps append to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathBase(pub String);

impl PathBase {
    /// The matched prefix, as it appeared in the request (e.g. `/api`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

type Predicate = Arc<dyn Fn(&Request<RequestBody>) -> bool + Send + Sync + 'static>;

/// A stage that is given the rest of the pipeline once, when it is built
/// (used for tower layers, which wrap a service rather than take `next`).
pub(crate) type WrapFn = Box<dyn FnOnce(Next) -> Handler + Send + 'static>;

enum Stage {
    Middleware(Arc<dyn Middleware>),
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    Wrap(WrapFn),
    Map {
        prefix: String,
        branch: ApplicationBuilder,
    },
    MapWhen {
        predicate: Predicate,
        branch: ApplicationBuilder,
    },
}

/// Builds a request pipeline (ASP.NET Core's `IApplicationBuilder`).
///
/// Stages run in the order they were added; a terminal handler added with
/// [`run`](Self::run) ends the pipeline (stages added after it never run, as
/// in ASP.NET Core). A pipeline (or branch) without a terminal handler
/// answers `404 Not Found`.
#[derive(Default)]
pub struct ApplicationBuilder {
    stages: Vec<Stage>,
    terminal: Option<Handler>,
}

impl fmt::Debug for ApplicationBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicationBuilder")
            .field("stages", &self.stages.len())
            .field("terminal", &self.terminal.is_some())
            .finish()
    }
}

impl ApplicationBuilder {
    /// An empty pipeline (answers 404 until a terminal handler is added).
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a middleware (ASP.NET Core's `app.Use`).
    pub fn use_middleware(&mut self, middleware: impl Middleware) -> &mut Self {
        self.push(Stage::Middleware(Arc::new(middleware)))
    }

    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn use_wrap(&mut self, wrap: WrapFn) -> &mut Self {
        self.push(Stage::Wrap(wrap))
    }

    fn push(&mut self, stage: Stage) -> &mut Self {
        if self.terminal.is_some() {
            tracing::warn!(
                target: "kestrel::hosting",
                "a pipeline stage was added after the terminal handler (`run`); it will never run"
            );
            return self;
        }
        self.stages.push(stage);
        self
    }

    /// Set the terminal handler (ASP.NET Core's `app.Run`): any
    /// [`Application`], so any `async fn(Request<RequestBody>) -> Response<B>`
    /// (or `-> Result<Response<B>, E>`), or another [`Pipeline`]. As in
    /// ASP.NET Core the first terminal handler ends the pipeline: a second
    /// `run` (like any stage added after it) never runs, and is dropped with
    /// a warning.
    pub fn run<A: Application>(&mut self, handler: A) -> &mut Self {
        if self.terminal.is_some() {
            tracing::warn!(
                target: "kestrel::hosting",
                "a second terminal handler (`run`) was added; it will never run"
            );
            return self;
        }
        self.terminal = Some(handler_from_app(handler));
        self
    }

    /// Branch on a path prefix (ASP.NET Core's `app.Map`): requests whose
    /// path is `path_prefix` or starts with `path_prefix/` (matched on
    /// segment boundaries, ASCII case-insensitively, on the raw path) go
    /// through the branch `configure` builds, and never come back; others
    /// continue here. The matched prefix is recorded as a [`PathBase`]
    /// extension (the path itself is kept). A missing leading `/` is added
    /// and a trailing `/` dropped; an empty prefix (or `/`) matches every
    /// request.
    ///
    /// Inside a branch, a nested `map` matches below the [`PathBase`].
    pub fn map(
        &mut self,
        path_prefix: &str,
        configure: impl FnOnce(&mut ApplicationBuilder),
    ) -> &mut Self {
        let trimmed = path_prefix.trim_end_matches('/');
        let prefix = if trimmed.is_empty() || trimmed.starts_with('/') {
            trimmed.to_string()
        } else {
            format!("/{trimmed}")
        };
        let mut branch = ApplicationBuilder::new();
        configure(&mut branch);
        self.push(Stage::Map { prefix, branch })
    }

    /// Branch on a predicate (ASP.NET Core's `app.MapWhen`): requests for
    /// which `predicate` is true go through the branch `configure` builds,
    /// and never come back; others continue here.
    pub fn map_when(
        &mut self,
        predicate: impl Fn(&Request<RequestBody>) -> bool + Send + Sync + 'static,
        configure: impl FnOnce(&mut ApplicationBuilder),
    ) -> &mut Self {
        let mut branch = ApplicationBuilder::new();
        configure(&mut branch);
        self.push(Stage::MapWhen {
            predicate: Arc::new(predicate),
            branch,
        })
    }

    /// Fold the stages into a runnable [`Pipeline`].
    pub fn build(self) -> Pipeline {
        Pipeline {
            handler: self.into_handler(),
        }
    }

    fn into_handler(self) -> Handler {
        let mut next: Handler = self.terminal.unwrap_or_else(not_found_handler);
        for stage in self.stages.into_iter().rev() {
            next = match stage {
                Stage::Middleware(m) => {
                    let after = Next { handler: next };
                    Arc::new(move |req| m.call(req, after.clone()))
                }
                Stage::Wrap(wrap) => wrap(Next { handler: next }),
                Stage::Map { prefix, branch } => {
                    let branch = branch.into_handler();
                    let rest = next;
                    Arc::new(move |mut req| {
                        if let Some(base) = match_prefix(&req, &prefix) {
                            req.extensions_mut().insert(PathBase(base));
                            branch(req)
                        } else {
                            rest(req)
                        }
                    })
                }
                Stage::MapWhen { predicate, branch } => {
                    let branch = branch.into_handler();
                    let rest = next;
                    Arc::new(move |req| {
                        if predicate(&req) {
                            branch(req)
                        } else {
                            rest(req)
                        }
                    })
                }
            };
        }
        next
    }
}

/// The new path base if `req`'s path (below its current [`PathBase`]) starts
/// with `prefix` on a segment boundary.
fn match_prefix(req: &Request<RequestBody>, prefix: &str) -> Option<String> {
    let path = req.uri().path();
    let base = req
        .extensions()
        .get::<PathBase>()
        .map_or("", PathBase::as_str);
    let below = path.get(base.len()..).unwrap_or("");
    let head = below.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    match below.as_bytes().get(prefix.len()) {
        None | Some(b'/') => Some(format!("{base}{head}")),
        Some(_) => None,
    }
}

fn not_found_handler() -> Handler {
    Arc::new(|_req| {
        Box::pin(std::future::ready(Ok(empty_response(
            StatusCode::NOT_FOUND,
        ))))
    })
}

fn handler_from_app<A: Application>(app: A) -> Handler {
    // A pipeline as the terminal handler: use its handler directly.
    let mut slot = Some(app);
    if let Some(pipeline) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Pipeline>>() {
        if let Some(p) = pipeline.take() {
            return p.handler;
        }
    }
    let Some(app) = slot else {
        return not_found_handler();
    };
    let app = Arc::new(app);
    Arc::new(move |req| {
        let app = Arc::clone(&app);
        Box::pin(async move { app.call(req).await.map(box_response) })
    })
}

/// A built pipeline: a [`kestrel_core::Application`] with a boxed [`Body`].
/// Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Pipeline {
    handler: Handler,
}

impl Pipeline {
    /// Run the pipeline on one request (what [`Application::call`] does).
    pub fn handle(&self, req: Request<RequestBody>) -> BoxResponseFuture {
        (self.handler)(req)
    }
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pipeline")
    }
}

impl Default for Pipeline {
    /// A pipeline that answers 404 to everything.
    fn default() -> Self {
        ApplicationBuilder::new().build()
    }
}

impl Application for Pipeline {
    type Body = Body;

    fn call(
        &self,
        request: Request<RequestBody>,
    ) -> impl Future<Output = Result<Response<Self::Body>, BoxError>> + Send {
        (self.handler)(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str) -> Request<RequestBody> {
        let mut r = Request::new(RequestBody::empty());
        *r.uri_mut() = path.parse().expect("uri");
        r
    }

    #[test]
    fn prefix_matching_is_on_segment_boundaries() {
        assert_eq!(match_prefix(&req("/api"), "/api").as_deref(), Some("/api"));
        assert_eq!(
            match_prefix(&req("/API/x"), "/api").as_deref(),
            Some("/API")
        );
        assert_eq!(match_prefix(&req("/apix"), "/api"), None);
        assert_eq!(match_prefix(&req("/ap"), "/api"), None);
        assert_eq!(match_prefix(&req("/x"), "").as_deref(), Some(""));
        let mut nested = req("/api/v1/items");
        nested.extensions_mut().insert(PathBase("/api".into()));
        assert_eq!(match_prefix(&nested, "/v1").as_deref(), Some("/api/v1"));
    }

    #[test]
    fn box_body_does_not_rebox() {
        let b = box_body(Empty::<Bytes>::new());
        let again = box_body(b);
        assert!(http_body::Body::is_end_stream(&again));
    }
}
