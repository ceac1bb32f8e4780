//! Several authority processes on one Postgres and one NATS: any process serves any client.
//! Requests for a project go to the process holding its lease, its bumps come back to every
//! process whose clients watch it, presence crosses too; bumps lost while NATS is down arrive
//! by catch-up; when the owner dies its relayed clients are moved on and another process takes
//! the project with everything acknowledged.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ensemble_authority::leases::LeaseOptions;
use ensemble_authority::server::ServerOptions;
use ensemble_authority::store::Store;
use ensemble_net::remote::Remote;
use ensemble_protocol::wire::{Bump, CatchUp, Presence};
use ensemble_protocol::*;

use crate::harness::{self, Clients, Nats, TwoNodes, add_track, committed, snapshot_tracks, two_nodes, write_tracks};
use crate::leases::{TTL, subscribe_when_served};

/// Options for node `name` of a cluster on `nats`.
fn node(name: &str, nats: &Nats) -> ServerOptions {
    let leases = LeaseOptions { node: harness::unique(name), ttl: TTL };
    ServerOptions { leases, nats: Some(nats.url.clone()), ..ServerOptions::default() }
}

/// The next bump `remote` receives, skipping other messages.
async fn next_bump(remote: &mut Remote) -> Bump {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let ServerMsg::Bump(bump) = remote.recv().await.unwrap() {
                return bump;
            }
        }
    })
    .await
    .expect("a bump arrives")
}

/// Reads bumps until one reaches `seq`; the tracks they carried.
async fn bumps_until(remote: &mut Remote, seq: Seq) -> HashSet<TrackId> {
    let mut tracks = HashSet::new();
    loop {
        let bump = next_bump(remote).await;
        tracks.extend(
            bump.changes.iter().filter(|c| matches!(c.record, Some(Record::Track(_)))).map(|c| TrackId(c.id.0)),
        );
        if bump.seq >= seq {
            return tracks;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_three_processes_serve_one_project_through_its_owner() {
    let nats = Nats::start().unwrap();
    let store = harness::postgres().await;
    let cast = harness::cast(&store).await;
    let a = harness::serve(&store, node("a", &nats)).await;
    let b = harness::serve(&store, node("b", &nats)).await;
    let c = harness::serve(&store, node("c", &nats)).await;

    // Alice, on A, is first: A takes the project.
    let mut alice = a.client(&cast.owner).await;
    alice.subscribe(cast.project, None).await.unwrap();
    let drums = TrackId::new_v7();
    let first = committed(alice.write(&add_track(cast.project, drums, "Drums")).await.unwrap());

    // Bob on B and Vera on C subscribe through A and are caught up.
    let mut bob = b.client(&cast.editor).await;
    let mut vera = c.client(&cast.viewer).await;
    for remote in [&mut bob, &mut vera] {
        let subscribed = remote.subscribe(cast.project, None).await.unwrap();
        assert_eq!(subscribed.seq, first);
        assert!(snapshot_tracks(&subscribed.catch_up).contains(&drums));
    }

    // Bob writes through B: A commits it, and everyone hears it, Bob included.
    let bass = TrackId::new_v7();
    let second = committed(bob.write(&add_track(cast.project, bass, "Bass")).await.unwrap());
    assert_eq!(second, first.next());
    for remote in [&mut alice, &mut bob, &mut vera] {
        assert!(bumps_until(remote, second).await.contains(&bass));
    }
    // Vera is a viewer wherever she connects.
    let refused = vera.write(&add_track(cast.project, TrackId::new_v7(), "No")).await.unwrap();
    assert!(matches!(refused, ServerMsg::Rejected { .. }), "{refused:?}");

    // Writes from several processes at once all land, in one order everyone sees.
    let mut written = HashSet::new();
    for round in 0..5 {
        for (remote, name) in [(&mut alice, "A"), (&mut bob, "B")] {
            let track = TrackId::new_v7();
            committed(remote.write(&add_track(cast.project, track, &format!("{name}{round}"))).await.unwrap());
            written.insert(track);
        }
    }
    let last = store.load_project(cast.project).await.unwrap().unwrap().seq;
    assert_eq!(last.0, second.0 + 10);
    for remote in [&mut alice, &mut bob, &mut vera] {
        assert!(bumps_until(remote, last).await.is_superset(&written));
    }

    // Presence crosses processes: Bob's pointer reaches Alice.
    let presence =
        Presence { playhead: Ticks(960), playing: true, selection: vec![drums.into()], pointer: Some(Ticks(480)) };
    bob.send(&ClientMsg::Presence { project: cast.project, presence: presence.clone() }).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let ServerMsg::Presence { peer, .. } = alice.recv().await.unwrap()
                && peer.presence.is_some()
            {
                return peer;
            }
        }
    })
    .await
    .expect("Bob's presence reaches Alice");
    assert_eq!(seen.presence, Some(presence));
    drop((a, b, c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_bumps_lost_while_nats_was_down_arrive_by_catch_up() {
    let mut nats = Nats::start().unwrap();
    let store = harness::postgres().await;
    let cast = harness::cast(&store).await;
    let a = harness::serve(&store, node("a", &nats)).await;
    let b = harness::serve(&store, node("b", &nats)).await;
    let mut alice = a.client(&cast.owner).await;
    committed(alice.write(&add_track(cast.project, TrackId::new_v7(), "First")).await.unwrap());
    let mut bob = b.client(&cast.editor).await;
    bob.subscribe(cast.project, None).await.unwrap();

    // NATS goes away; Alice goes on editing on A, which needs no NATS to commit.
    nats.stop();
    let mut missed = HashSet::new();
    let mut seq = Seq(0);
    for _ in 0..5 {
        let track = TrackId::new_v7();
        seq = committed(alice.write(&add_track(cast.project, track, "While down")).await.unwrap());
        missed.insert(track);
    }
    nats.resume().unwrap();
    // B's relay reconnects and catches up through A: Bob has all five, then hears what follows.
    assert!(bumps_until(&mut bob, seq).await.is_superset(&missed));
    let after = TrackId::new_v7();
    let next = committed(alice.write(&add_track(cast.project, after, "After")).await.unwrap());
    assert!(bumps_until(&mut bob, next).await.contains(&after));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_when_the_owner_dies_its_relayed_clients_move_and_another_process_takes_the_project() {
    let nats = Nats::start().unwrap();
    let TwoNodes { cast, mut a, b, dir: _dir, .. } = two_nodes(TTL, &["--nats", nats.url.as_str()]).await;

    let mut alice = a.client(&cast.owner).await;
    let mut acknowledged: HashSet<TrackId> = write_tracks(&mut alice, cast.project, 10).await.into_iter().collect();
    // Bob, on B, is served through A.
    let mut bob = b.client(&cast.editor).await;
    bob.subscribe(cast.project, None).await.unwrap();
    let bobs = TrackId::new_v7();
    committed(bob.write(&add_track(cast.project, bobs, "Bob's")).await.unwrap());
    acknowledged.insert(bobs);

    // A dies. B notices within a lease time and closes Bob's connection as moved.
    a.child.kill().await.unwrap();
    let killed = Instant::now();
    let closed = tokio::time::timeout(4 * TTL, async {
        loop {
            if let Err(error) = bob.recv().await {
                return error.to_string();
            }
        }
    })
    .await
    .expect("B moves Bob on");
    assert!(closed.contains("another authority process") || closed.contains("gone"), "{closed}");

    // Bob reconnects to B, which takes the project once A's lease has run out.
    let (mut bob, served) = subscribe_when_served(&b, &cast.editor, cast.project, 4 * TTL).await;
    let failover = killed.elapsed();
    assert_eq!(snapshot_tracks(&served.catch_up), acknowledged);
    let next = committed(bob.write(&add_track(cast.project, TrackId::new_v7(), "After")).await.unwrap());
    assert_eq!(next, served.seq.next());
    eprintln!(
        "relayed client served again {} ms after the owner's kill -9 (lease {} ms)",
        failover.as_millis(),
        TTL.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_client_moved_off_a_paused_owner_is_served_by_its_own_process_when_the_lease_ends() {
    // A lease long enough that the moved client is back (1.5 s of unanswered pings and a
    // reconnection) well before it ends: its process must wait the lease out, not ask the
    // silent owner again and move it a second time.
    let lease = Duration::from_secs(3);
    let nats = Nats::start().unwrap();
    let TwoNodes { store, cast, a, b, dir: _dir } = two_nodes(lease, &["--nats", nats.url.as_str()]).await;
    let mut alice = a.client(&cast.owner).await;
    write_tracks(&mut alice, cast.project, 1).await;
    // Bob, on B, is served through A.
    let mut bob = b.client(&cast.editor).await;
    committed(bob.write(&add_track(cast.project, TrackId::new_v7(), "Through A")).await.unwrap());

    a.signal("-STOP");
    let paused = Instant::now();
    let tx = add_track(cast.project, TrackId::new_v7(), "While A sleeps");
    let answer = bob.write(&tx).await;
    assert!(answer.is_err() && bob.close_code() == Some(wire::close::MOVED), "B moves Bob on: {answer:?}");

    // Once: Bob's next try through B is served there, when A's lease has run out.
    let mut bob = b.client(&cast.editor).await;
    let seq = committed(bob.write(&tx).await.unwrap());
    let served_after = paused.elapsed();
    assert_eq!(store.lease_holder(cast.project).await.unwrap(), Some(b.id.clone()));
    assert_eq!(store.load_project(cast.project).await.unwrap().unwrap().seq, seq);
    assert!(served_after > Duration::from_secs(2), "not before A's lease ended: {served_after:?}");
    a.signal("-CONT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_answers_and_bumps_larger_than_nats_carries_still_arrive() {
    // NATS carries 4 KiB here; the project's snapshot is several times that.
    let nats = Nats::start_with("max_payload: 4096").unwrap();
    let store = harness::postgres().await;
    let cast = harness::cast(&store).await;
    let a = harness::serve(&store, node("a", &nats)).await;
    let b = harness::serve(&store, node("b", &nats)).await;
    let mut alice = a.client(&cast.owner).await;
    let written: HashSet<TrackId> = write_tracks(&mut alice, cast.project, 400).await.into_iter().collect();
    let mut bob = b.client(&cast.editor).await;
    let subscribed = bob.subscribe(cast.project, None).await.unwrap();
    assert_eq!(snapshot_tracks(&subscribed.catch_up), written, "the whole snapshot, through B");
    let size = ensemble_protocol::frame::encode_value(&subscribed.catch_up).unwrap().len();
    assert!(size > 4 * 4096, "the snapshot is {size} bytes");
    // A bump too large for NATS too (the project record lists 401 tracks): relays hear a poke
    // and fetch it from the owner.
    let last = committed(alice.write(&add_track(cast.project, TrackId::new_v7(), "One more")).await.unwrap());
    bumps_until(&mut bob, last).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_member_removed_by_the_owner_stops_hearing_the_project_through_another_process() {
    let nats = Nats::start().unwrap();
    let store = harness::postgres().await;
    let cast = harness::cast(&store).await;
    let a = harness::serve(&store, node("a", &nats)).await;
    let b = harness::serve(&store, node("b", &nats)).await;
    let mut alice = a.client(&cast.owner).await;
    let served = alice.subscribe(cast.project, None).await.unwrap();
    let mut vera = b.client(&cast.viewer).await;
    vera.subscribe(cast.project, None).await.unwrap();

    // Alice removes Vera from the project.
    let vera_id = store.user_by_name(&cast.viewer).await.unwrap().unwrap().id;
    let CatchUp::Snapshot(records) = served.catch_up else { panic!("expected a snapshot") };
    let membership = records
        .iter()
        .find(|change| matches!(&change.record, Some(Record::Member(member)) if member.user == vera_id))
        .map(|change| change.id)
        .expect("Vera's membership");
    let removal = Transaction::new(cast.project, vec![Op::Delete { target: membership }]);
    let removed = committed(alice.write(&removal).await.unwrap());

    // B drops her with the reason, and what Alice writes next does not reach her.
    let told = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let ServerMsg::Error { message, .. } = vera.recv().await.unwrap() {
                return message;
            }
        }
    })
    .await
    .expect("Vera is told");
    assert!(told.contains("no longer a member"), "{told}");
    let secret = TrackId::new_v7();
    let after = committed(alice.write(&add_track(cast.project, secret, "Secret")).await.unwrap());
    assert!(after > removed);
    let heard = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            match vera.recv().await {
                Ok(ServerMsg::Bump(bump)) if bump.changes.iter().any(|change| change.id == secret.into()) => {
                    return true;
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await;
    assert!(!heard.unwrap_or(false), "a removed member heard a later edit");
}
