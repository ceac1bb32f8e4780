//! Standard MIDI files (`.mid`), in and out, with `midly`.
//!
//! [`read`] takes each track of a file that has notes, on any channel, as a [`MidiPart`]: its
//! name and its notes in Ensemble's ticks (the file's own resolution converted to
//! [`TICKS_PER_QUARTER`]). A note-on at velocity 0 is a note-off, as many tools write it, and
//! overlapping notes of one pitch are ended first in, first out. The file's tempo is not taken:
//! notes are placed in beats, and play at the project's tempo. [`write()`] makes a one-track file
//! of a clip's notes, at the project's tempo and time signature, at Ensemble's resolution.

use std::collections::{HashMap, VecDeque};

use ensemble_protocol::{Bpm, Note, NoteId, TICKS_PER_QUARTER, Ticks, TimeSignature};
use midly::num::{u4, u7, u15, u24, u28};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};

/// The notes of one track of a file.
#[derive(Clone, Debug, PartialEq)]
pub struct MidiPart {
    /// The track's name, or "MIDI n" when it has none.
    pub name: String,
    /// Its notes, sorted by start, ids fresh.
    pub notes: Vec<Note>,
    /// Where its last note ends.
    pub length: Ticks,
}

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MidiError {
    /// Not a standard MIDI file, or a damaged one.
    #[error("not a readable MIDI file: {0}")]
    Malformed(String),
    /// Timed in SMPTE frames rather than beats.
    #[error("the file is timed in SMPTE frames; only files timed in beats can be imported")]
    Timecode,
    /// No track holds a note.
    #[error("the file has no notes")]
    Empty,
}

/// The parts of a standard MIDI file that hold notes.
pub fn read(bytes: &[u8]) -> Result<Vec<MidiPart>, MidiError> {
    let smf = Smf::parse(bytes).map_err(|error| MidiError::Malformed(error.to_string()))?;
    let per_quarter = match smf.header.timing {
        Timing::Metrical(ticks) => i64::from(ticks.as_int().max(1)),
        Timing::Timecode(..) => return Err(MidiError::Timecode),
    };
    let ours = |ticks: u64| Ticks((ticks as i64 * TICKS_PER_QUARTER + per_quarter / 2) / per_quarter);
    let mut parts = Vec::new();
    for (number, track) in smf.tracks.iter().enumerate() {
        let mut name = None;
        let mut now = 0u64;
        // Notes sounding, per channel and key, oldest first: (start, velocity).
        let mut held: HashMap<(u8, u8), VecDeque<(u64, u8)>> = HashMap::new();
        let mut notes = Vec::new();
        for event in track {
            now += u64::from(event.delta.as_int());
            match event.kind {
                TrackEventKind::Meta(MetaMessage::TrackName(bytes)) => {
                    name = Some(String::from_utf8_lossy(bytes).trim().to_owned()).filter(|n| !n.is_empty());
                }
                TrackEventKind::Midi { channel, message } => {
                    let (key, on) = match message {
                        MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => (key, Some(vel.as_int())),
                        MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. } => (key, None),
                        _ => continue,
                    };
                    let slot = held.entry((channel.as_int(), key.as_int())).or_default();
                    match on {
                        Some(velocity) => slot.push_back((now, velocity)),
                        None => {
                            if let Some((start, velocity)) = slot.pop_front() {
                                notes.push(note(key.as_int(), velocity, ours(start), ours(now)));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        // Notes never ended end with the track.
        for ((_, key), starts) in held {
            notes.extend(starts.into_iter().map(|(start, velocity)| note(key, velocity, ours(start), ours(now))));
        }
        if notes.is_empty() {
            continue;
        }
        notes.sort_by_key(|note| (note.start, note.pitch));
        let length = notes.iter().map(|note| note.start + note.length).max().unwrap_or(Ticks(0));
        parts.push(MidiPart { name: name.unwrap_or_else(|| format!("MIDI {}", number + 1)), notes, length });
    }
    if parts.is_empty() { Err(MidiError::Empty) } else { Ok(parts) }
}

fn note(pitch: u8, velocity: u8, start: Ticks, end: Ticks) -> Note {
    // A note at least a tick long: a file may end one on the tick it starts.
    let length = Ticks((end.0 - start.0).max(1));
    Note { id: NoteId::new_v7(), pitch: pitch.min(127), velocity: velocity.clamp(1, 127), start, length }
}

/// A one-track standard MIDI file of `notes` (starts from the clip's start), named `name`, at
/// `tempo` and `time_signature`, on channel 1.
pub fn write(name: &str, notes: &[Note], tempo: Bpm, time_signature: TimeSignature) -> Vec<u8> {
    // (tick, order at the same tick: offs before ons, event)
    let mut events: Vec<(i64, u8, TrackEventKind)> = Vec::new();
    let channel = u4::new(0);
    for note in notes {
        let (key, vel) = (u7::new(note.pitch.min(127)), u7::new(note.velocity.clamp(1, 127)));
        events.push((note.start.0, 1, TrackEventKind::Midi { channel, message: MidiMessage::NoteOn { key, vel } }));
        let off = MidiMessage::NoteOff { key, vel: u7::new(0) };
        events.push(((note.start + note.length).0, 0, TrackEventKind::Midi { channel, message: off }));
    }
    events.sort_by_key(|(tick, order, _)| (*tick, *order));
    let micros_per_quarter = (60_000_000.0 / tempo.0).round().clamp(1.0, f64::from(u24::max_value().as_int()));
    let denominator = time_signature.denominator.max(1).trailing_zeros() as u8;
    let mut track = vec![
        meta(MetaMessage::TrackName(name.as_bytes())),
        meta(MetaMessage::Tempo(u24::new(micros_per_quarter as u32))),
        meta(MetaMessage::TimeSignature(time_signature.numerator, denominator, 24, 8)),
    ];
    let mut now = 0;
    for (tick, _, kind) in events {
        let delta = u28::new((tick - now).clamp(0, i64::from(u28::max_value().as_int())) as u32);
        track.push(TrackEvent { delta, kind });
        now = tick;
    }
    track.push(meta(MetaMessage::EndOfTrack));
    let header = Header::new(Format::SingleTrack, Timing::Metrical(u15::new(TICKS_PER_QUARTER as u16)));
    let mut smf = Smf::new(header);
    smf.tracks.push(track);
    let mut bytes = Vec::new();
    // Writing to memory cannot fail.
    let _ = smf.write_std(&mut bytes);
    bytes
}

fn meta(message: MetaMessage<'_>) -> TrackEvent<'_> {
    TrackEvent { delta: u28::new(0), kind: TrackEventKind::Meta(message) }
}
