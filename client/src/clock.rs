//! Clocks: the machine's monotonic time, and where the audio engine's frames fall on it.
//!
//! A jam agrees on *host time*; each machine turns that into its own [`Clock`] time with the
//! [`ensemble_protocol::jam::ClockSync`] its link keeps, and its own time into the engine frame
//! that plays then with a [`SampleClock`].

use bevy::prelude::Resource;

/// The machine's monotonic clock in nanoseconds (natively `CLOCK_MONOTONIC`, which every process
/// and network namespace on one machine share; in the browser the page's `performance.now()`),
/// optionally skewed so tests can give each simulated
/// machine a clock of its own.
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    skew: i64,
}

impl Clock {
    /// The machine's clock.
    pub fn system() -> Clock {
        Clock { skew: 0 }
    }

    /// A clock `skew` nanoseconds ahead of the machine's (behind, when negative).
    pub fn skewed(skew: i64) -> Clock {
        Clock { skew }
    }

    /// How far this clock is ahead of the machine's.
    pub fn skew(&self) -> i64 {
        self.skew
    }

    /// Now, in nanoseconds.
    pub fn now(&self) -> u64 {
        self.from_monotonic(monotonic_now())
    }

    /// This clock's reading at the machine's monotonic time `monotonic`.
    pub fn from_monotonic(&self, monotonic: u64) -> u64 {
        monotonic.saturating_add_signed(self.skew)
    }

    /// The machine's monotonic time when this clock reads `reading`.
    pub fn to_monotonic(&self, reading: u64) -> u64 {
        reading.saturating_add_signed(-self.skew)
    }
}

/// A machine's monotonic clock starts near zero at boot (a page's, at its load); an hour's
/// margin keeps skewed readings positive.
const MARGIN: u64 = 3_600_000_000_000;

/// `CLOCK_MONOTONIC` in nanoseconds, offset so that a skewed clock never reads below zero.
#[cfg(not(target_arch = "wasm32"))]
fn monotonic_now() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    MARGIN + now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// The page's monotonic clock in nanoseconds since the first reading, offset as natively.
#[cfg(target_arch = "wasm32")]
fn monotonic_now() -> u64 {
    static ORIGIN: std::sync::OnceLock<web_time::Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(web_time::Instant::now);
    MARGIN + u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX - MARGIN)
}

/// Where an audio engine's frames fall on a [`Clock`]: frame `frame` plays at clock time
/// `time + (frame - anchor) / rate`.
///
/// The offline backend is pulled by the clock, so its relation is exact: the puller anchors
/// it when it starts. A sound card's callback runs on its own crystal; [`SampleClock::observe`]
/// learns it from readings of the engine's frame counter, each of which shows that the block
/// starting at that frame had begun by then: the earliest such bound over recent readings is
/// the estimate (the card's output latency, constant for a machine, is not seen).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleClock {
    rate: u32,
    anchor_frame: u64,
    anchor_time: u64,
    /// For [`SampleClock::observe`]: the tightest bound in the current window and the last.
    window: Option<(u64, f64, f64)>,
}

/// How long one observation window lasts (the estimate follows drift from one to the next).
const OBSERVE_WINDOW_NS: u64 = 4_000_000_000;

impl SampleClock {
    /// Frame `frame` plays at clock time `time`.
    pub fn anchored(rate: u32, frame: u64, time: u64) -> SampleClock {
        SampleClock { rate, anchor_frame: frame, anchor_time: time, window: None }
    }

    /// The engine's sample rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The frame playing at clock time `time` (the nearest; frame 0 for times before it).
    pub fn frame_at(&self, time: u64) -> u64 {
        self.frame_at_signed(time).max(0) as u64
    }

    /// The frame playing at clock time `time`, negative before the engine started.
    pub fn frame_at_signed(&self, time: u64) -> i64 {
        let since = time as f64 - self.anchor_time as f64;
        (self.anchor_frame as f64 + since * f64::from(self.rate) / 1e9).round() as i64
    }

    /// The clock time at which `frame` plays.
    pub fn time_of(&self, frame: u64) -> u64 {
        let frames = frame as f64 - self.anchor_frame as f64;
        (self.anchor_time as f64 + frames * 1e9 / f64::from(self.rate)).round().max(0.0) as u64
    }

    /// Learns from a reading: at clock time `time` the engine's counter said `frame`.
    pub fn observe(&mut self, frame: u64, time: u64) {
        // The time frame 0 would have played, by this reading: an upper bound.
        let zero = time as f64 - frame as f64 * 1e9 / f64::from(self.rate);
        let (started, current, last) = match self.window {
            Some((started, current, last)) if time.saturating_sub(started) < OBSERVE_WINDOW_NS => {
                (started, current.min(zero), last)
            }
            Some((_, current, _)) => (time, zero, current),
            None => (time, zero, zero),
        };
        self.window = Some((started, current, last));
        let best = current.min(last);
        self.anchor_frame = 0;
        self.anchor_time = best.max(0.0).round() as u64;
    }
}
