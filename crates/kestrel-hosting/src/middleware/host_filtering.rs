//! Host filtering: answer `400` to requests whose `Host` is not one of the
//! configured `AllowedHosts` (the host-filtering middleware of the Kestrel
//! documentation, and ASP.NET Core's `HostFilteringMiddleware`).
//!
//! Kestrel binds to addresses, not names, so without a filter any `Host` a
//! client sends reaches the app (and ends up in generated links, redirects
//! and cache keys). The rules, as the documentation's sample implements them:
//!
//! - `AllowedHosts` is a `;`-separated list of host names **without ports**;
//!   empty entries are ignored; an empty list is a configuration error.
//! - `*` allows every non-empty host (ASP.NET Core's default
//!   `"AllowedHosts": "*"`); an empty one is still up to the empty-host policy.
//! - The request's `Host` (or, when there is no `Host` header, the request
//!   target's authority: HTTP/2's `:authority`) is trimmed, then its port is
//!   dropped: everything from the last `:`, unless that `:` is inside an
//!   IPv6 literal's brackets (`[::1]:5000` → `[::1]`, `[::1]` stays). A `[`
//!   without a `]` is rejected. IPv6 entries must be written in brackets, in
//!   normalized form.
//! - Comparison is ASCII case-insensitive and exact; punycode/IDN
//!   normalization is not done (write `xn--…` names).
//! - `*.example.com` allows any sub-domain (`a.example.com`,
//!   `a.b.example.com`) but **not** the bare `example.com` (list it too if
//!   wanted), nor `badexample.com`.
//! - An empty or missing `Host`: see [`EmptyHostPolicy`] (default: allowed
//!   for HTTP/1.0 only, which does not require the header).
//! - A rejected request gets `400 Bad Request` with an empty body and a
//!   debug-level log line (target `kestrel::hosting::host_filtering`).

use std::fmt;
use std::sync::Arc;

use http::{header, Request, StatusCode, Version};
use kestrel_core::RequestBody;

use crate::pipeline::{empty_response, BoxResponseFuture, Middleware, Next};

/// What to do with a request whose `Host` is empty or missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmptyHostPolicy {
    /// Allow it for HTTP/1.0 (and 0.9) only, which do not require `Host`;
    /// reject it for HTTP/1.1 (where the header may be empty) and HTTP/2.
    /// The default.
    #[default]
    Http10Only,
    /// Allow it for every version: the documentation sample's rule and
    /// ASP.NET Core's `AllowEmptyHosts = true`.
    Always,
    /// Reject it for every version (ASP.NET Core's `AllowEmptyHosts = false`).
    Never,
}

/// A host-filtering configuration error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostFilteringError {
    /// `AllowedHosts` was empty (or only `;`).
    #[error("No configuration entry found for AllowedHosts.")]
    NoAllowedHosts,
}

/// The host-filtering middleware. Cheap to clone.
#[derive(Clone)]
pub struct HostFiltering {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    allow_all: bool,
    /// Exact names, as configured.
    hosts: Vec<String>,
    /// Sub-domain wildcards, stored as the root with its leading dot (`.example.com`).
    wildcards: Vec<String>,
    empty: EmptyHostPolicy,
    /// The configured list, for display.
    configured: Vec<String>,
}

impl fmt::Debug for HostFiltering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostFiltering")
            .field("allowed_hosts", &self.inner.configured)
            .field("empty_hosts", &self.inner.empty)
            .finish()
    }
}

impl HostFiltering {
    /// Filter on `allowed_hosts`, a `;`-separated list as configuration's
    /// `AllowedHosts` gives it (`"example.com;*.example.com;[::1]"`). Fails
    /// when the list has no entries.
    pub fn new(allowed_hosts: &str) -> Result<Self, HostFilteringError> {
        Self::from_hosts(allowed_hosts.split(';'))
    }

    /// Filter on a list of hosts (entries are trimmed, empty ones skipped).
    pub fn from_hosts<I, S>(hosts: I) -> Result<Self, HostFilteringError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let configured: Vec<String> = hosts
            .into_iter()
            .map(|h| h.as_ref().trim().to_string())
            .filter(|h| !h.is_empty())
            .collect();
        if configured.is_empty() {
            return Err(HostFilteringError::NoAllowedHosts);
        }
        let mut inner = Inner {
            allow_all: false,
            hosts: Vec::new(),
            wildcards: Vec::new(),
            empty: EmptyHostPolicy::default(),
            configured: configured.clone(),
        };
        for host in configured {
            if host == "*" {
                inner.allow_all = true;
            } else if let Some(root) = host.strip_prefix('*') {
                if root.starts_with('.') {
                    inner.wildcards.push(root.to_string());
                } else {
                    inner.hosts.push(host);
                }
            } else {
                inner.hosts.push(host);
            }
        }
        Ok(HostFiltering {
            inner: Arc::new(inner),
        })
    }

    /// Set the policy for empty or missing `Host` headers.
    pub fn empty_hosts(mut self, policy: EmptyHostPolicy) -> Self {
        Arc::make_mut(&mut self.inner).empty = policy;
        self
    }

    /// The configured allowed hosts.
    pub fn allowed_hosts(&self) -> &[String] {
        &self.inner.configured
    }

    /// Whether `req` passes the filter.
    pub fn is_allowed(&self, req: &Request<RequestBody>) -> bool {
        let host = match req.headers().get(header::HOST) {
            // Judged as its text (a configured name may be non-ASCII); bytes
            // that are no text match no name, and only `*` (any non-empty
            // host) allows them.
            Some(value) => match std::str::from_utf8(value.as_bytes()) {
                Ok(s) => Some(s),
                Err(_) => return self.inner.allow_all,
            },
            None => req.uri().authority().map(|a| a.as_str()),
        };
        let host = host.map_or("", str::trim);
        if host.is_empty() {
            return match self.inner.empty {
                EmptyHostPolicy::Always => true,
                EmptyHostPolicy::Never => false,
                EmptyHostPolicy::Http10Only => {
                    matches!(req.version(), Version::HTTP_10 | Version::HTTP_09)
                }
            };
        }
        self.is_host_allowed(host)
    }

    /// Whether a non-empty `Host` value (port included or not) is allowed.
    pub fn is_host_allowed(&self, host: &str) -> bool {
        if self.inner.allow_all {
            return true;
        }
        let Some(host) = drop_port(host.trim()) else {
            return false;
        };
        if self
            .inner
            .hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host))
        {
            return true;
        }
        self.inner.wildcards.iter().any(|root| {
            // At least one character before the root's dot: `*.example.com`
            // does not match `example.com` nor `.example.com`.
            host.len() > root.len()
                && host
                    .get(host.len() - root.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(root))
        })
    }
}

/// Drop the port as the sample does: cut at the last `:` unless it is inside
/// IPv6 brackets; `None` for a `[` without `]`.
fn drop_port(host: &str) -> Option<&str> {
    let mut colon = host.rfind(':');
    if host.starts_with('[') {
        let end = host.find(']')?;
        if colon.is_some_and(|c| c < end) {
            colon = None;
        }
    }
    match colon {
        Some(c) if c > 0 => host.get(..c),
        _ => Some(host),
    }
}

impl Middleware for HostFiltering {
    fn call(&self, req: Request<RequestBody>, next: Next) -> BoxResponseFuture {
        if self.is_allowed(&req) {
            return next.run(req);
        }
        tracing::debug!(
            target: "kestrel::hosting::host_filtering",
            host = ?req.headers().get(header::HOST),
            version = ?req.version(),
            "Request rejected due to incorrect host header."
        );
        Box::pin(std::future::ready(Ok(empty_response(
            StatusCode::BAD_REQUEST,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_dropped_like_the_sample() {
        assert_eq!(drop_port("example.com:80"), Some("example.com"));
        assert_eq!(drop_port("example.com"), Some("example.com"));
        assert_eq!(drop_port("[::1]:80"), Some("[::1]"));
        assert_eq!(drop_port("[::1]"), Some("[::1]"));
        assert_eq!(drop_port("[::1"), None);
        assert_eq!(drop_port(":80"), Some(":80"));
    }

    #[test]
    fn rules() {
        let f = HostFiltering::new("example.com;*.example.org;[::1];; LOCALHOST ").expect("hosts");
        for ok in [
            "example.com",
            "EXAMPLE.com:5000",
            "a.example.org",
            "a.b.Example.ORG:1",
            "[::1]",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(f.is_host_allowed(ok), "{ok}");
        }
        for bad in [
            "example.org",
            ".example.org",
            "badexample.org",
            "example.com.evil",
            "[::1",
            "::1",
            "[::2]:80",
            "other",
        ] {
            assert!(!f.is_host_allowed(bad), "{bad}");
        }
        assert!(HostFiltering::new("*")
            .expect("star")
            .is_host_allowed("anything:1"));
        assert_eq!(
            HostFiltering::new(" ; ").unwrap_err(),
            HostFilteringError::NoAllowedHosts
        );
    }

    /// Found by the `urls_hosts` fuzz target: a Host header with non-ASCII
    /// bytes was refused even under `*`, and judged unlike the same value
    /// given to `is_host_allowed`.
    #[test]
    fn a_non_ascii_host_header_is_judged_as_its_text() {
        let req = |host: &[u8]| {
            Request::builder()
                .header(
                    header::HOST,
                    http::HeaderValue::from_bytes(host).expect("value"),
                )
                .body(RequestBody::empty())
                .expect("request")
        };
        let star = HostFiltering::new("*").expect("star");
        assert!(star.is_allowed(&req("bücher.example".as_bytes())));
        assert!(star.is_allowed(&req(b"\xd6not-utf8")));
        let named = HostFiltering::new("bücher.example").expect("hosts");
        assert!(named.is_allowed(&req("BüCHER.example:443".as_bytes())));
        assert!(!named.is_allowed(&req("other.example".as_bytes())));
        assert!(!named.is_allowed(&req(b"\xd6not-utf8")));
    }
}
