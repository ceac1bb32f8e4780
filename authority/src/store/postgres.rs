//! The hosted store: Postgres with `synchronous_commit=on`, so an acknowledged commit is on
//! disk. Batches go in as arrays (`UNNEST`), one statement per table whatever their size.

use std::time::Duration;

use ensemble_protocol::{ProjectId, ProjectState, Seq, TxId, UserId};
use sqlx::Executor;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{Batch, CommittedTx, LoadedProject, ProjectRow, Store, StoredRecord, UserRow};
use crate::Error;

/// The hosted store.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` and migrates the database.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // The server default, stated so a tuned server cannot weaken our acks.
                    conn.execute("SET synchronous_commit = on").await.map(|_| ())
                })
            })
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(PostgresStore { pool })
    }
}

fn exists_on_conflict(error: sqlx::Error, what: impl FnOnce() -> String) -> Error {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::Exists(what()),
        _ => Error::Database(error),
    }
}

/// Column arrays for inserting records with `UNNEST`.
struct RecordColumns {
    ids: Vec<Vec<u8>>,
    versions: Vec<i64>,
    seqs: Vec<i64>,
    bodies: Vec<Option<Vec<u8>>>,
}

fn record_columns(records: &[StoredRecord]) -> Result<RecordColumns, Error> {
    let mut columns = RecordColumns { ids: vec![], versions: vec![], seqs: vec![], bodies: vec![] };
    for record in records {
        columns.ids.push(record.id.0.as_bytes().to_vec());
        columns.versions.push(super::to_i64(record.version.0)?);
        columns.seqs.push(super::to_i64(record.seq.0)?);
        columns.bodies.push(record.body.clone());
    }
    Ok(columns)
}

const UPSERT_RECORDS: &str = "INSERT INTO records (project_id, id, version, seq, body) \
     SELECT $1, * FROM UNNEST($2::bytea[], $3::int8[], $4::int8[], $5::bytea[]) \
     ON CONFLICT (project_id, id) DO UPDATE \
     SET version = excluded.version, seq = excluded.seq, body = excluded.body";

impl Store for PostgresStore {
    async fn create_user(&self, name: &str, password_hash: &str) -> Result<UserId, Error> {
        let id = UserId::new_v7();
        sqlx::query("INSERT INTO users (id, name, password_hash, created_at) VALUES ($1, $2, $3, $4)")
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

    async fn create_project(&self, state: &ProjectState) -> Result<(), Error> {
        let id = state.id();
        let columns = record_columns(&super::initial_records(state)?)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO projects (id, seq, created_at) VALUES ($1, 0, $2)")
            .bind(id.0.as_bytes().as_slice())
            .bind(super::now())
            .execute(&mut *tx)
            .await
            .map_err(|e| exists_on_conflict(e, || format!("project {id}")))?;
        sqlx::query(UPSERT_RECORDS)
            .bind(id.0.as_bytes().as_slice())
            .bind(&columns.ids)
            .bind(&columns.versions)
            .bind(&columns.seqs)
            .bind(&columns.bodies)
            .execute(&mut *tx)
            .await?;
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
        // One snapshot for both reads, so the seq matches the records.
        tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
        let seq: Option<(i64,)> = sqlx::query_as("SELECT seq FROM projects WHERE id = $1")
            .bind(id.0.as_bytes().as_slice())
            .fetch_optional(&mut *tx)
            .await?;
        let Some((seq,)) = seq else { return Ok(None) };
        let rows = sqlx::query_as("SELECT id, version, seq, body FROM records WHERE project_id = $1")
            .bind(id.0.as_bytes().as_slice())
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        super::loaded_project(id, seq, rows).map(Some)
    }

    async fn committed(&self, project: ProjectId, tx_ids: &[TxId]) -> Result<Vec<CommittedTx>, Error> {
        let ids: Vec<Vec<u8>> = tx_ids.iter().map(|id| id.0.as_bytes().to_vec()).collect();
        let rows: Vec<(Vec<u8>, i64, Vec<u8>)> =
            sqlx::query_as("SELECT tx_id, seq, versions FROM transactions WHERE project_id = $1 AND tx_id = ANY($2)")
                .bind(project.0.as_bytes().as_slice())
                .bind(&ids)
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(super::committed_row).collect()
    }

    async fn commit(&self, project: ProjectId, from: Seq, batch: &Batch) -> Result<(), Error> {
        let Some(to) = batch.last_seq() else { return Ok(()) };
        let project_id = project.0.as_bytes().as_slice();
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query("UPDATE projects SET seq = $1 WHERE id = $2 AND seq = $3")
            .bind(super::to_i64(to.0)?)
            .bind(project_id)
            .bind(super::to_i64(from.0)?)
            .execute(&mut *tx)
            .await?;
        if moved.rows_affected() != 1 {
            return Err(Error::SeqMoved(project));
        }
        let (mut ids, mut seqs, mut authors, mut ops, mut versions, mut times) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for logged in &batch.txs {
            ids.push(logged.tx_id.0.as_bytes().to_vec());
            seqs.push(super::to_i64(logged.seq.0)?);
            authors.push(logged.author.0.as_bytes().to_vec());
            ops.push(logged.ops.clone());
            versions.push(logged.versions.clone());
            times.push(logged.committed_at);
        }
        sqlx::query(
            "INSERT INTO transactions (tx_id, project_id, seq, author, ops, versions, committed_at) \
             SELECT t.tx_id, $1, t.seq, t.author, t.ops, t.versions, t.committed_at \
             FROM UNNEST($2::bytea[], $3::int8[], $4::bytea[], $5::bytea[], $6::bytea[], $7::int8[]) \
             AS t (tx_id, seq, author, ops, versions, committed_at)",
        )
        .bind(project_id)
        .bind(&ids)
        .bind(&seqs)
        .bind(&authors)
        .bind(&ops)
        .bind(&versions)
        .bind(&times)
        .execute(&mut *tx)
        .await?;
        let columns = record_columns(&batch.records)?;
        sqlx::query(UPSERT_RECORDS)
            .bind(project_id)
            .bind(&columns.ids)
            .bind(&columns.versions)
            .bind(&columns.seqs)
            .bind(&columns.bodies)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
