//! Authority throughput: N clients writing 1-op transactions to one project as fast as their
//! acknowledgements return, on SQLite and on Postgres; criterion reports committed tx/s.
//!
//! Targets (on Postgres, durable commits): ≥ 20,000 tx/s with 64 clients. `ensemble-load`
//! measures the latencies and runs pgbench, the peer, on the same server.

// A bench that cannot set up has nothing to measure: failing loudly is right.
#![allow(clippy::expect_used)]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ensemble_authority::store::{AnyStore, PostgresStore, SqliteStore};
use ensemble_benches::load::{Stage, Writers};
use ensemble_testkit::sandbox;

fn throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite_url = format!("sqlite://{}", dir.path().join("bench.sqlite").display());
    let postgres_url = sandbox::postgres_url().expect("a Postgres to measure");
    let stores: [(&str, AnyStore); 2] = runtime.block_on(async {
        [
            ("sqlite", AnyStore::Sqlite(SqliteStore::open(&sqlite_url).await.expect("sqlite store"))),
            ("postgres", AnyStore::Postgres(PostgresStore::connect(&postgres_url).await.expect("postgres store"))),
        ]
    });
    let mut group = c.benchmark_group("authority_commit");
    group.sample_size(10).measurement_time(Duration::from_secs(5)).throughput(Throughput::Elements(1));
    for (name, store) in stores {
        let stage = runtime.block_on(Stage::new(store, 1)).expect("stage");
        for clients in [1, 16, 64] {
            let mut writers = runtime.block_on(Writers::connect(&stage, clients)).expect("writers");
            group.bench_function(BenchmarkId::new(name, clients), |b| {
                b.iter_custom(|iters| runtime.block_on(writers.write_total(iters)).expect("writes commit"));
            });
        }
        runtime.block_on(stage.shutdown());
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
