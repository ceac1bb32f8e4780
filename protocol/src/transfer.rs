//! Moving audio files: uploads and downloads, each on a QUIC stream of its own.
//!
//! After logging in on its main stream, a client opens one more bidirectional stream per
//! transfer and sends one [`TransferRequest`] frame. The authority answers with one
//! [`TransferReply`] frame and then the bytes move:
//!
//! - **Upload.** The client names the file by its blake3 [`ContentHash`] and size. The authority
//!   answers [`TransferReply::SendFrom`] with how much of that file it already holds (so a cut
//!   upload resumes where it stopped), or [`TransferReply::Stored`] at once when it has the whole
//!   file already (identical files are stored once), or [`TransferReply::Refused`] (too large,
//!   over quota, not allowed) before a byte is sent. The client then sends [`Chunk`]s: a frame
//!   with the chunk's offset, length and CRC-32, followed by that many raw bytes. A chunk whose
//!   bytes do not match its CRC is refused and nothing of it is kept; the upload can resume from
//!   the last good chunk. (The CRC catches damage in transit cheaply; the whole-file blake3,
//!   which the authority computes as the chunks arrive, is what proves the file.) When the whole file has arrived and hashes to the announced hash, the
//!   authority creates the project's `AudioAsset` record and answers `Stored`.
//! - **Download.** The client names an asset (or a finished export) and an offset; the authority
//!   answers [`TransferReply::Sending`] with the total size and the hash of the bytes it serves,
//!   then streams raw bytes from the offset to the end and finishes the stream.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{AssetId, JobId, ProjectId};
use crate::record::{Codec, ContentHash};

/// The most bytes one [`Chunk`] carries.
pub const MAX_CHUNK: u32 = 1 << 20;

/// The default limit on one uploaded file.
pub const DEFAULT_MAX_UPLOAD: u64 = 2 << 30;

/// The first frame of a transfer stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferRequest {
    /// Upload a file into a project.
    Upload {
        /// The project that will use it.
        project: ProjectId,
        /// Its name (usually the file name).
        name: String,
        /// blake3 of the whole file.
        hash: ContentHash,
        /// Its size in bytes.
        size: u64,
    },
    /// Download what the authority stores for an asset.
    Download {
        /// The project that uses it.
        project: ProjectId,
        /// The asset.
        asset: AssetId,
        /// The audio, or its waveform peaks.
        what: Served,
        /// Where to start (to resume a cut download).
        offset: u64,
    },
    /// Download a finished export's file.
    DownloadExport {
        /// The export job.
        job: JobId,
        /// Which file: 0 for the mix, the track's index for stems.
        index: u32,
        /// Where to start.
        offset: u64,
    },
}

/// What a download serves of an asset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Served {
    /// The audio file as stored (FLAC when the upload was lossless and has been transcoded).
    Audio,
    /// The waveform peaks (`ensemble_audio::Peaks` format), once the peaks job is done.
    Peaks,
}

/// The header of one uploaded chunk; `len` raw bytes follow it on the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Where the bytes go in the file.
    pub offset: u64,
    /// How many bytes follow (at most [`MAX_CHUNK`]).
    pub len: u32,
    /// CRC-32 (IEEE) of those bytes.
    pub crc: u32,
}

/// The authority's answer on a transfer stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferReply {
    /// Upload: send chunks from this offset (what the authority already has).
    SendFrom {
        /// Bytes already held.
        offset: u64,
    },
    /// Upload: the file is stored and the project has its asset record.
    Stored {
        /// The asset record.
        asset: AssetId,
        /// True when the authority already had the file and nothing was sent.
        deduplicated: bool,
    },
    /// Download: `total - offset` raw bytes follow.
    Sending {
        /// The size of the whole file.
        total: u64,
        /// Where the bytes start.
        offset: u64,
        /// blake3 of the whole file as served.
        hash: ContentHash,
        /// How the file is encoded (audio downloads).
        codec: Option<Codec>,
    },
    /// The request cannot be served; the stream ends.
    Refused(TransferError),
}

/// Why a transfer was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum TransferError {
    /// The file is larger than the authority accepts.
    #[error("the file is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// The file's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Storing the file would take the user over their quota.
    #[error("storing {size} more bytes would exceed the quota of {quota} ({used} used)")]
    OverQuota {
        /// Bytes the user stores now.
        used: u64,
        /// Their quota.
        quota: u64,
        /// The file's size.
        size: u64,
    },
    /// A chunk's bytes do not match its CRC; nothing of it was kept.
    #[error("the chunk at {offset} does not match its checksum")]
    CorruptChunk {
        /// The chunk's offset.
        offset: u64,
    },
    /// A chunk is not where the upload stands, or runs past the file's end.
    #[error("a chunk at {offset} of {len} bytes does not fit: the upload is at {expected}")]
    ChunkOutOfPlace {
        /// The chunk's offset.
        offset: u64,
        /// Its length.
        len: u32,
        /// Where the upload stands.
        expected: u64,
    },
    /// The whole file does not hash to the announced hash; it was discarded.
    #[error("the file hashes to {found}, not {expected}")]
    HashMismatch {
        /// The announced hash.
        expected: ContentHash,
        /// What arrived.
        found: ContentHash,
    },
    /// The file is not audio Ensemble can decode; it was discarded.
    #[error("not a playable audio file: {0}")]
    NotAudio(String),
    /// The user may not do this in this project.
    #[error("not allowed: {0}")]
    Denied(String),
    /// No such asset, job or file (or not ready yet).
    #[error("not found: {0}")]
    NotFound(String),
    /// The authority failed; retry later.
    #[error("the authority failed: {0}")]
    Internal(String),
}

impl fmt::Display for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Served::Audio => "audio",
            Served::Peaks => "peaks",
        })
    }
}
