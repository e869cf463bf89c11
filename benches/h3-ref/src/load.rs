//! `h3load [-c CONNS] [-m STREAMS] [-d SECONDS] --ca CERT.pem https://HOST:PORT/PATH`:
//! the HTTP/3 load client of `cargo xtask bench` (h2load's `-c`/`-m`/`-D`
//! for HTTP/3, on quinn + h3 + h3-quinn). It opens CONNS QUIC connections
//! (one client endpoint, TLS 1.3, ALPN `h3`, trusting CERT), then on each
//! keeps STREAMS `GET` requests in flight for SECONDS: every stream loop
//! sends a request, reads the whole response and starts the next. It prints
//! (all on stdout, the last lines parsed by the harness):
//!
//! ```text
//! requests: 123456 succeeded, 0 failed
//! finished in 5.00s, 24691.20 req/s
//! latency: p50 1.23 ms, p99 4.56 ms
//! ```
//!
//! `-n TOTAL` sends TOTAL requests and stops (instead of a duration; for
//! `cargo xtask callgrind --case h3`). `-v` prints the first response's head and body to stderr first.
//! `h3load --udp-offload` prints what GSO/GRO quinn-udp finds on this
//! kernel for a loopback UDP socket, and exits.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{Request, Uri};
use tokio::time::Instant;

struct Opts {
    conns: usize,
    streams: usize,
    duration: Duration,
    ca: String,
    uri: Uri,
    verbose: bool,
    /// `-n`: the total number of requests, instead of a duration.
    total: Option<u64>,
}

fn usage() -> ExitCode {
    eprintln!("usage: h3load [-c CONNS] [-m STREAMS] [-d SECONDS] --ca CERT.pem https://HOST:PORT/PATH\n       h3load --udp-offload");
    ExitCode::from(2)
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut conns = 16;
    let mut streams = 32;
    let mut duration = 10u64;
    let mut ca = None;
    let mut uri = None;
    let mut verbose = false;
    let mut total = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |n: &str| it.next().cloned().ok_or(format!("{n} needs a value"));
        match a.as_str() {
            "-c" => conns = val("-c")?.parse().map_err(|e| format!("-c: {e}"))?,
            "-m" => streams = val("-m")?.parse().map_err(|e| format!("-m: {e}"))?,
            "-d" | "-D" => duration = val("-d")?.parse().map_err(|e| format!("-d: {e}"))?,
            "--ca" => ca = Some(val("--ca")?),
            "-v" => verbose = true,
            "-n" => total = Some(val("-n")?.parse().map_err(|e| format!("-n: {e}"))?),
            u if u.starts_with("https://") => {
                uri = Some(u.parse::<Uri>().map_err(|e| format!("{u}: {e}"))?)
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Opts {
        conns: conns.max(1),
        streams: streams.max(1),
        duration: Duration::from_secs(duration.max(1)),
        ca: ca.ok_or("--ca CERT.pem is required")?,
        uri: uri.ok_or("a https:// URL is required")?,
        verbose,
        total,
    })
}

/// What one stream loop did.
#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    /// Latency of each successful request, in microseconds.
    latencies_us: Vec<u32>,
}

type Sender = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// One request: send the head (no body), read the whole response.
async fn one_request(send: &mut Sender, uri: &Uri) -> Result<bool, Box<dyn std::error::Error>> {
    let req = Request::get(uri.clone()).body(())?;
    let mut stream = send.send_request(req).await?;
    stream.finish().await?;
    let head = stream.recv_response().await?;
    while let Some(mut chunk) = stream.recv_data().await? {
        chunk.advance(chunk.remaining());
    }
    Ok(head.status() == http::StatusCode::OK)
}

/// `-v`: one request, its response head and body on stderr.
async fn show_one(send: &mut Sender, uri: &Uri) {
    let shown = async {
        let mut stream = send
            .send_request(Request::get(uri.clone()).body(())?)
            .await?;
        stream.finish().await?;
        let head = stream.recv_response().await?;
        eprintln!("{:?} {}", head.version(), head.status());
        for (name, value) in head.headers() {
            eprintln!("{name}: {}", String::from_utf8_lossy(value.as_bytes()));
        }
        let mut body = Vec::new();
        while let Some(mut chunk) = stream.recv_data().await? {
            body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
        }
        eprintln!("\n{}", String::from_utf8_lossy(&body));
        Ok::<(), Box<dyn std::error::Error>>(())
    };
    if let Err(e) = shown.await {
        eprintln!("h3load: the first request failed: {e}");
    }
}

/// Take one request from the `-n` budget (always granted without one).
fn take(budget: Option<&AtomicU64>) -> bool {
    budget.is_none_or(|b| {
        b.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    })
}

async fn stream_loop(
    mut send: Sender,
    uri: Uri,
    deadline: Instant,
    budget: Option<Arc<AtomicU64>>,
) -> Tally {
    let mut t = Tally::default();
    while Instant::now() < deadline && take(budget.as_deref()) {
        let start = Instant::now();
        match one_request(&mut send, &uri).await {
            Ok(true) => {
                t.ok += 1;
                let us = start.elapsed().as_micros();
                t.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            Ok(false) => t.failed += 1,
            Err(_) => {
                // The connection (or this stream) failed: count it and stop
                // this loop, as h2load does for a dead connection.
                t.failed += 1;
                break;
            }
        }
    }
    t
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

async fn run(o: Opts) -> Result<(), String> {
    let host = o.uri.host().ok_or("the URL has no host")?.to_string();
    let port = o.uri.port_u16().unwrap_or(443);
    let addr: SocketAddr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or(format!("{host}: no address"))?;
    let crypto = h3_ref::client_crypto(&o.ca).map_err(|e| e.to_string())?;
    let config = quinn::ClientConfig::new(Arc::new(crypto));
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(|e| format!("{e}"))?;
    let endpoint = quinn::Endpoint::client(bind).map_err(|e| format!("client endpoint: {e}"))?;
    // The certificate names `localhost` and 127.0.0.1; an IP URL is checked
    // against `localhost` (the harness's certificate has both).
    let server_name = if host.parse::<std::net::IpAddr>().is_ok() {
        "localhost".to_string()
    } else {
        host.clone()
    };
    let mut senders = Vec::with_capacity(o.conns);
    let mut drivers = Vec::with_capacity(o.conns);
    for _ in 0..o.conns {
        let connecting = endpoint
            .connect_with(config.clone(), addr, &server_name)
            .map_err(|e| format!("connect: {e}"))?;
        let conn = tokio::time::timeout(Duration::from_secs(10), connecting)
            .await
            .map_err(|_| "QUIC handshake timed out".to_string())?
            .map_err(|e| format!("QUIC handshake: {e}"))?;
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
            .await
            .map_err(|e| format!("HTTP/3 set-up: {e}"))?;
        drivers.push(tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        }));
        senders.push(send);
    }
    if o.verbose {
        if let Some(send) = senders.first_mut() {
            show_one(send, &o.uri).await;
        }
    }
    let start = Instant::now();
    // With `-n`, the duration is only a safety net.
    let deadline = start
        + if o.total.is_some() {
            Duration::from_secs(600)
        } else {
            o.duration
        };
    let budget = o.total.map(|n| Arc::new(AtomicU64::new(n)));
    let mut loops = Vec::with_capacity(o.conns * o.streams);
    for send in &senders {
        for _ in 0..o.streams {
            loops.push(tokio::spawn(stream_loop(
                send.clone(),
                o.uri.clone(),
                deadline,
                budget.clone(),
            )));
        }
    }
    let mut all = Tally::default();
    for l in loops {
        let t = l.await.map_err(|e| format!("a stream loop failed: {e}"))?;
        all.ok += t.ok;
        all.failed += t.failed;
        all.latencies_us.extend(t.latencies_us);
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(senders);
    endpoint.close(0u32.into(), b"done");
    for d in drivers {
        d.abort();
    }
    all.latencies_us.sort_unstable();
    println!(
        "h3load: {} connections x {} streams, {} s, {}",
        o.conns,
        o.streams,
        o.duration.as_secs(),
        o.uri
    );
    println!("requests: {} succeeded, {} failed", all.ok, all.failed);
    println!(
        "finished in {elapsed:.2}s, {:.2} req/s",
        all.ok as f64 / elapsed
    );
    println!(
        "latency: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&all.latencies_us, 0.50),
        percentile(&all.latencies_us, 0.99)
    );
    Ok(())
}

/// What quinn-udp enables on a loopback UDP socket on this kernel.
fn udp_offload() -> ExitCode {
    let sock = match std::net::UdpSocket::bind("127.0.0.1:0") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("h3load: cannot bind a UDP socket: {e}");
            return ExitCode::FAILURE;
        }
    };
    match quinn_udp::UdpSocketState::new((&sock).into()) {
        Ok(state) => {
            let gso = state.max_gso_segments();
            let gro = state.gro_segments();
            println!(
                "GSO: {} (max_gso_segments {gso})",
                if gso > 1 { "on" } else { "off" }
            );
            println!(
                "GRO: {} (gro_segments {gro})",
                if gro > 1 { "on" } else { "off" }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("h3load: quinn-udp refused the socket: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--udp-offload") {
        return udp_offload();
    }
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("h3load: {e}");
            return usage();
        }
    };
    // One thread: the harness pins the load client to one core.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("h3load: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("h3load: {e}");
            ExitCode::FAILURE
        }
    }
}
