//! The data directory fills up under writing clients: every acknowledged transaction is in the
//! database afterwards, every refusal says the disk is full (in its answer or in the close of
//! its connection, which the client reconnects after), and writes (and logins) resume by
//! themselves once space returns.
//!
//! The database lives on a small tmpfs of its own, grown while the authority runs; mounting one
//! needs root, as CI has.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ensemble_authority::server::ServerOptions;
use ensemble_authority::store::{AnyStore, SqliteStore, Store};
use ensemble_net::remote::Remote;
use ensemble_protocol::*;
use ensemble_testkit::loopback::Loopback;
use tempfile::TempDir;

use crate::harness::Clients;
use crate::harness::{self, add_track};

/// A tmpfs mounted on a temporary directory, unmounted when dropped.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    fn mount(kib: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        mount(&["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"], dir.path());
        Tmpfs { dir }
    }

    fn resize(&self, kib: u64) {
        mount(&["-o", &format!("remount,size={kib}k")], self.dir.path());
    }
}

fn mount(args: &[&str], at: &Path) {
    let status = Command::new("mount").args(args).arg(at).status().expect("running mount");
    assert!(status.success(), "`mount {}` failed: this test mounts a small tmpfs and needs root", args.join(" "));
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily, since the pool may still be closing its last connections.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[derive(Debug)]
enum Outcome {
    Acknowledged,
    Refused(String),
}

/// Every write and its answer, in the order the answers came.
type Outcomes = Arc<Mutex<Vec<(TrackId, Outcome)>>>;

/// Writes tracks with long names (pages fill fast) as `user`, on `first` to begin with, until
/// the task is aborted. A refused write ends its connection (its client would send it again on
/// the next): the writer logs in again, which fails while the disk is full (a login writes a
/// session row), waiting longer after each failure as the app does, and goes on with new
/// tracks.
async fn writer(authority: Arc<Loopback>, first: Remote, user: String, project: ProjectId, outcomes: Outcomes) {
    let name = "a take that fills the disk ".repeat(8);
    // Logged in before the disk fills.
    let mut connected = Some(first);
    let mut retry = Duration::from_millis(50);
    loop {
        let remote = match &mut connected {
            Some(remote) => remote,
            None => {
                let mut remote = authority.connect().await;
                if remote.login(&user, harness::PASSWORD).await.is_err() {
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(Duration::from_secs(1));
                    continue;
                }
                retry = Duration::from_millis(50);
                connected.insert(remote)
            }
        };
        let track = TrackId::new_v7();
        let outcome = match remote.write(&add_track(project, track, &name)).await {
            Ok(ServerMsg::Committed { .. }) => Outcome::Acknowledged,
            Ok(ServerMsg::Error { message, .. }) => Outcome::Refused(message),
            Ok(other) => panic!("unexpected answer {other:?}"),
            Err(error) if remote.close_code() == Some(wire::close::RETRY) => Outcome::Refused(error.to_string()),
            Err(error) => panic!("the connection failed: {error}"),
        };
        if matches!(outcome, Outcome::Refused(_)) {
            connected = None;
        }
        outcomes.lock().unwrap().push((track, outcome));
    }
}

/// Waits until `done` holds for the outcomes so far, failing with `what` after a minute.
async fn wait_for(outcomes: &Outcomes, what: &str, done: impl Fn(&[(TrackId, Outcome)]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&outcomes.lock().unwrap()) {
        assert!(Instant::now() < deadline, "{what}: {:?}", summary(&outcomes.lock().unwrap()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn summary(outcomes: &[(TrackId, Outcome)]) -> (usize, Vec<&str>) {
    let acknowledged = outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Acknowledged)).count();
    let mut refusals: Vec<&str> = outcomes
        .iter()
        .filter_map(|(_, o)| match o {
            Outcome::Refused(message) => Some(message.as_str()),
            Outcome::Acknowledged => None,
        })
        .collect();
    refusals.dedup();
    (acknowledged, refusals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_clearly_loses_nothing_acknowledged_and_recovers_by_itself() {
    let disk = Tmpfs::mount(1024);
    let url = format!("sqlite://{}", disk.dir.path().join("authority.sqlite").display());
    let store = AnyStore::Sqlite(SqliteStore::open(&url).await.unwrap());
    let cast = harness::cast(&store).await;
    let authority = Arc::new(harness::serve(&store, ServerOptions::default()).await);
    let outcomes = Outcomes::default();
    let mut logged_in = Vec::new();
    for user in [&cast.owner, &cast.editor, &cast.owner, &cast.editor] {
        logged_in.push((authority.client(user).await, user.clone()));
    }
    let writers: Vec<_> = logged_in
        .into_iter()
        .map(|(first, user)| tokio::spawn(writer(authority.clone(), first, user, cast.project, outcomes.clone())))
        .collect();

    let refused =
        |outcomes: &[(TrackId, Outcome)]| outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Refused(_))).count();
    // Each writer is refused at least once, then waits to log in again.
    wait_for(&outcomes, "the disk never filled", |outcomes| refused(outcomes) >= 4).await;
    disk.resize(64 * 1024);
    let space_returned = outcomes.lock().unwrap().len();
    wait_for(&outcomes, "writes did not resume once space returned", |outcomes| {
        outcomes[space_returned..].iter().filter(|(_, o)| matches!(o, Outcome::Acknowledged)).count() >= 40
    })
    .await;
    // A login writes a session row.
    let mut late = authority.client(&cast.viewer).await;
    late.subscribe(cast.project, None).await.unwrap();
    for writer in &writers {
        writer.abort();
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());

    let reopened = SqliteStore::open(&url).await.unwrap();
    let stored = reopened.load_project(cast.project).await.unwrap().unwrap().state;
    let (mut lost, mut stored_refused) = (0, 0);
    for (track, outcome) in &outcomes {
        let present = stored.entry((*track).into()).is_some();
        match outcome {
            Outcome::Acknowledged => lost += usize::from(!present),
            Outcome::Refused(message) => {
                assert!(message.contains("full"), "a refusal that does not say why: {message}");
                stored_refused += usize::from(present);
            }
        }
    }
    let (acknowledged, _) = summary(&outcomes);
    assert_eq!(lost, 0, "{lost} of {acknowledged} acknowledged transactions are not in the database");
    assert_eq!(stored_refused, 0, "{stored_refused} refused transactions are in the database");
}
