//! QUIC connections (quinn), natively: what native clients dial and the authority accepts.

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
