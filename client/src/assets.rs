//! The client's audio files: a content-addressed cache, so a project opened offline still plays.
//!
//! A file is kept under the hash its asset record carries (the hash of the upload, which stays
//! its identity even when the authority stores it as FLAC), its peaks beside it. Natively the
//! cache is a folder: a file lives at `<cache>/<hash>`, a download goes to `<hash>.partial`,
//! resumes from there after a cut, is checked against the hash the authority serves, and only
//! then is renamed into place, so what the cache holds is whole. In the browser it is an
//! IndexedDB database (`ensemble-assets`) of each file's bytes, written once the download is
//! whole and checked (a cut download starts again). Files this client uploads are kept at once
//! and never downloaded back.
//!
//! What the cache hands out is a [`CachedFile`]: a path natively, the bytes in the browser;
//! either decodes to audio or reads as peaks.

#[cfg(not(target_arch = "wasm32"))]
use std::path::PathBuf;
use std::sync::Arc;

use ensemble_audio::peaks::Peaks;
use ensemble_audio::{AudioError, Pcm};
use ensemble_net::transport::Transport;
use ensemble_protocol::transfer::{Served, TransferRequest};
use ensemble_protocol::{AssetId, ContentHash, ProjectId};

use crate::Error;
use crate::sync::UploadSource;

/// An asset file this machine holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CachedFile {
    /// A file in the cache folder (native).
    #[cfg(not(target_arch = "wasm32"))]
    Path(PathBuf),
    /// The file's bytes (the browser, whose cache is IndexedDB).
    Bytes(Arc<[u8]>),
}

impl CachedFile {
    /// The file's audio, resampled to `rate` when given.
    pub fn decode(&self, rate: Option<u32>) -> Result<Pcm, AudioError> {
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            CachedFile::Path(path) => ensemble_audio::decode::decode_file(path, rate),
            CachedFile::Bytes(bytes) => ensemble_audio::decode::decode_bytes(bytes.to_vec(), "cached".as_ref(), rate),
        }
    }

    /// The file read as waveform peaks.
    pub fn peaks(&self) -> Result<Peaks, AudioError> {
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            CachedFile::Path(path) => {
                let file =
                    std::fs::File::open(path).map_err(|error| AudioError::Io { path: path.clone(), source: error })?;
                Peaks::read(&mut std::io::BufReader::new(file), path)
            }
            CachedFile::Bytes(bytes) => Peaks::read(&mut &bytes[..], "cached peaks".as_ref()),
        }
    }
}

/// The cache's name for the audio or the peaks of `hash`.
fn key(hash: ContentHash, what: Served) -> String {
    match what {
        Served::Audio => hash.to_string(),
        Served::Peaks => format!("{hash}.peaks"),
    }
}

/// Audio files on this machine, by content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetCache {
    #[cfg(not(target_arch = "wasm32"))]
    dir: PathBuf,
}

#[cfg(not(target_arch = "wasm32"))]
impl AssetCache {
    /// A cache in `dir`, made if missing.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(AssetCache { dir })
    }

    /// The cache in the user's cache directory (`ensemble/assets`).
    pub fn in_cache_dir() -> Result<Self, Error> {
        Self::new(dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("ensemble").join("assets"))
    }

    /// Where the audio file of `hash` lives once cached.
    pub fn path(&self, hash: ContentHash) -> PathBuf {
        self.dir.join(key(hash, Served::Audio))
    }

    /// The cached audio file of `hash`, if this machine has it.
    pub fn get(&self, hash: ContentHash) -> Option<PathBuf> {
        let path = self.path(hash);
        path.is_file().then_some(path)
    }

    /// Keeps a copy of what this client uploaded as `hash`.
    pub async fn insert(&self, hash: ContentHash, source: &UploadSource) -> Result<CachedFile, Error> {
        let (path, source) = (self.path(hash), source.clone());
        let dir = self.dir.clone();
        ensemble_net::rt::blocking(move || {
            if !path.is_file() {
                std::fs::create_dir_all(&dir)?;
                let partial = path.with_extension("partial");
                match &source {
                    UploadSource::File(file) => std::fs::copy(file, &partial).map(drop)?,
                    UploadSource::Bytes { bytes, .. } => std::fs::write(&partial, bytes)?,
                }
                std::fs::rename(&partial, &path)?;
            }
            Ok(CachedFile::Path(path))
        })
        .await
    }

    /// The file of `asset`'s audio or peaks (its record says `hash`): from the cache, or
    /// downloaded from the authority into it, resuming a cut download. Each file downloads to
    /// a partial of its own, so the audio and the peaks of one asset can come at once.
    pub async fn fetch(
        &self,
        transport: &impl Transport,
        project: ProjectId,
        asset: AssetId,
        hash: ContentHash,
        what: Served,
    ) -> Result<CachedFile, Error> {
        let path = self.dir.join(key(hash, what));
        if path.is_file() {
            return Ok(CachedFile::Path(path));
        }
        let mut partial = path.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let request = TransferRequest::Download { project, asset, what, offset: 0 };
        std::fs::create_dir_all(&self.dir)?;
        let mut sink = ensemble_net::transport::FileSink::open(&partial)?;
        transport.download(request, &mut sink).await?;
        drop(sink);
        std::fs::rename(&partial, &path)?;
        Ok(CachedFile::Path(path))
    }
}

#[cfg(target_arch = "wasm32")]
impl AssetCache {
    const DATABASE: &str = "ensemble-assets";
    const FILES: &str = "files";

    /// The browser's cache: one IndexedDB database for every project's files.
    pub fn in_indexed_db() -> Self {
        AssetCache {}
    }

    async fn open() -> Result<rexie::Rexie, Error> {
        rexie::Rexie::builder(Self::DATABASE)
            .version(1)
            .add_object_store(rexie::ObjectStore::new(Self::FILES))
            .build()
            .await
            .map_err(|error| Error::Browser(format!("IndexedDB open: {error}")))
    }

    async fn read(key: &str) -> Result<Option<Arc<[u8]>>, Error> {
        let failed = |error: rexie::Error| Error::Browser(format!("IndexedDB read: {error}"));
        let db = Self::open().await?;
        let tx = db.transaction(&[Self::FILES], rexie::TransactionMode::ReadOnly).map_err(failed)?;
        let stored = tx.store(Self::FILES).map_err(failed)?.get(key.into()).await.map_err(failed)?;
        db.close();
        Ok(stored.map(|stored| js_sys::Uint8Array::new(&stored).to_vec().into()))
    }

    async fn write(key: &str, bytes: &[u8]) -> Result<(), Error> {
        let failed = |error: rexie::Error| Error::Browser(format!("IndexedDB write: {error}"));
        let db = Self::open().await?;
        let tx = db.transaction(&[Self::FILES], rexie::TransactionMode::ReadWrite).map_err(failed)?;
        let value = js_sys::Uint8Array::from(bytes);
        tx.store(Self::FILES).map_err(failed)?.put(&value, Some(&key.into())).await.map_err(failed)?;
        let committed = tx.done().await.map_err(failed)?.is_committed();
        db.close();
        if committed { Ok(()) } else { Err(Error::Browser("IndexedDB aborted the write".into())) }
    }

    /// Keeps a copy of what this client uploaded as `hash`.
    pub async fn insert(&self, hash: ContentHash, source: &UploadSource) -> Result<CachedFile, Error> {
        let UploadSource::Bytes { bytes, .. } = source else {
            return Err(Error::Browser("the browser uploads bytes, not files".into()));
        };
        Self::write(&key(hash, Served::Audio), bytes).await?;
        Ok(CachedFile::Bytes(bytes.clone()))
    }

    /// The bytes of `asset`'s audio or peaks (its record says `hash`): from IndexedDB, or
    /// downloaded from the authority (checked against its hash) and kept there.
    pub async fn fetch(
        &self,
        transport: &impl Transport,
        project: ProjectId,
        asset: AssetId,
        hash: ContentHash,
        what: Served,
    ) -> Result<CachedFile, Error> {
        let key = key(hash, what);
        if let Some(bytes) = Self::read(&key).await? {
            return Ok(CachedFile::Bytes(bytes));
        }
        let mut bytes = Vec::new();
        transport.download(TransferRequest::Download { project, asset, what, offset: 0 }, &mut bytes).await?;
        Self::write(&key, &bytes).await?;
        Ok(CachedFile::Bytes(bytes.into()))
    }
}
