//! The header fields the framing and connection rules depend on
//! (Content-Length, Transfer-Encoding, Connection, Expect, Host, Upgrade).

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum ContentLength {
    #[default]
    Unset,
    Value(u64),
    Multiple,
    Invalid,
}

/// What the semantically relevant header fields said.
#[derive(Default)]
pub(super) struct HeaderInfo {
    pub(super) host_count: usize,
    pub(super) host: Option<std::ops::Range<usize>>,
    pub(super) cl_present: bool,
    pub(super) cl: ContentLength,
    pub(super) te_present: bool,
    pub(super) te_unsupported: bool,
    pub(super) te_chunked_params: bool,
    pub(super) te_chunked_count: usize,
    pub(super) te_last_chunked: bool,
    pub(super) conn_close: bool,
    pub(super) conn_keep_alive: bool,
    pub(super) conn_upgrade: bool,
    pub(super) expect_continue: bool,
    pub(super) upgrade_present: bool,
}

impl HeaderInfo {
    pub(super) fn observe(
        &mut self,
        name: &HeaderName,
        value: &[u8],
        range: std::ops::Range<usize>,
    ) {
        if *name == header::HOST {
            self.host_count += 1;
            self.host = Some(range);
        } else if *name == header::CONTENT_LENGTH {
            self.cl_present = true;
            for member in value.split(|&b| b == b',') {
                self.content_length_member(trim_ows(member));
            }
        } else if *name == header::TRANSFER_ENCODING {
            self.te_present = true;
            for member in value.split(|&b| b == b',') {
                let member = trim_ows(member);
                if member.is_empty() {
                    continue; // empty list elements are ignored (RFC 9110 §5.6.1)
                }
                let (coding, params) = match memchr(b';', member) {
                    Some(i) => (trim_ows(&member[..i]), true),
                    None => (member, false),
                };
                let chunked = coding.eq_ignore_ascii_case(b"chunked");
                if chunked {
                    self.te_chunked_count += 1;
                    // RFC 9112 §7: chunked defines no parameters; their
                    // presence SHOULD be treated as an error.
                    self.te_chunked_params |= params;
                } else if ![
                    &b"gzip"[..],
                    b"x-gzip",
                    b"deflate",
                    b"compress",
                    b"x-compress",
                ]
                .iter()
                .any(|known| coding.eq_ignore_ascii_case(known))
                {
                    self.te_unsupported = true;
                }
                self.te_last_chunked = chunked;
            }
        } else if *name == header::CONNECTION {
            for token in value.split(|&b| b == b',') {
                let token = trim_ows(token);
                if token.eq_ignore_ascii_case(b"close") {
                    self.conn_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    self.conn_keep_alive = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    self.conn_upgrade = true;
                }
            }
        } else if *name == header::EXPECT {
            self.expect_continue |= value
                .split(|&b| b == b',')
                .any(|m| trim_ows(m).eq_ignore_ascii_case(b"100-continue"));
        } else if *name == header::UPGRADE {
            self.upgrade_present = true;
        }
    }

    pub(super) fn content_length_member(&mut self, member: &[u8]) {
        if self.cl == ContentLength::Invalid {
            return;
        }
        let Some(n) = parse_decimal(member) else {
            self.cl = ContentLength::Invalid;
            return;
        };
        self.cl = match self.cl {
            ContentLength::Unset => ContentLength::Value(n),
            ContentLength::Value(v) if v == n => ContentLength::Value(v),
            _ => ContentLength::Multiple,
        };
    }
}

/// `1*DIGIT` as u64, `None` if empty, not all digits, or overflowing.
pub(super) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

pub(super) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
