//! The server's life, one test binary with a module per subject: binding
//! endpoints, the connection limit and shutdown, zero-downtime restart of the
//! demo process (its signals go to the demo child, never to this process),
//! transports of the caller's (in-memory, listener factories) through
//! `KestrelServer`, the framework author's path over the runtime (the
//! embedding examples), and the facade's types crossing threads.

mod custom_transport;
mod embedded;
mod endpoints_bind;
mod facade_types;
mod restart_zero_downtime;
mod server;

// The embedding examples, compiled in as they are so that `embedded` runs
// their `serve` against real clients.
#[path = "../../examples/h2c_embedded.rs"]
#[allow(dead_code)]
mod h2c_example;
#[path = "../../examples/http1_embedded.rs"]
#[allow(dead_code)]
mod http1_example;
