//! Per-endpoint settings of `Kestrel:Endpoints:<Name>` beyond the URL and
//! HTTPS: the Unix socket file's permissions (`SocketMode`, `SocketGroup`)
//! and the PROXY protocol (`ProxyProtocol`, `TrustedProxies`).
//!
//! The server applies them (the `kestrel` facade's `use_kestrel`); this
//! module only reads and checks them, with errors that name the key.

use std::net::IpAddr;

use kestrel_core::{BindTarget, ServerUrl};
use kestrel_transport::SocketGroup;

use crate::config::Configuration;
use crate::kestrel_config::KestrelConfigError;
use crate::middleware::IpNetwork;

/// `Kestrel:Endpoints:<Name>:ProxyProtocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyProtocolSetting {
    /// No PROXY header is read (the default).
    #[default]
    Off,
    /// Every connection must start with a PROXY header (v1 or v2).
    Required,
}

/// The keys of one endpoint that this module reads (lower case, the first
/// segment after the endpoint's name).
pub(crate) const KEYS: &[&str] = &[
    "socketmode",
    "socketgroup",
    "proxyprotocol",
    "trustedproxies",
];

/// Connection settings of one `Kestrel:Endpoints:<Name>` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointConnectionSettings {
    /// `SocketMode`: the Unix socket file's permission bits, in octal
    /// (`0660`). Unix socket endpoints only.
    pub socket_mode: Option<u32>,
    /// `SocketGroup`: the Unix socket file's group (name or id). Unix socket
    /// endpoints only.
    pub socket_group: Option<SocketGroup>,
    /// `ProxyProtocol`: `Off` (the default) or `Required`.
    pub proxy_protocol: ProxyProtocolSetting,
    /// `TrustedProxies`: the addresses or CIDR networks PROXY headers are
    /// accepted from (one value separated by `,` or `;`, or an array).
    /// Empty: any peer. Needs `ProxyProtocol=Required`.
    pub trusted_proxies: Vec<IpNetwork>,
    /// `DisableAltSvcHeader` (Kestrel's `ListenOptions.DisableAltSvcHeader`):
    /// no `Alt-Svc` advertising HTTP/3 on this endpoint's HTTP/1.1 and
    /// HTTP/2 responses. Default `false`.
    pub disable_alt_svc_header: bool,
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> KestrelConfigError {
    KestrelConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// An IP address (a one-address network) or a network in CIDR notation.
pub fn parse_network(text: &str) -> Option<IpNetwork> {
    let text = text.trim();
    if text.contains('/') {
        return text.parse().ok();
    }
    let ip: IpAddr = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text)
        .parse()
        .ok()?;
    IpNetwork::new(ip, if ip.is_ipv4() { 32 } else { 128 }).ok()
}

/// Read the connection settings of the endpoint under `prefix`
/// (`Kestrel:Endpoints:<Name>`) whose URL is `url`.
pub fn read_endpoint_connection_settings(
    config: &Configuration,
    prefix: &str,
    url: &ServerUrl,
) -> Result<EndpointConnectionSettings, KestrelConfigError> {
    let mut s = EndpointConnectionSettings::default();
    let mut trusted_key = None;
    for (key, value) in config.section(prefix) {
        let field = key[prefix.len() + 1..].to_ascii_lowercase();
        let head = field.split(':').next().unwrap_or("");
        let unix_only = || {
            if matches!(url.target, BindTarget::Unix(_)) {
                Ok(())
            } else {
                Err(invalid(
                    key,
                    value,
                    format!(
                        "only valid on a Unix socket endpoint (http://unix:/path), not {}",
                        url.original
                    ),
                ))
            }
        };
        match head {
            "socketmode" if field == head => {
                unix_only()?;
                let mode = kestrel_transport::parse_socket_mode(value).ok_or_else(|| {
                    invalid(
                        key,
                        value,
                        "expected permission bits in octal, e.g. 0660 or 0666",
                    )
                })?;
                s.socket_mode = Some(mode);
            }
            "socketgroup" if field == head => {
                unix_only()?;
                s.socket_group = Some(
                    value
                        .parse()
                        .map_err(|e| invalid(key, value, format!("{e}")))?,
                );
            }
            "proxyprotocol" if field == head => {
                s.proxy_protocol = match value.trim().to_ascii_lowercase().as_str() {
                    "off" | "" => ProxyProtocolSetting::Off,
                    "required" => ProxyProtocolSetting::Required,
                    _ => return Err(invalid(key, value, "expected Off or Required")),
                };
            }
            "disablealtsvcheader" if field == head => {
                s.disable_alt_svc_header = match value.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" | "" => false,
                    _ => return Err(invalid(key, value, "expected true or false")),
                };
            }
            "trustedproxies" => {
                trusted_key.get_or_insert_with(|| key.to_string());
                for item in value
                    .split([',', ';'])
                    .map(str::trim)
                    .filter(|i| !i.is_empty())
                {
                    let net = parse_network(item).ok_or_else(|| {
                        invalid(
                            key,
                            value,
                            format!("'{item}' is not an IP address or a CIDR network (10.0.0.0/8)"),
                        )
                    })?;
                    s.trusted_proxies.push(net);
                }
            }
            _ => {}
        }
    }
    if let Some(key) = trusted_key {
        if s.proxy_protocol == ProxyProtocolSetting::Off {
            return Err(invalid(
                &key,
                "",
                "TrustedProxies needs ProxyProtocol=Required on the endpoint",
            ));
        }
    }
    Ok(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::ConfigurationBuilder;

    fn read(
        pairs: &[(&str, &str)],
        url: &str,
    ) -> Result<EndpointConnectionSettings, KestrelConfigError> {
        let config = ConfigurationBuilder::new()
            .add_pairs(pairs.iter().copied())
            .build();
        read_endpoint_connection_settings(
            &config,
            "Kestrel:Endpoints:E",
            &ServerUrl::parse(url).unwrap(),
        )
    }

    #[test]
    fn disable_alt_svc_header_is_read() {
        let url = "https://127.0.0.1:5001";
        for (value, expected) in [("true", true), ("False", false)] {
            let s = read(&[("Kestrel:Endpoints:E:DisableAltSvcHeader", value)], url).unwrap();
            assert_eq!(s.disable_alt_svc_header, expected);
        }
        assert!(!read(&[], url).unwrap().disable_alt_svc_header);
        let e = read(&[("Kestrel:Endpoints:E:DisableAltSvcHeader", "yes")], url).unwrap_err();
        assert!(e.to_string().contains("DisableAltSvcHeader"), "{e}");
    }

    #[test]
    fn socket_permissions() {
        let s = read(
            &[
                ("Kestrel:Endpoints:E:SocketMode", "0660"),
                ("Kestrel:Endpoints:E:SocketGroup", "www-data"),
            ],
            "http://unix:/run/app.sock",
        )
        .unwrap();
        assert_eq!(s.socket_mode, Some(0o660));
        assert_eq!(s.socket_group, Some(SocketGroup::Name("www-data".into())));
        let e = read(
            &[("Kestrel:Endpoints:E:SocketMode", "0999")],
            "http://unix:/a.sock",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("Kestrel:Endpoints:E:SocketMode"),
            "{e}"
        );
        let e = read(
            &[("Kestrel:Endpoints:E:SocketMode", "0660")],
            "http://127.0.0.1:1",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("only valid on a Unix socket endpoint"),
            "{e}"
        );
    }

    #[test]
    fn proxy_protocol() {
        let s = read(
            &[
                ("Kestrel:Endpoints:E:ProxyProtocol", "required"),
                (
                    "Kestrel:Endpoints:E:TrustedProxies",
                    "127.0.0.1, 10.0.0.0/8; ::1",
                ),
            ],
            "http://127.0.0.1:1",
        )
        .unwrap();
        assert_eq!(s.proxy_protocol, ProxyProtocolSetting::Required);
        assert_eq!(s.trusted_proxies.len(), 3);
        assert!(s.trusted_proxies[1].contains("10.1.2.3".parse().unwrap()));
        let s = read(
            &[
                ("Kestrel:Endpoints:E:ProxyProtocol", "Required"),
                ("Kestrel:Endpoints:E:TrustedProxies:0", "192.168.0.1"),
                ("Kestrel:Endpoints:E:TrustedProxies:1", "[::1]"),
            ],
            "http://127.0.0.1:1",
        )
        .unwrap();
        assert_eq!(s.trusted_proxies.len(), 2);
        assert_eq!(
            read(&[], "http://127.0.0.1:1").unwrap(),
            EndpointConnectionSettings::default()
        );
        let e = read(
            &[("Kestrel:Endpoints:E:ProxyProtocol", "v2")],
            "http://127.0.0.1:1",
        )
        .unwrap_err();
        assert!(e.to_string().contains("expected Off or Required"), "{e}");
        let e = read(
            &[
                ("Kestrel:Endpoints:E:ProxyProtocol", "Required"),
                ("Kestrel:Endpoints:E:TrustedProxies", "10.0.0.0/33"),
            ],
            "http://127.0.0.1:1",
        )
        .unwrap_err();
        assert!(e.to_string().contains("TrustedProxies"), "{e}");
        let e = read(
            &[("Kestrel:Endpoints:E:TrustedProxies", "10.0.0.1")],
            "http://127.0.0.1:1",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("needs ProxyProtocol=Required"),
            "{e}"
        );
    }
}
