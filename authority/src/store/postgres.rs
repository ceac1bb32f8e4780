//! The hosted store: Postgres with `synchronous_commit=on`, so an acknowledged commit is on
//! disk. Batches go in as arrays (`UNNEST`), one statement per table whatever their size.

use std::time::Duration;

use ensemble_protocol::wire::JobKind;
use ensemble_protocol::{ContentHash, JobId, ProjectId, ProjectState, Seq, TxId, UserId};
use sqlx::Executor;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{
    Batch, BlobRow, Claim, CommittedTx, JobRow, Lease, LoadedProject, ProjectRow, Store, StoredRecord, UserRow,
};
use crate::Error;

/// The hosted store.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    /// Connections of their own for renewing and releasing leases: a renewal queued behind
    /// commits that hold every connection of `pool` (a project's row locked, a slow disk)
    /// would let the process's leases expire while it is busy but alive.
    leases: PgPool,
}

impl PostgresStore {
    /// Connects to `url` and migrates the database.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let options = PgPoolOptions::new().acquire_timeout(Duration::from_secs(10)).after_connect(|conn, _| {
            Box::pin(async move {
                // The server default, stated so a tuned server cannot weaken our acks.
                conn.execute("SET synchronous_commit = on").await.map(|_| ())
            })
        });
        let pool = options.clone().max_connections(16).connect(url).await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        let leases = options.max_connections(2).connect(url).await?;
        Ok(PostgresStore { pool, leases })
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
/// (or do nothing at all if it is not at `$3`, or if the project's lease no longer has the
/// epoch `$14` the batch commits under), log the transactions, store the records. Postgres
/// runs a statement outside `BEGIN` as its own transaction, so it is all or nothing. It
/// returns how many projects moved (0 or 1) and the lease's epoch now, which tells a lost
/// lease from a lost race.
const COMMIT: &str = "WITH moved AS (
        UPDATE projects SET seq = $1 WHERE id = $2 AND seq = $3
            AND ($14::int8 IS NULL
                OR EXISTS (SELECT 1 FROM project_leases l WHERE l.project_id = $2 AND l.epoch = $14))
        RETURNING id
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
    SELECT (SELECT count(*) FROM moved), (SELECT epoch FROM project_leases WHERE project_id = $2)";

/// Takes a project's lease when nobody holds it, when it has expired, or when this node holds
/// it already (a new actor of the same process fences the old one); every take raises the
/// epoch.
const ACQUIRE: &str = "INSERT INTO project_leases AS l (project_id, node_id, epoch, expires_at)
    SELECT id, $2, 1, now() + $3 * interval '1 millisecond' FROM projects WHERE id = $1
    ON CONFLICT (project_id) DO UPDATE
    SET node_id = excluded.node_id, epoch = l.epoch + 1, expires_at = excluded.expires_at
    WHERE l.expires_at < now() OR l.node_id = excluded.node_id
    RETURNING epoch";

/// Renews every lease a node still holds at the epochs it holds them at, in one statement.
const RENEW: &str = "UPDATE project_leases AS l SET expires_at = now() + $2 * interval '1 millisecond'
    FROM UNNEST($3::bytea[], $4::int8[]) AS h (project_id, epoch)
    WHERE l.project_id = h.project_id AND l.epoch = h.epoch AND l.node_id = $1
    RETURNING l.project_id";

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

    async fn acquire_lease(&self, project: ProjectId, node: &str, ttl: Duration) -> Result<Claim, Error> {
        let id = project.0.as_bytes().as_slice();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let granted: Option<(i64,)> =
            sqlx::query_as(ACQUIRE).bind(id).bind(node).bind(ttl_ms).fetch_optional(&self.pool).await?;
        if let Some((epoch,)) = granted {
            return Ok(Claim::Granted(Lease { epoch: super::seq_from(epoch)? }));
        }
        let holder: Option<(String, f64)> = sqlx::query_as(
            "SELECT node_id, EXTRACT(EPOCH FROM expires_at - now())::float8 FROM project_leases WHERE project_id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        // Leases are never deleted, only released: no row means no project.
        let (node, seconds) = holder.ok_or_else(|| Error::NotFound(format!("project {project}")))?;
        Ok(Claim::HeldBy { node, expires_in: Duration::from_secs_f64(seconds.max(0.0)) })
    }

    async fn renew_leases(
        &self,
        node: &str,
        held: &[(ProjectId, Lease)],
        ttl: Duration,
    ) -> Result<Vec<ProjectId>, Error> {
        let ids: Vec<Vec<u8>> = held.iter().map(|(project, _)| project.0.as_bytes().to_vec()).collect();
        let epochs: Vec<i64> = held.iter().map(|(_, lease)| super::to_i64(lease.epoch)).collect::<Result<_, _>>()?;
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let renewed: Vec<(Vec<u8>,)> =
            sqlx::query_as(RENEW).bind(node).bind(ttl_ms).bind(&ids).bind(&epochs).fetch_all(&self.leases).await?;
        renewed.into_iter().map(|(id,)| Ok(ProjectId(super::uuid_from(&id)?))).collect()
    }

    async fn lease_holder(&self, project: ProjectId) -> Result<Option<String>, Error> {
        let holder: Option<(String,)> =
            sqlx::query_as("SELECT node_id FROM project_leases WHERE project_id = $1 AND expires_at > now()")
                .bind(project.0.as_bytes().as_slice())
                .fetch_optional(&self.pool)
                .await?;
        Ok(holder.map(|(node,)| node))
    }

    async fn release_leases(&self, node: &str) -> Result<(), Error> {
        sqlx::query("UPDATE project_leases SET expires_at = now() - interval '1 second' WHERE node_id = $1")
            .bind(node)
            .execute(&self.leases)
            .await?;
        Ok(())
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
        let fence = batch.lease.map(|lease| super::to_i64(lease.epoch)).transpose()?;
        let (moved, epoch): (i64, Option<i64>) = sqlx::query_as(COMMIT)
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
            .bind(fence)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| super::exists_on_conflict(e, || "a transaction of this batch".into()))?;
        match (moved, fence) {
            (1, _) => Ok(()),
            (_, Some(fence)) if epoch != Some(fence) => Err(Error::Fenced(project)),
            _ => Err(Error::SeqMoved(project)),
        }
    }
}
