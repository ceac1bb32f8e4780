//! Playback: the model heard through the audio engine of `ensemble-audio`.
//!
//! [`PlaybackPlugin`] keeps an [`Arrangement`] (the project resolved into frames, with each
//! asset's audio decoded at the project's rate) in step with the model, and hands it to the
//! engine whenever a track, clip or the project changes, so a fader moved while playing is
//! heard at once. [`Transport`] says whether it plays and where; the playhead is read back from
//! the engine's sample clock, so what is drawn is what is heard.
//!
//! The engine runs on the sound card when there is one. Without one (a headless machine, CI)
//! it runs on the offline backend, which this plugin pulls at the wall clock's pace, so the
//! transport, the playhead and the output level behave the same and tests can listen.
//!
//! A [`StartAt`] starts playback at a given time on the [`Clock`] rather than as soon as
//! possible: a LAN jam's shared start. The engine's frames are placed on the clock by a
//! [`SampleClock`] (exact for the offline backend, which is pulled by the clock; learnt from
//! the frame counter for a sound card), and a start that is already late when it arrives plays
//! from where it would be by now, so it is still in phase.
//!
//! [`TrackLevels`] carries the engine's per-track meters to the window, with a meter's fall
//! time applied here so every view of a level agrees. An [`ExportMsg`] renders the mix of the
//! model as it is now to a WAV file on a thread of its own, from the audio already decoded for
//! playback; [`ExportDone`] says how it went.
//!
//! [`Keys`] are the keys held on a MIDI controller ([`crate::midi_in`] presses them): every
//! engine this plugin opens plays them through the instrument of the topmost armed track, as
//! they are played, with the transport running or not.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;

use bevy::prelude::*;
use ensemble_audio::Pcm;
use ensemble_audio::arrangement::Arrangement;
use ensemble_audio::engine::{Engine, EngineError, Meters, OfflineBackend};
use ensemble_audio::keyboard::Keyboard;
use ensemble_audio::render::Frame;
use ensemble_audio::wav::WavFormat;
use ensemble_protocol::{AssetId, Frames, Ticks, Timebase, TrackId};

use crate::clock::{Clock, SampleClock};
use crate::media::Media;
use crate::model::{AssetData, ClipData, EffectData, LaneData, NoteClipData, ProjectData, TrackData};
use crate::replica::Replica;

/// Hears the model.
pub struct PlaybackPlugin;

impl Plugin for PlaybackPlugin {
    fn build(&self, app: &mut App) {
        let (decoded, arrivals) = mpsc::channel();
        let (exported, exports) = mpsc::channel();
        app.init_resource::<Transport>()
            .init_resource::<SoundCard>()
            .init_resource::<OfflineRate>()
            .add_message::<PlaybackNote>()
            .init_resource::<Clock>()
            .init_resource::<LastStart>()
            .add_message::<StartAt>()
            .init_resource::<OutputLevel>()
            .init_resource::<TrackLevels>()
            .init_resource::<Keys>()
            .add_message::<ExportMsg>()
            .add_message::<ExportDone>()
            .insert_non_send(Playback {
                engine: None,
                decoded: HashMap::new(),
                decoding: HashSet::new(),
                unplayable: HashSet::new(),
                sender: decoded,
                arrivals,
                exported,
                exports,
                dirty: true,
                rate: None,
                arrangement: None,
                heard: None,
                started: None,
                quiet_from: None,
                sample_clock: None,
                rendered: 0,
                playing_frame: None,
                scratch: Vec::new(),
            })
            .configure_sets(PostUpdate, (PlaybackSystems::Transport, PlaybackSystems::Engine).chain())
            .add_systems(
                PostUpdate,
                (decode_audio, rearrange, follow_transport, pull_offline, read_meters, export, finish_exports)
                    .chain()
                    .in_set(PlaybackSystems::Engine),
            );
    }
}

/// When playback runs, in `PostUpdate`: whatever decides the [`Transport`] for this frame (a
/// jam) goes in `Transport`; the engine follows it in `Engine`.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlaybackSystems {
    /// Systems that set the transport (after the window's gestures).
    Transport,
    /// The engine follows the model and the transport.
    Engine,
}

/// Whether the project plays, where, and how.
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    /// Playing or stopped.
    pub playing: bool,
    /// The playhead.
    pub position: Ticks,
    /// Whether playback repeats the project's loop range (when it has one).
    pub looping: bool,
    /// Whether the metronome clicks while playing.
    pub metronome: bool,
}

/// The keys held on a controller, heard through the monitored track's instrument.
#[derive(Resource, Debug, Default, Clone)]
pub struct Keys(pub Arc<Keyboard>);

/// Whether playback may use the sound card (it does by default, when there is one and the
/// window is built in; a card at another rate than the project's gets the project resampled
/// to its rate); `false` keeps it on the offline backend, as a headless jam member in a test
/// lab wants.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoundCard(pub bool);

impl Default for SoundCard {
    fn default() -> Self {
        SoundCard(true)
    }
}

/// The rate the offline output runs at when there is no sound card (default: the project's),
/// so it can stand in for a card that runs at another rate.
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OfflineRate(pub Option<u32>);

/// Something about playback the user should know (the sound card plays at another rate than
/// the project's, and the project is resampled to it).
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct PlaybackNote(pub String);

/// Start playing from `from` when the [`Clock`] reads `at` (a jam's shared start). The
/// [`Transport`] follows: it plays, from `from`.
#[derive(Message, Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartAt {
    /// Clock time of the first sample, in nanoseconds.
    pub at: u64,
    /// The timeline position it plays.
    pub from: Ticks,
}

/// Where the latest [`StartAt`] landed: the engine frame it starts on, that frame's time on
/// the [`Clock`], and the position it plays from (later than asked when it came late).
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LastStart(pub Option<Start>);

/// One scheduled start; see [`LastStart`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// The [`StartAt`] it answers.
    pub asked: StartAt,
    /// The engine frame of its first sample.
    pub frame: u64,
    /// When that frame plays, on the [`Clock`].
    pub time: u64,
    /// The timeline frame it plays first.
    pub position: u64,
}

/// The peak level of the engine's output over the last frame, per channel (0 to 1+), for the
/// meters; measured where the engine runs offline.
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq)]
pub struct OutputLevel(pub [f32; 2]);

/// Each track's meter: its peak level (linear, per channel) falling at [`METER_FALL_DB`] per
/// second, and the loudest it has been, for a clip indicator.
#[derive(Resource, Debug, Default, Clone, PartialEq)]
pub struct TrackLevels {
    /// Current level and the highest peak since playback started, by track.
    pub tracks: HashMap<TrackId, TrackLevel>,
    /// Whether the transport played when the meters were last read.
    playing: bool,
}

/// One track's meter.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct TrackLevel {
    /// Left and right, linear (1.0 is full scale).
    pub level: [f32; 2],
    /// The highest level since playback started.
    pub held: f32,
}

/// How fast a meter falls once the sound stops, in dB per second.
pub const METER_FALL_DB: f32 = 24.0;

/// Render the mix as it is now to a WAV file.
#[derive(Message, Clone, Debug, PartialEq)]
pub struct ExportMsg {
    /// The file to write (written beside it first and renamed into place).
    pub path: PathBuf,
    /// The sample format.
    pub format: WavFormat,
}

/// How an export ended.
#[derive(Message, Clone, Debug, PartialEq)]
pub struct ExportDone {
    /// The file asked for.
    pub path: PathBuf,
    /// Its length in seconds, or why nothing was written.
    pub result: Result<f64, String>,
}

/// Runs `$call` on the engine an [`Output`] holds, whichever backend it runs on.
macro_rules! on_engine {
    ($output:expr, $engine:ident => $call:expr) => {
        match $output {
            Output::Offline($engine) => $call,
            #[cfg(feature = "window")]
            Output::Device($engine) => $call,
        }
    };
}

/// Where the audio goes.
pub enum Output {
    /// Nowhere audible: the offline backend, pulled at the wall clock's pace.
    Offline(Box<Engine<OfflineBackend>>),
    /// The sound card.
    #[cfg(feature = "window")]
    Device(Box<Engine<kira::DefaultBackend>>),
}

impl Output {
    fn now(&self) -> u64 {
        on_engine!(self, engine => engine.now())
    }

    fn sample_rate(&self) -> u32 {
        on_engine!(self, engine => engine.sample_rate())
    }

    fn device_rate(&self) -> Option<u32> {
        on_engine!(self, engine => engine.device_rate())
    }

    fn is_offline(&self) -> bool {
        matches!(self, Output::Offline(_))
    }

    fn play_at(&mut self, at: u64, position: u64) -> Result<(), EngineError> {
        on_engine!(self, engine => engine.play_at(at, position))
    }

    fn play_from(&mut self, position: u64) -> Result<u64, EngineError> {
        on_engine!(self, engine => engine.play_from(position))
    }

    fn stop_at(&mut self, position: u64) -> Result<u64, EngineError> {
        on_engine!(self, engine => engine.stop_at(position))
    }

    fn set_arrangement(&mut self, arrangement: Arc<Arrangement>) -> Result<(), EngineError> {
        on_engine!(self, engine => engine.set_arrangement(arrangement))
    }

    fn set_looping(&mut self, looping: bool) -> Result<(), EngineError> {
        on_engine!(self, engine => engine.set_looping(looping))
    }

    fn set_metronome(&mut self, on: bool) -> Result<(), EngineError> {
        on_engine!(self, engine => engine.set_metronome(on))
    }

    fn meters(&self) -> &Meters {
        on_engine!(self, engine => engine.meters())
    }

    fn set_keyboard(&mut self, keyboard: Arc<Keyboard>) -> Result<(), EngineError> {
        on_engine!(self, engine => engine.set_keyboard(keyboard))
    }

    /// The sound card, at whatever rate it runs, else the offline backend (at `offline_rate`,
    /// or the arrangement's).
    #[cfg_attr(not(feature = "window"), allow(unused_variables))]
    fn open(arrangement: Arc<Arrangement>, sound_card: bool, offline_rate: Option<u32>) -> Result<Output, EngineError> {
        #[cfg(feature = "window")]
        if sound_card {
            match Engine::<kira::DefaultBackend>::new(Default::default(), arrangement.clone()) {
                Ok(engine) => return Ok(Output::Device(Box::new(engine))),
                Err(error) => info!("no sound card ({error}): playing silently"),
            }
        }
        let rate = offline_rate.unwrap_or(arrangement.sample_rate);
        Engine::<OfflineBackend>::new(rate, arrangement).map(|engine| Output::Offline(Box::new(engine)))
    }
}

/// The engine and what feeds it (a non-send resource: a sound card stream stays on its thread).
pub struct Playback {
    engine: Option<Output>,
    decoded: HashMap<AssetId, Pcm>,
    decoding: HashSet<AssetId>,
    /// Assets whose audio did not decode: left out of playback and exports.
    unplayable: HashSet<AssetId>,
    sender: mpsc::Sender<(AssetId, Result<Pcm, String>)>,
    arrivals: mpsc::Receiver<(AssetId, Result<Pcm, String>)>,
    exported: mpsc::Sender<ExportDone>,
    exports: mpsc::Receiver<ExportDone>,
    dirty: bool,
    /// The output's rate once it is open: what audio is decoded at and arranged in.
    rate: Option<u32>,
    /// What the engine plays (its track order is the meters' order).
    arrangement: Option<Arc<Arrangement>>,
    /// The transport as the engine last heard it (nothing yet: the engine's own defaults).
    heard: Option<Transport>,
    /// The engine frame playback started at, and the timeline frame it started from.
    started: Option<(u64, u64)>,
    /// The engine frame from which it is silent (stopped), if it is.
    quiet_from: Option<u64>,
    /// Where the engine's frames fall on the clock (none while the offline engine rests).
    sample_clock: Option<SampleClock>,
    /// Frames the offline engine has rendered (its frame numbering).
    rendered: u64,
    /// The timeline frame sounding now, once a start has begun (see [`Playback::playing_frame`]).
    playing_frame: Option<u64>,
    scratch: Vec<Frame>,
}

impl Playback {
    /// The engine, once the project has loaded.
    pub fn output(&mut self) -> Option<&mut Output> {
        self.engine.as_mut()
    }

    /// What the engine plays now, once the project has loaded.
    pub fn arrangement(&self) -> Option<&Arc<Arrangement>> {
        self.arrangement.as_ref()
    }

    /// The timeline frame the engine plays now, and the rate it counts in (the output's, which
    /// may not be the project's), from the first frame of a start until the stop; `None`
    /// while stopped or before a scheduled start sounds. Exact where [`Transport::position`]
    /// is rounded to ticks: recording places its takes by it.
    pub fn playing_frame(&self) -> Option<(u64, u32)> {
        let rate = self.engine.as_ref()?.sample_rate();
        self.playing_frame.map(|frame| (frame, rate))
    }

    /// Drops the engine and the decoded audio so both are made again at `rate`; the transport
    /// is told to the new engine as if it were new.
    fn switch_rate(&mut self, rate: u32) {
        self.engine = None;
        self.rate = Some(rate);
        self.decoded.clear();
        self.decoding.clear();
        self.dirty = true;
        self.heard = None;
        self.started = None;
        self.quiet_from = None;
        self.sample_clock = None;
        self.rendered = 0;
        self.playing_frame = None;
    }
}

/// Runs `work` away from the frame: on a thread of its own natively; in the browser, whose app
/// has one thread, as a task of the page's event loop between frames (so a long decode is one
/// long frame there: see ARCHITECTURE.md on the browser's audio).
fn in_background(work: impl FnOnce() + Send + 'static) {
    #[cfg(not(target_arch = "wasm32"))]
    std::thread::spawn(work);
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_futures::spawn_local(async move { work() });
}

/// Decodes each cached asset once, at the project's rate, in the background.
fn decode_audio(
    mut playback: NonSendMut<Playback>,
    media: Res<Media>,
    assets: Query<&crate::model::RecordKey, With<AssetData>>,
    project: Query<&ProjectData>,
) {
    let Ok(project) = project.single() else { return };
    let rate = playback.rate.unwrap_or(project.sample_rate);
    while let Ok((asset, pcm)) = playback.arrivals.try_recv() {
        match pcm {
            // Decoded before the output's rate was known: decoded again at it.
            Ok(pcm) if pcm.sample_rate != rate => {
                playback.decoding.remove(&asset);
            }
            Ok(pcm) => {
                playback.decoded.insert(asset, pcm);
                playback.dirty = true;
            }
            Err(error) => {
                warn!("asset {asset} does not play: {error}");
                playback.unplayable.insert(asset);
            }
        }
    }
    for key in &assets {
        let asset = AssetId(key.0.0);
        if playback.decoding.contains(&asset) {
            continue;
        }
        let Some(file) = media.audio(asset).cloned() else { continue };
        playback.decoding.insert(asset);
        let sender = playback.sender.clone();
        in_background(move || {
            let pcm = file.decode(Some(rate)).map_err(|error| error.to_string());
            let _ = sender.send((asset, pcm));
        });
    }
}

/// Records gone from the model since the last frame, of every kind that is heard.
#[derive(bevy::ecs::system::SystemParam)]
struct Removed<'w, 's> {
    clips: RemovedComponents<'w, 's, ClipData>,
    tracks: RemovedComponents<'w, 's, TrackData>,
    lanes: RemovedComponents<'w, 's, LaneData>,
    effects: RemovedComponents<'w, 's, EffectData>,
    note_clips: RemovedComponents<'w, 's, NoteClipData>,
}

impl Removed<'_, '_> {
    /// Whether any went (reading them all).
    fn any(&mut self) -> bool {
        let counts = [
            self.clips.read().count(),
            self.tracks.read().count(),
            self.lanes.read().count(),
            self.effects.read().count(),
            self.note_clips.read().count(),
        ];
        counts.iter().any(|count| *count > 0)
    }
}

/// Hands the engine a new arrangement after any change to what is heard: a track, clip, lane,
/// effect or note clip changed, came or went, or the project did.
#[allow(clippy::type_complexity)]
fn rearrange(
    mut playback: NonSendMut<Playback>,
    replica: Option<Res<Replica>>,
    changed: Query<
        (),
        Or<(
            Changed<TrackData>,
            Changed<ClipData>,
            Changed<LaneData>,
            Changed<ProjectData>,
            Changed<EffectData>,
            Changed<NoteClipData>,
        )>,
    >,
    mut removed: Removed,
    (sound_card, offline_rate, keys): (Res<SoundCard>, Res<OfflineRate>, Res<Keys>),
    mut notes: MessageWriter<PlaybackNote>,
) {
    let Some(replica) = replica else { return };
    let project_rate = replica.view().project().sample_rate;
    // A device at another rate than the engine counts in: make the engine again at the
    // device's rate, and decode the audio again at it.
    let device = playback
        .engine
        .as_ref()
        .and_then(|output| output.device_rate().filter(|device| *device != output.sample_rate()));
    if let Some(device) = device {
        playback.switch_rate(device);
        let (card, project) = (thousands(device), thousands(project_rate));
        notes.write(PlaybackNote(format!(
            "The sound card plays at {card} Hz: this {project} Hz project is resampled to it as it plays"
        )));
    }
    let removed = removed.any();
    if !(playback.dirty || removed || !changed.is_empty()) {
        return;
    }
    playback.dirty = false;
    let rate = playback.rate.unwrap_or(project_rate);
    let arrangement = Arc::new(Arrangement::from_project_at(replica.view(), &playback.decoded, rate));
    playback.arrangement = Some(arrangement.clone());
    let result = match playback.engine.as_mut() {
        Some(output) => output.set_arrangement(arrangement),
        None => Output::open(arrangement, sound_card.0, offline_rate.0).and_then(|mut output| {
            output.set_keyboard(keys.0.clone())?;
            playback.engine = Some(output);
            Ok(())
        }),
    };
    if let Err(error) = result {
        warn!("the audio engine refused the arrangement: {error}");
    }
}

/// `48000` as `48,000`.
fn thousands(value: u32) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Starts and stops the engine as the transport says, and moves the playhead with its clock.
fn follow_transport(
    mut playback: NonSendMut<Playback>,
    mut transport: ResMut<Transport>,
    mut starts: MessageReader<StartAt>,
    mut last_start: ResMut<LastStart>,
    clock: Res<Clock>,
    project: Query<&ProjectData>,
) {
    let Ok(project) = project.single() else { return };
    let playback = &mut *playback;
    let Some(engine) = playback.engine.as_mut() else { return };
    // The engine's frames: the output's rate, which may not be the project's.
    let timebase = Timebase::new(project.tempo, engine.sample_rate());
    let looped = |looping: bool| {
        project
            .loop_range
            .filter(|_| looping)
            .map(|range| (timebase.frames(range.start).0, timebase.frames(range.end).0))
    };
    if let Some(asked) = starts.read().last().copied() {
        let sample_clock = match (&mut playback.sample_clock, engine.is_offline()) {
            (Some(sample_clock), _) => *sample_clock,
            // The offline engine rests: it wakes now, its next frame playing now.
            (None, true) => *playback.sample_clock.insert(SampleClock::anchored(
                engine.sample_rate(),
                playback.rendered,
                clock.now(),
            )),
            (None, false) => return,
        };
        let frame = sample_clock.frame_at_signed(asked.at);
        let from = timebase.frames(Ticks(asked.from.0.max(0))).0;
        let started = match engine.play_at(frame.max(0) as u64, from) {
            Ok(()) => Ok((frame as u64, from)),
            // Too late for that frame: start on the first one possible, from where the music is by then.
            Err(EngineError::TooSoon { earliest, .. }) => {
                let late = (earliest as i64 - frame).max(0) as u64;
                let position = playhead(from, late, looped(transport.looping));
                engine.play_at(earliest, position).map(|()| (earliest, position))
            }
            Err(error) => Err(error),
        };
        match started {
            Ok((frame, position)) => {
                playback.started = Some((frame, position));
                playback.quiet_from = None;
                last_start.0 = Some(Start { asked, frame, time: sample_clock.time_of(frame), position });
                transport.playing = true;
                transport.position = asked.from;
                playback.heard = Some(*transport);
            }
            Err(error) => warn!("the audio engine is busy: {error}"),
        }
    }
    let wanted = *transport;
    let heard =
        playback.heard.unwrap_or(Transport { looping: !wanted.looping, metronome: !wanted.metronome, ..wanted });
    let mut result = Ok(());
    if wanted.looping != heard.looping {
        result = result.and(engine.set_looping(wanted.looping));
    }
    if wanted.metronome != heard.metronome {
        result = result.and(engine.set_metronome(wanted.metronome));
    }
    if (wanted.playing, wanted.position) != (heard.playing, heard.position) || playback.heard.is_none() {
        let from = timebase.frames(Ticks(wanted.position.0.max(0))).0;
        let scheduled = if wanted.playing { engine.play_from(from) } else { engine.stop_at(from) };
        result = result.and(scheduled.map(|at| {
            playback.started = wanted.playing.then_some((at, from));
            playback.quiet_from = (!wanted.playing).then_some(at);
        }));
    }
    if let Err(error) = result {
        warn!("the audio engine is busy: {error}");
    }
    playback.heard = Some(wanted);
    playback.playing_frame = None;
    if let Some((at, from)) = playback.started {
        let played = engine.now().saturating_sub(at);
        let frame = playhead(from, played, looped(wanted.looping));
        playback.playing_frame = (engine.now() >= at).then_some(frame);
        transport.position = timebase.ticks(Frames(frame));
        if let Some(heard) = playback.heard.as_mut() {
            heard.position = transport.position;
        }
    }
}

/// The timeline frame `played` frames after starting at `from`, wrapping as the renderer does
/// at the loop's end (a start past the loop plays straight on).
pub fn playhead(from: u64, played: u64, looped: Option<(u64, u64)>) -> u64 {
    let straight = from + played;
    match looped {
        Some((start, end)) if start < end && from < end && straight >= end => start + (straight - end) % (end - start),
        _ => straight,
    }
}

/// Without a sound card, renders what the card would have played by now on the [`Clock`], so
/// the engine's frames (and the playhead) run in real time; keeps the output level. Once a
/// stop has taken effect there is nothing to hear, and the engine rests until the next start
/// (whose frames are counted on from where it rested). With a sound card, learns where the
/// card's frames fall on the clock.
fn pull_offline(mut playback: NonSendMut<Playback>, clock: Res<Clock>, mut level: ResMut<OutputLevel>) {
    let playback = &mut *playback;
    let now = clock.now();
    let engine = match playback.engine.as_mut() {
        Some(Output::Offline(engine)) => engine,
        #[cfg(feature = "window")]
        Some(device) => {
            let (rate, frame) = (device.sample_rate(), device.now());
            playback.sample_clock.get_or_insert_with(|| SampleClock::anchored(rate, frame, now)).observe(frame, now);
            return;
        }
        None => return,
    };
    if playback.quiet_from.is_some_and(|quiet| engine.now() >= quiet) {
        level.0 = [0.0; 2];
        playback.sample_clock = None;
        return;
    }
    let rate = engine.sample_rate();
    let rendered = playback.rendered;
    let sample_clock = playback.sample_clock.get_or_insert_with(|| SampleClock::anchored(rate, rendered, now));
    let mut frames = sample_clock.frame_at(now).saturating_sub(rendered);
    // At most a quarter second at once, so a stalled frame does not make a burst: the clock
    // moves on instead.
    if frames > u64::from(rate / 4) {
        frames = u64::from(rate / 4);
        *sample_clock = SampleClock::anchored(rate, rendered + frames, now);
    }
    let mut peak = [0.0f32; 2];
    let mut left = frames as usize;
    playback.scratch.resize(ensemble_audio::render::MAX_BLOCK, [0.0; 2]);
    while left > 0 {
        let block = left.min(ensemble_audio::render::MAX_BLOCK);
        let out = &mut playback.scratch[..block];
        engine.backend_mut().render(out);
        for [l, r] in out.iter() {
            peak[0] = peak[0].max(l.abs());
            peak[1] = peak[1].max(r.abs());
        }
        left -= block;
    }
    playback.rendered += frames;
    level.0 = peak;
}

/// Takes each track's peaks from the engine and lets the meters fall between them.
fn read_meters(
    mut playback: NonSendMut<Playback>,
    time: Res<Time<Real>>,
    transport: Res<Transport>,
    mut levels: ResMut<TrackLevels>,
) {
    let playback = &mut *playback;
    let (Some(engine), Some(arrangement)) = (playback.engine.as_ref(), playback.arrangement.as_ref()) else { return };
    let fall = 10f32.powf(-METER_FALL_DB * time.delta_secs() / 20.0);
    let restarted = transport.playing && !levels.playing;
    levels.playing = transport.playing;
    let meters = engine.meters();
    let mut seen = HashSet::with_capacity(arrangement.tracks.len());
    for (index, track) in arrangement.tracks.iter().enumerate() {
        let peaks = meters.take(index);
        let level = levels.tracks.entry(track.id).or_default();
        for (shown, peak) in level.level.iter_mut().zip(peaks) {
            *shown = peak.max(*shown * fall);
            if *shown < 1e-4 {
                *shown = 0.0;
            }
        }
        let held = if restarted { 0.0 } else { level.held };
        level.held = held.max(level.level[0]).max(level.level[1]);
        seen.insert(track.id);
    }
    levels.tracks.retain(|id, _| seen.contains(id));
}

/// Renders the mix to a file in the background, from the audio decoded for playback. In the
/// browser the file is offered as a download under the path's file name.
fn export(
    playback: NonSend<Playback>,
    replica: Option<Res<Replica>>,
    clips: Query<&ClipData>,
    mut asked: MessageReader<ExportMsg>,
    mut done: MessageWriter<ExportDone>,
) {
    for ExportMsg { path, format } in asked.read() {
        let Some(replica) = replica.as_ref() else {
            done.write(ExportDone { path: path.clone(), result: Err("the project has not loaded yet".into()) });
            continue;
        };
        let waiting = clips
            .iter()
            .filter(|clip| !playback.decoded.contains_key(&clip.asset) && !playback.unplayable.contains(&clip.asset))
            .count();
        if waiting > 0 {
            let reason = format!("the audio of {waiting} clip(s) is still downloading or decoding; try again shortly");
            done.write(ExportDone { path: path.clone(), result: Err(reason) });
            continue;
        }
        let project_rate = replica.view().project().sample_rate;
        let rate = playback.rate.unwrap_or(project_rate);
        let arrangement = Arc::new(Arrangement::from_project_at(replica.view(), &playback.decoded, rate));
        // The song, and its effects' tails after the last clip.
        let frames = arrangement.end() + arrangement.tail();
        let seconds = frames as f64 / f64::from(arrangement.sample_rate.max(1));
        let (path, format, sender) = (path.clone(), *format, playback.exported.clone());
        in_background(move || {
            // Rendered from the audio decoded for playback, at the project's rate whatever the
            // sound card's.
            let mix = ensemble_audio::render::render_mix(arrangement);
            let result = ensemble_audio::resample::resample(&mix, project_rate)
                .and_then(|mix| save(&path, &mix, format))
                .map(|()| seconds);
            let _ = sender.send(ExportDone { path, result });
        });
    }
}

/// Writes an export's WAV file (natively) or hands it to the browser as a download.
fn save(path: &std::path::Path, mix: &ensemble_audio::Pcm, format: WavFormat) -> Result<(), String> {
    #[cfg(not(target_arch = "wasm32"))]
    return ensemble_audio::wav::write_wav(path, mix, format).map_err(|error| error.to_string());
    #[cfg(target_arch = "wasm32")]
    {
        let bytes = ensemble_audio::wav::wav_bytes(mix, format).map_err(|error| error.to_string())?;
        let name = path.file_name().map_or_else(|| "mix.wav".into(), |name| name.to_string_lossy().into_owned());
        crate::browser::download(&name, &bytes, "audio/wav")
    }
}

fn finish_exports(playback: NonSend<Playback>, mut done: MessageWriter<ExportDone>) {
    while let Ok(finished) = playback.exports.try_recv() {
        done.write(finished);
    }
}
