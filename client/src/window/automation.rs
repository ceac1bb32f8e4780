//! An automation lane under its track: the curve as it will play, its points, and editing.
//!
//! Click in the lane to add a point (the lane itself is made with the first one), drag a point
//! to move it (in time it snaps like clips; Alt places freely), right-click or double-click it
//! to delete it. The curve is drawn by the renderer's own [`Envelope`], so what is seen is what
//! is heard.

use bevy_egui::egui;
use ensemble_audio::arrangement::{Envelope, Point, gain_to_db};
use ensemble_protocol::{AutomationLane, Parameter, PointId, RecordId};

use super::timeline::Grid;
use super::{Drag, DrawnLayout, DrawnRegion, Out, Row, Scene, View, colour32, headers, theme};
use crate::edits;
use crate::history::EditMsg;

/// Maps a parameter's values onto the lane's height.
struct Scale {
    low: f32,
    high: f32,
    top: f32,
    bottom: f32,
}

impl Scale {
    fn new(parameter: Parameter, rect: egui::Rect) -> Scale {
        let (low, high) = edits::parameter_range(parameter);
        Scale { low, high, top: rect.top() + 6.0, bottom: rect.bottom() - 6.0 }
    }

    fn y_of(&self, value: f32) -> f32 {
        let share = ((value - self.low) / (self.high - self.low)).clamp(0.0, 1.0);
        self.bottom - share * (self.bottom - self.top)
    }

    fn value_at(&self, y: f32) -> f32 {
        let share = ((self.bottom - y) / (self.bottom - self.top)).clamp(0.0, 1.0);
        self.low + share * (self.high - self.low)
    }
}

/// How a value reads in the lane's parameter.
fn describe(parameter: Parameter, value: f32) -> String {
    match parameter {
        Parameter::Gain => format!("{value:.1} dB"),
        Parameter::Pan if value.abs() < 0.005 => "C".into(),
        Parameter::Pan if value < 0.0 => format!("L{:.0}", -value * 100.0),
        Parameter::Pan => format!("R{:.0}", value * 100.0),
        Parameter::Effect(_, param) => super::mixer::describe_param(param, value),
    }
}

/// The lane's points in playing order, as the renderer's envelope (ticks for frames).
fn envelope(lane: &AutomationLane) -> Envelope {
    let mut points: Vec<Point> = lane
        .points
        .iter()
        .map(|point| Point { frame: point.tick.0.max(0) as u64, value: point.value, curve: point.curve })
        .collect();
    points.sort_by_key(|point| point.frame);
    Envelope { points }
}

// A lane is drawn against the timeline, its row and the grid, and reports what it drew and
// what it was told to do.
#[allow(clippy::too_many_arguments)]
pub(super) fn show(
    ui: &egui::Ui,
    painter: &egui::Painter,
    rect: egui::Rect,
    scene: &Scene,
    view: &mut View,
    grid: &Grid,
    row: &Row,
    parameter: Parameter,
    drawn: &mut DrawnLayout,
    out: &mut Out,
) {
    if !rect.is_positive() {
        return;
    }
    painter.rect_filled(rect.shrink2(egui::vec2(0.0, 1.0)), 0.0, theme::AUTOMATION);
    let colour = colour32(row.track.colour);
    let tab = egui::Rect::from_min_size(rect.min + egui::vec2(0.0, 4.0), egui::vec2(6.0, rect.height() - 8.0));
    painter.rect_filled(tab, 1.0, colour);
    // The playhead may rest on the lane's left edge: report the tab's right half.
    let swatch =
        egui::Rect::from_min_max(egui::pos2(tab.left() + 3.0, tab.top() + 4.0), tab.max - egui::vec2(0.0, 4.0));
    drawn.lanes.push(DrawnRegion::new(row.track, swatch));
    let scale = Scale::new(parameter, rect);
    let lane = scene.lanes.get(&(row.id, parameter)).copied();
    let background = ui.interact(rect, egui::Id::new(("lane", row.id, parameter)), egui::Sense::click());
    if background.clicked()
        && let Some(pointer) = background.interact_pointer_pos()
    {
        let (_, ops) = edits::add_point(
            lane.map(|(id, _)| id),
            row.id,
            parameter,
            grid.snapped_at(pointer.x),
            scale.value_at(pointer.y),
        );
        out.edit(ops);
    }
    let Some((lane_id, lane)) = lane else {
        // 0 dB, or the centre.
        let centre = scale.y_of(0.0);
        painter.line_segment([egui::pos2(rect.left(), centre), egui::pos2(rect.right(), centre)], (1.0, theme::GRID));
        painter.text(
            rect.left_center() + egui::vec2(12.0, 0.0),
            egui::Align2::LEFT_CENTER,
            format!("Click to add {} automation", headers::name(scene, parameter).to_lowercase()),
            egui::FontId::proportional(12.0),
            theme::DIM,
        );
        return;
    };
    let curve_colour = if lane.enabled { colour } else { theme::DIM };
    let shape = envelope(lane);
    let mut line = Vec::new();
    let mut x = rect.left();
    while x <= rect.right() + 2.0 {
        let tick = grid.ticks_at(x).max(0) as u64;
        // Gain ramps to and from silence are ramps of the linear gain, as the renderer plays them.
        let value = match lane.parameter {
            Parameter::Gain => shape.gain_at(tick).map(gain_to_db),
            Parameter::Pan | Parameter::Effect(..) => shape.value_at(tick),
        };
        if let Some(value) = value {
            line.push(egui::pos2(x, scale.y_of(value)));
        }
        x += 2.0;
    }
    painter.add(egui::Shape::line(line, (2.0, curve_colour)));
    for point in &lane.points {
        let centre = egui::pos2(grid.x_of(point.tick.0), scale.y_of(point.value));
        if !rect.x_range().contains(centre.x) {
            continue;
        }
        let zone = egui::Rect::from_center_size(centre, egui::vec2(12.0, 12.0)).intersect(rect);
        let id = egui::Id::new(("point", lane_id, point.id));
        let response = ui.interact(zone, id, egui::Sense::click_and_drag());
        let hot = response.hovered() || response.dragged();
        painter.circle_filled(centre, if hot { 5.0 } else { 4.0 }, curve_colour);
        if hot {
            painter.circle_stroke(centre, 5.0, (1.5, theme::WAVE));
            painter.text(
                centre + egui::vec2(8.0, -8.0),
                egui::Align2::LEFT_BOTTOM,
                describe(parameter, point.value),
                egui::FontId::proportional(11.0),
                theme::TEXT,
            );
        }
        if response.secondary_clicked() || response.double_clicked() {
            out.edit(edits::remove_point(lane_id, point.id));
            continue;
        }
        drag_point(view, &response, grid, &scale, lane_id, lane, point.id, out);
    }
}

/// Moves a point: previews from the lane as it was when the drag began.
#[allow(clippy::too_many_arguments)]
fn drag_point(
    view: &mut View,
    response: &egui::Response,
    grid: &Grid,
    scale: &Scale,
    lane_id: RecordId,
    lane: &AutomationLane,
    point: PointId,
    out: &mut Out,
) {
    if response.drag_started() {
        view.drag = Some(Drag::Point { lane: lane_id, original: lane.clone(), point });
    }
    let Some(Drag::Point { lane: held, original, point: holding }) = &view.drag else { return };
    if *held != lane_id || *holding != point {
        return;
    }
    if response.dragged()
        && let Some(pointer) = response.interact_pointer_pos()
    {
        let ops = edits::move_point(lane_id, original, point, grid.snapped_at(pointer.x), scale.value_at(pointer.y));
        out.edits.write(EditMsg::Preview(ops));
    }
    if response.drag_stopped() {
        view.drag = None;
        out.edits.write(EditMsg::CommitGesture);
    }
}
