//! The effect rack: a track's insert chain in its mixer strip (and the master chain in the
//! master strip), and the editor of one effect.
//!
//! Each strip lists its effects in the order they play, one slot each: the power switch
//! bypasses it, a click opens its editor, a drag moves it up or down the chain, and the menu
//! under the slots adds one. The editor is a small window of knobs, one per parameter (drag up
//! or down; double-click for the default), each turn a gesture like the fader's, with the
//! effect's bypass and its removal.

use bevy_egui::egui;
use ensemble_protocol::effect::{MAX_EFFECTS, SYNTH_PRESETS, Unit};
use ensemble_protocol::{Bus, Colour, Effect, EffectKind, EffectParam, RecordId};

use super::{DrawnEditor, DrawnEffect, DrawnLayout, Out, Scene, View, colour32, gesture, theme};
use crate::edits;

/// Height of one slot.
const SLOT: f32 = 20.0;
/// A knob's diameter.
const KNOB: f32 = 34.0;

/// Whose chain a rack shows: a track's, or the master's.
#[derive(Clone, Copy, Debug)]
pub(super) struct Owner<'a> {
    pub(super) bus: Bus,
    pub(super) name: &'a str,
    pub(super) colour: Colour,
}

/// Draws `owner`'s chain in `rect` (one slot per effect, then the add menu).
pub(super) fn slots(
    ui: &mut egui::Ui,
    rect: egui::Rect,
    scene: &Scene,
    view: &mut View,
    owner: Owner,
    drawn: &mut DrawnLayout,
    out: &mut Out,
) {
    let chain = scene.chain(owner.bus);
    let painter = ui.painter_at(rect);
    let mut dragged: Option<(usize, f32)> = None;
    for (place, (effect_id, effect)) in chain.iter().enumerate() {
        let slot = egui::Rect::from_min_size(
            rect.min + egui::vec2(0.0, place as f32 * (SLOT + 2.0)),
            egui::vec2(rect.width(), SLOT),
        );
        if slot.bottom() > rect.bottom() - SLOT {
            let more = chain.len() - place;
            painter.text(slot.left_center(), egui::Align2::LEFT_CENTER, format!("+{more} more"), small(), theme::DIM);
            break;
        }
        let open = view.effect_editor == Some(*effect_id);
        let fill = if open { theme::BAR } else { theme::GRID };
        painter.rect_filled(slot, 3.0, fill);
        let chip = egui::Rect::from_min_size(slot.min, egui::vec2(6.0, slot.height()));
        painter.rect_filled(chip, 0.0, colour32(owner.colour));
        drawn.effects.push(DrawnEffect::new(owner.name, owner.colour, effect.kind, chip));
        let power = egui::Rect::from_center_size(slot.right_center() - egui::vec2(10.0, 0.0), egui::vec2(14.0, 14.0));
        let label = if effect.bypass { theme::DIM } else { theme::TEXT };
        // The name stops short of the power switch.
        let text = egui::Rect::from_x_y_ranges(chip.right() + 4.0..=power.left() - 2.0, slot.y_range());
        ui.painter_at(text).text(text.left_center(), egui::Align2::LEFT_CENTER, effect.kind.label(), small(), label);
        let body = ui.interact(slot, egui::Id::new(("effect slot", effect_id)), egui::Sense::click_and_drag());
        let switch = ui.interact(power, egui::Id::new(("effect power", effect_id)), egui::Sense::click());
        let lit = if effect.bypass { theme::DIM } else { theme::ACCENT };
        painter.circle_stroke(power.center(), 5.0, egui::Stroke::new(1.5, lit));
        painter
            .line_segment([power.center() - egui::vec2(0.0, 6.0), power.center() - egui::vec2(0.0, 1.0)], (1.5, lit));
        if switch.on_hover_text(if effect.bypass { "Turn on" } else { "Bypass" }).clicked() {
            out.edit(edits::set_bypass(*effect_id, !effect.bypass));
        } else if body.clicked() {
            view.effect_editor = if open { None } else { Some(*effect_id) };
        }
        body.context_menu(|ui| {
            if ui.button("Remove").clicked() {
                out.edit(edits::remove_effect(*effect_id, scene.lanes_of(*effect_id)));
                ui.close();
            }
        });
        if body.dragged()
            && let Some(pointer) = body.interact_pointer_pos()
        {
            dragged = Some((place, pointer.y));
        }
        if body.drag_stopped()
            && let Some(pointer) = body.interact_pointer_pos()
        {
            let to = drop_place(rect, pointer.y, chain.len());
            out.edit(edits::move_effect(&chain, place, to));
        }
    }
    // Where a dragged slot would land.
    if let Some((from, y)) = dragged {
        let to = drop_place(rect, y, chain.len());
        if to != from {
            let line = rect.top() + (if to > from { to + 1 } else { to }) as f32 * (SLOT + 2.0) - 1.0;
            painter.hline(rect.x_range(), line, egui::Stroke::new(2.0, theme::ACCENT));
        }
    }
    let shown = chain.len().min(((rect.height() - SLOT) / (SLOT + 2.0)).max(0.0) as usize);
    let add = egui::Rect::from_min_size(
        rect.min + egui::vec2(0.0, shown as f32 * (SLOT + 2.0)),
        egui::vec2(rect.width(), SLOT),
    );
    let mut inner = ui.new_child(egui::UiBuilder::new().id(egui::Id::new(("add effect", owner.bus))).max_rect(add));
    inner.add_enabled_ui(chain.len() < MAX_EFFECTS, |ui| {
        ui.menu_button(egui::RichText::new("+ Effect").small(), |ui| {
            // One instrument a track (a second would play the same notes again), none on the
            // master (it has no notes).
            let no_instrument = owner.bus == Bus::Master || chain.iter().any(|(_, effect)| effect.kind.is_instrument());
            for kind in EffectKind::ALL.into_iter().filter(|kind| !(kind.is_instrument() && no_instrument)) {
                if ui.button(kind.label()).clicked() {
                    let (effect, ops) = edits::add_effect(owner.bus, kind, &chain);
                    out.edit(ops);
                    view.effect_editor = Some(effect.into());
                    ui.close();
                }
            }
        })
        .response
        .on_hover_text("Add an effect to the end of the chain");
    });
}

/// The place in a chain of `count` a slot dropped at `y` takes.
fn drop_place(rect: egui::Rect, y: f32, count: usize) -> usize {
    (((y - rect.top()) / (SLOT + 2.0)).max(0.0) as usize).min(count.saturating_sub(1))
}

fn small() -> egui::FontId {
    egui::FontId::proportional(11.0)
}

/// The open effect's editor, if one is open and its effect still exists.
pub(super) fn editor(ctx: &egui::Context, scene: &Scene, view: &mut View, drawn: &mut DrawnLayout, out: &mut Out) {
    let Some(open) = view.effect_editor else { return };
    let Some((track, effect)) = scene.effect(open) else {
        view.effect_editor = None;
        return;
    };
    let mut shown = true;
    let mut knobs = 0;
    let owner = track.map_or("Master", |track| track.name.as_str());
    let window = egui::Window::new(format!("{owner} · {}", effect.kind.label()))
        .id(egui::Id::new(("effect editor", open)))
        .open(&mut shown)
        .collapsible(false)
        .resizable(false)
        .default_pos(ctx.viewport_rect().center() - egui::vec2(160.0, 120.0))
        .show(ctx, |ui| {
            ui.horizontal(|ui| {
                for param in effect.kind.params() {
                    let cell = egui::Layout::top_down(egui::Align::Center);
                    let drawn = ui.allocate_ui_with_layout(egui::vec2(62.0, 88.0), cell, |ui| {
                        knob(ui, open, effect, *param, out)
                    });
                    knobs += usize::from(drawn.inner);
                }
            });
            ui.separator();
            ui.horizontal(|ui| {
                if effect.kind == EffectKind::Synth {
                    ui.menu_button("Preset", |ui| {
                        for (name, settings) in SYNTH_PRESETS {
                            if ui.button(name).clicked() {
                                out.edit(edits::apply_preset(open, effect, settings));
                                ui.close();
                            }
                        }
                    });
                }
                let mut on = !effect.bypass;
                if ui.checkbox(&mut on, "On").on_hover_text("Off passes the sound through").changed() {
                    out.edit(edits::set_bypass(open, !on));
                }
                if ui.button("Remove").clicked() {
                    out.edit(edits::remove_effect(open, scene.lanes_of(open)));
                }
                ui.label(egui::RichText::new("Drag a knob · double-click for its default").small().color(theme::DIM));
            });
        });
    let rect = window.map_or(egui::Rect::NOTHING, |window| window.response.rect);
    let rect = [rect.left(), rect.top(), rect.right(), rect.bottom()];
    drawn.editor = Some(DrawnEditor { effect: effect.kind.label().into(), knobs, rect });
    if !shown {
        view.effect_editor = None;
    }
}

/// One parameter as a knob with its name and value; turning it is a gesture. False when the
/// effect has no such parameter.
fn knob(ui: &mut egui::Ui, id: RecordId, effect: &Effect, param: EffectParam, out: &mut Out) -> bool {
    let Some(current) = effect.param(param) else { return false };
    {
        ui.label(egui::RichText::new(param.label()).small().color(theme::DIM));
        let (rect, mut response) = ui.allocate_exact_size(egui::vec2(KNOB, KNOB), egui::Sense::click_and_drag());
        let (low, high) = param.range();
        let share = to_share(param, current);
        let mut value = current;
        if response.double_clicked() {
            value = param.default_for(effect.kind);
        } else if response.dragged() {
            // 200 points of travel cover the range; frequencies move by octaves, not hertz.
            let moved = (to_share(param, current) - response.drag_delta().y / 200.0).clamp(0.0, 1.0);
            value = from_share(param, moved).clamp(low, high);
        }
        if value != current {
            response.mark_changed();
        }
        gesture(&response, value != current, || edits::set_effect_param(id, param, value), out.edits);
        let painter = ui.painter_at(rect.expand(2.0));
        let centre = rect.center();
        let radius = KNOB / 2.0 - 3.0;
        painter.circle_filled(centre, radius, theme::PANEL);
        // A 270° arc from bottom left, lit up to the value.
        let angle = |share: f32| std::f32::consts::PI * (0.75 + 1.5 * share);
        let arc = |from: f32, to: f32| -> Vec<egui::Pos2> {
            (0..=24)
                .map(|n| from + (to - from) * n as f32 / 24.0)
                .map(|a| centre + radius * egui::vec2(a.cos(), a.sin()))
                .collect()
        };
        painter.add(egui::Shape::line(arc(angle(0.0), angle(1.0)), egui::Stroke::new(3.0, theme::LANE)));
        painter.add(egui::Shape::line(arc(angle(0.0), angle(share)), egui::Stroke::new(3.0, theme::ACCENT)));
        let tip = centre + (radius - 4.0) * egui::vec2(angle(share).cos(), angle(share).sin());
        painter.line_segment([centre, tip], egui::Stroke::new(2.0, theme::TEXT));
        ui.label(egui::RichText::new(super::mixer::describe_param(param, current)).small());
        response.on_hover_text(format!("{}: {}", param.label(), super::mixer::describe_param(param, current)));
    }
    true
}

/// Where `value` sits in `param`'s range, 0…1 (logarithmically for frequencies).
fn to_share(param: EffectParam, value: f32) -> f32 {
    let (low, high) = param.range();
    match param.unit() {
        Unit::Hertz => (value / low).ln() / (high / low).ln(),
        _ => (value - low) / (high - low),
    }
}

/// The value at `share` of `param`'s range.
fn from_share(param: EffectParam, share: f32) -> f32 {
    let (low, high) = param.range();
    match param.unit() {
        Unit::Hertz => low * (high / low).powf(share),
        _ => low + (high - low) * share,
    }
}
