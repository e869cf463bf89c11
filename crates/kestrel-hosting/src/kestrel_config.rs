//! Binding the `Kestrel` configuration section (fact sheet §4).
//!
//! * [`bind_limits`] reads `Kestrel:Limits` into [`ServerLimits`]: every
//!   server and HTTP/2 limit, by Kestrel's PascalCase names
//!   (case-insensitive). Kestrel itself does not read this section; we do.
//!   A value that does not parse, or a key that is not a limit, is an error
//!   naming the key (Kestrel silently ignores bad values).
//! * [`bind_server_options`] adds the top-level switches
//!   (`AddServerHeader`, `AllowResponseHeaderCompression`,
//!   `AllowAlternateSchemes`, `AllowHostHeaderOverride`).
//! * [`read_kestrel_section`] reads `Endpoints`, `EndpointDefaults` and
//!   `Certificates` into plain data ([`KestrelSection`]); the server (the
//!   `kestrel` facade) turns it into listen endpoints and loads the
//!   certificates, so this crate does not depend on TLS.
//!
//! Time spans are written as .NET writes them — `[d.]hh:mm:ss[.fffffff]`
//! (`00:00:05`, `1.00:00:00`, `00:00:00.5`) — or as plain (possibly
//! fractional) seconds (`5`, `0.5`; .NET would read a bare number as days).
//! An empty value (JSON `null`) clears a nullable limit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kestrel_core::{
    HttpProtocols, KestrelServerOptions, MinDataRate, Scheme, ServerLimits, ServerUrl,
};

use crate::config::Configuration;

/// A `Kestrel` configuration value that cannot be used: the server does not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KestrelConfigError {
    /// A value does not parse or is out of range.
    #[error("invalid configuration value for '{key}' ({value:?}): {reason}")]
    Invalid {
        /// The key, as written in the configuration.
        key: String,
        /// The value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A key that is not one of the known settings (e.g. a misspelled limit).
    #[error("unknown configuration key '{0}'")]
    UnknownKey(String),
    /// An endpoint has no `Url`.
    #[error("the endpoint '{0}' has no Url (Kestrel:Endpoints:{0}:Url is required)")]
    MissingUrl(String),
    /// An HTTPS-only key on an `http://` endpoint.
    #[error("'{key}' is only valid on an https:// endpoint, but endpoint '{endpoint}' is {url}")]
    HttpsOnly {
        /// The endpoint's name.
        endpoint: String,
        /// The HTTPS-only key.
        key: String,
        /// The endpoint's URL.
        url: String,
    },
    /// The limits parsed but are inconsistent (e.g. the request buffer is
    /// smaller than the request line).
    #[error("invalid Kestrel:Limits: {0}")]
    Limits(String),
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> KestrelConfigError {
    KestrelConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Parse a time span: `[-][d.]hh:mm[:ss[.fffffff]]` as .NET writes it, or
/// plain seconds (`5`, `0.5`). Negative spans are refused.
pub fn parse_time_span(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty time span".into());
    }
    if t.starts_with('-') {
        return Err("a negative time span is not allowed".into());
    }
    if !t.contains(':') {
        let secs: f64 = t
            .parse()
            .map_err(|_| "expected seconds or [d.]hh:mm:ss[.fffffff]".to_string())?;
        if !secs.is_finite() || secs < 0.0 {
            return Err("expected a non-negative number of seconds".into());
        }
        return Duration::try_from_secs_f64(secs).map_err(|e| e.to_string());
    }
    let bad = || "expected [d.]hh:mm:ss[.fffffff]".to_string();
    let parts: Vec<&str> = t.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return Err(bad());
    }
    let (days, hours) = match parts[0].split_once('.') {
        Some((d, h)) => (d, h),
        None => ("0", parts[0]),
    };
    let num = |s: &str, max: u64| -> Result<u64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let v: u64 = s.parse().map_err(|_| bad())?;
        if v > max {
            return Err(bad());
        }
        Ok(v)
    };
    let days = num(days, 10_675_199)?;
    let hours = num(hours, 23)?;
    let minutes = num(parts[1], 59)?;
    let (secs, nanos) = match parts.get(2) {
        None => (0, 0),
        Some(s) => match s.split_once('.') {
            None => (num(s, 59)?, 0),
            Some((whole, frac)) => {
                if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                let padded = format!("{frac:0<9}");
                (num(whole, 59)?, padded.parse::<u32>().map_err(|_| bad())?)
            }
        },
    };
    Ok(Duration::new(
        days * 86_400 + hours * 3_600 + minutes * 60 + secs,
        nanos,
    ))
}

fn parse_time_key(key: &str, value: &str) -> Result<Duration, KestrelConfigError> {
    parse_time_span(value).map_err(|r| invalid(key, value, r))
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, KestrelConfigError> {
    value
        .trim()
        .parse::<T>()
        .map_err(|_| invalid(key, value, "expected a non-negative integer"))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, KestrelConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

/// `null`/empty clears a nullable value.
fn nullable<T>(
    key: &str,
    value: &str,
    parse: impl Fn(&str, &str) -> Result<T, KestrelConfigError>,
) -> Result<Option<T>, KestrelConfigError> {
    if value.trim().is_empty() || value.trim().eq_ignore_ascii_case("null") {
        Ok(None)
    } else {
        parse(key, value).map(Some)
    }
}

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

fn bind_rate(
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
/// validate the result. See the [module docs](self) for the formats.
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
const KESTREL_CHILDREN: &[&str] = &[
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
fn check_kestrel_children(config: &Configuration) -> Result<(), KestrelConfigError> {
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

/// Kestrel's `ClientCertificateMode`, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientCertificateModeSetting {
    /// `NoCertificate`.
    NoCertificate,
    /// `AllowCertificate`.
    AllowCertificate,
    /// `RequireCertificate`.
    RequireCertificate,
    /// `DelayCertificate` (refused by the TLS layer at start-up).
    DelayCertificate,
}

/// The lowest TLS version allowed by `SslProtocols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslProtocolsSetting {
    /// `Tls12` (alone or with `Tls13`), or `None` (= the system default).
    Tls12,
    /// `Tls13` only.
    Tls13,
}

/// A `Certificate` section: a PEM pair (`Path` + `KeyPath`) or a PKCS#12
/// file (`Path` + `Password`). Paths are resolved against the content root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateSetting {
    /// The certificate (PEM) or archive (PFX) file.
    pub path: Option<PathBuf>,
    /// The PEM private key file.
    pub key_path: Option<PathBuf>,
    /// The PFX password (or the PEM key's, which is refused: encrypted PEM keys are not supported).
    pub password: Option<String>,
}

/// HTTPS settings shared by endpoints, SNI entries and `EndpointDefaults`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `Protocols`.
    pub protocols: Option<HttpProtocols>,
    /// `SslProtocols`.
    pub ssl_protocols: Option<SslProtocolsSetting>,
    /// `ClientCertificateMode`.
    pub client_certificate_mode: Option<ClientCertificateModeSetting>,
    /// `Certificate`.
    pub certificate: Option<CertificateSetting>,
}

/// One `Kestrel:Endpoints:<Name>` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSetting {
    /// The endpoint's name (as first written).
    pub name: String,
    /// The parsed `Url`.
    pub url: ServerUrl,
    /// `Protocols`, `SslProtocols`, `ClientCertificateMode`, `Certificate`.
    pub tls: TlsSettings,
    /// `Sni:<host>` entries, in key order.
    pub sni: Vec<(String, TlsSettings)>,
    /// `SocketMode`, `SocketGroup`, `ProxyProtocol`, `TrustedProxies`.
    pub connection: crate::endpoint_settings::EndpointConnectionSettings,
}

/// The `Kestrel` section's endpoints and certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KestrelSection {
    /// `Endpoints:<Name>`, in key order.
    pub endpoints: Vec<EndpointSetting>,
    /// `EndpointDefaults` (no certificate).
    pub endpoint_defaults: TlsSettings,
    /// `Certificates:Default`: the certificate of HTTPS endpoints that name none.
    pub default_certificate: Option<CertificateSetting>,
    /// `DisableCertificateFileWatching` (Kestrel's
    /// `Microsoft.AspNetCore.Server.Kestrel.DisableCertificateFileWatching`
    /// switch): do not watch certificate files for changes. Default `false`.
    pub disable_certificate_file_watching: bool,
}

fn resolve(root: &Path, p: &str) -> PathBuf {
    let p = Path::new(p.trim());
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    }
}

/// Read the keys of one `Certificate` section.
fn read_certificate(
    config: &Configuration,
    prefix: &str,
    root: &Path,
) -> Result<Option<CertificateSetting>, KestrelConfigError> {
    let mut cert = CertificateSetting::default();
    let mut any = false;
    for (key, value) in config.section(prefix) {
        let field = key[prefix.len() + 1..].to_ascii_lowercase();
        any = true;
        match field.as_str() {
            "path" => cert.path = Some(resolve(root, value)).filter(|_| !value.trim().is_empty()),
            "keypath" => {
                cert.key_path = Some(resolve(root, value)).filter(|_| !value.trim().is_empty())
            }
            "password" => cert.password = Some(value.to_string()),
            "subject" | "store" | "location" | "allowinvalid" => {
                return Err(invalid(
                    key,
                    value,
                    "certificate stores are not supported; use Path (+ KeyPath or Password)",
                ))
            }
            _ => return Err(KestrelConfigError::UnknownKey(key.to_string())),
        }
    }
    if !any {
        return Ok(None);
    }
    if cert.path.is_none() {
        return Err(KestrelConfigError::Invalid {
            key: format!("{prefix}:Path"),
            value: String::new(),
            reason: "a certificate needs a Path".into(),
        });
    }
    Ok(Some(cert))
}

fn parse_client_mode(
    key: &str,
    v: &str,
) -> Result<ClientCertificateModeSetting, KestrelConfigError> {
    Ok(match v.trim().to_ascii_lowercase().as_str() {
        "nocertificate" => ClientCertificateModeSetting::NoCertificate,
        "allowcertificate" => ClientCertificateModeSetting::AllowCertificate,
        "requirecertificate" => ClientCertificateModeSetting::RequireCertificate,
        "delaycertificate" => ClientCertificateModeSetting::DelayCertificate,
        _ => {
            return Err(invalid(
                key,
                v,
                "expected NoCertificate, AllowCertificate, RequireCertificate or DelayCertificate",
            ))
        }
    })
}

/// `SslProtocols` as one value (`"Tls12, Tls13"`) or an array (`:0`, `:1`).
fn parse_ssl_protocols(
    key: &str,
    values: &[&str],
) -> Result<Option<SslProtocolsSetting>, KestrelConfigError> {
    let (mut tls12, mut tls13) = (false, false);
    for v in values {
        for item in v.split([',', '|']) {
            match item.trim().to_ascii_lowercase().as_str() {
                "" | "none" | "default" => {}
                "tls12" => tls12 = true,
                "tls13" => tls13 = true,
                _ => {
                    return Err(invalid(
                        key,
                        v,
                        "expected None, Tls12 or Tls13 (older versions are not supported)",
                    ))
                }
            }
        }
    }
    Ok(match (tls12, tls13) {
        (true, _) => Some(SslProtocolsSetting::Tls12),
        (false, true) => Some(SslProtocolsSetting::Tls13),
        (false, false) => None,
    })
}

/// Read `Protocols`, `SslProtocols`, `ClientCertificateMode`, `Certificate`
/// under `prefix`; other keys are refused unless `allow` accepts them.
fn read_tls_settings(
    config: &Configuration,
    prefix: &str,
    root: &Path,
    allow: &dyn Fn(&str) -> bool,
) -> Result<(TlsSettings, Vec<String>), KestrelConfigError> {
    let mut s = TlsSettings::default();
    let mut https_keys = Vec::new();
    let mut ssl: Vec<(String, String)> = Vec::new();
    for (key, value) in config.section(prefix) {
        let field = key[prefix.len() + 1..].to_ascii_lowercase();
        let head = field.split(':').next().unwrap_or("");
        match head {
            "protocols" if field == "protocols" => {
                s.protocols = Some(
                    value
                        .parse::<HttpProtocols>()
                        .map_err(|e| invalid(key, value, e.to_string()))?,
                )
            }
            "clientcertificatemode" if field == head => {
                https_keys.push(key.to_string());
                s.client_certificate_mode = Some(parse_client_mode(key, value)?);
            }
            "sslprotocols" => {
                https_keys.push(key.to_string());
                ssl.push((key.to_string(), value.to_string()));
            }
            "certificate" => {
                if !https_keys
                    .iter()
                    .any(|k| k.to_ascii_lowercase().ends_with(":certificate"))
                {
                    https_keys.push(format!("{prefix}:Certificate"));
                }
            }
            h if allow(h) => {}
            _ => return Err(KestrelConfigError::UnknownKey(key.to_string())),
        }
    }
    if let Some((first, _)) = ssl.first() {
        let vals: Vec<&str> = ssl.iter().map(|(_, v)| v.as_str()).collect();
        s.ssl_protocols = parse_ssl_protocols(first, &vals)?;
    }
    s.certificate = read_certificate(config, &format!("{prefix}:Certificate"), root)?;
    Ok((s, https_keys))
}

/// Read `Kestrel:Endpoints`, `Kestrel:EndpointDefaults` and
/// `Kestrel:Certificates` (paths relative to `content_root`). An endpoint
/// without `Url`, a bad URL or enum value, an unknown key inside an endpoint,
/// or an HTTPS-only key on an `http://` endpoint is an error.
pub fn read_kestrel_section(
    config: &Configuration,
    content_root: &Path,
) -> Result<KestrelSection, KestrelConfigError> {
    let mut out = KestrelSection::default();
    let (defaults, _) =
        read_tls_settings(config, "Kestrel:EndpointDefaults", content_root, &|_| false)?;
    if defaults.certificate.is_some() {
        return Err(KestrelConfigError::UnknownKey(
            "Kestrel:EndpointDefaults:Certificate".into(),
        ));
    }
    out.endpoint_defaults = defaults;
    out.default_certificate =
        read_certificate(config, "Kestrel:Certificates:Default", content_root)?;
    if let Some(v) = config.get("Kestrel:DisableCertificateFileWatching") {
        out.disable_certificate_file_watching =
            parse_bool("Kestrel:DisableCertificateFileWatching", v)?;
    }
    for name in config.children("Kestrel:Endpoints") {
        let prefix = format!("Kestrel:Endpoints:{name}");
        let url_text = config
            .get(&format!("{prefix}:Url"))
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| KestrelConfigError::MissingUrl(name.clone()))?;
        let url = ServerUrl::parse(url_text)
            .map_err(|e| invalid(&format!("{prefix}:Url"), url_text, e.to_string()))?;
        let (tls, mut https_keys) = read_tls_settings(config, &prefix, content_root, &|h| {
            h == "url" || h == "sni" || crate::endpoint_settings::KEYS.contains(&h)
        })?;
        let connection =
            crate::endpoint_settings::read_endpoint_connection_settings(config, &prefix, &url)?;
        let mut sni = Vec::new();
        for host in config.children(&format!("{prefix}:Sni")) {
            let sp = format!("{prefix}:Sni:{host}");
            let (s, _) = read_tls_settings(config, &sp, content_root, &|_| false)?;
            sni.push((host.clone(), s));
            https_keys.push(format!("{prefix}:Sni"));
        }
        if url.scheme == Scheme::Http {
            if let Some(key) = https_keys.first() {
                return Err(KestrelConfigError::HttpsOnly {
                    endpoint: name.clone(),
                    key: key.clone(),
                    url: url.original.clone(),
                });
            }
        }
        out.endpoints.push(EndpointSetting {
            name,
            url,
            tls,
            sni,
            connection,
        });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
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
                l.min_request_body_data_rate.as_ref().unwrap().grace_period
                    == Duration::from_secs(10)
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
        let err = bind_server_options(&cfg(&[("Kestrel:Limit:KeepAliveTimeout", "5")]), &mut o)
            .unwrap_err();
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
}
