//! `cargo xtask bench`: Kestrel for Rust side by side with hyper on this
//! machine, in one run. See `benches/README.md`.
//!
//! Each case runs every server in turn (interleaved), `reps` times; the
//! server is pinned to core 0 and the load generator to core 1. Besides
//! requests/s, the server's own CPU time per request is read from
//! `/proc/<pid>/stat`, because on two cores the load generator saturates first.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

struct Server {
    name: &'static str,
    bin: &'static str,
    args: &'static [&'static str],
    /// Serves the TCP cases (HTTP/1.1, HTTP/2).
    tcp: bool,
    /// Serves the HTTP/3 case (QUIC on the `--tls` port).
    h3: bool,
}

impl Server {
    fn serves(&self, case: &Case) -> bool {
        match case.load {
            Load::H3load => self.h3,
            Load::Idle => self.tcp && self.name != "hyper-pf",
            _ => self.tcp,
        }
    }
}

/// `hello-kestrel` built with the `metrics` feature (a Prometheus recorder
/// installed), run with `--metrics` to measure what metrics cost.
const KESTREL_METRICS: Server = Server {
    name: "kestrel+metrics",
    bin: "../bench-metrics/release/hello-kestrel",
    args: &[],
    tcp: true,
    // Built without the `http3` feature.
    h3: false,
};

const SERVERS: &[Server] = &[
    Server {
        name: "kestrel",
        bin: "hello-kestrel",
        args: &[],
        tcp: true,
        h3: true,
    },
    Server {
        name: "hyper",
        bin: "hello-hyper",
        args: &[],
        tcp: true,
        h3: false,
    },
    Server {
        name: "hyper-pf",
        bin: "hello-hyper",
        args: &["--pipeline-flush"],
        tcp: true,
        h3: false,
    },
    // The bare h3 + h3-quinn reference (benches/h3-ref): HTTP/3 only.
    Server {
        name: "h3",
        bin: "hello-h3",
        args: &[],
        tcp: false,
        h3: true,
    },
];

#[derive(Clone, Copy, PartialEq)]
enum Load {
    Wrk {
        path: &'static str,
        script: Option<&'static str>,
    },
    H2load,
    /// `h3load` (benches/h3-ref): HTTP/3 over QUIC, 16 connections × 32
    /// streams, `GET /`.
    H3load,
    Idle,
}

struct Case {
    name: &'static str,
    load: Load,
    /// Served over HTTPS (a throwaway self-signed certificate; HTTP/1.1 or
    /// HTTP/2 by ALPN).
    tls: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "plaintext",
        load: Load::Wrk {
            path: "/",
            script: None,
        },
        tls: false,
    },
    Case {
        name: "pipelined-16",
        load: Load::Wrk {
            path: "/",
            script: Some("pipeline.lua"),
        },
        tls: false,
    },
    Case {
        name: "json-4k",
        load: Load::Wrk {
            path: "/json",
            script: None,
        },
        tls: false,
    },
    Case {
        name: "echo-64k",
        load: Load::Wrk {
            path: "/echo",
            script: Some("post64k.lua"),
        },
        tls: false,
    },
    Case {
        name: "h2c",
        load: Load::H2load,
        tls: false,
    },
    Case {
        name: "https",
        load: Load::Wrk {
            path: "/",
            script: None,
        },
        tls: true,
    },
    Case {
        name: "h2-tls",
        load: Load::H2load,
        tls: true,
    },
    Case {
        name: "h3",
        load: Load::H3load,
        tls: true,
    },
    Case {
        name: "idle-10k",
        load: Load::Idle,
        tls: false,
    },
];

const PIPELINE_LUA: &str = r#"
init = function(args)
  local r = {}
  for i = 1, 16 do r[i] = wrk.format(nil, "/") end
  req = table.concat(r)
end
request = function() return req end
"#;

const POST64K_LUA: &str = r#"
wrk.method = "POST"
wrk.body = string.rep("x", 65536)
wrk.headers["Content-Type"] = "application/octet-stream"
"#;

#[derive(Default, Clone)]
struct Sample {
    rps: f64,
    cpu_us_per_req: f64,
    /// The kernel's share of `cpu_us_per_req` (system time: the socket calls).
    sys_us_per_req: f64,
    p50_ms: f64,
    p99_ms: f64,
    bytes_per_conn: f64,
    ok: bool,
    note: String,
}

struct Opts {
    duration: u32,
    reps: usize,
    idle_conns: usize,
    only: Vec<String>,
    metrics: bool,
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// (utime, stime) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    Some((f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?))
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

fn wait_listening(addr: SocketAddr) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if TcpStream::connect(addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Whether a UDP socket is bound on 127.0.0.1:`port` (from `/proc/net/udp`).
fn udp_bound(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp").is_ok_and(|t| {
        t.lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
    })
}

/// Wait (up to `secs`) until a UDP socket is bound on 127.0.0.1:`port`.
pub(crate) fn wait_udp_bound(port: u16, secs: u64) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if udp_bound(port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn start_server(
    dir: &Path,
    s: &Server,
    port: u16,
    tls: Option<&(PathBuf, PathBuf)>,
) -> std::io::Result<Child> {
    let mut cmd = format!(
        "ulimit -n 65536 2>/dev/null; exec taskset -c 0 {} ",
        dir.join(s.bin).display()
    );
    for a in s.args {
        cmd.push_str(a);
        cmd.push(' ');
    }
    if let Some((cert, key)) = tls {
        let _ = write!(cmd, "--tls {} {} ", cert.display(), key.display());
    }
    cmd.push_str(&port.to_string());
    Command::new("bash")
        .args(["-c", &cmd])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

fn parse_latency_ms(v: &str) -> Option<f64> {
    let (num, mul) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, 1.0)
    };
    num.parse::<f64>().ok().map(|x| x * mul)
}

/// Parse wrk's output: (requests/s, total requests, p50 ms, p99 ms).
fn parse_wrk(out: &str) -> Option<(f64, f64, f64, f64)> {
    let mut rps = None;
    let mut total = None;
    let (mut p50, mut p99) = (0.0, 0.0);
    for line in out.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            rps = v.trim().parse().ok();
        } else if t.contains(" requests in ") {
            total = t.split_whitespace().next().and_then(|n| n.parse().ok());
        } else if let Some(v) = t.strip_prefix("50%") {
            p50 = parse_latency_ms(v.trim()).unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("99%") {
            p99 = parse_latency_ms(v.trim()).unwrap_or(0.0);
        }
    }
    Some((rps?, total?, p50, p99))
}

/// Parse h3load's output: (requests/s, succeeded requests, p50 ms, p99 ms).
fn parse_h3load(out: &str) -> Option<(f64, f64, f64, f64)> {
    let (mut rps, mut ok, mut p50, mut p99) = (None, None, 0.0, 0.0);
    for line in out.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("finished in") {
            rps = rest
                .split(',')
                .nth(1)
                .and_then(|s| s.trim().strip_suffix(" req/s"))
                .and_then(|s| s.parse().ok());
        } else if let Some(rest) = t.strip_prefix("requests:") {
            ok = rest.split_whitespace().next().and_then(|n| n.parse().ok());
        } else if let Some(rest) = t.strip_prefix("latency:") {
            // "p50 1.23 ms, p99 4.56 ms"
            for part in rest.split(',') {
                let f: Vec<&str> = part.split_whitespace().collect();
                let v = f.get(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
                match f.first() {
                    Some(&"p50") => p50 = v,
                    Some(&"p99") => p99 = v,
                    _ => {}
                }
            }
        }
    }
    Some((rps?, ok?, p50, p99))
}

/// Parse h2load's output: (requests/s, succeeded requests).
fn parse_h2load(out: &str) -> Option<(f64, f64)> {
    let mut rps = None;
    let mut ok = None;
    for line in out.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("finished in") {
            // "finished in 5.00s, 123456.78 req/s, 12.3MB/s"
            rps = rest
                .split(',')
                .nth(1)
                .and_then(|s| s.trim().strip_suffix(" req/s"))
                .and_then(|s| s.parse().ok());
        } else if let Some(rest) = t.strip_prefix("requests:") {
            ok = rest
                .split(',')
                .find(|p| p.contains("succeeded"))
                .and_then(|p| p.split_whitespace().next())
                .and_then(|n| n.parse().ok());
        }
    }
    Some((rps?, ok?))
}

/// Where the load generators find their files.
struct LoadEnv<'a> {
    /// The Lua scripts and the certificate.
    scripts: &'a Path,
    /// The release binaries (`h3load`).
    bin_dir: &'a Path,
    /// The certificate the HTTPS servers present (the HTTP/3 client trusts it).
    cert: &'a Path,
}

fn run_load(case: &Case, port: u16, pid: u32, opts: &Opts, env: &LoadEnv<'_>, tck: f64) -> Sample {
    let scripts = env.scripts;
    let scheme = if case.tls { "https" } else { "http" };
    let url = |path: &str| format!("{scheme}://127.0.0.1:{port}{path}");
    let before = cpu_ticks(pid).unwrap_or((0, 0));
    let (out, parsed): (String, Option<(f64, f64, f64, f64)>) = match case.load {
        Load::Wrk { path, script } => {
            let mut cmd = Command::new("taskset");
            cmd.args([
                "-c",
                "1",
                "wrk",
                "-t1",
                "-c64",
                &format!("-d{}s", opts.duration),
                "--latency",
            ]);
            if let Some(s) = script {
                cmd.arg("-s").arg(scripts.join(s));
            }
            cmd.arg(url(path));
            let out = cmd
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let p = parse_wrk(&out);
            (out, p)
        }
        Load::H2load => {
            let out = Command::new("taskset")
                .args([
                    "-c",
                    "1",
                    "h2load",
                    "-c16",
                    "-m32",
                    "-D",
                    &opts.duration.to_string(),
                    &url("/"),
                ])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let p = parse_h2load(&out).map(|(r, n)| (r, n, 0.0, 0.0));
            (out, p)
        }
        Load::H3load => {
            let out = Command::new("taskset")
                .args(["-c", "1"])
                .arg(env.bin_dir.join("h3load"))
                .args(["-c", "16", "-m", "32", "-d", &opts.duration.to_string()])
                .arg("--ca")
                .arg(env.cert)
                .arg(url("/"))
                .output()
                .map(|o| {
                    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
                    s.push_str(&String::from_utf8_lossy(&o.stderr));
                    s
                })
                .unwrap_or_default();
            let p = parse_h3load(&out);
            (out, p)
        }
        Load::Idle => unreachable!("idle memory is measured separately"),
    };
    let after = cpu_ticks(pid).unwrap_or(before);
    match parsed {
        Some((rps, total, p50, p99)) if total > 0.0 => Sample {
            rps,
            cpu_us_per_req: ((after.0 + after.1) - (before.0 + before.1)) as f64 * 1e6
                / tck
                / total,
            sys_us_per_req: (after.1 - before.1) as f64 * 1e6 / tck / total,
            p50_ms: p50,
            p99_ms: p99,
            ok: true,
            ..Default::default()
        },
        _ => Sample {
            note: format!(
                "load generator failed: {}",
                out.lines().last().unwrap_or("no output")
            ),
            ..Default::default()
        },
    }
}

/// A self-signed certificate for `localhost`/127.0.0.1, written as PEM
/// files under `dir`: (certificate, key).
pub(crate) fn write_certificate(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let cert = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
    let (cert_path, key_path) = (dir.join("bench-cert.pem"), dir.join("bench-key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).map_err(|e| e.to_string())?;
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).map_err(|e| e.to_string())?;
    Ok((cert_path, key_path))
}

/// Open `n` keep-alive connections (one request each), then measure RSS growth.
fn run_idle(port: u16, pid: u32, n: usize) -> Sample {
    std::thread::sleep(Duration::from_millis(300));
    let base = rss_bytes(pid).unwrap_or(0);
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("xtask"));
    let cmd = format!(
        "ulimit -n 65536 2>/dev/null; exec taskset -c 1 {} idle-client 127.0.0.1:{port} {n}",
        exe.display()
    );
    let child = Command::new("bash")
        .args(["-c", &cmd])
        .stdout(Stdio::piped())
        .stdin(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        return Sample {
            note: "could not start the idle client".into(),
            ..Default::default()
        };
    };
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let opened: usize = line
        .trim()
        .strip_prefix("ready ")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    std::thread::sleep(Duration::from_millis(1500));
    let after = rss_bytes(pid).unwrap_or(base);
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    if opened == 0 {
        return Sample {
            note: format!("idle client opened no connections ({})", line.trim()),
            ..Default::default()
        };
    }
    Sample {
        bytes_per_conn: after.saturating_sub(base) as f64 / opened as f64,
        ok: true,
        note: if opened < n {
            format!("only {opened} connections opened")
        } else {
            String::new()
        },
        ..Default::default()
    }
}

/// The idle client: open N connections, send one request on each and read
/// its response, print `ready N`, then hold them until stdin closes.
pub fn idle_client(addr: &str, n: usize) -> std::process::ExitCode {
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        eprintln!("idle-client: bad address {addr}");
        return std::process::ExitCode::from(2);
    };
    let mut conns = Vec::with_capacity(n);
    let mut buf = [0u8; 4096];
    for _ in 0..n {
        let Ok(mut s) = TcpStream::connect(addr) else {
            break;
        };
        if s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            .is_err()
        {
            break;
        }
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        match s.read(&mut buf) {
            Ok(m) if m > 0 => conns.push(s),
            _ => break,
        }
    }
    println!("ready {}", conns.len());
    let _ = std::io::stdout().flush();
    let mut sink = String::new();
    let _ = std::io::stdin().read_to_string(&mut sink);
    std::process::ExitCode::SUCCESS
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        duration: 10,
        reps: 3,
        idle_conns: 10_000,
        only: Vec::new(),
        metrics: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--duration" => {
                o.duration = val("--duration")?
                    .parse()
                    .map_err(|e| format!("--duration: {e}"))?
            }
            "--reps" => o.reps = val("--reps")?.parse().map_err(|e| format!("--reps: {e}"))?,
            "--idle-conns" => {
                o.idle_conns = val("--idle-conns")?
                    .parse()
                    .map_err(|e| format!("--idle-conns: {e}"))?
            }
            "--only" => o.only = val("--only")?.split(',').map(str::to_string).collect(),
            "--metrics" => o.metrics = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

/// Build hello-kestrel (without the demo's default features, with
/// `http3`), hello-hyper, and the HTTP/3 tools hello-h3 and h3load in
/// release mode; false (with a message) if the build failed.
pub fn build_servers(root: &Path) -> bool {
    eprintln!("xtask: building the benchmark servers in release mode");
    let built = Command::new(env!("CARGO"))
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "kestrel-demo",
            // No Prometheus endpoint (the demo's default feature) in the benchmark server.
            "--no-default-features",
            "--bin",
            "hello-kestrel",
            // HTTP/3 on the `--tls` port (the `h3` case).
            "--features",
            "kestrel-demo/http3",
            "-p",
            "hyper-ref",
            // `--bin` selects binaries across the packages: name them all.
            "--bin",
            "hello-hyper",
            "-p",
            "h3-ref",
            "--bin",
            "hello-h3",
            "--bin",
            "h3load",
        ])
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("xtask: build failed");
        return false;
    }
    true
}

/// Run the benchmark.
pub fn bench(root: &Path, args: &[String]) -> std::process::ExitCode {
    let opts = match parse_opts(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("xtask bench: {e}\nusage: cargo xtask bench [--duration S] [--reps N] [--idle-conns N] [--only case,case]");
            return std::process::ExitCode::from(2);
        }
    };
    let mut missing = Vec::new();
    for tool in ["wrk", "taskset"] {
        if !have(tool) {
            missing.push(tool);
        }
    }
    if !missing.is_empty() {
        eprintln!(
            "xtask bench: missing {}: install with `apt-get install wrk util-linux`",
            missing.join(", ")
        );
        return std::process::ExitCode::FAILURE;
    }
    let h2load = have("h2load");
    if !h2load {
        eprintln!("xtask bench: h2load not found (apt-get install nghttp2-client): the h2c case is skipped");
    }
    if !build_servers(root) {
        return std::process::ExitCode::FAILURE;
    }
    let mut servers: Vec<&Server> = SERVERS.iter().collect();
    if opts.metrics {
        eprintln!("xtask bench: building hello-kestrel with metrics");
        let built = Command::new(env!("CARGO"))
            .current_dir(root)
            .args([
                "build",
                "--release",
                "-q",
                "-p",
                "kestrel-demo",
                "--no-default-features",
                "--bin",
                "hello-kestrel",
                "--features",
                "metrics",
            ])
            .env("CARGO_TARGET_DIR", root.join("target/bench-metrics"))
            .status();
        if !built.is_ok_and(|s| s.success()) {
            eprintln!("xtask bench: build with metrics failed");
            return std::process::ExitCode::FAILURE;
        }
        servers.insert(1, &KESTREL_METRICS);
    }
    let bin_dir = root.join("target/release");
    let out_dir = root.join("target/bench");
    let _ = std::fs::create_dir_all(&out_dir);
    let _ = std::fs::write(out_dir.join("pipeline.lua"), PIPELINE_LUA);
    let _ = std::fs::write(out_dir.join("post64k.lua"), POST64K_LUA);
    let cert = match write_certificate(&out_dir) {
        Ok(paths) => paths,
        Err(e) => {
            eprintln!("xtask bench: cannot write the test certificate: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let tck = clk_tck();
    let load_env = LoadEnv {
        scripts: &out_dir,
        bin_dir: &bin_dir,
        cert: &cert.0,
    };
    let cases: Vec<&Case> = CASES
        .iter()
        .filter(|c| opts.only.is_empty() || opts.only.iter().any(|o| o == c.name))
        .collect();
    // samples[case][server] = Vec<Sample>
    let mut samples: Vec<Vec<Vec<Sample>>> = vec![vec![Vec::new(); servers.len()]; cases.len()];
    let mut port = 18_000u16;
    for rep in 0..opts.reps {
        for (ci, case) in cases.iter().enumerate() {
            if case.load == Load::H2load && !h2load {
                continue;
            }
            for (si, server) in servers.iter().enumerate() {
                if !server.serves(case) {
                    continue;
                }
                port += 1;
                let tls = case.tls.then_some(&cert);
                let mut child = match start_server(&bin_dir, server, port, tls) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("xtask bench: cannot start {}: {e}", server.name);
                        return std::process::ExitCode::FAILURE;
                    }
                };
                let addr: SocketAddr = ([127, 0, 0, 1], port).into();
                let up = if case.load == Load::H3load {
                    wait_udp_bound(port, 10)
                } else {
                    wait_listening(addr)
                };
                let sample = if !up {
                    Sample {
                        note: "server did not start".into(),
                        ..Default::default()
                    }
                } else {
                    let pid = child.id();
                    match case.load {
                        Load::Idle => run_idle(port, pid, opts.idle_conns),
                        _ => run_load(case, port, pid, &opts, &load_env, tck),
                    }
                };
                let _ = child.kill();
                let _ = child.wait();
                eprintln!(
                    "rep {} {:>13} {:>9}: {:>10.0} req/s  {:>6.2} us/req ({:.2} sys)  p50 {:.2} ms  p99 {:.2} ms  {:>7.0} B/conn {}",
                    rep + 1,
                    case.name,
                    server.name,
                    sample.rps,
                    sample.cpu_us_per_req,
                    sample.sys_us_per_req,
                    sample.p50_ms,
                    sample.p99_ms,
                    sample.bytes_per_conn,
                    sample.note
                );
                samples[ci][si].push(sample);
            }
        }
    }
    let udp = if cases.iter().any(|c| c.load == Load::H3load) {
        udp_offload(&bin_dir)
    } else {
        String::new()
    };
    report(&cases, &servers, &samples, &opts, &out_dir, &udp)
}

/// What GSO/GRO quinn-udp enables on this kernel (`h3load --udp-offload`),
/// one line.
fn udp_offload(bin_dir: &Path) -> String {
    Command::new(bin_dir.join("h3load"))
        .arg("--udp-offload")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|e| format!("h3load --udp-offload failed: {e}"))
}

/// The index of the case named `name`, if it ran.
fn case_index(cases: &[&Case], name: &str) -> Option<usize> {
    cases.iter().position(|c| c.name == name)
}

fn report(
    cases: &[&Case],
    servers: &[&Server],
    samples: &[Vec<Vec<Sample>>],
    opts: &Opts,
    out_dir: &Path,
    udp: &str,
) -> std::process::ExitCode {
    let med =
        |v: &Vec<Sample>, f: fn(&Sample) -> f64| median(v.iter().filter(|s| s.ok).map(f).collect());
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Kestrel for Rust vs hyper\n\nMedians of {} runs per case, {} s each; server pinned to core 0, load generator to core 1.\n`hyper-pf` is hyper with `pipeline_flush(true)`. Ratios are kestrel ÷ peer (for CPU/request and latency, lower is better).\n",
        opts.reps, opts.duration
    );
    let _ = writeln!(
        md,
        "| case | server | req/s | CPU µs/req | of which kernel | p50 ms | p99 ms | idle B/conn | req/s ratio | CPU ratio |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut json_cases = Vec::new();
    for (ci, case) in cases.iter().enumerate() {
        let ours = &samples[ci][0];
        let (o_rps, o_cpu, o_mem) = (
            med(ours, |s| s.rps),
            med(ours, |s| s.cpu_us_per_req),
            med(ours, |s| s.bytes_per_conn),
        );
        let mut servers_json = Vec::new();
        for (si, server) in servers.iter().enumerate() {
            let v = &samples[ci][si];
            if v.is_empty() {
                continue;
            }
            let (rps, cpu, sys, p50, p99, mem) = (
                med(v, |s| s.rps),
                med(v, |s| s.cpu_us_per_req),
                med(v, |s| s.sys_us_per_req),
                med(v, |s| s.p50_ms),
                med(v, |s| s.p99_ms),
                med(v, |s| s.bytes_per_conn),
            );
            let (r_ratio, c_ratio) = if si == 0 {
                (String::from("—"), String::from("—"))
            } else if case.load == Load::Idle {
                (String::from("—"), format!("mem {:.2}×", o_mem / mem))
            } else {
                (
                    format!("{:.2}×", o_rps / rps),
                    format!("{:.2}×", o_cpu / cpu),
                )
            };
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {} | {} |",
                case.name, server.name, rps, cpu, sys, p50, p99, mem, r_ratio, c_ratio
            );
            servers_json.push(json!({
                "server": server.name, "rps": rps, "cpu_us_per_req": cpu, "sys_us_per_req": sys, "p50_ms": p50, "p99_ms": p99,
                "idle_bytes_per_conn": mem, "runs": v.iter().filter(|s| s.ok).count(),
                "notes": v.iter().filter(|s| !s.note.is_empty()).map(|s| s.note.clone()).collect::<Vec<_>>(),
            }));
        }
        json_cases.push(json!({ "case": case.name, "servers": servers_json }));
    }
    // HTTP/3 against our own HTTP/2 over TLS (the issue's second target).
    let mut h3_vs_h2 = serde_json::Value::Null;
    if let (Some(h3), Some(h2)) = (case_index(cases, "h3"), case_index(cases, "h2-tls")) {
        let (a, b) = (&samples[h3][0], &samples[h2][0]);
        let rps = med(a, |s| s.rps) / med(b, |s| s.rps);
        let cpu = med(a, |s| s.cpu_us_per_req) / med(b, |s| s.cpu_us_per_req);
        let _ = writeln!(
            md,
            "\nKestrel HTTP/3 ÷ Kestrel HTTP/2 over TLS: req/s {rps:.2}×, CPU per request {cpu:.2}×"
        );
        h3_vs_h2 = json!({ "rps_ratio": rps, "cpu_ratio": cpu });
    }
    if !udp.is_empty() {
        let _ = writeln!(md, "\nUDP offload (quinn-udp on this kernel): {udp}");
    }
    println!("{md}");
    let doc = json!({ "duration_s": opts.duration, "reps": opts.reps, "cases": json_cases, "h3_vs_h2_tls": h3_vs_h2, "udp_offload": udp });
    let _ = std::fs::write(out_dir.join("results.md"), &md);
    let _ = std::fs::write(
        out_dir.join("results.json"),
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    );
    eprintln!(
        "xtask bench: wrote {} and results.json",
        out_dir.join("results.md").display()
    );
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_and_h2load() {
        let wrk = "  Latency Distribution\n     50%  520.00us\n     75%    1.00ms\n     90%    2.00ms\n     99%    3.50ms\n  480126 requests in 5.01s, 163.46MB read\nRequests/sec:  95776.56\n";
        assert_eq!(parse_wrk(wrk), Some((95776.56, 480126.0, 0.52, 3.5)));
        let h2 = "finished in 5.00s, 120000.50 req/s, 10MB/s\nrequests: 600000 total, 600000 started, 600000 done, 599999 succeeded, 1 failed, 0 errored, 0 timeout\n";
        assert_eq!(parse_h2load(h2), Some((120000.5, 599999.0)));
        let h3 = "h3load: 16 connections x 32 streams, 5 s, https://127.0.0.1:1/\nrequests: 250000 succeeded, 2 failed\nfinished in 5.01s, 49900.20 req/s\nlatency: p50 1.25 ms, p99 4.50 ms\n";
        assert_eq!(parse_h3load(h3), Some((49900.2, 250000.0, 1.25, 4.5)));
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
