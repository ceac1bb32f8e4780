//! Frames on QUIC streams: reading one frame at a time with the size limit checked before the
//! body is read, for both the authority and its clients.

use ensemble_protocol::frame::HEADER_LEN;
use ensemble_protocol::{FrameCodec, FrameError};
use quinn::{ReadExactError, RecvStream};
use serde::de::DeserializeOwned;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadFailure {
    /// The bytes were wrong: the peer broke the protocol.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The connection or stream failed.
    #[error("connection lost: {0}")]
    Connection(#[from] quinn::ReadError),
}

/// Reads the next frame; `None` when the peer finished the stream cleanly between frames.
pub async fn read_frame<T: DeserializeOwned>(
    recv: &mut RecvStream,
    codec: &FrameCodec,
) -> Result<Option<T>, ReadFailure> {
    let mut header = [0u8; HEADER_LEN];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(ReadExactError::FinishedEarly(available)) => {
            return Err(FrameError::Truncated { needed: HEADER_LEN, available }.into());
        }
        Err(ReadExactError::ReadError(error)) => return Err(error.into()),
    }
    let len = codec.body_len(header)?;
    let mut body = vec![0; len];
    match recv.read_exact(&mut body).await {
        Ok(()) => Ok(Some(codec.decode_body(&body)?)),
        Err(ReadExactError::FinishedEarly(available)) => {
            Err(FrameError::Truncated { needed: HEADER_LEN + len, available: HEADER_LEN + available }.into())
        }
        Err(ReadExactError::ReadError(error)) => Err(error.into()),
    }
}
