//! Value ranges and size limits.
//!
//! [`crate::ProjectState::apply`] calls these, so neither the client nor the authority can hold
//! a value outside them. [`field`] checks one value, [`record`] a whole record, and
//! [`coherence`] the rules that tie one record's fields together (a clip's fades fit inside it),
//! which `apply` checks once at the end of a transaction so its ops may come in any order.
//! [`person_name`] checks the names people log in and appear under.

use serde::{Deserialize, Serialize};

use crate::effect::{Effect, EffectField, EffectKind, EffectParam};
use crate::record::{
    AssetField, AudioAsset, AutomationLane, AutomationPoint, Clip, ClipField, Field, LaneField, LoopRange, MemberField,
    NoteClipField, Parameter, Project, ProjectField, Record, Track, TrackField,
};
use crate::time::{Bpm, Frames, Ticks, TimeSignature};

/// Slowest tempo, in BPM.
pub const MIN_TEMPO: f64 = 20.0;
/// Fastest tempo, in BPM.
pub const MAX_TEMPO: f64 = 999.0;
/// Loudest gain, in dB. There is no floor: `-inf` dB is silence.
pub const MAX_GAIN_DB: f32 = 12.0;
/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// Most tracks in a project's track order.
pub const MAX_TRACKS: usize = 1024;
/// Most points in one automation lane.
pub const MAX_POINTS: usize = 65_536;
/// Most ops in one transaction.
pub const MAX_OPS: usize = 10_000;
/// Most live records in one project.
pub const MAX_RECORDS: usize = 1_000_000;
/// Latest timeline position: about 2.4 years at 120 BPM, far beyond any song, and far from
/// overflowing when positions and lengths are added.
pub const MAX_TICKS: i64 = 1 << 40;
/// Lowest and highest sample rates, in Hz.
pub const SAMPLE_RATES: std::ops::RangeInclusive<u32> = 8_000..=384_000;
/// Most channels in an audio asset.
pub const MAX_CHANNELS: u16 = 64;

/// A value outside what a project accepts.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum Invalid {
    /// Tempo outside [`MIN_TEMPO`]…[`MAX_TEMPO`].
    #[error("tempo {0} BPM is outside 20–999 BPM")]
    Tempo(f64),
    /// Gain above [`MAX_GAIN_DB`] or not a number.
    #[error("gain {0} dB is above +12 dB or not a number")]
    Gain(f32),
    /// Pan outside −1…1.
    #[error("pan {0} is outside −1…1")]
    Pan(f32),
    /// Name longer than [`MAX_NAME_CHARS`].
    #[error("name is {0} characters long; the limit is 256")]
    NameTooLong(usize),
    /// Position negative or after [`MAX_TICKS`].
    #[error("position {0} ticks is negative or too far out")]
    Position(i64),
    /// Length not positive, or beyond [`MAX_TICKS`].
    #[error("length {0} ticks must be positive")]
    Length(i64),
    /// Sample offset beyond any file.
    #[error("source offset {0} frames is too far out")]
    SourceOffset(u64),
    /// Fades that do not fit inside the clip.
    #[error("fades of {fade_in} and {fade_out} ticks do not fit a clip {length} ticks long")]
    Fades {
        /// Fade-in length.
        fade_in: i64,
        /// Fade-out length.
        fade_out: i64,
        /// Clip length.
        length: i64,
    },
    /// Loop that ends before it starts.
    #[error("loop from {start} to {end} ticks ends before it starts")]
    Loop {
        /// Loop start.
        start: i64,
        /// Loop end.
        end: i64,
    },
    /// Time signature with a zero numerator or a denominator that is not a power of two.
    #[error("time signature {numerator}/{denominator} is not supported")]
    TimeSignature {
        /// Beats per bar.
        numerator: u8,
        /// Beat unit.
        denominator: u8,
    },
    /// Sample rate outside [`SAMPLE_RATES`].
    #[error("sample rate {0} Hz is outside 8–384 kHz")]
    SampleRate(u32),
    /// Channel count of zero or above [`MAX_CHANNELS`].
    #[error("{0} channels is not supported")]
    Channels(u16),
    /// An audio asset with no frames.
    #[error("an audio asset must have at least one frame")]
    EmptyAsset,
    /// A list grew past its limit.
    #[error("list is full ({0} items)")]
    ListFull(usize),
    /// An effect parameter outside its range, or one its effect does not have.
    #[error("{param:?} {value} is outside its range or not a parameter of this effect")]
    EffectParam {
        /// The parameter.
        param: EffectParam,
        /// The value.
        value: f32,
    },
    /// An effect whose parameters do not match its kind's.
    #[error("a {kind:?} has {expected} parameters, not {found}")]
    EffectParams {
        /// The effect's kind.
        kind: EffectKind,
        /// How many it has.
        expected: usize,
        /// How many the record holds.
        found: usize,
    },
    /// A note outside MIDI's pitches or velocities.
    #[error("note pitch {pitch} or velocity {velocity} is outside MIDI's 0–127 (velocity 1–127)")]
    Note {
        /// The pitch.
        pitch: u8,
        /// The velocity.
        velocity: u8,
    },
    /// An effect position that is not a finite number.
    #[error("effect position {0} is not a finite number")]
    EffectPosition(f64),
    /// A chain with more than [`MAX_EFFECTS`](crate::effect::MAX_EFFECTS) effects.
    #[error("a chain holds at most 16 effects")]
    ChainFull,
    /// An instrument on the master chain, which has no notes to play.
    #[error("an instrument belongs on a track, not on the master")]
    InstrumentOnMaster,
    /// A list holds the same id twice.
    #[error("list holds item {0} twice")]
    DuplicateItem(uuid::Uuid),
    /// A transaction with more than [`MAX_OPS`] ops, or none.
    #[error("a transaction must have 1 to 10000 ops, not {0}")]
    OpCount(usize),
    /// A project with more than [`MAX_RECORDS`] records.
    #[error("the project is full ({0} records)")]
    TooManyRecords(usize),
}

/// Why a name cannot be a person's name (a login or a display name).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadName {
    /// Nothing but spaces.
    #[error("a name cannot be empty")]
    Empty,
    /// Longer than [`MAX_NAME_CHARS`].
    #[error("a name is at most 256 characters, and this one has {0}")]
    TooLong(usize),
    /// A control character (NUL, BEL, a line break…), which would garble every list it is in.
    #[error("a name cannot hold control characters (U+{0:04X})")]
    Control(u32),
    /// A bidirectional-text control, which could make the name display as another one.
    #[error("a name cannot hold bidirectional text controls (U+{0:04X}), which can disguise it")]
    Bidi(u32),
}

/// Checks a person's name as it will be stored: trimmed of surrounding spaces, 1 to
/// [`MAX_NAME_CHARS`] characters, no control characters, no bidirectional-text controls.
pub fn person_name(value: &str) -> Result<(), BadName> {
    let chars = value.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(BadName::TooLong(chars));
    }
    if value.trim().is_empty() {
        return Err(BadName::Empty);
    }
    let bidi =
        |c: char| matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    match value.chars().find(|c| c.is_control() || bidi(*c)) {
        Some(c) if c.is_control() => Err(BadName::Control(u32::from(c))),
        Some(c) => Err(BadName::Bidi(u32::from(c))),
        None => Ok(()),
    }
}

fn name(value: &str) -> Result<(), Invalid> {
    let chars = value.chars().count();
    if chars > MAX_NAME_CHARS { Err(Invalid::NameTooLong(chars)) } else { Ok(()) }
}

fn tempo(value: Bpm) -> Result<(), Invalid> {
    if (MIN_TEMPO..=MAX_TEMPO).contains(&value.0) { Ok(()) } else { Err(Invalid::Tempo(value.0)) }
}

fn gain(value: f32) -> Result<(), Invalid> {
    // `-inf` passes (silence); NaN and anything above +12 dB fail.
    if value <= MAX_GAIN_DB { Ok(()) } else { Err(Invalid::Gain(value)) }
}

fn pan(value: f32) -> Result<(), Invalid> {
    if (-1.0..=1.0).contains(&value) { Ok(()) } else { Err(Invalid::Pan(value)) }
}

fn position(value: Ticks) -> Result<(), Invalid> {
    if (0..=MAX_TICKS).contains(&value.0) { Ok(()) } else { Err(Invalid::Position(value.0)) }
}

fn length(value: Ticks) -> Result<(), Invalid> {
    if (1..=MAX_TICKS).contains(&value.0) { Ok(()) } else { Err(Invalid::Length(value.0)) }
}

fn source_offset(value: Frames) -> Result<(), Invalid> {
    // 2^48 frames is over 185 years at 48 kHz.
    if value.0 < 1 << 48 { Ok(()) } else { Err(Invalid::SourceOffset(value.0)) }
}

fn time_signature(value: TimeSignature) -> Result<(), Invalid> {
    let TimeSignature { numerator, denominator } = value;
    if (1..=64).contains(&numerator) && denominator.is_power_of_two() && denominator <= 64 {
        Ok(())
    } else {
        Err(Invalid::TimeSignature { numerator, denominator })
    }
}

fn sample_rate(value: u32) -> Result<(), Invalid> {
    if SAMPLE_RATES.contains(&value) { Ok(()) } else { Err(Invalid::SampleRate(value)) }
}

fn loop_range(value: Option<LoopRange>) -> Result<(), Invalid> {
    let Some(LoopRange { start, end }) = value else { return Ok(()) };
    position(start)?;
    position(end)?;
    if start < end { Ok(()) } else { Err(Invalid::Loop { start: start.0, end: end.0 }) }
}

/// Checks an automation point's value against the parameter its lane drives.
pub fn point(parameter: Parameter, point: &AutomationPoint) -> Result<(), Invalid> {
    position(point.tick)?;
    match parameter {
        Parameter::Gain => gain(point.value),
        Parameter::Pan => pan(point.value),
        Parameter::Effect(_, param) => effect_param(param, point.value),
    }
}

/// Checks a note: its pitch and velocity, where it starts and how long it is.
pub fn note(note: &crate::notes::Note) -> Result<(), Invalid> {
    position(note.start)?;
    length(note.length)?;
    if note.pitch > 127 || !(1..=127).contains(&note.velocity) {
        return Err(Invalid::Note { pitch: note.pitch, velocity: note.velocity });
    }
    Ok(())
}

fn effect_param(param: EffectParam, value: f32) -> Result<(), Invalid> {
    if param.accepts(value) { Ok(()) } else { Err(Invalid::EffectParam { param, value }) }
}

fn effect_position(value: f64) -> Result<(), Invalid> {
    if value.is_finite() { Ok(()) } else { Err(Invalid::EffectPosition(value)) }
}

/// Checks one field's value.
pub fn field(value: &Field) -> Result<(), Invalid> {
    match value {
        Field::Project(field) => match field {
            ProjectField::Name(value) => name(value),
            ProjectField::Tempo(value) => tempo(*value),
            ProjectField::TimeSignature(value) => time_signature(*value),
            ProjectField::LoopRange(value) => loop_range(*value),
            ProjectField::SampleRate(value) => sample_rate(*value),
        },
        Field::Track(field) => match field {
            TrackField::Name(value) => name(value),
            TrackField::Gain(value) => gain(*value),
            TrackField::Pan(value) => pan(*value),
            TrackField::Colour(_) | TrackField::Mute(_) | TrackField::Solo(_) | TrackField::RecordArm(_) => Ok(()),
        },
        Field::Clip(field) => match field {
            ClipField::Start(value) => position(*value),
            ClipField::Length(value) => length(*value),
            ClipField::SourceOffset(value) => source_offset(*value),
            ClipField::Gain(value) => gain(*value),
            ClipField::FadeIn(value) | ClipField::FadeOut(value) => position(*value),
            ClipField::Name(value) => name(value),
            ClipField::Track(_) => Ok(()),
        },
        Field::AutomationLane(LaneField::Enabled(_)) => Ok(()),
        Field::AudioAsset(field) => match field {
            AssetField::Name(value) => name(value),
            AssetField::PeaksReady(_) => Ok(()),
        },
        Field::Member(MemberField::Role(_)) => Ok(()),
        Field::NoteClip(field) => match field {
            NoteClipField::Start(value) => position(*value),
            NoteClipField::Length(value) => length(*value),
            NoteClipField::Name(value) => name(value),
            NoteClipField::Track(_) => Ok(()),
        },
        Field::Effect(field) => match field {
            EffectField::Position(value) => effect_position(*value),
            EffectField::Param(param, value) => effect_param(*param, *value),
            EffectField::Bypass(_) => Ok(()),
        },
    }
}

/// Checks every value of a record, its lists, and its [`coherence`].
pub fn record(record: &Record) -> Result<(), Invalid> {
    values(record)?;
    coherence(record)
}

/// Checks every value of a record and its lists, but not the rules between fields: a `Create`
/// inside a transaction leaves those to the end of the transaction, like a `Set` does.
pub fn values(record: &Record) -> Result<(), Invalid> {
    match record {
        Record::Project(project) => {
            let Project { name: n, tempo: t, time_signature: ts, loop_range: l, sample_rate: sr, .. } = project;
            name(n)?;
            tempo(*t)?;
            time_signature(*ts)?;
            loop_range(*l)?;
            sample_rate(*sr)?;
            unique(project.track_order.iter().map(|t| t.0), MAX_TRACKS)?;
        }
        Record::Track(Track { name: n, gain_db, pan: p, .. }) => {
            name(n)?;
            gain(*gain_db)?;
            pan(*p)?;
        }
        Record::Clip(Clip {
            start, length: len, source_offset: offset, gain_db, fade_in, fade_out, name: n, ..
        }) => {
            position(*start)?;
            length(*len)?;
            source_offset(*offset)?;
            gain(*gain_db)?;
            position(*fade_in)?;
            position(*fade_out)?;
            name(n)?;
        }
        Record::AutomationLane(AutomationLane { parameter, points, .. }) => {
            unique(points.iter().map(|p| p.id.0), MAX_POINTS)?;
            points.iter().try_for_each(|p| point(*parameter, p))?;
        }
        Record::AudioAsset(AudioAsset { name: n, sample_rate: sr, channels, frames, .. }) => {
            name(n)?;
            sample_rate(*sr)?;
            if *channels == 0 || *channels > MAX_CHANNELS {
                return Err(Invalid::Channels(*channels));
            }
            if frames.0 == 0 {
                return Err(Invalid::EmptyAsset);
            }
        }
        Record::Effect(Effect { kind, position, params, .. }) => {
            effect_position(*position)?;
            let expected = kind.params();
            if params.len() != expected.len() {
                return Err(Invalid::EffectParams { kind: *kind, expected: expected.len(), found: params.len() });
            }
            expected.iter().zip(params).try_for_each(|(param, value)| effect_param(*param, *value))?;
        }
        Record::NoteClip(clip) => {
            position(clip.start)?;
            length(clip.length)?;
            name(&clip.name)?;
            unique(clip.notes.iter().map(|n| n.id.0), crate::notes::MAX_NOTES)?;
            clip.notes.iter().try_for_each(note)?;
        }
        Record::Member(_) => {}
    }
    Ok(())
}

/// Checks the rules that tie a record's fields together: a clip's fades fit inside it.
///
/// Lists are not re-checked here: list ops check their own limits and duplicates as they go, so
/// this stays cheap for a lane with thousands of points.
pub fn coherence(record: &Record) -> Result<(), Invalid> {
    if let Record::Clip(clip) = record {
        let (fade_in, fade_out, length) = (clip.fade_in.0, clip.fade_out.0, clip.length.0);
        if fade_in + fade_out > length {
            return Err(Invalid::Fades { fade_in, fade_out, length });
        }
    }
    Ok(())
}

fn unique(ids: impl ExactSizeIterator<Item = uuid::Uuid>, limit: usize) -> Result<(), Invalid> {
    if ids.len() > limit {
        return Err(Invalid::ListFull(ids.len()));
    }
    let mut seen: Vec<uuid::Uuid> = ids.collect();
    seen.sort_unstable();
    match seen.windows(2).find(|pair| pair[0] == pair[1]) {
        Some(pair) => Err(Invalid::DuplicateItem(pair[0])),
        None => Ok(()),
    }
}
