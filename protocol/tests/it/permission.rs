use ensemble_protocol::permission::{authorize_read, authorize_write};
use ensemble_protocol::*;

use crate::fixture::*;

/// Whether `user` may submit `ops` to the demo project.
fn check(user: UserId, ops: Vec<Op>) -> Result<(), Denied> {
    let state = demo();
    authorize_write(state.role_of(user), &state, &tx(ops))
}

fn rename() -> Op {
    set(DRUMS, Field::Track(TrackField::Name("Kit".into())))
}

fn new_member(user: UserId) -> Op {
    create(MemberId::from_u128(0x7aa), Record::Member(Member { user, role: Role::Viewer }))
}

#[test]
fn strangers_can_neither_read_nor_write() {
    let stranger = UserId::from_u128(0xbad);
    assert_eq!(demo().role_of(stranger), None);
    assert_eq!(authorize_read(None), Err(Denied::NotMember));
    assert_eq!(check(stranger, vec![rename()]), Err(Denied::NotMember));
}

#[test]
fn viewers_read_but_write_nothing() {
    assert_eq!(authorize_read(demo().role_of(VIEWER)), Ok(()));
    assert_eq!(check(VIEWER, vec![rename()]), Err(Denied::ReadOnly));
}

#[test]
fn editors_edit_music_but_not_membership() {
    assert_eq!(check(EDITOR, vec![rename(), Op::Delete { target: KICK.into() }]), Ok(()));
    let stranger = UserId::from_u128(0xbad);
    assert_eq!(check(EDITOR, vec![rename(), new_member(stranger)]), Err(Denied::OwnersOnly { op: 1 }));
    let promote = set(MemberId::from_u128(0x701), Field::Member(MemberField::Role(Role::Owner)));
    assert_eq!(check(EDITOR, vec![promote]), Err(Denied::OwnersOnly { op: 0 }));
    assert_eq!(
        check(EDITOR, vec![Op::Delete { target: MemberId::from_u128(0x702).into() }]),
        Err(Denied::OwnersOnly { op: 0 })
    );
}

#[test]
fn owners_change_membership() {
    assert_eq!(check(OWNER, vec![new_member(UserId::from_u128(0xbad))]), Ok(()));
    assert_eq!(check(OWNER, vec![Op::Delete { target: MemberId::from_u128(0x702).into() }]), Ok(()));
}

#[test]
fn only_the_authority_creates_assets_or_marks_their_peaks() {
    let forged = create(AssetId::from_u128(0x401), Record::AudioAsset(asset()));
    assert_eq!(check(OWNER, vec![forged]), Err(Denied::AuthorityOnly { op: 0 }));
    let peaks = set(LOOP, Field::AudioAsset(AssetField::PeaksReady(true)));
    assert_eq!(check(EDITOR, vec![peaks]), Err(Denied::AuthorityOnly { op: 0 }));
    assert_eq!(check(EDITOR, vec![set(LOOP, Field::AudioAsset(AssetField::Name("Loop".into())))]), Ok(()));
}
