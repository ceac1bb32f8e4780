//! Protocol speed: applying transactions, and the wire format against serde_json.
//!
//! Targets: apply one op ≤ 200 ns; encode + decode a 10-op write ≤ 2 µs.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ensemble_benches::{Tally, edit, print_ratio, project};
use ensemble_protocol::{ClientMsg, FrameCodec};
use std::hint::black_box;

fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    for ops in [1, 100] {
        // 64 tracks with 16 clips each: about a thousand records, a full song.
        let mut state = project(64, 16);
        let tx = edit(ops, 64);
        group.throughput(Throughput::Elements(ops as u64));
        group.bench_with_input(BenchmarkId::new("ops", ops), &tx, |b, tx| {
            b.iter(|| black_box(state.apply(black_box(tx))).is_ok());
        });
    }
    group.finish();
}

fn wire(c: &mut Criterion) {
    let message = ClientMsg::Write(edit(10, 10));
    let codec = FrameCodec::default();
    let (ours, peer) = (Tally::default(), Tally::default());
    let mut group = c.benchmark_group("write_10_ops");
    group.bench_function("bincode_frame", |b| {
        let mut buffer = Vec::with_capacity(1024);
        b.iter_custom(|iters| {
            ours.measure(iters, || {
                buffer.clear();
                codec.encode(black_box(&message), &mut buffer).is_ok() && codec.decode::<ClientMsg>(&buffer).is_ok()
            })
        });
    });
    group.bench_function("serde_json_peer", |b| {
        let mut buffer = Vec::with_capacity(4096);
        b.iter_custom(|iters| {
            peer.measure(iters, || {
                buffer.clear();
                serde_json::to_writer(&mut buffer, black_box(&message)).is_ok()
                    && serde_json::from_slice::<ClientMsg>(&buffer).is_ok()
            })
        });
    });
    group.finish();
    print_ratio("write_10_ops encode+decode", &ours, "serde_json", &peer);
    let bincode_len = codec.encode_to_vec(&message).map_or(0, |v| v.len());
    let json_len = serde_json::to_vec(&message).map_or(0, |v| v.len());
    println!("write_10_ops size: bincode frame {bincode_len} B, serde_json {json_len} B");
}

criterion_group!(benches, apply, wire);
criterion_main!(benches);
