//! A write's acknowledgement through another process: one project on Postgres served by
//! process A, written one transaction at a time by a client of A (the peer: a direct write)
//! and by a client of B, whose requests B forwards to A over NATS. Both wait for each answer
//! before the next write, so the difference is what forwarding adds.
//!
//! Target: forwarding adds ≤ 0.5 ms at p50 on loopback.

// A bench that cannot set up has nothing to measure: failing loudly is right.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ensemble_authority::admin;
use ensemble_authority::leases::LeaseOptions;
use ensemble_authority::server::ServerOptions;
use ensemble_authority::store::PostgresStore;
use ensemble_benches::load::Percentiles;
use ensemble_net::remote::Remote;
use ensemble_protocol::{ProjectId, ServerMsg, TrackId, Transaction};
use ensemble_testkit::loopback::Loopback;
use ensemble_testkit::records;
use ensemble_testkit::sandbox::{self, Nats};

const PASSWORD: &str = "bench bench bench";

/// Writes `iters` fader moves one after another, each waiting for its acknowledgement; the
/// time they took, and each one's latency added to `latencies`.
async fn writes(
    remote: &mut Remote,
    project: ProjectId,
    track: TrackId,
    iters: u64,
    latencies: &mut Vec<Duration>,
) -> Duration {
    let started = Instant::now();
    for i in 0..iters {
        let gain = -((i % 48) as f32) / 2.0;
        let tx = Transaction::new(project, vec![records::set_gain(track, gain, None)]);
        let sent = Instant::now();
        let answer = remote.write(&tx).await.expect("answered");
        latencies.push(sent.elapsed());
        assert!(matches!(answer, ServerMsg::Committed { .. }), "{answer:?}");
    }
    started.elapsed()
}

fn forwarded_write(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let nats = Nats::start().expect("a NATS server (cargo xtask setup installs nats-server)");
    let url = sandbox::postgres_url().expect("a Postgres to measure");
    let node = |name: &str| ServerOptions {
        leases: LeaseOptions { node: format!("{name}-{}", uuid::Uuid::now_v7().simple()), ..LeaseOptions::default() },
        nats: Some(nats.url.clone()),
        ..ServerOptions::default()
    };
    let (a, b, project, track) = runtime.block_on(async {
        let store = PostgresStore::connect(&url).await.expect("postgres store");
        let user = format!("bench-{}", uuid::Uuid::now_v7().simple());
        admin::add_user(&store, &user, PASSWORD).await.expect("user");
        let project = admin::create_project(&store, "Cluster bench", &user).await.expect("project");
        let a = Loopback::start(store.clone(), node("a")).await;
        let b = Loopback::start(store, node("b")).await;
        // A client of A is first: A serves the project.
        let mut direct = a.login(&user, PASSWORD).await;
        let track = TrackId::new_v7();
        let created = direct.write(&Transaction::new(project, records::add_track(project, track, "Fader"))).await;
        assert!(matches!(created, Ok(ServerMsg::Committed { .. })), "{created:?}");
        let forwarded = b.login(&user, PASSWORD).await;
        ((a, direct), (b, forwarded), project, track)
    });
    let ((_a, mut direct), (_b, mut forwarded)) = (a, b);
    let (mut direct_latencies, mut forwarded_latencies) = (Vec::new(), Vec::new());
    let mut group = c.benchmark_group("cluster_write_ack");
    group.sample_size(20).measurement_time(Duration::from_secs(4));
    group.bench_function("direct", |bencher| {
        bencher.iter_custom(|iters| runtime.block_on(writes(&mut direct, project, track, iters, &mut direct_latencies)))
    });
    group.bench_function("forwarded_over_nats", |bencher| {
        bencher.iter_custom(|iters| {
            runtime.block_on(writes(&mut forwarded, project, track, iters, &mut forwarded_latencies))
        })
    });
    group.finish();
    if direct_latencies.is_empty() || forwarded_latencies.is_empty() {
        return;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (direct, forwarded) = (Percentiles::of(direct_latencies), Percentiles::of(forwarded_latencies));
    println!(
        "write ack on Postgres: direct p50 {:.3} / p99 {:.3} ms; forwarded through another process over NATS \
         p50 {:.3} / p99 {:.3} ms: forwarding adds {:.3} ms at p50 (target ≤ 0.5 ms)",
        ms(direct.p50),
        ms(direct.p99),
        ms(forwarded.p50),
        ms(forwarded.p99),
        ms(forwarded.p50) - ms(direct.p50),
    );
}

criterion_group!(benches, forwarded_write);
criterion_main!(benches);
