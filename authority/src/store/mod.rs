//! Where the authority keeps everything: users, sessions, projects, records and the log.
//!
//! [`Store`] is one trait with two implementations: [`SqliteStore`], the embedded default (one
//! file, nothing to install, WAL with `synchronous=FULL`), and [`PostgresStore`] for hosted
//! use (`synchronous_commit=on`). Both run their own sqlx migrations when opened and pass the
//! same test suite. [`open`] picks one from a URL.
//!
//! Stores hold bytes, not meaning: records and ops arrive already encoded (the protocol's
//! bincode), and a [`Batch`] is one group commit prepared by a project actor. A batch is written
//! in one database transaction, and only if the project's seq is still the one the actor
//! started from, so two writers can never interleave commits to one project.

pub mod files;
mod postgres;
mod sqlite;

use std::future::Future;

use ensemble_protocol::frame::{decode_value, encode_value};
use ensemble_protocol::wire::JobKind;
use ensemble_protocol::{
    ContentHash, JobId, ProjectId, ProjectState, RecordChange, RecordId, Seq, Transaction, TxId, UserId, Version,
};
use uuid::Uuid;

pub use files::{BlobRow, JobRow, StoredAs};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::Error;

/// A user account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRow {
    /// The user's id.
    pub id: UserId,
    /// The unique login and display name.
    pub name: String,
    /// An argon2 PHC string, or empty when the user has no password (joined an open authority).
    pub password_hash: String,
}

/// A project as listed.
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectRow {
    /// The project.
    pub id: ProjectId,
    /// Its name, from its project record.
    pub name: String,
    /// Its last committed seq.
    pub seq: Seq,
}

/// A project read back from the store.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedProject {
    /// Every record, with tombstones.
    pub state: ProjectState,
    /// The last committed seq.
    pub seq: Seq,
    /// For every record (tombstones too), the seq that last changed it.
    pub record_seqs: Vec<(RecordId, Seq)>,
}

/// One committed transaction, ready to log.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedTx {
    /// The transaction's id.
    pub tx_id: TxId,
    /// Its seq.
    pub seq: Seq,
    /// Who wrote it (the nil id for the authority itself).
    pub author: UserId,
    /// Its ops, encoded.
    pub ops: Vec<u8>,
    /// The `(record, version)` pairs it produced, encoded.
    pub versions: Vec<u8>,
    /// When it committed, in Unix seconds.
    pub committed_at: i64,
}

/// A record's latest state in a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRecord {
    /// The record.
    pub id: RecordId,
    /// Its version.
    pub version: Version,
    /// The seq that produced it.
    pub seq: Seq,
    /// Its encoded contents, or `None` for a tombstone.
    pub body: Option<Vec<u8>>,
}

/// One group commit: transactions that committed together, and the records they left behind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// The transactions, in seq order.
    pub txs: Vec<LoggedTx>,
    /// Each touched record once, as the last transaction left it.
    pub records: Vec<StoredRecord>,
    /// The lease the batch commits under: a store that keeps leases commits it only while the
    /// project's lease still has this epoch. `None` commits without one (an operator command,
    /// or the embedded store, whose single process needs none).
    pub lease: Option<Lease>,
}

/// A process's hold on a project, when several processes serve from one database (Postgres).
///
/// One process at a time serves a project: it acquires the project's lease, renews all of its
/// leases together well before they expire, and releases them when it stops. Each acquisition
/// raises the project's epoch, and every commit names the epoch it was made under, so a holder
/// that paused or lost its network past the expiry, while another took the project, can never
/// commit again: its commit is refused as [`Error::Fenced`]. Expiry uses the database's clock,
/// never a process's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Raised by every acquisition of the project.
    pub epoch: u64,
}

/// What an attempt to acquire a project's lease found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This process holds it now.
    Granted(Lease),
    /// Another process holds it, for about `expires_in` more unless it renews.
    HeldBy {
        /// The holder's node id.
        node: String,
        /// Until it expires.
        expires_in: std::time::Duration,
    },
}

impl Batch {
    /// Adds a committed transaction and the changes it made.
    pub fn push(&mut self, tx: LoggedTx, changes: &[RecordChange]) -> Result<(), Error> {
        for change in changes {
            let body = change.record.as_ref().map(encode_value).transpose()?;
            let record = StoredRecord { id: change.id, version: change.version, seq: tx.seq, body };
            match self.records.iter_mut().find(|stored| stored.id == change.id) {
                Some(stored) => *stored = record,
                None => self.records.push(record),
            }
        }
        self.txs.push(tx);
        Ok(())
    }

    /// Adds a committed transaction, encoding its ops and the versions its changes produced.
    pub fn push_commit(
        &mut self,
        tx: &Transaction,
        seq: Seq,
        author: UserId,
        changes: &[RecordChange],
        committed_at: i64,
    ) -> Result<(), Error> {
        let versions: Vec<(RecordId, Version)> = changes.iter().map(|change| (change.id, change.version)).collect();
        let logged = LoggedTx {
            tx_id: tx.id,
            seq,
            author,
            ops: encode_value(&tx.ops)?,
            versions: encode_value(&versions)?,
            committed_at,
        };
        self.push(logged, changes)
    }

    /// The seq the batch ends at, if it holds anything.
    pub fn last_seq(&self) -> Option<Seq> {
        self.txs.last().map(|tx| tx.seq)
    }
}

/// A transaction found in the log: what a replay of its id returns.
#[derive(Clone, Debug, PartialEq)]
pub struct CommittedTx {
    /// The transaction.
    pub tx_id: TxId,
    /// Its seq.
    pub seq: Seq,
    /// The versions it produced.
    pub versions: Vec<(RecordId, Version)>,
}

/// Everything the authority keeps. Each method is one short database transaction.
pub trait Store: Clone + Send + Sync + 'static {
    /// Creates a user; fails with [`Error::Exists`] when the name is taken.
    fn create_user(&self, name: &str, password_hash: &str) -> impl Future<Output = Result<UserId, Error>> + Send;
    /// Replaces a user's password hash; fails with [`Error::NotFound`] for an unknown name.
    fn set_password(&self, name: &str, password_hash: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// Looks a user up by name.
    fn user_by_name(&self, name: &str) -> impl Future<Output = Result<Option<UserRow>, Error>> + Send;
    /// Looks a user up by id.
    fn user(&self, id: UserId) -> impl Future<Output = Result<Option<UserRow>, Error>> + Send;
    /// Stores a session under the hash of its token.
    fn create_session(
        &self,
        token_hash: [u8; 32],
        user: UserId,
        expires_at: i64,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// The user and expiry of the session with this token hash.
    fn session(&self, token_hash: [u8; 32]) -> impl Future<Output = Result<Option<(UserId, i64)>, Error>> + Send;
    /// Stores a new project with its records at seq 0.
    fn create_project(&self, state: &ProjectState) -> impl Future<Output = Result<(), Error>> + Send;
    /// Every project.
    fn projects(&self) -> impl Future<Output = Result<Vec<ProjectRow>, Error>> + Send;
    /// A project's records and seq, or `None` if it does not exist.
    fn load_project(&self, id: ProjectId) -> impl Future<Output = Result<Option<LoadedProject>, Error>> + Send;
    /// Which of `tx_ids` were already committed to `project`.
    fn committed(
        &self,
        project: ProjectId,
        tx_ids: &[TxId],
    ) -> impl Future<Output = Result<Vec<CommittedTx>, Error>> + Send;
    /// Writes a batch durably, if the project is still at `from`; otherwise fails with
    /// [`Error::SeqMoved`] and writes nothing.
    fn commit(&self, project: ProjectId, from: Seq, batch: &Batch) -> impl Future<Output = Result<(), Error>> + Send;
    /// A stored file, by the hash of its upload.
    fn blob(&self, hash: ContentHash) -> impl Future<Output = Result<Option<BlobRow>, Error>> + Send;
    /// Records a stored file (if new) and that `user` stores it.
    fn add_blob(&self, blob: &BlobRow, user: UserId) -> impl Future<Output = Result<(), Error>> + Send;
    /// The bytes of the distinct files `user` stores, for the quota.
    fn stored_bytes(&self, user: UserId) -> impl Future<Output = Result<u64, Error>> + Send;
    /// Records what a blob's file on disk now is (after a transcode).
    fn set_blob_stored(
        &self,
        hash: ContentHash,
        stored: StoredAs,
        size: u64,
        stored_hash: ContentHash,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// Records that a blob's peaks file exists.
    fn set_peaks_ready(&self, hash: ContentHash) -> impl Future<Output = Result<(), Error>> + Send;
    /// Queues a job.
    fn enqueue_job(
        &self,
        id: JobId,
        kind: JobKind,
        project: ProjectId,
        payload: &[u8],
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// Takes the oldest job that is due (or whose lease ran out) for `worker`, leased until
    /// `lease_until` (Unix ms); `None` when there is nothing to do.
    fn claim_job(
        &self,
        worker: &str,
        now_ms: i64,
        lease_until: i64,
    ) -> impl Future<Output = Result<Option<JobRow>, Error>> + Send;
    /// A job.
    fn job(&self, id: JobId) -> impl Future<Output = Result<Option<JobRow>, Error>> + Send;
    /// Marks a job done, if `worker` still holds `attempt`; false when it lost the lease.
    fn complete_job(
        &self,
        id: JobId,
        worker: &str,
        attempt: u32,
        files: u32,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
    /// Marks an attempt failed: queued again at `retry_at` (Unix ms), or failed for good when
    /// `None`. False when `worker` no longer holds `attempt`.
    fn fail_job(
        &self,
        id: JobId,
        worker: &str,
        attempt: u32,
        error: &str,
        retry_at: Option<i64>,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Acquires `project`'s lease for `node` for `ttl`, unless another node holds one that has
    /// not expired (see [`Lease`]); [`Error::NotFound`] when there is no such project. A store
    /// with one process (SQLite) grants every acquisition, at epoch 0.
    fn acquire_lease(
        &self,
        project: ProjectId,
        node: &str,
        ttl: std::time::Duration,
    ) -> impl Future<Output = Result<Claim, Error>> + Send;

    /// Extends `node`'s leases on `held` (with the epochs it holds them at) to `ttl` from now, in
    /// one statement; returns those it still holds (a lease taken over is not renewed).
    fn renew_leases(
        &self,
        node: &str,
        held: &[(ProjectId, Lease)],
        ttl: std::time::Duration,
    ) -> impl Future<Output = Result<Vec<ProjectId>, Error>> + Send;

    /// Lets go of every lease `node` holds, so other processes may take its projects at once.
    fn release_leases(&self, node: &str) -> impl Future<Output = Result<(), Error>> + Send;

    /// The node whose lease on `project` has not expired, if any (SQLite: none).
    fn lease_holder(&self, project: ProjectId) -> impl Future<Output = Result<Option<String>, Error>> + Send;

    /// Tells every process serving from this store that `project` has a commit at `seq` that
    /// none of them made (an operator command's), so each catches up and tells its subscribers.
    /// Sent after the commit, in its own statement: inside it, a poke would serialise every
    /// commit in the database. A store whose processes cannot hear one another (SQLite's, one
    /// process) does nothing.
    fn poke(&self, project: ProjectId, seq: Seq) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = (project, seq);
        async { Ok(()) }
    }

    /// Where pokes from other processes are heard, for a store that carries them.
    fn poke_source(&self) -> Option<PokeSource> {
        None
    }
}

/// Where a store's pokes can be heard (see [`Store::poke`]): Postgres's `LISTEN`.
#[derive(Clone, Debug)]
pub struct PokeSource(pub(crate) sqlx::PgPool);

/// Opens the store a URL names: `sqlite://PATH` (created if missing) or `postgres://…`.
pub async fn open(url: &str) -> Result<AnyStore, Error> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(AnyStore::Postgres(PostgresStore::connect(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(AnyStore::Sqlite(SqliteStore::open(url).await?))
    } else {
        Err(Error::Config(format!("unsupported database URL {url:?}: use sqlite://PATH or postgres://…")))
    }
}

/// Either store, chosen at run time.
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// The embedded store.
    Sqlite(SqliteStore),
    /// The hosted store.
    Postgres(PostgresStore),
}

/// Forwards a call to whichever store is inside.
macro_rules! forward {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match $self {
            AnyStore::Sqlite(store) => store.$method($($arg),*).await,
            AnyStore::Postgres(store) => store.$method($($arg),*).await,
        }
    };
}

impl Store for AnyStore {
    async fn create_user(&self, name: &str, password_hash: &str) -> Result<UserId, Error> {
        forward!(self.create_user(name, password_hash))
    }
    async fn poke(&self, project: ProjectId, seq: Seq) -> Result<(), Error> {
        forward!(self.poke(project, seq))
    }
    async fn acquire_lease(&self, project: ProjectId, node: &str, ttl: std::time::Duration) -> Result<Claim, Error> {
        forward!(self.acquire_lease(project, node, ttl))
    }
    async fn renew_leases(
        &self,
        node: &str,
        held: &[(ProjectId, Lease)],
        ttl: std::time::Duration,
    ) -> Result<Vec<ProjectId>, Error> {
        forward!(self.renew_leases(node, held, ttl))
    }
    async fn release_leases(&self, node: &str) -> Result<(), Error> {
        forward!(self.release_leases(node))
    }
    async fn lease_holder(&self, project: ProjectId) -> Result<Option<String>, Error> {
        forward!(self.lease_holder(project))
    }
    fn poke_source(&self) -> Option<PokeSource> {
        match self {
            AnyStore::Sqlite(store) => store.poke_source(),
            AnyStore::Postgres(store) => store.poke_source(),
        }
    }
    async fn set_password(&self, name: &str, password_hash: &str) -> Result<(), Error> {
        forward!(self.set_password(name, password_hash))
    }
    async fn user_by_name(&self, name: &str) -> Result<Option<UserRow>, Error> {
        forward!(self.user_by_name(name))
    }
    async fn user(&self, id: UserId) -> Result<Option<UserRow>, Error> {
        forward!(self.user(id))
    }
    async fn create_session(&self, token_hash: [u8; 32], user: UserId, expires_at: i64) -> Result<(), Error> {
        forward!(self.create_session(token_hash, user, expires_at))
    }
    async fn session(&self, token_hash: [u8; 32]) -> Result<Option<(UserId, i64)>, Error> {
        forward!(self.session(token_hash))
    }
    async fn create_project(&self, state: &ProjectState) -> Result<(), Error> {
        forward!(self.create_project(state))
    }
    async fn projects(&self) -> Result<Vec<ProjectRow>, Error> {
        forward!(self.projects())
    }
    async fn load_project(&self, id: ProjectId) -> Result<Option<LoadedProject>, Error> {
        forward!(self.load_project(id))
    }
    async fn committed(&self, project: ProjectId, tx_ids: &[TxId]) -> Result<Vec<CommittedTx>, Error> {
        forward!(self.committed(project, tx_ids))
    }
    async fn commit(&self, project: ProjectId, from: Seq, batch: &Batch) -> Result<(), Error> {
        forward!(self.commit(project, from, batch))
    }
    async fn blob(&self, hash: ContentHash) -> Result<Option<BlobRow>, Error> {
        forward!(self.blob(hash))
    }
    async fn add_blob(&self, blob: &BlobRow, user: UserId) -> Result<(), Error> {
        forward!(self.add_blob(blob, user))
    }
    async fn stored_bytes(&self, user: UserId) -> Result<u64, Error> {
        forward!(self.stored_bytes(user))
    }
    async fn set_blob_stored(
        &self,
        hash: ContentHash,
        stored: StoredAs,
        size: u64,
        stored_hash: ContentHash,
    ) -> Result<(), Error> {
        forward!(self.set_blob_stored(hash, stored, size, stored_hash))
    }
    async fn set_peaks_ready(&self, hash: ContentHash) -> Result<(), Error> {
        forward!(self.set_peaks_ready(hash))
    }
    async fn enqueue_job(&self, id: JobId, kind: JobKind, project: ProjectId, payload: &[u8]) -> Result<(), Error> {
        forward!(self.enqueue_job(id, kind, project, payload))
    }
    async fn claim_job(&self, worker: &str, now_ms: i64, lease_until: i64) -> Result<Option<JobRow>, Error> {
        forward!(self.claim_job(worker, now_ms, lease_until))
    }
    async fn job(&self, id: JobId) -> Result<Option<JobRow>, Error> {
        forward!(self.job(id))
    }
    async fn complete_job(&self, id: JobId, worker: &str, attempt: u32, files: u32) -> Result<bool, Error> {
        forward!(self.complete_job(id, worker, attempt, files))
    }
    async fn fail_job(
        &self,
        id: JobId,
        worker: &str,
        attempt: u32,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<bool, Error> {
        forward!(self.fail_job(id, worker, attempt, error, retry_at))
    }
}

/// The store methods whose SQL is the same on both databases (`$N` placeholders work in
/// SQLite too), written once and expanded inside each `impl Store`. Each store has a `pool`.
macro_rules! shared_queries {
    () => {
        async fn create_user(&self, name: &str, password_hash: &str) -> Result<UserId, Error> {
            let id = UserId::new_v7();
            sqlx::query("INSERT INTO users (id, name, password_hash, created_at) VALUES ($1, $2, $3, $4)")
                .bind(id.0.as_bytes().as_slice())
                .bind(name)
                .bind(password_hash)
                .bind(super::now())
                .execute(&self.pool)
                .await
                .map_err(|e| super::exists_on_conflict(e, || format!("user {name:?}")))?;
            Ok(id)
        }

        async fn set_password(&self, name: &str, password_hash: &str) -> Result<(), Error> {
            let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
                .bind(password_hash)
                .bind(name)
                .execute(&self.pool)
                .await?;
            if done.rows_affected() == 0 { Err(Error::NotFound(format!("user {name:?}"))) } else { Ok(()) }
        }

        async fn user_by_name(&self, name: &str) -> Result<Option<UserRow>, Error> {
            sqlx::query_as("SELECT id, name, password_hash FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
                .map(super::user_row)
                .transpose()
        }

        async fn user(&self, id: UserId) -> Result<Option<UserRow>, Error> {
            sqlx::query_as("SELECT id, name, password_hash FROM users WHERE id = $1")
                .bind(id.0.as_bytes().as_slice())
                .fetch_optional(&self.pool)
                .await?
                .map(super::user_row)
                .transpose()
        }

        async fn create_session(&self, token_hash: [u8; 32], user: UserId, expires_at: i64) -> Result<(), Error> {
            sqlx::query("INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)")
                .bind(token_hash.as_slice())
                .bind(user.0.as_bytes().as_slice())
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn session(&self, token_hash: [u8; 32]) -> Result<Option<(UserId, i64)>, Error> {
            let row: Option<(Vec<u8>, i64)> =
                sqlx::query_as("SELECT user_id, expires_at FROM sessions WHERE token_hash = $1")
                    .bind(token_hash.as_slice())
                    .fetch_optional(&self.pool)
                    .await?;
            row.map(|(user, expires)| Ok((UserId(super::uuid_from(&user)?), expires))).transpose()
        }

        async fn load_project(&self, id: ProjectId) -> Result<Option<LoadedProject>, Error> {
            // One statement, so one snapshot: the seq matches the records on both databases.
            let rows: Vec<(i64, Vec<u8>, i64, i64, Option<Vec<u8>>)> = sqlx::query_as(
                "SELECT p.seq, r.id, r.version, r.seq, r.body FROM projects p \
                 JOIN records r ON r.project_id = p.id WHERE p.id = $1",
            )
            .bind(id.0.as_bytes().as_slice())
            .fetch_all(&self.pool)
            .await?;
            let Some(seq) = rows.first().map(|row| row.0) else { return Ok(None) };
            let rows = rows.into_iter().map(|(_, id, version, seq, body)| (id, version, seq, body)).collect();
            super::loaded_project(id, seq, rows).map(Some)
        }

        async fn projects(&self) -> Result<Vec<ProjectRow>, Error> {
            let rows: Vec<(Vec<u8>, i64, Vec<u8>)> = sqlx::query_as(
                "SELECT p.id, p.seq, r.body FROM projects p JOIN records r ON r.project_id = p.id AND r.id = p.id \
                 ORDER BY p.created_at, p.id",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter()
                .map(|(id, seq, body)| {
                    let id = ProjectId(super::uuid_from(&id)?);
                    Ok(ProjectRow { id, name: super::project_name(&body)?, seq: Seq(super::seq_from(seq)?) })
                })
                .collect()
        }
    };
}

pub(crate) use shared_queries;

/// Runs `$body` inside one database transaction `$tx` on a pooled connection of its own and
/// commits it; the body's `?` and `return Err(…)` end the transaction without committing.
///
/// A connection that saw any error is closed instead of returned to the pool. After a failed
/// `COMMIT` (a full disk) SQLite can leave the connection inside the dead transaction while
/// sqlx counts it as ended, or the other way round; back in the pool, the next `BEGIN` would
/// open only a savepoint, its "commit" would store nothing, and the write lock would stay held.
macro_rules! in_transaction {
    ($pool:expr, |$tx:ident| $body:block) => {{
        let mut conn = $pool.acquire().await?;
        let result: Result<_, Error> = async {
            let mut $tx = sqlx::Connection::begin(&mut *conn).await?;
            let value = $body;
            $tx.commit().await?;
            Ok(value)
        }
        .await;
        if result.is_err() {
            conn.close_on_drop();
        }
        result
    }};
}

pub(crate) use in_transaction;

/// Turns a unique-key violation into [`Error::Exists`] naming `what`.
pub(crate) fn exists_on_conflict(error: sqlx::Error, what: impl FnOnce() -> String) -> Error {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::Exists(what()),
        _ => Error::Database(error),
    }
}

// Conversions between database columns and protocol types, shared by both stores.

pub(crate) fn uuid_from(bytes: &[u8]) -> Result<Uuid, Error> {
    Uuid::from_slice(bytes).map_err(|_| Error::Corrupt(format!("an id column holds {} bytes, not 16", bytes.len())))
}

pub(crate) fn seq_from(value: i64) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::Corrupt(format!("negative counter {value}")))
}

pub(crate) fn to_i64(value: u64) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::Corrupt(format!("counter {value} does not fit the database")))
}

pub(crate) fn user_row((id, name, password_hash): (Vec<u8>, String, String)) -> Result<UserRow, Error> {
    Ok(UserRow { id: UserId(uuid_from(&id)?), name, password_hash })
}

pub(crate) fn committed_row((tx_id, seq, versions): (Vec<u8>, i64, Vec<u8>)) -> Result<CommittedTx, Error> {
    Ok(CommittedTx { tx_id: TxId(uuid_from(&tx_id)?), seq: Seq(seq_from(seq)?), versions: decode_value(&versions)? })
}

/// A `records` row: id, version, seq, body (`None` for a tombstone).
pub(crate) type RecordRow = (Vec<u8>, i64, i64, Option<Vec<u8>>);

/// Builds a loaded project from its seq and its record rows.
pub(crate) fn loaded_project(id: ProjectId, seq: i64, rows: Vec<RecordRow>) -> Result<LoadedProject, Error> {
    let mut record_seqs = Vec::with_capacity(rows.len());
    let mut changes = Vec::with_capacity(rows.len());
    for (record, version, record_seq, body) in rows {
        let record = RecordId(uuid_from(&record)?);
        record_seqs.push((record, Seq(seq_from(record_seq)?)));
        let body = body.map(|bytes| decode_value(&bytes)).transpose()?;
        changes.push(RecordChange { id: record, version: Version(seq_from(version)?), record: body });
    }
    let state = ProjectState::from_changes(id, changes)
        .map_err(|error| Error::Corrupt(format!("project {id} does not load: {error}")))?;
    Ok(LoadedProject { state, seq: Seq(seq_from(seq)?), record_seqs })
}

/// A project's records as rows to insert when it is created.
pub(crate) fn initial_records(state: &ProjectState) -> Result<Vec<StoredRecord>, Error> {
    state
        .snapshot()
        .into_iter()
        .map(|change| {
            let body = change.record.as_ref().map(encode_value).transpose()?;
            Ok(StoredRecord { id: change.id, version: change.version, seq: Seq(0), body })
        })
        .collect()
}

/// The name in a project record's encoded body.
pub(crate) fn project_name(body: &[u8]) -> Result<String, Error> {
    match decode_value(body)? {
        ensemble_protocol::Record::Project(project) => Ok(project.name),
        other => Err(Error::Corrupt(format!("the project row holds a {:?} record", other.kind()))),
    }
}

/// The current time in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
}
