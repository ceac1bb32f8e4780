//! A small project to test against, and helpers to build ops.

use ensemble_protocol::*;

pub(crate) const PROJECT: ProjectId = ProjectId::from_u128(0x100);
pub(crate) const OWNER: UserId = UserId::from_u128(0x200);
pub(crate) const EDITOR: UserId = UserId::from_u128(0x201);
pub(crate) const VIEWER: UserId = UserId::from_u128(0x202);
pub(crate) const DRUMS: TrackId = TrackId::from_u128(0x300);
pub(crate) const BASS: TrackId = TrackId::from_u128(0x301);
pub(crate) const LOOP: AssetId = AssetId::from_u128(0x400);
pub(crate) const KICK: ClipId = ClipId::from_u128(0x500);
pub(crate) const DRUMS_GAIN: LaneId = LaneId::from_u128(0x600);

pub(crate) fn project() -> Project {
    Project {
        name: "Demo".into(),
        tempo: Bpm(120.0),
        time_signature: TimeSignature::FOUR_FOUR,
        loop_range: None,
        track_order: vec![],
        sample_rate: 48_000,
    }
}

pub(crate) fn track(name: &str) -> Track {
    Track {
        name: name.into(),
        colour: Colour { r: 200, g: 80, b: 40 },
        gain_db: 0.0,
        pan: 0.0,
        mute: false,
        solo: false,
        record_arm: false,
    }
}

pub(crate) fn asset() -> AudioAsset {
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

pub(crate) fn clip(track: TrackId) -> Clip {
    Clip {
        track,
        asset: LOOP,
        start: Ticks(0),
        length: Ticks(3840),
        source_offset: Frames(0),
        gain_db: 0.0,
        fade_in: Ticks(0),
        fade_out: Ticks(0),
        name: "Kick".into(),
    }
}

pub(crate) fn point(id: u128, tick: i64, value: f32) -> AutomationPoint {
    AutomationPoint { id: PointId::from_u128(id), tick: Ticks(tick), value, curve: Curve::Linear }
}

pub(crate) fn create(id: impl Into<RecordId>, record: Record) -> Op {
    Op::Create { id: id.into(), record }
}

pub(crate) fn set(target: impl Into<RecordId>, value: Field) -> Op {
    Op::Set { target: target.into(), value, expect: None }
}

pub(crate) fn set_expecting(target: impl Into<RecordId>, value: Field, expect: Field) -> Op {
    Op::Set { target: target.into(), value, expect: Some(expect) }
}

pub(crate) fn tx(ops: Vec<Op>) -> Transaction {
    Transaction::new(PROJECT, ops)
}

fn member(id: u128, user: UserId, role: Role) -> Op {
    create(MemberId::from_u128(id), Record::Member(Member { user, role }))
}

/// The authority's part: a project with its three members and an asset.
pub(crate) fn empty_project() -> ProjectState {
    let mut state = ProjectState::new(PROJECT, project()).unwrap();
    state
        .apply(&tx(vec![
            member(0x700, OWNER, Role::Owner),
            member(0x701, EDITOR, Role::Editor),
            member(0x702, VIEWER, Role::Viewer),
            create(LOOP, Record::AudioAsset(asset())),
        ]))
        .unwrap();
    state
}

/// Two tracks in order, a clip on the drums, and a gain lane with two points.
pub(crate) fn demo() -> ProjectState {
    let mut state = empty_project();
    let lane = AutomationLane {
        track: DRUMS,
        parameter: Parameter::Gain,
        enabled: true,
        points: vec![point(1, 0, 0.0), point(2, 960, -6.0)],
    };
    state
        .apply(&tx(vec![
            create(DRUMS, Record::Track(track("Drums"))),
            create(BASS, Record::Track(track("Bass"))),
            Op::ListInsert { target: PROJECT.into(), item: ListItem::Track(DRUMS), at: ListPosition::End },
            Op::ListInsert { target: PROJECT.into(), item: ListItem::Track(BASS), at: ListPosition::End },
            create(KICK, Record::Clip(clip(DRUMS))),
            create(DRUMS_GAIN, Record::AutomationLane(lane)),
        ]))
        .unwrap();
    state
}
