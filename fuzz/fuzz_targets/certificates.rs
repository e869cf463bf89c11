//! Certificate loading: PEM certificate and key (every key kind rustls
//! reads: PKCS#8, PKCS#1, SEC1), PKCS#12 with and without a password, and
//! the X.509 summary (`CertificateSummary`, on `x509-cert`). The first byte
//! picks which; PEM inputs are split in two at the first `\0`.
//!
//! Properties: no panic; a loaded certificate has a non-empty chain, its
//! `summary()` is the summary of its leaf, and its PEM chain reads back to
//! the same DER; a summary's validity is ordered as its certificate says
//! and `is_expired_at` turns true just after `not_after`.
#![no_main]

use std::time::Duration;

use kestrel_tls::{Certificate, CertificateSummary};
use libfuzzer_sys::fuzz_target;

fn check_loaded(cert: &Certificate, key_pem: Option<&[u8]>) {
    let chain: Vec<Vec<u8>> = cert.chain_der().collect();
    assert!(!chain.is_empty(), "a certificate with an empty chain");
    assert_eq!(cert.summary(), CertificateSummary::parse(&chain[0]));
    if let Some(key) = key_pem {
        let again = Certificate::from_pem(cert.chain_pem().as_bytes(), key)
            .expect("the chain's PEM reads back");
        let again: Vec<Vec<u8>> = again.chain_der().collect();
        assert_eq!(again, chain);
    }
}

fn check_summary(der: &[u8]) {
    let Some(s) = CertificateSummary::parse(der) else {
        return;
    };
    assert_eq!(
        CertificateSummary::parse(der).as_ref(),
        Some(&s),
        "deterministic"
    );
    assert!(!s.is_expired_at(s.not_after));
    assert!(s.is_expired_at(s.not_after + Duration::from_secs(1)));
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            let (cert, key) = match data.iter().position(|&b| b == 0) {
                Some(i) => (&data[..i], &data[i + 1..]),
                None => (data, data),
            };
            if let Ok(c) = Certificate::from_pem(cert, key) {
                check_loaded(&c, Some(key));
            }
        }
        1 => {
            if let Ok(c) = Certificate::from_pkcs12(data, "") {
                check_loaded(&c, None);
            }
        }
        2 => {
            if let Ok(c) = Certificate::from_pkcs12(data, "fuzz-password") {
                check_loaded(&c, None);
            }
        }
        _ => check_summary(data),
    }
});
