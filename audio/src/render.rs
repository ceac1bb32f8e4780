//! Turning an [`Arrangement`] into sample frames, block by block.
//!
//! [`Renderer`] is the one piece of code that makes sound: the live engine runs it on the audio
//! thread and the export runs it as fast as the CPU allows, so what you hear is what you
//! export. It places each clip at its exact frame (not at a block boundary), applies clip gain
//! and fades, the track's fader and pan (or their automation, per sample), and mute and solo,
//! and wraps seamlessly at the loop end.
//!
//! On the audio thread nothing may allocate, free, lock or log: [`Renderer::render`] only
//! reads the arrangement and writes into the caller's buffer and its own scratch buffer, sized
//! once at creation ([`MAX_BLOCK`] frames). A test runs it under a counting allocator.

use std::path::Path;
use std::sync::Arc;

use crate::arrangement::{Arrangement, TrackPlan, db_to_gain, pan_gains};
use crate::wav::{WavFormat, write_wav};
use crate::{AudioError, Pcm};

/// Frames rendered per inner step; longer requests are split.
pub const MAX_BLOCK: usize = 1024;

/// A stereo frame.
pub type Frame = [f32; 2];

/// Which tracks a render includes.
#[derive(Clone, Copy, Debug)]
enum Selection {
    /// Every audible track.
    Mix,
    /// One track, solo ignored.
    Stem(usize),
    /// One track, if audible.
    Track(usize),
    /// The click track.
    Metronome,
}

/// Renders an arrangement from a playhead.
#[derive(Debug)]
pub struct Renderer {
    arrangement: Arc<Arrangement>,
    position: u64,
    looping: bool,
    scratch: Vec<Frame>,
}

impl Renderer {
    /// A renderer at frame 0, looping when the arrangement has a loop range.
    pub fn new(arrangement: Arc<Arrangement>) -> Self {
        Renderer { arrangement, position: 0, looping: true, scratch: vec![[0.0; 2]; MAX_BLOCK] }
    }

    /// The playhead: the next frame to render.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Moves the playhead.
    pub fn seek(&mut self, frame: u64) {
        self.position = frame;
    }

    /// Whether the loop range repeats (export renders straight through).
    pub fn set_looping(&mut self, looping: bool) {
        self.looping = looping;
    }

    /// The arrangement it renders.
    pub fn arrangement(&self) -> &Arc<Arrangement> {
        &self.arrangement
    }

    /// Replaces the arrangement (after an edit), keeping the playhead.
    pub fn set_arrangement(&mut self, arrangement: Arc<Arrangement>) {
        self.arrangement = arrangement;
    }

    /// Renders the mix of audible tracks into `out`, advancing the playhead. Never allocates.
    pub fn render(&mut self, out: &mut [Frame]) {
        self.render_tracks(out, Selection::Mix);
    }

    /// Renders one track (a stem, muted tracks silent, solo ignored) into `out`.
    pub fn render_stem(&mut self, track: usize, out: &mut [Frame]) {
        self.render_tracks(out, Selection::Stem(track));
    }

    /// Renders one track's part of the mix (silent when muted, or when others are soloed):
    /// what the live engine's per-track sound plays.
    pub fn render_track(&mut self, track: usize, out: &mut [Frame]) {
        self.render_tracks(out, Selection::Track(track));
    }

    /// Renders the metronome's clicks into `out`.
    pub fn render_metronome(&mut self, out: &mut [Frame]) {
        self.render_tracks(out, Selection::Metronome);
    }

    fn render_tracks(&mut self, out: &mut [Frame], only: Selection) {
        let mut done = 0;
        while done < out.len() {
            let mut frames = (out.len() - done).min(MAX_BLOCK);
            let wrap = self.loop_end();
            if let Some(end) = wrap {
                frames = frames.min((end - self.position) as usize);
            }
            self.render_segment(&mut out[done..done + frames], only);
            self.position += frames as u64;
            if let (Some(end), Some((start, _))) = (wrap, self.arrangement.loop_range)
                && self.position == end
            {
                self.position = start;
            }
            done += frames;
        }
    }

    /// The loop end ahead of the playhead, if playback will wrap there.
    fn loop_end(&self) -> Option<u64> {
        match self.arrangement.loop_range {
            Some((start, end)) if self.looping && start < end && self.position < end => Some(end),
            _ => None,
        }
    }

    fn render_segment(&mut self, out: &mut [Frame], only: Selection) {
        out.fill([0.0; 2]);
        let arrangement = &*self.arrangement;
        if let Selection::Metronome = only {
            for (offset, out) in out.iter_mut().enumerate() {
                let click = arrangement.metronome.sample_at(self.position + offset as u64);
                *out = [click, click];
            }
            return;
        }
        for (index, track) in arrangement.tracks.iter().enumerate() {
            let wanted = match only {
                Selection::Mix => arrangement.audible(track),
                Selection::Stem(only) => only == index && !track.mute,
                Selection::Track(only) => only == index && arrangement.audible(track),
                Selection::Metronome => false,
            };
            if wanted {
                let scratch = &mut self.scratch[..out.len()];
                render_clips(track, self.position, scratch);
                mix_track(track, self.position, scratch, out);
            }
        }
    }
}

/// Sums the track's clips over `[position, position + scratch.len())` into `scratch`.
fn render_clips(track: &TrackPlan, position: u64, scratch: &mut [Frame]) {
    scratch.fill([0.0; 2]);
    let end = position + scratch.len() as u64;
    for clip in track.clips.iter().take_while(|clip| clip.start < end) {
        if clip.end() <= position {
            continue;
        }
        let (left, right) = match clip.source.channels.as_slice() {
            [mono] => (mono, mono),
            [left, right, ..] => (left, right),
            [] => continue,
        };
        let from = position.max(clip.start);
        let first_source = (clip.source_offset + from - clip.start) as usize;
        // The clip may outlast its audio: past the source's end it is silent.
        let available = left.len().min(right.len()).saturating_sub(first_source) as u64;
        let to = end.min(clip.end()).min(from + available);
        if to <= from {
            continue;
        }
        let frames = (to - from) as usize;
        let out = &mut scratch[(from - position) as usize..][..frames];
        let (left, right) = (&left[first_source..][..frames], &right[first_source..][..frames]);
        let fading = from < clip.start + clip.fade_in || to + clip.fade_out > clip.end();
        if fading {
            for (offset, ((out, l), r)) in out.iter_mut().zip(left).zip(right).enumerate() {
                let gain = clip.gain_at(from + offset as u64);
                out[0] += l * gain;
                out[1] += r * gain;
            }
        } else {
            let gain = clip.gain;
            for ((out, l), r) in out.iter_mut().zip(left).zip(right) {
                out[0] += l * gain;
                out[1] += r * gain;
            }
        }
    }
}

/// Automation is evaluated exactly every this many frames (and at every breakpoint); the
/// linear gains in between are interpolated, which is within 1e-7 of evaluating every frame
/// and a fraction of the cost.
const CONTROL_FRAMES: u64 = 32;

/// The track's left and right gains at `frame`: fader (or gain automation) times pan law.
fn gains_at(track: &TrackPlan, frame: u64) -> (f32, f32) {
    let gain = db_to_gain(track.gain_envelope.value_at(frame).unwrap_or(track.gain_db));
    let (left, right) = pan_gains(track.pan_envelope.value_at(frame).unwrap_or(track.pan));
    (gain * left, gain * right)
}

/// Applies the track's fader and pan (or their automation) to `scratch` and adds it to `out`.
fn mix_track(track: &TrackPlan, position: u64, scratch: &[Frame], out: &mut [Frame]) {
    let automated = !track.gain_envelope.points.is_empty() || !track.pan_envelope.points.is_empty();
    if !automated {
        let (left, right) = gains_at(track, position);
        for (out, frame) in out.iter_mut().zip(scratch) {
            out[0] += frame[0] * left;
            out[1] += frame[1] * right;
        }
        return;
    }
    let mut done = 0;
    while done < out.len() {
        let at = position + done as u64;
        // Never interpolate across a breakpoint: a held value jumps there.
        let until = track.gain_envelope.next_break(at).min(track.pan_envelope.next_break(at));
        let frames = (out.len() - done).min(CONTROL_FRAMES as usize).min((until - at) as usize).max(1);
        let first = gains_at(track, at);
        let last = if frames > 1 { gains_at(track, at + frames as u64 - 1) } else { first };
        let step = ((last.0 - first.0) / (frames.max(2) - 1) as f32, (last.1 - first.1) / (frames.max(2) - 1) as f32);
        for (k, (out, frame)) in out[done..done + frames].iter_mut().zip(&scratch[done..]).enumerate() {
            let (left, right) = (first.0 + step.0 * k as f32, first.1 + step.1 * k as f32);
            out[0] += frame[0] * left;
            out[1] += frame[1] * right;
        }
        done += frames;
    }
}

fn to_pcm(sample_rate: u32, frames: &[Frame]) -> Pcm {
    Pcm::new(sample_rate, vec![frames.iter().map(|f| f[0]).collect(), frames.iter().map(|f| f[1]).collect()])
}

/// Renders `selection` from frame 0 to the end of the last clip, straight through (no looping).
fn render_whole(arrangement: Arc<Arrangement>, selection: Selection) -> Pcm {
    let (frames, rate) = (arrangement.end() as usize, arrangement.sample_rate);
    let mut renderer = Renderer::new(arrangement);
    renderer.set_looping(false);
    let mut out = vec![[0.0; 2]; frames];
    renderer.render_tracks(&mut out, selection);
    to_pcm(rate, &out)
}

/// The whole mix from frame 0 to the end of the last clip, straight through (no looping).
pub fn render_mix(arrangement: Arc<Arrangement>) -> Pcm {
    render_whole(arrangement, Selection::Mix)
}

/// One stem per track, each from frame 0 to the end of the arrangement's last clip.
pub fn render_stems(arrangement: Arc<Arrangement>) -> Vec<Pcm> {
    (0..arrangement.tracks.len()).map(|track| render_whole(arrangement.clone(), Selection::Stem(track))).collect()
}

/// Renders the mix and writes it to `path`.
pub fn export_mix(arrangement: Arc<Arrangement>, path: &Path, format: WavFormat) -> Result<(), AudioError> {
    write_wav(path, &render_mix(arrangement), format)
}
