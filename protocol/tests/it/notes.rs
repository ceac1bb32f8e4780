//! Note clips: their notes as list items, checked like any value.

use ensemble_protocol::*;

use crate::fixture::*;

const RIFF: NoteClipId = NoteClipId::from_u128(0xa00);

fn note(id: u128, pitch: u8, velocity: u8, start: i64) -> Note {
    Note { id: NoteId::from_u128(id), pitch, velocity, start: Ticks(start), length: Ticks(240) }
}

fn with_riff() -> ProjectState {
    let mut state = demo();
    let clip = NoteClip {
        track: BASS,
        start: Ticks(0),
        length: Ticks(3840),
        name: "Riff".into(),
        notes: vec![note(1, 40, 100, 0)],
    };
    state.apply(&tx(vec![create(RIFF, Record::NoteClip(clip))])).unwrap();
    state
}

fn insert(note: Note) -> Op {
    Op::ListInsert { target: RIFF.into(), item: ListItem::Note(note), at: ListPosition::End }
}

fn notes(state: &ProjectState) -> Vec<Note> {
    match &state.entry(RIFF.into()).unwrap().record {
        Record::NoteClip(clip) => clip.notes.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn notes_are_list_items_two_people_edit_apart() {
    let mut state = with_riff();
    // Alice adds a note while Bob moves the first (remove and insert in one transaction).
    state.apply(&tx(vec![insert(note(2, 43, 90, 480))])).unwrap();
    let moved = note(1, 41, 100, 0);
    let bob = tx(vec![Op::ListRemove { target: RIFF.into(), item: moved.id.0 }, insert(moved)]);
    let applied = state.apply(&bob).unwrap();
    let pitches: Vec<u8> = notes(&state).iter().map(|n| n.pitch).collect();
    assert_eq!(pitches, vec![43, 41], "both edits stand");
    state.apply(&tx(applied.inverse)).unwrap();
    let pitches: Vec<u8> = notes(&state).iter().map(|n| n.pitch).collect();
    assert_eq!(pitches, vec![40, 43], "undo puts the note back where it was");
}

#[test]
fn notes_outside_midi_are_refused() {
    let mut state = with_riff();
    for bad in [note(3, 128, 100, 0), note(4, 60, 0, 0), note(5, 60, 128, 0)] {
        let reason = match state.apply(&tx(vec![insert(bad)])) {
            Err(ApplyError::Op { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(reason, OpFailure::Invalid(Invalid::Note { pitch: bad.pitch, velocity: bad.velocity }));
    }
    let early = Note { start: Ticks(-1), ..note(6, 60, 100, 0) };
    assert!(state.apply(&tx(vec![insert(early)])).is_err());
    // A track with a note clip is in use.
    let delete = vec![Op::ListRemove { target: PROJECT.into(), item: BASS.0 }, Op::Delete { target: BASS.into() }];
    match state.apply(&tx(delete)) {
        Err(ApplyError::Op { reason: OpFailure::InUse { by, .. }, .. }) => assert_eq!(by, RIFF.into()),
        other => panic!("{other:?}"),
    }
}
