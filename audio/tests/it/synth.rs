//! The built-in synth playing note clips: onsets to the frame, pitches, releases.

use ensemble_audio::render::{Frame, render_mix};
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
        // Rising zero crossings over 0.2–0.8 s: a square crosses upward once a cycle.
        let window = &out[RATE as usize / 5..RATE as usize * 4 / 5];
        let rising = window.windows(2).filter(|pair| pair[0] < 0.0 && pair[1] >= 0.0).count();
        let measured = rising as f64 / 0.6;
        assert!((measured - hertz).abs() <= 2.0, "pitch {pitch}: {measured} Hz, not {hertz}");
    }
}

#[test]
fn chords_play_together_and_every_note_dies_away_after_its_end() {
    let song = synth_song(&PLAIN, 0, &[(60, 0, 960), (64, 0, 960), (67, 480, 480)]);
    let out = left(&song.render(0, 40_000, 256));
    let peak = |range: std::ops::Range<usize>| out[range].iter().fold(0.0f32, |m, s| m.max(s.abs()));
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
