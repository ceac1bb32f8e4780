//! The client end of a connection to an authority.
//!
//! [`Remote`] runs the handshake on a [`Connection`] (QUIC, dialled by [`Remote::connect`], or
//! any other), and then sends and receives
//! messages in order. It reads only when asked ([`Remote::recv`]), so a caller that stops
//! reading really stops reading (the authority will then disconnect it as a slow consumer).
//! The request helpers ([`Remote::login`], [`Remote::subscribe`], [`Remote::write`]) wait for
//! their answer and keep everything that arrives meanwhile (bumps, mostly) for later `recv`s.

use std::collections::VecDeque;

use ensemble_protocol::frame::HARD_MAX_FRAME;
use ensemble_protocol::wire::{CatchUp, ErrorCode, SessionToken, close, version_advice};
use ensemble_protocol::{ClientMsg, FrameCodec, ProjectId, Role, Seq, ServerMsg, Transaction, UserId};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Error;
#[cfg(feature = "quic")]
use crate::conn::QuicConnection;
use crate::conn::{Closed, Connection, DefaultConnection};
use crate::framed::{ReadFailure, read_frame};
#[cfg(feature = "quic")]
use crate::tls::{Trust, client_config};
use crate::transport::{FileSink, RecvHalf, SendHalf, Sink};

/// A logged-in identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    /// The user.
    pub user: UserId,
    /// Their display name.
    pub name: String,
    /// A token to log in again without the password.
    pub token: SessionToken,
}

/// What a subscription starts with.
#[derive(Clone, Debug, PartialEq)]
pub struct Subscription {
    /// The project's seq when the subscription began.
    pub seq: Seq,
    /// Our role there.
    pub role: Role,
    /// What brings us to `seq`.
    pub catch_up: CatchUp,
}

/// A connection to an authority: its sending and receiving halves, used together.
#[derive(Debug)]
pub struct Remote<C: Connection = DefaultConnection> {
    sender: RemoteSender<C>,
    receiver: RemoteReceiver<C>,
    /// Whether the authority lets anyone join by display name.
    pub open: bool,
}

#[cfg(feature = "quic")]
impl Remote<QuicConnection> {
    /// Connects to `addr`, checks the certificate against `trust` (for the name
    /// `server_name`), and says hello.
    pub async fn connect(addr: std::net::SocketAddr, server_name: &str, trust: Trust) -> Result<Remote, Error> {
        Self::connect_with_version(addr, server_name, trust, ensemble_protocol::PROTOCOL_VERSION).await
    }

    /// [`Remote::connect`], claiming to speak `protocol_version`: for testing the handshake.
    pub async fn connect_with_version(
        addr: std::net::SocketAddr,
        server_name: &str,
        trust: Trust,
        protocol_version: u32,
    ) -> Result<Remote, Error> {
        let bind = if addr.is_ipv6() {
            std::net::SocketAddr::from(([0u16; 8], 0))
        } else {
            std::net::SocketAddr::from(([0, 0, 0, 0], 0))
        };
        let mut endpoint = quinn::Endpoint::client(bind)?;
        endpoint.set_default_client_config(client_config(trust)?);
        let connecting = endpoint.connect(addr, server_name).map_err(|e| Error::Connection(e.to_string()))?;
        let connection = connecting.await.map_err(|e| Error::Connection(e.to_string()))?;
        Remote::over(QuicConnection::dialled(connection, endpoint), protocol_version).await
    }
}

impl<C: Connection> Remote<C> {
    /// Says hello over `connection`, claiming to speak `protocol_version`.
    pub async fn over(connection: C, protocol_version: u32) -> Result<Remote<C>, Error> {
        let (send, recv) = connection.open_bi().await?;
        let receiver = RemoteReceiver {
            connection: connection.clone(),
            recv,
            downstream: FrameCodec::new(HARD_MAX_FRAME),
            waiting: VecDeque::new(),
        };
        let sender = RemoteSender { connection, send, upstream: FrameCodec::default(), buffer: Vec::new() };
        let mut remote = Remote { sender, receiver, open: false };
        let client = format!("ensemble {}", env!("CARGO_PKG_VERSION"));
        let welcome = match remote.send(&ClientMsg::Hello { protocol_version, client }).await {
            Ok(()) => remote.answer(|m| matches!(m, ServerMsg::Welcome { .. })).await,
            Err(error) => Err(error),
        };
        match welcome {
            Ok(ServerMsg::Welcome { open, .. }) => remote.open = open,
            Ok(other) => return Err(unexpected(other)),
            // Another version: retrying cannot help, so it is a refusal, said plainly.
            Err(error) => {
                return Err(match remote.sender.connection.closed() {
                    Some(Closed::Application { code, reason }) if code == close::PROTOCOL_VERSION => {
                        Error::Denied(version_advice(&reason, protocol_version))
                    }
                    _ => error,
                });
            }
        }
        Ok(remote)
    }

    /// Sends one message.
    pub async fn send(&mut self, message: &ClientMsg) -> Result<(), Error> {
        self.sender.send(message).await
    }

    /// Sends bytes as they are, framed or not (for testing how the authority takes bad input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.sender.send_raw(bytes).await
    }

    /// The next message from the authority.
    pub async fn recv(&mut self) -> Result<ServerMsg, Error> {
        self.receiver.recv().await
    }

    /// Waits for the first message `wanted` accepts, or an error; keeps the others for `recv`.
    async fn answer(&mut self, wanted: impl Fn(&ServerMsg) -> bool) -> Result<ServerMsg, Error> {
        let mut skipped = VecDeque::new();
        let result = loop {
            let message = match self.receiver.read().await {
                Ok(message) => message,
                Err(error) => break Err(error),
            };
            if wanted(&message) || matches!(message, ServerMsg::Error { .. }) {
                break Ok(message);
            }
            skipped.push_back(message);
        };
        self.receiver.waiting.extend(skipped);
        result
    }

    /// Logs in with a password.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<Login, Error> {
        self.send(&ClientMsg::Login { user: user.into(), password: password.into() }).await?;
        self.logged_in().await
    }

    /// Logs in with a token from an earlier login.
    pub async fn resume(&mut self, token: SessionToken) -> Result<Login, Error> {
        self.send(&ClientMsg::Resume { token }).await?;
        self.logged_in().await
    }

    /// Joins an open authority under a display name (with the join code of the jam it hosts,
    /// when it hosts one and this client is on another machine).
    pub async fn join_open(&mut self, display_name: &str, join_code: Option<&str>) -> Result<Login, Error> {
        let join_code = join_code.map(str::to_owned);
        self.send(&ClientMsg::JoinOpen { display_name: display_name.into(), join_code }).await?;
        self.logged_in().await
    }

    async fn logged_in(&mut self) -> Result<Login, Error> {
        match self.answer(|m| matches!(m, ServerMsg::LoggedIn { .. })).await? {
            ServerMsg::LoggedIn { user, name, token } => Ok(Login { user, name, token }),
            other => Err(refused(other)),
        }
    }

    /// Subscribes to a project and returns its catch-up.
    pub async fn subscribe(&mut self, project: ProjectId, since: Option<Seq>) -> Result<Subscription, Error> {
        self.send(&ClientMsg::Subscribe { project, since }).await?;
        match self.answer(|m| matches!(m, ServerMsg::Subscribed { project: p, .. } if *p == project)).await? {
            ServerMsg::Subscribed { seq, role, catch_up, .. } => Ok(Subscription { seq, role, catch_up }),
            other => Err(refused(other)),
        }
    }

    /// Writes a transaction and waits for its answer: `Committed` or `Rejected`.
    pub async fn write(&mut self, tx: &Transaction) -> Result<ServerMsg, Error> {
        self.send(&ClientMsg::Write(tx.clone())).await?;
        let id = tx.id;
        self.answer(|m| match m {
            ServerMsg::Committed { tx_id, .. } | ServerMsg::Rejected { tx_id, .. } => *tx_id == id,
            _ => false,
        })
        .await
    }

    /// Splits the connection into a half that sends and a half that receives, so each can run
    /// in its own task (a client's sync loop). Messages that arrived during a request stay first
    /// in line for the receiving half.
    pub fn split(self) -> (RemoteSender<C>, RemoteReceiver<C>) {
        (self.sender, self.receiver)
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        self.sender.close().await;
    }

    /// Why the connection ended, once it has (with the authority's reason when it gave one).
    pub fn closed(&self) -> Option<Error> {
        self.sender.connection.closed().map(|closed| closed.to_error())
    }

    /// The code the authority closed the connection with (`wire::close`), once it has:
    /// `MOVED` and `RETRY` mean the same address serves again on a new connection.
    pub fn close_code(&self) -> Option<u32> {
        match self.sender.connection.closed() {
            Some(Closed::Application { code, .. }) => Some(code),
            _ => None,
        }
    }
}

fn refused(message: ServerMsg) -> Error {
    match message {
        ServerMsg::Error { code: ErrorCode::BadCredentials, message } => Error::Denied(message),
        ServerMsg::Error { code: ErrorCode::Denied, message } => Error::Denied(message),
        ServerMsg::Error { code: ErrorCode::NoSuchProject, message } => Error::NotFound(message),
        other => unexpected(other),
    }
}

fn unexpected(message: ServerMsg) -> Error {
    Error::Connection(format!("unexpected answer from the authority: {message:?}"))
}

/// Describes how the connection ended, with the authority's reason when it gave one.
fn lost(connection: &impl Connection, fallback: String) -> Error {
    connection.closed().map_or(Error::Connection(fallback), |closed| closed.to_error())
}

/// The sending half of a [`Remote`].
#[derive(Debug)]
pub struct RemoteSender<C: Connection = DefaultConnection> {
    connection: C,
    send: C::SendStream,
    upstream: FrameCodec,
    buffer: Vec<u8>,
}

impl<C: Connection> RemoteSender<C> {
    /// Sends one message.
    pub async fn send(&mut self, message: &ClientMsg) -> Result<(), Error> {
        self.buffer.clear();
        self.upstream.encode(message, &mut self.buffer)?;
        let bytes = std::mem::take(&mut self.buffer);
        let sent = self.send_raw(&bytes).await;
        self.buffer = bytes;
        sent
    }

    /// Sends bytes as they are, framed or not.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.send.write_all(bytes).await.map_err(|error| lost(&self.connection, error.to_string()))
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        self.connection.close(ensemble_protocol::wire::close::NORMAL, b"bye");
        self.connection.wait_closed().await;
    }
}

impl<C: Connection> SendHalf for RemoteSender<C> {
    async fn send(&mut self, message: &ClientMsg) -> bool {
        RemoteSender::send(self, message).await.is_ok()
    }

    async fn goodbye(self) {
        self.close().await;
    }
}

/// The receiving half of a [`Remote`].
#[derive(Debug)]
pub struct RemoteReceiver<C: Connection = DefaultConnection> {
    connection: C,
    recv: C::RecvStream,
    downstream: FrameCodec,
    waiting: VecDeque<ServerMsg>,
}

impl<C: Connection> RemoteReceiver<C> {
    /// The next message from the authority. Not cancel-safe: a frame half read when the future
    /// is dropped is lost, so keep one task reading.
    pub async fn recv(&mut self) -> Result<ServerMsg, Error> {
        match self.waiting.pop_front() {
            Some(message) => Ok(message),
            None => self.read().await,
        }
    }

    /// The next frame off the stream, past any messages kept waiting.
    async fn read(&mut self) -> Result<ServerMsg, Error> {
        match read_frame(&mut self.recv, &self.downstream).await {
            Ok(Some(message)) => Ok(message),
            Ok(None) => Err(lost(&self.connection, "the authority finished the stream".into())),
            Err(ReadFailure::Frame(error)) => Err(error.into()),
            Err(ReadFailure::Connection(error)) => Err(lost(&self.connection, error.to_string())),
            Err(error @ ReadFailure::Stalled(_)) => Err(Error::Connection(error.to_string())),
        }
    }
}

/// How an upload ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uploaded {
    /// The file is stored and the project has this asset.
    Stored {
        /// The asset record.
        asset: ensemble_protocol::AssetId,
        /// True when the authority already had the file and nothing was sent.
        deduplicated: bool,
    },
    /// Stopped at `until` as asked; the authority holds this many bytes.
    Partial {
        /// Bytes the authority holds.
        held: u64,
    },
}

impl<C: Connection> Remote<C> {
    /// Opens a transfer stream (see [`ensemble_protocol::transfer`]).
    pub async fn open_transfer(&self) -> Result<(C::SendStream, C::RecvStream), Error> {
        self.sender.connection.open_bi().await
    }

    /// Uploads the file at `path` into `project` as `name`, resuming from what the authority
    /// already holds; stops after byte `until` when given (to spread an upload over sessions).
    pub async fn upload(
        &self,
        project: ProjectId,
        path: &std::path::Path,
        name: &str,
        until: Option<u64>,
    ) -> Result<Uploaded, Error> {
        let owned = path.to_path_buf();
        let hash = crate::rt::blocking(move || crate::hash::hash_file(&owned)).await?;
        self.upload_hashed(project, path, name, hash, until).await
    }

    /// [`Remote::upload`] of a file whose blake3 `hash` the caller has already computed (it
    /// is the file's identity, and a caller that keeps a copy needs it too).
    pub async fn upload_hashed(
        &self,
        project: ProjectId,
        path: &std::path::Path,
        name: &str,
        hash: ensemble_protocol::ContentHash,
        until: Option<u64>,
    ) -> Result<Uploaded, Error> {
        let file = std::fs::File::open(path)?;
        self.upload_from(project, file, name, hash, until, |_, _| {}).await
    }

    /// Uploads everything `source` holds (a file, or bytes in memory) as [`Remote::upload`]
    /// does, telling `progress` the bytes the authority holds and the size after every chunk.
    pub async fn upload_from(
        &self,
        project: ProjectId,
        mut source: impl crate::transport::Source,
        name: &str,
        hash: ensemble_protocol::ContentHash,
        until: Option<u64>,
        mut progress: impl FnMut(u64, u64) + crate::MaybeSend,
    ) -> Result<Uploaded, Error> {
        use ensemble_protocol::transfer::{TransferReply, TransferRequest};
        let size = source.seek(std::io::SeekFrom::End(0))?;
        let (mut send, mut recv) = self.open_transfer().await?;
        let codec = FrameCodec::default();
        let request = TransferRequest::Upload { project, name: name.to_owned(), hash, size };
        write(&mut send, &codec.encode_to_vec(&request)?).await?;
        let mut offset = match transfer_reply(&mut recv).await? {
            TransferReply::SendFrom { offset } => offset,
            TransferReply::Stored { asset, deduplicated } => return Ok(Uploaded::Stored { asset, deduplicated }),
            other => return Err(transfer_refused(other)),
        };
        // Chunks are read and checksummed ahead while this task sends the previous ones.
        let end = until.map_or(size, |until| until.min(size));
        let mut ready = read_ahead(source, offset, end);
        let mut framed = Vec::with_capacity(128);
        while let Some(next) = ready.recv().await {
            let (chunk, bytes) = next?;
            framed.clear();
            codec.encode(&chunk, &mut framed)?;
            write(&mut send, &framed).await?;
            write(&mut send, &bytes).await?;
            offset += u64::from(chunk.len);
            progress(offset, size);
        }
        if offset < size {
            let _ = send.shutdown().await;
            // Wait until the authority has read everything sent, so what it holds is known.
            let _ = recv.read_to_end(&mut Vec::new()).await;
            return Ok(Uploaded::Partial { held: offset });
        }
        match transfer_reply(&mut recv).await? {
            TransferReply::Stored { asset, deduplicated } => Ok(Uploaded::Stored { asset, deduplicated }),
            other => Err(transfer_refused(other)),
        }
    }

    /// Downloads what the authority serves for `request` into the file `to`, resuming from a
    /// partial `to` left by an earlier attempt, and checks the whole file's hash. Returns the hash.
    pub async fn download(
        &self,
        request: ensemble_protocol::transfer::TransferRequest,
        to: &std::path::Path,
    ) -> Result<ensemble_protocol::ContentHash, Error> {
        let mut sink = FileSink::open(to)?;
        self.download_into(request, &mut sink).await
    }

    /// Downloads what the authority serves for `request` into `sink`, resuming after what the
    /// sink already holds, and checks the hash of the whole. Returns the hash; a sink whose
    /// bytes hash wrong is emptied.
    pub async fn download_into(
        &self,
        request: ensemble_protocol::transfer::TransferRequest,
        sink: &mut (impl Sink + ?Sized),
    ) -> Result<ensemble_protocol::ContentHash, Error> {
        use ensemble_protocol::transfer::{TransferReply, TransferRequest};

        let held = sink.held()?;
        let request = match request {
            TransferRequest::Download { project, asset, what, .. } => {
                TransferRequest::Download { project, asset, what, offset: held }
            }
            TransferRequest::DownloadExport { job, index, .. } => {
                TransferRequest::DownloadExport { job, index, offset: held }
            }
            upload @ TransferRequest::Upload { .. } => {
                return Err(Error::Misuse(format!("not a download: {upload:?}")));
            }
        };
        let (mut send, mut recv) = self.open_transfer().await?;
        write(&mut send, &FrameCodec::default().encode_to_vec(&request)?).await?;
        let _ = send.shutdown().await;
        let (total, offset, hash) = match transfer_reply(&mut recv).await? {
            TransferReply::Sending { total, offset, hash, .. } => (total, offset, hash),
            other => return Err(transfer_refused(other)),
        };
        sink.keep(offset)?;
        let mut buffer = vec![0u8; 1 << 20];
        let mut at = offset;
        while at < total {
            let read = recv.read(&mut buffer).await.map_err(|e| Error::Connection(e.to_string()))?;
            if read == 0 {
                break;
            }
            sink.append(&buffer[..read])?;
            at += read as u64;
        }
        if at != total {
            return Err(Error::Connection(format!("the download stopped at {at} of {total} bytes")));
        }
        let found = sink.hash()?;
        if found != hash {
            sink.keep(0)?;
            return Err(Error::Corrupt(format!("the download hashes to {found}, not {hash}")));
        }
        Ok(hash)
    }
}

async fn write(send: &mut (impl tokio::io::AsyncWrite + Unpin), bytes: &[u8]) -> Result<(), Error> {
    send.write_all(bytes).await.map_err(|e| Error::Connection(e.to_string()))
}

/// Reads one reply frame from a transfer stream.
pub async fn transfer_reply(
    recv: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Result<ensemble_protocol::transfer::TransferReply, Error> {
    match read_frame(recv, &FrameCodec::default()).await {
        Ok(Some(reply)) => Ok(reply),
        Ok(None) => Err(Error::Connection("the authority ended the transfer without a reply".into())),
        Err(ReadFailure::Frame(error)) => Err(error.into()),
        Err(error @ (ReadFailure::Connection(_) | ReadFailure::Stalled(_))) => {
            Err(Error::Connection(error.to_string()))
        }
    }
}

fn transfer_refused(reply: ensemble_protocol::transfer::TransferReply) -> Error {
    match reply {
        ensemble_protocol::transfer::TransferReply::Refused(error) => Error::Refused(error),
        other => Error::Connection(format!("unexpected transfer reply: {other:?}")),
    }
}

impl<C: Connection> RecvHalf for RemoteReceiver<C> {
    async fn recv(&mut self) -> Result<ServerMsg, String> {
        RemoteReceiver::recv(self).await.map_err(|error| error.to_string())
    }
}

/// Chunks of `source` from `from` to `end`, each with its checksum, read ahead of the sender: on
/// a thread of tokio's blocking pool natively, and on the page's event loop in the browser
/// (where the bytes are already in memory).
fn read_ahead(
    mut source: impl crate::transport::Source,
    from: u64,
    end: u64,
) -> tokio::sync::mpsc::Receiver<std::io::Result<(ensemble_protocol::transfer::Chunk, Vec<u8>)>> {
    use ensemble_protocol::transfer::{Chunk, MAX_CHUNK};
    let (chunks, ready) = tokio::sync::mpsc::channel(4);
    // Every chunk from `from` to `end`, ending after the first failed read.
    let mut at = from;
    let mut failed = false;
    let reads = std::iter::from_fn(move || {
        if at >= end || failed {
            return None;
        }
        let read = (|| {
            if at == from {
                source.seek(std::io::SeekFrom::Start(from))?;
            }
            let len = (end - at).min(u64::from(MAX_CHUNK)) as usize;
            let mut bytes = vec![0u8; len];
            source.read_exact(&mut bytes)?;
            Ok((Chunk { offset: at, len: len as u32, crc: crc32fast::hash(&bytes) }, bytes))
        })();
        match &read {
            Ok((chunk, _)) => at += u64::from(chunk.len),
            Err(_) => failed = true,
        }
        Some(read)
    });
    #[cfg(not(target_arch = "wasm32"))]
    tokio::task::spawn_blocking(move || {
        for read in reads {
            if chunks.blocking_send(read).is_err() {
                return;
            }
        }
    });
    #[cfg(target_arch = "wasm32")]
    crate::rt::spawn(async move {
        for read in reads {
            if chunks.send(read).await.is_err() {
                return;
            }
        }
    });
    ready
}
