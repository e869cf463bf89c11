//! The development certificate: created on first use with private
//! permissions, reused afterwards, replaced when expired or unreadable,
//! exported without its key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kestrel_tls::{Certificate, DevCertificate};

#[test]
fn created_once_then_reused_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let dev_dir = dir.path().join("nested").join("dev-cert");
    let first = DevCertificate::load_or_create_in(&dev_dir).unwrap();
    assert!(first.was_created());
    assert_eq!(first.path(), dev_dir.join("localhost.pem"));
    let summary = first.certificate().summary().unwrap();
    assert_eq!(summary.subject_common_name.as_deref(), Some("localhost"));
    let days = summary
        .not_after
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs()
        / 86_400;
    assert!((360..=366).contains(&days), "valid for a year: {days} days");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(first.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    let second = DevCertificate::load_or_create_in(&dev_dir).unwrap();
    assert!(!second.was_created());
    assert_eq!(
        first.certificate().chain_der().collect::<Vec<_>>(),
        second.certificate().chain_der().collect::<Vec<_>>()
    );

    let out = dir.path().join("export.pem");
    second.export(&out).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text, first.certificate_pem());
    assert!(text.contains("BEGIN CERTIFICATE") && !text.contains("PRIVATE KEY"));
}

#[test]
fn the_certificate_covers_localhost_and_both_loopback_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let dev = DevCertificate::load_or_create_in(dir.path()).unwrap();
    let der: Vec<u8> = dev.certificate().chain_der().next().unwrap().to_vec();
    let contains = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
    // SAN entries: dNSName "localhost", iPAddress 127.0.0.1 and ::1.
    assert!(contains(&[
        0x82, 9, b'l', b'o', b'c', b'a', b'l', b'h', b'o', b's', b't'
    ]));
    assert!(contains(&[0x87, 4, 127, 0, 0, 1]));
    let mut v6 = vec![0x87, 16];
    v6.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    assert!(contains(&v6));
}

#[test]
fn basic_constraints_are_critical_not_a_ca_and_der_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let dev = DevCertificate::load_or_create_in(dir.path()).unwrap();
    let der: Vec<u8> = dev.certificate().chain_der().next().unwrap().to_vec();
    let contains = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
    // Extension { id-ce-basicConstraints, critical TRUE, OCTET STRING {
    // SEQUENCE {} } }: DER omits cA's DEFAULT FALSE. An explicit
    // `BOOLEAN FALSE` inside (30 03 01 01 00) is not DER, and strict parsers
    // (Python's cryptography, hence aioquic) refuse the whole certificate.
    assert!(contains(&[
        0x06, 0x03, 0x55, 0x1d, 0x13, 0x01, 0x01, 0xff, 0x04, 0x02, 0x30, 0x00
    ]));
    assert!(!contains(&[0x04, 0x05, 0x30, 0x03, 0x01, 0x01, 0x00]));
}

#[test]
fn an_expired_or_broken_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("localhost.pem");
    // An expired self-signed certificate in place of the dev cert.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2001, 1, 1);
    params.not_after = rcgen::date_time_ymd(2002, 1, 1);
    let old = params.self_signed(&key).unwrap();
    std::fs::write(&path, format!("{}{}", old.pem(), key.serialize_pem())).unwrap();
    assert!(Certificate::from_pem_files(&path, &path).is_ok());
    let dev = DevCertificate::load_or_create_in(dir.path()).unwrap();
    assert!(dev.was_created(), "an expired certificate is replaced");
    assert!(!dev
        .certificate()
        .summary()
        .unwrap()
        .is_expired_at(std::time::SystemTime::now()));

    std::fs::write(&path, "not a certificate").unwrap();
    let dev = DevCertificate::load_or_create_in(dir.path()).unwrap();
    assert!(dev.was_created(), "an unreadable file is replaced");
}
