//! The database goes away for longer than every timeout, then comes back: an edit whose author
//! was told "could not save" never appears afterwards, and the authority serves again by itself.
//!
//! [`Outage`] wraps a real store and fails every call while it is down, as a database that stays
//! unreachable past the pool's timeouts does (`PoolTimedOut`), on both stores.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ensemble_authority::Error;
use ensemble_authority::server::ServerOptions;
use ensemble_authority::store::{
    AnyStore, Batch, BlobRow, Claim, CommittedTx, JobRow, Lease, LoadedProject, ProjectRow, Store, StoredAs, UserRow,
};
use ensemble_protocol::wire::{CatchUp, ErrorCode, JobKind};
use ensemble_protocol::*;

use crate::harness::Clients;
use crate::harness::{self, add_track, committed};

/// A store that can be switched off.
#[derive(Clone, Debug)]
struct Outage<S> {
    inner: S,
    down: Arc<AtomicBool>,
}

impl<S> Outage<S> {
    fn set_down(&self, down: bool) {
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

fn track_of(records: &[RecordChange], id: TrackId) -> Track {
    match records.iter().find(|change| change.id == id.into()).and_then(|change| change.record.clone()) {
        Some(Record::Track(track)) => track,
        other => panic!("track {id} is {other:?}"),
    }
}

fn rename(project: ProjectId, id: TrackId, name: &str) -> Transaction {
    let value = Field::Track(TrackField::Name(name.into()));
    Transaction::new(project, vec![Op::Set { target: id.into(), value, expect: None }])
}

async fn a_refused_edit_never_appears_after_the_database_returns(inner: AnyStore) {
    let store = Outage { inner: inner.clone(), down: Arc::default() };
    let cast = harness::cast(&store).await;
    let authority = harness::serve(&store, ServerOptions::default()).await;
    let mut alice = authority.client(&cast.owner).await;
    let mut bob = authority.client(&cast.editor).await;
    let track = TrackId::new_v7();
    committed(alice.write(&add_track(cast.project, track, "Bass")).await.unwrap());

    store.set_down(true);
    // Alice's gain change applies in memory, fails to commit, and the reload fails too.
    let refused = harness::set_gain(cast.project, track, -6.0, None);
    match alice.write(&refused).await.unwrap() {
        ServerMsg::Error { code: ErrorCode::Internal, message } => {
            assert!(message.contains("could not save"), "{message}");
        }
        other => panic!("a write while the database is down answered {other:?}"),
    }
    // Still down: nothing is served from memory that the store may not hold.
    let answer = bob.write(&rename(cast.project, track, "Bass (down)")).await.unwrap();
    assert!(matches!(answer, ServerMsg::Error { code: ErrorCode::Internal, .. }), "{answer:?}");

    store.set_down(false);
    // Bob's next edit touches the same record: it must not carry Alice's refused gain with it.
    committed(bob.write(&rename(cast.project, track, "Bass DI")).await.unwrap());
    let stored = inner.load_project(cast.project).await.unwrap().unwrap();
    let stored_track = track_of(&stored.state.snapshot(), track);
    assert_eq!((stored_track.name.as_str(), stored_track.gain_db), ("Bass DI", 0.0));
    assert!(inner.committed(cast.project, &[refused.id]).await.unwrap().is_empty(), "the refused edit was logged");

    // What a newcomer is shown is what the store holds.
    let mut carol = authority.client(&cast.viewer).await;
    let subscription = carol.subscribe(cast.project, None).await.unwrap();
    assert_eq!(subscription.seq, stored.seq);
    let CatchUp::Snapshot(records) = subscription.catch_up else { panic!("expected a snapshot") };
    assert_eq!(track_of(&records, track).gain_db, 0.0);

    // Sent again, the refused edit is an ordinary new edit and commits.
    committed(alice.write(&refused).await.unwrap());
}

#[tokio::test]
async fn sqlite_a_refused_edit_never_appears_after_the_database_returns() {
    let (store, _dir) = harness::sqlite().await;
    a_refused_edit_never_appears_after_the_database_returns(store).await;
}

#[tokio::test]
async fn postgres_a_refused_edit_never_appears_after_the_database_returns() {
    a_refused_edit_never_appears_after_the_database_returns(harness::postgres().await).await;
}
