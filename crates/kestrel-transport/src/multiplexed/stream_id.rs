//! [`StreamId`]: QUIC's stream identifier (RFC 9000, section 2.1), which
//! encodes who opened the stream and in which directions it carries bytes.

use std::fmt;

/// Which end of a connection opened a stream (or is this end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The end that started the connection.
    Client,
    /// The end that accepted it.
    Server,
}

impl Side {
    /// The other end.
    pub fn peer(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// Whether a stream carries bytes both ways or only from its opener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Both ends send and receive (HTTP/3 request streams).
    Bidirectional,
    /// Only the opener sends (HTTP/3 control and QPACK streams).
    Unidirectional,
}

/// A stream identifier: a 62-bit integer whose low bit is the initiator
/// (0 client, 1 server) and whose second bit is the direction (0
/// bidirectional, 1 unidirectional), as in QUIC. The rest is the stream's
/// index among the streams of its kind.
///
/// ```
/// use kestrel_transport::multiplexed::{Direction, Side, StreamId};
///
/// let id = StreamId::new(Side::Client, Direction::Bidirectional, 1).expect("in range");
/// assert_eq!(id.as_u64(), 4);
/// assert_eq!(StreamId::from_u64(3).map(|id| id.direction()), Some(Direction::Unidirectional));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(u64);

impl StreamId {
    /// The largest stream id QUIC can carry (2^62 - 1).
    pub const MAX: u64 = (1 << 62) - 1;

    /// The id of the `index`-th stream (from 0) of a kind, or `None` past
    /// [`StreamId::MAX`].
    pub fn new(initiator: Side, direction: Direction, index: u64) -> Option<StreamId> {
        let low = match initiator {
            Side::Client => 0,
            Side::Server => 1,
        } | match direction {
            Direction::Bidirectional => 0,
            Direction::Unidirectional => 2,
        };
        index
            .checked_mul(4)
            .map(|v| v | low)
            .filter(|v| *v <= Self::MAX)
            .map(StreamId)
    }

    /// A stream id from its wire value, or `None` past [`StreamId::MAX`].
    pub fn from_u64(value: u64) -> Option<StreamId> {
        (value <= Self::MAX).then_some(StreamId(value))
    }

    /// A stream id from a value known to be in range (a QUIC varint).
    #[cfg(feature = "quic")]
    pub(crate) fn from_varint(value: u64) -> StreamId {
        StreamId(value & Self::MAX)
    }

    /// The wire value.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Who opened the stream.
    pub fn initiator(self) -> Side {
        if self.0 & 1 == 0 {
            Side::Client
        } else {
            Side::Server
        }
    }

    /// Whether the stream is bidirectional or unidirectional.
    pub fn direction(self) -> Direction {
        if self.0 & 2 == 0 {
            Direction::Bidirectional
        } else {
            Direction::Unidirectional
        }
    }

    /// The stream's index among the streams of its initiator and direction.
    pub fn index(self) -> u64 {
        self.0 >> 2
    }
}

impl From<StreamId> for u64 {
    fn from(id: StreamId) -> u64 {
        id.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_low_bits_are_initiator_and_direction() {
        let cases = [
            (Side::Client, Direction::Bidirectional, 0),
            (Side::Server, Direction::Bidirectional, 1),
            (Side::Client, Direction::Unidirectional, 2),
            (Side::Server, Direction::Unidirectional, 3),
        ];
        for (side, dir, wire) in cases {
            let id = StreamId::new(side, dir, 5).expect("in range");
            assert_eq!(id.as_u64(), 20 + wire);
            assert_eq!((id.initiator(), id.direction(), id.index()), (side, dir, 5));
        }
    }

    #[test]
    fn ids_stop_at_two_to_the_62() {
        assert!(StreamId::from_u64(StreamId::MAX).is_some());
        assert!(StreamId::from_u64(StreamId::MAX + 1).is_none());
        assert!(StreamId::new(Side::Client, Direction::Bidirectional, 1 << 60).is_none());
        assert!(StreamId::new(Side::Server, Direction::Unidirectional, (1 << 60) - 1).is_some());
        assert!(StreamId::new(Side::Client, Direction::Bidirectional, u64::MAX).is_none());
    }
}
