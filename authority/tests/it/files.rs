//! Audio files and jobs: resumable uploads, corruption, limits, deduplication, jobs that
//! outlive their worker, and exports equal to the client's own render. Each runs on both
//! stores.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ensemble_audio::arrangement::Arrangement;
use ensemble_authority::actor::{Projects, apply_as_authority};
use ensemble_authority::files::{FileOptions, Library};
use ensemble_authority::jobs::{JobRunner, PeaksJob};
use ensemble_authority::server::ServerOptions;
use ensemble_authority::store::{AnyStore, Store, StoredAs};
use ensemble_net::Error;
use ensemble_net::hash::hash_file;
use ensemble_net::remote::{Remote, Uploaded, transfer_reply};
use ensemble_protocol::transfer::{Chunk, Served, TransferError, TransferReply, TransferRequest};
use ensemble_protocol::wire::{CatchUp, ExportFormat, ExportRequest, JobKind, JobState};
use ensemble_protocol::*;
use tempfile::TempDir;

use crate::harness::Clients;
use crate::harness::{self, Running, add_track, committed};
use ensemble_testkit::tone_wav as wav;

/// Both stores, each with a fresh files folder.
async fn stores() -> Vec<(AnyStore, TempDir, &'static str)> {
    let (sqlite, dir) = harness::sqlite().await;
    vec![(sqlite, dir, "sqlite"), (harness::postgres_fresh().await, tempfile::tempdir().unwrap(), "postgres")]
}

async fn serve_files(
    store: &AnyStore,
    dir: &Path,
    configure: impl FnOnce(&mut FileOptions),
) -> (Running, harness::Cast) {
    let mut files = FileOptions::in_dir(dir.join("files"));
    files.workers = 2;
    configure(&mut files);
    let cast = harness::cast(store).await;
    let running = harness::serve(store, ServerOptions { files: Some(files), ..ServerOptions::default() }).await;
    (running, cast)
}

fn partials(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("files/partial")).map_or(0, |entries| entries.count())
}

/// Stored files, not counting one a background transcode is writing beside its blob.
fn blobs(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("files/blobs")).map_or(0, |entries| {
        entries.flatten().filter(|entry| entry.path().extension().is_none_or(|ext| ext != "partial")).count()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_halfway_resumes_and_ends_with_the_same_hash() {
    for (store, dir, name) in stores().await {
        let (running, cast) = serve_files(&store, dir.path(), |_| {}).await;
        let file = wav(dir.path(), "take.wav", 20, 220.0);
        let size = std::fs::metadata(&file).unwrap().len();
        let hash = hash_file(&file).unwrap();

        let first = running.client(&cast.owner).await;
        let cut = first.upload(cast.project, &file, "take.wav", Some(size / 2)).await.unwrap();
        let Uploaded::Partial { held } = cut else { panic!("{name}: expected a partial upload, got {cut:?}") };
        first.close().await;
        assert!(held >= size / 2 - (1 << 20), "{name}: the authority kept the chunks that arrived");

        let second = running.client(&cast.owner).await;
        let Uploaded::Stored { asset, deduplicated: false } =
            second.upload(cast.project, &file, "take.wav", None).await.unwrap()
        else {
            panic!("{name}: the resumed upload did not store the file")
        };
        let blob = store.blob(hash).await.unwrap().expect("the blob is recorded");
        assert_eq!((blob.size, blob.sample_rate, blob.channels, blob.frames), (size, 48_000, 2, 48_000 * 20));
        assert_eq!(partials(dir.path()), 0, "{name}: the partial became the blob");

        // The asset reached the project; its download decodes to exactly the uploaded samples,
        // whether or not the transcode to FLAC has run yet.
        let state = store.load_project(cast.project).await.unwrap().unwrap().state;
        let Some(Record::AudioAsset(record)) = state.entry(asset.into()).map(|entry| entry.record.clone()) else {
            panic!("{name}: no asset record")
        };
        assert_eq!(record.hash, hash);
        let download = dir.path().join("downloaded");
        let request = TransferRequest::Download { project: cast.project, asset, what: Served::Audio, offset: 0 };
        second.download(request, &download).await.unwrap();
        let original = ensemble_audio::decode::decode_file(&file, None).unwrap();
        let codec_name = download.with_extension("audio");
        let served =
            ensemble_audio::decode::decode_bytes(std::fs::read(&download).unwrap(), &codec_name, None).unwrap();
        assert_eq!(served, original, "{name}: lossless");

        // The jobs: peaks become ready on the record, and the WAV is stored as FLAC, smaller,
        // still decoding to the same samples.
        let start = Instant::now();
        loop {
            let blob = store.blob(hash).await.unwrap().unwrap();
            let state = store.load_project(cast.project).await.unwrap().unwrap().state;
            let ready = matches!(&state.entry(asset.into()).unwrap().record, Record::AudioAsset(a) if a.peaks_ready);
            if ready && blob.stored == StoredAs::Flac {
                assert!(blob.stored_size < blob.size, "{name}: FLAC is smaller than the WAV");
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "{name}: jobs not done: {blob:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        std::fs::remove_file(&download).unwrap();
        let request = TransferRequest::Download { project: cast.project, asset, what: Served::Audio, offset: 0 };
        second.download(request, &download).await.unwrap();
        assert_eq!(&std::fs::read(&download).unwrap()[..4], b"fLaC", "{name}: served as FLAC now");
        let served =
            ensemble_audio::decode::decode_bytes(std::fs::read(&download).unwrap(), &codec_name, None).unwrap();
        assert_eq!(served, original, "{name}: the FLAC is lossless");
        let peaks = dir.path().join("peaks");
        second
            .download(
                TransferRequest::Download { project: cast.project, asset, what: Served::Peaks, offset: 0 },
                &peaks,
            )
            .await
            .unwrap();
        assert!(std::fs::metadata(&peaks).unwrap().len() > 1000, "{name}: peaks downloaded");
        running.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_chunk_is_refused_and_nothing_of_it_is_kept() {
    for (store, dir, name) in stores().await {
        let (running, cast) = serve_files(&store, dir.path(), |_| {}).await;
        let file = wav(dir.path(), "loop.wav", 2, 330.0);
        let bytes = std::fs::read(&file).unwrap();
        let client = running.client(&cast.owner).await;
        let (mut send, mut recv) = client.open_transfer().await.unwrap();
        let codec = FrameCodec::default();
        let request = TransferRequest::Upload {
            project: cast.project,
            name: "loop.wav".into(),
            hash: hash_file(&file).unwrap(),
            size: bytes.len() as u64,
        };
        send.write_all(&codec.encode_to_vec(&request).unwrap()).await.unwrap();
        assert_eq!(transfer_reply(&mut recv).await.unwrap(), TransferReply::SendFrom { offset: 0 });
        let chunk = &bytes[..65_536];
        let header = Chunk { offset: 0, len: chunk.len() as u32, crc: crc32fast::hash(chunk) };
        let mut damaged = chunk.to_vec();
        damaged[1000] ^= 0x40;
        send.write_all(&codec.encode_to_vec(&header).unwrap()).await.unwrap();
        send.write_all(&damaged).await.unwrap();
        let reply = transfer_reply(&mut recv).await.unwrap();
        assert_eq!(reply, TransferReply::Refused(TransferError::CorruptChunk { offset: 0 }), "{name}");
        let partial = std::fs::read_dir(dir.path().join("files/partial")).unwrap().next().unwrap().unwrap();
        assert_eq!(partial.metadata().unwrap().len(), 0, "{name}: nothing of the bad chunk was written");

        // The connection is fine and the same upload goes through.
        assert!(matches!(client.upload(cast.project, &file, "loop.wav", None).await.unwrap(), Uploaded::Stored { .. }));
        running.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_over_the_size_limit_or_the_quota_are_refused_early_and_leave_nothing() {
    for (store, dir, name) in stores().await {
        let (running, cast) = serve_files(&store, dir.path(), |files| {
            files.max_upload = 1 << 20;
            files.quota = 1_500_000;
        })
        .await;
        let client = running.client(&cast.owner).await;
        let big = wav(dir.path(), "big.wav", 6, 110.0);
        let refused = client.upload(cast.project, &big, "big.wav", None).await.unwrap_err();
        assert!(
            matches!(refused, Error::Refused(TransferError::TooLarge { limit: 1_048_576, .. })),
            "{name}: {refused}"
        );
        assert_eq!((partials(dir.path()), blobs(dir.path())), (0, 0), "{name}: nothing on disk");

        let first = wav(dir.path(), "first.wav", 4, 440.0);
        assert!(matches!(
            client.upload(cast.project, &first, "first.wav", None).await.unwrap(),
            Uploaded::Stored { .. }
        ));
        let second = wav(dir.path(), "second.wav", 4, 550.0);
        let refused = client.upload(cast.project, &second, "second.wav", None).await.unwrap_err();
        assert!(matches!(refused, Error::Refused(TransferError::OverQuota { .. })), "{name}: {refused}");
        assert_eq!((partials(dir.path()), blobs(dir.path())), (0, 1), "{name}");

        let viewer = running.client(&cast.viewer).await;
        let refused = viewer.upload(cast.project, &first, "first.wav", None).await.unwrap_err();
        assert!(matches!(refused, Error::Refused(TransferError::Denied(_))), "{name}: {refused}");
        running.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_uploads_of_the_same_file_store_one_copy() {
    for (store, dir, name) in stores().await {
        let (running, cast) = serve_files(&store, dir.path(), |_| {}).await;
        let file = wav(dir.path(), "kick.wav", 1, 60.0);
        let owner = running.client(&cast.owner).await;
        let editor = running.client(&cast.editor).await;
        let Uploaded::Stored { asset, deduplicated: false } =
            owner.upload(cast.project, &file, "kick.wav", None).await.unwrap()
        else {
            panic!("{name}: first upload")
        };
        let again = editor.upload(cast.project, &file, "kick (copy).wav", None).await.unwrap();
        assert_eq!(again, Uploaded::Stored { asset, deduplicated: true }, "{name}: the same asset, nothing sent");
        let other = harness::admin_project(&store, &cast.editor).await;
        let Uploaded::Stored { asset: elsewhere, deduplicated: true } =
            editor.upload(other, &file, "kick.wav", None).await.unwrap()
        else {
            panic!("{name}: another project reuses the stored file")
        };
        assert_ne!(elsewhere, asset);
        assert_eq!(blobs(dir.path()), 1, "{name}: one copy on disk");
        running.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_died_is_done_exactly_once_later() {
    for (store, dir, name) in stores().await {
        let cast = harness::cast(&store).await;
        let library = Library::open(&dir.path().join("files")).unwrap();
        let file = wav(dir.path(), "pad.wav", 3, 262.0);
        let hash = hash_file(&file).unwrap();
        std::fs::copy(&file, library.blob(hash)).unwrap();
        let asset = AssetId::new_v7();
        let record = Record::AudioAsset(AudioAsset {
            hash,
            name: "pad.wav".into(),
            sample_rate: 48_000,
            channels: 2,
            frames: Frames(48_000 * 3),
            codec: Codec::Wav,
            byte_size: std::fs::metadata(&file).unwrap().len(),
            peaks_ready: false,
        });
        apply_as_authority(&store, cast.project, vec![Op::Create { id: asset.into(), record }]).await.unwrap();
        let runner = JobRunner::new();
        let job = runner
            .enqueue(&store, JobKind::Peaks, cast.project, &PeaksJob { hash, project: cast.project, asset })
            .await
            .unwrap();

        // A worker takes the job and dies: nobody else may take it until its lease runs out.
        let now = ensemble_authority::store::files::now_ms();
        let doomed = store.claim_job("doomed", now, now + 400).await.unwrap().expect("the job is due");
        assert_eq!((doomed.id, doomed.attempts), (job, 1));
        assert_eq!(store.claim_job("other", now + 100, now + 500).await.unwrap(), None, "{name}: leased");

        let projects = Arc::new(Projects::new(store.clone()));
        let mut options = FileOptions::in_dir(dir.path().join("files"));
        options.lease = Duration::from_secs(30);
        let workers = runner.start(store.clone(), projects, library.clone(), options);
        let start = Instant::now();
        loop {
            let row = store.job(job).await.unwrap().unwrap();
            if let JobState::Done { files } = row.state {
                assert_eq!((files, row.attempts), (1, 2), "{name}: done by the second attempt");
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "{name}: the job was never done: {row:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        workers.abort();
        assert!(!store.complete_job(job, "doomed", 1, 1).await.unwrap(), "{name}: the dead worker's answer is ignored");
        assert_eq!(store.job(job).await.unwrap().unwrap().state, JobState::Done { files: 1 });
        assert!(store.blob(hash).await.is_ok());
        let peaks = std::fs::File::open(library.peaks(hash)).unwrap();
        let peaks =
            ensemble_audio::peaks::Peaks::read(&mut std::io::BufReader::new(peaks), &library.peaks(hash)).unwrap();
        assert!(peaks.level(256).is_some(), "{name}: the peaks are readable");
        let state = store.load_project(cast.project).await.unwrap().unwrap().state;
        assert!(
            matches!(&state.entry(asset.into()).unwrap().record, Record::AudioAsset(asset) if asset.peaks_ready),
            "{name}: the asset record says its peaks are ready"
        );
    }
}

/// Subscribes and returns the project as the authority has it.
async fn project_state(client: &mut Remote, project: ProjectId) -> ProjectState {
    match client.subscribe(project, None).await.unwrap().catch_up {
        CatchUp::Snapshot(records) => ProjectState::from_changes(project, records).unwrap(),
        CatchUp::Delta(_) => unreachable!("no seq was given"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_job_equals_the_clients_offline_render_sample_for_sample() {
    for (store, dir, name) in stores().await {
        let (running, cast) = serve_files(&store, dir.path(), |_| {}).await;
        let mut client = running.client(&cast.owner).await;
        let file = wav(dir.path(), "riff.wav", 3, 196.0);
        let Uploaded::Stored { asset, .. } = client.upload(cast.project, &file, "riff.wav", None).await.unwrap() else {
            panic!("{name}: upload")
        };
        let track = TrackId::new_v7();
        committed(client.write(&add_track(cast.project, track, "Riff")).await.unwrap());
        let clip = |start: i64, gain_db: f32| Op::Create {
            id: ClipId::new_v7().into(),
            record: Record::Clip(Clip {
                track,
                asset,
                start: Ticks(start),
                length: Ticks(3840),
                source_offset: Frames(4800),
                gain_db,
                fade_in: Ticks(240),
                fade_out: Ticks(480),
                name: "Riff".into(),
            }),
        };
        let pan = Op::Set { target: track.into(), value: Field::Track(TrackField::Pan(-0.4)), expect: None };
        let edit = Transaction::new(cast.project, vec![clip(0, 0.0), clip(2880, -6.0), pan]);
        committed(client.write(&edit).await.unwrap());

        let export = ExportRequest { range: None, stems: false, format: ExportFormat::Float32 };
        client.send(&ClientMsg::Export { project: cast.project, export }).await.unwrap();
        let job = loop {
            if let ServerMsg::JobQueued { job } = client.recv().await.unwrap() {
                break job;
            }
        };
        let start = Instant::now();
        loop {
            client.send(&ClientMsg::GetJob { job }).await.unwrap();
            let state = loop {
                if let ServerMsg::Job(info) = client.recv().await.unwrap() {
                    break info.state;
                }
            };
            match state {
                JobState::Done { files: 1 } => break,
                JobState::Failed { error } => panic!("{name}: the export failed: {error}"),
                _ => assert!(start.elapsed() < Duration::from_secs(60), "{name}: the export never finished"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let out = dir.path().join("mix.wav");
        client.download(TransferRequest::DownloadExport { job, index: 0, offset: 0 }, &out).await.unwrap();
        let exported = ensemble_audio::decode::decode_file(&out, None).unwrap();

        // The client's own render: the project it sees, the file it uploaded.
        let state = project_state(&mut client, cast.project).await;
        let pcm = ensemble_audio::decode::decode_file(&file, Some(48_000)).unwrap();
        let arrangement = Arrangement::from_project(&state, &HashMap::from([(asset, pcm)]));
        let rendered = ensemble_audio::render::render_mix(Arc::new(arrangement));
        assert!(rendered.frames() > 48_000, "{name}: something was rendered");
        assert_eq!(exported, rendered, "{name}: sample for sample");
        running.server.shutdown().await;
    }
}
