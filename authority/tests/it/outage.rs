//! The database goes away for longer than every timeout, then comes back: an edit whose author
//! was told "could not save" never appears afterwards, its connection is closed so the client
//! sends it again (in order, on the next one), and the authority serves again by itself.
//!
//! [`Outage`] wraps a real store and fails every call while it is down, as a database that stays
//! unreachable past the pool's timeouts does, on both stores.

use std::time::Duration;

use ensemble_authority::server::ServerOptions;
use ensemble_authority::store::{AnyStore, Store};
use ensemble_net::remote::Remote;
use ensemble_protocol::wire::{CatchUp, ErrorCode};
use ensemble_protocol::*;
use ensemble_testkit::outage::Outage;

use crate::harness::Clients;
use crate::harness::{self, add_track, committed};

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
    let store = Outage::new(inner.clone());
    let cast = harness::cast(&store).await;
    let authority = harness::serve(&store, ServerOptions::default()).await;
    let mut alice = authority.client(&cast.owner).await;
    let mut bob = authority.client(&cast.editor).await;
    let track = TrackId::new_v7();
    committed(alice.write(&add_track(cast.project, track, "Bass")).await.unwrap());

    store.set_down(true);
    // Alice's gain change applies in memory, fails to commit, and the reload fails too.
    let refused = harness::set_gain(cast.project, track, -6.0, None);
    let answer = alice.write(&refused).await;
    closed_to_retry(&mut alice, answer, "could not save").await;
    // Still down: nothing is served from memory that the store may not hold.
    let answer = bob.write(&rename(cast.project, track, "Bass (down)")).await;
    closed_to_retry(&mut bob, answer, "cannot reach its database").await;

    store.set_down(false);
    // Bob's next edit touches the same record: it must not carry Alice's refused gain with it.
    let mut bob = authority.client(&cast.editor).await;
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
    let mut alice = authority.client(&cast.owner).await;
    committed(alice.write(&refused).await.unwrap());
}

/// `answer` to a write the authority could not store is an error saying `why` (or the close
/// overtook it), and the connection closes as `RETRY`: the client sends the edit again on the
/// next one, before anything it made later.
async fn closed_to_retry(remote: &mut Remote, answer: Result<ServerMsg, ensemble_net::Error>, why: &str) {
    if let Ok(answer) = &answer {
        let said = matches!(answer, ServerMsg::Error { code: ErrorCode::Internal, message } if message.contains(why));
        assert!(said, "a write while the database is down answered {answer:?}");
    }
    let closed = tokio::time::timeout(Duration::from_secs(10), async { while remote.recv().await.is_ok() {} }).await;
    assert!(closed.is_ok(), "the connection stays open");
    assert_eq!(remote.close_code(), Some(wire::close::RETRY));
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
