//! Audio files at the authority: upload throughput over loopback QUIC, and the time from an
//! upload's end to its waveform peaks being ready.
//!
//! Targets: upload ≥ 300 MB/s. Peers, in the same run: a plain file copy (with `fsync`, as the
//! upload does) of the same bytes; decoding the same FLAC and computing its peaks directly,
//! without the upload, queue and job around it.

// A bench that cannot set up has nothing to measure: failing loudly is right.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ensemble_authority::admin;
use ensemble_authority::files::FileOptions;
use ensemble_authority::server::{Server, ServerOptions};
use ensemble_authority::store::{SqliteStore, Store};
use ensemble_benches::{Tally, print_ratio};
use ensemble_net::hash::hash_file;
use ensemble_net::remote::{Remote, Uploaded};
use ensemble_protocol::ProjectId;
use ensemble_testkit::loopback::Loopback;

const PASSWORD: &str = "bench bench bench";

struct Stage {
    runtime: tokio::runtime::Runtime,
    store: SqliteStore,
    server: Server,
    client: Remote,
    project: ProjectId,
}

fn stage(dir: &Path, workers: usize) -> Stage {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (store, server, client, project) = runtime.block_on(async {
        let url = format!("sqlite://{}", dir.join("bench.sqlite").display());
        let store = SqliteStore::open(&url).await.expect("store");
        admin::add_user(&store, "bench", PASSWORD).await.expect("user");
        let project = admin::create_project(&store, "Bench", "bench").await.expect("project");
        let mut files = FileOptions::in_dir(dir.join("files"));
        files.quota = u64::MAX;
        files.workers = workers;
        let options = ServerOptions { files: Some(files), ..ServerOptions::default() };
        let authority = Loopback::start(store.clone(), options).await;
        let client = authority.login("bench", PASSWORD).await;
        (store, authority.server, client, project)
    });
    Stage { runtime, store, server, client, project }
}

/// A 16-bit stereo WAV of `seconds`, with `tag` written into its first sample so each is a
/// different file.
fn wav(path: &Path, seconds: u32, tag: u32) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("wav");
    let mut rng = ensemble_testkit::Rng(0x1234_5678 ^ u64::from(tag));
    for i in 0..48_000 * seconds * 2 {
        let noise = rng.next();
        let sample = if i == 0 { tag as i16 } else { ((i % 480) as i16 - 240) * 60 + (noise % 64) as i16 };
        writer.write_sample(sample).expect("sample");
    }
    writer.finalize().expect("wav");
}

fn upload(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("dir");
    // No jobs here: they would eat the cores the next upload measures.
    let stage = stage(dir.path(), 0);
    let source = dir.path().join("take.wav");
    let size = {
        wav(&source, 600, 0);
        std::fs::metadata(&source).expect("size").len()
    };
    let (ours, peer) = (Tally::default(), Tally::default());
    let mut group = c.benchmark_group("upload_10_min_wav");
    group.sample_size(10).measurement_time(Duration::from_secs(20)).throughput(Throughput::Bytes(size));
    let mut tag = 0;
    group.bench_function("quic_loopback", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                tag += 1;
                wav(&source, 600, tag);
                let start = Instant::now();
                let uploaded = stage.runtime.block_on(stage.client.upload(stage.project, &source, "take.wav", None));
                total += start.elapsed();
                assert!(matches!(uploaded.expect("uploads"), Uploaded::Stored { deduplicated: false, .. }));
            }
            ours.add(total, iters);
            total
        });
    });
    group.bench_function("file_copy_peer", |b| {
        let target = dir.path().join("copy.wav");
        b.iter_custom(|iters| {
            peer.measure(iters, || {
                std::fs::copy(&source, &target).expect("copy");
                std::fs::File::open(&target).and_then(|file| file.sync_all()).expect("sync");
            })
        });
    });
    group.finish();
    print_ratio("upload a 10-minute WAV (115 MB)", &ours, "file copy + fsync", &peer);
    let mbps = |tally: &Tally| size as f64 / tally.per_iter().as_secs_f64() / 1e6;
    println!("upload {:.0} MB/s, file copy {:.0} MB/s", mbps(&ours), mbps(&peer));
    stage.runtime.block_on(stage.server.shutdown());
}

/// A 10-minute FLAC made by ffmpeg; `tag` goes into its comment so each is a different file.
fn flac(dir: &Path, tag: u32) -> PathBuf {
    let path = dir.join(format!("song-{tag}.flac"));
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=220:sample_rate=48000", "-t", "600"])
        .args(["-ac", "2", "-metadata", &format!("comment=take {tag}")])
        .arg(&path)
        .status()
        .expect("ffmpeg (installed by cargo xtask setup)");
    assert!(status.success(), "ffmpeg failed");
    path
}

fn peaks_ready(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("dir");
    let stage = stage(dir.path(), 2);
    let (ours, peer) = (Tally::default(), Tally::default());
    let mut group = c.benchmark_group("peaks_10_min_flac");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    let mut tag = 0;
    group.bench_function("upload_end_to_peaks_ready", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                tag += 1;
                let file = flac(dir.path(), tag);
                let hash = hash_file(&file).expect("hash");
                let uploaded = stage.runtime.block_on(stage.client.upload(stage.project, &file, "song.flac", None));
                let start = Instant::now();
                assert!(matches!(uploaded.expect("uploads"), Uploaded::Stored { .. }));
                loop {
                    let blob = stage.runtime.block_on(stage.store.blob(hash)).expect("blob");
                    if blob.is_some_and(|blob| blob.peaks_ready) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                total += start.elapsed();
                let _ = std::fs::remove_file(file);
            }
            ours.add(total, iters);
            total
        });
    });
    group.bench_function("decode_and_peaks_peer", |b| {
        let file = flac(dir.path(), 0);
        b.iter_custom(|iters| {
            peer.measure(iters, || {
                let decoding = ensemble_audio::decode::Decoding::open(&file).expect("decodes");
                ensemble_audio::peaks::Peaks::from_decoding(decoding).expect("peaks")
            })
        });
    });
    group.finish();
    print_ratio("10-minute FLAC: upload end to peaks ready", &ours, "decode + peaks in process", &peer);
    stage.runtime.block_on(stage.server.shutdown());
}

criterion_group!(benches, upload, peaks_ready);
criterion_main!(benches);
