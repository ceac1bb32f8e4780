//! Fixtures shared by Ensemble's benches: realistic projects and the edits a musician makes,
//! and [`load`], which puts a real authority under many clients.
//!
//! The benches themselves live in `benches/`; each measures a peer in the same run (serde_json
//! for the wire format, and so on) so the figures come with something to compare them to.

pub mod lab_network;
pub mod load;

// Which checkout this crate was built from: a different one makes cargo rebuild it, so clones
// sharing the target directory never build each other's code (see `.cargo/config.toml`).
const _: Option<&str> = option_env!("ENSEMBLE_CHECKOUT");

use ensemble_protocol::{
    AssetId, AudioAsset, Bpm, Clip, ClipField, ClipId, Codec, ContentHash, Field, Frames, Member, MemberId, Op,
    Project, ProjectId, ProjectState, Record, RecordId, Role, Ticks, TrackField, TrackId, Transaction, UserId,
};
use ensemble_testkit::records;

/// The bench project's id.
pub const PROJECT: ProjectId = ProjectId::from_u128(1);

/// A project with `tracks` tracks, each with `clips_per_track` clips of one shared asset.
pub fn project(tracks: usize, clips_per_track: usize) -> ProjectState {
    let project = Project { tempo: Bpm(128.0), ..records::project("Bench") };
    let Ok(mut state) = ProjectState::new(PROJECT, project) else { unreachable!("the bench project is valid") };
    let asset = AssetId::from_u128(2);
    let ops = vec![
        Op::Create {
            id: MemberId::from_u128(3).into(),
            record: Record::Member(Member { user: UserId::from_u128(4), role: Role::Owner }),
        },
        Op::Create {
            id: asset.into(),
            record: Record::AudioAsset(AudioAsset {
                hash: ContentHash([1; 32]),
                name: "loop.flac".into(),
                frames: Frames(48_000 * 8),
                codec: Codec::Flac,
                byte_size: 1 << 20,
                peaks_ready: true,
                ..records::asset()
            }),
        },
    ];
    apply(&mut state, ops);
    for t in 0..tracks {
        let id = track_id(t);
        let mut ops = records::add_track(PROJECT, id, &format!("Track {t}"));
        for c in 0..clips_per_track {
            let clip =
                Clip { start: Ticks(c as i64 * 3840), name: format!("Clip {t}.{c}"), ..records::clip(id, asset) };
            ops.push(records::create(clip_id(t, c), Record::Clip(clip)));
        }
        // One transaction per track keeps each under the op limit, however big the project.
        apply(&mut state, ops);
    }
    state
}

fn apply(state: &mut ProjectState, ops: Vec<Op>) {
    if let Err(error) = state.apply(&Transaction::new(PROJECT, ops)) {
        unreachable!("the bench project builds: {error}");
    }
}

/// The id of track `t`.
pub fn track_id(t: usize) -> TrackId {
    TrackId::from_u128(0x1_0000 + t as u128)
}

/// The id of clip `c` on track `t`.
pub fn clip_id(t: usize, c: usize) -> ClipId {
    ClipId::from_u128(0x100_0000 + (t as u128) * 0x1000 + c as u128)
}

/// `ops` edits like the ones a mixing session makes: fader moves, pans, clip moves, spread over
/// the project's first `tracks` tracks (which must each have at least one clip).
pub fn edit(ops: usize, tracks: usize) -> Transaction {
    let ops = (0..ops)
        .map(|i| {
            let t = i % tracks;
            let (target, value): (RecordId, Field) = match i % 3 {
                0 => (track_id(t).into(), Field::Track(TrackField::Gain(-(i as f32) / 10.0))),
                1 => (track_id(t).into(), Field::Track(TrackField::Pan(((i % 21) as f32 - 10.0) / 10.0))),
                _ => (clip_id(t, 0).into(), Field::Clip(ClipField::Start(Ticks(i as i64 * 960)))),
            };
            Op::Set { target, value, expect: None }
        })
        .collect();
    Transaction::new(PROJECT, ops)
}

/// Adds up what criterion measured through [`Tally::measure`], so a bench can print our time
/// next to its peer's from the same run.
#[derive(Default)]
pub struct Tally(std::cell::Cell<(std::time::Duration, u64)>);

impl Tally {
    /// Runs `routine` `iters` times and returns the time taken; use inside
    /// `Bencher::iter_custom`.
    pub fn measure<O>(&self, iters: u64, mut routine: impl FnMut() -> O) -> std::time::Duration {
        let start = std::time::Instant::now();
        for _ in 0..iters {
            std::hint::black_box(routine());
        }
        let elapsed = start.elapsed();
        self.add(elapsed, iters);
        elapsed
    }

    /// Counts `iters` iterations that took `elapsed` in all, for benches that time only part of
    /// each iteration.
    pub fn add(&self, elapsed: std::time::Duration, iters: u64) {
        let (total, count) = self.0.get();
        self.0.set((total + elapsed, count + iters));
    }

    /// The mean time of one iteration over everything measured.
    pub fn per_iter(&self) -> std::time::Duration {
        let (total, count) = self.0.get();
        total.checked_div(u32::try_from(count.max(1)).unwrap_or(u32::MAX)).unwrap_or_default()
    }
}

/// Prints our mean time, the peer's and their ratio (nothing when a side was filtered out).
pub fn print_ratio(what: &str, ours: &Tally, peer_name: &str, peer: &Tally) {
    if ours.0.get().1 == 0 || peer.0.get().1 == 0 {
        return;
    }
    let (ours, peer) = (ours.per_iter(), peer.per_iter());
    let ratio = ours.as_secs_f64() / peer.as_secs_f64().max(f64::MIN_POSITIVE);
    println!("{what}: ours {ours:.2?}, {peer_name} {peer:.2?}, ratio ours/peer = {ratio:.3}");
}
