//! A project's records and the one function that changes them.
//!
//! [`ProjectState`] holds every live record with its [`Version`], plus a tombstone (the last
//! version) for each deleted one. [`ProjectState::apply`] runs a transaction's ops in order:
//! each op is checked as it runs (its target exists, its `expect` holds, its values are in
//! range, the records it points at are live), then the records the transaction touched are
//! checked once more for rules that span fields, and only then is each touched record's version
//! bumped, once. If anything fails, the ops already run are undone and the state is exactly as
//! before: a transaction applies whole or not at all.
//!
//! While it runs, `apply` logs what each op replaced. On success that log becomes the inverse
//! transaction (for undo), so undo costs no second pass over the state; [`invert`] is the same
//! thing for callers that only want the inverse. Inverse `Set`s carry `expect` (the value the
//! edit wrote), so undoing an edit that a collaborator has since changed is refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::effect::{Bus, EffectField, EffectParam, MAX_EFFECTS};
use crate::ids::{EffectId, ProjectId, RecordId, TrackId, UserId};
use crate::op::{ListItem, ListPosition, Op, Transaction};
use crate::permission::Role;
use crate::record::{AutomationPoint, ClipField, Field, NoteClipField, Parameter, Project, Record, RecordKind};
use crate::time::Version;
use crate::validate::{self, Invalid};

/// A live record and its version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Bumped by every transaction that touches the record.
    pub version: Version,
    /// The record's contents.
    pub record: Record,
}

/// A record as the authority last committed it: its contents, or `None` once deleted. Bumps,
/// snapshots and catch-ups carry these.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordChange {
    /// The record.
    pub id: RecordId,
    /// Its version after the change.
    pub version: Version,
    /// Its contents, or `None` when it was deleted.
    pub record: Option<Record>,
}

/// What a successful [`ProjectState::apply`] reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// Every record the transaction touched (created, changed or deleted), sorted, once each.
    pub changed: Vec<RecordId>,
    /// Ops that undo the transaction, computed from the state before it.
    pub inverse: Vec<Op>,
}

/// Why a transaction was rejected. Nothing of a rejected transaction is applied.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum ApplyError {
    /// The transaction names another project.
    #[error("the transaction is for project {found}, not {expected}")]
    WrongProject {
        /// This state's project.
        expected: ProjectId,
        /// The transaction's project.
        found: ProjectId,
    },
    /// The transaction is empty or has too many ops.
    #[error("{0}")]
    Size(Invalid),
    /// One op could not apply.
    #[error("op {index}: {reason}")]
    Op {
        /// The op's index in the transaction.
        index: usize,
        /// Why.
        reason: OpFailure,
    },
    /// A record the transaction touched ends up breaking a rule that spans its fields.
    #[error("record {id}: {reason}")]
    Record {
        /// The record.
        id: RecordId,
        /// The rule it breaks.
        reason: Invalid,
    },
    /// The transaction would leave the project without an owner.
    #[error("a project must keep at least one owner")]
    NoOwner,
}

/// Why one op could not apply.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum OpFailure {
    /// No record has this id.
    #[error("record {0} does not exist")]
    Missing(RecordId),
    /// The record was deleted.
    #[error("record {0} has been deleted")]
    Deleted(RecordId),
    /// A live record already has this id.
    #[error("record {0} already exists")]
    Exists(RecordId),
    /// The record is of another kind than the op expects.
    #[error("record {id} is a {found:?}, not a {expected:?}")]
    WrongKind {
        /// The record.
        id: RecordId,
        /// The kind the op needs.
        expected: RecordKind,
        /// The record's kind.
        found: RecordKind,
    },
    /// A compare-and-set found another value: someone changed the field since.
    #[error("{} of record {id} has changed since (it is now {current:?})", current.name())]
    Conflict {
        /// The record.
        id: RecordId,
        /// The field's value now.
        current: Field,
    },
    /// A `Set`'s `expect` names another field than its value.
    #[error("expected value is for field {expect}, but the op sets {value}")]
    ExpectMismatch {
        /// The field being set.
        value: String,
        /// The field named by `expect`.
        expect: String,
    },
    /// The record has no list for this kind of item.
    #[error("a {0:?} record has no such list")]
    NoSuchList(RecordKind),
    /// The list position names an item that is not in the list.
    #[error("item {0} is not in the list")]
    AnchorMissing(Uuid),
    /// The item to remove is not in the list.
    #[error("item {0} is not in the list")]
    ItemMissing(Uuid),
    /// A record still refers to the one being deleted.
    #[error("record {id} is still used by {by}")]
    InUse {
        /// The record being deleted.
        id: RecordId,
        /// A record (or the project's track order) that refers to it.
        by: RecordId,
    },
    /// The user already has a membership record.
    #[error("user {0} is already a member")]
    AlreadyMember(UserId),
    /// An automation lane names an effect on another chain than its track's.
    #[error("effect {effect:?} is not on track {track:?}'s chain")]
    ElsewhereEffect {
        /// The effect.
        effect: EffectId,
        /// The lane's track.
        track: TrackId,
    },
    /// The project record comes with the project and is never created or deleted by ops.
    #[error("the project record cannot be created or deleted")]
    ProjectRecord,
    /// A value or size outside the limits.
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

/// Every record of one project, with versions and tombstones.
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectState {
    id: ProjectId,
    project: Entry,
    records: BTreeMap<RecordId, Entry>,
    tombstones: BTreeMap<RecordId, Version>,
}

/// What one op replaced, so it can be undone.
enum Undo<'tx> {
    Created { id: RecordId, tombstone: Option<Version> },
    Set { id: RecordId, old: Field, new: &'tx Field },
    Inserted { target: RecordId, item: Uuid },
    Removed { target: RecordId, item: ListItem, after: Option<Uuid> },
    Deleted { id: RecordId, entry: Entry },
}

impl Undo<'_> {
    fn id(&self) -> RecordId {
        match self {
            Undo::Created { id, .. } | Undo::Set { id, .. } | Undo::Deleted { id, .. } => *id,
            Undo::Inserted { target, .. } | Undo::Removed { target, .. } => *target,
        }
    }

    /// The op that reverses this one, against the state right after it.
    fn into_inverse(self) -> Op {
        match self {
            Undo::Created { id, .. } => Op::Delete { target: id },
            Undo::Set { id, old, new } => Op::Set { target: id, value: old, expect: Some(new.clone()) },
            Undo::Inserted { target, item } => Op::ListRemove { target, item },
            Undo::Removed { target, item, after } => {
                let at = after.map_or(ListPosition::Start, ListPosition::After);
                Op::ListInsert { target, item, at }
            }
            Undo::Deleted { id, entry } => Op::Create { id, record: entry.record },
        }
    }
}

/// Items of the lists inside records.
trait Listed {
    fn list_id(&self) -> Uuid;
}

impl Listed for TrackId {
    fn list_id(&self) -> Uuid {
        self.0
    }
}

impl Listed for crate::notes::Note {
    fn list_id(&self) -> Uuid {
        self.id.0
    }
}

impl Listed for AutomationPoint {
    fn list_id(&self) -> Uuid {
        self.id.0
    }
}

fn index_of<T: Listed>(list: &[T], id: Uuid) -> Option<usize> {
    list.iter().position(|item| item.list_id() == id)
}

fn list_insert<T: Listed>(list: &mut Vec<T>, item: T, at: ListPosition, limit: usize) -> Result<(), OpFailure> {
    if list.len() >= limit {
        return Err(Invalid::ListFull(list.len()).into());
    }
    if index_of(list, item.list_id()).is_some() {
        return Err(Invalid::DuplicateItem(item.list_id()).into());
    }
    let index = match at {
        ListPosition::Start => 0,
        ListPosition::End => list.len(),
        ListPosition::Before(anchor) => index_of(list, anchor).ok_or(OpFailure::AnchorMissing(anchor))?,
        ListPosition::After(anchor) => index_of(list, anchor).ok_or(OpFailure::AnchorMissing(anchor))? + 1,
    };
    list.insert(index, item);
    Ok(())
}

/// Removes `id` from `list`, returning the item and the id of the item before it.
fn list_remove<T: Listed>(list: &mut Vec<T>, id: Uuid) -> Result<(T, Option<Uuid>), OpFailure> {
    let index = index_of(list, id).ok_or(OpFailure::ItemMissing(id))?;
    let after = index.checked_sub(1).map(|before| list[before].list_id());
    Ok((list.remove(index), after))
}

impl ProjectState {
    /// A project holding only its project record, at version 1. The authority then applies a
    /// transaction creating the owner's membership.
    pub fn new(id: ProjectId, project: Project) -> Result<Self, Invalid> {
        let record = Record::Project(project);
        validate::record(&record)?;
        Ok(ProjectState {
            id,
            project: Entry { version: Version(1), record },
            records: BTreeMap::new(),
            tombstones: BTreeMap::new(),
        })
    }

    /// Rebuilds a state from the authority's records (a snapshot, or a local store's copy).
    pub fn from_changes(id: ProjectId, changes: impl IntoIterator<Item = RecordChange>) -> Result<Self, OpFailure> {
        let mut changes: Vec<RecordChange> = changes.into_iter().collect();
        let position = changes.iter().position(|change| change.id == id.into());
        let project = position.map(|index| changes.swap_remove(index));
        let Some(RecordChange { version, record: Some(record @ Record::Project(_)), .. }) = project else {
            return Err(OpFailure::Missing(id.into()));
        };
        validate::record(&record)?;
        let mut state = ProjectState {
            id,
            project: Entry { version, record },
            records: BTreeMap::new(),
            tombstones: BTreeMap::new(),
        };
        changes.into_iter().try_for_each(|change| state.absorb(change))?;
        Ok(state)
    }

    /// The project's id.
    pub fn id(&self) -> ProjectId {
        self.id
    }

    /// The project record.
    pub fn project(&self) -> &Project {
        match &self.project.record {
            Record::Project(project) => project,
            // Every constructor and `absorb` check that the project entry holds a project.
            _ => unreachable!("the project entry always holds a Project record"),
        }
    }

    /// A live record.
    pub fn entry(&self, id: RecordId) -> Option<&Entry> {
        if id == self.id.into() { Some(&self.project) } else { self.records.get(&id) }
    }

    /// The version a deleted record had, if `id` was deleted.
    pub fn tombstone(&self, id: RecordId) -> Option<Version> {
        self.tombstones.get(&id).copied()
    }

    /// Every live record, the project record first, then by id.
    pub fn records(&self) -> impl Iterator<Item = (RecordId, &Entry)> {
        std::iter::once((self.id.into(), &self.project)).chain(self.records.iter().map(|(id, entry)| (*id, entry)))
    }

    /// How many live records there are, the project record included.
    pub fn len(&self) -> usize {
        self.records.len() + 1
    }

    /// Always false: a project has at least its project record.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The record `id` as a change to send: its contents, or a tombstone.
    pub fn change(&self, id: RecordId) -> RecordChange {
        match self.entry(id) {
            Some(entry) => RecordChange { id, version: entry.version, record: Some(entry.record.clone()) },
            None => RecordChange { id, version: self.tombstone(id).unwrap_or_default(), record: None },
        }
    }

    /// Every live record as changes, for a snapshot.
    pub fn snapshot(&self) -> Vec<RecordChange> {
        self.records()
            .map(|(id, entry)| RecordChange { id, version: entry.version, record: Some(entry.record.clone()) })
            .collect()
    }

    /// Takes a record as the authority committed it, replacing what was there. This is how a
    /// client's confirmed state follows bumps; no op rules apply, only value checks.
    pub fn absorb(&mut self, change: RecordChange) -> Result<(), OpFailure> {
        let RecordChange { id, version, record } = change;
        if let Some(record) = &record {
            validate::record(record)?;
        }
        if id == self.id.into() {
            return match record {
                Some(record @ Record::Project(_)) => {
                    self.project = Entry { version, record };
                    Ok(())
                }
                _ => Err(OpFailure::ProjectRecord),
            };
        }
        match record {
            Some(record) => {
                self.tombstones.remove(&id);
                self.records.insert(id, Entry { version, record });
            }
            None => {
                self.records.remove(&id);
                self.tombstones.insert(id, version);
            }
        }
        Ok(())
    }

    /// Makes record `id` here exactly what it is in `source`: the same entry, the same tombstone,
    /// or absent. A replica uses it to reset the few records its pending edits touched instead of
    /// copying the whole project.
    pub fn copy_record(&mut self, source: &ProjectState, id: RecordId) {
        if id == self.id.into() {
            if source.id == self.id {
                self.project = source.project.clone();
            }
            return;
        }
        match source.records.get(&id) {
            Some(entry) => {
                self.records.insert(id, entry.clone());
            }
            None => {
                self.records.remove(&id);
            }
        }
        match source.tombstones.get(&id) {
            Some(version) => self.tombstones.insert(id, *version),
            None => self.tombstones.remove(&id),
        };
    }

    /// Applies `tx` whole, or returns why not and leaves the state exactly as it was.
    pub fn apply(&mut self, tx: &Transaction) -> Result<Applied, ApplyError> {
        if tx.project != self.id {
            return Err(ApplyError::WrongProject { expected: self.id, found: tx.project });
        }
        if tx.ops.is_empty() || tx.ops.len() > validate::MAX_OPS {
            return Err(ApplyError::Size(Invalid::OpCount(tx.ops.len())));
        }
        let mut log = Vec::with_capacity(tx.ops.len());
        for (index, op) in tx.ops.iter().enumerate() {
            match self.apply_op(op) {
                Ok(undo) => log.push(undo),
                Err(reason) => {
                    self.roll_back(log);
                    return Err(ApplyError::Op { index, reason });
                }
            }
        }
        let mut changed: Vec<RecordId> = log.iter().map(Undo::id).collect();
        changed.sort_unstable();
        changed.dedup();
        if let Err(error) = self.check_touched(&changed, &log) {
            self.roll_back(log);
            return Err(error);
        }
        for id in &changed {
            if let Some(entry) = self.entry_mut(*id) {
                entry.version.0 += 1;
            } else if let Some(version) = self.tombstones.get_mut(id) {
                version.0 += 1;
            }
        }
        let inverse = log.into_iter().rev().map(Undo::into_inverse).collect();
        Ok(Applied { changed, inverse })
    }

    fn entry_mut(&mut self, id: RecordId) -> Option<&mut Entry> {
        if id == self.id.into() { Some(&mut self.project) } else { self.records.get_mut(&id) }
    }

    fn gone(&self, id: RecordId) -> OpFailure {
        if self.tombstones.contains_key(&id) { OpFailure::Deleted(id) } else { OpFailure::Missing(id) }
    }

    fn live_mut(&mut self, id: RecordId) -> Result<&mut Entry, OpFailure> {
        if id == self.id.into() {
            return Ok(&mut self.project);
        }
        match self.records.get_mut(&id) {
            Some(entry) => Ok(entry),
            None if self.tombstones.contains_key(&id) => Err(OpFailure::Deleted(id)),
            None => Err(OpFailure::Missing(id)),
        }
    }

    /// Checks that `id` is a live record of `kind`.
    fn require(&self, id: impl Into<RecordId>, kind: RecordKind) -> Result<(), OpFailure> {
        let id = id.into();
        match self.entry(id) {
            Some(entry) if entry.record.kind() == kind => Ok(()),
            Some(entry) => Err(OpFailure::WrongKind { id, expected: kind, found: entry.record.kind() }),
            None => Err(self.gone(id)),
        }
    }

    /// Checks that `effect` is a live effect on `track`'s chain with a parameter `param`.
    fn require_effect_param(&self, effect: EffectId, param: EffectParam, track: TrackId) -> Result<(), OpFailure> {
        self.require(effect, RecordKind::Effect)?;
        let Some(Record::Effect(found)) = self.entry(effect.into()).map(|entry| &entry.record) else {
            return Err(self.gone(effect.into()));
        };
        if found.bus != Bus::Track(track) {
            return Err(OpFailure::ElsewhereEffect { effect, track });
        }
        if found.kind.index_of(param).is_none() {
            return Err(Invalid::EffectParam { param, value: f32::NAN }.into());
        }
        Ok(())
    }

    fn apply_op<'tx>(&mut self, op: &'tx Op) -> Result<Undo<'tx>, OpFailure> {
        match op {
            Op::Create { id, record } => self.create(*id, record),
            Op::Set { target, value, expect } => {
                validate::field(value)?;
                if let Field::Clip(ClipField::Track(track)) | Field::NoteClip(NoteClipField::Track(track)) = value {
                    self.require(*track, RecordKind::Track)?;
                }
                if let Field::Effect(EffectField::Param(param, value)) = value
                    && let Some(Record::Effect(effect)) = self.entry(*target).map(|entry| &entry.record)
                    && effect.kind.index_of(*param).is_none()
                {
                    return Err(Invalid::EffectParam { param: *param, value: *value }.into());
                }
                let entry = self.live_mut(*target)?;
                let wrong_kind = |entry: &Entry| OpFailure::WrongKind {
                    id: *target,
                    expected: value.kind(),
                    found: entry.record.kind(),
                };
                if let Some(expect) = expect {
                    if !expect.same_field(value) {
                        let (value, expect) = (value.name().to_owned(), expect.name().to_owned());
                        return Err(OpFailure::ExpectMismatch { value, expect });
                    }
                    let current = value.read(&entry.record).ok_or_else(|| wrong_kind(entry))?;
                    if current != *expect {
                        return Err(OpFailure::Conflict { id: *target, current });
                    }
                }
                let old = value.clone().replace(&mut entry.record).map_err(|_| wrong_kind(entry))?;
                Ok(Undo::Set { id: *target, old, new: value })
            }
            Op::ListInsert { target, item, at } => {
                if let ListItem::Track(track) = item {
                    self.require(*track, RecordKind::Track)?;
                }
                let entry = self.live_mut(*target)?;
                match (&mut entry.record, item) {
                    (Record::Project(project), ListItem::Track(track)) => {
                        list_insert(&mut project.track_order, *track, *at, validate::MAX_TRACKS)?;
                    }
                    (Record::AutomationLane(lane), ListItem::Point(point)) => {
                        validate::point(lane.parameter, point)?;
                        list_insert(&mut lane.points, *point, *at, validate::MAX_POINTS)?;
                    }
                    (Record::NoteClip(clip), ListItem::Note(note)) => {
                        validate::note(note)?;
                        list_insert(&mut clip.notes, *note, *at, crate::notes::MAX_NOTES)?;
                    }
                    (record, _) => return Err(OpFailure::NoSuchList(record.kind())),
                }
                Ok(Undo::Inserted { target: *target, item: item.id() })
            }
            Op::ListRemove { target, item } => {
                let entry = self.live_mut(*target)?;
                let (item, after) = match &mut entry.record {
                    Record::Project(project) => {
                        let (track, after) = list_remove(&mut project.track_order, *item)?;
                        (ListItem::Track(track), after)
                    }
                    Record::AutomationLane(lane) => {
                        let (point, after) = list_remove(&mut lane.points, *item)?;
                        (ListItem::Point(point), after)
                    }
                    Record::NoteClip(clip) => {
                        let (note, after) = list_remove(&mut clip.notes, *item)?;
                        (ListItem::Note(note), after)
                    }
                    record => return Err(OpFailure::NoSuchList(record.kind())),
                };
                Ok(Undo::Removed { target: *target, item, after })
            }
            Op::Delete { target } => self.delete(*target),
        }
    }

    fn create<'tx>(&mut self, id: RecordId, record: &Record) -> Result<Undo<'tx>, OpFailure> {
        if id == self.id.into() || record.kind() == RecordKind::Project {
            return Err(OpFailure::ProjectRecord);
        }
        if self.records.contains_key(&id) {
            return Err(OpFailure::Exists(id));
        }
        if self.records.len() >= validate::MAX_RECORDS {
            return Err(Invalid::TooManyRecords(self.records.len()).into());
        }
        // Rules between fields wait for the end of the transaction: the undo of "set a fade, then
        // delete the clip" recreates the clip with that fade and only then restores it.
        validate::values(record)?;
        match record {
            Record::Clip(clip) => {
                self.require(clip.track, RecordKind::Track)?;
                self.require(clip.asset, RecordKind::AudioAsset)?;
            }
            Record::AutomationLane(lane) => {
                self.require(lane.track, RecordKind::Track)?;
                if let Parameter::Effect(effect, param) = lane.parameter {
                    self.require_effect_param(effect, param, lane.track)?;
                }
            }
            Record::NoteClip(clip) => self.require(clip.track, RecordKind::Track)?,
            Record::Effect(effect) => {
                match effect.bus {
                    Bus::Track(track) => self.require(track, RecordKind::Track)?,
                    Bus::Master if effect.kind.is_instrument() => return Err(Invalid::InstrumentOnMaster.into()),
                    Bus::Master => {}
                }
                let on_chain =
                    self.records().filter(|(_, e)| matches!(&e.record, Record::Effect(o) if o.bus == effect.bus));
                if on_chain.count() >= MAX_EFFECTS {
                    return Err(Invalid::ChainFull.into());
                }
            }
            Record::Member(member) if self.role_of(member.user).is_some() => {
                return Err(OpFailure::AlreadyMember(member.user));
            }
            Record::Member(_) | Record::Project(_) | Record::Track(_) | Record::AudioAsset(_) => {}
        }
        let tombstone = self.tombstones.remove(&id);
        let entry = Entry { version: tombstone.unwrap_or_default(), record: record.clone() };
        self.records.insert(id, entry);
        Ok(Undo::Created { id, tombstone })
    }

    fn delete<'tx>(&mut self, id: RecordId) -> Result<Undo<'tx>, OpFailure> {
        if id == self.id.into() {
            return Err(OpFailure::ProjectRecord);
        }
        let entry = self.records.get(&id).ok_or_else(|| self.gone(id))?;
        let used_by = |other: &Record| match (&entry.record, other) {
            (Record::Track(_), Record::Clip(clip)) => RecordId::from(clip.track) == id,
            (Record::Track(_), Record::AutomationLane(lane)) => RecordId::from(lane.track) == id,
            (Record::Track(_), Record::Project(project)) => {
                project.track_order.iter().any(|t| RecordId::from(*t) == id)
            }
            (Record::Track(_), Record::Effect(effect)) => effect.bus.track().is_some_and(|t| RecordId::from(t) == id),
            (Record::Track(_), Record::NoteClip(clip)) => RecordId::from(clip.track) == id,
            (Record::AudioAsset(_), Record::Clip(clip)) => RecordId::from(clip.asset) == id,
            (Record::Effect(_), Record::AutomationLane(lane)) => {
                matches!(lane.parameter, Parameter::Effect(effect, _) if RecordId::from(effect) == id)
            }
            _ => false,
        };
        if matches!(entry.record, Record::Track(_) | Record::AudioAsset(_) | Record::Effect(_))
            && let Some((by, _)) = self.records().find(|(_, other)| used_by(&other.record))
        {
            return Err(OpFailure::InUse { id, by });
        }
        let Some(entry) = self.records.remove(&id) else { return Err(self.gone(id)) };
        self.tombstones.insert(id, entry.version);
        Ok(Undo::Deleted { id, entry })
    }

    /// The rules checked once per transaction, over the records it touched.
    fn check_touched(&self, changed: &[RecordId], log: &[Undo<'_>]) -> Result<(), ApplyError> {
        for id in changed {
            if let Some(entry) = self.entry(*id) {
                validate::coherence(&entry.record).map_err(|reason| ApplyError::Record { id: *id, reason })?;
            }
        }
        let touched_members = log.iter().any(|undo| match undo {
            Undo::Created { id, .. } => self.entry(*id).is_some_and(|e| e.record.kind() == RecordKind::Member),
            Undo::Set { new, .. } => new.kind() == RecordKind::Member,
            Undo::Deleted { entry, .. } => entry.record.kind() == RecordKind::Member,
            Undo::Inserted { .. } | Undo::Removed { .. } => false,
        });
        let has_owner =
            || self.records.values().any(|e| matches!(e.record, Record::Member(m) if m.role == Role::Owner));
        if touched_members && !has_owner() {
            return Err(ApplyError::NoOwner);
        }
        Ok(())
    }

    /// Undoes logged ops, newest first. Each inverse applies by construction: it runs against
    /// exactly the state its op left behind.
    fn roll_back(&mut self, log: Vec<Undo<'_>>) {
        for undo in log.into_iter().rev() {
            match undo {
                Undo::Created { id, tombstone } => {
                    self.records.remove(&id);
                    if let Some(version) = tombstone {
                        self.tombstones.insert(id, version);
                    }
                }
                Undo::Deleted { id, entry } => {
                    self.tombstones.remove(&id);
                    self.records.insert(id, entry);
                }
                list_or_set => {
                    let inverse = list_or_set.into_inverse();
                    let undone = self.apply_op(&inverse).map(|_| ());
                    debug_assert_eq!(undone, Ok(()), "an inverse op failed during roll-back");
                }
            }
        }
    }
}

/// The ops that undo `tx`, computed from `state` as it is before `tx` (which stays untouched).
pub fn invert(state: &ProjectState, tx: &Transaction) -> Result<Vec<Op>, ApplyError> {
    let mut after = state.clone();
    after.apply(tx).map(|applied| applied.inverse)
}
