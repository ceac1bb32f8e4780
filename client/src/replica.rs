//! The client's copy of a project: what the authority confirmed, plus the edits still on their
//! way, laid over it.
//!
//! A [`Replica`] keeps two states. `confirmed` is exactly what the authority's bumps say, seq by
//! seq. The `view` is `confirmed` with every pending transaction applied in order: it is what
//! the user sees, so an edit shows at once. When a bump arrives the confirmed state takes the
//! new values, the transaction it confirms (if it is ours) leaves the pending queue, and the
//! view is rebuilt by applying what is still pending on top; a pending transaction that no
//! longer applies (a collaborator deleted its target) is dropped and reported. A rejection
//! drops its transaction the same way. Once nothing is pending, the view equals the
//! authority's state exactly, versions included.

use std::collections::VecDeque;

use ensemble_protocol::wire::{CatchUp, Rejection};
use ensemble_protocol::{ApplyError, Op, ProjectState, RecordChange, Seq, ServerMsg, Transaction, TxId};

/// Something the user should be told after a message from the authority.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
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
}

/// A project as the authority confirmed it, with our pending edits on top.
#[derive(Clone, Debug)]
pub struct Replica {
    confirmed: ProjectState,
    seq: Seq,
    pending: VecDeque<Transaction>,
    view: ProjectState,
}

impl Replica {
    /// A replica of `confirmed`, which the authority gave at `seq`.
    pub fn new(confirmed: ProjectState, seq: Seq) -> Self {
        Replica { view: confirmed.clone(), confirmed, seq, pending: VecDeque::new() }
    }

    /// What the user sees: confirmed ⊕ pending.
    pub fn view(&self) -> &ProjectState {
        &self.view
    }

    /// What the authority has confirmed.
    pub fn confirmed(&self) -> &ProjectState {
        &self.confirmed
    }

    /// The seq of the last confirmed commit.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// Our edits not yet confirmed, oldest first (to send, or resend after a reconnect).
    pub fn pending(&self) -> impl ExactSizeIterator<Item = &Transaction> {
        self.pending.iter()
    }

    /// Applies a local edit to the view and queues it for the authority. Returns the ops that
    /// undo it, or why it does not apply (then nothing changes).
    pub fn propose(&mut self, tx: Transaction) -> Result<Vec<Op>, ApplyError> {
        let applied = self.view.apply(&tx)?;
        self.pending.push_back(tx);
        Ok(applied.inverse)
    }

    /// Takes a message from the authority; returns what the user should be told.
    pub fn receive(&mut self, message: &ServerMsg) -> Vec<Notice> {
        match message {
            ServerMsg::Bump(bump) if bump.project == self.confirmed.id() && bump.seq > self.seq => {
                self.absorb(&bump.changes);
                self.seq = bump.seq;
                if let Some(index) = self.pending.iter().position(|tx| tx.id == bump.tx_id) {
                    self.pending.remove(index);
                }
                self.rebuild()
            }
            ServerMsg::Rejected { tx_id, reason } => match self.pending.iter().position(|tx| tx.id == *tx_id) {
                Some(index) => {
                    self.pending.remove(index);
                    let mut notices = vec![Notice::Rejected { tx_id: *tx_id, reason: reason.clone() }];
                    notices.extend(self.rebuild());
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
                // A pending edit the catch-up already contains may not apply twice (a create):
                // it is dropped here, and the authority answers its resend as a replay.
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

    /// The view from scratch: confirmed, then every pending edit that still applies.
    fn rebuild(&mut self) -> Vec<Notice> {
        self.view = self.confirmed.clone();
        let mut notices = Vec::new();
        let view = &mut self.view;
        self.pending.retain(|tx| match view.apply(tx) {
            Ok(_) => true,
            Err(reason) => {
                notices.push(Notice::Dropped { tx_id: tx.id, reason });
                false
            }
        });
        notices
    }
}
