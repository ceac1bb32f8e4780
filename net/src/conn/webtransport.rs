//! WebTransport sessions over QUIC, natively: the authority's side of a browser's session, and
//! a native client that opens one the way a browser does (for tests and benches).

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
