//! Records and ops to test with: plain values, changed with struct update syntax where a test
//! needs something else (`Track { mute: true, ..track("Drums") }`).

use ensemble_protocol::*;

/// An empty project at 120 BPM in 4/4 and 48 kHz.
pub fn project(name: &str) -> Project {
    Project {
        name: name.into(),
        tempo: Bpm(120.0),
        time_signature: TimeSignature::FOUR_FOUR,
        loop_range: None,
        track_order: vec![],
        sample_rate: 48_000,
    }
}

/// A track at unity gain, centred, neither muted nor soloed.
pub fn track(name: &str) -> Track {
    Track {
        name: name.into(),
        colour: Colour { r: 10, g: 200, b: 120 },
        gain_db: 0.0,
        pan: 0.0,
        mute: false,
        solo: false,
        record_arm: false,
    }
}

/// Two seconds of 48 kHz stereo WAV, peaks not yet made.
pub fn asset() -> AudioAsset {
    AudioAsset {
        hash: ContentHash([7; 32]),
        name: "loop.wav".into(),
        sample_rate: 48_000,
        channels: 2,
        frames: Frames(96_000),
        codec: Codec::Wav,
        byte_size: 384_044,
        peaks_ready: false,
    }
}

/// A bar (at 4/4) of `asset` from its start, at the start of `track`, without fades.
pub fn clip(track: TrackId, asset: AssetId) -> Clip {
    Clip {
        track,
        asset,
        start: Ticks(0),
        length: Ticks(4 * TICKS_PER_QUARTER),
        source_offset: Frames(0),
        gain_db: 0.0,
        fade_in: Ticks(0),
        fade_out: Ticks(0),
        name: "Kick".into(),
    }
}

/// A linear automation point.
pub fn point(id: u128, tick: i64, value: f32) -> AutomationPoint {
    AutomationPoint { id: PointId::from_u128(id), tick: Ticks(tick), value, curve: Curve::Linear }
}

/// Creates `record` as `id`.
pub fn create(id: impl Into<RecordId>, record: Record) -> Op {
    Op::Create { id: id.into(), record }
}

/// A `Set` of one field, without `expect`.
pub fn set(target: impl Into<RecordId>, value: Field) -> Op {
    Op::Set { target: target.into(), value, expect: None }
}

/// A `Set` of one field that only applies while the field holds `expect`.
pub fn set_expecting(target: impl Into<RecordId>, value: Field, expect: Field) -> Op {
    Op::Set { target: target.into(), value, expect: Some(expect) }
}

/// The ops that add a track named `name` at the end of the order.
pub fn add_track(project: ProjectId, id: TrackId, name: &str) -> Vec<Op> {
    vec![
        create(id, Record::Track(track(name))),
        Op::ListInsert { target: project.into(), item: ListItem::Track(id), at: ListPosition::End },
    ]
}

/// A track's gain set to `gain` dB, expecting `expect` when given.
pub fn set_gain(track: TrackId, gain: f32, expect: Option<f32>) -> Op {
    let value = Field::Track(TrackField::Gain(gain));
    Op::Set { target: track.into(), value, expect: expect.map(|gain| Field::Track(TrackField::Gain(gain))) }
}
