//! Effect chains: each effect against a reference, and chains in the renderer and the engine.

use std::f64::consts::PI;

use ensemble_audio::effects::{EffectPlan, MAX_PARAMS, Processor};
use ensemble_audio::engine::{Engine, OfflineBackend};
use ensemble_audio::render::{Frame, Renderer, render_mix};
use ensemble_protocol::*;

use crate::alloc::allocations_in;
use crate::song::{RATE, Song, assert_plays_as_exported, dc};

/// `kind`'s defaults with `changes` made, as a processor takes them.
fn values(kind: EffectKind, changes: &[(EffectParam, f32)]) -> [f32; MAX_PARAMS] {
    let effect = Effect::new(Bus::Track(TrackId::from_u128(1)), kind, 1.0).with(changes);
    EffectPlan::new(EffectId::from_u128(1), kind, false, &effect.params).params
}

/// The gain, in dB, `processor` gives a sine at `hz` once it has settled (the RMS of the last
/// quarter second of one second against the input's).
fn gain_db(processor: &mut Processor, hz: f64) -> f64 {
    let mut frames: Vec<Frame> =
        (0..RATE as usize).map(|n| [(2.0 * PI * hz * n as f64 / f64::from(RATE)).sin() as f32; 2]).collect();
    processor.process(&mut frames);
    let tail = &frames[frames.len() * 3 / 4..];
    let rms = (tail.iter().map(|f| f64::from(f[0]).powi(2)).sum::<f64>() / tail.len() as f64).sqrt();
    20.0 * (rms / std::f64::consts::FRAC_1_SQRT_2).log10()
}

/// |H| in dB of the RBJ cookbook's biquad of `shape` at `hz`, from the cookbook's formulas.
fn cookbook_db(shape: &str, f0: f64, q: f64, db: f64, hz: f64) -> f64 {
    let (a, w0) = (10f64.powf(db / 40.0), 2.0 * PI * f0 / f64::from(RATE));
    let (cos, alpha) = (w0.cos(), w0.sin() / (2.0 * q));
    let root = 2.0 * a.sqrt() * alpha;
    let [b0, b1, b2, a0, a1, a2] = match shape {
        "bell" => [1.0 + alpha * a, -2.0 * cos, 1.0 - alpha * a, 1.0 + alpha / a, -2.0 * cos, 1.0 - alpha / a],
        "low shelf" => [
            a * ((a + 1.0) - (a - 1.0) * cos + root),
            2.0 * a * ((a - 1.0) - (a + 1.0) * cos),
            a * ((a + 1.0) - (a - 1.0) * cos - root),
            (a + 1.0) + (a - 1.0) * cos + root,
            -2.0 * ((a - 1.0) + (a + 1.0) * cos),
            (a + 1.0) + (a - 1.0) * cos - root,
        ],
        "high shelf" => [
            a * ((a + 1.0) + (a - 1.0) * cos + root),
            -2.0 * a * ((a - 1.0) + (a + 1.0) * cos),
            a * ((a + 1.0) + (a - 1.0) * cos - root),
            (a + 1.0) - (a - 1.0) * cos + root,
            2.0 * ((a - 1.0) - (a + 1.0) * cos),
            (a + 1.0) - (a - 1.0) * cos - root,
        ],
        "low-pass" => [(1.0 - cos) / 2.0, 1.0 - cos, (1.0 - cos) / 2.0, 1.0 + alpha, -2.0 * cos, 1.0 - alpha],
        _ => panic!("no such shape {shape}"),
    };
    let w = 2.0 * PI * hz / f64::from(RATE);
    let at = |c0: f64, c1: f64, c2: f64| {
        (c0 + c1 * w.cos() + c2 * (2.0 * w).cos()).hypot(c1 * w.sin() + c2 * (2.0 * w).sin())
    };
    20.0 * (at(b0, b1, b2) / at(a0, a1, a2)).log10()
}

#[test]
fn the_equaliser_matches_the_cookbook_at_test_frequencies() {
    use EffectParam::*;
    let sqrt_half = std::f64::consts::FRAC_1_SQRT_2;
    // The shape, the settings, and the cookbook's corner, Q and gain for them.
    type Setting = (&'static str, Vec<(EffectParam, f32)>, f64, f64, f64);
    let bands: [Setting; 3] = [
        ("low shelf", vec![(LowFreq, 200.0), (LowGain, 6.0)], 200.0, sqrt_half, 6.0),
        ("bell", vec![(MidFreq, 1_000.0), (MidGain, -9.0), (MidQ, 2.0)], 1_000.0, 2.0, -9.0),
        ("high shelf", vec![(HighFreq, 6_000.0), (HighGain, 4.5)], 6_000.0, sqrt_half, 4.5),
    ];
    for (shape, changes, f0, q, db) in bands {
        for hz in [50.0, 200.0, 700.0, 1_000.0, 1_400.0, 4_000.0, 6_000.0, 12_000.0] {
            let mut eq = Processor::new(EffectKind::Eq, &values(EffectKind::Eq, &changes), RATE);
            let (measured, expected) = (gain_db(&mut eq, hz), cookbook_db(shape, f0, q, db, hz));
            assert!((measured - expected).abs() < 0.05, "{shape} at {hz} Hz: {measured:.3} dB, cookbook {expected:.3}");
        }
    }
}

#[test]
fn filters_are_three_db_down_at_their_cutoff() {
    let q = std::f32::consts::FRAC_1_SQRT_2;
    let settings = |kind| values(kind, &[(EffectParam::Cutoff, 1_000.0), (EffectParam::Resonance, q)]);
    let mut low = Processor::new(EffectKind::LowPass, &settings(EffectKind::LowPass), RATE);
    let mut high = Processor::new(EffectKind::HighPass, &settings(EffectKind::HighPass), RATE);
    for (processor, pass, stop) in [(&mut low, 100.0, 10_000.0), (&mut high, 10_000.0, 100.0)] {
        let at_cutoff = gain_db(processor, 1_000.0);
        assert!((at_cutoff + 3.01).abs() < 0.05, "{at_cutoff:.3} dB at the cutoff");
        assert!(gain_db(processor, pass).abs() < 0.05, "the pass band passes");
        assert!(gain_db(processor, stop) < -38.0, "two octaves and more past the cutoff, 12 dB/octave");
    }
    let expected = cookbook_db("low-pass", 1_000.0, f64::from(q), 0.0, 3_000.0);
    assert!((gain_db(&mut low, 3_000.0) - expected).abs() < 0.05);
}

#[test]
fn the_compressor_reduces_by_its_ratio_above_the_threshold() {
    let settings = |makeup: f32| {
        use EffectParam::*;
        values(
            EffectKind::Compressor,
            &[(Threshold, -20.0), (Ratio, 4.0), (Attack, 1.0), (Release, 50.0), (Makeup, makeup)],
        )
    };
    let level_out = |level: f32, makeup: f32| {
        let mut compressor = Processor::new(EffectKind::Compressor, &settings(makeup), RATE);
        let mut frames = vec![[level; 2]; RATE as usize / 2];
        compressor.process(&mut frames);
        20.0 * frames.last().unwrap()[0].log10()
    };
    // 14 dB over the threshold comes out 3.5 dB over it (past the 6 dB knee).
    let loud = 20.0 * 0.5f32.log10();
    assert!((level_out(0.5, 0.0) - (-20.0 + (loud + 20.0) / 4.0)).abs() < 0.01);
    assert!((level_out(0.5, 6.0) - (-20.0 + (loud + 20.0) / 4.0 + 6.0)).abs() < 0.01, "makeup gain adds");
    // 6 dB under the threshold (below the knee) passes untouched.
    let quiet = 10f32.powf(-26.0 / 20.0);
    assert!((level_out(quiet, 0.0) + 26.0).abs() < 0.001);
}

#[test]
fn the_delay_echoes_after_its_time_to_the_sample() {
    let settings = values(
        EffectKind::Delay,
        &[(EffectParam::DelayTime, 250.0), (EffectParam::Feedback, 0.5), (EffectParam::Mix, 0.5)],
    );
    let mut delay = Processor::new(EffectKind::Delay, &settings, RATE);
    let mut frames = vec![[0.0; 2]; RATE as usize];
    frames[0] = [1.0, 1.0];
    delay.process(&mut frames);
    let heard: Vec<(usize, f32)> =
        frames.iter().enumerate().filter(|(_, f)| f[0] != 0.0).map(|(n, f)| (n, f[0])).collect();
    // The dry half, then echoes every 12,000 frames, each half the one before.
    assert_eq!(heard, vec![(0, 0.5), (12_000, 0.5), (24_000, 0.25), (36_000, 0.125)]);
}

#[test]
fn the_reverb_tail_decays_steadily_and_dies_away() {
    let settings = values(EffectKind::Reverb, &[(EffectParam::RoomSize, 0.6), (EffectParam::Mix, 1.0)]);
    let mut reverb = Processor::new(EffectKind::Reverb, &settings, RATE);
    let mut frames = vec![[0.0; 2]; RATE as usize * 6];
    frames[0] = [1.0, 1.0];
    reverb.process(&mut frames);
    let window = RATE as usize / 10;
    let energy: Vec<f64> = frames
        .chunks(window)
        .map(|w| w.iter().map(|f| f64::from(f[0]).powi(2) + f64::from(f[1]).powi(2)).sum())
        .collect();
    let db = |e: f64| 10.0 * e.max(1e-30).log10();
    assert!(energy[1] > 1e-4, "the tail sounds after the impulse");
    // From 0.2 s on, each second falls by a steady amount (an exponential decay), and the tail
    // is 60 dB down well inside the time the export leaves for it.
    let per_second: Vec<f64> = (2..=4).map(|s| db(energy[s * 10 - 8]) - db(energy[s * 10 + 2])).collect();
    for fall in &per_second {
        assert!((fall - per_second[0]).abs() < 3.0 && *fall > 10.0, "falls per second: {per_second:?}");
    }
    assert!(db(energy[50]) < db(energy[1]) - 60.0, "60 dB down after 5 s");
    assert!(frames.iter().all(|f| f[0].is_finite() && f[0].abs() < 1.0));
}

/// A song whose tracks carry chains: EQ, compressor, reverb and delay, with automation.
fn song_with_chains() -> Song {
    let mut song = Song::new(97.0);
    let tone = |hz: f32| {
        let samples = (0..60_000).map(|n| 0.3 * (std::f32::consts::TAU * hz * n as f32 / RATE as f32).sin()).collect();
        ensemble_audio::Pcm::new(RATE, vec![samples])
    };
    for (n, kinds) in [
        vec![EffectKind::Eq, EffectKind::Compressor, EffectKind::Reverb],
        vec![EffectKind::Delay, EffectKind::LowPass],
        vec![EffectKind::HighPass],
    ]
    .into_iter()
    .enumerate()
    {
        let (track, asset) = (song.track(), song.asset(tone(110.0 * (n + 1) as f32)));
        song.clip(track, asset, 480 * n as i64, 1_500);
        for (place, kind) in kinds.into_iter().enumerate() {
            let id = EffectId::new_v7();
            let effect = Effect::new(Bus::Track(track), kind, place as f64);
            song.apply(vec![ensemble_testkit::records::create(id, Record::Effect(effect))]);
            if kind == EffectKind::Reverb {
                song.lane(
                    track,
                    Parameter::Effect(id, EffectParam::Mix),
                    &[(0, 0.1, Curve::Linear), (1_500, 0.9, Curve::Hold)],
                );
            }
            if kind == EffectKind::LowPass {
                song.set(id, Field::Effect(EffectField::Param(EffectParam::Cutoff, 800.0)));
            }
        }
    }
    song
}

#[test]
fn chains_play_live_as_they_export_whatever_the_block_size() {
    let song = song_with_chains();
    let arrangement = song.arrangement();
    let export = render_mix(arrangement.clone());
    assert!(export.frames() > arrangement.end() as usize + RATE as usize, "the export keeps the tails");
    assert_renders_as_exported(&song, &export, &[1, 7, 256, 997]);
}

/// Checks that one renderer of `song`'s whole mix, in blocks of each of `blocks`, is `export`
/// (the parallel render) to the bit, and that the live engine plays it.
fn assert_renders_as_exported(song: &Song, export: &ensemble_audio::Pcm, blocks: &[usize]) {
    for &block in blocks {
        let rendered = song.render(0, 20_000, block);
        for (frame, out) in rendered.iter().enumerate() {
            assert_eq!(out[0], export.channels[0][frame], "block {block}, frame {frame}");
        }
    }
    assert_plays_as_exported(song.arrangement(), export, 300);
}

#[test]
fn chains_render_without_allocating() {
    let mut renderer = Renderer::new(song_with_chains().arrangement());
    let mut block = vec![[0.0; 2]; 2048];
    renderer.render(&mut block);
    let allocations = allocations_in(|| {
        for _ in 0..20 {
            renderer.render(&mut block[..256]);
            renderer.render(&mut block[..2048]);
        }
    });
    assert_eq!(allocations, 0);
}

/// Pulls `frames` from the offline engine in blocks of 128, counting allocations meanwhile.
fn pull(engine: &mut Engine<OfflineBackend>, frames: usize) -> (Vec<Frame>, usize) {
    let mut out = vec![[0.0; 2]; frames];
    let allocations = allocations_in(|| {
        for chunk in out.chunks_mut(128) {
            engine.backend_mut().render(chunk);
        }
    });
    (out, allocations)
}

/// A track holding a steady level, playing on the offline engine for its first 0.1 s.
fn steady_level_playing() -> (Song, TrackId, Engine<OfflineBackend>) {
    let mut song = Song::new(120.0);
    let (track, asset) = (song.track(), song.asset(dc(0.4, 400_000)));
    song.clip(track, asset, 0, 7_000);
    let mut engine = Engine::<OfflineBackend>::new(RATE, song.arrangement()).unwrap();
    let start = engine.play_from(0).unwrap() as usize;
    pull(&mut engine, start + 4_800);
    (song, track, engine)
}

/// The largest jump between neighbouring samples of the left channel.
fn largest_step(frames: &[Frame]) -> f32 {
    frames.windows(2).map(|pair| (pair[1][0] - pair[0][0]).abs()).fold(0.0, f32::max)
}

#[test]
fn an_effect_added_or_removed_while_playing_comes_and_goes_without_a_click() {
    let (mut song, track, mut engine) = steady_level_playing();
    // A high-pass on a steady level: cut in at once, the level would drop to 0 in a step.
    let filter = EffectId::new_v7();
    let high_pass = Effect::new(Bus::Track(track), EffectKind::HighPass, 1.0);
    song.apply(vec![ensemble_testkit::records::create(filter, Record::Effect(high_pass))]);
    engine.set_arrangement(song.arrangement()).unwrap();
    let (added, allocations) = pull(&mut engine, 24_000);
    assert_eq!(allocations, 0, "the sound adopted its new chain without allocating");
    assert!(largest_step(&added) < 0.01, "ramped in: largest step {}", largest_step(&added));
    assert!(added.last().unwrap()[0].abs() < 1e-3, "and then the high-pass takes the level away");
    song.apply(vec![Op::Delete { target: filter.into() }]);
    engine.set_arrangement(song.arrangement()).unwrap();
    let (removed, _) = pull(&mut engine, 24_000);
    assert!(largest_step(&removed) < 0.01, "ramped out: largest step {}", largest_step(&removed));
    let level = 0.4 * std::f32::consts::FRAC_1_SQRT_2;
    assert!((removed.last().unwrap()[0] - level).abs() < 1e-4, "the level is back");
    // A low-pass at 20 Hz starts from silence: cut in at once, the level would fall in a step.
    let mut low_pass = Effect::new(Bus::Track(track), EffectKind::LowPass, 1.0);
    low_pass.params[0] = 20.0;
    song.apply(vec![ensemble_testkit::records::create(EffectId::new_v7(), Record::Effect(low_pass))]);
    engine.set_arrangement(song.arrangement()).unwrap();
    let (low, _) = pull(&mut engine, 4_800);
    assert!(largest_step(&low) < 0.01, "ramped in: largest step {}", largest_step(&low));
}

/// The chains' song with a compressor and a reverb on the master.
fn song_with_master() -> Song {
    let mut song = song_with_chains();
    for (place, kind) in [EffectKind::Compressor, EffectKind::Reverb].into_iter().enumerate() {
        let effect = Effect::new(Bus::Master, kind, place as f64).with(&[
            (EffectParam::Threshold, -30.0),
            (EffectParam::Ratio, 6.0),
            (EffectParam::Mix, 0.5),
        ]);
        song.apply(vec![ensemble_testkit::records::create(EffectId::new_v7(), Record::Effect(effect))]);
    }
    song
}

#[test]
fn the_master_chain_runs_on_the_mix_live_as_in_the_export() {
    let song = song_with_master();
    let arrangement = song.arrangement();
    assert_eq!(
        arrangement.master.iter().map(|plan| plan.kind).collect::<Vec<_>>(),
        [EffectKind::Compressor, EffectKind::Reverb]
    );
    let export = render_mix(arrangement.clone());
    let without = render_mix(song_with_chains().arrangement());
    assert!(export.frames() > without.frames(), "the master's reverb rings on after the tracks'");
    let changed = (0..without.frames()).filter(|&n| (export.channels[0][n] - without.channels[0][n]).abs() > 1e-3);
    assert!(changed.count() > without.frames() / 2, "the master chain acts on the mix");
    assert_renders_as_exported(&song, &export, &[7, 997]);
}

#[test]
fn a_master_effect_added_while_playing_comes_in_without_a_click_or_an_allocation() {
    let (mut song, _, mut engine) = steady_level_playing();
    // A high-pass on a steady level takes it away; cut in at once, the level would step to 0.
    let high_pass = Effect::new(Bus::Master, EffectKind::HighPass, 1.0);
    song.apply(vec![ensemble_testkit::records::create(EffectId::new_v7(), Record::Effect(high_pass))]);
    engine.set_arrangement(song.arrangement()).unwrap();
    let (added, allocations) = pull(&mut engine, 24_000);
    assert_eq!(allocations, 0, "the master adopted its new chain without allocating");
    assert!(largest_step(&added) < 0.01, "ramped in: largest step {}", largest_step(&added));
    assert!(added.last().unwrap()[0].abs() < 1e-3, "and then the high-pass takes the level away");
}
