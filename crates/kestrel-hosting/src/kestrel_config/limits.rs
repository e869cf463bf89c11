//! `Kestrel:Limits` and the top-level switches, and the limits set in code.

use super::values::*;
use super::*;

/// Every key under `Kestrel:Limits` (lowercase, relative to the section), for
/// the documentation and the tests.
pub const LIMIT_KEYS: &[&str] = &[
    "MaxConcurrentConnections",
    "MaxConcurrentUpgradedConnections",
    "MaxRequestBodySize",
    "MaxRequestBufferSize",
    "MaxRequestHeaderCount",
    "MaxRequestHeadersTotalSize",
    "MaxRequestLineSize",
    "MaxResponseBufferSize",
    "KeepAliveTimeout",
    "RequestHeadersTimeout",
    "MinRequestBodyDataRate",
    "MinRequestBodyDataRate:BytesPerSecond",
    "MinRequestBodyDataRate:GracePeriod",
    "MinResponseDataRate",
    "MinResponseDataRate:BytesPerSecond",
    "MinResponseDataRate:GracePeriod",
    "Http2:MaxStreamsPerConnection",
    "Http2:HeaderTableSize",
    "Http2:MaxFrameSize",
    "Http2:MaxRequestHeaderFieldSize",
    "Http2:InitialConnectionWindowSize",
    "Http2:InitialStreamWindowSize",
    "Http2:KeepAlivePingDelay",
    "Http2:KeepAlivePingTimeout",
];

pub(super) fn bind_rate(
    key: &str,
    field: &str,
    value: &str,
    rate: &mut Option<MinDataRate>,
) -> Result<(), KestrelConfigError> {
    match field {
        "" => {
            if value.trim().is_empty() || value.trim().eq_ignore_ascii_case("null") {
                *rate = None;
                Ok(())
            } else {
                Err(invalid(
                    key,
                    value,
                    "only null/empty (no minimum rate) can be set here; use :BytesPerSecond and :GracePeriod",
                ))
            }
        }
        "bytespersecond" => {
            let bps: f64 = value
                .trim()
                .parse()
                .map_err(|_| invalid(key, value, "expected a number of bytes per second"))?;
            let mut r = rate.unwrap_or_default();
            r.bytes_per_second = bps;
            *rate = Some(r);
            Ok(())
        }
        "graceperiod" => {
            let grace = parse_time_key(key, value)?;
            let mut r = rate.unwrap_or_default();
            r.grace_period = grace;
            *rate = Some(r);
            Ok(())
        }
        _ => Err(KestrelConfigError::UnknownKey(key.to_string())),
    }
}

/// Read `Kestrel:Limits` into `limits` (only the keys present change), then
/// validate the result. See the [module docs](crate::kestrel_config) for the formats.
pub fn bind_limits(
    config: &Configuration,
    limits: &mut ServerLimits,
) -> Result<(), KestrelConfigError> {
    const PREFIX: &str = "kestrel:limits:";
    for (key, value) in config.section("Kestrel:Limits") {
        let rel = key.to_ascii_lowercase();
        let rel = rel.get(PREFIX.len()..).unwrap_or("").to_string();
        let h2 = &mut limits.http2;
        match rel.as_str() {
            "maxconcurrentconnections" => {
                limits.max_concurrent_connections = nullable(key, value, parse_num)?
            }
            "maxconcurrentupgradedconnections" => {
                limits.max_concurrent_upgraded_connections = nullable(key, value, parse_num)?
            }
            "maxrequestbodysize" => limits.max_request_body_size = nullable(key, value, parse_num)?,
            "maxrequestbuffersize" => {
                limits.max_request_buffer_size = nullable(key, value, parse_num)?
            }
            "maxrequestheadercount" => limits.max_request_header_count = parse_num(key, value)?,
            "maxrequestheaderstotalsize" => {
                limits.max_request_headers_total_size = parse_num(key, value)?
            }
            "maxrequestlinesize" => limits.max_request_line_size = parse_num(key, value)?,
            "maxresponsebuffersize" => {
                limits.max_response_buffer_size = nullable(key, value, parse_num)?
            }
            "keepalivetimeout" => limits.keep_alive_timeout = parse_time_key(key, value)?,
            "requestheaderstimeout" => limits.request_headers_timeout = parse_time_key(key, value)?,
            "http2:maxstreamsperconnection" => {
                h2.max_streams_per_connection = parse_num(key, value)?
            }
            "http2:headertablesize" => h2.header_table_size = parse_num(key, value)?,
            "http2:maxframesize" => h2.max_frame_size = parse_num(key, value)?,
            "http2:maxrequestheaderfieldsize" => {
                h2.max_request_header_field_size = parse_num(key, value)?
            }
            "http2:initialconnectionwindowsize" => {
                h2.initial_connection_window_size = parse_num(key, value)?
            }
            "http2:initialstreamwindowsize" => {
                h2.initial_stream_window_size = parse_num(key, value)?
            }
            "http2:keepalivepingdelay" => {
                // null/empty, or TimeSpan.MaxValue's days, mean "never ping".
                h2.keep_alive_ping_delay = nullable(key, value, parse_time_key)?
                    .filter(|d| d.as_secs() < 10_675_199 * 86_400)
            }
            "http2:keepalivepingtimeout" => {
                h2.keep_alive_ping_timeout = parse_time_key(key, value)?
            }
            other => {
                let (section, field) = other.split_once(':').unwrap_or((other, ""));
                match section {
                    "minrequestbodydatarate" => {
                        bind_rate(key, field, value, &mut limits.min_request_body_data_rate)?
                    }
                    "minresponsedatarate" => {
                        bind_rate(key, field, value, &mut limits.min_response_data_rate)?
                    }
                    _ => return Err(KestrelConfigError::UnknownKey(key.to_string())),
                }
            }
        }
    }
    limits
        .validate()
        .map_err(|e| KestrelConfigError::Limits(e.to_string()))
}

/// The direct children of `Kestrel` that mean something (to us or, for the
/// last ones, to .NET only: accepted and ignored).
pub(super) const KESTREL_CHILDREN: &[&str] = &[
    "limits",
    "endpoints",
    "endpointdefaults",
    "certificates",
    "addserverheader",
    "allowresponseheadercompression",
    "allowalternateschemes",
    "allowhostheaderoverride",
    "disablecertificatefilewatching",
    "allowsynchronousio",
    "disablestringreuse",
];

/// A misspelled section (`Kestrel:Limit:KeepAliveTimeout`) would otherwise
/// be silently ignored: refuse unknown children of `Kestrel`.
pub(super) fn check_kestrel_children(config: &Configuration) -> Result<(), KestrelConfigError> {
    for child in config.children("Kestrel") {
        if !KESTREL_CHILDREN.contains(&child.to_ascii_lowercase().as_str()) {
            let key = config
                .section(&format!("Kestrel:{child}"))
                .first()
                .map(|(k, _)| k.to_string())
                .unwrap_or_else(|| format!("Kestrel:{child}"));
            return Err(KestrelConfigError::UnknownKey(key));
        }
    }
    Ok(())
}

/// [`bind_limits`] into `options.limits`, plus the top-level switches
/// `Kestrel:AddServerHeader`, `Kestrel:AllowResponseHeaderCompression`,
/// `Kestrel:AllowAlternateSchemes` and `Kestrel:AllowHostHeaderOverride`.
/// Any other child of `Kestrel` than those, `Limits`, `Endpoints`,
/// `EndpointDefaults` and `Certificates` is an error (`AllowSynchronousIO`
/// and `DisableStringReuse`, which mean nothing here, are ignored).
/// (The shutdown timeout is the host's `shutdownTimeoutSeconds` setting.)
pub fn bind_server_options(
    config: &Configuration,
    options: &mut KestrelServerOptions,
) -> Result<(), KestrelConfigError> {
    check_kestrel_children(config)?;
    bind_limits(config, &mut options.limits)?;
    let flags: [(&str, &mut bool); 4] = [
        ("Kestrel:AddServerHeader", &mut options.add_server_header),
        (
            "Kestrel:AllowResponseHeaderCompression",
            &mut options.allow_response_header_compression,
        ),
        (
            "Kestrel:AllowAlternateSchemes",
            &mut options.allow_alternate_schemes,
        ),
        (
            "Kestrel:AllowHostHeaderOverride",
            &mut options.allow_host_header_override,
        ),
    ];
    for (key, slot) in flags {
        if let Some(v) = config.get(key) {
            *slot = parse_bool(key, v)?;
        }
    }
    Ok(())
}

/// The limits set in code (the `use_kestrel` callback, which runs after
/// the configuration was bound), told apart from those the configuration
/// gave, so that a configuration reload computes the limits exactly as
/// start-up does: `Kestrel:Limits` over the defaults, then every limit set
/// in code over those. **Code wins over configuration**, at start-up and at
/// every reload.
///
/// A limit counts as set in code when the callback changed it. A limit the
/// callback set to the very value the configuration had given it cannot be
/// told apart from one it left alone: it follows the configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CodeLimits {
    /// The limits bound from the configuration at start-up (before the code ran).
    configured: ServerLimits,
    /// The limits after the code ran.
    coded: ServerLimits,
}

impl CodeLimits {
    /// `configured`: the limits bound from the configuration at start-up
    /// (before the code ran); `coded`: the same after the code ran.
    pub fn new(configured: ServerLimits, coded: ServerLimits) -> Self {
        CodeLimits { configured, coded }
    }

    /// The limits for `config`, as start-up makes them: `Kestrel:Limits`
    /// bound over the defaults by [`bind_limits`] (its errors name the key),
    /// then the limits set in code. Also returns the keys whose
    /// configuration value changed since start-up but that code sets (so the
    /// change is not applied).
    pub fn limits_for(
        &self,
        config: &Configuration,
    ) -> Result<(ServerLimits, Vec<&'static str>), KestrelConfigError> {
        let mut limits = ServerLimits::default();
        bind_limits(config, &mut limits)?;
        let ignored = self.overlay(&mut limits);
        limits
            .validate()
            .map_err(|e| KestrelConfigError::Limits(e.to_string()))?;
        Ok((limits, ignored))
    }

    /// Put every limit set in code into `limits`; returns the
    /// `Kestrel:Limits` keys whose configured value was overridden and
    /// differs from the one at start-up.
    fn overlay(&self, limits: &mut ServerLimits) -> Vec<&'static str> {
        let (before, after) = (&self.configured, &self.coded);
        // Every limit, so that a new one cannot be forgotten below.
        let ServerLimits {
            max_concurrent_connections: _,
            max_concurrent_upgraded_connections: _,
            max_request_body_size: _,
            max_request_buffer_size: _,
            max_request_header_count: _,
            max_request_headers_total_size: _,
            max_request_line_size: _,
            max_response_buffer_size: _,
            keep_alive_timeout: _,
            request_headers_timeout: _,
            min_request_body_data_rate: _,
            min_response_data_rate: _,
            http2:
                kestrel_core::Http2Limits {
                    max_streams_per_connection: _,
                    header_table_size: _,
                    max_frame_size: _,
                    max_request_header_field_size: _,
                    initial_connection_window_size: _,
                    initial_stream_window_size: _,
                    keep_alive_ping_delay: _,
                    keep_alive_ping_timeout: _,
                    enable_connect_protocol: _,
                    max_control_frames_per_second: _,
                },
        } = after;
        let mut ignored = Vec::new();
        macro_rules! code_wins {
            ($($($field:ident).+ => $key:literal),* $(,)?) => {$(
                if after.$($field).+ != before.$($field).+ {
                    if limits.$($field).+ != before.$($field).+ {
                        ignored.push($key);
                    }
                    limits.$($field).+ = after.$($field).+;
                }
            )*};
        }
        code_wins!(
            max_concurrent_connections => "Kestrel:Limits:MaxConcurrentConnections",
            max_concurrent_upgraded_connections => "Kestrel:Limits:MaxConcurrentUpgradedConnections",
            max_request_body_size => "Kestrel:Limits:MaxRequestBodySize",
            max_request_buffer_size => "Kestrel:Limits:MaxRequestBufferSize",
            max_request_header_count => "Kestrel:Limits:MaxRequestHeaderCount",
            max_request_headers_total_size => "Kestrel:Limits:MaxRequestHeadersTotalSize",
            max_request_line_size => "Kestrel:Limits:MaxRequestLineSize",
            max_response_buffer_size => "Kestrel:Limits:MaxResponseBufferSize",
            keep_alive_timeout => "Kestrel:Limits:KeepAliveTimeout",
            request_headers_timeout => "Kestrel:Limits:RequestHeadersTimeout",
            min_request_body_data_rate => "Kestrel:Limits:MinRequestBodyDataRate",
            min_response_data_rate => "Kestrel:Limits:MinResponseDataRate",
            http2.max_streams_per_connection => "Kestrel:Limits:Http2:MaxStreamsPerConnection",
            http2.header_table_size => "Kestrel:Limits:Http2:HeaderTableSize",
            http2.max_frame_size => "Kestrel:Limits:Http2:MaxFrameSize",
            http2.max_request_header_field_size => "Kestrel:Limits:Http2:MaxRequestHeaderFieldSize",
            http2.initial_connection_window_size => "Kestrel:Limits:Http2:InitialConnectionWindowSize",
            http2.initial_stream_window_size => "Kestrel:Limits:Http2:InitialStreamWindowSize",
            http2.keep_alive_ping_delay => "Kestrel:Limits:Http2:KeepAlivePingDelay",
            http2.keep_alive_ping_timeout => "Kestrel:Limits:Http2:KeepAlivePingTimeout",
            // Not configuration keys: set in code only.
            http2.enable_connect_protocol => "limits.http2.enable_connect_protocol",
            http2.max_control_frames_per_second => "limits.http2.max_control_frames_per_second",
        );
        ignored
    }
}
