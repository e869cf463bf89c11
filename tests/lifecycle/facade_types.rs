//! The facade's public types can cross threads (a compile-time check, as tokio
//! does for its own types): a regression here fails the build of this test.
#![allow(dead_code)]

fn send<T: Send>() {}
fn send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<kestrel::KestrelServer>();
    send_sync::<kestrel::RunningServer>();
    send_sync::<kestrel::KestrelServerOptions>();
    send_sync::<kestrel::ListenOptions>();
    send_sync::<kestrel::ServerLimits>();
    send_sync::<kestrel::Http2Limits>();
    send_sync::<kestrel::MinDataRate>();
    send_sync::<kestrel::ConnectionInfo>();
    send_sync::<kestrel::ServerAddresses>();
    send_sync::<kestrel::BoundAddress>();
    send_sync::<kestrel::RequestLimits>();
    send_sync::<kestrel::UpgradeFeature>();
    send_sync::<kestrel::RequestAborted>();
    send_sync::<kestrel::TlsInfo>();
    send_sync::<kestrel::StartError>();
    send_sync::<kestrel::BodyError>();
    send_sync::<kestrel::UpgradeError>();
    send_sync::<kestrel::tls::HttpsOptions>();
    send_sync::<kestrel::http1::Http1Config>();
    send_sync::<kestrel::http2::Http2Config>();
    send::<kestrel::RequestBody>();
    send::<kestrel::Upgraded>();
    send::<kestrel::OnUpgrade>();
    send::<kestrel::http1::Http1Connection>();
}
