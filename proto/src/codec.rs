//! The gRPC codec of every SpanDB service: prost's, except that a message
//! that does not decode is the caller's mistake, not the server's.
//!
//! tonic's prost codec turns a decode failure into `INTERNAL` with no
//! detail; SpanDB's errors always carry an `ErrorDetail` (DESIGN.md §9) and
//! bad input is `INVALID_ARGUMENT`. So requests whose bytes do not decode
//! (a malformed or hostile client) get `INVALID_ARGUMENT` with a detail of
//! kind `INVALID_ARGUMENT`. The same codec decodes responses on the client
//! side, where a failure can only mean a server of another version; it is
//! reported the same way.

use std::marker::PhantomData;

use prost::Message as _;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

use crate::{ErrorDetail, ErrorKind};

/// prost's codec with typed decode errors (module docs).
#[derive(Debug, Clone)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder(ProstDecoder::default())
    }
}

/// prost's decoder; its failures become `INVALID_ARGUMENT` with a detail.
#[derive(Debug, Clone)]
pub struct CheckedDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|e| invalid_message(e.message()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// The status for a message that does not decode.
pub fn invalid_message(reason: &str) -> Status {
    let message = format!("the message does not decode: {reason}");
    let detail =
        ErrorDetail { kind: ErrorKind::InvalidArgument as i32, message: message.clone(), ..Default::default() };
    Status::with_details(tonic::Code::InvalidArgument, message, detail.encode_to_vec().into())
}
