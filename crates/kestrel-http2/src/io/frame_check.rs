//! [`FrameCheck`]: the frame boundaries in what `h2` reads, and the frame
//! errors `h2` answers with another code than RFC 9113's.

use std::sync::atomic::Ordering;
use std::time::Duration;

use h2::Reason;
use kestrel_core::Http2Limits;

use super::{ReadCounter, MAX_WINDOW};

/// The client connection preface's length (RFC 9113 §3.4).
const PREFACE_LEN: usize = 24;
/// A frame header's length (RFC 9113 §4.1).
const HEADER_LEN: usize = 9;
/// SETTINGS_INITIAL_WINDOW_SIZE's initial value (RFC 9113 §6.5.2).
const DEFAULT_WINDOW: u32 = 65_535;
/// The period `http2.max_control_frames_per_second` counts over: PING and
/// SETTINGS frames that ask for an ACK, more than that many within it close
/// the connection with GOAWAY ENHANCE_YOUR_CALM. Each costs the server an
/// ACK to write; `h2` keeps a single ACK pending and stops reading until it
/// is written, so a flood from a client that does not read costs no memory,
/// and the limit bounds the work of one that does.
pub(crate) const CONTROL_FRAME_PERIOD: Duration = Duration::from_secs(1);

const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

/// Follows the frames in the bytes `h2` reads (headers and a few small
/// payloads, never HPACK) and finds what `h2` answers with an error code
/// other than RFC 9113's (`h2` maps every frame it cannot parse to
/// PROTOCOL_ERROR):
///
/// | Frame | `h2` | RFC 9113 (here) |
/// |---|---|---|
/// | PRIORITY not 5 octets | PROTOCOL_ERROR | FRAME_SIZE_ERROR (§6.3; a stream error made a connection error, §5.4.1 allows it) |
/// | RST_STREAM not 4 octets | PROTOCOL_ERROR | FRAME_SIZE_ERROR (§6.4) |
/// | SETTINGS with ACK and a payload, or not a multiple of 6 octets | PROTOCOL_ERROR | FRAME_SIZE_ERROR (§6.5) |
/// | SETTINGS_INITIAL_WINDOW_SIZE over 2^31−1 | PROTOCOL_ERROR | FLOW_CONTROL_ERROR (§6.5.2) |
/// | PING not 8 octets | PROTOCOL_ERROR | FRAME_SIZE_ERROR (§6.7) |
/// | GOAWAY under 8 octets | PROTOCOL_ERROR | FRAME_SIZE_ERROR (§4.2) |
/// | WINDOW_UPDATE not 4 octets | PROTOCOL_ERROR | FRAME_SIZE_ERROR (§6.9) |
///
/// A frame with the stream id its type forbids is left to `h2` (which
/// answers PROTOCOL_ERROR, as the RFC does). On the first such frame the
/// bytes from its start on are withheld from `h2`, and the driver closes
/// the connection with GOAWAY and the RFC's code, through `h2`
/// (`abrupt_shutdown`), so the GOAWAY carries the last stream `h2`
/// processed. It also passes each stream WINDOW_UPDATE to the window
/// watches ([`ReadCounter::watch_window`]).
#[derive(Debug)]
pub(crate) struct FrameCheck {
    preface_left: usize,
    head: [u8; HEADER_LEN],
    head_len: usize,
    payload_left: usize,
    payload: Payload,
    /// A SETTINGS entry or a WINDOW_UPDATE increment split across reads.
    carry: [u8; 6],
    carry_len: usize,
    stream_id: u32,
    /// The client's SETTINGS_INITIAL_WINDOW_SIZE.
    initial_window: u32,
    /// Header blocks begun (HEADERS frames seen).
    blocks: u64,
    /// The frame being read carries END_HEADERS (a HEADERS or CONTINUATION):
    /// its block ends once the whole frame is read.
    ends_block: bool,
    /// PING and SETTINGS frames (not ACKs) since `control_since`.
    control_frames: u32,
    /// The most of those allowed per [`CONTROL_FRAME_PERIOD`] (`None`: no limit).
    pub(super) control_limit: Option<u32>,
    /// When the current period began (clock ticks, ms).
    control_since: Option<u64>,
    /// The time of the bytes being fed (clock ticks, ms).
    now_ms: u64,
    /// A frame in error was found: nothing more is read.
    pub(super) failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Payload {
    Skip,
    Settings,
    WindowUpdate,
}

impl Default for FrameCheck {
    fn default() -> Self {
        FrameCheck {
            preface_left: PREFACE_LEN,
            head: [0; HEADER_LEN],
            head_len: 0,
            payload_left: 0,
            payload: Payload::Skip,
            carry: [0; 6],
            carry_len: 0,
            stream_id: 0,
            initial_window: DEFAULT_WINDOW,
            blocks: 0,
            ends_block: false,
            control_frames: 0,
            control_limit: Http2Limits::default().max_control_frames_per_second,
            control_since: None,
            now_ms: 0,
            failed: false,
        }
    }
}

impl FrameCheck {
    /// Follow `bytes` (the next bytes of the connection). Returns the
    /// offset in `bytes` of the first frame found in error, and its code;
    /// nothing after it is looked at.
    ///
    /// `now_ms` is the time the bytes arrived, in the server clock's ticks
    /// (passed in, so that the flood window is plain arithmetic in tests).
    pub(crate) fn feed(
        &mut self,
        bytes: &[u8],
        reads: &ReadCounter,
        now_ms: u64,
    ) -> Option<(usize, Reason)> {
        self.now_ms = now_ms;
        let mut i = 0;
        // Where the current frame starts in `bytes` (0 if it began earlier).
        let mut frame_start = 0;
        while i < bytes.len() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len() - i);
                self.preface_left -= n;
                i += n;
            } else if self.payload_left == 0 && self.head_len < HEADER_LEN {
                if self.head_len == 0 {
                    frame_start = i;
                }
                let n = (HEADER_LEN - self.head_len).min(bytes.len() - i);
                self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[i..i + n]);
                self.head_len += n;
                i += n;
                if self.head_len == HEADER_LEN {
                    if let Some(reason) = self.on_header(reads) {
                        return Some((frame_start, reason));
                    }
                }
            } else {
                let n = self.payload_left.min(bytes.len() - i);
                if self.payload != Payload::Skip {
                    if let Some(reason) = self.on_payload(&bytes[i..i + n], reads) {
                        return Some((frame_start, reason));
                    }
                }
                self.payload_left -= n;
                i += n;
            }
            if self.head_len == HEADER_LEN && self.payload_left == 0 {
                // The frame is complete.
                if self.ends_block {
                    self.ends_block = false;
                    reads.open_block.store(0, Ordering::Relaxed);
                }
                self.head_len = 0;
                self.payload = Payload::Skip;
                self.carry_len = 0;
            }
        }
        None
    }

    /// A complete frame header: check the length of the control frames,
    /// count PINGs and SETTINGS, and follow header blocks.
    fn on_header(&mut self, reads: &ReadCounter) -> Option<Reason> {
        let h = &self.head;
        let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
        let (kind, flags) = (h[3], h[4]);
        let stream_id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        self.payload_left = len;
        self.stream_id = stream_id;
        self.payload = Payload::Skip;
        let on_stream = stream_id != 0;
        let wrong_length = match kind {
            PRIORITY => on_stream && len != 5,
            RST_STREAM => on_stream && len != 4,
            SETTINGS if !on_stream => (flags & ACK != 0 && len != 0) || len % 6 != 0,
            PING => !on_stream && len != 8,
            GOAWAY => !on_stream && len < 8,
            WINDOW_UPDATE => len != 4,
            _ => false,
        };
        if wrong_length {
            return Some(Reason::FRAME_SIZE_ERROR);
        }
        if matches!(kind, PING | SETTINGS) && flags & ACK == 0 && self.control_flood() {
            return Some(Reason::ENHANCE_YOUR_CALM);
        }
        // A header block is open from its HEADERS frame's header until the
        // whole frame with END_HEADERS is read (a trickled payload counts).
        if kind == HEADERS {
            self.blocks += 1;
            reads.open_block.store(self.blocks, Ordering::Relaxed);
        }
        self.ends_block = matches!(kind, HEADERS | CONTINUATION) && flags & END_HEADERS != 0;
        self.payload = match kind {
            SETTINGS if !on_stream && flags & ACK == 0 => Payload::Settings,
            WINDOW_UPDATE if on_stream => Payload::WindowUpdate,
            _ => Payload::Skip,
        };
        None
    }

    /// Count a PING or SETTINGS frame that asks for an ACK: whether there
    /// were more than the limit within [`CONTROL_FRAME_PERIOD`].
    fn control_flood(&mut self) -> bool {
        let Some(limit) = self.control_limit else {
            return false;
        };
        let now = self.now_ms;
        let period = CONTROL_FRAME_PERIOD.as_millis() as u64;
        match self.control_since {
            Some(since) if now.saturating_sub(since) < period => {}
            _ => {
                self.control_since = Some(now);
                self.control_frames = 0;
            }
        }
        self.control_frames += 1;
        self.control_frames > limit
    }

    /// Payload bytes of a SETTINGS or stream WINDOW_UPDATE frame.
    fn on_payload(&mut self, mut bytes: &[u8], reads: &ReadCounter) -> Option<Reason> {
        let unit = if self.payload == Payload::Settings {
            6
        } else {
            4
        };
        while !bytes.is_empty() {
            let n = (unit - self.carry_len).min(bytes.len());
            self.carry[self.carry_len..self.carry_len + n].copy_from_slice(&bytes[..n]);
            self.carry_len += n;
            bytes = &bytes[n..];
            if self.carry_len < unit {
                break;
            }
            self.carry_len = 0;
            let c = self.carry;
            if self.payload == Payload::Settings {
                let id = u16::from_be_bytes([c[0], c[1]]);
                let value = u32::from_be_bytes([c[2], c[3], c[4], c[5]]);
                if id == SETTINGS_INITIAL_WINDOW_SIZE {
                    if i64::from(value) > MAX_WINDOW {
                        return Some(Reason::FLOW_CONTROL_ERROR);
                    }
                    self.initial_window = value;
                }
            } else {
                let increment = u32::from_be_bytes([c[0], c[1], c[2], c[3]]) & 0x7fff_ffff;
                reads.window_update(self.stream_id, increment, self.initial_window);
            }
        }
        None
    }
}

impl FrameCheck {
    /// A check allowing `control_limit` PING/SETTINGS frames per second (`None`: no limit).
    pub(crate) fn with_control_limit(control_limit: Option<u32>) -> Self {
        FrameCheck {
            control_limit,
            ..FrameCheck::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::{Context, Waker};

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn after_preface(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        for f in frames {
            out.extend_from_slice(f);
        }
        out
    }

    /// Feed `bytes` split at every possible point (and whole); every split
    /// must give the same answer.
    fn check(bytes: &[u8]) -> Option<(usize, Reason)> {
        let whole = FrameCheck::default().feed(bytes, &ReadCounter::default(), 0);
        for cut in 1..bytes.len() {
            let mut c = FrameCheck::default();
            let reads = ReadCounter::default();
            let got = match c.feed(&bytes[..cut], &reads, 0) {
                Some(found) => Some(found),
                None => c
                    .feed(&bytes[cut..], &reads, 0)
                    .map(|(at, r)| (at + cut, r)),
            };
            assert_eq!(got.map(|g| g.1), whole.map(|w| w.1), "split at {cut}");
        }
        whole
    }

    #[test]
    fn well_formed_frames_pass() {
        let bytes = after_preface(&[
            frame(
                SETTINGS,
                0,
                0,
                &[0, 4, 0, 0, 0xff, 0xff, 0, 3, 0, 0, 0, 100],
            ),
            frame(SETTINGS, ACK, 0, &[]),
            frame(0x1, 0x5, 1, b"headers block"),
            frame(0x0, 0x1, 1, &[7; 100]),
            frame(PRIORITY, 0, 3, &[0, 0, 0, 0, 16]),
            frame(RST_STREAM, 0, 1, &[0, 0, 0, 8]),
            frame(PING, 0, 0, &[0; 8]),
            frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]),
            frame(WINDOW_UPDATE, 0, 1, &[0, 0, 1, 0]),
            frame(GOAWAY, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0, b'x']),
            frame(0x16, 0, 0, &[0; 8]),
        ]);
        assert_eq!(check(&bytes), None);
    }

    #[test]
    fn control_frames_of_the_wrong_length_are_frame_size_errors() {
        for bad in [
            frame(PRIORITY, 0, 1, &[0, 0, 0, 1]),
            frame(RST_STREAM, 0, 1, &[0, 0, 0]),
            frame(SETTINGS, ACK, 0, &[0]),
            frame(SETTINGS, 0, 0, &[0; 9]),
            frame(PING, 0, 0, &[0; 6]),
            frame(GOAWAY, 0, 0, &[0; 7]),
            frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1]),
            frame(WINDOW_UPDATE, 0, 3, &[0, 0, 0, 1, 0]),
        ] {
            let ok = frame(PING, 0, 0, &[1; 8]);
            let bytes = after_preface(&[ok.clone(), bad.clone()]);
            assert_eq!(
                check(&bytes),
                Some((PREFACE_LEN + ok.len(), Reason::FRAME_SIZE_ERROR)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_wrong_stream_id_is_left_to_h2() {
        for frame in [
            frame(PRIORITY, 0, 0, &[0; 4]),
            frame(RST_STREAM, 0, 0, &[0; 3]),
            frame(SETTINGS, 0, 1, &[0; 5]),
            frame(PING, 0, 1, &[0; 6]),
            frame(GOAWAY, 0, 1, &[0; 8]),
        ] {
            assert_eq!(
                check(&after_preface(std::slice::from_ref(&frame))),
                None,
                "{frame:?}"
            );
        }
    }

    #[test]
    fn an_initial_window_size_over_2_31_minus_1_is_a_flow_control_error() {
        let bad = frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 1, 0, 4, 0x80, 0, 0, 0]);
        assert_eq!(
            check(&after_preface(&[bad])),
            Some((PREFACE_LEN, Reason::FLOW_CONTROL_ERROR))
        );
        let max = frame(SETTINGS, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]);
        assert_eq!(check(&after_preface(&[max])), None);
    }

    #[test]
    fn a_window_update_past_the_maximum_on_a_watched_stream_is_seen() {
        let reads = Arc::new(ReadCounter::default());
        let watch = reads.watch_window(1, 300);
        let mut c = FrameCheck::default();
        let mut cx = Context::from_waker(Waker::noop());
        // Another stream's updates are not counted.
        let other = after_preface(&[frame(WINDOW_UPDATE, 0, 3, &[0x7f, 0xff, 0xff, 0xff])]);
        assert_eq!(c.feed(&other, &reads, 0), None);
        assert!(watch.poll_overflow(&mut cx).is_pending());
        // 65,535 − 300 + 2^31 − 65,236 = 2^31 − 1: not past it yet.
        let up = frame(
            WINDOW_UPDATE,
            0,
            1,
            &(0x7fff_ffff_u32 - 65_235).to_be_bytes(),
        );
        assert_eq!(c.feed(&up, &reads, 0), None);
        assert!(watch.poll_overflow(&mut cx).is_pending());
        let one = frame(WINDOW_UPDATE, 0, 1, &[0, 0, 0, 1]);
        assert_eq!(c.feed(&one, &reads, 0), None);
        assert!(watch.poll_overflow(&mut cx).is_ready());
        drop(watch);
        assert_eq!(reads.watching.load(Ordering::Relaxed), 0);
        assert!(reads.lock().is_empty());
    }

    #[test]
    fn a_ping_or_settings_flood_is_enhance_your_calm() {
        let ping = frame(PING, 0, 0, &[0; 8]);
        let settings = frame(SETTINGS, 0, 0, &[]);
        let acks = [frame(PING, ACK, 0, &[0; 8]), frame(SETTINGS, ACK, 0, &[])];
        let mut frames = Vec::new();
        for i in 0..1_000 {
            frames.push(if i % 2 == 0 {
                ping.clone()
            } else {
                settings.clone()
            });
            // ACKs are answers, not requests: they do not count.
            frames.extend(acks.iter().cloned());
        }
        let within = after_preface(&frames);
        let mut c = FrameCheck::default();
        let reads = ReadCounter::default();
        assert_eq!(c.feed(&within, &reads, 0), None);
        // One more within the period.
        assert_eq!(
            c.feed(&ping, &reads, 0),
            Some((0, Reason::ENHANCE_YOUR_CALM))
        );
        // After the period the count starts again.
        let mut c = FrameCheck::default();
        assert_eq!(c.feed(&within, &reads, 0), None);
        let later = CONTROL_FRAME_PERIOD.as_millis() as u64;
        assert_eq!(c.feed(&settings, &reads, later), None);
        // No limit: never.
        let mut c = FrameCheck {
            control_limit: None,
            ..FrameCheck::default()
        };
        assert_eq!(c.feed(&within, &reads, 0), None);
        assert_eq!(c.feed(&ping, &reads, 0), None);
    }

    #[test]
    fn a_header_block_is_open_from_headers_to_end_headers() {
        let mut c = FrameCheck::default();
        let reads = ReadCounter::default();
        assert_eq!(c.feed(&after_preface(&[]), &reads, 0), None);
        assert_eq!(reads.header_block_open(), None);
        for (f, open, mid) in [
            (frame(HEADERS, 0x1, 1, b"part"), Some(1), Some(1)),
            (frame(CONTINUATION, 0, 1, b"more"), Some(1), Some(1)),
            (frame(CONTINUATION, END_HEADERS, 1, b"end"), None, Some(1)),
            (
                frame(HEADERS, END_HEADERS | 0x1, 3, b"whole"),
                None,
                Some(2),
            ),
            (frame(HEADERS, 0, 5, b"part"), Some(3), Some(3)),
        ] {
            // Split inside the frame header: nothing yet; then inside the
            // payload: a frame with END_HEADERS ends its block only once
            // its payload is whole (a trickled last frame stays open).
            assert_eq!(c.feed(&f[..4], &reads, 0), None);
            let before = reads.header_block_open();
            assert_eq!(c.feed(&f[4..11], &reads, 0), None);
            assert_eq!(reads.header_block_open(), mid, "{f:?} (before: {before:?})");
            assert_eq!(c.feed(&f[11..], &reads, 0), None);
            assert_eq!(reads.header_block_open(), open, "{f:?}");
        }
    }
}
