//! Hosting configuration: precedence of the sources, the Kestrel section
//! (limits, endpoints over HTTP, HTTPS with PEM and PFX, Unix sockets), and
//! start-up errors that name the key.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::tls as tls_support;

use std::path::Path;
use std::time::Duration;

use kestrel::hosting::{kestrel_from_context, WebHostBuilderKestrelExt};
use kestrel::{MinDataRate, ServerLimits};
use kestrel_hosting::{RunningHost, WebHost, WebHostBuilder};
use support::{curl, have_tool};
use tls_support::TestCa;

fn builder(root: &Path, args: &[&str]) -> WebHostBuilder {
    // First the binary's log capture: the default builder installs its own
    // console subscriber when the process has none.
    kestrel_test_support::logs::capture();
    let mut all = vec![
        "test".to_string(),
        "--contentRoot".into(),
        root.display().to_string(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    WebHost::create_default_builder(all)
}

async fn start_demo(root: &Path, args: &[&str]) -> RunningHost {
    builder(root, args)
        .use_kestrel(|_| {})
        .configure(|app| {
            app.run(kestrel_demo::app);
        })
        .build()
        .expect("host builds")
        .start()
        .await
        .expect("host starts")
}

#[test]
fn precedence_file_env_command_line_code() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("appsettings.json"),
        r#"{"Prec":{"FileOnly":"file","Env":"file","Cli":"file","Code":"file","EnvFile":"file"}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("appsettings.Development.json"),
        r#"{"Prec":{"EnvFile":"env-file","Env":"env-file"}}"#,
    )
    .unwrap();
    // Unique names: no other test reads them.
    std::env::set_var("ASPNETCORE_Prec__Env", "env");
    std::env::set_var("ASPNETCORE_Prec__Cli", "env");
    std::env::set_var("ASPNETCORE_Prec__Code", "env");
    let ctx = builder(
        dir.path(),
        &[
            "--environment",
            "Development",
            "--Prec:Cli=cli",
            "--prec:code",
            "cli",
        ],
    )
    .use_setting("Prec:Code", "code")
    .build_context()
    .unwrap();
    let c = &ctx.configuration;
    assert_eq!(ctx.environment, "Development");
    assert_eq!(c.get("Prec:FileOnly"), Some("file"));
    assert_eq!(c.get("Prec:EnvFile"), Some("env-file"));
    assert_eq!(c.get("Prec:Env"), Some("env"));
    assert_eq!(c.get("PREC:CLI"), Some("cli"));
    assert_eq!(c.get("Prec:Code"), Some("code"));
    for k in ["Prec__Env", "Prec__Cli", "Prec__Code"] {
        std::env::remove_var(format!("ASPNETCORE_{k}"));
    }
}

/// Every `Kestrel:Limits` key, from the command line, lands in `ServerLimits`.
#[test]
fn every_limit_key_binds_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--Kestrel:Limits:MaxConcurrentConnections=100",
        "--Kestrel:Limits:MaxConcurrentUpgradedConnections=7",
        "--Kestrel:Limits:MaxRequestBodySize=1000000",
        "--Kestrel:Limits:MaxRequestBufferSize=2097152",
        "--Kestrel:Limits:MaxRequestHeaderCount=64",
        "--Kestrel:Limits:MaxRequestHeadersTotalSize=65536",
        "--Kestrel:Limits:MaxRequestLineSize=16384",
        "--Kestrel:Limits:MaxResponseBufferSize=",
        "--Kestrel:Limits:KeepAliveTimeout=00:00:05",
        "--Kestrel:Limits:RequestHeadersTimeout=1.00:00:00",
        "--Kestrel:Limits:MinRequestBodyDataRate:BytesPerSecond=100",
        "--Kestrel:Limits:MinRequestBodyDataRate:GracePeriod=00:00:10",
        "--Kestrel:Limits:MinResponseDataRate=",
        "--Kestrel:Limits:Http2:MaxStreamsPerConnection=50",
        "--Kestrel:Limits:Http2:HeaderTableSize=8192",
        "--Kestrel:Limits:Http2:MaxFrameSize=32768",
        "--Kestrel:Limits:Http2:MaxRequestHeaderFieldSize=16384",
        "--Kestrel:Limits:Http2:InitialConnectionWindowSize=2097152",
        "--Kestrel:Limits:Http2:InitialStreamWindowSize=1048576",
        "--Kestrel:Limits:Http2:KeepAlivePingDelay=00:00:30",
        "--Kestrel:Limits:Http2:KeepAlivePingTimeout=00:00:00.5",
    ];
    let ctx = builder(dir.path(), &args).build_context().unwrap();
    let mut server = kestrel_from_context(&ctx, |_| {}).unwrap();
    let mut expected = ServerLimits {
        max_concurrent_connections: Some(100),
        max_concurrent_upgraded_connections: Some(7),
        max_request_body_size: Some(1_000_000),
        max_request_buffer_size: Some(2_097_152),
        max_request_header_count: 64,
        max_request_headers_total_size: 65_536,
        max_request_line_size: 16_384,
        max_response_buffer_size: None,
        keep_alive_timeout: Duration::from_secs(5),
        request_headers_timeout: Duration::from_secs(86_400),
        min_request_body_data_rate: Some(MinDataRate::new(100.0, Duration::from_secs(10)).unwrap()),
        min_response_data_rate: None,
        ..ServerLimits::default()
    };
    expected.http2.max_streams_per_connection = 50;
    expected.http2.header_table_size = 8192;
    expected.http2.max_frame_size = 32_768;
    expected.http2.max_request_header_field_size = 16_384;
    expected.http2.initial_connection_window_size = 2_097_152;
    expected.http2.initial_stream_window_size = 1_048_576;
    expected.http2.keep_alive_ping_delay = Some(Duration::from_secs(30));
    expected.http2.keep_alive_ping_timeout = Duration::from_millis(500);
    assert_eq!(server.options_mut().limits, expected);
}

#[test]
fn bad_values_fail_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (arg, needle) in [
        (
            "--Kestrel:Limits:MaxRequestBodySiz=10",
            "Kestrel:Limits:MaxRequestBodySiz",
        ),
        (
            "--Kestrel:Limits:KeepAliveTimeout=soon",
            "Kestrel:Limits:KeepAliveTimeout",
        ),
        (
            "--Kestrel:Limits:Http2:MaxFrameSize=abc",
            "Kestrel:Limits:Http2:MaxFrameSize",
        ),
        ("--Kestrel:Endpoints:A:Url=http://127.0.0.1:0", ""),
    ] {
        let r = builder(dir.path(), &[arg]).use_kestrel(|_| {}).build();
        if needle.is_empty() {
            assert!(r.is_ok(), "{arg}");
            continue;
        }
        let err = r.expect_err(arg).to_string();
        assert!(err.contains(needle), "{arg}: {err}");
    }
    // An HTTPS-only key on an http:// endpoint.
    let err = builder(
        dir.path(),
        &[
            "--Kestrel:Endpoints:Web:Url=http://127.0.0.1:0",
            "--Kestrel:Endpoints:Web:Certificate:Path=cert.pem",
        ],
    )
    .use_kestrel(|_| {})
    .build()
    .expect_err("https-only key on http")
    .to_string();
    assert!(err.contains("Certificate") && err.contains("Web"), "{err}");
}

#[tokio::test]
async fn http_and_unix_endpoints_from_configuration_win_over_urls() {
    if !have_tool("curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("app.sock");
    std::fs::write(
        dir.path().join("appsettings.json"),
        format!(
            r#"{{"Kestrel":{{"Endpoints":{{
                "Web":{{"Url":"http://127.0.0.1:0","Protocols":"Http1"}},
                "Sock":{{"Url":"http://unix:{}"}}}}}}}}"#,
            sock.display()
        ),
    )
    .unwrap();
    // URLs are overridden by the configured endpoints (with a warning).
    let host = start_demo(dir.path(), &["--urls", "http://127.0.0.1:1"]).await;
    let addrs = host.addresses();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    let web = addrs
        .iter()
        .find(|a| a.starts_with("http://127.0.0.1:"))
        .unwrap();
    assert!(!web.ends_with(":1"), "{addrs:?}");
    let out = curl(&[&format!("{web}/")]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("Hosted by Kestrel"));
    let out = curl(&["--unix-socket", sock.to_str().unwrap(), "http://localhost/"]).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Hosted by Kestrel"),
        "{out:?}"
    );
    host.stop().await;
    assert!(!sock.exists(), "the socket file is removed on shutdown");
}

#[tokio::test]
async fn prefer_hosting_urls_wins_over_configured_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let host = start_demo(
        dir.path(),
        &[
            "--Kestrel:Endpoints:Web:Url=http://127.0.0.1:0",
            "--urls=http://127.0.0.2:0",
            "--preferHostingUrls=true",
        ],
    )
    .await;
    let addrs = host.addresses();
    assert_eq!(addrs.len(), 1);
    assert!(addrs[0].starts_with("http://127.0.0.2:"), "{addrs:?}");
    host.stop().await;
}

async fn https_check(host: &RunningHost, ca: &TestCa) {
    let addr = host.addresses()[0].clone();
    // Endpoints from configuration are shown as http:// by the facade's
    // address binder (it does not know an endpoint's TLS middleware); only
    // https:// URLs display as https://.
    assert!(addr.contains("://127.0.0.1:"), "{addr}");
    let port = addr.rsplit(':').next().unwrap();
    let out = curl(&[
        "--cacert",
        ca.ca_path().to_str().unwrap(),
        "--resolve",
        &format!("localhost:{port}:127.0.0.1"),
        &format!("https://localhost:{port}/"),
    ])
    .await;
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("Hosted by Kestrel"), "{out:?}");
}

#[tokio::test]
async fn https_endpoints_from_configuration_with_pem_and_pfx() {
    if !have_tool("curl") || !have_tool("openssl") {
        return;
    }
    let ca = TestCa::new();
    let (cert, key) = ca.server_pem(&["localhost"]);
    ca.write("site.pem", &cert);
    ca.write("site.key", &key);
    let root = ca.dir.path().to_path_buf();

    // PEM: Path + KeyPath, relative to the content root.
    let host = start_demo(
        &root,
        &[
            "--Kestrel:Endpoints:Secure:Url=https://127.0.0.1:0",
            "--Kestrel:Endpoints:Secure:Certificate:Path=site.pem",
            "--Kestrel:Endpoints:Secure:Certificate:KeyPath=site.key",
        ],
    )
    .await;
    https_check(&host, &ca).await;
    host.stop().await;

    // PFX: Path + Password, made with openssl.
    let out = tls_support::openssl(&[
        "pkcs12",
        "-export",
        "-out",
        root.join("site.pfx").to_str().unwrap(),
        "-inkey",
        root.join("site.key").to_str().unwrap(),
        "-in",
        root.join("site.pem").to_str().unwrap(),
        "-passout",
        "pass:s3cret",
    ]);
    assert!(out.status.success(), "{out:?}");
    let host = start_demo(
        &root,
        &[
            "--Kestrel:Endpoints:Secure:Url=https://127.0.0.1:0",
            "--Kestrel:Endpoints:Secure:Certificate:Path=site.pfx",
            "--Kestrel:Endpoints:Secure:Certificate:Password=s3cret",
        ],
    )
    .await;
    https_check(&host, &ca).await;
    host.stop().await;

    // Certificates:Default serves an https:// URL; a wrong password is a start-up error.
    let host = start_demo(
        &root,
        &[
            "--urls=https://127.0.0.1:0",
            "--Kestrel:Certificates:Default:Path=site.pfx",
            "--Kestrel:Certificates:Default:Password=s3cret",
        ],
    )
    .await;
    https_check(&host, &ca).await;
    host.stop().await;
    let err = builder(
        &root,
        &[
            "--Kestrel:Endpoints:Secure:Url=https://127.0.0.1:0",
            "--Kestrel:Endpoints:Secure:Certificate:Path=site.pfx",
            "--Kestrel:Endpoints:Secure:Certificate:Password=wrong",
        ],
    )
    .use_kestrel(|_| {})
    .build()
    .expect_err("wrong password")
    .to_string();
    assert!(
        err.contains("Kestrel:Endpoints:Secure:Certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn allowed_hosts_from_configuration_filter_requests() {
    let dir = tempfile::tempdir().unwrap();
    let host = start_demo(
        dir.path(),
        &["--urls=http://127.0.0.1:0", "--AllowedHosts=example.com"],
    )
    .await;
    let addr: std::net::SocketAddr = host.addresses()[0]
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let ok = support::raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(support::status_of(&ok), 200, "{ok}");
    let bad = support::raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(support::status_of(&bad), 400, "{bad}");
    host.stop().await;
}
