//! Ensemble's audio engine: it turns files into sound and pictures of sound.
//!
//! A guide, in the order audio flows:
//!
//! - [`decode`] reads WAV (with [`wave`]) and AIFF, FLAC, MP3 and Ogg Vorbis (with symphonia), as a stream of planar
//!   blocks ([`decode::Decoding`]) or all at once into a [`Pcm`] at the project's rate
//!   ([`decode::decode_file`]), resampled by [`resample`] when the file's rate differs.
//! - [`peaks`] computes waveform min/max pairs at several zoom levels, in parallel on a rayon
//!   pool, from a stream (bounded memory for hour-long files) or from PCM in memory; it writes
//!   its own versioned format and audiowaveform's `.dat`.
//! - [`arrangement`] resolves a project (tracks, clips, automation in ticks) against decoded
//!   audio into frames; [`render`] turns that into sound, block by block, sample-accurately, for
//!   the live engine and the export alike; [`effects`] is the DSP of the tracks' insert chains
//!   (equaliser, compressor, reverb, delay, filters) and the rack that runs a chain; [`synth`]
//!   is the built-in instrument that plays note clips, from the chain it sits on, and the keys
//!   a controller holds on a [`keyboard::Keyboard`].
//! - [`engine`] plays the arrangement live on kira (a sub-track and a sound per DAW track,
//!   started and stopped on the same sample) or through an offline kira backend.
//! - [`record`] writes an input's samples (a sound card's, or a file played at the wall
//!   clock's pace) to a take on disk, on a thread of its own, through a lock-free ring.
//! - [`wav`] writes PCM as 16- or 24-bit integer or 32-bit float WAV; [`wave`] reads WAV files
//!   of every variant other tools write (symphonia's reader refuses most of them).
//!
//! This crate has no network, no Bevy and no database. Every error is an [`AudioError`] that
//! names the file and the reason; nothing here panics on bad input.

pub mod arrangement;
pub mod decode;
pub mod effects;
pub mod engine;
pub mod keyboard;
pub mod peaks;
pub mod record;
pub mod render;
pub mod resample;
pub mod synth;
pub mod wav;
pub mod wave;

// Which checkout this crate was built from: a different one makes cargo rebuild it, so clones
// sharing the target directory never build each other's code (see `.cargo/config.toml`).
const _: Option<&str> = option_env!("ENSEMBLE_CHECKOUT");

use std::path::PathBuf;
use std::sync::Arc;

/// Audio as one contiguous buffer per channel, shared cheaply between threads.
#[derive(Clone, Debug, PartialEq)]
pub struct Pcm {
    /// Frames per second.
    pub sample_rate: u32,
    /// One buffer per channel, all the same length.
    pub channels: Vec<Arc<[f32]>>,
}

impl Pcm {
    /// PCM from per-channel sample vectors (which must be the same length).
    pub fn new(sample_rate: u32, channels: Vec<Vec<f32>>) -> Self {
        Pcm { sample_rate, channels: channels.into_iter().map(Arc::from).collect() }
    }

    /// Frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.channels.first().map_or(0, |channel| channel.len())
    }

    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate.max(1))
    }
}

/// Everything that can go wrong turning files into sound.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file's format or codec is not one we read.
    #[error("{path}: unsupported audio: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported.
        reason: String,
    },
    /// The file is damaged or cut short.
    #[error("{path}: corrupt audio: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The audio could not be resampled (an unusable rate).
    #[error("{path}: cannot resample from {from} Hz to {to} Hz: {reason}")]
    Resample {
        /// The file.
        path: PathBuf,
        /// The file's rate.
        from: u32,
        /// The wanted rate.
        to: u32,
        /// Why.
        reason: String,
    },
    /// A peaks file is not in a format we read.
    #[error("{path}: not a peaks file: {reason}")]
    Peaks {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A WAV file could not be written.
    #[error("{path}: cannot write WAV: {reason}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The sound card's input could not be opened.
    #[error("audio input: {reason}")]
    Input {
        /// Why.
        reason: String,
    },
}
