//! A store whose database can be taken away and brought back: while it is down every call
//! fails as a database that stays unreachable past the pool's timeouts does (`PoolTimedOut`).
//! For tests of what an authority, and its clients, do through an outage.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ensemble_authority::Error;
use ensemble_authority::store::{
    Batch, BlobRow, Claim, CommittedTx, JobRow, Lease, LoadedProject, ProjectRow, Store, StoredAs, UserRow,
};
use ensemble_protocol::wire::JobKind;
use ensemble_protocol::{ContentHash, JobId, ProjectId, ProjectState, Seq, TxId, UserId};

/// A store that can be switched off; its clones switch together.
#[derive(Clone, Debug)]
pub struct Outage<S> {
    inner: S,
    down: Arc<AtomicBool>,
}

impl<S> Outage<S> {
    /// `inner`, up.
    pub fn new(inner: S) -> Outage<S> {
        Outage { inner, down: Arc::default() }
    }

    /// Takes the database away (every call fails) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), Error> {
        if self.down.load(Ordering::SeqCst) { Err(Error::Database(sqlx::Error::PoolTimedOut)) } else { Ok(()) }
    }
}

/// Each method fails while the store is down and forwards otherwise.
macro_rules! guarded {
    ($($method:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        $(
            async fn $method(&self, $($arg: $ty),*) -> Result<$out, Error> {
                self.check()?;
                self.inner.$method($($arg),*).await
            }
        )*
    };
}

impl<S: Store + std::fmt::Debug> Store for Outage<S> {
    guarded! {
        create_user(name: &str, password_hash: &str) -> UserId;
        set_password(name: &str, password_hash: &str) -> ();
        user_by_name(name: &str) -> Option<UserRow>;
        user(id: UserId) -> Option<UserRow>;
        create_session(token_hash: [u8; 32], user: UserId, expires_at: i64) -> ();
        session(token_hash: [u8; 32]) -> Option<(UserId, i64)>;
        create_project(state: &ProjectState) -> ();
        projects() -> Vec<ProjectRow>;
        load_project(id: ProjectId) -> Option<LoadedProject>;
        committed(project: ProjectId, tx_ids: &[TxId]) -> Vec<CommittedTx>;
        commit(project: ProjectId, from: Seq, batch: &Batch) -> ();
        blob(hash: ContentHash) -> Option<BlobRow>;
        add_blob(blob: &BlobRow, user: UserId) -> ();
        stored_bytes(user: UserId) -> u64;
        set_blob_stored(hash: ContentHash, stored: StoredAs, size: u64, stored_hash: ContentHash) -> ();
        set_peaks_ready(hash: ContentHash) -> ();
        enqueue_job(id: JobId, kind: JobKind, project: ProjectId, payload: &[u8]) -> ();
        claim_job(worker: &str, now_ms: i64, lease_until: i64) -> Option<JobRow>;
        job(id: JobId) -> Option<JobRow>;
        complete_job(id: JobId, worker: &str, attempt: u32, files: u32) -> bool;
        fail_job(id: JobId, worker: &str, attempt: u32, error: &str, retry_at: Option<i64>) -> bool;
        acquire_lease(project: ProjectId, node: &str, ttl: Duration) -> Claim;
        renew_leases(node: &str, held: &[(ProjectId, Lease)], ttl: Duration) -> Vec<ProjectId>;
        release_leases(node: &str) -> ();
        lease_holder(project: ProjectId) -> Option<String>;
    }
}
