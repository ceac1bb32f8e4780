//! An authority on loopback, and clients for it: over QUIC (with the certificate pinned) or in
//! memory ([`Loopback::in_process`]), logged in or not.

use std::net::SocketAddr;

use ensemble_authority::server::{Server, ServerOptions};
use ensemble_authority::store::Store;
use ensemble_authority::tls::Certificates;
use ensemble_net::conn::pipe::Pipe;
use ensemble_net::remote::Remote;
use ensemble_net::tls::Trust;
use ensemble_protocol::PROTOCOL_VERSION;

/// Any free port on loopback.
pub const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// A running authority and how to reach it.
#[derive(Debug)]
pub struct Loopback {
    /// The server.
    pub server: Server,
    /// Where it listens.
    pub addr: SocketAddr,
    /// How clients trust it (its certificate's fingerprint).
    pub trust: Trust,
}

impl Loopback {
    /// Serves `store` on a free loopback port with fresh certificates (whatever
    /// `options.listen` says).
    pub async fn start<S: Store>(store: S, options: ServerOptions) -> Loopback {
        let options = ServerOptions { listen: LOOPBACK, ..options };
        Self::start_as(store, certificates(), options).await
    }

    /// Serves `store` where `options.listen` says, presenting `certificates` (to come back on
    /// the same address with the same certificates after a stop).
    pub async fn start_as<S: Store>(store: S, certificates: Certificates, options: ServerOptions) -> Loopback {
        #[allow(clippy::expect_used)]
        let server = Server::start(store, certificates, options).await.expect("the authority starts");
        #[allow(clippy::expect_used)]
        let addr = server.local_addr().expect("it listens");
        let trust = Trust::Pinned(server.certificate_hashes());
        Loopback { server, addr, trust }
    }

    /// A QUIC connection that has said hello and nothing more.
    pub async fn connect(&self) -> Remote {
        #[allow(clippy::expect_used)]
        Remote::connect(self.addr, "localhost", self.trust.clone()).await.expect("a connection")
    }

    /// A QUIC connection logged in as `user`.
    pub async fn login(&self, user: &str, password: &str) -> Remote {
        let mut remote = self.connect().await;
        #[allow(clippy::expect_used)]
        remote.login(user, password).await.expect("a login");
        remote
    }

    /// An in-memory connection logged in as `user`.
    pub async fn in_process(&self, user: &str, password: &str) -> Remote<Pipe> {
        #[allow(clippy::expect_used)]
        let pipe = self.server.in_process().connect().expect("the authority runs");
        #[allow(clippy::expect_used)]
        let mut remote = Remote::over(pipe, PROTOCOL_VERSION).await.expect("a handshake");
        #[allow(clippy::expect_used)]
        remote.login(user, password).await.expect("a login");
        remote
    }
}

/// Fresh self-signed certificates (in memory, rotating).
pub fn certificates() -> Certificates {
    #[allow(clippy::expect_used)]
    Certificates::self_signed().expect("certificates")
}
