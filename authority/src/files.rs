//! Audio files at the authority: where they live on disk, and the uploads and downloads that
//! move them, each on a QUIC stream of its own (see [`ensemble_protocol::transfer`]).
//!
//! Files are stored by content: `blobs/<hash>` holds the file whose upload hashed to `hash`,
//! whichever project uses it. An upload in progress grows `partial/<user>-<hash>` one verified
//! chunk at a time, so a cut upload resumes where it stopped; only when the whole file hashes
//! to the announced hash and decodes as audio is it renamed into `blobs/`, the project given its
//! `AudioAsset` record (through the project's actor, so collaborators get a bump), and the
//! peaks and transcode jobs queued. The size limit is checked before the first byte and at
//! every chunk, and the quota before the first byte, so an oversized upload never touches the
//! disk.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ensemble_protocol::frame::encode_value;
use ensemble_protocol::transfer::{Chunk, MAX_CHUNK, Served, TransferError, TransferReply, TransferRequest};
use ensemble_protocol::wire::JobKind;
use ensemble_protocol::{
    AssetId, AudioAsset, Codec, ContentHash, FrameCodec, Frames, JobId, Op, ProjectId, ProjectState, Record, Role,
    ServerMsg, Transaction, UserId,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use ensemble_net::hash::hash_file;

use crate::Error;
use crate::actor::Projects;
use crate::jobs::{JobRunner, PeaksJob, TranscodeJob};
use crate::store::{BlobRow, Store, StoredAs};
use ensemble_net::framed::{ReadFailure, read_frame};

/// How the authority stores files and runs jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileOptions {
    /// The folder holding blobs, partial uploads, peaks and exports.
    pub dir: PathBuf,
    /// The largest file one upload may be.
    pub max_upload: u64,
    /// The bytes of distinct files one user may store.
    pub quota: u64,
    /// Jobs run at once (on the rayon pool); 0 runs none here (another process sharing the
    /// database runs them).
    pub workers: usize,
    /// How long a worker holds a job before another may take it over.
    pub lease: Duration,
}

impl FileOptions {
    /// Files in `dir`, 2 GiB per upload, 50 GiB per user, a worker per core, 10-minute leases.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        FileOptions {
            dir: dir.into(),
            max_upload: ensemble_protocol::transfer::DEFAULT_MAX_UPLOAD,
            quota: 50 << 30,
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            lease: Duration::from_secs(600),
        }
    }
}

/// The layout of the files folder.
#[derive(Clone, Debug)]
pub struct Library {
    dir: PathBuf,
}

impl Library {
    /// The library in `dir`, its folders made if missing.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        for sub in ["blobs", "partial", "peaks", "exports"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        Ok(Library { dir: dir.to_path_buf() })
    }

    /// The stored file of the upload that hashed to `hash`.
    pub fn blob(&self, hash: ContentHash) -> PathBuf {
        self.dir.join("blobs").join(hash.to_string())
    }

    fn partial(&self, user: UserId, hash: ContentHash) -> PathBuf {
        self.dir.join("partial").join(format!("{}-{hash}", user.0.simple()))
    }

    /// The peaks file of a blob.
    pub fn peaks(&self, hash: ContentHash) -> PathBuf {
        self.dir.join("peaks").join(format!("{hash}.peaks"))
    }

    /// File `index` of an export job.
    pub fn export(&self, job: JobId, index: u32) -> PathBuf {
        self.dir.join("exports").join(format!("{}-{index}.wav", job.0.simple()))
    }
}

/// The codec a file's first bytes announce.
pub fn sniff_codec(head: &[u8]) -> Option<Codec> {
    match head {
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'A', b'V', b'E', ..] => Some(Codec::Wav),
        [b'F', b'O', b'R', b'M', _, _, _, _, b'A', b'I', b'F', ..] => Some(Codec::Aiff),
        [b'f', b'L', b'a', b'C', ..] => Some(Codec::Flac),
        [b'O', b'g', b'g', b'S', ..] => Some(Codec::Vorbis),
        [b'I', b'D', b'3', ..] => Some(Codec::Mp3),
        [0xff, second, ..] if second & 0xe0 == 0xe0 => Some(Codec::Mp3),
        _ => None,
    }
}

/// What a transfer stream needs from the authority.
pub(crate) struct Transfers<'a, S> {
    pub(crate) store: &'a S,
    pub(crate) projects: &'a Projects<S>,
    pub(crate) library: &'a Library,
    pub(crate) options: &'a FileOptions,
    pub(crate) jobs: &'a JobRunner,
}

/// How the chunks of an upload ended.
enum Received {
    /// Every byte arrived.
    Whole,
    /// The client stopped early.
    Stopped,
}

/// How a transfer stream ended badly: the connection survives, the stream is reset.
enum Ended {
    /// Told the client why.
    Refused(TransferError),
    /// The stream broke or sent garbage.
    Broken(String),
}

impl From<Error> for Ended {
    fn from(error: Error) -> Self {
        tracing::error!(%error, "transfer failed");
        Ended::Refused(TransferError::Internal(error.to_string()))
    }
}

impl From<std::io::Error> for Ended {
    fn from(error: std::io::Error) -> Self {
        Ended::from(Error::Io(error))
    }
}

async fn reply(send: &mut (impl AsyncWrite + Unpin + Send), reply: &TransferReply) -> Result<(), Ended> {
    let bytes = FrameCodec::default().encode_to_vec(reply).map_err(|error| Ended::Broken(error.to_string()))?;
    send.write_all(&bytes).await.map_err(|error| Ended::Broken(error.to_string()))
}

impl<S: Store> Transfers<'_, S> {
    /// Serves one transfer stream for `user`.
    pub(crate) async fn serve(
        &self,
        mut send: impl AsyncWrite + Unpin + Send,
        mut recv: impl AsyncRead + Unpin + Send,
        user: UserId,
    ) {
        let codec = FrameCodec::new(64 << 10);
        let request = match read_frame::<TransferRequest>(&mut recv, &codec).await {
            Ok(Some(request)) => request,
            Ok(None) | Err(ReadFailure::Connection(_) | ReadFailure::Stalled(_)) => return,
            Err(ReadFailure::Frame(error)) => {
                tracing::debug!(%error, "bad transfer request");
                return;
            }
        };
        let served = match request {
            TransferRequest::Upload { project, name, hash, size } => {
                self.upload(&mut send, &mut recv, user, project, name, hash, size).await
            }
            TransferRequest::Download { project, asset, what, offset } => {
                self.download(&mut send, user, project, asset, what, offset).await
            }
            TransferRequest::DownloadExport { job, index, offset } => {
                self.download_export(&mut send, user, job, index, offset).await
            }
        };
        match served {
            Ok(()) => {
                let _ = send.shutdown().await;
            }
            Err(Ended::Refused(error)) => {
                tracing::debug!(%error, "transfer refused");
                let _ = reply(&mut send, &TransferReply::Refused(error)).await;
                let _ = send.shutdown().await;
                // Whatever else the client sends is not read.
                drop(recv);
            }
            Err(Ended::Broken(reason)) => tracing::debug!(%reason, "transfer stream broke"),
        }
    }

    /// The project's state and the user's role there; refuses non-members.
    async fn member(&self, project: ProjectId, user: UserId) -> Result<(ProjectState, Role), Ended> {
        let loaded = self.store.load_project(project).await?;
        let state = loaded.ok_or_else(|| Ended::Refused(TransferError::NotFound(format!("project {project}"))))?.state;
        let role = state.role_of(user).ok_or_else(|| Ended::Refused(TransferError::Denied("not a member".into())))?;
        Ok((state, role))
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload(
        &self,
        send: &mut (impl AsyncWrite + Unpin + Send),
        recv: &mut (impl AsyncRead + Unpin + Send),
        user: UserId,
        project: ProjectId,
        name: String,
        hash: ContentHash,
        size: u64,
    ) -> Result<(), Ended> {
        let (state, role) = self.member(project, user).await?;
        if role == Role::Viewer {
            return Err(Ended::Refused(TransferError::Denied("viewers cannot add audio".into())));
        }
        if size > self.options.max_upload {
            return Err(Ended::Refused(TransferError::TooLarge { size, limit: self.options.max_upload }));
        }
        if let Some(blob) = self.store.blob(hash).await? {
            self.store.add_blob(&blob, user).await?;
            let asset = self.asset_record(&state, &blob, &name).await?;
            return reply(send, &TransferReply::Stored { asset, deduplicated: true }).await;
        }
        let used = self.store.stored_bytes(user).await?;
        if used.saturating_add(size) > self.options.quota {
            return Err(Ended::Refused(TransferError::OverQuota { used, quota: self.options.quota, size }));
        }
        let partial = self.library.partial(user, hash);
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&partial)?;
        let mut offset = file.metadata()?.len();
        if offset > size {
            // A partial longer than the file it is for: start again.
            file.set_len(0)?;
            offset = 0;
        }
        // The network side checks each chunk's CRC; a thread of its own appends it to the partial
        // file and grows the whole file's hash, so the disk and the network work at once. A
        // resumed upload first hashes what it already has.
        let (to_disk, mut chunks) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let (resume_from, disk_partial) = (offset, partial.clone());
        let disk = tokio::task::spawn_blocking(move || -> std::io::Result<blake3::Hasher> {
            let mut hasher = blake3::Hasher::new();
            if resume_from > 0 {
                hasher.update_reader(std::fs::File::open(&disk_partial)?)?;
            }
            while let Some(bytes) = chunks.blocking_recv() {
                std::io::Write::write_all(&mut file, &bytes)?;
                hasher.update(&bytes);
            }
            file.sync_all()?;
            Ok(hasher)
        });
        let received = self.receive_chunks(send, recv, offset, size, &to_disk).await;
        drop(to_disk);
        let hasher = disk.await.map_err(|error| Ended::from(Error::Config(error.to_string())))??;
        match received? {
            Received::Whole => {}
            // The client stopped: what arrived is kept for a resume.
            Received::Stopped => return Ok(()),
        }
        let found = ContentHash(*hasher.finalize().as_bytes());
        if found != hash {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(Ended::Refused(TransferError::HashMismatch { expected: hash, found }));
        }
        let blob = self.finish_upload(&partial, hash, size).await?;
        self.store.add_blob(&blob, user).await?;
        let asset = self.asset_record(&state, &blob, &name).await?;
        self.jobs.enqueue(self.store, JobKind::Peaks, project, &PeaksJob { hash, project, asset }).await?;
        if blob.codec == Codec::Wav {
            self.jobs.enqueue(self.store, JobKind::Transcode, project, &TranscodeJob { hash }).await?;
        }
        reply(send, &TransferReply::Stored { asset, deduplicated: false }).await
    }

    /// Reads chunks from `offset` to `size`, checks each, and hands them to the disk thread.
    async fn receive_chunks(
        &self,
        send: &mut (impl AsyncWrite + Unpin + Send),
        recv: &mut (impl AsyncRead + Unpin + Send),
        mut offset: u64,
        size: u64,
        to_disk: &tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> Result<Received, Ended> {
        reply(send, &TransferReply::SendFrom { offset }).await?;
        let codec = FrameCodec::new(1024);
        while offset < size {
            let chunk = match read_frame::<Chunk>(recv, &codec).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) | Err(ReadFailure::Connection(_) | ReadFailure::Stalled(_)) => return Ok(Received::Stopped),
                Err(ReadFailure::Frame(error)) => return Err(Ended::Broken(error.to_string())),
            };
            if chunk.offset != offset || chunk.len > MAX_CHUNK || offset + u64::from(chunk.len) > size {
                let refused = TransferError::ChunkOutOfPlace { offset: chunk.offset, len: chunk.len, expected: offset };
                return Err(Ended::Refused(refused));
            }
            let mut bytes = vec![0u8; chunk.len as usize];
            if recv.read_exact(&mut bytes).await.is_err() {
                return Ok(Received::Stopped);
            }
            if crc32fast::hash(&bytes) != chunk.crc {
                return Err(Ended::Refused(TransferError::CorruptChunk { offset }));
            }
            if to_disk.send(bytes).await.is_err() {
                return Err(Ended::from(Error::Config("the upload's disk writer stopped".into())));
            }
            offset += u64::from(chunk.len);
        }
        Ok(Received::Whole)
    }

    /// Checks that a complete upload (whose hash is right) is audio, and moves it into the blobs.
    async fn finish_upload(&self, partial: &Path, hash: ContentHash, size: u64) -> Result<BlobRow, Ended> {
        let path = partial.to_path_buf();
        let probed = tokio::task::spawn_blocking(move || probe(&path)).await;
        let probed = probed.map_err(|error| Ended::from(Error::Config(error.to_string())))?;
        let (codec, sample_rate, channels, frames) = match probed {
            Ok(probed) => probed,
            Err(refused) => {
                let _ = tokio::fs::remove_file(partial).await;
                return Err(Ended::Refused(refused));
            }
        };
        tokio::fs::rename(partial, self.library.blob(hash)).await?;
        Ok(BlobRow {
            hash,
            size,
            codec,
            sample_rate,
            channels,
            frames,
            stored: StoredAs::Original,
            stored_size: size,
            stored_hash: hash,
            peaks_ready: false,
        })
    }

    /// The project's asset for `blob`: the existing one, or a new record made by the authority.
    async fn asset_record(&self, state: &ProjectState, blob: &BlobRow, name: &str) -> Result<AssetId, Ended> {
        let existing = state.records().find_map(|(id, entry)| match &entry.record {
            Record::AudioAsset(asset) if asset.hash == blob.hash => Some(AssetId(id.0)),
            _ => None,
        });
        if let Some(asset) = existing {
            return Ok(asset);
        }
        let asset = AssetId::new_v7();
        let record = Record::AudioAsset(AudioAsset {
            hash: blob.hash,
            name: name.chars().take(ensemble_protocol::validate::MAX_NAME_CHARS).collect(),
            sample_rate: blob.sample_rate,
            channels: blob.channels,
            frames: Frames(blob.frames),
            codec: blob.codec,
            byte_size: blob.size,
            peaks_ready: blob.peaks_ready,
        });
        let tx = Transaction::new(state.id(), vec![Op::Create { id: asset.into(), record }]);
        let handle = self.projects.open(state.id()).await?;
        let handle = handle.ok_or_else(|| Ended::Refused(TransferError::NotFound("project".into())))?;
        match handle.write_as_authority(tx).await? {
            ServerMsg::Committed { .. } => Ok(asset),
            other => Err(Ended::from(Error::Config(format!("the asset record was refused: {other:?}")))),
        }
    }

    async fn download(
        &self,
        send: &mut (impl AsyncWrite + Unpin + Send),
        user: UserId,
        project: ProjectId,
        asset: AssetId,
        what: Served,
        offset: u64,
    ) -> Result<(), Ended> {
        let (state, _) = self.member(project, user).await?;
        let hash = match state.entry(asset.into()).map(|entry| &entry.record) {
            Some(Record::AudioAsset(asset)) => asset.hash,
            _ => return Err(Ended::Refused(TransferError::NotFound(format!("asset {asset}")))),
        };
        let blob = self.store.blob(hash).await?;
        let blob = blob.ok_or_else(|| Ended::Refused(TransferError::NotFound(format!("the file of {asset}"))))?;
        match what {
            Served::Audio => {
                // A transcode renames its FLAC over the stored file, then updates the row: a file
                // and a row that agree in size (an original and its FLAC never do) describe the
                // same bytes, so the hash and codec sent are those of the bytes sent.
                let mut blob = blob;
                for _ in 0..SWAP_ATTEMPTS {
                    let file = std::fs::File::open(self.library.blob(hash))?;
                    if file.metadata()?.len() == blob.stored_size {
                        let codec = match blob.stored {
                            StoredAs::Original => blob.codec,
                            StoredAs::Flac => Codec::Flac,
                        };
                        return send_open(send, file, offset, blob.stored_hash, Some(codec)).await;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    blob = self
                        .store
                        .blob(hash)
                        .await?
                        .ok_or_else(|| Ended::Refused(TransferError::NotFound(format!("the file of {asset}"))))?;
                }
                Err(Ended::Refused(TransferError::Internal("the stored file is being replaced; try again".into())))
            }
            Served::Peaks if blob.peaks_ready => send_file(send, &self.library.peaks(hash), offset, None, None).await,
            Served::Peaks => Err(Ended::Refused(TransferError::NotFound("the peaks are not ready yet".into()))),
        }
    }

    async fn download_export(
        &self,
        send: &mut (impl AsyncWrite + Unpin + Send),
        user: UserId,
        job: JobId,
        index: u32,
        offset: u64,
    ) -> Result<(), Ended> {
        let row = self.store.job(job).await?;
        let row = row.ok_or_else(|| Ended::Refused(TransferError::NotFound(format!("job {job}"))))?;
        self.member(row.project, user).await?;
        match row.state {
            ensemble_protocol::wire::JobState::Done { files } if index < files => {
                send_file(send, &self.library.export(job, index), offset, None, None).await
            }
            _ => Err(Ended::Refused(TransferError::NotFound(format!("file {index} of job {job} is not ready")))),
        }
    }
}

/// Attempts to find a stored file and its row in agreement while a transcode swaps them.
const SWAP_ATTEMPTS: usize = 50;

/// Sends `Sending` and the file's bytes from `offset`.
async fn send_file(
    send: &mut (impl AsyncWrite + Unpin + Send),
    path: &Path,
    offset: u64,
    hash: Option<ContentHash>,
    codec: Option<Codec>,
) -> Result<(), Ended> {
    let hash = match hash {
        Some(hash) => hash,
        None => {
            let path = path.to_path_buf();
            let hashed = tokio::task::spawn_blocking(move || hash_file(&path)).await;
            hashed.map_err(|error| Ended::from(Error::Config(error.to_string())))??
        }
    };
    send_open(send, std::fs::File::open(path)?, offset, hash, codec).await
}

/// Sends `Sending` and the bytes of the open `file` from `offset`.
async fn send_open(
    send: &mut (impl AsyncWrite + Unpin + Send),
    mut file: std::fs::File,
    offset: u64,
    hash: ContentHash,
    codec: Option<Codec>,
) -> Result<(), Ended> {
    let total = file.metadata()?.len();
    let offset = offset.min(total);
    file.seek(SeekFrom::Start(offset))?;
    reply(send, &TransferReply::Sending { total, offset, hash, codec }).await?;
    let mut file = tokio::fs::File::from_std(file);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        send.write_all(&buffer[..read]).await.map_err(|error| Ended::Broken(error.to_string()))?;
    }
}

/// Checks a complete upload is audio: (codec, rate, channels, frames).
fn probe(path: &Path) -> Result<(Codec, u32, u16, u64), TransferError> {
    let internal = |error: std::io::Error| TransferError::Internal(error.to_string());
    let mut head = [0u8; 16];
    let mut file = std::fs::File::open(path).map_err(internal)?;
    let read = file.read(&mut head).map_err(internal)?;
    let codec = sniff_codec(&head[..read]).ok_or_else(|| TransferError::NotAudio("unknown file type".into()))?;
    let decoding = ensemble_audio::decode::Decoding::open(path).map_err(|e| TransferError::NotAudio(e.to_string()))?;
    let (sample_rate, channels) = (decoding.sample_rate(), decoding.channels());
    let frames = match decoding.frames() {
        Some(frames) => frames,
        None => decoding.read_all().map_err(|e| TransferError::NotAudio(e.to_string()))?.frames() as u64,
    };
    let channels = u16::try_from(channels).map_err(|_| TransferError::NotAudio("too many channels".into()))?;
    if frames == 0 || sample_rate == 0 {
        return Err(TransferError::NotAudio("no audio in the file".into()));
    }
    Ok((codec, sample_rate, channels, frames))
}

/// Encodes a job payload.
pub(crate) fn job_payload<T: serde::Serialize>(payload: &T) -> Result<Vec<u8>, Error> {
    Ok(encode_value(payload)?)
}
