//! HTTP/1.1 served by `kestrel-http1` alone, over an accept loop of your
//! own: the framework author's path (docs/embedding.md). The
//! [`ConnectionRuntime`] brings the clock and heartbeat (timeouts, the
//! `Date` header), admission under `max_concurrent_connections`, and a
//! graceful shutdown; each admitted connection goes to the driver.
//!
//! ```text
//! cargo run --example http1_embedded [127.0.0.1:5000]
//! curl -i http://127.0.0.1:5000/hello
//! ```
//! Ctrl+C stops it gracefully.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use kestrel_http1::{
    Address, Connection, ConnectionRuntime, Http1Config, Http1Connection, KestrelServerOptions,
    RequestBody, TransportKind,
};
use tokio::net::TcpListener;

/// The application: any `Fn(Request<RequestBody>) -> impl Future<Output = Response<B>>`.
async fn app(req: Request<RequestBody>) -> Response<Full<Bytes>> {
    let text = format!("Hello from {} {}\n", req.method(), req.uri().path());
    Response::new(Full::new(Bytes::from(text)))
}

/// Serve `listener` until `stop` completes, then shut down gracefully.
pub async fn serve(listener: TcpListener, options: KestrelServerOptions, stop: impl Future) {
    let runtime = ConnectionRuntime::new(&options.limits);
    let config = Arc::new(Http1Config::from_options(&options));
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().map_or(Address::Unknown, Address::Ip);
        let conn = Connection {
            io: Box::new(stream),
            local_addr: local,
            remote_addr: Address::Ip(peer),
            kind: TransportKind::Tcp,
        };
        // Over the limit, the connection is closed and logged (event 24).
        let Ok(admitted) = runtime.admit(conn) else {
            continue;
        };
        let handle = admitted.handle().clone();
        let driver = Http1Connection::from_admitted(admitted, config.clone());
        let task = tokio::spawn(async move {
            let _ = driver.serve(&app).await;
        });
        // So that a shutdown can end a task that ignores its abort.
        handle.attach_task(task.abort_handle());
    }
    drop(listener);
    runtime.shutdown(options.shutdown_timeout).await;
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1);
    let listener = TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:5000")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    serve(listener, KestrelServerOptions::default(), ctrl_c).await;
    Ok(())
}
