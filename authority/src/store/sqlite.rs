//! The embedded store: one SQLite file, WAL journal, `synchronous=FULL` so an acknowledged
//! commit survives power loss.
//!
//! SQLite takes one writer at a time, and a connection that finds the file locked sleeps in
//! growing steps (up to 100 ms each) before it tries again. So the projects' commits, which
//! several actors make at once, take turns on an async lock in this process instead: the
//! next one starts the moment the last one ends, and never sleeps on the file.

use std::str::FromStr;
use std::time::Duration;

use ensemble_protocol::wire::JobKind;
use ensemble_protocol::{ContentHash, JobId, ProjectId, ProjectState, Seq, TxId, UserId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use super::{Batch, BlobRow, Claim, CommittedTx, JobRow, Lease, LoadedProject, ProjectRow, Store, UserRow};
use crate::Error;

/// The embedded store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Held by each commit while it writes (see the module docs).
    writing: std::sync::Arc<tokio::sync::Mutex<()>>,
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
        Ok(SqliteStore { pool, writing: std::sync::Arc::default() })
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
        let Some(to) = batch.last_seq() else { return Ok(()) };
        let project_id = project.0.as_bytes().as_slice();
        let _writing = self.writing.lock().await;
        super::in_transaction!(self.pool, |tx| {
            // The first statement writes, so SQLite takes the write lock at once.
            let moved = sqlx::query("UPDATE projects SET seq = ? WHERE id = ? AND seq = ?")
                .bind(super::to_i64(to.0)?)
                .bind(project_id)
                .bind(super::to_i64(from.0)?)
                .execute(&mut *tx)
                .await?;
            if moved.rows_affected() != 1 {
                return Err(Error::SeqMoved(project));
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
                .execute(&mut *tx)
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
                .execute(&mut *tx)
                .await?;
            }
        })
    }
}
