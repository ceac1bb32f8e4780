//! The QUIC endpoint and what happens on each connection.
//!
//! One UDP port serves native clients (ALPN `ensemble/1`) and browsers (ALPN `h3`: a
//! WebTransport session at [`WEBTRANSPORT_PATH`]); after the handshake both are the same kind
//! of session.
//!
//! A session is written once, against [`Connection`]: QUIC connections from the endpoint, and
//! in-memory ones a client in this process opens through [`InProcess`] (tests, tools), take the
//! same path.
//!
//! A client opens one bidirectional stream per connection. Its frames run a small state
//! machine: `Hello` (protocol versions must match), then a login (password, session token, or a
//! display name on an open authority), then any number of subscribes, writes and reads. The
//! authority's answers and pushes travel back on the same stream through the connection's
//! [`Outbox`], written by a task of its own so a slow network never blocks a project actor.
//!
//! Once logged in, a client may open more bidirectional streams, one per file transfer (see
//! [`crate::files`]); they run beside the main stream and never hold it up.
//!
//! Anything malformed (a frame that does not decode, is too large, or comes out of order)
//! closes that connection with [`close::PROTOCOL_ERROR`] and a reason; other connections never
//! notice. Client mistakes are logged at `debug`, so a client cannot flood the log.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ensemble_net::conn::pipe::{self, Pipe};
use ensemble_net::conn::{Connection, QuicConnection, WebTransportConnection};
use ensemble_net::framed::{ReadFailure, read_frame_within};
use ensemble_net::tls::Fingerprint;
use ensemble_protocol::jam::JoinCode;
use ensemble_protocol::wire::Presence;
use ensemble_protocol::wire::{
    ErrorCode, JobInfo, JobKind, Rejection, check_protocol_version, close, version_mismatch,
};
use ensemble_protocol::{ClientMsg, FrameCodec, PROTOCOL_VERSION, ProjectId, ServerMsg, UserId};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::actor::{Closing, Command, ConnId, Outbox, OutboxFrames, ProjectHandle, Projects};
use crate::auth::{LoginGuard, LoginLimits};
use crate::cluster::Cluster;
use crate::files::{FileOptions, Library, Transfers};
use crate::jobs::{ExportJob, JobRunner};
use crate::leases::LeaseOptions;
use crate::store::{Store, UserRow};
use crate::tls::{Certificates, server_config};
use crate::{Error, auth};

/// How long a new connection has to open its stream, and then for each handshake step.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping server waits for its connections to close before it lets go of its
/// leases anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Failed logins allowed on one connection.
const MAX_LOGIN_FAILURES: u32 = 5;

/// How the authority serves.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The UDP address to listen on.
    pub listen: SocketAddr,
    /// Let anyone join with a display name as an editor (solo and LAN use).
    pub open: bool,
    /// The largest frame a client may send.
    pub max_frame: usize,
    /// Frames that may wait for a slow client before it is disconnected.
    pub outbox_capacity: usize,
    /// Bytes of frames that may wait for a slow client before it is disconnected.
    pub outbox_bytes: usize,
    /// Where audio files are stored and how jobs run; `None` refuses uploads and exports.
    pub files: Option<FileOptions>,
    /// A LAN jam's door: when set, an open authority lets only this machine (loopback) join by
    /// display name without the jam's current join code, and nobody else while no jam is hosted.
    pub door: Option<JamDoor>,
    /// How many password checks run at once and how many failed logins are allowed.
    pub logins: LoginLimits,
    /// How long a logged-in client has to finish a frame once it has sent its first byte.
    pub frame_deadline: Duration,
    /// This process's node id and lease time, for serving projects from a database several
    /// processes share (see [`crate::leases`]).
    pub leases: LeaseOptions,
    /// The NATS server through which the processes sharing a database reach one another's
    /// projects (see [`crate::cluster`]); without one, a project another process serves is
    /// refused as served elsewhere.
    pub nats: Option<String>,
}

/// The join code of the jam an embedded authority hosts, if any; shared with whoever hosts it,
/// who changes it while the authority runs.
#[derive(Clone, Debug, Default)]
pub struct JamDoor(Arc<std::sync::RwLock<Option<JoinCode>>>);

impl JamDoor {
    /// A closed door: only this machine may join.
    pub fn new() -> JamDoor {
        JamDoor::default()
    }

    /// Opens the door to `code` (a new jam), or closes it (`None`: the jam ended).
    pub fn set(&self, code: Option<JoinCode>) {
        if let Ok(mut current) = self.0.write() {
            *current = code;
        }
    }

    /// The current code.
    pub fn code(&self) -> Option<JoinCode> {
        self.0.read().ok().and_then(|code| code.clone())
    }

    /// Whether someone connecting from `loopback` (or not) with `typed` may come in.
    fn admits(&self, loopback: bool, typed: Option<&str>) -> bool {
        if loopback {
            return true;
        }
        let (Some(code), Some(typed)) = (self.code(), typed) else { return false };
        // Compared whole, so how much of a guess was right does not show in the time taken.
        JoinCode::parse(typed).is_ok_and(|typed| {
            let (a, b) = (typed.as_str().as_bytes(), code.as_str().as_bytes());
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
        })
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            listen: SocketAddr::from(([0, 0, 0, 0], 4433)),
            open: false,
            max_frame: ensemble_protocol::frame::DEFAULT_MAX_FRAME,
            outbox_capacity: 1024,
            outbox_bytes: crate::actor::OUTBOX_BYTES,
            files: None,
            door: None,
            logins: LoginLimits::default(),
            frame_deadline: Duration::from_secs(30),
            leases: LeaseOptions::default(),
            nats: None,
        }
    }
}

struct Shared<S> {
    store: S,
    logins: LoginGuard,
    projects: Arc<Projects<S>>,
    options: ServerOptions,
    library: Option<Library>,
    jobs: JobRunner,
}

/// A running authority.
#[derive(Debug)]
pub struct Server {
    endpoint: quinn::Endpoint,
    certificates: Certificates,
    rotation: JoinHandle<()>,
    accept: JoinHandle<()>,
    workers: Option<JoinHandle<()>>,
    /// Hears commits made outside this process (Postgres).
    pokes: Option<JoinHandle<()>>,
    /// Renews the leases of the projects this process serves.
    leases: JoinHandle<()>,
    projects: Arc<dyn ReleaseLeases>,
    in_process: InProcess,
}

/// Opens in-memory connections to a running authority for clients in this process (tests,
/// tools): the same sessions as over QUIC, without sockets or TLS.
#[derive(Clone, Debug)]
pub struct InProcess {
    accept: mpsc::UnboundedSender<Pipe>,
    open: Arc<Mutex<Vec<Pipe>>>,
}

impl InProcess {
    /// A new connection, served like any other.
    pub fn connect(&self) -> Result<Pipe, ensemble_net::Error> {
        let (client, server) = pipe::pair();
        let stopped = || ensemble_net::Error::Connection("the authority has stopped".into());
        self.accept.send(server.clone()).map_err(|_| stopped())?;
        let mut open = self.open.lock().map_err(|_| stopped())?;
        open.retain(Pipe::is_alive);
        open.push(server);
        Ok(client)
    }

    fn close_all(&self, reason: &[u8]) {
        for pipe in self.open.lock().map(|mut open| std::mem::take(&mut *open)).unwrap_or_default() {
            pipe.close(close::SHUTDOWN, reason);
        }
    }
}

impl Server {
    /// Binds the endpoint and starts accepting connections.
    pub async fn start<S: Store>(
        store: S,
        certificates: Certificates,
        options: ServerOptions,
    ) -> Result<Server, Error> {
        let endpoint = quinn::Endpoint::server(server_config(&certificates)?, options.listen)?;
        let rotation = tokio::spawn(rotate_when_due(certificates.clone()));
        let projects = Arc::new(match &options.nats {
            Some(url) => {
                // Relays check their owners once per lease time.
                let cluster = Cluster::connect(url, &options.leases.node, options.leases.ttl).await?;
                Projects::in_cluster(store.clone(), options.leases.clone(), cluster)
            }
            None => Projects::with_leases(store.clone(), options.leases.clone()),
        });
        let pokes = store.poke_source().map(|source| tokio::spawn(crate::pokes::listen(source, projects.clone())));
        let leases = tokio::spawn(crate::leases::keep(projects.clone()));
        let releases: Arc<dyn ReleaseLeases> = projects.clone();
        let library = options.files.as_ref().map(|files| Library::open(&files.dir)).transpose()?;
        let jobs = JobRunner::new();
        let workers = match (&library, &options.files) {
            (Some(library), Some(files)) if files.workers > 0 => {
                Some(jobs.start(store.clone(), projects.clone(), library.clone(), files.clone()))
            }
            _ => None,
        };
        let logins = LoginGuard::new(options.logins.clone());
        let shared = Arc::new(Shared { projects, store, logins, options, library, jobs });
        let accepting = endpoint.clone();
        let (local, mut locals) = mpsc::unbounded_channel();
        let in_process = InProcess { accept: local, open: Arc::default() };
        let accept = tokio::spawn(async move {
            loop {
                tokio::select! {
                    incoming = accepting.accept() => match incoming {
                        Some(incoming) => tokio::spawn(serve_quic(incoming, shared.clone())),
                        None => return,
                    },
                    Some(pipe) = locals.recv() => tokio::spawn(serve_connection(pipe, shared.clone())),
                };
            }
        });
        Ok(Server { endpoint, certificates, rotation, accept, workers, pokes, leases, projects: releases, in_process })
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.endpoint.local_addr()?)
    }

    /// The hash of the certificate served now.
    pub fn fingerprint(&self) -> Fingerprint {
        self.certificates.current()
    }

    /// The hashes clients pin: the current certificate's, then (self-signed) the next one's.
    pub fn certificate_hashes(&self) -> Vec<Fingerprint> {
        self.certificates.hashes()
    }

    /// What it presents (to rotate by hand, or to read the hashes later).
    pub fn certificates(&self) -> &Certificates {
        &self.certificates
    }

    /// Opens in-memory connections to this authority (see [`InProcess`]).
    pub fn in_process(&self) -> InProcess {
        self.in_process.clone()
    }

    /// Closes every connection and stops accepting, then lets go of the leases of the projects
    /// it served, so another process can take them at once.
    pub async fn shutdown(self) {
        let reason = b"the authority is shutting down";
        self.in_process.close_all(reason);
        self.endpoint.close(close::SHUTDOWN.into(), reason);
        // Bounded: a peer that never acknowledges the close must not hold the leases.
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, self.endpoint.wait_idle()).await;
        self.accept.abort();
        self.leases.abort();
        self.projects.release().await;
        self.rotation.abort();
        if let Some(workers) = self.workers {
            workers.abort();
        }
        if let Some(pokes) = self.pokes {
            pokes.abort();
        }
    }

    /// Runs until the endpoint is closed (or forever).
    pub async fn run(self) {
        let _ = self.accept.await;
    }
}

/// The part of [`Projects`] a stopping server needs, whatever its store.
trait ReleaseLeases: Send + Sync {
    fn release(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

impl std::fmt::Debug for dyn ReleaseLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Projects")
    }
}

impl<S: Store> ReleaseLeases for Projects<S> {
    fn release(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(self.release_leases())
    }
}

/// Why the authority closes a connection.
struct Close {
    code: u32,
    reason: String,
}

impl Close {
    fn protocol(reason: impl Into<String>) -> Self {
        Close { code: close::PROTOCOL_ERROR, reason: reason.into() }
    }
}

/// Rotates self-signed certificates whenever a rotation falls due (see [`crate::tls`]).
async fn rotate_when_due(certificates: Certificates) {
    while let Some(due) = certificates.rotation_due() {
        tokio::time::sleep(due).await;
        if let Err(error) = certificates.rotate() {
            // The current certificate stays valid for days: try again in an hour.
            tracing::error!(%error, "cannot rotate the certificates");
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
}

/// Where a browser opens its WebTransport session (`https://HOST:PORT/ensemble`).
pub const WEBTRANSPORT_PATH: &str = "/ensemble";

async fn serve_quic<S: Store>(incoming: quinn::Incoming, shared: Arc<Shared<S>>) {
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(error) => return tracing::debug!(%error, "handshake failed"),
    };
    let protocol = connection
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol);
    if protocol.as_deref() != Some(web_transport_quinn::ALPN.as_bytes()) {
        return serve_connection(QuicConnection::accepted(connection), shared).await;
    }
    // A browser: HTTP/3, then a WebTransport session at our path, then the same session.
    let peer = connection.remote_address();
    let accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let request = web_transport_quinn::Request::accept(connection).await.map_err(|error| error.to_string())?;
        if request.url.path() != WEBTRANSPORT_PATH {
            let path = request.url.path().to_owned();
            let _ = request.reject(http::StatusCode::NOT_FOUND).await;
            return Err(format!("no WebTransport endpoint at {path}"));
        }
        request.ok().await.map_err(|error| error.to_string())
    });
    match accepted.await {
        Ok(Ok(session)) => serve_connection(WebTransportConnection::accepted(session, peer), shared).await,
        Ok(Err(reason)) => tracing::debug!(%reason, "WebTransport session refused"),
        Err(_) => tracing::debug!("WebTransport handshake timed out"),
    }
}

async fn serve_connection<S: Store, C: Connection>(connection: C, shared: Arc<Shared<S>>) {
    let span = tracing::info_span!("conn", remote = %connection.peer_ip(), user = tracing::field::Empty);
    async move {
        tracing::debug!("connected");
        match run_session(&connection, &shared).await {
            Ok(()) => tracing::debug!("disconnected"),
            Err(Close { code, reason }) => {
                tracing::debug!(code, %reason, "closing connection");
                connection.close(code, reason.as_bytes());
            }
        }
    }
    .instrument(span)
    .await;
}

/// Accepts a logged-in connection's transfer streams; streams opened before the login are
/// refused.
async fn accept_transfers<S: Store, C: Connection>(
    connection: C,
    shared: Arc<Shared<S>>,
    user: watch::Receiver<Option<UserId>>,
) {
    while let Some((send, recv)) = connection.accept_bi().await {
        let logged_in = *user.borrow();
        let (Some(user), Some(library), Some(options)) = (logged_in, &shared.library, &shared.options.files) else {
            drop((send, recv));
            continue;
        };
        let (shared, library, options) = (shared.clone(), library.clone(), options.clone());
        tokio::spawn(async move {
            let transfers = Transfers {
                store: &shared.store,
                projects: &shared.projects,
                library: &library,
                options: &options,
                jobs: &shared.jobs,
            };
            transfers.serve(send, recv, user).await;
        });
    }
}

async fn run_session<S: Store, C: Connection>(connection: &C, shared: &Arc<Shared<S>>) -> Result<(), Close> {
    let accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, connection.accept_bi()).await;
    let Ok(Some((send, mut recv))) = accepted else {
        return Err(Close::protocol("no stream opened in time"));
    };
    let conn = ConnId::next();
    let (outbox, frames, closing) = Outbox::new(conn, shared.options.outbox_capacity, shared.options.outbox_bytes);
    tokio::spawn(write_frames(send, frames, closing, connection.clone()));
    let (user, logged_in) = watch::channel(None);
    tokio::spawn(accept_transfers(connection.clone(), shared.clone(), logged_in));
    let address = connection.peer_ip();
    let mut session = Session {
        phase: Phase::Hello,
        outbox,
        projects: HashMap::new(),
        presences: HashMap::new(),
        failures: 0,
        user,
        address,
    };
    let codec = FrameCodec::new(shared.options.max_frame);
    let result = loop {
        let read = read_frame_within::<ClientMsg>(&mut recv, &codec, Some(shared.options.frame_deadline));
        // Until it has logged in, a connection gets a deadline for each step.
        let read = if matches!(session.phase, Phase::Ready(_)) {
            read.await
        } else {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, read).await {
                Ok(read) => read,
                Err(_) => break Err(Close::protocol("no hello or login in time")),
            }
        };
        let message = match read {
            Ok(Some(message)) => message,
            Ok(None) => break Ok(()),
            Err(error @ (ReadFailure::Frame(_) | ReadFailure::Stalled(_))) => {
                break Err(Close::protocol(error.to_string()));
            }
            Err(ReadFailure::Connection(_)) => break Ok(()),
        };
        if let Err(close) = session.handle(message, shared).await {
            break Err(close);
        }
    };
    for handle in session.projects.values() {
        handle.send(Command::Unsubscribe { conn }).await;
    }
    result
}

/// The longest close reason sent, in bytes.
const MAX_CLOSE_REASON: usize = 512;

/// Writes queued frames to the stream; closes the connection when asked to (its outbox
/// overflowed, its project moved to another process, or what it sent could not be saved).
async fn write_frames(
    mut send: impl AsyncWrite + Unpin,
    mut frames: OutboxFrames,
    closing: Arc<Closing>,
    connection: impl Connection,
) {
    let close = |(code, reason): (u32, Option<String>)| {
        let default: &str = match code {
            close::MOVED => "this project is now served by another authority process: reconnect",
            close::RETRY => "nothing was saved: reconnect and send it again",
            _ => "slow consumer: you fell too far behind the project's updates",
        };
        let mut reason = reason.unwrap_or_else(|| default.to_owned());
        // A close travels in one packet.
        if reason.len() > MAX_CLOSE_REASON {
            let mut end = MAX_CLOSE_REASON;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        tracing::debug!(code, %reason, "closing");
        connection.close(code, reason.as_bytes());
    };
    loop {
        let frame = tokio::select! {
            frame = frames.recv() => frame,
            code = closing.asked() => return close(code),
        };
        let Some(frame) = frame else {
            let _ = send.shutdown().await;
            return;
        };
        tokio::select! {
            written = send.write_all(&frame) => if written.is_err() { return },
            code = closing.asked() => return close(code),
        }
    }
}

/// The shortest time between two presence updates of one session reaching a project: a client
/// that sends more only replaces its own updates, never floods its collaborators.
const PRESENCE_INTERVAL: Duration = Duration::from_millis(50);

/// Passes a session's latest presence in one project to the project's actor, at most once per
/// [`PRESENCE_INTERVAL`], until the session ends.
async fn forward_presence(
    mut updates: watch::Receiver<Option<Presence>>,
    handle: ProjectHandle,
    conn: ConnId,
    user: UserId,
    name: String,
) {
    while updates.changed().await.is_ok() {
        let latest = updates.borrow_and_update().clone();
        if let Some(presence) = latest
            && !handle.send(Command::Presence { conn, user, name: name.clone(), presence }).await
        {
            return;
        }
        tokio::time::sleep(PRESENCE_INTERVAL).await;
    }
}

enum Phase {
    Hello,
    Login,
    Ready(UserRow),
}

struct Session {
    phase: Phase,
    outbox: Outbox,
    projects: HashMap<ProjectId, ProjectHandle>,
    failures: u32,
    /// The latest presence for each project, on its way to the project's actor.
    presences: HashMap<ProjectId, watch::Sender<Option<Presence>>>,
    /// Who is logged in, for the transfer streams.
    user: watch::Sender<Option<UserId>>,
    /// Where the client connects from.
    address: IpAddr,
}

/// The variant name of a client message, for errors.
fn kind(message: &ClientMsg) -> &'static str {
    match message {
        ClientMsg::Hello { .. } => "Hello",
        ClientMsg::Login { .. } => "Login",
        ClientMsg::Resume { .. } => "Resume",
        ClientMsg::JoinOpen { .. } => "JoinOpen",
        ClientMsg::Subscribe { .. } => "Subscribe",
        ClientMsg::Unsubscribe { .. } => "Unsubscribe",
        ClientMsg::Write(_) => "Write",
        ClientMsg::GetRecords { .. } => "GetRecords",
        ClientMsg::Export { .. } => "Export",
        ClientMsg::GetJob { .. } => "GetJob",
        ClientMsg::Presence { .. } => "Presence",
    }
}

impl Session {
    fn send(&self, message: &ServerMsg) {
        self.outbox.send(message);
    }

    fn internal(&self, error: &Error) {
        self.say_failed(error);
    }

    /// Tells the client a request failed (without details, unless it was only served
    /// elsewhere); what it was told.
    fn say_failed(&self, error: &Error) -> String {
        let message = match error {
            // Not a failure: the client retries, and finds the project once it is served here.
            Error::Elsewhere { .. } => {
                tracing::info!(%error, "request for a project served elsewhere");
                format!("{error}; retry")
            }
            Error::Database(_) => {
                tracing::error!(%error, "request failed");
                "the authority cannot reach its database; retry".into()
            }
            _ => {
                tracing::error!(%error, "request failed");
                "the authority failed; retry".into()
            }
        };
        self.send(&ServerMsg::Error { code: ErrorCode::Internal, message: message.clone() });
        message
    }

    /// A write or subscription whose project could not be opened: said, and the connection
    /// closed, so the client sends it again (in order) on the next one.
    fn unserved(&self, error: &Error) {
        let message = self.say_failed(error);
        match error {
            Error::Elsewhere { .. } => self.outbox.close(close::MOVED, Some(message)),
            _ => {
                let reason = format!("the authority could not open the project ({error}); nothing was saved");
                self.outbox.close(close::RETRY, Some(reason));
            }
        }
    }

    async fn project<S: Store>(&mut self, shared: &Shared<S>, id: ProjectId) -> Result<Option<ProjectHandle>, Error> {
        // An actor that stopped (its project moved to another process) is opened again.
        if let Some(handle) = self.projects.get(&id).filter(|handle| handle.is_running()) {
            return Ok(Some(handle.clone()));
        }
        let handle = shared.projects.open(id).await?;
        if let Some(handle) = &handle {
            self.projects.insert(id, handle.clone());
        }
        Ok(handle)
    }

    async fn handle<S: Store>(&mut self, message: ClientMsg, shared: &Shared<S>) -> Result<(), Close> {
        match (&self.phase, message) {
            (Phase::Hello, ClientMsg::Hello { protocol_version, client }) => {
                check_protocol_version(protocol_version).map_err(|_| Close {
                    code: close::PROTOCOL_VERSION,
                    reason: version_mismatch(PROTOCOL_VERSION, protocol_version),
                })?;
                tracing::debug!(%client, "hello");
                self.send(&ServerMsg::Welcome {
                    protocol_version: PROTOCOL_VERSION,
                    server: format!("ensemble-authority {}", env!("CARGO_PKG_VERSION")),
                    open: shared.options.open,
                });
                self.phase = Phase::Login;
                Ok(())
            }
            (Phase::Login, ClientMsg::Login { user, password }) => {
                let result = shared.logins.login(&shared.store, self.address, &user, &password).await;
                self.logged_in(result)
            }
            (Phase::Login, ClientMsg::Resume { token }) => {
                let result = auth::resume(&shared.store, &token).await.map(|user| user.map(|user| (user, token)));
                self.logged_in(result)
            }
            (Phase::Login, ClientMsg::JoinOpen { display_name, join_code }) => {
                if !shared.options.open {
                    let message = "this authority is not open: log in with a password".to_owned();
                    self.send(&ServerMsg::Error { code: ErrorCode::Denied, message });
                    return Ok(());
                }
                let door = shared.options.door.as_ref();
                if door.is_some_and(|door| !door.admits(self.address.is_loopback(), join_code.as_deref())) {
                    self.failures += 1;
                    if self.failures >= MAX_LOGIN_FAILURES {
                        return Err(Close::protocol("too many failed logins"));
                    }
                    let message = match shared.logins.failed_from(self.address) {
                        Ok(()) => "the jam's join code is needed, and this one is not it".to_owned(),
                        Err(error) => error.to_string(),
                    };
                    self.send(&ServerMsg::Error { code: ErrorCode::Denied, message });
                    return Ok(());
                }
                let result = auth::join_open(&shared.store, &display_name).await;
                self.logged_in(result)
            }
            (Phase::Ready(user), ClientMsg::Subscribe { project, since }) => {
                let user = user.id;
                match self.project(shared, project).await {
                    Ok(Some(handle)) => {
                        let join_as_editor = shared.options.open;
                        handle
                            .send(Command::Subscribe { user, since, outbox: self.outbox.clone(), join_as_editor })
                            .await;
                    }
                    Ok(None) => self.no_such_project(project),
                    Err(error) => self.unserved(&error),
                }
                Ok(())
            }
            (Phase::Ready(_), ClientMsg::Unsubscribe { project }) => {
                if let Some(handle) = self.projects.get(&project) {
                    handle.send(Command::Unsubscribe { conn: self.outbox.conn() }).await;
                }
                Ok(())
            }
            (Phase::Ready(user), ClientMsg::Write(tx)) => {
                let author = user.id;
                match self.project(shared, tx.project).await {
                    Ok(Some(handle)) => {
                        handle.send(Command::Write { tx, author, outbox: self.outbox.clone() }).await;
                    }
                    Ok(None) => self.send(&ServerMsg::Rejected { tx_id: tx.id, reason: Rejection::NoSuchProject }),
                    Err(error) => self.unserved(&error),
                }
                Ok(())
            }
            (Phase::Ready(user), ClientMsg::GetRecords { project, ids }) => {
                let user = user.id;
                match self.project(shared, project).await {
                    Ok(Some(handle)) => {
                        handle.send(Command::GetRecords { user, ids, outbox: self.outbox.clone() }).await;
                    }
                    Ok(None) => self.no_such_project(project),
                    Err(error) => self.internal(&error),
                }
                Ok(())
            }
            (Phase::Ready(user), ClientMsg::Export { project, export }) => {
                let user = user.id;
                match self.member_of(shared, project, user).await {
                    Ok(true) if shared.library.is_some() => {
                        match shared
                            .jobs
                            .enqueue(&shared.store, JobKind::Export, project, &ExportJob { request: export })
                            .await
                        {
                            Ok(job) => self.send(&ServerMsg::JobQueued { job }),
                            Err(error) => self.internal(&error),
                        }
                    }
                    Ok(true) => self.no_files(),
                    Ok(false) => self.no_such_project(project),
                    Err(error) => self.internal(&error),
                }
                Ok(())
            }
            (Phase::Ready(user), ClientMsg::GetJob { job }) => {
                let user = user.id;
                let row = match shared.store.job(job).await {
                    Ok(row) => row,
                    Err(error) => {
                        self.internal(&error);
                        return Ok(());
                    }
                };
                let visible = match &row {
                    Some(row) => self.member_of(shared, row.project, user).await.unwrap_or(false),
                    None => false,
                };
                match row.filter(|_| visible) {
                    Some(row) => self.send(&ServerMsg::Job(JobInfo {
                        id: row.id,
                        kind: row.kind,
                        project: row.project,
                        state: row.state,
                    })),
                    None => self
                        .send(&ServerMsg::Error { code: ErrorCode::NoSuchProject, message: format!("no job {job}") }),
                }
                Ok(())
            }
            (Phase::Ready(user), ClientMsg::Presence { project, presence }) => {
                // Only for a project this session has open; the actor checks it subscribes.
                if let Some(handle) = self.projects.get(&project) {
                    let latest = self.presences.entry(project).or_insert_with(|| {
                        let (latest, updates) = watch::channel(None);
                        let (conn, user, name) = (self.outbox.conn(), user.id, user.name.clone());
                        tokio::spawn(forward_presence(updates, handle.clone(), conn, user, name));
                        latest
                    });
                    latest.send_replace(Some(presence));
                }
                Ok(())
            }
            (_, message) => Err(Close::protocol(format!("{} is out of order at this point", kind(&message)))),
        }
    }

    /// Whether `user` is a member of `project` (false for a project that does not exist).
    async fn member_of<S: Store>(
        &mut self,
        shared: &Shared<S>,
        project: ProjectId,
        user: UserId,
    ) -> Result<bool, Error> {
        let loaded = shared.store.load_project(project).await?;
        Ok(loaded.is_some_and(|loaded| loaded.state.role_of(user).is_some()))
    }

    fn no_files(&self) {
        let message = "this authority stores no files".to_owned();
        self.send(&ServerMsg::Error { code: ErrorCode::Denied, message });
    }

    fn no_such_project(&self, project: ProjectId) {
        self.send(&ServerMsg::Error { code: ErrorCode::NoSuchProject, message: format!("no project {project}") });
    }

    fn logged_in(
        &mut self,
        result: Result<Option<(UserRow, ensemble_protocol::wire::SessionToken)>, Error>,
    ) -> Result<(), Close> {
        match result {
            Ok(Some((user, token))) => {
                // Everything this connection logs from now on says whose it is.
                tracing::Span::current().record("user", user.name.as_str());
                tracing::debug!("logged in");
                self.send(&ServerMsg::LoggedIn { user: user.id, name: user.name.clone(), token });
                self.user.send_replace(Some(user.id));
                self.phase = Phase::Ready(user);
                Ok(())
            }
            Ok(None) => {
                self.failures += 1;
                if self.failures >= MAX_LOGIN_FAILURES {
                    return Err(Close { code: close::TOO_MANY_FAILURES, reason: "too many failed logins".into() });
                }
                let message = "unknown user, wrong password, or expired session".to_owned();
                self.send(&ServerMsg::Error { code: ErrorCode::BadCredentials, message });
                Ok(())
            }
            Err(Error::Denied(message)) => {
                self.send(&ServerMsg::Error { code: ErrorCode::Denied, message });
                Ok(())
            }
            Err(error) => {
                self.internal(&error);
                Ok(())
            }
        }
    }
}
