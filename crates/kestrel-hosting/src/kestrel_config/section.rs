//! `Kestrel:Endpoints`, `EndpointDefaults` and `Certificates`, read into plain data.

use super::values::*;
use super::*;

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

pub(super) fn resolve(root: &Path, p: &str) -> PathBuf {
    let p = Path::new(p.trim());
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    }
}

/// Read the keys of one `Certificate` section.
pub(super) fn read_certificate(
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

pub(super) fn parse_client_mode(
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
pub(super) fn parse_ssl_protocols(
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
pub(super) fn read_tls_settings(
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
