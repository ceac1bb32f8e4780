//! The client's audio files: a content-addressed cache, so a project opened offline still plays.
//!
//! A file lives at `<cache>/<hash>`, named by the hash its asset record carries (the hash of the
//! upload, which stays its identity even when the authority stores it as FLAC). A download goes
//! to `<hash>.partial`, resumes from there after a cut, is checked against the hash the
//! authority serves, and only then is renamed into place, so what the cache holds is whole.
//! Files this client uploads are copied in at once and never downloaded back.

use std::path::{Path, PathBuf};

use ensemble_authority::remote::Remote;
use ensemble_protocol::transfer::{Served, TransferRequest};
use ensemble_protocol::{AssetId, ContentHash, ProjectId};

use crate::Error;

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

    /// The cache in the user's cache directory (`ensemble/assets`).
    pub fn in_cache_dir() -> Result<Self, Error> {
        Self::new(dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("ensemble").join("assets"))
    }

    /// Where the file of `hash` lives once cached.
    pub fn path(&self, hash: ContentHash) -> PathBuf {
        self.dir.join(hash.to_string())
    }

    /// The cached file of `hash`, if this machine has it.
    pub fn get(&self, hash: ContentHash) -> Option<PathBuf> {
        let path = self.path(hash);
        path.is_file().then_some(path)
    }

    /// Keeps a copy of a file this client uploaded as `hash`.
    pub fn insert(&self, hash: ContentHash, file: &Path) -> Result<PathBuf, Error> {
        let path = self.path(hash);
        if !path.is_file() {
            let partial = path.with_extension("partial");
            std::fs::copy(file, &partial)?;
            std::fs::rename(&partial, &path)?;
        }
        Ok(path)
    }

    /// The file of `asset` (whose record says `hash`): from the cache, or downloaded from the
    /// authority into it (resuming a cut download).
    pub async fn fetch(
        &self,
        remote: &Remote,
        project: ProjectId,
        asset: AssetId,
        hash: ContentHash,
    ) -> Result<PathBuf, Error> {
        if let Some(path) = self.get(hash) {
            return Ok(path);
        }
        let path = self.path(hash);
        let partial = path.with_extension("partial");
        let request = TransferRequest::Download { project, asset, what: Served::Audio, offset: 0 };
        remote.download(request, &partial).await.map_err(|error| Error::Connection(error.to_string()))?;
        tokio::fs::rename(&partial, &path).await?;
        Ok(path)
    }
}
