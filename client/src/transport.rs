//! How the sync worker reaches an authority.
//!
//! A [`Transport`] opens a logged-in [`Link`]: two channels, one for messages to the authority
//! and one for what comes back, each served by a task of the transport's own. The worker sees
//! only the channels, so it never cancels a half-read frame, and another transport (WebTransport
//! in the browser) fits behind the same trait. [`QuicTransport`] is the native one, over
//! [`ensemble_authority::remote`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;

use ensemble_authority::remote::Remote;
use ensemble_authority::remote::Uploaded;
use ensemble_authority::tls::Trust;
use ensemble_protocol::transfer::TransferRequest;
use ensemble_protocol::wire::SessionToken;
use ensemble_protocol::{AssetId, ClientMsg, ContentHash, ProjectId, ServerMsg, UserId};
use tokio::sync::mpsc;

use crate::Error;

/// Messages that may wait for the network before the worker waits too.
const LINK_CAPACITY: usize = 1024;

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
    /// The task that sends `outgoing` and, once it closes, says goodbye to the authority.
    pub sender: Option<tokio::task::JoinHandle<()>>,
}

/// How long a closing client waits for the authority to hear its goodbye.
const GOODBYE: std::time::Duration = std::time::Duration::from_secs(2);

impl Link {
    /// Sends what is queued and closes the connection politely, so the authority knows at once
    /// that this session left (rather than when the connection times out).
    pub async fn close(self) {
        let Link { outgoing, sender, .. } = self;
        drop(outgoing);
        if let Some(sender) = sender {
            let _ = tokio::time::timeout(GOODBYE, sender).await;
        }
    }
}

/// A way to reach an authority.
pub trait Transport: Clone + Send + Sync + 'static {
    /// Connects and logs in. [`Error::Denied`] means retrying will not help.
    fn connect(&mut self) -> impl Future<Output = Result<Link, Error>> + Send;

    /// Downloads what `request` names into the file `to` (resuming a partial one) on a
    /// connection of its own, so bulk bytes never wait behind edits or hold them up.
    fn download(&self, request: TransferRequest, to: &Path) -> impl Future<Output = Result<(), Error>> + Send;

    /// Uploads the audio file at `path`, whose blake3 is `hash`, into `project` as `name` on a
    /// connection of its own, telling `progress` the bytes sent and the file's size as it goes;
    /// the authority checks it, stores it and makes its asset record, whose id this returns.
    fn upload(
        &self,
        project: ProjectId,
        path: &Path,
        name: &str,
        hash: ContentHash,
        progress: impl FnMut(u64, u64) + Send,
    ) -> impl Future<Output = Result<AssetId, Error>> + Send;
}

/// An authority over QUIC.
#[derive(Clone, Debug)]
pub struct QuicTransport {
    addr: SocketAddr,
    server_name: String,
    trust: Trust,
    credentials: Credentials,
    token: Option<SessionToken>,
}

impl QuicTransport {
    /// An authority at `addr`, whose certificate `trust` accepts for `server_name`.
    pub fn new(addr: SocketAddr, server_name: &str, trust: Trust, credentials: Credentials) -> Self {
        QuicTransport { addr, server_name: server_name.to_owned(), trust, credentials, token: None }
    }
}

impl QuicTransport {
    /// A connection logged in as our credentials, for a download.
    async fn logged_in(&self) -> Result<Remote, Error> {
        let mut remote = Remote::connect(self.addr, &self.server_name, self.trust.clone())
            .await
            .map_err(|error| Error::Connection(error.to_string()))?;
        let login = match (&self.token, &self.credentials) {
            (Some(token), _) => remote.resume(*token).await,
            (None, Credentials::Password { user, password }) => remote.login(user, password).await,
            (None, Credentials::Open { display_name, join_code }) => {
                remote.join_open(display_name, join_code.as_deref()).await
            }
        };
        login.map_err(|error| Error::Connection(error.to_string()))?;
        Ok(remote)
    }
}

impl Transport for QuicTransport {
    async fn download(&self, request: TransferRequest, to: &Path) -> Result<(), Error> {
        let remote = self.logged_in().await?;
        let downloaded = remote.download(request, to).await;
        remote.close().await;
        downloaded.map(|_| ()).map_err(|error| Error::Connection(error.to_string()))
    }

    async fn upload(
        &self,
        project: ProjectId,
        path: &Path,
        name: &str,
        hash: ContentHash,
        progress: impl FnMut(u64, u64) + Send,
    ) -> Result<AssetId, Error> {
        let remote = self.logged_in().await?;
        let uploaded = remote.upload_with_progress(project, path, name, hash, None, progress).await;
        remote.close().await;
        match uploaded {
            Ok(Uploaded::Stored { asset, .. }) => Ok(asset),
            Ok(Uploaded::Partial { held }) => Err(Error::Connection(format!("the upload stopped after {held} bytes"))),
            Err(error) => Err(Error::Connection(error.to_string())),
        }
    }

    async fn connect(&mut self) -> Result<Link, Error> {
        let connect = || Remote::connect(self.addr, &self.server_name, self.trust.clone());
        let mut remote = connect().await.map_err(|error| Error::Connection(error.to_string()))?;
        // A token from an earlier login saves sending the password again; it may have expired.
        let mut login = match self.token {
            Some(token) => remote.resume(token).await,
            None => Err(ensemble_authority::Error::Denied("no session yet".into())),
        };
        if login.is_err() {
            if self.token.is_some() {
                remote = connect().await.map_err(|error| Error::Connection(error.to_string()))?;
            }
            login = match &self.credentials {
                Credentials::Password { user, password } => remote.login(user, password).await,
                Credentials::Open { display_name, join_code } => {
                    remote.join_open(display_name, join_code.as_deref()).await
                }
            };
        }
        let login = login.map_err(|error| match error {
            ensemble_authority::Error::Denied(reason) => Error::Denied(reason),
            other => Error::Connection(other.to_string()),
        })?;
        self.token = Some(login.token);
        let (mut sender, mut receiver) = remote.split();
        let (outgoing, mut to_send) = mpsc::channel::<ClientMsg>(LINK_CAPACITY);
        let (received, incoming) = mpsc::channel(LINK_CAPACITY);
        let sending = tokio::spawn(async move {
            while let Some(message) = to_send.recv().await {
                if sender.send(&message).await.is_err() {
                    return;
                }
            }
            sender.close().await;
        });
        tokio::spawn(async move {
            loop {
                let message = receiver.recv().await.map_err(|error| error.to_string());
                let ended = message.is_err();
                if received.send(message).await.is_err() || ended {
                    return;
                }
            }
        });
        Ok(Link { user: login.user, name: login.name, outgoing, incoming, sender: Some(sending) })
    }
}
