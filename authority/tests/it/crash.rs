//! The real binary, killed with SIGKILL in the middle of a write storm: after a restart every
//! acknowledged transaction is there and no transaction is half there.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ensemble_authority::store::{AnyStore, SqliteStore};
use ensemble_net::remote::Remote;
use ensemble_net::tls::Trust;
use ensemble_protocol::wire::CatchUp;
use ensemble_protocol::*;

use crate::harness::{self, PASSWORD};

/// One transaction, two records: a track and a gain lane on it.
fn track_with_lane(project: ProjectId, track: TrackId) -> Transaction {
    let lane = AutomationLane { track, parameter: Parameter::Gain, enabled: true, points: vec![] };
    Transaction::new(
        project,
        vec![
            Op::Create { id: track.into(), record: Record::Track(ensemble_testkit::records::track("Take")) },
            Op::Create { id: LaneId::new_v7().into(), record: Record::AutomationLane(lane) },
        ],
    )
}

/// Writes until stopped, noting each track whose transaction was acknowledged.
async fn storm(addr: SocketAddr, trust: Trust, user: String, project: ProjectId, acknowledged: Acknowledged) {
    let mut remote = Remote::connect(addr, "localhost", trust).await.unwrap();
    remote.login(&user, PASSWORD).await.unwrap();
    loop {
        let track = TrackId::new_v7();
        match remote.write(&track_with_lane(project, track)).await {
            Ok(ServerMsg::Committed { .. }) => acknowledged.lock().unwrap().insert(track),
            Ok(other) => panic!("unexpected answer {other:?}"),
            Err(_) => return,
        };
    }
}

type Acknowledged = Arc<Mutex<HashSet<TrackId>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_authority_keeps_every_acknowledged_transaction_and_no_half_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("authority.sqlite").display());
    let cast = {
        let store = AnyStore::Sqlite(SqliteStore::open(&url).await.unwrap());
        harness::cast(&store).await
    };
    let (mut child, addr, fingerprint) = harness::serve_binary(&url, dir.path(), |_| ()).await;
    let acknowledged = Acknowledged::default();
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let user = if i % 2 == 0 { cast.owner.clone() } else { cast.editor.clone() };
            tokio::spawn(storm(addr, Trust::Pinned(fingerprint.clone()), user, cast.project, acknowledged.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().await.unwrap();
    // Whatever was acknowledged before the kill is what must survive; the writers' own
    // connections would only notice the death at their idle timeout.
    for writer in &writers {
        writer.abort();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 8, "the storm barely started: {} writes acknowledged", acknowledged.len());

    let (_child, addr, fingerprint) = harness::serve_binary(&url, dir.path(), |_| ()).await;
    let mut remote = Remote::connect(addr, "localhost", Trust::Pinned(fingerprint.clone())).await.unwrap();
    remote.login(&cast.owner, PASSWORD).await.unwrap();
    let subscription = remote.subscribe(cast.project, None).await.unwrap();
    let CatchUp::Snapshot(records) = subscription.catch_up else { panic!("expected a snapshot") };
    let tracks: HashSet<TrackId> =
        records.iter().filter(|c| matches!(c.record, Some(Record::Track(_)))).map(|c| TrackId(c.id.0)).collect();
    let lanes: Vec<TrackId> = records
        .iter()
        .filter_map(|c| match &c.record {
            Some(Record::AutomationLane(lane)) => Some(lane.track),
            _ => None,
        })
        .collect();
    let missing: Vec<_> = acknowledged.difference(&tracks).collect();
    assert!(missing.is_empty(), "{} acknowledged transactions were lost", missing.len());
    assert_eq!(lanes.len(), tracks.len(), "every track came with its lane, in one transaction");
    assert_eq!(lanes.iter().collect::<HashSet<_>>(), tracks.iter().collect::<HashSet<_>>());
    // The setup made two grants (seq 1, 2); every other seq is one storm transaction.
    assert_eq!(subscription.seq.0, 2 + tracks.len() as u64);
}
