//! A commit made outside the serving process (an operator command, straight into the store)
//! reaches that process's subscribers on Postgres: the command pokes after its commit, the
//! server listens, and the project's actor catches up and bumps.

use std::time::Duration;

use ensemble_authority::actor;
use ensemble_authority::server::ServerOptions;
use ensemble_protocol::wire::Bump;
use ensemble_protocol::*;

use crate::harness::{self, Clients, add_track, committed};

#[tokio::test]
async fn postgres_an_operators_commit_reaches_the_subscribers_of_a_running_authority() {
    let store = harness::postgres().await;
    let cast = harness::cast(&store).await;
    let authority = harness::serve(&store, ServerOptions::default()).await;
    let mut alice = authority.client(&cast.owner).await;
    let track = TrackId::new_v7();
    let seq = committed(alice.write(&add_track(cast.project, track, "Bass")).await.unwrap());
    let mut bob = authority.client(&cast.editor).await;
    bob.subscribe(cast.project, Some(seq)).await.unwrap();

    // The operator renames the track from another process: into the store, not through the
    // authority.
    let rename =
        Op::Set { target: track.into(), value: Field::Track(TrackField::Name("Bass DI".into())), expect: None };
    let operators = actor::apply_as_authority(&store, cast.project, vec![rename]).await.unwrap();
    let bump: Bump = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let ServerMsg::Bump(bump) = bob.recv().await.unwrap() {
                return bump;
            }
        }
    })
    .await
    .expect("the subscriber hears of the operator's commit");
    assert_eq!(bump.seq, operators);
    let renamed = bump.changes.iter().find(|change| change.id == track.into()).and_then(|change| change.record.clone());
    let Some(Record::Track(renamed)) = renamed else { panic!("the bump carries the track: {bump:?}") };
    assert_eq!(renamed.name, "Bass DI");

    // The authority writes on from the store's state, and Bob hears that too, in order.
    let next = committed(alice.write(&harness::set_gain(cast.project, track, -3.0, None)).await.unwrap());
    assert_eq!(next, operators.next());
    let ServerMsg::Bump(after) = bob.recv().await.unwrap() else { panic!("expected a bump") };
    assert_eq!(after.seq, next);
}
