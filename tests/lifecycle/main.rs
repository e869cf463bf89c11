//! The server's life, one test binary with a module per subject: binding
//! endpoints, the connection limit and shutdown, zero-downtime restart of the
//! demo process (its signals go to the demo child, never to this process),
//! transports of the caller's (in-memory, listener factories) through
//! `KestrelServer`, and the facade's types crossing threads.

mod custom_transport;
mod endpoints_bind;
mod facade_types;
mod restart_zero_downtime;
mod server;
