//! Audio engine speed, each against its peer in the same run.
//!
//! - Waveform peaks from PCM in memory against a plain sum-read of the same buffer (the memory
//!   bandwidth a single pass can get): target ≥ 50% of the read's speed per core, and
//!   near-linear scaling from one core to two.
//! - Decoding (and decoding + peaks) of the same FLAC and MP3 files against `ffmpeg -f null`
//!   decoding them: target time ratio ≤ 1.25.

// A bench that cannot set up has nothing to measure: failing loudly is right.
#![allow(clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ensemble_audio::Pcm;
use ensemble_audio::peaks::Peaks;
use ensemble_benches::{Tally, print_ratio};
use std::hint::black_box;

/// Ten minutes of stereo noise at 48 kHz: 230 MB of samples, far beyond the caches.
fn ten_minutes() -> Pcm {
    let frames = 48_000 * 600;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    };
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

criterion_group!(benches, peaks, decode);
criterion_main!(benches);
