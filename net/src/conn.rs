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
pub mod pipe;
#[cfg(feature = "quic")]
mod quic;
#[cfg(feature = "webtransport")]
mod webtransport;

#[cfg(target_arch = "wasm32")]
pub use browser::{BrowserConnection, BrowserRecv, BrowserSend};
#[cfg(feature = "quic")]
pub use quic::QuicConnection;
#[cfg(feature = "webtransport")]
pub use webtransport::WebTransportConnection;

/// What a [`Remote`](crate::remote::Remote) talks over when its type does not say: QUIC with
/// the `quic` feature, else in-memory pipes (the browser names its own connection).
#[cfg(feature = "quic")]
pub type DefaultConnection = QuicConnection;
/// What a [`Remote`](crate::remote::Remote) talks over when its type does not say: QUIC with
/// the `quic` feature, else in-memory pipes (the browser names its own connection).
#[cfg(not(feature = "quic"))]
pub type DefaultConnection = pipe::Pipe;
