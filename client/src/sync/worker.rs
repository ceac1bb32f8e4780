//! The sync worker: the session loop with the authority (connect, resend, subscribe, relay),
//! retries while offline, and the asset transfers it starts. It queues every store write on the
//! [`Writer`](super::writer::Writer) and never waits for one.

use std::collections::VecDeque;

use bevy::log::debug;
use ensemble_net::rt;
use ensemble_net::transport::{Link, Transport};
use ensemble_protocol::transfer::Served;
use ensemble_protocol::{AssetId, ClientMsg, ContentHash, Presence, ProjectId, Seq, ServerMsg, Transaction, TxId};
use tokio::sync::mpsc;

use super::writer::{Write, Writer, Writes};
use super::{
    Channels, Connection, FIRST_RETRY, Fetched, FromWorker, MAX_RETRY, ToApp, ToWorker, UploadDone, UploadProgress,
    UploadSource,
};
use crate::Error;
use crate::assets::AssetCache;
use crate::store::LocalStore;

/// What the worker works on, once solo mode (if any) has started.
pub(super) struct Setup<T, S> {
    pub(super) transport: T,
    pub(super) project: ProjectId,
    pub(super) store: S,
    pub(super) cache: AssetCache,
    /// What happened to a damaged local store, for the user.
    pub(super) set_aside: Option<String>,
    /// What to do when the worker stops (solo mode: stop the in-process authority).
    pub(super) stop: Option<std::pin::Pin<Box<dyn Future<Output = ()>>>>,
}

#[cfg(not(target_arch = "wasm32"))]
impl<T> Setup<T, crate::store::SqliteReplicaStore> {
    /// The native setup: the SQLite store in `replicas`, the asset cache beside it.
    pub(super) async fn native(transport: T, project: ProjectId, replicas: &std::path::Path) -> Result<Self, Error> {
        let (store, set_aside) = crate::store::SqliteReplicaStore::open_or_set_aside(replicas, project)
            .await
            .map_err(|error| Error::Connection(format!("cannot open the local store: {error}")))?;
        // Audio files live beside the local stores, shared by every project.
        let cache = AssetCache::new(replicas.with_file_name("assets"))?;
        Ok(Setup { transport, project, store, cache, set_aside, stop: None })
    }
}

/// Sets up, then runs the worker and the store's writer until the app closes and every write
/// queued is made.
pub(super) async fn run<T: Transport, S: LocalStore>(
    channels: Channels,
    setup: impl Future<Output = Result<Setup<T, S>, Error>>,
) {
    let Channels { to_app, commands, finished } = channels;
    match setup.await {
        Ok(Setup { transport, project, store, cache, set_aside, stop }) => {
            let _ = to_app.send(FromWorker::Project(project));
            if let Some(note) = set_aside {
                let _ = to_app.send(FromWorker::StoreFailed(note));
            }
            let saved = store.load().await;
            let (writer, writes) = Writer::new(store, to_app.clone());
            let worker = Worker {
                transport,
                writes,
                project,
                cache,
                to_app,
                commands,
                pending: VecDeque::new(),
                seq: None,
                presence: None,
            };
            // The worker's queue closes when it returns; the writer then finishes what is queued.
            tokio::join!(worker.run(saved), writer.run());
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

struct Worker<T> {
    transport: T,
    /// The store's writer: every write is queued there, in order.
    writes: Writes,
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

impl<T: Transport> Worker<T> {
    /// Restores what the store held (`saved`), then connects, and reconnects, until the app
    /// closes.
    async fn run(mut self, saved: Result<Option<crate::store::Saved>, Error>) {
        match saved {
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
                        self.handle_commands(command);
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

    /// Awaits `work` while keeping the edits that arrive meanwhile (stored, and queued for the
    /// next session to send); `None` once the app has closed.
    async fn storing_while<F: Future>(&mut self, work: F) -> Option<F::Output> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return Some(done),
                command = self.commands.recv() => match command {
                    // Offline: kept for the next session to send.
                    Some(command) => drop(self.handle_commands(command)),
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
            self.handle_server(message);
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
                    // Sent while the writer stores them: waiting for the store first cost each
                    // edit a frame or two in the browser (IndexedDB answers between the page's
                    // frames), and keeps nothing safer: until the store has it, a crash loses
                    // the local copy in either order.
                    for tx in self.handle_commands(command) {
                        if link.outgoing.send(ClientMsg::Write(tx)).await.is_err() {
                            return Ended::Lost("the connection closed".into());
                        }
                    }
                }
                message = link.incoming.recv() => match message {
                    Some(Ok(message)) => self.handle_server(message),
                    Some(Err(reason)) => return Ended::Lost(reason),
                    None => return Ended::Lost("the connection closed".into()),
                },
            }
        }
    }

    /// Takes `first` and every command already queued behind it: fetches, uploads and presence
    /// start here; proposals and settled edits are queued for the store, and the proposals are
    /// returned, for a session to send.
    fn handle_commands(&mut self, first: ToWorker) -> Vec<Transaction> {
        let (mut proposed, mut forgotten) = (Vec::new(), Vec::new());
        let mut next = Some(first);
        while let Some(command) = next {
            match command {
                ToWorker::Propose(tx) => proposed.push(tx),
                ToWorker::Forget(tx_ids) => forgotten.extend(tx_ids),
                ToWorker::Fetch { asset, hash, what } => self.fetch(asset, hash, what),
                ToWorker::Upload { id, source } => self.upload(id, source),
                ToWorker::Presence(presence) => self.presence = Some((presence, true)),
            }
            next = self.commands.try_recv().ok();
        }
        if !proposed.is_empty() {
            self.writes.queue(Write::Pending(proposed.clone()));
            self.pending.extend(proposed.iter().cloned());
        }
        if !forgotten.is_empty() {
            self.pending.retain(|tx| !forgotten.contains(&tx.id));
            self.writes.queue(Write::Forget(forgotten));
        }
        proposed
    }

    /// Hands `message` to the app and queues what the store keeps of it: the store is this
    /// machine's copy of what the authority already keeps (a lost write is mended by the next
    /// catch-up), and waiting for it held each collaborator's edit back a frame or two in the
    /// browser.
    fn handle_server(&mut self, message: ServerMsg) {
        let write = match &message {
            ServerMsg::Bump(bump) if bump.project == self.project => {
                self.seq = Some(bump.seq);
                self.pending.retain(|tx| tx.id != bump.tx_id);
                Some(Write::Bump(bump.clone()))
            }
            ServerMsg::Subscribed { project, seq, catch_up, .. } if *project == self.project => {
                self.seq = Some(*seq);
                Some(Write::CatchUp(*seq, catch_up.clone()))
            }
            ServerMsg::Rejected { tx_id, .. } => {
                self.pending.retain(|tx| tx.id != *tx_id);
                Some(Write::Forget(vec![*tx_id]))
            }
            _ => None,
        };
        let _ = self.to_app.send(FromWorker::Server(message));
        if let Some(write) = write {
            self.writes.queue(write);
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
