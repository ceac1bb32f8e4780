//! The client end of Ensemble's wire, shared by the native client, the browser client, the
//! benches and the authority's tests.
//!
//! A guide, from the bytes up:
//!
//! - [`framed`] reads one frame at a time off any byte stream, checking the size limit before
//!   the body is read. The authority reads its clients' frames with the same code.
//! - [`tls`] is the client's half of trust: the SHA-256 [`tls::Fingerprint`] a self-signed
//!   authority is pinned by, and (native) the QUIC client configuration.
//! - [`conn`] is what a session runs on: a [`conn::Connection`] of bidirectional streams (QUIC,
//!   WebTransport, in-memory pipes).
//! - [`remote`] is a session with an authority over any connection: handshake, login, requests
//!   that wait for their answers, uploads and downloads on streams of their own.
//! - [`transport`] is the seam a client syncs through: the [`transport::Transport`] trait, which
//!   opens a logged-in [`transport::Link`] and moves files, and [`transport::QuicTransport`], the
//!   native one, and [`transport::PipeTransport`], in memory. The browser dials WebTransport
//!   behind the same trait.
//! - [`hash`] names files by content (blake3), as uploads and the authority's blobs do.
//! - [`rt`] is the little the client needs from an async runtime (spawn, sleep), on tokio
//!   natively and on the browser's event loop in wasm.
//!
//! Nothing here touches a database, and only `quic` needs a socket: without it the crate builds
//! for `wasm32-unknown-unknown`.

pub mod conn;
pub mod framed;
pub mod hash;
pub mod remote;
pub mod rt;
pub mod tls;
pub mod transport;

// Which checkout this crate was built from: a different one makes cargo rebuild it, so clones
// sharing the target directory never build each other's code (see `.cargo/config.toml`).
const _: Option<&str> = option_env!("ENSEMBLE_CHECKOUT");

use ensemble_protocol::FrameError;
use ensemble_protocol::transfer::TransferError;

pub use rt::{MaybeSend, MaybeSync};

/// Why talking to an authority failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The authority could not be reached, or the connection ended (with its reason when the
    /// authority gave one).
    #[error("connection: {0}")]
    Connection(String),
    /// The authority refused a login or a request; retrying will not help.
    #[error("refused: {0}")]
    Denied(String),
    /// The authority has no such project (or it is not ours to see).
    #[error("{0} not found")]
    NotFound(String),
    /// A message could not be encoded, or the authority's bytes did not decode.
    #[error("encoding: {0}")]
    Encoding(#[from] FrameError),
    /// The client's TLS configuration could not be built.
    #[error("tls: {0}")]
    Tls(String),
    /// A local file could not be read or written.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The authority refused a transfer.
    #[error("transfer refused: {0}")]
    Refused(TransferError),
    /// Downloaded bytes do not hash to what the authority announced.
    #[error("corrupt download: {0}")]
    Corrupt(String),
    /// A caller asked for something that makes no sense (an upload request to download).
    #[error("{0}")]
    Misuse(String),
}
