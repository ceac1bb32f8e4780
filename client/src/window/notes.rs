//! Note clips: on the timeline (their notes in miniature; drag to move, double-click to open),
//! and the piano roll that edits one.
//!
//! The piano roll is a bottom panel: a keyboard down the left, the clip's time across, a row per
//! pitch. Click an empty spot to draw a note a grid step long; drag a note to move it (in time
//! and pitch), its right edge to resize it; right-click or Delete removes the selected notes;
//! Shift+click adds to the selection. The bar above sets the selected notes' velocity,
//! quantizes them (or every note) to the grid, and exports the clip as a `.mid` file. Time snaps to the timeline's grid (Alt for free
//! placement). Each change is one edit of the notes it touches, so a collaborator editing other
//! notes of the same clip at the same time keeps their work.

use bevy_egui::egui;
use ensemble_protocol::{Note, NoteClip, NoteId, RecordId, TICKS_PER_QUARTER, Ticks};

use super::timeline::Grid;
use super::{DrawnLayout, DrawnRegion, Out, Row, Scene, View, colour32, theme};
use crate::edits;
use crate::history::EditMsg;

/// Height of a note clip's name bar on the timeline.
const HEADER: f32 = 14.0;
/// Width of the piano roll's keyboard.
const KEYS: f32 = 44.0;
/// Piano roll rows are at least this tall.
const MIN_ROW: f32 = 7.0;
/// The piano roll's time step when the grid is free.
const FREE_STEP: i64 = TICKS_PER_QUARTER / 4;

/// The piano roll's state: which clip it shows, its selection, and a drag in progress.
#[derive(Debug, Default)]
pub(super) struct PianoRoll {
    /// The clip open in it.
    pub(super) clip: Option<RecordId>,
    selected: std::collections::HashSet<NoteId>,
    drag: Option<NoteDrag>,
    /// What the last `.mid` export did.
    exported: Option<Result<String, String>>,
}

impl PianoRoll {
    /// The piano roll open on `clip`, nothing selected.
    pub(super) fn open(clip: RecordId) -> Self {
        PianoRoll { clip: Some(clip), ..PianoRoll::default() }
    }
}

#[derive(Debug)]
struct NoteDrag {
    note: Note,
    /// Where the pointer went down, in ticks and pitch.
    origin: (i64, i32),
    /// Moving the whole note, or its end.
    resize: bool,
}

/// Draws `clip` in `row` of the timeline.
#[allow(clippy::too_many_arguments)]
pub(super) fn show_clip(
    ui: &egui::Ui,
    painter: &egui::Painter,
    timeline: egui::Rect,
    view: &mut View,
    grid: &Grid,
    row: &Row,
    (id, clip): (RecordId, &NoteClip),
    drawn: &mut DrawnLayout,
    out: &mut Out,
) {
    let (left, right) = (grid.x_of(clip.start.0), grid.x_of((clip.start + clip.length).0));
    if right < timeline.left() || left > timeline.right() {
        return;
    }
    let body =
        egui::Rect::from_min_max(egui::pos2(left, row.top + 4.0), egui::pos2(right, row.top + view.track_height - 4.0));
    let colour = colour32(row.track.colour);
    let open = view.piano_roll.clip == Some(id);
    painter.rect_filled(body, 5.0, colour.gamma_multiply(0.25));
    let header = egui::Rect::from_min_size(body.min, egui::vec2(body.width(), HEADER));
    painter.rect_filled(header, 5.0, colour);
    painter.text(
        header.left_center() + egui::vec2(6.0, 0.0),
        egui::Align2::LEFT_CENTER,
        format!("♪ {}", clip.name),
        egui::FontId::proportional(11.0),
        theme::BACKGROUND,
    );
    let swatch = header.intersect(timeline).shrink2(egui::vec2(8.0, 4.0));
    if swatch.is_positive() && swatch.width() >= 60.0 {
        let swatch = egui::Rect::from_min_max(egui::pos2(swatch.right() - 6.0, swatch.top()), swatch.max);
        drawn.note_clips.push(DrawnRegion::new(row.track, swatch));
    }
    // The notes in miniature, the clip's pitch range filling its body.
    let inside =
        egui::Rect::from_min_max(egui::pos2(body.left(), header.bottom() + 3.0), body.max - egui::vec2(0.0, 3.0));
    if let Some((low, high)) = pitch_range(&clip.notes, 0) {
        let step = inside.height() / (high - low + 1) as f32;
        for note in &clip.notes {
            let x0 = grid.x_of((clip.start + note.start).0).max(left);
            let x1 = grid.x_of((clip.start + note.start + note.length).0).min(right);
            let y = inside.bottom() - (i32::from(note.pitch) - low + 1) as f32 * step;
            let bar =
                egui::Rect::from_min_max(egui::pos2(x0, y), egui::pos2(x1.max(x0 + 1.0), y + step.clamp(1.5, 4.0)));
            if bar.intersects(timeline) {
                painter.rect_filled(bar.intersect(timeline), 1.0, theme::WAVE);
            }
        }
    }
    let outline = if open || view.selected.contains(&id) { (2.0, theme::WAVE) } else { (1.0, colour) };
    painter.rect_stroke(body, 5.0, outline, egui::StrokeKind::Inside);
    let visible = body.intersect(timeline);
    if !visible.is_positive() {
        return;
    }
    let response = ui.interact(visible, egui::Id::new(("note clip", id)), egui::Sense::click_and_drag());
    if response.double_clicked() {
        view.piano_roll = PianoRoll::open(id);
    } else if response.clicked() {
        view.selected.clear();
        view.selected.insert(id);
    }
    response.context_menu(|ui| {
        if ui.button("Open in the piano roll").clicked() {
            view.piano_roll = PianoRoll::open(id);
            ui.close();
        }
        if ui.button("Delete").clicked() {
            out.edit(vec![ensemble_protocol::Op::Delete { target: id }]);
            ui.close();
        }
    });
    // Dragging moves the clip in time (snapped); the drag's start is its anchor.
    if response.dragged()
        && let (Some(origin), Some(pointer)) = (super::drag_origin(&response), response.interact_pointer_pos())
    {
        let moved = grid.snapped(clip.start.0 + grid.ticks_at(pointer.x) - grid.ticks_at(origin.x));
        let field = ensemble_protocol::NoteClipField::Start(Ticks(moved.max(0)));
        let op =
            ensemble_protocol::Op::Set { target: id, value: ensemble_protocol::Field::NoteClip(field), expect: None };
        out.edits.write(EditMsg::Preview(vec![op]));
    }
    if response.drag_stopped() {
        out.edits.write(EditMsg::CommitGesture);
    }
}

/// The lowest and highest pitch of `notes`, widened by `margin` on each side.
fn pitch_range(notes: &[Note], margin: i32) -> Option<(i32, i32)> {
    let low = notes.iter().map(|n| i32::from(n.pitch)).min()?;
    let high = notes.iter().map(|n| i32::from(n.pitch)).max()?;
    Some(((low - margin).max(0), (high + margin).min(127)))
}

/// Saves a `.mid` file named after the clip: into the music folder natively, as a download in
/// the browser. Says where, or why not.
fn save_midi(name: &str, bytes: &[u8]) -> Result<String, String> {
    let file: String = name.chars().map(|c| if c.is_alphanumeric() || " -_".contains(c) { c } else { '_' }).collect();
    let file = format!("{}.mid", file.trim());
    #[cfg(target_arch = "wasm32")]
    {
        crate::browser::download(&file, bytes, "audio/midi").map(|()| format!("downloaded {file}"))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let path = super::dialogs::music_folder().join(&file);
        std::fs::write(&path, bytes)
            .map(|()| format!("saved {}", path.display()))
            .map_err(|error| format!("cannot save {file}: {error}"))
    }
}

/// The name of a pitch: C4 is middle C (60).
fn pitch_name(pitch: i32) -> String {
    const NAMES: [&str; 12] = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
    format!("{}{}", NAMES[pitch.rem_euclid(12) as usize], pitch.div_euclid(12) - 1)
}

/// The piano roll, in a bottom panel, while a clip is open.
pub(super) fn piano_roll(ui: &mut egui::Ui, scene: &Scene, view: &mut View, drawn: &mut DrawnLayout, out: &mut Out) {
    let Some(open) = view.piano_roll.clip else { return };
    let Some((track, clip)) = scene.note_clip(open) else {
        view.piano_roll = PianoRoll::default();
        return;
    };
    let step = if ui.input(|input| input.modifiers.alt) { 1 } else { FREE_STEP };
    let selected: Vec<Note> = clip.notes.iter().filter(|n| view.piano_roll.selected.contains(&n.id)).copied().collect();
    ui.horizontal(|ui| {
        ui.label(egui::RichText::new(format!("♪ {} · {}", clip.name, track.name)).strong());
        ui.label(egui::RichText::new(format!("{} notes", clip.notes.len())).color(theme::DIM));
        ui.separator();
        let mut velocity = selected.first().map_or(100, |n| n.velocity);
        let slider = ui.add_enabled(!selected.is_empty(), egui::Slider::new(&mut velocity, 1..=127).text("velocity"));
        let differs = selected.iter().any(|n| n.velocity != velocity);
        super::gesture(
            &slider,
            differs,
            || {
                selected
                    .iter()
                    .flat_map(|n| edits::change_note(open, n, i32::from(n.pitch), n.start, n.length, velocity))
                    .collect()
            },
            out.edits,
        );
        let which = if selected.is_empty() { "all" } else { "selected" };
        if ui.button(format!("Quantize {which}")).on_hover_text("Starts to the nearest sixteenth").clicked() {
            let notes = if selected.is_empty() { &clip.notes[..] } else { &selected[..] };
            out.edit(edits::quantize(open, notes, FREE_STEP));
        }
        let export = ui.button("Export .mid").on_hover_text("The clip as a standard MIDI file, at the project's tempo");
        if export.clicked() {
            let bytes = crate::midi::write(&clip.name, &clip.notes, scene.project.tempo, scene.project.time_signature);
            view.piano_roll.exported = Some(save_midi(&clip.name, &bytes));
        }
        match &view.piano_roll.exported {
            Some(Ok(place)) => drop(ui.label(egui::RichText::new(place).small().color(theme::DIM))),
            Some(Err(reason)) => drop(ui.label(egui::RichText::new(reason).small().color(theme::WARN))),
            None => {}
        }
        if ui.button("Close").clicked() {
            view.piano_roll = PianoRoll::default();
        }
    });
    let rect = ui.available_rect_before_wrap();
    let (low, high) = pitch_range(&clip.notes, 6).map_or((48, 72), |(low, high)| {
        // At least two octaves, centred on the notes.
        let missing = (24 - (high - low)).max(0);
        ((low - missing / 2).max(0), (high + missing - missing / 2).min(127))
    });
    let rows = (high - low + 1) as f32;
    let row_height = (rect.height() / rows).max(MIN_ROW);
    let keys = egui::Rect::from_min_max(rect.min, egui::pos2(rect.left() + KEYS, rect.bottom()));
    let area = egui::Rect::from_min_max(egui::pos2(keys.right(), rect.top()), rect.max);
    let painter = ui.painter_at(rect);
    painter.rect_filled(area, 0.0, theme::BACKGROUND);
    let y_of = |pitch: i32| area.top() + (high - pitch) as f32 * row_height;
    let pitch_at = |y: f32| high - ((y - area.top()) / row_height).floor() as i32;
    let length = clip.length.0.max(1);
    let x_of = |ticks: i64| area.left() + area.width() * ticks as f32 / length as f32;
    let ticks_at = |x: f32| ((x - area.left()) / area.width() * length as f32).round() as i64;
    let snap = |ticks: i64| (ticks as f64 / step as f64).round() as i64 * step;
    for pitch in low..=high {
        let y = y_of(pitch);
        let black = matches!(pitch.rem_euclid(12), 1 | 3 | 6 | 8 | 10);
        let key = egui::Rect::from_min_max(egui::pos2(keys.left(), y), egui::pos2(keys.right(), y + row_height));
        painter.rect_filled(key.shrink2(egui::vec2(0.0, 0.5)), 1.0, if black { theme::BAR } else { theme::WAVE });
        if black {
            let lane = egui::Rect::from_min_max(egui::pos2(area.left(), y), egui::pos2(area.right(), y + row_height));
            painter.rect_filled(lane, 0.0, theme::LANE);
        }
        if pitch.rem_euclid(12) == 0 {
            painter.text(
                key.left_center() + egui::vec2(3.0, 0.0),
                egui::Align2::LEFT_CENTER,
                pitch_name(pitch),
                egui::FontId::proportional(9.0),
                theme::BACKGROUND,
            );
            painter.hline(area.x_range(), y + row_height, (1.0, theme::GRID));
        }
    }
    let beat = TICKS_PER_QUARTER;
    for tick in (0..=length).step_by(beat as usize) {
        let bar = tick % (4 * beat) == 0;
        painter.vline(x_of(tick), area.y_range(), (1.0, if bar { theme::BAR } else { theme::GRID }));
    }
    let background = ui.interact(area, egui::Id::new(("piano roll", open)), egui::Sense::click());
    if background.clicked()
        && let Some(pointer) = background.interact_pointer_pos()
    {
        if ui.input(|input| input.modifiers.shift) {
            // Shift-click on empty space keeps the selection.
        } else if !view.piano_roll.selected.is_empty() {
            view.piano_roll.selected.clear();
        } else {
            let start = Ticks(snap(ticks_at(pointer.x)).clamp(0, length - 1));
            let (note, ops) = edits::add_note(open, pitch_at(pointer.y), start, Ticks(step.max(FREE_STEP)), 100);
            out.edit(ops);
            view.piano_roll.selected = [note].into();
        }
    }
    let colour = colour32(track.colour);
    for note in &clip.notes {
        let (x0, x1) = (x_of(note.start.0), x_of((note.start + note.length).0.min(length)));
        let y = y_of(i32::from(note.pitch));
        let rect =
            egui::Rect::from_min_max(egui::pos2(x0, y + 0.5), egui::pos2(x1.max(x0 + 3.0), y + row_height - 0.5));
        let chosen = view.piano_roll.selected.contains(&note.id);
        painter.rect_filled(rect, 2.0, colour);
        // The velocity: a dark line along the note's foot, as long as it is hard.
        let share = f32::from(note.velocity) / 127.0;
        let foot = egui::Rect::from_min_max(
            egui::pos2(rect.left(), rect.bottom() - 2.0),
            egui::pos2(rect.left() + rect.width() * share, rect.bottom()),
        );
        painter.rect_filled(foot, 0.0, theme::BACKGROUND.gamma_multiply(0.7));
        if chosen {
            painter.rect_stroke(rect, 2.0, (1.5, theme::WAVE), egui::StrokeKind::Inside);
        }
        // Reported by the solid part above the foot, where a check can read the track colour.
        let solid = egui::Rect::from_min_max(rect.min + egui::vec2(3.0, 1.0), rect.max - egui::vec2(3.0, 3.0));
        if !chosen && solid.width() > 2.0 && solid.height() >= 1.0 {
            drawn.notes.push(DrawnRegion::new(track, solid));
        }
        let response = ui.interact(rect, egui::Id::new(("note", open, note.id)), egui::Sense::click_and_drag());
        let at_end = response.hover_pos().is_some_and(|pos| pos.x > rect.right() - 5.0);
        let response = if at_end { response.on_hover_cursor(egui::CursorIcon::ResizeHorizontal) } else { response };
        if response.clicked() || response.drag_started() {
            let adding = ui.input(|input| input.modifiers.shift);
            if !adding && !chosen {
                view.piano_roll.selected.clear();
            }
            view.piano_roll.selected.insert(note.id);
        }
        if response.secondary_clicked() {
            let gone: Vec<NoteId> = if chosen { view.piano_roll.selected.drain().collect() } else { vec![note.id] };
            out.edit(edits::remove_notes(open, gone));
        }
        if response.drag_started()
            && let Some(origin) = super::drag_origin(&response)
        {
            let resize = origin.x > rect.right() - 5.0;
            view.piano_roll.drag =
                Some(NoteDrag { note: *note, origin: (ticks_at(origin.x), pitch_at(origin.y)), resize });
        }
        if let Some(drag) = &view.piano_roll.drag
            && drag.note.id == note.id
        {
            if response.dragged()
                && let Some(pointer) = response.interact_pointer_pos()
            {
                let original = drag.note;
                let (moved_ticks, moved_pitch) =
                    (ticks_at(pointer.x) - drag.origin.0, pitch_at(pointer.y) - drag.origin.1);
                let ops = if drag.resize {
                    let end = snap(original.start.0 + original.length.0 + moved_ticks).min(length);
                    let length = Ticks((end - original.start.0).max(step.max(1)));
                    edits::change_note(
                        open,
                        &original,
                        i32::from(original.pitch),
                        original.start,
                        length,
                        original.velocity,
                    )
                } else {
                    let start = Ticks(snap(original.start.0 + moved_ticks).clamp(0, length - 1));
                    let pitch = i32::from(original.pitch) + moved_pitch;
                    edits::change_note(open, &original, pitch, start, original.length, original.velocity)
                };
                out.edits.write(EditMsg::Preview(ops));
            }
            if response.drag_stopped() {
                view.piano_roll.drag = None;
                out.edits.write(EditMsg::CommitGesture);
            }
        }
    }
    // Delete removes the selection.
    let delete = ui.input(|input| input.key_pressed(egui::Key::Delete) || input.key_pressed(egui::Key::Backspace));
    if delete && !view.piano_roll.selected.is_empty() && !ui.ctx().egui_wants_keyboard_input() {
        out.edit(edits::remove_notes(open, view.piano_roll.selected.drain()));
    }
    ui.allocate_rect(rect, egui::Sense::hover());
}
