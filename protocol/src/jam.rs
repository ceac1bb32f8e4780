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
//!
//! A jam is closed to strangers by its [`JoinCode`]: the host shows it, musicians in the room
//! type it, and it keys both the jam's renet traffic and the embedded authority's door.
//!
//! The rest is what jam peers say to each other: the [`Beacon`] a host broadcasts so peers can
//! find it (a datagram that does not parse is dropped), and the [`JamMsg`]s of a session: the
//! clock exchange, the host's [`TransportCommand`]s at host times, and presence.

use serde::{Deserialize, Serialize};

use crate::frame::{FrameError, decode_exact, encode_value};
use crate::ids::{ProjectId, UserId};
use crate::time::Ticks;
use crate::wire::{PROTOCOL_VERSION, Presence};

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
    /// The shortest time the trusted exchanges must span before a drift is fitted.
    const FIT_SPAN_NS: f64 = 4e9;
    /// The most drift believed: crystals are specified to ±100 parts per million.
    const MAX_DRIFT: f64 = 200e-6;

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
        let span = points.iter().map(|(x, _)| *x).fold(f64::MIN, f64::max)
            - points.iter().map(|(x, _)| *x).fold(f64::MAX, f64::min);
        // Over a short span, jitter makes any slope; drift only shows over seconds.
        if self.samples.len() < Self::FIT_AFTER || points.len() < 2 || span < Self::FIT_SPAN_NS {
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
        let drift = (sxy / sxx).clamp(-Self::MAX_DRIFT, Self::MAX_DRIFT);
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

/// The code that lets a musician into a jam: eight symbols from an alphabet without look-alikes
/// (no 0/O, 1/I), 40 bits, shown as `ABCD-EFGH`. Typing is forgiving: case, spaces and dashes
/// do not matter.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct JoinCode(String);

/// Why typed text is not a join code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinCodeError {
    /// Too few or too many symbols.
    #[error("a join code has 8 symbols, not {0}")]
    Length(usize),
    /// A symbol outside the alphabet.
    #[error("{0:?} is not in a join code")]
    Symbol(char),
}

impl JoinCode {
    /// The symbols a code is made of.
    pub const ALPHABET: &'static [u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    /// Symbols per code.
    pub const LEN: usize = 8;

    /// The code for 40 random bits (the caller brings the randomness: this crate does no IO).
    pub fn from_random(bytes: [u8; 5]) -> JoinCode {
        let bits = bytes.iter().fold(0u64, |bits, byte| bits << 8 | u64::from(*byte));
        let code = (0..Self::LEN).rev().map(|i| char::from(Self::ALPHABET[(bits >> (5 * i) & 31) as usize])).collect();
        JoinCode(code)
    }

    /// Reads a typed code.
    pub fn parse(typed: &str) -> Result<JoinCode, JoinCodeError> {
        let mut code = String::with_capacity(Self::LEN);
        for symbol in typed.chars().filter(|c| !c.is_whitespace() && *c != '-') {
            let symbol = symbol.to_ascii_uppercase();
            if !symbol.is_ascii() || !Self::ALPHABET.contains(&(symbol as u8)) {
                return Err(JoinCodeError::Symbol(symbol));
            }
            code.push(symbol);
        }
        if code.len() == Self::LEN { Ok(JoinCode(code)) } else { Err(JoinCodeError::Length(code.len())) }
    }

    /// The eight symbols, without the dash.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for JoinCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", &self.0[..4], &self.0[4..])
    }
}

impl std::fmt::Debug for JoinCode {
    /// Codes stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinCode(…)")
    }
}

/// The first bytes of every beacon, so stray datagrams on the port are told apart at once.
pub const BEACON_MAGIC: [u8; 4] = *b"ENSJ";
/// The largest beacon: one UDP datagram that no LAN fragments.
pub const MAX_BEACON: usize = 512;
/// The largest message between jam peers.
pub const MAX_JAM_MESSAGE: usize = 16 * 1024;

/// What a jam host broadcasts on the LAN, about once a second, so peers can list it and join.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beacon {
    /// The host's [`PROTOCOL_VERSION`]: peers list only jams they can join.
    pub protocol_version: u32,
    /// Who hosts, as they are shown.
    pub host: String,
    /// The project the jam works on.
    pub project: ProjectId,
    /// Its name.
    pub project_name: String,
    /// The embedded authority's QUIC port (edits, audio files).
    pub quic_port: u16,
    /// The renet port (clock, transport, presence).
    pub renet_port: u16,
    /// The SHA-256 of the authority's certificate, which peers pin.
    pub fingerprint: [u8; 32],
}

/// Why a datagram is not a beacon a peer can use. Receivers drop such datagrams.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BeaconError {
    /// It does not start with [`BEACON_MAGIC`].
    #[error("not an Ensemble beacon")]
    NotABeacon,
    /// It is longer than [`MAX_BEACON`].
    #[error("a beacon of {0} bytes is larger than {MAX_BEACON}")]
    TooLarge(usize),
    /// Its body does not decode.
    #[error("malformed beacon: {0}")]
    Malformed(String),
    /// It comes from a host speaking another protocol version.
    #[error("the host speaks protocol {theirs}, this client {ours}")]
    Version {
        /// Ours.
        ours: u32,
        /// The host's.
        theirs: u32,
    },
    /// A field is empty or out of range.
    #[error("invalid beacon: {0}")]
    Invalid(&'static str),
}

/// The longest host or project name a beacon carries, in characters.
const MAX_BEACON_NAME: usize = 64;

impl Beacon {
    /// The datagram to broadcast.
    pub fn encode(&self) -> Result<Vec<u8>, BeaconError> {
        self.check()?;
        let body = encode_value(self).map_err(|error| BeaconError::Malformed(error.to_string()))?;
        let bytes = [BEACON_MAGIC.as_slice(), &body].concat();
        if bytes.len() > MAX_BEACON { Err(BeaconError::TooLarge(bytes.len())) } else { Ok(bytes) }
    }

    /// Reads a datagram; anything that is not a usable beacon is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Beacon, BeaconError> {
        if bytes.len() > MAX_BEACON {
            return Err(BeaconError::TooLarge(bytes.len()));
        }
        let body = bytes.strip_prefix(BEACON_MAGIC.as_slice()).ok_or(BeaconError::NotABeacon)?;
        let beacon: Beacon =
            decode_exact::<_, MAX_BEACON>(body).map_err(|error| BeaconError::Malformed(error.to_string()))?;
        if beacon.protocol_version != PROTOCOL_VERSION {
            return Err(BeaconError::Version { ours: PROTOCOL_VERSION, theirs: beacon.protocol_version });
        }
        beacon.check()?;
        Ok(beacon)
    }

    fn check(&self) -> Result<(), BeaconError> {
        let named = |name: &str| !name.trim().is_empty() && name.chars().count() <= MAX_BEACON_NAME;
        if !named(&self.host) || !named(&self.project_name) {
            return Err(BeaconError::Invalid("names must have 1 to 64 characters"));
        }
        if self.quic_port == 0 || self.renet_port == 0 {
            return Err(BeaconError::Invalid("ports must not be 0"));
        }
        Ok(())
    }
}

/// A change to the shared transport, sent by the host on the reliable ordered channel. Times
/// are on the host's clock; each peer converts them with its [`ClockSync`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum TransportCommand {
    /// Start playing from `from` when the host's clock reads `at` (nanoseconds).
    Play {
        /// Host time of the first sample.
        at: u64,
        /// The timeline position it plays.
        from: Ticks,
    },
    /// Stop at host time `at`, leaving the playhead at `position`.
    Stop {
        /// Host time of the stop.
        at: u64,
        /// Where the playhead rests.
        position: Ticks,
    },
    /// Loop the project's loop range, or not.
    Looping(bool),
}

/// Messages between jam peers over renet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum JamMsg {
    /// Peer → host, unreliable: the first stamp of a clock exchange.
    ClockRequest {
        /// When it left the peer (peer clock).
        t0: u64,
    },
    /// Host → peer, unreliable: the request's stamp and the host's two.
    ClockReply {
        /// Echoed from the request.
        t0: u64,
        /// When the request arrived (host clock).
        t1: u64,
        /// When this reply left (host clock).
        t2: u64,
    },
    /// Host → peers, reliable and ordered.
    Transport(TransportCommand),
    /// Anyone → everyone, unreliable, the latest wins: who is here and what they are doing.
    Presence {
        /// Who (their colour derives from it).
        user: UserId,
        /// Their display name.
        name: String,
        /// Their playhead, selection and pointer.
        presence: Presence,
    },
}

impl JamMsg {
    /// The message as bytes for a renet channel.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        encode_value(self)
    }

    /// Reads a message from a peer; bad bytes are an error, never a panic, and never claim
    /// more than [`MAX_JAM_MESSAGE`] bytes of memory.
    pub fn decode(bytes: &[u8]) -> Result<JamMsg, FrameError> {
        if bytes.len() > MAX_JAM_MESSAGE {
            return Err(FrameError::TooLarge { len: bytes.len(), max: MAX_JAM_MESSAGE });
        }
        decode_exact::<_, MAX_JAM_MESSAGE>(bytes)
    }
}
