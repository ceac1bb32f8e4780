//! Takes waiting for the authority: each ended take's file with a note of where its clip goes,
//! imported whenever the connection is online, and removed once the authority has confirmed
//! the clip.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use ensemble_protocol::{Frames, ProjectId, RecordId, Ticks, TrackId};
use serde::{Deserialize, Serialize};

use super::Takes;
use crate::import::{ImportDone, ImportMsg, Part};
use crate::model::{ProjectData, RecordIndex, RecordKey, TrackData};
use crate::replica::Replica;
use crate::sync::{Connection, SyncStatus, UploadSource};

/// An ended take and where its clip goes: the note written beside the take's file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct TakeNote {
    pub(super) project: ProjectId,
    pub(super) track: TrackId,
    pub(super) start: Ticks,
    pub(super) source_offset: Frames,
    pub(super) length: Ticks,
}

pub(super) struct Waiting {
    wav: PathBuf,
    note: TakeNote,
    /// Being imported now.
    importing: bool,
    /// Not tried again before then, after a failure.
    retry_at: Option<Instant>,
    /// Why the last try failed.
    failed: Option<String>,
    /// The clip it was placed as, until the authority has confirmed it.
    placed: Option<RecordId>,
}

impl Waiting {
    /// A take on disk at `wav` whose clip goes where `note` says.
    pub(super) fn new(wav: PathBuf, note: TakeNote) -> Waiting {
        Waiting { wav, note, importing: false, retry_at: None, failed: None, placed: None }
    }

    /// Why its last import failed, if it did.
    pub(super) fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }
}

/// How long a take waits after a failed import before it is tried again.
const RETRY: Duration = Duration::from_secs(10);

pub(super) fn note_path(wav: &Path) -> PathBuf {
    wav.with_extension("json")
}

/// Reads the project's waiting takes from the folder once it is open (takes from an earlier
/// run, or one that was closed offline).
pub(super) fn find_waiting(mut takes: ResMut<Takes>, project: Query<&RecordKey, With<ProjectData>>) {
    let Ok(key) = project.single() else { return };
    let project = ProjectId(key.0.0);
    if takes.found_for == Some(project) {
        return;
    }
    takes.found_for = Some(project);
    let folder = super::project_folder(&takes.folder, project);
    let Ok(entries) = std::fs::read_dir(&folder) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|extension| extension != "json") {
            continue;
        }
        let wav = path.with_extension("wav");
        if takes.waiting.iter().any(|waiting| waiting.wav == wav) || !wav.is_file() {
            continue;
        }
        match std::fs::read(&path)
            .map_err(|error| error.to_string())
            .and_then(|bytes| serde_json::from_slice::<TakeNote>(&bytes).map_err(|error| error.to_string()))
        {
            Ok(note) if note.project == project => {
                takes.waiting.push(Waiting::new(wav, note));
            }
            Ok(_) => {}
            Err(error) => warn!("{} is not a take's note: {error}", path.display()),
        }
    }
}

/// Imports each waiting take while the authority is online: onto its track, or onto a new one
/// when its track has gone meanwhile (a clip on a deleted track would be refused, and the take
/// lost).
pub(super) fn upload_waiting(
    mut takes: ResMut<Takes>,
    status: Option<Res<SyncStatus>>,
    index: Res<RecordIndex>,
    tracks: Query<(), With<TrackData>>,
    mut imports: MessageWriter<ImportMsg>,
) {
    let online = status.is_some_and(|status| matches!(status.connection, Connection::Online { .. }));
    if !online {
        return;
    }
    let now = Instant::now();
    for waiting in takes.waiting.iter_mut() {
        if waiting.importing || waiting.placed.is_some() || waiting.retry_at.is_some_and(|at| now < at) {
            continue;
        }
        waiting.importing = true;
        let note = &waiting.note;
        let track = index.entity(note.track.into()).filter(|entity| tracks.contains(*entity)).map(|_| note.track);
        let part = Part { source_offset: note.source_offset, length: Some(note.length) };
        imports.write(ImportMsg { source: UploadSource::File(waiting.wav.clone()), track, at: note.start, part });
    }
}

/// A take whose clip the authority has confirmed is done with (its files go); one whose import
/// failed, or whose clip was refused, waits to be tried again.
pub(super) fn landed(mut takes: ResMut<Takes>, mut imports: MessageReader<ImportDone>, replica: Option<Res<Replica>>) {
    if let Some(replica) = replica {
        let settled = replica.pending().len() == 0;
        takes.waiting.retain_mut(|waiting| {
            let Some(clip) = waiting.placed else { return true };
            if replica.confirmed().entry(clip).is_some() {
                let _ = std::fs::remove_file(note_path(&waiting.wav));
                let _ = std::fs::remove_file(&waiting.wav);
                return false;
            }
            if settled {
                // Nothing is pending, and the clip is not there: its edit was refused.
                waiting.placed = None;
                waiting.failed = Some("the take's clip was refused; placing it again".into());
            }
            true
        });
    }
    for ImportDone { name, result, .. } in imports.read() {
        let Some(waiting) = takes.waiting.iter_mut().find(|waiting| {
            waiting.importing && waiting.wav.file_name().is_some_and(|file| file.to_string_lossy() == name.as_str())
        }) else {
            continue;
        };
        waiting.importing = false;
        match result {
            Ok(clip) => waiting.placed = Some(*clip),
            Err(reason) => {
                waiting.retry_at = Some(Instant::now() + RETRY);
                waiting.failed = Some(reason.clone());
            }
        }
    }
}
