//! The application a server runs: anything that turns a request into a response.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;

use crate::body::{BoxError, RequestBody};

/// An HTTP application (ASP.NET Core's `IHttpApplication` / `RequestDelegate`).
///
/// Async closures are applications: `|req: Request<RequestBody>| async { Response::new(body) }`,
/// returning a `Response<B>` or a `Result<Response<B>, E>`. An `Err` (or a
/// panic) before the response started becomes `500` with an empty body; after
/// it started, the connection (HTTP/1) or stream (HTTP/2) is aborted. The
/// server keeps serving either way.
pub trait Application: Send + Sync + 'static {
    /// The response body type.
    type Body: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static;

    /// Handle one request.
    fn call(
        &self,
        request: Request<RequestBody>,
    ) -> impl Future<Output = Result<Response<Self::Body>, BoxError>> + Send;
}

/// What an application closure may return: `Response<B>` or `Result<Response<B>, E>`.
pub trait IntoAppResult: Send {
    /// The response body type.
    type Body: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static;
    /// Convert to the application result.
    fn into_app_result(self) -> Result<Response<Self::Body>, BoxError>;
}

impl<B> IntoAppResult for Response<B>
where
    B: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    type Body = B;
    fn into_app_result(self) -> Result<Response<B>, BoxError> {
        Ok(self)
    }
}

impl<B, E> IntoAppResult for Result<Response<B>, E>
where
    B: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
    E: Into<BoxError> + Send,
{
    type Body = B;
    fn into_app_result(self) -> Result<Response<B>, BoxError> {
        self.map_err(Into::into)
    }
}

impl<F, Fut, R> Application for F
where
    F: Fn(Request<RequestBody>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send,
    R: IntoAppResult,
{
    type Body = R::Body;

    fn call(
        &self,
        request: Request<RequestBody>,
    ) -> impl Future<Output = Result<Response<Self::Body>, BoxError>> + Send {
        AppResultFuture { fut: self(request) }
    }
}

pin_project_lite::pin_project! {
    /// An application closure's future with its output converted by
    /// [`IntoAppResult`]: a plain wrapper, where an `async` block would copy
    /// the closure's future (and the request it holds) once more per request.
    struct AppResultFuture<Fut> {
        #[pin]
        fut: Fut,
    }
}

impl<Fut, R> Future for AppResultFuture<Fut>
where
    Fut: Future<Output = R>,
    R: IntoAppResult,
{
    type Output = Result<Response<R::Body>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .fut
            .poll(cx)
            .map(IntoAppResult::into_app_result)
    }
}

impl<A: Application> Application for Arc<A> {
    type Body = A::Body;

    fn call(
        &self,
        request: Request<RequestBody>,
    ) -> impl Future<Output = Result<Response<Self::Body>, BoxError>> + Send {
        (**self).call(request)
    }
}

/// The panic policy, in one place for every protocol: a panic while the
/// app's future is polled is the app's error ([`PanicError`]), not the
/// server's. What the driver then does is the same everywhere: before the
/// response started, a `500` with an empty body; after, the connection
/// (HTTP/1) is aborted or the stream (HTTP/2, HTTP/3) reset with
/// INTERNAL_ERROR — as for an app that returned an error.
pub fn poll_app<F: Future>(
    fut: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<Result<F::Output, PanicError>> {
    match catch_unwind(AssertUnwindSafe(move || fut.poll(cx))) {
        Ok(Poll::Pending) => Poll::Pending,
        Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
        Err(payload) => Poll::Ready(Err(PanicError::from_payload(payload))),
    }
}

/// [`poll_app`]'s policy for a response body: a panic while a frame is
/// polled becomes the body's error (a [`PanicError`]).
pub fn poll_body<B>(
    body: Pin<&mut B>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<http_body::Frame<B::Data>, BoxError>>>
where
    B: Body<Error: Into<BoxError>>,
{
    match catch_unwind(AssertUnwindSafe(move || body.poll_frame(cx))) {
        Ok(Poll::Ready(Some(Err(e)))) => Poll::Ready(Some(Err(e.into()))),
        Ok(Poll::Ready(Some(Ok(frame)))) => Poll::Ready(Some(Ok(frame))),
        Ok(Poll::Ready(None)) => Poll::Ready(None),
        Ok(Poll::Pending) => Poll::Pending,
        Err(payload) => Poll::Ready(Some(Err(Box::new(PanicError::from_payload(payload))))),
    }
}

/// A future that turns a panic of the inner future into an `Err` with the
/// panic's message ([`poll_app`]), so one bad request cannot take the server down.
pub struct CatchUnwind<F> {
    inner: Pin<Box<F>>,
}

impl<F> CatchUnwind<F> {
    /// Wrap `fut`.
    pub fn new(fut: F) -> Self {
        CatchUnwind {
            inner: Box::pin(fut),
        }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, PanicError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        poll_app(self.inner.as_mut(), cx)
    }
}

/// An application panic, with its message when it had one.
#[derive(Debug, thiserror::Error)]
#[error("the application panicked: {message}")]
pub struct PanicError {
    /// The panic message.
    pub message: String,
}

impl PanicError {
    /// Build from a `catch_unwind` payload.
    pub fn from_payload(payload: Box<dyn Any + Send>) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "<non-string panic payload>".to_string()
        };
        PanicError { message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    async fn run<A: Application>(app: &A) -> Result<Response<A::Body>, BoxError> {
        app.call(Request::new(RequestBody::empty())).await
    }

    #[tokio::test]
    async fn closures_are_applications() {
        let plain = |_req: Request<RequestBody>| async {
            Response::new(Full::new(Bytes::from_static(b"hi")))
        };
        assert_eq!(run(&plain).await.expect("ok").status(), 200);
        let fallible = |_req: Request<RequestBody>| async {
            Err::<Response<Full<Bytes>>, _>(std::io::Error::other("boom"))
        };
        assert_eq!(run(&fallible).await.unwrap_err().to_string(), "boom");
    }

    #[tokio::test]
    async fn panics_are_caught() {
        let r = CatchUnwind::new(async {
            if true {
                panic!("kaboom");
            }
        })
        .await;
        assert_eq!(r.unwrap_err().message, "kaboom");
    }
}
