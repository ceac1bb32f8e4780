//! What plays, in sample frames: a project's tracks, clips and automation, resolved against
//! decoded audio so the renderer never looks anything up.
//!
//! [`Arrangement::from_project`] converts every tick position with the project's
//! [`Timebase`], so a clip at tick `T` starts at exactly
//! `timebase.frames(T)`, the same frame the UI and the export use.

use std::collections::HashMap;
use std::f64::consts::FRAC_PI_4;

use ensemble_protocol::{
    AssetId, Bus, Curve, EffectId, EffectKind, EffectParam, Parameter, ProjectState, Record, Ticks, TimeSignature,
    Timebase, TrackId,
};

use crate::Pcm;
use crate::effects::EffectPlan;
use crate::synth::NoteEvent;

/// A breakpoint of an envelope.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Where it sits.
    pub frame: u64,
    /// The value there (dB for gain, −1…1 for pan).
    pub value: f32,
    /// How the value travels to the next point.
    pub curve: Curve,
}

/// A parameter over time. Before the first point it holds the first value, after the last the
/// last value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Envelope {
    /// Points sorted by frame.
    pub points: Vec<Point>,
}

impl Envelope {
    /// The first breakpoint after `frame` (`u64::MAX` when there is none).
    pub fn next_break(&self, frame: u64) -> u64 {
        let next = self.points.partition_point(|point| point.frame <= frame);
        self.points.get(next).map_or(u64::MAX, |point| point.frame)
    }

    /// The stretch of the envelope that `frame` lies in, up to the next breakpoint, or `None`
    /// when the envelope has no points. Every frame up to [`Envelope::next_break`] evaluates
    /// through it without searching again.
    pub fn span(&self, frame: u64) -> Option<Span> {
        let next = self.points.partition_point(|point| point.frame <= frame);
        match (next.checked_sub(1).map(|i| self.points[i]), self.points.get(next)) {
            (Some(from), to) => Some(Span { from, to: to.copied() }),
            // Before the first point: its value, held.
            (None, first) => first.map(|first| Span { from: *first, to: None }),
        }
    }

    /// The value at `frame`, or `None` when the envelope has no points.
    pub fn value_at(&self, frame: u64) -> Option<f32> {
        self.span(frame).map(|span| span.value_at(frame))
    }

    /// For an envelope of dB values, the linear gain at `frame`, or `None` when it has no points.
    pub fn gain_at(&self, frame: u64) -> Option<f32> {
        self.span(frame).map(|span| span.gain_at(frame))
    }
}

/// An envelope between two breakpoints (or held after the last one).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span {
    pub(crate) from: Point,
    pub(crate) to: Option<Point>,
}

impl Span {
    /// How far along the curve `frame` is, from 0 (at `from`) towards 1 (at `to`).
    fn shaped(&self, frame: u64) -> Option<(f32, f32)> {
        let to = self.to?;
        let t = frame.saturating_sub(self.from.frame) as f32 / (to.frame - self.from.frame).max(1) as f32;
        let shaped = match self.from.curve {
            Curve::Hold => 0.0,
            Curve::Linear => t,
            Curve::Smooth => t * t * (3.0 - 2.0 * t),
        };
        Some((shaped, to.value))
    }

    /// The value at `frame`, interpolated along the curve of the span's first point.
    pub fn value_at(&self, frame: u64) -> f32 {
        match self.shaped(frame) {
            Some((shaped, to)) if shaped > 0.0 => self.from.value + (to - self.from.value) * shaped,
            _ => self.from.value,
        }
    }

    /// For dB values, the linear gain at `frame`. Between finite levels the ramp is in dB (what
    /// a fader move sounds like); to or from silence (−∞ dB, which the protocol accepts) it is a
    /// ramp of the linear gain, since no dB ramp reaches silence. Always finite.
    pub fn gain_at(&self, frame: u64) -> f32 {
        match self.shaped(frame) {
            Some((shaped, to)) if shaped > 0.0 => {
                let from = self.from.value;
                if from.is_finite() && to.is_finite() {
                    db_to_gain(from + (to - from) * shaped)
                } else {
                    let (from, to) = (db_to_gain(from), db_to_gain(to));
                    from + (to - from) * shaped
                }
            }
            _ => db_to_gain(self.from.value),
        }
    }
}

/// A clip, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipPlan {
    /// First frame on the timeline.
    pub start: u64,
    /// Frames it plays.
    pub length: u64,
    /// The audio, at the arrangement's sample rate.
    pub source: Pcm,
    /// The first source frame that plays.
    pub source_offset: u64,
    /// Linear clip gain.
    pub gain: f32,
    /// Fade-in length in frames.
    pub fade_in: u64,
    /// Fade-out length in frames.
    pub fade_out: u64,
}

impl ClipPlan {
    /// The frame after the clip's last.
    pub fn end(&self) -> u64 {
        self.start + self.length
    }

    /// The clip's gain at timeline frame `frame` (inside the clip), fades included.
    pub fn gain_at(&self, frame: u64) -> f32 {
        let into = frame - self.start;
        let left = self.end() - frame;
        let mut gain = self.gain;
        if into < self.fade_in {
            gain *= into as f32 / self.fade_in as f32;
        }
        if left <= self.fade_out {
            gain *= (left - 1) as f32 / self.fade_out as f32;
        }
        gain
    }
}

/// A track, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackPlan {
    /// The track.
    pub id: TrackId,
    /// Fader level in dB.
    pub gain_db: f32,
    /// Pan, −1…1.
    pub pan: f32,
    /// Silenced.
    pub mute: bool,
    /// Soloed.
    pub solo: bool,
    /// Clips sorted by start.
    pub clips: Vec<ClipPlan>,
    /// Gain automation in dB, replacing the fader where it has points.
    pub gain_envelope: Envelope,
    /// Pan automation, replacing the pan knob where it has points.
    pub pan_envelope: Envelope,
    /// The insert chain, in the order it plays (after the clips, before fader and pan).
    pub effects: Vec<EffectPlan>,
    /// The notes of its note clips, sorted by start, for the chain's instrument.
    pub notes: Vec<NoteEvent>,
    /// The frame after its last note clip ends.
    pub notes_end: u64,
    /// Whether a controller's keys are heard through its instrument as they are played: the
    /// topmost armed track, when it has an instrument (where a take of notes would go).
    pub monitor: bool,
}

/// The constant-power pan law, −3 dB at the centre: `(left, right)` gains for `pan` in −1…1.
/// Hard left is `(1, 0)`, centre `(0.7071, 0.7071)`, hard right `(0, 1)`.
pub fn pan_gains(pan: f32) -> (f32, f32) {
    let (sin, cos) = pan_angle(f64::from(pan)).sin_cos();
    (cos as f32, sin as f32)
}

/// The pan law's angle for `pan`: 0 hard left, π/4 centre, π/2 hard right; the gains are its
/// cosine and sine. The renderer turns it frame by frame for a pan sweep.
pub(crate) fn pan_angle(pan: f64) -> f64 {
    (pan.clamp(-1.0, 1.0) + 1.0) * FRAC_PI_4
}

/// dB to a linear factor; `-inf` dB is silence.
pub fn db_to_gain(db: f32) -> f32 {
    if db == f32::NEG_INFINITY { 0.0 } else { 10f32.powf(db / 20.0) }
}

/// A linear factor to dB; silence is `-inf` dB.
pub fn gain_to_db(gain: f32) -> f32 {
    if gain > 0.0 { 20.0 * gain.log10() } else { f32::NEG_INFINITY }
}

/// The click track: a short tone on every beat, higher and louder on the first of each bar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metronome {
    /// Tempo and sample rate.
    pub timebase: Timebase,
    /// Beats per bar and beat length.
    pub time_signature: TimeSignature,
}

/// How long a click rings, in seconds.
const CLICK_SECONDS: f64 = 0.03;

impl Metronome {
    /// The click's sample at timeline frame `frame` (0 between clicks).
    pub fn sample_at(&self, frame: u64) -> f32 {
        let beat_ticks = self.time_signature.ticks_per_beat().0;
        let frames_per_beat = self.timebase.frames_per_tick() * beat_ticks as f64;
        let rate = f64::from(self.timebase.sample_rate);
        let estimate = (frame as f64 / frames_per_beat).floor() as i64;
        // The beat at or before `frame`, found exactly through the timebase.
        let Some((beat, start)) = (estimate - 1..=estimate + 1)
            .rev()
            .map(|beat| (beat, self.timebase.frames(Ticks(beat.max(0) * beat_ticks)).0))
            .find(|(beat, start)| *beat >= 0 && *start <= frame)
        else {
            return 0.0;
        };
        let since = (frame - start) as f64 / rate;
        if since >= CLICK_SECONDS {
            return 0.0;
        }
        let accent = beat % i64::from(self.time_signature.numerator.max(1)) == 0;
        let (hz, level) = if accent { (1_600.0, 0.5) } else { (1_000.0, 0.3) };
        (level * (std::f64::consts::TAU * hz * since).sin() * (-since / (CLICK_SECONDS / 5.0)).exp()) as f32
    }
}

/// Everything the renderer needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Arrangement {
    /// Frames per second.
    pub sample_rate: u32,
    /// Tracks, top to bottom.
    pub tracks: Vec<TrackPlan>,
    /// The loop region `[start, end)`, when looping is set.
    pub loop_range: Option<(u64, u64)>,
    /// The click track, heard only when the transport's metronome is on (never exported).
    pub metronome: Metronome,
    /// The master chain, in order: on the mix of every track (not the click).
    pub master: Vec<EffectPlan>,
}

impl Arrangement {
    /// Whether `track` sounds: not muted, and soloed when any track is.
    pub fn audible(&self, track: &TrackPlan) -> bool {
        !track.mute && (track.solo || !self.tracks.iter().any(|t| t.solo))
    }

    /// The frame after the last clip ends.
    pub fn end(&self) -> u64 {
        let clips = self.tracks.iter().flat_map(|t| t.clips.iter().map(ClipPlan::end));
        clips.chain(self.tracks.iter().map(|t| t.notes_end)).max().unwrap_or(0)
    }

    /// How long the effects ring on after the last clip, in frames: an export renders
    /// [`Arrangement::end`] plus this, so a reverb's tail or a delay's last echo is not cut.
    pub fn tail(&self) -> u64 {
        let rate = f64::from(self.sample_rate);
        let ring = |plan: &EffectPlan| -> f64 {
            let value = |param: EffectParam| plan.kind.index_of(param).map_or(0.0, |i| f64::from(plan.params[i]));
            match plan.kind {
                _ if plan.bypass => 0.0,
                // Freeverb's longest comb at the largest room takes about 5 s to fall 60 dB.
                EffectKind::Reverb => 1.0 + 4.0 * value(EffectParam::RoomSize),
                // Echoes until they are 60 dB down, at most 10 s.
                EffectKind::Delay => {
                    let (time, feedback) = (value(EffectParam::DelayTime) / 1000.0, value(EffectParam::Feedback));
                    let echoes = if feedback > 0.001 { (0.001f64.ln() / feedback.ln()).ceil() + 1.0 } else { 1.0 };
                    (time * echoes).min(10.0)
                }
                EffectKind::Synth => value(EffectParam::AmpRelease) / 1000.0,
                _ => 0.0,
            }
        };
        let tracks = self.tracks.iter().map(|t| t.effects.iter().map(ring).fold(0.0, f64::max)).fold(0.0, f64::max);
        // The master rings on after the tracks' tails.
        let seconds = tracks + self.master.iter().map(ring).fold(0.0, f64::max);
        (seconds * rate).ceil() as u64
    }

    /// Resolves a project against decoded assets (at the project's sample rate). Clips whose
    /// asset is missing are left out: they are still downloading.
    pub fn from_project(state: &ProjectState, assets: &HashMap<AssetId, Pcm>) -> Arrangement {
        Arrangement::from_project_at(state, assets, state.project().sample_rate)
    }

    /// [`Arrangement::from_project`] in frames of `rate` rather than the project's (a sound
    /// card that runs at another rate); `assets` must be decoded at `rate`.
    pub fn from_project_at(state: &ProjectState, assets: &HashMap<AssetId, Pcm>, rate: u32) -> Arrangement {
        let project = state.project();
        let timebase = Timebase::new(project.tempo, rate);
        let frames = |ticks: Ticks| timebase.frames(ticks).0;
        let mut tracks: Vec<TrackPlan> = project
            .track_order
            .iter()
            .filter_map(|id| match state.entry((*id).into()).map(|entry| &entry.record) {
                Some(Record::Track(track)) => Some(TrackPlan {
                    id: *id,
                    gain_db: track.gain_db,
                    pan: track.pan,
                    mute: track.mute,
                    solo: track.solo,
                    clips: Vec::new(),
                    gain_envelope: Envelope::default(),
                    pan_envelope: Envelope::default(),
                    effects: Vec::new(),
                    notes: Vec::new(),
                    notes_end: 0,
                    monitor: track.record_arm,
                }),
                _ => None,
            })
            .collect();
        let index: HashMap<TrackId, usize> = tracks.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
        // Chains first (in order), so effect automation finds its effect below.
        let mut chains: Vec<Vec<(f64, EffectPlan)>> = vec![Vec::new(); tracks.len()];
        let mut master: Vec<(f64, EffectPlan)> = Vec::new();
        for (id, entry) in state.records() {
            if let Record::Effect(effect) = &entry.record {
                let plan = EffectPlan::new(EffectId(id.0), effect.kind, effect.bypass, &effect.params);
                match effect.bus {
                    Bus::Track(track) => {
                        if let Some(&track) = index.get(&track) {
                            chains[track].push((effect.position, plan));
                        }
                    }
                    Bus::Master => master.push((effect.position, plan)),
                }
            }
        }
        let in_order = |mut chain: Vec<(f64, EffectPlan)>| -> Vec<EffectPlan> {
            chain.sort_by(|(a, x), (b, y)| a.total_cmp(b).then(x.id.cmp(&y.id)));
            chain.into_iter().map(|(_, plan)| plan).collect()
        };
        for (track, chain) in tracks.iter_mut().zip(chains) {
            track.effects = in_order(chain);
        }
        let mut armed = tracks.iter_mut().filter(|track| track.monitor);
        if let Some(first) = armed.next() {
            first.monitor = first.effects.iter().any(|plan| plan.kind.is_instrument());
        }
        armed.for_each(|other| other.monitor = false);
        let master = in_order(master);
        for (_, entry) in state.records() {
            match &entry.record {
                Record::Clip(clip) => {
                    let (Some(&track), Some(source)) = (index.get(&clip.track), assets.get(&clip.asset)) else {
                        continue;
                    };
                    let asset_rate = match state.entry(clip.asset.into()).map(|e| &e.record) {
                        Some(Record::AudioAsset(asset)) => asset.sample_rate,
                        _ => source.sample_rate,
                    };
                    let offset = clip.source_offset.0 as u128 * u128::from(rate) / u128::from(asset_rate.max(1));
                    let start = frames(clip.start);
                    tracks[track].clips.push(ClipPlan {
                        start,
                        length: frames(clip.start + clip.length) - start,
                        source: source.clone(),
                        source_offset: offset as u64,
                        gain: db_to_gain(clip.gain_db),
                        fade_in: frames(clip.fade_in),
                        fade_out: frames(clip.fade_out),
                    });
                }
                Record::NoteClip(clip) => {
                    let Some(&track) = index.get(&clip.track) else { continue };
                    let (start, end) = (clip.start, clip.start + clip.length);
                    let track = &mut tracks[track];
                    track.notes_end = track.notes_end.max(frames(end));
                    for note in &clip.notes {
                        let (from, to) = (start + note.start, (start + note.start + note.length).min(end));
                        if from < end {
                            let (pitch, velocity) = (note.pitch, note.velocity);
                            track.notes.push(NoteEvent { start: frames(from), end: frames(to), pitch, velocity });
                        }
                    }
                }
                Record::AutomationLane(lane) if lane.enabled => {
                    let Some(&track) = index.get(&lane.track) else { continue };
                    let mut points: Vec<Point> = lane
                        .points
                        .iter()
                        .map(|p| Point { frame: frames(p.tick), value: p.value, curve: p.curve })
                        .collect();
                    // Stable: points at the same tick keep their list order.
                    points.sort_by_key(|point| point.frame);
                    let envelope = Envelope { points };
                    let track = &mut tracks[track];
                    match lane.parameter {
                        Parameter::Gain => track.gain_envelope = envelope,
                        Parameter::Pan => track.pan_envelope = envelope,
                        Parameter::Effect(effect, param) => {
                            let plan = track.effects.iter_mut().find(|plan| plan.id == effect);
                            if let Some((plan, index)) = plan.and_then(|p| p.kind.index_of(param).map(|i| (p, i))) {
                                plan.automation.push((index, envelope));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        for track in &mut tracks {
            track.clips.sort_by_key(|clip| clip.start);
            track.notes.sort_by_key(|note| (note.start, note.pitch));
        }
        let loop_range = project.loop_range.map(|range| (frames(range.start), frames(range.end)));
        let metronome = Metronome { timebase, time_signature: project.time_signature };
        Arrangement { sample_rate: rate, tracks, loop_range, metronome, master }
    }
}
