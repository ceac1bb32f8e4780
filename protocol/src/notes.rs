//! Note clips: the notes a track's instrument plays, for the piano roll and the synth.
//!
//! A [`NoteClip`] sits on a track like an audio clip, and holds its notes as a list, each note
//! an item with its own id ([`Note::id`]), so two people can draw, move and delete different
//! notes of one clip at once: a note is added by a list insert, removed by a list remove, and
//! changed by both in one transaction. A note's start counts from the clip's start; notes that
//! run past the clip's end are cut there when it plays.

use serde::{Deserialize, Serialize};

use crate::ids::{NoteId, TrackId};
use crate::time::Ticks;

/// Most notes in one clip.
pub const MAX_NOTES: usize = 65_536;

/// One note of a clip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Note {
    /// Names the note inside its clip's list.
    pub id: NoteId,
    /// MIDI pitch: 60 is middle C, 69 the A at 440 Hz.
    pub pitch: u8,
    /// How hard it is played, 1–127.
    pub velocity: u8,
    /// Where it starts, from the clip's start.
    pub start: Ticks,
    /// How long it is held; positive.
    pub length: Ticks,
}

impl Note {
    /// The note's frequency in Hz (equal temperament, A4 = 440 Hz).
    pub fn hertz(pitch: u8) -> f64 {
        440.0 * 2f64.powf((f64::from(pitch) - 69.0) / 12.0)
    }
}

/// A clip of notes on a track.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoteClip {
    /// The track it plays on.
    pub track: TrackId,
    /// Timeline position of its start.
    pub start: Ticks,
    /// How long it plays; positive.
    pub length: Ticks,
    /// Shown on the clip.
    pub name: String,
    /// The notes, in the order they were added (players sort them by start).
    pub notes: Vec<Note>,
}
