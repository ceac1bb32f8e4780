//! The client's audio files: a content-addressed cache, so a project opened offline still plays.
//!
//! A file lives at `<cache>/<hash>`, named by the hash its asset record carries (the hash of the
//! upload, which stays its identity even when the authority stores it as FLAC). A download goes
//! to `<hash>.partial`, resumes from there after a cut, is checked against the hash the
//! authority serves, and only then is renamed into place, so what the cache holds is whole.
//! Files this client uploads are copied in at once and never downloaded back.

use std::path::PathBuf;

use ensemble_net::transport::{FileSink, Transport};
use ensemble_protocol::transfer::{Served, TransferRequest};
use ensemble_protocol::{AssetId, ContentHash, ProjectId};

use crate::Error;
use crate::sync::UploadSource;

/// Audio files on this machine, by content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetCache {
    dir: PathBuf,
}

impl AssetCache {
    /// A cache in `dir`, made if missing.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(AssetCache { dir })
    }

    /// A cache in `dir`, made when the first file is kept (where making it at once may fail:
    /// the browser has no folders, and its cache fails each file until it keeps them itself).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        AssetCache { dir: dir.into() }
    }

    /// The cache in the user's cache directory (`ensemble/assets`).
    pub fn in_cache_dir() -> Result<Self, Error> {
        Self::new(dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("ensemble").join("assets"))
    }

    /// Where the file of `hash` lives once cached (its audio, or its peaks).
    pub fn path(&self, hash: ContentHash) -> PathBuf {
        self.path_of(hash, Served::Audio)
    }

    fn path_of(&self, hash: ContentHash, what: Served) -> PathBuf {
        match what {
            Served::Audio => self.dir.join(hash.to_string()),
            Served::Peaks => self.dir.join(format!("{hash}.peaks")),
        }
    }

    /// The cached file of `hash`, if this machine has it.
    pub fn get(&self, hash: ContentHash) -> Option<PathBuf> {
        let path = self.path(hash);
        path.is_file().then_some(path)
    }

    /// Keeps a copy of what this client uploaded as `hash`.
    pub fn insert(&self, hash: ContentHash, source: &UploadSource) -> Result<PathBuf, Error> {
        let path = self.path(hash);
        if !path.is_file() {
            std::fs::create_dir_all(&self.dir)?;
            let partial = path.with_extension("partial");
            match source {
                UploadSource::File(file) => std::fs::copy(file, &partial).map(drop)?,
                UploadSource::Bytes { bytes, .. } => std::fs::write(&partial, bytes)?,
            }
            std::fs::rename(&partial, &path)?;
        }
        Ok(path)
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
    ) -> Result<PathBuf, Error> {
        let path = self.path_of(hash, what);
        if path.is_file() {
            return Ok(path);
        }
        let mut partial = path.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let request = TransferRequest::Download { project, asset, what, offset: 0 };
        std::fs::create_dir_all(&self.dir)?;
        let mut sink = FileSink::open(&partial)?;
        transport.download(request, &mut sink).await?;
        drop(sink);
        std::fs::rename(&partial, &path)?;
        Ok(path)
    }
}
