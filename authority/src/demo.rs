//! The demo song: three loops synthesised on the spot (drums, bass, keys), so a fresh install
//! opens on something to play instead of an empty timeline, with no audio files in the repo.
//!
//! [`seed`] uploads the loops to an authority like any user would (so they are stored, peaked
//! and transcoded like real recordings) and lays them out over eight bars in one transaction,
//! with a little EQ and compression on the drums and reverb on the keys. The bass is a note
//! clip played by the built-in synth (the bass loop's line, with octaves and fifths); the
//! stress project uses the bass loop's audio.
//! Solo mode seeds its first project with it; `ensemble-authority project create --demo` seeds
//! a hosted one (the browser's first project, say) through [`seed_as_owner`].

use std::f32::consts::TAU;
use std::io::Cursor;

use ensemble_net::conn::Connection;
use ensemble_net::remote::{Remote, Uploaded};
use ensemble_protocol::effect::SYNTH_PRESETS;
use ensemble_protocol::{
    AssetId, Bus, Clip, ClipId, Colour, Effect, EffectId, EffectKind, EffectParam, Frames, ListItem, ListPosition,
    Note, NoteClip, NoteClipId, NoteId, Op, ProjectId, Record, ServerMsg, Ticks, Track, TrackId, Transaction,
};

use crate::Error;

const RATE: u32 = 48_000;
/// Two bars of 4/4 at 120 BPM.
const LOOP_SECONDS: f32 = 4.0;
const LOOP_TICKS: i64 = 2 * 4 * ensemble_protocol::TICKS_PER_QUARTER;

/// A small deterministic noise source.
struct Noise(u32);

impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        (self.0 as f32 / u32::MAX as f32) * 2.0 - 1.0
    }
}

fn drums(t: f32, noise: &mut Noise) -> (f32, f32) {
    let beat = t * 2.0; // beats at 120 BPM
    let in_beat = beat.fract() / 2.0; // seconds since the beat
    let eighth = (t * 4.0).fract() / 4.0;
    let kick_phase = 2.0 * TAU * (45.0 * in_beat + 40.0 * (1.0 - (-in_beat * 30.0).exp()) / 30.0 * 2.0);
    let kick = (kick_phase).sin() * (-in_beat * 9.0).exp();
    let backbeat = (beat as u32) % 2 == 1;
    let white = noise.next();
    let snare = if backbeat { white * (-in_beat * 18.0).exp() * 0.5 } else { 0.0 };
    let hat = white * (-eighth * 60.0).exp() * 0.18;
    let mono = kick * 0.8 + snare;
    (mono + hat * 0.6, mono + hat)
}

fn bass(t: f32) -> (f32, f32) {
    let roots = [55.0, 55.0, 65.41, 49.0]; // A1 A1 C2 G1, a bar each half
    let step = ((t / 1.0) as usize) % roots.len();
    let f = roots[step];
    let in_note = t.fract();
    let phase = (t * f).fract();
    let saw = 2.0 * phase - 1.0;
    let body = (TAU * f * t).sin() * 0.6 + saw * 0.25;
    let level = (1.0 - (-in_note * 60.0).exp()) * (-in_note * 1.8).exp() * 0.7;
    (body * level, body * level)
}

fn keys(t: f32) -> (f32, f32) {
    let chords: [[f32; 3]; 2] = [[220.0, 261.63, 329.63], [196.0, 246.94, 293.66]];
    let chord = chords[((t / 2.0) as usize) % 2];
    let in_chord = (t / 2.0).fract() * 2.0;
    let level = (1.0 - (-in_chord * 4.0).exp()) * (-in_chord * 0.6).exp() * 0.16;
    let left: f32 = chord.iter().map(|f| (TAU * f * t).sin()).sum::<f32>() * level;
    let right: f32 = chord.iter().map(|f| (TAU * f * 1.003 * t).sin()).sum::<f32>() * level;
    (left, right)
}

/// One loop as a 16-bit stereo WAV file's bytes.
fn write_loop(mut voice: impl FnMut(f32) -> (f32, f32)) -> Result<Vec<u8>, Error> {
    let spec =
        hound::WavSpec { channels: 2, sample_rate: RATE, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let failed = |error: hound::Error| Error::Io(std::io::Error::other(error.to_string()));
    let mut file = Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut file, spec).map_err(failed)?;
    let frames = (LOOP_SECONDS * RATE as f32) as u32;
    for i in 0..frames {
        let (left, right) = voice(i as f32 / RATE as f32);
        for sample in [left, right] {
            writer.write_sample((sample.clamp(-1.0, 1.0) * 32_000.0) as i16).map_err(failed)?;
        }
    }
    writer.finalize().map_err(failed)?;
    Ok(file.into_inner())
}

/// Creates a clip playing a whole loop as the `slot`-th loop on the timeline.
fn loop_clip(track: TrackId, asset: AssetId, slot: i64, name: &str) -> Op {
    let clip = Clip {
        track,
        asset,
        start: Ticks(slot * LOOP_TICKS),
        length: Ticks(LOOP_TICKS),
        source_offset: Frames(0),
        gain_db: 0.0,
        fade_in: Ticks(0),
        fade_out: Ticks(0),
        name: name.into(),
    };
    Op::Create { id: ClipId::new_v7().into(), record: Record::Clip(clip) }
}

/// A stereo voice: seconds in, (left, right) out.
type Voice = Box<dyn FnMut(f32) -> (f32, f32)>;

/// One part of the song: track name, colour, fader (dB), pan, and its loop.
type Part = (&'static str, Colour, f32, f32, Voice);

/// How big a demo project to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DemoSize {
    /// The song: three tracks over eight bars.
    Song,
    /// A stress test: this many tracks and clips (for frame-time measurements), cycling the
    /// three loops.
    Stress {
        /// Tracks.
        tracks: usize,
        /// Clips, spread evenly over the tracks.
        clips: usize,
    },
}

/// The effects on a demo track's chain, in order, with the settings that differ from the
/// defaults.
fn chain(track: &str) -> Vec<(EffectKind, &'static [(EffectParam, f32)])> {
    use EffectParam::*;
    match track {
        "Bass" => {
            let (_, bass) = SYNTH_PRESETS[0];
            vec![(EffectKind::Synth, bass)]
        }
        "Drums" => vec![
            (EffectKind::Eq, &[(LowGain, 2.0), (HighGain, 1.5)]),
            (EffectKind::Compressor, &[(Threshold, -16.0), (Ratio, 3.0), (Makeup, 2.0)]),
        ],
        "Keys" => vec![(EffectKind::Reverb, &[(RoomSize, 0.7), (Mix, 0.3)])],
        _ => Vec::new(),
    }
}

/// The bass line as a note clip on `track` from `start` for `length` ticks: the loop's roots
/// (A, A, C, G, half a bar each) in eighths, with the octave and the fifth.
fn bass_line(track: TrackId, start: i64, length: i64) -> Op {
    const ROOTS: [u8; 4] = [33, 33, 36, 31];
    const PATTERN: [(u8, u8); 4] = [(0, 110), (12, 80), (0, 100), (7, 80)];
    let eighth = ensemble_protocol::TICKS_PER_QUARTER / 2;
    let notes = (0..length / eighth)
        .map(|step| {
            let root = ROOTS[(step / 4) as usize % ROOTS.len()];
            let (interval, velocity) = PATTERN[step as usize % PATTERN.len()];
            let (start, length) = (Ticks(step * eighth), Ticks(eighth * 7 / 8));
            Note { id: NoteId::new_v7(), pitch: root + interval, velocity, start, length }
        })
        .collect();
    let clip = NoteClip { track, start: Ticks(start), length: Ticks(length), name: "Bass line".into(), notes };
    Op::Create { id: NoteClipId::new_v7().into(), record: Record::NoteClip(clip) }
}

/// Uploads the demo loops into `project` and lays out the song (or the stress project).
pub async fn seed<C: Connection>(remote: &mut Remote<C>, project: ProjectId, size: DemoSize) -> Result<(), Error> {
    let mut noise = Noise(0x2545_f491);
    let parts: [Part; 3] = [
        ("Drums", Colour { r: 240, g: 140, b: 96 }, -2.0, 0.0, Box::new(move |t| drums(t, &mut noise))),
        ("Bass", Colour { r: 96, g: 164, b: 255 }, -3.0, -0.1, Box::new(bass)),
        ("Keys", Colour { r: 92, g: 214, b: 140 }, -8.0, 0.25, Box::new(keys)),
    ];
    let mut ops = Vec::new();
    let mut loops = Vec::new();
    for (index, (name, colour, gain_db, pan, voice)) in parts.into_iter().enumerate() {
        let file = write_loop(voice)?;
        let hash = ensemble_net::hash::hash_reader(&file[..])?;
        let uploaded =
            remote.upload_from(project, Cursor::new(file), &format!("{name} loop.wav"), hash, None, |_, _| {}).await;
        let asset = match uploaded.map_err(|error| Error::Connection(error.to_string()))? {
            Uploaded::Stored { asset, .. } => asset,
            Uploaded::Partial { .. } => return Err(Error::Connection("the demo upload stopped early".into())),
        };
        loops.push((name, colour, asset));
        if size != DemoSize::Song {
            continue;
        }
        let track = TrackId::new_v7();
        let record = Track { name: name.into(), colour, gain_db, pan, mute: false, solo: false, record_arm: false };
        ops.push(Op::Create { id: track.into(), record: Record::Track(record) });
        ops.push(Op::ListInsert { target: project.into(), item: ListItem::Track(track), at: ListPosition::End });
        // Drums from the top, bass from bar 3, keys from bar 5: the song builds.
        if name == "Bass" {
            ops.push(bass_line(track, index as i64 * LOOP_TICKS, (4 - index as i64) * LOOP_TICKS));
        } else {
            for repeat in (index as i64)..4 {
                ops.push(loop_clip(track, asset, repeat, name));
            }
        }
        for (place, (kind, settings)) in chain(name).into_iter().enumerate() {
            let effect = Effect::new(Bus::Track(track), kind, place as f64 + 1.0).with(settings);
            ops.push(Op::Create { id: EffectId::new_v7().into(), record: Record::Effect(effect) });
        }
    }
    if let DemoSize::Stress { tracks, clips } = size {
        let per_track = clips.div_ceil(tracks.max(1));
        let mut placed = 0;
        for t in 0..tracks {
            let (name, colour, asset) = loops[t % loops.len()];
            let track = TrackId::new_v7();
            let record = Track {
                name: format!("{name} {t}"),
                colour,
                gain_db: -6.0,
                pan: 0.0,
                mute: false,
                solo: false,
                record_arm: false,
            };
            ops.push(Op::Create { id: track.into(), record: Record::Track(record) });
            ops.push(Op::ListInsert { target: project.into(), item: ListItem::Track(track), at: ListPosition::End });
            for c in 0..per_track.min(clips - placed) {
                ops.push(loop_clip(track, asset, c as i64, name));
                placed += 1;
            }
        }
    }
    match remote.write(&Transaction::new(project, ops)).await {
        Ok(ServerMsg::Committed { .. }) => Ok(()),
        Ok(other) => Err(Error::Connection(format!("the demo song was refused: {other:?}"))),
        Err(error) => Err(Error::Connection(error.to_string())),
    }
}

/// Seeds `project` with the demo as its owner `owner`, through an in-process connection to
/// `server` (the operator holds the database, so they may act as any user).
pub async fn seed_as_owner<S: crate::store::Store>(
    server: &crate::server::Server,
    store: &S,
    project: ProjectId,
    owner: &str,
    size: DemoSize,
) -> Result<(), Error> {
    let token = crate::auth::session_for(store, owner).await?;
    let connection = server.in_process().connect().map_err(|error| Error::Connection(error.to_string()))?;
    let mut remote = Remote::over(connection, ensemble_protocol::PROTOCOL_VERSION)
        .await
        .map_err(|error| Error::Connection(error.to_string()))?;
    remote.resume(token).await.map_err(|error| Error::Connection(error.to_string()))?;
    let seeded = seed(&mut remote, project, size).await;
    remote.close().await;
    seeded
}
