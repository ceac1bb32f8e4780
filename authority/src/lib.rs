//! Ensemble's authority: the one place that orders and keeps every edit.
//!
//! A guide, from the outside in:
//!
//! - [`server`] accepts QUIC connections (ALPN `ensemble/1`), runs the handshake and login, and
//!   turns each connection's frames into requests. Bad bytes close that connection, never the
//!   server.
//! - [`auth`] hashes passwords (argon2) and issues session tokens, stored only as hashes.
//! - [`actor`] runs one task per open project that serialises its writes: check permission,
//!   apply with the protocol's `apply`, commit durably (transactions that queue meanwhile go into
//!   the next commit together), then acknowledge and push a bump to every subscriber.
//! - [`store`] keeps it all in SQLite (embedded, the default) or Postgres (hosted); with
//!   several processes on one Postgres, [`leases`] decides which one serves each project, and
//!   [`cluster`] carries requests to it and its bumps back, over NATS.
//! - [`files`] stores audio files by content and serves the upload and download streams;
//!   [`jobs`] runs peaks, FLAC transcodes and exports from a queue in the store.
//! - [`tls`] makes and loads the certificate; clients pin its SHA-256 fingerprint. The client end
//!   of the wire (framing, the client session, trust) is the `ensemble-net` crate, which reads
//!   this end's frames too.
//! - [`web`] serves the browser build's files and the page's configuration over HTTP.
//! - [`admin`] holds the operator commands (`user add`, `project create`, …) the binary runs;
//!   [`demo`] makes the demo song (solo mode's first project, or `project create --demo`).

pub mod actor;
pub mod admin;
pub mod auth;
pub mod cluster;
pub mod demo;
pub mod files;
pub mod jobs;
pub mod leases;
pub mod pokes;
pub mod server;
pub mod store;
pub mod tls;
pub mod web;

// Which checkout this crate was built from: a different one makes cargo rebuild it, so clones
// sharing the target directory never build each other's code (see `.cargo/config.toml`).
const _: Option<&str> = option_env!("ENSEMBLE_CHECKOUT");

use ensemble_protocol::{FrameError, ProjectId};

/// Everything that can go wrong in the authority.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed or refused a statement.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The database schema could not be brought up to date.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A value could not be encoded or decoded.
    #[error("encoding: {0}")]
    Encoding(#[from] FrameError),
    /// Something with this name or id already exists.
    #[error("{0} already exists")]
    Exists(String),
    /// Nothing has this name or id.
    #[error("{0} not found")]
    NotFound(String),
    /// Another writer committed to the project since this one loaded it.
    #[error("project {0} was changed by another writer")]
    SeqMoved(ProjectId),
    /// This process no longer holds the project's lease: another one serves it now, and this
    /// commit was refused (see [`store::Lease`]).
    #[error("project {0} is now served by another authority process")]
    Fenced(ProjectId),
    /// Another live process holds the project's lease.
    #[error("project {project} is served by another authority process ({node}) for now")]
    Elsewhere {
        /// The project.
        project: ProjectId,
        /// The process serving it.
        node: String,
    },
    /// Stored data does not decode: the database was edited by hand or is damaged.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A setting is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// The certificate or key could not be made or loaded.
    #[error("tls: {0}")]
    Tls(String),
    /// The authority refused a login or a request.
    #[error("refused: {0}")]
    Denied(String),
    /// A connection failed.
    #[error("connection: {0}")]
    Connection(String),
    /// A file could not be read or written.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
