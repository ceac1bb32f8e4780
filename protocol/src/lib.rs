//! The contract that Ensemble's client and authority both run.
//!
//! Everything that two machines must agree on lives here, and nothing else: this crate does no
//! IO, spawns nothing and knows no clock but the one used to mint ids. The client and the
//! authority call the same [`ProjectState::apply`] on the same [`Transaction`]s, so they cannot
//! disagree about what an edit means.
//!
//! A guide to the modules, in the order data flows through them:
//!
//! - [`ids`] and [`time`]: the newtypes every record uses. Musical time is integer [`Ticks`]
//!   (960 per quarter note); [`Timebase`] is the one place ticks become sample [`Frames`].
//! - [`record`]: the records of a project (project, track, clip, automation lane, audio asset,
//!   member) and their typed fields. A [`Field`] carries its value, so a field and its value
//!   cannot disagree.
//! - [`op`]: the five operations and the [`Transaction`] that groups them.
//! - [`state`]: a project's records with their versions, [`ProjectState::apply`] (whole or
//!   nothing, and it hands back the inverse for undo) and [`invert`].
//! - [`validate`]: value ranges and size limits, checked by `apply`.
//! - [`permission`]: who may read and write a project.
//! - [`wire`] and [`frame`]: the messages both sides send and the length-prefixed bincode framing
//!   they travel in, with a hard size limit and typed errors for bad bytes.
//! - [`transfer`]: uploads and downloads of audio files on streams of their own, and the
//!   background jobs (peaks, transcode, export) a client can watch.
//! - [`jam`]: the shared clock of a LAN jam session, the arithmetic of the four-timestamp
//!   exchange with time passed in.

pub mod effect;
pub mod frame;
pub mod ids;
pub mod jam;
pub mod notes;
pub mod op;
pub mod permission;
pub mod record;
pub mod state;
pub mod time;
pub mod transfer;
pub mod validate;
pub mod wire;

// Which checkout this crate was built from: a different one makes cargo rebuild it, so clones
// sharing the target directory never build each other's code (see `.cargo/config.toml`).
const _: Option<&str> = option_env!("ENSEMBLE_CHECKOUT");

pub use effect::{Bus, Effect, EffectField, EffectKind, EffectParam};
pub use frame::{FrameCodec, FrameError};
pub use ids::{
    AssetId, ClipId, EffectId, JobId, LaneId, MemberId, NoteClipId, NoteId, PointId, ProjectId, RecordId, TrackId,
    TxId, UserId,
};
pub use notes::{Note, NoteClip};
pub use op::{ListItem, ListPosition, Op, Transaction};
pub use permission::{Denied, Role};
pub use record::{
    AssetField, AudioAsset, AutomationLane, AutomationPoint, Clip, ClipField, Codec, Colour, ContentHash, Curve, Field,
    LaneField, LoopRange, Member, MemberField, NoteClipField, Parameter, Project, ProjectField, Record, RecordKind,
    Track, TrackField,
};
pub use state::{Applied, ApplyError, Entry, OpFailure, ProjectState, RecordChange, invert};
pub use time::{Bpm, Frames, Seq, TICKS_PER_QUARTER, Ticks, TimeSignature, Timebase, Version};
pub use validate::Invalid;
pub use wire::{ClientMsg, PROTOCOL_VERSION, PeerPresence, Presence, ServerMsg};
