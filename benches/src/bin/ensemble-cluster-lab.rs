//! `ensemble-cluster-lab`: several authority processes on one Postgres and one NATS, under load
//! and a schedule of faults, checking that nothing acknowledged is lost.
//!
//! It starts a throwaway Postgres and a NATS server, `--nodes` real `ensemble-authority serve`
//! processes (leases of `--lease-ms`, forwarding over NATS), and `--writers` clients spread
//! over the processes and over `--projects` projects, each writing fader moves as fast as its
//! acknowledgements return. A writer whose connection fails reconnects to the next process (a
//! load balancer's next pick), one told to reconnect to the same one, and either sends the same
//! transaction again (its id makes a replay harmless), so a fault costs time, never an edit.
//! During the run it kills a process with SIGKILL (and starts a new one), pauses one past its
//! lease with SIGSTOP (then SIGCONT), cuts one off Postgres and NATS past its lease while its
//! clients still reach it (then heals the link), and restarts NATS. Afterwards every
//! acknowledged transaction is looked up in the database.
//!
//! Where it can make network namespaces (as root), each process runs in one of its own, on a
//! network of the lab's ([`LabNetwork`]): clients reach it on one link, Postgres and NATS on
//! another, which is what the cut takes down. Elsewhere the processes share loopback and the
//! cut is left out (it says so).
//!
//! It prints committed tx/s, the acknowledgement latency (p50/p99), how long each fault kept
//! some writer from an acknowledgement (the failover time), and the acknowledged transactions
//! missing from the database, which must be 0 (the exit status says so).
//!
//! `cargo xtask cluster-lab` builds it and the authority and runs it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use ensemble_authority::admin;
use ensemble_authority::store::{AnyStore, PostgresStore, Store};
use ensemble_benches::lab_network::LabNetwork;
use ensemble_benches::load::{Percentiles, Reached, count_bumps};
use ensemble_net::remote::Remote;
use ensemble_net::tls::{Fingerprint, Trust};
use ensemble_protocol::wire::close;
use ensemble_protocol::{ProjectId, ServerMsg, TrackId, Transaction, TxId};
use ensemble_testkit::records;
use ensemble_testkit::sandbox::{self, Nats};
use tokio::io::{AsyncBufReadExt, BufReader};

const PASSWORD: &str = "cluster lab password";

#[derive(Parser)]
struct Args {
    /// Authority processes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Writing clients, spread over the processes.
    #[arg(long, default_value_t = 12)]
    writers: usize,
    /// Projects the writers spread over.
    #[arg(long, default_value_t = 4)]
    projects: usize,
    /// Seconds of load; the faults fall evenly over it.
    #[arg(long, default_value_t = 24)]
    seconds: u64,
    /// The processes' lease time, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    lease_ms: u64,
    /// The `ensemble-authority` binary (default: beside this one).
    #[arg(long)]
    authority: Option<PathBuf>,
    /// No faults: a plain load run over the processes, with `--subscribers` timing the
    /// fan-out of the first project's bumps.
    #[arg(long)]
    no_faults: bool,
    /// With --no-faults: subscribers to the first project, spread over the processes.
    #[arg(long, default_value_t = 16)]
    subscribers: usize,
    /// Run the processes on this machine's loopback even where network namespaces can be made.
    #[arg(long)]
    no_namespaces: bool,
    /// Keep each process's log (JSON lines) in this folder, as `NAME.log`.
    #[arg(long)]
    logs: Option<PathBuf>,
}

/// A running authority process.
struct Node {
    name: String,
    child: tokio::process::Child,
    addr: SocketAddr,
    trust: Trust,
}

/// Where the writers find the processes: the live ones' addresses, by slot.
type Directory = Arc<Mutex<Vec<Option<(SocketAddr, Trust)>>>>;

/// How to start an authority process: the same binary, database, NATS and lease for all.
struct Cluster {
    bin: PathBuf,
    /// The database's URL as the processes reach it.
    database: String,
    nats: String,
    dir: PathBuf,
    lease_ms: u64,
    /// The namespaces the processes run in, where the lab could make them.
    network: Option<LabNetwork>,
    /// Where their logs go, if anywhere.
    logs: Option<PathBuf>,
}

impl Cluster {
    /// Starts the process of `slot` (in its namespace, if there are namespaces), named `name`.
    async fn start(&self, slot: usize, name: &str) -> anyhow::Result<Node> {
        let (mut command, listen) = match &self.network {
            Some(network) => (network.command(slot, &self.bin), SocketAddr::new(network.public_address(slot), 0)),
            None => (tokio::process::Command::new(&self.bin), SocketAddr::from(([127, 0, 0, 1], 0))),
        };
        let log = match &self.logs {
            Some(dir) => std::fs::File::create(dir.join(format!("{name}.log")))?.into(),
            None => std::process::Stdio::null(),
        };
        let mut child = command
            .args(["--log-format", "json", "--database", &self.database, "--data-dir"])
            .arg(self.dir.join(name))
            .args(["serve", "--listen", &listen.to_string(), "--node-id", name, "--nats", &self.nats])
            .args(["--lease-ttl-ms", &self.lease_ms.to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let (mut addr, mut trust) = (None, None);
        while addr.is_none() || trust.is_none() {
            let line = lines.next_line().await?.context("the authority exited before it was ready")?;
            if let Some(rest) = line.strip_prefix("ensemble-authority listening on ") {
                addr = Some(rest.parse()?);
            } else if let Some(rest) = line.strip_prefix("certificate hashes (SHA-256, current,next): ") {
                let hashes = rest.split(',').map(Fingerprint::parse).collect::<Result<Vec<_>, _>>()?;
                trust = Some(Trust::Pinned(hashes));
            }
        }
        // Drain what it prints later, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Node { name: name.to_owned(), child, addr: addr.context("address")?, trust: trust.context("hashes")? })
    }
}

/// What the writers saw.
#[derive(Default)]
struct Seen {
    /// Acknowledged transactions, by project.
    acknowledged: Vec<(ProjectId, TxId)>,
    /// Acknowledgement latencies (only of first tries on a working connection).
    latencies: Vec<Duration>,
    /// When each acknowledgement arrived, and in which project.
    acks: Vec<(ProjectId, Instant)>,
    /// When each transaction of the first project was acknowledged.
    acked: std::collections::HashMap<TxId, Instant>,
}

/// One writer: its track in `project`, written until `deadline`, reconnecting and resending
/// through the next live process whenever its connection fails, through the same one when
/// that one answers with an error (the project moved, its server is gone).
async fn writer(
    index: usize,
    // Writes to the first project, whose bumps the subscribers time.
    timed: bool,
    user: String,
    project: ProjectId,
    directory: Directory,
    (first, deadline): (Remote, Instant),
    seen: Arc<Mutex<Seen>>,
) -> anyhow::Result<()> {
    let track = TrackId::new_v7();
    let mut pending = Some(Transaction::new(project, records::add_track(project, track, &format!("Writer {index}"))));
    let mut remote = Some(first);
    let mut slot = index;
    let mut count = 0u64;
    while Instant::now() < deadline {
        let tx = pending.get_or_insert_with(|| {
            count += 1;
            Transaction::new(project, vec![records::set_gain(track, -((count % 600) as f32) / 10.0, None)])
        });
        if remote.is_none() {
            match log_in(&user, &directory, slot).await {
                Some(connected) => remote = Some(connected),
                None => {
                    slot += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let Some(connection) = remote.as_mut() else { continue };
        let sent = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(5), connection.write(tx)).await;
        match answer {
            Ok(Ok(ServerMsg::Committed { .. })) => {
                let now = Instant::now();
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.acknowledged.push((project, tx.id));
                seen.latencies.push(now - sent);
                seen.acks.push((project, now));
                if timed {
                    seen.acked.insert(tx.id, now);
                }
                pending = None;
            }
            Ok(Ok(ServerMsg::Rejected { reason, .. })) => bail!("writer {index}: a write was rejected: {reason:?}"),
            // An error answer or a close as moved or to retry (the project moved, its server
            // is gone, the database did not answer): that process is there and finds where
            // the project is served now; a lost connection or no answer in time: another
            // process. Either way the same transaction again.
            failed => {
                let moved =
                    matches!(failed, Ok(Ok(_))) || matches!(connection.close_code(), Some(close::MOVED | close::RETRY));
                if !moved {
                    slot += 1;
                }
                remote = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    Ok(())
}

/// A connection logged in as `user` at the live process in `slot` (counted round the live
/// ones), or `None` if that did not work within 3 s.
async fn log_in(user: &str, directory: &Directory, slot: usize) -> Option<Remote> {
    let (addr, trust) = {
        let directory = directory.lock().unwrap_or_else(|e| e.into_inner());
        let live: Vec<_> = directory.iter().flatten().cloned().collect();
        live.get(slot % live.len().max(1)).cloned()?
    };
    let connected = tokio::time::timeout(Duration::from_secs(3), async {
        let mut remote = Remote::connect(addr, "localhost", trust).await?;
        remote.login(user, PASSWORD).await?;
        anyhow::Ok(remote)
    })
    .await;
    connected.ok()?.ok()
}

/// The process that serves the most of `projects` now.
async fn busiest(store: &AnyStore, projects: &[ProjectId], nodes: &[Node]) -> anyhow::Result<usize> {
    let mut served = vec![0; nodes.len()];
    for project in projects {
        if let Some(holder) = store.lease_holder(*project).await?
            && let Some(index) = nodes.iter().position(|node| node.name == holder)
        {
            served[index] += 1;
        }
    }
    Ok((0..nodes.len()).max_by_key(|index| served[*index]).unwrap_or(0))
}

fn signal(node: &Node, signal: &str) -> anyhow::Result<()> {
    let pid = node.child.id().context("the process has exited")?.to_string();
    let status = std::process::Command::new("kill").args([signal, &pid]).status()?;
    if !status.success() {
        bail!("kill {signal} {pid} failed");
    }
    Ok(())
}

/// The faults the lab can bring, in the order they fall.
#[derive(Clone, Copy)]
enum Fault {
    Kill,
    Pause,
    Cut,
    NatsRestart,
}

impl Fault {
    fn describe(self) -> &'static str {
        match self {
            Fault::Kill => "SIGKILL of the process serving the most projects (a new one started)",
            Fault::Pause => "SIGSTOP of the process serving the most projects past its lease, then SIGCONT",
            Fault::Cut => "the process serving the most projects cut off Postgres and NATS past its lease, then healed",
            Fault::NatsRestart => "NATS stopped for 1 s",
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = match &args.authority {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?.with_file_name("ensemble-authority"),
    };
    let network = if args.no_namespaces {
        None
    } else {
        LabNetwork::build(args.nodes.max(1))
            .inspect_err(|why| println!("no network namespaces ({why}): the processes share loopback, and no cut"))
            .ok()
    };
    // The lab reaches Postgres on loopback; the processes, from their namespaces, on the data
    // network.
    let (database, nodes_database, nats_host) = match &network {
        Some(network) => {
            let (here, there) = sandbox::postgres_reachable_at(network.data_host(), &network.data_network())?;
            (here, there, network.data_host())
        }
        None => {
            let url = sandbox::postgres_url()?;
            (url.clone(), url, std::net::IpAddr::from([127, 0, 0, 1]))
        }
    };
    let mut nats = Nats::start_at(nats_host, "")?;
    let dir = tempfile::tempdir()?;
    let store = AnyStore::Postgres(PostgresStore::connect(&database).await?);
    let user = format!("lab-{}", TxId::new_v7().to_string().replace('-', ""));
    admin::add_user(&store, &user, PASSWORD).await?;
    let mut projects = Vec::new();
    for index in 0..args.projects.max(1) {
        projects.push(admin::create_project(&store, &format!("Lab {index}"), &user).await?);
    }
    let cluster = Cluster {
        bin,
        database: nodes_database,
        nats: nats.url.clone(),
        dir: dir.path().to_owned(),
        lease_ms: args.lease_ms,
        network,
        logs: args.logs.clone(),
    };
    if let Some(dir) = &cluster.logs {
        std::fs::create_dir_all(dir)?;
    }
    let mut nodes = Vec::new();
    for slot in 0..args.nodes.max(1) {
        nodes.push(cluster.start(slot, &format!("node{slot}")).await?);
    }
    let directory: Directory =
        Arc::new(Mutex::new(nodes.iter().map(|node| Some((node.addr, node.trust.clone()))).collect()));
    println!(
        "cluster lab: {} processes ({}), {} writers over {} projects, {} s, leases of {} ms",
        nodes.len(),
        if cluster.network.is_some() { "a network namespace each" } else { "on loopback" },
        args.writers,
        projects.len(),
        args.seconds,
        args.lease_ms
    );

    let seen = Arc::new(Mutex::new(Seen::default()));
    let reached = Reached::default();
    let mut watchers = Vec::new();
    let subscribers = if args.no_faults { args.subscribers } else { 0 };
    for index in 0..subscribers {
        let (addr, trust) = directory.lock().unwrap_or_else(|e| e.into_inner())[index % nodes.len()]
            .clone()
            .context("a live process")?;
        let mut remote = Remote::connect(addr, "localhost", trust).await?;
        remote.login(&user, PASSWORD).await?;
        remote.subscribe(projects[0], None).await?;
        watchers.push(count_bumps(remote, reached.clone()));
    }
    // Every writer logs in before the clock starts: hundreds of logins at once queue for the
    // password checks (a few at a time), and a writer that waited would have its project
    // written less in the figures.
    let mut first = Vec::new();
    for index in 0..args.writers {
        let mut slot = index;
        let mut tries = 0;
        first.push(loop {
            if let Some(remote) = log_in(&user, &directory, slot).await {
                break remote;
            }
            tries += 1;
            if tries == 10 {
                bail!("writer {index} could not log in");
            }
            slot += 1;
        });
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let writers: Vec<_> = first
        .into_iter()
        .enumerate()
        .map(|(index, first)| {
            let project = projects[index % projects.len()];
            let timed = project == projects[0];
            let (user, directory, seen) = (user.clone(), directory.clone(), seen.clone());
            tokio::spawn(writer(index, timed, user, project, directory, (first, deadline), seen))
        })
        .collect();

    // The faults, evenly over the run.
    let mut schedule = vec![];
    if !args.no_faults {
        schedule.extend([Fault::Kill, Fault::Pause]);
        if cluster.network.is_some() {
            schedule.push(Fault::Cut);
        }
        schedule.push(Fault::NatsRestart);
    }
    let spacing = Duration::from_secs(args.seconds) / (schedule.len() as u32 + 1);
    let mut faults = Vec::new();
    for (index, fault) in schedule.into_iter().enumerate() {
        tokio::time::sleep_until((started + spacing * (index as u32 + 1)).into()).await;
        faults.push((Instant::now(), fault.describe()));
        bring(fault, &cluster, &mut nats, &mut nodes, &directory, &store, &projects).await?;
    }
    for writer in writers {
        writer.await.context("writer task")??;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    watchers.iter().for_each(|watcher| watcher.abort());
    let lease = Duration::from_millis(args.lease_ms);
    report(started, deadline, spacing, lease, &faults, &store, &projects, &seen, (&reached, subscribers)).await
}

/// Brings `fault` on the cluster, and takes it away again where it lasts.
async fn bring(
    fault: Fault,
    cluster: &Cluster,
    nats: &mut Nats,
    nodes: &mut [Node],
    directory: &Directory,
    store: &AnyStore,
    projects: &[ProjectId],
) -> anyhow::Result<()> {
    let past_lease = 2 * Duration::from_millis(cluster.lease_ms);
    match fault {
        Fault::Kill => {
            let killed = busiest(store, projects, nodes).await?;
            signal(&nodes[killed], "-KILL")?;
            directory.lock().unwrap_or_else(|e| e.into_inner())[killed] = None;
            let replacement = cluster.start(killed, &format!("{}-again", nodes[killed].name)).await?;
            directory.lock().unwrap_or_else(|e| e.into_inner())[killed] =
                Some((replacement.addr, replacement.trust.clone()));
            nodes[killed] = replacement;
        }
        Fault::Pause => {
            let paused = busiest(store, projects, nodes).await?;
            signal(&nodes[paused], "-STOP")?;
            tokio::time::sleep(past_lease).await;
            signal(&nodes[paused], "-CONT")?;
        }
        Fault::Cut => {
            let network = cluster.network.as_ref().context("a cut needs the lab's network")?;
            let cut = busiest(store, projects, nodes).await?;
            network.cut(cut).map_err(anyhow::Error::msg)?;
            tokio::time::sleep(past_lease).await;
            network.heal(cut).map_err(anyhow::Error::msg)?;
        }
        Fault::NatsRestart => {
            nats.stop();
            tokio::time::sleep(Duration::from_secs(1)).await;
            nats.resume()?;
        }
    }
    Ok(())
}

/// Prints what the run measured, and fails if an acknowledged transaction is missing.
#[allow(clippy::too_many_arguments)]
async fn report(
    started: Instant,
    deadline: Instant,
    spacing: Duration,
    lease: Duration,
    faults: &[(Instant, &'static str)],
    store: &AnyStore,
    projects: &[ProjectId],
    seen: &Mutex<Seen>,
    (reached, subscribers): (&Reached, usize),
) -> anyhow::Result<()> {
    let elapsed = started.elapsed();
    let mut seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    let reached = std::mem::take(&mut *reached.lock().unwrap_or_else(|e| e.into_inner()));

    // Every acknowledged transaction must be in the database.
    let mut missing = 0;
    for project in projects {
        let ids: Vec<TxId> = seen.acknowledged.iter().filter(|(p, _)| p == project).map(|(_, id)| *id).collect();
        for chunk in ids.chunks(1000) {
            let found = store.committed(*project, chunk).await?;
            missing += chunk.len() - found.len();
        }
    }
    seen.acks.sort_unstable_by_key(|(_, at)| *at);
    let committed = seen.acknowledged.len();
    let ack = Percentiles::of(std::mem::take(&mut seen.latencies));
    println!(
        "committed {committed} transactions: {:.0} tx/s | ack p50 {:.2?}, p99 {:.2?}",
        committed as f64 / elapsed.as_secs_f64(),
        ack.p50,
        ack.p99
    );
    let mut failovers = Vec::new();
    for (at, what) in faults {
        // For the worst-hit project, the longest stretch without an acknowledgement from the
        // fault on, within a window that ends before the next fault (a project still waiting
        // at its end counts the whole wait).
        let window = (*at + spacing).min(deadline);
        let mut longest = Duration::ZERO;
        for project in projects {
            let mut last = *at;
            for (_, ack) in seen.acks.iter().filter(|(p, ack)| p == project && *ack >= *at && *ack <= window) {
                longest = longest.max(*ack - last);
                last = *ack;
            }
            longest = longest.max(window.saturating_duration_since(last));
        }
        println!("  {what}: the worst-hit project took no write for {longest:.2?} (lease {lease:.2?})");
        failovers.push(longest);
    }
    if !failovers.is_empty() {
        let failover = Percentiles::of(failovers);
        println!("failover p50 {:.2?}, max {:.2?}", failover.p50, failover.max);
    }
    if subscribers > 0 {
        // Acknowledgement → the last subscriber (on any process) has the bump.
        let fan_out: Vec<Duration> = seen
            .acked
            .iter()
            .filter_map(|(tx, acked)| {
                let (count, last) = reached.get(tx)?;
                (*count == subscribers).then(|| last.saturating_duration_since(*acked))
            })
            .collect();
        let bumps = fan_out.len();
        let fan_out = Percentiles::of(fan_out);
        println!(
            "fan-out to {subscribers} subscribers over the processes, after the ack: p50 {:.2?}, p99 {:.2?} ({bumps} bumps)",
            fan_out.p50, fan_out.p99,
        );
    }
    println!("acknowledged but missing: {missing}");
    if missing > 0 {
        bail!("{missing} acknowledged transactions are missing");
    }
    Ok(())
}
