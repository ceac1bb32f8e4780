//! A small project to test against (the records and ops come from the shared test kit).

use ensemble_protocol::*;
pub(crate) use ensemble_testkit::records::{asset, create, point, set, set_expecting, track};
use ensemble_testkit::records::{clip, project};

pub(crate) const PROJECT: ProjectId = ProjectId::from_u128(0x100);
pub(crate) const OWNER: UserId = UserId::from_u128(0x200);
pub(crate) const EDITOR: UserId = UserId::from_u128(0x201);
pub(crate) const VIEWER: UserId = UserId::from_u128(0x202);
pub(crate) const DRUMS: TrackId = TrackId::from_u128(0x300);
pub(crate) const BASS: TrackId = TrackId::from_u128(0x301);
pub(crate) const LOOP: AssetId = AssetId::from_u128(0x400);
pub(crate) const KICK: ClipId = ClipId::from_u128(0x500);
pub(crate) const DRUMS_GAIN: LaneId = LaneId::from_u128(0x600);

pub(crate) fn tx(ops: Vec<Op>) -> Transaction {
    Transaction::new(PROJECT, ops)
}

fn member(id: u128, user: UserId, role: Role) -> Op {
    create(MemberId::from_u128(id), Record::Member(Member { user, role }))
}

/// The authority's part: a project with its three members and an asset.
pub(crate) fn empty_project() -> ProjectState {
    let mut state = ProjectState::new(PROJECT, project("Demo")).unwrap();
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
            create(KICK, Record::Clip(clip(DRUMS, LOOP))),
            create(DRUMS_GAIN, Record::AutomationLane(lane)),
        ]))
        .unwrap();
    state
}
