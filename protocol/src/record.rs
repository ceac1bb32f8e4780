//! The records of a project and their typed fields.
//!
//! A project is a flat set of records, each named by a [`RecordId`](crate::RecordId) and holding one
//! [`Record`]. References between records are typed ids (a clip names its [`TrackId`] and its
//! [`AssetId`]); [`crate::ProjectState::apply`] keeps them pointing at live records.
//!
//! Each record kind has a field enum whose variants carry the field's value
//! ([`TrackField::Gain`] holds the gain in dB). A `Set` op carries one [`Field`], so the field and
//! the value it is set to can never disagree in type. Fields that never change after creation (a
//! lane's parameter, an asset's hash) have no variant.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::effect::{Effect, EffectField, EffectParam};
use crate::ids::{AssetId, EffectId, PointId, TrackId, UserId};
use crate::notes::NoteClip;
use crate::time::{Bpm, Frames, Ticks, TimeSignature};

/// A colour as 8-bit sRGB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Colour {
    /// Red.
    pub r: u8,
    /// Green.
    pub g: u8,
    /// Blue.
    pub b: u8,
}

/// A loop region on the timeline, `start` inclusive, `end` exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LoopRange {
    /// Where the loop begins.
    pub start: Ticks,
    /// Where playback jumps back to `start`.
    pub end: Ticks,
}

/// The project itself: one per project, created by the authority.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// Shown in the title bar and project lists.
    pub name: String,
    /// Beats per minute (one tempo for the whole song).
    pub tempo: Bpm,
    /// Bars and beats on the ruler and the metronome.
    pub time_signature: TimeSignature,
    /// The region playback repeats when looping is on; `None` when no loop is set.
    pub loop_range: Option<LoopRange>,
    /// Tracks from top to bottom.
    pub track_order: Vec<TrackId>,
    /// Frames per second of playback and export.
    pub sample_rate: u32,
}

/// A mixer channel holding clips.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Track {
    /// Shown in the track header.
    pub name: String,
    /// Colour of the header and the track's clips.
    pub colour: Colour,
    /// Fader level in dB; `-inf` is silence.
    pub gain_db: f32,
    /// −1 is hard left, 0 centre, 1 hard right.
    pub pan: f32,
    /// Silenced.
    pub mute: bool,
    /// When any track is soloed, only soloed tracks sound.
    pub solo: bool,
    /// Armed for recording.
    pub record_arm: bool,
}

/// A region of an audio asset placed on a track.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Clip {
    /// The track it plays on.
    pub track: TrackId,
    /// The audio it plays.
    pub asset: AssetId,
    /// Timeline position of its first sample.
    pub start: Ticks,
    /// How long it plays; always positive.
    pub length: Ticks,
    /// The first frame of the asset that plays.
    pub source_offset: Frames,
    /// Clip gain in dB, before the track's fader.
    pub gain_db: f32,
    /// Fade-in length from the clip's start.
    pub fade_in: Ticks,
    /// Fade-out length before the clip's end.
    pub fade_out: Ticks,
    /// Shown on the clip.
    pub name: String,
}

/// What an automation lane drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Parameter {
    /// The track's gain, values in dB.
    Gain,
    /// The track's pan, values in −1…1.
    Pan,
    /// A parameter of an effect on the lane's track, values in the parameter's unit and range.
    Effect(EffectId, EffectParam),
}

/// How an automation value travels from one point to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Curve {
    /// A straight line to the next point.
    Linear,
    /// Holds this value until the next point, then jumps.
    Hold,
    /// An S-shaped ease (smoothstep) to the next point.
    Smooth,
}

/// One breakpoint of an automation lane.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutomationPoint {
    /// Names the point inside its lane's list.
    pub id: PointId,
    /// Where the point sits.
    pub tick: Ticks,
    /// The parameter's value there, in the parameter's unit.
    pub value: f32,
    /// The shape from this point to the next.
    pub curve: Curve,
}

/// A parameter of a track changing over time.
///
/// Consumers order points by tick (list order breaks ties); the list order itself is what
/// concurrent inserts agree on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutomationLane {
    /// The track whose parameter it drives.
    pub track: TrackId,
    /// The parameter it drives.
    pub parameter: Parameter,
    /// When off, the parameter keeps its fader value.
    pub enabled: bool,
    /// Breakpoints.
    pub points: Vec<AutomationPoint>,
}

/// A blake3 hash of an audio file's bytes: the file's identity.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContentHash(pub [u8; 32]);

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

/// The encoding an asset was uploaded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Codec {
    /// RIFF WAVE, integer or float PCM.
    Wav,
    /// AIFF PCM.
    Aiff,
    /// FLAC.
    Flac,
    /// MPEG-1/2 layer III.
    Mp3,
    /// Ogg Vorbis.
    Vorbis,
}

/// An uploaded audio file. The authority creates it once the upload's hash checks out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioAsset {
    /// The file's identity.
    pub hash: ContentHash,
    /// Shown in the asset list; usually the file name.
    pub name: String,
    /// The file's own sample rate.
    pub sample_rate: u32,
    /// Channels in the file.
    pub channels: u16,
    /// Length in the file's own frames.
    pub frames: Frames,
    /// How the file is encoded.
    pub codec: Codec,
    /// Size of the uploaded file.
    pub byte_size: u64,
    /// Whether waveform peaks can be downloaded.
    pub peaks_ready: bool,
}

/// One user's role in one project.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The user.
    pub user: UserId,
    /// What they may do.
    pub role: crate::permission::Role,
}

/// Any record of a project.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// The project itself.
    Project(Project),
    /// A track.
    Track(Track),
    /// A clip.
    Clip(Clip),
    /// An automation lane.
    AutomationLane(AutomationLane),
    /// An audio asset.
    AudioAsset(AudioAsset),
    /// A membership.
    Member(Member),
    /// An effect on a chain.
    Effect(Effect),
    /// A clip of notes.
    NoteClip(NoteClip),
}

/// The kinds of [`Record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecordKind {
    /// [`Project`].
    Project,
    /// [`Track`].
    Track,
    /// [`Clip`].
    Clip,
    /// [`AutomationLane`].
    AutomationLane,
    /// [`AudioAsset`].
    AudioAsset,
    /// [`Member`].
    Member,
    /// [`Effect`].
    Effect,
    /// [`NoteClip`].
    NoteClip,
}

impl Record {
    /// Which kind of record this is.
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Project(_) => RecordKind::Project,
            Record::Track(_) => RecordKind::Track,
            Record::Clip(_) => RecordKind::Clip,
            Record::AutomationLane(_) => RecordKind::AutomationLane,
            Record::AudioAsset(_) => RecordKind::AudioAsset,
            Record::Member(_) => RecordKind::Member,
            Record::Effect(_) => RecordKind::Effect,
            Record::NoteClip(_) => RecordKind::NoteClip,
        }
    }
}

/// Declares a record's field enum with `read` and `replace`, so adding a field is one line.
macro_rules! fields {
    (
        $(#[$doc:meta])*
        $name:ident for $record:ident {
            $( $(#[$vdoc:meta])* $variant:ident($ty:ty) => $member:ident, )*
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vdoc])* $variant($ty), )*
        }

        impl $name {
            /// The same field as it currently is in `record`.
            pub fn read(&self, record: &$record) -> Self {
                match self {
                    $( Self::$variant(_) => Self::$variant(record.$member.clone()), )*
                }
            }

            /// Writes this value into `record` and returns the value it replaced.
            pub fn replace(self, record: &mut $record) -> Self {
                match self {
                    $( Self::$variant(value) => Self::$variant(std::mem::replace(&mut record.$member, value)), )*
                }
            }

            /// The field's name, for error messages.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => stringify!($member), )*
                }
            }
        }
    };
}

fields! {
    /// A settable field of [`Project`] with its value.
    ProjectField for Project {
        /// [`Project::name`].
        Name(String) => name,
        /// [`Project::tempo`].
        Tempo(Bpm) => tempo,
        /// [`Project::time_signature`].
        TimeSignature(TimeSignature) => time_signature,
        /// [`Project::loop_range`].
        LoopRange(Option<LoopRange>) => loop_range,
        /// [`Project::sample_rate`].
        SampleRate(u32) => sample_rate,
    }
}

fields! {
    /// A settable field of [`Track`] with its value.
    TrackField for Track {
        /// [`Track::name`].
        Name(String) => name,
        /// [`Track::colour`].
        Colour(Colour) => colour,
        /// [`Track::gain_db`].
        Gain(f32) => gain_db,
        /// [`Track::pan`].
        Pan(f32) => pan,
        /// [`Track::mute`].
        Mute(bool) => mute,
        /// [`Track::solo`].
        Solo(bool) => solo,
        /// [`Track::record_arm`].
        RecordArm(bool) => record_arm,
    }
}

fields! {
    /// A settable field of [`Clip`] with its value.
    ClipField for Clip {
        /// [`Clip::track`]: moves the clip to another track.
        Track(TrackId) => track,
        /// [`Clip::start`].
        Start(Ticks) => start,
        /// [`Clip::length`].
        Length(Ticks) => length,
        /// [`Clip::source_offset`].
        SourceOffset(Frames) => source_offset,
        /// [`Clip::gain_db`].
        Gain(f32) => gain_db,
        /// [`Clip::fade_in`].
        FadeIn(Ticks) => fade_in,
        /// [`Clip::fade_out`].
        FadeOut(Ticks) => fade_out,
        /// [`Clip::name`].
        Name(String) => name,
    }
}

fields! {
    /// A settable field of [`NoteClip`] with its value. Notes change through list ops.
    NoteClipField for NoteClip {
        /// [`NoteClip::track`]: moves the clip to another track.
        Track(TrackId) => track,
        /// [`NoteClip::start`].
        Start(Ticks) => start,
        /// [`NoteClip::length`].
        Length(Ticks) => length,
        /// [`NoteClip::name`].
        Name(String) => name,
    }
}

fields! {
    /// A settable field of [`AutomationLane`] with its value. Points change through list ops.
    LaneField for AutomationLane {
        /// [`AutomationLane::enabled`].
        Enabled(bool) => enabled,
    }
}

fields! {
    /// A settable field of [`AudioAsset`] with its value.
    AssetField for AudioAsset {
        /// [`AudioAsset::name`].
        Name(String) => name,
        /// [`AudioAsset::peaks_ready`]; only the authority sets it.
        PeaksReady(bool) => peaks_ready,
    }
}

fields! {
    /// A settable field of [`Member`] with its value.
    MemberField for Member {
        /// [`Member::role`].
        Role(crate::permission::Role) => role,
    }
}

/// A field of any record, with its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Field {
    /// A project field.
    Project(ProjectField),
    /// A track field.
    Track(TrackField),
    /// A clip field.
    Clip(ClipField),
    /// An automation lane field.
    AutomationLane(LaneField),
    /// An audio asset field.
    AudioAsset(AssetField),
    /// A member field.
    Member(MemberField),
    /// An effect field.
    Effect(EffectField),
    /// A note clip field.
    NoteClip(NoteClipField),
}

impl Field {
    /// The kind of record this field belongs to.
    pub fn kind(&self) -> RecordKind {
        match self {
            Field::Project(_) => RecordKind::Project,
            Field::Track(_) => RecordKind::Track,
            Field::Clip(_) => RecordKind::Clip,
            Field::AutomationLane(_) => RecordKind::AutomationLane,
            Field::AudioAsset(_) => RecordKind::AudioAsset,
            Field::Member(_) => RecordKind::Member,
            Field::Effect(_) => RecordKind::Effect,
            Field::NoteClip(_) => RecordKind::NoteClip,
        }
    }

    /// The field's name, for error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Field::Project(field) => field.name(),
            Field::Track(field) => field.name(),
            Field::Clip(field) => field.name(),
            Field::AutomationLane(field) => field.name(),
            Field::AudioAsset(field) => field.name(),
            Field::Member(field) => field.name(),
            Field::Effect(field) => field.name(),
            Field::NoteClip(field) => field.name(),
        }
    }

    /// Whether `other` names the same field (whatever its value).
    pub fn same_field(&self, other: &Field) -> bool {
        self.kind() == other.kind() && self.name() == other.name()
    }

    /// The same field as it currently is in `record`, or `None` when the kinds differ.
    pub fn read(&self, record: &Record) -> Option<Field> {
        Some(match (self, record) {
            (Field::Project(f), Record::Project(r)) => Field::Project(f.read(r)),
            (Field::Track(f), Record::Track(r)) => Field::Track(f.read(r)),
            (Field::Clip(f), Record::Clip(r)) => Field::Clip(f.read(r)),
            (Field::AutomationLane(f), Record::AutomationLane(r)) => Field::AutomationLane(f.read(r)),
            (Field::AudioAsset(f), Record::AudioAsset(r)) => Field::AudioAsset(f.read(r)),
            (Field::Member(f), Record::Member(r)) => Field::Member(f.read(r)),
            (Field::Effect(f), Record::Effect(r)) => Field::Effect(f.read(r)?),
            (Field::NoteClip(f), Record::NoteClip(r)) => Field::NoteClip(f.read(r)),
            _ => return None,
        })
    }

    /// Writes this value into `record` and returns the value it replaced; gives the field back
    /// unchanged when the kinds differ.
    pub fn replace(self, record: &mut Record) -> Result<Field, Field> {
        Ok(match (self, record) {
            (Field::Project(f), Record::Project(r)) => Field::Project(f.replace(r)),
            (Field::Track(f), Record::Track(r)) => Field::Track(f.replace(r)),
            (Field::Clip(f), Record::Clip(r)) => Field::Clip(f.replace(r)),
            (Field::AutomationLane(f), Record::AutomationLane(r)) => Field::AutomationLane(f.replace(r)),
            (Field::AudioAsset(f), Record::AudioAsset(r)) => Field::AudioAsset(f.replace(r)),
            (Field::Member(f), Record::Member(r)) => Field::Member(f.replace(r)),
            (Field::Effect(f), Record::Effect(r)) => Field::Effect(f.replace(r).map_err(Field::Effect)?),
            (Field::NoteClip(f), Record::NoteClip(r)) => Field::NoteClip(f.replace(r)),
            (field, _) => return Err(field),
        })
    }
}
