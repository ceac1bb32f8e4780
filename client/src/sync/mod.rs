//! Sync: the connection to an authority, and the local store behind it.
//!
//! [`SyncPlugin`] starts a *sync worker*: an async task that owns the [`Transport`] and the
//! [`LocalStore`], on a thread with a tokio runtime of its own natively and on the page's event
//! loop in the browser, with the same code in between. The ECS never waits on the network or
//! the disk; it talks to the worker through two channels, and the traffic crosses into the app as Bevy messages in
//! chained sets, every frame: news at the frame's start, so the frame shows it, and edits at its
//! end, so an edit made in this frame's window leaves in this frame.
//!
//! 1. [`SyncSystems::Receive`] ([`PreUpdate`]) drains the worker: [`FromAuthority`] and
//!    [`Restored`] messages, and the [`SyncStatus`] resource (connection state, unsaved edits,
//!    store trouble).
//! 2. [`SyncSystems::Apply`] ([`PreUpdate`]) feeds them to the [`Replica`].
//! 3. [`SyncSystems::Edit`] ([`Last`]) turns the user's edits, undos and gestures into proposals.
//! 4. [`SyncSystems::Send`] ([`Last`]) hands [`Outbound`] proposals and settled edits to the
//!    worker.
//!
//! The worker hands every store write to a task that owns the store and makes the writes in
//! order (`writer.rs`): the network never waits for the disk, and a proposal is always queued
//! for the store before any answer to it is read, so an edit made offline survives a restart.
//! On every (re)connection it first resends the pending edits and waits for their
//! answers, and only then subscribes from the seq it has: an edit that was committed before a
//! crash is answered from the authority's memory (its tx id is idempotent) and is known to be
//! committed before the catch-up arrives, so it is never applied twice nor reported as lost.
//! When the connection drops the worker retries with a growing delay, and keeps storing edits
//! meanwhile. A refused login stops the retries; the project stays editable offline.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy::prelude::*;
use ensemble_net::transport::Transport;
use ensemble_protocol::transfer::Served;
use ensemble_protocol::{AssetId, ContentHash, Presence, ProjectId, ServerMsg, Transaction, TxId, UserId};
use tokio::sync::mpsc;

use crate::Error;
use crate::assets::AssetCache;
use crate::replica::Replica;
use crate::store::{LocalStore, Saved};

mod worker;
mod writer;

use worker::{Setup, run};

/// The first retry after a lost connection; each failure doubles it up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// The longest wait between connection attempts.
const MAX_RETRY: Duration = Duration::from_secs(5);
/// How long closing the app waits for the worker to store what it was given.
#[cfg(not(target_arch = "wasm32"))]
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// The sync steps of a frame, chained in this order: the first two in [`PreUpdate`], the last
/// two in [`Last`] (after the window has drawn and taken this frame's input).
#[derive(SystemSet, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncSystems {
    /// Messages from the worker become [`FromAuthority`] and [`Restored`] messages.
    Receive,
    /// The replica takes what the authority said.
    Apply,
    /// Local edits, undo, redo and gestures become proposals.
    Edit,
    /// Proposals go to the worker.
    Send,
}

/// Orders the sync sets. Every plugin that puts systems in them calls this.
pub(crate) fn configure_sets(app: &mut App) {
    app.configure_sets(PreUpdate, (SyncSystems::Receive, SyncSystems::Apply).chain())
        .configure_sets(Last, (SyncSystems::Edit, SyncSystems::Send).chain());
}

/// Where the client is with its authority.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Connection {
    /// Trying to connect and log in.
    #[default]
    Connecting,
    /// Connected, logged in and subscribed.
    Online {
        /// Who we are.
        user: UserId,
        /// Our display name.
        name: String,
    },
    /// Not connected; edits are kept and sent when the connection returns.
    Offline {
        /// Why the last attempt failed.
        reason: String,
    },
    /// The authority refused the login: no more attempts until the settings change.
    Refused {
        /// What the authority said.
        reason: String,
    },
}

/// The sync worker's state, for the UI.
#[derive(Resource, Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// The connection.
    pub connection: Connection,
    /// The project being synced, once known (solo mode picks it at start).
    pub project: Option<ProjectId>,
    /// Edits handed to the worker that are not yet stored on this machine.
    pub unsaved: usize,
    /// The last local store problem (a full disk, a damaged file set aside); edits are still
    /// kept in memory and sent.
    pub store_problem: Option<String>,
}

/// A message from the authority, in the order it arrived.
#[derive(Message, Clone, Debug)]
pub struct FromAuthority(pub ServerMsg);

/// The project as the local store held it when the client started.
#[derive(Message, Clone, Debug)]
pub struct Restored(pub Saved);

/// What the app hands to the worker.
#[derive(Message, Clone, Debug)]
pub enum Outbound {
    /// An edit to store and send.
    Propose(Transaction),
    /// Edits that left the pending queue: the store drops them.
    Settled(Vec<TxId>),
    /// Bring an asset's audio or peaks into the local cache.
    Fetch {
        /// The asset.
        asset: AssetId,
        /// Its identity (the cache key).
        hash: ContentHash,
        /// The audio, or its peaks.
        what: Served,
    },
    /// This user's presence, for the authority to relay (dropped while offline; the latest is
    /// sent again after each reconnection).
    Presence(Presence),
    /// Upload an audio file from this machine into the project.
    Upload {
        /// Names this upload in its [`UploadDone`].
        id: u64,
        /// The file.
        source: UploadSource,
    },
}

/// What an upload reads: a file natively, a picked file's bytes in the browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadSource {
    /// A file on this machine.
    File(PathBuf),
    /// A file's bytes, and its name.
    Bytes {
        /// The file's name (the asset's name, and its extension says the format).
        name: String,
        /// The bytes.
        bytes: Arc<[u8]>,
    },
}

impl UploadSource {
    /// The file's name.
    pub fn name(&self) -> String {
        match self {
            UploadSource::File(path) => {
                path.file_name().map_or_else(|| "audio".into(), |name| name.to_string_lossy().into_owned())
            }
            UploadSource::Bytes { name, .. } => name.clone(),
        }
    }
}

/// How an upload ended: the asset the authority made for the file, or why there is none.
#[derive(Message, Clone, Debug)]
pub struct UploadDone {
    /// The upload's id from [`Outbound::Upload`].
    pub id: u64,
    /// The new (or existing, for a file the project already has) asset.
    pub asset: Result<AssetId, String>,
    /// The file ends before the audio its header promised: the asset holds what came before
    /// the damage.
    pub cut_short: bool,
}

/// An asset file the worker brought into the local cache, or why it could not.
#[derive(Message, Clone, Debug)]
pub struct Fetched {
    /// The asset.
    pub asset: AssetId,
    /// The audio, or its peaks.
    pub what: Served,
    /// The cached file.
    pub file: Result<crate::assets::CachedFile, String>,
}

/// How far an upload has come: bytes the authority holds of the file's size.
#[derive(Message, Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadProgress {
    /// The upload's id from [`Outbound::Upload`].
    pub id: u64,
    /// Bytes sent.
    pub sent: u64,
    /// The file's size.
    pub total: u64,
}

enum FromWorker {
    Fetched(Fetched),
    Progress(UploadProgress),
    Uploaded(UploadDone),
    Connection(Connection),
    Project(ProjectId),
    Restored(Saved),
    Server(ServerMsg),
    Stored(usize),
    StoreFailed(String),
}

enum ToWorker {
    Propose(Transaction),
    Forget(Vec<TxId>),
    Fetch { asset: AssetId, hash: ContentHash, what: Served },
    Upload { id: u64, source: UploadSource },
    Presence(Presence),
}

/// Wakes the app when the worker has news for it: a window that rests between frames (it
/// draws on input, and every 100 ms otherwise) takes in a collaborator's edit at once. The
/// window sets how ([`AppWaker::set`]); headless apps step on their own.
#[derive(Resource, Clone, Default)]
pub struct AppWaker(Arc<std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>>);

impl AppWaker {
    /// Sets what wakes the app (once; later calls change nothing).
    pub fn set(&self, wake: impl Fn() + Send + Sync + 'static) {
        let _ = self.0.set(Box::new(wake));
    }

    fn wake(&self) {
        if let Some(wake) = self.0.get() {
            wake();
        }
    }
}

/// The worker's end of its channel to the app: every message also wakes the app.
#[derive(Clone)]
struct ToApp {
    sender: mpsc::UnboundedSender<FromWorker>,
    waker: AppWaker,
}

impl ToApp {
    fn send(&self, message: FromWorker) -> Result<(), ()> {
        let sent = self.sender.send(message).map_err(drop);
        self.waker.wake();
        sent
    }
}

/// The app's end of the worker's channels.
#[derive(Resource)]
struct WorkerLink {
    to_worker: Option<mpsc::UnboundedSender<ToWorker>>,
    from_worker: Mutex<mpsc::UnboundedReceiver<FromWorker>>,
    #[cfg(not(target_arch = "wasm32"))]
    finished: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Drop for WorkerLink {
    fn drop(&mut self) {
        // Closing the channel tells the worker to store what it has and stop; wait for that, so
        // no edit handed over is lost when the app closes. (A page cannot block: in the browser
        // every edit was stored as it was handed over, and the worker finishes on its own.)
        self.to_worker = None;
        #[cfg(not(target_arch = "wasm32"))]
        if let Ok(finished) = self.finished.lock() {
            let _ = finished.recv_timeout(SHUTDOWN_WAIT);
        }
    }
}

struct Channels {
    to_app: ToApp,
    commands: mpsc::UnboundedReceiver<ToWorker>,
    finished: std::sync::mpsc::Sender<()>,
}

type Spawn = Box<dyn FnOnce(Channels) + Send>;

/// Connects the app to an authority through a sync worker; see the module docs.
pub struct SyncPlugin {
    spawn: Mutex<Option<Spawn>>,
}

impl SyncPlugin {
    /// Syncs `project` with the authority `transport` reaches, keeping its local store in
    /// `replicas` (see [`crate::store::default_dir`]) and its audio files beside it.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn remote<T: Transport + Send>(transport: T, project: ProjectId, replicas: PathBuf) -> Self {
        Self::spawning(move |channels| run(channels, async move { Setup::native(transport, project, &replicas).await }))
    }

    /// Syncs `project` with the authority `transport` reaches, keeping it in the store `open`
    /// opens (on the worker, which owns it) and its audio files in `cache`: how a platform
    /// brings a store of its own.
    pub fn with_store<T, S, F>(
        transport: T,
        project: ProjectId,
        open: impl FnOnce() -> F + Send + 'static,
        cache: AssetCache,
    ) -> Self
    where
        T: Transport + Send,
        S: LocalStore,
        F: Future<Output = Result<S, Error>> + 'static,
    {
        Self::spawning(move |channels| {
            run(channels, async move {
                let store = open().await?;
                Ok(Setup { transport, project, store, cache, set_aside: None, stop: None })
            })
        })
    }

    /// Starts the authority library in-process on its SQLite store and syncs with it: one person,
    /// nothing else running.
    #[cfg(feature = "solo")]
    pub fn solo(settings: crate::solo::SoloSettings) -> Self {
        Self::spawning(move |channels| {
            run(channels, async move {
                let solo = crate::solo::start(&settings).await?;
                let mut setup = Setup::native(solo.transport, solo.project, &settings.replicas).await?;
                setup.stop = Some(Box::pin(solo.server.shutdown()));
                Ok(setup)
            })
        })
    }

    fn spawning<F>(work: impl FnOnce(Channels) -> F + Send + 'static) -> Self
    where
        F: Future<Output = ()> + 'static,
    {
        let spawn: Spawn = Box::new(move |channels| start_worker(work, channels));
        SyncPlugin { spawn: Mutex::new(Some(spawn)) }
    }
}

/// Runs the worker on a thread with a runtime of its own, so the frame never waits on it.
#[cfg(not(target_arch = "wasm32"))]
fn start_worker<F: Future<Output = ()> + 'static>(
    work: impl FnOnce(Channels) -> F + Send + 'static,
    channels: Channels,
) {
    let thread = std::thread::Builder::new().name("ensemble-sync".into()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ensemble-sync")
            .enable_all()
            .build();
        match runtime {
            Ok(runtime) => runtime.block_on(work(channels)),
            Err(error) => {
                let reason = format!("cannot start the sync runtime: {error}");
                let _ = channels.to_app.send(FromWorker::Connection(Connection::Offline { reason }));
            }
        }
    });
    if let Err(error) = thread {
        error!("cannot start the sync thread: {error}");
    }
}

/// Runs the worker on the page's event loop: every await gives the frame its turn.
#[cfg(target_arch = "wasm32")]
fn start_worker<F: Future<Output = ()> + 'static>(
    work: impl FnOnce(Channels) -> F + Send + 'static,
    channels: Channels,
) {
    wasm_bindgen_futures::spawn_local(work(channels));
}

impl Plugin for SyncPlugin {
    fn build(&self, app: &mut App) {
        configure_sets(app);
        let (sender, from_worker) = mpsc::unbounded_channel();
        let waker = AppWaker::default();
        let to_app = ToApp { sender, waker: waker.clone() };
        let (to_worker, commands) = mpsc::unbounded_channel();
        // The page cannot wait for the worker (see `WorkerLink`'s drop), so nobody listens there.
        #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
        let (finished, finished_rx) = std::sync::mpsc::channel();
        let spawn = self.spawn.lock().ok().and_then(|mut spawn| spawn.take());
        match spawn {
            Some(spawn) => spawn(Channels { to_app, commands, finished }),
            None => error!("a SyncPlugin can only be added once"),
        }
        app.insert_resource(WorkerLink {
            to_worker: Some(to_worker),
            from_worker: Mutex::new(from_worker),
            #[cfg(not(target_arch = "wasm32"))]
            finished: Mutex::new(finished_rx),
        })
        .insert_resource(waker)
        .init_resource::<SyncStatus>()
        .add_message::<FromAuthority>()
        .add_message::<Restored>()
        .add_message::<Outbound>()
        .add_message::<Fetched>()
        .add_message::<UploadDone>()
        .add_message::<UploadProgress>()
        .add_systems(PreUpdate, receive.in_set(SyncSystems::Receive))
        .add_systems(Last, send.in_set(SyncSystems::Send));
    }
}

fn receive(
    link: Res<WorkerLink>,
    mut status: ResMut<SyncStatus>,
    mut from_authority: MessageWriter<FromAuthority>,
    mut restored: MessageWriter<Restored>,
    mut fetched: MessageWriter<Fetched>,
    mut uploaded: MessageWriter<UploadDone>,
    mut progress: MessageWriter<UploadProgress>,
) {
    let Ok(mut from_worker) = link.from_worker.lock() else { return };
    while let Ok(message) = from_worker.try_recv() {
        match message {
            FromWorker::Fetched(file) => {
                fetched.write(file);
            }
            FromWorker::Progress(made) => {
                progress.write(made);
            }
            FromWorker::Uploaded(done) => {
                uploaded.write(done);
            }
            FromWorker::Connection(connection) => status.connection = connection,
            FromWorker::Project(project) => status.project = Some(project),
            FromWorker::Restored(saved) => {
                restored.write(Restored(saved));
            }
            FromWorker::Server(message) => {
                from_authority.write(FromAuthority(message));
            }
            FromWorker::Stored(count) => {
                status.unsaved = status.unsaved.saturating_sub(count);
            }
            FromWorker::StoreFailed(reason) => {
                warn!("local store: {reason}");
                status.store_problem = Some(reason);
            }
        }
    }
}

fn send(
    link: Res<WorkerLink>,
    mut status: ResMut<SyncStatus>,
    replica: Option<ResMut<Replica>>,
    mut outbound: MessageReader<Outbound>,
) {
    let Some(to_worker) = &link.to_worker else { return };
    let settled = replica.map(|mut replica| replica.take_settled()).filter(|settled| !settled.is_empty());
    let settled = settled.map(Outbound::Settled);
    for message in outbound.read().chain(settled.as_ref()) {
        let command = match message {
            Outbound::Propose(tx) => {
                status.unsaved += 1;
                ToWorker::Propose(tx.clone())
            }
            Outbound::Settled(tx_ids) => ToWorker::Forget(tx_ids.clone()),
            Outbound::Fetch { asset, hash, what } => ToWorker::Fetch { asset: *asset, hash: *hash, what: *what },
            Outbound::Upload { id, source } => ToWorker::Upload { id: *id, source: source.clone() },
            Outbound::Presence(presence) => ToWorker::Presence(presence.clone()),
        };
        if to_worker.send(command).is_err() {
            status.store_problem = Some("the sync worker has stopped".into());
        }
    }
}
