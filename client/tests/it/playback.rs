//! Playback: the model reaches the audio engine, and the playhead follows the engine's clock.

use std::time::Duration;

use ensemble_client::playback::{Output, OutputLevel, Playback, PlaybackPlugin, Transport};
use ensemble_client::solo::SoloSettings;
use ensemble_client::sync::SyncPlugin;
use ensemble_protocol::{TICKS_PER_QUARTER, Ticks};

use crate::harness::{client_app, online, step_until};

/// A solo client on a fresh demo song in `dir`, with playback.
fn demo_song(dir: &std::path::Path) -> bevy::prelude::App {
    let settings = SoloSettings {
        dir: dir.join("solo"),
        replicas: dir.join("replicas"),
        display_name: "Player".into(),
        project: None,
        demo: Some(ensemble_client::solo::DemoSize::Song),
        lan: None,
    };
    let mut app = client_app(SyncPlugin::solo(settings));
    app.add_plugins(PlaybackPlugin);
    app
}

/// Every export that ended, oldest first.
#[derive(bevy::prelude::Resource, Default)]
struct Exports(Vec<ensemble_client::playback::ExportDone>);

fn collect_exports(
    mut done: bevy::prelude::MessageReader<ensemble_client::playback::ExportDone>,
    mut all: bevy::prelude::ResMut<Exports>,
) {
    all.0.extend(done.read().cloned());
}

/// Exports the mix to `path` as 16-bit WAV, asking again while the clips' audio is still
/// arriving (each refusal says so), one request at a time; the export's length in seconds.
fn export_when_ready(app: &mut bevy::prelude::App, path: &std::path::Path) -> f64 {
    use ensemble_client::playback::ExportMsg;
    app.init_resource::<Exports>().add_systems(bevy::prelude::Update, collect_exports);
    let mut asked = 0;
    step_until(&mut [app], Duration::from_secs(120), |apps| {
        let done = &apps[0].world().resource::<Exports>().0;
        if let Some(last) = done.last() {
            match &last.result {
                Ok(_) => return true,
                Err(reason) => assert!(reason.contains("still downloading"), "{reason}"),
            }
        }
        if done.len() == asked {
            asked += 1;
            let format = ensemble_audio::wav::WavFormat::Int16;
            apps[0].world_mut().write_message(ExportMsg { path: path.to_path_buf(), format });
        }
        false
    });
    app.world().resource::<Exports>().0.last().cloned().and_then(|done| done.result.ok()).unwrap_or_default()
}

#[test]
fn the_demo_song_plays_and_the_playhead_follows_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo_song(dir.path());
    step_until(&mut [&mut app], Duration::from_secs(60), |apps| online(apps[0]));
    app.world_mut().resource_mut::<Transport>().playing = true;
    let offline = |app: &mut bevy::prelude::App| {
        matches!(app.world_mut().non_send_mut::<Playback>().output(), Some(Output::Offline(_)))
    };
    step_until(&mut [&mut app], Duration::from_secs(60), |apps| {
        let position = apps[0].world().resource::<Transport>().position;
        // Where a sound card plays, the test cannot listen; the playhead still moves.
        let heard = !offline(apps[0]) || apps[0].world().resource::<OutputLevel>().0[0] > 0.05;
        position > Ticks(2 * TICKS_PER_QUARTER) && heard
    });

    // Stopping holds the playhead where it is.
    app.world_mut().resource_mut::<Transport>().playing = false;
    app.update();
    let stopped = app.world().resource::<Transport>().position;
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..5 {
        app.update();
    }
    assert_eq!(app.world().resource::<Transport>().position, stopped);
}

#[test]
fn the_playhead_wraps_at_the_loop_end_only_when_it_started_inside_the_loop() {
    use ensemble_client::playback::playhead;
    let looped = Some((24_000, 48_000));
    assert_eq!(playhead(30_000, 10_000, looped), 40_000, "before the end: straight on");
    assert_eq!(playhead(30_000, 18_000, looped), 24_000, "the end is the start again");
    assert_eq!(playhead(30_000, 18_000 + 24_000 * 3 + 5, looped), 24_005, "round and round");
    assert_eq!(playhead(0, 50_000, looped), 26_000, "from before the loop: into it, then round");
    assert_eq!(playhead(50_000, 1_000, looped), 51_000, "from past the loop: straight on");
    assert_eq!(playhead(30_000, 18_000, None), 48_000, "no loop");
    assert_eq!(playhead(30_000, 18_000, Some((48_000, 48_000))), 48_000, "an empty loop does not loop");
}

#[test]
fn the_mix_exports_to_a_wav_file_and_the_meters_move_while_it_plays() {
    use ensemble_client::playback::TrackLevels;
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo_song(dir.path());
    step_until(&mut [&mut app], Duration::from_secs(60), |apps| online(apps[0]));
    let path = dir.path().join("mix.wav");
    // Until every clip's audio has arrived and decoded, an export is refused with the reason.
    let seconds = export_when_ready(&mut app, &path);
    // Eight bars at 120 BPM, then the keys' reverb ringing out (3.8 s at the demo's room size).
    assert!((seconds - 19.8).abs() < 0.01, "eight bars at 120 BPM and the tail: {seconds} s");
    let reader = hound::WavReader::open(&path).unwrap();
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.bits_per_sample), (2, 16));
    assert_eq!(f64::from(reader.duration()), (f64::from(spec.sample_rate) * seconds).round());
    let samples: Vec<u16> = reader.into_samples::<i16>().map(|s| s.unwrap().unsigned_abs()).collect();
    let loudest = samples.iter().max().copied().unwrap();
    assert!(loudest > 1_000, "the mix is not silent: {loudest}");
    // The tail rings after the song (a quarter second in) and has died away at the end.
    let song_end = spec.sample_rate as usize * 16 * 2;
    let ringing = samples[song_end..song_end + 24_000].iter().max().copied().unwrap();
    let last = samples[samples.len() - 4_800..].iter().max().copied().unwrap();
    assert!(ringing > 20 && last < ringing / 20, "the tail: {ringing} after the song, {last} at the end");

    // While it plays, each track's meter shows its level (where the test can listen). From bar
    // 5 all three tracks play.
    *app.world_mut().resource_mut::<Transport>() =
        Transport { playing: true, position: Ticks(16 * TICKS_PER_QUARTER), ..Transport::default() };
    let offline = matches!(app.world_mut().non_send_mut::<Playback>().output(), Some(Output::Offline(_)));
    if offline {
        step_until(&mut [&mut app], Duration::from_secs(30), |apps| {
            let levels = apps[0].world().resource::<TrackLevels>();
            levels.tracks.len() == 3 && levels.tracks.values().all(|level| level.held > 0.01)
        });
    }
}

#[test]
fn a_start_that_arrives_late_plays_from_where_the_music_is_by_then() {
    use ensemble_client::clock::Clock;
    use ensemble_client::playback::{LastStart, SoundCard, StartAt};
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo_song(dir.path());
    app.insert_resource(SoundCard(false));
    step_until(&mut [&mut app], Duration::from_secs(60), |apps| online(apps[0]));
    app.update();
    // Told (by a jam that this machine joined late) that playing began a second ago.
    let clock = *app.world().resource::<Clock>();
    let asked = StartAt { at: clock.now() - 1_000_000_000, from: Ticks(TICKS_PER_QUARTER) };
    app.world_mut().write_message(asked);
    step_until(&mut [&mut app], Duration::from_secs(5), |apps| apps[0].world().resource::<LastStart>().0.is_some());
    let start = app.world().resource::<LastStart>().0.unwrap();
    // The demo song is at 120 BPM and 48 kHz: a quarter is 24,000 frames, a second 48,000.
    let late = start.position as i64 - 24_000;
    assert!((48_000..48_000 + 12_000).contains(&late), "it plays {late} frames on from where it was asked");
    // Where it starts is where the music is at its first frame: the clock agrees.
    let due = start.time as i64 - asked.at as i64;
    assert!((due - late * 1_000_000_000 / 48_000).abs() < 50_000, "{due} ns after the asked start");
    assert!(app.world().resource::<Transport>().playing);
}

#[test]
fn a_card_at_another_rate_plays_the_project_resampled_and_says_so() {
    use bevy::prelude::{MessageReader, ResMut, Resource, Update};
    use ensemble_client::playback::{OfflineRate, PlaybackNote, SoundCard};
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo_song(dir.path());
    // The offline output stands in for a card that runs at 44.1 kHz under a 48 kHz project.
    app.insert_resource(SoundCard(false)).insert_resource(OfflineRate(Some(44_100)));
    #[derive(Resource, Default)]
    struct Heard(Vec<PlaybackNote>);
    app.init_resource::<Heard>()
        .add_systems(Update, |mut notes: MessageReader<PlaybackNote>, mut heard: ResMut<Heard>| {
            heard.0.extend(notes.read().cloned())
        });
    step_until(&mut [&mut app], Duration::from_secs(60), |apps| online(apps[0]));
    // The card's rate shows once it renders; the user is told, and it plays, from audio
    // decoded again at the card's rate.
    app.world_mut().resource_mut::<Transport>().playing = true;
    step_until(&mut [&mut app], Duration::from_secs(60), |apps| !apps[0].world().resource::<Heard>().0.is_empty());
    let note = &app.world().resource::<Heard>().0[0].0;
    assert!(note.contains("44,100 Hz") && note.contains("48,000 Hz project is resampled"), "{note}");
    step_until(&mut [&mut app], Duration::from_secs(60), |apps| {
        let position = apps[0].world().resource::<Transport>().position;
        position > Ticks(2 * TICKS_PER_QUARTER) && apps[0].world().resource::<OutputLevel>().0[0] > 0.05
    });
    app.world_mut().resource_mut::<Transport>().playing = false;

    // The export is at the project's rate, as long as the song, whatever the card's rate.
    let path = dir.path().join("mix.wav");
    let seconds = export_when_ready(&mut app, &path);
    let reader = hound::WavReader::open(&path).unwrap();
    assert_eq!((reader.spec().sample_rate, f64::from(reader.duration())), (48_000, (48_000.0 * seconds).round()));
    let loudest = reader.into_samples::<i16>().map(|s| s.unwrap().unsigned_abs()).max().unwrap();
    assert!(loudest > 1_000, "the mix is not silent: {loudest}");
}

#[test]
fn an_effect_added_or_turned_while_playing_reaches_the_engine() {
    use ensemble_client::edits::{add_effect, remove_effect, set_effect_param};
    use ensemble_client::history::EditMsg;
    use ensemble_protocol::{Bus, EffectKind, EffectParam};
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo_song(dir.path());
    step_until(&mut [&mut app], Duration::from_secs(60), |apps| online(apps[0]));
    app.world_mut().resource_mut::<Transport>().playing = true;
    let engine_plays = |app: &mut bevy::prelude::App| app.world_mut().non_send_mut::<Playback>().arrangement().cloned();
    step_until(&mut [&mut app], Duration::from_secs(30), |apps| engine_plays(apps[0]).is_some());

    // A compressor on the master: the engine hears of it at once, not at the next clip edit.
    let (compressor, ops) = add_effect(Bus::Master, EffectKind::Compressor, &[]);
    app.world_mut().write_message(EditMsg::Edit(ops));
    step_until(&mut [&mut app], Duration::from_secs(10), |apps| {
        engine_plays(apps[0]).is_some_and(|arrangement| arrangement.master.iter().any(|plan| plan.id == compressor))
    });
    // A knob turned: the same.
    app.world_mut().write_message(EditMsg::Edit(set_effect_param(compressor.into(), EffectParam::Ratio, 9.0)));
    let ratio = EffectKind::Compressor.index_of(EffectParam::Ratio).unwrap();
    step_until(&mut [&mut app], Duration::from_secs(10), |apps| {
        engine_plays(apps[0]).is_some_and(|arrangement| arrangement.master.iter().any(|plan| plan.params[ratio] == 9.0))
    });
    // And removed: gone from the engine too.
    app.world_mut().write_message(EditMsg::Edit(remove_effect(compressor.into(), [])));
    step_until(&mut [&mut app], Duration::from_secs(10), |apps| {
        engine_plays(apps[0]).is_some_and(|arrangement| arrangement.master.is_empty())
    });
}
