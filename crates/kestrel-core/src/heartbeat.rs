//! The heartbeat: a 1 s tick that refreshes the cached `Date` header value and
//! checks every connection's deadline (Kestrel's `Heartbeat` + `DateHeaderValueManager`).
//!
//! Time inside a connection is kept as milliseconds since the heartbeat
//! started ("ticks"), read from the heartbeat's last tick. Deadline logic
//! ([`TimeoutControl`](crate::connection::TimeoutControl)) takes those numbers as
//! plain inputs, so it is unit-tested without sleeping; the heartbeat task uses
//! `tokio::time`, so tests may also pause and advance time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::HeaderValue;
use tokio::time::Instant;

use crate::connection::ConnectionManager;

/// The cached value of the `Date` header, refreshed on every heartbeat.
///
/// Readers keep a [`DateSlot`] and refresh it only when the generation moved,
/// so the hot path is one atomic load.
#[derive(Debug)]
pub struct DateCache {
    generation: AtomicU64,
    value: Mutex<HeaderValue>,
}

impl DateCache {
    /// A cache holding the current time.
    pub fn new() -> Self {
        DateCache {
            generation: AtomicU64::new(1),
            value: Mutex::new(format_date(SystemTime::now())),
        }
    }

    /// Set the cached value from `now`.
    pub fn update(&self, now: SystemTime) {
        let v = format_date(now);
        if let Ok(mut guard) = self.value.lock() {
            *guard = v;
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The current value (a cheap clone of shared bytes).
    pub fn get(&self) -> HeaderValue {
        match self.value.lock() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl Default for DateCache {
    fn default() -> Self {
        Self::new()
    }
}

/// A reader's copy of the [`DateCache`], refreshed only when it changed.
#[derive(Debug, Clone)]
pub struct DateSlot {
    generation: u64,
    value: HeaderValue,
}

impl DateSlot {
    /// A slot filled from `cache`.
    pub fn new(cache: &DateCache) -> Self {
        DateSlot {
            generation: cache.generation.load(Ordering::Acquire),
            value: cache.get(),
        }
    }

    /// The current `Date` value.
    pub fn get(&mut self, cache: &DateCache) -> &HeaderValue {
        let g = cache.generation.load(Ordering::Acquire);
        if g != self.generation {
            self.generation = g;
            self.value = cache.get();
        }
        &self.value
    }
}

fn format_date(now: SystemTime) -> HeaderValue {
    let s = httpdate::fmt_http_date(now);
    HeaderValue::from_str(&s)
        .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

/// The server clock shared by all connections: the heartbeat's last tick.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    now_ms: AtomicU64,
    interval: Duration,
    date: DateCache,
}

impl Clock {
    /// A clock ticking every `interval`.
    pub fn new(interval: Duration) -> Arc<Self> {
        Arc::new(Clock {
            start: Instant::now(),
            now_ms: AtomicU64::new(0),
            interval,
            date: DateCache::new(),
        })
    }

    /// Milliseconds since the clock started, as of the last tick.
    pub fn ticks(&self) -> u64 {
        self.now_ms.load(Ordering::Acquire)
    }

    /// Milliseconds since the clock started, read now (not at the last tick).
    pub fn precise_ticks(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// The current instant, for timers and durations: the runtime's clock
    /// (`tokio::time`), which tests can pause and advance. Drivers read time
    /// here, never from `std::time::Instant`.
    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// The heartbeat interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The cached `Date` header value.
    pub fn date(&self) -> &DateCache {
        &self.date
    }

    /// Advance to the current time and refresh the date; returns the new ticks.
    pub fn tick(&self) -> u64 {
        let now = self.precise_ticks();
        self.now_ms.store(now, Ordering::Release);
        self.date.update(SystemTime::now());
        now
    }
}

/// Runs the heartbeat until the returned handle is aborted (dropping a
/// tokio `JoinHandle` detaches the task, it does not stop it: call
/// `abort()` when the server stops).
///
/// Each tick refreshes the `Date` value and checks the deadline of every
/// connection in `manager`. A tick that takes longer than the interval logs
/// Kestrel's HeartbeatSlow warning (event 22).
pub fn spawn_heartbeat(
    clock: Arc<Clock>,
    manager: Arc<ConnectionManager>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(clock.interval());
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let started = Instant::now();
            let now = clock.tick();
            manager.on_heartbeat(now);
            let took = started.elapsed();
            if took > clock.interval() {
                crate::events::heartbeat_slow(took, clock.interval());
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_slot_refreshes_only_on_new_generation() {
        let cache = DateCache::new();
        cache.update(SystemTime::UNIX_EPOCH);
        let mut slot = DateSlot::new(&cache);
        assert_eq!(slot.get(&cache), "Thu, 01 Jan 1970 00:00:00 GMT");
        cache.update(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400));
        assert_eq!(slot.get(&cache), "Fri, 02 Jan 1970 00:00:00 GMT");
    }

    #[tokio::test(start_paused = true)]
    async fn clock_ticks_follow_time() {
        let clock = Clock::new(Duration::from_secs(1));
        assert_eq!(clock.ticks(), 0);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.tick(), 1500);
        assert_eq!(clock.ticks(), 1500);
    }
}
