//! A request's round trip through each transport to one authority: a `GetRecords` read (no
//! commit, so the figure is the transport and the session, not the disk) over in-memory pipes
//! (what solo mode and the tests use), WebTransport (what a browser opens) and native QUIC, the
//! peer the other two are compared with in the same run.

// A bench that cannot set up has nothing to measure: failing loudly is right.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ensemble_authority::admin;
use ensemble_authority::server::{ServerOptions, WEBTRANSPORT_PATH};
use ensemble_authority::store::SqliteStore;
use ensemble_benches::{Tally, print_ratio};
use ensemble_net::conn::{Connection, WebTransportConnection};
use ensemble_net::remote::Remote;
use ensemble_protocol::{ClientMsg, PROTOCOL_VERSION, ProjectId, ServerMsg};
use ensemble_testkit::loopback::Loopback;

const PASSWORD: &str = "bench bench bench";

/// `iters` reads of the project record, one after another; the time they took.
async fn reads<C: Connection>(remote: &mut Remote<C>, project: ProjectId, iters: u64) -> Duration {
    let started = Instant::now();
    for _ in 0..iters {
        let ask = ClientMsg::GetRecords { project, ids: vec![project.into()] };
        remote.send(&ask).await.expect("sent");
        let answer = remote.recv().await.expect("answered");
        assert!(matches!(answer, ServerMsg::Records { .. }), "{answer:?}");
    }
    started.elapsed()
}

fn round_trip(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (authority, project) = runtime.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("bench.sqlite").display());
        let store = SqliteStore::open(&url).await.expect("store");
        admin::add_user(&store, "bench", PASSWORD).await.expect("user");
        let project = admin::create_project(&store, "Bench", "bench").await.expect("project");
        (Loopback::start(store, ServerOptions::default()).await, project)
    });
    let (mut quic, mut pipe, mut web) = runtime.block_on(async {
        let quic = authority.login("bench", PASSWORD).await;
        let pipe = authority.in_process("bench", PASSWORD).await;
        let url = format!("https://localhost:{}{WEBTRANSPORT_PATH}", authority.addr.port());
        let session =
            WebTransportConnection::dial(&url, &authority.server.certificate_hashes()).await.expect("session");
        let mut web = Remote::over(session, PROTOCOL_VERSION).await.expect("hello");
        web.login("bench", PASSWORD).await.expect("login");
        (quic, pipe, web)
    });
    let (quic_tally, pipe_tally, web_tally) = (Tally::default(), Tally::default(), Tally::default());
    let mut group = c.benchmark_group("round_trip");
    group.sample_size(30).measurement_time(Duration::from_secs(4));
    group.bench_function("quic", |b| {
        b.iter_custom(|iters| {
            let took = runtime.block_on(reads(&mut quic, project, iters));
            quic_tally.add(took, iters);
            took
        });
    });
    group.bench_function("in_process", |b| {
        b.iter_custom(|iters| {
            let took = runtime.block_on(reads(&mut pipe, project, iters));
            pipe_tally.add(took, iters);
            took
        });
    });
    group.bench_function("webtransport", |b| {
        b.iter_custom(|iters| {
            let took = runtime.block_on(reads(&mut web, project, iters));
            web_tally.add(took, iters);
            took
        });
    });
    group.finish();
    print_ratio("round trip, in process vs QUIC", &pipe_tally, "QUIC", &quic_tally);
    print_ratio("round trip, WebTransport vs QUIC", &web_tally, "QUIC", &quic_tally);
    runtime.block_on(authority.server.shutdown());
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
