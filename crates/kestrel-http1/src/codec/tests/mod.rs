//! Tests of the codec: request heads, body decoders and response encoders.

mod decode;
mod encode;
mod head;
