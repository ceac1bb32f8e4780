//! The transport bar: the project's name and menu, play/stop, loop and metronome, the position
//! in bars:beats:ticks and in time, tempo and metre, undo and redo, and the connection.

use bevy::prelude::*;
use bevy_egui::egui;
use ensemble_protocol::{Bpm, Field, LoopRange, Op, ProjectField, Ticks, TimeSignature};

use super::{Dialog, DrawnText, Out, Scene, View, bars_beats, describe, gesture, theme};
use crate::history::{EditMsg, History};
#[cfg(feature = "lan")]
use crate::jam::JamStatus;
use crate::playback::Transport;
use crate::sync::{Connection, SyncStatus};

/// What the bar shows besides the scene.
pub(super) struct Bar<'a> {
    pub(super) status: Option<&'a SyncStatus>,
    pub(super) history: &'a History,
    /// Edits not yet confirmed by the authority.
    pub(super) pending: usize,
    /// What the imports under way are doing, if there are any.
    pub(super) importing: Option<String>,
    /// What recording is doing, if anything.
    pub(super) recording: Option<String>,
    /// Where this window stands in a LAN jam.
    #[cfg(feature = "lan")]
    pub(super) jam: &'a JamStatus,
}

fn set_project(scene: &Scene, field: ProjectField) -> Vec<Op> {
    vec![Op::Set { target: scene.project_id, value: Field::Project(field), expect: None }]
}

/// Turns looping on or off; turning it on without a loop range sets one: around the selected
/// clips, or the four bars from the playhead's bar.
pub(super) fn toggle_loop(scene: &Scene, view: &View, transport: &mut Transport, out: &mut Out) {
    transport.looping = !transport.looping;
    if !transport.looping || scene.project.loop_range.is_some() {
        return;
    }
    let span = scene.selected(view).fold(None, |span: Option<(Ticks, Ticks)>, (_, clip)| {
        let (start, end) = (clip.start, clip.start + clip.length);
        Some(span.map_or((start, end), |(from, to)| (from.min(start), to.max(end))))
    });
    let bar = scene.project.time_signature.ticks_per_bar().0.max(1);
    let (start, end) = span.unwrap_or_else(|| {
        let first = transport.position.0.max(0) / bar * bar;
        (Ticks(first), Ticks(first + 4 * bar))
    });
    out.edit(set_project(scene, ProjectField::LoopRange(Some(LoopRange { start, end }))));
}

pub(super) fn show(
    ui: &mut egui::Ui,
    bar: &Bar,
    scene: &Scene,
    view: &mut View,
    transport: &mut Transport,
    dialog: &mut Dialog,
    out: &mut Out,
) -> (Vec<egui::Rect>, Option<DrawnText>) {
    let project = scene.project;
    let mut controls = Vec::new();
    let mut tempo_drawn = None;
    ui.horizontal_centered(|ui| {
        // Clicks inside (the name field) keep the menu open; a click outside closes it.
        let keep_open =
            egui::containers::menu::MenuConfig::new().close_behavior(egui::PopupCloseBehavior::CloseOnClickOutside);
        let (menu, _) = egui::containers::menu::MenuButton::new(egui::RichText::new(&project.name).heading())
            .config(keep_open)
            .ui(ui, |ui| {
                if ui.button("Import audio…  Ctrl+I").clicked() {
                    *dialog = Dialog::import();
                    ui.close();
                }
                if ui.button("Export mix to WAV…  Ctrl+E").clicked() {
                    *dialog = Dialog::export(&project.name);
                    ui.close();
                }
                #[cfg(feature = "lan")]
                if ui.button("LAN jam: host or join…").clicked() {
                    view.jam = true;
                    ui.close();
                }
                ui.separator();
                ui.label("Project name");
                if let Some(name) = super::name_field(ui, "project", &project.name, 180.0) {
                    out.edit(set_project(scene, ProjectField::Name(name)));
                }
            });
        controls.push(menu.rect);
        ui.separator();
        let start = ui.button("⏮").on_hover_text("Back to the start (Home)");
        controls.push(start.rect);
        if start.clicked() {
            transport.position = Ticks(0);
            view.scroll = Ticks(0);
        }
        let label = if transport.playing { "■ Stop" } else { "▶ Play" };
        let play = ui.add(egui::Button::new(label).min_size(egui::vec2(64.0, 0.0))).on_hover_text("Space");
        controls.push(play.rect);
        if play.clicked() {
            transport.playing = !transport.playing;
        }
        if ui.add(egui::Button::new("Loop").selected(transport.looping)).on_hover_text("L").clicked() {
            toggle_loop(scene, view, transport, out);
        }
        if ui.add(egui::Button::new("Click").selected(transport.metronome)).on_hover_text("Metronome (K)").clicked() {
            transport.metronome = !transport.metronome;
        }
        #[cfg(not(target_arch = "wasm32"))]
        super::takes::buttons(ui, scene, &mut out.record, &mut controls);
        let seconds = scene.timebase.frames(transport.position).0 as f64 / f64::from(project.sample_rate);
        controls.push(ui.monospace(bars_beats(transport.position, project.time_signature.numerator.into())).rect);
        controls.push(ui.monospace(format!("{:02}:{:06.3}", (seconds / 60.0) as u64, seconds % 60.0)).rect);
        ui.separator();
        let mut tempo = project.tempo.0;
        // A typed tempo is one edit, on Enter: collaborators never hear the 20 BPM that the
        // first digit of "140" would be.
        let field = egui::DragValue::new(&mut tempo).range(20.0..=999.0).speed(0.2).suffix(" BPM");
        let response = ui.add(field.update_while_editing(false));
        let rect = response.rect;
        let text = format!("{:.1} BPM", project.tempo.0);
        tempo_drawn = Some(DrawnText { rect: [rect.left(), rect.top(), rect.right(), rect.bottom()], text });
        let edit = || set_project(scene, ProjectField::Tempo(Bpm(tempo)));
        gesture(&response, tempo != project.tempo.0, edit, out.edits);
        metre(ui, scene, out);
        ui.separator();
        if ui.add_enabled(bar.history.can_undo(), egui::Button::new("Undo")).clicked() {
            out.edits.write(EditMsg::Undo);
        }
        if ui.add_enabled(bar.history.can_redo(), egui::Button::new("Redo")).clicked() {
            out.edits.write(EditMsg::Redo);
        }
        ui.separator();
        let mixer = ui.add(egui::Button::new("Mixer").selected(view.mixer)).on_hover_text("X");
        controls.push(mixer.rect);
        if mixer.clicked() {
            view.mixer = !view.mixer;
        }
        #[cfg(feature = "lan")]
        {
            let (jam_label, jam_hint) = match bar.jam {
                JamStatus::Hosting { code, peers, .. } => {
                    (format!("Jam {code} · {peers}"), "Hosting a LAN jam".to_owned())
                }
                JamStatus::Joined { host, connected: true, .. } => {
                    (format!("Jam with {host}"), "In a LAN jam".to_owned())
                }
                JamStatus::Joined { host, .. } => (format!("Jam with {host}…"), format!("{host} is not answering")),
                JamStatus::Off | JamStatus::Failed(_) => ("Jam".to_owned(), "Host or join a LAN jam".to_owned()),
            };
            let jam = ui.add(egui::Button::new(jam_label).selected(view.jam)).on_hover_text(jam_hint);
            controls.push(jam.rect);
            if jam.clicked() {
                view.jam = !view.jam;
            }
        }
    });
    (controls, tempo_drawn)
}

/// The right of the status line: the connection, pending edits, imports, collaborators and
/// zoom, drawn right to left. (In the transport bar they ran into its buttons below 1,200
/// points.)
pub(super) fn status(ui: &mut egui::Ui, bar: &Bar, scene: &Scene, view: &View) -> Vec<egui::Rect> {
    let project = &scene.project;
    let mut controls = Vec::new();
    if let Some(status) = bar.status {
        let colour = match status.connection {
            Connection::Online { .. } => theme::ACCENT,
            Connection::Connecting => theme::DIM,
            Connection::Offline { .. } | Connection::Refused { .. } => theme::WARN,
        };
        let (dot, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
        ui.painter().circle_filled(dot.center(), 4.0, colour);
        let connection = describe(&status.connection);
        let label = egui::Label::new(egui::RichText::new(&connection).color(colour)).truncate();
        controls.push(ui.add(label).on_hover_text(connection).rect);
        controls.push(ui.label(format!("{} pending", bar.pending)).rect);
    }
    if let Some(importing) = &bar.importing {
        controls.push(ui.label(importing).rect);
    }
    if let Some(recording) = &bar.recording {
        controls.push(ui.colored_label(theme::RECORD, recording).rect);
    }
    for peer in scene.peers.sessions.values() {
        let colour = super::colour32(peer.colour);
        let at = bars_beats(peer.presence.playhead, project.time_signature.numerator.into());
        let state = if peer.presence.playing { "playing" } else { "stopped" };
        let (dot, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
        ui.painter().circle_filled(dot.center(), 4.0, colour);
        controls.push(ui.colored_label(colour, &peer.name).on_hover_text(format!("{state} at {}", at.trim())).rect);
    }
    let zoom = (view.points_per_quarter / 28.0 * 100.0).round();
    controls.push(ui.label(egui::RichText::new(format!("zoom {zoom}%")).small().color(theme::DIM)).rect);
    controls
}

/// The time signature: beats per bar (dragged as a gesture), and the beat's note value.
fn metre(ui: &mut egui::Ui, scene: &Scene, out: &mut Out) {
    let current = scene.project.time_signature;
    let mut numerator = current.numerator;
    let response = ui.add(egui::DragValue::new(&mut numerator).range(1..=64).speed(0.1).update_while_editing(false));
    let beats = |numerator| ProjectField::TimeSignature(TimeSignature { numerator, ..current });
    gesture(&response, numerator != current.numerator, || set_project(scene, beats(numerator)), out.edits);
    ui.label("/");
    let mut denominator = current.denominator;
    egui::ComboBox::from_id_salt("denominator").width(44.0).selected_text(denominator.to_string()).show_ui(ui, |ui| {
        for value in [2u8, 4, 8, 16] {
            ui.selectable_value(&mut denominator, value, value.to_string());
        }
    });
    if denominator != current.denominator {
        out.edit(set_project(scene, ProjectField::TimeSignature(TimeSignature { denominator, ..current })));
    }
}
