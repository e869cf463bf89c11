//! Just enough X.509 reading to warn about expired certificates and to show
//! an app who a client certificate belongs to: the validity period and the
//! subject's common name. A small DER walker over untrusted input: every
//! length is checked, nothing panics, and anything unexpected yields `None`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What an app (or a start-up check) usually wants to know about a
/// certificate, read from its DER encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertificateSummary {
    /// The subject's common name (`CN`), if it has one.
    pub subject_common_name: Option<String>,
    /// The issuer's common name (`CN`), if it has one.
    pub issuer_common_name: Option<String>,
    /// Start of the validity period.
    pub not_before: SystemTime,
    /// End of the validity period.
    pub not_after: SystemTime,
}

impl CertificateSummary {
    /// Read a DER-encoded X.509 certificate (e.g. one of
    /// `TlsInfo::peer_certificates`). `None` if it is not one.
    pub fn parse(der: &[u8]) -> Option<CertificateSummary> {
        let (tag, cert, _) = tlv(der)?;
        if tag != SEQUENCE {
            return None;
        }
        let (tag, tbs, _) = tlv(cert)?;
        if tag != SEQUENCE {
            return None;
        }
        let (mut tag, _, mut next) = tlv(tbs)?;
        if tag == 0xA0 {
            // [0] EXPLICIT version
            (tag, _, next) = tlv(next)?;
        }
        if tag != INTEGER {
            return None; // serialNumber
        }
        let (tag, _, next) = tlv(next)?; // signature AlgorithmIdentifier
        if tag != SEQUENCE {
            return None;
        }
        let (tag, issuer, next) = tlv(next)?;
        if tag != SEQUENCE {
            return None;
        }
        let (tag, validity, next) = tlv(next)?;
        if tag != SEQUENCE {
            return None;
        }
        let (tag, subject, _) = tlv(next)?;
        if tag != SEQUENCE {
            return None;
        }
        let (t1, v1, after) = tlv(validity)?;
        let (t2, v2, _) = tlv(after)?;
        Some(CertificateSummary {
            subject_common_name: common_name(subject),
            issuer_common_name: common_name(issuer),
            not_before: time(t1, v1)?,
            not_after: time(t2, v2)?,
        })
    }

    /// Whether `now` is past [`not_after`](Self::not_after).
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        now > self.not_after
    }
}

const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// 2.5.4.3 (id-at-commonName), encoded.
const CN_OID: &[u8] = &[0x55, 0x04, 0x03];

/// One DER tag-length-value: (tag, value, the bytes after it).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1F == 0x1F {
        return None; // high tag numbers do not occur in the fields we read
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The first CN attribute of a Name (SEQUENCE OF SET OF AttributeTypeAndValue).
fn common_name(mut name: &[u8]) -> Option<String> {
    while !name.is_empty() {
        let (tag, set, next) = tlv(name)?;
        name = next;
        if tag != SET {
            return None;
        }
        let mut attrs = set;
        while !attrs.is_empty() {
            let (tag, atv, next) = tlv(attrs)?;
            attrs = next;
            if tag != SEQUENCE {
                return None;
            }
            let (tag, oid, rest) = tlv(atv)?;
            if tag == OID && oid == CN_OID {
                let (_, value, _) = tlv(rest)?;
                return Some(String::from_utf8_lossy(value).into_owned());
            }
        }
    }
    None
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(tag: u8, value: &[u8]) -> Option<SystemTime> {
    let digits = |s: &[u8]| -> Option<i64> {
        let mut n = 0i64;
        for &b in s {
            if !b.is_ascii_digit() {
                return None;
            }
            n = n * 10 + i64::from(b - b'0');
        }
        Some(n)
    };
    let (year, rest) = match tag {
        UTC_TIME if value.len() >= 13 => {
            let yy = digits(&value[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &value[2..])
        }
        GENERALIZED_TIME if value.len() >= 15 => (digits(&value[..4])?, &value[4..]),
        _ => return None,
    };
    if rest.len() < 11 || rest[10] != b'Z' {
        return None;
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let hour = digits(&rest[4..6])?;
    let minute = digits(&rest[6..8])?;
    let second = digits(&rest[8..10])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(60);
    if secs >= 0 {
        Some(UNIX_EPOCH + Duration::from_secs(secs as u64))
    } else {
        Some(UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) of a day count since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of `t` (negative before).
pub(crate) fn unix_days(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() / 86_400) as i64,
        Err(e) => -((e.duration().as_secs() / 86_400) as i64) - 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        for z in [-1_000_000i64, -1, 0, 1, 11_016, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn times() {
        let t = time(UTC_TIME, b"240229120000Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            19_782 * 86_400 + 12 * 3600
        );
        let g = time(GENERALIZED_TIME, b"20240229120000Z").unwrap();
        assert_eq!(t, g);
        assert!(time(UTC_TIME, b"2402291200").is_none());
        assert!(time(UTC_TIME, b"241329120000Z").is_none());
        assert!(time(0x04, b"240229120000Z").is_none());
    }

    #[test]
    fn garbage_is_none_not_a_panic() {
        for input in [
            &b""[..],
            &[0x30],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x82, 0xFF],
            &[0x30, 0x03, 0x30, 0x01],
            &[0x1F, 0x01, 0x00],
        ] {
            assert!(CertificateSummary::parse(input).is_none());
        }
    }

    #[test]
    fn reads_an_rcgen_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["example.test".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Example Subject");
        params.not_before = rcgen::date_time_ymd(2020, 1, 2);
        params.not_after = rcgen::date_time_ymd(2060, 3, 4);
        let cert = params.self_signed(&key).unwrap();
        let s = CertificateSummary::parse(cert.der()).unwrap();
        assert_eq!(s.subject_common_name.as_deref(), Some("Example Subject"));
        assert_eq!(s.issuer_common_name.as_deref(), Some("Example Subject"));
        assert_eq!(
            unix_days(s.not_before),
            days_from_civil(2020, 1, 2),
            "not_before"
        );
        assert_eq!(unix_days(s.not_after), days_from_civil(2060, 3, 4));
        assert!(!s.is_expired_at(SystemTime::now()));
        // Every truncation is refused without a panic.
        for n in 0..cert.der().len() {
            let _ = CertificateSummary::parse(&cert.der()[..n]);
        }
    }
}
