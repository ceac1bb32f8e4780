//! The native local store: one SQLite file per project.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ensemble_protocol::frame::{decode_value, encode_value};
use ensemble_protocol::wire::{Bump, CatchUp};
use ensemble_protocol::{ProjectId, RecordChange, RecordId, Seq, Transaction, TxId, Version};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, Transaction as DbTransaction};
use uuid::Uuid;

use super::{LocalStore, Saved};
use crate::Error;

/// A project's local store on native platforms: one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteReplicaStore {
    pool: SqlitePool,
    project: ProjectId,
}

impl SqliteReplicaStore {
    /// Opens (creating if needed) the store for `project` in `dir`.
    pub async fn open(dir: &Path, project: ProjectId) -> Result<Self, Error> {
        std::fs::create_dir_all(dir)?;
        Self::open_file(&Self::path(dir, project), project).await
    }

    /// The file of `project`'s store in `dir`.
    pub fn path(dir: &Path, project: ProjectId) -> PathBuf {
        dir.join(format!("{}.sqlite", project.0.simple()))
    }

    /// [`SqliteReplicaStore::open`], but a file that is not a readable store (damaged, or not
    /// SQLite at all) is renamed aside, kept for recovery, and a fresh store takes its place:
    /// the authority has the confirmed state to fill it again. Returns the store and, when a
    /// file was set aside, what happened, for the user.
    pub async fn open_or_set_aside(dir: &Path, project: ProjectId) -> Result<(Self, Option<String>), Error> {
        match Self::open(dir, project).await {
            Ok(store) => Ok((store, None)),
            Err(error) if is_damage(&error) => {
                let path = Self::path(dir, project);
                let aside = path.with_extension(format!("damaged-{}", std::process::id()));
                std::fs::rename(&path, &aside)?;
                for suffix in ["-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                let store = Self::open(dir, project).await?;
                let note = format!("the local copy was unreadable ({error}); it was kept as {}", aside.display());
                Ok((store, Some(note)))
            }
            Err(error) => Err(error),
        }
    }

    /// Opens (creating if needed) the store for `project` in the file `path`.
    pub async fn open_file(path: &Path, project: ProjectId) -> Result<Self, Error> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        // One connection: the sync worker is the only writer, and its writes stay in order.
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
        sqlx::migrate!("migrations/replica").run(&pool).await?;
        let store = SqliteReplicaStore { pool, project };
        if let Some(found) = store.stored_project().await?
            && found != project
        {
            return Err(Error::WrongProject { expected: project, found });
        }
        Ok(store)
    }

    async fn stored_project(&self) -> Result<Option<ProjectId>, Error> {
        let row = sqlx::query("SELECT project FROM replica").fetch_optional(&self.pool).await?;
        row.map(|row| uuid(row.try_get("project")?).map(ProjectId)).transpose()
    }

    async fn set_seq(&self, db: &mut DbTransaction<'_, Sqlite>, seq: Seq) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO replica (singleton, project, seq) VALUES (1, ?, ?) \
             ON CONFLICT (singleton) DO UPDATE SET seq = excluded.seq",
        )
        .bind(self.project.0.as_bytes().as_slice())
        .bind(to_i64(seq.0)?)
        .execute(&mut **db)
        .await?;
        Ok(())
    }
}

async fn upsert(db: &mut DbTransaction<'_, Sqlite>, changes: &[RecordChange]) -> Result<(), Error> {
    for change in changes {
        let body = change.record.as_ref().map(encode_value).transpose()?;
        sqlx::query(
            "INSERT INTO records (id, version, record) VALUES (?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, record = excluded.record",
        )
        .bind(change.id.0.as_bytes().as_slice())
        .bind(to_i64(change.version.0)?)
        .bind(body)
        .execute(&mut **db)
        .await?;
    }
    Ok(())
}

impl LocalStore for SqliteReplicaStore {
    async fn load(&self) -> Result<Option<Saved>, Error> {
        let Some(row) = sqlx::query("SELECT seq FROM replica").fetch_optional(&self.pool).await? else {
            return Ok(None);
        };
        let seq = Seq(to_u64(row.try_get("seq")?)?);
        let rows = sqlx::query("SELECT id, version, record FROM records").fetch_all(&self.pool).await?;
        let records = rows
            .iter()
            .map(|row| {
                let id = RecordId(uuid(row.try_get("id")?)?);
                let version = Version(to_u64(row.try_get("version")?)?);
                let body: Option<&[u8]> = row.try_get("record")?;
                let record = body.map(decode_value).transpose()?;
                Ok(RecordChange { id, version, record })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let rows = sqlx::query("SELECT tx FROM pending ORDER BY position").fetch_all(&self.pool).await?;
        let pending = rows
            .iter()
            .map(|row| Ok(decode_value(row.try_get::<&[u8], _>("tx")?)?))
            .collect::<Result<Vec<Transaction>, Error>>()?;
        Ok(Some(Saved { project: self.project, seq, records, pending }))
    }

    async fn save_catch_up(&self, seq: Seq, catch_up: &CatchUp) -> Result<(), Error> {
        let mut db = self.pool.begin().await?;
        match catch_up {
            CatchUp::Snapshot(records) => {
                sqlx::query("DELETE FROM records").execute(&mut *db).await?;
                upsert(&mut db, records).await?;
            }
            CatchUp::Delta(changes) => upsert(&mut db, changes).await?,
        }
        self.set_seq(&mut db, seq).await?;
        db.commit().await?;
        Ok(())
    }

    async fn save_bumps(&self, bumps: &[Bump]) -> Result<(), Error> {
        let Some(last) = bumps.last() else { return Ok(()) };
        let mut db = self.pool.begin().await?;
        for bump in bumps {
            upsert(&mut db, &bump.changes).await?;
            sqlx::query("DELETE FROM pending WHERE tx_id = ?")
                .bind(bump.tx_id.0.as_bytes().as_slice())
                .execute(&mut *db)
                .await?;
        }
        self.set_seq(&mut db, last.seq).await?;
        db.commit().await?;
        Ok(())
    }

    async fn push_pending(&self, txs: &[Transaction]) -> Result<(), Error> {
        let mut db = self.pool.begin().await?;
        for tx in txs {
            sqlx::query("INSERT INTO pending (tx_id, tx) VALUES (?, ?) ON CONFLICT (tx_id) DO NOTHING")
                .bind(tx.id.0.as_bytes().as_slice())
                .bind(encode_value(tx)?)
                .execute(&mut *db)
                .await?;
        }
        db.commit().await?;
        Ok(())
    }

    async fn forget_pending(&self, tx_ids: &[TxId]) -> Result<(), Error> {
        let mut db = self.pool.begin().await?;
        for tx_id in tx_ids {
            sqlx::query("DELETE FROM pending WHERE tx_id = ?")
                .bind(tx_id.0.as_bytes().as_slice())
                .execute(&mut *db)
                .await?;
        }
        db.commit().await?;
        Ok(())
    }
}

/// Whether `error` means the file itself is damaged (rather than busy, or the disk full).
fn is_damage(error: &Error) -> bool {
    match error {
        Error::Migrate(_) | Error::Corrupt(_) | Error::Encoding(_) => true,
        Error::Store(sqlx::Error::Database(database)) => {
            // SQLITE_CORRUPT (11) and SQLITE_NOTADB (26), with or without extended codes.
            database.code().and_then(|code| code.parse::<i32>().ok()).is_some_and(|code| matches!(code & 0xff, 11 | 26))
        }
        _ => false,
    }
}

fn uuid(bytes: &[u8]) -> Result<Uuid, Error> {
    Uuid::from_slice(bytes).map_err(|error| Error::Corrupt(error.to_string()))
}

fn to_i64(value: u64) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::Corrupt(format!("{value} does not fit the database")))
}

fn to_u64(value: i64) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::Corrupt(format!("negative value {value}")))
}
