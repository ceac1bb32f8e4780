//! Reading WAV files, every variant other tools write.
//!
//! symphonia's WAV reader refuses most of what ffmpeg and scipy read without complaint (RF64,
//! big-endian RIFX, sizes of `0xFFFFFFFF` from a streaming writer, a RIFF size smaller than the
//! file, integer PCM at widths other than 8/16/24/32 bits, µ-law with an extended `fmt `
//! chunk) and cannot be configured to take them, so WAV files are read here:
//!
//! - containers: `RIFF` (little-endian), `RIFX` (big-endian), `RF64` (sizes in `ds64`); the
//!   RIFF size is ignored (writers get it wrong), the `data` size is trusted unless it says
//!   "unknown" (`0xFFFFFFFF`, or 0 from a writer that never came back), when the samples run to
//!   the end of the file;
//! - formats: integer PCM of 1 to 64 bits in containers of 1 to 8 bytes (unsigned at 8 bits and
//!   below, left-justified otherwise, scaled by the container), IEEE float of 32 or 64 bits,
//!   A-law and µ-law, each also inside `WAVE_FORMAT_EXTENSIBLE`; anything else is
//!   [`AudioError::Unsupported`] with its format tag, never "corrupt";
//! - a file that ends before its `data` size decodes up to the damage, and says so
//!   ([`crate::decode::Decoding::truncated`]).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::AudioError;

/// Frames read per block.
const BLOCK_FRAMES: usize = 4096;
/// Most channels a file may have.
const MAX_CHANNELS: u16 = 64;

/// Whether `header` (the first 12 bytes of a file) starts a WAV file.
pub fn is_wave(header: &[u8]) -> bool {
    header.len() >= 12 && matches!(&header[..4], b"RIFF" | b"RIFX" | b"RF64") && &header[8..12] == b"WAVE"
}

/// How the samples are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    /// Integer PCM in containers of this many bytes.
    Int(usize),
    /// IEEE float in containers of this many bytes (4 or 8).
    Float(usize),
    /// G.711 A-law, one byte.
    ALaw,
    /// G.711 µ-law, one byte.
    MuLaw,
}

/// A WAV file being read, block by block.
pub struct WaveReader<R> {
    source: R,
    path: PathBuf,
    big_endian: bool,
    encoding: Encoding,
    /// The channel count.
    pub(crate) channels: usize,
    /// The sample rate.
    pub(crate) sample_rate: u32,
    /// Bytes per frame.
    block_align: usize,
    /// Sample bytes left to read (`None` only for sources that cannot tell their length).
    remaining: Option<u64>,
    /// The length in frames: what the file holds.
    pub(crate) frames: Option<u64>,
    /// The file ends before the samples its header promised (known on opening; also set when
    /// it shrinks while being read).
    pub(crate) truncated: bool,
    buffer: Vec<u8>,
}

impl<R> std::fmt::Debug for WaveReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaveReader")
            .field("path", &self.path)
            .field("encoding", &self.encoding)
            .field("channels", &self.channels)
            .field("sample_rate", &self.sample_rate)
            .finish_non_exhaustive()
    }
}

/// Reads exactly `buf.len()` bytes, or as many as there are; returns how many.
fn read_up_to(source: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

impl<R: Read + Seek> WaveReader<R> {
    /// Reads the header of the WAV file in `source` (at its start), up to its samples.
    pub fn open(mut source: R, path: &Path) -> Result<WaveReader<R>, AudioError> {
        let corrupt = |reason: String| AudioError::Corrupt { path: path.into(), reason };
        let io = |source: std::io::Error| AudioError::Io { path: path.into(), source };
        let mut header = [0u8; 12];
        if read_up_to(&mut source, &mut header).map_err(io)? < 12 || !is_wave(&header) {
            return Err(corrupt("not a WAV file, or cut short in its header".into()));
        }
        let big_endian = &header[..4] == b"RIFX";
        let rf64 = &header[..4] == b"RF64";
        let u16_at = |bytes: &[u8], at: usize| {
            let pair = [bytes[at], bytes[at + 1]];
            if big_endian { u16::from_be_bytes(pair) } else { u16::from_le_bytes(pair) }
        };
        let u32_at = |bytes: &[u8], at: usize| {
            let four = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
            if big_endian { u32::from_be_bytes(four) } else { u32::from_le_bytes(four) }
        };
        let mut format: Option<(Encoding, usize, u32, usize)> = None;
        let mut ds64_data: Option<u64> = None;
        loop {
            let mut chunk = [0u8; 8];
            let got = read_up_to(&mut source, &mut chunk).map_err(io)?;
            if got < 8 {
                return Err(corrupt("the file ends before its samples (no data chunk)".into()));
            }
            let size = u32_at(&chunk, 4);
            match &chunk[..4] {
                b"fmt " | b"ds64" => {
                    if size > 4096 {
                        return Err(corrupt(format!("a {}-byte header chunk", size)));
                    }
                    let mut body = vec![0u8; size as usize + (size as usize & 1)];
                    if read_up_to(&mut source, &mut body).map_err(io)? < size as usize {
                        return Err(corrupt("the file ends inside its header".into()));
                    }
                    if &chunk[..4] == b"ds64" {
                        if body.len() < 16 {
                            return Err(corrupt("a ds64 chunk too short for its sizes".into()));
                        }
                        let low = u64::from(u32_at(&body, 8));
                        let high = u64::from(u32_at(&body, 12));
                        ds64_data = Some(high << 32 | low);
                    } else {
                        format = Some(parse_fmt(&body, size as usize, u16_at, u32_at, path)?);
                    }
                }
                b"data" => {
                    let Some((encoding, channels, sample_rate, block_align)) = format else {
                        return Err(corrupt("the samples come before the format (no fmt chunk)".into()));
                    };
                    let stated = match size {
                        0xFFFF_FFFF if rf64 => ds64_data,
                        // A streaming writer's "unknown", or one that never came back to fill it in.
                        0xFFFF_FFFF | 0 => None,
                        size => Some(u64::from(size)),
                    };
                    // What the file holds decides: the samples run to its end when their size is
                    // unknown, and a file cut short has fewer than it states.
                    let here = source.stream_position().map_err(io)?;
                    let available = source.seek(SeekFrom::End(0)).map_err(io)?.saturating_sub(here);
                    source.seek(SeekFrom::Start(here)).map_err(io)?;
                    let truncated = stated.is_some_and(|stated| stated > available);
                    let bytes = stated.map_or(available, |stated| stated.min(available));
                    let remaining = Some(bytes - bytes % block_align as u64);
                    let frames = remaining.map(|bytes| bytes / block_align as u64);
                    return Ok(WaveReader {
                        source,
                        path: path.into(),
                        big_endian,
                        encoding,
                        channels,
                        sample_rate,
                        block_align,
                        remaining,
                        frames,
                        truncated,
                        buffer: Vec::new(),
                    });
                }
                _ => {
                    let skip = i64::from(size) + i64::from(size & 1);
                    source.seek(SeekFrom::Current(skip)).map_err(io)?;
                }
            }
        }
    }

    /// Appends the next block of samples to `planes` (one vector per channel); returns the
    /// frames added, or 0 at the end.
    pub fn read_block(&mut self, planes: &mut Vec<Vec<f32>>) -> Result<usize, AudioError> {
        let mut wanted = BLOCK_FRAMES * self.block_align;
        if let Some(remaining) = self.remaining {
            wanted = wanted.min(usize::try_from(remaining).unwrap_or(usize::MAX));
        }
        self.buffer.resize(wanted, 0);
        let got = read_up_to(&mut self.source, &mut self.buffer)
            .map_err(|source| AudioError::Io { path: self.path.clone(), source })?;
        if let Some(remaining) = &mut self.remaining {
            *remaining -= got as u64;
            if got < wanted {
                // Shorter than it was a moment ago: cut while we read.
                self.truncated = true;
                *remaining = 0;
            }
        }
        let frames = got / self.block_align;
        if planes.len() != self.channels {
            planes.resize_with(self.channels, Vec::new);
        }
        let width = self.block_align / self.channels;
        for (channel, plane) in planes.iter_mut().enumerate() {
            plane.reserve(frames);
            for frame in 0..frames {
                let at = frame * self.block_align + channel * width;
                plane.push(self.sample(&self.buffer[at..at + width]));
            }
        }
        Ok(frames)
    }

    /// One sample from its container's bytes.
    fn sample(&self, bytes: &[u8]) -> f32 {
        let mut raw = [0u8; 8];
        match self.encoding {
            Encoding::Int(1) => (f32::from(bytes[0]) - 128.0) / 128.0,
            Encoding::Int(width) => {
                // Into the top of a u64, so the sign lands in bit 63 and the scale is the container's.
                for (index, byte) in bytes[..width].iter().enumerate() {
                    let from_top = if self.big_endian { index } else { width - 1 - index };
                    raw[from_top] = *byte;
                }
                (i64::from_be_bytes(raw) as f64 / 9_223_372_036_854_775_808.0) as f32
            }
            Encoding::Float(4) => {
                raw[..4].copy_from_slice(&bytes[..4]);
                let four = [raw[0], raw[1], raw[2], raw[3]];
                let value = if self.big_endian { f32::from_be_bytes(four) } else { f32::from_le_bytes(four) };
                if value.is_finite() { value } else { 0.0 }
            }
            Encoding::Float(_) => {
                raw.copy_from_slice(&bytes[..8]);
                let value = if self.big_endian { f64::from_be_bytes(raw) } else { f64::from_le_bytes(raw) };
                if value.is_finite() { value as f32 } else { 0.0 }
            }
            Encoding::ALaw => alaw(bytes[0]),
            Encoding::MuLaw => mulaw(bytes[0]),
        }
    }
}

/// The encoding, channels, rate and bytes per frame a `fmt ` chunk describes.
fn parse_fmt(
    body: &[u8],
    size: usize,
    u16_at: impl Fn(&[u8], usize) -> u16,
    u32_at: impl Fn(&[u8], usize) -> u32,
    path: &Path,
) -> Result<(Encoding, usize, u32, usize), AudioError> {
    let corrupt = |reason: String| AudioError::Corrupt { path: path.into(), reason };
    let unsupported = |reason: String| AudioError::Unsupported { path: path.into(), reason };
    if size < 16 {
        return Err(corrupt(format!("a fmt chunk of {size} bytes (at least 16 are needed)")));
    }
    let mut tag = u16_at(body, 0);
    let channels = u16_at(body, 2);
    let sample_rate = u32_at(body, 4);
    let block_align = usize::from(u16_at(body, 12));
    let bits = usize::from(u16_at(body, 14));
    if tag == 0xFFFE {
        // WAVE_FORMAT_EXTENSIBLE: the real format is the first two bytes of the sub-format GUID.
        if size < 40 {
            return Err(corrupt("an extensible fmt chunk without its sub-format".into()));
        }
        tag = u16_at(body, 24);
    }
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(unsupported(format!("{channels} channels (1 to {MAX_CHANNELS} are read)")));
    }
    if sample_rate == 0 {
        return Err(corrupt("a sample rate of 0".into()));
    }
    let width = block_align / usize::from(channels);
    if width == 0 || width * usize::from(channels) != block_align || width < bits.div_ceil(8) || width > 8 {
        return Err(corrupt(format!("{block_align} bytes per frame do not fit {channels} channels of {bits} bits")));
    }
    let encoding = match (tag, width) {
        (0x0001, _) if bits > 0 => Encoding::Int(width),
        (0x0003, 4 | 8) => Encoding::Float(width),
        (0x0006, 1) => Encoding::ALaw,
        (0x0007, 1) => Encoding::MuLaw,
        (0x0001 | 0x0003 | 0x0006 | 0x0007, _) => {
            return Err(unsupported(format!("format 0x{tag:04X} at {bits} bits in {width}-byte samples")));
        }
        _ => return Err(unsupported(format!("WAV format 0x{tag:04X} ({})", format_name(tag)))),
    };
    Ok((encoding, usize::from(channels), sample_rate, block_align))
}

/// A name for a WAV format tag, for messages.
fn format_name(tag: u16) -> &'static str {
    match tag {
        0x0002 => "Microsoft ADPCM",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0050 => "MPEG",
        0x0055 => "MP3",
        0x0160..=0x0162 => "Windows Media Audio",
        _ => "not a format we read",
    }
}

/// G.711 A-law to a sample in −1…1.
fn alaw(byte: u8) -> f32 {
    let byte = byte ^ 0x55;
    let exponent = (byte >> 4) & 0x07;
    let mantissa = i32::from(byte & 0x0F);
    let magnitude = if exponent == 0 { (mantissa << 4) + 8 } else { ((mantissa << 4) + 0x108) << (exponent - 1) };
    let value = if byte & 0x80 != 0 { magnitude } else { -magnitude };
    value as f32 / 32_768.0
}

/// G.711 µ-law to a sample in −1…1.
fn mulaw(byte: u8) -> f32 {
    let byte = !byte;
    let exponent = (byte >> 4) & 0x07;
    let mantissa = i32::from(byte & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    let value = if byte & 0x80 != 0 { -magnitude } else { magnitude };
    value as f32 / 32_768.0
}
