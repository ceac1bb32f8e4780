//! Client core speed: a bump reaching the ECS, a big project loading from the local store, and
//! undo and redo, each through the real plugins in a headless app.
//!
//! Targets: a bump of 1,000 changed records applied to the entities ≤ 1 ms; a 10,000-clip
//! project from the local store into entities ≤ 200 ms; undo and redo ≤ 1 ms each. Peers, in
//! the same run: the same bump written into a plain `HashMap`; the store's rows read with no
//! decoding and no entities; for undo, a frame with nothing to do (Bevy's multi-threaded
//! executor waking its pool costs most of a frame on two cores) and the undo's transaction
//! applied to a bare `ProjectState`.

// A bench that cannot set up has nothing to measure: failing loudly is right.
#![allow(clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ensemble_benches::{PROJECT, Tally, clip_id, print_ratio, project, track_id};
use ensemble_client::ClientCorePlugin;
use ensemble_client::history::EditMsg;
use ensemble_client::model::RecordIndex;
use ensemble_client::replica::Replica;
use ensemble_client::store::{LocalStore, SqliteReplicaStore};
use ensemble_client::sync::FromAuthority;
use ensemble_protocol::wire::{Bump, CatchUp};
use ensemble_protocol::{
    ClipField, Field, Op, ProjectState, Record, RecordChange, RecordId, Seq, ServerMsg, Ticks, TrackField, TxId,
    UserId, Version,
};

/// A headless app with the client core showing `replica`, its entities spawned.
fn app_with(replica: Replica) -> App {
    let mut app = App::new();
    app.add_plugins(ClientCorePlugin);
    app.insert_resource(replica);
    app.update();
    app
}

/// A bump moving the first clip of every track of a 64 × 16 project: 1,000 records.
fn bump(state: &ProjectState, seq: u64, start: i64) -> Bump {
    let changes = (0..1000)
        .map(|i| {
            let id: RecordId = clip_id(i / 16, i % 16).into();
            let entry = state.entry(id).expect("the bench project has this clip");
            let mut record = entry.record.clone();
            if let Record::Clip(clip) = &mut record {
                clip.start = Ticks(start + i as i64);
            }
            RecordChange { id, version: Version(entry.version.0 + seq), record: Some(record) }
        })
        .collect();
    Bump { project: PROJECT, seq: Seq(seq), tx_id: TxId::new_v7(), author: UserId::from_u128(9), changes }
}

fn bump_to_ecs(c: &mut Criterion) {
    let state = project(64, 16);
    let (ours, peer) = (Tally::default(), Tally::default());
    let mut group = c.benchmark_group("bump_1000_records");
    group.bench_function(BenchmarkId::new("to_entities", 1000), |b| {
        let mut app = app_with(Replica::new(state.clone(), Seq(1)));
        let mut seq = 1;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                seq += 1;
                let message = ServerMsg::Bump(bump(&state, seq, seq as i64 * 7));
                let start = Instant::now();
                app.world_mut().write_message(FromAuthority(message));
                app.update();
                total += start.elapsed();
            }
            ours.add(total, iters);
            total
        });
        assert_eq!(app.world().resource::<RecordIndex>().len(), state.len());
    });
    group.bench_function(BenchmarkId::new("hashmap_peer", 1000), |b| {
        let mut map: HashMap<RecordId, (Version, Record)> =
            state.records().map(|(id, entry)| (id, (entry.version, entry.record.clone()))).collect();
        let mut seq = 1;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                seq += 1;
                let bump = bump(&state, seq, seq as i64 * 7);
                let start = Instant::now();
                for change in &bump.changes {
                    if let Some(record) = &change.record {
                        map.insert(change.id, (change.version, record.clone()));
                    }
                }
                total += start.elapsed();
            }
            peer.add(total, iters);
            black_box(&map);
            total
        });
    });
    group.finish();
    print_ratio("bump of 1,000 records into the ECS", &ours, "HashMap insert", &peer);
}

fn load_from_store(c: &mut Criterion) {
    let state = project(100, 100);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    runtime.block_on(async {
        let store = SqliteReplicaStore::open(dir.path(), PROJECT).await.expect("a store");
        store.save_catch_up(Seq(1), &CatchUp::Snapshot(state.snapshot())).await.expect("saved");
    });
    let (ours, peer) = (Tally::default(), Tally::default());
    let mut group = c.benchmark_group("load_10000_clips");
    group.sample_size(10);
    group.bench_function("store_to_entities", |b| {
        b.iter_custom(|iters| {
            ours.measure(iters, || {
                let saved = runtime.block_on(async {
                    let store = SqliteReplicaStore::open(dir.path(), PROJECT).await.expect("a store");
                    store.load().await.expect("loads").expect("saved before")
                });
                let confirmed = ProjectState::from_changes(saved.project, saved.records).expect("a project");
                let (replica, _) = Replica::restore(confirmed, saved.seq, saved.pending);
                let app = app_with(replica);
                assert_eq!(app.world().resource::<RecordIndex>().len(), state.len());
                app
            })
        });
    });
    group.bench_function("raw_rows_peer", |b| {
        let path = dir.path().join(format!("{}.sqlite", PROJECT.0.simple()));
        b.iter_custom(|iters| {
            peer.measure(iters, || {
                runtime.block_on(async {
                    let url = format!("sqlite://{}", path.display());
                    let pool = sqlx::SqlitePool::connect(&url).await.expect("opens");
                    let rows = sqlx::query("SELECT id, version, record FROM records").fetch_all(&pool).await;
                    rows.expect("reads").len()
                })
            })
        });
    });
    group.finish();
    print_ratio("10,000-clip project from the local store into entities", &ours, "raw SQLite rows", &peer);
}

fn undo_redo(c: &mut Criterion) {
    let state = project(100, 100);
    let (undo, redo, peer, frame) = (Tally::default(), Tally::default(), Tally::default(), Tally::default());
    // A fader move and a clip nudge, undone and redone together.
    let edit = vec![
        Op::Set { target: track_id(7).into(), value: Field::Track(TrackField::Gain(-6.0)), expect: None },
        Op::Set { target: clip_id(7, 3).into(), value: Field::Clip(ClipField::Start(Ticks(960))), expect: None },
    ];
    let mut group = c.benchmark_group("history_10000_clips");
    group.bench_function("undo_then_redo", |b| {
        let mut app = app_with(Replica::new(state.clone(), Seq(1)));
        app.world_mut().write_message(EditMsg::Edit(edit.clone()));
        app.update();
        let settled = app.world().resource::<Replica>().clone();
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                if i % 500 == 499 {
                    // Keep the pending queue short, as the authority's bumps would.
                    app.insert_resource(settled.clone());
                    app.update();
                }
                for (message, tally) in [(EditMsg::Undo, &undo), (EditMsg::Redo, &redo)] {
                    let start = Instant::now();
                    app.world_mut().write_message(message);
                    app.update();
                    let elapsed = start.elapsed();
                    tally.add(elapsed, 1);
                    total += elapsed;
                }
            }
            total
        });
    });
    group.bench_function("empty_frame_peer", |b| {
        let mut app = app_with(Replica::new(state.clone(), Seq(1)));
        b.iter_custom(|iters| frame.measure(iters, || app.update()));
    });
    group.bench_function("bare_apply_peer", |b| {
        let mut bare = state.clone();
        let tx = ensemble_protocol::Transaction::new(PROJECT, edit.clone());
        b.iter_custom(|iters| peer.measure(iters, || bare.apply(black_box(&tx)).is_ok()));
    });
    group.finish();
    print_ratio("undo (one frame, 10,000-clip project)", &undo, "an empty frame", &frame);
    print_ratio("redo (one frame, 10,000-clip project)", &redo, "an empty frame", &frame);
    print_ratio("undo (one frame, 10,000-clip project)", &undo, "bare ProjectState::apply", &peer);
}

criterion_group!(benches, bump_to_ecs, load_from_store, undo_redo);
criterion_main!(benches);
