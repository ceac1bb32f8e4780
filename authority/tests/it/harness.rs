//! Stores, users, a project and a running authority to test against.

use std::time::Duration;

use ensemble_authority::admin;
use ensemble_authority::server::ServerOptions;
use ensemble_authority::store::{AnyStore, PostgresStore, SqliteStore, Store};
use ensemble_net::remote::Remote;
use ensemble_net::tls::{Fingerprint, Trust};
use ensemble_protocol::wire::CatchUp;
use ensemble_protocol::*;
use ensemble_testkit::loopback::Loopback;
use ensemble_testkit::records;
use tempfile::TempDir;

pub(crate) const PASSWORD: &str = "correct horse battery";

/// A fresh SQLite store in its own directory (kept alive by the returned guard).
pub(crate) async fn sqlite() -> (AnyStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("authority.sqlite").display());
    (AnyStore::Sqlite(SqliteStore::open(&url).await.unwrap()), dir)
}

/// The test run's Postgres (shared; tests use unique names).
pub(crate) async fn postgres() -> AnyStore {
    let url = ensemble_testkit::sandbox::postgres_url().unwrap();
    AnyStore::Postgres(PostgresStore::connect(&url).await.unwrap())
}

/// A name no other test uses.
pub(crate) fn unique(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::now_v7().simple())
}

/// Users with each role in one project.
#[derive(Clone, Debug)]
pub(crate) struct Cast {
    pub(crate) project: ProjectId,
    pub(crate) owner: String,
    pub(crate) editor: String,
    pub(crate) viewer: String,
    pub(crate) stranger: String,
}

pub(crate) async fn cast<S: Store>(store: &S) -> Cast {
    let cast = Cast {
        project: ProjectId::from_u128(0),
        owner: unique("olive"),
        editor: unique("ed"),
        viewer: unique("vera"),
        stranger: unique("sam"),
    };
    for name in [&cast.owner, &cast.editor, &cast.viewer, &cast.stranger] {
        admin::add_user(store, name, PASSWORD).await.unwrap();
    }
    let project = admin::create_project(store, "Test Song", &cast.owner).await.unwrap();
    admin::grant(store, project, &cast.editor, Role::Editor).await.unwrap();
    admin::grant(store, project, &cast.viewer, Role::Viewer).await.unwrap();
    Cast { project, ..cast }
}

/// An authority on loopback, serving a store.
pub(crate) type Running = Loopback;

pub(crate) async fn serve<S: Store>(store: &S, options: ServerOptions) -> Running {
    // RUST_LOG=debug shows the authority's side of a failing test.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    Loopback::start(store.clone(), options).await
}

/// Clients of the test users, who all have [`PASSWORD`].
pub(crate) trait Clients {
    /// A connection logged in as `user`.
    async fn client(&self, user: &str) -> Remote;
}

impl Clients for Loopback {
    async fn client(&self, user: &str) -> Remote {
        self.login(user, PASSWORD).await
    }
}

/// A transaction creating a track and putting it at the end of the track order.
pub(crate) fn add_track(project: ProjectId, id: TrackId, name: &str) -> Transaction {
    Transaction::new(project, records::add_track(project, id, name))
}

pub(crate) fn set_gain(project: ProjectId, id: TrackId, gain: f32, expect: Option<f32>) -> Transaction {
    Transaction::new(project, vec![records::set_gain(id, gain, expect)])
}

/// The answer to a write that should have committed: its seq.
pub(crate) fn committed(answer: ServerMsg) -> Seq {
    match answer {
        ServerMsg::Committed { seq, .. } => seq,
        other => panic!("expected Committed, got {other:?}"),
    }
}

/// Adds `count` tracks through `remote`, each in a transaction of its own and acknowledged;
/// their ids, in order.
pub(crate) async fn write_tracks(remote: &mut Remote, project: ProjectId, count: usize) -> Vec<TrackId> {
    let mut tracks = Vec::with_capacity(count);
    for _ in 0..count {
        let track = TrackId::new_v7();
        committed(remote.write(&add_track(project, track, "Take")).await.unwrap());
        tracks.push(track);
    }
    tracks
}

/// Another project, owned by `owner`.
pub(crate) async fn admin_project(store: &AnyStore, owner: &str) -> ProjectId {
    admin::create_project(store, "Other Song", owner).await.unwrap()
}

/// A database of its own on the test run's Postgres, for tests whose rows are global (jobs are
/// claimed by any runner sharing the database).
pub(crate) async fn postgres_fresh() -> AnyStore {
    let url = ensemble_testkit::sandbox::postgres_url().unwrap();
    let name = format!("ensemble_{}", uuid::Uuid::now_v7().simple());
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let create = format!("CREATE DATABASE {name}");
    sqlx::query(sqlx::AssertSqlSafe(create)).execute(&admin).await.unwrap();
    admin.close().await;
    let (base, query) = url.split_once('?').map_or((url.as_str(), ""), |(base, query)| (base, query));
    let (server, _) = base.rsplit_once('/').unwrap();
    let url = if query.is_empty() { format!("{server}/{name}") } else { format!("{server}/{name}?{query}") };
    AnyStore::Postgres(PostgresStore::connect(&url).await.unwrap())
}

/// `other` (over any connection) and `native` (QUIC), both subscribed to `project`, see each
/// other's edits: each gets the snapshot, `other`'s write reaches `native`, and `other` hears
/// its own write and then `native`'s, in order.
pub(crate) async fn edits_cross<C: ensemble_net::conn::Connection>(
    other: &mut Remote<C>,
    native: &mut Remote,
    project: ProjectId,
) {
    for catch_up in [
        other.subscribe(project, None).await.unwrap().catch_up,
        native.subscribe(project, None).await.unwrap().catch_up,
    ] {
        assert!(matches!(catch_up, CatchUp::Snapshot(records) if records.len() == 4));
    }
    let drums = TrackId::new_v7();
    let first = committed(other.write(&add_track(project, drums, "Drums")).await.unwrap());
    let ServerMsg::Bump(bump) = native.recv().await.unwrap() else { panic!("expected a bump") };
    assert_eq!(bump.seq, first, "the native client hears the other's write");
    let bass = TrackId::new_v7();
    let second = committed(native.write(&add_track(project, bass, "Bass")).await.unwrap());
    let mut heard = Vec::new();
    while heard.len() < 2 {
        let ServerMsg::Bump(bump) = other.recv().await.unwrap() else { panic!("expected a bump") };
        heard.push(bump.seq);
    }
    assert_eq!(heard, [first, second], "its own write, then the native client's");
}

/// Starts the real `ensemble-authority serve` on `url` (its data in `dir`; `tweak` adds options,
/// environment or a standard error to read) and reads its address and certificate hashes.
pub(crate) async fn serve_binary(
    url: &str,
    dir: &std::path::Path,
    tweak: impl FnOnce(&mut tokio::process::Command),
) -> (tokio::process::Child, std::net::SocketAddr, Vec<Fingerprint>) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ensemble-authority"));
    command
        .args(["--database", url, "--data-dir"])
        .arg(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    tweak(&mut command);
    let mut child = command.spawn().unwrap();
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

/// An authority process among several on one Postgres (the real binary): its node id, child,
/// address and certificates.
pub(crate) struct Node {
    /// Its node id: `name` and a suffix no other test's node has (tests share the database,
    /// and a node that stops releases every lease held under its id).
    pub(crate) id: String,
    pub(crate) child: tokio::process::Child,
    addr: std::net::SocketAddr,
    fingerprint: Vec<Fingerprint>,
}

impl Node {
    /// Starts a node named after `name` on `url` with leases of `ttl` and `args` more
    /// (`--nats URL`).
    pub(crate) async fn start(url: &str, dir: &std::path::Path, name: &str, ttl: Duration, args: &[&str]) -> Node {
        let dir = dir.join(name);
        let id = unique(name);
        let ttl = ttl.as_millis().to_string();
        let (child, addr, fingerprint) = serve_binary(url, &dir, |command| {
            command.args(["--node-id", &id, "--lease-ttl-ms", &ttl]).args(args);
        })
        .await;
        Node { id, child, addr, fingerprint }
    }

    /// A connection logged in as `user`.
    pub(crate) async fn client(&self, user: &str) -> Remote {
        let mut remote =
            Remote::connect(self.addr, "localhost", Trust::Pinned(self.fingerprint.clone())).await.unwrap();
        remote.login(user, PASSWORD).await.unwrap();
        remote
    }

    /// Sends the process `signal` (`-STOP`, `-CONT`).
    pub(crate) fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }
}

/// Two authority processes, `a` and `b`, on the tests' Postgres (leases of `ttl`, `args` more),
/// and a cast and project of their own.
pub(crate) struct TwoNodes {
    pub(crate) store: AnyStore,
    pub(crate) cast: Cast,
    pub(crate) a: Node,
    pub(crate) b: Node,
    /// Their data directories: bind it (`dir: _dir`) to keep them while the processes run.
    pub(crate) dir: TempDir,
}

pub(crate) async fn two_nodes(ttl: Duration, args: &[&str]) -> TwoNodes {
    let url = ensemble_testkit::sandbox::postgres_url().unwrap();
    let store = postgres().await;
    let cast = cast(&store).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) =
        (Node::start(&url, dir.path(), "a", ttl, args).await, Node::start(&url, dir.path(), "b", ttl, args).await);
    TwoNodes { store, cast, a, b, dir }
}

/// The tracks in a snapshot.
pub(crate) fn snapshot_tracks(catch_up: &CatchUp) -> std::collections::HashSet<TrackId> {
    let CatchUp::Snapshot(records) = catch_up else { panic!("expected a snapshot") };
    records.iter().filter(|c| matches!(c.record, Some(Record::Track(_)))).map(|c| TrackId(c.id.0)).collect()
}

/// A NATS server of the test's own.
pub(crate) use ensemble_testkit::sandbox::Nats;
