//! Entry points for the fuzz targets under `fuzz/` (not part of the API:
//! hidden from the docs, and free to change with the fuzz targets).

use std::sync::Arc;

use crate::io::{FrameCheck, ReadCounter};

/// The read side's frame check (`FrameCheck`) on its own: feed it the
/// bytes of a connection (preface included) in any pieces.
#[derive(Debug)]
pub struct FrameChecker {
    check: FrameCheck,
    reads: Arc<ReadCounter>,
    fed: usize,
}

impl FrameChecker {
    /// A check with `control_limit` PING/SETTINGS frames allowed per second
    /// (`None`: no limit); all bytes are fed at the same instant.
    pub fn new(control_limit: Option<u32>) -> Self {
        FrameChecker {
            check: FrameCheck::with_control_limit(control_limit),
            reads: Arc::new(ReadCounter::default()),
            fed: 0,
        }
    }

    /// Feed the next bytes. Returns the offset of the frame found in error
    /// (counted from the first byte ever fed) and its error code; nothing
    /// after it is looked at and nothing more may be fed.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<(usize, u32)> {
        // One instant for every byte: the flood window is deterministic.
        let found = self.check.feed(bytes, &self.reads, 0);
        let at = self.fed;
        self.fed += bytes.len();
        found.map(|(offset, reason)| (at + offset, u32::from(reason)))
    }

    /// The number of the header block in progress, if any.
    pub fn header_block_open(&self) -> Option<u64> {
        self.reads.header_block_open()
    }
}
