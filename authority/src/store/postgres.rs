//! The hosted store: Postgres with `synchronous_commit=on`, so an acknowledged commit is on
//! disk. Batches go in as arrays (`UNNEST`), one statement per table whatever their size.

use std::time::Duration;

use ensemble_protocol::wire::JobKind;
use ensemble_protocol::{ContentHash, JobId, ProjectId, ProjectState, Seq, TxId, UserId};
use sqlx::Executor;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{Batch, BlobRow, CommittedTx, JobRow, LoadedProject, ProjectRow, Store, StoredRecord, UserRow};
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

/// Column arrays of records, for `UNNEST`.
type RecordArrays = (Vec<Vec<u8>>, Vec<i64>, Vec<i64>, Vec<Option<Vec<u8>>>);

fn record_arrays(records: &[StoredRecord]) -> Result<RecordArrays, Error> {
    let (mut ids, mut versions, mut seqs, mut bodies) = (vec![], vec![], vec![], vec![]);
    for record in records {
        ids.push(record.id.0.as_bytes().to_vec());
        versions.push(super::to_i64(record.version.0)?);
        seqs.push(super::to_i64(record.seq.0)?);
        bodies.push(record.body.clone());
    }
    Ok((ids, versions, seqs, bodies))
}

/// A group commit in one statement, so one round trip: move the project's seq from `$3` to `$1`
/// (or do nothing at all if it is not at `$3`), log the transactions, store the records.
/// Postgres runs a statement outside `BEGIN` as its own transaction, so it is all or nothing.
const COMMIT: &str = "WITH moved AS (
        UPDATE projects SET seq = $1 WHERE id = $2 AND seq = $3 RETURNING id
    ), logged AS (
        INSERT INTO transactions (tx_id, project_id, seq, author, ops, versions, committed_at)
        SELECT t.tx_id, moved.id, t.seq, t.author, t.ops, t.versions, t.committed_at
        FROM moved, UNNEST($4::bytea[], $5::int8[], $6::bytea[], $7::bytea[], $8::bytea[], $9::int8[])
            AS t (tx_id, seq, author, ops, versions, committed_at)
    ), stored AS (
        INSERT INTO records (project_id, id, version, seq, body)
        SELECT moved.id, r.id, r.version, r.seq, r.body
        FROM moved, UNNEST($10::bytea[], $11::int8[], $12::int8[], $13::bytea[]) AS r (id, version, seq, body)
        ON CONFLICT (project_id, id) DO UPDATE
        SET version = excluded.version, seq = excluded.seq, body = excluded.body
    )
    SELECT count(*) FROM moved";

impl Store for PostgresStore {
    super::shared_queries!();
    super::files::file_queries!("FOR UPDATE SKIP LOCKED");

    async fn poke(&self, project: ProjectId, seq: Seq) -> Result<(), Error> {
        // The poke needs no durability of its own (the commit has it): it does not wait for
        // the disk.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit TO OFF").execute(&mut *tx).await?;
        let payload = crate::pokes::payload(project, seq);
        sqlx::query("SELECT pg_notify($1, $2)").bind(crate::pokes::CHANNEL).bind(payload).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    fn poke_source(&self) -> Option<super::PokeSource> {
        Some(super::PokeSource(self.pool.clone()))
    }

    async fn create_project(&self, state: &ProjectState) -> Result<(), Error> {
        let id = state.id();
        let records = super::initial_records(state)?;
        super::in_transaction!(self.pool, |tx| {
            sqlx::query("INSERT INTO projects (id, seq, created_at) VALUES ($1, 0, $2)")
                .bind(id.0.as_bytes().as_slice())
                .bind(super::now())
                .execute(&mut *tx)
                .await
                .map_err(|e| super::exists_on_conflict(e, || format!("project {id}")))?;
            let (ids, versions, seqs, bodies) = record_arrays(&records)?;
            sqlx::query(
                "INSERT INTO records (project_id, id, version, seq, body) \
             SELECT $1, * FROM UNNEST($2::bytea[], $3::int8[], $4::int8[], $5::bytea[])",
            )
            .bind(id.0.as_bytes().as_slice())
            .bind(&ids)
            .bind(&versions)
            .bind(&seqs)
            .bind(&bodies)
            .execute(&mut *tx)
            .await?;
        })
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
        let (record_ids, record_versions, record_seqs, bodies) = record_arrays(&batch.records)?;
        let (moved,): (i64,) = sqlx::query_as(COMMIT)
            .bind(super::to_i64(to.0)?)
            .bind(project.0.as_bytes().as_slice())
            .bind(super::to_i64(from.0)?)
            .bind(&ids)
            .bind(&seqs)
            .bind(&authors)
            .bind(&ops)
            .bind(&versions)
            .bind(&times)
            .bind(&record_ids)
            .bind(&record_versions)
            .bind(&record_seqs)
            .bind(&bodies)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| super::exists_on_conflict(e, || "a transaction of this batch".into()))?;
        if moved == 1 { Ok(()) } else { Err(Error::SeqMoved(project)) }
    }
}
