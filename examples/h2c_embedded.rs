//! HTTP/1.1 and cleartext HTTP/2 (h2c, prior knowledge) on one port, served
//! by `kestrel-http1` and `kestrel-http2` over an accept loop of your own
//! (docs/embedding.md). Protocol selection sniffs the first bytes for the
//! HTTP/2 preface; the bytes it read stay in the admitted connection and
//! the chosen driver reads them first.
//!
//! ```text
//! cargo run --example h2c_embedded [127.0.0.1:5000]
//! curl -i http://127.0.0.1:5000/
//! curl -i --http2-prior-knowledge http://127.0.0.1:5000/
//! ```
//! Ctrl+C stops it gracefully (GOAWAY for HTTP/2, `Connection: close` for HTTP/1.1).

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use kestrel_http1::{Http1Config, Http1Connection};
use kestrel_http2::{
    Address, Connection, ConnectionRuntime, Http2Config, Http2Connection, HttpProtocols,
    KestrelServerOptions, RequestBody, SelectedProtocol, SelectionLimits, TransportKind,
};
use tokio::net::TcpListener;

async fn app(req: Request<RequestBody>) -> Response<Full<Bytes>> {
    let text = format!("Hello over {:?}\n", req.version());
    Response::new(Full::new(Bytes::from(text)))
}

/// Serve `listener` until `stop` completes, then shut down gracefully.
pub async fn serve(listener: TcpListener, options: KestrelServerOptions, stop: impl Future) {
    let runtime = ConnectionRuntime::new(&options.limits);
    let http1 = Arc::new(Http1Config::from_options(&options));
    let http2 = Arc::new(Http2Config::from_options(&options));
    let selection = SelectionLimits::from_limits(&options.limits);
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
        let Ok(mut admitted) = runtime.admit(conn) else {
            continue;
        };
        let handle = admitted.handle().clone();
        let (http1, http2) = (http1.clone(), http2.clone());
        let task = tokio::spawn(async move {
            // Under the request-headers timeout, like a first request.
            match admitted
                .select_protocol(HttpProtocols::HTTP1_AND_HTTP2, selection)
                .await
            {
                SelectedProtocol::Http1 => {
                    let _ = Http1Connection::from_admitted(admitted, http1)
                        .serve(&app)
                        .await;
                }
                SelectedProtocol::Http2 => {
                    let _ = Http2Connection::from_admitted(admitted, http2)
                        .serve(&app)
                        .await;
                }
                // Answered and closed, timed out, or the client left.
                _ => {}
            }
        });
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
