//! Connections that carry streams: QUIC natively, WebTransport in the browser, and an in-memory
//! [`pipe`] for tests and in-process authorities. A session ([`crate::remote::Remote`]) and the
//! authority's side of one are written once against [`Connection`].

use std::future::Future;
use std::net::IpAddr;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::{Error, MaybeSend, MaybeSync};

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closed {
    /// One end closed it on purpose, with an application code and reason.
    Application {
        /// The code (see `ensemble_protocol::wire::close`).
        code: u32,
        /// Why, in words.
        reason: String,
    },
    /// It failed, timed out, or was closed by this end.
    Lost(String),
}

impl Closed {
    /// Says how the connection ended, as the client reports it.
    pub fn to_error(&self) -> Error {
        match self {
            Closed::Application { code, reason } => {
                Error::Connection(format!("closed by the authority (code {code}): {reason}"))
            }
            Closed::Lost(reason) => Error::Connection(reason.clone()),
        }
    }
}

/// A connection that carries bidirectional streams.
pub trait Connection: Clone + std::fmt::Debug + MaybeSend + MaybeSync + 'static {
    /// A stream's sending half.
    type SendStream: AsyncWrite + Unpin + std::fmt::Debug + MaybeSend + MaybeSync + 'static;
    /// A stream's receiving half.
    type RecvStream: AsyncRead + Unpin + std::fmt::Debug + MaybeSend + MaybeSync + 'static;

    /// Opens a stream.
    fn open_bi(&self) -> impl Future<Output = Result<(Self::SendStream, Self::RecvStream), Error>> + MaybeSend;
    /// The next stream the other end opened; `None` once the connection has ended.
    fn accept_bi(&self) -> impl Future<Output = Option<(Self::SendStream, Self::RecvStream)>> + MaybeSend;
    /// Closes the connection, telling the other end `code` and `reason`; every stream fails.
    fn close(&self, code: u32, reason: &[u8]);
    /// How the connection ended, once it has.
    fn closed(&self) -> Option<Closed>;
    /// Waits until a close has reached the other end (or that is hopeless).
    fn wait_closed(&self) -> impl Future<Output = ()> + MaybeSend;
    /// The other end's address (for per-address limits).
    fn peer_ip(&self) -> IpAddr;
}

#[cfg(target_arch = "wasm32")]
mod browser;
#[cfg(target_arch = "wasm32")]
pub use browser::{BrowserConnection, BrowserRecv, BrowserSend};
#[cfg(feature = "quic")]
pub use quic::QuicConnection;

/// What a [`Remote`](crate::remote::Remote) talks over when its type does not say: QUIC with
/// the `quic` feature, else in-memory pipes (the browser names its own connection).
#[cfg(feature = "quic")]
pub type DefaultConnection = QuicConnection;
/// What a [`Remote`](crate::remote::Remote) talks over when its type does not say: QUIC with
/// the `quic` feature, else in-memory pipes (the browser names its own connection).
#[cfg(not(feature = "quic"))]
pub type DefaultConnection = pipe::Pipe;
#[cfg(feature = "webtransport")]
pub use webtransport::WebTransportConnection;

#[cfg(feature = "webtransport")]
mod webtransport {
    use std::net::{IpAddr, SocketAddr};

    use web_transport_quinn::{SessionError, WebTransportError};

    use super::{Closed, Connection};
    use crate::Error;
    use crate::tls::Fingerprint;

    /// A WebTransport session (HTTP/3 over QUIC): what a browser opens. Its streams carry the
    /// same frames as a native connection's.
    #[derive(Clone, Debug)]
    pub struct WebTransportConnection {
        session: web_transport_quinn::Session,
        peer: IpAddr,
    }

    impl WebTransportConnection {
        /// A session the other end opened to us, from `peer`.
        pub fn accepted(session: web_transport_quinn::Session, peer: SocketAddr) -> Self {
            WebTransportConnection { session, peer: peer.ip().to_canonical() }
        }

        /// Opens a session to `url` (`https://host:port/path`), trusting the certificates with
        /// these hashes, as a browser does with `serverCertificateHashes`.
        pub async fn dial(url: &str, hashes: &[Fingerprint]) -> Result<Self, Error> {
            let url: url::Url = url.parse().map_err(|error| Error::Misuse(format!("{url}: {error}")))?;
            let hashes = hashes.iter().map(|hash| hash.0.to_vec()).collect();
            let client = web_transport_quinn::ClientBuilder::new()
                .with_server_certificate_hashes(hashes)
                .map_err(|error| Error::Tls(error.to_string()))?;
            let session = client.connect(url).await.map_err(|error| Error::Connection(error.to_string()))?;
            let peer = session.remote_address();
            Ok(WebTransportConnection::accepted(session, peer))
        }
    }

    impl Connection for WebTransportConnection {
        type SendStream = web_transport_quinn::SendStream;
        type RecvStream = web_transport_quinn::RecvStream;

        async fn open_bi(&self) -> Result<(Self::SendStream, Self::RecvStream), Error> {
            self.session.open_bi().await.map_err(|error| Error::Connection(error.to_string()))
        }

        async fn accept_bi(&self) -> Option<(Self::SendStream, Self::RecvStream)> {
            self.session.accept_bi().await.ok()
        }

        fn close(&self, code: u32, reason: &[u8]) {
            self.session.close(code, reason);
        }

        fn closed(&self) -> Option<Closed> {
            self.session.close_reason().map(|error| match error {
                SessionError::WebTransportError(WebTransportError::Closed(code, reason)) => {
                    Closed::Application { code, reason }
                }
                other => Closed::Lost(other.to_string()),
            })
        }

        async fn wait_closed(&self) {
            let _ = self.session.closed().await;
        }

        fn peer_ip(&self) -> IpAddr {
            self.peer
        }
    }
}

#[cfg(feature = "quic")]
mod quic {
    use std::net::IpAddr;

    use super::{Closed, Connection};
    use crate::Error;

    /// A QUIC connection, with the endpoint it was dialled from when this end dialled it.
    #[derive(Clone, Debug)]
    pub struct QuicConnection {
        connection: quinn::Connection,
        endpoint: Option<quinn::Endpoint>,
    }

    impl QuicConnection {
        /// A connection this end accepted.
        pub fn accepted(connection: quinn::Connection) -> Self {
            QuicConnection { connection, endpoint: None }
        }

        /// A connection this end dialled from `endpoint` (kept, to wait for the goodbye).
        pub fn dialled(connection: quinn::Connection, endpoint: quinn::Endpoint) -> Self {
            QuicConnection { connection, endpoint: Some(endpoint) }
        }
    }

    impl Connection for QuicConnection {
        type SendStream = quinn::SendStream;
        type RecvStream = quinn::RecvStream;

        async fn open_bi(&self) -> Result<(quinn::SendStream, quinn::RecvStream), Error> {
            self.connection.open_bi().await.map_err(|error| Error::Connection(error.to_string()))
        }

        async fn accept_bi(&self) -> Option<(quinn::SendStream, quinn::RecvStream)> {
            self.connection.accept_bi().await.ok()
        }

        fn close(&self, code: u32, reason: &[u8]) {
            self.connection.close(code.into(), reason);
        }

        fn closed(&self) -> Option<Closed> {
            self.connection.close_reason().map(|error| match error {
                quinn::ConnectionError::ApplicationClosed(close) => Closed::Application {
                    code: u32::try_from(close.error_code.into_inner()).unwrap_or(u32::MAX),
                    reason: String::from_utf8_lossy(&close.reason).into_owned(),
                },
                other => Closed::Lost(other.to_string()),
            })
        }

        async fn wait_closed(&self) {
            if let Some(endpoint) = &self.endpoint {
                endpoint.wait_idle().await;
            }
        }

        fn peer_ip(&self) -> IpAddr {
            self.connection.remote_address().ip().to_canonical()
        }
    }
}

pub mod pipe {
    //! Connections in memory: both ends in one process, streams as in-memory pipes. The way a
    //! single-player game talks to its own server, and how tests reach an authority without
    //! sockets, timers or TLS.

    use std::io;
    use std::net::{IpAddr, Ipv4Addr};
    use std::pin::Pin;
    use std::sync::{Arc, Mutex, Weak};
    use std::task::{Context, Poll, Waker};

    use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf, ReadHalf, WriteHalf};
    use tokio::sync::{Notify, mpsc};

    use super::{Closed, Connection};
    use crate::Error;

    /// How many bytes a stream holds in flight before its writer waits.
    const STREAM_BUFFER: usize = 256 << 10;

    /// What both ends of a pipe share: whether it has closed, and who to wake when it does.
    #[derive(Debug, Default)]
    struct Shared {
        closed: Mutex<Option<Closed>>,
        wakers: Mutex<Vec<Weak<Mutex<Option<Waker>>>>>,
        closing: Notify,
    }

    impl Shared {
        fn closed(&self) -> Option<Closed> {
            self.closed.lock().ok().and_then(|closed| closed.clone())
        }

        /// A slot a stream half keeps its waker in, so a close wakes it.
        fn slot(&self) -> Arc<Mutex<Option<Waker>>> {
            let slot = Arc::new(Mutex::new(None));
            if let Ok(mut wakers) = self.wakers.lock() {
                wakers.retain(|waker| waker.strong_count() > 0);
                wakers.push(Arc::downgrade(&slot));
            }
            slot
        }

        fn close(&self, closed: Closed) {
            if let Ok(mut slot) = self.closed.lock() {
                if slot.is_some() {
                    return;
                }
                *slot = Some(closed);
            }
            self.closing.notify_waiters();
            let wakers = self.wakers.lock().map(|wakers| wakers.clone()).unwrap_or_default();
            for waker in wakers.iter().filter_map(Weak::upgrade) {
                if let Some(waker) = waker.lock().ok().and_then(|mut waker| waker.take()) {
                    waker.wake();
                }
            }
        }

        /// The error a stream half gives once the connection has closed.
        fn failure(&self) -> Option<io::Error> {
            self.closed().map(|closed| io::Error::new(io::ErrorKind::ConnectionAborted, closed.to_error().to_string()))
        }
    }

    type Streams = (PipeSend, PipeRecv);

    /// One end of an in-memory connection.
    #[derive(Clone, Debug)]
    pub struct Pipe {
        shared: Arc<Shared>,
        to_peer: mpsc::UnboundedSender<Streams>,
        from_peer: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Streams>>>,
    }

    /// Two connected ends.
    pub fn pair() -> (Pipe, Pipe) {
        let shared = Arc::new(Shared::default());
        let (to_b, from_a) = mpsc::unbounded_channel();
        let (to_a, from_b) = mpsc::unbounded_channel();
        let a = Pipe { shared: shared.clone(), to_peer: to_b, from_peer: Arc::new(tokio::sync::Mutex::new(from_b)) };
        let b = Pipe { shared, to_peer: to_a, from_peer: Arc::new(tokio::sync::Mutex::new(from_a)) };
        (a, b)
    }

    impl Pipe {
        fn halves(&self, stream: DuplexStream) -> Streams {
            let (read, write) = tokio::io::split(stream);
            let send = PipeSend { write, shared: self.shared.clone() };
            let recv = PipeRecv { read, shared: self.shared.clone(), waker: self.shared.slot() };
            (send, recv)
        }
    }

    impl Connection for Pipe {
        type SendStream = PipeSend;
        type RecvStream = PipeRecv;

        async fn open_bi(&self) -> Result<Streams, Error> {
            if let Some(closed) = self.shared.closed() {
                return Err(closed.to_error());
            }
            let (ours, theirs) = tokio::io::duplex(STREAM_BUFFER);
            self.to_peer.send(self.halves(theirs)).map_err(|_| Error::Connection("the other end is gone".into()))?;
            Ok(self.halves(ours))
        }

        async fn accept_bi(&self) -> Option<Streams> {
            let mut from_peer = self.from_peer.lock().await;
            let closing = self.shared.closing.notified();
            tokio::pin!(closing);
            closing.as_mut().enable();
            if self.shared.closed().is_some() {
                return None;
            }
            tokio::select! {
                streams = from_peer.recv() => streams,
                () = closing => None,
            }
        }

        fn close(&self, code: u32, reason: &[u8]) {
            let reason = String::from_utf8_lossy(reason).into_owned();
            self.shared.close(Closed::Application { code, reason });
        }

        fn closed(&self) -> Option<Closed> {
            self.shared.closed()
        }

        async fn wait_closed(&self) {}

        fn peer_ip(&self) -> IpAddr {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
    }

    /// A pipe stream's sending half.
    #[derive(Debug)]
    pub struct PipeSend {
        write: WriteHalf<DuplexStream>,
        shared: Arc<Shared>,
    }

    impl AsyncWrite for PipeSend {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
            if let Some(error) = self.shared.failure() {
                return Poll::Ready(Err(error));
            }
            Pin::new(&mut self.write).poll_write(cx, bytes)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.write).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.write).poll_shutdown(cx)
        }
    }

    /// A pipe stream's receiving half: it fails as soon as the connection closes, as a QUIC
    /// stream does.
    #[derive(Debug)]
    pub struct PipeRecv {
        read: ReadHalf<DuplexStream>,
        shared: Arc<Shared>,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    impl AsyncRead for PipeRecv {
        fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            // The waker first: a close that comes after the check below still wakes this read.
            if let Ok(mut waker) = self.waker.lock() {
                *waker = Some(cx.waker().clone());
            }
            if let Some(error) = self.shared.failure() {
                return Poll::Ready(Err(error));
            }
            Pin::new(&mut self.read).poll_read(cx, buf)
        }
    }
}
