//! `.mid` files in and out, against a file made by another tool (`assets/test/riff.mid`, made
//! by mido with `assets/test/make_riff.py`).

use ensemble_client::midi::{self, MidiError};
use ensemble_protocol::*;

const RIFF: &[u8] = include_bytes!("../../../assets/test/riff.mid");

/// Pitch, velocity, start and length of each note.
fn summary(notes: &[Note]) -> Vec<(u8, u8, i64, i64)> {
    notes.iter().map(|n| (n.pitch, n.velocity, n.start.0, n.length.0)).collect()
}

#[test]
fn a_file_made_by_mido_imports_note_for_note() {
    let parts = midi::read(RIFF).unwrap();
    let names: Vec<&str> = parts.iter().map(|part| part.name.as_str()).collect();
    assert_eq!(names, ["Bass", "Keys"]);
    // 480 ticks a quarter in the file, 960 here: an eighth held for 200 file ticks is 400.
    let pitches = [36, 36, 48, 36, 43, 36, 48, 46];
    let bass: Vec<(u8, u8, i64, i64)> = pitches
        .iter()
        .enumerate()
        .map(|(n, pitch)| (*pitch, if n % 2 == 0 { 100 } else { 70 }, n as i64 * 480, 400))
        .collect();
    assert_eq!(summary(&parts[0].notes), bass, "note-ons at velocity 0 end notes");
    // A triad, then two Es that overlap: the first note-off ends the first E.
    let keys =
        vec![(60, 90, 0, 1920), (64, 90, 0, 1920), (67, 90, 0, 1920), (64, 80, 1920, 1920), (64, 60, 2880, 1920)];
    assert_eq!(summary(&parts[1].notes), keys);
    assert_eq!(parts[1].length, Ticks(4800));
}

#[test]
fn a_clip_written_out_reads_back_note_for_note() {
    let parts = midi::read(RIFF).unwrap();
    let signature = TimeSignature { numerator: 3, denominator: 4 };
    let bytes = midi::write("Keys", &parts[1].notes, Bpm(97.0), signature);
    let again = midi::read(&bytes).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].name, "Keys");
    assert_eq!(summary(&again[0].notes), summary(&parts[1].notes));
    // The tempo and metre travel as the file's meta events.
    let smf = midly::Smf::parse(&bytes).unwrap();
    let metas: Vec<String> = smf.tracks[0]
        .iter()
        .filter_map(|event| match event.kind {
            midly::TrackEventKind::Meta(midly::MetaMessage::Tempo(t)) => Some(format!("tempo {}", t.as_int())),
            midly::TrackEventKind::Meta(midly::MetaMessage::TimeSignature(n, d, ..)) => Some(format!("{n}/{}", 1 << d)),
            _ => None,
        })
        .collect();
    assert_eq!(metas, ["tempo 618557", "3/4"]);
}

#[test]
fn damaged_or_empty_files_are_refused_with_a_reason() {
    assert!(matches!(midi::read(b"MThd and then nonsense"), Err(MidiError::Malformed(_))));
    assert!(midi::read(&RIFF[..30]).is_err(), "a file cut short");
    let silent = midi::write("Nothing", &[], Bpm(120.0), TimeSignature { numerator: 4, denominator: 4 });
    assert!(matches!(midi::read(&silent), Err(MidiError::Empty)));
}
