//! The HTTP/2 read side's frame check (`kestrel_http2::fuzzing::FrameChecker`):
//! the input's frames (after the client preface) are fed whole, split at up
//! to three offsets the input picks, and one byte at a time. The error code
//! found, the bytes let through before it, and whether a header block is
//! left open must be the same in all three. (The bytes let through stop at
//! the start of the frame in error, or at the start of the read that
//! completed its header when the frame began in an earlier read: those
//! first bytes already went to `h2`, which never sees the frame complete.)
#![no_main]

use kestrel_http2::fuzzing::FrameChecker;
use kestrel_http2::PREFACE;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
struct Outcome {
    /// The error code found, and the start of the read it was found in.
    verdict: Option<(u32, usize)>,
    /// Bytes fed before the check stopped (all of them if no verdict).
    accepted: usize,
    header_block_open: Option<u64>,
}

fn run(limit: Option<u32>, bytes: &[u8], cuts: &[usize]) -> Outcome {
    let mut check = FrameChecker::new(limit);
    let mut start = 0;
    let mut verdict = None;
    let mut accepted = bytes.len();
    for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
        if end < start {
            continue;
        }
        if let Some(found) = check.feed(&bytes[start..end]) {
            assert!(
                found.0 >= start && found.0 < end,
                "verdict {found:?} outside the piece {start}..{end}"
            );
            verdict = Some((found.1, start));
            accepted = found.0;
            break;
        }
        start = end;
    }
    Outcome {
        accepted,
        verdict,
        header_block_open: check.header_block_open(),
    }
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 4 {
        return;
    }
    let (head, frames) = input.split_at(4);
    // The flood limit: none, the default, or small enough to be hit.
    let limit = match head[0] % 3 {
        0 => None,
        1 => Some(1000),
        _ => Some(u32::from(head[0] >> 4)),
    };
    let mut bytes = PREFACE.to_vec();
    bytes.extend_from_slice(frames);
    let mut cuts: Vec<usize> = head[1..]
        .iter()
        .map(|&b| usize::from(b) * bytes.len() / 256)
        .collect();
    cuts.sort_unstable();
    let whole = run(limit, &bytes, &[]);
    let split = run(limit, &bytes, &cuts);
    let every: Vec<usize> = (1..bytes.len()).collect();
    let bytewise = run(limit, &bytes, &every);
    for (other, how) in [(&split, "split"), (&bytewise, "one byte at a time")] {
        assert_eq!(
            whole.verdict.map(|v| v.0),
            other.verdict.map(|v| v.0),
            "{how} (cuts {cuts:?})"
        );
        assert_eq!(whole.header_block_open, other.header_block_open, "{how}");
        if let Some((_, read_start)) = other.verdict {
            assert_eq!(other.accepted, whole.accepted.max(read_start), "{how}");
        } else {
            assert_eq!(other.accepted, bytes.len());
        }
    }
    if whole.verdict.is_some() {
        // The frame in error starts after the preface.
        assert!(whole.accepted >= PREFACE.len());
    }
});
