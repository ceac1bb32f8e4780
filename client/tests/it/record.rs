//! Recording from the file-fed input (no sound card here): a take lands as a clip where
//! recording began, sample for sample, after a count-in and inside a punch range, compensated
//! for the input's latency; a take recorded offline waits, through a restart, and lands once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bevy::prelude::*;
use ensemble_audio::Pcm;
use ensemble_audio::arrangement::{Arrangement, pan_gains};
use ensemble_client::history::EditMsg;
use ensemble_client::media::Media;
use ensemble_client::midi_in::{MidiEvent, MidiIn};
use ensemble_client::playback::{PlaybackPlugin, SoundCard, Transport};
use ensemble_client::record::{
    AudioTake, RecordDone, RecordInput, RecordMsg, RecordOptions, RecordPlugin, TakeMade, Takes,
};
use ensemble_protocol::*;

use crate::harness::{Authority, add_track, online, replica, replicas, send, set, step_for, step_until};

/// How each take ended, oldest first.
#[derive(Resource, Default)]
struct Made(Vec<RecordDone>);

fn collect(mut done: MessageReader<RecordDone>, mut made: ResMut<Made>) {
    made.0.extend(done.read().cloned());
}

/// Stereo noise, different on each side, in 16-bit steps (so a float take holds it exactly).
fn source(dir: &Path, seconds: f64) -> (PathBuf, Pcm) {
    let mut rng = ensemble_testkit::Rng(0x7a4e);
    let frames = (seconds * 48_000.0) as usize;
    let mut channels: Vec<Vec<f32>> = (0..2).map(|_| Vec::with_capacity(frames)).collect();
    for _ in 0..frames {
        for channel in &mut channels {
            channel.push(((rng.next() >> 49) as i64 - (1 << 14)) as f32 / 32_768.0);
        }
    }
    let pcm = Pcm::new(48_000, channels);
    let path = dir.join("input.wav");
    ensemble_audio::wav::write_wav(&path, &pcm, ensemble_audio::wav::WavFormat::Int16).unwrap();
    (path, pcm)
}

/// Alice's client of `authority`, recording from `input` (with `latency`) into `takes`, with
/// playback on the offline backend.
fn recorder(authority: &Authority, stores: &Path, takes: &Path, input: &Path, latency: u64) -> App {
    let mut app = authority.client("alice", stores);
    app.add_plugins((PlaybackPlugin, RecordPlugin { folder: takes.to_path_buf() }))
        .insert_resource(SoundCard(false))
        .insert_resource(RecordInput::File { path: input.to_path_buf(), latency: Frames(latency) })
        .init_resource::<Made>()
        .add_systems(Update, collect);
    app
}

/// Adds an armed track and waits for the authority to have it.
fn armed_track(app: &mut App) -> TrackId {
    armed_track_with(app, None)
}

/// Adds an armed track, with `instrument` on its chain, and waits for the authority to have it.
fn armed_track_with(app: &mut App, instrument: Option<EffectKind>) -> TrackId {
    step_until(&mut [app], Duration::from_secs(20), |apps| online(apps[0]));
    let project = replica(app).unwrap().project();
    let track = TrackId::new_v7();
    let mut ops = add_track(project, track, "Vocals");
    ops.push(set(track, Field::Track(TrackField::RecordArm(true))));
    if let Some(kind) = instrument {
        let effect = Effect::new(Bus::Track(track), kind, 1.0);
        ops.push(ensemble_testkit::records::create(EffectId::new_v7(), Record::Effect(effect)));
    }
    send(app, EditMsg::Edit(ops));
    step_until(&mut [app], Duration::from_secs(10), |apps| confirmed(apps[0], track.into()));
    track
}

fn confirmed(app: &App, id: RecordId) -> bool {
    replica(app).is_some_and(|replica| replica.confirmed().entry(id).is_some())
}

/// The clips the authority has confirmed.
fn clips(app: &App) -> Vec<(RecordId, Clip)> {
    let Some(replica) = replica(app) else { return Vec::new() };
    replica
        .confirmed()
        .records()
        .filter_map(|(id, entry)| match &entry.record {
            Record::Clip(clip) => Some((id, clip.clone())),
            _ => None,
        })
        .collect()
}

/// Records until the take ends (at a punch-out), or for `seconds` and then stops it.
fn take(app: &mut App, seconds: Option<f64>) -> AudioTake {
    app.world_mut().write_message(RecordMsg::Start);
    let started = std::time::Instant::now();
    let mut stopped = false;
    step_until(&mut [app], Duration::from_secs(30), |apps| {
        if let Some(seconds) = seconds
            && !stopped
            && started.elapsed().as_secs_f64() >= seconds
        {
            apps[0].world_mut().write_message(RecordMsg::Stop);
            stopped = true;
        }
        !apps[0].world().resource::<Made>().0.is_empty()
    });
    match app.world().resource::<Made>().0[0].result.clone() {
        Ok(TakeMade::Audio(take)) => take,
        other => panic!("not an audio take: {other:?}"),
    }
}

/// The take's audio, once the client has its asset's file.
fn take_audio(app: &mut App, asset: ensemble_protocol::AssetId) -> Pcm {
    step_until(&mut [app], Duration::from_secs(20), |apps| apps[0].world().resource::<Media>().audio(asset).is_some());
    app.world().resource::<Media>().audio(asset).unwrap().decode(None).unwrap()
}

/// Renders the project and checks that each frame of the clip plays the take's sample that was
/// recorded there (`first_frame` is where the take's sample 0 lies), and that nothing sounds
/// before the clip.
fn assert_heard_where_played(app: &App, clip: &Clip, take: &Pcm, first_frame: i64) {
    let view = replica(app).unwrap().view();
    let timebase = Timebase::new(view.project().tempo, 48_000);
    let assets = HashMap::from([(clip.asset, take.clone())]);
    let mix = ensemble_audio::render::render_mix(Arc::new(Arrangement::from_project_at(view, &assets, 48_000)));
    let (left, right) = pan_gains(0.0);
    let (start, end) = (timebase.frames(clip.start).0 as usize, timebase.frames(clip.start + clip.length).0 as usize);
    assert!(mix.channels[0][..start].iter().all(|sample| *sample == 0.0), "silence before the clip");
    for frame in start..end {
        let index = (frame as i64 - first_frame) as usize;
        let heard = [mix.channels[0][frame], mix.channels[1][frame]];
        let played = [take.channels[0][index] * left, take.channels[1][index] * right];
        assert!(
            (heard[0] - played[0]).abs() < 1e-6 && (heard[1] - played[1]).abs() < 1e-6,
            "frame {frame}: heard {heard:?}, played {played:?}"
        );
    }
}

#[test]
fn a_take_lands_as_a_clip_where_recording_began_sample_for_sample() {
    let authority = Authority::start();
    let (_dir, stores) = replicas();
    let files = tempfile::tempdir().unwrap();
    let (input, played) = source(files.path(), 1.0);
    let takes = files.path().join("takes");
    let mut app = recorder(&authority, &stores, &takes, &input, 0);
    app.insert_resource(RecordOptions { count_in: false, punch: false });
    let track = armed_track(&mut app);
    app.world_mut().resource_mut::<Transport>().position = Ticks(1920);

    // Past the file's end: the take holds all of it and then silence stops coming.
    let made = take(&mut app, Some(1.4));
    assert_eq!((made.track, made.name.as_str(), made.dropped), (track, "Take 1", 0));
    assert!(made.frames >= played.frames() as u64, "{} frames", made.frames);
    let timebase = Timebase::new(Bpm(120.0), 48_000);
    let asked = timebase.frames(Ticks(1920)).0 as i64;
    // Where the engine played when the input opened: a frame or so of the app after the start.
    assert!((asked..asked + 48_000).contains(&made.first_frame), "began at {} (asked {asked})", made.first_frame);
    assert!(!app.world().resource::<Transport>().playing || made.frames > 0);

    step_until(&mut [&mut app], Duration::from_secs(30), |apps| clips(apps[0]).len() == 1);
    let (_, clip) = clips(&app).remove(0);
    assert_eq!((clip.track, clip.start, clip.source_offset), (track, made.start, made.part.source_offset));
    assert_eq!(clip.name, "Take 1");
    assert_eq!(timebase.frames(clip.start).0 as i64 - clip.source_offset.0 as i64, made.first_frame, "sample-exact");
    let recorded = take_audio(&mut app, clip.asset);
    assert_eq!(recorded.frames() as u64, made.frames);
    for (recorded, played) in recorded.channels.iter().zip(&played.channels) {
        assert_eq!(recorded[..played.len()], played[..], "the take is the input, sample for sample");
    }
    assert_heard_where_played(&app, &clip, &recorded, made.first_frame);
    step_until(&mut [&mut app], Duration::from_secs(10), |apps| apps[0].world().resource::<Takes>().waiting() == 0);
    assert_eq!(std::fs::read_dir(takes.join(authority.project.0.to_string())).unwrap().count(), 0, "files gone");
}

#[test]
fn a_count_in_clicks_first_and_a_punch_records_only_the_loop_range_less_the_latency() {
    let authority = Authority::start();
    let (_dir, stores) = replicas();
    let files = tempfile::tempdir().unwrap();
    let (input, _) = source(files.path(), 3.0);
    let mut app = recorder(&authority, &stores, &files.path().join("takes"), &input, 480);
    app.insert_resource(RecordOptions { count_in: true, punch: true });
    armed_track(&mut app);
    // At 240 BPM a bar is a second: a bar of count-in, then the second bar punched in and out.
    let project = replica(&app).unwrap().project();
    let range = LoopRange { start: Ticks(3840), end: Ticks(7680) };
    let ops = vec![
        set(project, Field::Project(ProjectField::Tempo(Bpm(240.0)))),
        set(project, Field::Project(ProjectField::LoopRange(Some(range)))),
    ];
    send(&mut app, EditMsg::Edit(ops));
    step_until(&mut [&mut app], Duration::from_secs(10), |apps| {
        replica(apps[0]).is_some_and(|replica| replica.confirmed().project().loop_range == Some(range))
    });

    app.world_mut().write_message(RecordMsg::Start);
    let mut clicked_in_count_in = false;
    step_until(&mut [&mut app], Duration::from_secs(10), |apps| {
        let world = apps[0].world();
        let counting = world.resource::<Takes>().describe().is_some_and(|status| status.starts_with("count-in"));
        clicked_in_count_in |= counting && world.resource::<Transport>().metronome;
        !counting && world.resource::<Takes>().rolling().is_some()
    });
    assert!(clicked_in_count_in, "the metronome clicks through the count-in");
    let made = take(&mut app, None);
    assert!(!app.world().resource::<Transport>().metronome, "and is off again after it");
    let timebase = Timebase::new(Bpm(240.0), 48_000);
    assert_eq!((made.start, made.part.length), (range.start, Some(range.end - range.start)), "the punch range");
    assert_eq!(timebase.frames(range.start).0 as i64 - made.part.source_offset.0 as i64, made.first_frame);
    assert!(made.first_frame < 0 || made.first_frame < timebase.frames(range.start).0 as i64, "began in the count-in");

    step_until(&mut [&mut app], Duration::from_secs(30), |apps| clips(apps[0]).len() == 1);
    let (_, clip) = clips(&app).remove(0);
    assert_eq!(
        (clip.start, clip.length, clip.source_offset),
        (range.start, range.end - range.start, made.part.source_offset)
    );
    let recorded = take_audio(&mut app, clip.asset);
    assert_heard_where_played(&app, &clip, &recorded, made.first_frame);
}

#[test]
fn a_take_recorded_offline_waits_through_a_restart_and_lands_once() {
    let mut authority = Authority::start();
    let (_dir, stores) = replicas();
    let files = tempfile::tempdir().unwrap();
    let (input, _) = source(files.path(), 0.5);
    let takes = files.path().join("takes");
    let mut app = recorder(&authority, &stores, &takes, &input, 0);
    app.insert_resource(RecordOptions { count_in: false, punch: false });
    let track = armed_track(&mut app);

    authority.stop();
    step_until(&mut [&mut app], Duration::from_secs(20), |apps| !online(apps[0]));
    let made = take(&mut app, Some(0.7));
    step_for(&mut app, Duration::from_millis(300));
    let status = app.world().resource::<Takes>().describe().unwrap_or_default();
    assert_eq!(status, "1 take waiting for the authority");
    assert!(clips(&app).is_empty());
    drop(app);

    // The app is closed and opened again; the authority comes back.
    authority.resume();
    let mut app = recorder(&authority, &stores, &takes, &input, 0);
    step_until(&mut [&mut app], Duration::from_secs(30), |apps| {
        clips(apps[0]).len() == 1 && apps[0].world().resource::<Takes>().waiting() == 0
    });
    // Some frames later it is still the one clip: it landed once.
    step_for(&mut app, Duration::from_secs(1));
    let placed = clips(&app);
    assert_eq!(placed.len(), 1);
    assert_eq!((placed[0].1.track, placed[0].1.start, placed[0].1.name.as_str()), (track, made.start, "Take 1"));
    let (state, _) = authority.state();
    let on_authority = state.records().filter(|(_, entry)| matches!(entry.record, Record::Clip(_))).count();
    assert_eq!(on_authority, 1);
}

#[test]
fn on_a_track_with_an_instrument_the_controllers_notes_become_a_note_clip_where_they_were_played() {
    let authority = Authority::start();
    let (_dir, stores) = replicas();
    let files = tempfile::tempdir().unwrap();
    // No audio input at all: a take of notes opens none.
    let mut app = recorder(&authority, &stores, &files.path().join("takes"), &files.path().join("none.wav"), 0);
    app.insert_resource(RecordOptions { count_in: false, punch: false }).insert_resource(MidiIn::new());
    let track = armed_track_with(&mut app, Some(EffectKind::Synth));
    app.world_mut().resource_mut::<Transport>().position = Ticks(1920);
    let controller = app.world().resource::<MidiIn>().sender();

    app.world_mut().write_message(RecordMsg::Start);
    step_until(&mut [&mut app], Duration::from_secs(10), |apps| {
        apps[0].world().resource::<Takes>().rolling().is_some()
    });
    let began = std::time::Instant::now();
    step_for(&mut app, Duration::from_millis(300));
    // A chord, then the C let go; the E is held past the end.
    let chord = std::time::Instant::now();
    controller.send(MidiEvent { at: chord, pitch: 60, velocity: 100 }).unwrap();
    controller.send(MidiEvent { at: chord, pitch: 64, velocity: 80 }).unwrap();
    step_for(&mut app, Duration::from_millis(400));
    let released = std::time::Instant::now();
    controller.send(MidiEvent { at: released, pitch: 60, velocity: 0 }).unwrap();
    step_for(&mut app, Duration::from_millis(200));
    let stopped = std::time::Instant::now();
    app.world_mut().write_message(RecordMsg::Stop);
    step_until(&mut [&mut app], Duration::from_secs(5), |apps| !apps[0].world().resource::<Made>().0.is_empty());
    let Ok(TakeMade::Notes { track: on, notes: 2, .. }) = app.world().resource::<Made>().0[0].result.clone() else {
        panic!("{:?}", app.world().resource::<Made>().0)
    };
    assert_eq!(on, track);

    // The clip reaches the authority like any edit.
    let note_clip = |app: &App| {
        replica(app)?.confirmed().records().find_map(|(_, entry)| match &entry.record {
            Record::NoteClip(clip) => Some(clip.clone()),
            _ => None,
        })
    };
    step_until(&mut [&mut app], Duration::from_secs(10), |apps| note_clip(apps[0]).is_some());
    let clip = note_clip(&app).unwrap();
    assert_eq!((clip.track, clip.start, clip.length), (track, Ticks(1920), Ticks(3840)), "from where it began, a bar");
    // 1,920 ticks a second at 120 BPM; the test's clock readings and the app's frames blur each
    // time by a few milliseconds (more when the whole suite shares two cores).
    let ticks = |from: std::time::Instant, to: std::time::Instant| (to - from).as_secs_f64() * 1920.0;
    let near = |found: i64, wanted: f64| (found as f64 - wanted).abs() < 150.0;
    let mut notes: Vec<&Note> = clip.notes.iter().collect();
    notes.sort_by_key(|note| note.pitch);
    assert_eq!((notes[0].pitch, notes[0].velocity, notes[1].pitch, notes[1].velocity), (60, 100, 64, 80));
    assert_eq!(notes[0].start, notes[1].start, "a chord starts together");
    assert!(near(notes[0].start.0, ticks(began, chord)), "{notes:?}, {}", ticks(began, chord));
    assert!(near(notes[0].length.0, ticks(chord, released)), "{notes:?}");
    assert!(near(notes[1].length.0, ticks(chord, stopped)), "held to the end: {notes:?}");
}

#[test]
fn the_controllers_keys_are_heard_through_the_armed_instrument_as_they_are_played() {
    use ensemble_client::playback::{Keys, OutputLevel};
    let authority = Authority::start();
    let (_dir, stores) = replicas();
    let files = tempfile::tempdir().unwrap();
    let mut app = recorder(&authority, &stores, &files.path().join("takes"), &files.path().join("none.wav"), 0);
    armed_track_with(&mut app, Some(EffectKind::Synth));
    app.world_mut().resource_mut::<Transport>().playing = true;
    let level = |app: &App| app.world().resource::<OutputLevel>().0[0];
    step_for(&mut app, Duration::from_millis(300));
    assert_eq!(level(&app), 0.0, "an empty song plays silence");
    // What the MIDI thread does with a controller's note-on: no recording, no frame in between.
    let keys = app.world().resource::<Keys>().0.clone();
    keys.press(57, 110);
    step_until(&mut [&mut app], Duration::from_secs(10), |apps| level(apps[0]) > 0.02);
    keys.lift(57);
    step_until(&mut [&mut app], Duration::from_secs(10), |apps| level(apps[0]) == 0.0);
    assert!(app.world().resource::<Takes>().rolling().is_none(), "nothing was recorded");
}
