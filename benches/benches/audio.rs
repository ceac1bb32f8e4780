//! Audio engine speed, each against its peer in the same run.
//!
//! - Waveform peaks from PCM in memory against a plain sum-read of the same buffer (the memory
//!   bandwidth a single pass can get): target ≥ 50% of the read's speed per core, and
//!   near-linear scaling from one core to two.
//! - Decoding (and decoding + peaks) of the same FLAC and MP3 files against `ffmpeg -f null`
//!   decoding them: target time ratio ≤ 1.25.
//! - Offline render of 32 stereo tracks × 3 minutes at 48 kHz with gain and pan automation:
//!   target ≥ 100× realtime on one core; and one 256-frame block with 64 playing tracks: target
//!   ≤ 10% of its 5.33 ms deadline. (No peer: the figure is against the clock.)
//! - Effect chains (EQ + compressor + reverb on every track) against the same mix without them:
//!   one 256-frame block of 64 tracks, target ≤ 25% of the deadline; the offline render of 32
//!   tracks × 3 minutes, target ≥ 30× realtime; the synth with 16 voices sounding, one block.

// A bench that cannot set up has nothing to measure: failing loudly is right.
#![allow(clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ensemble_audio::Pcm;
use ensemble_audio::arrangement::{Arrangement, ClipPlan, Envelope, Metronome, Point, TrackPlan};
use ensemble_audio::effects::EffectPlan;
use ensemble_audio::peaks::Peaks;
use ensemble_audio::render::{Renderer, render_mix};
use ensemble_benches::{Tally, print_ratio};
use ensemble_protocol::{Bpm, Curve, EffectId, EffectKind, TimeSignature, Timebase, TrackId};
use std::hint::black_box;

/// Ten minutes of stereo noise at 48 kHz: 230 MB of samples, far beyond the caches.
fn ten_minutes() -> Pcm {
    let frames = 48_000 * 600;
    let mut rng = ensemble_testkit::Rng(0x9E37_79B9_7F4A_7C15);
    let mut next = move || (rng.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
    Pcm::new(48_000, (0..2).map(|_| (0..frames).map(|_| next()).collect()).collect())
}

fn sum_read(pcm: &Pcm) -> f32 {
    // Eight independent sums so the read, not the adds, is the limit.
    pcm.channels
        .iter()
        .map(|channel| {
            let mut lanes = [0.0f32; 8];
            for chunk in channel.chunks_exact(8) {
                for lane in 0..8 {
                    lanes[lane] += chunk[lane];
                }
            }
            lanes.iter().sum::<f32>()
        })
        .sum()
}

fn peaks(c: &mut Criterion) {
    let pcm = ten_minutes();
    let bytes = (pcm.frames() * pcm.channels.len() * 4) as u64;
    let mut group = c.benchmark_group("peaks_10min_stereo");
    group.sample_size(10).throughput(Throughput::Bytes(bytes));
    let read = Tally::default();
    group.bench_function("sum_read_peer", |b| b.iter_custom(|iters| read.measure(iters, || sum_read(black_box(&pcm)))));
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a rayon pool");
        let ours = Tally::default();
        group.bench_function(BenchmarkId::new("peaks_threads", threads), |b| {
            b.iter_custom(|iters| ours.measure(iters, || pool.install(|| Peaks::from_pcm(black_box(&pcm)))))
        });
        print_ratio(&format!("peaks on {threads} thread(s) vs one sum-read"), &ours, "sum-read", &read);
    }
    group.finish();
}

/// Encodes `pcm` with ffmpeg into `dir/name`.
fn encode(pcm: &Pcm, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let source = dir.join("source.wav");
    ensemble_audio::wav::write_wav(&source, pcm, ensemble_audio::wav::WavFormat::Int16).expect("source written");
    let target = dir.join(name);
    let status = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(&source)
        .arg(&target)
        .status()
        .expect("ffmpeg is installed by `cargo xtask setup`");
    assert!(status.success(), "ffmpeg could not encode {name}");
    target
}

fn decode(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // Three minutes of music-like material: noise under a chord, so codecs have work to do.
    let frames = 44_100 * 180;
    let noise = ten_minutes();
    let planes = (0..2)
        .map(|c| {
            (0..frames)
                .map(|i| {
                    let t = i as f32 / 44_100.0;
                    let chord =
                        [220.0f32, 277.2, 329.6].iter().map(|hz| (std::f32::consts::TAU * hz * t).sin()).sum::<f32>();
                    0.2 * chord + 0.1 * noise.channels[c][i]
                })
                .collect()
        })
        .collect();
    let music = Pcm::new(44_100, planes);
    let mut group = c.benchmark_group("decode_3min_stereo");
    group.sample_size(10);
    for name in ["music.flac", "music.mp3"] {
        let path = encode(&music, dir.path(), name);
        let (ours, with_peaks, peer) = (Tally::default(), Tally::default(), Tally::default());
        group.bench_function(BenchmarkId::new("ours", name), |b| {
            b.iter_custom(|iters| {
                ours.measure(iters, || ensemble_audio::decode::decode_file(&path, None).expect("decodes"))
            })
        });
        group.bench_function(BenchmarkId::new("ours_with_peaks", name), |b| {
            b.iter_custom(|iters| {
                with_peaks.measure(iters, || {
                    let decoding = ensemble_audio::decode::Decoding::open(&path).expect("opens");
                    Peaks::from_decoding(decoding).expect("decodes")
                })
            })
        });
        group.bench_function(BenchmarkId::new("ffmpeg_peer", name), |b| {
            b.iter_custom(|iters| {
                peer.measure(iters, || {
                    std::process::Command::new("ffmpeg")
                        .args(["-loglevel", "error", "-threads", "1", "-i"])
                        .arg(&path)
                        .args(["-f", "null", "-"])
                        .status()
                        .expect("ffmpeg runs")
                })
            })
        });
        print_ratio(&format!("decode {name}"), &ours, "ffmpeg -f null", &peer);
        print_ratio(&format!("decode + peaks {name}"), &with_peaks, "ffmpeg -f null", &peer);
    }
    group.finish();
}

/// `tracks` stereo tracks of `seconds`, each an 8-second noise clip repeated back to back, with
/// a gain and a pan envelope breaking every bar.
fn busy_arrangement(tracks: usize, seconds: u64) -> std::sync::Arc<Arrangement> {
    let noise = ten_minutes();
    let source_frames = 48_000 * 8;
    let source = Pcm::new(48_000, noise.channels.iter().map(|c| c[..source_frames].to_vec()).collect());
    let end = 48_000 * seconds;
    let bar = 96_000u64;
    let plans = (0..tracks)
        .map(|t| {
            let clips = (0..end.div_ceil(source_frames as u64))
                .map(|i| ClipPlan {
                    start: i * source_frames as u64,
                    length: source_frames as u64,
                    source: source.clone(),
                    source_offset: 0,
                    gain: 0.5,
                    fade_in: 480,
                    fade_out: 480,
                })
                .collect();
            let envelope = |low: f32, high: f32| Envelope {
                points: (0..=end / bar)
                    .map(|b| Point {
                        frame: b * bar,
                        value: if (b + t as u64).is_multiple_of(2) { low } else { high },
                        curve: Curve::Linear,
                    })
                    .collect(),
            };
            TrackPlan {
                id: TrackId::new_v7(),
                gain_db: -6.0,
                pan: 0.0,
                mute: false,
                solo: false,
                clips,
                gain_envelope: envelope(-12.0, 0.0),
                pan_envelope: envelope(-0.5, 0.5),
                effects: Vec::new(),
                notes: Vec::new(),
                notes_end: 0,
                monitor: false,
            }
        })
        .collect();
    let metronome = Metronome { timebase: Timebase::new(Bpm(120.0), 48_000), time_signature: TimeSignature::FOUR_FOUR };
    let master = Vec::new();
    std::sync::Arc::new(Arrangement { sample_rate: 48_000, tracks: plans, loop_range: None, metronome, master })
}

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("render");
    group.sample_size(10);
    let song = busy_arrangement(32, 180);
    let took = Tally::default();
    group.bench_function("32_tracks_3_minutes", |b| {
        b.iter_custom(|iters| took.measure(iters, || render_mix(song.clone())))
    });
    let per_render = took.per_iter().as_secs_f64();
    if per_render > 0.0 {
        println!("render 32 tracks × 3 min: {per_render:.2} s, {:.0}× realtime (target ≥ 100×)", 180.0 / per_render);
    }
    let song = busy_arrangement(64, 20);
    let mut renderer = Renderer::new(song);
    let mut block = vec![[0.0f32; 2]; 256];
    let took = Tally::default();
    group.sample_size(100);
    group.bench_function("64_tracks_one_256_frame_block", |b| {
        b.iter_custom(|iters| {
            took.measure(iters, || {
                renderer.seek(48_000 * 5);
                renderer.render(&mut block);
            })
        })
    });
    let per_block = took.per_iter().as_secs_f64();
    if per_block > 0.0 {
        let deadline = 256.0 / 48_000.0;
        println!(
            "64 tracks, one 256-frame block: {:.1} µs, {:.1}% of the {:.2} ms deadline (target ≤ 10%)",
            per_block * 1e6,
            100.0 * per_block / deadline,
            deadline * 1e3
        );
    }
    group.finish();
}

/// `song` with an EQ (every band boosted or cut: a flat band costs nothing), a compressor and a
/// reverb on every track.
fn with_chains(song: &std::sync::Arc<Arrangement>) -> std::sync::Arc<Arrangement> {
    use ensemble_protocol::EffectParam::{HighGain, LowGain, MidGain};
    let mut song = (**song).clone();
    for track in &mut song.tracks {
        track.effects = [EffectKind::Eq, EffectKind::Compressor, EffectKind::Reverb]
            .map(|kind| {
                let mut values = kind.defaults();
                for (param, gain) in [(LowGain, 3.0), (MidGain, -2.0), (HighGain, 2.0)] {
                    if let Some(index) = kind.index_of(param) {
                        values[index] = gain;
                    }
                }
                EffectPlan::new(EffectId::new_v7(), kind, false, &values)
            })
            .to_vec();
    }
    std::sync::Arc::new(song)
}

fn chains(c: &mut Criterion) {
    let mut group = c.benchmark_group("chains");
    let plain = busy_arrangement(64, 20);
    let deadline = 256.0 / 48_000.0;
    let mut per_block = Vec::new();
    for (name, song) in [("plain", plain.clone()), ("eq_compressor_reverb", with_chains(&plain))] {
        let mut renderer = Renderer::new(song);
        let mut block = vec![[0.0f32; 2]; 256];
        let took = Tally::default();
        group.sample_size(100);
        group.bench_function(BenchmarkId::new("64_tracks_one_256_frame_block", name), |b| {
            b.iter_custom(|iters| {
                took.measure(iters, || {
                    renderer.seek(48_000 * 5);
                    renderer.render(&mut block);
                })
            })
        });
        per_block.push(took.per_iter().as_secs_f64());
    }
    if let [plain, chained] = per_block[..]
        && plain > 0.0
    {
        println!(
            "64 tracks, one 256-frame block: {:.1} µs with EQ + compressor + reverb ({:.1}% of the deadline, target ≤ 25%), {:.1} µs plain: {:.1}×",
            chained * 1e6,
            100.0 * chained / deadline,
            plain * 1e6,
            chained / plain
        );
    }
    // The synth with all 16 voices sounding, against the 64-track plain block above.
    let mut synth = (*busy_arrangement(1, 20)).clone();
    synth.tracks[0].clips.clear();
    synth.tracks[0].effects =
        vec![EffectPlan::new(EffectId::new_v7(), EffectKind::Synth, false, &EffectKind::Synth.defaults())];
    synth.tracks[0].notes = (0..16u8)
        .map(|n| ensemble_audio::synth::NoteEvent { start: 0, end: u64::MAX / 2, pitch: 36 + 3 * n, velocity: 100 })
        .collect();
    let mut renderer = Renderer::new(std::sync::Arc::new(synth));
    let mut block = vec![[0.0f32; 2]; 256];
    // Play into the notes first: a jump releases what sounds, so each block follows the last.
    renderer.render(&mut vec![[0.0f32; 2]; 48_000]);
    let took = Tally::default();
    group.bench_function("synth_16_voices_one_256_frame_block", |b| {
        b.iter_custom(|iters| took.measure(iters, || renderer.render(&mut block)))
    });
    let per_block = took.per_iter().as_secs_f64();
    if per_block > 0.0 {
        println!(
            "synth, 16 voices, one 256-frame block: {:.1} µs ({:.1}% of the deadline)",
            per_block * 1e6,
            100.0 * per_block / deadline
        );
    }
    group.sample_size(10);
    let plain = busy_arrangement(32, 180);
    let mut per_render = Vec::new();
    for (name, song) in [("plain", plain.clone()), ("eq_compressor_reverb", with_chains(&plain))] {
        let took = Tally::default();
        group.bench_function(BenchmarkId::new("32_tracks_3_minutes", name), |b| {
            b.iter_custom(|iters| took.measure(iters, || render_mix(song.clone())))
        });
        per_render.push(took.per_iter().as_secs_f64());
    }
    if let [plain, chained] = per_render[..]
        && chained > 0.0
    {
        println!(
            "render 32 tracks × 3 min with chains: {chained:.2} s, {:.0}× realtime (target ≥ 30×); plain {plain:.2} s, {:.0}×",
            180.0 / chained,
            180.0 / plain
        );
    }
    group.finish();
}

criterion_group!(benches, peaks, decode, render, chains);
criterion_main!(benches);
