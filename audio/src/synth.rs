//! The built-in instrument: a polyphonic subtractive synth that plays a track's notes.
//!
//! Each of [`VOICES`] voices is an oscillator that morphs from saw to square (band-limited with
//! PolyBLEP, so high notes do not alias), a resonant low-pass (Simper's state-variable filter)
//! that the amplitude envelope sweeps open, and an ADSR envelope. A note starts on its exact
//! frame and is released on the frame it ends, whatever the block; when every voice is busy
//! the oldest gives way. When playback jumps (a seek, a loop), sounding voices are released,
//! so no note hangs.
//!
//! The synth on the monitored track also follows a [`Keyboard`]: keys held on a controller
//! sound on live voices, whether the transport plays or not, until they are let go; a jump
//! leaves them sounding.
//!
//! [`Synth::render`] adds the voices to the block and never allocates: the voices are made
//! with the synth.

use std::f64::consts::PI;

use crate::keyboard::{KeyChange, KeyReader, Keyboard};
use crate::render::Frame;

/// Notes that can sound at once.
pub const VOICES: usize = 16;

/// Frames between a voice's filter updates (its cutoff follows the envelope): the count is the
/// voice's own, so where a block starts changes nothing.
const FILTER_FRAMES: u32 = 16;

/// How loud one voice is at full velocity, so a few together stay under full scale.
const VOICE_LEVEL: f32 = 0.4;

/// How long a key struck and let go between two looks at the keyboard sounds, in seconds:
/// a drum pad's note-on and note-off can arrive together.
const TAP_SECONDS: f64 = 0.05;

/// A note as the synth plays it, in frames of the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoteEvent {
    /// The frame it starts on.
    pub start: u64,
    /// The frame it is released on.
    pub end: u64,
    /// MIDI pitch.
    pub pitch: u8,
    /// MIDI velocity, 1–127.
    pub velocity: u8,
}

/// The synth's settings, in the protocol's units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SynthSettings {
    /// Saw (0) to square (1).
    pub shape: f32,
    /// The filter's corner at rest, Hz.
    pub cutoff: f32,
    /// The filter's Q.
    pub resonance: f32,
    /// How far the envelope opens the filter: four octaves at 1.
    pub filter_env: f32,
    /// Attack, decay and release, ms; sustain 0…1.
    pub attack: f32,
    /// See `attack`.
    pub decay: f32,
    /// See `attack`.
    pub sustain: f32,
    /// See `attack`.
    pub release: f32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Stage {
    Idle,
    Attack,
    Decay,
    Sustain,
    Release,
}

#[derive(Clone, Copy, Debug)]
struct Voice {
    stage: Stage,
    level: f32,
    /// The level a release started from, for its linear fall.
    released_from: f32,
    phase: f64,
    step: f64,
    velocity: f32,
    /// When the note is released, on the timeline.
    end: u64,
    /// When it started, so the oldest gives way.
    started: u64,
    /// The key it plays.
    pitch: u8,
    /// Played from the keyboard, not from a note: it ends when its key is let go.
    live: bool,
    /// For a live voice, frames until it is released by itself (a tap); 0 holds it.
    hold: u32,
    /// Frames since the last filter update.
    since_filter: u32,
    /// The filter's coefficients and state (per Simper: g, k, and two integrators).
    filter: [f32; 4],
}

impl Voice {
    const IDLE: Voice = Voice {
        stage: Stage::Idle,
        level: 0.0,
        released_from: 0.0,
        phase: 0.0,
        step: 0.0,
        velocity: 0.0,
        end: 0,
        started: 0,
        pitch: 0,
        live: false,
        hold: 0,
        since_filter: FILTER_FRAMES,
        filter: [0.0; 4],
    };
}

/// Lets go of a sounding voice: it falls from where it is over the release time.
fn release(voice: &mut Voice) {
    if !matches!(voice.stage, Stage::Idle | Stage::Release) {
        (voice.stage, voice.released_from) = (Stage::Release, voice.level);
    }
}

/// The synth: its voices, settings, and where in the notes it is.
#[derive(Debug)]
pub struct Synth {
    rate: f64,
    settings: SynthSettings,
    voices: [Voice; VOICES],
    /// The next note to start, by index in the notes played.
    next: usize,
    /// The frame the next block should start at; any other start is a jump.
    expected: Option<u64>,
    /// What it last saw of the keyboard it follows.
    keys: KeyReader,
}

/// PolyBLEP: the correction that band-limits a jump of 2 at phase 0 (`t` and `dt` in cycles).
fn blep(t: f64, dt: f64) -> f64 {
    if t < dt {
        let t = t / dt;
        t + t - t * t - 1.0
    } else if t > 1.0 - dt {
        let t = (t - 1.0) / dt;
        t * t + t + t + 1.0
    } else {
        0.0
    }
}

impl Synth {
    /// A synth at `sample_rate` with `settings`.
    pub fn new(sample_rate: u32, settings: SynthSettings) -> Self {
        Synth {
            rate: f64::from(sample_rate),
            settings,
            voices: [Voice::IDLE; VOICES],
            next: 0,
            expected: None,
            keys: KeyReader::default(),
        }
    }

    /// Takes new settings (sounding voices follow them).
    pub fn set(&mut self, settings: SynthSettings) {
        self.settings = settings;
    }

    /// Adds the voices playing `notes` (sorted by start), and the keys held on `keyboard`,
    /// over the block that starts at timeline frame `position` to `frames`. Never allocates.
    pub fn render(&mut self, notes: &[NoteEvent], keyboard: Option<&Keyboard>, position: u64, frames: &mut [Frame]) {
        if self.expected != Some(position) {
            // A jump: let go of the notes' voices (not the keys'), and find the next note.
            self.voices.iter_mut().filter(|voice| !voice.live).for_each(release);
            self.next = notes.partition_point(|note| note.start < position);
        }
        self.follow(keyboard, position);
        let per_ms = self.rate / 1000.0;
        let SynthSettings { attack, decay, sustain, release, .. } = self.settings;
        let attack_step = 1.0 / (f64::from(attack) * per_ms).max(1.0) as f32;
        let decay_step = (1.0 - sustain) / (f64::from(decay) * per_ms).max(1.0) as f32;
        let release_frames = (f64::from(release) * per_ms).max(1.0) as f32;
        for (offset, frame) in frames.iter_mut().enumerate() {
            let now = position + offset as u64;
            while let Some(note) = notes.get(self.next).filter(|note| note.start == now) {
                self.start(*note);
                self.next += 1;
            }
            // Notes skipped over (a start inside a jump) are not played late.
            while notes.get(self.next).is_some_and(|note| note.start < now) {
                self.next += 1;
            }
            let mut sum = 0.0f32;
            for index in 0..VOICES {
                let voice = &mut self.voices[index];
                if voice.stage == Stage::Idle {
                    continue;
                }
                if voice.live && voice.hold > 0 {
                    voice.hold -= 1;
                    if voice.hold == 0 {
                        (voice.stage, voice.released_from) = (Stage::Release, voice.level);
                    }
                } else if voice.end == now && voice.stage != Stage::Release {
                    (voice.stage, voice.released_from) = (Stage::Release, voice.level);
                }
                match voice.stage {
                    Stage::Attack => {
                        voice.level += attack_step;
                        if voice.level >= 1.0 {
                            (voice.level, voice.stage) = (1.0, Stage::Decay);
                        }
                    }
                    Stage::Decay => {
                        voice.level -= decay_step;
                        if voice.level <= sustain {
                            (voice.level, voice.stage) = (sustain, Stage::Sustain);
                        }
                    }
                    Stage::Sustain => voice.level = sustain,
                    Stage::Release => {
                        voice.level -= voice.released_from / release_frames;
                        if voice.level <= 0.0 {
                            *voice = Voice::IDLE;
                            continue;
                        }
                    }
                    Stage::Idle => {}
                }
                let sample = self.voice_sample(index);
                sum += sample;
            }
            frame[0] += sum;
            frame[1] += sum;
        }
        self.expected = Some(position + frames.len() as u64);
    }

    /// Starts or releases live voices for what changed on `keyboard` since the last block;
    /// without one, lets go of the live voices (the track stopped being monitored).
    fn follow(&mut self, keyboard: Option<&Keyboard>, position: u64) {
        let Some(keyboard) = keyboard else {
            if self.keys.following() {
                self.keys.stop();
                self.voices.iter_mut().filter(|voice| voice.live).for_each(release);
            }
            return;
        };
        let mut keys = std::mem::take(&mut self.keys);
        keys.read(keyboard, |pitch, change| match change {
            KeyChange::Down(velocity) => self.start_live(pitch, velocity, position, 0),
            KeyChange::Tapped(velocity) => {
                self.start_live(pitch, velocity, position, (TAP_SECONDS * self.rate) as u32);
            }
            KeyChange::Up => {
                let held = |voice: &&mut Voice| voice.live && voice.pitch == pitch;
                self.voices.iter_mut().filter(held).for_each(release);
            }
        });
        self.keys = keys;
    }

    /// Starts `note` on a free voice, or on the oldest one.
    fn start(&mut self, note: NoteEvent) {
        let index = self.free_voice();
        self.voices[index] = Voice { end: note.end, started: note.start, ..self.voice(note.pitch, note.velocity) };
    }

    /// Starts key `pitch` on a live voice, held until it is let go (or for `hold` frames).
    fn start_live(&mut self, pitch: u8, velocity: u8, position: u64, hold: u32) {
        let index = self.free_voice();
        self.voices[index] =
            Voice { end: u64::MAX, started: position, live: true, hold, ..self.voice(pitch, velocity) };
    }

    /// A voice in its attack, playing `pitch` at `velocity`.
    fn voice(&self, pitch: u8, velocity: u8) -> Voice {
        Voice {
            stage: Stage::Attack,
            step: ensemble_protocol::Note::hertz(pitch) / self.rate,
            velocity: f32::from(velocity) / 127.0,
            pitch,
            ..Voice::IDLE
        }
    }

    /// A free voice, or the oldest one.
    fn free_voice(&self) -> usize {
        let free = self.voices.iter().position(|voice| voice.stage == Stage::Idle);
        free.unwrap_or_else(|| (0..VOICES).min_by_key(|index| self.voices[*index].started).unwrap_or(0))
    }

    /// The next sample of voice `index`: oscillator, filter, envelope.
    fn voice_sample(&mut self, index: usize) -> f32 {
        let SynthSettings { shape, cutoff, resonance, filter_env, .. } = self.settings;
        let rate = self.rate;
        let voice = &mut self.voices[index];
        let (t, dt) = (voice.phase, voice.step);
        let saw = 2.0 * t - 1.0 - blep(t, dt);
        let half = (t + 0.5).fract();
        let square = if t < 0.5 { 1.0 } else { -1.0 } + blep(t, dt) - blep(half, dt);
        let oscillator = (saw + (square - saw) * f64::from(shape)) as f32;
        voice.phase = (t + dt).fract();
        if voice.since_filter >= FILTER_FRAMES {
            voice.since_filter = 0;
            let opened = f64::from(cutoff) * 2f64.powf(4.0 * f64::from(filter_env * voice.level));
            let g = (PI * opened.min(rate * 0.45) / rate).tan() as f32;
            (voice.filter[0], voice.filter[1]) = (g, 1.0 / resonance.max(0.1));
        }
        voice.since_filter += 1;
        // Simper's state-variable filter, low-pass output.
        let [g, k, ic1, ic2] = voice.filter;
        let a1 = 1.0 / (1.0 + g * (g + k));
        let v3 = oscillator - ic2;
        let v1 = a1 * ic1 + g * a1 * v3;
        let v2 = ic2 + g * v1;
        (voice.filter[2], voice.filter[3]) = (2.0 * v1 - ic1, 2.0 * v2 - ic2);
        v2 * voice.level * voice.velocity * VOICE_LEVEL
    }

    /// Whether any voice sounds.
    pub fn sounding(&self) -> bool {
        self.voices.iter().any(|voice| voice.stage != Stage::Idle)
    }

    /// How long a note rings after its release, in frames.
    pub fn release_frames(&self) -> u64 {
        (f64::from(self.settings.release) * self.rate / 1000.0).ceil() as u64
    }
}
