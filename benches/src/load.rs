//! Load on a real authority over loopback QUIC: many clients writing 1-op transactions, and
//! subscribers timing how long bumps take to reach them.
//!
//! [`Stage`] starts an in-process authority on a store with projects and users ready, or
//! readies them in the store of running authority processes it connects to (spreading its
//! clients over them); [`Writers`] are connected clients that write as fast as their acknowledgements return (or
//! at a steady rate); [`run`] does a whole timed run and reports throughput and latencies.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ensemble_authority::admin;
use ensemble_authority::server::ServerOptions;
use ensemble_authority::store::AnyStore;
use ensemble_net::remote::Remote;
use ensemble_net::tls::Trust;
use ensemble_protocol::{
    Field, ListItem, ListPosition, Op, ProjectId, Record, ServerMsg, TrackField, TrackId, Transaction, TxId,
};
use ensemble_testkit::loopback::Loopback;

const PASSWORD: &str = "load generator password";

/// Authorities with projects and a user who owns them.
pub struct Stage {
    authorities: Authorities,
    user: String,
    /// The projects writers spread over; subscribers watch the first.
    pub projects: Vec<ProjectId>,
    /// Clients connected so far, for spreading them over the authorities.
    connected: std::sync::atomic::AtomicUsize,
}

enum Authorities {
    /// One in this process.
    InProcess(Box<Loopback>),
    /// Running processes, each at an address with the certificate hashes it printed.
    Running(Vec<(SocketAddr, Trust)>),
}

impl Stage {
    /// Starts an authority on `store` with `projects` projects.
    pub async fn new(store: AnyStore, projects: usize) -> anyhow::Result<Stage> {
        let (user, ids) = ready(&store, projects).await?;
        let authority = Loopback::start(store, ServerOptions::default()).await;
        Ok(Stage { authorities: Authorities::InProcess(Box::new(authority)), user, projects: ids, connected: 0.into() })
    }

    /// Readies `projects` projects in `store`, the database of the running authorities at
    /// `servers` (a process on another machine, or several sharing one Postgres), whose clients
    /// are spread over them in turn.
    pub async fn running(
        store: &AnyStore,
        projects: usize,
        servers: Vec<(SocketAddr, Trust)>,
    ) -> anyhow::Result<Stage> {
        if servers.is_empty() {
            bail!("no authority to connect to");
        }
        let (user, ids) = ready(store, projects).await?;
        Ok(Stage { authorities: Authorities::Running(servers), user, projects: ids, connected: 0.into() })
    }

    async fn client(&self) -> anyhow::Result<Remote> {
        let index = self.connected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match &self.authorities {
            Authorities::InProcess(authority) => Ok(authority.login(&self.user, PASSWORD).await),
            Authorities::Running(servers) => {
                let (addr, trust) = &servers[index % servers.len()];
                let mut remote = Remote::connect(*addr, "localhost", trust.clone())
                    .await
                    .with_context(|| format!("connecting to {addr}"))?;
                remote.login(&self.user, PASSWORD).await?;
                Ok(remote)
            }
        }
    }

    /// Stops the authority it started (running ones go on).
    pub async fn shutdown(self) {
        if let Authorities::InProcess(authority) = self.authorities {
            authority.server.shutdown().await;
        }
    }
}

/// A user owning `projects` new projects in `store`.
async fn ready(store: &AnyStore, projects: usize) -> anyhow::Result<(String, Vec<ProjectId>)> {
    let user = format!("load-{}", uuid_suffix());
    admin::add_user(store, &user, PASSWORD).await?;
    let mut ids = Vec::with_capacity(projects);
    for index in 0..projects.max(1) {
        ids.push(admin::create_project(store, &format!("Load {index}"), &user).await?);
    }
    Ok((user, ids))
}

fn uuid_suffix() -> String {
    TxId::new_v7().to_string().replace('-', "")
}

/// One writer: a connection and its own track, in one project.
struct Writer {
    remote: Remote,
    project: ProjectId,
    track: TrackId,
    count: u64,
}

impl Writer {
    fn next_tx(&mut self) -> Transaction {
        self.count += 1;
        let gain = -((self.count % 600) as f32) / 10.0;
        let op = Op::Set { target: self.track.into(), value: Field::Track(TrackField::Gain(gain)), expect: None };
        Transaction::new(self.project, vec![op])
    }

    /// Writes one transaction and waits for its acknowledgement.
    async fn write_one(&mut self) -> anyhow::Result<(TxId, Duration)> {
        let tx = self.next_tx();
        let started = Instant::now();
        match self.remote.write(&tx).await? {
            ServerMsg::Committed { .. } => Ok((tx.id, started.elapsed())),
            other => bail!("write not committed: {other:?}"),
        }
    }
}

/// Connected writers, spread round-robin over the stage's projects.
pub struct Writers(Vec<Writer>);

impl Writers {
    /// Connects `count` writers, each with a track of its own.
    pub async fn connect(stage: &Stage, count: usize) -> anyhow::Result<Writers> {
        let mut writers = Vec::with_capacity(count);
        for index in 0..count {
            let mut remote = stage.client().await?;
            let project = stage.projects[index % stage.projects.len()];
            let track = TrackId::new_v7();
            let record = Record::Track(ensemble_testkit::records::track(&format!("Writer {index}")));
            let create = Transaction::new(
                project,
                vec![
                    Op::Create { id: track.into(), record },
                    Op::ListInsert { target: project.into(), item: ListItem::Track(track), at: ListPosition::End },
                ],
            );
            match remote.write(&create).await? {
                ServerMsg::Committed { .. } => {}
                other => bail!("writer setup failed: {other:?}"),
            }
            writers.push(Writer { remote, project, track, count: 0 });
        }
        Ok(Writers(writers))
    }

    /// Writes `total` transactions, spread over the writers, as fast as acknowledgements return;
    /// returns the time taken. The writers come back for the next call.
    pub async fn write_total(&mut self, total: u64) -> anyhow::Result<Duration> {
        let count = self.0.len() as u64;
        let started = Instant::now();
        let tasks: Vec<_> = self
            .0
            .drain(..)
            .enumerate()
            .map(|(index, mut writer)| {
                let share = total / count + u64::from((index as u64) < total % count);
                tokio::spawn(async move {
                    for _ in 0..share {
                        writer.write_one().await?;
                    }
                    anyhow::Ok(writer)
                })
            })
            .collect();
        for task in tasks {
            self.0.push(task.await.context("writer task")??);
        }
        Ok(started.elapsed())
    }
}

/// Latency percentiles.
#[derive(Clone, Copy, Debug, Default)]
pub struct Percentiles {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

impl Percentiles {
    /// The percentiles of `samples`.
    pub fn of(mut samples: Vec<Duration>) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Percentiles { p50: at(0.5), p99: at(0.99), max: at(1.0) }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p50 {:.2?}, p99 {:.2?}, max {:.2?}", self.p50, self.p99, self.max)
    }
}

/// What a timed run measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// Transactions acknowledged.
    pub committed: u64,
    /// How long the writers wrote.
    pub elapsed: Duration,
    /// Write sent → acknowledgement received.
    pub ack: Percentiles,
    /// Write sent → the last subscriber has the bump (transactions on the watched project).
    pub fan_out: Percentiles,
    /// Acknowledgement received → the last subscriber has the bump.
    pub fan_out_after_ack: Percentiles,
}

impl Report {
    /// Committed transactions per second.
    pub fn rate(&self) -> f64 {
        self.committed as f64 / self.elapsed.as_secs_f64()
    }
}

/// When each transaction's bump reached how many subscribers, the last of them at what time.
pub type Reached = Arc<Mutex<HashMap<TxId, (usize, Instant)>>>;

/// Counts each bump `remote` (a subscriber) receives in `reached`, until its connection ends.
pub fn count_bumps(mut remote: Remote, reached: Reached) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(message) = remote.recv().await {
            if let ServerMsg::Bump(bump) = message {
                let now = Instant::now();
                let mut reached = reached.lock().unwrap_or_else(|e| e.into_inner());
                let entry = reached.entry(bump.tx_id).or_insert((0, now));
                *entry = (entry.0 + 1, now);
            }
        }
    })
}

/// Runs `writers` writers and `subscribers` subscribers (on the first project) for `duration`;
/// with `rate`, the writers together aim for that many transactions per second.
pub async fn run(
    stage: &Stage,
    writers: usize,
    subscribers: usize,
    duration: Duration,
    rate: Option<f64>,
) -> anyhow::Result<Report> {
    let Writers(writers) = Writers::connect(stage, writers).await?;
    // When each transaction on the watched project was sent and acknowledged.
    let sent: Arc<Mutex<HashMap<TxId, (Instant, Instant)>>> = Arc::default();
    let reached = Reached::default();
    let watched = stage.projects[0];
    let mut watchers = Vec::new();
    for _ in 0..subscribers {
        let mut remote = stage.client().await?;
        remote.subscribe(watched, None).await?;
        watchers.push(count_bumps(remote, reached.clone()));
    }
    let count = writers.len();
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let tasks: Vec<_> = writers
        .into_iter()
        .enumerate()
        .map(|(index, mut writer)| {
            let sent_at = sent.clone();
            let period = rate.map(|rate| Duration::from_secs_f64(count as f64 / rate));
            // Writers take turns across the period, so a steady rate arrives evenly.
            let ticker = period.map(|period| {
                let offset = period.mul_f64(index as f64 / count as f64);
                tokio::time::interval_at(tokio::time::Instant::now() + offset, period)
            });
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut ticker = ticker;
                while Instant::now() < deadline {
                    if let Some(ticker) = &mut ticker {
                        ticker.tick().await;
                    }
                    let sent = Instant::now();
                    let (tx_id, latency) = writer.write_one().await?;
                    latencies.push(latency);
                    if writer.project == watched {
                        sent_at.lock().unwrap_or_else(|e| e.into_inner()).insert(tx_id, (sent, sent + latency));
                    }
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.context("writer task")??);
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for watcher in watchers {
        watcher.abort();
    }
    let (sent, reached) =
        (sent.lock().unwrap_or_else(|e| e.into_inner()), reached.lock().unwrap_or_else(|e| e.into_inner()));
    let (mut fan_out, mut after_ack) = (Vec::new(), Vec::new());
    for (tx_id, (sent, acked)) in sent.iter() {
        if let Some((reached, last)) = reached.get(tx_id)
            && *reached == subscribers
        {
            fan_out.push(last.saturating_duration_since(*sent));
            after_ack.push(last.saturating_duration_since(*acked));
        }
    }
    Ok(Report {
        committed: latencies.len() as u64,
        elapsed,
        ack: Percentiles::of(latencies),
        fan_out: Percentiles::of(fan_out),
        fan_out_after_ack: Percentiles::of(after_ack),
    })
}
