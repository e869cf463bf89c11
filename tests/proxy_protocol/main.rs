//! The PROXY protocol, one test binary: the middleware configured in code
//! with raw v1/v2 headers, and a real HAProxy in front of the demo.

mod haproxy;
mod raw;
