//! HTTP/2 over real sockets, one test binary with a module per subject:
//! streams, limits, attacks and data rates with hand-built frames, the
//! h2spec conformance cases, extended CONNECT, protocol selection, the
//! request-aborted signal, and interop with curl, h2load and Python peers.

mod attacks;
mod conformance;
mod data_rates;
mod extended_connect;
mod interop;
mod limits;
mod protocols;
mod python;
mod request_aborted;
mod streams;
