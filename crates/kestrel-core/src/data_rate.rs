//! Minimum data rates (Kestrel's `MinRequestBodyDataRate` and
//! `MinResponseDataRate`, enforced like its `TimeoutControl`).
//!
//! * **Reads**: only time the server spends *waiting* on a read of the
//!   request body counts (the app being slow to read does not). Each
//!   heartbeat adds the elapsed time (at most one tick's worth) while a read
//!   is pending; once that time is past the grace period, the average rate
//!   `bytes / seconds` must be at least the minimum.
//! * **Writes**: each write extends a deadline by `max(grace, bytes / rate)`;
//!   if a write is still pending past the deadline, the client reads too slowly.
//!
//! The logic takes plain millisecond timestamps, so it is unit-tested with a
//! fake clock; the connection updates it with atomics (no locks) and the
//! heartbeat checks it once per tick.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::connection::TimeoutReason;
use crate::limits::MinDataRate;

/// The most one heartbeat tick may add to the time spent waiting on reads.
const MAX_TICK_MS: u64 = 1000;

/// Encodes a rate as milli-bytes per second (0 = no minimum).
fn encode_rate(rate: Option<MinDataRate>) -> (u64, u64) {
    match rate {
        Some(r) => (
            ((r.bytes_per_second * 1000.0).round() as u64).max(1),
            r.grace_period.as_millis() as u64,
        ),
        None => (0, 0),
    }
}

/// Read and write rate tracking for one connection.
#[derive(Debug, Default)]
pub struct DataRateControl {
    read_rate_milli: AtomicU64,
    read_grace_ms: AtomicU64,
    read_active: AtomicBool,
    read_bytes: AtomicU64,
    read_elapsed_ms: AtomicU64,
    write_rate_milli: AtomicU64,
    write_grace_ms: AtomicU64,
    write_pending: AtomicU32,
    write_deadline: AtomicU64,
    last_tick: AtomicU64,
}

impl DataRateControl {
    /// Start measuring a request body against `rate` (`None`: no minimum).
    pub fn begin_read(&self, rate: Option<MinDataRate>) {
        let (milli, grace) = encode_rate(rate);
        self.read_bytes.store(0, Ordering::Relaxed);
        self.read_elapsed_ms.store(0, Ordering::Relaxed);
        self.read_active.store(false, Ordering::Relaxed);
        self.read_grace_ms.store(grace, Ordering::Relaxed);
        self.read_rate_milli.store(milli, Ordering::Release);
    }

    /// Stop measuring reads (the body is complete, or the request ended).
    pub fn end_read(&self) {
        self.read_rate_milli.store(0, Ordering::Release);
        self.read_active.store(false, Ordering::Relaxed);
    }

    /// The server starts or stops waiting for request body bytes.
    #[inline]
    pub fn set_read_waiting(&self, waiting: bool) {
        if self.read_rate_milli.load(Ordering::Relaxed) != 0 {
            self.read_active.store(waiting, Ordering::Relaxed);
        }
    }

    /// `n` request body bytes arrived.
    #[inline]
    pub fn add_read_bytes(&self, n: usize) {
        if self.read_rate_milli.load(Ordering::Relaxed) != 0 {
            self.read_bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// A response starts: its minimum data rate is the one in `limits` now
    /// (the request's, which the app may have changed). Returns whether
    /// there is one (whether writes need timing).
    pub fn begin_response(&self, limits: &crate::request_limits::LimitsCell) -> bool {
        let rate = limits.current().min_response_data_rate;
        self.set_write_rate(rate);
        rate.is_some()
    }

    /// Set the response rate in force (`None`: no minimum).
    pub fn set_write_rate(&self, rate: Option<MinDataRate>) {
        let (milli, grace) = encode_rate(rate);
        self.write_grace_ms.store(grace, Ordering::Relaxed);
        self.write_rate_milli.store(milli, Ordering::Release);
    }

    /// A write of `bytes` starts at `now_ms`: extend the write deadline.
    #[inline]
    pub fn start_write(&self, bytes: usize, now_ms: u64) {
        let milli = self.write_rate_milli.load(Ordering::Relaxed);
        if milli == 0 {
            return;
        }
        let grace = self.write_grace_ms.load(Ordering::Relaxed);
        let needed = (bytes as u64).saturating_mul(1_000_000) / milli;
        let extension = grace.max(needed);
        if self.write_pending.fetch_add(1, Ordering::AcqRel) == 0 {
            self.write_deadline
                .store(now_ms.saturating_add(extension), Ordering::Release);
        } else {
            self.write_deadline.fetch_add(extension, Ordering::AcqRel);
        }
    }

    /// A write finished.
    #[inline]
    pub fn stop_write(&self) {
        if self.write_rate_milli.load(Ordering::Relaxed) == 0
            && self.write_pending.load(Ordering::Relaxed) == 0
        {
            return;
        }
        let _ = self
            .write_pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Check both rates at `now_ms` (called by the heartbeat).
    pub fn on_tick(&self, now_ms: u64) -> Option<TimeoutReason> {
        self.on_tick_with(now_ms, true)
    }

    /// Check both rates at `now_ms`; with `count_reads` false, this tick's
    /// time does not count as waiting on reads and the read rate is not
    /// checked (HTTP/2: the connection's receive window is low, so the
    /// client cannot send, as Kestrel skips read timing then).
    pub fn on_tick_with(&self, now_ms: u64, count_reads: bool) -> Option<TimeoutReason> {
        // Ticks are stored +1 so that 0 means "no tick seen yet": the first
        // tick a connection sees contributes nothing, and no tick counts for
        // more than one heartbeat's worth (at most MAX_TICK_MS).
        let last = self.last_tick.swap(now_ms + 1, Ordering::AcqRel);
        let delta = if last == 0 {
            0
        } else {
            now_ms.saturating_sub(last - 1).min(MAX_TICK_MS)
        };
        let milli = self.read_rate_milli.load(Ordering::Acquire);
        if count_reads && milli != 0 && self.read_active.load(Ordering::Relaxed) {
            let elapsed = self.read_elapsed_ms.fetch_add(delta, Ordering::AcqRel) + delta;
            let grace = self.read_grace_ms.load(Ordering::Relaxed);
            if elapsed > grace {
                // bytes / (elapsed / 1000) < milli / 1000  <=>  bytes * 1e6 < milli * elapsed
                let bytes = self.read_bytes.load(Ordering::Relaxed) as u128;
                if bytes * 1_000_000 < milli as u128 * elapsed as u128 {
                    self.end_read();
                    return Some(TimeoutReason::ReadDataRate);
                }
            }
        }
        if self.write_pending.load(Ordering::Acquire) > 0
            && self.write_rate_milli.load(Ordering::Relaxed) != 0
            && now_ms > self.write_deadline.load(Ordering::Acquire)
        {
            return Some(TimeoutReason::WriteDataRate);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rate(bps: f64, grace_s: u64) -> Option<MinDataRate> {
        Some(MinDataRate {
            bytes_per_second: bps,
            grace_period: Duration::from_secs(grace_s),
        })
    }

    #[test]
    fn slow_reads_fail_after_the_grace_period() {
        let c = DataRateControl::default();
        c.on_tick(0);
        c.begin_read(rate(100.0, 5));
        c.set_read_waiting(true);
        for t in 1..=5 {
            assert_eq!(
                c.on_tick(t * 1000),
                None,
                "within the grace period at {t} s"
            );
            c.add_read_bytes(50);
        }
        // 250 bytes over 6 s waiting = 41 B/s < 100 B/s.
        assert_eq!(c.on_tick(6000), Some(TimeoutReason::ReadDataRate));
    }

    #[test]
    fn only_time_spent_waiting_counts() {
        let c = DataRateControl::default();
        c.on_tick(0);
        c.begin_read(rate(100.0, 2));
        // The app does not read for a long time: the server is not waiting.
        for t in 1..=60 {
            assert_eq!(c.on_tick(t * 1000), None);
        }
        c.set_read_waiting(true);
        c.add_read_bytes(1000);
        for t in 61..=70 {
            assert_eq!(
                c.on_tick(t * 1000),
                None,
                "1000 B over at most 10 s waiting is fast enough"
            );
        }
        assert_eq!(
            c.on_tick(71_000),
            Some(TimeoutReason::ReadDataRate),
            "1000 B / 11 s < 100 B/s"
        );
    }

    #[test]
    fn fast_reads_and_no_rate_never_fail() {
        let c = DataRateControl::default();
        c.on_tick(0);
        c.begin_read(rate(240.0, 5));
        c.set_read_waiting(true);
        for t in 1..=30 {
            c.add_read_bytes(10_000);
            assert_eq!(c.on_tick(t * 1000), None);
        }
        c.begin_read(None);
        c.set_read_waiting(true);
        for t in 31..=100 {
            assert_eq!(c.on_tick(t * 1000), None);
        }
    }

    #[test]
    fn the_first_tick_and_long_gaps_count_at_most_one_tick() {
        let c = DataRateControl::default();
        c.begin_read(rate(100.0, 2));
        c.set_read_waiting(true);
        // The server has run for a minute before this connection's first tick.
        assert_eq!(c.on_tick(60_000), None);
        c.add_read_bytes(300);
        // A stalled heartbeat (10 s gap) adds at most 1 s.
        assert_eq!(c.on_tick(70_000), None);
        assert_eq!(c.on_tick(71_000), None);
        assert_eq!(
            c.on_tick(72_000),
            None,
            "300 B / 3 s waiting = exactly 100 B/s"
        );
        assert_eq!(
            c.on_tick(73_000),
            Some(TimeoutReason::ReadDataRate),
            "300 B / 4 s < 100 B/s"
        );
    }

    #[test]
    fn ticks_that_do_not_count_reads_add_no_waiting_time() {
        let c = DataRateControl::default();
        c.on_tick(0);
        c.begin_read(rate(100.0, 2));
        c.set_read_waiting(true);
        for t in 1..=10 {
            assert_eq!(c.on_tick_with(t * 1000, false), None, "paused at {t} s");
        }
        c.add_read_bytes(250);
        assert_eq!(c.on_tick(11_000), None);
        assert_eq!(c.on_tick(12_000), None);
        assert_eq!(
            c.on_tick(13_000),
            Some(TimeoutReason::ReadDataRate),
            "250 B / 3 s counted < 100 B/s"
        );
    }

    #[test]
    fn write_deadline_accumulates_per_write() {
        let c = DataRateControl::default();
        c.set_write_rate(rate(1000.0, 2));
        // 10 KB at 1000 B/s needs 10 s (more than the 2 s grace).
        c.start_write(10_000, 0);
        assert_eq!(c.on_tick(9_000), None);
        assert_eq!(c.on_tick(10_001), Some(TimeoutReason::WriteDataRate));
        c.stop_write();
        assert_eq!(c.on_tick(20_000), None, "no write pending");
        // Small writes get the grace period each, added up while pending.
        c.start_write(10, 30_000);
        c.start_write(10, 30_000);
        assert_eq!(c.on_tick(33_500), None, "two writes pending: 4 s");
        assert_eq!(c.on_tick(34_001), Some(TimeoutReason::WriteDataRate));
        c.stop_write();
        c.stop_write();
        c.set_write_rate(None);
        c.start_write(1 << 30, 40_000);
        assert_eq!(c.on_tick(1_000_000), None, "no minimum rate");
    }
}
