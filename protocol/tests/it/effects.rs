//! Effect chains: records on a track's chain, per-parameter fields, and their references.

use ensemble_protocol::effect::MAX_EFFECTS;
use ensemble_protocol::*;

use crate::fixture::*;

const REVERB: EffectId = EffectId::from_u128(0x800);
const EQ: EffectId = EffectId::from_u128(0x801);
const MIX_LANE: LaneId = LaneId::from_u128(0x602);

fn effect(kind: EffectKind, position: f64) -> Record {
    Record::Effect(Effect::new(Bus::Track(DRUMS), kind, position))
}

fn param(param: EffectParam, value: f32) -> Field {
    Field::Effect(EffectField::Param(param, value))
}

fn failure(state: &mut ProjectState, ops: Vec<Op>) -> OpFailure {
    let before = state.clone();
    match state.apply(&tx(ops)) {
        Err(ApplyError::Op { reason, .. }) => {
            assert_eq!(*state, before, "a rejected transaction changed the state");
            reason
        }
        other => panic!("expected an op failure, got {other:?}"),
    }
}

/// The demo with a reverb and an EQ on the drums, and the reverb's mix automated.
fn with_chain() -> ProjectState {
    let mut state = demo();
    let lane = AutomationLane {
        track: DRUMS,
        parameter: Parameter::Effect(REVERB, EffectParam::Mix),
        enabled: true,
        points: vec![point(7, 0, 0.2), point(8, 960, 0.8)],
    };
    state
        .apply(&tx(vec![
            create(REVERB, effect(EffectKind::Reverb, 2.0)),
            create(EQ, effect(EffectKind::Eq, 1.0)),
            create(MIX_LANE, Record::AutomationLane(lane)),
        ]))
        .unwrap();
    state
}

#[test]
fn knobs_are_fields_of_their_own_and_invert() {
    let mut state = with_chain();
    let ops = vec![
        set(REVERB, param(EffectParam::RoomSize, 0.9)),
        set(REVERB, Field::Effect(EffectField::Bypass(true))),
        set(EQ, Field::Effect(EffectField::Position(3.0))),
    ];
    let before = state.clone();
    let applied = state.apply(&tx(ops)).unwrap();
    let Record::Effect(reverb) = &state.entry(REVERB.into()).unwrap().record else { panic!("not an effect") };
    assert_eq!((reverb.param(EffectParam::RoomSize), reverb.bypass), (Some(0.9), true));
    assert_eq!(reverb.param(EffectParam::Mix), Some(0.3), "the other knobs keep their values");
    state.apply(&tx(applied.inverse)).unwrap();
    for id in [REVERB.into(), EQ.into()] {
        assert_eq!(state.change(id).record, before.change(id).record);
    }
}

#[test]
fn two_people_turning_different_knobs_of_one_effect_both_land() {
    let mut state = with_chain();
    let size = set_expecting(REVERB, param(EffectParam::RoomSize, 0.9), param(EffectParam::RoomSize, 0.6));
    let damping = set_expecting(REVERB, param(EffectParam::Damping, 0.1), param(EffectParam::Damping, 0.4));
    state.apply(&tx(vec![size])).unwrap();
    state.apply(&tx(vec![damping])).unwrap();
    let Record::Effect(reverb) = &state.entry(REVERB.into()).unwrap().record else { panic!("not an effect") };
    assert_eq!(reverb.param(EffectParam::RoomSize), Some(0.9));
    assert_eq!(reverb.param(EffectParam::Damping), Some(0.1));
}

#[test]
fn values_outside_a_parameter_or_its_effect_are_refused() {
    let mut state = with_chain();
    let loud = set(EQ, param(EffectParam::MidGain, 30.0));
    assert_eq!(
        failure(&mut state, vec![loud]),
        OpFailure::Invalid(Invalid::EffectParam { param: EffectParam::MidGain, value: 30.0 })
    );
    let not_a_reverb_knob = set(REVERB, param(EffectParam::Cutoff, 400.0));
    assert_eq!(
        failure(&mut state, vec![not_a_reverb_knob]),
        OpFailure::Invalid(Invalid::EffectParam { param: EffectParam::Cutoff, value: 400.0 })
    );
    let nowhere = set(EQ, Field::Effect(EffectField::Position(f64::NAN)));
    assert!(matches!(failure(&mut state, vec![nowhere]), OpFailure::Invalid(Invalid::EffectPosition(_))));
    let mut short = Effect::new(Bus::Track(DRUMS), EffectKind::Delay, 4.0);
    short.params.pop();
    let created = create(EffectId::from_u128(0x8ff), Record::Effect(short));
    assert_eq!(
        failure(&mut state, vec![created]),
        OpFailure::Invalid(Invalid::EffectParams { kind: EffectKind::Delay, expected: 3, found: 2 })
    );
}

#[test]
fn a_chain_holds_at_most_sixteen_effects() {
    let mut state = demo();
    let ops = (0..MAX_EFFECTS as u128)
        .map(|n| create(EffectId::from_u128(0x900 + n), effect(EffectKind::Delay, n as f64)))
        .collect();
    state.apply(&tx(ops)).unwrap();
    let one_more = create(EffectId::from_u128(0x9ff), effect(EffectKind::Delay, 99.0));
    assert_eq!(failure(&mut state, vec![one_more]), OpFailure::Invalid(Invalid::ChainFull));
}

#[test]
fn effects_and_their_lanes_keep_references_live() {
    let mut state = with_chain();
    // A track with effects, or an effect with a lane, is still in use.
    let delete_track = vec![
        Op::ListRemove { target: PROJECT.into(), item: DRUMS.0 },
        Op::Delete { target: KICK.into() },
        Op::Delete { target: DRUMS_GAIN.into() },
        Op::Delete { target: MIX_LANE.into() },
        Op::Delete { target: DRUMS.into() },
    ];
    assert!(matches!(failure(&mut state, delete_track.clone()), OpFailure::InUse { .. }));
    assert_eq!(
        failure(&mut state, vec![Op::Delete { target: REVERB.into() }]),
        OpFailure::InUse { id: REVERB.into(), by: MIX_LANE.into() }
    );
    // A lane names an effect on its own track, by a parameter that effect has.
    let elsewhere = AutomationLane {
        track: BASS,
        parameter: Parameter::Effect(REVERB, EffectParam::Mix),
        enabled: true,
        points: vec![],
    };
    assert_eq!(
        failure(&mut state, vec![create(LaneId::from_u128(0x6ff), Record::AutomationLane(elsewhere))]),
        OpFailure::ElsewhereEffect { effect: REVERB, track: BASS }
    );
    // Out of range for the parameter the lane drives.
    let lane = RecordId::from(MIX_LANE);
    let wet = Op::ListInsert { target: lane, item: ListItem::Point(point(9, 10, 1.5)), at: ListPosition::End };
    assert_eq!(
        failure(&mut state, vec![wet]),
        OpFailure::Invalid(Invalid::EffectParam { param: EffectParam::Mix, value: 1.5 })
    );
    // With the effects gone first, the track goes, and all of it comes back in one undo.
    let mut whole = delete_track;
    whole.insert(4, Op::Delete { target: REVERB.into() });
    whole.insert(5, Op::Delete { target: EQ.into() });
    let before = state.clone();
    let applied = state.apply(&tx(whole)).unwrap();
    state.apply(&tx(applied.inverse)).unwrap();
    for id in [DRUMS.into(), REVERB.into(), EQ.into(), RecordId::from(MIX_LANE)] {
        assert_eq!(state.change(id).record, before.change(id).record);
    }
}

#[test]
fn the_master_chain_holds_effects_of_its_own_but_no_instrument_and_no_lane() {
    let mut state = with_chain();
    let master = |kind: EffectKind| Record::Effect(Effect::new(Bus::Master, kind, 1.0));
    let limiter = EffectId::from_u128(0x880);
    state.apply(&tx(vec![create(limiter, master(EffectKind::Compressor))])).unwrap();
    state.apply(&tx(vec![set(limiter, param(EffectParam::Ratio, 8.0))])).unwrap();
    // Sixteen more on the master would be too many there, whatever the tracks hold.
    let full: Vec<Op> =
        (1..MAX_EFFECTS as u128).map(|n| create(EffectId::from_u128(0x880 + n), master(EffectKind::Delay))).collect();
    state.apply(&tx(full)).unwrap();
    let one_more = create(EffectId::from_u128(0x8fe), master(EffectKind::Eq));
    assert_eq!(failure(&mut state, vec![one_more]), OpFailure::Invalid(Invalid::ChainFull));
    let mut fresh = demo();
    let synth = create(EffectId::from_u128(0x8fd), master(EffectKind::Synth));
    assert_eq!(failure(&mut fresh, vec![synth]), OpFailure::Invalid(Invalid::InstrumentOnMaster));
    // A lane belongs to a track, and drives only that track's effects.
    let lane = AutomationLane {
        track: DRUMS,
        parameter: Parameter::Effect(limiter, EffectParam::Ratio),
        enabled: true,
        points: vec![],
    };
    let lane = create(LaneId::from_u128(0x8fc), Record::AutomationLane(lane));
    assert!(matches!(failure(&mut state, vec![lane]), OpFailure::ElsewhereEffect { .. }));
}
