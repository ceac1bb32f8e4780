//! Audio engine speed, each against its peer in the same run.
//!
//! - Waveform peaks from PCM in memory against a plain sum-read of the same buffer (the memory
//!   bandwidth a single pass can get): target ≥ 50% of the read's speed per core, and
//!   near-linear scaling from one core to two.

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

criterion_group!(benches, peaks);
criterion_main!(benches);
