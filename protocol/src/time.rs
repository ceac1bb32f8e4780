//! Musical time, sample time, and the counters the authority hands out.
//!
//! Positions on the timeline are integer [`Ticks`], 960 to the quarter note, so moving a clip
//! never accumulates rounding. Audio positions are sample [`Frames`]. The only bridge between
//! the two is [`Timebase`]; keep every tick↔frame conversion going through it so the client,
//! the audio engine and the export agree to the sample.

use std::ops::{Add, Sub};

use serde::{Deserialize, Serialize};

/// Ticks in one quarter note.
pub const TICKS_PER_QUARTER: i64 = 960;

/// A position or duration in musical time, [`TICKS_PER_QUARTER`] to the quarter note.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ticks(pub i64);

impl Add for Ticks {
    type Output = Ticks;
    fn add(self, rhs: Ticks) -> Ticks {
        Ticks(self.0 + rhs.0)
    }
}

impl Sub for Ticks {
    type Output = Ticks;
    fn sub(self, rhs: Ticks) -> Ticks {
        Ticks(self.0 - rhs.0)
    }
}

/// A position or duration in sample frames (one sample per channel).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Frames(pub u64);

/// A project's commit counter: the authority gives each committed transaction the next one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Seq(pub u64);

impl Seq {
    /// The sequence number after this one.
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

/// A record's change counter, bumped once by every transaction that touches the record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version(pub u64);

/// Tempo in beats (quarter notes) per minute.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct Bpm(pub f64);

/// A time signature such as 4/4 or 7/8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeSignature {
    /// Beats in a bar.
    pub numerator: u8,
    /// The note value of one beat: 4 is a quarter note, 8 an eighth.
    pub denominator: u8,
}

impl TimeSignature {
    /// Four quarter notes to the bar.
    pub const FOUR_FOUR: TimeSignature = TimeSignature { numerator: 4, denominator: 4 };

    /// The length of one beat.
    pub fn ticks_per_beat(self) -> Ticks {
        Ticks(TICKS_PER_QUARTER * 4 / i64::from(self.denominator.max(1)))
    }

    /// The length of one bar.
    pub fn ticks_per_bar(self) -> Ticks {
        Ticks(self.ticks_per_beat().0 * i64::from(self.numerator))
    }
}

/// Converts between musical time and sample time at one tempo and sample rate.
///
/// Both directions round to the nearest unit, so `ticks(frames(t)) == t` whenever a tick lasts at
/// least one frame: a sample rate of at least 16 × the tempo, so any tempo at 16 kHz and up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timebase {
    /// The project's tempo.
    pub tempo: Bpm,
    /// Frames per second.
    pub sample_rate: u32,
}

impl Timebase {
    /// A timebase at `tempo` and `sample_rate`.
    pub fn new(tempo: Bpm, sample_rate: u32) -> Self {
        Timebase { tempo, sample_rate }
    }

    /// Frames in one tick, as a real number.
    pub fn frames_per_tick(self) -> f64 {
        60.0 * f64::from(self.sample_rate) / (TICKS_PER_QUARTER as f64 * self.tempo.0)
    }

    /// The frame at which tick position `ticks` sounds. Timeline positions are never negative;
    /// a negative position maps to frame 0.
    pub fn frames(self, ticks: Ticks) -> Frames {
        let frames = (ticks.0 as f64 * self.frames_per_tick()).round();
        // `as` saturates: negative positions become 0, absurdly large ones u64::MAX.
        Frames(frames as u64)
    }

    /// The tick nearest to frame position `frames`.
    pub fn ticks(self, frames: Frames) -> Ticks {
        Ticks((frames.0 as f64 / self.frames_per_tick()).round() as i64)
    }
}
