//! Waveform peaks: the min and max of each run of frames, per channel, at several zoom levels.
//!
//! The finest level has one pair per [`BASE`] (64) frames; each coarser level combines four
//! pairs of the one below, up to 16,384 frames per pair ([`FRAMES_PER_PAIR`]). A UI picks the
//! level closest to its pixels-per-frame and never touches the audio.
//!
//! The kernel ([`min_max`]) keeps eight running minima and maxima so the compiler turns it
//! into SIMD compares; whole stretches of a channel are split across the rayon pool.
//! [`PeaksBuilder`] takes audio block by block from a decoder and keeps at most [`FLUSH`]
//! frames per channel pending, so an hour-long file needs a few megabytes, not gigabytes.
//!
//! Peaks are stored as 16-bit values in Ensemble's own versioned format ([`Peaks::write`],
//! [`Peaks::read`]) and can be exported as audiowaveform's `.dat` version 2 for web tools: a
//! stored level ([`Peaks::write_dat`]) or any zoom of 2 frames per pair or more, computed from
//! the audio as audiowaveform's `-z` does ([`level_of`], [`write_dat`]). A sample becomes
//! `round(sample × 32768)`, clamped to 16 bits: the inverse of how 16-bit audio is decoded, so
//! a 16-bit file's peaks are its own sample values, as audiowaveform reports them.

use std::io::{Read, Write};
use std::path::Path;

use rayon::prelude::*;

use crate::decode::Decoding;
use crate::{AudioError, Pcm};

/// Frames per pair at the finest level.
pub const BASE: usize = 64;
/// Frames per pair at each level, finest first.
pub const FRAMES_PER_PAIR: [usize; 5] = [64, 256, 1024, 4096, 16_384];
/// Frames per channel the streaming builder holds before computing their pairs.
pub const FLUSH: usize = BASE * 4096;
/// The version [`Peaks::write`] writes.
pub const FORMAT_VERSION: u16 = 1;
const MAGIC: &[u8; 8] = b"ENSPEAKS";
/// Frames one rayon task covers.
const TASK: usize = BASE * 1024;

/// The lowest and highest sample of a run, scaled to `i16`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pair {
    /// Lowest sample.
    pub min: i16,
    /// Highest sample.
    pub max: i16,
}

impl Pair {
    fn merge(self, other: Pair) -> Pair {
        Pair { min: self.min.min(other.min), max: self.max.max(other.max) }
    }
}

/// One zoom level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Level {
    /// Frames each pair covers.
    pub frames_per_pair: usize,
    /// Pairs, one vector per channel.
    pub channels: Vec<Vec<Pair>>,
}

/// Peaks of one piece of audio at every level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peaks {
    /// The audio's sample rate.
    pub sample_rate: u32,
    /// The audio's length in frames.
    pub frames: u64,
    /// Levels, finest first ([`FRAMES_PER_PAIR`]).
    pub levels: Vec<Level>,
}

/// The minimum and maximum of `samples` (`(0, 0)` when empty).
pub fn min_max(samples: &[f32]) -> (f32, f32) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    let mut low = [f32::INFINITY; 8];
    let mut high = [f32::NEG_INFINITY; 8];
    let chunks = samples.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for lane in 0..8 {
            // Plain compares (not f32::min, which must handle NaN) so this loop becomes packed
            // min/max instructions over eight lanes.
            low[lane] = if chunk[lane] < low[lane] { chunk[lane] } else { low[lane] };
            high[lane] = if chunk[lane] > high[lane] { chunk[lane] } else { high[lane] };
        }
    }
    for (lane, &sample) in rest.iter().enumerate() {
        low[lane] = if sample < low[lane] { sample } else { low[lane] };
        high[lane] = if sample > high[lane] { sample } else { high[lane] };
    }
    // Fold the lanes in halves: 8 → 4 → 2 → 1.
    for width in [4, 2, 1] {
        for lane in 0..width {
            low[lane] = if low[lane + width] < low[lane] { low[lane + width] } else { low[lane] };
            high[lane] = if high[lane + width] > high[lane] { high[lane + width] } else { high[lane] };
        }
    }
    (low[0], high[0])
}

/// A sample in −1…1 as a 16-bit value: scaled by 32,768 (the inverse of decoding 16-bit audio,
/// so those samples come back exactly), rounded half away from zero, clamped to `i16`.
/// (`f32::round` is a library call on baseline x86-64; this is two instructions, and the cast
/// saturates.)
fn to_i16(sample: f32) -> i16 {
    let scaled = sample.clamp(-1.0, 1.0) * 32_768.0;
    (scaled + if scaled < 0.0 { -0.5 } else { 0.5 }) as i16
}

fn pair(samples: &[f32]) -> Pair {
    let (min, max) = min_max(samples);
    Pair { min: to_i16(min), max: to_i16(max) }
}

/// Finest-level pairs of one channel, computed in parallel.
fn base_pairs(samples: &[f32]) -> Vec<Pair> {
    samples.par_chunks(TASK).flat_map_iter(|task| task.chunks(BASE).map(pair)).collect()
}

/// The next coarser level: every four pairs merged.
fn coarser(pairs: &[Pair]) -> Vec<Pair> {
    pairs.chunks(4).map(|four| four.iter().copied().reduce(Pair::merge).unwrap_or_default()).collect()
}

fn levels_from_base(base: Vec<Vec<Pair>>) -> Vec<Level> {
    let mut levels = vec![Level { frames_per_pair: FRAMES_PER_PAIR[0], channels: base }];
    for &frames_per_pair in &FRAMES_PER_PAIR[1..] {
        let previous = levels.last().map(|level| level.channels.as_slice()).unwrap_or_default();
        let channels = previous.iter().map(|pairs| coarser(pairs)).collect();
        levels.push(Level { frames_per_pair, channels });
    }
    levels
}

impl Peaks {
    /// Peaks of audio in memory, channels in parallel and each channel split across the pool.
    pub fn from_pcm(pcm: &Pcm) -> Peaks {
        let base = pcm.channels.par_iter().map(|channel| base_pairs(channel)).collect();
        Peaks { sample_rate: pcm.sample_rate, frames: pcm.frames() as u64, levels: levels_from_base(base) }
    }

    /// Peaks of a file, decoded block by block with bounded memory.
    pub fn from_decoding(mut decoding: Decoding) -> Result<Peaks, AudioError> {
        let mut builder = PeaksBuilder::new(decoding.sample_rate());
        let mut planes = Vec::new();
        while decoding.read_block(&mut planes)? > 0 {
            builder.push(&planes);
            planes.iter_mut().for_each(Vec::clear);
        }
        Ok(builder.finish())
    }

    /// The level for `frames_per_pair`, if it is one of [`FRAMES_PER_PAIR`].
    pub fn level(&self, frames_per_pair: usize) -> Option<&Level> {
        self.levels.iter().find(|level| level.frames_per_pair == frames_per_pair)
    }

    /// Writes the peaks in Ensemble's format (little-endian, versioned).
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let channels = self.levels.first().map_or(0, |level| level.channels.len());
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        out.write_all(&(channels as u16).to_le_bytes())?;
        out.write_all(&self.sample_rate.to_le_bytes())?;
        out.write_all(&self.frames.to_le_bytes())?;
        out.write_all(&(self.levels.len() as u16).to_le_bytes())?;
        for level in &self.levels {
            out.write_all(&(level.frames_per_pair as u32).to_le_bytes())?;
            let pairs = level.channels.first().map_or(0, Vec::len);
            out.write_all(&(pairs as u64).to_le_bytes())?;
            for channel in &level.channels {
                let mut bytes = Vec::with_capacity(channel.len() * 4);
                for pair in channel {
                    bytes.extend_from_slice(&pair.min.to_le_bytes());
                    bytes.extend_from_slice(&pair.max.to_le_bytes());
                }
                out.write_all(&bytes)?;
            }
        }
        Ok(())
    }

    /// Reads peaks written by [`Peaks::write`]; `path` names the source in errors.
    pub fn read(input: &mut impl Read, path: &Path) -> Result<Peaks, AudioError> {
        let bad = |reason: String| AudioError::Peaks { path: path.into(), reason };
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes).map_err(|source| AudioError::Io { path: path.into(), source })?;
        let mut reader = Bytes(&bytes);
        if reader.take(8).ok_or_else(|| bad("shorter than its header".into()))? != MAGIC {
            return Err(bad("wrong magic number".into()));
        }
        let header = (|| Some((reader.u16()?, reader.u16()?, reader.u32()?, reader.u64()?, reader.u16()?)))();
        let (version, channels, sample_rate, frames, count) = header.ok_or_else(|| bad("truncated header".into()))?;
        if version != FORMAT_VERSION {
            return Err(bad(format!("version {version}; this build reads version {FORMAT_VERSION}")));
        }
        let mut levels = Vec::with_capacity(usize::from(count).min(FRAMES_PER_PAIR.len()));
        for _ in 0..count {
            let (frames_per_pair, pairs) =
                (|| Some((reader.u32()?, reader.u64()?)))().ok_or_else(|| bad("truncated level header".into()))?;
            let expected = frames.div_ceil(u64::from(frames_per_pair.max(1)));
            if frames_per_pair == 0 || pairs != expected {
                return Err(bad(format!(
                    "a level of {pairs} pairs at {frames_per_pair} frames each for {frames} frames"
                )));
            }
            let mut level = Level { frames_per_pair: frames_per_pair as usize, channels: Vec::new() };
            for _ in 0..channels {
                let data = usize::try_from(pairs).ok().and_then(|p| reader.take(p.checked_mul(4)?));
                let data = data.ok_or_else(|| bad("truncated pairs".into()))?;
                let pairs = data
                    .chunks_exact(4)
                    .map(|p| Pair { min: i16::from_le_bytes([p[0], p[1]]), max: i16::from_le_bytes([p[2], p[3]]) })
                    .collect();
                level.channels.push(pairs);
            }
            levels.push(level);
        }
        if !reader.0.is_empty() {
            return Err(bad(format!("{} bytes after the last level", reader.0.len())));
        }
        Ok(Peaks { sample_rate, frames, levels })
    }

    /// Writes one stored level as an audiowaveform `.dat` file; other zooms come from the
    /// audio ([`level_of`]).
    pub fn write_dat(&self, frames_per_pair: usize, out: &mut impl Write) -> std::io::Result<()> {
        let level = self.level(frames_per_pair).ok_or_else(|| {
            let message = format!("no stored level of {frames_per_pair} frames per pair: compute it with level_of");
            std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
        })?;
        write_dat(self.sample_rate, level, out)
    }
}

/// The peaks of `pcm` at any zoom of `frames_per_pair` ≥ 2, as audiowaveform's `-z` computes
/// them; `None` below 2.
pub fn level_of(pcm: &Pcm, frames_per_pair: usize) -> Option<Level> {
    if frames_per_pair < 2 {
        return None;
    }
    let channels = pcm
        .channels
        .par_iter()
        .map(|samples| {
            let runs = samples.par_chunks(TASK.div_ceil(frames_per_pair).max(1) * frames_per_pair);
            runs.flat_map_iter(|task| task.chunks(frames_per_pair).map(pair)).collect()
        })
        .collect();
    Some(Level { frames_per_pair, channels })
}

/// Writes `level` of audio at `sample_rate` as an audiowaveform `.dat` file, version 2, 16-bit,
/// channels interleaved pair by pair.
pub fn write_dat(sample_rate: u32, level: &Level, out: &mut impl Write) -> std::io::Result<()> {
    let too_big =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what} too large for .dat"));
    let pairs = level.channels.first().map_or(0, Vec::len);
    out.write_all(&2i32.to_le_bytes())?; // version
    out.write_all(&0u32.to_le_bytes())?; // flags: 16-bit values
    out.write_all(&i32::try_from(sample_rate).map_err(|_| too_big("sample rate"))?.to_le_bytes())?;
    out.write_all(&i32::try_from(level.frames_per_pair).map_err(|_| too_big("zoom"))?.to_le_bytes())?;
    out.write_all(&u32::try_from(pairs).map_err(|_| too_big("length"))?.to_le_bytes())?;
    out.write_all(&i32::try_from(level.channels.len()).map_err(|_| too_big("channel count"))?.to_le_bytes())?;
    let mut bytes = Vec::with_capacity(pairs * level.channels.len() * 4);
    for index in 0..pairs {
        for channel in &level.channels {
            bytes.extend_from_slice(&channel[index].min.to_le_bytes());
            bytes.extend_from_slice(&channel[index].max.to_le_bytes());
        }
    }
    out.write_all(&bytes)
}

/// A little-endian reader over bytes that returns `None` instead of running off the end.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// Peaks from audio that arrives block by block.
#[derive(Debug)]
pub struct PeaksBuilder {
    sample_rate: u32,
    pending: Vec<Vec<f32>>,
    base: Vec<Vec<Pair>>,
    frames: u64,
}

impl PeaksBuilder {
    /// A builder for audio at `sample_rate`.
    pub fn new(sample_rate: u32) -> Self {
        PeaksBuilder { sample_rate, pending: Vec::new(), base: Vec::new(), frames: 0 }
    }

    /// Adds a block (one slice per channel, all the same length).
    pub fn push<S: AsRef<[f32]>>(&mut self, planes: &[S]) {
        if self.pending.is_empty() {
            self.pending = planes.iter().map(|_| Vec::with_capacity(FLUSH + 8192)).collect();
            self.base = planes.iter().map(|_| Vec::new()).collect();
        }
        for (pending, plane) in self.pending.iter_mut().zip(planes) {
            pending.extend_from_slice(plane.as_ref());
        }
        self.frames += planes.first().map_or(0, |plane| plane.as_ref().len()) as u64;
        if self.pending.first().is_some_and(|pending| pending.len() >= FLUSH) {
            self.flush(false);
        }
    }

    /// Turns pending frames into pairs: all of them at the end, else whole runs of [`BASE`].
    fn flush(&mut self, all: bool) {
        let available = self.pending.first().map_or(0, Vec::len);
        let ready = if all { available } else { available - available % BASE };
        let pairs: Vec<Vec<Pair>> = self.pending.par_iter().map(|pending| base_pairs(&pending[..ready])).collect();
        for ((base, pending), pairs) in self.base.iter_mut().zip(&mut self.pending).zip(pairs) {
            base.extend(pairs);
            pending.drain(..ready);
        }
    }

    /// The peaks of everything pushed.
    pub fn finish(mut self) -> Peaks {
        self.flush(true);
        Peaks { sample_rate: self.sample_rate, frames: self.frames, levels: levels_from_base(self.base) }
    }
}
