//! The built-in synth playing note clips: onsets to the frame, pitches, releases.

use std::sync::Arc;

use ensemble_audio::engine::{Engine, OfflineBackend};
use ensemble_audio::keyboard::Keyboard;
use ensemble_audio::render::{Frame, Renderer, render_mix};
use ensemble_protocol::*;
use ensemble_testkit::records::create;

use crate::song::{RATE, Song, assert_plays_as_exported};

/// A track with a synth set to `settings` (on top of its defaults) and a clip of `notes`
/// (pitch, start, length in ticks) starting at `clip_start`.
fn synth_song(settings: &[(EffectParam, f32)], clip_start: i64, notes: &[(u8, i64, i64)]) -> Song {
    let mut song = Song::new(120.0);
    let track = song.track();
    let synth = Effect::new(Bus::Track(track), EffectKind::Synth, 1.0).with(settings);
    let notes = notes
        .iter()
        .map(|&(pitch, start, length)| Note {
            id: NoteId::new_v7(),
            pitch,
            velocity: 100,
            start: Ticks(start),
            length: Ticks(length),
        })
        .collect();
    let clip = NoteClip { track, start: Ticks(clip_start), length: Ticks(8 * 960), name: "Notes".into(), notes };
    song.apply(vec![
        create(EffectId::new_v7(), Record::Effect(synth)),
        create(NoteClipId::new_v7(), Record::NoteClip(clip)),
    ]);
    song
}

/// A plain tone: a square with the filter wide open and no envelope to speak of.
const PLAIN: [(EffectParam, f32); 6] = [
    (EffectParam::Shape, 1.0),
    (EffectParam::Cutoff, 20_000.0),
    (EffectParam::FilterEnv, 0.0),
    (EffectParam::AmpAttack, 1.0),
    (EffectParam::AmpSustain, 1.0),
    (EffectParam::AmpRelease, 5.0),
];

fn left(frames: &[Frame]) -> Vec<f32> {
    frames.iter().map(|f| f[0]).collect()
}

/// The pitch of a tone by its rising zero crossings: a square crosses upward once a cycle.
fn hertz_of(samples: &[f32]) -> f64 {
    let rising = samples.windows(2).filter(|pair| pair[0] < 0.0 && pair[1] >= 0.0).count();
    rising as f64 * f64::from(RATE) / samples.len() as f64
}

fn peak(frames: &[Frame]) -> f32 {
    frames.iter().fold(0.0f32, |m, f| m.max(f[0].abs()))
}

#[test]
fn a_note_starts_on_its_exact_frame_whatever_the_block() {
    // At 120 BPM and 48 kHz a quarter is 24,000 frames: a clip at beat 2 with a note an eighth
    // into it starts at frame 36,000; the same note at the song's start, at frame 12,000.
    let later = synth_song(&PLAIN, 960, &[(60, 480, 960)]);
    let earlier = left(&synth_song(&PLAIN, 0, &[(60, 480, 960)]).render(0, 20_000, 512));
    for block in [1, 64, 256, 1000] {
        let out = left(&later.render(0, 44_000, block));
        assert!(out[..36_000].iter().all(|s| *s == 0.0), "block {block}: silent before the note");
        // The same samples, exactly 24,000 frames on: the note starts on its frame.
        assert_eq!(out[36_000..44_000], earlier[12_000..20_000], "block {block}");
        assert!(out[36_000..36_010].iter().any(|s| *s != 0.0), "it sounds at once");
    }
}

#[test]
fn notes_sound_at_their_pitch() {
    for (pitch, hertz) in [(69, 440.0), (57, 220.0), (81, 880.0)] {
        let song = synth_song(&PLAIN, 0, &[(pitch, 0, 4 * 960)]);
        let out = left(&song.render(0, RATE as usize, 512));
        let measured = hertz_of(&out[RATE as usize / 5..RATE as usize * 4 / 5]);
        assert!((measured - hertz).abs() <= 2.0, "pitch {pitch}: {measured} Hz, not {hertz}");
    }
}

#[test]
fn chords_play_together_and_every_note_dies_away_after_its_end() {
    let song = synth_song(&PLAIN, 0, &[(60, 0, 960), (64, 0, 960), (67, 480, 480)]);
    let out = song.render(0, 40_000, 256);
    let peak = |range: std::ops::Range<usize>| peak(&out[range]);
    assert!(peak(12_000..23_000) > peak(1_000..11_000), "the third note adds to the first two");
    // Released at 24,000 with a 5 ms release: silent from 24,240 on.
    assert_eq!(peak(24_240..40_000), 0.0);
}

#[test]
fn a_jump_lets_go_of_held_notes() {
    let song = synth_song(&PLAIN, 0, &[(60, 0, 8 * 960)]);
    let mut renderer = ensemble_audio::render::Renderer::new(song.arrangement());
    let mut block = vec![[0.0; 2]; 1024];
    for _ in 0..10 {
        renderer.render(&mut block);
    }
    assert!(block.iter().any(|f| f[0] != 0.0), "the note sounds");
    // Jump past the note's start, as a seek or a loop does: it is not restarted, and what
    // sounded is released.
    renderer.seek(48_000);
    for _ in 0..2 {
        renderer.render(&mut block);
    }
    assert!(block.iter().all(|f| f[0] == 0.0), "nothing hangs after the jump");
}

#[test]
fn the_synth_plays_live_as_it_exports() {
    let song = synth_song(&[], 0, &[(48, 0, 480), (55, 480, 480), (60, 960, 1920), (43, 2880, 960)]);
    let arrangement = song.arrangement();
    let export = render_mix(arrangement.clone());
    assert!(export.frames() > 4 * 24_000, "the song and the release");
    assert_plays_as_exported(arrangement, &export, 333);
    assert!(export.channels[0].iter().any(|s| s.abs() > 0.05), "it is heard");
}

#[test]
fn sixteen_voices_render_without_allocating() {
    let notes: Vec<(u8, i64, i64)> = (0..16).map(|n| (40 + n as u8 * 2, 0, 8 * 960)).collect();
    let song = synth_song(&[], 0, &notes);
    let mut renderer = ensemble_audio::render::Renderer::new(song.arrangement());
    let mut block = vec![[0.0; 2]; 256];
    renderer.render(&mut block);
    let allocations = crate::alloc::allocations_in(|| {
        for _ in 0..100 {
            renderer.render(&mut block);
        }
    });
    assert_eq!(allocations, 0);
    assert!(block.iter().all(|f| f[0].is_finite()) && block.iter().any(|f| f[0] != 0.0));
}

/// A song whose first track has the plain synth on its chain and no notes, armed when `armed`;
/// and a second armed track with no instrument below it.
fn synth_to_play(armed: bool) -> (Song, TrackId) {
    let mut song = Song::new(120.0);
    let track = song.track();
    let synth = Effect::new(Bus::Track(track), EffectKind::Synth, 1.0).with(&PLAIN);
    song.apply(vec![create(EffectId::new_v7(), Record::Effect(synth))]);
    song.set(track, Field::Track(TrackField::RecordArm(armed)));
    let other = song.track();
    song.set(other, Field::Track(TrackField::RecordArm(true)));
    (song, track)
}

/// Pulls `frames` frames from the engine.
fn pull(engine: &mut Engine<OfflineBackend>, frames: usize) -> Vec<Frame> {
    let mut out = vec![[0.0; 2]; frames];
    for chunk in out.chunks_mut(128) {
        engine.backend_mut().render(chunk);
    }
    out
}

#[test]
fn keys_played_on_a_controller_sound_through_the_armed_instrument_while_stopped() {
    let (mut song, track) = synth_to_play(true);
    let arrangement = song.arrangement();
    assert_eq!(arrangement.tracks.iter().map(|t| t.monitor).collect::<Vec<_>>(), [true, false]);
    let mut engine = Engine::<OfflineBackend>::new(RATE, arrangement).unwrap();
    let keyboard = Arc::new(Keyboard::default());
    engine.set_keyboard(keyboard.clone()).unwrap();
    assert_eq!(peak(&pull(&mut engine, 4800)), 0.0, "silent until a key goes down");
    keyboard.press(69, 127);
    let held = pull(&mut engine, RATE as usize / 2);
    let first = held.iter().position(|f| f[0] != 0.0).expect("the key sounds");
    assert!(first <= 128, "heard in the next block, not {first} frames later");
    let measured = hertz_of(&left(&held[2400..]));
    assert!((measured - 440.0).abs() <= 3.0, "{measured} Hz for A4");
    // Held keys allocate nothing, and a key let go dies away in its 5 ms release.
    let mut block = vec![[0.0; 2]; 128];
    let allocations = crate::alloc::allocations_in(|| {
        for _ in 0..40 {
            engine.backend_mut().render(&mut block);
        }
    });
    assert_eq!(allocations, 0);
    keyboard.lift(69);
    let released = pull(&mut engine, 4800);
    assert_eq!(peak(&released[512..]), 0.0, "released");
    // A tap (down and up between two blocks) still sounds, briefly.
    keyboard.press(72, 100);
    keyboard.lift(72);
    let tapped = pull(&mut engine, 9600);
    assert!(peak(&tapped[..2400]) > 0.05 && peak(&tapped[4800..]) == 0.0, "a 50 ms blip");
    // Disarmed, the track no longer hears the keyboard; a held key stops.
    keyboard.press(60, 100);
    assert!(peak(&pull(&mut engine, 2400)) > 0.05);
    song.set(track, Field::Track(TrackField::RecordArm(false)));
    engine.set_arrangement(song.arrangement()).unwrap();
    let after = pull(&mut engine, 9600);
    assert_eq!(peak(&after[4800..]), 0.0, "disarming lets go of what the keys held");
}

#[test]
fn keys_join_the_notes_while_playing_and_outlast_a_jump() {
    let (mut song, track) = synth_to_play(true);
    let notes = vec![Note { id: NoteId::new_v7(), pitch: 48, velocity: 100, start: Ticks(0), length: Ticks(960) }];
    let clip = NoteClip { track, start: Ticks(0), length: Ticks(8 * 960), name: "Notes".into(), notes };
    song.apply(vec![create(NoteClipId::new_v7(), Record::NoteClip(clip))]);
    let arrangement = song.arrangement();
    let keyboard = Arc::new(Keyboard::default());
    let mut renderer = Renderer::new(arrangement.clone());
    renderer.set_keyboard(Some(keyboard.clone()));
    let mut plain = Renderer::new(arrangement);
    let (mut with_key, mut without) = (vec![[0.0; 2]; 256], vec![[0.0; 2]; 256]);
    renderer.render(&mut with_key);
    plain.render(&mut without);
    assert_eq!(with_key, without, "no key down: just the notes");
    keyboard.press(76, 100);
    renderer.render(&mut with_key);
    plain.render(&mut without);
    assert_ne!(with_key, without, "the key joins the note");
    // A jump releases the notes' voices but not the held key's.
    renderer.seek(10 * 24_000);
    let mut after = vec![[0.0; 2]; 9600];
    renderer.render(&mut after);
    let measured = hertz_of(&left(&after[4800..]));
    assert!((measured - 659.3).abs() < 3.0 && peak(&after[4800..]) > 0.05, "E5 still sounds: {measured} Hz");
    keyboard.lift(76);
    renderer.render(&mut after);
    assert_eq!(peak(&after[512..]), 0.0);
}

#[test]
fn only_the_topmost_armed_track_with_an_instrument_is_monitored() {
    let (song, _) = synth_to_play(false);
    // The armed track below has no instrument; the synth's track is not armed.
    assert!(song.arrangement().tracks.iter().all(|t| !t.monitor));
    // Not even a render of the whole mix sounds a key then.
    let keyboard = Arc::new(Keyboard::default());
    keyboard.press(60, 100);
    let mut renderer = Renderer::new(song.arrangement());
    renderer.set_keyboard(Some(keyboard));
    let mut block = vec![[0.0; 2]; 4800];
    renderer.render(&mut block);
    assert_eq!(peak(&block), 0.0);
}
