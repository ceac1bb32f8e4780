//! `ensemble-load`: puts an authority under load and reports what it sustains.
//!
//! For each store (SQLite, and Postgres from `--postgres` or a throwaway one) and each client
//! count it runs N writers writing 1-op transactions as fast as their acks return, first all
//! to one project, then spread over many, with 16 subscribers timing the fan-out; then a steady
//! 1,000 tx/s run for the ack latency. On Postgres, pgbench runs the same SQL per transaction
//! (one commit each, since pgbench has no group commit) on the same server, and the ratio is
//! printed; and at the same steady rate, for its latency.
//!
//! With `--connect ADDR@HASHES` (once per process) it drives running `ensemble-authority serve`
//! processes instead of one of its own, readying its users and projects in their database
//! (`--database`), with its clients spread over the processes in turn: one process on another
//! machine, or several sharing one Postgres (and NATS).

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use ensemble_authority::store::{AnyStore, PostgresStore, SqliteStore};
use ensemble_benches::load::{Percentiles, Report, Stage, run};
use ensemble_net::tls::{Fingerprint, Trust};
use ensemble_testkit::sandbox;

#[derive(Parser)]
struct Args {
    /// Writer counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Projects for the spread-out runs.
    #[arg(long, default_value_t = 16)]
    projects: usize,
    /// Subscribers timing the fan-out.
    #[arg(long, default_value_t = 16)]
    subscribers: usize,
    /// Seconds per run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Postgres to use (default: a throwaway one).
    #[arg(long)]
    postgres: Option<String>,
    /// Skip SQLite.
    #[arg(long)]
    no_sqlite: bool,
    /// Skip Postgres (and pgbench).
    #[arg(long)]
    no_postgres: bool,
    /// A running authority to drive instead, as `ADDR@CURRENT,NEXT` (the address and the
    /// certificate hashes `serve` prints); repeat for several processes sharing a database.
    #[arg(long, value_parser = parse_server, requires = "database")]
    connect: Vec<(SocketAddr, Trust)>,
    /// With --connect: the running authorities' database, where the users and projects are
    /// readied.
    #[arg(long, requires = "connect")]
    database: Option<String>,
}

fn parse_server(text: &str) -> Result<(SocketAddr, Trust), String> {
    let (addr, hashes) = text.split_once('@').ok_or("expected ADDR@HASHES")?;
    let addr = addr.parse().map_err(|error| format!("{addr}: {error}"))?;
    let hashes = hashes
        .split(',')
        .map(|hash| Fingerprint::parse(hash).map_err(|error| format!("{hash}: {error}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((addr, Trust::Pinned(hashes)))
}

fn print(store: &str, layout: &str, clients: usize, report: &Report) {
    println!(
        "{store:8} {layout:14} {clients:>3} clients: {:>8.0} tx/s | ack {} | fan-out to all subscribers {} (after ack {})",
        report.rate(),
        report.ack,
        report.fan_out,
        report.fan_out_after_ack
    );
}

/// A stage of `projects` projects: on an authority of its own on `store`, or on the running
/// ones `--connect` names.
async fn stage(store: &AnyStore, projects: usize, args: &Args) -> anyhow::Result<Stage> {
    if args.connect.is_empty() {
        Stage::new(store.clone(), projects).await
    } else {
        Stage::running(store, projects, args.connect.clone()).await
    }
}

async fn measure(store: AnyStore, name: &str, args: &Args) -> anyhow::Result<Vec<(usize, usize, f64)>> {
    let duration = Duration::from_secs(args.seconds);
    let mut rates = Vec::new();
    for &clients in &args.clients {
        for projects in [1, args.projects] {
            let stage = stage(&store, projects, args).await?;
            let report = run(&stage, clients, args.subscribers, duration, None).await?;
            let layout = if projects == 1 { "one project" } else { "many projects" };
            print(name, layout, clients, &report);
            rates.push((clients, projects, report.rate()));
            stage.shutdown().await;
        }
    }
    let stage = stage(&store, 1, args).await?;
    let steady = run(&stage, 16, args.subscribers, duration, Some(1000.0)).await?;
    print(name, "steady 1000/s", 16, &steady);
    stage.shutdown().await;
    Ok(rates)
}

/// The SQL one committed 1-op transaction costs the Postgres store, for pgbench.
const PGBENCH_SETUP: &str = "
DROP TABLE IF EXISTS load_projects, load_transactions, load_records;
CREATE TABLE load_projects (idx INT PRIMARY KEY, seq BIGINT NOT NULL);
CREATE TABLE load_transactions (tx_id BYTEA PRIMARY KEY, project INT NOT NULL, seq BIGINT NOT NULL,
    author BYTEA NOT NULL, ops BYTEA NOT NULL, versions BYTEA NOT NULL, committed_at BIGINT NOT NULL,
    UNIQUE (project, seq));
CREATE TABLE load_records (project INT NOT NULL, id INT NOT NULL, version BIGINT NOT NULL, seq BIGINT NOT NULL,
    body BYTEA, PRIMARY KEY (project, id));
INSERT INTO load_projects SELECT g, 0 FROM generate_series(1, 1000) g;
";

const PGBENCH_SCRIPT: &str = r"\set p random(1, :projects)
BEGIN;
UPDATE load_projects SET seq = seq + 1 WHERE idx = :p RETURNING seq \gset
INSERT INTO load_transactions VALUES (decode(md5(random()::text || clock_timestamp()::text), 'hex'), :p, :seq, '\x0123456789abcdef0123456789abcdef'::bytea, '\x0100000000000000000000000000000000000000000000000101020304'::bytea, '\x01000000000000000000000000000000000002'::bytea, 0);
INSERT INTO load_records VALUES (:p, :client_id, 1, :seq, '\x010203040506070809000102030405060708090001020304050607080900'::bytea) ON CONFLICT (project, id) DO UPDATE SET version = load_records.version + 1, seq = excluded.seq, body = excluded.body;
COMMIT;
";

/// What one pgbench run measured: its rate, and its latencies when it logged them.
struct Pgbench {
    tps: f64,
    latency: Option<Percentiles>,
}

/// pgbench with `clients` over `projects` projects for `seconds`, as fast as it goes or, with
/// `rate`, at that many transactions a second (logging each one's latency, from when it was
/// due to start, as ours counts from when the write was sent).
fn pgbench(url: &str, clients: usize, projects: usize, seconds: u64, rate: Option<u32>) -> anyhow::Result<Pgbench> {
    let bin = sandbox::bin_dir()?;
    let status = Command::new(bin.join("psql")).args(["-q", "-d", url, "-c", PGBENCH_SETUP]).status()?;
    if !status.success() {
        bail!("psql setup for pgbench failed");
    }
    let mut script = tempfile::NamedTempFile::new()?;
    script.write_all(PGBENCH_SCRIPT.as_bytes())?;
    let logs = tempfile::tempdir()?;
    let mut command = Command::new(bin.join("pgbench"));
    command
        .args(["-n", "-M", "prepared", "-j", "2", "-c", &clients.to_string(), "-T", &seconds.to_string()])
        .args(["-D", &format!("projects={projects}"), "-f"])
        .arg(script.path());
    if let Some(rate) = rate {
        command.args(["-R", &rate.to_string(), "-l", "--log-prefix"]).arg(logs.path().join("log"));
    }
    let out = command.arg(url).output().context("running pgbench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let tps = text
        .lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok());
    let tps = tps.with_context(|| format!("pgbench printed no tps: {text}{}", String::from_utf8_lossy(&out.stderr)))?;
    // A line per transaction: client, number, latency in µs, script, epoch s, µs, lag in µs.
    let mut latencies = Vec::new();
    for file in std::fs::read_dir(logs.path())? {
        for line in std::fs::read_to_string(file?.path())?.lines() {
            if let Some(micros) = line.split_whitespace().nth(2).and_then(|field| field.parse().ok()) {
                latencies.push(Duration::from_micros(micros));
            }
        }
    }
    let latency = (!latencies.is_empty()).then(|| Percentiles::of(latencies));
    Ok(Pgbench { tps, latency })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("ensemble-load: {}s per run, {} subscribers on the first project", args.seconds, args.subscribers);
    if let Some(url) = &args.database {
        let store = ensemble_authority::store::open(url).await?;
        println!("driving {} running authority process(es) on {url}", args.connect.len());
        measure(store, "running", &args).await?;
        return Ok(());
    }
    if !args.no_sqlite {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("load.sqlite").display());
        measure(AnyStore::Sqlite(SqliteStore::open(&url).await?), "sqlite", &args).await?;
    }
    if !args.no_postgres {
        let url = match &args.postgres {
            Some(url) => url.clone(),
            None => sandbox::postgres_url()?,
        };
        let rates = measure(AnyStore::Postgres(PostgresStore::connect(&url).await?), "postgres", &args).await?;
        for (clients, projects, ours) in rates {
            let peer = pgbench(&url, clients, projects, args.seconds, None)?.tps;
            println!(
                "pgbench  {:14} {clients:>3} clients: {peer:>8.0} tx/s | ensemble/pgbench = {:.2}",
                if projects == 1 { "one project" } else { "many projects" },
                ours / peer
            );
        }
        let steady = pgbench(&url, 16, 1, args.seconds, Some(1000))?;
        let latency = steady.latency.context("pgbench logged no transactions")?;
        println!("pgbench  steady 1000/s   16 clients: {:>8.0} tx/s | latency {latency}", steady.tps);
    }
    Ok(())
}
