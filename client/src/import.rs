//! Import: audio files from this machine into the project, as clips, and MIDI files as note
//! clips.
//!
//! A MIDI file needs no upload: it is read here ([`crate::midi::read`]) and its parts become
//! note clips in one edit, each on a track with an instrument (see [`edits::import_midi`]).
//!
//! An [`ImportMsg`] names a file (a path natively, a picked or dropped file's bytes in the
//! browser) and where its clip goes (a track and a position, or a new track
//! named after the file). [`ImportPlugin`] has the sync worker upload the file; the authority
//! checks that it decodes, stores it by content and makes the asset record. Once that record
//! has reached the model (the bump and the upload's answer travel on different connections,
//! so either may come first), the clip is created as one edit, as long as the audio, so it
//! syncs, persists offline and undoes like any other. [`ImportDone`] says how each import
//! ended: a file that is missing, is not audio, or is refused arrives there with the reason,
//! and nothing is changed.

use std::collections::HashMap;

use bevy::prelude::*;
use ensemble_protocol::{AssetId, Bus, Clip, ClipId, Effect, Frames, Op, Record, RecordId, Ticks, Timebase, TrackId};

use crate::edits;
use crate::history::EditMsg;
use crate::model::{AssetData, EffectData, ProjectData, RecordIndex, RecordKey};
use crate::sync::{Outbound, SyncSystems, UploadDone, UploadProgress, UploadSource, configure_sets};

/// The file extensions offered for import; the authority decides what really decodes.
pub const AUDIO_EXTENSIONS: [&str; 7] = ["wav", "wave", "aif", "aiff", "flac", "mp3", "ogg"];
/// The extensions of standard MIDI files.
pub const MIDI_EXTENSIONS: [&str; 2] = ["mid", "midi"];

/// Imports audio files as clips.
pub struct ImportPlugin;

impl Plugin for ImportPlugin {
    fn build(&self, app: &mut App) {
        configure_sets(app);
        app.init_resource::<Imports>()
            .add_message::<ImportMsg>()
            .add_message::<ImportDone>()
            .add_message::<UploadDone>()
            .add_message::<UploadProgress>()
            .add_message::<Outbound>()
            .add_message::<EditMsg>()
            .add_systems(
                PreUpdate,
                // Their edits are proposed with the frame's others, at its end.
                (start_imports, take_uploads, place_clips).chain().after(SyncSystems::Receive),
            );
    }
}

/// Import an audio file as a clip.
#[derive(Message, Clone, Debug, PartialEq)]
pub struct ImportMsg {
    /// The file.
    pub source: UploadSource,
    /// The track the clip goes on; `None` makes a new track named after the file.
    pub track: Option<TrackId>,
    /// Where the clip starts.
    pub at: Ticks,
    /// The part of the file the clip plays.
    pub part: Part,
}

impl ImportMsg {
    /// Import all of `source` as a clip at `at` on `track` (a new track when `None`).
    pub fn new(source: UploadSource, track: Option<TrackId>, at: Ticks) -> ImportMsg {
        ImportMsg { source, track, at, part: Part::default() }
    }
}

/// Which part of an imported file its clip plays: all of it by default; a recorded take's
/// clip starts past its count-in and may end at the punch-out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Part {
    /// Frames of the file (at its own rate) before the clip's first.
    pub source_offset: Frames,
    /// How long the clip is; `None`: to the end of the file.
    pub length: Option<Ticks>,
}

/// How an import ended.
#[derive(Message, Clone, Debug, PartialEq)]
pub struct ImportDone {
    /// The name of the file asked for.
    pub name: String,
    /// The new clip (the first, for a MIDI file of several parts), or why there is none.
    pub result: Result<RecordId, String>,
    /// The file ends before the audio its header promised: what came before the damage was
    /// imported.
    pub cut_short: bool,
}

/// Imports under way.
#[derive(Resource, Debug, Default)]
pub struct Imports {
    next_id: u64,
    /// Uploading, by upload id.
    uploading: HashMap<u64, ImportMsg>,
    /// Bytes sent and the size of each upload that has begun sending.
    sent: HashMap<u64, (u64, u64)>,
    /// Uploaded, waiting for the asset record to reach the model.
    placing: Vec<(ImportMsg, AssetId, bool)>,
}

impl Imports {
    /// How many imports have not ended yet.
    pub fn in_progress(&self) -> usize {
        self.uploading.len() + self.placing.len()
    }

    /// What the imports under way are doing, for a status line: "importing Take 2.wav: 42%",
    /// "importing 3 files: 10%", or `None` when there are none.
    pub fn describe(&self) -> Option<String> {
        let count = self.in_progress();
        if count == 0 {
            return None;
        }
        let (sent, total) = self.sent.values().fold((0, 0), |(sent, total), (s, t)| (sent + s, total + t));
        let what = match self.uploading.values().next() {
            Some(import) if count == 1 => import.source.name(),
            None if count == 1 => "a file".into(),
            _ => format!("{count} files"),
        };
        Some(match (self.uploading.is_empty(), total) {
            // Sent: the authority checks the audio and makes its asset.
            (true, _) => format!("importing {what}: placing"),
            (false, 0) => format!("importing {what}: reading"),
            (false, total) => format!("importing {what}: {}%", sent * 100 / total),
        })
    }
}

/// Whether `path` names a file with an audio extension.
pub fn is_audio_file(path: &std::path::Path) -> bool {
    has_extension(path, &AUDIO_EXTENSIONS)
}

/// Whether `path` names a standard MIDI file.
pub fn is_midi_file(path: &std::path::Path) -> bool {
    has_extension(path, &MIDI_EXTENSIONS)
}

fn has_extension(path: &std::path::Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| extensions.contains(&extension.to_ascii_lowercase().as_str()))
}

/// A MIDI file's parts as note clips, in one edit: the first clip's id, or why not.
fn import_midi(
    import: &ImportMsg,
    project: Option<(&RecordKey, &ProjectData)>,
    effects: &Query<(&RecordKey, &EffectData)>,
    edits_out: &mut MessageWriter<EditMsg>,
) -> Result<RecordId, String> {
    let name = import.source.name();
    let bytes = match &import.source {
        UploadSource::File(path) => std::fs::read(path).map_err(|error| format!("cannot read {name}: {error}"))?,
        UploadSource::Bytes { bytes, .. } => bytes.to_vec(),
    };
    let parts = crate::midi::read(&bytes).map_err(|error| format!("{name}: {error}"))?;
    let Some((key, project)) = project else { return Err("the project has not opened yet".into()) };
    let chain: Vec<(RecordId, &Effect)> = import
        .track
        .map(|track| {
            effects.iter().filter(|(_, effect)| effect.bus == Bus::Track(track)).map(|(key, e)| (key.0, &e.0)).collect()
        })
        .unwrap_or_default();
    let count = project.track_order.len();
    let (first, ops) = edits::import_midi(key.0, count, import.track, import.at, &parts, &chain);
    edits_out.write(EditMsg::Edit(ops));
    first.map(RecordId::from).ok_or_else(|| format!("{name} has no notes"))
}

#[allow(clippy::too_many_arguments)]
fn start_imports(
    mut imports: ResMut<Imports>,
    mut asked: MessageReader<ImportMsg>,
    mut outbound: MessageWriter<Outbound>,
    mut done: MessageWriter<ImportDone>,
    mut edits_out: MessageWriter<EditMsg>,
    project: Query<(&RecordKey, &ProjectData)>,
    effects: Query<(&RecordKey, &EffectData)>,
) {
    for import in asked.read() {
        let name = import.source.name();
        let refused = match &import.source {
            UploadSource::File(path) if !path.is_file() => Some(format!("{} is not a file", path.display())),
            UploadSource::Bytes { bytes, .. } if bytes.is_empty() => Some(format!("{name} is empty")),
            _ if is_midi_file(name.as_ref()) => {
                let result = import_midi(import, project.single().ok(), &effects, &mut edits_out);
                done.write(ImportDone { name, result, cut_short: false });
                continue;
            }
            _ if !is_audio_file(name.as_ref()) => Some(format!(
                "{name} is not an audio or MIDI file ({}, {})",
                AUDIO_EXTENSIONS.join(", "),
                MIDI_EXTENSIONS.join(", ")
            )),
            _ => None,
        };
        if let Some(reason) = refused {
            done.write(ImportDone { name, result: Err(reason), cut_short: false });
            continue;
        }
        let id = imports.next_id;
        imports.next_id += 1;
        imports.uploading.insert(id, import.clone());
        outbound.write(Outbound::Upload { id, source: import.source.clone() });
    }
}

fn take_uploads(
    mut imports: ResMut<Imports>,
    mut progress: MessageReader<UploadProgress>,
    mut uploads: MessageReader<UploadDone>,
    mut done: MessageWriter<ImportDone>,
) {
    for UploadProgress { id, sent, total } in progress.read() {
        if imports.uploading.contains_key(id) {
            imports.sent.insert(*id, (*sent, *total));
        }
    }
    for UploadDone { id, asset, cut_short } in uploads.read() {
        imports.sent.remove(id);
        let Some(import) = imports.uploading.remove(id) else { continue };
        match asset {
            Ok(asset) => imports.placing.push((import, *asset, *cut_short)),
            Err(reason) => {
                let result = Err(format!("the upload failed: {reason}"));
                done.write(ImportDone { name: import.source.name(), result, cut_short: *cut_short });
            }
        }
    }
}

/// Creates the clip (and its track) of each import whose asset has reached the model.
fn place_clips(
    mut imports: ResMut<Imports>,
    index: Res<RecordIndex>,
    project: Query<(&RecordKey, &ProjectData)>,
    assets: Query<&AssetData>,
    mut edits: MessageWriter<EditMsg>,
    mut done: MessageWriter<ImportDone>,
) {
    if imports.placing.is_empty() {
        return;
    }
    let Ok((project_key, project)) = project.single() else { return };
    let timebase = Timebase::new(project.tempo, project.sample_rate);
    let mut tracks_added = 0;
    imports.placing.retain(|(import, asset_id, cut_short)| {
        let Some(asset) = index.entity((*asset_id).into()).and_then(|entity| assets.get(entity).ok()) else {
            return true;
        };
        let file = import.source.name();
        let name = std::path::Path::new(&file)
            .file_stem()
            .map_or_else(|| asset.name.clone(), |stem| stem.to_string_lossy().into_owned());
        let mut ops = Vec::new();
        let track = match import.track {
            Some(track) => track,
            None => {
                let count = project.track_order.len() + tracks_added;
                tracks_added += 1;
                let (track, made) = edits::add_track(project_key.0, name.clone(), count);
                ops.extend(made);
                track
            }
        };
        let length = import.part.length.unwrap_or_else(|| {
            let rest = Frames(asset.frames.0.saturating_sub(import.part.source_offset.0));
            edits::asset_length(timebase, asset.sample_rate, rest)
        });
        let clip = Clip {
            track,
            asset: *asset_id,
            start: Ticks(import.at.0.max(0)),
            length: Ticks(length.0.max(1)),
            source_offset: import.part.source_offset,
            gain_db: 0.0,
            fade_in: Ticks(0),
            fade_out: Ticks(0),
            name,
        };
        let id = ClipId::new_v7();
        ops.push(Op::Create { id: id.into(), record: Record::Clip(clip) });
        edits.write(EditMsg::Edit(ops));
        done.write(ImportDone { name: file, result: Ok(id.into()), cut_short: *cut_short });
        false
    });
}
