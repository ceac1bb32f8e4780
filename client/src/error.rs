//! What can go wrong in the client core.

use ensemble_protocol::{FrameError, ProjectId};

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The local store's database failed or refused a statement (a full disk, a locked file).
    #[cfg(not(target_arch = "wasm32"))]
    #[error("local store: {0}")]
    Store(#[from] sqlx::Error),
    /// The local store's schema could not be brought up to date.
    #[cfg(not(target_arch = "wasm32"))]
    #[error("local store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The browser's storage failed or refused a write (a full quota, a blocked database).
    #[cfg(target_arch = "wasm32")]
    #[error("local store: {0}")]
    Browser(String),
    /// A value could not be encoded or decoded.
    #[error("encoding: {0}")]
    Encoding(#[from] FrameError),
    /// The local store holds data that does not decode, or another project's data.
    #[error("local store is corrupt: {0}")]
    Corrupt(String),
    /// The local store file belongs to another project.
    #[error("local store holds project {found}, not {expected}")]
    WrongProject {
        /// The project asked for.
        expected: ProjectId,
        /// The project the file holds.
        found: ProjectId,
    },
    /// The authority could not be reached or dropped the connection.
    #[error("connection: {0}")]
    Connection(String),
    /// The authority refused the login.
    #[error("login refused: {0}")]
    Denied(String),
    /// Talking to the authority failed.
    #[error(transparent)]
    Net(#[from] ensemble_net::Error),
    /// The in-process authority of solo mode could not start.
    #[cfg(feature = "solo")]
    #[error("solo authority: {0}")]
    Solo(#[from] ensemble_authority::Error),
    /// A file or folder could not be made or read.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
