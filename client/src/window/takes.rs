//! Recording in the window (native): the record button with its count-in and punch switches,
//! the R key, and the take growing on its track while it comes in.

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy_egui::egui;

use super::timeline::Grid;
use super::{Row, Scene, View, theme};
use crate::record::{GrowingTake, RecordDone, RecordMsg, RecordOptions, TakeMade, Takes};

/// What the window writes of recording (what it reads is [`Takes`]).
#[derive(SystemParam)]
pub(super) struct RecordControls<'w> {
    options: ResMut<'w, RecordOptions>,
    asked: MessageWriter<'w, RecordMsg>,
}

/// Where a frame's recording gestures go: the controls, with what recording is doing now
/// (whether R starts a take or ends one).
pub(super) struct Recorder<'a, 'w> {
    pub(super) controls: &'a mut RecordControls<'w>,
    pub(super) takes: &'a Takes,
}

impl Recorder<'_, '_> {
    /// Starts a take, or ends the one under way.
    pub(super) fn toggle(&mut self) {
        let asked = if self.takes.is_recording() { RecordMsg::Stop } else { RecordMsg::Start };
        self.controls.asked.write(asked);
    }
}

/// The record button, in the transport bar; its switches (count-in, punch) are in its
/// right-click menu, so the bar still fits a 1,024-point window.
pub(super) fn buttons(ui: &mut egui::Ui, scene: &Scene, record: &mut Recorder, controls: &mut Vec<egui::Rect>) {
    let recording = record.takes.is_recording();
    let options = *record.controls.options;
    let switches = match (options.count_in, options.punch && scene.project.loop_range.is_some()) {
        (true, true) => "count-in, punch",
        (true, false) => "count-in",
        (false, true) => "punch",
        (false, false) => "no count-in",
    };
    // The dot is painted: the interface's fonts have no record symbol.
    let button = ui
        .add(egui::Button::new("").min_size(egui::vec2(26.0, 0.0)).selected(recording))
        .on_hover_text(format!("Record onto the armed track (R), {switches}; right-click to change"));
    let colour = if recording { theme::RECORD } else { theme::RECORD.gamma_multiply(0.7) };
    ui.painter().circle_filled(button.rect.center(), 6.0, colour);
    controls.push(button.rect);
    if button.clicked() {
        record.toggle();
    }
    let has_loop = scene.project.loop_range.is_some();
    button.context_menu(|ui| {
        let options = &mut record.controls.options;
        ui.checkbox(&mut options.count_in, "Count-in: a bar of click first");
        let punch = egui::Checkbox::new(&mut options.punch, "Punch: record only inside the loop range");
        let hint = if has_loop { "" } else { "Set a loop range (L) first" };
        ui.add_enabled(has_loop, punch).on_disabled_hover_text(hint);
    });
}

/// The take coming in, on its track's row: from its first sample to the playhead, its peaks
/// in the recording colour.
pub(super) fn growing(
    painter: &egui::Painter,
    visible: egui::Rect,
    scene: &Scene,
    view: &View,
    grid: &Grid,
    row: &Row,
    take: &GrowingTake,
) {
    if row.id != take.track || take.frames <= 0.0 {
        return;
    }
    let frames_per_tick = scene.timebase.frames_per_tick();
    let x_of_frame = |frame: f64| grid.x_of((frame / frames_per_tick).round() as i64);
    let first = take.first_frame as f64;
    let end = first + take.frames;
    let rows = row.top + 2.0..=row.track_bottom(view) - 2.0;
    let body = egui::Rect::from_x_y_ranges(x_of_frame(first)..=x_of_frame(end), rows.clone());
    painter.rect_filled(body.intersect(visible), 3.0, theme::RECORD.gamma_multiply(0.25));
    painter.rect_stroke(body.intersect(visible), 3.0, (1.0, theme::RECORD), egui::StrokeKind::Inside);
    // A take of notes: each note a bar at its pitch's height (C2 at the bottom, C7 at the top).
    for note in take.notes {
        let (from, to) = (x_of_frame(note.start as f64), x_of_frame(note.end.map_or(end, |end| end as f64)));
        let height = f32::from(note.pitch.clamp(36, 96) - 36) / 60.0;
        let y = body.bottom() - 4.0 - height * (body.height() - 8.0);
        let bar = egui::Rect::from_x_y_ranges(from..=to.max(from + 2.0), y - 1.5..=y + 1.5);
        painter.rect_filled(bar.intersect(visible), 1.0, theme::RECORD);
    }
    if take.peaks.is_empty() {
        return;
    }
    // An audio take: its waveform over the stretch its peaks cover.
    let covered = first + take.peaks.len() as f64 * take.frames_per_peak;
    let body = egui::Rect::from_x_y_ranges(x_of_frame(first)..=x_of_frame(covered), rows);
    let (centre, half) = (body.center().y, body.height() / 2.0 - 4.0);
    // One column per point: the loudest stretch under it.
    let width = body.width().max(1.0);
    let peaks_per_point = take.peaks.len() as f32 / width;
    let mut x = body.left().max(visible.left()).floor();
    while x < body.right().min(visible.right()) {
        let from = ((x - body.left()) * peaks_per_point) as usize;
        let to = (((x + 1.0 - body.left()) * peaks_per_point) as usize).max(from + 1).min(take.peaks.len());
        let (low, high) = take.peaks[from.min(take.peaks.len() - 1)..to]
            .iter()
            .fold((0f32, 0f32), |(low, high), [min, max]| (low.min(*min), high.max(*max)));
        let (top, bottom) = (centre - high.clamp(-1.0, 1.0) * half, centre - low.clamp(-1.0, 1.0) * half);
        painter.line_segment([egui::pos2(x, top), egui::pos2(x, bottom.max(top + 1.0))], (1.0, theme::RECORD));
        x += 1.0;
    }
}

/// How each take ended, for the status line.
pub(super) fn alert(done: &RecordDone) -> (String, bool) {
    match &done.result {
        Ok(TakeMade::Notes { name, notes, .. }) => (format!("Recorded {name}: {notes} notes"), false),
        Ok(TakeMade::Audio(take)) if take.dropped > 0 => {
            (format!("Recorded {}, but the input outran the disk: {} frames were lost", take.name, take.dropped), true)
        }
        Ok(TakeMade::Audio(take)) => {
            let seconds = take.frames as f64 / f64::from(take.sample_rate.max(1));
            (format!("Recorded {} ({seconds:.1} s); its clip lands once the authority has it", take.name), false)
        }
        Err(reason) => (format!("Not recording: {reason}"), true),
    }
}
