//! Configuration values through the code the configuration binder uses
//! (`kestrel_hosting::kestrel_config`): time spans, sizes, booleans and
//! protocol names. The input is a list of `key=value` lines; each key is
//! picked from the real `Kestrel:` keys by its first byte.
//!
//! Properties: no panic; `parse_time_span` accepts no negative span and
//! what it accepts reads back the same when written in .NET's
//! `d.hh:mm:ss.fffffffff` form; a key bound alone sets its option to what
//! the value says (time spans as `parse_time_span`, booleans exactly
//! `true`/`false` in any case, nullable sizes `null`/empty or an integer)
//! or is refused; binding the same configuration twice gives the same
//! options.
#![no_main]

use std::path::Path;
use std::time::Duration;

use kestrel_core::KestrelServerOptions;
use kestrel_hosting::kestrel_config::{bind_server_options, parse_time_span, read_kestrel_section};
use kestrel_hosting::ConfigurationBuilder;
use libfuzzer_sys::fuzz_target;

const KEYS: &[&str] = &[
    "Kestrel:Limits:KeepAliveTimeout",
    "Kestrel:Limits:RequestHeadersTimeout",
    "Kestrel:Limits:MaxRequestBodySize",
    "Kestrel:Limits:MaxConcurrentConnections",
    "Kestrel:Limits:MaxRequestLineSize",
    "Kestrel:Limits:MaxRequestHeaderCount",
    "Kestrel:Limits:MinRequestBodyDataRate:BytesPerSecond",
    "Kestrel:Limits:MinRequestBodyDataRate:GracePeriod",
    "Kestrel:Limits:MinResponseDataRate",
    "Kestrel:Limits:Http2:MaxStreamsPerConnection",
    "Kestrel:Limits:Http2:KeepAlivePingDelay",
    "Kestrel:Limits:Http2:InitialStreamWindowSize",
    "Kestrel:AddServerHeader",
    "Kestrel:AllowHostHeaderOverride",
    "Kestrel:EndpointDefaults:Protocols",
    "Kestrel:Endpoints:E:Url",
    "Kestrel:Endpoints:E:Protocols",
    "Kestrel:Endpoints:E:SslProtocols",
    "Kestrel:Endpoints:E:ClientCertificateMode",
];

fn check_time_span(text: &str) {
    let Ok(d) = parse_time_span(text) else {
        return;
    };
    assert!(
        !text.trim().starts_with('-'),
        "a negative span {text:?} accepted"
    );
    let secs = d.as_secs();
    if secs / 86_400 <= 10_675_199 {
        let written = format!(
            "{}.{:02}:{:02}:{:02}.{:09}",
            secs / 86_400,
            secs / 3600 % 24,
            secs / 60 % 60,
            secs % 60,
            d.subsec_nanos()
        );
        assert_eq!(
            parse_time_span(&written),
            Ok(d),
            "{text:?} written as {written:?}"
        );
    }
}

fn bind(pairs: &[(&str, &str)]) -> Result<KestrelServerOptions, String> {
    let config = ConfigurationBuilder::new()
        .add_pairs(pairs.iter().copied())
        .build();
    let mut options = KestrelServerOptions::default();
    bind_server_options(&config, &mut options).map_err(|e| e.to_string())?;
    // Endpoints: URLs and enum values only (no certificate paths: the
    // fuzzer must not read files).
    read_kestrel_section(&config, Path::new("/nonexistent")).map_err(|e| e.to_string())?;
    Ok(options)
}

fn check_alone(key: &str, value: &str) {
    let result = bind(&[(key, value)]);
    let v = value.trim();
    let null = v.is_empty() || v.eq_ignore_ascii_case("null");
    match key {
        "Kestrel:Limits:KeepAliveTimeout" => {
            if let Ok(o) = &result {
                assert_eq!(Ok(o.limits.keep_alive_timeout), parse_time_span(value));
            }
        }
        "Kestrel:Limits:RequestHeadersTimeout" => {
            if let Ok(o) = &result {
                assert_eq!(Ok(o.limits.request_headers_timeout), parse_time_span(value));
            }
        }
        "Kestrel:Limits:MaxRequestBodySize" => match &result {
            Ok(o) if null => assert_eq!(o.limits.max_request_body_size, None),
            Ok(o) => assert_eq!(
                o.limits.max_request_body_size,
                Some(v.parse().expect("an integer was accepted"))
            ),
            Err(_) => assert!(!null && v.parse::<u64>().is_err(), "{value:?} refused"),
        },
        "Kestrel:AddServerHeader" => match &result {
            Ok(o) => assert_eq!(o.add_server_header, v.eq_ignore_ascii_case("true")),
            Err(_) => assert!(!v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false")),
        },
        "Kestrel:AllowHostHeaderOverride" => match &result {
            Ok(o) => {
                assert!(v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"));
                assert_eq!(o.allow_host_header_override, v.eq_ignore_ascii_case("true"));
            }
            Err(_) => assert!(!v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false")),
        },
        _ => {}
    }
    if key.ends_with("Timeout") || key.ends_with("GracePeriod") || key.ends_with("PingDelay") {
        if result.is_ok() && !null {
            assert!(parse_time_span(value).is_ok(), "{key}={value:?} accepted");
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for line in text.split('\n') {
        let Some((&first, _)) = line.as_bytes().split_first() else {
            continue;
        };
        let key = KEYS[usize::from(first) % KEYS.len()];
        let value = line.get(1..).unwrap_or("");
        check_time_span(value);
        check_alone(key, value);
        pairs.push((key, value));
    }
    let once = bind(&pairs).map(|o| format!("{:?}", o.limits));
    let twice = bind(&pairs).map(|o| format!("{:?}", o.limits));
    assert_eq!(once, twice, "binding is deterministic");
    let _ = Duration::ZERO;
});
