//! Presence between two clients through a real authority: what one does, the other sees in
//! the same colour everyone sees; it disappears when that client leaves.

use std::time::Duration;

use ensemble_client::presence::{LocalPresence, Peers, colour_of};
use ensemble_client::sync::{Connection, SyncStatus};
use ensemble_protocol::{Presence, RecordId, Ticks};

use crate::harness::{Authority, online, replicas, step_until};

#[test]
fn a_collaborators_playhead_and_selection_arrive_in_their_colour_and_leave_with_them() {
    let authority = Authority::start();
    let (_alice_dir, alice_stores) = replicas();
    let (_bob_dir, bob_stores) = replicas();
    let mut alice = authority.client("alice", &alice_stores);
    let mut bob = authority.client("bob", &bob_stores);
    step_until(&mut [&mut alice, &mut bob], Duration::from_secs(20), |apps| online(apps[0]) && online(apps[1]));
    let Connection::Online { user: alice_id, .. } = alice.world().resource::<SyncStatus>().connection.clone() else {
        unreachable!()
    };
    let clip = RecordId::new_v7();
    let presence = Presence { playhead: Ticks(3840), playing: true, selection: vec![clip], pointer: Some(Ticks(100)) };
    alice.world_mut().resource_mut::<LocalPresence>().0 = presence.clone();
    step_until(&mut [&mut alice, &mut bob], Duration::from_secs(10), |apps| {
        apps[1].world().resource::<Peers>().sessions.values().any(|peer| peer.presence == presence)
    });
    let peers = bob.world().resource::<Peers>();
    assert_eq!(peers.sessions.len(), 1, "only alice: bob does not see himself");
    let peer = peers.sessions.values().next().unwrap();
    assert_eq!((peer.user, peer.name.as_str(), peer.colour), (alice_id, "alice", colour_of(alice_id)));

    drop(alice);
    step_until(&mut [&mut bob], Duration::from_secs(10), |apps| {
        apps[0].world().resource::<Peers>().sessions.is_empty()
    });
}
