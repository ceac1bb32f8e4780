//! Framing: how messages travel on a byte stream.
//!
//! A frame is a big-endian `u32` body length followed by the body, one message encoded with
//! bincode 2 (standard configuration: little-endian varints). The reader learns the length from
//! the first four bytes and refuses a frame larger than its [`FrameCodec::max_frame`] before
//! reading or allocating the body, so a peer cannot make it buffer more than that. Every way
//! bytes can be wrong has its own [`FrameError`]; decoding never panics, whatever the bytes.
//!
//! Stream readers call [`FrameCodec::body_len`] on the header, read that many bytes, then
//! [`FrameCodec::decode_body`]; code holding a whole buffer calls [`FrameCodec::decode`].

use serde::{Serialize, de::DeserializeOwned};

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 4;
/// The default largest body, 1 MiB.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;
/// No codec accepts bodies above this, whatever it is configured with: 64 MiB.
pub const HARD_MAX_FRAME: usize = 64 << 20;

/// bincode with an allocation guard: decoding a body may claim at most `LIMIT` bytes in all.
/// bincode allocates a string's or byte list's claimed length before reading it, so the guard
/// is what stops a 10-byte frame from asking for gigabytes.
fn config<const LIMIT: usize>() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// Decodes exactly one value from `bytes`; anything left over is malformed.
pub(crate) fn decode_exact<T: DeserializeOwned, const LIMIT: usize>(bytes: &[u8]) -> Result<T, FrameError> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, config::<LIMIT>())
        .map_err(|error| FrameError::Malformed(error.to_string()))?;
    if read != bytes.len() {
        return Err(FrameError::Malformed(format!("{} bytes after the message", bytes.len() - read)));
    }
    Ok(value)
}

/// Encodes a value in the wire's encoding, without a frame header: how stores keep records and
/// ops, so what is stored is exactly what travels.
pub fn encode_value<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    bincode::serde::encode_to_vec(value, config::<HARD_MAX_FRAME>())
        .map_err(|error| FrameError::Encode(error.to_string()))
}

/// Decodes a value written by [`encode_value`].
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FrameError> {
    decode_exact::<T, HARD_MAX_FRAME>(bytes)
}

/// Why bytes could not become a message, or a message could not become bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame's body is longer than the codec accepts.
    #[error("frame of {len} bytes is larger than the {max}-byte limit")]
    TooLarge {
        /// The body's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes end before the frame does.
    #[error("frame truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// The body is not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: we speak {ours}, the peer speaks {theirs}")]
    VersionMismatch {
        /// Our version.
        ours: u32,
        /// Theirs.
        theirs: u32,
    },
    /// The message could not be encoded (it contains something serde cannot represent).
    #[error("message could not be encoded: {0}")]
    Encode(String),
}

/// Encodes and decodes frames with a maximum body size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameCodec {
    max_frame: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec { max_frame: DEFAULT_MAX_FRAME }
    }
}

impl FrameCodec {
    /// A codec accepting bodies up to `max_frame` bytes (at most [`HARD_MAX_FRAME`]).
    pub fn new(max_frame: usize) -> Self {
        FrameCodec { max_frame: max_frame.min(HARD_MAX_FRAME) }
    }

    /// The largest body this codec accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Appends `message` as one frame to `out`. On error `out` is as it was.
    pub fn encode<T: Serialize>(&self, message: &T, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        let written = bincode::serde::encode_into_std_write(message, out, config::<HARD_MAX_FRAME>());
        let len = out.len() - start - HEADER_LEN;
        let result = match written {
            Err(error) => Err(FrameError::Encode(error.to_string())),
            Ok(_) if len > self.max_frame => Err(FrameError::TooLarge { len, max: self.max_frame }),
            // `len` ≤ max_frame ≤ HARD_MAX_FRAME, which fits a u32.
            Ok(_) => Ok(u32::try_from(len).map_err(|_| FrameError::TooLarge { len, max: self.max_frame })?),
        };
        match result {
            Ok(len) => {
                out[start..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
                Ok(())
            }
            Err(error) => {
                out.truncate(start);
                Err(error)
            }
        }
    }

    /// Encodes `message` as one frame in a new buffer.
    pub fn encode_to_vec<T: Serialize>(&self, message: &T) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::new();
        self.encode(message, &mut out)?;
        Ok(out)
    }

    /// The body length a header announces, refused when it exceeds the limit.
    pub fn body_len(&self, header: [u8; HEADER_LEN]) -> Result<usize, FrameError> {
        let len = u32::from_be_bytes(header) as usize;
        if len > self.max_frame {
            return Err(FrameError::TooLarge { len, max: self.max_frame });
        }
        Ok(len)
    }

    /// Decodes one message from a whole body (the bytes after the header).
    pub fn decode_body<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, FrameError> {
        if body.len() > self.max_frame {
            return Err(FrameError::TooLarge { len: body.len(), max: self.max_frame });
        }
        // The default limit covers almost every codec; larger ones get the hard ceiling.
        if self.max_frame <= DEFAULT_MAX_FRAME {
            decode_exact::<T, DEFAULT_MAX_FRAME>(body)
        } else {
            decode_exact::<T, HARD_MAX_FRAME>(body)
        }
    }

    /// Decodes the frame at the start of `bytes`, returning the message and the bytes used.
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<(T, usize), FrameError> {
        let Some((header, rest)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(FrameError::Truncated { needed: HEADER_LEN, available: bytes.len() });
        };
        let len = self.body_len(*header)?;
        let Some(body) = rest.get(..len) else {
            return Err(FrameError::Truncated { needed: HEADER_LEN + len, available: bytes.len() });
        };
        Ok((self.decode_body(body)?, HEADER_LEN + len))
    }
}
