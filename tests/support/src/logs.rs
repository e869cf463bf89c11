//! The one global log capture of a test binary.
//!
//! A process has one global `tracing` subscriber, and a test binary holds
//! the tests of a whole area, so no test installs its own: every test that
//! reads the logs calls [`capture`], which installs (once) a subscriber
//! writing Kestrel's events (every `kestrel…` target, at debug and above) as
//! plain text lines into one buffer, and [`text`] returns that buffer.
//!
//! The capture is global, not scoped (`tracing::subscriber::set_default`),
//! because the events a test waits for are logged from other threads (the
//! configuration and certificate watchers, the runtime's workers), and
//! because `tracing` caches each callsite's interest: a callsite first
//! reached from a thread without a scoped subscriber could stay silenced.
//! The other tests of the binary log into the same buffer, so a test looks
//! for lines that only it can cause (its own port, file or address), or
//! counts lines before and after what it does.
//!
//! Call [`capture`] before building a host with
//! `WebHost::create_default_builder`: the default builder installs its own
//! console subscriber when the process has none, and after that the capture
//! cannot be installed (the helpers that build such hosts in `tests/hosting/`
//! and `tests/https/` call it first).

use std::io::Write;
use std::sync::{Mutex, Once};

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Appends what the subscriber formats to [`LOG`].
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Install the global capture, once per process; later calls do nothing.
///
/// # Panics
///
/// When something else installed a global subscriber in this test binary.
pub fn capture() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("kestrel=debug")
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("kestrel_test_support::logs is the only global subscriber of a test binary");
    });
}

/// Everything captured so far in this process, one event per line.
pub fn text() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}
