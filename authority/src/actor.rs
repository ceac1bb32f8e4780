//! Project actors: one task per open project, the only writer of that project.
//!
//! An actor owns its project's [`ProjectState`] and serialises everything that touches it.
//! Commands queue in its inbox; each turn it takes everything waiting (up to [`MAX_BATCH`]),
//! answers reads and subscriptions from the committed state, then runs the writes: drop
//! replays (an id answered before gets its first answer again, from memory or the log), check
//! permission, apply, and commit every transaction that applied in one database transaction.
//! Writes that arrive while that commit is in flight wait in the inbox and form the next batch,
//! so a busy project commits many transactions per fsync (group commit) while each one is
//! acknowledged only once it is durable.
//!
//! After a commit the actor answers each author with [`ServerMsg::Committed`] and pushes one
//! [`Bump`], encoded once, to every subscriber. Subscribers are [`Outbox`]es: bounded queues
//! that never block the actor. A subscriber whose queue is full is cut off (its connection is
//! closed as a slow consumer) rather than allowed to stall the project.
//!
//! An actor serves its project under the process's lease on it ([`crate::leases`]): every
//! batch commits under the lease's epoch, and when the lease is lost (a commit is fenced, or a
//! renewal finds it taken) the actor refuses what waits, asks its subscribers' connections to
//! close as moved (their clients reconnect and find the project where it is served now) and
//! stops.
//!
//! Presence passes through the actor too, so it reaches exactly the project's subscribers: the
//! latest of each session is kept in memory (never stored), relayed to the others as it
//! changes, shown to each new subscriber, and withdrawn when its session stops subscribing.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use ensemble_protocol::frame::HARD_MAX_FRAME;
use ensemble_protocol::permission::{authorize_read, authorize_write};
use ensemble_protocol::wire::{Bump, CatchUp, ErrorCode, MAX_PRESENCE_SELECTION, PeerPresence, Presence, Rejection};
use ensemble_protocol::{
    FrameCodec, MemberId, Op, ProjectId, ProjectState, Record, RecordChange, RecordId, Role, Seq, ServerMsg,
    Transaction, TxId, UserId, Version,
};
use tokio::sync::{Mutex, Notify, mpsc};

use crate::Error;
use crate::cluster::{Cluster, Published, RemoteProject};
use crate::leases::LeaseOptions;
use crate::store::{Batch, Claim, Lease, Store, now};

/// Most commands an actor takes in one turn.
pub const MAX_BATCH: usize = 1024;
/// Commands that may wait in an actor's inbox before senders wait too.
const INBOX: usize = 4096;
/// Bumps and presence frames that may wait to be published to other processes.
const PUBLISHED: usize = 4096;
/// How long past a silent owner's lease this process asks for it again (the database's clock
/// decides, and the asking takes a moment).
const LEASE_MARGIN: Duration = Duration::from_millis(20);
/// First answers remembered per project, so a recent replay is answered from memory; older
/// replays are found in the log.
const REMEMBERED_ANSWERS: usize = 16_384;
/// The author recorded for transactions the authority makes itself.
pub const AUTHORITY: UserId = UserId::from_u128(0);

/// Identifies a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

impl ConnId {
    /// A connection id not used before in this process, nor (almost surely) in another one:
    /// sessions of several processes meet in one project's presence.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        // A v7 id's last bits are random: this process's ids start somewhere of their own.
        let base = *BASE.get_or_init(|| (uuid::Uuid::now_v7().as_u128() as u64) & !0xFFFF_FFFF);
        ConnId(base | NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// A frame ready to send, shared between the subscribers it goes to.
pub type Frame = Arc<[u8]>;

/// The outgoing side of one connection: a queue of encoded frames bounded both in frames and
/// in bytes ([`OUTBOX_BYTES`]), so what a slow client costs the authority is bounded whatever
/// the frames hold. Sending never waits; when either bound is reached the connection is asked
/// to close as a slow consumer ([`Closing`]).
#[derive(Clone, Debug)]
pub struct Outbox {
    conn: ConnId,
    queue: mpsc::Sender<Frame>,
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    closing: Arc<Closing>,
}

/// Why a connection should be closed, raised by whoever holds its [`Outbox`] and acted on by
/// its writer.
#[derive(Debug, Default)]
pub struct Closing {
    asked: std::sync::Mutex<Option<(u32, Option<String>)>>,
    raised: Notify,
}

impl Closing {
    /// Asks for the connection to close with `code` (a `wire::close` code); the first ask wins.
    pub fn ask(&self, code: u32) {
        self.ask_with(code, None);
    }

    /// Asks for the connection to close with `code` and `reason`, the words its client shows
    /// (a frame queued just before a close may never leave); the first ask wins.
    pub fn ask_with(&self, code: u32, reason: Option<String>) {
        if let Ok(mut asked) = self.asked.lock() {
            asked.get_or_insert((code, reason));
        }
        self.raised.notify_one();
    }

    /// The code the connection was asked to close with, if it was.
    pub fn code(&self) -> Option<u32> {
        self.asked.lock().ok().and_then(|asked| asked.as_ref().map(|(code, _)| *code))
    }

    /// Waits for an ask; its code and reason.
    pub async fn asked(&self) -> (u32, Option<String>) {
        loop {
            if let Some(asked) = self.asked.lock().ok().and_then(|asked| asked.clone()) {
                return asked;
            }
            self.raised.notified().await;
        }
    }
}

/// The most bytes of frames one connection may have waiting.
pub const OUTBOX_BYTES: usize = 32 << 20;

/// The connection writer's end of an [`Outbox`].
#[derive(Debug)]
pub struct OutboxFrames {
    frames: mpsc::Receiver<Frame>,
    queued_bytes: Arc<AtomicUsize>,
}

impl OutboxFrames {
    /// The next frame to write, or `None` once every outbox is gone.
    pub async fn recv(&mut self) -> Option<Frame> {
        let frame = self.frames.recv().await?;
        self.queued_bytes.fetch_sub(frame.len(), Ordering::Relaxed);
        Some(frame)
    }
}

/// Encodes server messages (the downstream limit is the hard one: snapshots can be large).
fn encode(message: &ServerMsg) -> Option<Frame> {
    match FrameCodec::new(HARD_MAX_FRAME).encode_to_vec(message) {
        Ok(bytes) => Some(bytes.into()),
        Err(error) => {
            tracing::error!(%error, "a server message could not be encoded");
            None
        }
    }
}

impl Outbox {
    /// An outbox holding at most `capacity` frames and `bytes` bytes, with the receiving end
    /// for the connection's writer and the signal raised when the connection should close.
    pub fn new(conn: ConnId, capacity: usize, bytes: usize) -> (Outbox, OutboxFrames, Arc<Closing>) {
        let (queue, frames) = mpsc::channel(capacity.max(1));
        let closing = Arc::new(Closing::default());
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let outbox =
            Outbox { conn, queue, queued_bytes: queued_bytes.clone(), max_bytes: bytes, closing: closing.clone() };
        (outbox, OutboxFrames { frames, queued_bytes }, closing)
    }

    /// Asks for the connection to close because its project moved to another process: the
    /// client reconnects, and finds the project where it is served now.
    pub fn moved(&self) {
        self.closing.ask(ensemble_protocol::wire::close::MOVED);
    }

    /// Tells the client something it sent could not be saved or served now, saying `why` (as
    /// an error, and as the close's reason, since the error may not leave before the close),
    /// and asks for the connection to close: the client reconnects and sends it again, after
    /// what it sent before (an edit answered with an error on a connection that stays open
    /// would wait there while later ones commit).
    pub fn retry_later(&self, why: &str) {
        self.send(&ServerMsg::Error { code: ErrorCode::Internal, message: why.to_owned() });
        self.closing.ask_with(ensemble_protocol::wire::close::RETRY, Some(why.to_owned()));
    }

    /// Whether the connection was asked to close: nothing more it sent is committed, since
    /// its client sends it again on the next connection, after what failed.
    pub fn is_closing(&self) -> bool {
        self.closing.code().is_some()
    }

    /// Asks for the connection to close with `code` (a `wire::close` code) and, if given,
    /// `reason`; the first ask wins.
    pub fn close(&self, code: u32, reason: Option<String>) {
        self.closing.ask_with(code, reason);
    }

    /// The connection this outbox belongs to.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Queues a message; false when the connection is gone or overflowed.
    pub fn send(&self, message: &ServerMsg) -> bool {
        encode(message).is_some_and(|frame| self.send_frame(frame))
    }

    /// Queues an encoded frame; false when the connection is gone or overflowed. One frame
    /// larger than the byte bound (a big snapshot) is let through when nothing else waits.
    pub fn send_frame(&self, frame: Frame) -> bool {
        let len = frame.len();
        let waiting = self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if waiting > 0 && waiting + len > self.max_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.closing.ask(ensemble_protocol::wire::close::SLOW_CONSUMER);
            return false;
        }
        match self.queue.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                self.closing.ask(ensemble_protocol::wire::close::SLOW_CONSUMER);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                false
            }
        }
    }
}

/// A request to a project actor.
#[derive(Debug)]
pub enum Command {
    /// Commit a transaction; the answer goes to `outbox`.
    Write {
        /// The transaction.
        tx: Transaction,
        /// Its author.
        author: UserId,
        /// Where the answer goes.
        outbox: Outbox,
    },
    /// Start pushing bumps to `outbox`, after catching it up from `since`.
    Subscribe {
        /// The subscriber.
        user: UserId,
        /// The last seq the subscriber has.
        since: Option<Seq>,
        /// Where the catch-up and bumps go.
        outbox: Outbox,
        /// Join as an editor if not a member yet (open authorities).
        join_as_editor: bool,
    },
    /// The store may hold commits this actor did not make (`seq`, when a poke says which):
    /// catch up and bump the subscribers.
    Poke {
        /// The seq of the outside commit, if known.
        seq: Option<Seq>,
    },
    /// This process no longer holds the project's lease: move the subscribers on and stop.
    LeaseLost,
    /// Catch up a subscriber of another process (which relays the bumps after that): like
    /// `Subscribe`, without keeping `outbox`.
    CatchUp {
        /// The subscriber.
        user: UserId,
        /// The last seq the subscriber has.
        since: Option<Seq>,
        /// Where the catch-up goes.
        outbox: Outbox,
        /// Join as an editor if not a member yet (open authorities).
        join_as_editor: bool,
    },
    /// Every record changed since `since`, as one bump to `outbox`: for another process that
    /// missed bumps.
    Delta {
        /// The last seq the asker passed on.
        since: Seq,
        /// Where the bump goes.
        outbox: Outbox,
    },
    /// A session of another process is in the project (or, `None`, left it).
    RemotePresence {
        /// The session.
        conn: ConnId,
        /// Who it is.
        user: UserId,
        /// Their display name.
        name: String,
        /// What they are doing.
        presence: Option<Presence>,
    },
    /// Stop pushing to a connection.
    Unsubscribe {
        /// The connection.
        conn: ConnId,
    },
    /// Relay a subscriber's presence to the project's other subscribers.
    Presence {
        /// The subscriber's connection.
        conn: ConnId,
        /// Who it is.
        user: UserId,
        /// Their display name.
        name: String,
        /// What they are doing.
        presence: Presence,
    },
    /// Answer with the current value of some records.
    GetRecords {
        /// Who asks.
        user: UserId,
        /// The records.
        ids: Vec<RecordId>,
        /// Where the answer goes.
        outbox: Outbox,
    },
}

/// A handle to a project: its actor in this process, or its owner in another one.
#[derive(Clone, Debug)]
pub struct ProjectHandle {
    route: Route,
}

#[derive(Clone, Debug)]
enum Route {
    /// This process serves it, under `lease`.
    Local { inbox: mpsc::Sender<Command>, lease: Lease },
    /// Another process does (see [`crate::cluster`]).
    Remote(Arc<RemoteProject>),
}

impl ProjectHandle {
    /// Whether it still serves (an actor stops when its project moves to another process; a
    /// remote project's owner may be gone).
    pub fn is_running(&self) -> bool {
        match &self.route {
            Route::Local { inbox, .. } => !inbox.is_closed(),
            Route::Remote(remote) => remote.is_alive(),
        }
    }

    /// The process that served it from elsewhere, once that process stopped answering.
    fn silent_owner(&self) -> Option<&str> {
        match &self.route {
            Route::Local { .. } => None,
            Route::Remote(remote) => remote.silent_owner(),
        }
    }

    /// Sends a command, waiting while the inbox is full; false if it no longer serves.
    pub async fn send(&self, command: Command) -> bool {
        match &self.route {
            Route::Local { inbox, .. } => inbox.send(command).await.is_ok(),
            Route::Remote(remote) => remote.send(command).await,
        }
    }

    /// Waits until a local actor stops (forever for a remote project).
    pub(crate) async fn stopped(&self) {
        match &self.route {
            Route::Local { inbox, .. } => inbox.closed().await,
            Route::Remote(_) => std::future::pending().await,
        }
    }

    fn lease(&self) -> Option<Lease> {
        match &self.route {
            Route::Local { lease, .. } => Some(*lease),
            Route::Remote(_) => None,
        }
    }

    /// Commits `tx` as the authority itself (no permission check: new assets, peaks marked
    /// ready), broadcast to subscribers like any commit; returns the answer, `Committed` or
    /// `Rejected`.
    pub async fn write_as_authority(&self, tx: Transaction) -> Result<ServerMsg, Error> {
        let (outbox, mut frames, _) = Outbox::new(ConnId::next(), 4, OUTBOX_BYTES);
        if !self.send(Command::Write { tx, author: AUTHORITY, outbox }).await {
            return Err(Error::Connection("the project actor has stopped".into()));
        }
        loop {
            let frame = frames.recv().await.ok_or_else(|| Error::Connection("the project actor has stopped".into()))?;
            let (answer, _) = FrameCodec::new(HARD_MAX_FRAME).decode::<ServerMsg>(&frame)?;
            if matches!(answer, ServerMsg::Committed { .. } | ServerMsg::Rejected { .. }) {
                return Ok(answer);
            }
            if let ServerMsg::Error { message, .. } = answer {
                return Err(Error::Connection(message));
            }
        }
    }
}

/// The open projects of one authority, each with its actor, opened on first use.
#[derive(Debug)]
pub struct Projects<S> {
    store: S,
    leases: LeaseOptions,
    /// The other processes, when there are several ([`crate::cluster`]).
    cluster: Option<Cluster>,
    open: Mutex<HashMap<ProjectId, ProjectHandle>>,
}

impl<S: Store> Projects<S> {
    /// No project open yet; this process takes leases as a node of its own.
    pub fn new(store: S) -> Self {
        Projects::with_leases(store, LeaseOptions::default())
    }

    /// No project open yet; this process takes leases as `leases` says.
    pub fn with_leases(store: S, leases: LeaseOptions) -> Self {
        Projects { store, leases, cluster: None, open: Mutex::new(HashMap::new()) }
    }

    /// No project open yet; this process takes leases as `leases` says, and reaches projects
    /// other processes serve through `cluster`.
    pub fn in_cluster(store: S, leases: LeaseOptions, cluster: Cluster) -> Self {
        Projects { store, leases, cluster: Some(cluster), open: Mutex::new(HashMap::new()) }
    }

    /// How this process holds its projects.
    pub fn leases(&self) -> &LeaseOptions {
        &self.leases
    }

    /// The project: its actor, started if needed once this process holds its lease, or (in a
    /// cluster) its owner in another process. `None` if the project does not exist;
    /// [`Error::Elsewhere`] while another process serves it and there is no cluster to reach it.
    pub async fn open(&self, project: ProjectId) -> Result<Option<ProjectHandle>, Error> {
        let mut waited = false;
        let (mut open, lease) = loop {
            let mut open = self.open.lock().await;
            let silent = match open.get(&project) {
                Some(handle) if handle.is_running() => return Ok(Some(handle.clone())),
                Some(handle) => handle.silent_owner().map(str::to_owned),
                None => None,
            };
            match self.store.acquire_lease(project, &self.leases.node, self.leases.ttl).await {
                Ok(Claim::Granted(lease)) => break (open, lease),
                // The owner stopped answering and its lease is running out: forwarding to it
                // again would only wait for another ping to go unanswered. Until the lease ends,
                // see whether it answers after all (NATS may have been away a moment); once
                // only, since an owner that renewed its lease meanwhile is alive.
                Ok(Claim::HeldBy { node, expires_in })
                    if !waited && silent.as_deref() == Some(node.as_str()) && expires_in <= self.leases.ttl =>
                {
                    drop(open);
                    waited = true;
                    let Some(cluster) = &self.cluster else { continue };
                    tracing::info!(%project, %node, ?expires_in, "the project's server was silent; waiting out its lease");
                    cluster.answers_within(project, expires_in + LEASE_MARGIN).await;
                }
                Ok(Claim::HeldBy { node, .. }) => {
                    let Some(cluster) = &self.cluster else { return Err(Error::Elsewhere { project, node }) };
                    let remote = RemoteProject::new(cluster.clone(), project, node);
                    let handle = ProjectHandle { route: Route::Remote(remote) };
                    open.insert(project, handle.clone());
                    return Ok(Some(handle));
                }
                Err(Error::NotFound(_)) => return Ok(None),
                Err(error) => return Err(error),
            }
        };
        // Loaded after the lease is taken, so it holds every commit of the previous holder.
        let publish = self.cluster.as_ref().map(|_| mpsc::channel(PUBLISHED));
        let (published, to_publish) = publish.unzip();
        let Some(actor) = ProjectActor::load(self.store.clone(), project, lease, published).await? else {
            return Ok(None);
        };
        let (inbox, commands) = mpsc::channel(INBOX);
        let span = tracing::info_span!("project", id = %project);
        tokio::spawn(tracing::Instrument::instrument(actor.run(commands), span));
        tracing::info!(%project, epoch = lease.epoch, "serving the project");
        let handle = ProjectHandle { route: Route::Local { inbox, lease } };
        if let (Some(cluster), Some(to_publish)) = (&self.cluster, to_publish) {
            tokio::spawn(crate::cluster::answer(cluster.clone(), project, handle.clone()));
            tokio::spawn(crate::cluster::publish(cluster.clone(), project, to_publish));
        }
        open.insert(project, handle.clone());
        Ok(Some(handle))
    }

    /// Renews the leases of the open projects (see [`crate::leases::keep`]); stops the actors
    /// of those whose lease another process has taken. A renewal that fails (the database is
    /// unreachable) is only logged: the next one tries again, and until then the commits'
    /// fence keeps a lost lease from being written under.
    pub async fn renew_leases(&self) {
        let held: Vec<(ProjectId, Lease)> = {
            let mut open = self.open.lock().await;
            open.retain(|_, handle| handle.is_running());
            open.iter().filter_map(|(project, handle)| Some((*project, handle.lease()?))).collect()
        };
        if held.is_empty() {
            return;
        }
        let kept = match self.store.renew_leases(&self.leases.node, &held, self.leases.ttl).await {
            Ok(kept) => kept,
            Err(error) => {
                tracing::warn!(%error, "the project leases could not be renewed");
                return;
            }
        };
        let mut open = self.open.lock().await;
        for (project, lease) in held.into_iter().filter(|(project, _)| !kept.contains(project)) {
            // Only the handle that held this lease: the project may have been opened again.
            if open.get(&project).is_some_and(|handle| handle.lease() == Some(lease))
                && let Some(handle) = open.remove(&project)
            {
                tracing::warn!(%project, epoch = lease.epoch, "lost the project's lease; moving its clients on");
                handle.send(Command::LeaseLost).await;
            }
        }
    }

    /// Lets go of every lease this process holds, so other processes may take its projects at
    /// once (a clean shutdown).
    pub async fn release_leases(&self) {
        if let Err(error) = self.store.release_leases(&self.leases.node).await {
            tracing::warn!(%error, "the project leases could not be released; they expire on their own");
        }
    }

    /// Tells `project`'s actor, if it is open, that the store has a commit at `seq` it may not
    /// have made (see [`crate::pokes`]).
    pub async fn poke(&self, project: ProjectId, seq: Option<Seq>) {
        let handle = self.open.lock().await.get(&project).cloned();
        if let Some(handle) = handle {
            handle.send(Command::Poke { seq }).await;
        }
    }

    /// Has every open project check the store for commits it did not make.
    pub async fn poke_all(&self) {
        let handles: Vec<_> = self.open.lock().await.values().cloned().collect();
        for handle in handles {
            handle.send(Command::Poke { seq: None }).await;
        }
    }
}

struct Subscriber {
    user: UserId,
    outbox: Outbox,
}

/// A transaction that applied in memory and waits for the batch to commit.
struct Staged {
    tx: Transaction,
    author: UserId,
    /// Where its answer goes (several if the same id came twice in one batch).
    outboxes: Vec<Outbox>,
    seq: Seq,
    changes: Vec<RecordChange>,
}

struct ProjectActor<S> {
    store: S,
    id: ProjectId,
    state: ProjectState,
    seq: Seq,
    record_seqs: HashMap<RecordId, Seq>,
    subscribers: Vec<Subscriber>,
    /// The latest presence of each subscriber that sent one (relayed, never stored).
    presences: HashMap<ConnId, PeerPresence>,
    /// The same for sessions of other processes, until they say they left.
    remote_presences: HashMap<ConnId, PeerPresence>,
    /// Where bumps and presence go for other processes to relay, in a cluster.
    published: Option<mpsc::Sender<Published>>,
    /// The first answer (`Committed` or `Rejected`) to recent transaction ids.
    answered: Recent,
    /// Memory may differ from the store: a commit failed and so did the reload after it. Until a
    /// reload succeeds nothing is staged on, served from or subscribed to this state, so an edit
    /// whose author was told it failed can never ride along with a later commit.
    stale: bool,
    /// The lease every batch commits under.
    lease: Lease,
    /// The lease was lost: the actor stops after this turn.
    moved: bool,
}

/// A bounded memory of first answers, oldest forgotten first.
#[derive(Default)]
struct Recent {
    answers: HashMap<TxId, ServerMsg>,
    order: VecDeque<TxId>,
}

impl Recent {
    fn get(&self, tx_id: &TxId) -> Option<&ServerMsg> {
        self.answers.get(tx_id)
    }

    fn remember(&mut self, tx_id: TxId, answer: ServerMsg) {
        if self.answers.insert(tx_id, answer).is_none() {
            self.order.push_back(tx_id);
        }
        while self.order.len() > REMEMBERED_ANSWERS {
            if let Some(old) = self.order.pop_front() {
                self.answers.remove(&old);
            }
        }
    }
}

struct Write {
    tx: Transaction,
    author: UserId,
    outbox: Option<Outbox>,
}

fn versions(changes: &[RecordChange]) -> Vec<(RecordId, Version)> {
    changes.iter().map(|change| (change.id, change.version)).collect()
}

impl<S: Store> ProjectActor<S> {
    async fn load(
        store: S,
        id: ProjectId,
        lease: Lease,
        published: Option<mpsc::Sender<Published>>,
    ) -> Result<Option<Self>, Error> {
        let Some(loaded) = store.load_project(id).await? else { return Ok(None) };
        Ok(Some(ProjectActor {
            store,
            id,
            state: loaded.state,
            seq: loaded.seq,
            record_seqs: loaded.record_seqs.into_iter().collect(),
            subscribers: Vec::new(),
            presences: HashMap::new(),
            remote_presences: HashMap::new(),
            published,
            answered: Recent::default(),
            stale: false,
            lease,
            moved: false,
        }))
    }

    async fn run(mut self, mut inbox: mpsc::Receiver<Command>) {
        let mut commands = Vec::with_capacity(MAX_BATCH);
        while inbox.recv_many(&mut commands, MAX_BATCH).await > 0 {
            // One reload attempt per batch of commands: while the database is down each attempt
            // waits out its timeout.
            if self.stale && self.reload().await.is_ok() {
                tracing::info!("project reloaded; serving it again");
            }
            let mut writes = Vec::new();
            for command in commands.drain(..) {
                match command {
                    Command::Write { tx, author, outbox } => writes.push(Write { tx, author, outbox: Some(outbox) }),
                    Command::Subscribe { outbox, .. } | Command::GetRecords { outbox, .. } if self.stale => {
                        outbox.retry_later(UNAVAILABLE);
                    }
                    Command::Subscribe { user, since, outbox, join_as_editor } => {
                        self.subscribe(user, since, outbox, join_as_editor).await;
                    }
                    Command::Unsubscribe { conn } => self.subscribers.retain(|s| s.outbox.conn() != conn),
                    Command::Poke { seq } => self.catch_up(seq).await,
                    Command::LeaseLost => self.moved = true,
                    Command::CatchUp { outbox, .. } | Command::Delta { outbox, .. } if self.stale => {
                        outbox.send(&ServerMsg::Error { code: ErrorCode::Internal, message: UNAVAILABLE.into() });
                    }
                    Command::CatchUp { user, since, outbox, join_as_editor } => {
                        self.catch_up_remote(user, since, &outbox, join_as_editor).await;
                    }
                    Command::Delta { since, outbox } => {
                        if let Some(bump) = self.delta_since(since) {
                            outbox.send(&ServerMsg::Bump(bump));
                        }
                    }
                    Command::RemotePresence { conn, user, name, presence } => {
                        self.relay_remote_presence(conn, user, name, presence);
                    }
                    Command::GetRecords { user, ids, outbox } => self.get_records(user, ids, &outbox),
                    Command::Presence { conn, user, name, presence } => self.relay_presence(conn, user, name, presence),
                }
            }
            if !writes.is_empty() && !self.moved {
                self.commit_writes(writes).await;
            } else {
                refuse(&writes, Refusal::Moved);
            }
            if self.moved {
                return self.move_on(inbox).await;
            }
            self.forget_departed();
        }
        tracing::debug!("project actor stopped");
    }

    /// Another process serves the project now: refuses what still waits, asks every
    /// subscriber's connection to close as moved (the clients reconnect, and resend what was
    /// not acknowledged), and stops.
    async fn move_on(mut self, mut inbox: mpsc::Receiver<Command>) {
        inbox.close();
        while let Some(command) = inbox.recv().await {
            match command {
                Command::Write { outbox, .. }
                | Command::Subscribe { outbox, .. }
                | Command::GetRecords { outbox, .. } => {
                    outbox.send(&ServerMsg::Error { code: ErrorCode::Internal, message: MOVED.into() });
                    outbox.moved();
                }
                _ => {}
            }
        }
        for subscriber in self.subscribers.drain(..) {
            subscriber.outbox.moved();
        }
        tracing::info!(epoch = self.lease.epoch, "the project moved to another process; stopped serving it");
    }

    fn get_records(&self, user: UserId, ids: Vec<RecordId>, outbox: &Outbox) {
        if let Err(denied) = authorize_read(self.state.role_of(user)) {
            outbox.send(&ServerMsg::Error { code: ErrorCode::Denied, message: denied.to_string() });
            return;
        }
        let records = ids.into_iter().map(|id| self.state.change(id)).collect();
        outbox.send(&ServerMsg::Records { project: self.id, records });
    }

    async fn subscribe(&mut self, user: UserId, since: Option<Seq>, outbox: Outbox, join_as_editor: bool) {
        if self.catch_up_remote(user, since, &outbox, join_as_editor).await {
            self.subscribers.retain(|s| s.outbox.conn() != outbox.conn());
            self.subscribers.push(Subscriber { user, outbox });
        }
    }

    /// Sends `outbox` a subscriber's catch-up and who is here; true when it is a member and was
    /// caught up (a subscriber of this process is then kept; another process's, relayed).
    async fn catch_up_remote(
        &mut self,
        user: UserId,
        since: Option<Seq>,
        outbox: &Outbox,
        join_as_editor: bool,
    ) -> bool {
        if join_as_editor && self.state.role_of(user).is_none() {
            let member = Record::Member(ensemble_protocol::Member { user, role: Role::Editor });
            let join = Transaction::new(self.id, vec![Op::Create { id: MemberId::new_v7().into(), record: member }]);
            self.commit_writes(vec![Write { tx: join, author: AUTHORITY, outbox: None }]).await;
            if self.stale {
                outbox.retry_later(UNAVAILABLE);
                return false;
            }
        }
        let role = match self.state.role_of(user) {
            Some(role) => role,
            None => {
                let message = ensemble_protocol::Denied::NotMember.to_string();
                outbox.send(&ServerMsg::Error { code: ErrorCode::Denied, message });
                return false;
            }
        };
        let catch_up = match since {
            Some(since) if since <= self.seq => CatchUp::Delta(self.changed_since(since)),
            _ => CatchUp::Snapshot(self.state.snapshot()),
        };
        let subscribed = ServerMsg::Subscribed { project: self.id, seq: self.seq, role, catch_up };
        if !outbox.send(&subscribed) {
            return false;
        }
        // Who is here already.
        let here = self.presences.values().chain(self.remote_presences.values());
        for peer in here.filter(|peer| peer.session != outbox.conn().0) {
            outbox.send(&ServerMsg::Presence { project: self.id, peer: peer.clone() });
        }
        true
    }

    /// Every record changed since `since`, as one bump at the current seq; `None` when nothing
    /// is newer.
    fn delta_since(&self, since: Seq) -> Option<Bump> {
        if since >= self.seq {
            return None;
        }
        let changes = self.changed_since(since);
        Some(Bump { project: self.id, seq: self.seq, tx_id: TxId::from_u128(0), author: AUTHORITY, changes })
    }

    /// The current value of every record changed after `since`.
    fn changed_since(&self, since: Seq) -> Vec<RecordChange> {
        self.record_seqs.iter().filter(|(_, seq)| **seq > since).map(|(id, _)| self.state.change(*id)).collect()
    }

    /// Passes on the presence of a session of another process (or its leaving).
    fn relay_remote_presence(&mut self, conn: ConnId, user: UserId, name: String, presence: Option<Presence>) {
        let presence = presence.map(|mut presence| {
            presence.selection.truncate(MAX_PRESENCE_SELECTION);
            presence
        });
        let peer = PeerPresence { session: conn.0, user, name, presence };
        if peer.presence.is_some() {
            self.remote_presences.insert(conn, peer.clone());
        } else if let Some(mut known) = self.remote_presences.remove(&conn) {
            // Its leaving, with the name the others know it by.
            known.presence = None;
            return self.broadcast_presence(known);
        } else {
            return;
        }
        self.broadcast_presence(peer);
    }

    /// Hands `item` to the other processes, when in a cluster. A full queue drops it, as NATS
    /// may: relays notice the gap and catch up.
    fn publish(&self, item: impl FnOnce() -> Published) {
        if let Some(published) = &self.published
            && published.try_send(item()).is_err()
        {
            tracing::debug!("the publishing queue is full; relays will catch up");
        }
    }

    /// Passes a subscriber's presence to the others; a connection that is not subscribed has
    /// nobody to tell.
    fn relay_presence(&mut self, conn: ConnId, user: UserId, name: String, mut presence: Presence) {
        if !self.subscribers.iter().any(|subscriber| subscriber.outbox.conn() == conn) {
            return;
        }
        presence.selection.truncate(MAX_PRESENCE_SELECTION);
        let peer = PeerPresence { session: conn.0, user, name, presence: Some(presence) };
        self.presences.insert(conn, peer.clone());
        self.broadcast_presence(peer);
    }

    fn broadcast_presence(&mut self, peer: PeerPresence) {
        let from = ConnId(peer.session);
        if let Some(frame) = encode(&ServerMsg::Presence { project: self.id, peer }) {
            self.subscribers.retain(|s| s.outbox.conn() == from || s.outbox.send_frame(frame.clone()));
            self.publish(|| Published::Presence { from: from.0, frame: frame.to_vec() });
        }
    }

    /// Tells everyone that sessions which are no longer subscribed (gone, cut off, no longer
    /// members) have left.
    fn forget_departed(&mut self) {
        loop {
            let subscribed = |conn: &ConnId| self.subscribers.iter().any(|s| s.outbox.conn() == *conn);
            let Some(gone) = self.presences.keys().copied().find(|conn| !subscribed(conn)) else { return };
            if let Some(mut peer) = self.presences.remove(&gone) {
                peer.presence = None;
                self.broadcast_presence(peer);
            }
        }
    }

    /// Applies what applies, commits it durably in one batch, then answers and broadcasts.
    async fn commit_writes(&mut self, mut writes: Vec<Write>) {
        // Their clients send them again after the edit that failed before them.
        writes.retain(|write| !write.outbox.as_ref().is_some_and(Outbox::is_closing));
        if self.stale {
            refuse(&writes, Refusal::Unavailable);
            return;
        }
        // The first attempt trusts memory for replays. One retry covers a batch that lost a race
        // with another writer (an operator command, another process) or replayed a transaction
        // old enough to be forgotten: reload, then try again checking every id against the log.
        for check_log in [false, true] {
            match self.try_commit(&mut writes, check_log).await {
                Ok(()) => return,
                Err(Error::Fenced(_)) => {
                    // Nothing of this batch is stored, and this process may not write again.
                    tracing::warn!(epoch = self.lease.epoch, "commit fenced: another process holds the lease");
                    refuse(&writes, Refusal::Moved);
                    self.moved = true;
                    return;
                }
                Err(Error::SeqMoved(_) | Error::Exists(_)) if !check_log => {
                    tracing::info!("project changed under this actor, or an old transaction was replayed; reloading");
                }
                Err(error) => {
                    // Nothing of this batch is stored: say so, and start the next batch from
                    // what the store holds. The clients may send the same transactions again.
                    tracing::error!(%error, "commit failed");
                    refuse(&writes, Refusal::Failed(error));
                    self.reload_or_go_stale().await;
                    return;
                }
            }
            if !self.reload_or_go_stale().await {
                refuse(&writes, Refusal::Unavailable);
                return;
            }
        }
    }

    /// Reloads the project from the store, so memory holds exactly what the store does. If even
    /// that fails, the actor goes stale and cuts its subscribers off (they will resubscribe)
    /// rather than serve a state the store may not hold. False on failure.
    async fn reload_or_go_stale(&mut self) -> bool {
        match self.reload().await {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(%error, "project could not be reloaded; dropping its subscribers until it can");
                self.stale = true;
                let message = "the authority lost this project's state; subscribe again".to_owned();
                for subscriber in self.subscribers.drain(..) {
                    subscriber.outbox.retry_later(&message);
                }
                false
            }
        }
    }

    /// Reloads the project if the store may be ahead of memory (`seq` is newer, or unknown), and
    /// bumps the subscribers with every record that changed: one bump to the store's seq, as a
    /// reconnecting client's catch-up would carry.
    async fn catch_up(&mut self, seq: Option<Seq>) {
        if self.stale || seq.is_some_and(|seq| seq <= self.seq) {
            return;
        }
        let from = self.seq;
        if !self.reload_or_go_stale().await || self.seq <= from {
            return;
        }
        let Some(bump) = self.delta_since(from) else { return };
        tracing::info!(
            from = from.0,
            to = self.seq.0,
            records = bump.changes.len(),
            "caught up with an outside commit"
        );
        if let Some(frame) = encode(&ServerMsg::Bump(bump)) {
            self.subscribers.retain(|subscriber| subscriber.outbox.send_frame(frame.clone()));
            let seq = self.seq;
            self.publish(|| Published::Bump { seq, frame: frame.to_vec() });
        }
    }

    async fn reload(&mut self) -> Result<(), Error> {
        let loaded = self.store.load_project(self.id).await?.ok_or_else(|| Error::NotFound(self.id.to_string()))?;
        self.state = loaded.state;
        self.seq = loaded.seq;
        self.record_seqs = loaded.record_seqs.into_iter().collect();
        self.stale = false;
        Ok(())
    }

    /// One attempt at a batch. On error the in-memory state may be ahead of the store; the
    /// caller reloads it.
    async fn try_commit(&mut self, writes: &mut Vec<Write>, check_log: bool) -> Result<(), Error> {
        let known: HashMap<TxId, ServerMsg> = if check_log {
            let ids: Vec<TxId> = writes.iter().map(|w| w.tx.id).collect();
            self.logged_answers(&ids).await?
        } else {
            HashMap::new()
        };
        let from = self.seq;
        let mut staged: Vec<Staged> = Vec::new();
        let mut staged_index: HashMap<TxId, usize> = HashMap::new();
        let mut answers: Vec<(Outbox, ServerMsg)> = Vec::new();
        let mut rejections: Vec<(TxId, Rejection)> = Vec::new();
        for write in writes.iter() {
            let tx_id = write.tx.id;
            let answer = if let Some(answer) = self.answered.get(&tx_id).or_else(|| known.get(&tx_id)) {
                answer.clone()
            } else if let Some(index) = staged_index.get(&tx_id) {
                // The same id twice in one batch: both get the first one's answer.
                staged[*index].outboxes.extend(write.outbox.clone());
                continue;
            } else if let Some((_, reason)) = rejections.iter().find(|(id, _)| *id == tx_id) {
                ServerMsg::Rejected { tx_id, reason: reason.clone() }
            } else {
                match self.stage(write, Seq(from.0 + staged.len() as u64 + 1)) {
                    Ok(stage) => {
                        staged_index.insert(tx_id, staged.len());
                        staged.push(stage);
                        continue;
                    }
                    Err(reason) => {
                        tracing::debug!(%tx_id, %reason, "transaction rejected");
                        rejections.push((tx_id, reason.clone()));
                        ServerMsg::Rejected { tx_id, reason }
                    }
                }
            };
            if let Some(outbox) = &write.outbox {
                answers.push((outbox.clone(), answer));
            }
        }
        // A transaction that does not apply may be a replay of one committed long ago (it
        // created what now exists): only the log can tell, and rejections are rare.
        if !rejections.is_empty() && !check_log {
            let ids: Vec<TxId> = rejections.iter().map(|(id, _)| *id).collect();
            let logged = self.logged_answers(&ids).await?;
            rejections.retain(|(id, _)| !logged.contains_key(id));
            for (_, answer) in &mut answers {
                if let ServerMsg::Rejected { tx_id, .. } = answer
                    && let Some(first) = logged.get(tx_id)
                {
                    *answer = first.clone();
                }
            }
        }
        if let Some(last) = staged.last() {
            let mut batch = Batch { lease: Some(self.lease), ..Batch::default() };
            let committed_at = now();
            for stage in &staged {
                batch.push_commit(&stage.tx, stage.seq, stage.author, &stage.changes, committed_at)?;
            }
            self.store.commit(self.id, from, &batch).await?;
            self.seq = last.seq;
            tracing::debug!(transactions = staged.len(), seq = last.seq.0, "committed");
        }
        // Durable: remember, answer and broadcast.
        for (tx_id, reason) in rejections {
            self.answered.remember(tx_id, ServerMsg::Rejected { tx_id, reason });
        }
        for (outbox, answer) in answers {
            outbox.send(&answer);
        }
        // Other processes' relays drop subscribers who are no longer members (a deleted record
        // may have been a membership: counted as a change too).
        let membership_changed = staged
            .iter()
            .flat_map(|stage| &stage.changes)
            .any(|change| matches!(change.record, Some(Record::Member(_)) | None));
        for stage in staged {
            for change in &stage.changes {
                self.record_seqs.insert(change.id, stage.seq);
            }
            let committed =
                ServerMsg::Committed { tx_id: stage.tx.id, seq: stage.seq, versions: versions(&stage.changes) };
            for outbox in &stage.outboxes {
                outbox.send(&committed);
            }
            self.answered.remember(stage.tx.id, committed);
            let bump = Bump {
                project: self.id,
                seq: stage.seq,
                tx_id: stage.tx.id,
                author: stage.author,
                changes: stage.changes,
            };
            if let Some(frame) = encode(&ServerMsg::Bump(bump)) {
                self.subscribers.retain(|s| s.outbox.send_frame(frame.clone()));
                self.publish(|| Published::Bump { seq: stage.seq, frame: frame.to_vec() });
            }
        }
        if !staged_index.is_empty() {
            self.drop_former_members();
        }
        if membership_changed {
            let members = self.state.records().filter_map(|(_, entry)| match &entry.record {
                Record::Member(member) => Some(member.user),
                _ => None,
            });
            let members = members.collect();
            self.publish(|| Published::Members(members));
        }
        writes.clear();
        Ok(())
    }

    /// The logged `Committed` answers of those of `ids` that are in the log.
    async fn logged_answers(&self, ids: &[TxId]) -> Result<HashMap<TxId, ServerMsg>, Error> {
        let found = self.store.committed(self.id, ids).await?;
        Ok(found
            .into_iter()
            .map(|c| (c.tx_id, ServerMsg::Committed { tx_id: c.tx_id, seq: c.seq, versions: c.versions }))
            .collect())
    }

    /// Checks permission and applies one write to the in-memory state.
    fn stage(&mut self, write: &Write, seq: Seq) -> Result<Staged, Rejection> {
        if write.tx.project != self.id {
            return Err(Rejection::NoSuchProject);
        }
        if write.author != AUTHORITY {
            authorize_write(self.state.role_of(write.author), &self.state, &write.tx)?;
        }
        let applied = self.state.apply(&write.tx)?;
        Ok(Staged {
            tx: write.tx.clone(),
            author: write.author,
            outboxes: write.outbox.iter().cloned().collect(),
            seq,
            changes: applied.changed.iter().map(|id| self.state.change(*id)).collect(),
        })
    }

    /// Subscribers whose membership a commit removed stop receiving the project.
    fn drop_former_members(&mut self) {
        let state = &self.state;
        self.subscribers.retain(|subscriber| {
            let still_member = state.role_of(subscriber.user).is_some();
            if !still_member {
                let message = "you are no longer a member of this project".to_owned();
                subscriber.outbox.send(&ServerMsg::Error { code: ErrorCode::Denied, message });
            }
            still_member
        });
    }
}

/// What an actor that lost its lease answers.
const MOVED: &str = "this project is now served by another authority process; nothing was saved: reconnect and retry";

/// What a stale actor answers: it cannot tell what the store holds.
const UNAVAILABLE: &str = "the authority cannot reach its database; nothing was saved, try again later";

/// Why writes were not stored.
enum Refusal {
    /// Another process serves the project now.
    Moved,
    /// The store cannot be reached.
    Unavailable,
    /// The commit failed.
    Failed(Error),
}

/// Answers writes that were not stored and closes their connections: each client reconnects
/// and sends them again, in order, where the project is served.
fn refuse(writes: &[Write], why: Refusal) {
    let message = match &why {
        Refusal::Moved => MOVED.to_owned(),
        Refusal::Unavailable => UNAVAILABLE.to_owned(),
        Refusal::Failed(error) => format!("the authority could not save this edit: {error}"),
    };
    for outbox in writes.iter().filter_map(|write| write.outbox.as_ref()) {
        match why {
            Refusal::Moved => {
                outbox.send(&ServerMsg::Error { code: ErrorCode::Internal, message: message.clone() });
                outbox.moved();
            }
            Refusal::Unavailable | Refusal::Failed(_) => outbox.retry_later(&message),
        }
    }
}

/// Runs a transaction as the authority itself (no permission check), for operator commands.
pub async fn apply_as_authority<S: Store>(store: &S, project: ProjectId, ops: Vec<Op>) -> Result<Seq, Error> {
    let loaded = store.load_project(project).await?.ok_or_else(|| Error::NotFound(format!("project {project}")))?;
    let mut state = loaded.state;
    let tx = Transaction::new(project, ops);
    let applied = state.apply(&tx).map_err(|e| Error::Config(e.to_string()))?;
    let seq = loaded.seq.next();
    let changes: Vec<RecordChange> = applied.changed.iter().map(|id| state.change(*id)).collect();
    let mut batch = Batch::default();
    batch.push_commit(&tx, seq, AUTHORITY, &changes, now())?;
    store.commit(project, loaded.seq, &batch).await?;
    // The commit stands whether or not the serving processes hear of it now; they also catch up
    // at their next write or reconnect.
    if let Err(error) = store.poke(project, seq).await {
        tracing::warn!(%error, "committed, but the serving processes were not told");
    }
    Ok(seq)
}
