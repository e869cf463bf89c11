use super::*;
use crate::config::ConfigurationBuilder;

fn cfg(pairs: &[(&str, &str)]) -> Configuration {
    ConfigurationBuilder::new()
        .add_pairs(pairs.iter().copied())
        .build()
}

#[test]
fn time_spans() {
    let ok = [
        ("00:00:05", Duration::from_secs(5)),
        ("1.00:00:00", Duration::from_secs(86_400)),
        ("00:00:00.5", Duration::from_millis(500)),
        ("00:02:10", Duration::from_secs(130)),
        ("01:00", Duration::from_secs(3600)),
        ("5", Duration::from_secs(5)),
        ("0.25", Duration::from_millis(250)),
        (
            "2.03:04:05.0060000",
            Duration::new(2 * 86_400 + 3 * 3600 + 4 * 60 + 5, 6_000_000),
        ),
    ];
    for (t, d) in ok {
        assert_eq!(parse_time_span(t), Ok(d), "{t}");
    }
    for bad in [
        "",
        "abc",
        "-00:00:05",
        "00:60:00",
        "24:00:00",
        "1:2:3:4",
        "00:00:05.",
        "-1",
        "NaN",
    ] {
        assert!(parse_time_span(bad).is_err(), "{bad}");
    }
}

/// Every `Kestrel:Limits` key binds to its field.
#[test]
fn every_limit_binds() {
    type Check = fn(&ServerLimits) -> bool;
    let table: &[(&str, &str, Check)] = &[
        ("MaxConcurrentConnections", "10", |l| {
            l.max_concurrent_connections == Some(10)
        }),
        ("MaxConcurrentUpgradedConnections", "3", |l| {
            l.max_concurrent_upgraded_connections == Some(3)
        }),
        ("MaxRequestBodySize", "1000", |l| {
            l.max_request_body_size == Some(1000)
        }),
        ("MaxRequestBufferSize", "2000000", |l| {
            l.max_request_buffer_size == Some(2_000_000)
        }),
        ("MaxRequestHeaderCount", "50", |l| {
            l.max_request_header_count == 50
        }),
        ("MaxRequestHeadersTotalSize", "16384", |l| {
            l.max_request_headers_total_size == 16384
        }),
        ("MaxRequestLineSize", "4096", |l| {
            l.max_request_line_size == 4096
        }),
        ("MaxResponseBufferSize", "0", |l| {
            l.max_response_buffer_size == Some(0)
        }),
        ("KeepAliveTimeout", "00:00:05", |l| {
            l.keep_alive_timeout == Duration::from_secs(5)
        }),
        ("RequestHeadersTimeout", "7", |l| {
            l.request_headers_timeout == Duration::from_secs(7)
        }),
        ("MinRequestBodyDataRate:BytesPerSecond", "100", |l| {
            l.min_request_body_data_rate
                .as_ref()
                .unwrap()
                .bytes_per_second
                == 100.0
        }),
        ("MinRequestBodyDataRate:GracePeriod", "00:00:10", |l| {
            l.min_request_body_data_rate.as_ref().unwrap().grace_period == Duration::from_secs(10)
        }),
        ("MinRequestBodyDataRate", "", |l| {
            l.min_request_body_data_rate.is_none()
        }),
        ("MinResponseDataRate:BytesPerSecond", "50.5", |l| {
            l.min_response_data_rate.as_ref().unwrap().bytes_per_second == 50.5
        }),
        ("MinResponseDataRate:GracePeriod", "3", |l| {
            l.min_response_data_rate.as_ref().unwrap().grace_period == Duration::from_secs(3)
        }),
        ("MinResponseDataRate", "null", |l| {
            l.min_response_data_rate.is_none()
        }),
        ("Http2:MaxStreamsPerConnection", "10", |l| {
            l.http2.max_streams_per_connection == 10
        }),
        ("Http2:HeaderTableSize", "0", |l| {
            l.http2.header_table_size == 0
        }),
        ("Http2:MaxFrameSize", "32768", |l| {
            l.http2.max_frame_size == 32768
        }),
        ("Http2:MaxRequestHeaderFieldSize", "8192", |l| {
            l.http2.max_request_header_field_size == 8192
        }),
        ("Http2:InitialConnectionWindowSize", "131072", |l| {
            l.http2.initial_connection_window_size == 131072
        }),
        ("Http2:InitialStreamWindowSize", "98304", |l| {
            l.http2.initial_stream_window_size == 98304
        }),
        ("Http2:KeepAlivePingDelay", "00:00:30", |l| {
            l.http2.keep_alive_ping_delay == Some(Duration::from_secs(30))
        }),
        ("Http2:KeepAlivePingTimeout", "00:00:05", |l| {
            l.http2.keep_alive_ping_timeout == Duration::from_secs(5)
        }),
    ];
    for (key, value, check) in table {
        // Case-insensitive keys: bind with the key upper-cased too.
        for k in [
            format!("Kestrel:Limits:{key}"),
            format!("KESTREL:LIMITS:{}", key.to_uppercase()),
        ] {
            let mut l = ServerLimits::default();
            bind_limits(&cfg(&[(&k, value)]), &mut l).unwrap();
            assert!(check(&l), "{k}={value} → {l:?}");
            assert_ne!(l, ServerLimits::default(), "{k} changed nothing");
        }
    }
    // Every documented key is in the table.
    for key in LIMIT_KEYS {
        assert!(table.iter().any(|(k, _, _)| k == key), "{key} untested");
    }
    // Nullable limits clear with an empty value.
    let mut l = ServerLimits::default();
    bind_limits(
        &cfg(&[
            ("Kestrel:Limits:MaxRequestBodySize", ""),
            ("Kestrel:Limits:MaxResponseBufferSize", "null"),
        ]),
        &mut l,
    )
    .unwrap();
    assert_eq!(l.max_request_body_size, None);
    assert_eq!(l.max_response_buffer_size, None);
}

#[test]
fn bad_limits_name_the_key() {
    for (key, value) in [
        ("Kestrel:Limits:MaxRequestBodySiz", "10"),
        ("Kestrel:Limits:MaxRequestBodySize", "ten"),
        ("Kestrel:Limits:KeepAliveTimeout", "5 minutes"),
        ("Kestrel:Limits:Http2:MaxStreams", "5"),
        ("Kestrel:Limits:MinRequestBodyDataRate:Bytes", "5"),
        ("Kestrel:Limits:MaxRequestHeaderCount", "-1"),
    ] {
        let err = bind_limits(&cfg(&[(key, value)]), &mut ServerLimits::default()).unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
    // Out of range after parsing: the validation message.
    let err = bind_limits(
        &cfg(&[("Kestrel:Limits:Http2:MaxFrameSize", "10")]),
        &mut ServerLimits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, KestrelConfigError::Limits(_)), "{err}");
}

/// A reload computes the limits as start-up does: configuration over
/// the defaults, then what code set; keys code overrides are reported.
#[test]
fn code_limits_win_at_every_reload() {
    let start = cfg(&[
        ("Kestrel:Limits:MaxRequestBodySize", "1000"),
        ("Kestrel:Limits:MaxRequestLineSize", "4096"),
    ]);
    let mut configured = ServerLimits::default();
    bind_limits(&start, &mut configured).unwrap();
    let mut coded = configured.clone();
    // The callback: one limit the configuration also sets, one it does not.
    coded.max_request_line_size = 2048;
    coded.http2.max_streams_per_connection = 7;
    let code = CodeLimits::new(configured, coded.clone());
    assert_eq!(
        code.limits_for(&start).unwrap(),
        (coded, vec![]),
        "unchanged configuration: the start-up limits"
    );
    let (limits, ignored) = code
        .limits_for(&cfg(&[
            ("Kestrel:Limits:MaxRequestHeaderCount", "5"),
            ("Kestrel:Limits:MaxRequestLineSize", "100"),
            ("Kestrel:Limits:Http2:MaxStreamsPerConnection", "9"),
        ]))
        .unwrap();
    assert_eq!(limits.max_request_header_count, 5, "a new key applies");
    assert_eq!(
        limits.max_request_body_size,
        Some(30_000_000),
        "a removed key goes back to the default"
    );
    assert_eq!(limits.max_request_line_size, 2048, "code wins");
    assert_eq!(limits.http2.max_streams_per_connection, 7, "code wins");
    assert_eq!(
        ignored,
        [
            "Kestrel:Limits:MaxRequestLineSize",
            "Kestrel:Limits:Http2:MaxStreamsPerConnection"
        ]
    );
    let err = code
        .limits_for(&cfg(&[("Kestrel:Limits:MaxRequestHeaderCount", "many")]))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Kestrel:Limits:MaxRequestHeaderCount"),
        "{err}"
    );
    // Inconsistent limits are refused, as at start-up.
    let err = code
        .limits_for(&cfg(&[("Kestrel:Limits:MaxRequestBufferSize", "3000")]))
        .unwrap_err();
    assert!(matches!(err, KestrelConfigError::Limits(_)), "{err}");
}

#[test]
fn unknown_kestrel_children_are_refused() {
    let mut o = KestrelServerOptions::default();
    let err =
        bind_server_options(&cfg(&[("Kestrel:Limit:KeepAliveTimeout", "5")]), &mut o).unwrap_err();
    assert!(
        err.to_string().contains("Kestrel:Limit:KeepAliveTimeout"),
        "{err}"
    );
    let err =
        bind_server_options(&cfg(&[("Kestrel:AddServerHeadr", "false")]), &mut o).unwrap_err();
    assert!(err.to_string().contains("Kestrel:AddServerHeadr"), "{err}");
    bind_server_options(
        &cfg(&[
            ("Kestrel:AddServerHeader", "false"),
            ("Kestrel:AllowSynchronousIO", "true"),
            ("kestrel:allowhostheaderoverride", "TRUE"),
        ]),
        &mut o,
    )
    .unwrap();
    assert!(!o.add_server_header);
    assert!(o.allow_host_header_override);
    assert!(bind_server_options(&cfg(&[("Kestrel:AddServerHeader", "no")]), &mut o).is_err());
}

#[test]
fn endpoints() {
    let root = Path::new("/srv/app");
    let c = cfg(&[
        ("Kestrel:Endpoints:Web:Url", "http://127.0.0.1:8080"),
        ("Kestrel:Endpoints:Web:Protocols", "Http1"),
        ("Kestrel:Endpoints:Secure:Url", "https://*:8443"),
        (
            "Kestrel:Endpoints:Secure:Certificate:Path",
            "certs/site.pem",
        ),
        (
            "Kestrel:Endpoints:Secure:Certificate:KeyPath",
            "/etc/key.pem",
        ),
        ("Kestrel:Endpoints:Secure:SslProtocols:0", "Tls13"),
        (
            "Kestrel:Endpoints:Secure:ClientCertificateMode",
            "allowcertificate",
        ),
        (
            "Kestrel:Endpoints:Secure:Sni:a.example.com:Certificate:Path",
            "a.pfx",
        ),
        (
            "Kestrel:Endpoints:Secure:Sni:a.example.com:Certificate:Password",
            "pw",
        ),
        ("Kestrel:Endpoints:Sock:Url", "http://unix:/run/app.sock"),
        ("Kestrel:EndpointDefaults:Protocols", "Http1AndHttp2"),
        ("Kestrel:Certificates:Default:Path", "default.pfx"),
    ]);
    let s = read_kestrel_section(&c, root).unwrap();
    assert_eq!(s.endpoints.len(), 3);
    let secure = s.endpoints.iter().find(|e| e.name == "Secure").unwrap();
    assert_eq!(secure.url.scheme, Scheme::Https);
    let cert = secure.tls.certificate.as_ref().unwrap();
    assert_eq!(
        cert.path.as_deref(),
        Some(Path::new("/srv/app/certs/site.pem"))
    );
    assert_eq!(cert.key_path.as_deref(), Some(Path::new("/etc/key.pem")));
    assert_eq!(secure.tls.ssl_protocols, Some(SslProtocolsSetting::Tls13));
    assert_eq!(
        secure.tls.client_certificate_mode,
        Some(ClientCertificateModeSetting::AllowCertificate)
    );
    assert_eq!(secure.sni[0].0, "a.example.com");
    let web = s.endpoints.iter().find(|e| e.name == "Web").unwrap();
    assert_eq!(web.tls.protocols, Some(HttpProtocols::HTTP1));
    assert_eq!(
        s.endpoint_defaults.protocols,
        Some(HttpProtocols::HTTP1_AND_HTTP2)
    );
    assert!(s.default_certificate.is_some());

    for (pairs, needle) in [
        (
            vec![
                ("Kestrel:Endpoints:A:Url", "http://127.0.0.1:1"),
                ("Kestrel:Endpoints:A:Certificate:Path", "x.pem"),
            ],
            "Certificate",
        ),
        (
            vec![
                ("Kestrel:Endpoints:A:Url", "http://127.0.0.1:1"),
                (
                    "Kestrel:Endpoints:A:ClientCertificateMode",
                    "AllowCertificate",
                ),
            ],
            "ClientCertificateMode",
        ),
        (vec![("Kestrel:Endpoints:A:Protocols", "Http1")], "no Url"),
        (
            vec![("Kestrel:Endpoints:A:Url", "ftp://x:1")],
            "Kestrel:Endpoints:A:Url",
        ),
        (
            vec![
                ("Kestrel:Endpoints:A:Url", "http://127.0.0.1:1"),
                ("Kestrel:Endpoints:A:Protocols", "Http9"),
            ],
            "Kestrel:Endpoints:A:Protocols",
        ),
        (
            vec![
                ("Kestrel:Endpoints:A:Url", "http://127.0.0.1:1"),
                ("Kestrel:Endpoints:A:Ulr", "x"),
            ],
            "Kestrel:Endpoints:A:Ulr",
        ),
    ] {
        let err = read_kestrel_section(&cfg(&pairs), root).unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }
}
