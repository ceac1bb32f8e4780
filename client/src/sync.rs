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
//! The worker stores each proposal as it sends it (and handles no answer before the store has
//! it), so an edit made offline survives a restart. On every (re)connection it first resends the pending edits and waits for their
//! answers, and only then subscribes from the seq it has: an edit that was committed before a
//! crash is answered from the authority's memory (its tx id is idempotent) and is known to be
//! committed before the catch-up arrives, so it is never applied twice nor reported as lost.
//! When the connection drops the worker retries with a growing delay, and keeps storing edits
//! meanwhile. A refused login stops the retries; the project stays editable offline.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy::prelude::*;
use ensemble_net::rt;
use ensemble_net::transport::{Link, Transport};
use ensemble_protocol::transfer::Served;
use ensemble_protocol::{
    AssetId, ClientMsg, ContentHash, Presence, ProjectId, Seq, ServerMsg, Transaction, TxId, UserId,
};
use tokio::sync::mpsc;

use crate::Error;
use crate::assets::AssetCache;
use crate::replica::Replica;
use crate::store::{LocalStore, Saved};

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

/// What the worker works on, once solo mode (if any) has started.
struct Setup<T, S> {
    transport: T,
    project: ProjectId,
    store: S,
    cache: AssetCache,
    /// What happened to a damaged local store, for the user.
    set_aside: Option<String>,
    /// What to do when the worker stops (solo mode: stop the in-process authority).
    stop: Option<std::pin::Pin<Box<dyn Future<Output = ()>>>>,
}

#[cfg(not(target_arch = "wasm32"))]
impl<T> Setup<T, crate::store::SqliteReplicaStore> {
    /// The native setup: the SQLite store in `replicas`, the asset cache beside it.
    async fn native(transport: T, project: ProjectId, replicas: &std::path::Path) -> Result<Self, Error> {
        let (store, set_aside) = crate::store::SqliteReplicaStore::open_or_set_aside(replicas, project)
            .await
            .map_err(|error| Error::Connection(format!("cannot open the local store: {error}")))?;
        // Audio files live beside the local stores, shared by every project.
        let cache = AssetCache::new(replicas.with_file_name("assets"))?;
        Ok(Setup { transport, project, store, cache, set_aside, stop: None })
    }
}

async fn run<T: Transport, S: LocalStore>(channels: Channels, setup: impl Future<Output = Result<Setup<T, S>, Error>>) {
    let Channels { to_app, commands, finished } = channels;
    match setup.await {
        Ok(Setup { transport, project, store, cache, set_aside, stop }) => {
            let _ = to_app.send(FromWorker::Project(project));
            if let Some(note) = set_aside {
                let _ = to_app.send(FromWorker::StoreFailed(note));
            }
            let worker = Worker {
                transport,
                store,
                project,
                cache,
                to_app,
                commands,
                pending: VecDeque::new(),
                seq: None,
                presence: None,
            };
            worker.run().await;
            if let Some(stop) = stop {
                stop.await;
            }
        }
        Err(error) => {
            let _ = to_app.send(FromWorker::Connection(Connection::Offline { reason: error.to_string() }));
        }
    }
    let _ = finished.send(());
}

/// Why a session with the authority ended.
enum Ended {
    /// The app closed: stop.
    AppClosed,
    /// The connection dropped: retry.
    Lost(String),
}

/// Commands taken from the app in one go, to store (and send).
#[derive(Default)]
struct Taken {
    proposed: Vec<Transaction>,
    forgotten: Vec<TxId>,
}

struct Worker<T, S> {
    transport: T,
    store: S,
    project: ProjectId,
    /// The content-addressed cache of audio files and peaks.
    cache: AssetCache,
    to_app: ToApp,
    commands: mpsc::UnboundedReceiver<ToWorker>,
    /// Edits stored and not yet settled, oldest first: what a reconnection resends.
    pending: VecDeque<Transaction>,
    /// The seq of the stored confirmed state, if there is one.
    seq: Option<Seq>,
    /// The user's latest presence, and whether the authority has yet to hear it.
    presence: Option<(Presence, bool)>,
}

impl<T: Transport, S: LocalStore> Worker<T, S> {
    async fn run(mut self) {
        match self.store.load().await {
            Ok(Some(saved)) => {
                self.seq = Some(saved.seq);
                self.pending = saved.pending.iter().cloned().collect();
                let _ = self.to_app.send(FromWorker::Restored(saved));
            }
            Ok(None) => {}
            Err(error) => {
                // Start from a snapshot: it replaces whatever records did not read.
                self.store_failed(&error);
            }
        }
        let mut retry = FIRST_RETRY;
        loop {
            self.status(Connection::Connecting);
            // Edits keep being stored while a connection is tried: a browser's attempt on an
            // authority that is down can take many seconds, and a reload meanwhile must not
            // lose what the user did.
            // (A clone connects, so the worker stays free; it then carries the session's token.)
            let mut transport = self.transport.clone();
            let Some(connected) = self.storing_while(transport.connect()).await else { return };
            self.transport = transport;
            let outcome = match connected {
                Ok(link) => {
                    retry = FIRST_RETRY;
                    self.session(link).await
                }
                Err(ensemble_net::Error::Denied(reason)) => {
                    self.status(Connection::Refused { reason });
                    // Nothing to retry: keep storing edits until the app closes.
                    while let Some(command) = self.commands.recv().await {
                        self.handle_commands(command).await;
                    }
                    return;
                }
                Err(error) => Ended::Lost(error.to_string()),
            };
            match outcome {
                Ended::AppClosed => return,
                Ended::Lost(reason) => {
                    debug!("sync: offline: {reason}");
                    self.status(Connection::Offline { reason });
                }
            }
            // Offline, proposals are only stored; the next session resends them.
            if self.storing_while(rt::sleep(retry)).await.is_none() {
                return;
            }
            retry = (retry * 2).min(MAX_RETRY);
        }
    }

    /// Awaits `work` while storing the edits that arrive meanwhile (queued for the next session
    /// to send); `None` once the app has closed.
    async fn storing_while<F: Future>(&mut self, work: F) -> Option<F::Output> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return Some(done),
                command = self.commands.recv() => match command {
                    Some(command) => {
                        self.handle_commands(command).await;
                    }
                    None => return None,
                },
            }
        }
    }

    async fn session(&mut self, mut link: Link) -> Ended {
        // Resend what is pending and wait for every answer before subscribing (see the module
        // docs for why the order matters).
        let resend: Vec<Transaction> = self.pending.iter().cloned().collect();
        for tx in &resend {
            if link.outgoing.send(ClientMsg::Write(tx.clone())).await.is_err() {
                return Ended::Lost("the connection closed".into());
            }
        }
        let mut unanswered: std::collections::HashSet<TxId> = resend.iter().map(|tx| tx.id).collect();
        while !unanswered.is_empty() {
            let message = match link.incoming.recv().await {
                Some(Ok(message)) => message,
                Some(Err(reason)) => return Ended::Lost(reason),
                None => return Ended::Lost("the connection closed".into()),
            };
            if let ServerMsg::Committed { tx_id, .. } | ServerMsg::Rejected { tx_id, .. } = &message {
                unanswered.remove(tx_id);
            }
            self.handle_server(message).await;
        }
        let subscribe = ClientMsg::Subscribe { project: self.project, since: self.seq };
        if link.outgoing.send(subscribe).await.is_err() {
            return Ended::Lost("the connection closed".into());
        }
        self.status(Connection::Online { user: link.user, name: link.name.clone() });
        // A new session: whoever is here has not heard our presence.
        if let Some((_, unsent)) = &mut self.presence {
            *unsent = true;
        }
        loop {
            if let Some((presence, unsent)) = &mut self.presence
                && *unsent
            {
                *unsent = false;
                let message = ClientMsg::Presence { project: self.project, presence: presence.clone() };
                if link.outgoing.send(message).await.is_err() {
                    return Ended::Lost("the connection closed".into());
                }
            }
            tokio::select! {
                command = self.commands.recv() => {
                    let Some(command) = command else {
                        link.close().await;
                        return Ended::AppClosed;
                    };
                    // Sent while being stored: waiting for the store first cost each edit a
                    // frame or two in the browser (IndexedDB answers between the page's
                    // frames), and keeps nothing safer: until the store has it, a crash loses
                    // the local copy in either order. Answers are read only once both are done.
                    let taken = self.take_commands(command);
                    let outgoing = link.outgoing.clone();
                    let writes: Vec<ClientMsg> = taken.proposed.iter().cloned().map(ClientMsg::Write).collect();
                    let send = async move {
                        for write in writes {
                            outgoing.send(write).await?;
                        }
                        Ok::<(), mpsc::error::SendError<ClientMsg>>(())
                    };
                    let ((), sent) = tokio::join!(self.store_commands(taken), send);
                    if sent.is_err() {
                        return Ended::Lost("the connection closed".into());
                    }
                }
                message = link.incoming.recv() => match message {
                    Some(Ok(message)) => self.handle_server(message).await,
                    Some(Err(reason)) => return Ended::Lost(reason),
                    None => return Ended::Lost("the connection closed".into()),
                },
            }
        }
    }

    /// Takes `first` and every command already queued behind it and stores the proposals in one
    /// transaction (offline, where nothing is sent).
    async fn handle_commands(&mut self, first: ToWorker) {
        let taken = self.take_commands(first);
        self.store_commands(taken).await;
    }

    /// Takes `first` and every command already queued behind it: fetches, uploads and presence
    /// start here; proposals and forgotten edits are returned to store (and send).
    fn take_commands(&mut self, first: ToWorker) -> Taken {
        let mut taken = Taken::default();
        let mut next = Some(first);
        while let Some(command) = next {
            match command {
                ToWorker::Propose(tx) => taken.proposed.push(tx),
                ToWorker::Forget(tx_ids) => taken.forgotten.extend(tx_ids),
                ToWorker::Fetch { asset, hash, what } => self.fetch(asset, hash, what),
                ToWorker::Upload { id, source } => self.upload(id, source),
                ToWorker::Presence(presence) => self.presence = Some((presence, true)),
            }
            next = self.commands.try_recv().ok();
        }
        taken
    }

    /// Stores what [`Self::take_commands`] took: the proposals in one transaction.
    async fn store_commands(&mut self, Taken { proposed, forgotten }: Taken) {
        if !proposed.is_empty() {
            if let Err(error) = self.store.push_pending(&proposed).await {
                self.store_failed(&error);
            }
            let _ = self.to_app.send(FromWorker::Stored(proposed.len()));
            self.pending.extend(proposed);
        }
        if !forgotten.is_empty() {
            self.pending.retain(|tx| !forgotten.contains(&tx.id));
            if let Err(error) = self.store.forget_pending(&forgotten).await {
                self.store_failed(&error);
            }
        }
    }

    async fn handle_server(&mut self, message: ServerMsg) {
        // The app hears first, then the store keeps it: the store is this machine's copy of
        // what the authority already keeps (a lost write is mended by the next catch-up), and
        // waiting for it held each collaborator's edit back a frame or two in the browser.
        let _ = self.to_app.send(FromWorker::Server(message.clone()));
        let stored = match &message {
            ServerMsg::Bump(bump) if bump.project == self.project => {
                self.seq = Some(bump.seq);
                self.pending.retain(|tx| tx.id != bump.tx_id);
                self.store.save_bump(bump).await
            }
            ServerMsg::Subscribed { project, seq, catch_up, .. } if *project == self.project => {
                self.seq = Some(*seq);
                self.store.save_catch_up(*seq, catch_up).await
            }
            ServerMsg::Rejected { tx_id, .. } => {
                self.pending.retain(|tx| tx.id != *tx_id);
                self.store.forget_pending(&[*tx_id]).await
            }
            _ => Ok(()),
        };
        if let Err(error) = stored {
            self.store_failed(&error);
        }
    }

    /// Brings an asset file into the cache on a task of its own, and tells the app.
    fn fetch(&self, asset: AssetId, hash: ContentHash, what: Served) {
        let (transport, to_app, project, cache) =
            (self.transport.clone(), self.to_app.clone(), self.project, self.cache.clone());
        rt::spawn(async move {
            let file = cache.fetch(&transport, project, asset, hash, what).await.map_err(|error| error.to_string());
            let _ = to_app.send(FromWorker::Fetched(Fetched { asset, what, file }));
        });
    }

    /// Uploads a file on a task of its own (and connection: edits never wait behind it), and
    /// tells the app. Offline, it fails at once: the user chose to import now, and is told.
    fn upload(&self, id: u64, source: UploadSource) {
        let (transport, to_app, project) = (self.transport.clone(), self.to_app.clone(), self.project);
        let cache = self.cache.clone();
        rt::spawn(async move {
            let name = source.name();
            // Hashed once: the hash names the upload and our own copy in the cache. Reading the
            // header tells a WAV file that was cut short.
            let hashing = source.clone();
            let hash = rt::blocking(move || match &hashing {
                UploadSource::File(path) => {
                    let cut_short = ensemble_audio::decode::Decoding::open(path).is_ok_and(|file| file.truncated());
                    ensemble_net::hash::hash_file(path).map(|hash| (hash, cut_short))
                }
                UploadSource::Bytes { name, bytes } => {
                    let cut_short = ensemble_audio::decode::Decoding::from_bytes(bytes.to_vec(), name.as_ref())
                        .is_ok_and(|file| file.truncated());
                    ensemble_net::hash::hash_reader(&bytes[..]).map(|hash| (hash, cut_short))
                }
            })
            .await;
            let mut cut_short = false;
            let asset = match (hash, open(&source)) {
                (Ok((hash, cut)), Ok(reader)) => {
                    cut_short = cut;
                    // A message per percent at most: a long import shows how far it has come.
                    let (progress_to, mut told) = (to_app.clone(), 0);
                    let progress = move |sent: u64, total: u64| {
                        if sent == total || sent.saturating_sub(told) * 100 >= total {
                            told = sent;
                            let _ = progress_to.send(FromWorker::Progress(UploadProgress { id, sent, total }));
                        }
                    };
                    let asset = transport
                        .upload(project, reader, &name, hash, progress)
                        .await
                        .map_err(|error| error.to_string());
                    if asset.is_ok() {
                        // Keep our own copy, so the file is never downloaded back. Failing that
                        // only costs a download.
                        let _ = cache.insert(hash, &source).await;
                    }
                    asset
                }
                (Err(error), _) | (_, Err(error)) => Err(format!("cannot read {name}: {error}")),
            };
            let _ = to_app.send(FromWorker::Uploaded(UploadDone { id, asset, cut_short }));
        });
    }

    fn status(&self, connection: Connection) {
        let _ = self.to_app.send(FromWorker::Connection(connection));
    }

    fn store_failed(&self, error: &Error) {
        let _ = self.to_app.send(FromWorker::StoreFailed(error.to_string()));
    }
}

/// A reader over what `source` names.
fn open(source: &UploadSource) -> std::io::Result<Box<dyn ensemble_net::transport::Source>> {
    Ok(match source {
        UploadSource::File(path) => Box::new(std::fs::File::open(path)?),
        UploadSource::Bytes { bytes, .. } => Box::new(std::io::Cursor::new(bytes.clone())),
    })
}
