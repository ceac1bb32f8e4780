//! Recording: a take from an input onto the armed track, as a clip where it was played.
//!
//! [`RecordMsg::Start`] records onto the topmost armed track (its R button). From a stopped
//! transport, a bar of count-in plays first with the metronome ([`RecordOptions::count_in`]);
//! with [`RecordOptions::punch`] and a loop range, the take's clip covers only the range and
//! recording ends at its end. The input opens on the first frame the engine plays, and the take
//! is placed by the engine's own frame count: its first sample lies at the timeline frame the
//! engine was playing when the input began, less the input's latency, so what was played
//! lands under what was heard, sample for sample ([`placement`]). The input is the sound
//! card's ([`RecordInput::SoundCard`]) or a file played in at the wall clock's pace
//! ([`RecordInput::File`]: a machine without a sound card, and the tests).
//!
//! A take is written into the takes folder as it comes in (by [`ensemble_audio::record`], off
//! the audio thread), and [`Takes::rolling`] shows its peaks as they grow. When it ends, a note
//! of where its clip goes is written beside it, and the take waits there until the authority
//! has it: whenever the connection is online it is imported (uploaded, then placed as a clip in
//! one edit), so a take recorded offline, or before the app was closed, lands when the
//! authority is back, once. The files go when the clip is placed.
//!
//! A track with an instrument (a synth on its chain) records notes instead: what the
//! controller plays during the take ([`crate::midi_in`]), placed by the engine's frame when
//! each note arrived, becomes a note clip at once (a note clip needs no upload, so it is an
//! edit like any other, offline too). `notes` keeps a take of notes; `waiting` keeps ended
//! audio takes until the authority has them.
//!
//! The playhead wrapping at the loop's end ends a take: looped takes (one per pass) are a later
//! step.

mod notes;
mod waiting;

use std::path::{Path, PathBuf};
use std::time::Instant;

use bevy::prelude::*;
use ensemble_audio::record::{Capture, PEAK_FRAMES};
use ensemble_protocol::{Bus, Frames, NoteClipId, Op, ProjectId, Record, Ticks, Timebase, TrackId};

pub use notes::PlayedNote;

use crate::history::EditMsg;
use crate::import::{ImportDone, ImportMsg, Part};
use crate::midi_in::MidiIn;
use crate::model::{ClipData, EffectData, NoteClipData, ProjectData, RecordIndex, RecordKey, TrackData};
use crate::playback::{Playback, PlaybackSystems, Transport};
use notes::NoteTake;
use waiting::{TakeNote, Waiting, note_path};

/// Records takes onto armed tracks.
pub struct RecordPlugin {
    /// Where takes are written and wait for the authority.
    pub folder: PathBuf,
}

impl RecordPlugin {
    /// Takes in the user's data folder.
    pub fn in_data_dir() -> Self {
        RecordPlugin { folder: dirs::data_dir().unwrap_or_else(std::env::temp_dir).join("ensemble").join("takes") }
    }
}

impl Plugin for RecordPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<RecordInput>()
            .init_resource::<RecordOptions>()
            .insert_resource(Takes::new(self.folder.clone()))
            .add_message::<RecordMsg>()
            .add_message::<RecordDone>()
            .add_message::<ImportMsg>()
            .add_message::<ImportDone>()
            .add_message::<EditMsg>()
            // After the engine has followed the transport: its frame is this frame's.
            .add_systems(PostUpdate, record.after(PlaybackSystems::Engine))
            .add_systems(Update, (waiting::find_waiting, waiting::upload_waiting, waiting::landed).chain());
    }
}

/// Where takes come from.
#[derive(Resource, Clone, Debug, Default, PartialEq)]
pub enum RecordInput {
    /// The sound card's default input.
    #[default]
    SoundCard,
    /// A file played in at the wall clock's pace, as if the input took `latency` frames (at the
    /// file's rate) to hand each sound over: for a machine without a sound card, and tests.
    File {
        /// The audio file.
        path: PathBuf,
        /// The input latency it stands for.
        latency: Frames,
    },
}

/// How a take starts and ends.
#[derive(Resource, Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordOptions {
    /// From a stopped transport, a bar of metronome before the take.
    pub count_in: bool,
    /// With a loop range, the take covers only the range and ends at its end.
    pub punch: bool,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions { count_in: true, punch: false }
    }
}

/// Start or stop recording.
#[derive(Message, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordMsg {
    /// Record onto the topmost armed track.
    Start,
    /// End the take (stopping the transport does too).
    Stop,
}

/// How a take ended: where its clip goes (an audio take's lands when the authority has the
/// file), or why there is none.
#[derive(Message, Clone, Debug, PartialEq)]
pub struct RecordDone {
    /// The take, or why not.
    pub result: Result<TakeMade, String>,
}

/// A take that ended.
#[derive(Clone, Debug, PartialEq)]
pub enum TakeMade {
    /// Audio from the input, waiting for its clip.
    Audio(AudioTake),
    /// Notes from the controller, made a note clip.
    Notes {
        /// The clip's name.
        name: String,
        /// The track it is on.
        track: TrackId,
        /// The note clip.
        clip: NoteClipId,
        /// How many notes it holds.
        notes: usize,
    },
}

impl TakeMade {
    /// The clip's name.
    pub fn name(&self) -> &str {
        match self {
            TakeMade::Audio(take) => &take.name,
            TakeMade::Notes { name, .. } => name,
        }
    }
}

/// An audio take that ended and waits for its clip.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioTake {
    /// The clip's name (and the file's stem).
    pub name: String,
    /// The track it goes on.
    pub track: TrackId,
    /// The timeline frame (at the project's rate) of the take's first sample: where the input
    /// began, less its latency. Negative when that is before the song's start.
    pub first_frame: i64,
    /// Where the clip starts.
    pub start: Ticks,
    /// What part of the take it plays.
    pub part: Part,
    /// Frames in the take, at its rate.
    pub frames: u64,
    /// Its rate.
    pub sample_rate: u32,
    /// Frames the input could not hand over in time (0 in a clean take).
    pub dropped: u64,
}

/// Recording under way and takes waiting for the authority.
#[derive(Resource)]
pub struct Takes {
    folder: PathBuf,
    state: State,
    /// Ended takes whose clips have not been placed yet.
    waiting: Vec<Waiting>,
    /// The project whose waiting takes were read from the folder.
    found_for: Option<ProjectId>,
}

enum State {
    Idle,
    /// Asked for: the engine is being (re)started, or a scheduled start has not sounded yet.
    Starting(Planned),
    Rolling(Box<Rolling>),
}

/// A take asked for.
struct Planned {
    track: TrackId,
    track_name: String,
    /// Where the clip may start, and where it must end (a punch-out or the loop's end).
    from: Ticks,
    until: Option<Ticks>,
    /// Restart the transport from here before recording (count-in, punch).
    rewind: Option<Ticks>,
    /// The metronome's setting to restore once the count-in is over.
    click_was: Option<bool>,
    /// The track has an instrument: the take is of notes.
    notes: bool,
}

impl Planned {
    /// Puts the metronome back as it was before the count-in (once).
    fn end_count_in(&mut self, transport: &mut Transport) {
        if let Some(click) = self.click_was.take() {
            transport.metronome = click;
        }
    }
}

/// A take coming in.
struct Rolling {
    planned: Planned,
    input: TakeInput,
    name: String,
    /// The project's rate, which the timeline frames here count in.
    rate: u32,
    /// The timeline frame the engine played when the input began.
    began: i64,
    /// The timeline frame the engine plays now.
    now: i64,
    /// The engine's frame last seen (a smaller one is a wrap at the loop's end).
    last_frame: u64,
}

/// What a take is made of.
enum TakeInput {
    /// The input's audio, written to `path`, with its peaks so far.
    Audio { capture: Capture, path: PathBuf, peaks: Vec<[f32; 2]> },
    /// The controller's notes.
    Notes(NoteTake),
}

impl Rolling {
    /// `frames` of the take's rate as timeline frames.
    fn on_timeline(&self, frames: u64, capture: &Capture) -> i64 {
        (u128::from(frames) * u128::from(self.rate) / u128::from(capture.sample_rate().max(1))) as i64
    }

    /// The timeline frame of the take's first sample.
    fn first_frame(&self) -> i64 {
        match &self.input {
            TakeInput::Audio { capture, .. } => self.began - self.on_timeline(capture.latency(), capture),
            TakeInput::Notes(_) => self.began,
        }
    }

    /// The timeline frame just after the take's last sample so far.
    fn end_frame(&self) -> i64 {
        match &self.input {
            TakeInput::Audio { capture, .. } => self.first_frame() + self.on_timeline(capture.frames(), capture),
            TakeInput::Notes(_) => self.now,
        }
    }
}

/// What a [`Takes::rolling`] take looks like so far, for the timeline.
#[derive(Clone, Copy, Debug)]
pub struct GrowingTake<'a> {
    /// Its track.
    pub track: TrackId,
    /// The timeline frame (project rate) of its first sample.
    pub first_frame: i64,
    /// How long it is so far, in frames at the project's rate.
    pub frames: f64,
    /// Frames of the take per entry of `peaks`, at the project's rate.
    pub frames_per_peak: f64,
    /// An audio take's lowest and highest sample of each stretch so far.
    pub peaks: &'a [[f32; 2]],
    /// A take of notes' notes so far.
    pub notes: &'a [PlayedNote],
}

impl Takes {
    fn new(folder: PathBuf) -> Takes {
        Takes { folder, state: State::Idle, waiting: Vec::new(), found_for: None }
    }

    /// Whether a take is asked for or coming in.
    pub fn is_recording(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// The take coming in, if one is.
    pub fn rolling(&self) -> Option<GrowingTake<'_>> {
        let State::Rolling(rolling) = &self.state else { return None };
        let first_frame = rolling.first_frame();
        let (frames_per_peak, peaks, notes) = match &rolling.input {
            TakeInput::Audio { capture, peaks, .. } => {
                let rate = f64::from(capture.sample_rate().max(1));
                (PEAK_FRAMES as f64 * f64::from(rolling.rate) / rate, peaks.as_slice(), &[][..])
            }
            TakeInput::Notes(take) => (1.0, &[][..], take.notes.as_slice()),
        };
        Some(GrowingTake {
            track: rolling.planned.track,
            first_frame,
            frames: (rolling.end_frame() - first_frame) as f64,
            frames_per_peak,
            peaks,
            notes,
        })
    }

    /// Ended takes whose clips have not landed yet.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// What recording is doing, for a status line, or `None` when there is nothing to say.
    pub fn describe(&self) -> Option<String> {
        let planned = match &self.state {
            State::Starting(planned) => Some(planned),
            State::Rolling(rolling) => Some(&rolling.planned),
            State::Idle => None,
        };
        if let Some(planned) = planned {
            let on = &planned.track_name;
            return Some(match &self.state {
                _ if planned.click_was.is_some() => format!("count-in, then recording on {on}"),
                State::Rolling(rolling) => {
                    let seconds = (rolling.now - rolling.began).max(0) as f64 / f64::from(rolling.rate.max(1));
                    let (minutes, seconds) = ((seconds / 60.0) as u64, seconds % 60.0);
                    format!("recording {} on {on}: {minutes}:{seconds:04.1}", rolling.name)
                }
                _ => format!("recording on {on}"),
            });
        }
        match self.waiting.as_slice() {
            [] => None,
            [one] if one.failed().is_some() => Some(format!("take waiting: {}", one.failed().unwrap_or_default())),
            [_] => Some("1 take waiting for the authority".into()),
            many => Some(format!("{} takes waiting for the authority", many.len())),
        }
    }
}

/// Where `project`'s takes are kept, in the takes folder `folder`.
fn project_folder(folder: &Path, project: ProjectId) -> PathBuf {
    folder.join(project.0.to_string())
}

/// Where a take's clip goes: at the first tick at or after both `from` and the take's first
/// sample (`first`, a timeline frame at the project's rate, negative when before the start),
/// playing the take from that tick's frame on (so each sample sounds exactly where it was
/// played), up to the take's end or `until`. `None` when nothing of the take falls in range.
pub fn placement(
    timebase: Timebase,
    take_rate: u32,
    first: i64,
    take_frames: u64,
    from: Ticks,
    until: Option<Ticks>,
) -> Option<(Ticks, Part)> {
    let frame_of = |ticks: Ticks| timebase.frames(ticks).0 as i64;
    let begin = frame_of(Ticks(from.0.max(0))).max(first).max(0);
    let mut start = timebase.ticks(Frames(begin as u64));
    while frame_of(start) < begin {
        start.0 += 1;
    }
    let (project_rate, take_rate) = (i128::from(timebase.sample_rate.max(1)), i128::from(take_rate.max(1)));
    let skipped = i128::from(frame_of(start) - first);
    let source_offset = Frames((skipped * take_rate / project_rate) as u64);
    let end_frame = i128::from(first) + i128::from(take_frames) * project_rate / take_rate;
    let mut end = timebase.ticks(Frames(end_frame.max(0) as u64));
    while i128::from(frame_of(end)) > end_frame {
        end.0 -= 1;
    }
    if let Some(until) = until {
        end = end.min(until);
    }
    (end > start).then(|| (start, Part { source_offset, length: Some(Ticks(end.0 - start.0)) }))
}

/// "Take N", for the first N not used by a clip or a file in `folder`.
fn next_take_name<'a>(clip_names: impl Iterator<Item = &'a str>, folder: &Path) -> String {
    let used = clip_names
        .filter_map(|name| name.strip_prefix("Take ").and_then(|number| number.parse::<u64>().ok()))
        .max()
        .unwrap_or(0);
    (used + 1..)
        .map(|number| format!("Take {number}"))
        .find(|name| !folder.join(format!("{name}.wav")).exists())
        .unwrap_or_else(|| "Take".into())
}

/// What the record system reads of the project.
#[derive(bevy::ecs::system::SystemParam)]
struct Song<'w, 's> {
    project: Query<'w, 's, (&'static RecordKey, &'static ProjectData)>,
    index: Res<'w, RecordIndex>,
    tracks: Query<'w, 's, &'static TrackData>,
    effects: Query<'w, 's, &'static EffectData>,
    clips: Query<'w, 's, &'static ClipData>,
    note_clips: Query<'w, 's, &'static NoteClipData>,
}

impl Song<'_, '_> {
    /// The topmost armed track: its id, its name, and whether it has an instrument.
    fn armed(&self, project: &ProjectData) -> Option<(TrackId, String, bool)> {
        project.track_order.iter().find_map(|id| {
            let track = self.tracks.get(self.index.entity((*id).into())?).ok()?;
            let instrument =
                self.effects.iter().any(|effect| effect.bus == Bus::Track(*id) && effect.kind.is_instrument());
            track.0.record_arm.then(|| (*id, track.0.name.clone(), instrument))
        })
    }

    /// The next take's name, after every clip's and note clip's.
    fn take_name(&self, folder: &Path) -> String {
        let names = self.clips.iter().map(|clip| clip.0.name.as_str());
        next_take_name(names.chain(self.note_clips.iter().map(|clip| clip.0.name.as_str())), folder)
    }
}

/// Where a take's outcomes go: how it ended, and a take of notes' clip.
#[derive(bevy::ecs::system::SystemParam)]
struct Said<'w> {
    done: MessageWriter<'w, RecordDone>,
    edits: MessageWriter<'w, EditMsg>,
}

/// Starts, advances and ends takes.
#[allow(clippy::too_many_arguments)]
fn record(
    mut takes: ResMut<Takes>,
    mut asked: MessageReader<RecordMsg>,
    playback: NonSend<Playback>,
    mut transport: ResMut<Transport>,
    (input, options, midi): (Res<RecordInput>, Res<RecordOptions>, Option<Res<MidiIn>>),
    song: Song,
    mut said: Said,
) {
    let heard = midi.map(|midi| midi.drain()).unwrap_or_default();
    let Ok((project_key, project)) = song.project.single() else { return };
    let project_id = ProjectId(project_key.0.0);
    let timebase = Timebase::new(project.tempo, project.sample_rate);
    let bar = project.time_signature.ticks_per_bar();
    let takes = &mut *takes;
    for message in asked.read() {
        match (message, &takes.state) {
            (RecordMsg::Start, State::Idle) => {
                let Some((track, track_name, notes)) = song.armed(project) else {
                    let reason = "no track is armed: arm one with its R button to record on it".into();
                    said.done.write(RecordDone { result: Err(reason) });
                    continue;
                };
                let looped = project.loop_range.filter(|range| range.start < range.end);
                let punch = looped.filter(|_| options.punch);
                let from = punch.map_or(transport.position, |range| range.start);
                // A take ends where the loop would wrap it back.
                let until = punch.or(looped.filter(|range| transport.looping && from < range.end)).map(|r| r.end);
                let count_in = options.count_in && (!transport.playing || punch.is_some());
                let preroll = if count_in { bar.0 } else { 0 };
                let rewind = (!transport.playing || punch.is_some()).then(|| Ticks((from.0 - preroll).max(0)));
                let click_was = (preroll > 0).then_some(transport.metronome);
                if click_was.is_some() {
                    transport.metronome = true;
                }
                if transport.playing && rewind.is_some() {
                    // Stopped first, then started from the rewind: see `Starting` below.
                    transport.playing = false;
                }
                takes.state = State::Starting(Planned { track, track_name, from, until, rewind, click_was, notes });
            }
            (RecordMsg::Stop, State::Starting(_)) => {
                let State::Starting(mut planned) = std::mem::replace(&mut takes.state, State::Idle) else { continue };
                planned.end_count_in(&mut transport);
            }
            (RecordMsg::Stop, State::Rolling(_)) => {
                finish(takes, project_id, (timebase, bar), &mut transport, &mut said)
            }
            _ => {}
        }
    }
    let playing = playback.playing_frame();
    let project_frame = |(frame, rate): (u64, u32)| {
        (u128::from(frame) * u128::from(project.sample_rate) / u128::from(rate.max(1))) as i64
    };
    match &mut takes.state {
        State::Idle => {}
        State::Starting(planned) => match (planned.rewind, playing) {
            // Stopped by now: start from the rewind.
            (Some(rewind), None) => {
                transport.position = rewind;
                transport.playing = true;
                planned.rewind = None;
            }
            (None, Some(now)) => {
                let folder = project_folder(&takes.folder, project_id);
                let name = song.take_name(&folder);
                let path = folder.join(format!("{name}.wav"));
                let opened = if planned.notes {
                    Ok(TakeInput::Notes(NoteTake::default()))
                } else {
                    std::fs::create_dir_all(&folder)
                        .map_err(|error| format!("cannot make {}: {error}", folder.display()))
                        .and_then(|()| open_input(&input, &path))
                        .map(|capture| TakeInput::Audio { capture, path, peaks: Vec::new() })
                };
                let State::Starting(mut planned) = std::mem::replace(&mut takes.state, State::Idle) else { return };
                match opened {
                    Ok(input) => {
                        let (rate, began) = (project.sample_rate, project_frame(now));
                        let rolling = Rolling { planned, input, name, rate, began, now: began, last_frame: now.0 };
                        takes.state = State::Rolling(Box::new(rolling));
                    }
                    Err(reason) => {
                        planned.end_count_in(&mut transport);
                        said.done.write(RecordDone { result: Err(reason) });
                    }
                }
            }
            // Stopped while waiting for the start: no take.
            (None, None) if !transport.playing => {
                let State::Starting(mut planned) = std::mem::replace(&mut takes.state, State::Idle) else { return };
                planned.end_count_in(&mut transport);
            }
            _ => {}
        },
        State::Rolling(rolling) => {
            if let Some(now) = playing {
                rolling.now = project_frame(now);
            }
            match &mut rolling.input {
                TakeInput::Audio { capture, peaks, .. } => capture.peaks(peaks),
                TakeInput::Notes(take) => {
                    let at_now = Instant::now();
                    for event in heard {
                        take.hear(event, (rolling.now, at_now), project.sample_rate);
                    }
                }
            }
            let ended = match (playing, rolling.planned.until) {
                (None, _) => true,
                // Once the take reaches the punch-out (or the loop's end): the input hands each
                // sound over its latency late, so that is after the playhead has passed it.
                (Some(_), Some(until)) => rolling.end_frame() >= timebase.frames(until).0 as i64,
                // A wrap at the loop's end.
                (Some(now), None) => {
                    let wrapped = now.0 < rolling.last_frame;
                    rolling.last_frame = now.0;
                    wrapped
                }
            };
            if rolling.now >= timebase.frames(rolling.planned.from).0 as i64 {
                rolling.planned.end_count_in(&mut transport);
            }
            if ended {
                finish(takes, project_id, (timebase, bar), &mut transport, &mut said);
            }
        }
    }
}

fn open_input(input: &RecordInput, path: &Path) -> Result<Capture, String> {
    match input {
        RecordInput::SoundCard => Capture::from_device(path),
        RecordInput::File { path: source, latency } => {
            ensemble_audio::decode::decode_file(source, None).and_then(|pcm| Capture::from_file(pcm, latency.0, path))
        }
    }
    .map_err(|error| error.to_string())
}

/// Ends the take coming in: a take of notes becomes a note clip at once; an audio take's file
/// is finished and its clip's place noted beside it, and it waits for the authority.
fn finish(
    takes: &mut Takes,
    project: ProjectId,
    (timebase, bar): (Timebase, Ticks),
    transport: &mut Transport,
    said: &mut Said,
) {
    let State::Rolling(rolling) = std::mem::replace(&mut takes.state, State::Idle) else { return };
    let first_frame = rolling.first_frame();
    let Rolling { mut planned, input, name, now, .. } = *rolling;
    planned.end_count_in(transport);
    let (capture, path) = match input {
        TakeInput::Audio { capture, path, .. } => (capture, path),
        TakeInput::Notes(take) => {
            let end = planned.until.map_or(now, |until| now.min(timebase.frames(until).0 as i64));
            let Some(clip) = take.into_clip((planned.track, name.clone()), timebase, bar, planned.from, end) else {
                said.done.write(RecordDone { result: Err("no notes were played".into()) });
                return;
            };
            let (id, notes) = (NoteClipId::new_v7(), clip.notes.len());
            said.edits.write(EditMsg::Edit(vec![Op::Create { id: id.into(), record: Record::NoteClip(clip) }]));
            let made = TakeMade::Notes { name, track: planned.track, clip: id, notes };
            said.done.write(RecordDone { result: Ok(made) });
            return;
        }
    };
    let take = match capture.stop() {
        Ok(take) => take,
        Err(error) => {
            said.done.write(RecordDone { result: Err(format!("the take could not be written: {error}")) });
            return;
        }
    };
    let rate = take.sample_rate.max(1);
    let Some((start, part)) = placement(timebase, rate, first_frame, take.frames, planned.from, planned.until) else {
        let _ = std::fs::remove_file(&take.path);
        said.done.write(RecordDone { result: Err("nothing was recorded inside the punch range".into()) });
        return;
    };
    let note = TakeNote {
        project,
        track: planned.track,
        start,
        source_offset: part.source_offset,
        length: part.length.unwrap_or(Ticks(1)),
    };
    let written = serde_json::to_vec_pretty(&note)
        .map_err(|error| error.to_string())
        .and_then(|json| std::fs::write(note_path(&path), json).map_err(|error| error.to_string()));
    if let Err(error) = written {
        // The take is on disk; only its place is lost. Say so rather than drop it silently.
        let reason = format!("{} is kept at {}, but its place could not be noted: {error}", name, path.display());
        said.done.write(RecordDone { result: Err(reason) });
        return;
    }
    takes.waiting.push(Waiting::new(path, note));
    let made = AudioTake {
        name,
        track: planned.track,
        first_frame,
        start,
        part,
        frames: take.frames,
        sample_rate: take.sample_rate,
        dropped: take.dropped,
    };
    said.done.write(RecordDone { result: Ok(TakeMade::Audio(made)) });
}

#[cfg(test)]
mod tests {
    use ensemble_protocol::Bpm;

    use super::*;

    const TIMEBASE: Timebase = Timebase { tempo: Bpm(120.0), sample_rate: 48_000 };

    #[test]
    fn a_take_plays_each_sample_where_it_was_played() {
        // 25 frames per tick at 120 BPM and 48 kHz; the input began at frame 96,010.
        let (start, part) = placement(TIMEBASE, 48_000, 96_010, 48_000, Ticks(1920), None).unwrap();
        assert_eq!(start, Ticks(3841), "the first tick at or after the first sample");
        assert_eq!(TIMEBASE.frames(start).0 - part.source_offset.0, 96_010, "sample 0 at frame 96,010");
        assert_eq!(part.length, Some(Ticks(5760 - 3841)), "up to the last tick inside the take");
    }

    #[test]
    fn a_count_in_is_cut_off_and_a_punch_ends_the_clip() {
        // Began a bar (1,920 ticks = 48,000 frames) before the range 1920..5760.
        let (start, part) = placement(TIMEBASE, 48_000, 48_000, 48_000 * 6, Ticks(3840), Some(Ticks(5760))).unwrap();
        assert_eq!((start, part.source_offset, part.length), (Ticks(3840), Frames(48_000), Some(Ticks(1920))));
        // A take that ends before the range has nothing in it.
        assert_eq!(placement(TIMEBASE, 48_000, 0, 1000, Ticks(3840), Some(Ticks(5760))), None);
    }

    #[test]
    fn a_take_at_another_rate_is_offset_in_its_own_frames() {
        // At 96 kHz the take's frames are twice the project's.
        let (start, part) = placement(TIMEBASE, 96_000, 10, 96_000, Ticks(0), None).unwrap();
        assert_eq!((start, part.source_offset), (Ticks(1), Frames(30)));
    }

    #[test]
    fn latency_before_the_song_starts_is_skipped() {
        let (start, part) = placement(TIMEBASE, 48_000, -100, 48_000, Ticks(0), None).unwrap();
        assert_eq!((start, part.source_offset), (Ticks(0), Frames(100)));
    }

    #[test]
    fn takes_are_numbered_after_the_highest_so_far() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(next_take_name(["Drums", "Take 2", "Take x"].into_iter(), dir.path()), "Take 3");
        std::fs::write(dir.path().join("Take 1.wav"), b"").unwrap();
        assert_eq!(next_take_name(std::iter::empty(), dir.path()), "Take 2");
    }
}
