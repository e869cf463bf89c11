//! Hosting, one test binary with a module per subject: the WebHostBuilder,
//! configuration and its reload, the lifetime of the demo process, health
//! checks, the middleware pipeline and the built-in middleware (forwarded
//! headers, host filtering, static files), tower interop, and nginx in front.
//!
//! Process-wide state here: the reload and host-filtering tests read the
//! binary's one global log capture (`kestrel_test_support::logs`); the
//! configuration test sets `ASPNETCORE_Prec__*` variables that no other test
//! reads (the demo processes are started without `ASPNETCORE_*`); signals
//! (SIGHUP, SIGTERM) go to demo child processes, never to this process.

mod builder;
mod config;
mod forwarded_headers;
mod health;
mod host_filtering;
mod lifetime;
mod nginx;
mod pipeline;
mod reload;
mod static_files;
mod tower;
