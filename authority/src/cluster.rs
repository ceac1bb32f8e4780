//! Requests and bumps between authority processes over NATS, so any process serves any client.
//!
//! The process holding a project's lease (its owner, see [`crate::leases`]) answers requests
//! for the project on `ens.p.<project>.cmd` (`answer`) and publishes every bump and presence
//! once on `ens.p.<project>.bump` (the actor hands them to `publish`). Another process whose
//! client asks for that project gets a [`RemoteProject`] instead of an actor: it forwards the
//! client's requests to the owner, in the order they came, and gets the owner's answer back
//! as the frames to pass on; and while some of its clients subscribe, it relays what the owner
//! publishes to them, subscribed to the project's subject only then.
//!
//! NATS carries messages up to its `max_payload` (1 MiB by default): an answer is sent in
//! parts that fit, and a bump too large to publish is published as a poke, on which relays
//! fetch it from the owner as they do after a gap.
//!
//! NATS delivers at most once. Every bump carries its seq: a relay that sees a gap, or whose
//! NATS connection came back, asks the owner for every record changed since the last bump it
//! passed on before it passes on anything newer. "No responders" means nobody answers for the
//! project: the owner is gone (or has just lost its lease). The relay then closes its clients'
//! connections as moved, and the next request, once the lease has expired, takes the project
//! here. A relay also checks the owner once per lease time, so its clients learn of a dead
//! owner even when they only listen.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ensemble_protocol::frame::{HARD_MAX_FRAME, HEADER_LEN, decode_value, encode_value};
use ensemble_protocol::wire::{ErrorCode, Presence};
use ensemble_protocol::{FrameCodec, ProjectId, RecordId, Seq, ServerMsg, Transaction, UserId};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use crate::Error;
use crate::actor::{Command, ConnId, Frame, OUTBOX_BYTES, Outbox, ProjectHandle};

/// How long a forwarded request waits for the owner's answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request waits before it asks whether the owner is there, and again after that.
const WATCH_EVERY: Duration = Duration::from_millis(500);
/// How long a ping waits.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// How many times, and how far apart, a relay asks before it takes silence for a gone owner.
const GONE_ASKS: usize = 5;
const GONE_SPACING: Duration = Duration::from_millis(250);

/// Frames a forwarded answer may hold before the owner's actor would wait.
const ANSWER_FRAMES: usize = 4096;

/// A request forwarded to a project's owner.
#[derive(Debug, Serialize, Deserialize)]
enum Request {
    /// Commit a transaction; answered with `Committed`, `Rejected` or an error.
    Write { tx: Transaction, author: UserId },
    /// Catch a subscriber up (the forwarding process relays the bumps after that); answered
    /// with `Subscribed` (or an error) and who is present.
    Subscribe { user: UserId, since: Option<Seq>, join_as_editor: bool },
    /// The current value of some records.
    GetRecords { user: UserId, ids: Vec<RecordId> },
    /// A session of the forwarding process is here (or, `None`, left).
    Presence { conn: u64, user: UserId, name: String, presence: Option<Presence> },
    /// Every record changed since `since`, as one bump: for a relay that missed bumps.
    Delta { since: Seq },
    /// Whether anybody answers for the project.
    Ping,
}

/// What a project's owner publishes to the processes relaying it.
#[derive(Debug, Serialize, Deserialize)]
pub enum Published {
    /// A bump at `seq`, encoded as it goes to a client.
    Bump {
        /// Its seq.
        seq: Seq,
        /// The encoded frame.
        frame: Vec<u8>,
    },
    /// A presence frame from session `from` (not passed back to it).
    Presence {
        /// The session it is about.
        from: u64,
        /// The encoded frame.
        frame: Vec<u8>,
    },
    /// The project's members after a change of membership: relays drop the others.
    Members(Vec<UserId>),
    /// There is a bump at `seq` too large for NATS: relays fetch it through the owner.
    Poke {
        /// Its seq.
        seq: Seq,
    },
}

fn cmd_subject(project: ProjectId) -> String {
    format!("ens.p.{}.cmd", project.0.simple())
}

fn bump_subject(project: ProjectId) -> String {
    format!("ens.p.{}.bump", project.0.simple())
}

/// Why a forwarded request got no answer.
#[derive(Debug)]
enum Unanswered {
    /// Nobody answers for the project: its owner is gone.
    NoOwner,
    /// NATS failed, or the owner did not answer in time.
    Failed(String),
}

/// This process's connection to the other processes, through NATS.
#[derive(Clone, Debug)]
pub struct Cluster {
    client: async_nats::Client,
    /// Where answers to this process's requests arrive: `ens.r.<node>.<id>`.
    replies: String,
    waiting: Arc<Mutex<HashMap<u64, Pending>>>,
    next: Arc<AtomicU64>,
    /// Counts NATS reconnections: relays catch up after each.
    reconnects: watch::Receiver<u64>,
    /// How often a relay checks that the owner still answers.
    ping_every: Duration,
}

impl Cluster {
    /// Connects to the NATS server at `url` as node `node`; relays check their owners every
    /// `ping_every`. Reconnects on its own for as long as the process runs.
    pub async fn connect(url: &str, node: &str, ping_every: Duration) -> Result<Cluster, Error> {
        let (count, reconnects) = watch::channel(0u64);
        let count = Arc::new(count);
        let client = async_nats::ConnectOptions::new()
            .name(format!("ensemble-authority {node}"))
            .max_reconnects(None)
            .event_callback(move |event| {
                let count = count.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!("NATS connected");
                            count.send_modify(|count| *count += 1);
                        }
                        async_nats::Event::Disconnected => tracing::warn!("NATS disconnected; reconnecting"),
                        other => tracing::debug!(%other, "NATS"),
                    }
                }
            })
            .connect(url)
            .await
            .map_err(|error| Error::Connection(format!("NATS at {url}: {error}")))?;
        let subject = format!("ens.r.{}", node.replace(['.', ' ', '*', '>'], "_"));
        let mut answers = client
            .subscribe(format!("{subject}.*"))
            .await
            .map_err(|error| Error::Connection(format!("NATS: {error}")))?;
        let waiting: Arc<Mutex<HashMap<u64, Pending>>> = Arc::default();
        let routes = waiting.clone();
        tokio::spawn(async move {
            while let Some(message) = answers.next().await {
                let Some(id) = message.subject.rsplit('.').next().and_then(|id| id.parse::<u64>().ok()) else {
                    continue;
                };
                let Ok(mut routes) = routes.lock() else { return };
                let Some(pending) = routes.get_mut(&id) else { continue };
                // "No responders" comes as a status with no parts; an answer, as parts.
                let complete = message.status.is_some() || pending.add(&message.payload);
                if complete && let Some(pending) = routes.remove(&id) {
                    pending.finish(message);
                }
            }
        });
        if client.server_info().max_payload < MAX_FORWARDED {
            tracing::warn!(
                max_payload = client.server_info().max_payload,
                "NATS's max_payload is below {MAX_FORWARDED} bytes: the largest edits cannot be forwarded \
                 (set max_payload: 2MB in the NATS server's configuration)"
            );
        }
        Ok(Cluster { client, replies: subject, waiting, next: Arc::new(AtomicU64::new(1)), reconnects, ping_every })
    }

    /// Sends `request` for `project` to its owner, expecting no answer.
    async fn tell(&self, project: ProjectId, request: &Request) {
        match encode_value(request) {
            Ok(payload) => {
                if let Err(error) = self.client.publish(cmd_subject(project), payload.into()).await {
                    tracing::debug!(%error, "a forwarded notice was not sent");
                }
            }
            Err(error) => tracing::error!(%error, "a forwarded notice could not be encoded"),
        }
    }

    /// Sends `request` for `project` to its owner now (so requests leave in the order they are
    /// made), and returns its answer to come.
    async fn request(
        &self,
        project: ProjectId,
        request: &Request,
    ) -> impl std::future::Future<Output = Result<Answer, Unanswered>> + use<> {
        let (id, answer) = self.expect_answer();
        let sent = self.send(project, request, id).await;
        let cluster = self.clone();
        async move {
            sent?;
            // A request in flight when its owner died gets no answer and no "no responders":
            // while it waits, the owner is asked whether it is there.
            let answered = tokio::select! {
                answered = tokio::time::timeout(REQUEST_TIMEOUT, answer) => Some(answered),
                () = cluster.owner_silent(project) => None,
            };
            cluster.forget(id);
            match answered {
                None => Err(Unanswered::NoOwner),
                Some(Ok(Ok(arrived))) => read_answer(arrived),
                Some(Ok(Err(_))) => Err(Unanswered::Failed("the answer was lost".into())),
                Some(Err(_)) => Err(Unanswered::Failed("the project's server did not answer in time".into())),
            }
        }
    }

    /// Whether anybody answers for `project` now.
    async fn ping(&self, project: ProjectId) -> Result<(), Unanswered> {
        let (id, answer) = self.expect_answer();
        self.send(project, &Request::Ping, id).await?;
        let answered = tokio::time::timeout(PING_TIMEOUT, answer).await;
        self.forget(id);
        match answered {
            Ok(Ok(arrived)) => read_answer(arrived).map(drop),
            _ => Err(Unanswered::Failed("no answer to a ping".into())),
        }
    }

    /// Whether `project`'s owner answers a ping within `within`, asked again every
    /// [`GONE_SPACING`] while nobody answers (just after a NATS outage the owner may not have
    /// subscribed again yet); returns at the end of `within` if it never does.
    pub(crate) async fn answers_within(&self, project: ProjectId, within: Duration) -> bool {
        let asking = async {
            while self.ping(project).await.is_err() {
                tokio::time::sleep(GONE_SPACING).await;
            }
        };
        tokio::time::timeout(within, asking).await.is_ok()
    }

    /// Resolves once nobody answers for `project`, or its owner does not answer a ping in time
    /// (it may be paused past its lease, still holding its NATS connection), asked every
    /// [`WATCH_EVERY`].
    async fn owner_silent(&self, project: ProjectId) {
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            if self.ping(project).await.is_err() {
                return;
            }
        }
    }

    /// A request id, and where its answer will arrive.
    fn expect_answer(&self) -> (u64, oneshot::Receiver<Arrived>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (sender, answer) = oneshot::channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(id, Pending { parts: Vec::new(), close: None, done: sender });
        }
        (id, answer)
    }

    fn forget(&self, id: u64) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(&id);
        }
    }

    async fn send(&self, project: ProjectId, request: &Request, id: u64) -> Result<(), Unanswered> {
        let payload = encode_value(request).map_err(|error| Unanswered::Failed(error.to_string()))?;
        let limit = self.client.server_info().max_payload;
        if payload.len() > limit {
            let size = payload.len();
            return Err(Unanswered::Failed(format!("{size} bytes is more than NATS carries ({limit})")));
        }
        self.client
            .publish_with_reply(cmd_subject(project), format!("{}.{id}", self.replies), payload.into())
            .await
            .map_err(|error| Unanswered::Failed(error.to_string()))
    }
}

/// The largest forwarded request NATS must carry: a client's largest frame, and room for the
/// envelope.
const MAX_FORWARDED: usize = ensemble_protocol::frame::DEFAULT_MAX_FRAME + 64 * 1024;

/// An answer is sent in parts no larger than NATS carries (a big project's snapshot can be
/// several MiB), each led by a byte that says whether more follow. The last part's byte also
/// says whether the client's connection is to close after the answer, and with which code
/// (the owner refused an edit it could not store: the client must send it again, in order).
const MORE: u8 = 1;
const LAST: u8 = 0;
const LAST_THEN_CLOSE: u8 = 0x80;

/// Sends `answer` to `reply` in parts that fit NATS's `max_payload`; `close`, the code the
/// client's connection is to close with after it.
async fn send_parts(client: &async_nats::Client, reply: async_nats::Subject, answer: &[u8], close: Option<u32>) {
    let room = client.server_info().max_payload.saturating_sub(1).max(1024);
    let parts: Vec<&[u8]> = if answer.is_empty() { vec![&[]] } else { answer.chunks(room).collect() };
    let count = parts.len();
    let last = match close.and_then(|code| u8::try_from(code).ok()).filter(|code| *code < LAST_THEN_CLOSE) {
        Some(code) => LAST_THEN_CLOSE | code,
        None => LAST,
    };
    for (index, part) in parts.into_iter().enumerate() {
        let mut payload = Vec::with_capacity(part.len() + 1);
        payload.push(if index + 1 < count { MORE } else { last });
        payload.extend_from_slice(part);
        if let Err(error) = client.publish(reply.clone(), payload.into()).await {
            tracing::debug!(%error, "a forwarded answer was not sent");
            return;
        }
    }
}

/// An answer on its way, gathered part by part.
#[derive(Debug)]
struct Pending {
    parts: Vec<u8>,
    close: Option<u32>,
    done: oneshot::Sender<Arrived>,
}

/// What came back for a request: the final message (which carries a status) with the whole
/// answer as its payload, and the close the owner asked for.
#[derive(Debug)]
struct Arrived {
    message: async_nats::Message,
    close: Option<u32>,
}

impl Pending {
    /// Adds one part; true when it was the last.
    fn add(&mut self, payload: &[u8]) -> bool {
        let Some((flag, part)) = payload.split_first() else { return true };
        self.parts.extend_from_slice(part);
        if flag & LAST_THEN_CLOSE != 0 {
            self.close = Some(u32::from(flag & !LAST_THEN_CLOSE));
        }
        *flag != MORE
    }

    /// Hands over the whole answer (`last`, the final part, carries its status).
    fn finish(self, mut last: async_nats::Message) {
        last.payload = Bytes::from(self.parts);
        let _ = self.done.send(Arrived { message: last, close: self.close });
    }
}

/// An owner's answer to a forwarded request.
struct Answer {
    /// Its frames, as the owner's actor wrote them.
    frames: Bytes,
    /// The code the client's connection is to close with after them, if any.
    close: Option<u32>,
}

impl Answer {
    /// Passes the answer to a session of this process, closing its connection if the owner
    /// asked (with the error the answer carries as the reason: the frame itself may not leave
    /// before the close).
    fn pass_to(&self, outbox: &Outbox) {
        let frames = frames(&self.frames);
        let reason = self.close.and_then(|_| {
            frames.iter().find_map(|frame| match FrameCodec::new(HARD_MAX_FRAME).decode::<ServerMsg>(frame) {
                Ok((ServerMsg::Error { message, .. }, _)) => Some(message),
                _ => None,
            })
        });
        for frame in frames {
            outbox.send_frame(frame);
        }
        if let Some(code) = self.close {
            outbox.close(code, reason);
        }
    }
}

/// An answer, or why there is none.
fn read_answer(arrived: Arrived) -> Result<Answer, Unanswered> {
    if arrived.message.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
        return Err(Unanswered::NoOwner);
    }
    Ok(Answer { frames: arrived.message.payload, close: arrived.close })
}

/// The frames in a forwarded answer, one after another.
fn frames(bytes: &[u8]) -> Vec<Frame> {
    let codec = FrameCodec::new(HARD_MAX_FRAME);
    let mut frames = Vec::new();
    let mut rest = bytes;
    while let Some((header, _)) = rest.split_first_chunk::<HEADER_LEN>()
        && let Ok(len) = codec.body_len(*header)
        && let Some(frame) = rest.get(..HEADER_LEN + len)
    {
        frames.push(Frame::from(frame));
        rest = &rest[frame.len()..];
    }
    frames
}

/// Answers the requests other processes forward for `project`, whose actor `actor` is, until
/// the actor stops.
pub(crate) async fn answer(cluster: Cluster, project: ProjectId, actor: ProjectHandle) {
    let mut requests = match cluster.client.subscribe(cmd_subject(project)).await {
        Ok(requests) => requests,
        Err(error) => {
            tracing::warn!(%error, "cannot answer other processes for this project");
            return;
        }
    };
    loop {
        let message = tokio::select! {
            message = requests.next() => message,
            () = actor.stopped() => break,
        };
        let Some(message) = message else { break };
        let request: Request = match decode_value(&message.payload) {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(%error, "a forwarded request does not decode");
                continue;
            }
        };
        let (outbox, mut frames, closing) = Outbox::new(ConnId::next(), ANSWER_FRAMES, OUTBOX_BYTES);
        let command = match request {
            Request::Write { tx, author } => Some(Command::Write { tx, author, outbox }),
            Request::Subscribe { user, since, join_as_editor } => {
                Some(Command::CatchUp { user, since, outbox, join_as_editor })
            }
            Request::GetRecords { user, ids } => Some(Command::GetRecords { user, ids, outbox }),
            Request::Presence { conn, user, name, presence } => {
                Some(Command::RemotePresence { conn: ConnId(conn), user, name, presence })
            }
            Request::Delta { since } => Some(Command::Delta { since, outbox }),
            Request::Ping => None,
        };
        // Sent here, in the order the requests came; answered on a task of its own.
        if let Some(command) = command
            && !actor.send(command).await
        {
            break;
        }
        let (client, reply) = (cluster.client.clone(), message.reply);
        tokio::spawn(async move {
            let mut answer = Vec::new();
            while let Some(frame) = frames.recv().await {
                answer.extend_from_slice(&frame);
            }
            if let Some(reply) = reply {
                send_parts(&client, reply, &answer, closing.code()).await;
            }
        });
    }
    let _ = requests.unsubscribe().await;
}

/// Publishes what `project`'s actor hands over, once each, until the actor stops.
pub(crate) async fn publish(cluster: Cluster, project: ProjectId, mut published: mpsc::Receiver<Published>) {
    let subject = bump_subject(project);
    while let Some(item) = published.recv().await {
        let mut payload = match encode_value(&item) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(%error, "a published frame could not be encoded");
                continue;
            }
        };
        // Too large for NATS: say there is one, and relays fetch it.
        if let Published::Bump { seq, .. } = item
            && payload.len() > cluster.client.server_info().max_payload
            && let Ok(poke) = encode_value(&Published::Poke { seq })
        {
            payload = poke;
        }
        // Lost on the way is like lost by NATS: relays see the gap and catch up.
        let _ = cluster.client.publish(subject.clone(), payload.into()).await;
    }
}

/// A project another process serves, as this process's clients reach it.
#[derive(Debug)]
pub struct RemoteProject {
    cluster: Cluster,
    project: ProjectId,
    /// The node that held the project's lease when this was made.
    owner: String,
    /// False once the owner stopped answering: a new one is made for the next request.
    alive: AtomicBool,
    relay: Mutex<Option<Relay>>,
}

/// This process's subscribers to a remote project, and the task relaying its bumps to them.
#[derive(Debug)]
struct Relay {
    subscribers: Arc<Mutex<Subscribers>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Subscribers {
    list: Vec<RelayedTo>,
    /// The last seq passed on.
    last: Option<Seq>,
}

#[derive(Debug)]
struct RelayedTo {
    user: UserId,
    outbox: Outbox,
    /// It has everything up to this seq.
    from: Seq,
    /// Until its catch-up arrives, what was published meanwhile (bumps with their seqs), to
    /// pass on after it.
    waiting: Option<Vec<(Option<Seq>, Frame)>>,
}

impl RemoteProject {
    /// The project `project`, served by `owner`, another process reached through `cluster`.
    pub fn new(cluster: Cluster, project: ProjectId, owner: String) -> Arc<RemoteProject> {
        Arc::new(RemoteProject { cluster, project, owner, alive: AtomicBool::new(true), relay: Mutex::new(None) })
    }

    /// Whether its owner still answered at last ask.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    /// The owner, once it has stopped answering.
    pub fn silent_owner(&self) -> Option<&str> {
        (!self.is_alive()).then_some(self.owner.as_str())
    }

    /// Forwards a session's command to the owner; false if the owner is known to be gone.
    pub async fn send(self: &Arc<Self>, command: Command) -> bool {
        if !self.is_alive() {
            return false;
        }
        match command {
            Command::Write { tx, author, outbox } => self.forward(&Request::Write { tx, author }, outbox).await,
            Command::GetRecords { user, ids, outbox } => self.forward(&Request::GetRecords { user, ids }, outbox).await,
            Command::Subscribe { user, since, outbox, join_as_editor } => {
                self.subscribe(user, since, outbox, join_as_editor).await;
            }
            Command::Unsubscribe { conn } => {
                self.unsubscribe(conn);
                let gone =
                    Request::Presence { conn: conn.0, user: UserId::from_u128(0), name: String::new(), presence: None };
                self.cluster.tell(self.project, &gone).await;
            }
            Command::Presence { conn, user, name, presence } => {
                let here = Request::Presence { conn: conn.0, user, name, presence: Some(presence) };
                self.cluster.tell(self.project, &here).await;
            }
            // Commands of the owner's own making do not come this way.
            Command::Poke { .. }
            | Command::LeaseLost
            | Command::CatchUp { .. }
            | Command::Delta { .. }
            | Command::RemotePresence { .. } => {}
        }
        true
    }

    /// Sends `request` and passes the owner's answer to `outbox`; a gone owner moves the
    /// session on.
    async fn forward(self: &Arc<Self>, request: &Request, outbox: Outbox) {
        let answer = self.cluster.request(self.project, request).await;
        let this = self.clone();
        tokio::spawn(async move {
            match answer.await {
                Ok(answer) => answer.pass_to(&outbox),
                Err(unanswered) => {
                    this.unanswered(unanswered, &outbox).await;
                }
            }
        });
    }

    /// Tells a session its request went unanswered. With nobody answering, the request never
    /// reached an owner: the session moves on (its client reconnects and sends again, in
    /// order), and if the owner is really gone, everyone here moves on.
    async fn unanswered(&self, unanswered: Unanswered, outbox: &Outbox) {
        let message = match &unanswered {
            Unanswered::NoOwner => "the project's server is gone; reconnect and retry".to_owned(),
            Unanswered::Failed(reason) => format!("the project's server could not be reached ({reason}); retry"),
        };
        match unanswered {
            Unanswered::Failed(_) => outbox.retry_later(&message),
            Unanswered::NoOwner => {
                outbox.send(&ServerMsg::Error { code: ErrorCode::Internal, message });
                tracing::info!(project = %self.project, owner = %self.owner, "the project's server did not answer; moving the session on");
                outbox.moved();
                // The next request asks the database again who serves the project (and takes it
                // once the silent owner's lease has run out); what this one relays goes on until
                // the owner is known to be gone.
                self.alive.store(false, Ordering::Relaxed);
                if self.gone().await {
                    self.owner_gone();
                }
            }
        }
    }

    /// Whether nobody answers for the project, asked a few times over a second: just after
    /// NATS comes back, the owner may not have resubscribed yet.
    async fn gone(&self) -> bool {
        for attempt in 0..GONE_ASKS {
            if attempt > 0 {
                tokio::time::sleep(GONE_SPACING).await;
            }
            match self.cluster.ping(self.project).await {
                Err(Unanswered::NoOwner) => continue,
                Ok(()) | Err(Unanswered::Failed(_)) => return false,
            }
        }
        true
    }

    /// The owner stopped answering: every relayed session moves on, and this handle is done.
    fn owner_gone(&self) {
        self.alive.store(false, Ordering::Relaxed);
        tracing::info!(project = %self.project, "the project's server is gone; moving its relayed clients on");
        if let Some(relay) = self.relay.lock().ok().and_then(|mut relay| relay.take()) {
            relay.task.abort();
            if let Ok(mut subscribers) = relay.subscribers.lock() {
                subscribers.list.drain(..).for_each(|subscriber| subscriber.outbox.moved());
            }
        }
    }

    async fn subscribe(self: &Arc<Self>, user: UserId, since: Option<Seq>, outbox: Outbox, join_as_editor: bool) {
        // Listening before asking, so no bump falls between the catch-up and the relay.
        let subscribers = match self.relay().await {
            Ok(subscribers) => subscribers,
            Err(error) => {
                outbox.retry_later(&format!("{error}; retry"));
                return;
            }
        };
        // In the list from now, holding what is published until its catch-up has arrived.
        let conn = outbox.conn();
        if let Ok(mut subscribers) = subscribers.lock() {
            subscribers.list.retain(|s| s.outbox.conn() != conn);
            let waiting = Some(Vec::new());
            subscribers.list.push(RelayedTo { user, outbox: outbox.clone(), from: Seq(0), waiting });
        }
        let answer = self.cluster.request(self.project, &Request::Subscribe { user, since, join_as_editor }).await;
        let this = self.clone();
        tokio::spawn(async move {
            let answer = match answer.await {
                Ok(answer) => answer,
                Err(unanswered) => {
                    if let Ok(mut subscribers) = subscribers.lock() {
                        subscribers.list.retain(|s| s.outbox.conn() != conn);
                    }
                    return this.unanswered(unanswered, &outbox).await;
                }
            };
            let frames = frames(&answer.frames);
            let subscribed =
                frames.first().and_then(|frame| match FrameCodec::new(HARD_MAX_FRAME).decode::<ServerMsg>(frame) {
                    Ok((ServerMsg::Subscribed { seq, .. }, _)) => Some(seq),
                    _ => None,
                });
            let Ok(mut subscribers) = subscribers.lock() else { return };
            let Some(index) = subscribers.list.iter().position(|s| s.outbox.conn() == conn) else { return };
            let mut subscriber = subscribers.list.swap_remove(index);
            answer.pass_to(&outbox);
            // Refused (not a member): not relayed to.
            let Some(seq) = subscribed else { return };
            subscriber.from = seq;
            // What was published while the catch-up was on its way, past what it covered.
            for (bump, frame) in subscriber.waiting.take().unwrap_or_default() {
                if bump.is_none_or(|bump| bump > subscriber.from) {
                    subscriber.outbox.send_frame(frame);
                    subscriber.from = bump.unwrap_or(subscriber.from).max(subscriber.from);
                }
            }
            subscribers.last = Some(subscribers.last.map_or(seq, |last| last.max(seq)));
            subscribers.list.push(subscriber);
        });
    }

    fn unsubscribe(&self, conn: ConnId) {
        let Ok(mut relay) = self.relay.lock() else { return };
        let empty = relay.as_ref().is_some_and(|relay| {
            relay.subscribers.lock().map_or(true, |mut subscribers| {
                subscribers.list.retain(|s| s.outbox.conn() != conn);
                subscribers.list.is_empty()
            })
        });
        // Nobody here watches the project any more: stop listening to it.
        if empty && let Some(relay) = relay.take() {
            relay.task.abort();
        }
    }

    /// The relay, started (and listening) if it was not.
    async fn relay(self: &Arc<Self>) -> Result<Arc<Mutex<Subscribers>>, Error> {
        if let Some(relay) = self.relay.lock().ok().and_then(|relay| relay.as_ref().map(|r| r.subscribers.clone())) {
            return Ok(relay);
        }
        let published = self
            .cluster
            .client
            .subscribe(bump_subject(self.project))
            .await
            .map_err(|error| Error::Connection(format!("NATS: {error}")))?;
        // The subscription is in place at the server before the catch-up is asked for.
        self.cluster.client.flush().await.map_err(|error| Error::Connection(format!("NATS: {error}")))?;
        let subscribers = Arc::new(Mutex::new(Subscribers::default()));
        let task = tokio::spawn(relay(self.clone(), published, subscribers.clone()));
        let mut relay = self.relay.lock().map_err(|_| Error::Connection("relay poisoned".into()))?;
        match relay.as_ref() {
            // Another session started one meanwhile: use it.
            Some(existing) => {
                task.abort();
                Ok(existing.subscribers.clone())
            }
            None => {
                *relay = Some(Relay { subscribers: subscribers.clone(), task });
                Ok(subscribers)
            }
        }
    }

    /// Asks the owner for every record changed since `since`, as one bump.
    async fn delta(&self, since: Seq) -> Result<Option<(Seq, Frame)>, Unanswered> {
        let answer = self.cluster.request(self.project, &Request::Delta { since }).await.await?;
        Ok(frames(&answer.frames).into_iter().find_map(|frame| {
            match FrameCodec::new(HARD_MAX_FRAME).decode::<ServerMsg>(&frame) {
                Ok((ServerMsg::Bump(bump), _)) => Some((bump.seq, frame)),
                _ => None,
            }
        }))
    }
}

/// Passes what the owner publishes to this process's subscribers, catching up through the
/// owner after a gap or a NATS reconnection, and checking the owner is there.
async fn relay(
    project: Arc<RemoteProject>,
    mut published: async_nats::Subscriber,
    subscribers: Arc<Mutex<Subscribers>>,
) {
    let mut reconnects = project.cluster.reconnects.clone();
    reconnects.mark_unchanged();
    let mut ping = tokio::time::interval(project.cluster.ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            message = published.next() => {
                let Some(message) = message else { return };
                let item = match decode_value::<Published>(&message.payload) {
                    Ok(item) => item,
                    Err(error) => {
                        tracing::warn!(%error, "a published frame does not decode");
                        continue;
                    }
                };
                let last = subscribers.lock().ok().and_then(|s| s.last);
                match (&item, last) {
                    (Published::Bump { seq, .. }, Some(last)) if seq.0 > last.0 + 1 => {
                        tracing::info!(from = last.0, to = seq.0, "bumps were lost on the way; catching up");
                        if !catch_up(&project, &subscribers, last).await {
                            return;
                        }
                    }
                    (Published::Poke { seq }, Some(last)) if *seq > last => {
                        if !catch_up(&project, &subscribers, last).await {
                            return;
                        }
                        continue;
                    }
                    _ => {}
                }
                pass_on(&subscribers, item);
            }
            changed = reconnects.changed() => {
                if changed.is_err() {
                    return;
                }
                let last = subscribers.lock().ok().and_then(|s| s.last);
                if let Some(last) = last && !catch_up(&project, &subscribers, last).await {
                    return;
                }
            }
            _ = ping.tick() => {
                if project.gone().await {
                    project.owner_gone();
                    return;
                }
            }
        }
    }
}

/// Catches the subscribers up from `since` through the owner, asking again while it does not
/// answer (NATS just came back) until it answers or is gone; false once it is gone.
async fn catch_up(project: &RemoteProject, subscribers: &Mutex<Subscribers>, since: Seq) -> bool {
    loop {
        match project.delta(since).await {
            Ok(Some((seq, frame))) => {
                pass_on(subscribers, Published::Bump { seq, frame: frame.to_vec() });
                return true;
            }
            Ok(None) => return true,
            Err(Unanswered::NoOwner) if project.gone().await => {
                project.owner_gone();
                return false;
            }
            Err(unanswered) => {
                tracing::info!(?unanswered, "could not catch up yet; asking again");
                tokio::time::sleep(GONE_SPACING).await;
            }
        }
    }
}

/// Passes one published item to the subscribers it is for; a subscriber that overflows (or is
/// no longer a member) is dropped.
fn pass_on(subscribers: &Mutex<Subscribers>, item: Published) {
    let Ok(mut subscribers) = subscribers.lock() else { return };
    match item {
        Published::Bump { seq, frame } => {
            let frame = Frame::from(frame);
            subscribers.list.retain_mut(|s| match &mut s.waiting {
                Some(waiting) => {
                    waiting.push((Some(seq), frame.clone()));
                    true
                }
                None if s.from >= seq => true,
                None => {
                    s.from = seq;
                    s.outbox.send_frame(frame.clone())
                }
            });
            subscribers.last = Some(subscribers.last.map_or(seq, |last| last.max(seq)));
        }
        Published::Presence { from, frame } => {
            let frame = Frame::from(frame);
            subscribers.list.retain_mut(|s| match &mut s.waiting {
                _ if s.outbox.conn().0 == from => true,
                Some(waiting) => {
                    waiting.push((None, frame.clone()));
                    true
                }
                None => s.outbox.send_frame(frame.clone()),
            });
        }
        // Handled by the relay before it gets here.
        Published::Poke { .. } => {}
        Published::Members(members) => {
            subscribers.list.retain(|subscriber| {
                let member = members.contains(&subscriber.user);
                if !member {
                    let message = "you are no longer a member of this project".to_owned();
                    subscriber.outbox.send(&ServerMsg::Error { code: ErrorCode::Denied, message });
                }
                member
            });
        }
    }
}
