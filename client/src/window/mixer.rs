//! The mixer: a channel strip per track, left to right in track order, with the same controls
//! as the track headers (fader, pan, mute, solo, arm) and a tall meter beside the fader.

use bevy_egui::egui;
use ensemble_protocol::{Track, TrackField, TrackId};

use super::headers::{meter, pan, set, toggles, track_menu};
use super::{DrawnLayout, DrawnRegion, Out, Scene, colour32, gesture, theme};

/// Width of one strip.
const STRIP: f32 = 104.0;

pub(super) fn show(ui: &mut egui::Ui, scene: &Scene, drawn: &mut DrawnLayout, out: &mut Out) {
    egui::ScrollArea::horizontal().auto_shrink([false, false]).show(ui, |ui| {
        ui.horizontal(|ui| {
            for (_, id, track) in &scene.tracks {
                let (rect, _) = ui.allocate_exact_size(egui::vec2(STRIP, ui.available_height()), egui::Sense::hover());
                if ui.is_rect_visible(rect) {
                    let bar = strip(ui, rect, scene, *id, track, out);
                    drawn.strips.push(DrawnRegion::new(track, bar));
                }
            }
            if scene.tracks.is_empty() {
                ui.label(egui::RichText::new("No tracks yet: add one, or import audio (Ctrl+I)").color(theme::DIM));
            }
        });
    });
}

/// One channel strip in `rect`; returns its colour bar.
fn strip(ui: &mut egui::Ui, rect: egui::Rect, scene: &Scene, id: TrackId, track: &Track, out: &mut Out) -> egui::Rect {
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect.shrink2(egui::vec2(2.0, 2.0)), 4.0, theme::LANE_ALT);
    let bar = egui::Rect::from_min_size(rect.min + egui::vec2(2.0, 2.0), egui::vec2(rect.width() - 4.0, 5.0));
    painter.rect_filled(bar, 2.0, colour32(track.colour));
    let background = ui.interact(rect, egui::Id::new(("strip", id)), egui::Sense::click());
    background.context_menu(|ui| track_menu(ui, scene, id, track, out));
    let mut inner = ui.new_child(egui::UiBuilder::new().max_rect(rect.shrink2(egui::vec2(8.0, 10.0))));
    inner.spacing_mut().item_spacing = egui::vec2(4.0, 5.0);
    inner.vertical_centered(|ui| {
        ui.add(egui::Label::new(egui::RichText::new(&track.name).strong()).truncate());
        ui.horizontal(|ui| toggles(ui, id, track, out));
        pan(ui, id, track, out);
        ui.horizontal(|ui| {
            let height = (ui.available_height() - 26.0).max(40.0);
            ui.spacing_mut().slider_width = height;
            let mut gain = track.gain_db;
            let fader = egui::Slider::new(&mut gain, -60.0..=12.0).vertical().show_value(false);
            let response = ui.add(fader).on_hover_text("Double-click for 0 dB");
            if response.double_clicked() {
                out.edit(set(id, TrackField::Gain(0.0)));
            } else {
                gesture(&response, || set(id, TrackField::Gain(gain)), out.edits);
            }
            let (meter_rect, _) = ui.allocate_exact_size(egui::vec2(14.0, height), egui::Sense::hover());
            meter(ui.painter(), meter_rect, scene.levels.tracks.get(&id).copied().unwrap_or_default(), true);
        });
        let level = scene.levels.tracks.get(&id).map_or(0.0, |level| level.held);
        let held = if level > 0.0 { format!("{:.1}", 20.0 * level.log10()) } else { "−∞".into() };
        ui.label(egui::RichText::new(format!("{:.1} dB · peak {held}", track.gain_db)).small().color(theme::DIM));
    });
    bar
}
