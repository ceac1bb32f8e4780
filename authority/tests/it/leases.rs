//! Several authority processes on one Postgres: one serves each project at a time, under a
//! lease whose epoch fences its commits. Another process takes a project within the lease's
//! time after its server is killed; a server paused past its lease cannot commit when it
//! wakes, and moves its clients on. Nothing acknowledged is lost, nothing is stored twice.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ensemble_authority::Error;
use ensemble_authority::store::{AnyStore, Batch, Claim, Lease, SqliteStore, Store};
use ensemble_net::remote::{Remote, Subscription};
use ensemble_protocol::*;
use sqlx::Connection;

use crate::harness::{self, Node, TwoNodes, add_track, committed, snapshot_tracks, two_nodes};

pub(crate) const TTL: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn postgres_a_lease_is_held_by_one_node_until_it_expires_and_fences_its_former_holder() {
    let store = harness::postgres().await;
    let cast = harness::cast(&store).await;
    let (a, b) = (harness::unique("node-a"), harness::unique("node-b"));
    let Claim::Granted(first) = store.acquire_lease(cast.project, &a, TTL).await.unwrap() else {
        panic!("a free project is granted")
    };
    let Claim::HeldBy { node, expires_in } = store.acquire_lease(cast.project, &b, TTL).await.unwrap() else {
        panic!("a held project is not granted")
    };
    assert_eq!(node, a);
    assert!(expires_in <= TTL && expires_in > Duration::ZERO, "{expires_in:?}");
    assert_eq!(store.lease_holder(cast.project).await.unwrap(), Some(a.clone()));
    assert_eq!(store.renew_leases(&a, &[(cast.project, first)], TTL).await.unwrap(), [cast.project]);

    // A stops renewing; once the lease expires B takes it, at a higher epoch.
    tokio::time::sleep(TTL + Duration::from_millis(200)).await;
    let Claim::Granted(second) = store.acquire_lease(cast.project, &b, TTL).await.unwrap() else {
        panic!("an expired lease is granted")
    };
    assert!(second.epoch > first.epoch);
    assert_eq!(store.renew_leases(&a, &[(cast.project, first)], TTL).await.unwrap(), [], "A lost it");
    assert_eq!(store.lease_holder(cast.project).await.unwrap(), Some(b.clone()));

    // A commit under A's old epoch is refused as fenced, and stores nothing; B's commits.
    let (loaded, base) = {
        let loaded = store.load_project(cast.project).await.unwrap().unwrap();
        (loaded.state, loaded.seq)
    };
    let batch = |lease: Lease, seq: Seq| one_track(&loaded, lease, seq);
    assert!(matches!(store.commit(cast.project, base, &batch(first, base.next())).await, Err(Error::Fenced(_))));
    assert_eq!(store.load_project(cast.project).await.unwrap().unwrap().seq, base);
    store.commit(cast.project, base, &batch(second, base.next())).await.unwrap();
    // A lost race is still told apart from a lost lease.
    let raced = store.commit(cast.project, base, &batch(second, base.next())).await;
    assert!(matches!(raced, Err(Error::SeqMoved(_))), "{raced:?}");

    // Released, the project is A's again at once; a project that does not exist is not found.
    store.release_leases(&b).await.unwrap();
    let Claim::Granted(third) = store.acquire_lease(cast.project, &a, TTL).await.unwrap() else {
        panic!("a released lease is granted at once")
    };
    assert!(third.epoch > second.epoch);
    assert!(matches!(store.acquire_lease(ProjectId::new_v7(), &a, TTL).await, Err(Error::NotFound(_))));
}

/// A batch committing one transaction at `seq` on `state`, under `lease`: a new track.
fn one_track(state: &ProjectState, lease: Lease, seq: Seq) -> Batch {
    let mut state = state.clone();
    let tx = add_track(state.id(), TrackId::new_v7(), "Fenced?");
    let applied = state.apply(&tx).unwrap();
    let changes: Vec<RecordChange> = applied.changed.iter().map(|id| state.change(*id)).collect();
    let mut batch = Batch { lease: Some(lease), ..Batch::default() };
    batch.push_commit(&tx, seq, ensemble_authority::actor::AUTHORITY, &changes, 1).unwrap();
    batch
}

#[tokio::test]
async fn postgres_a_lease_is_renewed_while_commits_hold_every_connection() {
    let store = harness::postgres().await;
    let cast = harness::cast(&store).await;
    let node = harness::unique("node-busy");
    let Claim::Granted(lease) = store.acquire_lease(cast.project, &node, TTL).await.unwrap() else {
        panic!("a free project is granted")
    };
    let loaded = store.load_project(cast.project).await.unwrap().unwrap();

    // Another client of the database holds the project's row, so every commit to the project
    // waits, each on a connection of the store's: more commits than it has connections.
    let url = ensemble_testkit::sandbox::postgres_url().unwrap();
    let mut outside = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut outside).await.unwrap();
    sqlx::query("SELECT seq FROM projects WHERE id = $1 FOR UPDATE")
        .bind(cast.project.0.as_bytes().as_slice())
        .execute(&mut outside)
        .await
        .unwrap();
    let commits: Vec<_> = (0..24)
        .map(|_| {
            let (store, batch, project, base) =
                (store.clone(), one_track(&loaded.state, lease, loaded.seq.next()), cast.project, loaded.seq);
            tokio::spawn(async move { store.commit(project, base, &batch).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The lease is renewed all the same, well within its time to live.
    let held = [(cast.project, lease)];
    let renewed = tokio::time::timeout(TTL / 2, store.renew_leases(&node, &held, TTL))
        .await
        .expect("the renewal waited for the commits");
    assert_eq!(renewed.unwrap(), [cast.project]);

    // Once the row is free, one of the commits lands and the others lost the race.
    sqlx::query("ROLLBACK").execute(&mut outside).await.unwrap();
    let mut landed = 0;
    for commit in commits {
        match commit.await.unwrap() {
            Ok(()) => landed += 1,
            Err(error) => assert!(matches!(error, Error::SeqMoved(_)), "{error:?}"),
        }
    }
    assert_eq!(landed, 1);
}

#[tokio::test]
async fn the_embedded_store_grants_every_lease_and_commits_whatever_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("one.sqlite").display());
    let store = AnyStore::Sqlite(SqliteStore::open(&url).await.unwrap());
    let cast = harness::cast(&store).await;
    for node in ["a", "b"] {
        assert_eq!(store.acquire_lease(cast.project, node, TTL).await.unwrap(), Claim::Granted(Lease { epoch: 0 }));
    }
}

/// Subscribes through `node` until the project is served there (another process may hold its
/// lease for a while).
pub(crate) async fn subscribe_when_served(
    node: &Node,
    user: &str,
    project: ProjectId,
    within: Duration,
) -> (Remote, Subscription) {
    let started = Instant::now();
    loop {
        let mut remote = node.client(user).await;
        match remote.subscribe(project, None).await {
            Ok(subscription) => return (remote, subscription),
            Err(error) => {
                let said = error.to_string();
                let elsewhere = said.contains("another authority process") || said.contains("server is gone");
                assert!(elsewhere, "{said}");
                assert!(started.elapsed() < within, "not served within {within:?}: {said}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_another_process_takes_a_killed_servers_projects_with_every_acknowledged_edit() {
    let TwoNodes { store, cast, mut a, b, dir: _dir, .. } = two_nodes(TTL, &[]).await;

    // Alice edits through A, which takes the project's lease.
    let base = store.load_project(cast.project).await.unwrap().unwrap().seq;
    let mut alice = a.client(&cast.owner).await;
    let acknowledged = harness::write_tracks(&mut alice, cast.project, 20).await;
    // While A serves it, B says so rather than serve it too.
    let mut bob = b.client(&cast.editor).await;
    let refused = bob.subscribe(cast.project, None).await.unwrap_err().to_string();
    assert!(refused.contains(&format!("served by another authority process ({})", a.id)), "{refused}");

    // A dies without a word; B serves the project within about one lease time, and has it all.
    a.child.kill().await.unwrap();
    let killed = Instant::now();
    let (mut bob, served) = subscribe_when_served(&b, &cast.editor, cast.project, 3 * TTL).await;
    let failover = killed.elapsed();
    assert!(failover <= 2 * TTL + Duration::from_millis(500), "failover took {failover:?} (lease {TTL:?})");
    assert_eq!(snapshot_tracks(&served.catch_up), acknowledged.iter().copied().collect::<HashSet<_>>());
    assert_eq!(served.seq.0, base.0 + 20, "each acknowledged transaction once");
    let next = committed(bob.write(&add_track(cast.project, TrackId::new_v7(), "After")).await.unwrap());
    assert_eq!(next, served.seq.next());
    eprintln!("failover after a kill -9: {} ms (lease {} ms)", failover.as_millis(), TTL.as_millis());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_server_paused_past_its_lease_cannot_commit_when_it_wakes_and_moves_its_clients() {
    let TwoNodes { store, cast, a, b, dir: _dir, .. } = two_nodes(TTL, &[]).await;
    let mut alice = a.client(&cast.owner).await;
    alice.subscribe(cast.project, None).await.unwrap();
    let before = TrackId::new_v7();
    let alices = committed(alice.write(&add_track(cast.project, before, "Before")).await.unwrap());

    // A freezes past its lease; Bob, on B, takes the project over and edits.
    a.signal("-STOP");
    let (mut bob, _) = subscribe_when_served(&b, &cast.editor, cast.project, 4 * TTL).await;
    let bobs = TrackId::new_v7();
    assert_eq!(committed(bob.write(&add_track(cast.project, bobs, "Bob's")).await.unwrap()), alices.next());

    // A wakes with Alice's next edit waiting: it is refused, not stored, and Alice's connection
    // is closed as moved (her client reconnects and finds the project on B).
    a.signal("-CONT");
    let late = TrackId::new_v7();
    let answer = alice.write(&add_track(cast.project, late, "Late")).await;
    assert!(!matches!(answer, Ok(ServerMsg::Committed { .. })), "a fenced server acknowledged {answer:?}");
    let loaded = store.load_project(cast.project).await.unwrap().unwrap();
    assert_eq!(loaded.seq, alices.next(), "nothing forked");
    assert!(loaded.state.entry(late.into()).is_none() && loaded.state.entry(bobs.into()).is_some());
    assert!(loaded.state.entry(before.into()).is_some());
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Err(error) = alice.recv().await {
                return error.to_string();
            }
        }
    })
    .await
    .expect("A closes Alice's connection");
    assert!(closed.contains("another authority process"), "{closed}");
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_server_stopped_with_sigterm_hands_its_projects_over_at_once() {
    // Leases long enough that only a release explains a quick takeover.
    let TwoNodes { cast, mut a, b, dir: _dir, .. } = two_nodes(Duration::from_secs(30), &[]).await;
    let mut alice = a.client(&cast.owner).await;
    let acknowledged = harness::write_tracks(&mut alice, cast.project, 5).await;
    a.signal("-TERM");
    let stopped = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(10), a.child.wait()).await.expect("A stops").unwrap();
    assert!(status.success(), "a clean stop: {status:?}");
    let (_, served) = subscribe_when_served(&b, &cast.editor, cast.project, Duration::from_secs(5)).await;
    assert!(stopped.elapsed() < Duration::from_secs(10), "handed over in {:?}", stopped.elapsed());
    assert_eq!(snapshot_tracks(&served.catch_up), acknowledged.into_iter().collect::<HashSet<_>>());
}
