//! What an app or a start-up check wants to know about a certificate: the
//! validity period and the common names. The DER is read by the
//! `x509-cert` crate (RustCrypto); anything it does not accept as an
//! X.509 certificate yields `None`.

use std::time::{SystemTime, UNIX_EPOCH};

use x509_cert::der::Decode;
use x509_cert::name::Name;
use x509_cert::time::Time;
use x509_cert::Certificate;

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
        let cert = Certificate::from_der(der).ok()?;
        let tbs = cert.tbs_certificate();
        let validity = tbs.validity();
        Some(CertificateSummary {
            subject_common_name: common_name(tbs.subject()),
            issuer_common_name: common_name(tbs.issuer()),
            not_before: system_time(validity.not_before),
            not_after: system_time(validity.not_after),
        })
    }

    /// Whether `now` is past [`not_after`](Self::not_after).
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        now > self.not_after
    }
}

/// The first CN attribute of a name, if it is a directory string.
fn common_name(name: &Name) -> Option<String> {
    name.common_name()
        .ok()
        .flatten()
        .map(|cn| cn.value().into_owned())
}

fn system_time(t: Time) -> SystemTime {
    UNIX_EPOCH + t.to_unix_duration()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
#[cfg(test)]
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
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
