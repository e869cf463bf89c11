//! The demo server: `cargo run --release` serves the sample page of the
//! Kestrel docs on `http://localhost:5000` (or `--urls`, or `ASPNETCORE_URLS`).
//!
//! * `GET`/`HEAD /`: "Hosted by Kestrel", the listening addresses and the request URL;
//! * `POST /echo`: echoes the request body as it streams in;
//! * other methods on those paths: 405 with `Allow`; other paths: 404.
//!
//! Ctrl+C (or SIGTERM) shuts it down gracefully.
//!
//! HTTPS: `--urls https://localhost:5001` serves the development certificate
//! (created on first use). `kestrel-demo dev-certs --export cert.pem` writes
//! it for a client to trust (like `dotnet dev-certs https --export-path`),
//! e.g. `curl --cacert cert.pem https://localhost:5001/`.

use std::process::ExitCode;

use kestrel::KestrelServer;
use kestrel_demo::app;
use kestrel_hosting::ConfigurationBuilder;

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("dev-certs") {
        return dev_certs(&args[1..]);
    }
    let config = match ConfigurationBuilder::new()
        .add_env_vars("ASPNETCORE_")
        .add_command_line(std::env::args().skip(1))
    {
        Ok(b) => b.build(),
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("usage: kestrel-demo [--urls <url>[;<url>…]] | kestrel-demo dev-certs [--export <path>]");
            return ExitCode::from(2);
        }
    };
    let mut server = KestrelServer::default();
    if let Some(urls) = config.get("urls") {
        server = server.urls([urls]);
    }
    let running = match server.start(app).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!("Application started. Press Ctrl+C to shut down.");
    running.stop_on(shutdown_signal()).await;
    tracing::info!("Application is shut down.");
    ExitCode::SUCCESS
}
