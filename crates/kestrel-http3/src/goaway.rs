//! The GOAWAY id this server announces, and the request streams it refuses
//! after announcing it (RFC 9114 §5.2).
//!
//! A server's GOAWAY carries the id of the first client-initiated
//! bidirectional stream it did **not** process: every request below it was
//! or will be served; every request at or above it was refused
//! (H3_REQUEST_REJECTED) and may be retried elsewhere. The ids a server
//! announces never grow.
//!
//! h3 0.0.8 gets this wrong both ways: `shutdown(n)` announces
//! `last accepted + 4n` but its accept loop then refuses only ids *greater*
//! than that (so `shutdown(1)` still serves the very stream it told the
//! client was not processed), and the last GOAWAY it sends after the
//! client's own GOAWAY (`shutdown(0)`) names the last stream it *did*
//! process. The adapter (`crate::quic`) therefore owns both ends with one
//! [`GoawayGate`] per connection:
//!
//! * every request stream passes [`GoawayGate::admit`] before h3 sees it:
//!   the gate records the id after it as the first unprocessed one, and
//!   once a GOAWAY went out it refuses ids at or above the announced one;
//! * every GOAWAY frame h3 writes on its control stream is rewritten by
//!   [`rewrite_control_frame`] to carry [`GoawayGate::announce`]: the id
//!   after the last request stream handed to h3.
//!
//! h3 drives its streams from the connection's one task, so the order of
//! admissions and announcements is the order the client sees.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};

use crate::varint;

/// The GOAWAY frame's type (RFC 9114 §7.2.6).
const GOAWAY: u64 = 0x07;

/// The last client-initiated bidirectional stream id (2^62 - 4).
const LAST_CLIENT_BIDI: u64 = (1 << 62) - 4;

/// No GOAWAY sent yet.
const NONE: u64 = u64::MAX;

/// One connection's announced GOAWAY id and the request streams it admits.
#[derive(Debug)]
pub(crate) struct GoawayGate {
    /// The id after the highest request stream handed to h3 (0: none yet),
    /// i.e. the first one not processed.
    next_unprocessed: AtomicU64,
    /// The id of the last GOAWAY sent ([`NONE`]: none yet).
    announced: AtomicU64,
}

impl GoawayGate {
    pub(crate) fn new() -> GoawayGate {
        GoawayGate {
            next_unprocessed: AtomicU64::new(0),
            announced: AtomicU64::new(NONE),
        }
    }

    /// Whether the client-initiated bidirectional stream `id` may become a
    /// request: not once a GOAWAY at or below it went out.
    pub(crate) fn admit(&self, id: u64) -> bool {
        if id >= self.announced.load(Ordering::Relaxed) {
            return false;
        }
        // Past the last client bidirectional id QUIC has, the next one
        // cannot exist: announce the last one (unreachable in practice).
        let next = id.saturating_add(4).min(LAST_CLIENT_BIDI);
        self.next_unprocessed.fetch_max(next, Ordering::Relaxed);
        true
    }

    /// The id for a GOAWAY about to be sent: the first request stream not
    /// handed to h3. From now on, streams at or above it are refused. It
    /// never grows: streams at or above an earlier announcement were
    /// refused, so the first unprocessed id is at most that one.
    pub(crate) fn announce(&self) -> u64 {
        let id = self.next_unprocessed.load(Ordering::Relaxed);
        self.announced.fetch_min(id, Ordering::Relaxed);
        id
    }

    /// The id of the last GOAWAY sent, if any.
    pub(crate) fn announced(&self) -> Option<u64> {
        match self.announced.load(Ordering::Relaxed) {
            NONE => None,
            id => Some(id),
        }
    }
}

/// `frame`, one whole frame h3 writes on its control stream, with a GOAWAY
/// frame's id replaced by [`GoawayGate::announce`]; other frames (and
/// anything that does not parse as a GOAWAY) are returned as they are.
pub(crate) fn rewrite_control_frame(frame: Bytes, gate: &GoawayGate) -> Bytes {
    let mut rest = &frame[..];
    if varint::take(&mut rest) != Some(GOAWAY) {
        return frame;
    }
    let (Some(len), Some(_h3s_id)) = (varint::take(&mut rest), varint::take(&mut rest)) else {
        return frame;
    };
    if !rest.is_empty() || len == 0 {
        return frame;
    }
    let id = gate.announce();
    let mut out = BytesMut::with_capacity(1 + 1 + 8);
    varint::put(&mut out, GOAWAY);
    varint::put(&mut out, varint::len_of(id) as u64);
    varint::put(&mut out, id);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goaway(id: u64) -> Bytes {
        let mut b = BytesMut::new();
        varint::put(&mut b, GOAWAY);
        varint::put(&mut b, varint::len_of(id) as u64);
        varint::put(&mut b, id);
        b.freeze()
    }

    fn id_of(frame: &[u8]) -> u64 {
        let mut rest = frame;
        assert_eq!(varint::take(&mut rest), Some(GOAWAY));
        let len = varint::take(&mut rest).expect("length");
        assert_eq!(len as usize, rest.len());
        varint::take(&mut rest).expect("id")
    }

    #[test]
    fn announces_the_first_stream_not_processed_and_refuses_it() {
        let gate = GoawayGate::new();
        assert!(gate.admit(0));
        assert!(gate.admit(4));
        // h3's shutdown(1) would announce 8 and still serve 8; shutdown(0)
        // would announce 4, a stream it served.
        assert_eq!(id_of(&rewrite_control_frame(goaway(4), &gate)), 8);
        assert_eq!(gate.announced(), Some(8));
        assert!(!gate.admit(8));
        assert!(!gate.admit(12));
        // A later GOAWAY never names a higher id.
        assert_eq!(id_of(&rewrite_control_frame(goaway(400), &gate)), 8);
    }

    #[test]
    fn before_any_request_the_id_is_zero() {
        let gate = GoawayGate::new();
        assert_eq!(id_of(&rewrite_control_frame(goaway(0), &gate)), 0);
        assert!(!gate.admit(0));
    }

    #[test]
    fn ids_change_their_varint_length_cleanly() {
        let gate = GoawayGate::new();
        assert!(gate.admit(60));
        let frame = rewrite_control_frame(goaway(60), &gate);
        assert_eq!(frame.len(), 1 + 1 + 2);
        assert_eq!(id_of(&frame), 64);
        let gate = GoawayGate::new();
        assert!(gate.admit((1 << 30) - 4));
        let frame = rewrite_control_frame(goaway(0), &gate);
        assert_eq!(frame.len(), 1 + 1 + 8);
        assert_eq!(id_of(&frame), 1 << 30);
    }

    #[test]
    fn other_frames_pass_unchanged() {
        let gate = GoawayGate::new();
        let settings = Bytes::from_static(&[0x04, 0x02, 0x06, 0x10]);
        assert_eq!(rewrite_control_frame(settings.clone(), &gate), settings);
        let truncated = Bytes::from_static(&[0x07, 0x04, 0x80]);
        assert_eq!(rewrite_control_frame(truncated.clone(), &gate), truncated);
        assert_eq!(gate.announced(), None);
    }
}
