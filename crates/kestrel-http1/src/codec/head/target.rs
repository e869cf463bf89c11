//! The request target (RFC 9112 §3.2) and the Host header's authority
//! (RFC 9110 §7.2, RFC 3986 §3.2.2).

use super::*;

/// Splits and validates a request target; returns the authority bytes for
/// absolute- and authority-form.
pub(super) fn parse_target(
    method: &Method,
    target: Bytes,
) -> Result<(Uri, TargetForm, Option<Bytes>), RequestRejection> {
    let bad = RequestRejection::InvalidRequestTarget;
    // A fragment is not part of any request-target form; http::Uri would
    // silently drop it.
    if target.is_empty() || memchr(b'#', &target).is_some() {
        return Err(bad);
    }
    let (form, authority) = if target[0] == b'/' {
        (TargetForm::Origin, None)
    } else if &target[..] == b"*" {
        (TargetForm::Asterisk, None)
    } else if let Some(scheme_len) = http_scheme_len(&target) {
        // `scheme "://" authority path-abempty [ "?" query ]`
        let start = scheme_len + 3;
        let end = memchr2(b'/', b'?', &target[start..]).map_or(target.len(), |i| i + start);
        let authority = target.slice(start..end);
        if split_authority(&authority).is_none() {
            return Err(bad);
        }
        (TargetForm::Absolute, Some(authority))
    } else if matches!(split_authority(&target), Some((_, Some(port))) if !port.is_empty()) {
        (TargetForm::Authority, Some(target.clone()))
    } else {
        return Err(bad);
    };
    if method == Method::CONNECT {
        if form != TargetForm::Authority {
            return Err(bad);
        }
    } else if form == TargetForm::Authority {
        return Err(RequestRejection::ConnectMethodRequired);
    } else if form == TargetForm::Asterisk && method != Method::OPTIONS {
        return Err(RequestRejection::OptionsMethodRequired);
    }
    let uri = Uri::from_maybe_shared(target).map_err(|_| bad)?;
    Ok((uri, form, authority))
}

/// Length of an `http` / `https` scheme (case-insensitive) followed by `://`.
pub(super) fn http_scheme_len(target: &[u8]) -> Option<usize> {
    let prefix = |p: &[u8]| target.len() >= p.len() && target[..p.len()].eq_ignore_ascii_case(p);
    if prefix(b"http://") {
        Some(4)
    } else if prefix(b"https://") {
        Some(5)
    } else {
        None
    }
}

/// Splits `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2–3.2.3)
/// into host and optional port (`*DIGIT`, maybe empty). `None` if invalid,
/// including an empty host (RFC 9110 §4.2.1) and any userinfo.
pub(super) fn split_authority(value: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let (host, after) = if value.first() == Some(&b'[') {
        let close = memchr(b']', value)?;
        let inner = &value[1..close];
        if !valid_ip_literal(inner) {
            return None;
        }
        (&value[..close + 1], &value[close + 1..])
    } else {
        let end = memchr(b':', value).unwrap_or(value.len());
        let host = &value[..end];
        if host.is_empty() || !valid_reg_name(host) {
            return None;
        }
        (host, &value[end..])
    };
    let port = match after {
        [] => None,
        [b':', port @ ..] if port.iter().all(u8::is_ascii_digit) => Some(port),
        _ => return None,
    };
    Some((host, port))
}

/// The bytes a `reg-name` may hold besides percent-encodings (RFC 3986
/// §3.2.2: unreserved and sub-delims), as a table: one load per byte.
pub(super) const REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"-._~!$&'()*+,;=";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};

pub(super) fn valid_reg_name(host: &[u8]) -> bool {
    let mut i = 0;
    while i < host.len() {
        let b = host[i];
        if b == b'%' {
            match host.get(i + 1..i + 3) {
                Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {}
                _ => return false,
            }
            i += 3;
            continue;
        }
        if !REG_NAME[usize::from(b)] {
            return false;
        }
        i += 1;
    }
    true
}

/// `IPv6address / IPvFuture` between the brackets (checked for characters,
/// not for IPv6 structure).
pub(super) fn valid_ip_literal(inner: &[u8]) -> bool {
    match inner {
        [] => false,
        [b'v' | b'V', rest @ ..] => {
            let dot = memchr(b'.', rest).unwrap_or(0);
            dot > 0
                && rest[..dot].iter().all(u8::is_ascii_hexdigit)
                && rest.len() > dot + 1
                && rest[dot + 1..]
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:".contains(&b))
        }
        _ => {
            memchr(b':', inner).is_some()
                && inner
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
    }
}

/// Host header vs. the target's authority: same host (case-insensitive) and
/// same port, where a missing or empty port means `default_port` (absolute
/// form) or "any" for the Host side (authority form, `default_port` None).
pub(super) fn host_matches<'a>(
    host: &'a [u8],
    authority: &'a [u8],
    default_port: Option<&'a [u8]>,
) -> bool {
    let (Some((h_host, h_port)), Some((a_host, a_port))) =
        (split_authority(host), split_authority(authority))
    else {
        return false;
    };
    if !h_host.eq_ignore_ascii_case(a_host) {
        return false;
    }
    let effective = |p: Option<&'a [u8]>| -> Option<&'a [u8]> {
        match p {
            Some(p) if !p.is_empty() => Some(trim_zeros(p)),
            _ => default_port.map(trim_zeros),
        }
    };
    match (effective(h_port), effective(a_port)) {
        (Some(h), Some(a)) => h == a,
        // Authority form: Host may omit the port.
        (None, _) => default_port.is_none(),
        (Some(_), None) => false,
    }
}

pub(super) fn trim_zeros(port: &[u8]) -> &[u8] {
    let first = port.iter().position(|&b| b != b'0').unwrap_or(port.len());
    &port[first..]
}

/// `tchar` of RFC 9110 §5.6.2.
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
