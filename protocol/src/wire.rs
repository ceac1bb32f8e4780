//! The messages a client and the authority exchange.
//!
//! A connection opens with [`ClientMsg::Hello`]; the authority answers [`ServerMsg::Welcome`]
//! when the [`PROTOCOL_VERSION`]s match. Otherwise it closes the connection with
//! [`close::PROTOCOL_VERSION`] and a reason from [`version_mismatch`] (no message: a peer of
//! another version might not decode one), and [`version_advice`] tells the client's user what
//! to update. The
//! client then logs in (a password, a session token, or a display name on an open authority),
//! subscribes to projects and writes transactions. Every frame after that may be a push: a
//! [`Bump`] carries the new values of what a commit changed, so subscribers never need a second
//! round trip. Messages travel in [`crate::frame`]s.
//!
//! Presence (who else is in the project, where their playhead is, what they have selected)
//! is relayed, never stored: a client sends [`ClientMsg::Presence`] when its own changes, and
//! the authority passes it to the project's other subscribers as [`ServerMsg::Presence`],
//! with `None` when that session leaves.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::frame::FrameError;
use crate::ids::{JobId, ProjectId, RecordId, TxId, UserId};
use crate::op::Transaction;
use crate::permission::{Denied, Role};
use crate::state::{ApplyError, RecordChange};
use crate::time::{Seq, Ticks, Version};

/// The version of this protocol. Both sides send it in the handshake and refuse a mismatch.
pub const PROTOCOL_VERSION: u32 = 6;

/// The most selected records one presence carries; the authority drops the rest.
pub const MAX_PRESENCE_SELECTION: usize = 256;

/// The QUIC application protocol name.
pub const ALPN: &[u8] = b"ensemble/1";

/// Checks a peer's protocol version against ours.
pub fn check_protocol_version(theirs: u32) -> Result<(), FrameError> {
    if theirs == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(FrameError::VersionMismatch { ours: PROTOCOL_VERSION, theirs })
    }
}

/// The reason the authority gives when it closes a connection whose hello spoke another protocol
/// version.
pub fn version_mismatch(authority: u32, client: u32) -> String {
    format!("protocol version mismatch: the authority speaks {authority}, the client speaks {client}")
}

/// What a client tells its user when the authority closed the connection for speaking protocol
/// `ours`, given the authority's reason (from [`version_mismatch`]).
pub fn version_advice(reason: &str, ours: u32) -> String {
    let theirs = reason.split("the authority speaks ").nth(1).and_then(|rest| {
        rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|number| number.parse::<u32>().ok())
    });
    match theirs {
        Some(theirs) if theirs > ours => {
            format!("this authority is newer (protocol {theirs}, this Ensemble speaks {ours}): update Ensemble")
        }
        Some(theirs) => format!(
            "this authority is older (protocol {theirs}, this Ensemble speaks {ours}): it must be updated before \
             this Ensemble can use it"
        ),
        None => format!("this authority speaks another protocol version than this Ensemble ({ours}): {reason}"),
    }
}

/// A secret that stands for a logged-in session. Its `Debug` does not show it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionToken(pub [u8; 32]);

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(…)")
    }
}

/// Messages from a client to the authority.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// The first message of every connection.
    Hello {
        /// The client's [`PROTOCOL_VERSION`].
        protocol_version: u32,
        /// The client's name and version, for the authority's log.
        client: String,
    },
    /// Logs in with a password.
    Login {
        /// The user name.
        user: String,
        /// The password, sent only inside the TLS connection.
        password: String,
    },
    /// Logs in again with a token from an earlier [`ServerMsg::LoggedIn`].
    Resume {
        /// The token.
        token: SessionToken,
    },
    /// Joins an open authority (started with `--open`) under a display name.
    JoinOpen {
        /// The name other members see.
        display_name: String,
        /// The jam's join code, when the authority hosts a LAN jam (see [`crate::jam::JoinCode`]).
        join_code: Option<String>,
    },
    /// Starts receiving a project's bumps, catching up from `since` (or from nothing).
    Subscribe {
        /// The project.
        project: ProjectId,
        /// The last seq this client has; `None` asks for a snapshot.
        since: Option<Seq>,
    },
    /// Stops receiving a project's bumps.
    Unsubscribe {
        /// The project.
        project: ProjectId,
    },
    /// Submits a transaction.
    Write(Transaction),
    /// Asks for the current value of some records.
    GetRecords {
        /// The project.
        project: ProjectId,
        /// The records.
        ids: Vec<RecordId>,
    },
    /// Asks the authority to render the project to a WAV file; answered with
    /// [`ServerMsg::JobQueued`]. The file is downloaded with [`crate::transfer::TransferRequest`].
    Export {
        /// The project.
        project: ProjectId,
        /// What to render.
        export: ExportRequest,
    },
    /// Asks for the state of a job; answered with [`ServerMsg::Job`].
    GetJob {
        /// The job.
        job: JobId,
    },
    /// This session's presence in a project it subscribes to, relayed to the others.
    Presence {
        /// The project.
        project: ProjectId,
        /// What the user is doing.
        presence: Presence,
    },
}

/// What a user is doing in a project right now.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    /// Their playhead.
    pub playhead: Ticks,
    /// Whether their transport plays.
    pub playing: bool,
    /// The records they have selected (at most [`MAX_PRESENCE_SELECTION`]).
    pub selection: Vec<RecordId>,
    /// Where their pointer is on the timeline, when it is there.
    pub pointer: Option<Ticks>,
}

/// Another session's presence, as the authority relays it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerPresence {
    /// Names the session (one user may have several).
    pub session: u64,
    /// The user.
    pub user: UserId,
    /// Their display name.
    pub name: String,
    /// What they are doing; `None` when the session left the project.
    pub presence: Option<Presence>,
}

/// Messages from the authority to a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ServerMsg {
    /// The handshake succeeded.
    Welcome {
        /// The authority's [`PROTOCOL_VERSION`].
        protocol_version: u32,
        /// The authority's name and version.
        server: String,
        /// Whether anyone may join with a display name.
        open: bool,
    },
    /// The login succeeded.
    LoggedIn {
        /// The user.
        user: UserId,
        /// Their display name.
        name: String,
        /// A token for [`ClientMsg::Resume`].
        token: SessionToken,
    },
    /// The subscription is live; `catch_up` brings the client to `seq`.
    Subscribed {
        /// The project.
        project: ProjectId,
        /// The project's seq when the subscription began.
        seq: Seq,
        /// The client's role, so it can grey out what it may not do.
        role: Role,
        /// What the client needs to reach `seq`.
        catch_up: CatchUp,
    },
    /// A transaction committed durably.
    Committed {
        /// The transaction.
        tx_id: TxId,
        /// Its place in the project's order.
        seq: Seq,
        /// The new version of every record it touched.
        versions: Vec<(RecordId, Version)>,
    },
    /// A transaction was refused; nothing of it was stored.
    Rejected {
        /// The transaction.
        tx_id: TxId,
        /// Why.
        reason: Rejection,
    },
    /// The answer to [`ClientMsg::GetRecords`]; a record that does not exist comes back as a
    /// change with no contents and version 0.
    Records {
        /// The project.
        project: ProjectId,
        /// The records.
        records: Vec<RecordChange>,
    },
    /// Pushed to every subscriber when a transaction commits.
    Bump(Bump),
    /// An export was queued as this job.
    JobQueued {
        /// The job.
        job: JobId,
    },
    /// The state of a job.
    Job(JobInfo),
    /// Another session's presence in a subscribed project changed.
    Presence {
        /// The project.
        project: ProjectId,
        /// The session and what it is doing.
        peer: PeerPresence,
    },
    /// A request failed, or the connection is about to close.
    Error {
        /// What went wrong, for programs.
        code: ErrorCode,
        /// What went wrong, for people.
        message: String,
    },
}

/// How a subscriber catches up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CatchUp {
    /// Every live record: replace the local copy.
    Snapshot(Vec<RecordChange>),
    /// The latest value of every record changed since the client's seq (`None` contents for
    /// deletions): lay them over the local copy.
    Delta(Vec<RecordChange>),
}

/// The new state of what one commit changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bump {
    /// The project.
    pub project: ProjectId,
    /// The commit's seq.
    pub seq: Seq,
    /// The committed transaction.
    pub tx_id: TxId,
    /// Who wrote it.
    pub author: UserId,
    /// The touched records as they are now.
    pub changes: Vec<RecordChange>,
}

/// Why a transaction was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum Rejection {
    /// The author may not make this edit.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The transaction no longer applies, or breaks a rule.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The project does not exist.
    #[error("no such project")]
    NoSuchProject,
}

/// Error classes for [`ServerMsg::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The peers speak different protocol versions.
    ProtocolVersion,
    /// A frame could not be decoded, or was too large.
    BadFrame,
    /// A message came at the wrong point of the conversation (say, a write before login).
    OutOfOrder,
    /// The user name, password or token was wrong, or the token expired.
    BadCredentials,
    /// The request is not allowed.
    Denied,
    /// The project does not exist.
    NoSuchProject,
    /// The client did not read its messages fast enough and is being disconnected.
    SlowConsumer,
    /// The authority failed; the request may be retried.
    Internal,
}

/// QUIC application close codes: why the authority (or a client) closed a connection. The
/// close reason carries the human-readable message.
pub mod close {
    /// A normal goodbye.
    pub const NORMAL: u32 = 0;
    /// A malformed, oversize or out-of-order frame.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// The peers speak different protocol versions.
    pub const PROTOCOL_VERSION: u32 = 2;
    /// The client did not read fast enough and fell too far behind.
    pub const SLOW_CONSUMER: u32 = 3;
    /// Too many failed logins on one connection.
    pub const TOO_MANY_FAILURES: u32 = 4;
    /// The authority is shutting down.
    pub const SHUTDOWN: u32 = 5;
    /// The project is now served by another authority process (its lease moved): reconnect.
    pub const MOVED: u32 = 6;
    /// Something the client sent could not be saved or served now (the authority cannot reach
    /// its database, or the project's server): nothing of it was kept. Reconnect and send it
    /// again, in order; the connection ends so that nothing sent after it commits before it.
    pub const RETRY: u32 = 7;
}

/// What an export renders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    /// The part of the timeline to render, `start` inclusive, `end` exclusive; `None` renders
    /// from the start to the end of the last clip.
    pub range: Option<(Ticks, Ticks)>,
    /// One file per track instead of the mix (downloaded as `index` 0, 1, … in track order).
    pub stems: bool,
    /// The WAV sample format.
    pub format: ExportFormat,
}

/// The sample format of an exported WAV file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExportFormat {
    /// 16-bit integer, dithered by nothing (CD).
    Int16,
    /// 24-bit integer.
    Int24,
    /// 32-bit float: exactly what the mix computed.
    Float32,
}

/// What kind of work a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobKind {
    /// Waveform peaks for a new asset.
    Peaks,
    /// A lossless upload re-encoded as FLAC for storage.
    Transcode,
    /// A project rendered to WAV.
    Export,
}

/// Where a job is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    /// Waiting for a worker (or for its retry time).
    Queued {
        /// Attempts made so far.
        attempts: u32,
    },
    /// A worker holds it.
    Running {
        /// This attempt's number, from 1.
        attempt: u32,
    },
    /// Finished; for an export, its files can be downloaded.
    Done {
        /// Files the job produced (an export's mix, or one per stem).
        files: u32,
    },
    /// Given up after too many attempts.
    Failed {
        /// The last attempt's error.
        error: String,
    },
}

/// A job as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInfo {
    /// The job.
    pub id: JobId,
    /// What it does.
    pub kind: JobKind,
    /// The project it belongs to.
    pub project: ProjectId,
    /// Where it is.
    pub state: JobState,
}
