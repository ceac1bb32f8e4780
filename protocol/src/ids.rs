//! Identifiers.
//!
//! Every record is named by a UUID v7, so ids sort by creation time and can be minted offline
//! without asking the authority. Each kind of record has its own id type, so a clip's `track`
//! cannot hold an asset's id; ops address records through the untyped [`RecordId`], which every
//! typed id converts into.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id (UUID v7).
            pub fn new_v7() -> Self {
                Self(Uuid::now_v7())
            }

            /// An id from a fixed number, for tests and fixtures.
            pub const fn from_u128(value: u128) -> Self {
                Self(Uuid::from_u128(value))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    )*};
}

id_type! {
    /// Any record of a project, as ops address it.
    RecordId;
    /// A project; also the id of its [`Project`](crate::Project) record.
    ProjectId;
    /// A [`Track`](crate::Track) record.
    TrackId;
    /// A [`Clip`](crate::Clip) record.
    ClipId;
    /// An [`AutomationLane`](crate::AutomationLane) record.
    LaneId;
    /// An [`AudioAsset`](crate::AudioAsset) record.
    AssetId;
    /// A [`Member`](crate::Member) record (one user's role in one project).
    MemberId;
    /// A point inside an automation lane's list.
    PointId;
    /// An [`Effect`](crate::Effect) record.
    EffectId;
    /// A [`NoteClip`](crate::NoteClip) record.
    NoteClipId;
    /// A note inside a note clip's list.
    NoteId;
    /// A user account. Users live at the authority, outside any project.
    UserId;
    /// A transaction; the authority commits each id at most once.
    TxId;
    /// A background job at the authority (peaks, transcode, export).
    JobId;
}

macro_rules! into_record_id {
    ($($name:ident),*) => {$(
        impl From<$name> for RecordId {
            fn from(id: $name) -> Self {
                RecordId(id.0)
            }
        }
    )*};
}

into_record_id!(ProjectId, TrackId, ClipId, LaneId, AssetId, MemberId, EffectId, NoteClipId);
