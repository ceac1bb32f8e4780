//! Effects: the processors on a track's insert chain, their kinds and typed parameters.
//!
//! An [`Effect`] is a record of its own, so two people can turn different knobs of one effect
//! (or of one chain) at once: each knob is one [`EffectField::Param`], set like any field, and
//! automated like gain and pan ([`Parameter::Effect`](crate::Parameter::Effect)).
//!
//! A chain's order is each effect's [`Effect::position`]: the chain plays its effects by
//! ascending position, ties broken by id. Adding an effect is a `Create` with a position
//! between its neighbours', moving one is a `Set` of its position, removing one a `Delete`, so
//! concurrent edits of one chain never conflict (a list inside the track record would have
//! changed the stored format of every track). [`position_between`] picks a position.
//!
//! Each [`EffectKind`] has a fixed list of parameters ([`EffectKind::params`]), each with a unit,
//! a range and a default ([`EffectParam::range`], [`EffectParam::default_for`]); an effect
//! stores their values in that order.

use serde::{Deserialize, Serialize};

use crate::ids::TrackId;

/// Most effects on one chain.
pub const MAX_EFFECTS: usize = 16;

/// Where an effect sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Bus {
    /// A track's insert chain: after its clips, before its fader and pan.
    Track(TrackId),
    /// The master chain: on the mix of every track, before the output (and the export). It
    /// holds no instrument, and its knobs are not automated (lanes belong to tracks).
    Master,
}

impl Bus {
    /// The track, for a track's chain.
    pub fn track(self) -> Option<TrackId> {
        match self {
            Bus::Track(track) => Some(track),
            Bus::Master => None,
        }
    }
}

/// What an effect does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EffectKind {
    /// Three-band equaliser: a low shelf, a peaking bell, a high shelf.
    Eq,
    /// Feed-forward compressor.
    Compressor,
    /// Stereo room reverb.
    Reverb,
    /// Feedback echo.
    Delay,
    /// Resonant low-pass filter (cuts above the cutoff).
    LowPass,
    /// Resonant high-pass filter (cuts below the cutoff).
    HighPass,
    /// The built-in instrument: a polyphonic subtractive synth that plays the track's note
    /// clips (an oscillator from saw to square, a resonant low-pass swept by the envelope, an
    /// ADSR), adding its voices to the chain where it sits.
    Synth,
}

impl EffectKind {
    /// Every kind, in the order an "add effect" menu lists them.
    pub const ALL: [EffectKind; 7] = [
        EffectKind::Synth,
        EffectKind::Eq,
        EffectKind::Compressor,
        EffectKind::Reverb,
        EffectKind::Delay,
        EffectKind::LowPass,
        EffectKind::HighPass,
    ];

    /// The parameters an effect of this kind has, in the order it stores them.
    pub fn params(self) -> &'static [EffectParam] {
        use EffectParam::*;
        match self {
            EffectKind::Eq => &[LowFreq, LowGain, MidFreq, MidGain, MidQ, HighFreq, HighGain],
            EffectKind::Compressor => &[Threshold, Ratio, Attack, Release, Makeup],
            EffectKind::Reverb => &[RoomSize, Damping, Width, Mix],
            EffectKind::Delay => &[DelayTime, Feedback, Mix],
            EffectKind::LowPass | EffectKind::HighPass => &[Cutoff, Resonance],
            EffectKind::Synth => &[Shape, Cutoff, Resonance, FilterEnv, AmpAttack, AmpDecay, AmpSustain, AmpRelease],
        }
    }

    /// Where `param` is stored in an effect of this kind, if it has it.
    pub fn index_of(self, param: EffectParam) -> Option<usize> {
        self.params().iter().position(|p| *p == param)
    }

    /// The parameters' defaults, in storage order: what a new effect starts with.
    pub fn defaults(self) -> Vec<f32> {
        self.params().iter().map(|param| param.default_for(self)).collect()
    }

    /// Shown in the rack.
    pub fn label(self) -> &'static str {
        match self {
            EffectKind::Eq => "EQ",
            EffectKind::Compressor => "Compressor",
            EffectKind::Reverb => "Reverb",
            EffectKind::Delay => "Delay",
            EffectKind::LowPass => "Low-pass",
            EffectKind::HighPass => "High-pass",
            EffectKind::Synth => "Synth",
        }
    }

    /// Whether it makes sound of its own (from the track's notes) rather than only shaping
    /// what reaches it.
    pub fn is_instrument(self) -> bool {
        self == EffectKind::Synth
    }
}

/// A parameter's unit, for display and for how a knob moves (frequencies logarithmically).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Hertz.
    Hertz,
    /// Decibels.
    Decibels,
    /// Milliseconds.
    Milliseconds,
    /// A ratio `n:1`.
    Ratio,
    /// A plain number (Q).
    Number,
    /// 0…1, shown as a percentage.
    Fraction,
}

/// One knob of an effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EffectParam {
    /// EQ: the low shelf's corner, Hz.
    LowFreq,
    /// EQ: the low shelf's gain, dB.
    LowGain,
    /// EQ: the bell's centre, Hz.
    MidFreq,
    /// EQ: the bell's gain, dB.
    MidGain,
    /// EQ: the bell's Q.
    MidQ,
    /// EQ: the high shelf's corner, Hz.
    HighFreq,
    /// EQ: the high shelf's gain, dB.
    HighGain,
    /// Compressor: the level above which it reduces gain, dB.
    Threshold,
    /// Compressor: input dB above the threshold per output dB.
    Ratio,
    /// Compressor: how fast it reduces gain, ms.
    Attack,
    /// Compressor: how fast it lets go, ms.
    Release,
    /// Compressor: gain after compression, dB.
    Makeup,
    /// Reverb: the room's size, 0…1 (longer tails).
    RoomSize,
    /// Reverb: how much the tail's highs die away, 0…1.
    Damping,
    /// Reverb: stereo width of the tail, 0…1.
    Width,
    /// Reverb and delay: the processed share of the output, 0…1.
    Mix,
    /// Delay: the time between echoes, ms.
    DelayTime,
    /// Delay: how much of each echo comes back, 0…0.95.
    Feedback,
    /// Filters: the corner frequency, Hz.
    Cutoff,
    /// Filters: the resonance (Q) at the corner.
    Resonance,
    /// Synth: the oscillator, from saw (0) to square (1).
    Shape,
    /// Synth: how far the envelope opens the filter, 0…1 (four octaves at 1).
    FilterEnv,
    /// Synth: the time a note takes to reach full level, ms.
    AmpAttack,
    /// Synth: the time it then takes to fall to the sustain level, ms.
    AmpDecay,
    /// Synth: the level held while the note is, 0…1.
    AmpSustain,
    /// Synth: the time a released note takes to die away, ms.
    AmpRelease,
}

impl EffectParam {
    /// The values it accepts, inclusive.
    pub fn range(self) -> (f32, f32) {
        use EffectParam::*;
        match self {
            LowFreq => (20.0, 1_000.0),
            MidFreq => (40.0, 16_000.0),
            HighFreq => (1_000.0, 20_000.0),
            Cutoff => (20.0, 20_000.0),
            LowGain | MidGain | HighGain => (-24.0, 24.0),
            MidQ | Resonance => (0.1, 10.0),
            Threshold => (-60.0, 0.0),
            Ratio => (1.0, 20.0),
            Attack => (0.1, 200.0),
            Release => (10.0, 2_000.0),
            Makeup => (0.0, 24.0),
            RoomSize | Damping | Width | Mix => (0.0, 1.0),
            DelayTime => (1.0, 2_000.0),
            Feedback => (0.0, 0.95),
            Shape | FilterEnv | AmpSustain => (0.0, 1.0),
            AmpAttack => (1.0, 2_000.0),
            AmpDecay | AmpRelease => (5.0, 5_000.0),
        }
    }

    /// Its value in a new effect of `kind`.
    pub fn default_for(self, kind: EffectKind) -> f32 {
        use EffectParam::*;
        match self {
            LowFreq => 100.0,
            MidFreq => 1_000.0,
            HighFreq => 8_000.0,
            Cutoff if kind == EffectKind::HighPass => 100.0,
            Cutoff if kind == EffectKind::Synth => 1_800.0,
            Cutoff => 5_000.0,
            LowGain | MidGain | HighGain | Makeup => 0.0,
            MidQ | Resonance => std::f32::consts::FRAC_1_SQRT_2,
            Threshold => -18.0,
            Ratio => 4.0,
            Attack => 10.0,
            Release => 100.0,
            RoomSize => 0.6,
            Damping => 0.4,
            Width => 1.0,
            Mix if kind == EffectKind::Delay => 0.25,
            Mix => 0.3,
            DelayTime => 375.0,
            Feedback => 0.35,
            Shape => 0.0,
            FilterEnv => 0.35,
            AmpAttack => 5.0,
            AmpDecay => 300.0,
            AmpSustain => 0.6,
            AmpRelease => 200.0,
        }
    }

    /// Its unit.
    pub fn unit(self) -> Unit {
        use EffectParam::*;
        match self {
            LowFreq | MidFreq | HighFreq | Cutoff => Unit::Hertz,
            LowGain | MidGain | HighGain | Threshold | Makeup => Unit::Decibels,
            Attack | Release | DelayTime | AmpAttack | AmpDecay | AmpRelease => Unit::Milliseconds,
            Ratio => Unit::Ratio,
            MidQ | Resonance => Unit::Number,
            RoomSize | Damping | Width | Mix | Feedback | Shape | FilterEnv | AmpSustain => Unit::Fraction,
        }
    }

    /// Shown under its knob.
    pub fn label(self) -> &'static str {
        use EffectParam::*;
        match self {
            LowFreq => "Low Hz",
            LowGain => "Low",
            MidFreq => "Mid Hz",
            MidGain => "Mid",
            MidQ => "Mid Q",
            HighFreq => "High Hz",
            HighGain => "High",
            Threshold => "Thresh",
            Ratio => "Ratio",
            Attack => "Attack",
            Release => "Release",
            Makeup => "Makeup",
            RoomSize => "Size",
            Damping => "Damp",
            Width => "Width",
            Mix => "Mix",
            DelayTime => "Time",
            Feedback => "Feedback",
            Cutoff => "Cutoff",
            Resonance => "Reso",
            Shape => "Shape",
            FilterEnv => "Env",
            AmpAttack => "Attack",
            AmpDecay => "Decay",
            AmpSustain => "Sustain",
            AmpRelease => "Release",
        }
    }

    /// Whether `value` is in its range (and a number).
    pub fn accepts(self, value: f32) -> bool {
        let (low, high) = self.range();
        (low..=high).contains(&value)
    }
}

/// The synth's presets: a name, and the settings that differ from its defaults.
pub const SYNTH_PRESETS: [(&str, &[(EffectParam, f32)]); 4] = [
    (
        "Bass",
        &[
            (EffectParam::Cutoff, 600.0),
            (EffectParam::FilterEnv, 0.5),
            (EffectParam::AmpDecay, 250.0),
            (EffectParam::AmpSustain, 0.7),
        ],
    ),
    (
        "Pad",
        &[
            (EffectParam::Shape, 0.4),
            (EffectParam::Cutoff, 1_200.0),
            (EffectParam::FilterEnv, 0.2),
            (EffectParam::AmpAttack, 400.0),
            (EffectParam::AmpSustain, 0.8),
            (EffectParam::AmpRelease, 1_200.0),
        ],
    ),
    ("Lead", &[(EffectParam::Shape, 1.0), (EffectParam::Cutoff, 3_000.0), (EffectParam::Resonance, 2.0)]),
    (
        "Pluck",
        &[
            (EffectParam::Cutoff, 900.0),
            (EffectParam::FilterEnv, 0.8),
            (EffectParam::AmpDecay, 180.0),
            (EffectParam::AmpSustain, 0.0),
        ],
    ),
];

/// An effect on a chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// The chain it is on.
    pub bus: Bus,
    /// What it does; fixed at creation.
    pub kind: EffectKind,
    /// Where it sits in the chain: lower plays first (see the module docs).
    pub position: f64,
    /// Passed over: the chain sounds as if it were not there.
    pub bypass: bool,
    /// The parameters' values, in [`EffectKind::params`] order.
    pub params: Vec<f32>,
}

impl Effect {
    /// A new effect of `kind` at `position` on `bus`, with the kind's defaults.
    pub fn new(bus: Bus, kind: EffectKind, position: f64) -> Self {
        Effect { bus, kind, position, bypass: false, params: kind.defaults() }
    }

    /// This effect with `settings` made (a preset, say); parameters its kind does not have are
    /// passed over.
    pub fn with(mut self, settings: &[(EffectParam, f32)]) -> Self {
        for (param, value) in settings {
            if let Some(slot) = self.kind.index_of(*param).and_then(|index| self.params.get_mut(index)) {
                *slot = *value;
            }
        }
        self
    }

    /// `param`'s value, or `None` when this kind has no such parameter.
    pub fn param(&self, param: EffectParam) -> Option<f32> {
        self.kind.index_of(param).and_then(|index| self.params.get(index).copied())
    }
}

/// A settable field of [`Effect`] with its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum EffectField {
    /// [`Effect::position`]: moves the effect within its chain.
    Position(f64),
    /// [`Effect::bypass`].
    Bypass(bool),
    /// One parameter's value: only a kind that has the parameter takes it.
    Param(EffectParam, f32),
}

impl EffectField {
    /// The same field as it currently is in `effect`, or `None` when the effect's kind has no
    /// such parameter.
    pub fn read(&self, effect: &Effect) -> Option<Self> {
        Some(match self {
            EffectField::Position(_) => EffectField::Position(effect.position),
            EffectField::Bypass(_) => EffectField::Bypass(effect.bypass),
            EffectField::Param(param, _) => EffectField::Param(*param, effect.param(*param)?),
        })
    }

    /// Writes this value into `effect` and returns the value it replaced; gives the field back
    /// unchanged when the effect's kind has no such parameter.
    pub fn replace(self, effect: &mut Effect) -> Result<Self, Self> {
        Ok(match self {
            EffectField::Position(value) => EffectField::Position(std::mem::replace(&mut effect.position, value)),
            EffectField::Bypass(value) => EffectField::Bypass(std::mem::replace(&mut effect.bypass, value)),
            EffectField::Param(param, value) => {
                let Some(slot) = effect.kind.index_of(param).and_then(|index| effect.params.get_mut(index)) else {
                    return Err(self);
                };
                EffectField::Param(param, std::mem::replace(slot, value))
            }
        })
    }

    /// The field's name, for error messages (and to tell fields apart: each parameter is a
    /// field of its own).
    pub fn name(&self) -> &'static str {
        match self {
            EffectField::Position(_) => "position",
            EffectField::Bypass(_) => "bypass",
            EffectField::Param(param, _) => param.label(),
        }
    }
}

/// A position for an effect placed between neighbours at `before` and `after` (either may be
/// missing: the chain's start or end), or `None` when no float fits between them, and the
/// chain needs new positions (1, 2, 3… in order) first.
pub fn position_between(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    let position = match (before, after) {
        (None, None) => 1.0,
        (Some(before), None) => before.floor() + 1.0,
        (None, Some(after)) => after.ceil() - 1.0,
        (Some(before), Some(after)) => before + (after - before) / 2.0,
    };
    let inside = before.is_none_or(|before| position > before) && after.is_none_or(|after| position < after);
    (inside && position.is_finite()).then_some(position)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_in_its_range() {
        for kind in EffectKind::ALL {
            for param in kind.params() {
                let value = param.default_for(kind);
                assert!(param.accepts(value), "{kind:?} {param:?} default {value}");
            }
        }
    }

    #[test]
    fn positions_fall_between_their_neighbours_until_floats_run_out() {
        assert_eq!(position_between(None, None), Some(1.0));
        assert_eq!(position_between(Some(2.5), None), Some(3.0));
        assert_eq!(position_between(None, Some(1.0)), Some(0.0));
        assert_eq!(position_between(Some(1.0), Some(2.0)), Some(1.5));
        let (mut low, high) = (1.0, 2.0);
        let mut steps = 0;
        while let Some(position) = position_between(Some(low), Some(high)) {
            low = position;
            steps += 1;
        }
        assert_eq!(steps, 52, "a double halves its gap 52 times between 1 and 2");
    }

    #[test]
    fn a_param_is_a_field_only_of_kinds_that_have_it() {
        let mut reverb = Effect::new(Bus::Track(TrackId::from_u128(1)), EffectKind::Reverb, 1.0);
        let old = EffectField::Param(EffectParam::Mix, 0.5).replace(&mut reverb);
        assert_eq!(old, Ok(EffectField::Param(EffectParam::Mix, 0.3)));
        assert_eq!(reverb.param(EffectParam::Mix), Some(0.5));
        let cutoff = EffectField::Param(EffectParam::Cutoff, 400.0);
        assert_eq!(cutoff.read(&reverb), None);
        assert_eq!(cutoff.clone().replace(&mut reverb), Err(cutoff));
    }
}
