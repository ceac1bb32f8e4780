//! The real binary, killed with SIGKILL in the middle of a write storm: after a restart every
//! acknowledged transaction is there and no transaction is half there.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ensemble_authority::store::{AnyStore, SqliteStore};
use ensemble_net::remote::Remote;
use ensemble_net::tls::{Fingerprint, Trust};
use ensemble_protocol::wire::CatchUp;
use ensemble_protocol::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::harness::{self, PASSWORD};

/// Starts `ensemble-authority serve` on `url` and reads its address and certificate hashes.
async fn start(url: &str, dir: &std::path::Path) -> (Child, SocketAddr, Vec<Fingerprint>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ensemble-authority"))
        .args(["--database", url, "--data-dir"])
        .arg(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut addr, mut fingerprint) = (None, None);
    while addr.is_none() || fingerprint.is_none() {
        let line = lines.next_line().await.unwrap().expect("the authority exited before it was ready");
        if let Some(rest) = line.strip_prefix("ensemble-authority listening on ") {
            addr = Some(rest.parse().unwrap());
        } else if let Some(rest) = line.strip_prefix("certificate hashes (SHA-256, current,next): ") {
            fingerprint = Some(rest.split(',').map(|hex| Fingerprint::parse(hex).unwrap()).collect::<Vec<_>>());
        }
    }
    (child, addr.unwrap(), fingerprint.unwrap())
}

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
    let (mut child, addr, fingerprint) = start(&url, dir.path()).await;
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

    let (_child, addr, fingerprint) = start(&url, dir.path()).await;
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
