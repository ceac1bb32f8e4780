//! The embedded store: one SQLite file, WAL journal, `synchronous=FULL` so an acknowledged
//! commit survives power loss.

use std::str::FromStr;
use std::time::Duration;

use ensemble_protocol::{ProjectId, ProjectState, Seq, TxId, UserId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use super::{Batch, CommittedTx, LoadedProject, ProjectRow, Store, UserRow};
use crate::Error;

/// The embedded store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
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
        Ok(SqliteStore { pool })
    }
}

fn exists_on_conflict(error: sqlx::Error, what: impl FnOnce() -> String) -> Error {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::Exists(what()),
        _ => Error::Database(error),
    }
}

impl Store for SqliteStore {
    async fn create_user(&self, name: &str, password_hash: &str) -> Result<UserId, Error> {
        let id = UserId::new_v7();
        sqlx::query("INSERT INTO users (id, name, password_hash, created_at) VALUES (?, ?, ?, ?)")
            .bind(id.0.as_bytes().as_slice())
            .bind(name)
            .bind(password_hash)
            .bind(super::now())
            .execute(&self.pool)
            .await
            .map_err(|e| exists_on_conflict(e, || format!("user {name:?}")))?;
        Ok(id)
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<(), Error> {
        let done = sqlx::query("UPDATE users SET password_hash = ? WHERE name = ?")
            .bind(password_hash)
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 { Err(Error::NotFound(format!("user {name:?}"))) } else { Ok(()) }
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<UserRow>, Error> {
        sqlx::query_as("SELECT id, name, password_hash FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(super::user_row)
            .transpose()
    }

    async fn user(&self, id: UserId) -> Result<Option<UserRow>, Error> {
        sqlx::query_as("SELECT id, name, password_hash FROM users WHERE id = ?")
            .bind(id.0.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await?
            .map(super::user_row)
            .transpose()
    }

    async fn create_session(&self, token_hash: [u8; 32], user: UserId, expires_at: i64) -> Result<(), Error> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, expires_at) VALUES (?, ?, ?)")
            .bind(token_hash.as_slice())
            .bind(user.0.as_bytes().as_slice())
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn session(&self, token_hash: [u8; 32]) -> Result<Option<(UserId, i64)>, Error> {
        let row: Option<(Vec<u8>, i64)> =
            sqlx::query_as("SELECT user_id, expires_at FROM sessions WHERE token_hash = ?")
                .bind(token_hash.as_slice())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(user, expires)| Ok((UserId(super::uuid_from(&user)?), expires))).transpose()
    }

    async fn create_project(&self, state: &ProjectState) -> Result<(), Error> {
        let id = state.id();
        let records = super::initial_records(state)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO projects (id, seq, created_at) VALUES (?, 0, ?)")
            .bind(id.0.as_bytes().as_slice())
            .bind(super::now())
            .execute(&mut *tx)
            .await
            .map_err(|e| exists_on_conflict(e, || format!("project {id}")))?;
        for record in &records {
            sqlx::query("INSERT INTO records (project_id, id, version, seq, body) VALUES (?, ?, ?, 0, ?)")
                .bind(id.0.as_bytes().as_slice())
                .bind(record.id.0.as_bytes().as_slice())
                .bind(super::to_i64(record.version.0)?)
                .bind(record.body.as_deref())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
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

    async fn load_project(&self, id: ProjectId) -> Result<Option<LoadedProject>, Error> {
        let mut tx = self.pool.begin().await?;
        let seq: Option<(i64,)> = sqlx::query_as("SELECT seq FROM projects WHERE id = ?")
            .bind(id.0.as_bytes().as_slice())
            .fetch_optional(&mut *tx)
            .await?;
        let Some((seq,)) = seq else { return Ok(None) };
        let rows = sqlx::query_as("SELECT id, version, seq, body FROM records WHERE project_id = ?")
            .bind(id.0.as_bytes().as_slice())
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        super::loaded_project(id, seq, rows).map(Some)
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
        let mut tx = self.pool.begin().await?;
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
            .await?;
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
        tx.commit().await?;
        Ok(())
    }
}
