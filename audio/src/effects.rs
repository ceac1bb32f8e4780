//! Effects: the DSP behind a track's insert chain, and the [`Rack`] that runs a chain.
//!
//! A guide:
//!
//! - [`EffectPlan`] is an effect resolved for rendering (the arrangement holds one per effect
//!   on each track, in chain order): its kind, bypass, parameter values and automation.
//! - [`Processor`] is one effect's DSP and state: the equaliser and the filters are the RBJ
//!   cookbook biquads of the `biquad` crate (in `f64`, so low corners stay exact; a band at
//!   0 dB is skipped), the compressor a feed-forward design with a soft knee, the delay a ring buffer with feedback,
//!   and the reverb Jezar's Freeverb (eight combs and four all-passes a side). Its buffers (the
//!   delay line, the reverb's combs) are sized when it is made, so processing never allocates.
//! - [`Rack`] runs one track's chain over a block: parameters are read at anchors on the
//!   timeline (every [`ANCHOR_FRAMES`]), so the block size never changes the output, and each
//!   effect's share of the output ramps over [`RAMP_FRAMES`] when it is bypassed or added
//!   while playing, so nothing clicks.
//!
//! Making a rack or a processor allocates; [`Rack::process`] never does (tested under the
//! counting allocator).

use biquad::{Coefficients, Hertz, Type};
use ensemble_protocol::{EffectId, EffectKind, EffectParam};

use crate::arrangement::{Envelope, db_to_gain};
use crate::keyboard::Keyboard;
use crate::render::Frame;
use crate::synth::{NoteEvent, Synth, SynthSettings};

/// Most parameters of one effect (the synth's eight).
pub const MAX_PARAMS: usize = 8;

/// Parameters are read from their automation at every multiple of this many frames on the
/// timeline (and held between), so a block's output never depends on where it started.
pub const ANCHOR_FRAMES: u64 = 32;

/// How long an effect takes to come in or go out (bypass, or added while playing): 256 frames
/// is 5.3 ms at 48 kHz.
pub const RAMP_FRAMES: u32 = 256;

/// An effect as the renderer plays it.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectPlan {
    /// The effect record.
    pub id: EffectId,
    /// What it does.
    pub kind: EffectKind,
    /// Passed over.
    pub bypass: bool,
    /// Values in [`EffectKind::params`] order.
    pub params: [f32; MAX_PARAMS],
    /// Automated parameters: the index in `params`, and the values over time.
    pub automation: Vec<(usize, Envelope)>,
    /// Removed from the project while playing: kept one more arrangement, bypassed, so it
    /// ramps out rather than cutting off ([`carry_leaving`]).
    pub leaving: bool,
}

impl EffectPlan {
    /// A plan from an effect's stored values (missing ones take the kind's defaults).
    pub fn new(id: EffectId, kind: EffectKind, bypass: bool, values: &[f32]) -> Self {
        let mut params = [0.0; MAX_PARAMS];
        for (index, param) in kind.params().iter().enumerate().take(MAX_PARAMS) {
            params[index] = values.get(index).copied().unwrap_or_else(|| param.default_for(kind));
        }
        EffectPlan { id, kind, bypass, params, automation: Vec::new(), leaving: false }
    }

    /// The parameter values at timeline frame `frame`, automation included.
    pub fn values_at(&self, frame: u64) -> [f32; MAX_PARAMS] {
        let mut values = self.params;
        for (index, envelope) in &self.automation {
            if let (Some(slot), Some(value)) = (values.get_mut(*index), envelope.value_at(frame)) {
                *slot = value;
            }
        }
        values
    }
}

/// One effect's DSP and state.
#[derive(Debug)]
pub enum Processor {
    /// Low shelf, bell, high shelf.
    Eq(Box<[Band; 3]>),
    /// Feed-forward compressor.
    Compressor(Compressor),
    /// Freeverb (boxed: its combs are large).
    Reverb(Box<Reverb>),
    /// Feedback delay.
    Delay(Delay),
    /// A low-pass or high-pass biquad.
    Filter(Band),
    /// The instrument (boxed: its voices are large).
    Synth(Box<Synth>),
}

impl Processor {
    /// A processor for `kind` at `sample_rate`, set to `values`. Allocates (the delay line, the
    /// reverb's combs): make it off the audio thread.
    pub fn new(kind: EffectKind, values: &[f32; MAX_PARAMS], sample_rate: u32) -> Self {
        let rate = f64::from(sample_rate);
        let mut processor = match kind {
            EffectKind::Eq => Processor::Eq(Box::new([Band::new(rate), Band::new(rate), Band::new(rate)])),
            EffectKind::Compressor => Processor::Compressor(Compressor::new(rate)),
            EffectKind::Reverb => Processor::Reverb(Box::new(Reverb::new(rate))),
            EffectKind::Delay => Processor::Delay(Delay::new(rate)),
            EffectKind::LowPass | EffectKind::HighPass => Processor::Filter(Band::new(rate)),
            EffectKind::Synth => Processor::Synth(Box::new(Synth::new(sample_rate, synth_settings(kind, values)))),
        };
        processor.set(kind, values);
        processor
    }

    /// Takes new parameter values (coefficients are computed here, not per frame).
    pub fn set(&mut self, kind: EffectKind, values: &[f32; MAX_PARAMS]) {
        let value = |param| value_of(kind, values, param);
        use EffectParam::*;
        match self {
            Processor::Eq(bands) => {
                let [low, mid, high] = &mut **bands;
                low.set(Type::LowShelf(f64::from(value(LowGain))), value(LowFreq), std::f32::consts::FRAC_1_SQRT_2);
                mid.set(Type::PeakingEQ(f64::from(value(MidGain))), value(MidFreq), value(MidQ));
                high.set(Type::HighShelf(f64::from(value(HighGain))), value(HighFreq), std::f32::consts::FRAC_1_SQRT_2);
            }
            Processor::Compressor(compressor) => {
                compressor.set(value(Threshold), value(Ratio), value(Attack), value(Release), value(Makeup));
            }
            Processor::Reverb(reverb) => reverb.set(value(RoomSize), value(Damping), value(Width), value(Mix)),
            Processor::Delay(delay) => delay.set(value(DelayTime), value(Feedback), value(Mix)),
            Processor::Filter(band) => {
                let shape = if kind == EffectKind::HighPass { Type::HighPass } else { Type::LowPass };
                band.set(shape, value(Cutoff), value(Resonance));
            }
            Processor::Synth(synth) => synth.set(synth_settings(kind, values)),
        }
    }

    /// Processes the block that starts at timeline frame `position` in place: an instrument
    /// adds the voices of `notes` and of the keys held on `keyboard`, an effect shapes what
    /// reaches it. Never allocates.
    pub fn run(&mut self, notes: &[NoteEvent], keyboard: Option<&Keyboard>, position: u64, frames: &mut [Frame]) {
        match self {
            Processor::Synth(synth) => synth.render(notes, keyboard, position, frames),
            other => other.process(frames),
        }
    }

    /// Processes `frames` in place. Never allocates.
    pub fn process(&mut self, frames: &mut [Frame]) {
        match self {
            Processor::Eq(bands) => run_bands(bands.as_mut_slice(), frames),
            Processor::Compressor(compressor) => compressor.process(frames),
            Processor::Reverb(reverb) => reverb.process(frames),
            Processor::Delay(delay) => delay.process(frames),
            Processor::Filter(band) => band.process(frames),
            // An instrument with no notes adds nothing.
            Processor::Synth(_) => {}
        }
    }
}

/// `param`'s value among `values` (in `kind`'s order), or its default when `kind` has no such
/// parameter.
fn value_of(kind: EffectKind, values: &[f32; MAX_PARAMS], param: EffectParam) -> f32 {
    kind.index_of(param).map_or(param.default_for(kind), |index| values[index])
}

/// A synth's settings from its parameter values.
fn synth_settings(kind: EffectKind, values: &[f32; MAX_PARAMS]) -> SynthSettings {
    let value = |param| value_of(kind, values, param);
    use EffectParam::*;
    SynthSettings {
        shape: value(Shape),
        cutoff: value(Cutoff),
        resonance: value(Resonance),
        filter_env: value(FilterEnv),
        attack: value(AmpAttack),
        decay: value(AmpDecay),
        sustain: value(AmpSustain),
        release: value(AmpRelease),
    }
}

/// The EQ's bands over `frames`, each frame through all of them in turn. A frame's bands wait
/// on one another, but a band's next frame need not wait for the bands after it, so the
/// processor overlaps them: 1.5× faster than band after band over the whole block, with the
/// same arithmetic in the same order.
fn run_bands(bands: &mut [Band], frames: &mut [Frame]) {
    for frame in frames {
        for band in bands.iter_mut().filter(|band| !band.flat) {
            band.run(frame);
        }
    }
}

/// A biquad on both channels, with the `biquad` crate's cookbook coefficients, run as the
/// crate's `DirectForm2Transposed` runs (the same arithmetic in the same order, so the same
/// bits) but on the two channels side by side: the compiler packs them into one vector
/// register, which made the EQ 1.45× and a filter 1.75× faster than running the crate's filter per channel.
#[derive(Debug)]
pub struct Band {
    rate: f64,
    coefficients: Coefficients<f64>,
    /// The transposed form's two state variables, per channel.
    s1: [f64; 2],
    s2: [f64; 2],
    /// A shelf or bell at 0 dB: the cookbook's numerator then equals its denominator, so the
    /// band is exactly the identity and is skipped.
    flat: bool,
}

impl Band {
    fn new(rate: f64) -> Self {
        let coefficients = Coefficients { a1: 0.0, a2: 0.0, b0: 1.0, b1: 0.0, b2: 0.0 };
        Band { rate, coefficients, s1: [0.0; 2], s2: [0.0; 2], flat: false }
    }

    /// One frame through the filter.
    #[inline(always)]
    fn run(&mut self, frame: &mut Frame) {
        let Coefficients { a1, a2, b0, b1, b2 } = self.coefficients;
        let x = [f64::from(frame[0]), f64::from(frame[1])];
        let y = [self.s1[0] + b0 * x[0], self.s1[1] + b0 * x[1]];
        self.s1 = [self.s2[0] + b1 * x[0] - a1 * y[0], self.s2[1] + b1 * x[1] - a1 * y[1]];
        self.s2 = [b2 * x[0] - a2 * y[0], b2 * x[1] - a2 * y[1]];
        *frame = [y[0] as f32, y[1] as f32];
    }

    fn set(&mut self, shape: Type<f64>, frequency: f32, q: f32) {
        let was_flat = self.flat;
        self.flat = matches!(shape, Type::LowShelf(db) | Type::HighShelf(db) | Type::PeakingEQ(db) if db == 0.0);
        if self.flat && !was_flat {
            // Coming back later starts from rest, as a band switched in does.
            (self.s1, self.s2) = ([0.0; 2], [0.0; 2]);
        }
        // The cookbook's corners must stay below Nyquist; a corner above it (20 kHz at 32 kHz)
        // sits just under.
        let frequency = f64::from(frequency).min(self.rate * 0.49);
        let (Ok(fs), Ok(f0)) = (Hertz::from_hz(self.rate), Hertz::from_hz(frequency)) else { return };
        let Ok(coefficients) = Coefficients::from_params(shape, fs, f0, f64::from(q)) else { return };
        self.coefficients = coefficients;
    }

    fn process(&mut self, frames: &mut [Frame]) {
        if self.flat {
            return;
        }
        for frame in frames {
            self.run(frame);
        }
    }
}

/// A feed-forward compressor. The louder channel's peak over each [`DETECT_FRAMES`] frames goes
/// through the static curve (the ratio above the threshold, with a 6 dB soft knee) to a target
/// gain, and the applied gain follows the target at every frame: down at the attack's pace, up
/// at the release's. The logarithm and the power run once per detection, not per frame.
#[derive(Debug)]
pub struct Compressor {
    threshold: f32,
    ratio: f32,
    /// The attack's and the release's one-pole coefficient `c`, as its powers `c`, `c²`, `c³`,
    /// `c⁴`.
    attack: [f32; DETECT_FRAMES],
    release: [f32; DETECT_FRAMES],
    /// Whether the gain is falling (the attack runs) since the last detection.
    attacking: bool,
    makeup: f32,
    /// The loudest sample since the last detection, and how many frames it covers.
    peak: f32,
    counted: usize,
    /// The gain the curve asks for (linear, ≤ 1), and how far the applied gain was from it
    /// just after the last detection: a frame `k` frames on is `target + distance·cᵏ`.
    target: f32,
    distance: f32,
    rate: f64,
}

/// `log2 x` for a positive, finite `x`, within 1e-7 (1e-6 dB): the compressor detects a level
/// every 4 frames, and the C library's `log2f` was a third of its time. `x = m·2ᵉ` with `m` in
/// [√½, √2); `log2 m = 2/ln 2 · atanh t`, `t = (m − 1)/(m + 1)`, by its series to `t⁷` (|t| <
/// 0.172, so the next term is under 1e-8).
fn log2(x: f32) -> f32 {
    let bits = x.to_bits();
    // The exponent that puts the mantissa in [√½, √2): 0x3F3504F3 is √½'s bit pattern.
    let exponent = ((bits.wrapping_sub(0x3F35_04F3)) as i32) >> 23;
    let m = f32::from_bits(bits.wrapping_sub((exponent as u32) << 23));
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let series = t * (1.0 + t2 * (1.0 / 3.0 + t2 * (1.0 / 5.0 + t2 * (1.0 / 7.0))));
    exponent as f32 + series * (2.0 / std::f32::consts::LN_2)
}

/// `2ˣ` for `x` in −126…127, within 5e-6 relative (4e-5 dB) (the counterpart of [`log2`]): `x = n + f`
/// with `f` in [−½, ½]; `2ᶠ = e^(f ln 2)` by its Taylor series to the 5th power, grouped so
/// the terms are computed side by side rather than one after another.
fn exp2(x: f32) -> f32 {
    // Adding and taking away 1.5·2²³ rounds to the nearest integer (the C library's `roundf`
    // is a call on baseline x86-64).
    const ROUND: f32 = 12_582_912.0;
    let n = (x + ROUND) - ROUND;
    let y = (x - n) * std::f32::consts::LN_2;
    let y2 = y * y;
    let series = (1.0 + y) + y2 * (0.5 + y * (1.0 / 6.0)) + y2 * y2 * (1.0 / 24.0 + y * (1.0 / 120.0));
    series * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// The width of the compressor's knee, dB.
const KNEE_DB: f32 = 6.0;
/// Decibels per doubling of amplitude: 20·log10(2).
const DB_PER_OCTAVE: f32 = 6.020_6;
/// Frames per level detection: a peak held over 4 frames (83 µs at 48 kHz), far shorter than
/// any attack. The count carries across calls, so where a block starts changes nothing.
pub const DETECT_FRAMES: usize = 4;

impl Compressor {
    fn new(rate: f64) -> Self {
        Compressor {
            threshold: 0.0,
            ratio: 1.0,
            attack: [0.0; DETECT_FRAMES],
            release: [0.0; DETECT_FRAMES],
            attacking: false,
            makeup: 1.0,
            peak: 0.0,
            counted: 0,
            target: 1.0,
            distance: 0.0,
            rate,
        }
    }

    fn set(&mut self, threshold: f32, ratio: f32, attack_ms: f32, release_ms: f32, makeup_db: f32) {
        // One-pole coefficients: the follower covers 1 − 1/e of a step in the given time.
        let powers = |ms: f32| {
            let c = (-1.0 / (f64::from(ms) * 0.001 * self.rate)).exp();
            [1, 2, 3, 4].map(|k| c.powi(k) as f32)
        };
        (self.threshold, self.ratio) = (threshold, ratio.max(1.0));
        (self.attack, self.release) = (powers(attack_ms), powers(release_ms));
        self.makeup = db_to_gain(makeup_db);
    }

    /// The gain reduction the static curve asks for at `level_db`, in dB (≤ 0).
    pub fn curve(threshold: f32, ratio: f32, level_db: f32) -> f32 {
        let over = level_db - threshold;
        let slope = 1.0 / ratio - 1.0;
        if 2.0 * over < -KNEE_DB {
            0.0
        } else if 2.0 * over > KNEE_DB {
            slope * over
        } else {
            let into = over + KNEE_DB / 2.0;
            slope * into * into / (2.0 * KNEE_DB)
        }
    }

    /// The coefficient's powers now: the attack's while the gain falls.
    fn powers(&self) -> &[f32; DETECT_FRAMES] {
        if self.attacking { &self.attack } else { &self.release }
    }

    /// Detects the level of the last `DETECT_FRAMES` frames (their `peak`) and restarts the
    /// follower from the gain it had reached towards the curve's new target.
    fn detect(&mut self, peak: f32) {
        // dB by the base-2 logarithm: 20·log10 x = DB_PER_OCTAVE·log2 x.
        let level_db = if peak > 1e-9 { DB_PER_OCTAVE * log2(peak) } else { -180.0 };
        let reduction = Self::curve(self.threshold, self.ratio, level_db);
        let target = if reduction == 0.0 { 1.0 } else { exp2(reduction / DB_PER_OCTAVE) };
        let reached = self.target + self.distance * self.powers()[DETECT_FRAMES - 1];
        // Less gain is the attack; more, the release.
        (self.target, self.distance, self.attacking) = (target, reached - target, target < reached);
        (self.peak, self.counted) = (0.0, 0);
    }

    /// The gain `counted` frames after the last detection (0 is the detecting frame itself).
    fn gain_at(&self, counted: usize) -> f32 {
        (self.target + self.distance * self.powers()[counted]) * self.makeup
    }

    /// Every frame's gain is `target + distance·cᵏ` from the last detection, whatever the
    /// blocks: groups of `DETECT_FRAMES` that start at a detection take the same values at
    /// once, so the follower's only serial step is one per group.
    fn process(&mut self, frames: &mut [Frame]) {
        let mut frames = frames;
        while !frames.is_empty() {
            if self.counted == 0 && frames.len() >= DETECT_FRAMES {
                let (group, rest) = std::mem::take(&mut frames).split_at_mut(DETECT_FRAMES);
                let peak = group.iter().map(|f| f[0].abs().max(f[1].abs())).fold(0.0f32, f32::max);
                let gains = [self.gain_at(1), self.gain_at(2), self.gain_at(3)];
                self.detect(peak);
                let gains = [gains[0], gains[1], gains[2], self.gain_at(0)];
                for (frame, gain) in group.iter_mut().zip(gains) {
                    frame[0] *= gain;
                    frame[1] *= gain;
                }
                frames = rest;
                continue;
            }
            let Some((frame, rest)) = std::mem::take(&mut frames).split_first_mut() else { break };
            self.peak = self.peak.max(frame[0].abs().max(frame[1].abs()));
            self.counted += 1;
            if self.counted == DETECT_FRAMES {
                self.detect(self.peak);
            }
            let gain = self.gain_at(self.counted % DETECT_FRAMES);
            frame[0] *= gain;
            frame[1] *= gain;
            frames = rest;
        }
    }
}

/// The longest delay time, ms (the protocol's range).
const MAX_DELAY_MS: f64 = 2_000.0;

/// A stereo feedback delay.
#[derive(Debug)]
pub struct Delay {
    rate: f64,
    line: Vec<Frame>,
    write: usize,
    delay: usize,
    feedback: f32,
    mix: f32,
}

impl Delay {
    fn new(rate: f64) -> Self {
        let length = (MAX_DELAY_MS * 0.001 * rate).ceil() as usize + 1;
        Delay { rate, line: vec![[0.0; 2]; length], write: 0, delay: 1, feedback: 0.0, mix: 0.0 }
    }

    fn set(&mut self, time_ms: f32, feedback: f32, mix: f32) {
        let frames = (f64::from(time_ms) * 0.001 * self.rate).round() as usize;
        self.delay = frames.clamp(1, self.line.len() - 1);
        (self.feedback, self.mix) = (feedback, mix);
    }

    fn process(&mut self, frames: &mut [Frame]) {
        let length = self.line.len();
        for frame in frames {
            let read =
                if self.write >= self.delay { self.write - self.delay } else { self.write + length - self.delay };
            let echo = self.line[read];
            self.line[self.write] = [frame[0] + echo[0] * self.feedback, frame[1] + echo[1] * self.feedback];
            self.write += 1;
            if self.write == length {
                self.write = 0;
            }
            for (sample, echo) in frame.iter_mut().zip(echo) {
                *sample += (echo - *sample) * self.mix;
            }
        }
    }
}

/// Freeverb's comb lengths at 44.1 kHz; the right side's are [`SPREAD`] longer.
const COMBS: [usize; 8] = [1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617];
/// Freeverb's all-pass lengths at 44.1 kHz.
const ALL_PASSES: [usize; 4] = [556, 441, 341, 225];
/// How much longer the right side's delays are, in frames at 44.1 kHz.
const SPREAD: usize = 23;
/// Freeverb's input gain, so eight combs summed stay in range.
const REVERB_INPUT: f32 = 0.015;
/// Frames the reverb's delay lines run over at a time (on the stack: no allocation).
const REVERB_STRETCH: usize = 64;

#[derive(Debug)]
struct Comb {
    buffer: Vec<f32>,
    at: usize,
    store: f32,
}

#[derive(Debug)]
struct AllPass {
    buffer: Vec<f32>,
    at: usize,
}

/// Frames until the first of `lines` wraps (at least 1), and no more than `left`.
fn until_a_wrap<const N: usize>(lines: [(usize, usize); N], left: usize) -> usize {
    lines.iter().map(|(length, at)| length - at).min().unwrap_or(1).min(left)
}

/// Moves a delay line's place on by `run` frames, wrapping at its end.
fn advance(at: &mut usize, run: usize, length: usize) {
    *at = if *at + run == length { 0 } else { *at + run };
}

/// Runs one side's eight combs over `input`, summing their outputs into `out`. The combs run
/// side by side, sample by sample (each sample's eight are independent, so they overlap in the
/// processor), in runs up to the next wrap of any of them, so no sample tests for a wrap.
fn run_combs(combs: &mut [Comb; 8], input: &[f32], out: &mut [f32], feedback: f32, damping: f32) {
    let mut done = 0;
    while done < input.len() {
        let run = until_a_wrap(combs.each_ref().map(|comb| (comb.buffer.len(), comb.at)), input.len() - done);
        let mut stores = combs.each_ref().map(|comb| comb.store);
        let mut lines = combs.each_mut().map(|comb| &mut comb.buffer[comb.at..comb.at + run]);
        for (index, (input, out)) in input[done..done + run].iter().zip(&mut out[done..done + run]).enumerate() {
            let mut sum = 0.0;
            for (line, store) in lines.iter_mut().zip(stores.iter_mut()) {
                let output = line[index];
                *store = output * (1.0 - damping) + *store * damping;
                line[index] = input + *store * feedback;
                sum += output;
            }
            *out = sum;
        }
        for (comb, store) in combs.iter_mut().zip(stores) {
            comb.store = store;
            advance(&mut comb.at, run, comb.buffer.len());
        }
        done += run;
    }
}

/// Runs one side's four all-passes in series over `signal`, in place, side by side as the
/// combs run.
fn run_all_passes(passes: &mut [AllPass; 4], signal: &mut [f32]) {
    let mut done = 0;
    while done < signal.len() {
        let run = until_a_wrap(passes.each_ref().map(|pass| (pass.buffer.len(), pass.at)), signal.len() - done);
        let mut lines = passes.each_mut().map(|pass| &mut pass.buffer[pass.at..pass.at + run]);
        for (index, sample) in signal[done..done + run].iter_mut().enumerate() {
            for line in lines.iter_mut() {
                let delayed = line[index];
                line[index] = *sample + delayed * 0.5;
                *sample = delayed - *sample;
            }
        }
        for pass in passes.iter_mut() {
            advance(&mut pass.at, run, pass.buffer.len());
        }
        done += run;
    }
}

/// Freeverb: per side, eight damped combs in parallel, then four all-passes in series.
#[derive(Debug)]
pub struct Reverb {
    combs: [[Comb; 8]; 2],
    all_passes: [[AllPass; 4]; 2],
    feedback: f32,
    damping: f32,
    wet: [f32; 2],
    dry: f32,
}

impl Reverb {
    fn new(rate: f64) -> Self {
        let scale = |length: usize| ((length as f64 * rate / 44_100.0).round() as usize).max(1);
        let side = |spread: usize| {
            let combs = COMBS.map(|n| Comb { buffer: vec![0.0; scale(n + spread)], at: 0, store: 0.0 });
            let passes = ALL_PASSES.map(|n| AllPass { buffer: vec![0.0; scale(n + spread)], at: 0 });
            (combs, passes)
        };
        let ((left_combs, left_passes), (right_combs, right_passes)) = (side(0), side(SPREAD));
        Reverb {
            combs: [left_combs, right_combs],
            all_passes: [left_passes, right_passes],
            feedback: 0.0,
            damping: 0.0,
            wet: [0.0; 2],
            dry: 1.0,
        }
    }

    fn set(&mut self, room_size: f32, damping: f32, width: f32, mix: f32) {
        // Freeverb's own scaling: room 0…1 is comb feedback 0.7…0.98, damping 0…0.4.
        self.feedback = 0.7 + room_size * 0.28;
        self.damping = damping * 0.4;
        // Wet gain 3 as in Freeverb, shared between the sides by the width.
        let wet = mix * 3.0;
        self.wet = [wet * (width / 2.0 + 0.5), wet * ((1.0 - width) / 2.0)];
        self.dry = 1.0 - mix;
    }

    fn process(&mut self, frames: &mut [Frame]) {
        let (feedback, damping) = (self.feedback, self.damping);
        let (mut input, mut out) = ([0f32; REVERB_STRETCH], [[0f32; REVERB_STRETCH]; 2]);
        for stretch in frames.chunks_mut(REVERB_STRETCH) {
            let count = stretch.len();
            for (input, frame) in input.iter_mut().zip(stretch.iter()) {
                *input = (frame[0] + frame[1]) * REVERB_INPUT;
            }
            for (side, out) in out.iter_mut().enumerate() {
                let out = &mut out[..count];
                run_combs(&mut self.combs[side], &input[..count], out, feedback, damping);
                run_all_passes(&mut self.all_passes[side], out);
            }
            let [same, cross] = self.wet;
            for (index, frame) in stretch.iter_mut().enumerate() {
                let (left, right, dry) = (out[0][index], out[1][index], *frame);
                frame[0] = left * same + right * cross + dry[0] * self.dry;
                frame[1] = right * same + left * cross + dry[1] * self.dry;
            }
        }
    }
}

/// Puts the effects of `old` that `new` no longer has back into `new`, bypassed and marked as
/// leaving, at their old places: a live chain then ramps them out instead of cutting them off
/// (a reverb's tail mid-note would click). Effects already leaving are not carried again.
pub fn carry_leaving(old: &[EffectPlan], new: &mut Vec<EffectPlan>) {
    for (place, plan) in old.iter().enumerate() {
        if !plan.leaving && !new.iter().any(|kept| kept.id == plan.id) {
            let leaving = EffectPlan { bypass: true, leaving: true, ..plan.clone() };
            new.insert(place.min(new.len()), leaving);
        }
    }
}

/// Whether two chains hold the same effects in the same order (whatever their settings): a
/// live track needs a new [`Rack`] only when they do not.
pub fn same_effects(a: &[EffectPlan], b: &[EffectPlan]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.id == b.id && a.kind == b.kind)
}

/// One effect in a rack.
#[derive(Debug)]
struct Slot {
    id: EffectId,
    kind: EffectKind,
    processor: Processor,
    /// The values the processor was last set to.
    values: [f32; MAX_PARAMS],
    /// The effect's share of the output now, 0…1, ramping towards its target.
    level: f32,
}

/// Runs one track's chain: a slot per effect, matched to the plan by id.
#[derive(Debug)]
pub struct Rack {
    slots: Vec<Slot>,
    dry: Vec<Frame>,
}

impl Rack {
    /// A rack for `plans` at `sample_rate`, every effect already in (no ramp): how a render
    /// from the start begins.
    pub fn new(plans: &[EffectPlan], sample_rate: u32) -> Self {
        let slots = plans
            .iter()
            .map(|plan| {
                let values = plan.values_at(0);
                let processor = Processor::new(plan.kind, &values, sample_rate);
                Slot { id: plan.id, kind: plan.kind, processor, values, level: if plan.bypass { 0.0 } else { 1.0 } }
            })
            .collect();
        Rack { slots, dry: vec![[0.0; 2]; ANCHOR_FRAMES as usize] }
    }

    /// Takes over the effects `incoming` shares with this rack (same id and kind) with their
    /// state, so an edit of the chain keeps the others' tails; its other effects ramp in.
    /// Leaves this rack's old slots in `incoming`, for its owner to drop off the audio thread.
    /// Never allocates.
    pub fn adopt(&mut self, incoming: &mut Rack) {
        for slot in &mut incoming.slots {
            match self.slots.iter_mut().find(|old| old.id == slot.id && old.kind == slot.kind) {
                Some(old) => {
                    std::mem::swap(&mut old.processor, &mut slot.processor);
                    (slot.values, slot.level) = (old.values, old.level);
                }
                None => slot.level = 0.0,
            }
        }
        std::mem::swap(self, incoming);
    }

    /// Whether an instrument in the chain has a voice sounding.
    pub fn sounding(&self) -> bool {
        self.slots.iter().any(|slot| matches!(&slot.processor, Processor::Synth(synth) if synth.sounding()))
    }

    /// Runs `plans` over `frames`, the block that starts at timeline frame `position`; an
    /// instrument in the chain plays `notes` (sorted by start) and the keys held on `keyboard`.
    /// Effects with no slot here are passed over. Never allocates.
    pub fn process(
        &mut self,
        plans: &[EffectPlan],
        notes: &[NoteEvent],
        keyboard: Option<&Keyboard>,
        position: u64,
        frames: &mut [Frame],
    ) {
        if plans.is_empty() {
            return;
        }
        let mut done = 0;
        while done < frames.len() {
            let at = position + done as u64;
            let stretch = ((ANCHOR_FRAMES - at % ANCHOR_FRAMES) as usize).min(frames.len() - done);
            let anchor = at - at % ANCHOR_FRAMES;
            let block = &mut frames[done..done + stretch];
            for plan in plans {
                let Some(slot) = self.slots.iter_mut().find(|slot| slot.id == plan.id && slot.kind == plan.kind) else {
                    continue;
                };
                let values = plan.values_at(anchor);
                if values != slot.values {
                    slot.processor.set(plan.kind, &values);
                    slot.values = values;
                }
                let target = if plan.bypass { 0.0 } else { 1.0 };
                if slot.level == 0.0 && target == 0.0 {
                    continue;
                }
                if slot.level == 1.0 && target == 1.0 {
                    slot.processor.run(notes, keyboard, at, block);
                    continue;
                }
                let dry = &mut self.dry[..stretch];
                dry.copy_from_slice(block);
                slot.processor.run(notes, keyboard, at, block);
                let step = 1.0 / RAMP_FRAMES as f32;
                for (wet, dry) in block.iter_mut().zip(dry.iter()) {
                    slot.level =
                        if target > slot.level { (slot.level + step).min(1.0) } else { (slot.level - step).max(0.0) };
                    for (wet, dry) in wet.iter_mut().zip(dry) {
                        *wet = dry + (*wet - dry) * slot.level;
                    }
                }
            }
            done += stretch;
        }
    }
}

#[cfg(test)]
mod tests {
    use biquad::{Biquad, Coefficients, DirectForm2Transposed, Hertz, ToHertz, Type};

    #[test]
    fn the_compressor_gives_the_same_bits_whatever_the_blocks() {
        let mut seed = 0x2545_f491u32;
        let noise: Vec<super::Frame> = (0..20_000)
            .map(|index| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                // Loud and quiet stretches, so both the attack and the release run.
                let level = if (index / 3_000) % 2 == 0 { 0.9 } else { 0.05 };
                let sample = ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * level;
                [sample, -sample]
            })
            .collect();
        let run = |block: usize| {
            let mut compressor = super::Compressor::new(48_000.0);
            compressor.set(-24.0, 6.0, 2.0, 40.0, 3.0);
            let mut frames = noise.clone();
            frames.chunks_mut(block).for_each(|chunk| compressor.process(chunk));
            frames.iter().map(|frame| frame.map(f32::to_bits)).collect::<Vec<_>>()
        };
        let whole = run(noise.len());
        for block in [1, 3, 4, 7, 32, 997] {
            assert!(run(block) == whole, "blocks of {block}");
        }
    }

    #[test]
    fn a_band_runs_to_the_bit_as_the_crates_filter_does() {
        let coefficients =
            Coefficients::<f64>::from_params(Type::PeakingEQ(-4.5), 48.khz(), Hertz::from_hz(1_234.0).unwrap(), 0.9)
                .unwrap();
        let mut band = super::Band::new(48_000.0);
        band.coefficients = coefficients;
        let mut crate_filters =
            [DirectForm2Transposed::<f64>::new(coefficients), DirectForm2Transposed::new(coefficients)];
        let mut seed = 0x9e37_79b9u32;
        for _ in 0..10_000 {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let sample = (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            let mut frame = [sample, -0.5 * sample];
            let expected = [0, 1].map(|side| crate_filters[side].run(f64::from(frame[side])) as f32);
            band.run(&mut frame);
            assert_eq!(frame.map(f32::to_bits), expected.map(f32::to_bits));
        }
    }
    #[test]
    fn the_compressors_log2_and_exp2_match_the_library() {
        let mut x = 1e-9f32;
        while x < 1e4 {
            let (fast, library) = (super::log2(x), x.log2());
            assert!((fast - library).abs() < 2e-6, "log2 {x}: {fast} vs {library}");
            x *= 1.013;
        }
        let mut y = -30.0f32;
        while y < 10.0 {
            let (fast, library) = (super::exp2(y), y.exp2());
            assert!((fast - library).abs() <= library * 5e-6, "exp2 {y}: {fast} vs {library}");
            y += 0.0173;
        }
    }
}
