//! Turning an [`Arrangement`] into sample frames, block by block.
//!
//! [`Renderer`] is the one piece of code that makes sound: the live engine runs it on the audio
//! thread and the export runs it as fast as the CPU allows, so what you hear is what you
//! export. It places each clip at its exact frame (not at a block boundary), applies clip gain
//! and fades, the track's fader and pan (or their automation, per sample), and mute and solo,
//! and wraps seamlessly at the loop end. Between a track's clips and its fader, the track's
//! insert chain runs in a [`Rack`] (see [`crate::effects`]); the master chain runs on the sum
//! of the tracks (the live engine runs it on the sub-track its track sounds play into).
//!
//! An edit while playing crossfades ([`Renderer::crossfade_to`]): the clips of the old and the
//! new arrangement are blended, the chain runs once on the blend (so a reverb's tail carries
//! through the edit), and the old and new fader and pan are blended after it.
//!
//! On the audio thread nothing may allocate, free, lock or log: [`Renderer::render`] only
//! reads the arrangement and writes into the caller's buffer and its own scratch buffers, sized
//! once at creation ([`MAX_BLOCK`] frames), and its racks were made with it
//! ([`Renderer::adopt_rack`] swaps in one made elsewhere). A test runs it under a counting
//! allocator.

use std::path::Path;
use std::sync::Arc;

use ensemble_protocol::Curve;

use crate::arrangement::{Arrangement, Span, TrackPlan, db_to_gain, pan_angle, pan_gains};
use crate::effects::Rack;
use crate::keyboard::Keyboard;
use crate::wav::{WavFormat, write_wav};
use crate::{AudioError, Pcm};

/// Frames rendered per inner step; longer requests are split.
pub const MAX_BLOCK: usize = 1024;

/// How long [`Renderer::crossfade_to`] blends the old arrangement into the new, so a fader, a
/// pan, a mute or a moved clip changes at once but without a click: 256 frames is 5.3 ms at
/// 48 kHz.
pub const CROSSFADE_FRAMES: usize = 256;

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
    /// Each track's chain, by index; `None` for tracks this renderer never plays.
    racks: Vec<Option<Rack>>,
    /// The master chain, for a renderer of the whole mix (the live engine runs it on the mix
    /// of its track sounds instead).
    master: Option<Rack>,
    /// The keys a player holds, heard through the monitored track's instrument (live only).
    keyboard: Option<Arc<Keyboard>>,
    /// The arrangement before the latest edit, while a crossfade from it runs (`fade` frames
    /// left).
    previous: Option<Arc<Arrangement>>,
    fade: usize,
    scratch: Vec<Frame>,
    /// The old arrangement's clips, then its faded output, during a crossfade.
    fade_dry: Vec<Frame>,
    fade_out: Vec<Frame>,
}

impl Renderer {
    /// A renderer of every track at frame 0, looping when the arrangement has a loop range.
    pub fn new(arrangement: Arc<Arrangement>) -> Self {
        let tracks = 0..arrangement.tracks.len();
        let master = Rack::new(&arrangement.master, arrangement.sample_rate);
        Renderer { master: Some(master), ..Self::with_racks(arrangement, tracks) }
    }

    /// A renderer that plays only track `index` (the live engine's per-track sound): it holds
    /// that track's chain only.
    pub fn for_track(arrangement: Arc<Arrangement>, index: usize) -> Self {
        Self::with_racks(arrangement, index..index + 1)
    }

    /// A renderer that holds no chain: the metronome's.
    pub fn without_chains(arrangement: Arc<Arrangement>) -> Self {
        Self::with_racks(arrangement, 0..0)
    }

    fn with_racks(arrangement: Arc<Arrangement>, tracks: std::ops::Range<usize>) -> Self {
        let rate = arrangement.sample_rate;
        let racks = (0..arrangement.tracks.len())
            .map(|index| tracks.contains(&index).then(|| Rack::new(&arrangement.tracks[index].effects, rate)))
            .collect();
        let buffer = || vec![[0.0; 2]; MAX_BLOCK];
        Renderer {
            arrangement,
            position: 0,
            looping: true,
            racks,
            master: None,
            keyboard: None,
            previous: None,
            fade: 0,
            scratch: buffer(),
            fade_dry: buffer(),
            fade_out: buffer(),
        }
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

    /// Plays the keys held on `keyboard` through the monitored track's instrument (see
    /// [`TrackPlan::monitor`]), while playing and through [`Renderer::monitor`] when stopped.
    /// The caller keeps a reference, so the renderer never frees it.
    pub fn set_keyboard(&mut self, keyboard: Option<Arc<Keyboard>>) {
        self.keyboard = keyboard;
    }

    /// Renders only the monitored track's chain, playing the keys held on the keyboard, into
    /// `out` (silence for any other track), without moving the playhead: what a stopped
    /// transport plays while someone plays the controller. Never allocates.
    pub fn monitor(&mut self, track: usize, out: &mut [Frame]) {
        out.fill([0.0; 2]);
        let arrangement = &*self.arrangement;
        let (Some(plan), Some(Some(rack))) = (arrangement.tracks.get(track), self.racks.get_mut(track)) else {
            return;
        };
        let keyboard = self.keyboard.as_deref().filter(|_| plan.monitor && arrangement.audible(plan));
        if keyboard.is_none() && !rack.sounding() {
            return;
        }
        for chunk in out.chunks_mut(MAX_BLOCK) {
            let scratch = &mut self.scratch[..chunk.len()];
            scratch.fill([0.0; 2]);
            rack.process(&plan.effects, &[], keyboard, self.position, scratch);
            mix_track(plan, self.position, scratch, chunk);
        }
    }

    /// Replaces the arrangement (after an edit), keeping the playhead. The racks keep their
    /// effects' state; an effect they have no slot for is passed over until a rack that has
    /// it is adopted.
    pub fn set_arrangement(&mut self, arrangement: Arc<Arrangement>) {
        self.arrangement = arrangement;
        self.previous = None;
        self.fade = 0;
    }

    /// Replaces the arrangement and blends from the old one over [`CROSSFADE_FRAMES`] (see the
    /// module docs). The old arrangement is only dropped here if nobody else holds it: the live
    /// engine keeps every one it sent.
    pub fn crossfade_to(&mut self, arrangement: Arc<Arrangement>) {
        self.previous = Some(std::mem::replace(&mut self.arrangement, arrangement));
        self.fade = CROSSFADE_FRAMES;
    }

    /// Takes `rack` as track `index`'s chain, carrying over the state of every effect the two
    /// share (see [`Rack::adopt`]), and gives back the rack it replaced, for its owner to drop
    /// off the audio thread. Never allocates.
    pub fn adopt_rack(&mut self, index: usize, mut rack: Box<Rack>) -> Box<Rack> {
        if let Some(Some(current)) = self.racks.get_mut(index) {
            current.adopt(&mut rack);
        }
        rack
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
            let segment = &mut out[done..done + frames];
            self.render_segment(segment, only);
            if let (Selection::Mix, Some(master)) = (only, self.master.as_mut()) {
                master.process(&self.arrangement.master, &[], None, self.position, segment);
            }
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
        let wanted = |arrangement: &Arrangement, index: usize, track: &TrackPlan| match only {
            Selection::Mix => arrangement.audible(track),
            Selection::Stem(only) => only == index && !track.mute,
            Selection::Track(only) => only == index && arrangement.audible(track),
            Selection::Metronome => false,
        };
        let previous = self.previous.as_deref().filter(|_| self.fade > 0);
        let frames = out.len();
        for (index, track) in arrangement.tracks.iter().enumerate() {
            let old = previous.and_then(|previous| Some((previous, previous.tracks.get(index)?)));
            let old = old.filter(|(previous, old)| wanted(previous, index, old)).map(|(_, old)| old);
            if !wanted(arrangement, index, track) && old.is_none() {
                continue;
            }
            let scratch = &mut self.scratch[..frames];
            render_clips(track, self.position, scratch);
            let keyboard = self.keyboard.as_deref().filter(|_| track.monitor);
            let Some(old) = old else {
                if let Some(Some(rack)) = self.racks.get_mut(index) {
                    rack.process(&track.effects, &track.notes, keyboard, self.position, scratch);
                }
                mix_track(track, self.position, scratch, out);
                continue;
            };
            // A crossfade: the clips blend, the chain runs once, the faders blend.
            let weight = |k: usize| 1.0 - self.fade.saturating_sub(k) as f32 / CROSSFADE_FRAMES as f32;
            let old_dry = &mut self.fade_dry[..frames];
            render_clips(old, self.position, old_dry);
            for (k, (new, old)) in scratch.iter_mut().zip(old_dry.iter()).enumerate() {
                let weight = weight(k);
                for (new, old) in new.iter_mut().zip(old) {
                    *new = old + (*new - old) * weight;
                }
            }
            if let Some(Some(rack)) = self.racks.get_mut(index) {
                rack.process(&track.effects, &track.notes, keyboard, self.position, scratch);
            }
            let (old_out, new_out) = (&mut self.fade_out[..frames], &mut self.fade_dry[..frames]);
            old_out.fill([0.0; 2]);
            new_out.fill([0.0; 2]);
            mix_track(old, self.position, scratch, old_out);
            if wanted(arrangement, index, track) {
                mix_track(track, self.position, scratch, new_out);
            }
            for (k, ((out, new), old)) in out.iter_mut().zip(new_out.iter()).zip(old_out.iter()).enumerate() {
                let weight = weight(k);
                for ((out, new), old) in out.iter_mut().zip(new).zip(old) {
                    *out += old + (new - old) * weight;
                }
            }
        }
        if previous.is_some() {
            self.fade = self.fade.saturating_sub(frames);
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

/// Automation is computed exactly at anchors, every this many frames of the timeline and at every
/// breakpoint, and carried to the frames after an anchor by a recurrence that is exact for the
/// curve (a linear ramp in dB is geometric in gain, a linear pan sweep turns the pan law's angle
/// at a constant rate); curves with no such recurrence are evaluated at every frame. A frame's
/// value depends only on its position, never on where a block starts.
const ANCHOR_FRAMES: u64 = 32;

/// Applies the track's fader and pan (or their automation) to `scratch` and adds it to `out`.
fn mix_track(track: &TrackPlan, position: u64, scratch: &[Frame], out: &mut [Frame]) {
    let automated = !track.gain_envelope.points.is_empty() || !track.pan_envelope.points.is_empty();
    if !automated {
        let gain = db_to_gain(track.gain_db);
        let (left, right) = pan_gains(track.pan);
        let (left, right) = (gain * left, gain * right);
        for (out, frame) in out.iter_mut().zip(scratch) {
            out[0] += frame[0] * left;
            out[1] += frame[1] * right;
        }
        return;
    }
    // A stretch is at most ANCHOR_FRAMES long: its gains fit on the stack.
    const STRETCH: usize = ANCHOR_FRAMES as usize;
    let (mut gains, mut lefts, mut rights) = ([0.0f32; STRETCH], [0.0f32; STRETCH], [0.0f32; STRETCH]);
    let mut done = 0;
    while done < out.len() {
        let at = position + done as u64;
        let (gain, pan) = (track.gain_envelope.span(at), track.pan_envelope.span(at));
        let grid = at - at % ANCHOR_FRAMES;
        let anchor = [gain, pan].iter().flatten().map(|span| span.from.frame).filter(|&f| f <= at).fold(grid, u64::max);
        let until =
            (grid + ANCHOR_FRAMES).min(track.gain_envelope.next_break(at)).min(track.pan_envelope.next_break(at));
        // Every value of the stretch comes from its anchor, wherever this block began in it.
        let stretch = (until - anchor) as usize;
        Walk::gain(gain, track.gain_db, anchor).fill(&mut gains[..stretch], None);
        Walk::pan(pan, track.pan, anchor).fill(&mut lefts[..stretch], Some(&mut rights[..stretch]));
        let skip = (at - anchor) as usize;
        let frames = (out.len() - done).min(stretch - skip);
        let gains = &gains[skip..skip + frames];
        let (lefts, rights) = (&lefts[skip..skip + frames], &rights[skip..skip + frames]);
        let mixed = out[done..done + frames].iter_mut().zip(&scratch[done..]);
        for (((out, frame), gain), (left, right)) in mixed.zip(gains).zip(lefts.iter().zip(rights)) {
            out[0] += frame[0] * (gain * left);
            out[1] += frame[1] * (gain * right);
        }
        done += frames;
    }
}

/// Independent recurrences interleaved in a [`Walk`], so no frame waits on the one before it.
const CHAINS: usize = 4;

/// One automated value over a stretch, from its anchor. Gain walks yield a linear factor; pan
/// walks yield the pan law's (left, right) as `(cos, sin)` of its angle.
enum Walk {
    /// The same value at every frame.
    Fixed(f64, f64),
    /// Multiplied by a ratio each frame: a linear ramp in dB.
    Geometric { value: f64, ratio: f64 },
    /// Plus a step each frame: a linear ramp of the gain, to or from silence.
    Linear { value: f64, step: f64 },
    /// Turned by a fixed angle each frame: a linear pan sweep.
    Rotation { angle: f64, turn: f64 },
    /// Evaluated at every frame (smooth curves).
    Exact { span: Span, frame: u64, gain: bool },
}

impl Walk {
    /// The gain walk of `span` (or the fader when the lane is empty) from `anchor`.
    fn gain(span: Option<Span>, fader_db: f32, anchor: u64) -> Walk {
        let Some(span) = span else { return Walk::Fixed(f64::from(db_to_gain(fader_db)), 0.0) };
        match (span.from.curve, span.to) {
            (Curve::Linear, Some(to)) => {
                let (from_db, to_db) = (f64::from(span.from.value), f64::from(to.value));
                let length = (to.frame - span.from.frame).max(1) as f64;
                let along = anchor.saturating_sub(span.from.frame) as f64 / length;
                if from_db.is_finite() && to_db.is_finite() {
                    let value = 10f64.powf((from_db + (to_db - from_db) * along) / 20.0);
                    let ratio = 10f64.powf((to_db - from_db) / length / 20.0);
                    // Levels too far below silence for a double, or ramps too steep for one,
                    // are evaluated frame by frame.
                    if value.is_normal() && ratio.is_normal() && ratio.powi(CHAINS as i32).is_normal() {
                        Walk::Geometric { value, ratio }
                    } else {
                        Walk::Exact { span, frame: anchor, gain: true }
                    }
                } else {
                    let (from, to) = (f64::from(db_to_gain(span.from.value)), f64::from(db_to_gain(to.value)));
                    Walk::Linear { value: from + (to - from) * along, step: (to - from) / length }
                }
            }
            (Curve::Smooth, Some(_)) => Walk::Exact { span, frame: anchor, gain: true },
            _ => Walk::Fixed(f64::from(span.gain_at(anchor)), 0.0),
        }
    }

    /// The pan walk of `span` (or the fixed pan when the lane is empty) from `anchor`.
    fn pan(span: Option<Span>, fixed: f32, anchor: u64) -> Walk {
        let Some(span) = span else {
            let (cos, sin) = pan_gains(fixed);
            return Walk::Fixed(f64::from(cos), f64::from(sin));
        };
        match (span.from.curve, span.to) {
            (Curve::Linear, Some(to)) => {
                let length = (to.frame - span.from.frame).max(1) as f64;
                let turn = (pan_angle(f64::from(to.value)) - pan_angle(f64::from(span.from.value))) / length;
                Walk::Rotation { angle: pan_angle(f64::from(span.value_at(anchor))), turn }
            }
            (Curve::Smooth, Some(_)) => Walk::Exact { span, frame: anchor, gain: false },
            _ => {
                let (cos, sin) = pan_gains(span.value_at(anchor));
                Walk::Fixed(f64::from(cos), f64::from(sin))
            }
        }
    }

    /// Fills `first` (and `second`, for a pan's right gain) with one value per frame from the
    /// anchor on. The variant is matched once per stretch, and the recurrences run as
    /// [`CHAINS`] interleaved chains, each exact to rounding.
    fn fill(self, first: &mut [f32], second: Option<&mut [f32]>) {
        match self {
            Walk::Fixed(a, b) => {
                first.fill(a as f32);
                if let Some(second) = second {
                    second.fill(b as f32);
                }
            }
            Walk::Geometric { value, ratio } => {
                let mut chains = [value; CHAINS];
                for lane in 1..CHAINS {
                    chains[lane] = chains[lane - 1] * ratio;
                }
                let stride = ratio.powi(CHAINS as i32);
                for outs in first.chunks_mut(CHAINS) {
                    for (out, chain) in outs.iter_mut().zip(&mut chains) {
                        *out = *chain as f32;
                        *chain *= stride;
                    }
                }
            }
            Walk::Linear { value, step } => {
                for (index, out) in first.iter_mut().enumerate() {
                    *out = (value + step * index as f64) as f32;
                }
            }
            Walk::Rotation { angle, turn } => {
                // Two sines and cosines a stretch; the chains start one turn apart.
                let (sin, cos) = angle.sin_cos();
                let (turn_sin, turn_cos) = turn.sin_cos();
                let rotate = |(cos, sin): (f64, f64), (by_cos, by_sin): (f64, f64)| {
                    (cos * by_cos - sin * by_sin, sin * by_cos + cos * by_sin)
                };
                let mut chains = [(cos, sin); CHAINS];
                let mut stride = (turn_cos, turn_sin);
                for lane in 1..CHAINS {
                    chains[lane] = rotate(chains[lane - 1], (turn_cos, turn_sin));
                    stride = rotate(stride, (turn_cos, turn_sin));
                }
                // `stride` has turned CHAINS times: each chain steps over the other three.
                let (stride_cos, stride_sin) = stride;
                let second = second.unwrap_or_default();
                for (lefts, rights) in first.chunks_mut(CHAINS).zip(second.chunks_mut(CHAINS)) {
                    for ((left, right), (cos, sin)) in lefts.iter_mut().zip(rights).zip(&mut chains) {
                        (*left, *right) = (*cos as f32, *sin as f32);
                        (*cos, *sin) = (*cos * stride_cos - *sin * stride_sin, *sin * stride_cos + *cos * stride_sin);
                    }
                }
            }
            Walk::Exact { span, frame, gain: true } => {
                for (out, at) in first.iter_mut().zip(frame..) {
                    *out = span.gain_at(at);
                }
            }
            Walk::Exact { span, frame, gain: false } => {
                let mut second = second.unwrap_or_default().iter_mut();
                for (out, at) in first.iter_mut().zip(frame..) {
                    let (left, right) = pan_gains(span.value_at(at));
                    *out = left;
                    if let Some(second) = second.next() {
                        *second = right;
                    }
                }
            }
        }
    }
}

fn to_pcm(sample_rate: u32, frames: &[Frame]) -> Pcm {
    Pcm::new(sample_rate, vec![frames.iter().map(|f| f[0]).collect(), frames.iter().map(|f| f[1]).collect()])
}

/// Renders `selection` from frame 0 to the end of the last clip and the effects' tails, straight
/// through (no looping).
fn render_whole(arrangement: Arc<Arrangement>, selection: Selection) -> Pcm {
    let (frames, rate) = ((arrangement.end() + arrangement.tail()) as usize, arrangement.sample_rate);
    let mut renderer = match selection {
        Selection::Stem(track) => Renderer::for_track(arrangement, track),
        _ => Renderer::new(arrangement),
    };
    renderer.set_looping(false);
    let mut out = vec![[0.0; 2]; frames];
    renderer.render_tracks(&mut out, selection);
    to_pcm(rate, &out)
}

/// Frames of the mix rendered at a time by [`render_mix`]: every track renders its part of a
/// chunk on its own thread, then the parts are summed.
const MIX_CHUNK: usize = 1 << 15;

/// The whole mix from frame 0 to the end of the last clip and the effects' tails, straight
/// through (no looping). Tracks render in parallel (a renderer each, holding its chain), and
/// their parts are summed in track order: the same additions, in the same order, as one
/// renderer's mix, so the result is identical to the bit.
pub fn render_mix(arrangement: Arc<Arrangement>) -> Pcm {
    use rayon::prelude::*;
    let (frames, rate) = ((arrangement.end() + arrangement.tail()) as usize, arrangement.sample_rate);
    let mut renderers: Vec<Renderer> = (0..arrangement.tracks.len())
        .map(|track| {
            let mut renderer = Renderer::for_track(arrangement.clone(), track);
            renderer.set_looping(false);
            renderer
        })
        .collect();
    let mut parts = vec![vec![[0.0f32; 2]; MIX_CHUNK.min(frames)]; renderers.len()];
    let mut master = Rack::new(&arrangement.master, rate);
    let mut out = vec![[0.0f32; 2]; frames];
    for (index, chunk) in out.chunks_mut(MIX_CHUNK).enumerate() {
        renderers.par_iter_mut().zip(parts.par_iter_mut()).enumerate().for_each(|(track, (renderer, part))| {
            renderer.render_tracks(&mut part[..chunk.len()], Selection::Track(track));
        });
        for part in &parts {
            for (out, frame) in chunk.iter_mut().zip(part) {
                out[0] += frame[0];
                out[1] += frame[1];
            }
        }
        master.process(&arrangement.master, &[], None, (index * MIX_CHUNK) as u64, chunk);
    }
    to_pcm(rate, &out)
}

/// One stem per track, each from frame 0 to the end of the arrangement's last clip.
pub fn render_stems(arrangement: Arc<Arrangement>) -> Vec<Pcm> {
    (0..arrangement.tracks.len()).map(|track| render_whole(arrangement.clone(), Selection::Stem(track))).collect()
}

/// Renders the mix and writes it to `path`.
pub fn export_mix(arrangement: Arc<Arrangement>, path: &Path, format: WavFormat) -> Result<(), AudioError> {
    write_wav(path, &render_mix(arrangement), format)
}
