//! Operations and transactions: the only way a project changes.
//!
//! An [`Op`] is one small, invertible edit. A [`Transaction`] groups the ops of one gesture
//! (dragging a clip, deleting a track and its clips) and commits whole or not at all. The
//! authority orders transactions; [`crate::ProjectState::apply`] gives them their meaning.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{ProjectId, RecordId, TrackId, TxId};
use crate::notes::Note;
use crate::record::{AutomationPoint, Field, Record};

/// One edit of one record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Adds a record. Creating a deleted record's id again restores it (undo of a delete).
    Create {
        /// The new record's id.
        id: RecordId,
        /// Its contents.
        record: Record,
    },
    /// Sets one field. With `expect`, a compare-and-set: the transaction is rejected when the
    /// field's current value is not `expect`, whatever happened to other fields.
    Set {
        /// The record to change.
        target: RecordId,
        /// The field and its new value.
        value: Field,
        /// The value the field must hold for the set to apply.
        expect: Option<Field>,
    },
    /// Inserts an item into one of a record's lists (a project's track order, a lane's points).
    ListInsert {
        /// The record that owns the list; the item's type picks the list.
        target: RecordId,
        /// The item.
        item: ListItem,
        /// Where it goes.
        at: ListPosition,
    },
    /// Removes the item with id `item` from one of a record's lists.
    ListRemove {
        /// The record that owns the list.
        target: RecordId,
        /// The item's id (a track id in the track order, a point id in a lane).
        item: Uuid,
    },
    /// Deletes a record, leaving a tombstone so its version keeps counting if it is restored.
    /// A record that others still refer to cannot be deleted: remove the references first, in
    /// the same transaction.
    Delete {
        /// The record to delete.
        target: RecordId,
    },
}

impl Op {
    /// The record this op changes.
    pub fn target(&self) -> RecordId {
        match self {
            Op::Create { id, .. } => *id,
            Op::Set { target, .. }
            | Op::ListInsert { target, .. }
            | Op::ListRemove { target, .. }
            | Op::Delete { target } => *target,
        }
    }
}

/// An item of a list inside a record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ListItem {
    /// An entry of [`crate::Project::track_order`].
    Track(TrackId),
    /// A breakpoint of [`crate::AutomationLane::points`].
    Point(AutomationPoint),
    /// A note of [`crate::NoteClip::notes`].
    Note(Note),
}

impl ListItem {
    /// The id that names the item inside its list.
    pub fn id(&self) -> Uuid {
        match self {
            ListItem::Track(track) => track.0,
            ListItem::Point(point) => point.id.0,
            ListItem::Note(note) => note.id.0,
        }
    }
}

/// Where a [`Op::ListInsert`] puts its item. Anchors name items, not indices, so concurrent
/// inserts elsewhere in the list do not move the spot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ListPosition {
    /// First.
    Start,
    /// Last.
    End,
    /// Just before the item with this id.
    Before(Uuid),
    /// Just after the item with this id.
    After(Uuid),
}

/// Ops that commit together or not at all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// Makes the transaction idempotent: the authority commits an id at most once.
    pub id: TxId,
    /// The project it edits.
    pub project: ProjectId,
    /// The edits, applied in order.
    pub ops: Vec<Op>,
}

impl Transaction {
    /// A transaction with a fresh id.
    pub fn new(project: ProjectId, ops: Vec<Op>) -> Self {
        Transaction { id: TxId::new_v7(), project, ops }
    }
}
