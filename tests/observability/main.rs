//! Observability, one test binary with a module per subject: log events as
//! `tracing` events, metrics through the `metrics` facade, the Prometheus
//! endpoint.
//!
//! Process-wide state here: the Prometheus test installs the process's one
//! global metrics recorder (no other test may); the metrics tests record into
//! thread-local recorders and the event tests into scoped subscribers, so
//! neither sees the other tests' servers.

mod events;
mod metrics;
mod prometheus;
