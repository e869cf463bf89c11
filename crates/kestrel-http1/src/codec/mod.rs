//! Sans-IO HTTP/1.x codec: bytes in, typed values out, and back.
//!
//! * [`HeadParser`] parses request heads (request line and header section)
//!   on top of `httparse`, enforcing Kestrel's limits and RFC 9112's rules on
//!   line endings, versions, request-target forms, Host and message framing.
//!   Header values share the receive buffer; nothing is copied.
//! * [`LengthDecoder`] and [`ChunkedDecoder`] decode request bodies as
//!   explicit state machines that accept input split at any byte boundary.
//! * [`encode_response_head`], [`encode_chunk_header`] and
//!   [`encode_last_chunk`] write response framing into a `BytesMut`.
//!
//! Every error is a [`RequestRejection`] that knows its status code. No
//! input can make this module panic: it is fuzzed (see `fuzz/`).

mod decode;
mod encode;
mod head;
mod rejection;

pub use decode::{ChunkedDecoder, ChunkedEvent, LengthDecoder};
pub use encode::{
    encode_chunk_header, encode_last_chunk, encode_response_head, ConnectionHeader, ResponseHead,
    CHUNK_SUFFIX, CONTINUE_100,
};
pub use head::{BodyKind, HeadParser, RequestHead, TargetForm};
pub use rejection::RequestRejection;

#[cfg(test)]
mod tests;
