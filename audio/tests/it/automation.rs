//! Automation as the renderer plays it: defined for every level the protocol accepts (silence
//! included), evaluated at every frame, and the same whatever the block size.

use ensemble_audio::arrangement::pan_gains;
use ensemble_audio::render::render_mix;
use ensemble_protocol::*;
use proptest::prelude::*;

use crate::song::{CENTRE, Song, dc};

/// Blocks the live engine and the export might use, odd ones included.
const BLOCKS: [usize; 5] = [1, 7, 256, 997, 1024];

/// One track playing a constant 1.0 for `frames` frames at 120 BPM (24 frames a tick).
fn steady_song(frames: usize) -> (Song, TrackId) {
    let mut song = Song::new(120.0);
    let (track, asset) = (song.track(), song.asset(dc(1.0, frames)));
    song.clip(track, asset, 0, (frames / 24) as i64);
    (song, track)
}

#[test]
fn a_ramp_to_and_from_silence_is_a_linear_fade_never_nan() {
    let (mut song, track) = steady_song(72_000);
    // −∞ → 0 dB over tick 0…960 (24,000 frames), 0 dB → −∞ over 960…1920, then −∞ held.
    let silence = f32::NEG_INFINITY;
    song.lane(
        track,
        Parameter::Gain,
        &[(0, silence, Curve::Linear), (960, 0.0, Curve::Smooth), (1920, silence, Curve::Hold)],
    );
    let out = song.render(0, 72_000, 512);
    for (frame, rendered) in out.iter().enumerate() {
        let t = frame as f32 / 24_000.0;
        let gain = match frame {
            0..24_000 => t,
            24_000..48_000 => {
                let t = t - 1.0;
                1.0 - t * t * (3.0 - 2.0 * t)
            }
            _ => 0.0,
        };
        assert!((rendered[0] - gain * CENTRE).abs() < 1e-6, "frame {frame}: {} vs {}", rendered[0], gain * CENTRE);
    }
    // Silence held, and silence to silence, stay silent.
    let (mut song, track) = steady_song(10_000);
    song.lane(
        track,
        Parameter::Gain,
        &[(0, silence, Curve::Hold), (100, silence, Curve::Linear), (200, silence, Curve::Hold)],
    );
    assert!(song.render(0, 10_000, 997).iter().all(|frame| *frame == [0.0, 0.0]));
}

#[test]
fn a_steep_ramp_is_evaluated_at_every_frame_whatever_the_block_size() {
    // −60 dB over 120 ticks: 3,000 frames, 0.02 dB a frame.
    let (mut song, track) = steady_song(6_000);
    song.lane(track, Parameter::Gain, &[(0, 0.0, Curve::Linear), (120, -60.0, Curve::Hold)]);
    let export = render_mix(song.arrangement());
    let centre = f64::from(pan_gains(0.0).0);
    for block in BLOCKS {
        let live = song.render(0, 6_000, block);
        for (frame, rendered) in live.iter().enumerate() {
            assert_eq!(rendered[0], export.channels[0][frame], "blocks of {block}, frame {frame}: live ≠ export");
            let db = -60.0 * (frame as f64 / 3000.0).min(1.0);
            let expected = 10f64.powf(db / 20.0) * centre;
            let error = (f64::from(rendered[0]) - expected).abs();
            assert!(error < 1e-7, "blocks of {block}, frame {frame}: {} vs {expected} (off by {error:e})", rendered[0]);
        }
    }
}

#[test]
fn a_pan_sweep_follows_the_pan_law_at_every_frame_whatever_the_block_size() {
    // Hard left to hard right over 960 ticks (24,000 frames), then a smooth sweep back.
    let (mut song, track) = steady_song(60_000);
    song.lane(track, Parameter::Pan, &[(0, -1.0, Curve::Linear), (960, 1.0, Curve::Smooth), (1920, -0.5, Curve::Hold)]);
    let export = render_mix(song.arrangement());
    for block in BLOCKS {
        let live = song.render(0, 60_000, block);
        for (frame, rendered) in live.iter().enumerate() {
            assert_eq!(rendered[0], export.channels[0][frame], "blocks of {block}, frame {frame}: live ≠ export");
            let t = frame as f64 / 24_000.0;
            let pan = match frame {
                0..24_000 => -1.0 + 2.0 * t,
                24_000..48_000 => {
                    let t = t - 1.0;
                    1.0 - 1.5 * t * t * (3.0 - 2.0 * t)
                }
                _ => -0.5,
            };
            let angle = (pan + 1.0) * std::f64::consts::FRAC_PI_4;
            for (channel, expected) in [angle.cos(), angle.sin()].into_iter().enumerate() {
                let error = (f64::from(rendered[channel]) - expected).abs();
                assert!(error < 1e-6, "blocks of {block}, frame {frame}, channel {channel}: off by {error:e}");
            }
        }
    }
}

/// A gain level the protocol accepts: silence, the most negative finite dB, anything up to +12.
fn level() -> impl Strategy<Value = f32> {
    prop_oneof![
        2 => Just(f32::NEG_INFINITY),
        1 => Just(f32::MIN),
        1 => Just(12.0f32),
        6 => -200.0f32..=12.0,
    ]
}

fn curve() -> impl Strategy<Value = Curve> {
    prop_oneof![Just(Curve::Hold), Just(Curve::Linear), Just(Curve::Smooth)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any valid state renders finite samples, and the same samples in any block size.
    #[test]
    fn every_valid_envelope_renders_finite_and_block_size_free(
        gains in prop::collection::vec((0i64..400, level(), curve()), 0..8),
        pans in prop::collection::vec((0i64..400, -1.0f32..=1.0, curve()), 0..6),
        fader in level(),
        clip_gain in level(),
        block in prop::sample::select(BLOCKS.to_vec()),
    ) {
        let mut song = Song::new(120.0);
        let (track, asset) = (song.track(), song.asset(dc(0.9, 12_000)));
        let clip = song.clip(track, asset, 0, 500);
        song.set(clip, Field::Clip(ClipField::Gain(clip_gain)));
        song.set(track, Field::Track(TrackField::Gain(fader)));
        song.lane(track, Parameter::Gain, &gains);
        song.lane(track, Parameter::Pan, &pans);
        let export = render_mix(song.arrangement());
        let live = song.render(0, export.frames(), block);
        for (frame, rendered) in live.iter().enumerate() {
            prop_assert!(rendered.iter().all(|sample| sample.is_finite()), "frame {}: {:?}", frame, rendered);
            prop_assert_eq!(rendered[0], export.channels[0][frame]);
            prop_assert_eq!(rendered[1], export.channels[1][frame]);
        }
    }
}
