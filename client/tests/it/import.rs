//! Import: a file on this machine becomes a clip (on a new track, or a chosen one) through the
//! authority, as one undoable edit; what is not audio is refused and changes nothing.

use std::path::Path;
use std::time::Duration;

use bevy::prelude::*;
use ensemble_client::edits;
use ensemble_client::history::EditMsg;
use ensemble_client::import::{ImportDone, ImportMsg, Imports};
use ensemble_client::sync::{UploadProgress, UploadSource};
use ensemble_protocol::*;

use crate::harness::{Authority, online, replica, replicas, send, step_until};

/// Every import that ended, oldest first.
#[derive(Resource, Default)]
struct Ended(Vec<ImportDone>);

fn collect(mut done: MessageReader<ImportDone>, mut ended: ResMut<Ended>) {
    ended.0.extend(done.read().cloned());
}

/// Every upload progress report, oldest first.
#[derive(Resource, Default)]
struct Progress(Vec<UploadProgress>);

fn collect_progress(mut made: MessageReader<UploadProgress>, mut progress: ResMut<Progress>) {
    progress.0.extend(made.read().copied());
}

/// A client of `authority`, online, that records how its imports end.
fn importer(authority: &Authority, user: &str, stores: &Path) -> App {
    let mut app = authority.client(user, stores);
    app.init_resource::<Ended>().init_resource::<Progress>().add_systems(Update, (collect, collect_progress));
    step_until(&mut [&mut app], Duration::from_secs(20), |apps| online(apps[0]));
    app
}

fn wav(path: &Path, rate: u32, frames: u32) {
    let spec =
        hound::WavSpec { channels: 2, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..frames {
        let sample = ((i as f32 * 0.03).sin() * 8_000.0) as i16;
        writer.write_sample(sample).unwrap();
        writer.write_sample(-sample).unwrap();
    }
    writer.finalize().unwrap();
}

fn clips(app: &App) -> Vec<Clip> {
    let view = replica(app).unwrap().view();
    view.records()
        .filter_map(|(_, entry)| match &entry.record {
            Record::Clip(clip) => Some(clip.clone()),
            _ => None,
        })
        .collect()
}

/// An imported clip as the replica shows it, with its asset.
fn placed(app: &App, id: RecordId) -> (Clip, AudioAsset) {
    let view = replica(app).unwrap().view();
    let Some(Record::Clip(clip)) = view.entry(id).map(|entry| entry.record.clone()) else { panic!("no clip {id}") };
    let Some(Record::AudioAsset(asset)) = view.entry(clip.asset.into()).map(|entry| entry.record.clone()) else {
        panic!("the clip's asset is missing")
    };
    (clip, asset)
}

#[test]
fn an_imported_file_becomes_a_clip_as_long_as_its_audio_and_undoes_in_one_step() {
    let authority = Authority::start();
    let (_dir, stores) = replicas();
    let mut app = importer(&authority, "alice", &stores);
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("Hook Take 2.wav");
    wav(&file, 44_100, 66_150); // 1.5 s

    app.world_mut().write_message(ImportMsg::new(UploadSource::File(file.clone()), None, Ticks(1920)));
    app.update();
    let status = app.world().resource::<Imports>().describe().unwrap_or_default();
    assert!(status.starts_with("importing Hook Take 2.wav: "), "{status}");
    step_until(&mut [&mut app], Duration::from_secs(30), |apps| !apps[0].world().resource::<Ended>().0.is_empty());
    assert_eq!(app.world().resource::<Imports>().describe(), None, "nothing left to import");
    let done = app.world().resource::<Ended>().0[0].clone();
    assert_eq!(done.name, "Hook Take 2.wav");
    let clip_id = done.result.expect("imported");
    // The upload reported how far it had come, up to the whole file.
    let size = std::fs::metadata(&file).unwrap().len();
    let progress = &app.world().resource::<Progress>().0;
    assert_eq!(progress.last().map(|made| (made.sent, made.total)), Some((size, size)), "{progress:?}");
    assert!(progress.windows(2).all(|pair| pair[0].sent <= pair[1].sent), "{progress:?}");
    step_until(&mut [&mut app], Duration::from_secs(10), |apps| !clips(apps[0]).is_empty());
    let view = replica(&app).unwrap().view();
    let project = view.project().clone();
    let (clip, asset) = placed(&app, clip_id);
    let Some(Record::Track(track)) = view.entry(clip.track.into()).map(|entry| entry.record.clone()) else {
        panic!("the clip's track is missing")
    };
    assert_eq!(track.name, "Hook Take 2", "a new track named after the file");
    assert_eq!(project.track_order.last(), Some(&clip.track), "at the bottom");
    assert_eq!((asset.sample_rate, asset.frames, asset.channels), (44_100, Frames(66_150), 2));
    let timebase = Timebase::new(project.tempo, project.sample_rate);
    assert_eq!(clip.start, Ticks(1920));
    assert_eq!(clip.length, edits::asset_length(timebase, 44_100, Frames(66_150)));
    assert_eq!(timebase.frames(clip.length).0, u64::from(project.sample_rate) * 3 / 2, "1.5 s");

    // A second import onto the same track lands where it was dropped; this one comes as bytes,
    // as a file picked or dropped in the browser does.
    let bytes = UploadSource::Bytes { name: "Hook Take 2.wav".into(), bytes: std::fs::read(&file).unwrap().into() };
    app.world_mut().write_message(ImportMsg::new(bytes, Some(clip.track), Ticks(0)));
    step_until(&mut [&mut app], Duration::from_secs(30), |apps| clips(apps[0]).len() == 2);
    let tracks_now = replica(&app).unwrap().view().project().track_order.len();
    assert_eq!(tracks_now, project.track_order.len(), "no new track");

    // Undo takes the clip away, then the first import's clip and its track together.
    send(&mut app, EditMsg::Undo);
    send(&mut app, EditMsg::Undo);
    step_until(&mut [&mut app], Duration::from_secs(10), |apps| clips(apps[0]).is_empty());
    assert!(!replica(&app).unwrap().view().project().track_order.contains(&clip.track));
}

#[test]
fn what_is_not_audio_is_refused_with_the_reason_and_changes_nothing() {
    let authority = Authority::start();
    let (_dir, stores) = replicas();
    let mut app = importer(&authority, "bob", &stores);
    let files = tempfile::tempdir().unwrap();
    let text = files.path().join("notes.txt");
    std::fs::write(&text, "not audio").unwrap();
    let corrupt = files.path().join("broken.wav");
    std::fs::write(&corrupt, b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunkjunk").unwrap();
    let missing = files.path().join("gone.wav");
    let before = replica(&app).unwrap().view().len();
    for path in [&text, &corrupt, &missing] {
        app.world_mut().write_message(ImportMsg::new(UploadSource::File(path.clone()), None, Ticks(0)));
    }
    step_until(&mut [&mut app], Duration::from_secs(30), |apps| apps[0].world().resource::<Ended>().0.len() == 3);
    let reasons: Vec<(String, String)> = app
        .world()
        .resource::<Ended>()
        .0
        .iter()
        .map(|done| (done.name.clone(), done.result.clone().unwrap_err()))
        .collect();
    let reason = |name: &str| reasons.iter().find(|(file, _)| file == name).map(|(_, reason)| reason.clone()).unwrap();
    assert!(reason("notes.txt").contains("not an audio or MIDI file"), "{reasons:?}");
    assert!(reason("gone.wav").contains("is not a file"), "{reasons:?}");
    assert!(reason("broken.wav").contains("upload failed"), "{reasons:?}");
    for _ in 0..20 {
        app.update();
    }
    assert_eq!(replica(&app).unwrap().view().len(), before, "nothing was added");
}

#[test]
fn a_file_cut_short_imports_what_came_before_the_damage_and_says_so() {
    let authority = Authority::start();
    let (_dir, stores) = replicas();
    let mut app = importer(&authority, "alice", &stores);
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("Cut Take.wav");
    wav(&file, 48_000, 48_000);
    // Half the samples are gone; the header still promises a second.
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..44 + 48_000 * 2]).unwrap();

    app.world_mut().write_message(ImportMsg::new(UploadSource::File(file.clone()), None, Ticks(0)));
    step_until(&mut [&mut app], Duration::from_secs(30), |apps| !apps[0].world().resource::<Ended>().0.is_empty());
    let done = app.world().resource::<Ended>().0[0].clone();
    assert!(done.cut_short, "the user is told the file was cut short");
    let clip_id = done.result.expect("imported");
    step_until(&mut [&mut app], Duration::from_secs(10), |apps| !clips(apps[0]).is_empty());
    let (_, asset) = placed(&app, clip_id);
    assert_eq!(asset.frames, Frames(24_000), "the half second the file holds");
}

#[test]
fn a_midi_file_becomes_note_clips_on_tracks_with_a_synth_in_one_edit() {
    let authority = Authority::start();
    let (_dir, stores) = replicas();
    let mut app = importer(&authority, "alice", &stores);
    let riff = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/test/riff.mid");
    app.world_mut().write_message(ImportMsg::new(UploadSource::File(riff), None, Ticks(960)));
    step_until(&mut [&mut app], Duration::from_secs(30), |apps| !apps[0].world().resource::<Ended>().0.is_empty());
    let first = app.world().resource::<Ended>().0[0].result.clone().expect("imported");
    app.update();
    let view = replica(&app).unwrap().view();
    let Some(Record::NoteClip(bass)) = view.entry(first).map(|entry| &entry.record) else { panic!("no note clip") };
    assert_eq!((bass.name.as_str(), bass.start, bass.notes.len()), ("Bass", Ticks(960), 8));
    // Two parts, two new tracks, each with a synth.
    let tracks: Vec<&Track> = view
        .project()
        .track_order
        .iter()
        .filter_map(|id| match view.entry((*id).into()).map(|entry| &entry.record) {
            Some(Record::Track(track)) => Some(track),
            _ => None,
        })
        .collect();
    assert_eq!(tracks.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["Bass", "Keys"]);
    let synths = view.records().filter(|(_, e)| matches!(&e.record, Record::Effect(e) if e.kind == EffectKind::Synth));
    assert_eq!(synths.count(), 2);
    // One edit: one undo takes it all away.
    send(&mut app, EditMsg::Undo);
    app.update();
    assert!(replica(&app).unwrap().view().project().track_order.is_empty());
}
