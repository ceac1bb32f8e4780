//! The embedded store: one SQLite file, WAL journal, `synchronous=FULL` so an acknowledged
//! commit survives power loss.
//!
//! SQLite takes one writer at a time, and a connection that finds the file locked sleeps in
//! growing steps (up to 100 ms each) before it tries again. So the projects' commits, which
//! several actors make at once, go to one writer task instead: it commits every batch waiting
//! when it starts a round in one SQLite transaction (one fsync for all of them), each batch in
//! a savepoint of its own, so one that lost its race fails alone; a round that fails as a whole
//! (a full disk) is tried again batch by batch, so each gets its own answer.

use std::str::FromStr;
use std::time::Duration;

use ensemble_protocol::wire::JobKind;
use ensemble_protocol::{ContentHash, JobId, ProjectId, ProjectState, Seq, TxId, UserId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::{mpsc, oneshot};

use super::{Batch, BlobRow, Claim, CommittedTx, JobRow, Lease, LoadedProject, ProjectRow, Store, UserRow};
use crate::Error;

/// The embedded store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Where commits queue for the writer (see the module docs).
    commits: mpsc::UnboundedSender<Queued>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH`) and migrates it.
    pub async fn open(url: &str) -> Result<Self, Error> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        let (commits, queue) = mpsc::unbounded_channel();
        tokio::spawn(group_commits(pool.clone(), queue));
        Ok(SqliteStore { pool, commits })
    }
}

impl Store for SqliteStore {
    super::shared_queries!();
    super::files::file_queries!("");

    async fn create_project(&self, state: &ProjectState) -> Result<(), Error> {
        let id = state.id();
        let records = super::initial_records(state)?;
        super::in_transaction!(self.pool, |tx| {
            sqlx::query("INSERT INTO projects (id, seq, created_at) VALUES (?, 0, ?)")
                .bind(id.0.as_bytes().as_slice())
                .bind(super::now())
                .execute(&mut *tx)
                .await
                .map_err(|e| super::exists_on_conflict(e, || format!("project {id}")))?;
            for record in &records {
                sqlx::query("INSERT INTO records (project_id, id, version, seq, body) VALUES (?, ?, ?, 0, ?)")
                    .bind(id.0.as_bytes().as_slice())
                    .bind(record.id.0.as_bytes().as_slice())
                    .bind(super::to_i64(record.version.0)?)
                    .bind(record.body.as_deref())
                    .execute(&mut *tx)
                    .await?;
            }
        })
    }

    // One process serves an SQLite file: it holds every lease, and commits need no fence.
    async fn acquire_lease(&self, _: ProjectId, _: &str, _: Duration) -> Result<Claim, Error> {
        Ok(Claim::Granted(Lease { epoch: 0 }))
    }

    async fn renew_leases(&self, _: &str, held: &[(ProjectId, Lease)], _: Duration) -> Result<Vec<ProjectId>, Error> {
        Ok(held.iter().map(|(project, _)| *project).collect())
    }

    async fn release_leases(&self, _: &str) -> Result<(), Error> {
        Ok(())
    }

    async fn lease_holder(&self, _: ProjectId) -> Result<Option<String>, Error> {
        Ok(None)
    }

    async fn committed(&self, project: ProjectId, tx_ids: &[TxId]) -> Result<Vec<CommittedTx>, Error> {
        // One indexed lookup per id: SQLite runs in-process, so this costs microseconds and
        // needs no dynamic SQL.
        let mut conn = self.pool.acquire().await?;
        let mut found = Vec::new();
        for tx_id in tx_ids {
            let row: Option<(Vec<u8>, i64, Vec<u8>)> =
                sqlx::query_as("SELECT tx_id, seq, versions FROM transactions WHERE project_id = ? AND tx_id = ?")
                    .bind(project.0.as_bytes().as_slice())
                    .bind(tx_id.0.as_bytes().as_slice())
                    .fetch_optional(&mut *conn)
                    .await?;
            found.extend(row.map(super::committed_row).transpose()?);
        }
        Ok(found)
    }

    async fn commit(&self, project: ProjectId, from: Seq, batch: &Batch) -> Result<(), Error> {
        if batch.last_seq().is_none() {
            return Ok(());
        }
        let (done, outcome) = oneshot::channel();
        let queued = Queued { project, from, batch: batch.clone(), done };
        let stopped = || Error::Connection("the store's writer has stopped".into());
        self.commits.send(queued).map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

/// A batch waiting for the next group commit, and who waits for its outcome.
struct Queued {
    project: ProjectId,
    from: Seq,
    batch: Batch,
    done: oneshot::Sender<Result<(), Error>>,
}

/// Most batches committed in one SQLite transaction.
const MAX_ROUND: usize = 256;

/// Commits what the projects' actors queue, round after round: every batch waiting when a
/// round starts goes into one SQLite transaction (one fsync), in a savepoint of its own.
async fn group_commits(pool: SqlitePool, mut queue: mpsc::UnboundedReceiver<Queued>) {
    let mut round = Vec::with_capacity(MAX_ROUND);
    while queue.recv_many(&mut round, MAX_ROUND).await > 0 {
        let outcomes = match round.as_slice() {
            [one] => vec![commit_alone(&pool, one).await],
            _ => match commit_round(&pool, &round).await {
                Ok(outcomes) => outcomes,
                // The round failed as a whole (a full disk, a lost file): nothing of it is
                // stored. Each batch is tried alone, so each gets its own answer.
                Err(error) => {
                    tracing::warn!(%error, batches = round.len(), "a group commit failed; committing its batches one by one");
                    let mut outcomes = Vec::with_capacity(round.len());
                    for queued in &round {
                        outcomes.push(commit_alone(&pool, queued).await);
                    }
                    outcomes
                }
            },
        };
        for (queued, outcome) in round.drain(..).zip(outcomes) {
            let _ = queued.done.send(outcome);
        }
    }
}

/// One batch in a transaction of its own.
async fn commit_alone(pool: &SqlitePool, queued: &Queued) -> Result<(), Error> {
    super::in_transaction!(pool, |tx| {
        write_batch(&mut tx, queued).await?;
    })
}

/// Every batch of `round` in one transaction, each in a savepoint: a batch that lost a race
/// (its project's seq moved) or replays a logged transaction fails alone. Any other failure
/// fails the round, and nothing of it is stored.
async fn commit_round(pool: &SqlitePool, round: &[Queued]) -> Result<Vec<Result<(), Error>>, Error> {
    let mut conn = pool.acquire().await?;
    let result: Result<_, Error> = async {
        // IMMEDIATE: the write lock now, not at the first write.
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        let mut outcomes = Vec::with_capacity(round.len());
        for queued in round {
            sqlx::query("SAVEPOINT batch").execute(&mut *conn).await?;
            match write_batch(&mut conn, queued).await {
                Ok(()) => outcomes.push(Ok(())),
                Err(error @ (Error::SeqMoved(_) | Error::Exists(_))) => {
                    sqlx::query("ROLLBACK TO batch").execute(&mut *conn).await?;
                    outcomes.push(Err(error));
                }
                Err(error) => return Err(error),
            }
            sqlx::query("RELEASE batch").execute(&mut *conn).await?;
        }
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        Ok(outcomes)
    }
    .await;
    if result.is_err() {
        // Whatever state the failure left it in, the connection is not used again (see
        // `in_transaction!`).
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        conn.close_on_drop();
    }
    result
}

/// The statements of one batch: move the project's seq (or fail if it moved), log the
/// transactions, store the records.
async fn write_batch(conn: &mut sqlx::SqliteConnection, queued: &Queued) -> Result<(), Error> {
    let Queued { project, from, batch, .. } = queued;
    let Some(to) = batch.last_seq() else { return Ok(()) };
    let project_id = project.0.as_bytes().as_slice();
    let moved = sqlx::query("UPDATE projects SET seq = ? WHERE id = ? AND seq = ?")
        .bind(super::to_i64(to.0)?)
        .bind(project_id)
        .bind(super::to_i64(from.0)?)
        .execute(&mut *conn)
        .await?;
    if moved.rows_affected() != 1 {
        return Err(Error::SeqMoved(*project));
    }
    for logged in &batch.txs {
        sqlx::query(
            "INSERT INTO transactions (tx_id, project_id, seq, author, ops, versions, committed_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(logged.tx_id.0.as_bytes().as_slice())
        .bind(project_id)
        .bind(super::to_i64(logged.seq.0)?)
        .bind(logged.author.0.as_bytes().as_slice())
        .bind(logged.ops.as_slice())
        .bind(logged.versions.as_slice())
        .bind(logged.committed_at)
        .execute(&mut *conn)
        .await
        .map_err(|e| super::exists_on_conflict(e, || format!("transaction {}", logged.tx_id)))?;
    }
    for record in &batch.records {
        sqlx::query(
            "INSERT INTO records (project_id, id, version, seq, body) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (project_id, id) DO UPDATE \
             SET version = excluded.version, seq = excluded.seq, body = excluded.body",
        )
        .bind(project_id)
        .bind(record.id.0.as_bytes().as_slice())
        .bind(super::to_i64(record.version.0)?)
        .bind(super::to_i64(record.seq.0)?)
        .bind(record.body.as_deref())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
