//! A real authority and headless client apps in one process, and a stepper that updates the
//! apps until something holds (in the style of bevy_replicon's test app).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use ensemble_authority::files::FileOptions;
use ensemble_authority::server::{InProcess, ServerOptions};
use ensemble_authority::store::{SqliteStore, Store};
use ensemble_authority::tls::Certificates;
use ensemble_authority::{actor, admin};
use ensemble_client::ClientCorePlugin;
use ensemble_client::history::EditMsg;
use ensemble_client::model::{ClipData, RecordIndex, RecordKey, RecordVersion, record_of};
use ensemble_client::replica::{Notice, Replica};
use ensemble_client::sync::{Connection, SyncPlugin, SyncStatus, SyncSystems};
use ensemble_net::remote::Remote;
use ensemble_net::tls::Trust;
use ensemble_net::transport::{Credentials, PipeTransport, QuicTransport};
use ensemble_protocol::AssetId;
use ensemble_protocol::*;
use ensemble_testkit::loopback::Loopback;
use ensemble_testkit::outage::Outage;
use tempfile::TempDir;

pub(crate) use ensemble_testkit::Rng;
pub(crate) use ensemble_testkit::records::{add_track, project, set, track};

pub(crate) const PASSWORD: &str = "correct horse battery";

/// An authority on loopback with a project, its users, and one audio asset for clips.
pub(crate) struct Authority {
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) store: SqliteStore,
    /// What the server runs on: the store, whose database [`Authority::set_database_down`] takes
    /// away.
    served: Outage<SqliteStore>,
    running: Option<Loopback>,
    pub(crate) addr: SocketAddr,
    certificates: Certificates,
    pub(crate) project: ProjectId,
    pub(crate) asset: AssetId,
    /// Opens in-memory connections to the server while it runs.
    in_process: Arc<Mutex<Option<InProcess>>>,
    _dir: TempDir,
}

impl Authority {
    /// Users `alice` (owner), `bob` (editor) and `vera` (viewer) in one project.
    pub(crate) fn start() -> Authority {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("authority.sqlite").display());
        let certificates = ensemble_testkit::loopback::certificates();
        let asset = AssetId::new_v7();
        let (store, project) = runtime.block_on(async {
            let store = SqliteStore::open(&url).await.unwrap();
            for name in ["alice", "bob", "vera"] {
                admin::add_user(&store, name, PASSWORD).await.unwrap();
            }
            let project = admin::create_project(&store, "Harness Song", "alice").await.unwrap();
            admin::grant(&store, project, "bob", Role::Editor).await.unwrap();
            admin::grant(&store, project, "vera", Role::Viewer).await.unwrap();
            let record = Record::AudioAsset(AudioAsset {
                hash: ContentHash([7; 32]),
                name: "drums.flac".into(),
                sample_rate: 48_000,
                channels: 2,
                frames: Frames(48_000 * 60),
                codec: Codec::Flac,
                byte_size: 1 << 20,
                peaks_ready: true,
            });
            actor::apply_as_authority(&store, project, vec![Op::Create { id: asset.into(), record }]).await.unwrap();
            (store, project)
        });
        let mut authority = Authority {
            runtime,
            served: Outage::new(store.clone()),
            store,
            running: None,
            addr: ensemble_testkit::loopback::LOOPBACK,
            certificates,
            project,
            asset,
            in_process: Arc::default(),
            _dir: dir,
        };
        authority.resume();
        authority
    }

    /// Starts serving again, on the same address once it has one.
    pub(crate) fn resume(&mut self) {
        let files = FileOptions::in_dir(self._dir.path().join("files"));
        let options = ServerOptions { listen: self.addr, files: Some(files), ..ServerOptions::default() };
        let started = Loopback::start_as(self.served.clone(), self.certificates.clone(), options);
        let running = self.runtime.block_on(started);
        self.addr = running.addr;
        *self.in_process.lock().unwrap() = Some(running.server.in_process());
        self.running = Some(running);
    }

    /// Stops serving: clients go offline.
    pub(crate) fn stop(&mut self) {
        self.in_process.lock().unwrap().take();
        if let Some(running) = self.running.take() {
            self.runtime.block_on(running.server.shutdown());
        }
    }

    /// Takes the server's database away (every store call fails while the server runs on), or
    /// brings it back.
    pub(crate) fn set_database_down(&self, down: bool) {
        self.served.set_down(down);
    }

    /// The committed state and seq.
    pub(crate) fn state(&self) -> (ProjectState, Seq) {
        let loaded = self.runtime.block_on(self.store.load_project(self.project)).unwrap().unwrap();
        (loaded.state, loaded.seq)
    }

    /// A plain connection logged in as `user`.
    pub(crate) fn remote(&self, user: &str) -> Remote {
        let running = self.running.as_ref().expect("the authority is serving");
        self.runtime.block_on(running.login(user, PASSWORD))
    }

    /// How a client reaches this authority as `user` over QUIC.
    pub(crate) fn transport(&self, user: &str) -> QuicTransport {
        let credentials = Credentials::Password { user: user.into(), password: PASSWORD.into() };
        QuicTransport::new(self.addr, "localhost", Trust::Pinned(self.certificates.hashes()), credentials)
    }

    /// How a client in this process reaches this authority as `user`: in memory, no sockets,
    /// so nothing waits on a network's timers; while the authority is stopped, it is offline.
    pub(crate) fn in_process(&self, user: &str) -> PipeTransport {
        let credentials = Credentials::Password { user: user.into(), password: PASSWORD.into() };
        let server = self.in_process.clone();
        let connect = move || match &*server.lock().map_err(|_| ensemble_net::Error::Connection("poisoned".into()))? {
            Some(server) => server.connect(),
            None => Err(ensemble_net::Error::Connection("the authority is stopped".into())),
        };
        PipeTransport::new(connect, credentials)
    }

    /// A headless client app logged in as `user` (in process), keeping its local store in
    /// `replicas`.
    pub(crate) fn client(&self, user: &str, replicas: &Path) -> App {
        client_app(SyncPlugin::remote(self.in_process(user), self.project, replicas.to_path_buf()))
    }
}

impl Drop for Authority {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A headless app with the client core and `sync`; it records every notice.
pub(crate) fn client_app(sync: SyncPlugin) -> App {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, ClientCorePlugin, sync));
    app.init_resource::<Notices>();
    // Last in the frame: edits are proposed (and undos refused) at its end.
    app.add_systems(Last, collect_notices.after(SyncSystems::Send));
    app
}

/// Every notice the app showed, oldest first.
#[derive(Resource, Default, Debug)]
pub(crate) struct Notices(pub(crate) Vec<Notice>);

fn collect_notices(mut reader: MessageReader<Notice>, mut notices: ResMut<Notices>) {
    notices.0.extend(reader.read().cloned());
}

/// A folder for a client's local stores.
pub(crate) fn replicas() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// Updates every app until `done` holds; panics after `timeout`.
pub(crate) fn step_until(apps: &mut [&mut App], timeout: Duration, mut done: impl FnMut(&mut [&mut App]) -> bool) {
    let start = Instant::now();
    loop {
        for app in apps.iter_mut() {
            app.update();
        }
        if done(apps) {
            return;
        }
        assert!(start.elapsed() < timeout, "not done after {timeout:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Updates `app` for `duration`.
pub(crate) fn step_for(app: &mut App, duration: Duration) {
    let start = Instant::now();
    while start.elapsed() < duration {
        app.update();
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Sends one edit message.
pub(crate) fn send(app: &mut App, message: EditMsg) {
    app.world_mut().write_message(message);
}

pub(crate) fn replica(app: &App) -> Option<&Replica> {
    app.world().get_resource::<Replica>()
}

pub(crate) fn status(app: &App) -> &SyncStatus {
    app.world().resource::<SyncStatus>()
}

pub(crate) fn online(app: &App) -> bool {
    matches!(status(app).connection, Connection::Online { .. }) && replica(app).is_some()
}

/// Nothing pending or unsaved, and the replica at `seq`.
pub(crate) fn settled_at(app: &App, seq: Seq) -> bool {
    replica(app).is_some_and(|replica| replica.pending().len() == 0 && replica.seq() == seq) && status(app).unsaved == 0
}

/// Every record the app's entities hold, with versions, checking that each clip and lane is a
/// child of its track's entity.
pub(crate) fn entities(app: &mut App) -> BTreeMap<RecordId, (Version, Record)> {
    let world = app.world_mut();
    let mut query = world.query::<(&RecordKey, &RecordVersion, EntityRef)>();
    let records: BTreeMap<RecordId, (Version, Record)> = query
        .iter(world)
        .map(|(key, version, entity)| (key.0, (version.0, record_of(entity).expect("a record entity has data"))))
        .collect();
    let mut clips = world.query::<(&RecordKey, &ClipData, &ChildOf)>();
    let index = world.resource::<RecordIndex>();
    assert_eq!(index.len(), records.len(), "the index knows every record entity");
    for (key, clip, parent) in clips.iter(world) {
        assert_eq!(Some(parent.parent()), index.entity(clip.track.into()), "clip {} sits under its track", key.0);
    }
    records
}

/// Every live record of `state`, with versions.
pub(crate) fn records(state: &ProjectState) -> BTreeMap<RecordId, (Version, Record)> {
    state.records().map(|(id, entry)| (id, (entry.version, entry.record.clone()))).collect()
}
