//! A connection's single deadline (Kestrel's `TimeoutControl`) and why it was set.

use super::*;

/// Why a connection's deadline was set (Kestrel's `TimeoutReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum TimeoutReason {
    /// No deadline.
    None = 0,
    /// Waiting for the next request on an idle connection.
    KeepAlive = 1,
    /// Waiting for the rest of a request head.
    RequestHeaders = 2,
    /// Draining an unread request body after the response.
    RequestBodyDrain = 3,
    /// The request body arrives too slowly.
    ReadDataRate = 4,
    /// The client reads the response too slowly.
    WriteDataRate = 5,
    /// A deadline the app set (Kestrel's `IConnectionTimeoutFeature`).
    TimeoutFeature = 6,
}

impl TimeoutReason {
    fn from_u8(v: u8) -> TimeoutReason {
        match v {
            1 => TimeoutReason::KeepAlive,
            2 => TimeoutReason::RequestHeaders,
            3 => TimeoutReason::RequestBodyDrain,
            4 => TimeoutReason::ReadDataRate,
            5 => TimeoutReason::WriteDataRate,
            6 => TimeoutReason::TimeoutFeature,
            _ => TimeoutReason::None,
        }
    }
}

/// A connection's single deadline, in heartbeat ticks (ms), like Kestrel's
/// `TimeoutControl`: `deadline = last tick + timeout + one interval`, checked
/// on each heartbeat. Pure logic over plain numbers, so it is unit-testable.
#[derive(Debug)]
pub struct TimeoutControl {
    deadline: AtomicU64,
    reason: AtomicU8,
    fired: AtomicU8,
}

impl Default for TimeoutControl {
    fn default() -> Self {
        TimeoutControl {
            deadline: AtomicU64::new(u64::MAX),
            reason: AtomicU8::new(TimeoutReason::None as u8),
            fired: AtomicU8::new(TimeoutReason::None as u8),
        }
    }
}

impl TimeoutControl {
    /// Arm the deadline: `now_ticks + timeout + interval`.
    pub fn set(
        &self,
        reason: TimeoutReason,
        timeout: Duration,
        now_ticks: u64,
        interval: Duration,
    ) {
        let deadline = now_ticks
            .saturating_add(timeout.as_millis().min(u64::MAX as u128) as u64)
            .saturating_add(interval.as_millis() as u64);
        self.reason.store(reason as u8, Ordering::Relaxed);
        self.deadline.store(deadline, Ordering::Release);
    }

    /// Disarm the deadline.
    pub fn cancel(&self) {
        self.deadline.store(u64::MAX, Ordering::Release);
        self.reason
            .store(TimeoutReason::None as u8, Ordering::Relaxed);
    }

    /// The armed reason, if any.
    pub fn armed(&self) -> TimeoutReason {
        TimeoutReason::from_u8(self.reason.load(Ordering::Relaxed))
    }

    /// Check the deadline at `now_ticks`; returns the reason when it just expired.
    pub fn check(&self, now_ticks: u64) -> Option<TimeoutReason> {
        let deadline = self.deadline.load(Ordering::Acquire);
        if now_ticks > deadline {
            let reason = self.armed();
            if reason != TimeoutReason::None {
                self.deadline.store(u64::MAX, Ordering::Release);
                self.fired.store(reason as u8, Ordering::Release);
                return Some(reason);
            }
        }
        None
    }

    /// Record an expiry decided elsewhere (a data rate).
    pub fn fire(&self, reason: TimeoutReason) {
        self.fired.store(reason as u8, Ordering::Release);
    }

    /// The reason of the last expiry, taken (reset to none).
    pub fn take_fired(&self) -> TimeoutReason {
        TimeoutReason::from_u8(self.fired.swap(TimeoutReason::None as u8, Ordering::AcqRel))
    }
}
