use ensemble_audio::Pcm;
use ensemble_audio::arrangement::{db_to_gain, pan_gains};
use ensemble_audio::render::{Renderer, render_mix, render_stems};
use ensemble_protocol::*;

use crate::alloc::allocations_in;
use crate::song::{CENTRE, RATE, Song, dc, impulse};

#[test]
fn a_clip_at_tick_t_starts_at_exactly_frame_f_of_t() {
    for bpm in [120.0, 93.7, 174.3] {
        for tick in [0, 1, 959, 3 * 3840 + 17] {
            let mut song = Song::new(bpm);
            let (track, asset) = (song.track(), song.asset(impulse()));
            song.clip(track, asset, tick, 960);
            let expected = Timebase::new(Bpm(bpm), RATE).frames(Ticks(tick)).0 as usize;
            // Odd block sizes: placement must not snap to block boundaries.
            for block in [7, 256, 1024] {
                let out = song.render(0, expected + 300, block);
                let first = out.iter().position(|f| f[0] != 0.0);
                assert_eq!(first, Some(expected), "tick {tick} at {bpm} BPM, blocks of {block}");
                assert_eq!(out[expected], [CENTRE, CENTRE]);
            }
        }
    }
}

#[test]
fn a_gain_ramp_matches_the_expected_values() {
    let mut song = Song::new(120.0);
    let (track, asset) = (song.track(), song.asset(dc(1.0, 48_000)));
    song.clip(track, asset, 0, 1920);
    // 0 dB at tick 0 falling linearly (in dB) to −6 dB at tick 960 = frame 24,000.
    song.lane(track, Parameter::Gain, &[(0, 0.0, Curve::Linear), (960, -6.0, Curve::Hold)]);
    let out = song.render(0, 30_000, 512);
    for (frame, rendered) in out.iter().enumerate() {
        let db = if frame < 24_000 { -6.0 * frame as f32 / 24_000.0 } else { -6.0 };
        let expected = db_to_gain(db) * CENTRE;
        assert!((rendered[0] - expected).abs() < 1e-6, "frame {frame}: {} vs {expected}", rendered[0]);
    }
}

#[test]
fn the_pan_law_is_constant_power_with_minus_3_db_at_the_centre() {
    assert_eq!(pan_gains(-1.0), (1.0, 0.0));
    let (l, r) = pan_gains(1.0);
    assert!(l.abs() < 1e-7 && (r - 1.0).abs() < 1e-7);
    for pan in [-0.8f32, -0.3, 0.0, 0.4, 0.9] {
        let (l, r) = pan_gains(pan);
        assert!((l * l + r * r - 1.0).abs() < 1e-6, "power at pan {pan}");
    }
    let mut song = Song::new(120.0);
    let (track, asset) = (song.track(), song.asset(dc(0.5, 1000)));
    song.clip(track, asset, 0, 20);
    song.set(track, Field::Track(TrackField::Pan(-1.0)));
    assert_eq!(song.render(0, 10, 10)[5], [0.5, 0.0]);
    song.set(track, Field::Track(TrackField::Pan(0.0)));
    assert_eq!(song.render(0, 10, 10)[5], [0.5 * CENTRE, 0.5 * CENTRE]);
}

#[test]
fn overlapping_clips_sum() {
    let mut song = Song::new(120.0);
    let track = song.track();
    let (quarter, half) = (song.asset(dc(0.25, 48_000)), song.asset(dc(0.5, 48_000)));
    song.clip(track, quarter, 0, 960); // frames 0..24,000
    song.clip(track, half, 480, 960); // frames 12,000..36,000
    let out = song.render(0, 40_000, 1000);
    let level = |frame: usize| out[frame][0] / CENTRE;
    assert!((level(6_000) - 0.25).abs() < 1e-6);
    assert!((level(18_000) - 0.75).abs() < 1e-6);
    assert!((level(30_000) - 0.5).abs() < 1e-6);
    assert_eq!(level(38_000), 0.0);
}

#[test]
fn mute_and_solo_behave_as_a_daws_do() {
    let mut song = Song::new(120.0);
    let tracks: Vec<TrackId> = (0..3).map(|_| song.track()).collect();
    for (track, level) in tracks.iter().zip([0.1, 0.2, 0.4]) {
        let asset = song.asset(dc(level, 10_000));
        song.clip(*track, asset, 0, 100);
    }
    let level = |song: &Song| song.render(0, 100, 100)[50][0] / CENTRE;
    assert!((level(&song) - 0.7).abs() < 1e-6);
    song.set(tracks[1], Field::Track(TrackField::Mute(true)));
    assert!((level(&song) - 0.5).abs() < 1e-6, "a muted track is silent");
    song.set(tracks[2], Field::Track(TrackField::Solo(true)));
    assert!((level(&song) - 0.4).abs() < 1e-6, "only soloed tracks sound");
    song.set(tracks[0], Field::Track(TrackField::Solo(true)));
    assert!((level(&song) - 0.5).abs() < 1e-6, "solos add up");
    song.set(tracks[2], Field::Track(TrackField::Mute(true)));
    assert!((level(&song) - 0.1).abs() < 1e-6, "mute beats solo");
    // Stems: each track alone, solo ignored, mute respected.
    let stems = render_stems(song.arrangement());
    let stem_levels: Vec<f32> = stems.iter().map(|s| s.channels[0][50] / CENTRE).collect();
    assert!((stem_levels[0] - 0.1).abs() < 1e-6 && stem_levels[1] == 0.0 && stem_levels[2] == 0.0);
}

#[test]
fn fades_ramp_from_and_to_silence() {
    let mut song = Song::new(120.0);
    let (track, asset) = (song.track(), song.asset(dc(1.0, 48_000)));
    let clip = song.clip(track, asset, 0, 960); // 24,000 frames
    song.set(clip, Field::Clip(ClipField::FadeIn(Ticks(96)))); // 2,400 frames
    song.set(clip, Field::Clip(ClipField::FadeOut(Ticks(96))));
    let out = song.render(0, 24_000, 333);
    let level = |frame: usize| out[frame][0] / CENTRE;
    assert_eq!(level(0), 0.0);
    assert!((level(1_200) - 0.5).abs() < 1e-6);
    assert!((level(12_000) - 1.0).abs() < 1e-6);
    assert!((level(24_000 - 1_201) - 0.5).abs() < 1e-3);
    assert_eq!(level(23_999), 0.0);
}

#[test]
fn a_loop_repeats_with_no_gap_and_no_double_sample_at_the_seam() {
    let mut song = Song::new(120.0);
    let ramp = Pcm::new(RATE, vec![(0..100_000).map(|i| i as f32 / 1e6).collect()]);
    let (track, asset) = (song.track(), song.asset(ramp.clone()));
    song.clip(track, asset, 0, 3840);
    let range = LoopRange { start: Ticks(960), end: Ticks(1920) }; // frames 24,000..48,000
    song.set(song.state.id(), Field::Project(ProjectField::LoopRange(Some(range))));
    let out = song.render(20_000, 4_000 + 3 * 24_000, 1000);
    for (k, frame) in out.iter().enumerate() {
        let source = if k < 4_000 { 20_000 + k } else { 24_000 + (k - 4_000) % 24_000 };
        assert_eq!(frame[0], ramp.channels[0][source] * CENTRE, "output frame {k}");
    }
}

#[test]
fn rendering_allocates_nothing() {
    let mut song = Song::new(93.7);
    for _ in 0..8 {
        let (track, asset) = (song.track(), song.asset(dc(0.1, 96_000)));
        song.clip(track, asset, 0, 1920);
        song.clip(track, asset, 480, 1920);
        song.lane(track, Parameter::Pan, &[(0, -1.0, Curve::Smooth), (1920, 1.0, Curve::Linear)]);
    }
    let mut renderer = Renderer::new(song.arrangement());
    let mut block = vec![[0.0; 2]; 2048];
    renderer.render(&mut block); // warm up
    let allocations = allocations_in(|| {
        for _ in 0..40 {
            renderer.render(&mut block[..256]);
            renderer.render(&mut block[..2048]);
        }
    });
    assert_eq!(allocations, 0, "the renderer allocated or freed memory");
    assert!(allocations_in(|| drop(vec![1u8; 10])) >= 2, "the counting allocator counts");
}

#[test]
fn the_mix_runs_from_the_start_to_the_last_clip() {
    let mut song = Song::new(120.0);
    let (track, asset) = (song.track(), song.asset(dc(0.5, 48_000)));
    song.clip(track, asset, 960, 960);
    let mix = render_mix(song.arrangement());
    assert_eq!((mix.sample_rate, mix.channels.len(), mix.frames()), (RATE, 2, 48_000));
    assert_eq!(mix.channels[1][23_999], 0.0);
    assert_eq!(mix.channels[1][24_000], 0.5 * CENTRE);
}
