//! The DAW window (bevy_egui): transport bar, track headers and the timeline.
//!
//! Everything here only draws the model and turns gestures into [`EditMsg`]s: the window never
//! changes an entity itself. A fader or a tempo field being dragged sends `Preview`s and one
//! `CommitGesture` when the drag ends, so the whole drag is one edit and one undo step; clicks
//! (mute, solo, arm) and finished text fields are single edits. What is shown comes from the
//! model's components, so it is always confirmed ⊕ pending ⊕ the gesture's preview.

use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPlugin, EguiPrimaryContextPass, egui};
use ensemble_protocol::{
    Bpm, Clip, ClipField, ClipId, Colour, Field, Frames, ListItem, ListPosition, Op, ProjectField, Record, RecordId,
    TICKS_PER_QUARTER, Ticks, Timebase, Track, TrackField, TrackId,
};

use crate::history::{EditMsg, History};
use crate::media::Media;
use crate::model::{ClipData, ProjectData, RecordIndex, RecordKey, TrackData};
use crate::playback::{PlaybackPlugin, Transport};
use crate::replica::{Notice, Replica};
use crate::sync::{Connection, SyncStatus};
use ensemble_audio::peaks::Peaks;

/// Draws the DAW and turns gestures into edits.
pub struct DawWindowPlugin;

impl Plugin for DawWindowPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins((EguiPlugin::default(), PlaybackPlugin))
            .init_resource::<View>()
            .init_resource::<DrawnLayout>()
            .init_resource::<Alerts>()
            .add_systems(Startup, spawn_camera)
            .add_systems(Update, collect_alerts)
            .add_systems(EguiPrimaryContextPass, draw);
    }
}

/// How the timeline is zoomed and scrolled.
#[derive(Resource, Debug)]
pub struct View {
    /// Screen points per quarter note.
    pub points_per_quarter: f32,
    /// Height of one track row.
    pub track_height: f32,
    /// The first track row shown (the timeline and the headers scroll together).
    pub first_row: usize,
    /// Where the timeline's first row began in the last frame, so the headers line up with it.
    rows_top: f32,
    /// The selected clips.
    pub selected: std::collections::HashSet<RecordId>,
    /// The clip being dragged: its id, where in it the pointer grabbed (ticks), its track.
    grab: Option<(RecordId, i64, TrackId)>,
    themed: bool,
}

impl Default for View {
    fn default() -> Self {
        View {
            points_per_quarter: 28.0,
            track_height: 76.0,
            first_row: 0,
            rows_top: 0.0,
            selected: Default::default(),
            grab: None,
            themed: false,
        }
    }
}

/// Where the last frame drew each track header and clip, in window points: what a screenshot
/// check compares against the pixels.
#[derive(Resource, Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct DrawnLayout {
    /// Track headers, top to bottom.
    pub headers: Vec<DrawnRegion>,
    /// Clips, by track then position.
    pub clips: Vec<DrawnRegion>,
    /// Clip bodies with a waveform drawn in them (in the waveform's colour).
    pub waveforms: Vec<DrawnRegion>,
}

/// One drawn region and the colour that identifies it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DrawnRegion {
    /// The track's (or the clip's track's) name.
    pub name: String,
    /// The track colour, sRGB.
    pub colour: [u8; 3],
    /// Where its colour is painted solid: left, top, right, bottom.
    pub swatch: [f32; 4],
}

fn swatch(rect: egui::Rect) -> [f32; 4] {
    [rect.left(), rect.top(), rect.right(), rect.bottom()]
}

/// Recent notices, shown in the status line.
#[derive(Resource, Debug, Default)]
struct Alerts(Vec<String>);

fn spawn_camera(mut commands: Commands) {
    commands.spawn(Camera2d);
}

fn collect_alerts(mut notices: MessageReader<Notice>, mut alerts: ResMut<Alerts>) {
    for notice in notices.read() {
        let text = match notice {
            Notice::Refused { reason } => format!("Edit refused: {reason}"),
            Notice::UndoRefused { reason } => format!("Cannot undo: {reason}"),
            Notice::RedoRefused { reason } => format!("Cannot redo: {reason}"),
            Notice::Rejected { reason, .. } => format!("The authority refused an edit: {reason}"),
            Notice::Dropped { reason, .. } => format!("An edit no longer applies: {reason}"),
        };
        alerts.0.push(text);
        let excess = alerts.0.len().saturating_sub(4);
        alerts.0.drain(..excess);
    }
}

/// The palette: dark, with the accent of a meter's green.
mod theme {
    use bevy_egui::egui::Color32;

    pub(super) const BACKGROUND: Color32 = Color32::from_rgb(24, 26, 30);
    pub(super) const PANEL: Color32 = Color32::from_rgb(32, 35, 41);
    pub(super) const LANE: Color32 = Color32::from_rgb(28, 30, 35);
    pub(super) const LANE_ALT: Color32 = Color32::from_rgb(31, 34, 39);
    pub(super) const GRID: Color32 = Color32::from_rgb(44, 48, 56);
    pub(super) const BAR: Color32 = Color32::from_rgb(66, 72, 84);
    pub(super) const TEXT: Color32 = Color32::from_rgb(214, 219, 228);
    pub(super) const DIM: Color32 = Color32::from_rgb(132, 140, 154);
    pub(super) const ACCENT: Color32 = Color32::from_rgb(92, 214, 140);
    pub(super) const PLAYHEAD: Color32 = Color32::from_rgb(255, 196, 64);
    pub(super) const WARN: Color32 = Color32::from_rgb(240, 120, 96);
    pub(super) const WAVE: Color32 = Color32::from_rgb(232, 236, 242);
}

fn apply_theme(ctx: &egui::Context) {
    let mut visuals = egui::Visuals::dark();
    visuals.panel_fill = theme::PANEL;
    visuals.window_fill = theme::PANEL;
    visuals.extreme_bg_color = theme::BACKGROUND;
    visuals.override_text_color = Some(theme::TEXT);
    visuals.selection.bg_fill = theme::ACCENT.gamma_multiply(0.6);
    ctx.set_visuals(visuals);
    ctx.global_style_mut(|style| {
        style.spacing.item_spacing = egui::vec2(8.0, 6.0);
        style.spacing.button_padding = egui::vec2(8.0, 4.0);
        for (text_style, size) in [
            (egui::TextStyle::Body, 14.0),
            (egui::TextStyle::Button, 14.0),
            (egui::TextStyle::Small, 11.0),
            (egui::TextStyle::Heading, 18.0),
            (egui::TextStyle::Monospace, 14.0),
        ] {
            if let Some(font) = style.text_styles.get_mut(&text_style) {
                font.size = size;
            }
        }
    });
}

fn colour32(colour: Colour) -> egui::Color32 {
    egui::Color32::from_rgb(colour.r, colour.g, colour.b)
}

/// The tracks in order, with their data.
fn ordered_tracks<'a>(
    project: &ProjectData,
    index: &RecordIndex,
    tracks: &'a Query<&TrackData>,
) -> Vec<(Entity, TrackId, &'a Track)> {
    let found = |id: &TrackId| {
        let entity = index.entity((*id).into())?;
        tracks.get(entity).ok().map(|data| (entity, *id, &data.0))
    };
    project.track_order.iter().filter_map(found).collect()
}

/// Bars:beats:ticks of a position.
fn bars_beats(ticks: Ticks, beats_per_bar: u32) -> String {
    let quarter = TICKS_PER_QUARTER;
    let beats = ticks.0.max(0) / quarter;
    let bar = beats / i64::from(beats_per_bar.max(1)) + 1;
    let beat = beats % i64::from(beats_per_bar.max(1)) + 1;
    format!("{bar:>3}.{beat}.{:03}", ticks.0.max(0) % quarter)
}

#[allow(clippy::too_many_arguments)]
fn draw(
    mut contexts: EguiContexts,
    mut view: ResMut<View>,
    mut transport: ResMut<Transport>,
    status: Option<Res<SyncStatus>>,
    replica: Option<Res<Replica>>,
    history: Res<History>,
    alerts: Res<Alerts>,
    mut layout: ResMut<DrawnLayout>,
    project: Query<(&RecordKey, &ProjectData)>,
    index: Res<RecordIndex>,
    tracks: Query<&TrackData>,
    clips: Query<(&'static RecordKey, &'static ClipData, &'static ChildOf)>,
    media: Res<Media>,
    mut edits: MessageWriter<EditMsg>,
) -> Result {
    let ctx = contexts.ctx_mut()?.clone();
    if !view.themed {
        apply_theme(&ctx);
        view.themed = true;
    }
    let mut root = egui::Ui::new(
        ctx.clone(),
        "daw".into(),
        egui::UiBuilder::new().layer_id(egui::LayerId::background()).max_rect(ctx.viewport_rect()),
    );
    shortcuts(&ctx, &mut transport, &mut edits);
    let Ok((project_key, project)) = project.single() else {
        egui::CentralPanel::default().show(&mut root, |ui| {
            ui.centered_and_justified(|ui| {
                let connection = status.as_ref().map(|status| describe(&status.connection));
                ui.heading(format!("Opening the project… {}", connection.unwrap_or_default()));
            });
        });
        return Ok(());
    };
    let project_id = project_key.0;
    let timebase = Timebase::new(project.tempo, project.sample_rate);
    let ordered = ordered_tracks(project, &index, &tracks);
    let mut drawn = DrawnLayout::default();

    egui::Panel::top("transport").exact_size(52.0).show(&mut root, |ui| {
        ui.horizontal_centered(|ui| {
            ui.heading(&project.name);
            ui.separator();
            let label = if transport.playing { "■ Stop" } else { "▶ Play" };
            if ui.button(label).clicked() {
                transport.playing = !transport.playing;
            }
            if ui.button("⏮").on_hover_text("Back to the start").clicked() {
                transport.position = Ticks(0);
            }
            let seconds = timebase.frames(transport.position).0 as f64 / f64::from(project.sample_rate);
            ui.monospace(bars_beats(transport.position, project.time_signature.numerator.into()));
            ui.monospace(format!("{:02}:{:06.3}", (seconds / 60.0) as u64, seconds % 60.0));
            ui.separator();
            let mut tempo = project.tempo.0;
            let response = ui.add(egui::DragValue::new(&mut tempo).range(20.0..=999.0).speed(0.2).suffix(" BPM"));
            let tempo_op = |tempo: f64| {
                vec![Op::Set {
                    target: project_id,
                    value: Field::Project(ProjectField::Tempo(Bpm(tempo))),
                    expect: None,
                }]
            };
            gesture(&response, || tempo_op(tempo), &mut edits);
            ui.label(format!("{}/{}", project.time_signature.numerator, project.time_signature.denominator));
            ui.separator();
            if ui.add_enabled(history.can_undo(), egui::Button::new("Undo")).clicked() {
                edits.write(EditMsg::Undo);
            }
            if ui.add_enabled(history.can_redo(), egui::Button::new("Redo")).clicked() {
                edits.write(EditMsg::Redo);
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if let Some(status) = &status {
                    let colour = match status.connection {
                        Connection::Online { .. } => theme::ACCENT,
                        Connection::Connecting => theme::DIM,
                        Connection::Offline { .. } | Connection::Refused { .. } => theme::WARN,
                    };
                    let pending = replica.as_ref().map_or(0, |replica| replica.pending().len());
                    ui.label(format!("{pending} pending"));
                    ui.colored_label(colour, describe(&status.connection));
                    let (dot, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
                    ui.painter().circle_filled(dot.center(), 4.0, colour);
                }
            });
        });
    });

    egui::Panel::bottom("status").exact_size(26.0).show(&mut root, |ui| {
        ui.horizontal_centered(|ui| match alerts.0.last() {
            Some(alert) => {
                ui.colored_label(theme::WARN, alert);
            }
            None => {
                ui.colored_label(theme::DIM, "Space play/stop · Ctrl+Z undo · Ctrl+Shift+Z redo · drag faders");
            }
        });
    });

    egui::Panel::left("headers").exact_size(300.0).resizable(false).show(&mut root, |ui| {
        // Line the headers up with the timeline's rows (as placed in the last frame).
        let gap = (view.rows_top - ui.cursor().top()).max(0.0);
        ui.add_space(gap);
        ui.spacing_mut().item_spacing.y = 0.0;
        let fits = ((ui.available_height() - 40.0) / view.track_height).floor().max(1.0) as usize;
        for (_, id, track) in ordered.iter().skip(view.first_row).take(fits) {
            let stripe = track_header(ui, &view, *id, track, &mut edits);
            let colour = [track.colour.r, track.colour.g, track.colour.b];
            drawn.headers.push(DrawnRegion { name: track.name.clone(), colour, swatch: swatch(stripe) });
        }
        ui.add_space(8.0);
        ui.spacing_mut().item_spacing.y = 6.0;
        if ui.button("+ Add track").clicked() {
            let id = TrackId::new_v7();
            let palette = [(92, 214, 140), (96, 164, 255), (240, 140, 96), (200, 120, 240), (240, 200, 80)];
            let (r, g, b) = palette[ordered.len() % palette.len()];
            let track = Track {
                name: format!("Track {}", ordered.len() + 1),
                colour: Colour { r, g, b },
                gain_db: 0.0,
                pan: 0.0,
                mute: false,
                solo: false,
                record_arm: false,
            };
            edits.write(EditMsg::Edit(vec![
                Op::Create { id: id.into(), record: Record::Track(track) },
                Op::ListInsert { target: project_id, item: ListItem::Track(id), at: ListPosition::End },
            ]));
        }
    });

    egui::CentralPanel::default().show(&mut root, |ui| {
        let clips = Clips { query: &clips, media: &media, timebase };
        timeline(ui, &mut view, &transport, project, &ordered, &clips, &mut drawn, &mut edits);
    });
    layout.set_if_neq(drawn);
    Ok(())
}

/// Turns a widget's response into a preview while it is dragged, one edit when the drag ends,
/// and a plain edit for a click or typed value.
fn gesture(response: &egui::Response, ops: impl Fn() -> Vec<Op>, edits: &mut MessageWriter<EditMsg>) {
    if response.dragged() && response.changed() {
        edits.write(EditMsg::Preview(ops()));
    } else if response.drag_stopped() {
        edits.write(EditMsg::CommitGesture);
    } else if response.changed() {
        edits.write(EditMsg::Edit(ops()));
    }
}

fn describe(connection: &Connection) -> String {
    match connection {
        Connection::Connecting => "connecting".into(),
        Connection::Online { name, .. } => format!("online as {name}"),
        Connection::Offline { .. } => "offline, retrying".into(),
        Connection::Refused { reason } => format!("login refused: {reason}"),
    }
}

/// Draws a track's header; returns its colour stripe.
fn track_header(
    ui: &mut egui::Ui,
    view: &View,
    id: TrackId,
    track: &Track,
    edits: &mut MessageWriter<EditMsg>,
) -> egui::Rect {
    let set = |field: TrackField| vec![Op::Set { target: id.into(), value: Field::Track(field), expect: None }];
    let (rect, _) = ui.allocate_exact_size(egui::vec2(ui.available_width(), view.track_height), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect.shrink(1.0), 4.0, theme::LANE_ALT);
    let stripe = egui::Rect::from_min_size(rect.min, egui::vec2(6.0, rect.height()));
    painter.rect_filled(stripe, 2.0, colour32(track.colour));
    let mut inner = ui.new_child(egui::UiBuilder::new().max_rect(rect.shrink2(egui::vec2(14.0, 6.0))));
    inner.horizontal(|ui| {
        let mut name = track.name.clone();
        let response = ui.add(egui::TextEdit::singleline(&mut name).desired_width(120.0));
        if response.lost_focus() && name != track.name && !name.trim().is_empty() {
            edits.write(EditMsg::Edit(set(TrackField::Name(name))));
        }
        for (label, on, field) in [
            ("M", track.mute, TrackField::Mute(!track.mute)),
            ("S", track.solo, TrackField::Solo(!track.solo)),
            ("R", track.record_arm, TrackField::RecordArm(!track.record_arm)),
        ] {
            if ui.add(egui::Button::new(label).selected(on).min_size(egui::vec2(26.0, 22.0))).clicked() {
                edits.write(EditMsg::Edit(set(field)));
            }
        }
    });
    inner.horizontal(|ui| {
        let mut gain = track.gain_db;
        let response = ui.add(egui::Slider::new(&mut gain, -60.0..=12.0).suffix(" dB").fixed_decimals(1));
        gesture(&response, || set(TrackField::Gain(gain)), edits);
        let mut pan = track.pan;
        let response = ui.add(egui::DragValue::new(&mut pan).range(-1.0..=1.0).speed(0.01).prefix("pan "));
        gesture(&response, || set(TrackField::Pan(pan)), edits);
    });
    stripe.shrink2(egui::vec2(1.0, 6.0))
}

// The timeline reads the view, the transport, the project and its clips, and writes the layout
// report and edits: bundling them would only rename the list.
#[allow(clippy::too_many_arguments)]
fn timeline(
    ui: &mut egui::Ui,
    view: &mut View,
    transport: &Transport,
    project: &ProjectData,
    ordered: &[(Entity, TrackId, &Track)],
    clips: &Clips<'_, '_, '_>,
    drawn: &mut DrawnLayout,
    edits: &mut MessageWriter<EditMsg>,
) {
    let rect = ui.available_rect_before_wrap();
    let response = ui.allocate_rect(rect, egui::Sense::click());
    if response.hovered() {
        let (zoom, scroll) = ui.input(|input| (input.zoom_delta(), input.smooth_scroll_delta.y));
        view.points_per_quarter = (view.points_per_quarter * zoom).clamp(2.0, 400.0);
        if zoom == 1.0 && scroll != 0.0 {
            let rows = (-scroll / view.track_height * 2.0).round() as isize;
            let last = ordered.len().saturating_sub(1);
            view.first_row = view.first_row.saturating_add_signed(rows).min(last);
        }
    }
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, theme::BACKGROUND);
    let ruler = 30.0;
    let points_per_quarter = view.points_per_quarter;
    let x_of = |ticks: i64| rect.left() + ticks as f32 / TICKS_PER_QUARTER as f32 * points_per_quarter;
    let beats_per_bar = i64::from(project.time_signature.numerator.max(1));
    let grid = Grid {
        left: rect.left(),
        top: rect.top() + ruler,
        points_per_quarter: view.points_per_quarter,
        track_height: view.track_height,
        snap: if view.points_per_quarter >= 12.0 { TICKS_PER_QUARTER } else { TICKS_PER_QUARTER * beats_per_bar },
        tracks: ordered.iter().skip(view.first_row).map(|(_, id, _)| *id).collect(),
    };
    let shown = ordered.iter().enumerate().skip(view.first_row);
    let (first_row, track_height) = (view.first_row, view.track_height);
    view.rows_top = rect.top() + ruler;
    let row_top = |row: usize| rect.top() + ruler + (row - first_row) as f32 * track_height;
    for (row, _) in shown.clone().take_while(|(row, _)| row_top(*row) < rect.bottom()) {
        let top = row_top(row);
        let lane = egui::Rect::from_min_size(egui::pos2(rect.left(), top), egui::vec2(rect.width(), view.track_height));
        painter.rect_filled(
            lane.shrink2(egui::vec2(0.0, 1.0)),
            0.0,
            if row % 2 == 0 { theme::LANE } else { theme::LANE_ALT },
        );
    }
    let mut beat = 0;
    loop {
        let x = x_of(beat * TICKS_PER_QUARTER);
        if x > rect.right() {
            break;
        }
        let is_bar = beat % beats_per_bar == 0;
        if is_bar || points_per_quarter > 12.0 {
            let colour = if is_bar { theme::BAR } else { theme::GRID };
            painter.line_segment([egui::pos2(x, rect.top() + ruler), egui::pos2(x, rect.bottom())], (1.0, colour));
        }
        if is_bar {
            let bar = beat / beats_per_bar + 1;
            painter.text(
                egui::pos2(x + 4.0, rect.top() + 8.0),
                egui::Align2::LEFT_TOP,
                bar.to_string(),
                egui::FontId::proportional(12.0),
                theme::DIM,
            );
        }
        beat += 1;
    }
    painter.line_segment(
        [egui::pos2(rect.left(), rect.top() + ruler), egui::pos2(rect.right(), rect.top() + ruler)],
        (1.0, theme::BAR),
    );
    // Clips by track, once per frame (not once per track).
    let mut by_track: std::collections::HashMap<Entity, Vec<(&RecordKey, &ClipData)>> = Default::default();
    for (key, clip, parent) in clips.query.iter() {
        by_track.entry(parent.parent()).or_default().push((key, clip));
    }
    let visible_rows: Vec<(usize, &(Entity, TrackId, &Track))> =
        shown.take_while(|(row, _)| row_top(*row) < rect.bottom()).collect();
    for (row, (entity, _, track)) in visible_rows {
        let top = row_top(row);
        for (key, clip) in by_track.get(entity).into_iter().flatten() {
            if clip.start.0 > 0 && x_of(clip.start.0) > rect.right() {
                continue;
            }
            let left = x_of(clip.start.0);
            let right = x_of(clip.start.0 + clip.length.0);
            let body =
                egui::Rect::from_min_max(egui::pos2(left, top + 4.0), egui::pos2(right, top + track_height - 4.0));
            let colour = colour32(track.colour);
            let selected = view.selected.contains(&key.0);
            painter.rect_filled(body, 5.0, colour.gamma_multiply(0.35));
            let outline = if selected { (2.0, theme::WAVE) } else { (1.0, colour) };
            painter.rect_stroke(body, 5.0, outline, egui::StrokeKind::Inside);
            if body.intersect(rect).is_positive() {
                let id = egui::Id::new(("clip", key.0));
                let response = ui.interact(body.intersect(rect), id, egui::Sense::click_and_drag());
                handle_clip(ui, view, &response, key.0, clip, &grid, edits);
            }
            let header = egui::Rect::from_min_size(body.min, egui::vec2(body.width(), 16.0));
            painter.rect_filled(header, 5.0, colour);
            let visible = header.intersect(rect).shrink2(egui::vec2(8.0, 5.0));
            if visible.is_positive() {
                let swatch = [visible.right() - 6.0, visible.top(), visible.right(), visible.bottom()];
                let colour = [track.colour.r, track.colour.g, track.colour.b];
                drawn.clips.push(DrawnRegion { name: track.name.clone(), colour, swatch });
            }
            let wave = egui::Rect::from_min_max(egui::pos2(body.left(), header.bottom()), body.max)
                .shrink2(egui::vec2(1.0, 3.0));
            if let Some(peaks) = clips.media.peaks(clip.asset) {
                let seconds = clips.timebase.frames(clip.length).0 as f64 / f64::from(project.sample_rate);
                let frames = (seconds * f64::from(peaks.sample_rate)) as u64;
                draw_waveform(&painter, wave.intersect(rect), wave, peaks, clip.source_offset.0, frames);
                let visible = wave.intersect(rect);
                if visible.is_positive() {
                    let name = track.name.clone();
                    let [r, g, b, _] = theme::WAVE.to_array();
                    drawn.waveforms.push(DrawnRegion { name, colour: [r, g, b], swatch: swatch(visible) });
                }
            }
            painter.text(
                header.left_center() + egui::vec2(6.0, 0.0),
                egui::Align2::LEFT_CENTER,
                &clip.name,
                egui::FontId::proportional(11.0),
                theme::BACKGROUND,
            );
        }
    }
    let x = x_of(transport.position.0);
    painter.line_segment([egui::pos2(x, rect.top()), egui::pos2(x, rect.bottom())], (2.0, theme::PLAYHEAD));
    if response.clicked() {
        view.selected.clear();
    }
    let selected: Vec<(RecordId, &Clip)> = clips
        .query
        .iter()
        .filter(|(key, _, _)| view.selected.contains(&key.0))
        .map(|(key, clip, _)| (key.0, &clip.0))
        .collect();
    clip_keys(ui, &selected, transport.position, clips.timebase, edits);
}

/// Turns the pointer position into timeline terms: the snapped tick under it, and the track row.
struct Grid {
    left: f32,
    top: f32,
    points_per_quarter: f32,
    track_height: f32,
    snap: i64,
    tracks: Vec<TrackId>,
}

impl Grid {
    fn ticks_at(&self, x: f32) -> i64 {
        ((x - self.left) / self.points_per_quarter * TICKS_PER_QUARTER as f32) as i64
    }

    fn snapped(&self, ticks: i64) -> i64 {
        ((ticks as f64 / self.snap as f64).round() as i64 * self.snap).max(0)
    }

    fn track_at(&self, y: f32) -> Option<TrackId> {
        let row = ((y - self.top) / self.track_height).floor();
        if row >= 0.0 { self.tracks.get(row as usize).copied() } else { None }
    }
}

/// Selects a clip on click, and moves it (in time, and to another track) with a drag: previews
/// while dragging, one edit when released.
fn handle_clip(
    ui: &egui::Ui,
    view: &mut View,
    response: &egui::Response,
    id: RecordId,
    clip: &Clip,
    grid: &Grid,
    edits: &mut MessageWriter<EditMsg>,
) {
    let pointer = ui.input(|input| input.pointer.interact_pos());
    if response.clicked() || response.drag_started() {
        let adding = ui.input(|input| input.modifiers.shift);
        if !adding && !view.selected.contains(&id) {
            view.selected.clear();
        }
        view.selected.insert(id);
    }
    if response.drag_started()
        && let Some(pointer) = pointer
    {
        view.grab = Some((id, grid.ticks_at(pointer.x) - clip.start.0, clip.track));
    }
    let Some((grabbed, offset, from_track)) = view.grab.filter(|(grabbed, ..)| *grabbed == id) else { return };
    if response.dragged()
        && let Some(pointer) = pointer
    {
        let start = Ticks(grid.snapped(grid.ticks_at(pointer.x) - offset));
        let track = grid.track_at(pointer.y).unwrap_or(from_track);
        let mut ops = vec![Op::Set { target: grabbed, value: Field::Clip(ClipField::Start(start)), expect: None }];
        if track != from_track {
            ops.push(Op::Set { target: grabbed, value: Field::Clip(ClipField::Track(track)), expect: None });
        }
        if start != clip.start || track != clip.track {
            edits.write(EditMsg::Preview(ops));
        }
    }
    if response.drag_stopped() {
        view.grab = None;
        edits.write(EditMsg::CommitGesture);
    }
}

/// Delete, Ctrl+D (duplicate after itself) and S (split at the playhead) on the selected clips.
fn clip_keys(
    ui: &egui::Ui,
    selected: &[(RecordId, &Clip)],
    playhead: Ticks,
    timebase: Timebase,
    edits: &mut MessageWriter<EditMsg>,
) {
    if selected.is_empty() || ui.ctx().text_edit_focused() {
        return;
    }
    let (delete, duplicate, split) = ui.input_mut(|input| {
        (
            input.consume_key(egui::Modifiers::NONE, egui::Key::Delete)
                || input.consume_key(egui::Modifiers::NONE, egui::Key::Backspace),
            input.consume_key(egui::Modifiers::COMMAND, egui::Key::D),
            input.consume_key(egui::Modifiers::NONE, egui::Key::S),
        )
    });
    let mut ops = Vec::new();
    for (id, clip) in selected {
        if delete {
            ops.push(Op::Delete { target: *id });
        } else if duplicate {
            let copy = Clip { start: Ticks(clip.start.0 + clip.length.0), ..(*clip).clone() };
            ops.push(Op::Create { id: ClipId::new_v7().into(), record: Record::Clip(copy) });
        } else if split && playhead > clip.start && playhead.0 < clip.start.0 + clip.length.0 {
            let head = Ticks(playhead.0 - clip.start.0);
            let tail = Clip {
                start: playhead,
                length: Ticks(clip.length.0 - head.0),
                source_offset: Frames(clip.source_offset.0 + timebase.frames(head).0),
                fade_in: Ticks(0),
                fade_out: Ticks(clip.fade_out.0.min(clip.length.0 - head.0)),
                ..(*clip).clone()
            };
            ops.push(Op::Set { target: *id, value: Field::Clip(ClipField::FadeOut(Ticks(0))), expect: None });
            ops.push(Op::Set { target: *id, value: Field::Clip(ClipField::Length(head)), expect: None });
            ops.push(Op::Create { id: ClipId::new_v7().into(), record: Record::Clip(tail) });
        }
    }
    if !ops.is_empty() {
        edits.write(EditMsg::Edit(ops));
    }
}

/// What the timeline needs to draw clips.
struct Clips<'a, 'w, 's> {
    query: &'a Query<'w, 's, (&'static RecordKey, &'static ClipData, &'static ChildOf)>,
    media: &'a Media,
    timebase: Timebase,
}

/// Draws `frames` frames of `peaks` from `first` across `full` (clipped to `visible`): one
/// vertical stroke per column, from the lowest to the highest sample it covers.
fn draw_waveform(
    painter: &egui::Painter,
    visible: egui::Rect,
    full: egui::Rect,
    peaks: &Peaks,
    first: u64,
    frames: u64,
) {
    if !visible.is_positive() || frames == 0 || full.width() < 1.0 {
        return;
    }
    let frames_per_column = frames as f64 / f64::from(full.width());
    // The coarsest level that still has a pair per column, else the finest.
    let level = peaks
        .levels
        .iter()
        .rev()
        .find(|level| level.frames_per_pair as f64 <= frames_per_column)
        .or(peaks.levels.first());
    let Some(level) = level else { return };
    let centre = full.center().y;
    let half = full.height() / 2.0;
    let mut x = visible.left().floor();
    while x < visible.right() {
        let column = f64::from(x - full.left());
        let start = first + (column * frames_per_column) as u64;
        let end = first + ((column + 1.0) * frames_per_column) as u64;
        let (from, to) = (
            start as usize / level.frames_per_pair,
            (end as usize / level.frames_per_pair).max(start as usize / level.frames_per_pair + 1),
        );
        let (mut low, mut high) = (0i16, 0i16);
        for channel in &level.channels {
            for pair in channel.get(from..to.min(channel.len())).into_iter().flatten() {
                low = low.min(pair.min);
                high = high.max(pair.max);
            }
        }
        let top = centre - f32::from(high) / 32_768.0 * half;
        let bottom = (centre - f32::from(low) / 32_768.0 * half).max(top + 1.0);
        painter.line_segment([egui::pos2(x + 0.5, top), egui::pos2(x + 0.5, bottom)], (1.0, theme::WAVE));
        x += 1.0;
    }
}

fn shortcuts(ctx: &egui::Context, transport: &mut Transport, edits: &mut MessageWriter<EditMsg>) {
    if ctx.text_edit_focused() {
        return;
    }
    ctx.input_mut(|input| {
        if input.consume_key(egui::Modifiers::NONE, egui::Key::Space) {
            transport.playing = !transport.playing;
        }
        if input.consume_key(egui::Modifiers::COMMAND | egui::Modifiers::SHIFT, egui::Key::Z) {
            edits.write(EditMsg::Redo);
        }
        if input.consume_key(egui::Modifiers::COMMAND, egui::Key::Z) {
            edits.write(EditMsg::Undo);
        }
        if input.consume_key(egui::Modifiers::NONE, egui::Key::Home) {
            transport.position = Ticks(0);
        }
    });
}
