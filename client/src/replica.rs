//! The client's copy of a project: what the authority confirmed, plus the edits still on their
//! way, laid over it.
//!
//! A [`Replica`] keeps two states. `confirmed` is exactly what the authority's bumps say, seq by
//! seq. The `view` is `confirmed` with every pending transaction applied in order, and then the
//! preview of a gesture in progress (a fader being dragged): it is what the user sees, so an
//! edit shows at once.
//!
//! When a bump arrives the confirmed state takes the new values and the view is *rebased*: the
//! records the bump changed, and those the pending edits and the preview touch, are reset to their
//! confirmed values and the pending edits are applied again on top. Only those records are
//! copied, so a bump costs what it changed, not what the project holds. A pending edit that no
//! longer applies (a collaborator deleted its target) is dropped and reported; a rejection drops
//! its edit the same way.
//!
//! A pending edit leaves the queue once the confirmed state contains it: when the bump that
//! commits it arrives, or when the authority says it committed at a seq the replica already has
//! (a resend after a reconnect, answered from the authority's memory). Once nothing is pending,
//! the view equals the authority's state exactly, versions included.
//!
//! The replica also keeps two lists for whoever mirrors it: the records whose view changed
//! ([`Replica::take_changes`], for the ECS) and the edits that left the queue
//! ([`Replica::take_settled`], for the local store).

use std::collections::{BTreeSet, VecDeque};

use ensemble_protocol::wire::{CatchUp, Rejection};
use ensemble_protocol::{
    ApplyError, Field, Op, ProjectId, ProjectState, RecordChange, RecordId, Seq, ServerMsg, Transaction, TxId,
};

use crate::sync::{FromAuthority, Restored};

/// Something the user should be told about their edits.
#[derive(bevy::prelude::Message, Clone, Debug, PartialEq)]
pub enum Notice {
    /// An edit does not apply to the project as it is (its target is gone, a value is out of
    /// range); nothing changed.
    Refused {
        /// Why.
        reason: ApplyError,
    },
    /// An undo would overwrite a collaborator's later change (or its target is gone); the
    /// entry has been dropped from the history.
    UndoRefused {
        /// Why.
        reason: ApplyError,
    },
    /// A redo no longer applies; the entry has been dropped.
    RedoRefused {
        /// Why.
        reason: ApplyError,
    },
    /// The authority refused one of our edits; it has been undone locally.
    Rejected {
        /// The edit.
        tx_id: TxId,
        /// Why.
        reason: Rejection,
    },
    /// One of our pending edits no longer applies after a collaborator's change; it has been
    /// dropped.
    Dropped {
        /// The edit.
        tx_id: TxId,
        /// Why it no longer applies.
        reason: ApplyError,
    },
    /// A collaborator's later edit replaced a value one of our committed edits set (two people
    /// moved the same clip, offline or at once: the later one stands).
    Overridden {
        /// The record.
        record: RecordId,
        /// The field's name.
        field: &'static str,
    },
}

/// How many values our committed edits set are remembered, to tell the user when a
/// collaborator replaces one.
const REMEMBERED_SETS: usize = 256;

/// Which records of the view changed since the last [`Replica::take_changes`].
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Changes {
    /// These records (created, changed or deleted).
    Some(BTreeSet<RecordId>),
    /// The view was replaced (a snapshot): compare everything.
    #[default]
    All,
}

impl Changes {
    fn insert(&mut self, id: RecordId) {
        if let Changes::Some(ids) = self {
            ids.insert(id);
        }
    }
}

#[derive(Clone, Debug)]
struct Pending {
    tx: Transaction,
    /// The seq the authority committed it at, once it said so.
    committed: Option<Seq>,
}

/// A project as the authority confirmed it, with our pending edits and a gesture's preview on
/// top.
#[derive(bevy::prelude::Resource, Clone, Debug)]
pub struct Replica {
    confirmed: ProjectState,
    seq: Seq,
    pending: VecDeque<Pending>,
    preview: Vec<Op>,
    view: ProjectState,
    changes: Changes,
    settled: Vec<TxId>,
    /// Values our committed edits set, newest last.
    ours: VecDeque<(RecordId, Field)>,
}

impl Replica {
    /// A replica of `confirmed`, which the authority gave at `seq`.
    pub fn new(confirmed: ProjectState, seq: Seq) -> Self {
        Replica {
            view: confirmed.clone(),
            confirmed,
            seq,
            pending: VecDeque::new(),
            preview: Vec::new(),
            changes: Changes::All,
            settled: Vec::new(),
            ours: VecDeque::new(),
        }
    }

    /// A replica from a subscription's first answer, when there is no local copy: only a
    /// snapshot can start one.
    pub fn from_subscription(project: ProjectId, seq: Seq, catch_up: &CatchUp) -> Option<Self> {
        match catch_up {
            CatchUp::Snapshot(records) => {
                ProjectState::from_changes(project, records.iter().cloned()).ok().map(|state| Replica::new(state, seq))
            }
            CatchUp::Delta(_) => None,
        }
    }

    /// A replica restored from a local copy: the confirmed state and the edits that were still
    /// pending, in order. Edits that no longer apply are dropped and reported.
    pub fn restore(confirmed: ProjectState, seq: Seq, pending: Vec<Transaction>) -> (Self, Vec<Notice>) {
        let mut replica = Replica::new(confirmed, seq);
        replica.pending = pending.into_iter().map(|tx| Pending { tx, committed: None }).collect();
        let notices = replica.rebuild();
        (replica, notices)
    }

    /// What the user sees: confirmed ⊕ pending ⊕ preview.
    pub fn view(&self) -> &ProjectState {
        &self.view
    }

    /// What the authority has confirmed.
    pub fn confirmed(&self) -> &ProjectState {
        &self.confirmed
    }

    /// The project.
    pub fn project(&self) -> ProjectId {
        self.confirmed.id()
    }

    /// The seq of the last confirmed commit.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// Our edits not yet confirmed, oldest first (to send, or resend after a reconnect).
    pub fn pending(&self) -> impl ExactSizeIterator<Item = &Transaction> {
        self.pending.iter().map(|pending| &pending.tx)
    }

    /// Records whose view changed since the last call.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::replace(&mut self.changes, Changes::Some(BTreeSet::new()))
    }

    /// Edits that left the pending queue (confirmed, rejected or dropped) since the last call.
    pub fn take_settled(&mut self) -> Vec<TxId> {
        std::mem::take(&mut self.settled)
    }

    /// Applies a local edit to the view and queues it for the authority. Returns the ops that
    /// undo it, or why it does not apply (then nothing changes).
    pub fn propose(&mut self, tx: Transaction) -> Result<Vec<Op>, ApplyError> {
        let preview = std::mem::take(&mut self.preview);
        if !preview.is_empty() {
            self.rebase([]);
        }
        let applied = self.view.apply(&tx);
        if let Ok(applied) = &applied {
            applied.changed.iter().for_each(|id| self.changes.insert(*id));
            self.pending.push_back(Pending { tx, committed: None });
        }
        if !preview.is_empty() {
            self.set_preview(preview);
        }
        applied.map(|applied| applied.inverse)
    }

    /// Shows `ops` on top of everything else without queueing them (a gesture in progress),
    /// replacing the previous preview. Nothing changes if they do not apply.
    pub fn preview(&mut self, ops: Vec<Op>) -> Result<(), ApplyError> {
        let previous = std::mem::take(&mut self.preview);
        let touched = previous.iter().map(Op::target);
        self.rebase(touched.collect::<Vec<_>>());
        let shown = self.show(&ops);
        match shown {
            Ok(()) => self.preview = ops,
            Err(_) => self.set_preview(previous),
        }
        shown
    }

    /// Removes the preview from the view.
    pub fn clear_preview(&mut self) {
        let previous = std::mem::take(&mut self.preview);
        self.rebase(previous.iter().map(Op::target).collect::<Vec<_>>());
    }

    fn set_preview(&mut self, ops: Vec<Op>) {
        if self.show(&ops).is_ok() {
            self.preview = ops;
        }
    }

    /// Applies `ops` to the view as a transaction that is never sent.
    fn show(&mut self, ops: &[Op]) -> Result<(), ApplyError> {
        if ops.is_empty() {
            return Ok(());
        }
        let tx = Transaction { id: TxId::from_u128(0), project: self.view.id(), ops: ops.to_vec() };
        let applied = self.view.apply(&tx)?;
        applied.changed.iter().for_each(|id| self.changes.insert(*id));
        Ok(())
    }

    /// Takes a message from the authority; returns what the user should be told.
    pub fn receive(&mut self, message: &ServerMsg) -> Vec<Notice> {
        match message {
            ServerMsg::Bump(bump) if bump.project == self.confirmed.id() && bump.seq > self.seq => {
                self.absorb(&bump.changes);
                self.seq = bump.seq;
                let pending = self.pending.iter_mut().find(|pending| pending.tx.id == bump.tx_id);
                let ours = pending.is_some();
                if let Some(pending) = pending {
                    pending.committed = Some(bump.seq);
                }
                let mut ids: Vec<RecordId> = bump.changes.iter().map(|change| change.id).collect();
                ids.extend(self.settle_committed());
                let mut notices = if ours { Vec::new() } else { self.overridden(&bump.changes) };
                notices.extend(self.rebase(ids));
                notices
            }
            ServerMsg::Committed { tx_id, seq, .. } => {
                let Some(pending) = self.pending.iter_mut().find(|pending| pending.tx.id == *tx_id) else {
                    return Vec::new();
                };
                pending.committed = Some(*seq);
                // A resend the authority already had: its effects are in the confirmed state.
                if *seq <= self.seq {
                    let touched = self.settle_committed();
                    self.rebase(touched)
                } else {
                    Vec::new()
                }
            }
            ServerMsg::Rejected { tx_id, reason } => match self.pending.iter().position(|p| p.tx.id == *tx_id) {
                Some(index) => {
                    let rejected = self.pending.remove(index).map(|pending| pending.tx.ops).unwrap_or_default();
                    self.settled.push(*tx_id);
                    let mut notices = vec![Notice::Rejected { tx_id: *tx_id, reason: reason.clone() }];
                    notices.extend(self.rebase(rejected.iter().map(Op::target).collect::<Vec<_>>()));
                    notices
                }
                None => Vec::new(),
            },
            ServerMsg::Subscribed { project, seq, catch_up, .. } if *project == self.confirmed.id() => {
                match catch_up {
                    CatchUp::Snapshot(records) => {
                        if let Ok(state) = ProjectState::from_changes(*project, records.iter().cloned()) {
                            self.confirmed = state;
                        }
                    }
                    CatchUp::Delta(changes) => self.absorb(changes),
                }
                self.seq = *seq;
                self.settle_committed();
                self.changes = Changes::All;
                self.rebuild()
            }
            _ => Vec::new(),
        }
    }

    fn absorb(&mut self, changes: &[RecordChange]) {
        for change in changes {
            // The authority's values passed its own validation; one that fails ours (a newer
            // authority with wider limits) is skipped rather than trusted blindly.
            let _ = self.confirmed.absorb(change.clone());
        }
    }

    /// Drops pending edits the confirmed state now contains, remembering the values they set;
    /// returns the records they touched, which the caller rebases.
    fn settle_committed(&mut self) -> Vec<RecordId> {
        let seq = self.seq;
        let settled = &mut self.settled;
        let ours = &mut self.ours;
        let mut touched = Vec::new();
        self.pending.retain(|pending| match pending.committed {
            Some(at) if at <= seq => {
                settled.push(pending.tx.id);
                touched.extend(pending.tx.ops.iter().map(Op::target));
                for op in &pending.tx.ops {
                    if let Op::Set { target, value, .. } = op {
                        ours.retain(|(record, field)| !(record == target && field.same_field(value)));
                        ours.push_back((*target, value.clone()));
                    }
                }
                false
            }
            _ => true,
        });
        while self.ours.len() > REMEMBERED_SETS {
            self.ours.pop_front();
        }
        touched
    }

    /// The values of ours that a collaborator's commit of `changes` replaced; each is told once.
    fn overridden(&mut self, changes: &[RecordChange]) -> Vec<Notice> {
        let mut notices = Vec::new();
        let confirmed = &self.confirmed;
        self.ours.retain(|(record, value)| {
            if !changes.iter().any(|change| change.id == *record) {
                return true;
            }
            let now = confirmed.entry(*record).and_then(|entry| value.read(&entry.record));
            if now.as_ref() == Some(value) {
                return true;
            }
            if now.is_some() {
                notices.push(Notice::Overridden { record: *record, field: value.name() });
            }
            false
        });
        notices
    }

    /// Resets `ids`, and every record a pending edit or the preview touches, to the confirmed
    /// state, then applies the pending edits and the preview again. Equal to rebuilding the
    /// whole view, at the cost of the records involved.
    fn rebase(&mut self, ids: impl IntoIterator<Item = RecordId>) -> Vec<Notice> {
        let mut reset: BTreeSet<RecordId> = ids.into_iter().collect();
        for pending in &self.pending {
            reset.extend(pending.tx.ops.iter().map(Op::target));
        }
        reset.extend(self.preview.iter().map(Op::target));
        for id in &reset {
            self.view.copy_record(&self.confirmed, *id);
            self.changes.insert(*id);
        }
        self.reapply()
    }

    /// The view from scratch: confirmed, then every pending edit that still applies.
    fn rebuild(&mut self) -> Vec<Notice> {
        self.view = self.confirmed.clone();
        self.changes = Changes::All;
        self.reapply()
    }

    /// Applies the pending edits and the preview to a view that holds none of them.
    fn reapply(&mut self) -> Vec<Notice> {
        let mut notices = Vec::new();
        let view = &mut self.view;
        let changes = &mut self.changes;
        let settled = &mut self.settled;
        self.pending.retain(|pending| match view.apply(&pending.tx) {
            Ok(applied) => {
                applied.changed.iter().for_each(|id| changes.insert(*id));
                true
            }
            Err(reason) => {
                notices.push(Notice::Dropped { tx_id: pending.tx.id, reason });
                settled.push(pending.tx.id);
                false
            }
        });
        let preview = std::mem::take(&mut self.preview);
        self.set_preview(preview);
        notices
    }
}

/// Keeps the [`Replica`] resource: made from the local store or the first snapshot, then fed
/// every message from the authority, in [`SyncSystems::Apply`](crate::sync::SyncSystems).
pub struct ReplicaPlugin;

impl bevy::prelude::Plugin for ReplicaPlugin {
    fn build(&self, app: &mut bevy::prelude::App) {
        use bevy::prelude::*;
        crate::sync::configure_sets(app);
        app.add_message::<FromAuthority>()
            .add_message::<Restored>()
            .add_message::<Notice>()
            .add_systems(PreUpdate, apply_from_authority.in_set(crate::sync::SyncSystems::Apply));
    }
}

fn apply_from_authority(
    mut commands: bevy::prelude::Commands,
    replica: Option<bevy::prelude::ResMut<Replica>>,
    mut restored: bevy::prelude::MessageReader<Restored>,
    mut from_authority: bevy::prelude::MessageReader<FromAuthority>,
    mut notices: bevy::prelude::MessageWriter<Notice>,
) {
    let mut replica = replica;
    let mut created: Option<Replica> = None;
    for Restored(saved) in restored.read() {
        if replica.is_some() || created.is_some() {
            continue;
        }
        match ProjectState::from_changes(saved.project, saved.records.iter().cloned()) {
            Ok(state) => {
                let (restored, dropped) = Replica::restore(state, saved.seq, saved.pending.clone());
                notices.write_batch(dropped);
                created = Some(restored);
            }
            Err(error) => {
                bevy::log::warn!("the local copy of the project does not load ({error}); waiting for the authority")
            }
        }
    }
    for FromAuthority(message) in from_authority.read() {
        let target = match replica.as_deref_mut() {
            Some(replica) => Some(replica),
            None => created.as_mut(),
        };
        match (target, message) {
            (Some(replica), message) => {
                notices.write_batch(replica.receive(message));
            }
            (None, ServerMsg::Subscribed { project, seq, catch_up, .. }) => {
                created = Replica::from_subscription(*project, *seq, catch_up);
            }
            (None, _) => {}
        }
    }
    if let Some(created) = created {
        commands.insert_resource(created);
    }
}
