//! How a client reaches an authority.
//!
//! A [`Transport`] opens a logged-in [`Link`]: two channels, one for messages to the authority
//! and one for what comes back, each served by a task of the transport's own. A client's sync
//! loop sees only the channels, so it never cancels a half-read frame, and every transport
//! (QUIC natively, WebTransport in the browser, an in-memory pipe in tests) fits behind the same
//! trait. Files move on connections of their own: a download into a [`Sink`], an upload from a
//! [`Source`], so nothing here needs a file system.
//!
//! [`QuicTransport`] (feature `quic`) is the native one, over [`crate::remote`].

use std::future::Future;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ensemble_protocol::transfer::TransferRequest;
use ensemble_protocol::{AssetId, ClientMsg, ContentHash, ProjectId, ServerMsg, UserId};
use tokio::sync::{mpsc, oneshot};

use crate::{Error, MaybeSend, MaybeSync};

/// What a page needs to reach the authority that served it (`/ensemble.json`): its WebTransport
/// endpoint on the page's own host, and the certificate hashes to pin.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageConfig {
    /// The UDP port of the WebTransport endpoint.
    pub port: u16,
    /// The endpoint's path.
    pub path: String,
    /// SHA-256 hashes of the certificates to pin, lowercase hex, the current one first.
    pub certificate_hashes: Vec<String>,
}

impl PageConfig {
    /// The configuration for an endpoint at `port` and `path`, pinning `hashes`.
    pub fn new(port: u16, path: &str, hashes: &[crate::tls::Fingerprint]) -> Self {
        let hex = |hash: &crate::tls::Fingerprint| hash.0.iter().map(|byte| format!("{byte:02x}")).collect();
        PageConfig { port, path: path.to_owned(), certificate_hashes: hashes.iter().map(hex).collect() }
    }

    /// The endpoint's URL on `host`.
    pub fn url(&self, host: &str) -> String {
        format!("https://{host}:{}{}", self.port, self.path)
    }

    /// The hashes, parsed.
    pub fn hashes(&self) -> Result<Vec<crate::tls::Fingerprint>, Error> {
        self.certificate_hashes.iter().map(|hash| crate::tls::Fingerprint::parse(hash)).collect()
    }
}

/// Who we are to the authority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password.
    Password {
        /// The user.
        user: String,
        /// Their password.
        password: String,
    },
    /// A display name on an open authority (solo mode, a LAN session).
    Open {
        /// The name collaborators see.
        display_name: String,
        /// The join code of the LAN jam whose authority this is, when it is another machine's.
        join_code: Option<String>,
    },
}

/// A logged-in connection, as two channels.
#[derive(Debug)]
pub struct Link {
    /// Who we are logged in as.
    pub user: UserId,
    /// Our display name.
    pub name: String,
    /// Messages to send, in order.
    pub outgoing: mpsc::Sender<ClientMsg>,
    /// Messages received, in order; an `Err` says why the connection ended, and nothing follows.
    pub incoming: mpsc::Receiver<Result<ServerMsg, String>>,
    /// Fires once everything sent has gone and the authority was told goodbye (or the
    /// connection is gone).
    pub closed: Option<oneshot::Receiver<()>>,
}

/// How long a closing client waits for the authority to hear its goodbye.
const GOODBYE: Duration = Duration::from_secs(2);

impl Link {
    /// Sends what is queued and closes the connection politely, so the authority knows at once
    /// that this session left (rather than when the connection times out).
    pub async fn close(self) {
        let Link { outgoing, closed, .. } = self;
        drop(outgoing);
        if let Some(closed) = closed {
            let _ = crate::rt::timeout(GOODBYE, closed).await;
        }
    }
}

/// Where a download's bytes go: a file natively ([`FileSink`]), memory (`Vec<u8>`) or the
/// browser's storage. A download resumes after what the sink already holds.
pub trait Sink: MaybeSend {
    /// Bytes already held from an earlier attempt.
    fn held(&mut self) -> std::io::Result<u64>;
    /// Keeps the first `len` bytes and drops the rest (the authority resumes from there).
    fn keep(&mut self, len: u64) -> std::io::Result<()>;
    /// Appends bytes.
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Makes everything appended durable and returns the hash of all the bytes held.
    fn hash(&mut self) -> std::io::Result<ContentHash>;
}

impl Sink for Vec<u8> {
    fn held(&mut self) -> std::io::Result<u64> {
        Ok(self.len() as u64)
    }

    fn keep(&mut self, len: u64) -> std::io::Result<()> {
        self.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }

    fn hash(&mut self) -> std::io::Result<ContentHash> {
        crate::hash::hash_reader(self.as_slice())
    }
}

/// A download into a file, which may hold the start of an earlier attempt.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
}

impl FileSink {
    /// The file at `path`, made if missing; what it holds counts as downloaded.
    pub fn open(path: &Path) -> std::io::Result<FileSink> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FileSink { path: path.to_owned(), file: std::io::BufWriter::with_capacity(1 << 20, file) })
    }
}

impl Sink for FileSink {
    fn held(&mut self) -> std::io::Result<u64> {
        self.file.flush()?;
        Ok(self.file.get_ref().metadata()?.len())
    }

    fn keep(&mut self, len: u64) -> std::io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().set_len(len)
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)
    }

    fn hash(&mut self) -> std::io::Result<ContentHash> {
        self.file.flush()?;
        self.file.get_ref().sync_data()?;
        crate::hash::hash_file(&self.path)
    }
}

/// An upload's bytes: a file natively, a picked file's bytes (`Cursor<Vec<u8>>`) in the browser.
pub trait Source: Read + Seek + MaybeSend + 'static {}

impl<T: Read + Seek + MaybeSend + 'static> Source for T {}

/// A way to reach an authority.
pub trait Transport: Clone + MaybeSend + MaybeSync + 'static {
    /// Connects and logs in. [`Error::Denied`] means retrying will not help.
    fn connect(&mut self) -> impl Future<Output = Result<Link, Error>> + MaybeSend;

    /// Downloads what `request` names into `into` (resuming after what it holds) on a
    /// connection of its own, so bulk bytes never wait behind edits or hold them up.
    fn download(
        &self,
        request: TransferRequest,
        into: &mut dyn Sink,
    ) -> impl Future<Output = Result<(), Error>> + MaybeSend;

    /// Uploads the audio in `source`, whose blake3 is `hash`, into `project` as `name` on a
    /// connection of its own, telling `progress` the bytes sent and the size as it goes; the
    /// authority checks it, stores it and makes its asset record, whose id this returns.
    fn upload(
        &self,
        project: ProjectId,
        source: Box<dyn Source>,
        name: &str,
        hash: ContentHash,
        progress: impl FnMut(u64, u64) + MaybeSend + 'static,
    ) -> impl Future<Output = Result<AssetId, Error>> + MaybeSend;
}

/// The sending half of a session, as a [`Link`] drives it.
pub trait SendHalf: MaybeSend + 'static {
    /// Sends one message; false when the connection is gone.
    fn send(&mut self, message: &ClientMsg) -> impl Future<Output = bool> + MaybeSend;
    /// Says goodbye and closes the connection.
    fn goodbye(self) -> impl Future<Output = ()> + MaybeSend;
}

/// The receiving half of a session, as a [`Link`] drives it.
pub trait RecvHalf: MaybeSend + 'static {
    /// The next message, or why the connection ended.
    fn recv(&mut self) -> impl Future<Output = Result<ServerMsg, String>> + MaybeSend;
}

/// Turns a logged-in session's halves into a [`Link`], each half driven by a task of its own.
/// Every transport builds its link with this, so they all behave alike at the edges: order,
/// the error that ends `incoming`, the goodbye once `outgoing` closes.
pub fn link(user: UserId, name: String, mut sender: impl SendHalf, mut receiver: impl RecvHalf) -> Link {
    let (outgoing, mut to_send) = mpsc::channel::<ClientMsg>(LINK_CAPACITY);
    let (received, incoming) = mpsc::channel(LINK_CAPACITY);
    let (done, closed) = oneshot::channel();
    crate::rt::spawn(async move {
        while let Some(message) = to_send.recv().await {
            if !sender.send(&message).await {
                let _ = done.send(());
                return;
            }
        }
        sender.goodbye().await;
        let _ = done.send(());
    });
    crate::rt::spawn(async move {
        loop {
            let message = receiver.recv().await;
            let ended = message.is_err();
            if received.send(message).await.is_err() || ended {
                return;
            }
        }
    });
    Link { user, name, outgoing, incoming, closed: Some(closed) }
}

/// Messages that may wait for the network before the client waits too.
const LINK_CAPACITY: usize = 1024;

#[cfg(target_arch = "wasm32")]
pub use sessions::{BrowserDial, BrowserTransport};
pub use sessions::{Dial, PipeDial, PipeTransport, SessionTransport};
#[cfg(feature = "quic")]
pub use sessions::{QuicDial, QuicTransport};

mod sessions {
    use std::fmt;
    use std::future::Future;
    use std::sync::Arc;

    use ensemble_protocol::transfer::TransferRequest;
    use ensemble_protocol::wire::SessionToken;
    use ensemble_protocol::{AssetId, ContentHash, PROTOCOL_VERSION, ProjectId};

    use super::{Credentials, Link, Sink, Source, Transport, link};
    use crate::conn::Connection;
    use crate::conn::pipe::Pipe;
    use crate::remote::{Login, Remote, Uploaded};
    use crate::{Error, MaybeSend, MaybeSync};

    /// How a [`SessionTransport`] reaches the authority anew: a connection, handshake done.
    pub trait Dial: Clone + fmt::Debug + MaybeSend + MaybeSync + 'static {
        /// The connections it makes.
        type Connection: Connection;
        /// A fresh connection that has said hello.
        fn dial(&self) -> impl Future<Output = Result<Remote<Self::Connection>, Error>> + MaybeSend;
    }

    /// An authority reached through [`Remote`] sessions over the connections `D` dials: the
    /// link, each download and each upload on a connection of its own, all logged in as the
    /// same user (with the session's token once the first login gave one).
    #[derive(Clone, Debug)]
    pub struct SessionTransport<D> {
        dial: D,
        credentials: Credentials,
        token: Option<SessionToken>,
    }

    /// An authority over QUIC.
    #[cfg(feature = "quic")]
    pub type QuicTransport = SessionTransport<QuicDial>;

    /// An authority in this process, over in-memory pipes.
    pub type PipeTransport = SessionTransport<PipeDial>;

    impl<D: Dial> SessionTransport<D> {
        /// An authority `dial` reaches, logged in with `credentials`.
        pub fn dialling(dial: D, credentials: Credentials) -> Self {
            SessionTransport { dial, credentials, token: None }
        }

        /// A connection logged in as our credentials (with the session's token, once there is
        /// one), for a transfer.
        async fn logged_in(&self) -> Result<Remote<D::Connection>, Error> {
            let mut remote = self.dial.dial().await?;
            match self.token {
                Some(token) => remote.resume(token).await,
                None => self.log_in(&mut remote).await,
            }?;
            Ok(remote)
        }

        /// Logs `remote` in with our credentials.
        async fn log_in(&self, remote: &mut Remote<D::Connection>) -> Result<Login, Error> {
            match &self.credentials {
                Credentials::Password { user, password } => remote.login(user, password).await,
                Credentials::Open { display_name, join_code } => {
                    remote.join_open(display_name, join_code.as_deref()).await
                }
            }
        }
    }

    #[cfg(feature = "quic")]
    impl QuicTransport {
        /// An authority at `addr`, whose certificate `trust` accepts for `server_name`.
        pub fn new(
            addr: std::net::SocketAddr,
            server_name: &str,
            trust: crate::tls::Trust,
            credentials: Credentials,
        ) -> Self {
            Self::dialling(QuicDial { addr, server_name: server_name.to_owned(), trust }, credentials)
        }
    }

    impl PipeTransport {
        /// An authority in this process, which `connect` opens a connection to.
        pub fn new(
            connect: impl Fn() -> Result<Pipe, Error> + Send + Sync + 'static,
            credentials: Credentials,
        ) -> Self {
            Self::dialling(PipeDial(Arc::new(connect)), credentials)
        }
    }

    /// Dials QUIC.
    #[cfg(feature = "quic")]
    #[derive(Clone, Debug)]
    pub struct QuicDial {
        addr: std::net::SocketAddr,
        server_name: String,
        trust: crate::tls::Trust,
    }

    #[cfg(feature = "quic")]
    impl Dial for QuicDial {
        type Connection = crate::conn::QuicConnection;

        async fn dial(&self) -> Result<Remote, Error> {
            Remote::connect(self.addr, &self.server_name, self.trust.clone()).await
        }
    }

    /// An authority over WebTransport, from a page.
    #[cfg(target_arch = "wasm32")]
    pub type BrowserTransport = SessionTransport<BrowserDial>;

    #[cfg(target_arch = "wasm32")]
    impl BrowserTransport {
        /// The authority whose WebTransport endpoint is `url` (`https://host:port/ensemble`),
        /// trusting the certificates with these hashes (as its `/ensemble.json` gives them).
        pub fn new(url: &str, hashes: Vec<crate::tls::Fingerprint>, credentials: Credentials) -> Self {
            Self::dialling(BrowserDial { url: url.to_owned(), hashes }, credentials)
        }
    }

    /// Dials WebTransport from a page.
    #[cfg(target_arch = "wasm32")]
    #[derive(Clone, Debug)]
    pub struct BrowserDial {
        url: String,
        hashes: Vec<crate::tls::Fingerprint>,
    }

    #[cfg(target_arch = "wasm32")]
    impl Dial for BrowserDial {
        type Connection = crate::conn::BrowserConnection;

        async fn dial(&self) -> Result<Remote<Self::Connection>, Error> {
            let connection = crate::conn::BrowserConnection::dial(&self.url, &self.hashes).await?;
            Remote::over(connection, PROTOCOL_VERSION).await
        }
    }

    /// Opens in-memory connections to an authority in this process.
    #[derive(Clone)]
    pub struct PipeDial(Arc<dyn Fn() -> Result<Pipe, Error> + Send + Sync>);

    impl fmt::Debug for PipeDial {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("PipeDial")
        }
    }

    impl Dial for PipeDial {
        type Connection = Pipe;

        async fn dial(&self) -> Result<Remote<Pipe>, Error> {
            Remote::over((self.0)()?, PROTOCOL_VERSION).await
        }
    }

    impl<D: Dial> Transport for SessionTransport<D> {
        async fn download(&self, request: TransferRequest, into: &mut dyn Sink) -> Result<(), Error> {
            let remote = self.logged_in().await?;
            let downloaded = remote.download_into(request, into).await;
            remote.close().await;
            downloaded.map(|_| ())
        }

        async fn upload(
            &self,
            project: ProjectId,
            source: Box<dyn Source>,
            name: &str,
            hash: ContentHash,
            progress: impl FnMut(u64, u64) + MaybeSend + 'static,
        ) -> Result<AssetId, Error> {
            let remote = self.logged_in().await?;
            let uploaded = remote.upload_from(project, source, name, hash, None, progress).await;
            remote.close().await;
            match uploaded? {
                Uploaded::Stored { asset, .. } => Ok(asset),
                Uploaded::Partial { held } => Err(Error::Connection(format!("the upload stopped after {held} bytes"))),
            }
        }

        async fn connect(&mut self) -> Result<Link, Error> {
            let mut remote = self.dial.dial().await?;
            // A token from an earlier login saves sending the password again; it may have expired.
            let mut login = match self.token {
                Some(token) => remote.resume(token).await,
                None => Err(Error::Denied("no session yet".into())),
            };
            if login.is_err() {
                if self.token.is_some() {
                    remote = self.dial.dial().await?;
                }
                login = self.log_in(&mut remote).await;
            }
            let login = login.map_err(|error| match error {
                denied @ Error::Denied(_) => denied,
                other => Error::Connection(other.to_string()),
            })?;
            self.token = Some(login.token);
            let (sender, receiver) = remote.split();
            Ok(link(login.user, login.name, sender, receiver))
        }
    }
}
