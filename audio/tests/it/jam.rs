//! A jam start through the engine: three machines whose clocks are half a second apart and
//! drifting learn the host's clock over a jittery network, schedule the host's "play at T" on
//! their own audio clocks, and the first sample sounds on all three within a millisecond,
//! measured in the frames their offline engines render.

use ensemble_audio::engine::{Engine, EngineError, OfflineBackend};
use ensemble_protocol::jam::{ClockSample, ClockSync};

use crate::signal::Noise;
use crate::song::{RATE, Song, impulse};

/// A machine's clock: `start + true_ns × (1 + drift)`; its sound card runs on it, from
/// `audio_start` (its clock's reading when the engine's frame 0 played).
struct Machine {
    start: f64,
    drift: f64,
    audio_start: f64,
}

impl Machine {
    fn clock(&self, true_ns: f64) -> f64 {
        self.start + true_ns * (1.0 + self.drift)
    }

    fn true_time(&self, reading: f64) -> f64 {
        (reading - self.start) / (1.0 + self.drift)
    }

    /// The engine frame playing at this machine's clock reading `reading`.
    fn frame_at(&self, reading: f64) -> u64 {
        ((reading - self.audio_start) * f64::from(RATE) / 1e9).round() as u64
    }

    /// This machine's clock reading when engine frame `frame` plays.
    fn reading_at(&self, frame: u64) -> f64 {
        self.audio_start + frame as f64 * 1e9 / f64::from(RATE)
    }
}

#[test]
fn a_host_start_sounds_on_three_machines_within_a_millisecond() {
    let mut song = Song::new(120.0);
    let (track, asset) = (song.track(), song.asset(impulse()));
    song.clip(track, asset, 0, 960);
    // The host's clock is true time; the peers' are ±500 ms off and drift by tens of ppm.
    let peers = [
        Machine { start: 500e6, drift: 40e-6, audio_start: 0.0 },
        Machine { start: -500e6, drift: -35e-6, audio_start: 0.0 },
        Machine { start: 123e6, drift: 15e-6, audio_start: 0.0 },
    ];
    let peers: Vec<Machine> = peers
        .into_iter()
        .map(|peer| Machine { audio_start: peer.clock(0.5e9), ..peer }) // each engine starts 0.5 s in
        .collect();
    let mut noise = Noise(42);
    let mut delay = || 300_000.0 + (-noise.unit().max(1e-12).ln() * 150_000.0).min(5e6);
    // Ten seconds of clock exchanges, eight a second.
    let mut syncs: Vec<ClockSync> = peers.iter().map(|_| ClockSync::new()).collect();
    for step in 0..80 {
        let t = 1e9 + f64::from(step) * 125e6;
        for (peer, sync) in peers.iter().zip(&mut syncs) {
            let arrive = t + delay();
            let back = arrive + 20_000.0 + delay();
            sync.add(ClockSample {
                t0: peer.clock(t) as u64,
                t1: arrive as u64,
                t2: (arrive + 20_000.0) as u64,
                t3: peer.clock(back) as u64,
            });
        }
    }
    // At true time 11 s the host says: play from the top at host time 11.25 s.
    let (now, start) = (11e9, 11.25e9 as u64);
    let mut heard = Vec::new();
    for (peer, sync) in peers.iter().zip(&syncs) {
        let mut engine = Engine::<OfflineBackend>::new(RATE, song.arrangement()).unwrap();
        // The engine has played up to now on this machine's clock.
        let mut rendered = 0usize;
        let mut block = vec![[0.0f32; 2]; 480];
        while (rendered as u64) < peer.frame_at(peer.clock(now)) {
            engine.backend_mut().render(&mut block);
            rendered += block.len();
        }
        let at = peer.frame_at(sync.peer_time(start).unwrap() as f64);
        assert!(matches!(engine.play_at(engine.now() + 10, 0), Err(EngineError::TooSoon { .. })));
        engine.play_at(at, 0).unwrap();
        let mut out = vec![[0.0f32; 2]; (at as usize - rendered) + 2_000];
        for chunk in out.chunks_mut(480) {
            engine.backend_mut().render(chunk);
        }
        let first = out.iter().position(|frame| frame[0] != 0.0).expect("the impulse sounds") + rendered;
        assert_eq!(first as u64, at, "the first sample is the scheduled one");
        heard.push(peer.true_time(peer.reading_at(first as u64)));
    }
    for (machine, heard) in heard.iter().enumerate() {
        let late = heard - start as f64;
        assert!(late.abs() < 500_000.0, "machine {machine} started {:.1} µs from the host's time", late / 1e3);
    }
    let spread = heard.iter().fold(f64::MIN, |a, b| a.max(*b)) - heard.iter().fold(f64::MAX, |a, b| a.min(*b));
    assert!(spread < 1e6, "the machines started {:.1} µs apart", spread / 1e3);
}
