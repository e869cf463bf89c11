//! The demo server: `cargo run --release` serves the sample page of the
//! Kestrel docs on `http://localhost:5000` (or `--urls`, or `ASPNETCORE_URLS`).
//!
//! * `GET`/`HEAD /`: "Hosted by Kestrel", the listening addresses and the request URL;
//! * `POST /echo`: echoes the request body as it streams in;
//! * other methods on those paths: 405 with `Allow`;
//! * files under `wwwroot/` (e.g. `/kestrel.css`, `/about.html`), with
//!   ETag, conditional and range requests; other paths: 404;
//! * `GET /healthz` (every check), `/healthz/live` (liveness: no checks, 200
//!   while the process runs) and `/healthz/ready` (readiness, JSON report):
//!   503 from the moment a graceful shutdown begins.
//!
//! It runs on `kestrel-hosting`'s default web host: settings come from
//! `appsettings.json` (next to it: the content root is the working
//! directory), `appsettings.{Environment}.json`, `ASPNETCORE_*` variables
//! and the command line, e.g. `--urls http://*:8080`,
//! `--Kestrel:Limits:KeepAliveTimeout=00:00:05`, `--AllowedHosts=example.com`,
//! `--Kestrel:Endpoints:Web:Url=http://127.0.0.1:8080` (docs/configuration.md).
//!
//! Ctrl+C (or SIGTERM) shuts it down gracefully (30 s, `--shutdownTimeoutSeconds`;
//! `--shutdownDelaySeconds=5` keeps serving, readiness at 503, for 5 s first);
//! under systemd it accepts socket activation and sends `READY=1`/`STOPPING=1`.
//!
//! HTTPS: `--urls https://localhost:5001` serves the development certificate
//! (created on first use). `kestrel-demo dev-certs --export cert.pem` writes
//! it for a client to trust (like `dotnet dev-certs https --export-path`),
//! e.g. `curl --cacert cert.pem https://localhost:5001/`.
//!
//! HTTP/3 (the default `http3` feature): `--Kestrel:Endpoints:H3:Url=https://localhost:5001
//! --Kestrel:Endpoints:H3:Protocols=Http1AndHttp2AndHttp3` also serves QUIC
//! on UDP 5001 (127.0.0.1 and ::1), advertised by `Alt-Svc` on HTTP/1.1 and
//! HTTP/2 responses; the README shows HTTP/3 clients for it.

use std::process::ExitCode;

use kestrel::hosting::WebHostBuilderKestrelExt;
use kestrel_demo::app;
use kestrel_hosting::middleware::{HealthCheckEndpoint, HealthChecks, StaticFiles};
use kestrel_hosting::WebHost;

/// `kestrel-demo dev-certs [--export <path>]`: create (or find) the HTTPS
/// development certificate, print where it is, and optionally export it.
fn dev_certs(args: &[String]) -> ExitCode {
    const USAGE: &str = "usage: kestrel-demo dev-certs [--export <path>]";
    let export = match args {
        [] => None,
        [flag, path] if flag == "--export" || flag == "--export-path" || flag == "-ep" => {
            Some(path)
        }
        [flag] if flag == "--help" || flag == "-h" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let dev = match kestrel::tls::DevCertificate::load_or_create() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{} development certificate: {}",
        if dev.was_created() {
            "Created the"
        } else {
            "Found the"
        },
        dev.path().display()
    );
    if let Some(path) = export {
        if let Err(e) = dev.export(path) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        println!("Exported the certificate (PEM, no private key) to {path}");
    }
    ExitCode::SUCCESS
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("dev-certs") {
        return dev_certs(&args[1..]);
    }
    // Configuration: appsettings.json, appsettings.{Environment}.json,
    // ASPNETCORE_* variables, then the command line (docs/configuration.md).
    let builder = WebHost::create_default_builder(std::env::args());
    // Readiness fails as soon as the graceful shutdown begins.
    let checks = HealthChecks::new().add_shutdown_check(builder.lifetime(), ["ready"]);
    let host = builder
        .use_kestrel(|_options| {})
        .configure_with(move |ctx, pipeline| {
            pipeline.use_middleware(HealthCheckEndpoint::new("/healthz", &checks));
            pipeline
                .use_middleware(HealthCheckEndpoint::new("/healthz/live", &checks).tags(["live"]));
            pipeline.use_middleware(
                HealthCheckEndpoint::new("/healthz/ready", &checks)
                    .tags(["ready"])
                    .json(true),
            );
            // Files under <content root>/wwwroot first (there is no
            // index.html, so `/` reaches the sample page), then the demo app.
            pipeline.use_middleware(StaticFiles::new(ctx.content_root.join("wwwroot")));
            pipeline.run(app);
        })
        .build();
    let host = match host {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("usage: kestrel-demo [--urls <url>[;<url>…]] [--<Config:Key>=<value> …] | kestrel-demo dev-certs [--export <path>]");
            return ExitCode::from(2);
        }
    };
    match host.run().await {
        Ok(()) => {
            tracing::info!("Application is shut down.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
