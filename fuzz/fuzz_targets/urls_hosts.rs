//! Endpoint URLs (`http://[::]:0`, `unix:` paths, `;` lists) through
//! `ServerUrl::parse`/`parse_list`, and `Host` values against `AllowedHosts`
//! patterns through `HostFiltering`. The input's first line is the
//! `AllowedHosts` list, its second a URL list, the other lines Host values.
//!
//! Properties:
//! * a parsed URL keeps its text (trimmed), parses again to the same value,
//!   has the scheme its prefix says, and a `unix:` target is absolute;
//! * a list parses to exactly its non-empty entries, each as parsed alone;
//! * host matching ignores ASCII case, surrounding whitespace and a port;
//!   `*` allows everything; a configured host allows itself; a request's
//!   `Host` header gets the same answer as the value alone.
#![no_main]

use http::Request;
use kestrel_core::endpoint::{BindTarget, Scheme, ServerUrl};
use kestrel_core::RequestBody;
use kestrel_hosting::middleware::HostFiltering;
use libfuzzer_sys::fuzz_target;

fn check_url(text: &str) {
    let Ok(url) = ServerUrl::parse(text) else {
        return;
    };
    assert_eq!(url.original, text.trim());
    assert_eq!(
        ServerUrl::parse(&url.original).as_ref(),
        Ok(&url),
        "parsing again"
    );
    let lower = url.original.to_ascii_lowercase();
    match url.scheme {
        Scheme::Https => assert!(lower.starts_with("https://")),
        Scheme::Http => assert!(lower.starts_with("http://") || lower.starts_with("unix:")),
    }
    match &url.target {
        BindTarget::Unix(path) => {
            assert!(path.is_absolute(), "a relative unix path {path:?}");
            assert!(lower.contains("unix:/"));
        }
        BindTarget::Ip(addr) if addr.is_ipv6() => assert!(url.original.contains('[')),
        _ => {}
    }
}

fn check_list(text: &str) {
    let entries: Vec<&str> = text
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    match ServerUrl::parse_list(text) {
        Ok(list) => {
            assert_eq!(list.len(), entries.len());
            for (url, entry) in list.iter().zip(&entries) {
                assert_eq!(Ok(url), ServerUrl::parse(entry).as_ref());
            }
        }
        Err(_) => {
            assert!(entries.is_empty() || entries.iter().any(|e| ServerUrl::parse(e).is_err()))
        }
    }
}

fn check_hosts(patterns: &str, hosts: &[&str]) {
    let Ok(filter) = HostFiltering::new(patterns) else {
        assert!(patterns.split(';').all(|p| p.trim().is_empty()));
        return;
    };
    let configured: Vec<&str> = patterns
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    for &host in hosts {
        if host.trim().is_empty() {
            continue;
        }
        let allowed = filter.is_host_allowed(host);
        assert_eq!(
            allowed,
            filter.is_host_allowed(&host.to_ascii_uppercase()),
            "case of {host:?}"
        );
        assert_eq!(
            allowed,
            filter.is_host_allowed(&host.to_ascii_lowercase()),
            "case of {host:?}"
        );
        assert_eq!(
            allowed,
            filter.is_host_allowed(&format!(" {host}\t")),
            "whitespace around {host:?}"
        );
        let bare = host.trim();
        if !bare.contains([':', '[', ']']) {
            assert_eq!(
                allowed,
                filter.is_host_allowed(&format!("{bare}:8443")),
                "a port on {host:?}"
            );
            if configured.iter().any(|p| p.eq_ignore_ascii_case(bare)) {
                assert!(allowed, "{bare:?} is configured");
            }
        }
        if configured.contains(&"*") {
            assert!(allowed, "* allows {host:?}");
        }
        if let Ok(req) = Request::builder()
            .header("host", host)
            .body(RequestBody::empty())
        {
            assert_eq!(
                filter.is_allowed(&req),
                allowed,
                "a request with Host {host:?}"
            );
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let mut lines = text.split('\n');
    let patterns = lines.next().unwrap_or("");
    let urls = lines.next().unwrap_or("");
    let hosts: Vec<&str> = lines.collect();
    check_url(urls);
    for entry in urls.split(';') {
        check_url(entry);
    }
    check_list(urls);
    check_hosts(patterns, &hosts);
});
