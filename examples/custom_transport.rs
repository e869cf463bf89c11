//! A transport of your own, plugged into `KestrelServer`:
//! `cargo run --example custom_transport`.
//!
//! `Metered` is a listener over tokio's TCP listener whose connections count
//! the bytes they carry (the same shape fits vsock, a TLS terminator in
//! front, or io_uring). A `ListenerFactory` (here a closure) binds it when
//! the server starts; the server gives its connections what it gives a
//! socket endpoint: the connection limit, connection middleware (here
//! Kestrel's connection logging), HTTP/1.1 and h2c, limits and timeouts,
//! metrics and events, graceful shutdown. The example serves one request
//! over it, prints the reply and the bytes counted, and stops.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use kestrel::connection_logging::ConnectionLogging;
use kestrel::transport::{Address, Connection, Listener, TransportKind};
use kestrel::{BindTarget, KestrelServer, KestrelServerOptions, RequestBody};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Bytes read and written by every connection of a [`Metered`] listener.
#[derive(Debug, Default)]
struct Meter {
    read: AtomicU64,
    written: AtomicU64,
}

/// The listener: accepts TCP connections and wraps each in a [`Counted`].
struct Metered {
    inner: tokio::net::TcpListener,
    local: Address,
    meter: Arc<Meter>,
}

impl Listener for Metered {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Connection>> {
        let (stream, peer) = std::task::ready!(self.inner.poll_accept(cx))?;
        let _ = stream.set_nodelay(true);
        Poll::Ready(Ok(Connection {
            io: Box::new(Counted {
                inner: stream,
                meter: self.meter.clone(),
            }),
            local_addr: self.local.clone(),
            remote_addr: Address::Ip(peer),
            kind: TransportKind::Other,
        }))
    }

    fn local_addr(&self) -> &Address {
        &self.local
    }
}

/// A connection's stream, counting what passes.
struct Counted<T> {
    inner: T,
    meter: Arc<Meter>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.meter.read.fetch_add(n, Ordering::Relaxed);
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.meter.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let meter = Arc::new(Meter::default());
    let factory_meter = meter.clone();
    let mut options = KestrelServerOptions::default();
    options.limits.max_concurrent_connections = Some(100);
    // The factory binds when the server starts (the options stay cloneable).
    let factory = move || -> io::Result<Box<dyn Listener>> {
        let std = std::net::TcpListener::bind("127.0.0.1:0")?;
        std.set_nonblocking(true)?;
        let inner = tokio::net::TcpListener::from_std(std)?;
        let local = Address::Ip(inner.local_addr()?);
        Ok(Box::new(Metered {
            inner,
            local,
            meter: factory_meter.clone(),
        }))
    };
    options.listen(BindTarget::custom(factory), |listen| {
        listen.use_middleware(ConnectionLogging::new());
    });

    let server = KestrelServer::new(options)
        .start(|req: Request<RequestBody>| async move {
            Response::new(Full::new(Bytes::from(format!(
                "Hello over a custom transport: {} {}\n",
                req.method(),
                req.uri().path()
            ))))
        })
        .await?;
    let shown = server.addresses().iter().next().map(|a| a.to_string());
    println!("listening on {}", server.addresses());

    // One request over the transport, as any HTTP client would send it.
    let port = shown
        .as_deref()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or("no port in the server address")?;
    let mut client = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    client
        .write_all(b"GET /metered HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n")
        .await?;
    let mut reply = String::new();
    client.read_to_string(&mut reply).await?;
    println!("{reply}");

    server.stop().await;
    println!(
        "the transport counted {} bytes in and {} bytes out",
        meter.read.load(Ordering::Relaxed),
        meter.written.load(Ordering::Relaxed)
    );
    Ok(())
}
