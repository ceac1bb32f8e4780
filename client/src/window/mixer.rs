//! The mixer: a channel strip per track, left to right in track order, with the same controls
//! as the track headers (fader, pan, mute, solo, arm), a tall meter beside the fader, and the
//! track's effect rack beside them (see `rack`).

use bevy_egui::egui;
use ensemble_protocol::{Bus, Colour, Track, TrackField, TrackId};

use super::headers::{meter, pan, set, toggles, track_menu};
use super::{DrawnLayout, DrawnRegion, Out, Scene, View, colour32, gesture, rack, theme};

/// Width of one strip.
const STRIP: f32 = 176.0;

pub(super) fn show(ui: &mut egui::Ui, scene: &Scene, view: &mut View, drawn: &mut DrawnLayout, out: &mut Out) {
    egui::ScrollArea::horizontal().auto_shrink([false, false]).show(ui, |ui| {
        // A row's own height is one line: take the panel's before entering it.
        let height = ui.available_height();
        ui.horizontal(|ui| {
            for (_, id, track) in &scene.tracks {
                let (rect, _) = ui.allocate_exact_size(egui::vec2(STRIP, height), egui::Sense::hover());
                if ui.is_rect_visible(rect) {
                    let bar = strip(ui, rect, scene, view, (*id, track), drawn, out);
                    drawn.strips.push(DrawnRegion::new(track, bar));
                }
            }
            if scene.tracks.is_empty() {
                ui.label(egui::RichText::new("No tracks yet: add one, or import audio (Ctrl+I)").color(theme::DIM));
            }
            let (rect, _) = ui.allocate_exact_size(egui::vec2(STRIP, height), egui::Sense::hover());
            if ui.is_rect_visible(rect) {
                master(ui, rect, scene, view, drawn, out);
            }
        });
    });
}

/// One channel strip in `rect`; returns its colour bar.
fn strip(
    ui: &mut egui::Ui,
    rect: egui::Rect,
    scene: &Scene,
    view: &mut View,
    (id, track): (TrackId, &Track),
    drawn: &mut DrawnLayout,
    out: &mut Out,
) -> egui::Rect {
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect.shrink2(egui::vec2(2.0, 2.0)), 4.0, theme::LANE_ALT);
    let bar = egui::Rect::from_min_size(rect.min + egui::vec2(2.0, 2.0), egui::vec2(rect.width() - 4.0, 5.0));
    painter.rect_filled(bar, 2.0, colour32(track.colour));
    let background = ui.interact(rect, egui::Id::new(("strip", id)), egui::Sense::click());
    background.context_menu(|ui| track_menu(ui, scene, id, track, out));
    // Name, switches and pan on top; fader and meter fill the middle; the readout at the foot.
    let controls =
        egui::Rect::from_min_max(rect.min + egui::vec2(8.0, 12.0), egui::pos2(rect.right() - 8.0, rect.top() + 96.0));
    let mut top = ui.new_child(egui::UiBuilder::new().id(egui::Id::new(("strip controls", id))).max_rect(controls));
    top.spacing_mut().item_spacing = egui::vec2(4.0, 5.0);
    top.vertical_centered(|ui| {
        ui.add(egui::Label::new(egui::RichText::new(&track.name).strong()).truncate());
        ui.horizontal(|ui| toggles(ui, id, track, out));
        pan(ui, id, track, out);
    });
    let middle = egui::Rect::from_min_max(
        egui::pos2(rect.left(), controls.bottom() + 8.0),
        egui::pos2(rect.right(), rect.bottom() - 24.0),
    );
    if middle.height() > 30.0 {
        let fader = egui::Rect::from_x_y_ranges(rect.left() + 26.0..=rect.left() + 50.0, middle.y_range());
        let mut gain = track.gain_db;
        let mut column = ui.new_child(egui::UiBuilder::new().id(egui::Id::new(("strip fader", id))).max_rect(fader));
        column.spacing_mut().slider_width = fader.height();
        let slider = egui::Slider::new(&mut gain, -60.0..=12.0).vertical().show_value(false);
        let response = column.add(slider).on_hover_text("Double-click for 0 dB");
        if response.double_clicked() {
            out.edit(set(id, TrackField::Gain(0.0)));
        } else {
            gesture(&response, gain != track.gain_db, || set(id, TrackField::Gain(gain)), out.edits);
        }
        let meter_rect = egui::Rect::from_x_y_ranges(rect.left() + 60.0..=rect.left() + 74.0, middle.y_range());
        meter(&painter, meter_rect, scene.levels.tracks.get(&id).copied().unwrap_or_default(), true);
        let inserts = egui::Rect::from_x_y_ranges(rect.left() + 82.0..=rect.right() - 8.0, middle.y_range());
        let owner = rack::Owner { bus: Bus::Track(id), name: &track.name, colour: track.colour };
        rack::slots(ui, inserts, scene, view, owner, drawn, out);
    }
    let level = scene.levels.tracks.get(&id).map_or(0.0, |level| level.held);
    let held = if level > 0.0 { format!("{:.1}", 20.0 * level.log10()) } else { "−∞".into() };
    painter.text(
        egui::pos2(rect.center().x, rect.bottom() - 12.0),
        egui::Align2::CENTER_CENTER,
        format!("{:.1} dB · peak {held}", track.gain_db),
        egui::FontId::proportional(11.0),
        theme::DIM,
    );
    bar
}

/// How an effect parameter's value reads, in its unit.
pub(super) fn describe_param(param: ensemble_protocol::EffectParam, value: f32) -> String {
    use ensemble_protocol::effect::Unit;
    match param.unit() {
        Unit::Hertz if value >= 1000.0 => format!("{:.1} kHz", value / 1000.0),
        Unit::Hertz => format!("{value:.0} Hz"),
        Unit::Decibels => format!("{value:+.1} dB"),
        Unit::Milliseconds => format!("{value:.0} ms"),
        Unit::Ratio => format!("{value:.1}:1"),
        Unit::Number => format!("{value:.2}"),
        Unit::Fraction => format!("{:.0}%", value * 100.0),
    }
}

/// The colour the master's strip and effect slots are marked with.
const MASTER: Colour = Colour { r: 196, g: 200, b: 210 };

/// The master strip in `rect`: the master chain, on the mix of every track.
fn master(ui: &mut egui::Ui, rect: egui::Rect, scene: &Scene, view: &mut View, drawn: &mut DrawnLayout, out: &mut Out) {
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect.shrink2(egui::vec2(2.0, 2.0)), 4.0, theme::LANE_ALT);
    let bar = egui::Rect::from_min_size(rect.min + egui::vec2(2.0, 2.0), egui::vec2(rect.width() - 4.0, 5.0));
    painter.rect_filled(bar, 2.0, colour32(MASTER));
    painter.text(
        egui::pos2(rect.center().x, rect.top() + 24.0),
        egui::Align2::CENTER_CENTER,
        "Master",
        egui::FontId::proportional(14.0),
        theme::TEXT,
    );
    let inserts =
        egui::Rect::from_x_y_ranges(rect.left() + 12.0..=rect.right() - 12.0, rect.top() + 44.0..=rect.bottom() - 12.0);
    let owner = rack::Owner { bus: Bus::Master, name: "Master", colour: MASTER };
    rack::slots(ui, inserts, scene, view, owner, drawn, out);
}
