//! The rows behind assets and jobs: stored files (blobs), who stores them, and the job queue.
//!
//! A blob is one distinct file, named by the blake3 of its bytes as uploaded; two uploads of
//! the same file are one blob, and a user's quota counts each blob they uploaded once. Jobs are
//! a queue in the database so that they survive restarts: a worker *claims* one by taking a
//! lease on it (Postgres with `FOR UPDATE SKIP LOCKED`, SQLite by its single writer), and a job
//! whose lease runs out (its worker crashed) is claimed again. Completing or failing a job
//! only counts when the worker still holds that attempt's lease, so a job's outcome is
//! recorded exactly once.

use ensemble_protocol::frame::decode_value;
use ensemble_protocol::wire::{JobKind, JobState};
use ensemble_protocol::{Codec, ContentHash, JobId, ProjectId};

use super::{seq_from, uuid_from};
use crate::Error;

/// What a blob's file on disk holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredAs {
    /// The bytes as uploaded.
    Original,
    /// A FLAC re-encoding of a lossless upload.
    Flac,
}

/// A stored file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRow {
    /// blake3 of the upload: the file's identity.
    pub hash: ContentHash,
    /// Bytes as uploaded.
    pub size: u64,
    /// The upload's encoding.
    pub codec: Codec,
    /// Frames per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// Length in frames.
    pub frames: u64,
    /// What the file on disk holds.
    pub stored: StoredAs,
    /// Its size on disk.
    pub stored_size: u64,
    /// blake3 of the file on disk.
    pub stored_hash: ContentHash,
    /// Whether its peaks file exists.
    pub peaks_ready: bool,
}

/// A queued, running or finished job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRow {
    /// The job.
    pub id: JobId,
    /// What it does.
    pub kind: JobKind,
    /// The project it belongs to.
    pub project: ProjectId,
    /// Its input, in the wire encoding.
    pub payload: Vec<u8>,
    /// Where it is.
    pub state: JobState,
    /// Attempts so far (the running one included).
    pub attempts: u32,
    /// The worker holding it, while running.
    pub worker: Option<String>,
}

pub(crate) fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Wav => "wav",
        Codec::Aiff => "aiff",
        Codec::Flac => "flac",
        Codec::Mp3 => "mp3",
        Codec::Vorbis => "vorbis",
    }
}

fn codec_from(name: &str) -> Result<Codec, Error> {
    Ok(match name {
        "wav" => Codec::Wav,
        "aiff" => Codec::Aiff,
        "flac" => Codec::Flac,
        "mp3" => Codec::Mp3,
        "vorbis" => Codec::Vorbis,
        other => return Err(Error::Corrupt(format!("unknown codec {other:?}"))),
    })
}

pub(crate) fn stored_name(stored: StoredAs) -> &'static str {
    match stored {
        StoredAs::Original => "original",
        StoredAs::Flac => "flac",
    }
}

pub(crate) fn kind_name(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Peaks => "peaks",
        JobKind::Transcode => "transcode",
        JobKind::Export => "export",
    }
}

fn kind_from(name: &str) -> Result<JobKind, Error> {
    Ok(match name {
        "peaks" => JobKind::Peaks,
        "transcode" => JobKind::Transcode,
        "export" => JobKind::Export,
        other => return Err(Error::Corrupt(format!("unknown job kind {other:?}"))),
    })
}

fn hash_from(bytes: &[u8]) -> Result<ContentHash, Error> {
    <[u8; 32]>::try_from(bytes)
        .map(ContentHash)
        .map_err(|_| Error::Corrupt(format!("a hash column holds {} bytes, not 32", bytes.len())))
}

fn small<T: TryFrom<i64>>(value: i64) -> Result<T, Error> {
    T::try_from(value).map_err(|_| Error::Corrupt(format!("{value} is out of range")))
}

/// A `blobs` row: hash, size, codec, sample_rate, channels, frames, stored, stored_size,
/// stored_hash, peaks_ready.
pub(crate) type BlobTuple = (Vec<u8>, i64, String, i64, i64, i64, String, i64, Vec<u8>, i64);

pub(crate) fn blob_row(row: BlobTuple) -> Result<BlobRow, Error> {
    let (hash, size, codec, sample_rate, channels, frames, stored, stored_size, stored_hash, peaks_ready) = row;
    Ok(BlobRow {
        hash: hash_from(&hash)?,
        size: seq_from(size)?,
        codec: codec_from(&codec)?,
        sample_rate: small(sample_rate)?,
        channels: small(channels)?,
        frames: seq_from(frames)?,
        stored: match stored.as_str() {
            "flac" => StoredAs::Flac,
            _ => StoredAs::Original,
        },
        stored_size: seq_from(stored_size)?,
        stored_hash: hash_from(&stored_hash)?,
        peaks_ready: peaks_ready != 0,
    })
}

/// A `jobs` row: id, kind, project_id, payload, state, attempts, worker, error, files.
pub(crate) type JobTuple = (Vec<u8>, String, Vec<u8>, Vec<u8>, String, i64, Option<String>, Option<String>, i64);

pub(crate) fn job_row(row: JobTuple) -> Result<JobRow, Error> {
    let (id, kind, project, payload, state, attempts, worker, error, files) = row;
    let attempts: u32 = small(attempts)?;
    let state = match state.as_str() {
        "queued" => JobState::Queued { attempts },
        "running" => JobState::Running { attempt: attempts },
        "done" => JobState::Done { files: small(files)? },
        "failed" => JobState::Failed { error: error.unwrap_or_default() },
        other => return Err(Error::Corrupt(format!("unknown job state {other:?}"))),
    };
    Ok(JobRow {
        id: JobId(uuid_from(&id)?),
        kind: kind_from(&kind)?,
        project: ProjectId(uuid_from(&project)?),
        payload,
        state,
        attempts,
        worker,
    })
}

/// Decodes a job's payload.
pub fn payload<T: serde::de::DeserializeOwned>(job: &JobRow) -> Result<T, Error> {
    Ok(decode_value(&job.payload)?)
}

/// The current time in Unix milliseconds (job leases and retries).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

/// The blob and job queries, written once for both databases. `$lock` is the row lock the
/// claim's inner select takes: `FOR UPDATE SKIP LOCKED` on Postgres, nothing on SQLite (its one
/// writer already serialises claims).
macro_rules! file_queries {
    ($lock:literal) => {
        async fn claim_job(&self, worker: &str, now_ms: i64, lease_until: i64) -> Result<Option<JobRow>, Error> {
            sqlx::query_as(super::files::claim_sql!($lock))
                .bind(worker)
                .bind(lease_until)
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await?
                .map(super::files::job_row)
                .transpose()
        }

        async fn blob(&self, hash: ContentHash) -> Result<Option<BlobRow>, Error> {
            sqlx::query_as(
                "SELECT hash, size, codec, sample_rate, channels, frames, stored, stored_size, stored_hash, \
                 peaks_ready FROM blobs WHERE hash = $1",
            )
            .bind(hash.0.as_slice())
            .fetch_optional(&self.pool)
            .await?
            .map(super::files::blob_row)
            .transpose()
        }

        async fn add_blob(&self, blob: &BlobRow, user: UserId) -> Result<(), Error> {
            super::in_transaction!(self.pool, |tx| {
                sqlx::query(
                    "INSERT INTO blobs (hash, size, codec, sample_rate, channels, frames, stored, stored_size, \
                 stored_hash, peaks_ready, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (hash) DO NOTHING",
                )
                .bind(blob.hash.0.as_slice())
                .bind(super::to_i64(blob.size)?)
                .bind(super::files::codec_name(blob.codec))
                .bind(i64::from(blob.sample_rate))
                .bind(i64::from(blob.channels))
                .bind(super::to_i64(blob.frames)?)
                .bind(super::files::stored_name(blob.stored))
                .bind(super::to_i64(blob.stored_size)?)
                .bind(blob.stored_hash.0.as_slice())
                .bind(i64::from(blob.peaks_ready))
                .bind(super::now())
                .execute(&mut *tx)
                .await?;
                sqlx::query("INSERT INTO user_blobs (user_id, hash) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(user.0.as_bytes().as_slice())
                    .bind(blob.hash.0.as_slice())
                    .execute(&mut *tx)
                    .await?;
            })
        }

        async fn stored_bytes(&self, user: UserId) -> Result<u64, Error> {
            let (bytes,): (i64,) = sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM user_blobs u \
                 JOIN blobs b ON b.hash = u.hash WHERE u.user_id = $1",
            )
            .bind(user.0.as_bytes().as_slice())
            .fetch_one(&self.pool)
            .await?;
            super::seq_from(bytes)
        }

        async fn set_blob_stored(
            &self,
            hash: ContentHash,
            stored: super::files::StoredAs,
            size: u64,
            stored_hash: ContentHash,
        ) -> Result<(), Error> {
            sqlx::query("UPDATE blobs SET stored = $1, stored_size = $2, stored_hash = $3 WHERE hash = $4")
                .bind(super::files::stored_name(stored))
                .bind(super::to_i64(size)?)
                .bind(stored_hash.0.as_slice())
                .bind(hash.0.as_slice())
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn set_peaks_ready(&self, hash: ContentHash) -> Result<(), Error> {
            sqlx::query("UPDATE blobs SET peaks_ready = 1 WHERE hash = $1")
                .bind(hash.0.as_slice())
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn enqueue_job(&self, id: JobId, kind: JobKind, project: ProjectId, payload: &[u8]) -> Result<(), Error> {
            let now = super::files::now_ms();
            sqlx::query(
                "INSERT INTO jobs (id, kind, project_id, payload, state, attempts, run_after, lease_until, files, \
                 created_at) VALUES ($1, $2, $3, $4, 'queued', 0, $5, 0, 0, $5)",
            )
            .bind(id.0.as_bytes().as_slice())
            .bind(super::files::kind_name(kind))
            .bind(project.0.as_bytes().as_slice())
            .bind(payload)
            .bind(now)
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        async fn job(&self, id: JobId) -> Result<Option<JobRow>, Error> {
            sqlx::query_as(
                "SELECT id, kind, project_id, payload, state, attempts, worker, error, files FROM jobs WHERE id = $1",
            )
            .bind(id.0.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await?
            .map(super::files::job_row)
            .transpose()
        }

        async fn complete_job(&self, id: JobId, worker: &str, attempt: u32, files: u32) -> Result<bool, Error> {
            let done = sqlx::query(
                "UPDATE jobs SET state = 'done', files = $1, worker = NULL \
                 WHERE id = $2 AND state = 'running' AND worker = $3 AND attempts = $4",
            )
            .bind(i64::from(files))
            .bind(id.0.as_bytes().as_slice())
            .bind(worker)
            .bind(i64::from(attempt))
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn fail_job(
            &self,
            id: JobId,
            worker: &str,
            attempt: u32,
            error: &str,
            retry_at: Option<i64>,
        ) -> Result<bool, Error> {
            let state = if retry_at.is_some() { "queued" } else { "failed" };
            let done = sqlx::query(
                "UPDATE jobs SET state = $1, error = $2, run_after = $3, worker = NULL \
                 WHERE id = $4 AND state = 'running' AND worker = $5 AND attempts = $6",
            )
            .bind(state)
            .bind(error)
            .bind(retry_at.unwrap_or(0))
            .bind(id.0.as_bytes().as_slice())
            .bind(worker)
            .bind(i64::from(attempt))
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }
    };
}

pub(crate) use file_queries;

/// The claim statement, with the row lock each database needs in `$lock`: a queued job whose
/// time has come, or a running one whose lease ran out, oldest first.
macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = $1, lease_until = $2 ",
            "WHERE id = (SELECT id FROM jobs WHERE (state = 'queued' AND run_after <= $3) ",
            "OR (state = 'running' AND lease_until <= $3) ORDER BY created_at, id LIMIT 1 ",
            $lock,
            ") RETURNING id, kind, project_id, payload, state, attempts, worker, error, files"
        )
    };
}

pub(crate) use claim_sql;
