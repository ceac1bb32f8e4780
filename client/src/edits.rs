//! The edits the DAW offers, as ops: what a gesture means, apart from how it is drawn.
//!
//! Each function turns one musician's action (split a clip at the playhead, trim its start,
//! drag an automation point) into the ops of one transaction, clamped so the result is always
//! valid: a trim never leaves a clip shorter than a tick or starting before its audio, and fades
//! are shortened to fit. The window calls these and sends the ops as an
//! [`EditMsg`](crate::history::EditMsg); tests call them on a plain
//! [`ProjectState`](ensemble_protocol::ProjectState).
//!
//! Positions inside an asset ([`Clip::source_offset`]) count the asset's own frames, which may
//! run at another rate than the project: [`asset_frames`] converts.
//!
//! Effect chains are ordered by their effects' positions ([`in_playing_order`]): adding one
//! places it after the last, and moving one gives it a position between its new neighbours'
//! ([`move_effect`]), so a chain's edits never conflict with a collaborator's.

use ensemble_protocol::effect::position_between;
use ensemble_protocol::{
    AutomationLane, AutomationPoint, Bus, Clip, ClipField, ClipId, Colour, Curve, Effect, EffectField, EffectId,
    EffectKind, EffectParam, Field, Frames, LaneId, ListItem, ListPosition, Note, NoteClip, NoteClipId, NoteId, Op,
    Parameter, PointId, Record, RecordId, Ticks, Timebase, Track, TrackId,
};

/// The colours new tracks take, in turn.
pub const TRACK_COLOURS: [Colour; 6] = [
    Colour { r: 92, g: 214, b: 140 },
    Colour { r: 96, g: 164, b: 255 },
    Colour { r: 240, g: 140, b: 96 },
    Colour { r: 200, g: 120, b: 240 },
    Colour { r: 240, g: 200, b: 80 },
    Colour { r: 80, g: 210, b: 220 },
];

/// A new track at the bottom of the project: its id and the ops that make it. `count` is how
/// many tracks the project has, which picks the colour.
pub fn add_track(project: RecordId, name: String, count: usize) -> (TrackId, Vec<Op>) {
    let id = TrackId::new_v7();
    let track = Track {
        name,
        colour: TRACK_COLOURS[count % TRACK_COLOURS.len()],
        gain_db: 0.0,
        pan: 0.0,
        mute: false,
        solo: false,
        record_arm: false,
    };
    let ops = vec![
        Op::Create { id: id.into(), record: Record::Track(track) },
        Op::ListInsert { target: project, item: ListItem::Track(id), at: ListPosition::End },
    ];
    (id, ops)
}

/// Deletes a track with everything on it (`held`: its clips, its automation lanes, then its
/// effects, which lanes may drive).
pub fn delete_track(project: RecordId, track: TrackId, held: impl IntoIterator<Item = RecordId>) -> Vec<Op> {
    let mut ops: Vec<Op> = held.into_iter().map(|target| Op::Delete { target }).collect();
    ops.push(Op::ListRemove { target: project, item: track.0 });
    ops.push(Op::Delete { target: track.into() });
    ops
}

fn set(target: RecordId, field: ClipField) -> Op {
    Op::Set { target, value: Field::Clip(field), expect: None }
}

/// `ticks` of project time as frames of an asset that runs at `asset_rate`.
pub fn asset_frames(timebase: Timebase, asset_rate: u32, ticks: Ticks) -> i64 {
    let project_frames = timebase.frames(Ticks(ticks.0.abs())).0 as i128;
    let frames = project_frames * i128::from(asset_rate) / i128::from(timebase.sample_rate.max(1));
    ticks.0.signum() * frames as i64
}

/// The project time an asset of `frames` frames at `asset_rate` lasts.
pub fn asset_length(timebase: Timebase, asset_rate: u32, frames: Frames) -> Ticks {
    let project_frames = u128::from(frames.0) * u128::from(timebase.sample_rate) / u128::from(asset_rate.max(1));
    timebase.ticks(Frames(project_frames as u64))
}

/// Moves a clip to `start` on `track`.
pub fn move_clip(id: RecordId, clip: &Clip, start: Ticks, track: TrackId) -> Vec<Op> {
    let mut ops = Vec::new();
    if start != clip.start {
        ops.push(set(id, ClipField::Start(Ticks(start.0.max(0)))));
    }
    if track != clip.track {
        ops.push(set(id, ClipField::Track(track)));
    }
    ops
}

/// A copy of the clip right after it.
pub fn duplicate_clip(clip: &Clip) -> (ClipId, Vec<Op>) {
    let id = ClipId::new_v7();
    let copy = Clip { start: clip.start + clip.length, ..clip.clone() };
    (id, vec![Op::Create { id: id.into(), record: Record::Clip(copy) }])
}

/// Splits the clip at `at` into two that play exactly what it played; `None` when `at` is not
/// inside it. The head keeps the fade-in, the tail the fade-out.
pub fn split_clip(id: RecordId, clip: &Clip, at: Ticks, timebase: Timebase, asset_rate: u32) -> Option<Vec<Op>> {
    if at <= clip.start || at >= clip.start + clip.length {
        return None;
    }
    let head = at - clip.start;
    let tail_length = clip.length - head;
    let played = asset_frames(timebase, asset_rate, head).max(0) as u64;
    let tail = Clip {
        start: at,
        length: tail_length,
        source_offset: Frames(clip.source_offset.0 + played),
        fade_in: Ticks(0),
        fade_out: Ticks(clip.fade_out.0.min(tail_length.0)),
        ..clip.clone()
    };
    Some(vec![
        set(id, ClipField::FadeOut(Ticks(0))),
        set(id, ClipField::FadeIn(Ticks(clip.fade_in.0.min(head.0)))),
        set(id, ClipField::Length(head)),
        Op::Create { id: ClipId::new_v7().into(), record: Record::Clip(tail) },
    ])
}

/// Moves the clip's start edge to `start`, keeping its end and the audio under it in place.
/// The edge stops at the asset's first frame and one tick before the end.
pub fn trim_start(id: RecordId, clip: &Clip, start: Ticks, timebase: Timebase, asset_rate: u32) -> Vec<Op> {
    let end = clip.start + clip.length;
    // How far left the edge can go: to where the asset's first frame would sit.
    let offset_ticks = asset_length(timebase, asset_rate, clip.source_offset);
    let earliest = Ticks((clip.start.0 - offset_ticks.0).max(0));
    let start = Ticks(start.0.clamp(earliest.0, end.0 - 1));
    if start == clip.start {
        return Vec::new();
    }
    let moved = asset_frames(timebase, asset_rate, start - clip.start);
    let source_offset = Frames((clip.source_offset.0 as i64 + moved).max(0) as u64);
    let length = end - start;
    let mut ops = fit_fades(id, clip, length);
    ops.extend([
        set(id, ClipField::Start(start)),
        set(id, ClipField::Length(length)),
        set(id, ClipField::SourceOffset(source_offset)),
    ]);
    ops
}

/// Moves the clip's end edge to `end`, at least a tick after its start and, when the asset's
/// length is known (`longest`, from the clip's source offset on), no further than its audio.
pub fn trim_end(id: RecordId, clip: &Clip, end: Ticks, longest: Option<Ticks>) -> Vec<Op> {
    let mut length = Ticks((end - clip.start).0.max(1));
    if let Some(longest) = longest {
        length = Ticks(length.0.min(longest.0.max(1)));
    }
    if length == clip.length {
        return Vec::new();
    }
    let mut ops = fit_fades(id, clip, length);
    ops.push(set(id, ClipField::Length(length)));
    ops
}

/// Shortens the fades (fade-out first) so both fit a clip `length` long.
fn fit_fades(id: RecordId, clip: &Clip, length: Ticks) -> Vec<Op> {
    let fade_in = clip.fade_in.0.min(length.0);
    let fade_out = clip.fade_out.0.min(length.0 - fade_in);
    let mut ops = Vec::new();
    if fade_out != clip.fade_out.0 {
        ops.push(set(id, ClipField::FadeOut(Ticks(fade_out))));
    }
    if fade_in != clip.fade_in.0 {
        ops.push(set(id, ClipField::FadeIn(Ticks(fade_in))));
    }
    ops
}

/// Sets the fade-in to `length`, clamped to what the clip and its fade-out leave.
pub fn fade_in(id: RecordId, clip: &Clip, length: Ticks) -> Vec<Op> {
    let length = length.0.clamp(0, clip.length.0 - clip.fade_out.0);
    if length == clip.fade_in.0 { Vec::new() } else { vec![set(id, ClipField::FadeIn(Ticks(length)))] }
}

/// Sets the fade-out to `length`, clamped to what the clip and its fade-in leave.
pub fn fade_out(id: RecordId, clip: &Clip, length: Ticks) -> Vec<Op> {
    let length = length.0.clamp(0, clip.length.0 - clip.fade_in.0);
    if length == clip.fade_out.0 { Vec::new() } else { vec![set(id, ClipField::FadeOut(Ticks(length)))] }
}

/// The range a parameter's automation values take, and the value a new lane starts from.
pub fn parameter_range(parameter: Parameter) -> (f32, f32) {
    match parameter {
        Parameter::Gain => (-60.0, 12.0),
        Parameter::Pan => (-1.0, 1.0),
        Parameter::Effect(_, param) => param.range(),
    }
}

/// A new breakpoint at `tick` with `value` (clamped to the parameter's range), in `lane` when
/// the track has one for the parameter, else in a new lane made in the same edit.
pub fn add_point(
    lane: Option<RecordId>,
    track: TrackId,
    parameter: Parameter,
    tick: Ticks,
    value: f32,
) -> (PointId, Vec<Op>) {
    let (low, high) = parameter_range(parameter);
    let point = AutomationPoint {
        id: PointId::new_v7(),
        tick: Ticks(tick.0.max(0)),
        value: value.clamp(low, high),
        curve: Curve::Linear,
    };
    let ops = match lane {
        Some(lane) => vec![Op::ListInsert { target: lane, item: ListItem::Point(point), at: ListPosition::End }],
        None => {
            let lane = AutomationLane { track, parameter, enabled: true, points: vec![point] };
            vec![Op::Create { id: LaneId::new_v7().into(), record: Record::AutomationLane(lane) }]
        }
    };
    (point.id, ops)
}

/// Moves a breakpoint to `tick` and `value`, keeping its place among points on the same tick.
pub fn move_point(lane_id: RecordId, lane: &AutomationLane, point: PointId, tick: Ticks, value: f32) -> Vec<Op> {
    let Some(index) = lane.points.iter().position(|p| p.id == point) else { return Vec::new() };
    let (low, high) = parameter_range(lane.parameter);
    let moved = AutomationPoint { tick: Ticks(tick.0.max(0)), value: value.clamp(low, high), ..lane.points[index] };
    if moved == lane.points[index] {
        return Vec::new();
    }
    let at = match index.checked_sub(1) {
        Some(before) => ListPosition::After(lane.points[before].id.0),
        None => ListPosition::Start,
    };
    vec![
        Op::ListRemove { target: lane_id, item: point.0 },
        Op::ListInsert { target: lane_id, item: ListItem::Point(moved), at },
    ]
}

/// Removes a breakpoint.
pub fn remove_point(lane_id: RecordId, point: PointId) -> Vec<Op> {
    vec![Op::ListRemove { target: lane_id, item: point.0 }]
}

/// Sorts a chain into the order it plays: by position, ties (two effects added at once) by id.
pub fn in_playing_order(chain: &mut [(RecordId, &Effect)]) {
    chain.sort_by(|(a, x), (b, y)| x.position.total_cmp(&y.position).then(a.cmp(b)));
}

/// A new effect of `kind` at the end of `bus`'s chain (`chain`, in playing order), with the
/// kind's defaults: its id and the op that makes it.
pub fn add_effect(bus: Bus, kind: EffectKind, chain: &[(RecordId, &Effect)]) -> (EffectId, Vec<Op>) {
    let id = EffectId::new_v7();
    let last = chain.last().map(|(_, effect)| effect.position);
    // After the last one; a chain pushed out to the end of the floats starts again after 0.
    let position = position_between(last, None).unwrap_or(chain.len() as f64 + 1.0);
    let effect = Effect::new(bus, kind, position);
    (id, vec![Op::Create { id: id.into(), record: Record::Effect(effect) }])
}

/// Moves the effect at place `from` of `chain` (in playing order) to place `to`: one set of its
/// position between its new neighbours', or, when no number fits between them (or they tie),
/// the whole chain numbered afresh in its new order.
pub fn move_effect(chain: &[(RecordId, &Effect)], from: usize, to: usize) -> Vec<Op> {
    if from == to || from >= chain.len() {
        return Vec::new();
    }
    let mut order = chain.to_vec();
    let moved = order.remove(from);
    let to = to.min(order.len());
    let before = to.checked_sub(1).map(|place| order[place].1.position);
    let after = order.get(to).map(|(_, effect)| effect.position);
    if let Some(position) = position_between(before, after) {
        return vec![set_effect(moved.0, EffectField::Position(position))];
    }
    order.insert(to, moved);
    let numbered = order.iter().enumerate().map(|(place, (id, effect))| (*id, effect.position, place as f64 + 1.0));
    numbered.filter(|(_, old, new)| old != new).map(|(id, _, new)| set_effect(id, EffectField::Position(new))).collect()
}

/// Removes an effect, after the automation lanes that drive its knobs (`lanes`).
pub fn remove_effect(id: RecordId, lanes: impl IntoIterator<Item = RecordId>) -> Vec<Op> {
    let mut ops: Vec<Op> = lanes.into_iter().map(|target| Op::Delete { target }).collect();
    ops.push(Op::Delete { target: id });
    ops
}

/// Sets every knob of an effect to a preset: the kind's defaults with `settings` over them, in
/// one edit (only the knobs that change).
pub fn apply_preset(id: RecordId, effect: &Effect, settings: &[(EffectParam, f32)]) -> Vec<Op> {
    let preset = Effect { params: effect.kind.defaults(), ..effect.clone() }.with(settings);
    let changed =
        effect.kind.params().iter().zip(&preset.params).filter(|(param, value)| effect.param(**param) != Some(**value));
    changed.flat_map(|(param, value)| set_effect_param(id, *param, *value)).collect()
}

/// Bypasses an effect, or turns it back on.
pub fn set_bypass(id: RecordId, bypass: bool) -> Vec<Op> {
    vec![set_effect(id, EffectField::Bypass(bypass))]
}

/// Turns one knob of an effect to `value`, clamped to the parameter's range.
pub fn set_effect_param(id: RecordId, param: EffectParam, value: f32) -> Vec<Op> {
    let (low, high) = param.range();
    vec![set_effect(id, EffectField::Param(param, value.clamp(low, high)))]
}

fn set_effect(target: RecordId, field: EffectField) -> Op {
    Op::Set { target, value: Field::Effect(field), expect: None }
}

/// How long a new note clip is: four bars of 4/4.
pub const NOTE_CLIP_TICKS: i64 = 16 * ensemble_protocol::TICKS_PER_QUARTER;

/// A new, empty note clip of [`NOTE_CLIP_TICKS`] on `track` at `start`; when the track's chain
/// (`chain`, in playing order) has no instrument, a synth goes at its head in the same edit, so
/// the notes drawn are heard.
pub fn add_note_clip(track: TrackId, start: Ticks, chain: &[(RecordId, &Effect)]) -> (NoteClipId, Vec<Op>) {
    let clip = NoteClip {
        track,
        start: Ticks(start.0.max(0)),
        length: Ticks(NOTE_CLIP_TICKS),
        name: "Notes".into(),
        notes: Vec::new(),
    };
    place_note_clip(clip, chain)
}

/// The parts of a MIDI file (see [`crate::midi::read`]) as note clips at `at`: the first on
/// `track` when one is given, each other on a new track named after its part (`project` and
/// `tracks`, how many the project has, make those), each track with a synth unless it has an
/// instrument (`chain`: the given track's effects). Returns the first clip.
pub fn import_midi(
    project: RecordId,
    tracks: usize,
    track: Option<TrackId>,
    at: Ticks,
    parts: &[crate::midi::MidiPart],
    chain: &[(RecordId, &Effect)],
) -> (Option<NoteClipId>, Vec<Op>) {
    let (mut first, mut ops, mut added) = (None, Vec::new(), 0);
    for (index, part) in parts.iter().enumerate() {
        let (target, chain) = match track.filter(|_| index == 0) {
            Some(track) => (track, chain),
            None => {
                let (track, made) = add_track(project, part.name.clone(), tracks + added);
                added += 1;
                ops.extend(made);
                (track, &[][..])
            }
        };
        // Whole bars of 4/4, at least one, to hold every note.
        let bar = 4 * ensemble_protocol::TICKS_PER_QUARTER;
        let length = Ticks(((part.length.0 + bar - 1) / bar).max(1) * bar);
        let clip = NoteClip {
            track: target,
            start: Ticks(at.0.max(0)),
            length,
            name: part.name.clone(),
            notes: part.notes.clone(),
        };
        let (id, made) = place_note_clip(clip, chain);
        first.get_or_insert(id);
        ops.extend(made);
    }
    (first, ops)
}

/// Creates `clip`, with a synth at the head of its track's chain when `chain` has no instrument.
fn place_note_clip(clip: NoteClip, chain: &[(RecordId, &Effect)]) -> (NoteClipId, Vec<Op>) {
    let (id, track) = (NoteClipId::new_v7(), clip.track);
    let mut ops = vec![Op::Create { id: id.into(), record: Record::NoteClip(clip) }];
    if !chain.iter().any(|(_, effect)| effect.kind.is_instrument()) {
        let first = chain.first().map(|(_, effect)| effect.position);
        let position = position_between(None, first).unwrap_or(0.0);
        let synth = Effect::new(Bus::Track(track), EffectKind::Synth, position);
        ops.insert(0, Op::Create { id: EffectId::new_v7().into(), record: Record::Effect(synth) });
    }
    (id, ops)
}

/// A new note in `clip`, its pitch and velocity kept to MIDI's range and its start and length
/// to the clip's positions (a note at least a tick long, starting at or after the clip).
pub fn add_note(clip: RecordId, pitch: i32, start: Ticks, length: Ticks, velocity: u8) -> (NoteId, Vec<Op>) {
    let note = note(NoteId::new_v7(), pitch, start, length, velocity);
    (note.id, vec![Op::ListInsert { target: clip, item: ListItem::Note(note), at: ListPosition::End }])
}

/// Changes a note (moved, resized, played harder): out of the list and back in, one edit, so
/// a collaborator's edits of other notes of the clip stand.
pub fn change_note(clip: RecordId, old: &Note, pitch: i32, start: Ticks, length: Ticks, velocity: u8) -> Vec<Op> {
    let new = note(old.id, pitch, start, length, velocity);
    if new == *old {
        return Vec::new();
    }
    vec![
        Op::ListRemove { target: clip, item: old.id.0 },
        Op::ListInsert { target: clip, item: ListItem::Note(new), at: ListPosition::End },
    ]
}

/// Removes notes from a clip.
pub fn remove_notes(clip: RecordId, notes: impl IntoIterator<Item = NoteId>) -> Vec<Op> {
    notes.into_iter().map(|note| Op::ListRemove { target: clip, item: note.0 }).collect()
}

/// Moves the starts of `notes` to the nearest multiple of `grid` ticks (lengths kept).
pub fn quantize(clip: RecordId, notes: &[Note], grid: i64) -> Vec<Op> {
    let grid = grid.max(1);
    notes
        .iter()
        .flat_map(|old| {
            let start = ((old.start.0 + grid / 2).div_euclid(grid)) * grid;
            change_note(clip, old, i32::from(old.pitch), Ticks(start), old.length, old.velocity)
        })
        .collect()
}

fn note(id: NoteId, pitch: i32, start: Ticks, length: Ticks, velocity: u8) -> Note {
    Note {
        id,
        pitch: pitch.clamp(0, 127) as u8,
        velocity: velocity.clamp(1, 127),
        start: Ticks(start.0.max(0)),
        length: Ticks(length.0.max(1)),
    }
}
