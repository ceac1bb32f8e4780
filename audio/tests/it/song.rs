//! A project built op by op, with generated audio, for the renderer and engine tests.

use std::collections::HashMap;
use std::sync::Arc;

use ensemble_audio::Pcm;
use ensemble_audio::arrangement::Arrangement;
use ensemble_audio::render::{Frame, Renderer};
use ensemble_protocol::*;
use ensemble_testkit::records::{self, add_track, create, set};

pub(crate) const RATE: u32 = 48_000;
pub(crate) const CENTRE: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// A project built op by op, with the audio its assets stand for.
pub(crate) struct Song {
    pub(crate) state: ProjectState,
    pub(crate) assets: HashMap<AssetId, Pcm>,
}

impl Song {
    pub(crate) fn new(bpm: f64) -> Song {
        let project = Project { tempo: Bpm(bpm), sample_rate: RATE, ..records::project("Render test") };
        Song { state: ProjectState::new(ProjectId::new_v7(), project).unwrap(), assets: HashMap::new() }
    }

    pub(crate) fn apply(&mut self, ops: Vec<Op>) {
        self.state.apply(&Transaction::new(self.state.id(), ops)).unwrap();
    }

    pub(crate) fn track(&mut self) -> TrackId {
        let id = TrackId::new_v7();
        self.apply(add_track(self.state.id(), id, "T"));
        id
    }

    pub(crate) fn asset(&mut self, pcm: Pcm) -> AssetId {
        let id = AssetId::new_v7();
        let asset = AudioAsset {
            hash: ContentHash(*id.0.as_bytes().repeat(2).first_chunk().unwrap()),
            sample_rate: pcm.sample_rate,
            channels: pcm.channels.len() as u16,
            frames: Frames(pcm.frames() as u64),
            ..records::asset()
        };
        self.apply(vec![create(id, Record::AudioAsset(asset))]);
        self.assets.insert(id, pcm);
        id
    }

    pub(crate) fn clip(&mut self, track: TrackId, asset: AssetId, start: i64, length: i64) -> ClipId {
        let id = ClipId::new_v7();
        let clip = Clip { start: Ticks(start), length: Ticks(length), ..records::clip(track, asset) };
        self.apply(vec![create(id, Record::Clip(clip))]);
        id
    }

    pub(crate) fn set(&mut self, target: impl Into<RecordId>, value: Field) {
        self.apply(vec![set(target, value)]);
    }

    pub(crate) fn lane(&mut self, track: TrackId, parameter: Parameter, points: &[(i64, f32, Curve)]) {
        let points = points
            .iter()
            .map(|&(tick, value, curve)| AutomationPoint { id: PointId::new_v7(), tick: Ticks(tick), value, curve })
            .collect();
        let lane = AutomationLane { track, parameter, enabled: true, points };
        self.apply(vec![create(LaneId::new_v7(), Record::AutomationLane(lane))]);
    }

    pub(crate) fn arrangement(&self) -> Arc<Arrangement> {
        Arc::new(Arrangement::from_project(&self.state, &self.assets))
    }

    /// Renders `frames` frames from `from` in blocks of `block`.
    pub(crate) fn render(&self, from: u64, frames: usize, block: usize) -> Vec<Frame> {
        let mut renderer = Renderer::new(self.arrangement());
        renderer.seek(from);
        let mut out = vec![[0.0; 2]; frames];
        for chunk in out.chunks_mut(block) {
            renderer.render(chunk);
        }
        out
    }
}

/// Plays `arrangement` from its start on the offline engine, pulling blocks of `block` frames,
/// and checks it is silent until the scheduled frame and then plays what `export` (its mix
/// export) holds, within 1e-6 on both channels.
pub(crate) fn assert_plays_as_exported(arrangement: Arc<Arrangement>, export: &Pcm, block: usize) {
    use ensemble_audio::engine::{Engine, OfflineBackend};
    let mut engine = Engine::<OfflineBackend>::new(RATE, arrangement).unwrap();
    let start = engine.play_from(0).unwrap() as usize;
    let mut live = vec![[0.0; 2]; start + export.frames()];
    for chunk in live.chunks_mut(block) {
        engine.backend_mut().render(chunk);
    }
    assert!(live[..start].iter().all(|f| *f == [0.0, 0.0]), "silence until the scheduled frame");
    for (frame, live) in live[start..].iter().enumerate() {
        for (channel, live) in live.iter().enumerate() {
            let exported = export.channels[channel][frame];
            assert!((live - exported).abs() < 1e-6, "frame {frame}, channel {channel}: {live} vs {exported}");
        }
    }
}

pub(crate) fn dc(level: f32, frames: usize) -> Pcm {
    Pcm::new(RATE, vec![vec![level; frames]])
}

pub(crate) fn impulse() -> Pcm {
    let mut samples = vec![0.0; 100];
    samples[0] = 1.0;
    Pcm::new(RATE, vec![samples])
}
