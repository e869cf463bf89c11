//! Connection lifecycle: ids, the concurrent-connection limit, per-connection
//! deadlines and the close/abort signals a graceful shutdown sends
//! (Kestrel's `ConnectionManager`, `ResourceCounter` and `TimeoutControl`).
//!
//! [`ConnectionManager`] admits connections ([`ConnectionGuard`]) and walks
//! them for the heartbeat and shutdown; each live connection has a
//! [`ConnectionHandle`] (its deadline, [`TimeoutControl`], and the
//! [`Signal`]s it is sent); [`ConnectionEndReason`] is why it ended.

mod end_reason;
mod handle;
mod manager;
mod timeout;

pub use end_reason::ConnectionEndReason;
pub use handle::{ConnectionHandle, Signal};
pub use manager::{ConnectionGuard, ConnectionLimitError, ConnectionManager};
pub use timeout::{TimeoutControl, TimeoutReason};

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use atomic_waker::AtomicWaker;
use tokio::sync::Notify;

use crate::data_rate::DataRateControl;
use handle::*;

/// A connection id, shown as Kestrel shows them (13 base-32 characters, e.g. `0HN7Q2L4TV1AB`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHIJKLMNOPQRSTUV";
        let mut out = [0u8; 13];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 60 - 5 * i as i32;
            let idx = if shift >= 0 {
                (self.0 >> shift) & 31
            } else {
                (self.0 << -shift) & 31
            };
            *slot = ALPHABET[idx as usize];
        }
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests;
