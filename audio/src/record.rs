//! Recording: an input's samples into a file, off the audio thread.
//!
//! An input pushes interleaved stereo samples into a lock-free ring ([`ring`]) from its
//! callback, which never waits: when the ring is full, the samples it could not take are
//! counted ([`Recorder::dropped`]), never blocked on. The input is the sound card's, or, with no
//! sound card (CI, this machine), a [`FileInput`]: a file played into the ring at the wall
//! clock's pace, which is how the tests listen. A [`Recorder`] thread drains the ring into a
//! 32-bit float WAV written under a temporary name, renamed into place when the take ends, so a
//! take on disk is always whole; [`Recorder::frames`] says how far it has come while it runs
//! (for a growing waveform).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{AudioError, Pcm};

/// The input's end of a ring.
pub type InputEnd = rtrb::Producer<f32>;

/// A ring for `seconds` of stereo at `sample_rate`: the input's end and the recorder's.
pub fn ring(seconds: f64, sample_rate: u32) -> (InputEnd, rtrb::Consumer<f32>) {
    let samples = (seconds * f64::from(sample_rate)).ceil() as usize * 2;
    rtrb::RingBuffer::new(samples.max(2))
}

/// Pushes `frames` (interleaved stereo) into `input`, as an input callback does: whatever does
/// not fit is dropped and counted in `dropped`, and nothing waits.
pub fn push(input: &mut InputEnd, frames: &[f32], dropped: &AtomicU64) {
    let room = input.slots().min(frames.len()) & !1;
    if let Ok(chunk) = input.write_chunk_uninit(room) {
        chunk.fill_from_iter(frames[..room].iter().copied());
    }
    if room < frames.len() {
        dropped.fetch_add(((frames.len() - room) / 2) as u64, Ordering::Relaxed);
    }
}

/// A take on disk.
#[derive(Clone, Debug, PartialEq)]
pub struct Take {
    /// The WAV file.
    pub path: PathBuf,
    /// Frames in it.
    pub frames: u64,
    /// Its rate.
    pub sample_rate: u32,
    /// Frames the input could not hand over in time (0 in a clean take).
    pub dropped: u64,
}

/// Writes what arrives in a ring to a WAV file, on a thread of its own.
pub struct Recorder {
    thread: Option<JoinHandle<Result<u64, AudioError>>>,
    stop: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    path: PathBuf,
    sample_rate: u32,
}

/// How long the recorder sleeps when the ring is empty: far under any ring's length.
const IDLE: Duration = Duration::from_millis(2);

impl Recorder {
    /// Starts writing what `ring` receives to `path` (a stereo WAV at `sample_rate`). `dropped`
    /// is the counter the input raises when the ring is full.
    pub fn start(
        path: &Path,
        sample_rate: u32,
        mut ring: rtrb::Consumer<f32>,
        dropped: Arc<AtomicU64>,
    ) -> Result<Recorder, AudioError> {
        let partial = partial_path(path);
        let spec =
            hound::WavSpec { channels: 2, sample_rate, bits_per_sample: 32, sample_format: hound::SampleFormat::Float };
        let failed = |error: hound::Error| AudioError::Wav { path: partial.clone(), reason: error.to_string() };
        let file = File::create(&partial)
            .map_err(|error| AudioError::Wav { path: partial.clone(), reason: error.to_string() })?;
        let mut writer = hound::WavWriter::new(BufWriter::new(file), spec).map_err(failed)?;
        let (stop, frames) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (stopping, written) = (stop.clone(), frames.clone());
        let thread = std::thread::Builder::new().name("ensemble-recorder".into()).spawn(move || {
            let write_failed =
                |error: hound::Error| AudioError::Wav { path: partial.clone(), reason: error.to_string() };
            let mut count = 0u64;
            loop {
                // Read the flag first: what arrived before it was raised is drained below.
                let last = stopping.load(Ordering::Acquire);
                let ready = ring.slots() & !1;
                if ready > 0 {
                    let chunk = ring
                        .read_chunk(ready)
                        .map_err(|error| AudioError::Wav { path: partial.clone(), reason: error.to_string() })?;
                    for sample in chunk.into_iter() {
                        writer.write_sample(sample).map_err(write_failed)?;
                    }
                    count += (ready / 2) as u64;
                    written.store(count, Ordering::Relaxed);
                } else if last {
                    break;
                } else {
                    std::thread::sleep(IDLE);
                }
            }
            writer.finalize().map_err(write_failed)?;
            Ok(count)
        });
        let thread = thread.map_err(|error| AudioError::Wav { path: path.to_path_buf(), reason: error.to_string() })?;
        Ok(Recorder { thread: Some(thread), stop, frames, dropped, path: path.to_path_buf(), sample_rate })
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Frames the input dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Ends the take once the ring is drained: the file is finished and renamed into place.
    pub fn stop(mut self) -> Result<Take, AudioError> {
        self.stop.store(true, Ordering::Release);
        let outcome = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(outcome)) => outcome,
            _ => Err(AudioError::Wav { path: self.path.clone(), reason: "the recorder thread stopped".into() }),
        };
        let frames = outcome?;
        std::fs::rename(partial_path(&self.path), &self.path)
            .map_err(|error| AudioError::Wav { path: self.path.clone(), reason: error.to_string() })?;
        Ok(Take { path: self.path.clone(), frames, sample_rate: self.sample_rate, dropped: self.dropped() })
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // A take abandoned without `stop` still ends its thread (and leaves only the partial).
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
}

/// An input with no sound card: a file's audio pushed into a ring at the wall clock's pace, in
/// blocks of [`FileInput::BLOCK`], as a card's callback would.
pub struct FileInput {
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl FileInput {
    /// Frames per push: 10 ms at 48 kHz.
    pub const BLOCK: usize = 480;

    /// Plays `pcm` (mono is doubled) into `input` from now on, then stops on its own.
    pub fn start(pcm: Pcm, mut input: InputEnd, dropped: Arc<AtomicU64>) -> FileInput {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new().name("ensemble-file-input".into()).spawn(move || {
            let (left, right) = match pcm.channels.as_slice() {
                [mono] => (mono.clone(), mono.clone()),
                [left, right, ..] => (left.clone(), right.clone()),
                [] => return,
            };
            let rate = f64::from(pcm.sample_rate.max(1));
            let started = Instant::now();
            let mut block = Vec::with_capacity(Self::BLOCK * 2);
            let mut sent = 0usize;
            while sent < left.len() && !stopping.load(Ordering::Relaxed) {
                // The frames due by now, a block at a time.
                let due = (started.elapsed().as_secs_f64() * rate) as usize;
                if due < sent + Self::BLOCK.min(left.len() - sent) {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                let end = (sent + Self::BLOCK).min(left.len());
                block.clear();
                block.extend(left[sent..end].iter().zip(&right[sent..end]).flat_map(|(l, r)| [*l, *r]));
                push(&mut input, &block, &dropped);
                sent = end;
            }
        });
        FileInput { thread: thread.ok(), stop }
    }

    /// Waits until the whole file has been played in.
    pub fn finish(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FileInput {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
