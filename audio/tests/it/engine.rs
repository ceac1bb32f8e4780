use ensemble_audio::engine::{Engine, OfflineBackend};
use ensemble_audio::render::{Frame, render_mix};
use ensemble_protocol::*;

use crate::alloc::allocations_in;
use crate::song::{CENTRE, RATE, Song, assert_plays_as_exported, dc, impulse};

/// Pulls `frames` frames from the engine in blocks of `block`.
fn pull(engine: &mut Engine<OfflineBackend>, frames: usize, block: usize) -> Vec<Frame> {
    let mut out = vec![[0.0; 2]; frames];
    for chunk in out.chunks_mut(block) {
        engine.backend_mut().render(chunk);
    }
    out
}

fn song_with_three_tracks() -> Song {
    let mut song = Song::new(93.7);
    for (level, tick, pan) in [(0.2, 0, -0.5), (0.3, 1000, 0.25), (0.1, 3333, 0.9)] {
        let (track, asset) = (song.track(), song.asset(dc(level, 30_000)));
        song.clip(track, asset, tick, 960);
        song.set(track, Field::Track(TrackField::Pan(pan)));
        song.lane(track, Parameter::Gain, &[(0, -3.0, Curve::Linear), (4000, 0.0, Curve::Hold)]);
    }
    song
}

#[test]
fn the_live_graph_plays_what_the_export_renders() {
    let song = song_with_three_tracks();
    let arrangement = song.arrangement();
    let export = render_mix(arrangement.clone());
    assert_plays_as_exported(arrangement, &export, 300);
}

#[test]
fn every_track_starts_and_stops_on_the_same_sample() {
    let mut song = Song::new(120.0);
    for _ in 0..4 {
        // A quiet impulse: kira clips its output at ±1, and four of them add up.
        let mut quiet = impulse();
        quiet.channels[0] = quiet.channels[0].iter().map(|s| s * 0.2).collect::<Vec<f32>>().into();
        let (track, asset) = (song.track(), song.asset(quiet));
        song.clip(track, asset, 960, 960); // frame 24,000
    }
    let mut engine = Engine::<OfflineBackend>::new(RATE, song.arrangement()).unwrap();
    let mut rendered = 0;
    let mut pull_more = |engine: &mut Engine<OfflineBackend>, frames: usize, block: usize| {
        let out = pull(engine, frames, block);
        let first = rendered;
        rendered += frames;
        (first, out)
    };
    pull_more(&mut engine, 1000, 1000);
    // Play from frame 23,000: the impulses land 1,000 frames after the start, all four together.
    let start = engine.play_from(23_000).unwrap() as usize;
    let (first, out) = pull_more(&mut engine, start + 2000 - 1000, 128);
    let hits: Vec<usize> = out.iter().enumerate().filter(|(_, f)| f[0] != 0.0).map(|(i, _)| first + i).collect();
    assert_eq!(hits, vec![start + 1000]);
    let sum = out[start + 1000 - first][0];
    assert!((sum - 0.8 * CENTRE).abs() < 1e-6, "four tracks on one sample: {sum}");
    // Stop, then play again from 24,000: the impulses sound on the first frame, together.
    engine.stop_at(0).unwrap();
    let (first, _) = pull_more(&mut engine, 5000, 1000);
    let so_far = first + 5000;
    let start = engine.play_from(24_000).unwrap() as usize;
    let (first, out) = pull_more(&mut engine, start + 10 - so_far, 64);
    let hits: Vec<usize> = out.iter().enumerate().filter(|(_, f)| f[0] != 0.0).map(|(i, _)| first + i).collect();
    assert_eq!(hits, vec![start]);
    assert!((out[start - first][0] - 0.8 * CENTRE).abs() < 1e-6);
}

#[test]
fn the_kira_graph_allocates_nothing_while_it_plays() {
    let song = song_with_three_tracks();
    let mut engine = Engine::<OfflineBackend>::new(RATE, song.arrangement()).unwrap();
    engine.play_from(0).unwrap();
    let mut block = vec![[0.0; 2]; 512];
    for _ in 0..4 {
        engine.backend_mut().render(&mut block); // warm up: the first blocks settle kira's state
    }
    let allocations = allocations_in(|| {
        for _ in 0..100 {
            engine.backend_mut().render(&mut block);
        }
    });
    assert_eq!(allocations, 0, "rendering through kira allocated or freed memory");
    assert!(block.iter().any(|f| f[0] != 0.0), "it was playing");
}

#[test]
fn the_metronome_clicks_on_every_beat_louder_on_the_bar_and_only_when_on() {
    let mut song = Song::new(120.0);
    let (track, asset) = (song.track(), song.asset(dc(0.0, 10)));
    song.clip(track, asset, 0, 4 * 3840);
    let mut engine = Engine::<OfflineBackend>::new(RATE, song.arrangement()).unwrap();
    let start = engine.play_from(0).unwrap() as usize;
    let silent = pull(&mut engine, start + 100_000, 512);
    assert!(silent.iter().all(|f| *f == [0.0, 0.0]), "the metronome starts off");

    let mut engine = Engine::<OfflineBackend>::new(RATE, song.arrangement()).unwrap();
    engine.set_metronome(true).unwrap();
    let start = engine.play_from(0).unwrap() as usize;
    let out = pull(&mut engine, start + 5 * 24_000, 512);
    let loudest = |from: usize| out[start + from..start + from + 1_440].iter().fold(0.0f32, |m, f| m.max(f[0].abs()));
    // Beats every 24,000 frames at 120 BPM; each click rings 30 ms (1,440 frames).
    let beats: Vec<f32> = (0..5).map(|beat| loudest(beat * 24_000)).collect();
    assert!(beats.iter().all(|level| *level > 0.1), "{beats:?}");
    assert!(beats[0] > beats[1] && beats[4] > beats[3], "bar starts are accented: {beats:?}");
    assert!(out[start + 2_000..start + 23_999].iter().all(|f| *f == [0.0, 0.0]), "silence between clicks");
    assert!(out[start + 24_000][0] == 0.0 && out[start + 24_001][0] != 0.0, "a click starts on its beat's frame");
    // The export never includes the click.
    assert!(render_mix(song.arrangement()).channels[0].iter().all(|s| *s == 0.0));
}

#[test]
fn meters_show_each_tracks_peak_since_they_were_last_read() {
    let mut song = Song::new(120.0);
    let (loud, quiet, muted) = (song.track(), song.track(), song.track());
    for (track, level) in [(loud, 0.8), (quiet, 0.2), (muted, 0.5)] {
        let asset = song.asset(dc(level, 200_000));
        song.clip(track, asset, 0, 3840);
    }
    song.set(quiet, Field::Track(TrackField::Pan(-1.0)));
    song.set(muted, Field::Track(TrackField::Mute(true)));
    let mut engine = Engine::<OfflineBackend>::new(RATE, song.arrangement()).unwrap();
    pull(&mut engine, 1024, 512);
    assert_eq!(engine.meters().take(0), [0.0, 0.0], "stopped: silent");
    let start = engine.play_from(0).unwrap() as usize;
    pull(&mut engine, start + 4096, 512);
    let [left, right] = engine.meters().take(0);
    assert!((left - 0.8 * CENTRE).abs() < 1e-6 && (right - 0.8 * CENTRE).abs() < 1e-6, "{left} {right}");
    assert_eq!(engine.meters().take(1), [0.2, 0.0], "hard left");
    assert_eq!(engine.meters().take(2), [0.0, 0.0], "muted");
    assert_eq!(engine.meters().take(0), [0.0, 0.0], "taking resets");
    assert_eq!(engine.meters().take(5_000), [0.0, 0.0], "no such track");
    let allocations = allocations_in(|| {
        pull_into(&mut engine, &mut [[0.0; 2]; 512]);
    });
    assert_eq!(allocations, 0, "metering allocated");
    assert!(engine.meters().take(0)[0] > 0.5, "still playing");
}

fn pull_into(engine: &mut Engine<OfflineBackend>, block: &mut [Frame]) {
    engine.backend_mut().render(block);
}

#[test]
fn looping_can_be_switched_off_and_on_while_playing() {
    let mut song = Song::new(120.0);
    let ramp = ensemble_audio::Pcm::new(RATE, vec![(0..200_000).map(|i| i as f32 / 1e6).collect()]);
    let (track, asset) = (song.track(), song.asset(ramp.clone()));
    song.clip(track, asset, 0, 7680);
    let range = LoopRange { start: Ticks(0), end: Ticks(960) }; // frames 0..24,000
    song.set(song.state.id(), Field::Project(ProjectField::LoopRange(Some(range))));
    let played = |looping: bool| {
        let mut engine = Engine::<OfflineBackend>::new(RATE, song.arrangement()).unwrap();
        engine.set_looping(looping).unwrap();
        let start = engine.play_from(20_000).unwrap() as usize;
        let out = pull(&mut engine, start + 8_000, 500);
        out[start + 6_000][0]
    };
    // 6,000 frames after starting at 20,000: frame 2,000 when looping, 26,000 straight through.
    assert_eq!(played(true), ramp.channels[0][2_000] * CENTRE);
    assert_eq!(played(false), ramp.channels[0][26_000] * CENTRE);
}

#[test]
fn an_edit_while_playing_crossfades_without_a_click_and_allocates_nothing() {
    let mut song = Song::new(120.0);
    let (track, asset) = (song.track(), song.asset(dc(0.5, 400_000)));
    song.clip(track, asset, 0, 15_000);
    let mut engine = Engine::<OfflineBackend>::new(RATE, song.arrangement()).unwrap();
    let start = engine.play_from(0).unwrap() as usize;
    let before = pull(&mut engine, start + 10_000, 128);
    let full = 0.5 * CENTRE;
    assert!((before.last().unwrap()[0] - full).abs() < 1e-6);
    // Mute it: silence within a crossfade (plus the chunk the command waits for), in steps.
    song.set(track, Field::Track(TrackField::Mute(true)));
    engine.set_arrangement(song.arrangement()).unwrap();
    let mut after = vec![[0.0; 2]; 2_048];
    let allocations = allocations_in(|| {
        for chunk in after.chunks_mut(128) {
            engine.backend_mut().render(chunk);
        }
    });
    assert_eq!(allocations, 0, "the crossfade allocated or freed memory");
    let steps: Vec<f32> = std::iter::once(before.last().unwrap()[0])
        .chain(after.iter().map(|f| f[0]))
        .collect::<Vec<f32>>()
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).abs())
        .collect();
    let biggest = steps.iter().fold(0.0f32, |m, s| m.max(*s));
    let smooth = full / ensemble_audio::engine::CROSSFADE_FRAMES as f32 * 1.01;
    assert!(biggest <= smooth, "a step of {biggest} (a click); a ramp moves by {smooth} at most");
    let silent_from = after.iter().position(|f| f[0] == 0.0).expect("it goes silent");
    assert!(silent_from <= ensemble_audio::engine::CROSSFADE_FRAMES + 128, "silent after {silent_from} frames");
    assert!(after[silent_from..].iter().all(|f| *f == [0.0, 0.0]), "and stays silent");
}
