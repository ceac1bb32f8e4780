//! Background jobs: waveform peaks for new audio, FLAC transcodes of lossless uploads, and
//! project exports.
//!
//! Jobs are rows in the store (see [`crate::store::files`]), so they survive restarts and any
//! authority process sharing the database can run them. A [`JobRunner`] claims due jobs with a
//! lease, runs their heavy part on the rayon pool, and records the outcome only if it still
//! holds that attempt's lease: a worker that crashed mid-job leaves the job to be taken again
//! when its lease runs out, and its late answer (if it was only slow) is ignored. A failed
//! attempt is retried after 1, 2, 4, 8 s; the fifth failure is final. Every job writes its
//! output to a temporary file and renames it into place, so a half-done job leaves nothing a
//! client can download.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ensemble_audio::Pcm;
use ensemble_audio::arrangement::Arrangement;
use ensemble_audio::peaks::Peaks;
use ensemble_audio::wav::WavFormat;
use ensemble_protocol::wire::{ExportFormat, ExportRequest, JobKind};
use ensemble_protocol::{
    AssetField, AssetId, ContentHash, Field, JobId, Op, ProjectId, ProjectState, Record, Timebase, Transaction,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};

use crate::Error;
use crate::actor::Projects;
use ensemble_net::hash::hash_file;

use crate::files::{FileOptions, Library, job_payload};
use crate::store::files::{now_ms, payload};
use crate::store::{JobRow, Store, StoredAs};

/// Attempts before a job fails for good.
pub const MAX_ATTEMPTS: u32 = 5;
/// How often an idle runner looks for jobs another process queued.
const POLL: Duration = Duration::from_millis(250);

/// The input of a peaks job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeaksJob {
    /// The blob.
    pub hash: ContentHash,
    /// The project whose asset record is marked ready.
    pub project: ProjectId,
    /// That asset.
    pub asset: AssetId,
}

/// The input of a transcode job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranscodeJob {
    /// The blob.
    pub hash: ContentHash,
}

/// The input of an export job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportJob {
    /// What to render.
    pub request: ExportRequest,
}

/// Queues jobs and runs them.
#[derive(Debug)]
pub struct JobRunner {
    wake: Arc<Notify>,
    worker: String,
}

impl Default for JobRunner {
    fn default() -> Self {
        Self::new()
    }
}

impl JobRunner {
    /// A runner with a name no other runner has.
    pub fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "authority".into());
        JobRunner { wake: Arc::new(Notify::new()), worker: format!("{host}-{}-{n}", std::process::id()) }
    }

    /// Queues a job and wakes the runner.
    pub async fn enqueue<S: Store, T: Serialize>(
        &self,
        store: &S,
        kind: JobKind,
        project: ProjectId,
        input: &T,
    ) -> Result<JobId, Error> {
        let id = JobId::new_v7();
        store.enqueue_job(id, kind, project, &job_payload(input)?).await?;
        self.wake.notify_one();
        Ok(id)
    }

    /// Starts claiming and running jobs until the returned task is aborted.
    pub fn start<S: Store>(
        &self,
        store: S,
        projects: Arc<Projects<S>>,
        library: Library,
        options: FileOptions,
    ) -> tokio::task::JoinHandle<()> {
        let context = Arc::new(Context { store, projects, library, worker: self.worker.clone() });
        let wake = self.wake.clone();
        let slots = Arc::new(Semaphore::new(options.workers.max(1)));
        let lease = i64::try_from(options.lease.as_millis()).unwrap_or(i64::MAX);
        tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                let now = now_ms();
                match context.store.claim_job(&context.worker, now, now.saturating_add(lease)).await {
                    Ok(Some(job)) => {
                        let context = context.clone();
                        tokio::spawn(async move {
                            context.run(job).await;
                            drop(slot);
                        });
                    }
                    Ok(None) => {
                        drop(slot);
                        tokio::select! {
                            () = wake.notified() => {}
                            () = tokio::time::sleep(POLL) => {}
                        }
                    }
                    Err(error) => {
                        drop(slot);
                        tracing::error!(%error, "cannot claim jobs");
                        tokio::time::sleep(POLL * 4).await;
                    }
                }
            }
        })
    }
}

struct Context<S> {
    store: S,
    projects: Arc<Projects<S>>,
    library: Library,
    worker: String,
}

impl<S: Store> Context<S> {
    async fn run(&self, job: JobRow) {
        let span = tracing::info_span!("job", id = %job.id, kind = ?job.kind, attempt = job.attempts);
        let _entered = span.enter();
        let outcome = if job.attempts > MAX_ATTEMPTS {
            Err(Error::Config(format!("gave up after {MAX_ATTEMPTS} attempts")))
        } else {
            match job.kind {
                JobKind::Peaks => self.peaks(&job).await,
                JobKind::Transcode => self.transcode(&job).await,
                JobKind::Export => self.export(&job).await,
            }
        };
        let recorded = match &outcome {
            Ok(files) => self.store.complete_job(job.id, &self.worker, job.attempts, *files).await,
            Err(error) => {
                tracing::warn!(%error, "job attempt failed");
                let retry =
                    (job.attempts < MAX_ATTEMPTS).then(|| now_ms() + 1000 * (1i64 << (job.attempts.min(6) - 1)));
                self.store.fail_job(job.id, &self.worker, job.attempts, &error.to_string(), retry).await
            }
        };
        match recorded {
            Ok(true) => tracing::debug!("job recorded"),
            Ok(false) => tracing::warn!("the job's lease ran out before it finished; another worker has it"),
            Err(error) => tracing::error!(%error, "cannot record the job's outcome"),
        }
    }

    async fn peaks(&self, job: &JobRow) -> Result<u32, Error> {
        let input: PeaksJob = payload(job)?;
        let (source, target) = (self.library.blob(input.hash), self.library.peaks(input.hash));
        on_rayon(move || {
            let decoding = ensemble_audio::decode::Decoding::open(&source).map_err(audio)?;
            let peaks = Peaks::from_decoding(decoding).map_err(audio)?;
            write_atomically(&target, |file| peaks.write(file))
        })
        .await?;
        self.store.set_peaks_ready(input.hash).await?;
        let ready = Op::Set {
            target: input.asset.into(),
            value: Field::AudioAsset(AssetField::PeaksReady(true)),
            expect: None,
        };
        if let Some(project) = self.projects.open(input.project).await? {
            // The asset may have been deleted since: the peaks are ready all the same.
            let answer = project.write_as_authority(Transaction::new(input.project, vec![ready])).await?;
            tracing::debug!(?answer, "asset marked ready");
        }
        Ok(1)
    }

    async fn transcode(&self, job: &JobRow) -> Result<u32, Error> {
        let input: TranscodeJob = payload(job)?;
        let path = self.library.blob(input.hash);
        let flac = on_rayon(move || transcode_to_flac(&path)).await?;
        if let Some((size, stored_hash)) = flac {
            self.store.set_blob_stored(input.hash, StoredAs::Flac, size, stored_hash).await?;
        }
        Ok(u32::from(flac.is_some()))
    }

    async fn export(&self, job: &JobRow) -> Result<u32, Error> {
        let input: ExportJob = payload(job)?;
        let loaded = self.store.load_project(job.project).await?;
        let state = loaded.ok_or_else(|| Error::NotFound(format!("project {}", job.project)))?.state;
        let (library, id) = (self.library.clone(), job.id);
        on_rayon(move || export_project(&state, &library, input.request, |index| library.export(id, index))).await
    }
}

/// Runs `work` on the rayon pool and waits for it without blocking the runtime.
async fn on_rayon<T: Send + 'static>(work: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    let (done, result) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = done.send(work());
    });
    result.await.map_err(|_| Error::Config("a job's worker thread panicked".into()))?
}

fn audio(error: ensemble_audio::AudioError) -> Error {
    Error::Config(format!("audio: {error}"))
}

/// Writes a file through a temporary name, so it appears whole or not at all.
fn write_atomically(
    target: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), Error> {
    let partial = target.with_extension("partial");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&partial)?);
    write(&mut file)?;
    let file = file.into_inner().map_err(|error| Error::Io(error.into_error()))?;
    file.sync_all()?;
    std::fs::rename(&partial, target)?;
    Ok(())
}

/// Re-encodes an integer PCM WAV blob as FLAC in place, after checking the FLAC decodes to the
/// same samples. Returns the new size and hash; `None` when the file cannot be stored
/// losslessly as FLAC (float samples), which leaves it as it is.
fn transcode_to_flac(path: &Path) -> Result<Option<(u64, ContentHash)>, Error> {
    let reader = hound::WavReader::open(path).map_err(|e| Error::Config(format!("wav: {e}")))?;
    let spec = reader.spec();
    if spec.sample_format != hound::SampleFormat::Int || !(8..=24).contains(&spec.bits_per_sample) {
        return Ok(None);
    }
    let samples: Vec<i32> =
        reader.into_samples::<i32>().collect::<Result<_, _>>().map_err(|e| Error::Config(format!("wav: {e}")))?;
    let config = flacenc::config::Encoder::default();
    let config = flacenc::error::Verify::into_verified(config).map_err(|e| Error::Config(format!("flac: {e:?}")))?;
    let source = flacenc::source::MemSource::from_samples(
        &samples,
        usize::from(spec.channels),
        usize::from(spec.bits_per_sample),
        spec.sample_rate as usize,
    );
    let mut stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
        .map_err(|e| Error::Config(format!("flac: {e:?}")))?;
    // flacenc lowers the minimum block size to the short last block, which makes the stream
    // look variable-blocksize to decoders that check (symphonia then finds no frame). The
    // format excludes the last block from the minimum.
    stream
        .stream_info_mut()
        .set_block_sizes(config.block_size, config.block_size)
        .map_err(|e| Error::Config(format!("flac: {e:?}")))?;
    let mut sink = flacenc::bitsink::ByteSink::new();
    flacenc::component::BitRepr::write(&stream, &mut sink).map_err(|e| Error::Config(format!("flac: {e:?}")))?;
    let bytes = sink.as_slice();
    // Lossless or nothing: the FLAC must decode to exactly the samples it came from.
    let original = ensemble_audio::decode::decode_file(path, None).map_err(audio)?;
    let name = path.with_extension("flac");
    let reencoded = ensemble_audio::decode::decode_bytes(bytes.to_vec(), &name, None).map_err(audio)?;
    if original != reencoded {
        return Err(Error::Config("the FLAC does not decode to the original samples".into()));
    }
    write_atomically(path, |file| std::io::Write::write_all(file, bytes))?;
    let hash = hash_file(path)?;
    Ok(Some((bytes.len() as u64, hash)))
}

/// Renders `state` as `request` asks, decoding its audio from `library`, into the files `out`
/// names (0 for the mix, or one per track in track order); returns how many it wrote. The
/// client's offline render of the same project gives the same samples.
pub fn export_project(
    state: &ProjectState,
    library: &Library,
    request: ExportRequest,
    out: impl Fn(u32) -> PathBuf,
) -> Result<u32, Error> {
    let rate = state.project().sample_rate;
    let mut assets = HashMap::new();
    for (id, entry) in state.records() {
        if let Record::AudioAsset(asset) = &entry.record {
            let pcm = ensemble_audio::decode::decode_file(&library.blob(asset.hash), Some(rate)).map_err(audio)?;
            assets.insert(AssetId(id.0), pcm);
        }
    }
    let arrangement = Arc::new(Arrangement::from_project(state, &assets));
    let rendered = if request.stems {
        ensemble_audio::render::render_stems(arrangement)
    } else {
        vec![ensemble_audio::render::render_mix(arrangement)]
    };
    let timebase = Timebase::new(state.project().tempo, rate);
    let format = match request.format {
        ExportFormat::Int16 => WavFormat::Int16,
        ExportFormat::Int24 => WavFormat::Int24,
        ExportFormat::Float32 => WavFormat::Float32,
    };
    let mut written = 0;
    for (index, pcm) in rendered.iter().enumerate() {
        let pcm = match request.range {
            Some((start, end)) => slice(pcm, timebase.frames(start).0, timebase.frames(end).0),
            None => pcm.clone(),
        };
        let index = u32::try_from(index).map_err(|_| Error::Config("too many stems".into()))?;
        ensemble_audio::wav::write_wav(&out(index), &pcm, format).map_err(audio)?;
        written += 1;
    }
    Ok(written)
}

/// Frames `start..end` of `pcm`, silence where the range runs past it.
fn slice(pcm: &Pcm, start: u64, end: u64) -> Pcm {
    let len = usize::try_from(end.saturating_sub(start)).unwrap_or(0);
    let start = usize::try_from(start).unwrap_or(usize::MAX);
    let channels = pcm
        .channels
        .iter()
        .map(|channel| {
            let mut out = vec![0.0; len];
            if start < channel.len() {
                let available = (channel.len() - start).min(len);
                out[..available].copy_from_slice(&channel[start..start + available]);
            }
            out
        })
        .collect();
    Pcm::new(pcm.sample_rate, channels)
}
