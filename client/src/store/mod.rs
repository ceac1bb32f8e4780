//! The local store: a project's confirmed state, the seq it is at, and the edits made here that
//! the authority has not confirmed yet, kept on disk so that a project opens without a network
//! and edits made offline survive a restart or a crash.
//!
//! [`LocalStore`] is the trait the sync worker writes through; [`SqliteReplicaStore`] is the
//! native one, one SQLite file per project under the user's data directory
//! ([`default_dir`]); `IndexedDbStore` is the browser's, one IndexedDB database per project,
//! behind the same trait (its futures
//! need not be `Send`: see [`ensemble_net::MaybeSend`]). Every method is one database
//! transaction, so a crash leaves either the old or the new state: a bump's records, its seq,
//! and the removal of the pending edit it confirms land together. The sync worker writes through
//! one task that owns the store (see `sync::writer`), so writes never overlap.

use std::future::Future;
use std::path::PathBuf;

use ensemble_net::MaybeSend;
use ensemble_protocol::wire::{Bump, CatchUp};
use ensemble_protocol::{ProjectId, RecordChange, Seq, Transaction, TxId};

use crate::Error;

#[cfg(not(target_arch = "wasm32"))]
mod sqlite;
#[cfg(not(target_arch = "wasm32"))]
pub use sqlite::SqliteReplicaStore;

#[cfg(target_arch = "wasm32")]
mod indexed_db;
#[cfg(target_arch = "wasm32")]
pub use indexed_db::IndexedDbStore;

/// What a local store holds for its project.
#[derive(Clone, Debug, PartialEq)]
pub struct Saved {
    /// The project.
    pub project: ProjectId,
    /// The seq of the confirmed state.
    pub seq: Seq,
    /// The confirmed records, tombstones included.
    pub records: Vec<RecordChange>,
    /// Edits not yet confirmed, oldest first.
    pub pending: Vec<Transaction>,
}

/// Where a client keeps its copy of one project.
pub trait LocalStore: 'static {
    /// Everything stored, or `None` when the project was never stored here.
    fn load(&self) -> impl Future<Output = Result<Option<Saved>, Error>> + MaybeSend;
    /// Takes a subscription's catch-up: a snapshot replaces the records, a delta updates them.
    fn save_catch_up(&self, seq: Seq, catch_up: &CatchUp) -> impl Future<Output = Result<(), Error>> + MaybeSend;
    /// Takes bumps, in seq order: their records, the last one's seq, and drops the pending edits
    /// they commit (ours, if any), all in one transaction.
    fn save_bumps(&self, bumps: &[Bump]) -> impl Future<Output = Result<(), Error>> + MaybeSend;
    /// Appends edits to the pending queue, in order.
    fn push_pending(&self, txs: &[Transaction]) -> impl Future<Output = Result<(), Error>> + MaybeSend;
    /// Removes edits from the pending queue (confirmed, rejected or dropped).
    fn forget_pending(&self, tx_ids: &[TxId]) -> impl Future<Output = Result<(), Error>> + MaybeSend;
}

/// The folder local stores go in by default: `ensemble/replicas` in the user's data directory.
pub fn default_dir() -> PathBuf {
    dirs::data_dir().unwrap_or_else(std::env::temp_dir).join("ensemble").join("replicas")
}
