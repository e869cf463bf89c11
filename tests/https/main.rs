//! HTTPS over real sockets, one test binary with a module per subject:
//! certificate sources, client certificates, the development certificate,
//! certificate reload, handshake safety, SNI and ALPN.
//!
//! The reload tests read the binary's one global log capture
//! (`kestrel_test_support::logs`); no other test here installs a global
//! subscriber.

mod certificates;
mod chromium;
mod client_certs;
mod dev_cert;
mod http3;
mod http3_aioquic;
mod http3_ngtcp2;
mod reload;
mod safety;
mod sni_alpn;
