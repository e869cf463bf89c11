//! A WebSocket echo server on Kestrel's upgrade feature:
//! `cargo run --example websocket_echo -- [URL]` (default `http://127.0.0.1:5001`),
//! then connect a WebSocket client to `ws://127.0.0.1:5001/`. The same
//! handler answers HTTP/1.1 upgrades and HTTP/2 extended CONNECT (RFC 8441):
//! the endpoint speaks both (h2c by prior knowledge, or `h2` over TLS).

use http::Request;
use kestrel::{KestrelServer, RequestBody};

#[tokio::main]
async fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:5001".to_string());
    let server = match KestrelServer::default()
        .urls([url])
        .start(|req: Request<RequestBody>| kestrel_demo::websocket::echo(req))
        .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("websocket_echo: {e}");
            std::process::exit(1);
        }
    };
    println!("WebSocket echo listening on {}", server.addresses());
    server
        .stop_on(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
}
