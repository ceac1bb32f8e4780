//! Frames on byte streams: reading one frame at a time with the size limit checked before the
//! body is read, for both the authority and its clients, over any stream (a QUIC stream, a
//! WebTransport stream, an in-memory pipe).

use std::time::Duration;

use ensemble_protocol::frame::HEADER_LEN;
use ensemble_protocol::{FrameCodec, FrameError};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadFailure {
    /// The bytes were wrong: the peer broke the protocol.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The connection or stream failed.
    #[error("connection lost: {0}")]
    Connection(#[from] std::io::Error),
    /// A frame began and the rest did not follow in time.
    #[error("a frame started and did not finish within {} s", .0.as_secs_f32())]
    Stalled(Duration),
}

/// Reads the next frame; `None` when the peer finished the stream cleanly between frames.
pub async fn read_frame<T: DeserializeOwned>(
    recv: &mut (impl AsyncRead + Unpin),
    codec: &FrameCodec,
) -> Result<Option<T>, ReadFailure> {
    read_frame_within(recv, codec, None).await
}

/// Reads the next frame as [`read_frame`] does, waiting as long as it takes for its first byte;
/// once that has come, the rest must follow within `deadline`, so a peer that starts a frame and
/// goes silent is cut off instead of holding the stream forever.
pub async fn read_frame_within<T: DeserializeOwned>(
    recv: &mut (impl AsyncRead + Unpin),
    codec: &FrameCodec,
    deadline: Option<Duration>,
) -> Result<Option<T>, ReadFailure> {
    let mut header = [0u8; HEADER_LEN];
    if fill(recv, &mut header[..1]).await? == 0 {
        return Ok(None);
    }
    let rest = read_rest(recv, codec, header);
    match deadline {
        Some(deadline) => crate::rt::timeout(deadline, rest).await.ok_or(ReadFailure::Stalled(deadline))?,
        None => rest.await,
    }
}

/// The rest of a frame whose first byte is in `header`.
async fn read_rest<T: DeserializeOwned>(
    recv: &mut (impl AsyncRead + Unpin),
    codec: &FrameCodec,
    mut header: [u8; HEADER_LEN],
) -> Result<Option<T>, ReadFailure> {
    let available = fill(recv, &mut header[1..]).await?;
    if available < HEADER_LEN - 1 {
        return Err(FrameError::Truncated { needed: HEADER_LEN, available: 1 + available }.into());
    }
    let len = codec.body_len(header)?;
    let mut body = vec![0; len];
    let available = fill(recv, &mut body).await?;
    if available < len {
        return Err(FrameError::Truncated { needed: HEADER_LEN + len, available: HEADER_LEN + available }.into());
    }
    Ok(Some(codec.decode_body(&body)?))
}

/// Reads until `buffer` is full or the stream ends; returns how much was read.
async fn fill(recv: &mut (impl AsyncRead + Unpin), buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match recv.read(&mut buffer[filled..]).await? {
            0 => break,
            read => filled += read,
        }
    }
    Ok(filled)
}
