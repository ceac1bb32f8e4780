//! The timeline: ruler with the loop range, grid, one row per track with its clips and its
//! automation lane, and the playhead.
//!
//! Wheel scrolls the rows, Shift+wheel (or a sideways wheel) scrolls time, Ctrl+wheel zooms
//! time around the pointer and Alt+wheel makes the rows taller or shorter. A click on the
//! ruler moves the playhead; a drag on it draws the loop range. Positions snap to the beat
//! (the bar when zoomed out, the sixteenth when zoomed in); hold Alt to place freely. The view
//! follows the playhead while playing.

use bevy_egui::egui;
use ensemble_protocol::{Field, LoopRange, Op, ProjectField, TICKS_PER_QUARTER, Ticks, TrackId};

use super::{Drag, DrawnLayout, Out, Row, Scene, View, automation, clips, rows, theme};
use crate::edits;
use crate::history::EditMsg;
use crate::import::ImportMsg;
use crate::playback::Transport;
use crate::sync::UploadSource;

/// Height of the ruler above the rows.
const RULER: f32 = 30.0;

/// Turns screen positions into timeline terms and back.
#[derive(Clone, Copy, Debug)]
pub(super) struct Grid {
    left: f32,
    scroll: i64,
    points_per_quarter: f32,
    /// The snapping step in ticks (1 with Alt held).
    pub(super) snap: i64,
}

impl Grid {
    fn new(view: &View, left: f32, beats_per_bar: i64, free: bool) -> Grid {
        let snap = match view.points_per_quarter {
            _ if free => 1,
            p if p >= 120.0 => TICKS_PER_QUARTER / 4,
            p if p >= 12.0 => TICKS_PER_QUARTER,
            _ => TICKS_PER_QUARTER * beats_per_bar,
        };
        Grid { left, scroll: view.scroll.0, points_per_quarter: view.points_per_quarter, snap }
    }

    pub(super) fn x_of(&self, ticks: i64) -> f32 {
        self.left + (ticks - self.scroll) as f32 / TICKS_PER_QUARTER as f32 * self.points_per_quarter
    }

    pub(super) fn ticks_at(&self, x: f32) -> i64 {
        self.scroll + ((x - self.left) / self.points_per_quarter * TICKS_PER_QUARTER as f32).round() as i64
    }

    /// Points per tick, for lengths.
    pub(super) fn width_of(&self, ticks: i64) -> f32 {
        ticks as f32 / TICKS_PER_QUARTER as f32 * self.points_per_quarter
    }

    pub(super) fn snapped(&self, ticks: i64) -> i64 {
        ((ticks as f64 / self.snap as f64).round() as i64 * self.snap).max(0)
    }

    /// The snapped tick under `x`.
    pub(super) fn snapped_at(&self, x: f32) -> Ticks {
        Ticks(self.snapped(self.ticks_at(x)))
    }
}

/// The track whose row (not its lane) is under `y`.
pub(super) fn track_at(rows: &[Row], view: &View, y: f32) -> Option<TrackId> {
    rows.iter().find(|row| (row.top..row.track_bottom(view)).contains(&y)).map(|row| row.id)
}

fn free_placement(ui: &egui::Ui) -> bool {
    ui.input(|input| input.modifiers.alt)
}

/// Draws the timeline; returns the position under the pointer, when it is over the timeline.
pub(super) fn show(
    ui: &mut egui::Ui,
    scene: &Scene,
    view: &mut View,
    transport: &mut Transport,
    drawn: &mut DrawnLayout,
    out: &mut Out,
) -> Option<Ticks> {
    let rect = ui.available_rect_before_wrap();
    view.timeline = rect;
    let background = ui.allocate_rect(rect, egui::Sense::click());
    let beats_per_bar = i64::from(scene.project.time_signature.numerator.max(1));
    scroll_and_zoom(ui, &background, scene, view, rect);
    follow_playhead(view, transport, rect);
    let grid = Grid::new(view, rect.left(), beats_per_bar, free_placement(ui));
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, theme::BACKGROUND);
    view.rows_top = rect.top() + RULER;
    let rows = rows(view, &scene.tracks, view.rows_top, rect.bottom());
    for (number, row) in rows.iter().enumerate() {
        let lane = egui::Rect::from_x_y_ranges(rect.x_range(), row.top..=row.track_bottom(view));
        let fill = if (view.first_row + number).is_multiple_of(2) { theme::LANE } else { theme::LANE_ALT };
        painter.rect_filled(lane.shrink2(egui::vec2(0.0, 1.0)), 0.0, fill);
    }
    grid_lines(&painter, rect, &grid, view, beats_per_bar);
    ruler(ui, &painter, rect, scene, view, transport, &grid, out);
    for row in &rows {
        for (id, clip) in scene.clips.get(&row.entity).into_iter().flatten() {
            clips::show(ui, &painter, rect, scene, view, &grid, &rows, row, *id, clip, drawn, out);
        }
        clips::overlaps(&painter, rect, &grid, view, row, scene.clips.get(&row.entity).map_or(&[][..], Vec::as_slice));
        for (id, clip) in scene.note_clips.get(&row.entity).into_iter().flatten() {
            super::notes::show_clip(ui, &painter, rect, view, &grid, row, (*id, clip), drawn, out);
        }
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(take) = &scene.take {
            super::takes::growing(&painter, rect, scene, view, &grid, row, take);
        }
        if let Some(parameter) = row.lane {
            let lane_rect = egui::Rect::from_x_y_ranges(
                rect.x_range(),
                row.track_bottom(view)..=row.track_bottom(view) + super::LANE_HEIGHT,
            );
            automation::show(ui, &painter, lane_rect.intersect(rect), scene, view, &grid, row, parameter, drawn, out);
        }
    }
    collaborators(&painter, rect, scene, &grid);
    let x = grid.x_of(transport.position.0);
    if rect.x_range().contains(x) {
        painter.line_segment([egui::pos2(x, rect.top()), egui::pos2(x, rect.bottom())], (2.0, theme::PLAYHEAD));
    }
    if background.clicked() {
        view.selected.clear();
    }
    if background.double_clicked() {
        transport.position = grid.snapped_at(background.interact_pointer_pos().map_or(x, |pos| pos.x));
    }
    clip_keys(ui, scene, view, transport, &grid, out);
    ui.ctx()
        .pointer_hover_pos()
        .filter(|pointer| rect.contains(*pointer))
        .map(|pointer| Ticks(grid.ticks_at(pointer.x).max(0)))
}

/// Each collaborator's playhead (a thin line with their name) and pointer (a mark on the
/// ruler), in their colour.
fn collaborators(painter: &egui::Painter, rect: egui::Rect, scene: &Scene, grid: &Grid) {
    for peer in scene.peers.sessions.values() {
        let colour = super::colour32(peer.colour);
        let x = grid.x_of(peer.presence.playhead.0);
        if rect.x_range().contains(x) {
            painter.line_segment([egui::pos2(x, rect.top() + 14.0), egui::pos2(x, rect.bottom())], (1.0, colour));
            // The name sits in the ruler, clear of the clips' names.
            painter.text(
                egui::pos2(x + 3.0, rect.top() + 14.0),
                egui::Align2::LEFT_TOP,
                &peer.name,
                egui::FontId::proportional(11.0),
                colour,
            );
        }
        if let Some(pointer) = peer.presence.pointer {
            let x = grid.x_of(pointer.0);
            if rect.x_range().contains(x) {
                let tip = egui::pos2(x, rect.top() + RULER);
                let mark = vec![tip, tip + egui::vec2(-5.0, -8.0), tip + egui::vec2(5.0, -8.0)];
                painter.add(egui::Shape::convex_polygon(mark, colour, egui::Stroke::NONE));
            }
        }
    }
}

fn scroll_and_zoom(ui: &egui::Ui, background: &egui::Response, scene: &Scene, view: &mut View, rect: egui::Rect) {
    if !ui.rect_contains_pointer(rect) || background.ctx.is_being_dragged(background.id) {
        return;
    }
    let (zoom, scroll, shift, alt, pointer) = ui.input(|input| {
        let modifiers = input.modifiers;
        (input.zoom_delta(), input.smooth_scroll_delta, modifiers.shift, modifiers.alt, input.pointer.hover_pos())
    });
    if alt && scroll.y != 0.0 {
        // Alt+wheel zooms vertically: taller or shorter rows.
        view.track_height = (view.track_height * (1.0 + scroll.y * 0.004)).clamp(40.0, 220.0);
        return;
    }
    if zoom != 1.0 {
        // Keep the tick under the pointer where it is.
        let anchor_x = pointer.map_or(rect.left(), |pos| pos.x);
        let before = Grid::new(view, rect.left(), 4, true).ticks_at(anchor_x);
        view.points_per_quarter = (view.points_per_quarter * zoom).clamp(2.0, 400.0);
        let after = Grid::new(view, rect.left(), 4, true).ticks_at(anchor_x);
        view.scroll = Ticks((view.scroll.0 + before - after).max(0));
        return;
    }
    let (sideways, down) = if shift && scroll.x == 0.0 { (scroll.y, 0.0) } else { (scroll.x, scroll.y) };
    if sideways != 0.0 {
        let ticks = (-sideways / view.points_per_quarter * TICKS_PER_QUARTER as f32) as i64;
        view.scroll = Ticks((view.scroll.0 + ticks).max(0));
    }
    if down != 0.0 {
        let rows = (-down / view.track_height * 2.0).round() as isize;
        let last = scene.tracks.len().saturating_sub(1);
        view.first_row = view.first_row.saturating_add_signed(rows).min(last);
    }
}

/// While playing, turns the page when the playhead reaches the right edge (or is off screen).
fn follow_playhead(view: &mut View, transport: &Transport, rect: egui::Rect) {
    if !transport.playing || view.drag.is_some() {
        return;
    }
    let grid = Grid::new(view, rect.left(), 4, true);
    let x = grid.x_of(transport.position.0);
    if x > rect.right() - 24.0 || x < rect.left() {
        let margin = grid.ticks_at(rect.left() + rect.width() * 0.1) - view.scroll.0;
        view.scroll = Ticks((transport.position.0 - margin).max(0));
    }
}

fn grid_lines(painter: &egui::Painter, rect: egui::Rect, grid: &Grid, view: &View, beats_per_bar: i64) {
    let first_beat = grid.ticks_at(rect.left()).max(0) / TICKS_PER_QUARTER;
    let mut beat = first_beat;
    loop {
        let x = grid.x_of(beat * TICKS_PER_QUARTER);
        if x > rect.right() {
            break;
        }
        let is_bar = beat % beats_per_bar == 0;
        if is_bar || view.points_per_quarter > 12.0 {
            let colour = if is_bar { theme::BAR } else { theme::GRID };
            painter.line_segment([egui::pos2(x, rect.top() + RULER), egui::pos2(x, rect.bottom())], (1.0, colour));
        }
        // Bar numbers, thinned out so they never overlap.
        let bars_per_label = (48.0 / (view.points_per_quarter * beats_per_bar as f32)).ceil().max(1.0) as i64;
        if is_bar && (beat / beats_per_bar) % bars_per_label == 0 {
            painter.text(
                egui::pos2(x + 4.0, rect.top() + 4.0),
                egui::Align2::LEFT_TOP,
                (beat / beats_per_bar + 1).to_string(),
                egui::FontId::proportional(12.0),
                theme::DIM,
            );
        }
        beat += 1;
    }
    let line = rect.top() + RULER;
    painter.line_segment([egui::pos2(rect.left(), line), egui::pos2(rect.right(), line)], (1.0, theme::BAR));
}

// The ruler reads the scene and the grid and changes the view, the transport and the project.
#[allow(clippy::too_many_arguments)]
fn ruler(
    ui: &egui::Ui,
    painter: &egui::Painter,
    rect: egui::Rect,
    scene: &Scene,
    view: &mut View,
    transport: &mut Transport,
    grid: &Grid,
    out: &mut Out,
) {
    let ruler = egui::Rect::from_min_size(rect.min, egui::vec2(rect.width(), RULER));
    if let Some(range) = scene.project.loop_range {
        let band = egui::Rect::from_x_y_ranges(
            grid.x_of(range.start.0)..=grid.x_of(range.end.0),
            ruler.bottom() - 9.0..=ruler.bottom() - 1.0,
        );
        let colour = if transport.looping { theme::ACCENT } else { theme::DIM };
        painter.rect_filled(band.intersect(ruler), 2.0, colour.gamma_multiply(0.7));
    }
    let response = ui.interact(ruler, egui::Id::new("ruler"), egui::Sense::click_and_drag());
    let pointer = response.interact_pointer_pos();
    if response.clicked()
        && let Some(pointer) = pointer
    {
        transport.position = grid.snapped_at(pointer.x);
    }
    if response.drag_started()
        && let Some(origin) = super::drag_origin(&response)
    {
        view.drag = Some(Drag::Loop { from: grid.snapped_at(origin.x).0 });
    }
    if let (Some(Drag::Loop { from }), Some(pointer)) = (&view.drag, pointer)
        && response.dragged()
    {
        let to = grid.snapped_at(pointer.x).0;
        let (start, end) = (Ticks((*from).min(to)), Ticks((*from).max(to)));
        if end > start {
            let range = Some(LoopRange { start, end });
            let set = Op::Set {
                target: scene.project_id,
                value: Field::Project(ProjectField::LoopRange(range)),
                expect: None,
            };
            out.edits.write(EditMsg::Preview(vec![set]));
        }
    }
    if response.drag_stopped() && matches!(view.drag, Some(Drag::Loop { .. })) {
        view.drag = None;
        transport.looping = true;
        out.edits.write(EditMsg::CommitGesture);
    }
    response.on_hover_text("Click to move the playhead, drag to set the loop");
}

/// Delete, Ctrl+D (duplicate after itself), S (split at the playhead) and the arrow keys
/// (nudge by the grid) on the selected clips.
fn clip_keys(ui: &egui::Ui, scene: &Scene, view: &View, transport: &Transport, grid: &Grid, out: &mut Out) {
    if view.selected.is_empty() || ui.ctx().text_edit_focused() {
        return;
    }
    use egui::{Key, Modifiers};
    let (delete, duplicate, split, left, right) = ui.input_mut(|input| {
        let mut pressed = |modifiers, key| super::take_key(input, modifiers, key);
        (
            pressed(Modifiers::NONE, Key::Delete) || pressed(Modifiers::NONE, Key::Backspace),
            pressed(Modifiers::COMMAND, Key::D),
            pressed(Modifiers::NONE, Key::S),
            pressed(Modifiers::NONE, Key::ArrowLeft),
            pressed(Modifiers::NONE, Key::ArrowRight),
        )
    });
    let nudge = match (left, right) {
        (true, false) => -grid.snap,
        (false, true) => grid.snap,
        _ => 0,
    };
    let mut ops = Vec::new();
    for (id, clip) in scene.selected(view) {
        if delete {
            ops.push(Op::Delete { target: id });
        } else if duplicate {
            ops.extend(edits::duplicate_clip(clip).1);
        } else if split {
            let rate = scene.asset(clip.asset).map_or(scene.project.sample_rate, |asset| asset.sample_rate);
            ops.extend(edits::split_clip(id, clip, transport.position, scene.timebase, rate).into_iter().flatten());
        } else if nudge != 0 {
            ops.extend(edits::move_clip(id, clip, Ticks((clip.start.0 + nudge).max(0)), clip.track));
        }
    }
    out.edit(ops);
}

/// The playhead snapped to the grid: where an import goes when nothing says otherwise.
pub(super) fn snapped_playhead(view: &View, scene: &Scene, transport: &Transport) -> Ticks {
    let beats_per_bar = i64::from(scene.project.time_signature.numerator.max(1));
    let grid = Grid::new(view, view.timeline.left(), beats_per_bar, false);
    Ticks(grid.snapped(transport.position.0))
}

/// A file dropped on the window: onto the track row under the pointer at the snapped position
/// there, or, when the drop point is unknown or off the rows, onto a new track at the snapped
/// playhead.
pub(super) fn drop_file(
    view: &View,
    scene: &Scene,
    transport: &Transport,
    source: UploadSource,
    pointer: Option<egui::Pos2>,
    out: &mut Out,
) {
    let rect = view.timeline;
    let rows = rows(view, &scene.tracks, view.rows_top, rect.bottom());
    let beats_per_bar = i64::from(scene.project.time_signature.numerator.max(1));
    let grid = Grid::new(view, rect.left(), beats_per_bar, false);
    let placed = pointer
        .filter(|pointer| rect.contains(*pointer))
        .and_then(|pointer| track_at(&rows, view, pointer.y).map(|track| (Some(track), grid.snapped_at(pointer.x))));
    let (track, at) = placed.unwrap_or_else(|| (None, snapped_playhead(view, scene, transport)));
    out.import.write(ImportMsg::new(source, track, at));
}
