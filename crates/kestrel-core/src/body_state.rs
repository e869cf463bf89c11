//! The request-body state machine every protocol driver uses (the body half
//! of Kestrel's `HttpProtocol`/`MessageBody`).
//!
//! A [`RequestBodyState`] knows where a request body stands ([`BodyPhase`]):
//! not read yet (its limits can still change), the client waiting for
//! `100 Continue`, `100 Continue` owed now that the app asked for the body,
//! reading, done, or rejected with a reason ([`BodyRejection`]). It holds
//! the counters every protocol needs (declared length, bytes received, the
//! size limit in force) and the minimum-data-rate tracking switch, and maps
//! a rejection to the [`BodyError`] the application sees.
//!
//! What differs between protocols stays in the driver: how bytes are decoded
//! (HTTP/1's length and chunked decoders, HTTP/2's `RecvStream`), how
//! `100 Continue` reaches the wire, and how a stream is reset. A driver calls
//! [`start_read`](RequestBodyState::start_read) at the start of every body
//! poll, [`data_received`](RequestBodyState::data_received) for each chunk of
//! body bytes, [`finish`](RequestBodyState::finish) at the end and
//! [`reject`](RequestBodyState::reject) when the body fails.
//!
//! ```text
//!  AwaitingContinue ──first read──▶ ContinueOwed ──sent/skipped──┐
//!  Unread ───────────first read──────────────────────────────────┴─▶ Reading ──▶ Done
//!     (limits can change)          (limits frozen)                      │
//!  any phase but Done ──reject──▶ Rejected(reason) ◀── over the limit ──┘
//! ```

use std::convert::Infallible;

use crate::body::BodyError;
use crate::data_rate::DataRateControl;
use crate::request_limits::LimitsCell;

/// A protocol's reason for a malformed body (HTTP/1's chunked framing
/// errors); HTTP/2 has none ([`Infallible`]).
pub trait MalformedBody: Copy {
    /// The short description carried by [`BodyError::Malformed`].
    fn describe(self) -> &'static str;
}

impl MalformedBody for Infallible {
    fn describe(self) -> &'static str {
        match self {}
    }
}

/// Why a request body was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRejection<M = Infallible> {
    /// The body is larger than the limit (declared or received): 413.
    TooLarge,
    /// The body arrived below the minimum data rate: 408 (HTTP/1) or the
    /// connection is closed (HTTP/2).
    Timeout,
    /// The client went away before the body was complete.
    ClientGone,
    /// The body's framing is malformed (a protocol-specific reason): 400.
    Malformed(M),
}

/// Where a request body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPhase<M = Infallible> {
    /// The app has not asked for the body; its limits can still change.
    Unread,
    /// The client sent `Expect: 100-continue` and the app has not asked
    /// for the body: the client may be holding it back.
    AwaitingContinue,
    /// The app asked for the body of a client waiting for `100 Continue`:
    /// the driver sends it (or finds it unneeded) and calls
    /// [`RequestBodyState::continue_answered`].
    ContinueOwed,
    /// The body is being read; its limits are frozen.
    Reading,
    /// The body is complete.
    Done,
    /// The body failed; every later read fails the same way.
    Rejected(BodyRejection<M>),
}

/// What a body poll does next ([`RequestBodyState::start_read`]).
#[derive(Debug)]
pub enum ReadStart {
    /// Read body bytes from the protocol.
    Read,
    /// `100 Continue` is owed: send it (or skip it when the body is already
    /// arriving), then read.
    SendContinue,
    /// The body is complete: the poll returns `None`.
    End,
    /// The body failed: the poll returns this error.
    Fail(BodyError),
}

/// How a multiplexed stream's body poll starts
/// ([`RequestBodyState::start_stream_read`]).
#[derive(Debug)]
pub enum StreamReadStart {
    /// Read body bytes from the stream (`100 Continue`, if owed, is sent
    /// when the read waits).
    Read,
    /// The body is complete: the poll returns `None`.
    End,
    /// The body failed before: the poll returns this error.
    Fail(BodyError),
    /// The body was rejected just now (a declared length over the limit):
    /// the poll returns this error and the driver is woken to answer 413.
    Rejected(BodyError),
}

/// One request body's state: its [`BodyPhase`], the counters, and whether
/// its minimum data rate is being tracked.
#[derive(Debug, Clone)]
pub struct RequestBodyState<M = Infallible> {
    phase: BodyPhase<M>,
    /// The body-size limit in force (`None`: unlimited).
    limit: Option<u64>,
    /// The length the client declared (`Content-Length`), if any.
    declared_len: Option<u64>,
    /// Body bytes received so far.
    received: u64,
    /// The minimum request body data rate is being measured.
    rate_tracked: bool,
}

impl<M: MalformedBody> RequestBodyState<M> {
    /// No body (between requests on a connection): complete, nothing to read.
    pub const fn idle() -> Self {
        RequestBodyState {
            phase: BodyPhase::Done,
            limit: None,
            declared_len: None,
            received: 0,
            rate_tracked: false,
        }
    }

    /// A new request's body. `has_body`: false when the request has none
    /// (the body starts [`Done`](BodyPhase::Done)); `limit` is the size
    /// limit in force until the app's first read freezes its own.
    pub fn new(
        has_body: bool,
        declared_len: Option<u64>,
        expect_continue: bool,
        limit: Option<u64>,
    ) -> Self {
        let phase = if !has_body {
            BodyPhase::Done
        } else if expect_continue {
            BodyPhase::AwaitingContinue
        } else {
            BodyPhase::Unread
        };
        RequestBodyState {
            phase,
            limit,
            declared_len,
            received: 0,
            rate_tracked: false,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> BodyPhase<M> {
        self.phase
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, BodyPhase::Done)
    }

    /// Whether the app has not asked for the body yet.
    pub fn is_unread(&self) -> bool {
        matches!(self.phase, BodyPhase::Unread | BodyPhase::AwaitingContinue)
    }

    /// The client still waits for a `100 Continue` nobody sent: the
    /// connection cannot carry another request.
    pub fn is_awaiting_continue(&self) -> bool {
        matches!(self.phase, BodyPhase::AwaitingContinue)
    }

    /// The rejection, if the body was rejected.
    pub fn rejection(&self) -> Option<BodyRejection<M>> {
        match self.phase {
            BodyPhase::Rejected(r) => Some(r),
            _ => None,
        }
    }

    /// The size limit in force.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// The declared length.
    pub fn declared_len(&self) -> Option<u64> {
        self.declared_len
    }

    /// Body bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Whether the minimum request body data rate is being tracked.
    pub fn is_rate_tracked(&self) -> bool {
        self.rate_tracked
    }

    /// Called at the start of every body poll. On the first read (from
    /// [`Unread`](BodyPhase::Unread) or
    /// [`AwaitingContinue`](BodyPhase::AwaitingContinue)) the app's limits
    /// (`limits`; `None` when the driver drains the body itself) are
    /// frozen, the minimum data rate starts being tracked on `rates`, and a
    /// declared length over the limit rejects the body.
    pub fn start_read(
        &mut self,
        limits: Option<&LimitsCell>,
        rates: &DataRateControl,
    ) -> ReadStart {
        let continue_owed = match self.phase {
            BodyPhase::Rejected(r) => return ReadStart::Fail(self.error(r)),
            BodyPhase::Done => return ReadStart::End,
            BodyPhase::Reading => return ReadStart::Read,
            BodyPhase::ContinueOwed => return ReadStart::SendContinue,
            BodyPhase::Unread => false,
            BodyPhase::AwaitingContinue => true,
        };
        if let Some(cell) = limits {
            // The app's last word on the limits is taken now, as in Kestrel.
            let values = cell.freeze();
            self.limit = values.max_request_body_size;
            if values.min_request_body_data_rate.is_some() {
                rates.begin_read(values.min_request_body_data_rate);
                self.rate_tracked = true;
            }
        }
        if self.declared_over_limit() {
            return ReadStart::Fail(self.reject(BodyRejection::TooLarge));
        }
        if continue_owed {
            self.phase = BodyPhase::ContinueOwed;
            ReadStart::SendContinue
        } else {
            self.phase = BodyPhase::Reading;
            ReadStart::Read
        }
    }

    /// The start of an HTTP/2 or HTTP/3 stream body's poll: after the
    /// request `completed`, reads fail with
    /// [`BodyError::RequestCompleted`]; otherwise [`start_read`](Self::start_read)
    /// with the request's limits, telling a rejection made now (the driver
    /// must answer it) from an earlier one.
    pub fn start_stream_read(
        &mut self,
        completed: bool,
        limits: &LimitsCell,
        rates: &DataRateControl,
    ) -> StreamReadStart {
        if completed {
            return StreamReadStart::Fail(BodyError::RequestCompleted);
        }
        let rejected_before = self.rejection().is_some();
        match self.start_read(Some(limits), rates) {
            ReadStart::Read | ReadStart::SendContinue => StreamReadStart::Read,
            ReadStart::End => StreamReadStart::End,
            ReadStart::Fail(e) if rejected_before => StreamReadStart::Fail(e),
            ReadStart::Fail(e) => StreamReadStart::Rejected(e),
        }
    }

    /// `100 Continue` was sent, or found unneeded: read the body.
    pub fn continue_answered(&mut self) {
        if matches!(self.phase, BodyPhase::ContinueOwed) {
            self.phase = BodyPhase::Reading;
        }
    }

    /// `n` body bytes arrived. Over the limit, the body is rejected and the
    /// error returned.
    pub fn data_received(&mut self, n: usize) -> Result<(), BodyError> {
        self.received = self.received.saturating_add(n as u64);
        if matches!(self.phase, BodyPhase::ContinueOwed) {
            // The client sent the body without waiting.
            self.phase = BodyPhase::Reading;
        }
        if self.limit.is_some_and(|l| self.received > l) {
            return Err(self.reject(BodyRejection::TooLarge));
        }
        Ok(())
    }

    /// The body is complete.
    pub fn finish(&mut self) {
        if !matches!(self.phase, BodyPhase::Rejected(_)) {
            self.phase = BodyPhase::Done;
        }
    }

    /// Reject the body (the first reason sticks); returns the error for it.
    pub fn reject(&mut self, reason: BodyRejection<M>) -> BodyError {
        if let BodyPhase::Rejected(first) = self.phase {
            return self.error(first);
        }
        self.phase = BodyPhase::Rejected(reason);
        self.error(reason)
    }

    /// Reject a body still open (not complete, not already rejected), say
    /// from the driver on a data-rate timeout; returns whether it did.
    pub fn reject_if_open(&mut self, reason: BodyRejection<M>) -> bool {
        if matches!(self.phase, BodyPhase::Done | BodyPhase::Rejected(_)) {
            return false;
        }
        self.phase = BodyPhase::Rejected(reason);
        true
    }

    /// The app did not read the body: the limit now in force is `limit`
    /// (it may have changed it without reading). Frozen limits stay.
    pub fn refresh_unread_limit(&mut self, limit: Option<u64>) {
        if self.is_unread() {
            self.limit = limit;
        }
    }

    /// Whether the declared length is over the limit in force.
    pub fn declared_over_limit(&self) -> bool {
        matches!((self.limit, self.declared_len), (Some(l), Some(n)) if n > l)
    }

    /// Stop tracking the minimum data rate (the body ended or failed, or
    /// the driver drains it).
    pub fn end_rate(&mut self, rates: &DataRateControl) {
        if self.rate_tracked {
            rates.end_read();
            self.rate_tracked = false;
        }
    }

    /// The driver starts or stops waiting on the client for body bytes.
    #[inline]
    pub fn read_waiting(&self, rates: &DataRateControl, waiting: bool) {
        if self.rate_tracked {
            rates.set_read_waiting(waiting);
        }
    }

    /// `n` bytes of the body arrived from the client (as counted on the
    /// wire, which may differ from [`data_received`](Self::data_received)).
    #[inline]
    pub fn read_bytes(&self, rates: &DataRateControl, n: usize) {
        if self.rate_tracked {
            rates.add_read_bytes(n);
        }
    }

    /// The error the application sees for `reason`.
    pub fn error(&self, reason: BodyRejection<M>) -> BodyError {
        match reason {
            BodyRejection::TooLarge => BodyError::TooLarge {
                limit: self.limit.unwrap_or(0),
            },
            BodyRejection::Timeout => BodyError::Timeout,
            BodyRejection::ClientGone => BodyError::ConnectionAborted,
            BodyRejection::Malformed(m) => BodyError::Malformed(m.describe()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MinDataRate;
    use crate::request_limits::LimitValues;
    use std::time::Duration;

    type State = RequestBodyState;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct BadChunk;
    impl MalformedBody for BadChunk {
        fn describe(self) -> &'static str {
            "bad chunk"
        }
    }

    fn cell(limit: Option<u64>, rate: Option<MinDataRate>) -> LimitsCell {
        let values = LimitValues {
            max_request_body_size: limit,
            min_request_body_data_rate: rate,
            min_response_data_rate: None,
        };
        let cell = LimitsCell::new(values);
        let _ = cell.begin(1, values);
        cell
    }

    #[test]
    fn no_body_is_done_from_the_start() {
        let rates = DataRateControl::default();
        let mut s = State::new(false, None, true, Some(10));
        assert!(s.is_done());
        assert!(!s.is_awaiting_continue());
        assert!(matches!(s.start_read(None, &rates), ReadStart::End));
        let mut idle = State::idle();
        assert!(matches!(idle.start_read(None, &rates), ReadStart::End));
    }

    #[test]
    fn first_read_freezes_the_limits_and_reads_to_the_end() {
        let rates = DataRateControl::default();
        let cell = cell(Some(100), None);
        let req = cell.begin(2, cell.current());
        let mut s = State::new(true, None, false, Some(100));
        assert!(s.is_unread());
        req.set_max_request_body_size(Some(5)).unwrap();
        assert!(matches!(s.start_read(Some(&cell), &rates), ReadStart::Read));
        assert_eq!(s.phase(), BodyPhase::Reading);
        assert_eq!(s.limit(), Some(5));
        assert!(req.is_read_only(), "the first read froze the limits");
        s.data_received(5).unwrap();
        assert!(matches!(s.start_read(Some(&cell), &rates), ReadStart::Read));
        s.finish();
        assert!(s.is_done());
        assert!(matches!(s.start_read(Some(&cell), &rates), ReadStart::End));
    }

    #[test]
    fn a_declared_length_over_the_limit_is_rejected_at_the_first_read() {
        let rates = DataRateControl::default();
        let cell = cell(Some(10), None);
        let mut s = State::new(true, Some(11), true, Some(10));
        match s.start_read(Some(&cell), &rates) {
            ReadStart::Fail(BodyError::TooLarge { limit: 10 }) => {}
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(s.rejection(), Some(BodyRejection::TooLarge));
        // Every later read fails the same way.
        assert!(matches!(
            s.start_read(Some(&cell), &rates),
            ReadStart::Fail(BodyError::TooLarge { limit: 10 })
        ));
    }

    #[test]
    fn received_bytes_over_the_limit_reject_the_body() {
        let rates = DataRateControl::default();
        let mut s = State::new(true, None, false, Some(10));
        assert!(matches!(s.start_read(None, &rates), ReadStart::Read));
        s.data_received(10).unwrap();
        assert!(matches!(
            s.data_received(1),
            Err(BodyError::TooLarge { limit: 10 })
        ));
        assert_eq!(s.received(), 11);
        s.finish();
        assert_eq!(
            s.rejection(),
            Some(BodyRejection::TooLarge),
            "a rejected body does not become done"
        );
    }

    #[test]
    fn an_unread_body_takes_the_apps_last_limit_when_drained() {
        let mut s = State::new(true, Some(50), false, Some(100));
        assert!(!s.declared_over_limit());
        s.refresh_unread_limit(Some(20));
        assert!(s.declared_over_limit());
        // Once read, the frozen limit stays.
        let rates = DataRateControl::default();
        let mut read = State::new(true, Some(50), false, Some(100));
        let _ = read.start_read(Some(&cell(Some(60), None)), &rates);
        read.refresh_unread_limit(Some(20));
        assert_eq!(read.limit(), Some(60));
    }

    #[test]
    fn continue_is_owed_on_the_first_read_until_answered() {
        let rates = DataRateControl::default();
        let mut s = State::new(true, Some(4), true, None);
        assert!(s.is_awaiting_continue());
        assert!(matches!(
            s.start_read(None, &rates),
            ReadStart::SendContinue
        ));
        assert_eq!(s.phase(), BodyPhase::ContinueOwed);
        assert!(!s.is_awaiting_continue());
        // A poll that could not finish writing it comes back to it.
        assert!(matches!(
            s.start_read(None, &rates),
            ReadStart::SendContinue
        ));
        s.continue_answered();
        assert!(matches!(s.start_read(None, &rates), ReadStart::Read));
        // A client that sends without waiting answers it too.
        let mut eager = State::new(true, Some(4), true, None);
        let _ = eager.start_read(None, &rates);
        eager.data_received(4).unwrap();
        assert_eq!(eager.phase(), BodyPhase::Reading);
    }

    #[test]
    fn the_first_rejection_sticks_and_maps_to_body_errors() {
        let mut s: RequestBodyState<BadChunk> = RequestBodyState::new(true, None, false, Some(3));
        assert!(matches!(
            s.reject(BodyRejection::Malformed(BadChunk)),
            BodyError::Malformed("bad chunk")
        ));
        assert!(!s.reject_if_open(BodyRejection::Timeout));
        assert!(matches!(
            s.reject(BodyRejection::ClientGone),
            BodyError::Malformed("bad chunk")
        ));
        let mut t: RequestBodyState<BadChunk> = RequestBodyState::new(true, None, false, None);
        assert!(t.reject_if_open(BodyRejection::Timeout));
        assert!(matches!(
            t.error(BodyRejection::Timeout),
            BodyError::Timeout
        ));
        assert!(matches!(
            t.error(BodyRejection::ClientGone),
            BodyError::ConnectionAborted
        ));
        let mut done: RequestBodyState<BadChunk> = RequestBodyState::idle();
        assert!(
            !done.reject_if_open(BodyRejection::Timeout),
            "a complete body is not rejected"
        );
    }

    #[test]
    fn the_rate_switch_follows_the_frozen_limits() {
        let rates = DataRateControl::default();
        let rate = MinDataRate::new(100.0, Duration::from_secs(2)).unwrap();
        let mut untracked = State::new(true, None, false, None);
        let _ = untracked.start_read(Some(&cell(None, None)), &rates);
        assert!(!untracked.is_rate_tracked());
        let mut s = State::new(true, None, false, None);
        let _ = s.start_read(Some(&cell(None, Some(rate))), &rates);
        assert!(s.is_rate_tracked());
        rates.on_tick(0);
        s.read_waiting(&rates, true);
        s.read_bytes(&rates, 10);
        // Past the 2 s grace period with 10 bytes: under 100 bytes/s.
        let timed_out = (1..=4).any(|t| rates.on_tick(t * 1000).is_some());
        assert!(timed_out, "the tracked rate is checked");
        // Switched off: waiting with no bytes never times out.
        let rates = DataRateControl::default();
        let mut s = State::new(true, None, false, None);
        let _ = s.start_read(Some(&cell(None, Some(rate))), &rates);
        s.end_rate(&rates);
        assert!(!s.is_rate_tracked());
        rates.on_tick(0);
        s.read_waiting(&rates, true);
        rates.set_read_waiting(true);
        assert!(
            (1..=10).all(|t| rates.on_tick(t * 1000).is_none()),
            "no longer tracked"
        );
        // The driver's drain (no limits feature) does not track.
        let mut drained = State::new(true, None, false, None);
        let _ = drained.start_read(None, &rates);
        assert!(!drained.is_rate_tracked());
    }
}
