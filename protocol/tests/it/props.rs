//! Property tests: apply and invert agree on random projects, a rejected transaction changes
//! nothing, every message survives encoding, and no bytes make the decoder panic.

use ensemble_protocol::wire::{
    Bump, CatchUp, ErrorCode, ExportFormat, ExportRequest, JobInfo, JobKind, JobState, Rejection, SessionToken,
};
use ensemble_protocol::*;
use proptest::prelude::*;
use uuid::Uuid;

use crate::fixture::*;

/// An edit described by choices rather than ids, so it can be made concrete against any state
/// (indices pick among the records that exist) and shrinks to something readable.
#[derive(Clone, Debug)]
enum Recipe {
    NewTrack { gain: f32, pan: f32 },
    NewClip { track: usize, start: i64, length: i64, fades: (i64, i64) },
    NewLane { track: usize, pan: bool },
    SetTrack { track: usize, field: TrackField },
    SetClip { clip: usize, field: ClipField, expect_current: bool },
    MoveClip { clip: usize, track: usize },
    Order { track: usize, at: (u8, usize) },
    Unorder { index: usize },
    AddPoint { lane: usize, tick: i64, value: f32, at: (u8, usize) },
    RemovePoint { lane: usize, index: usize },
    Delete { kind: u8, index: usize },
    SetProject { field: ProjectField },
}

fn gain() -> impl Strategy<Value = f32> {
    prop_oneof![9 => -60.0f32..=12.0, 1 => Just(f32::NEG_INFINITY)]
}

/// Sometimes out of range, so that some transactions are rejected.
fn shaky_pan() -> impl Strategy<Value = f32> {
    prop_oneof![9 => -1.0f32..=1.0, 1 => -3.0f32..3.0]
}

fn track_field() -> impl Strategy<Value = TrackField> {
    prop_oneof![
        "[a-z ]{0,12}".prop_map(TrackField::Name),
        gain().prop_map(TrackField::Gain),
        shaky_pan().prop_map(TrackField::Pan),
        any::<bool>().prop_map(TrackField::Mute),
        any::<bool>().prop_map(TrackField::Solo),
        any::<bool>().prop_map(TrackField::RecordArm),
        any::<(u8, u8, u8)>().prop_map(|(r, g, b)| TrackField::Colour(Colour { r, g, b })),
    ]
}

fn clip_field() -> impl Strategy<Value = ClipField> {
    prop_oneof![
        (0i64..100_000).prop_map(|t| ClipField::Start(Ticks(t))),
        (-10i64..20_000).prop_map(|t| ClipField::Length(Ticks(t))),
        (0u64..1_000_000).prop_map(|f| ClipField::SourceOffset(Frames(f))),
        gain().prop_map(ClipField::Gain),
        (0i64..3_000).prop_map(|t| ClipField::FadeIn(Ticks(t))),
        (0i64..3_000).prop_map(|t| ClipField::FadeOut(Ticks(t))),
        "[a-z]{0,8}".prop_map(ClipField::Name),
    ]
}

fn project_field() -> impl Strategy<Value = ProjectField> {
    prop_oneof![
        (10.0f64..1_100.0).prop_map(|bpm| ProjectField::Tempo(Bpm(bpm))),
        "[A-Za-z]{1,10}".prop_map(ProjectField::Name),
        proptest::option::of((0i64..10_000, 0i64..10_000)).prop_map(|range| ProjectField::LoopRange(
            range.map(|(a, b)| LoopRange { start: Ticks(a), end: Ticks(b) })
        )),
        (1u8..12, 0u8..5)
            .prop_map(|(n, d)| ProjectField::TimeSignature(TimeSignature { numerator: n, denominator: 1 << d })),
    ]
}

fn recipe() -> impl Strategy<Value = Recipe> {
    let ix = || 0usize..16;
    prop_oneof![
        (gain(), shaky_pan()).prop_map(|(gain, pan)| Recipe::NewTrack { gain, pan }),
        (ix(), 0i64..100_000, 1i64..20_000, (0i64..500, 0i64..500))
            .prop_map(|(track, start, length, fades)| Recipe::NewClip { track, start, length, fades }),
        (ix(), any::<bool>()).prop_map(|(track, pan)| Recipe::NewLane { track, pan }),
        (ix(), track_field()).prop_map(|(track, field)| Recipe::SetTrack { track, field }),
        (ix(), clip_field(), any::<bool>()).prop_map(|(clip, field, expect_current)| Recipe::SetClip {
            clip,
            field,
            expect_current
        }),
        (ix(), ix()).prop_map(|(clip, track)| Recipe::MoveClip { clip, track }),
        (ix(), (0u8..4, ix())).prop_map(|(track, at)| Recipe::Order { track, at }),
        ix().prop_map(|index| Recipe::Unorder { index }),
        (ix(), 0i64..50_000, -1.2f32..1.2, (0u8..4, ix())).prop_map(|(lane, tick, value, at)| Recipe::AddPoint {
            lane,
            tick,
            value,
            at
        }),
        (ix(), ix()).prop_map(|(lane, index)| Recipe::RemovePoint { lane, index }),
        (0u8..3, ix()).prop_map(|(kind, index)| Recipe::Delete { kind, index }),
        project_field().prop_map(|field| Recipe::SetProject { field }),
    ]
}

fn ids_of(state: &ProjectState, kind: RecordKind) -> Vec<RecordId> {
    state.records().filter(|(_, e)| e.record.kind() == kind).map(|(id, _)| id).collect()
}

fn pick<T: Copy>(items: &[T], index: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[index % items.len()])
}

fn position(list: &[Uuid], (kind, index): (u8, usize)) -> ListPosition {
    match (kind, pick(list, index)) {
        (0, _) | (_, None) => ListPosition::Start,
        (1, _) => ListPosition::End,
        (2, Some(anchor)) => ListPosition::Before(anchor),
        (_, Some(anchor)) => ListPosition::After(anchor),
    }
}

/// Turns a recipe into ops against `state`; `next_id` mints fresh ids.
fn realize(state: &ProjectState, recipe: &Recipe, next_id: &mut u128) -> Vec<Op> {
    let mut fresh = || {
        *next_id += 1;
        RecordId(Uuid::from_u128(*next_id))
    };
    let tracks = ids_of(state, RecordKind::Track);
    let clips = ids_of(state, RecordKind::Clip);
    let lanes = ids_of(state, RecordKind::AutomationLane);
    let as_track = |id: RecordId| TrackId(id.0);
    let order: Vec<Uuid> = state.project().track_order.iter().map(|t| t.0).collect();
    let op = match recipe.clone() {
        Recipe::NewTrack { gain, pan } => create(fresh(), Record::Track(Track { gain_db: gain, pan, ..track("t") })),
        Recipe::NewClip { track, start, length, fades } => {
            let Some(track) = pick(&tracks, track) else { return vec![] };
            let clip = Clip {
                start: Ticks(start),
                length: Ticks(length),
                fade_in: Ticks(fades.0),
                fade_out: Ticks(fades.1),
                ..ensemble_testkit::records::clip(as_track(track), LOOP)
            };
            create(fresh(), Record::Clip(clip))
        }
        Recipe::NewLane { track, pan } => {
            let Some(track) = pick(&tracks, track) else { return vec![] };
            let parameter = if pan { Parameter::Pan } else { Parameter::Gain };
            create(
                fresh(),
                Record::AutomationLane(AutomationLane {
                    track: as_track(track),
                    parameter,
                    enabled: true,
                    points: vec![],
                }),
            )
        }
        Recipe::SetTrack { track, field } => {
            let Some(track) = pick(&tracks, track) else { return vec![] };
            set(track, Field::Track(field))
        }
        Recipe::SetClip { clip, field, expect_current } => {
            let Some(clip) = pick(&clips, clip) else { return vec![] };
            let value = Field::Clip(field);
            let expect = expect_current.then(|| value.read(&state.entry(clip).unwrap().record).unwrap());
            Op::Set { target: clip, value, expect }
        }
        Recipe::MoveClip { clip, track } => {
            let (Some(clip), Some(track)) = (pick(&clips, clip), pick(&tracks, track)) else { return vec![] };
            set(clip, Field::Clip(ClipField::Track(as_track(track))))
        }
        Recipe::Order { track, at } => {
            let Some(track) = pick(&tracks, track) else { return vec![] };
            Op::ListInsert { target: PROJECT.into(), item: ListItem::Track(as_track(track)), at: position(&order, at) }
        }
        Recipe::Unorder { index } => {
            let Some(item) = pick(&order, index) else { return vec![] };
            Op::ListRemove { target: PROJECT.into(), item }
        }
        Recipe::AddPoint { lane, tick, value, at } => {
            let Some(lane) = pick(&lanes, lane) else { return vec![] };
            let Record::AutomationLane(record) = &state.entry(lane).unwrap().record else { unreachable!() };
            let points: Vec<Uuid> = record.points.iter().map(|p| p.id.0).collect();
            let value = if record.parameter == Parameter::Gain { value * 30.0 - 20.0 } else { value };
            let point = AutomationPoint { id: PointId(fresh().0), tick: Ticks(tick), value, curve: Curve::Smooth };
            Op::ListInsert { target: lane, item: ListItem::Point(point), at: position(&points, at) }
        }
        Recipe::RemovePoint { lane, index } => {
            let Some(lane) = pick(&lanes, lane) else { return vec![] };
            let Record::AutomationLane(record) = &state.entry(lane).unwrap().record else { unreachable!() };
            let Some(point) = pick(&record.points, index) else { return vec![] };
            Op::ListRemove { target: lane, item: point.id.0 }
        }
        Recipe::Delete { kind, index } => {
            let ids = [&clips, &lanes, &tracks][kind as usize];
            let Some(target) = pick(ids, index) else { return vec![] };
            Op::Delete { target }
        }
        Recipe::SetProject { field } => set(PROJECT, Field::Project(field)),
    };
    vec![op]
}

/// Builds a project by applying each recipe on its own, keeping the ones that apply.
fn build(recipes: &[Recipe], next_id: &mut u128) -> ProjectState {
    let mut state = empty_project();
    for recipe in recipes {
        let ops = realize(&state, recipe, next_id);
        if !ops.is_empty() {
            let _ = state.apply(&tx(ops));
        }
    }
    state
}

/// Checks that `inverse` brings every value back and moves every touched version forward by one.
fn assert_restores(before: &ProjectState, mut after: ProjectState, applied: Applied) -> Result<(), TestCaseError> {
    let applied_versions: Vec<Version> = applied.changed.iter().map(|id| after.change(*id).version).collect();
    let undone = after.apply(&tx(applied.inverse)).map_err(|e| TestCaseError::fail(format!("undo failed: {e}")))?;
    prop_assert_eq!(&undone.changed, &applied.changed);
    for (id, version) in applied.changed.iter().zip(applied_versions) {
        let (was, now) = (before.change(*id), after.change(*id));
        prop_assert_eq!(&was.record, &now.record, "record {} not restored", id);
        prop_assert_eq!(version, Version(was.version.0 + 1));
        prop_assert_eq!(now.version, Version(was.version.0 + 2));
    }
    prop_assert_eq!(after.len(), before.len());
    for (id, entry) in before.records() {
        if !applied.changed.contains(&id) {
            prop_assert_eq!(after.entry(id), Some(entry));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A transaction made only of ops that apply, applied then inverted, restores every record.
    #[test]
    fn apply_then_invert_restores_the_state(setup in prop::collection::vec(recipe(), 0..40), edit in prop::collection::vec(recipe(), 1..12)) {
        let mut next_id = 0x1_0000;
        let before = build(&setup, &mut next_id);
        let mut scratch = before.clone();
        let mut ops = Vec::new();
        for recipe in &edit {
            let step = realize(&scratch, recipe, &mut next_id);
            if !step.is_empty() && scratch.apply(&tx(step.clone())).is_ok() {
                ops.extend(step);
            }
        }
        prop_assume!(!ops.is_empty());
        let mut after = before.clone();
        let applied = after.apply(&tx(ops)).map_err(|e| TestCaseError::fail(format!("composed edit failed: {e}")))?;
        assert_restores(&before, after, applied)?;
    }

    /// Any transaction either applies (and inverts) or is rejected leaving the state untouched.
    #[test]
    fn a_transaction_applies_whole_or_not_at_all(setup in prop::collection::vec(recipe(), 0..40), edit in prop::collection::vec(recipe(), 1..12)) {
        let mut next_id = 0x1_0000;
        let before = build(&setup, &mut next_id);
        let ops: Vec<Op> = edit.iter().flat_map(|recipe| realize(&before, recipe, &mut next_id)).collect();
        prop_assume!(!ops.is_empty());
        let mut after = before.clone();
        match after.apply(&tx(ops)) {
            Ok(applied) => assert_restores(&before, after, applied)?,
            Err(_) => prop_assert_eq!(after, before),
        }
    }
}

// Strategies for arbitrary (not necessarily valid) messages.

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn record_id() -> impl Strategy<Value = RecordId> {
    uuid().prop_map(RecordId)
}

/// Every float but NaN, which is not equal to itself.
fn float() -> impl Strategy<Value = f32> {
    use proptest::num::f32::*;
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO | INFINITE
}

fn text() -> impl Strategy<Value = String> {
    ".{0,20}"
}

fn arb_track() -> impl Strategy<Value = Track> {
    (text(), any::<(u8, u8, u8)>(), float(), float(), any::<(bool, bool, bool)>()).prop_map(
        |(name, (r, g, b), gain_db, pan, (mute, solo, record_arm))| Track {
            name,
            colour: Colour { r, g, b },
            gain_db,
            pan,
            mute,
            solo,
            record_arm,
        },
    )
}

fn arb_point() -> impl Strategy<Value = AutomationPoint> {
    (uuid(), any::<i64>(), float(), 0u8..3).prop_map(|(id, tick, value, curve)| AutomationPoint {
        id: PointId(id),
        tick: Ticks(tick),
        value,
        curve: [Curve::Linear, Curve::Hold, Curve::Smooth][curve as usize],
    })
}

fn arb_role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Viewer), Just(Role::Editor), Just(Role::Owner)]
}

fn arb_record() -> impl Strategy<Value = Record> {
    prop_oneof![
        (
            text(),
            any::<f64>(),
            any::<(u8, u8)>(),
            proptest::option::of(any::<(i64, i64)>()),
            prop::collection::vec(uuid(), 0..4),
            any::<u32>()
        )
            .prop_map(|(name, bpm, (numerator, denominator), range, order, sample_rate)| Record::Project(
                Project {
                    name,
                    tempo: Bpm(if bpm.is_nan() { 0.0 } else { bpm }),
                    time_signature: TimeSignature { numerator, denominator },
                    loop_range: range.map(|(start, end)| LoopRange { start: Ticks(start), end: Ticks(end) }),
                    track_order: order.into_iter().map(TrackId).collect(),
                    sample_rate,
                }
            )),
        arb_track().prop_map(Record::Track),
        (uuid(), uuid(), any::<[i64; 4]>(), any::<u64>(), float(), text()).prop_map(
            |(track, asset, [start, length, fade_in, fade_out], offset, gain_db, name)| {
                Record::Clip(Clip {
                    track: TrackId(track),
                    asset: AssetId(asset),
                    start: Ticks(start),
                    length: Ticks(length),
                    source_offset: Frames(offset),
                    gain_db,
                    fade_in: Ticks(fade_in),
                    fade_out: Ticks(fade_out),
                    name,
                })
            }
        ),
        (uuid(), any::<bool>(), any::<bool>(), prop::collection::vec(arb_point(), 0..4)).prop_map(
            |(track, pan, enabled, points)| {
                let parameter = if pan { Parameter::Pan } else { Parameter::Gain };
                Record::AutomationLane(AutomationLane { track: TrackId(track), parameter, enabled, points })
            }
        ),
        (any::<[u8; 32]>(), text(), any::<(u32, u16, u64, u64, bool)>(), 0u8..5).prop_map(
            |(hash, name, (sample_rate, channels, frames, byte_size, peaks_ready), codec)| {
                Record::AudioAsset(AudioAsset {
                    hash: ContentHash(hash),
                    name,
                    sample_rate,
                    channels,
                    frames: Frames(frames),
                    codec: [Codec::Wav, Codec::Aiff, Codec::Flac, Codec::Mp3, Codec::Vorbis][codec as usize],
                    byte_size,
                    peaks_ready,
                })
            }
        ),
        (uuid(), arb_role()).prop_map(|(user, role)| Record::Member(Member { user: UserId(user), role })),
    ]
}

fn arb_field() -> impl Strategy<Value = Field> {
    prop_oneof![
        project_field().prop_map(Field::Project),
        track_field().prop_map(Field::Track),
        clip_field().prop_map(Field::Clip),
        uuid().prop_map(|t| Field::Clip(ClipField::Track(TrackId(t)))),
        any::<bool>().prop_map(|b| Field::AutomationLane(LaneField::Enabled(b))),
        text().prop_map(|n| Field::AudioAsset(AssetField::Name(n))),
        any::<bool>().prop_map(|b| Field::AudioAsset(AssetField::PeaksReady(b))),
        arb_role().prop_map(|r| Field::Member(MemberField::Role(r))),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    let at = prop_oneof![
        Just(ListPosition::Start),
        Just(ListPosition::End),
        uuid().prop_map(ListPosition::Before),
        uuid().prop_map(ListPosition::After),
    ];
    let item = prop_oneof![uuid().prop_map(|t| ListItem::Track(TrackId(t))), arb_point().prop_map(ListItem::Point)];
    prop_oneof![
        (record_id(), arb_record()).prop_map(|(id, record)| Op::Create { id, record }),
        (record_id(), arb_field(), proptest::option::of(arb_field())).prop_map(|(target, value, expect)| Op::Set {
            target,
            value,
            expect
        }),
        (record_id(), item, at).prop_map(|(target, item, at)| Op::ListInsert { target, item, at }),
        (record_id(), uuid()).prop_map(|(target, item)| Op::ListRemove { target, item }),
        record_id().prop_map(|target| Op::Delete { target }),
    ]
}

fn arb_tx() -> impl Strategy<Value = Transaction> {
    (uuid(), uuid(), prop::collection::vec(arb_op(), 0..6)).prop_map(|(id, project, ops)| Transaction {
        id: TxId(id),
        project: ProjectId(project),
        ops,
    })
}

fn arb_change() -> impl Strategy<Value = RecordChange> {
    (record_id(), any::<u64>(), proptest::option::of(arb_record())).prop_map(|(id, version, record)| RecordChange {
        id,
        version: Version(version),
        record,
    })
}

fn arb_changes() -> impl Strategy<Value = Vec<RecordChange>> {
    prop::collection::vec(arb_change(), 0..4)
}

fn arb_rejection() -> impl Strategy<Value = Rejection> {
    prop_oneof![
        Just(Rejection::NoSuchProject),
        Just(Rejection::Denied(Denied::ReadOnly)),
        any::<usize>().prop_map(|op| Rejection::Denied(Denied::OwnersOnly { op })),
        (any::<usize>(), arb_field(), record_id()).prop_map(|(index, current, id)| Rejection::Apply(ApplyError::Op {
            index,
            reason: OpFailure::Conflict { id, current }
        })),
        (record_id(), float())
            .prop_map(|(id, pan)| Rejection::Apply(ApplyError::Record { id, reason: Invalid::Pan(pan) })),
        Just(Rejection::Apply(ApplyError::NoOwner)),
    ]
}

fn arb_client_msg() -> impl Strategy<Value = ClientMsg> {
    prop_oneof![
        (any::<u32>(), text()).prop_map(|(protocol_version, client)| ClientMsg::Hello { protocol_version, client }),
        (text(), text()).prop_map(|(user, password)| ClientMsg::Login { user, password }),
        any::<[u8; 32]>().prop_map(|t| ClientMsg::Resume { token: SessionToken(t) }),
        (text(), proptest::option::of(text()))
            .prop_map(|(display_name, join_code)| ClientMsg::JoinOpen { display_name, join_code }),
        (uuid(), proptest::option::of(any::<u64>()))
            .prop_map(|(p, since)| ClientMsg::Subscribe { project: ProjectId(p), since: since.map(Seq) }),
        uuid().prop_map(|p| ClientMsg::Unsubscribe { project: ProjectId(p) }),
        arb_tx().prop_map(ClientMsg::Write),
        (uuid(), prop::collection::vec(record_id(), 0..5))
            .prop_map(|(p, ids)| ClientMsg::GetRecords { project: ProjectId(p), ids }),
        (uuid(), proptest::option::of((any::<i64>(), any::<i64>())), any::<bool>(), 0usize..3).prop_map(
            |(p, range, stems, format)| ClientMsg::Export {
                project: ProjectId(p),
                export: ExportRequest {
                    range: range.map(|(a, b)| (Ticks(a), Ticks(b))),
                    stems,
                    format: [ExportFormat::Int16, ExportFormat::Int24, ExportFormat::Float32][format],
                },
            }
        ),
        uuid().prop_map(|j| ClientMsg::GetJob { job: JobId(j) }),
        (uuid(), arb_presence()).prop_map(|(p, presence)| ClientMsg::Presence { project: ProjectId(p), presence }),
    ]
}

fn arb_presence() -> impl Strategy<Value = Presence> {
    (any::<i64>(), any::<bool>(), prop::collection::vec(record_id(), 0..4), proptest::option::of(any::<i64>()))
        .prop_map(|(playhead, playing, selection, pointer)| Presence {
            playhead: Ticks(playhead),
            playing,
            selection,
            pointer: pointer.map(Ticks),
        })
}

fn arb_job_state() -> impl Strategy<Value = JobState> {
    prop_oneof![
        any::<u32>().prop_map(|attempts| JobState::Queued { attempts }),
        any::<u32>().prop_map(|attempt| JobState::Running { attempt }),
        any::<u32>().prop_map(|files| JobState::Done { files }),
        text().prop_map(|error| JobState::Failed { error }),
    ]
}

fn arb_server_msg() -> impl Strategy<Value = ServerMsg> {
    prop_oneof![
        (any::<u32>(), text(), any::<bool>()).prop_map(|(protocol_version, server, open)| ServerMsg::Welcome {
            protocol_version,
            server,
            open
        }),
        (uuid(), text(), any::<[u8; 32]>()).prop_map(|(u, name, t)| ServerMsg::LoggedIn {
            user: UserId(u),
            name,
            token: SessionToken(t)
        }),
        (uuid(), any::<u64>(), arb_role(), any::<bool>(), arb_changes()).prop_map(
            |(p, seq, role, snapshot, changes)| ServerMsg::Subscribed {
                project: ProjectId(p),
                seq: Seq(seq),
                role,
                catch_up: if snapshot { CatchUp::Snapshot(changes) } else { CatchUp::Delta(changes) },
            }
        ),
        (uuid(), any::<u64>(), prop::collection::vec((record_id(), any::<u64>()), 0..4)).prop_map(
            |(t, seq, versions)| ServerMsg::Committed {
                tx_id: TxId(t),
                seq: Seq(seq),
                versions: versions.into_iter().map(|(id, v)| (id, Version(v))).collect(),
            }
        ),
        (uuid(), arb_rejection()).prop_map(|(t, reason)| ServerMsg::Rejected { tx_id: TxId(t), reason }),
        (uuid(), arb_changes()).prop_map(|(p, records)| ServerMsg::Records { project: ProjectId(p), records }),
        (uuid(), any::<u64>(), uuid(), uuid(), arb_changes()).prop_map(|(p, seq, t, a, changes)| ServerMsg::Bump(
            Bump { project: ProjectId(p), seq: Seq(seq), tx_id: TxId(t), author: UserId(a), changes }
        )),
        uuid().prop_map(|j| ServerMsg::JobQueued { job: JobId(j) }),
        (uuid(), any::<u64>(), uuid(), text(), proptest::option::of(arb_presence())).prop_map(
            |(p, session, u, name, presence)| ServerMsg::Presence {
                project: ProjectId(p),
                peer: PeerPresence { session, user: UserId(u), name, presence },
            }
        ),
        (uuid(), 0usize..3, uuid(), arb_job_state()).prop_map(|(j, kind, p, state)| ServerMsg::Job(JobInfo {
            id: JobId(j),
            kind: [JobKind::Peaks, JobKind::Transcode, JobKind::Export][kind],
            project: ProjectId(p),
            state,
        })),
        (0usize..8, text()).prop_map(|(code, message)| ServerMsg::Error {
            code: [
                ErrorCode::ProtocolVersion,
                ErrorCode::BadFrame,
                ErrorCode::OutOfOrder,
                ErrorCode::BadCredentials,
                ErrorCode::Denied,
                ErrorCode::NoSuchProject,
                ErrorCode::SlowConsumer,
                ErrorCode::Internal
            ][code],
            message,
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_client_message_survives_a_frame(message in arb_client_msg()) {
        let codec = FrameCodec::default();
        let bytes = codec.encode_to_vec(&message).unwrap();
        prop_assert_eq!(codec.decode::<ClientMsg>(&bytes).unwrap(), (message, bytes.len()));
    }

    #[test]
    fn every_server_message_survives_a_frame(message in arb_server_msg()) {
        let codec = FrameCodec::default();
        let bytes = codec.encode_to_vec(&message).unwrap();
        prop_assert_eq!(codec.decode::<ServerMsg>(&bytes).unwrap(), (message, bytes.len()));
    }

    #[test]
    fn arbitrary_bytes_decode_to_an_error_or_a_message(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let codec = FrameCodec::default();
        let _ = codec.decode::<ClientMsg>(&bytes);
        let _ = codec.decode::<ServerMsg>(&bytes);
        let _ = codec.decode_body::<ClientMsg>(&bytes);
        let _ = codec.decode_body::<ServerMsg>(&bytes);
    }

    #[test]
    fn a_damaged_frame_never_panics_the_decoder(message in arb_client_msg(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let codec = FrameCodec::default();
        let mut bytes = codec.encode_to_vec(&message).unwrap();
        for (index, value) in flips {
            let at = index.index(bytes.len());
            bytes[at] = value;
        }
        if let Ok((_, used)) = codec.decode::<ClientMsg>(&bytes) {
            prop_assert!(used <= bytes.len());
        }
    }
}
