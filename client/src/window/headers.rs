//! Track headers, one beside each timeline row: name, mute/solo/arm, fader, pan and meter,
//! the automation switch and, under it, the shown lane's parameter. Right-click for colour and
//! delete. The channel controls here are the mixer's too.

use bevy_egui::egui;
use ensemble_protocol::{Bus, Field, LaneField, Op, Parameter, RecordId, Track, TrackField, TrackId};

use super::{DrawnLayout, DrawnRegion, LANE_HEIGHT, Out, Scene, View, colour32, gesture, rows, theme};
use crate::edits;
use crate::playback::TrackLevel;

pub(super) fn set(id: TrackId, field: TrackField) -> Vec<Op> {
    vec![Op::Set { target: id.into(), value: Field::Track(field), expect: None }]
}

pub(super) fn show(ui: &mut egui::Ui, scene: &Scene, view: &mut View, drawn: &mut DrawnLayout, out: &mut Out) {
    let panel = ui.max_rect();
    let rows = rows(view, &scene.tracks, view.rows_top, panel.bottom());
    let mut bottom = view.rows_top;
    for row in &rows {
        let rect = egui::Rect::from_x_y_ranges(panel.x_range(), row.top..=row.track_bottom(view));
        let visible = rect.intersect(panel);
        if !visible.is_positive() {
            continue;
        }
        let stripe = header(ui, rect, scene, view, row.id, row.track, out);
        drawn.headers.push(DrawnRegion::new(row.track, stripe));
        if let Some(parameter) = row.lane {
            let lane = egui::Rect::from_x_y_ranges(panel.x_range(), rect.bottom()..=rect.bottom() + LANE_HEIGHT);
            lane_header(ui, lane, scene, view, row.id, parameter, out);
        }
        bottom = row.bottom(view);
    }
    let button = egui::Rect::from_min_size(egui::pos2(panel.left() + 14.0, bottom + 8.0), egui::vec2(120.0, 24.0));
    let stable = egui::UiBuilder::new().id(egui::Id::new("add track")).max_rect(button);
    if button.bottom() < panel.bottom()
        && ui.scope_builder(stable, |ui| ui.put(button, egui::Button::new("+ Add track"))).inner.clicked()
    {
        let name = format!("Track {}", scene.tracks.len() + 1);
        out.edit(edits::add_track(scene.project_id, name, scene.tracks.len()).1);
    }
}

/// Draws a track's header in `rect`; returns its colour stripe.
fn header(
    ui: &mut egui::Ui,
    rect: egui::Rect,
    scene: &Scene,
    view: &mut View,
    id: TrackId,
    track: &Track,
    out: &mut Out,
) -> egui::Rect {
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect.shrink(1.0), 4.0, theme::LANE_ALT);
    let stripe = egui::Rect::from_min_size(rect.min, egui::vec2(6.0, rect.height()));
    painter.rect_filled(stripe, 2.0, colour32(track.colour));
    let background = ui.interact(rect, egui::Id::new(("header", id)), egui::Sense::click());
    background.context_menu(|ui| track_menu(ui, scene, id, track, out));
    // Ids of its own, so widgets keep theirs when other panels come and go (the mixer).
    let mut inner = ui.new_child(
        egui::UiBuilder::new().id(egui::Id::new(("header", id))).max_rect(rect.shrink2(egui::vec2(14.0, 6.0))),
    );
    inner.spacing_mut().item_spacing = egui::vec2(6.0, 6.0);
    inner.horizontal(|ui| {
        if let Some(name) = super::name_field(ui, id, &track.name, 104.0) {
            out.edit(set(id, TrackField::Name(name)));
        }
        toggles(ui, id, track, out);
        let shown = view.automation.contains_key(&id);
        let response = ui
            .add(egui::Button::new("A").selected(shown).min_size(egui::vec2(24.0, 22.0)))
            .on_hover_text("Show automation");
        if response.clicked() {
            match shown {
                true => view.automation.remove(&id),
                false => view.automation.insert(id, Parameter::Gain),
            };
        }
    });
    inner.horizontal(|ui| {
        let mut gain = track.gain_db;
        ui.spacing_mut().slider_width = 120.0;
        let response = ui.add(egui::Slider::new(&mut gain, -60.0..=12.0).suffix(" dB").fixed_decimals(1));
        gesture(&response, gain != track.gain_db, || set(id, TrackField::Gain(gain)), out.edits);
        pan(ui, id, track, out);
    });
    let meter_rect = egui::Rect::from_min_max(
        egui::pos2(rect.left() + 14.0, rect.bottom() - 9.0),
        egui::pos2(rect.right() - 10.0, rect.bottom() - 5.0),
    );
    meter(&painter, meter_rect, scene.levels.tracks.get(&id).copied().unwrap_or_default(), false);
    stripe.shrink2(egui::vec2(1.0, 6.0))
}

/// Mute, solo and record-arm.
pub(super) fn toggles(ui: &mut egui::Ui, id: TrackId, track: &Track, out: &mut Out) {
    for (label, on, field, hint) in [
        ("M", track.mute, TrackField::Mute(!track.mute), "Mute"),
        ("S", track.solo, TrackField::Solo(!track.solo), "Solo"),
        ("R", track.record_arm, TrackField::RecordArm(!track.record_arm), "Arm for recording"),
    ] {
        let button = egui::Button::new(label).selected(on).min_size(egui::vec2(24.0, 22.0));
        if ui.add(button).on_hover_text(hint).clicked() {
            out.edit(set(id, field));
        }
    }
}

/// The pan control, as a drag gesture; double-click centres it.
pub(super) fn pan(ui: &mut egui::Ui, id: TrackId, track: &Track, out: &mut Out) {
    let mut pan = track.pan;
    let response = ui.add(
        egui::DragValue::new(&mut pan)
            .range(-1.0..=1.0)
            .speed(0.01)
            .update_while_editing(false)
            .custom_formatter(|value, _| match value {
                v if v.abs() < 0.005 => "C".into(),
                v if v < 0.0 => format!("L{:.0}", -v * 100.0),
                v => format!("R{:.0}", v * 100.0),
            })
            .custom_parser(|text| {
                let text = text.trim().to_ascii_uppercase();
                match text.split_at_checked(1) {
                    Some(("C", _)) => Some(0.0),
                    Some(("L", rest)) => rest.parse::<f64>().ok().map(|v| -v / 100.0),
                    Some(("R", rest)) => rest.parse::<f64>().ok().map(|v| v / 100.0),
                    _ => text.parse().ok(),
                }
            }),
    );
    if response.double_clicked() {
        out.edit(set(id, TrackField::Pan(0.0)));
    } else {
        gesture(&response, pan != track.pan, || set(id, TrackField::Pan(pan)), out.edits);
    }
}

/// A two-channel level meter, green to yellow to red, with the held peak as a line.
pub(super) fn meter(painter: &egui::Painter, rect: egui::Rect, level: TrackLevel, vertical: bool) {
    painter.rect_filled(rect, 1.0, theme::BACKGROUND);
    // −60 dB to +6 dB across the meter.
    let fraction = |linear: f32| {
        if linear <= 0.0 { 0.0 } else { ((20.0 * linear.log10() + 60.0) / 66.0).clamp(0.0, 1.0) }
    };
    let colour = |linear: f32| match linear {
        l if l >= 1.0 => theme::METER_CLIP,
        l if l >= 0.5 => theme::METER_HOT,
        _ => theme::ACCENT,
    };
    for (channel, linear) in level.level.iter().enumerate() {
        let share = fraction(*linear);
        let bar = if vertical {
            let width = rect.width() / 2.0;
            let left = rect.left() + width * channel as f32;
            egui::Rect::from_min_max(
                egui::pos2(left, rect.bottom() - rect.height() * share),
                egui::pos2(left + width - 1.0, rect.bottom()),
            )
        } else {
            let height = rect.height() / 2.0;
            let top = rect.top() + height * channel as f32;
            egui::Rect::from_min_max(
                egui::pos2(rect.left(), top),
                egui::pos2(rect.left() + rect.width() * share, top + height),
            )
        };
        if share > 0.0 {
            painter.rect_filled(bar, 0.0, colour(*linear));
        }
    }
    let held = fraction(level.held);
    if held > 0.0 {
        let line = if vertical {
            let y = rect.bottom() - rect.height() * held;
            [egui::pos2(rect.left(), y), egui::pos2(rect.right(), y)]
        } else {
            let x = rect.left() + rect.width() * held;
            [egui::pos2(x, rect.top()), egui::pos2(x, rect.bottom())]
        };
        painter.line_segment(line, (1.0, colour(level.held)));
    }
}

/// A track's right-click menu: colour and delete.
pub(super) fn track_menu(ui: &mut egui::Ui, scene: &Scene, id: TrackId, track: &Track, out: &mut Out) {
    ui.horizontal(|ui| {
        for colour in edits::TRACK_COLOURS {
            let (swatch, response) = ui.allocate_exact_size(egui::vec2(18.0, 18.0), egui::Sense::click());
            ui.painter().rect_filled(swatch, 3.0, colour32(colour));
            if colour == track.colour {
                ui.painter().rect_stroke(swatch, 3.0, (2.0, theme::WAVE), egui::StrokeKind::Inside);
            }
            if response.clicked() {
                out.edit(set(id, TrackField::Colour(colour)));
                ui.close();
            }
        }
    });
    let hint = "Four bars after the track's last clip, with a synth if it has no instrument";
    if ui.button("New note clip").on_hover_text(hint).clicked()
        && let Some((entity, ..)) = scene.tracks.iter().find(|(_, track, _)| *track == id)
    {
        let start = scene.after_last_clip(*entity);
        out.edit(edits::add_note_clip(id, start, &scene.chain(Bus::Track(id))).1);
        ui.close();
    }
    if ui.button("Delete track").clicked() {
        if let Some((entity, ..)) = scene.tracks.iter().find(|(_, track, _)| *track == id) {
            out.edit(edits::delete_track(scene.project_id, id, scene.held_by(*entity, id)));
        }
        ui.close();
    }
}

/// The header of a shown automation lane: which parameter, and whether the lane is on.
fn lane_header(
    ui: &mut egui::Ui,
    rect: egui::Rect,
    scene: &Scene,
    view: &mut View,
    id: TrackId,
    parameter: Parameter,
    out: &mut Out,
) {
    ui.painter_at(rect).rect_filled(rect.shrink(1.0), 4.0, theme::AUTOMATION);
    // A knob of an effect that was removed (here or by someone else) has nothing left to show.
    if let Parameter::Effect(effect, _) = parameter
        && scene.effect(effect.into()).is_none()
    {
        view.automation.insert(id, Parameter::Gain);
    }
    let mut inner = ui.new_child(
        egui::UiBuilder::new().id(egui::Id::new(("lane header", id))).max_rect(rect.shrink2(egui::vec2(14.0, 8.0))),
    );
    inner.horizontal(|ui| {
        ui.label(egui::RichText::new("Automation").color(theme::DIM));
        let mut shown = parameter;
        // Gain, pan, and every knob of the track's effects.
        let knobs = scene.chain(Bus::Track(id)).into_iter().flat_map(|(effect, record)| {
            let effect = ensemble_protocol::EffectId(effect.0);
            record.kind.params().iter().map(move |param| Parameter::Effect(effect, *param))
        });
        let choices: Vec<Parameter> = [Parameter::Gain, Parameter::Pan].into_iter().chain(knobs).collect();
        let label = name(scene, parameter);
        egui::ComboBox::from_id_salt(("lane", id)).width(110.0).selected_text(label).show_ui(ui, |ui| {
            for choice in choices {
                ui.selectable_value(&mut shown, choice, name(scene, choice));
            }
        });
        if shown != parameter {
            view.automation.insert(id, shown);
        }
        if let Some((lane_id, lane)) = scene.lanes.get(&(id, parameter)) {
            let toggle = egui::Button::new(if lane.enabled { "On" } else { "Off" }).selected(lane.enabled);
            if ui.add(toggle).on_hover_text("When off, the fader's value plays").clicked() {
                out.edit(enable(*lane_id, !lane.enabled));
            }
        }
    });
    let hint = match scene.lanes.get(&(id, parameter)) {
        Some((_, lane)) => format!("{} points · right-click a point to delete", lane.points.len()),
        None => "Click in the lane to add a point".into(),
    };
    inner.label(egui::RichText::new(hint).small().color(theme::DIM));
}

fn enable(lane: RecordId, enabled: bool) -> Vec<Op> {
    vec![Op::Set { target: lane, value: Field::AutomationLane(LaneField::Enabled(enabled)), expect: None }]
}

/// What a lane's parameter is called: an effect's knob by its effect too (`Reverb Mix`).
pub(super) fn name(scene: &Scene, parameter: Parameter) -> String {
    match parameter {
        Parameter::Gain => "Gain".into(),
        Parameter::Pan => "Pan".into(),
        Parameter::Effect(effect, param) => match scene.effect(effect.into()) {
            Some((_, effect)) => format!("{} {}", effect.kind.label(), param.label()),
            None => param.label().into(),
        },
    }
}
