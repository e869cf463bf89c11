//! The framework author's path (docs/embedding.md): the `serve` functions of
//! examples/http1_embedded.rs and examples/h2c_embedded.rs, compiled in
//! here as they are, run on loopback against curl and raw sockets: the
//! runtime's heartbeat drives timeouts (408 on a trickled head), protocol
//! selection serves HTTP/1.1 and h2c on one port, and the stop is graceful.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kestrel::KestrelServerOptions;
use kestrel_test_support::{curl, have_tool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

type Serve<F> = fn(TcpListener, KestrelServerOptions, oneshot::Receiver<()>) -> F;

async fn start<F>(
    serve: Serve<F>,
    options: KestrelServerOptions,
) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<()>)
where
    F: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(serve(listener, options, stopped));
    (addr, stop, task)
}

fn http1_serve(
    l: TcpListener,
    o: KestrelServerOptions,
    s: oneshot::Receiver<()>,
) -> impl Future<Output = ()> + Send {
    crate::http1_example::serve(l, o, s)
}

fn h2c_serve(
    l: TcpListener,
    o: KestrelServerOptions,
    s: oneshot::Receiver<()>,
) -> impl Future<Output = ()> + Send {
    crate::h2c_example::serve(l, o, s)
}

/// Send `head` and read what the server answers until it closes.
async fn raw(addr: SocketAddr, head: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn the_http1_example_serves_curl_times_out_a_trickled_head_and_stops() {
    let mut options = KestrelServerOptions::default();
    options.limits.request_headers_timeout = Duration::from_secs(1);
    let (addr, stop, task) = start(http1_serve, options).await;

    if have_tool("curl") {
        let out = curl(&["-i", &format!("http://{addr}/hello")]).await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("\r\ndate: "), "the runtime's Date: {text}");
        assert!(text.ends_with("Hello from GET /hello\n"), "{text}");
    }

    // No complete head within the request-headers timeout: 408 and a close,
    // driven by the runtime's heartbeat (1 s timeout + up to 1 s tick).
    let started = Instant::now();
    let reply = raw(addr, b"GET / HTTP/1.1\r\nHost: x\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(5));

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the example stops")
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn the_h2c_example_serves_http1_and_h2c_on_one_port() {
    let (addr, stop, task) = start(h2c_serve, KestrelServerOptions::default()).await;
    let url = format!("http://{addr}/");

    if have_tool("curl") {
        let out = curl(&["-i", "--http2-prior-knowledge", &url]).await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("HTTP/2 200"), "{text}");
        assert!(text.ends_with("Hello over HTTP/2.0\n"), "{text}");

        let out = curl(&["-i", "--http1.1", &url]).await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("Hello over HTTP/1.1\n"), "{text}");
    }

    // The same over raw bytes, so the test proves selection without curl.
    let reply = raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("Hello over HTTP/1.1\n"), "{reply}");
    let mut h2 = kestrel_test_support::h2client::connect(addr).await;
    let (resp, body) = kestrel_test_support::h2client::get(&mut h2, "/")
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(&body[..], b"Hello over HTTP/2.0\n");
    drop(h2);

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the example stops")
        .unwrap();
}
