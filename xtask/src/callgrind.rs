//! `cargo xtask callgrind`: instructions per pipelined HTTP/1.1 request
//! (or, with `--case h2c`, per HTTP/2 request: h2load, one connection, 16
//! streams at a time), counted by `valgrind --tool=callgrind`, for
//! hello-kestrel beside hello-hyper (with and without `pipeline_flush`).
//! With `--case h3`: per HTTP/3 request (h3load, one QUIC connection, 16
//! streams at a time), hello-kestrel beside the bare h3 server hello-h3.
//!
//! Instruction counts do not depend on what else the machine is doing, so
//! they are the figure to check each step of hot-path work against (timings
//! on a shared 2-core machine are not). Each server runs twice under
//! callgrind, answering a small and a large number of `GET /` requests sent
//! 16 per write on one connection; the difference of the two totals divided
//! by the difference of the request counts removes start-up and shutdown.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Requests per write, as in the bench's `pipelined-16` case.
const DEPTH: usize = 16;
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
const STATUS_LINE: &[u8] = b"HTTP/1.1 200 OK\r\n";

struct Target {
    name: &'static str,
    bin: PathBuf,
    args: Vec<String>,
}

/// What the servers are driven with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    /// HTTP/1.1 `GET /`, 16 per write on one connection.
    Pipelined,
    /// h2c `GET /` with h2load: one connection, 16 concurrent streams.
    H2c,
    /// HTTP/3 `GET /` with h3load: one QUIC connection, 16 concurrent
    /// streams (the servers run with `--tls`).
    H3,
}

struct Opts {
    case: Case,
    requests: usize,
    only: Option<Vec<String>>,
    kestrel_bin: Option<PathBuf>,
    build: bool,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        case: Case::Pipelined,
        requests: 24_000,
        only: None,
        kestrel_bin: None,
        build: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--requests" => {
                o.requests = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n >= 4 * DEPTH)
                    .ok_or("--requests takes a number of at least 64")?;
            }
            "--only" => {
                o.only = Some(
                    it.next()
                        .ok_or("--only takes a list")?
                        .split(',')
                        .map(str::to_string)
                        .collect(),
                );
            }
            "--kestrel-bin" => {
                o.kestrel_bin = Some(PathBuf::from(
                    it.next().ok_or("--kestrel-bin takes a path")?,
                ));
            }
            "--no-build" => o.build = false,
            "--case" => {
                o.case = match it.next().map(String::as_str) {
                    Some("pipelined") => Case::Pipelined,
                    Some("h2c") => Case::H2c,
                    Some("h3") => Case::H3,
                    _ => return Err("--case takes pipelined, h2c or h3".into()),
                };
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

/// Send `n` pipelined requests (16 per write) and read every response.
fn drive(addr: SocketAddr, n: usize) -> std::io::Result<()> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let batch = REQUEST.repeat(DEPTH);
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut sent = 0;
    while sent < n {
        let k = DEPTH.min(n - sent);
        s.write_all(&batch[..k * REQUEST.len()])?;
        sent += k;
        let mut seen = 0;
        while seen < k {
            let got = s.read(&mut buf)?;
            if got == 0 {
                return Err(std::io::Error::other("the server closed the connection"));
            }
            pending.extend_from_slice(&buf[..got]);
            // Count whole status lines; keep a partial one for the next read.
            let mut start = 0;
            while let Some(i) = find(&pending[start..], STATUS_LINE) {
                seen += 1;
                start += i + STATUS_LINE.len();
            }
            let keep = pending
                .len()
                .saturating_sub(STATUS_LINE.len() - 1)
                .max(start);
            pending.drain(..keep);
        }
    }
    Ok(())
}

/// Send `n` h2c requests with h2load (one connection, 16 streams at a time)
/// and check that every one succeeded.
fn drive_h2c(addr: SocketAddr, n: usize) -> std::io::Result<()> {
    let out = Command::new("h2load")
        .args(["-n", &n.to_string(), "-c", "1", "-m", &DEPTH.to_string()])
        .arg(format!("http://{addr}/"))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("{n} succeeded");
    if out.status.success() && text.contains(&want) {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "h2load did not complete {n} requests: {}",
            text.lines()
                .find(|l| l.starts_with("requests:"))
                .unwrap_or("no summary")
        )))
    }
}

/// Send `n` HTTP/3 requests with h3load (one QUIC connection, 16 streams
/// at a time) and check that every one succeeded.
fn drive_h3(port: u16, n: usize, h3load: &Path, ca: &Path) -> std::io::Result<()> {
    let out = Command::new(h3load)
        .args(["-c", "1", "-m", &DEPTH.to_string(), "-n", &n.to_string()])
        .arg("--ca")
        .arg(ca)
        .arg(format!("https://127.0.0.1:{port}/"))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("requests: {n} succeeded, 0 failed");
    if out.status.success() && text.contains(&want) {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "h3load did not complete {n} requests: {}{}",
            text.lines()
                .find(|l| l.starts_with("requests:"))
                .unwrap_or("no summary"),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn wait_listening(addr: SocketAddr) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(120) {
        if TcpStream::connect(addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Total instructions of one callgrind run (its `summary:`/`totals:` line).
fn total(out: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(out).ok()?;
    text.lines()
        .rev()
        .find_map(|l| {
            l.strip_prefix("summary: ")
                .or_else(|| l.strip_prefix("totals: "))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The HTTP/3 case's files: the h3load binary and the certificate (and key)
/// the servers present.
struct H3Files {
    h3load: PathBuf,
    cert: (PathBuf, PathBuf),
}

fn run_once(
    t: &Target,
    case: Case,
    dir: &Path,
    port: u16,
    n: usize,
    h3: Option<&H3Files>,
) -> Result<u64, String> {
    let tag = match case {
        Case::Pipelined => "",
        Case::H2c => "h2c-",
        Case::H3 => "h3-",
    };
    let out = dir.join(format!("{tag}{}-{n}.callgrind", t.name));
    let _ = std::fs::remove_file(&out);
    let mut child = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&t.bin)
        .args(&t.args)
        .args(h3.into_iter().flat_map(|f| {
            [
                std::ffi::OsStr::new("--tls"),
                f.cert.0.as_os_str(),
                f.cert.1.as_os_str(),
            ]
        }))
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run valgrind: {e}"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let up = match case {
        Case::H3 => crate::bench::wait_udp_bound(port, 120),
        _ => wait_listening(addr),
    };
    let driven = if up {
        match (case, h3) {
            (Case::Pipelined, _) => drive(addr, n),
            (Case::H2c, _) => drive_h2c(addr, n),
            (Case::H3, Some(f)) => drive_h3(port, n, &f.h3load, &f.cert.0),
            (Case::H3, None) => Err(std::io::Error::other("no h3load")),
        }
        .map_err(|e| format!("{}: {e}", t.name))
    } else {
        Err(format!("{} did not start listening", t.name))
    };
    // SIGINT: hello-kestrel stops gracefully; hello-hyper dies of it. Either
    // way callgrind writes its counts on the way out.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
    driven?;
    total(&out).ok_or_else(|| format!("no totals in {}", out.display()))
}

/// Entry point of `cargo xtask callgrind`.
pub fn callgrind(root: &Path, args: &[String]) -> ExitCode {
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("xtask callgrind: {e}\nusage: cargo xtask callgrind [--case pipelined|h2c|h3] [--requests N] [--only kestrel,hyper,hyper-pf,h3] [--kestrel-bin PATH] [--no-build]");
            return ExitCode::from(2);
        }
    };
    if opts.case == Case::H2c && Command::new("h2load").arg("--version").output().is_err() {
        eprintln!("xtask callgrind: h2load not found (apt-get install nghttp2-client)");
        return ExitCode::FAILURE;
    }
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("xtask callgrind: valgrind not found (apt-get install valgrind)");
        return ExitCode::FAILURE;
    }
    if opts.build && !crate::bench::build_servers(root) {
        return ExitCode::FAILURE;
    }
    let release = root.join("target/release");
    let targets = [
        Target {
            name: "kestrel",
            bin: opts
                .kestrel_bin
                .clone()
                .unwrap_or_else(|| release.join("hello-kestrel")),
            args: vec![],
        },
        Target {
            name: "hyper",
            bin: release.join("hello-hyper"),
            args: vec![],
        },
        Target {
            name: "hyper-pf",
            bin: release.join("hello-hyper"),
            args: vec!["--pipeline-flush".into()],
        },
        Target {
            name: "h3",
            bin: release.join("hello-h3"),
            args: vec![],
        },
    ];
    let dir = root.join("target/bench/callgrind");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("xtask callgrind: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let h3 = if opts.case == Case::H3 {
        match crate::bench::write_certificate(&dir) {
            Ok(cert) => Some(H3Files {
                h3load: release.join("h3load"),
                cert,
            }),
            Err(e) => {
                eprintln!("xtask callgrind: cannot write the test certificate: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let small = opts.requests / 6;
    let large = opts.requests;
    let mut rows = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        if opts
            .only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|n| n == t.name))
        {
            continue;
        }
        // `pipeline_flush` is an HTTP/1 option: hyper-pf is hyper on h2c.
        // hyper has no HTTP/3; hello-h3 has nothing else.
        let serves = match opts.case {
            Case::Pipelined => t.name != "h3",
            Case::H2c => t.name == "kestrel" || t.name == "hyper",
            Case::H3 => t.name == "kestrel" || t.name == "h3",
        };
        if !serves {
            continue;
        }
        let port = 18_900 + i as u16;
        eprintln!("xtask callgrind: {} ({small} and {large} requests)", t.name);
        let counts = run_once(t, opts.case, &dir, port, small, h3.as_ref())
            .and_then(|a| Ok((a, run_once(t, opts.case, &dir, port, large, h3.as_ref())?)));
        match counts {
            Ok((a, b)) => {
                let per = b.saturating_sub(a) as f64 / (large - small) as f64;
                rows.push((t.name, per));
            }
            Err(e) => {
                eprintln!("xtask callgrind: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    match opts.case {
        Case::Pipelined => println!("| server | instructions per pipelined request |"),
        Case::H2c => println!("| server | instructions per h2c request (16 streams at a time) |"),
        Case::H3 => println!("| server | instructions per HTTP/3 request (16 streams at a time) |"),
    }
    println!("|---|---|");
    let kestrel = rows.iter().find(|r| r.0 == "kestrel").map(|r| r.1);
    for (name, per) in &rows {
        match kestrel {
            Some(k) if *name != "kestrel" => {
                println!("| {name} | {per:.0} (kestrel ÷ {name}: {:.2}×) |", k / per)
            }
            _ => println!("| {name} | {per:.0} |"),
        }
    }
    ExitCode::SUCCESS
}
