//! History: the user's edits, and undo and redo of them.
//!
//! Everything the user changes arrives here as an [`EditMsg`], in order: an edit (the ops of
//! one action, committed at once), a gesture (a fader or a clip being dragged: previews while it
//! moves, one edit when it ends), undo or redo. Each edit is proposed to the
//! [`Replica`], which shows it at once and queues it for the authority.
//!
//! Undo is per user: the history holds only this client's edits. An undo entry is the inverse
//! the replica computed when the edit applied, and its `Set`s carry `expect` (the value the
//! edit wrote), so undoing an edit that a collaborator has changed since is refused, with the
//! reason, instead of overwriting their work; an undo of a field nobody else touched applies
//! whatever happened to other fields. The redo entry is computed when the undo applies, the
//! same way. An edit the authority rejects, or that a collaborator's change made void, leaves
//! the history with it.

use bevy::prelude::*;
use ensemble_protocol::{ApplyError, Op, Transaction, TxId};

use crate::replica::{Notice, Replica};
use crate::sync::{Outbound, SyncSystems, configure_sets};

/// How many edits can be undone.
pub const UNDO_LIMIT: usize = 1_000;

/// Undo and redo of the user's own edits, and previews of gestures.
pub struct HistoryPlugin;

impl Plugin for HistoryPlugin {
    fn build(&self, app: &mut App) {
        configure_sets(app);
        app.init_resource::<History>()
            .add_message::<EditMsg>()
            .add_message::<Notice>()
            .add_message::<Outbound>()
            .add_systems(Last, (forget_void, handle_edits).chain().in_set(SyncSystems::Edit));
    }
}

/// What the user does to the project, in the order they did it.
#[derive(Message, Clone, Debug, PartialEq)]
pub enum EditMsg {
    /// One edit: its ops commit together and undo together.
    Edit(Vec<Op>),
    /// A continuous edit (dragging a fader or a clip) shows these ops instead of its previous
    /// preview; nothing is sent.
    Preview(Vec<Op>),
    /// The gesture ended: its last preview commits as one edit and one undo entry.
    CommitGesture,
    /// The gesture was abandoned: its preview disappears.
    CancelGesture,
    /// Undo the user's newest edit.
    Undo,
    /// Redo the newest undone edit.
    Redo,
}

#[derive(Clone, Debug)]
struct Entry {
    /// The edit whose effect this entry reverses.
    tx_id: TxId,
    /// The ops that reverse it.
    ops: Vec<Op>,
}

/// The user's undo and redo stacks.
#[derive(Resource, Debug, Default)]
pub struct History {
    undo: Vec<Entry>,
    redo: Vec<Entry>,
    preview: Vec<Op>,
}

impl History {
    /// Whether there is an edit to undo.
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Whether there is an undone edit to redo.
    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    /// Whether a gesture is being previewed.
    pub fn in_gesture(&self) -> bool {
        !self.preview.is_empty()
    }

    /// Proposes `ops` as a new edit; on success pushes its undo entry and clears redo.
    pub fn edit(&mut self, replica: &mut Replica, ops: Vec<Op>) -> Result<Transaction, ApplyError> {
        let tx = Transaction::new(replica.project(), ops);
        let inverse = replica.propose(tx.clone())?;
        self.push_undo(Entry { tx_id: tx.id, ops: inverse });
        self.redo.clear();
        Ok(tx)
    }

    /// Undoes the newest edit. `Ok(None)` when there is nothing to undo. A refused undo (a
    /// collaborator changed what it would restore) is dropped from the history.
    pub fn undo(&mut self, replica: &mut Replica) -> Result<Option<Transaction>, ApplyError> {
        let Some(entry) = self.undo.pop() else { return Ok(None) };
        let tx = Transaction::new(replica.project(), entry.ops);
        let inverse = replica.propose(tx.clone())?;
        self.redo.push(Entry { tx_id: tx.id, ops: inverse });
        Ok(Some(tx))
    }

    /// Redoes the newest undone edit. `Ok(None)` when there is nothing to redo.
    pub fn redo(&mut self, replica: &mut Replica) -> Result<Option<Transaction>, ApplyError> {
        let Some(entry) = self.redo.pop() else { return Ok(None) };
        let tx = Transaction::new(replica.project(), entry.ops);
        let inverse = replica.propose(tx.clone())?;
        self.push_undo(Entry { tx_id: tx.id, ops: inverse });
        Ok(Some(tx))
    }

    /// Forgets entries whose edit never took effect (rejected, or dropped after a conflict).
    pub fn forget(&mut self, tx_id: TxId) {
        self.undo.retain(|entry| entry.tx_id != tx_id);
        self.redo.retain(|entry| entry.tx_id != tx_id);
    }

    fn push_undo(&mut self, entry: Entry) {
        if self.undo.len() == UNDO_LIMIT {
            self.undo.remove(0);
        }
        self.undo.push(entry);
    }
}

fn forget_void(mut notices: MessageReader<Notice>, mut history: ResMut<History>) {
    for notice in notices.read() {
        if let Notice::Rejected { tx_id, .. } | Notice::Dropped { tx_id, .. } = notice {
            history.forget(*tx_id);
        }
    }
}

fn handle_edits(
    replica: Option<ResMut<Replica>>,
    mut history: ResMut<History>,
    mut edits: MessageReader<EditMsg>,
    mut notices: MessageWriter<Notice>,
    mut outbound: MessageWriter<Outbound>,
) {
    let Some(mut replica) = replica else {
        let ignored = edits.read().count();
        if ignored > 0 {
            debug!("{ignored} edits before the project loaded were ignored");
        }
        return;
    };
    let replica = &mut *replica;
    for edit in edits.read() {
        let proposed = match edit {
            EditMsg::Edit(ops) => {
                history.edit(replica, ops.clone()).map(Some).map_err(|reason| Notice::Refused { reason })
            }
            EditMsg::Preview(ops) => {
                if replica.preview(ops.clone()).is_ok() {
                    history.preview = ops.clone();
                }
                Ok(None)
            }
            EditMsg::CommitGesture => {
                let ops = std::mem::take(&mut history.preview);
                replica.clear_preview();
                if ops.is_empty() {
                    Ok(None)
                } else {
                    history.edit(replica, ops).map(Some).map_err(|reason| Notice::Refused { reason })
                }
            }
            EditMsg::CancelGesture => {
                history.preview.clear();
                replica.clear_preview();
                Ok(None)
            }
            EditMsg::Undo => history.undo(replica).map_err(|reason| Notice::UndoRefused { reason }),
            EditMsg::Redo => history.redo(replica).map_err(|reason| Notice::RedoRefused { reason }),
        };
        match proposed {
            Ok(Some(tx)) => {
                outbound.write(Outbound::Propose(tx));
            }
            Ok(None) => {}
            Err(notice) => {
                notices.write(notice);
            }
        }
    }
}
