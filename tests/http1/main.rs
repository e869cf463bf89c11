//! HTTP/1.1 over real sockets, one test binary with a module per subject:
//! raw framing and smuggling rules, limits and data rates, the request-aborted
//! signal, opaque upgrades (WebSocket), and the demo app driven by curl.
//! Helpers come from the `kestrel-test-support` crate (tests/support/).

mod demo_curl;
mod limits_rates;
mod raw;
mod request_aborted;
mod upgrade_websocket;
