//! Choosing the server certificate for a handshake: the selector callback,
//! then the SNI map (exact names, then the longest matching `*.` wildcard,
//! then `*`), then the default certificate.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::certificate::Certificate;
use crate::error::TlsError;
use crate::options::Selector;

pub(crate) struct CertificateResolver {
    selector: Option<Selector>,
    exact: HashMap<String, Certificate>,
    /// (suffix with its leading dot, certificate), longest suffix first.
    wildcards: Vec<(String, Certificate)>,
    default: Option<Certificate>,
}

impl fmt::Debug for CertificateResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateResolver")
            .field("selector", &self.selector.is_some())
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field(
                "wildcards",
                &self.wildcards.iter().map(|(s, _)| s).collect::<Vec<_>>(),
            )
            .field("default", &self.default.is_some())
            .finish()
    }
}

impl CertificateResolver {
    pub(crate) fn new(
        selector: Option<Selector>,
        sni: &[(String, Certificate)],
        default: Option<Certificate>,
    ) -> Result<Self, TlsError> {
        let mut exact = HashMap::new();
        let mut wildcards = Vec::new();
        let mut default = default;
        for (host, cert) in sni {
            let raw = host.to_ascii_lowercase();
            let host = if raw == "*" {
                "*"
            } else {
                raw.trim_end_matches('.')
            };
            if host == "*" && raw == "*" {
                // Kestrel's catch-all SNI entry: used when nothing else matches,
                // before the endpoint's default certificate.
                default = Some(cert.clone());
            } else if let Some(suffix) = host.strip_prefix('*') {
                if !suffix.starts_with('.') || suffix.len() < 2 || suffix.contains('*') {
                    return Err(TlsError::Config(format!(
                        "invalid SNI wildcard '{host}': use the form '*.example.com'"
                    )));
                }
                wildcards.push((suffix.to_string(), cert.clone()));
            } else if host.is_empty() || host.contains('*') {
                return Err(TlsError::Config(format!("invalid SNI host name '{host}'")));
            } else {
                exact.insert(host.to_string(), cert.clone());
            }
        }
        wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        Ok(CertificateResolver {
            selector,
            exact,
            wildcards,
            default,
        })
    }

    /// The certificate for a server name (what `resolve` does, minus rustls).
    pub(crate) fn select(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(selector) = &self.selector {
            if let Some(cert) = selector(server_name) {
                return Some(cert.certified_key());
            }
        }
        if let Some(name) = server_name {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if let Some(cert) = self.exact.get(&name) {
                return Some(cert.certified_key());
            }
            for (suffix, cert) in &self.wildcards {
                if name.len() > suffix.len() && name.ends_with(suffix.as_str()) {
                    return Some(cert.certified_key());
                }
            }
        }
        self.default.as_ref().map(|c| c.certified_key())
    }
}

impl ResolvesServerCert for CertificateResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = client_hello.server_name();
        let chosen = self.select(name);
        if chosen.is_none() {
            tracing::debug!(target: "kestrel::tls", server_name = name.unwrap_or(""), "no server certificate for the requested host name; refusing the handshake");
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(name: &str) -> Certificate {
        let key = rcgen::KeyPair::generate().unwrap();
        let c = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        Certificate::from_der(vec![c.der().to_vec()], key.serialize_der()).unwrap()
    }

    fn which(r: &CertificateResolver, name: Option<&str>, all: &[(&str, &Certificate)]) -> String {
        let Some(chosen) = r.select(name) else {
            return "none".into();
        };
        all.iter()
            .find(|(_, c)| Arc::ptr_eq(&c.certified_key(), &chosen))
            .map(|(n, _)| n.to_string())
            .unwrap_or_else(|| "other".into())
    }

    #[test]
    fn exact_then_longest_wildcard_then_catch_all_then_default() {
        let (a, wild, deep, star, def) = (
            cert("a.example.com"),
            cert("*.example.com"),
            cert("*.deep.example.com"),
            cert("star"),
            cert("default"),
        );
        let all = [
            ("a", &a),
            ("wild", &wild),
            ("deep", &deep),
            ("star", &star),
            ("def", &def),
        ];
        let sni = vec![
            ("*.example.com".to_string(), wild.clone()),
            ("A.Example.COM".to_string(), a.clone()),
            ("*.deep.example.com".to_string(), deep.clone()),
        ];
        let r = CertificateResolver::new(None, &sni, Some(def.clone())).unwrap();
        assert_eq!(which(&r, Some("a.example.com"), &all), "a");
        assert_eq!(which(&r, Some("A.EXAMPLE.com."), &all), "a");
        assert_eq!(which(&r, Some("b.example.com"), &all), "wild");
        assert_eq!(which(&r, Some("x.deep.example.com"), &all), "deep");
        assert_eq!(which(&r, Some("example.com"), &all), "def");
        assert_eq!(which(&r, Some("other.test"), &all), "def");
        assert_eq!(which(&r, None, &all), "def");

        let mut with_star = sni.clone();
        with_star.push(("*".to_string(), star.clone()));
        let r = CertificateResolver::new(None, &with_star, None).unwrap();
        assert_eq!(which(&r, Some("other.test"), &all), "star");

        let r = CertificateResolver::new(None, &sni, None).unwrap();
        assert_eq!(which(&r, Some("other.test"), &all), "none");

        let a2 = a.clone();
        let selector: Selector =
            Arc::new(move |name| (name == Some("b.example.com")).then(|| a2.clone()));
        let r = CertificateResolver::new(Some(selector), &sni, Some(def.clone())).unwrap();
        assert_eq!(
            which(&r, Some("b.example.com"), &all),
            "a",
            "the selector wins"
        );
        assert_eq!(
            which(&r, Some("c.example.com"), &all),
            "wild",
            "then the map"
        );
    }

    #[test]
    fn malformed_names_are_refused() {
        for bad in ["*example.com", "*.", "a.*.com", "", "**.a.com"] {
            let sni = vec![(bad.to_string(), cert("x"))];
            assert!(
                CertificateResolver::new(None, &sni, None).is_err(),
                "{bad:?}"
            );
        }
    }
}
