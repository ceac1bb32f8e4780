//! A clip on the timeline: its body in the track colour with the waveform at the zoom level's
//! peaks, its fades, and what the pointer does to it.
//!
//! Click selects (Shift adds); dragging the body moves the selected clips together (a lone clip
//! also to another track); dragging an edge trims it; dragging the small squares under the
//! top corners sets the fades. Each drag previews as it goes and commits as one edit.
//!
//! Clips on one track that overlap both play (their sound adds up, as in Reaper): the
//! overlapping stretch is hatched in the warning colour over both, so it is never a surprise.

use bevy_egui::egui;
use ensemble_audio::peaks::Peaks;
use ensemble_protocol::{Clip, Frames, RecordId, Ticks};

use super::timeline::{Grid, track_at};
use super::{Drag, DrawnLayout, DrawnRegion, Out, Row, Scene, View, colour32, theme};
use crate::edits;
use crate::history::EditMsg;

/// The part of a clip a drag holds, other than its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Handle {
    /// The start edge (trim).
    Start,
    /// The end edge (trim).
    End,
    /// The fade-in's end.
    FadeIn,
    /// The fade-out's start.
    FadeOut,
}

/// Height of the bar with the clip's name.
const HEADER: f32 = 16.0;
/// Width of the zone at each edge that trims.
const EDGE: f32 = 6.0;

// A clip is drawn against the timeline, the scene, the grid and its row, and reports both what
// it drew and what it was told to do: bundling these would only rename the list.
#[allow(clippy::too_many_arguments)]
pub(super) fn show(
    ui: &egui::Ui,
    painter: &egui::Painter,
    timeline: egui::Rect,
    scene: &Scene,
    view: &mut View,
    grid: &Grid,
    rows: &[Row],
    row: &Row,
    id: RecordId,
    clip: &Clip,
    drawn: &mut DrawnLayout,
    out: &mut Out,
) {
    let top = row.top;
    let (left, right) = (grid.x_of(clip.start.0), grid.x_of((clip.start + clip.length).0));
    if right < timeline.left() || left > timeline.right() {
        return;
    }
    let body = egui::Rect::from_min_max(egui::pos2(left, top + 4.0), egui::pos2(right, top + view.track_height - 4.0));
    let visible = body.intersect(timeline);
    let colour = colour32(row.track.colour);
    let selected = view.selected.contains(&id);
    painter.rect_filled(body, 5.0, colour.gamma_multiply(0.35));
    let header = egui::Rect::from_min_size(body.min, egui::vec2(body.width(), HEADER));
    painter.rect_filled(header, 5.0, colour);
    let swatch = header.intersect(timeline).shrink2(egui::vec2(8.0, 5.0));
    // Reported where the name cannot reach: at the right of a header with room for both.
    if swatch.is_positive() && swatch.width() >= 60.0 {
        let swatch = egui::Rect::from_min_max(egui::pos2(swatch.right() - 6.0, swatch.top()), swatch.max);
        drawn.clips.push(DrawnRegion::new(row.track, swatch));
    }
    let wave =
        egui::Rect::from_min_max(egui::pos2(body.left(), header.bottom()), body.max).shrink2(egui::vec2(1.0, 3.0));
    let peaks = scene.media.peaks(clip.asset);
    if peaks.is_none() && wave.intersect(timeline).is_positive() {
        drawn.waiting_for_peaks += 1;
    }
    if let Some(peaks) = peaks {
        let seconds = scene.timebase.frames(clip.length).0 as f64 / f64::from(scene.project.sample_rate);
        let frames = (seconds * f64::from(peaks.sample_rate)) as u64;
        draw_waveform(painter, wave.intersect(timeline), wave, peaks, clip.source_offset.0, frames);
        if wave.intersect(timeline).is_positive() {
            let mut region = DrawnRegion::new(row.track, wave.intersect(timeline));
            let [r, g, b, _] = theme::WAVE.to_array();
            region.colour = [r, g, b];
            drawn.waveforms.push(region);
        }
    }
    // Fades: a line from silence at the edge to full level where the fade ends.
    let (fade_in_x, fade_out_x) = (left + grid.width_of(clip.fade_in.0), right - grid.width_of(clip.fade_out.0));
    let fade_stroke = (1.5, theme::WAVE.gamma_multiply(0.8));
    if clip.fade_in.0 > 0 {
        painter.line_segment([egui::pos2(left, body.bottom()), egui::pos2(fade_in_x, header.bottom())], fade_stroke);
    }
    if clip.fade_out.0 > 0 {
        painter.line_segment([egui::pos2(fade_out_x, header.bottom()), egui::pos2(right, body.bottom())], fade_stroke);
    }
    let outline = if selected { (2.0, theme::WAVE) } else { (1.0, colour) };
    painter.rect_stroke(body, 5.0, outline, egui::StrokeKind::Inside);
    if let Some(peer) = scene.peer_selection.get(&id) {
        // A collaborator has it selected.
        painter.rect_stroke(body.expand(1.0), 6.0, (2.0, colour32(*peer)), egui::StrokeKind::Outside);
    }
    painter.text(
        header.left_center() + egui::vec2(6.0, 0.0),
        egui::Align2::LEFT_CENTER,
        &clip.name,
        egui::FontId::proportional(11.0),
        theme::BACKGROUND,
    );
    if !visible.is_positive() {
        return;
    }
    let body_response = ui.interact(visible, egui::Id::new(("clip", id)), egui::Sense::click_and_drag());
    grab_body(ui, view, &body_response, scene, grid, rows, id, clip, out);
    if body.width() < 4.0 * EDGE {
        return;
    }
    let handle_y = header.bottom() + 6.0;
    let handles = [
        (Handle::Start, egui::Rect::from_x_y_ranges(left..=left + EDGE, header.bottom()..=body.bottom())),
        (Handle::End, egui::Rect::from_x_y_ranges(right - EDGE..=right, header.bottom()..=body.bottom())),
        (
            Handle::FadeIn,
            egui::Rect::from_center_size(egui::pos2(fade_in_x.max(left + 10.0), handle_y), egui::vec2(10.0, 10.0)),
        ),
        (
            Handle::FadeOut,
            egui::Rect::from_center_size(egui::pos2(fade_out_x.min(right - 10.0), handle_y), egui::vec2(10.0, 10.0)),
        ),
    ];
    for (handle, zone) in handles {
        let zone = zone.intersect(timeline);
        if !zone.is_positive() {
            continue;
        }
        let response = ui
            .interact(zone, egui::Id::new(("clip-handle", id, handle as u8)), egui::Sense::drag())
            .on_hover_cursor(egui::CursorIcon::ResizeHorizontal);
        if matches!(handle, Handle::FadeIn | Handle::FadeOut) && (response.hovered() || response.dragged() || selected)
        {
            let square = egui::Rect::from_center_size(zone.center(), egui::vec2(7.0, 7.0));
            painter.rect_filled(square, 1.0, theme::WAVE);
        }
        grab_handle(view, &response, scene, grid, id, clip, handle, out);
    }
}

/// Selection and moving.
#[allow(clippy::too_many_arguments)]
fn grab_body(
    ui: &egui::Ui,
    view: &mut View,
    response: &egui::Response,
    scene: &Scene,
    grid: &Grid,
    rows: &[Row],
    id: RecordId,
    clip: &Clip,
    out: &mut Out,
) {
    let pointer = response.interact_pointer_pos();
    if response.clicked() || response.drag_started() {
        let adding = ui.input(|input| input.modifiers.shift);
        if !adding && !view.selected.contains(&id) {
            view.selected.clear();
        }
        if adding && response.clicked() && view.selected.contains(&id) {
            view.selected.remove(&id);
        } else {
            view.selected.insert(id);
        }
    }
    if response.drag_started()
        && let Some(origin) = super::drag_origin(response)
    {
        let offset = grid.ticks_at(origin.x) - clip.start.0;
        view.drag = Some(Drag::Clips {
            grabbed: id,
            offset,
            originals: scene.selected(view).map(|(id, clip)| (id, clip.clone())).collect(),
        });
    }
    let Some(Drag::Clips { grabbed, offset, originals }) = &view.drag else { return };
    if *grabbed != id {
        return;
    }
    if response.dragged()
        && let Some(pointer) = pointer
        && let Some((_, lead)) = originals.iter().find(|(original, _)| original == grabbed)
    {
        let start = grid.snapped(grid.ticks_at(pointer.x) - offset);
        // The earliest clip stops at zero; the others keep their distance.
        let earliest = originals.iter().map(|(_, clip)| clip.start.0).min().unwrap_or(0);
        let delta = (start - lead.start.0).max(-earliest);
        let lone = originals.len() == 1;
        let target = if lone { track_at(rows, view, pointer.y).unwrap_or(lead.track) } else { lead.track };
        let ops = originals
            .iter()
            .flat_map(|(id, original)| {
                let track = if id == grabbed { target } else { original.track };
                edits::move_clip(*id, original, Ticks(original.start.0 + delta), track)
            })
            .collect();
        out.edits.write(EditMsg::Preview(ops));
    }
    if response.drag_stopped() {
        view.drag = None;
        out.edits.write(EditMsg::CommitGesture);
    }
}

/// Trimming and fades.
#[allow(clippy::too_many_arguments)]
fn grab_handle(
    view: &mut View,
    response: &egui::Response,
    scene: &Scene,
    grid: &Grid,
    id: RecordId,
    clip: &Clip,
    handle: Handle,
    out: &mut Out,
) {
    if response.drag_started() {
        view.drag = Some(Drag::Clip { id, original: clip.clone(), handle });
    }
    let Some(Drag::Clip { id: held, original, handle: holding }) = &view.drag else { return };
    if *held != id || *holding != handle {
        return;
    }
    if response.dragged()
        && let Some(pointer) = response.interact_pointer_pos()
    {
        let asset = scene.asset(original.asset);
        let rate = asset.map_or(scene.project.sample_rate, |asset| asset.sample_rate);
        let end = original.start + original.length;
        let ops = match handle {
            Handle::Start => edits::trim_start(id, original, grid.snapped_at(pointer.x), scene.timebase, rate),
            Handle::End => {
                let remaining = asset.map(|asset| {
                    let offset = original.source_offset.0.min(asset.frames.0);
                    edits::asset_length(scene.timebase, rate, Frames(asset.frames.0 - offset))
                });
                edits::trim_end(id, original, grid.snapped_at(pointer.x), remaining)
            }
            Handle::FadeIn => edits::fade_in(id, original, Ticks(grid.ticks_at(pointer.x) - original.start.0)),
            Handle::FadeOut => edits::fade_out(id, original, Ticks(end.0 - grid.ticks_at(pointer.x))),
        };
        out.edits.write(EditMsg::Preview(ops));
    }
    if response.drag_stopped() {
        view.drag = None;
        out.edits.write(EditMsg::CommitGesture);
    }
}

/// Draws `frames` frames of `peaks` from `first` across `full` (clipped to `visible`): one
/// column per point, from the lowest to the highest sample it covers, all in one mesh (plain
/// quads: no per-segment tessellation, no anti-aliasing fringe to rasterise).
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
    let mut mesh = egui::Mesh::default();
    let columns = (visible.right() - visible.left().floor()).ceil().max(0.0) as usize;
    mesh.reserve_triangles(columns * 2);
    mesh.reserve_vertices(columns * 4);
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
        let column = egui::Rect::from_min_max(egui::pos2(x, top), egui::pos2(x + 1.0, bottom));
        mesh.add_colored_rect(column.intersect(visible), theme::WAVE);
        x += 1.0;
    }
    painter.add(egui::Shape::mesh(mesh));
}

/// Hatches where clips of `row` overlap, over both.
pub(super) fn overlaps(
    painter: &egui::Painter,
    timeline: egui::Rect,
    grid: &Grid,
    view: &View,
    row: &Row,
    clips: &[(RecordId, &Clip)],
) {
    for (from, to) in overlapping(clips) {
        let zone = egui::Rect::from_x_y_ranges(
            grid.x_of(from)..=grid.x_of(to),
            row.top + 4.0 + HEADER..=row.track_bottom(view) - 4.0,
        )
        .intersect(timeline);
        if !zone.is_positive() {
            continue;
        }
        painter.rect_filled(zone, 0.0, theme::WARN.gamma_multiply(0.18));
        let hatch = painter.with_clip_rect(zone);
        let mut x = zone.left() - zone.height();
        while x < zone.right() {
            let from = egui::pos2(x, zone.bottom());
            hatch.line_segment(
                [from, from + egui::vec2(zone.height(), -zone.height())],
                (1.0, theme::WARN.gamma_multiply(0.6)),
            );
            x += 8.0;
        }
        painter.rect_stroke(zone, 0.0, (1.0, theme::WARN), egui::StrokeKind::Inside);
    }
}

/// The stretches, in ticks, where two of `clips` overlap (one per overlapping pair).
fn overlapping(clips: &[(RecordId, &Clip)]) -> Vec<(i64, i64)> {
    let mut spans: Vec<(i64, i64)> =
        clips.iter().map(|(_, clip)| (clip.start.0, (clip.start + clip.length).0)).collect();
    spans.sort_unstable();
    let mut found = Vec::new();
    // Each clip against the later ones that start before it ends.
    for (index, &(start, end)) in spans.iter().enumerate() {
        for &(other_start, other_end) in spans[index + 1..].iter().take_while(|span| span.0 < end) {
            found.push((start.max(other_start), end.min(other_end)));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use ensemble_protocol::{AssetId, Clip, Frames, RecordId, Ticks, TrackId};

    fn clip(start: i64, length: i64) -> Clip {
        Clip {
            track: TrackId::from_u128(1),
            asset: AssetId::from_u128(2),
            start: Ticks(start),
            length: Ticks(length),
            source_offset: Frames(0),
            gain_db: 0.0,
            fade_in: Ticks(0),
            fade_out: Ticks(0),
            name: "c".into(),
        }
    }

    #[test]
    fn overlaps_are_found_pair_by_pair_and_touching_clips_do_not_overlap() {
        let clips = [clip(0, 960), clip(960, 960), clip(1500, 1000), clip(3000, 100), clip(2000, 2000)];
        let ids: Vec<(RecordId, &Clip)> =
            clips.iter().enumerate().map(|(i, c)| (RecordId::from_u128(i as u128), c)).collect();
        // 0–960 and 960–1920 touch; 1500–2500 overlaps the second and the last; 3000–3100 lies
        // inside the last.
        assert_eq!(super::overlapping(&ids), vec![(1500, 1920), (2000, 2500), (3000, 3100)]);
    }
}
