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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc;

use bevy::prelude::*;
use ensemble_audio::Pcm;
use ensemble_audio::arrangement::Arrangement;
use ensemble_audio::engine::{Engine, EngineError, OfflineBackend};
use ensemble_audio::render::Frame;
use ensemble_protocol::{AssetId, Frames, Ticks, Timebase};

use crate::media::Media;
use crate::model::{AssetData, ClipData, LaneData, ProjectData, TrackData};
use crate::replica::Replica;

/// Hears the model.
pub struct PlaybackPlugin;

impl Plugin for PlaybackPlugin {
    fn build(&self, app: &mut App) {
        let (decoded, arrivals) = mpsc::channel();
        app.init_resource::<Transport>()
            .init_resource::<OutputLevel>()
            .insert_non_send(Playback {
                engine: None,
                decoded: HashMap::new(),
                decoding: HashSet::new(),
                sender: decoded,
                arrivals,
                dirty: true,
                heard: Transport::default(),
                started: None,
                scratch: Vec::new(),
            })
            .add_systems(PostUpdate, (decode_audio, rearrange, follow_transport, pull_offline).chain());
    }
}

/// Whether the project plays, and where.
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    /// Playing or stopped.
    pub playing: bool,
    /// The playhead.
    pub position: Ticks,
}

/// The peak level of the engine's output over the last frame, per channel (0 to 1+), for the
/// meters; measured where the engine runs offline.
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq)]
pub struct OutputLevel(pub [f32; 2]);

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
        match self {
            Output::Offline(engine) => engine.now(),
            #[cfg(feature = "window")]
            Output::Device(engine) => engine.now(),
        }
    }

    fn play_from(&mut self, position: u64) -> Result<u64, EngineError> {
        match self {
            Output::Offline(engine) => engine.play_from(position),
            #[cfg(feature = "window")]
            Output::Device(engine) => engine.play_from(position),
        }
    }

    fn stop_at(&mut self, position: u64) -> Result<u64, EngineError> {
        match self {
            Output::Offline(engine) => engine.stop_at(position),
            #[cfg(feature = "window")]
            Output::Device(engine) => engine.stop_at(position),
        }
    }

    fn set_arrangement(&mut self, arrangement: Arc<Arrangement>) -> Result<(), EngineError> {
        match self {
            Output::Offline(engine) => engine.set_arrangement(arrangement),
            #[cfg(feature = "window")]
            Output::Device(engine) => engine.set_arrangement(arrangement),
        }
    }

    /// The sound card if it opens at `rate`, else the offline backend.
    fn open(arrangement: Arc<Arrangement>) -> Result<Output, EngineError> {
        #[cfg(feature = "window")]
        {
            let rate = arrangement.sample_rate;
            match Engine::<kira::DefaultBackend>::new(Default::default(), arrangement.clone()) {
                Ok(engine) if engine.sample_rate() == rate => return Ok(Output::Device(Box::new(engine))),
                Ok(engine) => {
                    warn!(
                        "the sound card runs at {} Hz, the project at {rate} Hz: playing silently",
                        engine.sample_rate()
                    );
                }
                Err(error) => info!("no sound card ({error}): playing silently"),
            }
        }
        let rate = arrangement.sample_rate;
        Engine::<OfflineBackend>::new(rate, arrangement).map(|engine| Output::Offline(Box::new(engine)))
    }
}

/// The engine and what feeds it (a non-send resource: a sound card stream stays on its thread).
pub struct Playback {
    engine: Option<Output>,
    decoded: HashMap<AssetId, Pcm>,
    decoding: HashSet<AssetId>,
    sender: mpsc::Sender<(AssetId, Result<Pcm, String>)>,
    arrivals: mpsc::Receiver<(AssetId, Result<Pcm, String>)>,
    dirty: bool,
    /// The transport as the engine last heard it.
    heard: Transport,
    /// The engine frame playback started at, and the timeline frame it started from.
    started: Option<(u64, u64)>,
    scratch: Vec<Frame>,
}

impl Playback {
    /// The engine, once the project has loaded.
    pub fn output(&mut self) -> Option<&mut Output> {
        self.engine.as_mut()
    }
}

/// Decodes each cached asset once, at the project's rate, on a thread of its own.
fn decode_audio(
    mut playback: NonSendMut<Playback>,
    media: Res<Media>,
    assets: Query<&crate::model::RecordKey, With<AssetData>>,
    project: Query<&ProjectData>,
) {
    let Ok(project) = project.single() else { return };
    let rate = project.sample_rate;
    while let Ok((asset, pcm)) = playback.arrivals.try_recv() {
        match pcm {
            Ok(pcm) => {
                playback.decoded.insert(asset, pcm);
                playback.dirty = true;
            }
            Err(error) => warn!("asset {asset} does not play: {error}"),
        }
    }
    for key in &assets {
        let asset = AssetId(key.0.0);
        if playback.decoding.contains(&asset) {
            continue;
        }
        let Some(path) = media.audio(asset).cloned() else { continue };
        playback.decoding.insert(asset);
        let sender = playback.sender.clone();
        std::thread::spawn(move || {
            let pcm = ensemble_audio::decode::decode_file(&path, Some(rate)).map_err(|error| error.to_string());
            let _ = sender.send((asset, pcm));
        });
    }
}

/// Hands the engine a new arrangement after any change to what is heard.
#[allow(clippy::type_complexity)]
fn rearrange(
    mut playback: NonSendMut<Playback>,
    replica: Option<Res<Replica>>,
    changed: Query<(), Or<(Changed<TrackData>, Changed<ClipData>, Changed<LaneData>, Changed<ProjectData>)>>,
    mut removed_clips: RemovedComponents<ClipData>,
    mut removed_tracks: RemovedComponents<TrackData>,
) {
    let Some(replica) = replica else { return };
    let removed = removed_clips.read().count() + removed_tracks.read().count() > 0;
    if !(playback.dirty || removed || !changed.is_empty()) {
        return;
    }
    playback.dirty = false;
    let arrangement = Arc::new(Arrangement::from_project(replica.view(), &playback.decoded));
    let result = match playback.engine.as_mut() {
        Some(output) => output.set_arrangement(arrangement),
        None => Output::open(arrangement).map(|output| playback.engine = Some(output)),
    };
    if let Err(error) = result {
        warn!("the audio engine refused the arrangement: {error}");
    }
}

/// Starts and stops the engine as the transport says, and moves the playhead with its clock.
fn follow_transport(
    mut playback: NonSendMut<Playback>,
    mut transport: ResMut<Transport>,
    project: Query<&ProjectData>,
) {
    let Ok(project) = project.single() else { return };
    let timebase = Timebase::new(project.tempo, project.sample_rate);
    let playback = &mut *playback;
    let Some(engine) = playback.engine.as_mut() else { return };
    let wanted = *transport;
    if wanted != playback.heard {
        let from = timebase.frames(Ticks(wanted.position.0.max(0))).0;
        let scheduled = if wanted.playing { engine.play_from(from) } else { engine.stop_at(from) };
        match scheduled {
            Ok(at) => playback.started = wanted.playing.then_some((at, from)),
            Err(error) => warn!("the audio engine is busy: {error}"),
        }
        playback.heard = wanted;
    }
    if let Some((at, from)) = playback.started {
        let now = engine.now();
        let position = from + now.saturating_sub(at);
        transport.position = timebase.ticks(Frames(position));
        playback.heard.position = transport.position;
    }
}

/// Without a sound card, renders what the card would have played in the time since the last
/// frame, so the engine's clock (and the playhead) run in real time; keeps the output level.
fn pull_offline(mut playback: NonSendMut<Playback>, time: Res<Time<Real>>, mut level: ResMut<OutputLevel>) {
    let playback = &mut *playback;
    let Some(Output::Offline(engine)) = playback.engine.as_mut() else { return };
    let rate = engine.sample_rate();
    // At most a quarter second at once, so a stalled frame does not make a burst.
    let frames = ((time.delta_secs_f64() * f64::from(rate)) as usize).min(rate as usize / 4);
    let mut peak = [0.0f32; 2];
    let mut left = frames;
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
    level.0 = peak;
}
