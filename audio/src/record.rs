//! Recording: an input's samples into a file, off the audio thread.
//!
//! An input pushes interleaved stereo samples into a lock-free ring ([`ring`]) from its
//! callback, which never waits: when the ring is full, the samples it could not take are
//! counted ([`Recorder::dropped`]), never blocked on. The input is the sound card's, or, with no
//! sound card (CI, this machine), a [`FileInput`]: a file played into the ring at the wall
//! clock's pace, which is how the tests listen. A [`Recorder`] thread drains the ring into a
//! 32-bit float WAV written under a temporary name, renamed into place when the take ends, so a
//! take on disk is always whole; [`Recorder::frames`] says how far it has come while it runs
//! and [`Recorder::peaks`] what it looks like so far (for a growing waveform).
//!
//! A [`Capture`] is one take being recorded: an input (the sound card's through cpal, or a
//! file) feeding a recorder, with the input's latency: how long a sound takes from reaching
//! the input to reaching us, which the take's placement takes back off.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    peaks: Arc<Mutex<Vec<[f32; 2]>>>,
    path: PathBuf,
    sample_rate: u32,
}

/// Frames summed up in each of [`Recorder::peaks`].
pub const PEAK_FRAMES: usize = 256;

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
        let peaks = Arc::new(Mutex::new(Vec::new()));
        let (stopping, written, summary) = (stop.clone(), frames.clone(), peaks.clone());
        let thread = std::thread::Builder::new().name("ensemble-recorder".into()).spawn(move || {
            let write_failed =
                |error: hound::Error| AudioError::Wav { path: partial.clone(), reason: error.to_string() };
            let mut count = 0u64;
            // The column being summed: its lowest and highest sample, and its frames so far.
            let (mut column, mut in_column) = ([0f32; 2], 0usize);
            loop {
                // Read the flag first: what arrived before it was raised is drained below.
                let last = stopping.load(Ordering::Acquire);
                let ready = ring.slots() & !1;
                if ready > 0 {
                    let chunk = ring
                        .read_chunk(ready)
                        .map_err(|error| AudioError::Wav { path: partial.clone(), reason: error.to_string() })?;
                    let mut finished = Vec::new();
                    for (index, sample) in chunk.into_iter().enumerate() {
                        writer.write_sample(sample).map_err(write_failed)?;
                        column = [column[0].min(sample), column[1].max(sample)];
                        in_column += index % 2;
                        if in_column == PEAK_FRAMES {
                            finished.push(column);
                            (column, in_column) = ([0.0; 2], 0);
                        }
                    }
                    if !finished.is_empty()
                        && let Ok(mut peaks) = summary.lock()
                    {
                        peaks.extend(finished);
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
        Ok(Recorder { thread: Some(thread), stop, frames, dropped, peaks, path: path.to_path_buf(), sample_rate })
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Appends to `out` the take's peaks from the `out.len()`th on: the lowest and highest
    /// sample (of either channel) of each [`PEAK_FRAMES`] frames written so far. A caller
    /// that keeps `out` between calls copies only what is new.
    pub fn peaks(&self, out: &mut Vec<[f32; 2]>) {
        if let Ok(peaks) = self.peaks.lock() {
            out.extend_from_slice(peaks.get(out.len()..).unwrap_or_default());
        }
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

    /// Stops playing the file in, wherever it has come to.
    pub fn stop(self) {
        // Dropping stops and joins the thread.
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

/// The sound card's default input, through cpal, pushing into a ring from its callback. The
/// stream lives on a thread of its own (on some hosts it may not move between threads), which
/// drops it when the input is dropped.
#[cfg(not(target_arch = "wasm32"))]
pub struct DeviceInput {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    sample_rate: u32,
    latency: Arc<AtomicU64>,
}

#[cfg(not(target_arch = "wasm32"))]
impl DeviceInput {
    /// Frames converted to stereo at once in the callback (longer callbacks go in pieces).
    const CHUNK: usize = 1024;

    /// Opens the default input device at its own rate and starts pushing into a ring of
    /// `seconds`, whose reading end comes back with it; `dropped` counts what the ring could
    /// not take.
    pub fn start(seconds: f64, dropped: Arc<AtomicU64>) -> Result<(DeviceInput, rtrb::Consumer<f32>), AudioError> {
        let (opened, opening) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let latency = Arc::new(AtomicU64::new(0));
        let measured = latency.clone();
        let thread = std::thread::Builder::new()
            .name("ensemble-input".into())
            .spawn(move || match Self::open(seconds, dropped, measured) {
                Ok((stream, rate, output)) => {
                    let _ = opened.send(Ok((rate, output)));
                    // Until the input is dropped (the sender goes, or says so).
                    let _ = stopped.recv();
                    drop(stream);
                }
                Err(error) => {
                    let _ = opened.send(Err(error));
                }
            })
            .map_err(|error| input_failed(error.to_string()))?;
        let (sample_rate, output) =
            opening.recv().map_err(|_| input_failed("the input thread stopped".into())).and_then(|opened| opened)?;
        Ok((DeviceInput { stop: Some(stop), thread: Some(thread), sample_rate, latency }, output))
    }

    /// The device's rate: the take's.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Frames between a sound reaching the input and its samples reaching the callback, as the
    /// host reports it (0 until the first callback, or where the host does not say).
    pub fn latency(&self) -> u64 {
        self.latency.load(Ordering::Relaxed)
    }

    #[allow(clippy::type_complexity)]
    fn open(
        seconds: f64,
        dropped: Arc<AtomicU64>,
        latency: Arc<AtomicU64>,
    ) -> Result<(cpal::Stream, u32, rtrb::Consumer<f32>), AudioError> {
        use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
        let device =
            cpal::default_host().default_input_device().ok_or_else(|| input_failed("no input device".into()))?;
        let config = device.default_input_config().map_err(|error| input_failed(error.to_string()))?;
        let (rate, channels) = (config.sample_rate(), usize::from(config.channels().max(1)));
        let (input, output) = ring(seconds, rate);
        let stream_config: cpal::StreamConfig = config.into();
        let errors = |error: cpal::Error| eprintln!("audio input: {error}");
        let stream = match config.sample_format() {
            cpal::SampleFormat::F32 => device.build_input_stream(
                stream_config,
                Self::callback::<f32>(input, channels, rate, dropped, latency),
                errors,
                None,
            ),
            cpal::SampleFormat::I16 => device.build_input_stream(
                stream_config,
                Self::callback::<i16>(input, channels, rate, dropped, latency),
                errors,
                None,
            ),
            cpal::SampleFormat::I32 => device.build_input_stream(
                stream_config,
                Self::callback::<i32>(input, channels, rate, dropped, latency),
                errors,
                None,
            ),
            other => return Err(input_failed(format!("the input's sample format {other} is not supported"))),
        }
        .map_err(|error| input_failed(error.to_string()))?;
        stream.play().map_err(|error| input_failed(error.to_string()))?;
        Ok((stream, rate, output))
    }

    /// The input callback: the device's channels as stereo (mono doubled, the first two of
    /// more), pushed into the ring. It allocates nothing: its buffer is made here, once.
    fn callback<T>(
        mut input: InputEnd,
        channels: usize,
        rate: u32,
        dropped: Arc<AtomicU64>,
        latency: Arc<AtomicU64>,
    ) -> impl FnMut(&[T], &cpal::InputCallbackInfo) + Send + 'static
    where
        T: cpal::SizedSample,
        f32: cpal::FromSample<T>,
    {
        let mut stereo = vec![0f32; Self::CHUNK * 2];
        move |data: &[T], info: &cpal::InputCallbackInfo| {
            let stamp = info.timestamp();
            let late = stamp.callback.duration_since(stamp.capture).as_secs_f64();
            latency.store((late * f64::from(rate)).round() as u64, Ordering::Relaxed);
            for frames in data.chunks(Self::CHUNK * channels) {
                let count = frames.len() / channels;
                for (frame, out) in frames.chunks_exact(channels).zip(stereo.chunks_exact_mut(2)) {
                    let left: f32 = frame[0].to_sample();
                    let right: f32 = frame.get(1).map_or(left, |sample| sample.to_sample());
                    out.copy_from_slice(&[left, right]);
                }
                push(&mut input, &stereo[..count * 2], &dropped);
            }
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Drop for DeviceInput {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn input_failed(reason: String) -> AudioError {
    AudioError::Input { reason }
}

/// What feeds a [`Capture`].
enum Feed {
    File(FileInput),
    #[cfg(not(target_arch = "wasm32"))]
    Device(DeviceInput),
}

/// One take being recorded: an input feeding a [`Recorder`] through a ring, from the moment it
/// is made.
pub struct Capture {
    feed: Option<Feed>,
    recorder: Recorder,
    sample_rate: u32,
    /// The file input's stated latency (the device's is read from it).
    file_latency: u64,
}

/// Seconds of audio the ring between an input and the recorder holds.
const RING_SECONDS: f64 = 2.0;

impl Capture {
    /// Records `pcm` played in at the wall clock's pace (no sound card: tests, CI), as if the
    /// input took `latency` frames to hand each sound over. The take is at `pcm`'s rate.
    pub fn from_file(pcm: Pcm, latency: u64, path: &Path) -> Result<Capture, AudioError> {
        let sample_rate = pcm.sample_rate;
        let dropped = Arc::new(AtomicU64::new(0));
        let (input, output) = ring(RING_SECONDS, sample_rate);
        let recorder = Recorder::start(path, sample_rate, output, dropped.clone())?;
        let feed = Feed::File(FileInput::start(pcm, input, dropped));
        Ok(Capture { feed: Some(feed), recorder, sample_rate, file_latency: latency })
    }

    /// Records the sound card's default input, at the device's rate.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_device(path: &Path) -> Result<Capture, AudioError> {
        let dropped = Arc::new(AtomicU64::new(0));
        let (device, output) = DeviceInput::start(RING_SECONDS, dropped.clone())?;
        let sample_rate = device.sample_rate();
        let recorder = Recorder::start(path, sample_rate, output, dropped)?;
        Ok(Capture { feed: Some(Feed::Device(device)), recorder, sample_rate, file_latency: 0 })
    }

    /// The take's rate.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Frames from a sound reaching the input to its sample reaching the take.
    pub fn latency(&self) -> u64 {
        match &self.feed {
            #[cfg(not(target_arch = "wasm32"))]
            Some(Feed::Device(device)) => device.latency(),
            _ => self.file_latency,
        }
    }

    /// Frames recorded so far.
    pub fn frames(&self) -> u64 {
        self.recorder.frames()
    }

    /// See [`Recorder::peaks`].
    pub fn peaks(&self, out: &mut Vec<[f32; 2]>) {
        self.recorder.peaks(out);
    }

    /// Ends the take: the input stops, what it gave is written, and the file is put in place.
    pub fn stop(mut self) -> Result<Take, AudioError> {
        match self.feed.take() {
            Some(Feed::File(file)) => file.stop(),
            #[cfg(not(target_arch = "wasm32"))]
            Some(Feed::Device(device)) => drop(device),
            None => {}
        }
        self.recorder.stop()
    }
}
