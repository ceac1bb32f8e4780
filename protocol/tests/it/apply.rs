use ensemble_protocol::*;

use crate::fixture::*;

/// Applies `ops` and returns the outcome, checking that a rejection changed nothing.
fn run(state: &mut ProjectState, ops: Vec<Op>) -> Result<Applied, ApplyError> {
    let before = state.clone();
    let result = state.apply(&tx(ops));
    if result.is_err() {
        assert_eq!(*state, before, "a rejected transaction changed the state");
    }
    result
}

fn rejected(state: &mut ProjectState, ops: Vec<Op>) -> ApplyError {
    run(state, ops).expect_err("the transaction should be rejected")
}

/// Applies `ops`, then their inverse, and checks every value is back and every touched version
/// went up.
fn round_trip(state: &mut ProjectState, ops: Vec<Op>) {
    let before = state.clone();
    let applied = run(state, ops).unwrap();
    let undone = run(state, applied.inverse).unwrap();
    assert_eq!(undone.changed, applied.changed);
    for id in &applied.changed {
        let (was, now) = (before.change(*id), state.change(*id));
        assert_eq!(was.record, now.record, "{id} not restored");
        assert!(now.version > was.version, "{id}: version did not advance");
    }
    assert_eq!(state.len(), before.len());
}

fn track_of(state: &ProjectState, id: TrackId) -> &Track {
    match &state.entry(id.into()).unwrap().record {
        Record::Track(track) => track,
        other => panic!("{other:?} is not a track"),
    }
}

fn op_failure(error: ApplyError) -> (usize, OpFailure) {
    match error {
        ApplyError::Op { index, reason } => (index, reason),
        other => panic!("expected an op failure, got {other}"),
    }
}

#[test]
fn set_changes_one_field_and_bumps_the_version_once() {
    let mut state = demo();
    let version = state.entry(DRUMS.into()).unwrap().version;
    let applied = run(
        &mut state,
        vec![set(DRUMS, Field::Track(TrackField::Gain(-3.0))), set(DRUMS, Field::Track(TrackField::Pan(0.5)))],
    )
    .unwrap();
    assert_eq!(applied.changed, vec![RecordId::from(DRUMS)]);
    assert_eq!(state.entry(DRUMS.into()).unwrap().version, Version(version.0 + 1));
    assert_eq!((track_of(&state, DRUMS).gain_db, track_of(&state, DRUMS).pan), (-3.0, 0.5));
}

#[test]
fn every_kind_of_op_inverts() {
    let mut state = demo();
    round_trip(&mut state, vec![set(KICK, Field::Clip(ClipField::Start(Ticks(1920))))]);
    round_trip(&mut state, vec![set(KICK, Field::Clip(ClipField::Track(BASS)))]);
    round_trip(&mut state, vec![Op::ListRemove { target: PROJECT.into(), item: DRUMS.0 }]);
    round_trip(&mut state, vec![Op::ListRemove { target: PROJECT.into(), item: BASS.0 }]);
    let lane = RecordId::from(DRUMS_GAIN);
    round_trip(
        &mut state,
        vec![Op::ListInsert {
            target: lane,
            item: ListItem::Point(point(3, 480, -3.0)),
            at: ListPosition::After(PointId::from_u128(1).0),
        }],
    );
    round_trip(&mut state, vec![create(TrackId::from_u128(0x999), Record::Track(track("Keys")))]);
    round_trip(&mut state, vec![Op::Delete { target: KICK.into() }]);
}

#[test]
fn deleting_a_track_with_its_clips_undoes_in_one_step_and_keeps_its_place() {
    let mut state = demo();
    let ops = vec![
        Op::Delete { target: KICK.into() },
        Op::Delete { target: DRUMS_GAIN.into() },
        Op::ListRemove { target: PROJECT.into(), item: DRUMS.0 },
        Op::Delete { target: DRUMS.into() },
    ];
    round_trip(&mut state, ops);
    assert_eq!(state.project().track_order, vec![DRUMS, BASS]);
}

#[test]
fn a_record_in_use_cannot_be_deleted() {
    let mut state = demo();
    let (index, reason) = op_failure(rejected(&mut state, vec![Op::Delete { target: DRUMS.into() }]));
    assert_eq!(index, 0);
    assert!(matches!(reason, OpFailure::InUse { .. }), "{reason}");
    let reason = op_failure(rejected(&mut state, vec![Op::Delete { target: LOOP.into() }])).1;
    assert_eq!(reason, OpFailure::InUse { id: LOOP.into(), by: KICK.into() });
}

#[test]
fn a_deleted_record_keeps_counting_versions_when_restored() {
    let mut state = demo();
    let version = state.entry(KICK.into()).unwrap().version;
    let applied = run(&mut state, vec![Op::Delete { target: KICK.into() }]).unwrap();
    assert_eq!(state.tombstone(KICK.into()), Some(Version(version.0 + 1)));
    let reason = op_failure(rejected(&mut state, vec![set(KICK, Field::Clip(ClipField::Gain(-1.0)))])).1;
    assert_eq!(reason, OpFailure::Deleted(KICK.into()));
    run(&mut state, applied.inverse).unwrap();
    assert_eq!(state.entry(KICK.into()).unwrap().version, Version(version.0 + 2));
    assert_eq!(state.tombstone(KICK.into()), None);
}

#[test]
fn expect_conflicts_only_on_its_own_field() {
    let mut state = demo();
    let mine = run(&mut state, vec![set(DRUMS, Field::Track(TrackField::Gain(-6.0)))]).unwrap();
    // A collaborator changes another field: the undo still applies.
    run(&mut state, vec![set(DRUMS, Field::Track(TrackField::Pan(-0.25)))]).unwrap();
    run(&mut state.clone(), mine.inverse.clone()).unwrap();
    // A collaborator changes the same field: the undo is refused and says what it is now.
    run(&mut state, vec![set(DRUMS, Field::Track(TrackField::Gain(-1.0)))]).unwrap();
    let reason = op_failure(rejected(&mut state, mine.inverse)).1;
    assert_eq!(reason, OpFailure::Conflict { id: DRUMS.into(), current: Field::Track(TrackField::Gain(-1.0)) });
    assert_eq!(
        reason.to_string(),
        format!("gain_db of record {} has changed since (it is now Track(Gain(-1.0)))", RecordId::from(DRUMS))
    );
}

#[test]
fn expect_must_name_the_field_being_set() {
    let mut state = demo();
    let op = set_expecting(DRUMS, Field::Track(TrackField::Gain(-6.0)), Field::Track(TrackField::Pan(0.0)));
    let reason = op_failure(rejected(&mut state, vec![op])).1;
    assert!(matches!(reason, OpFailure::ExpectMismatch { .. }), "{reason}");
}

#[test]
fn a_transaction_applies_whole_or_not_at_all() {
    let mut state = demo();
    let error = rejected(
        &mut state,
        vec![
            set(DRUMS, Field::Track(TrackField::Name("Kit".into()))),
            Op::Delete { target: KICK.into() },
            create(TrackId::from_u128(0x998), Record::Track(track("Keys"))),
            Op::ListRemove { target: PROJECT.into(), item: BASS.0 },
            set(BASS, Field::Track(TrackField::Pan(2.0))),
        ],
    );
    assert_eq!(op_failure(error), (4, OpFailure::Invalid(Invalid::Pan(2.0))));
}

#[test]
fn values_out_of_range_are_rejected_with_the_reason() {
    let cases = [
        (set(PROJECT, Field::Project(ProjectField::Tempo(Bpm(19.9)))), Invalid::Tempo(19.9)),
        (set(PROJECT, Field::Project(ProjectField::Tempo(Bpm(1000.0)))), Invalid::Tempo(1000.0)),
        (set(DRUMS, Field::Track(TrackField::Gain(12.5))), Invalid::Gain(12.5)),
        (set(DRUMS, Field::Track(TrackField::Pan(-1.01))), Invalid::Pan(-1.01)),
        (set(KICK, Field::Clip(ClipField::Length(Ticks(0)))), Invalid::Length(0)),
        (set(KICK, Field::Clip(ClipField::Start(Ticks(-1)))), Invalid::Position(-1)),
        (set(DRUMS, Field::Track(TrackField::Name("x".repeat(257)))), Invalid::NameTooLong(257)),
        (
            set(PROJECT, Field::Project(ProjectField::TimeSignature(TimeSignature { numerator: 4, denominator: 3 }))),
            Invalid::TimeSignature { numerator: 4, denominator: 3 },
        ),
        (
            set(
                PROJECT,
                Field::Project(ProjectField::LoopRange(Some(LoopRange { start: Ticks(960), end: Ticks(960) }))),
            ),
            Invalid::Loop { start: 960, end: 960 },
        ),
    ];
    for (op, invalid) in cases {
        let mut state = demo();
        assert_eq!(op_failure(rejected(&mut state, vec![op])).1, OpFailure::Invalid(invalid));
    }
    let mut state = demo();
    let error = rejected(&mut state, vec![set(DRUMS, Field::Track(TrackField::Gain(f32::NAN)))]);
    assert!(matches!(op_failure(error).1, OpFailure::Invalid(Invalid::Gain(g)) if g.is_nan()));
}

#[test]
fn silence_and_the_limits_themselves_are_accepted() {
    let mut state = demo();
    run(
        &mut state,
        vec![
            set(DRUMS, Field::Track(TrackField::Gain(f32::NEG_INFINITY))),
            set(BASS, Field::Track(TrackField::Gain(12.0))),
            set(BASS, Field::Track(TrackField::Pan(-1.0))),
            set(PROJECT, Field::Project(ProjectField::Tempo(Bpm(20.0)))),
            set(DRUMS, Field::Track(TrackField::Name("é".repeat(256)))),
        ],
    )
    .unwrap();
    round_trip(&mut state, vec![set(DRUMS, Field::Track(TrackField::Gain(-12.0)))]);
}

#[test]
fn fades_must_fit_the_clip_once_the_transaction_ends() {
    let mut state = demo();
    let fades = |fade_in, fade_out| {
        vec![
            set(KICK, Field::Clip(ClipField::FadeIn(Ticks(fade_in)))),
            set(KICK, Field::Clip(ClipField::FadeOut(Ticks(fade_out)))),
        ]
    };
    assert_eq!(
        rejected(&mut state, fades(2000, 2000)),
        ApplyError::Record { id: KICK.into(), reason: Invalid::Fades { fade_in: 2000, fade_out: 2000, length: 3840 } }
    );
    // Lengthening in the same transaction makes room, whichever op comes first.
    let mut ops = fades(2000, 2000);
    ops.push(set(KICK, Field::Clip(ClipField::Length(Ticks(4000)))));
    run(&mut state.clone(), ops.clone()).unwrap();
    ops.rotate_right(1);
    run(&mut state, ops).unwrap();
}

#[test]
fn list_positions_are_anchored_on_items() {
    let mut state = demo();
    let keys = TrackId::from_u128(0x900);
    let ops = vec![
        create(keys, Record::Track(track("Keys"))),
        Op::ListInsert { target: PROJECT.into(), item: ListItem::Track(keys), at: ListPosition::Before(BASS.0) },
    ];
    run(&mut state, ops).unwrap();
    assert_eq!(state.project().track_order, vec![DRUMS, keys, BASS]);
    let again = Op::ListInsert { target: PROJECT.into(), item: ListItem::Track(keys), at: ListPosition::Start };
    assert_eq!(op_failure(rejected(&mut state, vec![again])).1, OpFailure::Invalid(Invalid::DuplicateItem(keys.0)));
    let gone = uuid::Uuid::from_u128(0xdead);
    let lane = RecordId::from(DRUMS_GAIN);
    let orphan =
        Op::ListInsert { target: lane, item: ListItem::Point(point(9, 10, 0.0)), at: ListPosition::After(gone) };
    assert_eq!(op_failure(rejected(&mut state, vec![orphan])).1, OpFailure::AnchorMissing(gone));
    let missing = Op::ListRemove { target: lane, item: gone };
    assert_eq!(op_failure(rejected(&mut state, vec![missing])).1, OpFailure::ItemMissing(gone));
    let wrong_list = Op::ListInsert { target: DRUMS.into(), item: ListItem::Track(BASS), at: ListPosition::End };
    assert_eq!(op_failure(rejected(&mut state, vec![wrong_list])).1, OpFailure::NoSuchList(RecordKind::Track));
}

#[test]
fn automation_values_follow_their_parameter() {
    let mut state = demo();
    let lane = RecordId::from(DRUMS_GAIN);
    let loud = Op::ListInsert { target: lane, item: ListItem::Point(point(5, 0, 20.0)), at: ListPosition::End };
    assert_eq!(op_failure(rejected(&mut state, vec![loud])).1, OpFailure::Invalid(Invalid::Gain(20.0)));
    let pan_lane = LaneId::from_u128(0x601);
    let lane = AutomationLane { track: BASS, parameter: Parameter::Pan, enabled: true, points: vec![point(6, 0, 1.5)] };
    let error = rejected(&mut state, vec![create(pan_lane, Record::AutomationLane(lane))]);
    assert_eq!(op_failure(error).1, OpFailure::Invalid(Invalid::Pan(1.5)));
}

#[test]
fn references_must_point_at_live_records_of_the_right_kind() {
    let mut state = demo();
    let reason = op_failure(rejected(&mut state, vec![set(KICK, Field::Clip(ClipField::Track(TrackId(LOOP.0))))])).1;
    assert_eq!(
        reason,
        OpFailure::WrongKind { id: LOOP.into(), expected: RecordKind::Track, found: RecordKind::AudioAsset }
    );
    let nowhere = TrackId::from_u128(0xabc);
    let reason = op_failure(rejected(
        &mut state,
        vec![create(ClipId::from_u128(0x501), Record::Clip(ensemble_testkit::records::clip(nowhere, LOOP)))],
    ))
    .1;
    assert_eq!(reason, OpFailure::Missing(nowhere.into()));
    let reason = op_failure(rejected(&mut state, vec![set(DRUMS, Field::Clip(ClipField::Gain(0.0)))])).1;
    assert_eq!(reason, OpFailure::WrongKind { id: DRUMS.into(), expected: RecordKind::Clip, found: RecordKind::Track });
    let reason = op_failure(rejected(&mut state, vec![create(DRUMS, Record::Track(track("Again")))])).1;
    assert_eq!(reason, OpFailure::Exists(DRUMS.into()));
}

#[test]
fn the_project_record_is_neither_created_nor_deleted() {
    let mut state = demo();
    let reason = op_failure(rejected(&mut state, vec![Op::Delete { target: PROJECT.into() }])).1;
    assert_eq!(reason, OpFailure::ProjectRecord);
    let reason = op_failure(rejected(
        &mut state,
        vec![create(RecordId::from_u128(1), Record::Project(ensemble_testkit::records::project("Demo")))],
    ))
    .1;
    assert_eq!(reason, OpFailure::ProjectRecord);
}

#[test]
fn a_project_keeps_an_owner_and_each_user_one_membership() {
    let mut state = demo();
    let owner = MemberId::from_u128(0x700);
    let demote = set(owner, Field::Member(MemberField::Role(Role::Editor)));
    assert_eq!(rejected(&mut state, vec![demote.clone()]), ApplyError::NoOwner);
    assert_eq!(rejected(&mut state, vec![Op::Delete { target: owner.into() }]), ApplyError::NoOwner);
    // Handing ownership over in one transaction is fine.
    let promote = set(MemberId::from_u128(0x701), Field::Member(MemberField::Role(Role::Owner)));
    run(&mut state, vec![promote, demote]).unwrap();
    assert_eq!(state.role_of(OWNER), Some(Role::Editor));
    let twice = create(MemberId::from_u128(0x7ff), Record::Member(Member { user: EDITOR, role: Role::Viewer }));
    assert_eq!(op_failure(rejected(&mut state, vec![twice])).1, OpFailure::AlreadyMember(EDITOR));
}

#[test]
fn transactions_are_for_one_project_and_not_empty() {
    let mut state = demo();
    let other = ProjectId::from_u128(0xfff);
    let error = state.apply(&Transaction::new(other, vec![Op::Delete { target: KICK.into() }])).unwrap_err();
    assert_eq!(error, ApplyError::WrongProject { expected: PROJECT, found: other });
    assert_eq!(rejected(&mut state, vec![]), ApplyError::Size(Invalid::OpCount(0)));
}

#[test]
fn invert_leaves_the_state_alone() {
    let state = demo();
    let ops = vec![set(DRUMS, Field::Track(TrackField::Mute(true)))];
    let inverse = invert(&state, &tx(ops)).unwrap();
    assert_eq!(
        inverse,
        vec![set_expecting(DRUMS, Field::Track(TrackField::Mute(false)), Field::Track(TrackField::Mute(true)))]
    );
    assert_eq!(state, demo());
}

#[test]
fn a_snapshot_rebuilds_the_same_state() {
    let mut state = demo();
    run(&mut state, vec![Op::Delete { target: KICK.into() }]).unwrap();
    let mut copy = ProjectState::from_changes(PROJECT, state.snapshot()).unwrap();
    copy.absorb(state.change(KICK.into())).unwrap();
    assert_eq!(copy, state);
    let no_project = state.snapshot().into_iter().skip(1);
    assert_eq!(ProjectState::from_changes(PROJECT, no_project).unwrap_err(), OpFailure::Missing(PROJECT.into()));
}
