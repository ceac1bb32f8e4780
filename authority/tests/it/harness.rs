//! Stores, users, a project and a running authority to test against.

use std::net::SocketAddr;

use ensemble_authority::admin;
use ensemble_authority::server::{Server, ServerOptions};
use ensemble_authority::store::{AnyStore, PostgresStore, SqliteStore, Store};
use ensemble_authority::tls::Identity;
use ensemble_net::remote::Remote;
use ensemble_net::tls::Trust;
use ensemble_protocol::*;
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
    let url = ensemble_authority::sandbox::postgres_url().unwrap();
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

/// An authority on loopback, serving `store`.
pub(crate) struct Running {
    pub(crate) server: Server,
    pub(crate) addr: SocketAddr,
    pub(crate) trust: Trust,
}

pub(crate) async fn serve<S: Store>(store: &S, options: ServerOptions) -> Running {
    // RUST_LOG=debug shows the authority's side of a failing test.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let options = ServerOptions { listen: "127.0.0.1:0".parse().unwrap(), ..options };
    let server = Server::start(store.clone(), Identity::self_signed().unwrap(), options).await.unwrap();
    let addr = server.local_addr().unwrap();
    let trust = Trust::Pinned(server.fingerprint());
    Running { server, addr, trust }
}

impl Running {
    /// A connection logged in as `user`.
    pub(crate) async fn client(&self, user: &str) -> Remote {
        let mut remote = self.connect().await;
        remote.login(user, PASSWORD).await.unwrap();
        remote
    }

    /// A connection that has said hello and nothing more.
    pub(crate) async fn connect(&self) -> Remote {
        Remote::connect(self.addr, "localhost", self.trust.clone()).await.unwrap()
    }
}

/// A track with this name.
pub(crate) fn track(name: &str) -> Track {
    Track {
        name: name.into(),
        colour: Colour { r: 10, g: 200, b: 120 },
        gain_db: 0.0,
        pan: 0.0,
        mute: false,
        solo: false,
        record_arm: false,
    }
}

/// A transaction creating a track and putting it at the end of the track order.
pub(crate) fn add_track(project: ProjectId, id: TrackId, name: &str) -> Transaction {
    Transaction::new(
        project,
        vec![
            Op::Create { id: id.into(), record: Record::Track(track(name)) },
            Op::ListInsert { target: project.into(), item: ListItem::Track(id), at: ListPosition::End },
        ],
    )
}

pub(crate) fn set_gain(project: ProjectId, id: TrackId, gain: f32, expect: Option<f32>) -> Transaction {
    let value = Field::Track(TrackField::Gain(gain));
    let expect = expect.map(|gain| Field::Track(TrackField::Gain(gain)));
    Transaction::new(project, vec![Op::Set { target: id.into(), value, expect }])
}

/// The answer to a write that should have committed: its seq.
pub(crate) fn committed(answer: ServerMsg) -> Seq {
    match answer {
        ServerMsg::Committed { seq, .. } => seq,
        other => panic!("expected Committed, got {other:?}"),
    }
}

/// Another project, owned by `owner`.
pub(crate) async fn admin_project(store: &AnyStore, owner: &str) -> ProjectId {
    admin::create_project(store, "Other Song", owner).await.unwrap()
}

/// A database of its own on the test run's Postgres, for tests whose rows are global (jobs are
/// claimed by any runner sharing the database).
pub(crate) async fn postgres_fresh() -> AnyStore {
    let url = ensemble_authority::sandbox::postgres_url().unwrap();
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
