//! Live playback on kira, and the offline backend the same graph renders through.
//!
//! Every DAW track gets a kira sub-track and, playing on it, a track sound: a kira `Sound`
//! that runs the [`Renderer`] for that one track, so clips land on their exact frame rather
//! than on kira's buffer boundaries, and what plays live is computed by the same code as the
//! export.
//!
//! Per-track sounds must start, stop and seek on the same sample. Kira processes sounds one
//! after another, so a command that reaches one sound's queue just after another sound has
//! looked at its own would split them by a buffer. Instead, a kira clock runs from engine start
//! at one tick per frame and never stops: within a chunk every sound reads the same global frame
//! from it. The control side reads the clock, picks a global frame 4,096 frames ahead, and
//! sends every sound "at global frame G: play from position P" (or stop); each sound switches
//! exactly at G.
//!
//! Kira clamps its output to ±1 (0 dBFS); a float export of the same graph does not, so the two
//! differ only where the mix itself is over full scale.
//!
//! The audio thread never allocates, frees, locks or logs here either: commands are small
//! values in fixed-size `rtrb` queues, and a new arrangement arrives as an `Arc` whose previous
//! value the engine keeps alive, so the audio thread never drops the last reference. A track
//! sound that is playing crossfades from the old arrangement to the new one over
//! [`CROSSFADE_FRAMES`] ([`Renderer::crossfade_to`]), so an edit while playing is heard at once
//! and without a click. When a track's chain gains or loses an effect, the engine makes the new
//! chain's [`Rack`] here and sends it; the sound adopts it (keeping the state of the effects
//! both share) and sends the old one back to be dropped here. An effect removed while playing
//! stays one more arrangement, bypassed, so it ramps out ([`carry_leaving`]).
//!
//! A stopped track sound is silent, except the monitored track's: it runs its chain with the
//! keys held on the [`Keyboard`] the engine was given ([`Engine::set_keyboard`]), so a
//! controller is heard through the armed instrument before the transport starts.
//!
//! The DAW tracks' sub-tracks are children of one mix sub-track, whose kira effect runs the
//! master chain on their sum (the metronome plays beside it, on the main track). The master's
//! knobs are not automated, so its output does not depend on where the transport is: it runs
//! on whatever the tracks send, and a reverb on it rings on after a stop. A master chain that
//! gains or loses an effect gets a new rack as a track's does.
//!
//! Levels come back the other way through [`Meters`]: each track sound raises its track's
//! peak in an atomic as it renders, and the control side takes (and resets) the peaks once per
//! UI frame, so a meter shows the loudest sample since it last looked.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use kira::backend::{Backend, Renderer as KiraRenderer};
use kira::clock::{ClockHandle, ClockId, ClockSpeed, ClockTime};
use kira::effect::Effect as KiraEffect;
use kira::info::Info;
use kira::sound::{Sound, SoundData};
use kira::track::{TrackBuilder, TrackHandle};
use kira::{AudioManager, AudioManagerSettings, Frame as KiraFrame};

use crate::arrangement::Arrangement;
use crate::effects::{Rack, carry_leaving, same_effects};
use crate::keyboard::Keyboard;
pub use crate::render::CROSSFADE_FRAMES;
use crate::render::{Frame, MAX_BLOCK, Renderer};

/// Commands that may wait in a track sound's queue.
const QUEUE: usize = 64;
/// How far ahead of the audio clock transport changes are scheduled: more than one device
/// callback (the clock as the control side reads it lags by up to one), so every sound has the
/// command before the frame it applies at. 4,096 frames is 85 ms at 48 kHz.
const LEAD_FRAMES: u64 = 4096;
/// Frames kira renders per chunk (its `internal_buffer_size`).
const KIRA_BUFFER: usize = 128;

/// A transport change, applied at `at` on the engine's global frame clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Transport {
    at: u64,
    position: u64,
    playing: bool,
}

enum Command {
    Transport(Transport),
    Arrangement(Arc<Arrangement>),
    /// The track's chain for the arrangement that follows: adopt it, send the old one back.
    Rack(Box<Rack>),
    /// Turns the sound on or off (the metronome's switch).
    Enabled(bool),
    /// Whether the arrangement's loop range repeats.
    Looping(bool),
    /// The controller's keys, for the monitored track's instrument.
    Keyboard(Arc<Keyboard>),
}

/// Peak levels per track since the control side last took them, written by the audio thread.
///
/// A level is stored as the bits of a non-negative `f32`, whose bit patterns order like the
/// values, so the audio thread raises it with one `fetch_max` and never waits.
#[derive(Clone, Debug)]
pub struct Meters {
    /// Left and right per track, by index in the arrangement.
    peaks: Arc<[AtomicU32]>,
}

impl Meters {
    fn new(tracks: usize) -> Meters {
        Meters { peaks: (0..tracks * 2).map(|_| AtomicU32::new(0)).collect() }
    }

    /// Raises track `index`'s peaks to those of `frames` (audio thread: no allocation, no lock).
    fn raise(&self, index: usize, frames: &[Frame]) {
        let Some(pair) = self.peaks.get(index * 2..index * 2 + 2) else { return };
        let (mut left, mut right) = (0.0f32, 0.0f32);
        for frame in frames {
            left = left.max(frame[0].abs());
            right = right.max(frame[1].abs());
        }
        // NaN would order above every level; a meter shows silence for it instead.
        let level = |value: f32| if value.is_nan() { 0 } else { value.to_bits() };
        pair[0].fetch_max(level(left), Ordering::Relaxed);
        pair[1].fetch_max(level(right), Ordering::Relaxed);
    }

    /// Track `index`'s left and right peaks since the last call, resetting them.
    pub fn take(&self, index: usize) -> [f32; 2] {
        match self.peaks.get(index * 2..index * 2 + 2) {
            Some(pair) => [0, 1].map(|side| f32::from_bits(pair[side].swap(0, Ordering::Relaxed))),
            None => [0.0; 2],
        }
    }
}

/// What a sound plays.
#[derive(Clone, Copy, Debug)]
enum Part {
    /// One DAW track.
    Track(usize),
    /// The click track.
    Metronome,
}

impl Part {
    /// Renders this part of `renderer`'s arrangement into `out`.
    fn render(self, renderer: &mut Renderer, out: &mut [Frame]) {
        match self {
            Part::Track(index) => renderer.render_track(index, out),
            Part::Metronome => renderer.render_metronome(out),
        }
    }
}

/// The global frame a reading of the engine's clock stands for (it ticks once per frame;
/// rounding absorbs the float drift of its fractional part).
fn frames_of(time: ClockTime) -> u64 {
    (time.ticks as f64 + time.fraction).round() as u64
}

/// The kira sound that plays one DAW track, or the metronome.
struct TrackSound {
    part: Part,
    enabled: bool,
    renderer: Renderer,
    playing: bool,
    scheduled: Option<Transport>,
    clock: ClockId,
    commands: rtrb::Consumer<Command>,
    /// Racks replaced by adopted ones, back to the engine to drop.
    retired_racks: rtrb::Producer<Box<Rack>>,
    scratch: Vec<Frame>,
    meters: Meters,
    /// The rate the device renders at, as kira reports it with each chunk (`1 / dt`).
    device_rate: Arc<AtomicU32>,
}

impl Sound for TrackSound {
    fn on_start_processing(&mut self) {
        while let Ok(command) = self.commands.pop() {
            match command {
                Command::Transport(transport) => self.scheduled = Some(transport),
                // The engine still holds the arrangements it sent, so replacing ours only moves
                // counts: nothing is freed here.
                Command::Arrangement(arrangement) => {
                    if self.playing {
                        self.renderer.crossfade_to(arrangement);
                    } else {
                        self.renderer.set_arrangement(arrangement);
                    }
                }
                Command::Rack(rack) => {
                    if let Part::Track(index) = self.part {
                        let old = self.renderer.adopt_rack(index, rack);
                        // The queue back has room for every rack the engine can have sent (it
                        // is as long as the command queue); were it full, the rack would be
                        // freed here rather than lost.
                        let _ = self.retired_racks.push(old);
                    }
                }
                Command::Enabled(enabled) => self.enabled = enabled,
                Command::Looping(looping) => self.renderer.set_looping(looping),
                // The engine keeps every keyboard it sent: the one replaced is not freed here.
                Command::Keyboard(keyboard) => self.renderer.set_keyboard(Some(keyboard)),
            }
        }
    }

    fn process(&mut self, out: &mut [KiraFrame], dt: f64, info: &Info) {
        if dt > 0.0 {
            self.device_rate.store((1.0 / dt).round() as u32, Ordering::Relaxed);
        }
        // Kira advances clocks before it renders a chunk, so the clock reads the chunk's end.
        let end = info.clock_info(self.clock).map_or(0, |clock| frames_of(clock.time));
        let now = end.saturating_sub(out.len() as u64);
        let mut done = 0;
        while done < out.len() {
            let at = now + done as u64;
            let mut frames = (out.len() - done).min(MAX_BLOCK);
            if let Some(transport) = self.scheduled {
                if transport.at <= at {
                    self.renderer.seek(transport.position);
                    self.playing = transport.playing;
                    self.scheduled = None;
                    let arrangement = self.renderer.arrangement().clone();
                    self.renderer.set_arrangement(arrangement);
                } else {
                    frames = frames.min((transport.at - at) as usize);
                }
            }
            let chunk = &mut out[done..done + frames];
            if self.playing {
                let scratch = &mut self.scratch[..frames];
                self.part.render(&mut self.renderer, scratch);
                if !self.enabled {
                    scratch.fill([0.0; 2]);
                }
                if let Part::Track(index) = self.part {
                    self.meters.raise(index, scratch);
                }
                for (out, frame) in chunk.iter_mut().zip(scratch.iter()) {
                    *out = KiraFrame { left: frame[0], right: frame[1] };
                }
            } else if let Part::Track(index) = self.part {
                // Stopped: only keys played on a controller sound, on the monitored track.
                let scratch = &mut self.scratch[..frames];
                self.renderer.monitor(index, scratch);
                self.meters.raise(index, scratch);
                for (out, frame) in chunk.iter_mut().zip(scratch.iter()) {
                    *out = KiraFrame { left: frame[0], right: frame[1] };
                }
            } else {
                chunk.fill(KiraFrame::ZERO);
            }
            done += frames;
        }
    }

    fn finished(&self) -> bool {
        // The engine dropped its end of the queue: this track is gone.
        self.commands.is_abandoned()
    }
}

/// What the master effect is told.
enum MasterCommand {
    Arrangement(Arc<Arrangement>),
    /// The master chain for the arrangement that follows: adopt it, send the old one back.
    Rack(Box<Rack>),
}

/// The master chain, as a kira effect on the mix sub-track.
struct MasterEffect {
    arrangement: Arc<Arrangement>,
    rack: Box<Rack>,
    commands: rtrb::Consumer<MasterCommand>,
    retired_racks: rtrb::Producer<Box<Rack>>,
    /// Frames the effect has processed: the chain's timeline (its knobs are not automated, so
    /// any steady count serves).
    processed: u64,
    scratch: Vec<Frame>,
}

impl KiraEffect for MasterEffect {
    fn on_start_processing(&mut self) {
        while let Ok(command) = self.commands.pop() {
            match command {
                // The engine holds every arrangement it sent: nothing is freed here.
                MasterCommand::Arrangement(arrangement) => self.arrangement = arrangement,
                MasterCommand::Rack(mut rack) => {
                    self.rack.adopt(&mut rack);
                    let _ = self.retired_racks.push(rack);
                }
            }
        }
    }

    fn process(&mut self, input: &mut [KiraFrame], _dt: f64, _info: &Info) {
        if self.arrangement.master.is_empty() {
            self.processed += input.len() as u64;
            return;
        }
        for chunk in input.chunks_mut(MAX_BLOCK) {
            let scratch = &mut self.scratch[..chunk.len()];
            for (frame, kira) in scratch.iter_mut().zip(chunk.iter()) {
                *frame = [kira.left, kira.right];
            }
            self.rack.process(&self.arrangement.master, &[], None, self.processed, scratch);
            for (kira, frame) in chunk.iter_mut().zip(scratch.iter()) {
                *kira = KiraFrame { left: frame[0], right: frame[1] };
            }
            self.processed += chunk.len() as u64;
        }
    }
}

/// The engine's end of the master effect.
struct MasterLink {
    mix: TrackHandle,
    commands: rtrb::Producer<MasterCommand>,
    retired_racks: rtrb::Consumer<Box<Rack>>,
}

struct TrackSoundData(TrackSound);

impl SoundData for TrackSoundData {
    type Error = Infallible;
    type Handle = ();

    fn into_sound(self) -> Result<(Box<dyn Sound>, ()), Infallible> {
        Ok((Box::new(self.0), ()))
    }
}

/// Why the engine could not start or change.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The audio backend (the sound card) failed.
    #[error("audio backend: {0}")]
    Backend(String),
    /// Kira's fixed capacity for tracks, sounds or clocks is used up.
    #[error("the engine is full: {0}")]
    Full(String),
    /// A track's (or, as `usize::MAX`, the metronome's) command queue is full: commands are
    /// being sent faster than the audio runs.
    #[error("track {0} is not taking commands")]
    Busy(usize),
    /// A start was asked for a frame the engine can no longer promise to every track.
    #[error("frame {at} is too soon: the earliest start is frame {earliest}")]
    TooSoon {
        /// The frame asked for.
        at: u64,
        /// The earliest frame every track can start on.
        earliest: u64,
    },
}

struct LiveTrack {
    _sub_track: Option<TrackHandle>,
    commands: rtrb::Producer<Command>,
    /// Racks the sound replaced, dropped here.
    retired_racks: rtrb::Consumer<Box<Rack>>,
}

/// The live engine: one kira sub-track and track sound per DAW track, and a metronome.
pub struct Engine<B: Backend> {
    manager: AudioManager<B>,
    clock: ClockHandle,
    metronome: LiveTrack,
    master: MasterLink,
    tracks: Vec<LiveTrack>,
    arrangement: Arc<Arrangement>,
    /// Arrangements a track sound may still hold; freed here, never on the audio thread.
    retired: Vec<Arc<Arrangement>>,
    sample_rate: u32,
    meters: Meters,
    device_rate: Arc<AtomicU32>,
    /// Every keyboard sent to the track sounds (the last is current), kept so that the audio
    /// thread never frees one.
    keyboards: Vec<Arc<Keyboard>>,
}

impl<B: Backend> Engine<B> {
    /// Starts kira on `settings` (its backend decides the sample rate) with `arrangement`.
    pub fn new(backend_settings: B::Settings, arrangement: Arc<Arrangement>) -> Result<Self, EngineError>
    where
        B::Error: std::fmt::Display,
    {
        let settings = AudioManagerSettings {
            backend_settings,
            internal_buffer_size: KIRA_BUFFER,
            // A sub-track per DAW track, as many as a project may hold (kira's default is 128).
            capacities: kira::Capacities {
                sub_track_capacity: ensemble_protocol::validate::MAX_TRACKS,
                ..Default::default()
            },
            main_track_builder: Default::default(),
        };
        let mut manager = AudioManager::<B>::new(settings).map_err(|e| EngineError::Backend(e.to_string()))?;
        let sample_rate = arrangement.sample_rate;
        let mut clock = manager
            .add_clock(ClockSpeed::TicksPerSecond(f64::from(sample_rate)))
            .map_err(|e| EngineError::Full(e.to_string()))?;
        clock.start();
        let meters = Meters::new(ensemble_protocol::validate::MAX_TRACKS);
        let device_rate = Arc::new(AtomicU32::new(0));
        let (metronome, sound) = Self::sound(Part::Metronome, false, &clock, &arrangement, &meters, &device_rate);
        manager.main_track().play(TrackSoundData(sound)).map_err(|e| EngineError::Full(e.to_string()))?;
        let (commands, consumer) = rtrb::RingBuffer::new(QUEUE);
        let (retired_racks, racks_back) = rtrb::RingBuffer::new(QUEUE);
        let effect = MasterEffect {
            arrangement: arrangement.clone(),
            rack: Box::new(Rack::new(&arrangement.master, sample_rate)),
            commands: consumer,
            retired_racks,
            processed: 0,
            scratch: vec![[0.0; 2]; MAX_BLOCK],
        };
        let mut mix = TrackBuilder::new().sub_track_capacity(ensemble_protocol::validate::MAX_TRACKS);
        mix.add_built_effect(Box::new(effect));
        let mix = manager.add_sub_track(mix).map_err(|e| EngineError::Full(e.to_string()))?;
        let master = MasterLink { mix, commands, retired_racks: racks_back };
        let mut engine = Engine {
            manager,
            clock,
            metronome,
            master,
            tracks: Vec::new(),
            arrangement,
            retired: Vec::new(),
            sample_rate,
            meters,
            device_rate,
            keyboards: Vec::new(),
        };
        for index in 0..engine.arrangement.tracks.len() {
            engine.add_track(index)?;
        }
        Ok(engine)
    }

    /// A sound for `part` and the queue that commands it.
    fn sound(
        part: Part,
        enabled: bool,
        clock: &ClockHandle,
        arrangement: &Arc<Arrangement>,
        meters: &Meters,
        device_rate: &Arc<AtomicU32>,
    ) -> (LiveTrack, TrackSound) {
        let (commands, consumer) = rtrb::RingBuffer::new(QUEUE);
        let (retired_racks, racks_back) = rtrb::RingBuffer::new(QUEUE);
        let renderer = match part {
            Part::Track(index) => Renderer::for_track(arrangement.clone(), index),
            Part::Metronome => Renderer::without_chains(arrangement.clone()),
        };
        let sound = TrackSound {
            part,
            enabled,
            renderer,
            playing: false,
            scheduled: None,
            clock: clock.id(),
            commands: consumer,
            retired_racks,
            scratch: vec![[0.0; 2]; MAX_BLOCK],
            meters: meters.clone(),
            device_rate: device_rate.clone(),
        };
        (LiveTrack { _sub_track: None, commands, retired_racks: racks_back }, sound)
    }

    fn add_track(&mut self, index: usize) -> Result<(), EngineError> {
        let mut sub_track =
            self.master.mix.add_sub_track(TrackBuilder::new()).map_err(|e| EngineError::Full(e.to_string()))?;
        let (mut track, mut sound) =
            Self::sound(Part::Track(index), true, &self.clock, &self.arrangement, &self.meters, &self.device_rate);
        sound.renderer.set_keyboard(self.keyboards.last().cloned());
        sub_track.play(TrackSoundData(sound)).map_err(|e| EngineError::Full(e.to_string()))?;
        track._sub_track = Some(sub_track);
        self.tracks.push(track);
        Ok(())
    }

    /// The engine's sample rate: its arrangement's, which its clock counts in.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The rate the device renders at, once it has rendered; when it differs from
    /// [`Engine::sample_rate`] the engine should be made again with an arrangement at it.
    pub fn device_rate(&self) -> Option<u32> {
        Some(self.device_rate.load(Ordering::Relaxed)).filter(|rate| *rate > 0)
    }

    /// The audio clock: frames rendered since the engine started, as of the start of the
    /// latest device callback.
    pub fn now(&self) -> u64 {
        frames_of(self.clock.time())
    }

    /// Sends every sound (the metronome first, then the tracks) its own copy of a command.
    fn broadcast(&mut self, command: impl Fn() -> Command) -> Result<(), EngineError> {
        self.metronome.commands.push(command()).map_err(|_| EngineError::Busy(usize::MAX))?;
        for (index, track) in self.tracks.iter_mut().enumerate() {
            track.commands.push(command()).map_err(|_| EngineError::Busy(index))?;
        }
        Ok(())
    }

    fn schedule(&mut self, position: u64, playing: bool) -> Result<u64, EngineError> {
        let at = self.now() + LEAD_FRAMES;
        self.broadcast(|| Command::Transport(Transport { at, position, playing }))?;
        Ok(at)
    }

    /// Plays the keys held on `keyboard` through the monitored track's instrument
    /// ([`crate::arrangement::TrackPlan::monitor`]), whether the transport plays or not.
    pub fn set_keyboard(&mut self, keyboard: Arc<Keyboard>) -> Result<(), EngineError> {
        self.keyboards.push(keyboard.clone());
        for (index, track) in self.tracks.iter_mut().enumerate() {
            track.commands.push(Command::Keyboard(keyboard.clone())).map_err(|_| EngineError::Busy(index))?;
        }
        Ok(())
    }

    /// Starts playback from timeline frame `position`; returns the global frame it starts at.
    pub fn play_from(&mut self, position: u64) -> Result<u64, EngineError> {
        self.schedule(position, true)
    }

    /// Starts playback from timeline frame `position` exactly at global frame `at`: a start
    /// agreed with other machines (a LAN jam). `at` must leave every track time to hear of it:
    /// at least the lead of [`Engine::play_from`] after [`Engine::now`].
    pub fn play_at(&mut self, at: u64, position: u64) -> Result<(), EngineError> {
        let earliest = self.now() + LEAD_FRAMES;
        if at < earliest {
            return Err(EngineError::TooSoon { at, earliest });
        }
        self.broadcast(|| Command::Transport(Transport { at, position, playing: true }))
    }

    /// Stops playback (the playhead stays where it is asked to: `position`).
    pub fn stop_at(&mut self, position: u64) -> Result<u64, EngineError> {
        self.schedule(position, false)
    }

    /// Replaces what plays (after an edit); tracks added at the end get their own sounds.
    pub fn set_arrangement(&mut self, mut arrangement: Arc<Arrangement>) -> Result<(), EngineError> {
        let rate = arrangement.sample_rate;
        // Effects that left a chain ramp out over one more arrangement.
        for (index, old) in self.arrangement.tracks.iter().enumerate() {
            let new = &arrangement.tracks.get(index).map(|new| &new.effects);
            if new.is_some_and(|new| {
                old.effects.iter().any(|plan| !plan.leaving && !new.iter().any(|kept| kept.id == plan.id))
            }) {
                let tracks = &mut Arc::make_mut(&mut arrangement).tracks;
                carry_leaving(&old.effects, &mut tracks[index].effects);
            }
        }
        // Effects that left the master chain ramp out too.
        let old = &self.arrangement.master;
        if old.iter().any(|plan| !plan.leaving && !arrangement.master.iter().any(|kept| kept.id == plan.id)) {
            carry_leaving(old, &mut Arc::make_mut(&mut arrangement).master);
        }
        while self.master.retired_racks.pop().is_ok() {}
        if !same_effects(&self.arrangement.master, &arrangement.master) {
            let rack = Box::new(Rack::new(&arrangement.master, rate));
            self.master.commands.push(MasterCommand::Rack(rack)).map_err(|_| EngineError::Busy(usize::MAX))?;
        }
        // A chain that gained or lost an effect gets a new rack, made here.
        for (index, track) in self.tracks.iter_mut().enumerate() {
            while track.retired_racks.pop().is_ok() {}
            let (old, new) = (self.arrangement.tracks.get(index), arrangement.tracks.get(index));
            if let (Some(old), Some(new)) = (old, new)
                && !same_effects(&old.effects, &new.effects)
            {
                let rack = Box::new(Rack::new(&new.effects, rate));
                track.commands.push(Command::Rack(rack)).map_err(|_| EngineError::Busy(index))?;
            }
        }
        let previous = std::mem::replace(&mut self.arrangement, arrangement.clone());
        self.retired.push(previous);
        // Keep only what a sound may still hold: ours plus theirs is two references or more.
        self.retired.retain(|old| Arc::strong_count(old) > 1);
        self.broadcast(|| Command::Arrangement(arrangement.clone()))?;
        let to_master = MasterCommand::Arrangement(arrangement.clone());
        self.master.commands.push(to_master).map_err(|_| EngineError::Busy(usize::MAX))?;
        for index in self.tracks.len()..arrangement.tracks.len() {
            self.add_track(index)?;
        }
        Ok(())
    }

    /// Turns the metronome on or off.
    pub fn set_metronome(&mut self, on: bool) -> Result<(), EngineError> {
        self.metronome.commands.push(Command::Enabled(on)).map_err(|_| EngineError::Busy(usize::MAX))
    }

    /// Whether the arrangement's loop range repeats (it does until told otherwise).
    pub fn set_looping(&mut self, looping: bool) -> Result<(), EngineError> {
        self.broadcast(|| Command::Looping(looping))
    }

    /// The tracks' peak levels, by index in the arrangement.
    pub fn meters(&self) -> &Meters {
        &self.meters
    }

    /// The backend, to pull blocks from an [`OfflineBackend`].
    pub fn backend_mut(&mut self) -> &mut B {
        self.manager.backend_mut()
    }
}

/// A kira backend with no sound card: the caller pulls blocks as fast as it likes. Exports,
/// tests and headless machines use it.
pub struct OfflineBackend {
    sample_rate: u32,
    renderer: Option<KiraRenderer>,
    interleaved: Vec<f32>,
}

impl Backend for OfflineBackend {
    type Settings = u32;
    type Error = Infallible;

    fn setup(sample_rate: u32, _internal_buffer_size: usize) -> Result<(Self, u32), Infallible> {
        Ok((OfflineBackend { sample_rate, renderer: None, interleaved: Vec::new() }, sample_rate))
    }

    fn start(&mut self, renderer: KiraRenderer) -> Result<(), Infallible> {
        self.renderer = Some(renderer);
        Ok(())
    }
}

impl OfflineBackend {
    /// The sample rate it renders at.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Renders the next `out.len()` frames of the whole kira graph into `out`. The first call
    /// with a given length may size an internal buffer; later ones allocate nothing.
    pub fn render(&mut self, out: &mut [Frame]) {
        if self.interleaved.len() < out.len() * 2 {
            self.interleaved.resize(out.len() * 2, 0.0);
        }
        let interleaved = &mut self.interleaved[..out.len() * 2];
        match &mut self.renderer {
            Some(renderer) => {
                renderer.on_start_processing();
                renderer.process(interleaved, 2);
                for (frame, pair) in out.iter_mut().zip(interleaved.chunks_exact(2)) {
                    *frame = [pair[0], pair[1]];
                }
            }
            None => out.fill([0.0; 2]),
        }
    }
}
