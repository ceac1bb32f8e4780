//! The local store's writer: one task that owns the [`LocalStore`] and makes its writes, in the
//! order the sync worker queued them, while the worker goes on with the network.
//!
//! The worker never waits for a write (only for the last ones, when the app closes). Order is
//! all the store needs: a proposal is queued before any answer to it is read, so the store
//! never drops a pending edit it has not yet queued, and a bump is never kept before the
//! catch-up it follows. Writes queued while one runs are taken together: consecutive proposals,
//! forgotten edits or bumps each become one store transaction, so a store that is slow to
//! commit (IndexedDB answers between the page's frames) falls behind by a batch, not by a write
//! per edit.

use ensemble_protocol::wire::{Bump, CatchUp};
use ensemble_protocol::{Seq, Transaction, TxId};
use tokio::sync::mpsc;

use super::{FromWorker, ToApp};
use crate::store::LocalStore;

/// One write, as the worker queues it.
pub(super) enum Write {
    /// Proposals made here, to keep until the authority settles them.
    Pending(Vec<Transaction>),
    /// Pending edits that were settled (confirmed, rejected or dropped).
    Forget(Vec<TxId>),
    /// A commit the authority announced.
    Bump(Bump),
    /// A subscription's catch-up.
    CatchUp(Seq, CatchUp),
}

/// The worker's end of the writer's queue.
pub(super) struct Writes(mpsc::UnboundedSender<Write>);

impl Writes {
    /// Queues `write`. (A writer that has stopped has nothing left to lose: the app is closing.)
    pub(super) fn queue(&self, write: Write) {
        let _ = self.0.send(write);
    }
}

/// Owns the store and makes the writes queued on [`Writes`]; see the module docs.
pub(super) struct Writer<S> {
    store: S,
    writes: mpsc::UnboundedReceiver<Write>,
    to_app: ToApp,
}

impl<S: LocalStore> Writer<S> {
    /// A writer for `store`, and the queue that feeds it. It tells the app of stored proposals
    /// and store trouble through `to_app`.
    pub(super) fn new(store: S, to_app: ToApp) -> (Self, Writes) {
        let (sender, writes) = mpsc::unbounded_channel();
        (Writer { store, writes, to_app }, Writes(sender))
    }

    /// Writes until every [`Writes`] is dropped and the queue is empty.
    pub(super) async fn run(mut self) {
        while let Some(first) = self.writes.recv().await {
            let mut batch = vec![first];
            while let Ok(write) = self.writes.try_recv() {
                batch.push(write);
            }
            for write in coalesce(batch) {
                self.write(write).await;
            }
        }
    }

    async fn write(&self, write: Batched) {
        let written = match &write {
            Batched::Pending(txs) => {
                let written = self.store.push_pending(txs).await;
                // Stored or not, the app stops counting them as unsaved: trouble is reported
                // on its own, and the worker keeps them in memory and sends them.
                let _ = self.to_app.send(FromWorker::Stored(txs.len()));
                written
            }
            Batched::Forget(tx_ids) => self.store.forget_pending(tx_ids).await,
            Batched::Bumps(bumps) => self.store.save_bumps(bumps).await,
            Batched::CatchUp(seq, catch_up) => self.store.save_catch_up(*seq, catch_up).await,
        };
        if let Err(error) = written {
            let _ = self.to_app.send(FromWorker::StoreFailed(error.to_string()));
        }
    }
}

/// A run of writes that one store transaction makes.
#[derive(Debug, PartialEq)]
enum Batched {
    Pending(Vec<Transaction>),
    Forget(Vec<TxId>),
    Bumps(Vec<Bump>),
    CatchUp(Seq, CatchUp),
}

/// Joins neighbouring writes of the same kind, keeping the order between kinds.
fn coalesce(writes: Vec<Write>) -> Vec<Batched> {
    let mut batched: Vec<Batched> = Vec::new();
    for write in writes {
        match (batched.last_mut(), write) {
            (Some(Batched::Pending(txs)), Write::Pending(more)) => txs.extend(more),
            (Some(Batched::Forget(tx_ids)), Write::Forget(more)) => tx_ids.extend(more),
            (Some(Batched::Bumps(bumps)), Write::Bump(bump)) => bumps.push(bump),
            (_, Write::Pending(txs)) => batched.push(Batched::Pending(txs)),
            (_, Write::Forget(tx_ids)) => batched.push(Batched::Forget(tx_ids)),
            (_, Write::Bump(bump)) => batched.push(Batched::Bumps(vec![bump])),
            (_, Write::CatchUp(seq, catch_up)) => batched.push(Batched::CatchUp(seq, catch_up)),
        }
    }
    batched
}

#[cfg(test)]
mod tests {
    use ensemble_protocol::{ProjectId, UserId};

    use super::*;

    fn bump(seq: u64) -> Bump {
        let (project, author) = (ProjectId::from_u128(1), UserId::from_u128(2));
        Bump { project, seq: Seq(seq), tx_id: TxId::from_u128(u128::from(seq)), author, changes: Vec::new() }
    }

    #[test]
    fn neighbours_of_a_kind_join_and_kinds_keep_their_order() {
        let (a, b, c) = (TxId::from_u128(10), TxId::from_u128(11), TxId::from_u128(12));
        let (one, two, three) = (bump(1), bump(2), bump(3));
        let writes = vec![
            Write::Bump(one.clone()),
            Write::Bump(two.clone()),
            Write::Forget(vec![a]),
            Write::Forget(vec![b]),
            Write::CatchUp(Seq(2), CatchUp::Delta(Vec::new())),
            Write::Bump(three.clone()),
            Write::Forget(vec![c]),
        ];
        assert_eq!(
            coalesce(writes),
            vec![
                Batched::Bumps(vec![one, two]),
                Batched::Forget(vec![a, b]),
                Batched::CatchUp(Seq(2), CatchUp::Delta(Vec::new())),
                Batched::Bumps(vec![three]),
                Batched::Forget(vec![c]),
            ]
        );
    }
}
