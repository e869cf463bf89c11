//! The server's life, one test binary with a module per subject: binding
//! endpoints, the connection limit and shutdown, zero-downtime restart of the
//! demo process (its signals go to the demo child, never to this process),
//! and the facade's types crossing threads.

mod endpoints_bind;
mod facade_types;
mod restart_zero_downtime;
mod server;
