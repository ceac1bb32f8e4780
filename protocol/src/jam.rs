//! LAN jam sessions: the shared clock.
//!
//! In a jam every machine plays from its own sound card, so they must agree on *when*. A peer
//! learns how the host's clock relates to its own by the NTP-style exchange: it stamps a
//! request as it leaves (`t0`, peer clock), the host stamps it as it arrives (`t1`) and as the
//! reply leaves (`t2`, host clock), and the peer stamps the reply as it arrives (`t3`). Then
//!
//! - the round trip spent on the network is `(t3 − t0) − (t2 − t1)`, and
//! - the host's clock is ahead of the peer's by `((t1 − t0) + (t2 − t3)) / 2`, exactly when the
//!   two directions took equally long, and off by half their difference otherwise.
//!
//! Jitter makes single exchanges unreliable, so [`ClockSync`] keeps the latest
//! [`ClockSync::WINDOW`] exchanges, trusts the quarter with the shortest round trips (those
//! least delayed by queues, so least asymmetric), and takes the median of their offsets. Two
//! crystals drift apart by tens of parts per million, so it also fits a line through those
//! offsets against the peer's clock (least squares) and extrapolates, so a sync a few seconds
//! old still places a start on the right sample.
//!
//! Times are nanoseconds on each machine's monotonic clock (`u64`); this module only does the
//! arithmetic, with time passed in, so it tests without a network or a clock.

/// One completed exchange: the four timestamps, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockSample {
    /// The request left the peer (peer clock).
    pub t0: u64,
    /// The request reached the host (host clock).
    pub t1: u64,
    /// The reply left the host (host clock).
    pub t2: u64,
    /// The reply reached the peer (peer clock).
    pub t3: u64,
}

impl ClockSample {
    /// Host clock minus peer clock, as this exchange sees it.
    pub fn offset(&self) -> i128 {
        let (t0, t1, t2, t3) = (self.t0 as i128, self.t1 as i128, self.t2 as i128, self.t3 as i128);
        ((t1 - t0) + (t2 - t3)) / 2
    }

    /// Time spent on the network, both ways.
    pub fn round_trip(&self) -> i128 {
        let (t0, t1, t2, t3) = (self.t0 as i128, self.t1 as i128, self.t2 as i128, self.t3 as i128);
        (t3 - t0) - (t2 - t1)
    }

    /// Whether the stamps are in an order the exchange could have produced.
    pub fn is_plausible(&self) -> bool {
        self.t3 >= self.t0 && self.t2 >= self.t1 && self.round_trip() >= 0
    }
}

/// The relation between the host's clock and this peer's, learnt from exchanges.
#[derive(Clone, Debug, Default)]
pub struct ClockSync {
    /// The latest exchanges, oldest first (at most [`ClockSync::WINDOW`]).
    samples: Vec<ClockSample>,
    /// The fitted line: offset (ns) at peer time `at`, and its slope (drift, ns per ns).
    estimate: Option<Estimate>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Estimate {
    at: u64,
    offset: f64,
    drift: f64,
}

impl ClockSync {
    /// How many recent exchanges are kept.
    pub const WINDOW: usize = 64;
    /// Fewest exchanges before a drift is fitted (fewer only give an offset).
    const FIT_AFTER: usize = 16;

    /// A sync that has seen nothing.
    pub fn new() -> ClockSync {
        ClockSync::default()
    }

    /// Forgets everything (the host restarted, or this peer rejoined after a long gap).
    pub fn reset(&mut self) {
        self.samples.clear();
        self.estimate = None;
    }

    /// How many exchanges the estimate rests on.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no exchange has completed yet.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Takes a completed exchange; an implausible one (stamps out of order) is ignored and
    /// `false` returned.
    pub fn add(&mut self, sample: ClockSample) -> bool {
        if !sample.is_plausible() {
            return false;
        }
        if self.samples.len() == Self::WINDOW {
            self.samples.remove(0);
        }
        self.samples.push(sample);
        self.estimate = self.fit();
        true
    }

    /// The trusted quarter of the window: the exchanges with the shortest round trips.
    fn trusted(&self) -> Vec<ClockSample> {
        let mut by_trip = self.samples.clone();
        by_trip.sort_by_key(ClockSample::round_trip);
        by_trip.truncate((self.samples.len() / 4).max(1));
        by_trip
    }

    fn fit(&self) -> Option<Estimate> {
        let trusted = self.trusted();
        // Where each exchange happened on the peer's clock: the middle of its round trip.
        let points: Vec<(f64, f64)> =
            trusted.iter().map(|s| ((s.t0 / 2 + s.t3 / 2) as f64, s.offset() as f64)).collect();
        let latest = self.samples.last()?;
        let at = latest.t0 / 2 + latest.t3 / 2;
        let mut offsets: Vec<f64> = points.iter().map(|(_, offset)| *offset).collect();
        offsets.sort_by(f64::total_cmp);
        let median = offsets[offsets.len() / 2];
        if self.samples.len() < Self::FIT_AFTER || points.len() < 2 {
            return Some(Estimate { at, offset: median, drift: 0.0 });
        }
        // Least squares through the trusted points, centred for precision.
        let n = points.len() as f64;
        let mean_x = points.iter().map(|(x, _)| x).sum::<f64>() / n;
        let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / n;
        let (mut sxx, mut sxy) = (0.0, 0.0);
        for (x, y) in &points {
            sxx += (x - mean_x) * (x - mean_x);
            sxy += (x - mean_x) * (y - mean_y);
        }
        if sxx <= 0.0 {
            return Some(Estimate { at, offset: median, drift: 0.0 });
        }
        // Crystals drift by parts per million: a steeper line is jitter, not drift.
        let drift = (sxy / sxx).clamp(-1e-3, 1e-3);
        Some(Estimate { at, offset: mean_y + drift * (at as f64 - mean_x), drift })
    }

    /// Host clock minus peer clock at peer time `peer_now`, in nanoseconds, once any exchange
    /// has completed.
    pub fn offset_at(&self, peer_now: u64) -> Option<f64> {
        self.estimate.map(|e| e.offset + e.drift * (peer_now as f64 - e.at as f64))
    }

    /// The host's clock reading at peer time `peer_now`.
    pub fn host_time(&self, peer_now: u64) -> Option<u64> {
        self.offset_at(peer_now).map(|offset| (peer_now as f64 + offset).max(0.0).round() as u64)
    }

    /// The peer time at which the host's clock reads `host`: when to act on a host's "at T".
    pub fn peer_time(&self, host: u64) -> Option<u64> {
        let e = self.estimate?;
        // Solve peer + offset(peer) = host for peer, with offset linear in peer.
        let peer = (host as f64 - e.offset + e.drift * e.at as f64) / (1.0 + e.drift);
        Some(peer.max(0.0).round() as u64)
    }

    /// The drift fitted so far: how many nanoseconds the host gains per nanosecond of ours.
    pub fn drift(&self) -> f64 {
        self.estimate.map_or(0.0, |e| e.drift)
    }
}
