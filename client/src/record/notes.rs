//! A take of notes: what the controller played while recording onto a track with an
//! instrument, placed by the engine's frame, and then a note clip.

use std::time::Instant;

use ensemble_protocol::{Frames, Note, NoteClip, NoteId, TICKS_PER_QUARTER, Ticks, Timebase, TrackId};

use crate::midi_in::MidiEvent;

/// A note played during a take, in timeline frames at the project's rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlayedNote {
    /// The key.
    pub pitch: u8,
    /// How hard, 1–127.
    pub velocity: u8,
    /// Where it began.
    pub start: i64,
    /// Where it ended; `None` while it is held.
    pub end: Option<i64>,
}

/// The notes of a take so far.
#[derive(Debug, Default)]
pub(super) struct NoteTake {
    pub(super) notes: Vec<PlayedNote>,
}

impl NoteTake {
    /// Takes in `event`, placed on the timeline by when it arrived: `now` is the frame the
    /// engine plays at `at_now`, at `rate` frames per second.
    pub(super) fn hear(&mut self, event: MidiEvent, (now, at_now): (i64, Instant), rate: u32) {
        let ago = at_now.saturating_duration_since(event.at).as_secs_f64();
        let frame = now - (ago * f64::from(rate)).round() as i64;
        if event.velocity > 0 {
            self.notes.push(PlayedNote { pitch: event.pitch, velocity: event.velocity, start: frame, end: None });
        } else if let Some(held) =
            self.notes.iter_mut().rev().find(|note| note.pitch == event.pitch && note.end.is_none())
        {
            held.end = Some(frame.max(held.start));
        }
    }

    /// The take as a note clip on `track` from `from`, ending at `end` (a frame): notes held at
    /// the end end there, notes begun before `from` or after the end are left out, and the
    /// clip is whole bars long. `None` when no note falls inside.
    pub(super) fn into_clip(
        self,
        (track, name): (TrackId, String),
        timebase: Timebase,
        bar: Ticks,
        from: Ticks,
        end: i64,
    ) -> Option<NoteClip> {
        let ticks = |frame: i64| timebase.ticks(Frames(frame.max(0) as u64)).0;
        let end_tick = ticks(end);
        let notes: Vec<Note> = self
            .notes
            .iter()
            .filter(|played| (from.0..end_tick).contains(&ticks(played.start)))
            .map(|played| {
                let start = ticks(played.start);
                let stop = ticks(played.end.unwrap_or(end).min(end));
                Note {
                    id: NoteId::new_v7(),
                    pitch: played.pitch.min(127),
                    velocity: played.velocity.clamp(1, 127),
                    start: Ticks(start - from.0),
                    length: Ticks((stop - start).max(TICKS_PER_QUARTER / 32)),
                }
            })
            .collect();
        if notes.is_empty() {
            return None;
        }
        let bar = bar.0.max(1);
        let needed = notes.iter().map(|note| note.start.0 + note.length.0).max().unwrap_or(0).max(end_tick - from.0);
        let length = Ticks(((needed + bar - 1) / bar).max(1) * bar);
        Some(NoteClip { track, start: from, length, name, notes })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ensemble_protocol::Bpm;

    use super::*;

    const TIMEBASE: Timebase = Timebase { tempo: Bpm(120.0), sample_rate: 48_000 };

    fn event(at: Instant, pitch: u8, velocity: u8) -> MidiEvent {
        MidiEvent { at, pitch, velocity }
    }

    #[test]
    fn notes_land_where_they_were_played_and_held_ones_end_with_the_take() {
        let (mut take, zero) = (NoteTake::default(), Instant::now());
        let later = |ms: u64| zero + Duration::from_millis(ms);
        // The engine played frame 48,000 (1 s, tick 1,920) at `zero + 100 ms`; a note came 100 ms
        // before: frame 43,200.
        take.hear(event(zero, 60, 100), (48_000, later(100)), 48_000);
        take.hear(event(zero, 64, 90), (48_000, later(100)), 48_000);
        take.hear(event(later(500), 60, 0), (72_000, later(600)), 48_000);
        let clip = take.into_clip((TrackId::from_u128(1), "Take 1".into()), TIMEBASE, Ticks(3840), Ticks(960), 96_000);
        let clip = clip.expect("two notes");
        let notes: Vec<(u8, u8, i64, i64)> =
            clip.notes.iter().map(|note| (note.pitch, note.velocity, note.start.0, note.length.0)).collect();
        // 43,200 frames is tick 1,728 (768 after the clip's start at 960); the C ends at 67,200
        // (tick 2,688), the E is held to the take's end at 96,000 (tick 3,840).
        assert_eq!(notes, vec![(60, 100, 768, 960), (64, 90, 768, 2112)]);
        assert_eq!((clip.start, clip.length), (Ticks(960), Ticks(3840)), "a whole bar");
    }

    #[test]
    fn notes_outside_the_take_are_left_out_and_none_is_no_clip() {
        let (mut take, zero) = (NoteTake::default(), Instant::now());
        take.hear(event(zero, 60, 100), (10_000, zero), 48_000);
        let track = (TrackId::from_u128(1), "Take 1".into());
        assert_eq!(take.into_clip(track, TIMEBASE, Ticks(3840), Ticks(960), 96_000), None, "begun in the count-in");
    }
}
