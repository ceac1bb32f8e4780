//! Frames on QUIC streams: reading one frame at a time with the size limit checked before the
//! body is read, for both the authority and its clients.

use std::time::Duration;

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
    /// A frame began and the rest did not follow in time.
    #[error("a frame started and did not finish within {} s", .0.as_secs_f32())]
    Stalled(Duration),
}

/// Reads the next frame; `None` when the peer finished the stream cleanly between frames.
pub async fn read_frame<T: DeserializeOwned>(
    recv: &mut RecvStream,
    codec: &FrameCodec,
) -> Result<Option<T>, ReadFailure> {
    read_frame_within(recv, codec, None).await
}

/// Reads the next frame as [`read_frame`] does, waiting as long as it takes for its first byte;
/// once that has come, the rest must follow within `deadline`, so a peer that starts a frame and
/// goes silent is cut off instead of holding the stream forever.
pub async fn read_frame_within<T: DeserializeOwned>(
    recv: &mut RecvStream,
    codec: &FrameCodec,
    deadline: Option<Duration>,
) -> Result<Option<T>, ReadFailure> {
    let mut header = [0u8; HEADER_LEN];
    match recv.read_exact(&mut header[..1]).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(_)) => return Ok(None),
        Err(ReadExactError::ReadError(error)) => return Err(error.into()),
    }
    let rest = read_rest(recv, codec, header);
    match deadline {
        Some(deadline) => tokio::time::timeout(deadline, rest).await.map_err(|_| ReadFailure::Stalled(deadline))?,
        None => rest.await,
    }
}

/// The rest of a frame whose first byte is in `header`.
async fn read_rest<T: DeserializeOwned>(
    recv: &mut RecvStream,
    codec: &FrameCodec,
    mut header: [u8; HEADER_LEN],
) -> Result<Option<T>, ReadFailure> {
    match recv.read_exact(&mut header[1..]).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(available)) => {
            return Err(FrameError::Truncated { needed: HEADER_LEN, available: 1 + available }.into());
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
