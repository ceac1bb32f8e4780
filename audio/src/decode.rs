//! Decoding files into planar `f32` with symphonia.
//!
//! [`Decoding`] is the streaming form: it opens a file (or bytes), tells its rate, channels and
//! length when the container knows it, and hands out one block of planar samples at a time, so
//! callers such as the peaks job hold only a block in memory. [`decode_file`] and
//! [`decode_bytes`] decode everything into a [`Pcm`], resampled to a wanted rate.
//!
//! WAV files go through our own reader ([`crate::wave`]), which takes the variants symphonia
//! refuses; everything else through symphonia. A damaged packet in the middle of a file is
//! skipped, as players do, and counted; a file cut short decodes up to the damage, as ffmpeg
//! does, and says so ([`Decoding::truncated`]); a file with no audio track, or not audio at
//! all, is an error naming the file.

use std::io::{Cursor, SeekFrom};
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

use crate::wave::{WaveReader, is_wave};
use crate::{AudioError, Pcm, resample};

/// Damaged packets tolerated before a file counts as corrupt.
const MAX_BAD_PACKETS: usize = 16;

/// What reads the file.
enum Reader {
    Symphonia { format: Box<dyn FormatReader>, decoder: Box<dyn AudioDecoder>, track: u32 },
    Wave(WaveReader<Box<dyn MediaSource>>),
}

/// A file being decoded, block by block.
pub struct Decoding {
    path: PathBuf,
    reader: Reader,
    sample_rate: u32,
    channels: usize,
    frames: Option<u64>,
    /// Frames handed out so far.
    decoded: u64,
    bad_packets: usize,
    truncated: bool,
}

impl std::fmt::Debug for Decoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoding")
            .field("path", &self.path)
            .field("sample_rate", &self.sample_rate)
            .field("channels", &self.channels)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

fn classify(path: &Path, error: SymphoniaError) -> AudioError {
    let path = path.to_path_buf();
    match error {
        SymphoniaError::IoError(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            AudioError::Corrupt { path, reason: "the file ends early".into() }
        }
        SymphoniaError::IoError(source) => AudioError::Io { path, source },
        SymphoniaError::Unsupported(what) => AudioError::Unsupported { path, reason: what.into() },
        other => AudioError::Corrupt { path, reason: other.to_string() },
    }
}

impl Decoding {
    /// Opens the file at `path`.
    pub fn open(path: &Path) -> Result<Decoding, AudioError> {
        let file = std::fs::File::open(path).map_err(|source| AudioError::Io { path: path.into(), source })?;
        Decoding::from_source(Box::new(file), path)
    }

    /// Decodes bytes in memory; `name` (a file name) is used for the format hint and errors.
    pub fn from_bytes(bytes: Vec<u8>, name: &Path) -> Result<Decoding, AudioError> {
        Decoding::from_source(Box::new(Cursor::new(bytes)), name)
    }

    fn from_source(mut source: Box<dyn MediaSource>, path: &Path) -> Result<Decoding, AudioError> {
        let io = |source: std::io::Error| AudioError::Io { path: path.into(), source };
        let mut header = [0u8; 12];
        let read = source.read(&mut header).map_err(io)?;
        source.seek(SeekFrom::Start(0)).map_err(io)?;
        if is_wave(&header[..read]) {
            let wave = WaveReader::open(source, path)?;
            return Ok(Decoding {
                path: path.into(),
                sample_rate: wave.sample_rate,
                channels: wave.channels,
                frames: wave.frames,
                truncated: wave.truncated,
                reader: Reader::Wave(wave),
                decoded: 0,
                bad_packets: 0,
            });
        }
        let stream = MediaSourceStream::new(source, Default::default());
        let mut hint = Hint::new();
        if let Some(extension) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(extension);
        }
        let format = symphonia::default::get_probe()
            .probe(&hint, stream, FormatOptions::default(), MetadataOptions::default())
            .map_err(|e| classify(path, e))?;
        let unsupported = |reason: &str| AudioError::Unsupported { path: path.into(), reason: reason.into() };
        let track = format.default_track(TrackType::Audio).ok_or_else(|| unsupported("no audio track"))?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|params| params.audio())
            .ok_or_else(|| unsupported("the audio track has no codec parameters"))?;
        let sample_rate = params.sample_rate.filter(|rate| *rate > 0).ok_or_else(|| unsupported("no sample rate"))?;
        let channels = params.channels.as_ref().map_or(0, |channels| channels.count());
        let (id, frames) = (track.id, track.num_frames);
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(params, &AudioDecoderOptions::default())
            .map_err(|e| classify(path, e))?;
        Ok(Decoding {
            path: path.into(),
            reader: Reader::Symphonia { format, decoder, track: id },
            sample_rate,
            channels,
            frames,
            decoded: 0,
            bad_packets: 0,
            truncated: false,
        })
    }

    /// The file's sample rate.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The file's channel count (0 until the first block when the container does not say).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The file's length in frames, when the container states it.
    pub fn frames(&self) -> Option<u64> {
        self.frames
    }

    /// Damaged packets skipped so far.
    pub fn bad_packets(&self) -> usize {
        self.bad_packets
    }

    /// Whether the file ended before the audio it promised: what came before the damage is
    /// what was decoded.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Appends the next block of samples to `planes` (one vector per channel, created as
    /// needed); returns the frames added, or 0 at the end of the file.
    pub fn read_block(&mut self, planes: &mut Vec<Vec<f32>>) -> Result<usize, AudioError> {
        let (format, decoder, track) = match &mut self.reader {
            Reader::Symphonia { format, decoder, track } => (format, decoder, *track),
            Reader::Wave(wave) => {
                let frames = wave.read_block(planes)?;
                self.truncated = wave.truncated;
                self.decoded += frames as u64;
                return Ok(frames);
            }
        };
        loop {
            let packet = match format.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => return Ok(0),
                // Some readers (FLAC without a trailing frame header) meet the end of the file
                // as an unexpected end: that is the end when every promised frame has come, and
                // a cut otherwise, where decoding stops with what came before it.
                Err(SymphoniaError::IoError(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                    let promised = self.frames.is_none_or(|frames| self.decoded < frames);
                    if promised && self.decoded == 0 {
                        return Err(AudioError::Corrupt {
                            path: self.path.clone(),
                            reason: "the file ends early".into(),
                        });
                    }
                    self.truncated |= promised;
                    return Ok(0);
                }
                Err(error) => return Err(classify(&self.path, error)),
            };
            if packet.track_id != track {
                continue;
            }
            let decoded = match decoder.decode(&packet) {
                Ok(decoded) => decoded,
                Err(SymphoniaError::DecodeError(reason)) => {
                    self.bad_packets += 1;
                    if self.bad_packets > MAX_BAD_PACKETS {
                        let reason = format!("more than {MAX_BAD_PACKETS} damaged packets (last: {reason})");
                        return Err(AudioError::Corrupt { path: self.path.clone(), reason });
                    }
                    continue;
                }
                Err(error) => return Err(classify(&self.path, error)),
            };
            let frames = decoded.frames();
            let channels = decoded.spec().channels().count();
            if frames == 0 || channels == 0 {
                continue;
            }
            if planes.is_empty() {
                planes.resize_with(channels, Vec::new);
                self.channels = channels;
            }
            if planes.len() != channels {
                let reason = format!("the channel count changed from {} to {channels}", planes.len());
                return Err(AudioError::Corrupt { path: self.path.clone(), reason });
            }
            let start = planes[0].len();
            let mut tails: Vec<&mut [f32]> = planes
                .iter_mut()
                .map(|plane| {
                    plane.resize(start + frames, 0.0);
                    &mut plane[start..]
                })
                .collect();
            decoded.copy_to_slice_planar::<f32, _>(&mut tails);
            self.decoded += frames as u64;
            return Ok(frames);
        }
    }

    /// Decodes the rest of the file into PCM at the file's own rate.
    pub fn read_all(mut self) -> Result<Pcm, AudioError> {
        let mut planes = Vec::new();
        if let Some(frames) = self.frames {
            let frames = usize::try_from(frames).unwrap_or(0).min(1 << 28);
            planes = (0..self.channels.max(1)).map(|_| Vec::with_capacity(frames)).collect();
            planes.truncate(self.channels);
        }
        while self.read_block(&mut planes)? > 0 {}
        if planes.first().is_none_or(|plane| plane.is_empty()) {
            return Err(AudioError::Corrupt { path: self.path, reason: "no audio could be decoded".into() });
        }
        Ok(Pcm::new(self.sample_rate, planes))
    }

    /// The file being decoded.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Decodes a whole file, resampled to `rate` if it is given and differs from the file's.
pub fn decode_file(path: &Path, rate: Option<u32>) -> Result<Pcm, AudioError> {
    finish(Decoding::open(path)?, rate)
}

/// Decodes a whole file held in memory (`name` names it in errors and hints its format).
pub fn decode_bytes(bytes: Vec<u8>, name: &Path, rate: Option<u32>) -> Result<Pcm, AudioError> {
    finish(Decoding::from_bytes(bytes, name)?, rate)
}

fn finish(decoding: Decoding, rate: Option<u32>) -> Result<Pcm, AudioError> {
    let path = decoding.path().to_path_buf();
    let pcm = decoding.read_all()?;
    match rate {
        Some(rate) if rate != pcm.sample_rate => resample::resample(&pcm, rate)
            .map_err(|reason| AudioError::Resample { path, from: pcm.sample_rate, to: rate, reason }),
        _ => Ok(pcm),
    }
}
