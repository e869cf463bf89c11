//! An `h2` client for the HTTP/2 tests, and the test application they share.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::RecvStream;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use kestrel::{BodyError, BoxError, RequestBody, RequestFeaturesExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Connect with prior knowledge; the connection runs in a task.
pub async fn connect(addr: SocketAddr) -> SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (send, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send.ready().await.expect("ready")
}

/// A request for `path` (`http://localhost{path}`).
pub fn request(method: &str, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(format!("http://localhost{path}"))
        .body(())
        .expect("request")
}

/// Read a whole response body and its trailers.
pub async fn read_body(mut body: RecvStream) -> Result<(Bytes, Option<HeaderMap>), h2::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await?;
    Ok((Bytes::from(out), trailers))
}

/// Send a bodyless request and read the whole response.
pub async fn get(
    send: &mut SendRequest<Bytes>,
    path: &str,
) -> Result<(Response<()>, Bytes), h2::Error> {
    let (resp, _) = send.send_request(request("GET", path), true)?;
    let resp = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .expect("a response within 10 s")?;
    let (parts, body) = resp.into_parts();
    let (bytes, _) = read_body(body).await?;
    Ok((Response::from_parts(parts, ()), bytes))
}

/// The client's side of an extended CONNECT (RFC 8441) stream as a duplex
/// byte stream, for a WebSocket client: reads are the response's DATA
/// frames, writes are DATA frames within the window, shutdown is END_STREAM.
pub struct H2Io {
    /// The stream's sending half (DATA frames out).
    pub send: h2::SendStream<Bytes>,
    /// The response body (DATA frames in).
    pub recv: RecvStream,
    pending: Bytes,
    eof: bool,
}

impl H2Io {
    /// The duplex over an accepted CONNECT stream's two halves.
    pub fn new(send: h2::SendStream<Bytes>, recv: RecvStream) -> Self {
        H2Io {
            send,
            recv,
            pending: Bytes::new(),
            eof: false,
        }
    }
}

fn io_err(e: h2::Error) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionReset, e)
}

impl tokio::io::AsyncRead for H2Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        use bytes::Buf;
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                let _ = self.recv.flow_control().release_capacity(n);
                return Poll::Ready(Ok(()));
            }
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            match std::task::ready!(self.recv.poll_data(cx)) {
                Some(Ok(d)) => self.pending = d,
                Some(Err(e)) => return Poll::Ready(Err(io_err(e))),
                None => self.eof = true,
            }
        }
    }
}

impl tokio::io::AsyncWrite for H2Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            let cap = self.send.capacity();
            if cap > 0 {
                let n = cap.min(buf.len());
                self.send
                    .send_data(Bytes::copy_from_slice(&buf[..n]), false)
                    .map_err(io_err)?;
                return Poll::Ready(Ok(n));
            }
            self.send.reserve_capacity(buf.len());
            match std::task::ready!(self.send.poll_capacity(cx)) {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Poll::Ready(Err(io_err(e))),
                None => {
                    return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let _ = self.send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}

/// Open an extended CONNECT stream for `path` with `:protocol` = `protocol`
/// (after a GET round trip, so that the server's SETTINGS — and its
/// ENABLE_CONNECT_PROTOCOL — have been seen). Returns the response head and
/// the stream's two halves.
pub async fn extended_connect(
    send: &mut SendRequest<Bytes>,
    path: &str,
    protocol: &'static str,
) -> Result<(Response<()>, h2::SendStream<Bytes>, RecvStream), h2::Error> {
    if !send.is_extended_connect_protocol_enabled() {
        get(send, "/").await?;
    }
    let mut req = Request::builder()
        .method("CONNECT")
        .uri(format!("http://localhost{path}"))
        .header("sec-websocket-version", "13")
        .body(())
        .expect("request");
    req.extensions_mut()
        .insert(h2::ext::Protocol::from_static(protocol));
    let (resp, stream) = send.send_request(req, false)?;
    let resp = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .expect("a response within 10 s")?;
    let (parts, recv) = resp.into_parts();
    Ok((Response::from_parts(parts, ()), stream, recv))
}

/// A body fed from a channel (a slow or failing response).
pub struct ChanBody(pub mpsc::Receiver<Result<Frame<Bytes>, BoxError>>);

impl Body for ChanBody {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx)
    }
}

/// A body that yields `first`, then panics.
pub struct PanicAfterFirst(pub Option<Bytes>);

impl Body for PanicAfterFirst {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.0.take() {
            Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
            None => panic!("the body broke after its first chunk"),
        }
    }
}

/// The response body type of [`app`].
pub type AppBody = BoxBody<Bytes, BoxError>;

/// The future [`app`] returns.
pub type AppFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<AppBody>, BoxError>> + Send>,
>;

/// A full body.
pub fn full(b: impl Into<Bytes>) -> AppBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

/// The shared test application:
/// * `/` hello; `/info`: version and whether `ConnectionInfo` is present;
/// * `/echo`: streams the request body back; `/collect`: reads the whole body
///   and answers with it and with its trailers as response trailers;
/// * `/slow?ms=N`: answers after N ms; `/panic`: panics; `/panic-late`:
///   the body panics after its first chunk; `/error`: returns `Err`;
///   `/fail-late`: the body fails 300 ms after its first chunk;
///   `/trailers`: a body followed by the trailer `x-trailer: yes`;
/// * `/reset`: resets its stream with REFUSED_STREAM (0x7) via `StreamReset`;
/// * `/hop`: sets connection-specific headers (which must be removed);
/// * `/read-after-reset`: a task reads the body and reports the outcome on
///   the `reports` channel.
pub fn app(
    reports: mpsc::UnboundedSender<Result<Bytes, String>>,
) -> impl Fn(Request<RequestBody>) -> AppFuture + Send + Sync + 'static {
    move |req: Request<RequestBody>| {
        let reports = reports.clone();
        Box::pin(async move {
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or("").to_string();
            let resp = match path.as_str() {
                "/" => Response::new(full("Hello, World!")),
                "/info" => {
                    let info = req.features().and_then(|f| f.connection()).is_some();
                    let host = req
                        .headers()
                        .get(http::header::HOST)
                        .map(|h| h.to_str().unwrap_or("").to_string())
                        .unwrap_or_default();
                    Response::new(full(format!("{:?} info={info} host={host}", req.version())))
                }
                "/echo" => Response::new(req.into_body().map_err(BoxError::from).boxed()),
                "/collect" => {
                    let collected = req.into_body().collect().await?;
                    let trailers = collected.trailers().cloned();
                    let bytes = collected.to_bytes();
                    let (tx, rx) = mpsc::channel(4);
                    tx.send(Ok(Frame::data(bytes))).await.ok();
                    if let Some(t) = trailers {
                        tx.send(Ok(Frame::trailers(t))).await.ok();
                    }
                    Response::new(ChanBody(rx).boxed())
                }
                "/slow" => {
                    let ms: u64 = query
                        .strip_prefix("ms=")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1000);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Response::new(full(format!("slept {ms}")))
                }
                "/panic" => panic!("the app panicked"),
                "/panic-late" => {
                    Response::new(PanicAfterFirst(Some(Bytes::from_static(b"partial"))).boxed())
                }
                "/error" => return Err("the app failed".into()),
                "/trailers" => {
                    let (tx, rx) = mpsc::channel(4);
                    tx.send(Ok(Frame::data(Bytes::from_static(b"body then trailers"))))
                        .await
                        .ok();
                    let mut t = HeaderMap::new();
                    t.insert("x-trailer", "yes".parse().expect("value"));
                    tx.send(Ok(Frame::trailers(t))).await.ok();
                    Response::new(ChanBody(rx).boxed())
                }
                "/fail-late" => {
                    let (tx, rx) = mpsc::channel(4);
                    tokio::spawn(async move {
                        tx.send(Ok(Frame::data(Bytes::from_static(b"partial"))))
                            .await
                            .ok();
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        tx.send(Err("the body failed".into())).await.ok();
                    });
                    Response::new(ChanBody(rx).boxed())
                }
                "/reset" => {
                    let reset = req
                        .features()
                        .and_then(|f| f.reset())
                        .expect("a StreamReset feature on HTTP/2 requests")
                        .clone();
                    reset.reset(0x7);
                    Response::new(full("never sent"))
                }
                "/hop" => {
                    let mut r = Response::new(full("hop"));
                    let h = r.headers_mut();
                    h.insert("connection", "close".parse().expect("value"));
                    h.insert("keep-alive", "timeout=5".parse().expect("value"));
                    h.insert("transfer-encoding", "chunked".parse().expect("value"));
                    h.insert("upgrade", "foo".parse().expect("value"));
                    h.insert("te", "gzip".parse().expect("value"));
                    h.insert("x-kept", "yes".parse().expect("value"));
                    r
                }
                "/read-after-reset" => {
                    let body = req.into_body();
                    tokio::spawn(async move {
                        let outcome = body
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .map_err(|e: BodyError| format!("{e:?}"));
                        let _ = reports.send(outcome);
                    });
                    // Answer only much later: the client resets first.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Response::new(full("late"))
                }
                _ => {
                    let mut r = Response::new(full("not found"));
                    *r.status_mut() = StatusCode::NOT_FOUND;
                    r
                }
            };
            Ok(resp)
        })
    }
}
