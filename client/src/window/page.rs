//! The window inside a browser page: files picked in the browser's picker or dropped on the
//! page become imports, the layout each frame draws is published to the page
//! (`window.ensembleLayout`, JSON) with a count of the frames the app ran, rendered or not
//! (`window.ensembleFrames`), for the checks that drive it from outside, and a frame that would
//! paint the picture already on the page is not rendered.
//!
//! Why that last one matters here: egui asks for two more frames after every input (to let
//! sizes settle), a key asks for one when it is let go, and the window draws once a second
//! when idle. In a browser without a GPU each rendered frame holds the page's one thread for
//! 35–95 ms (measured here) while the browser reads the canvas back from its software
//! renderer, and a key pressed meanwhile waits for it. The canvas keeps showing its last
//! picture when a frame presents nothing, so skipping the render loses nothing on screen.

use bevy::prelude::*;
use bevy::window::PrimaryWindow;
use bevy_egui::{EguiOutput, EguiPostUpdateSet, EguiRenderOutput, PrimaryEguiContext, egui};

use super::{Dialog, DrawnLayout, FileArrived};
use crate::browser::{self, PageFiles};
use crate::sync::UploadSource;

/// The canvas the app draws in (see `client/web/index.html`).
const CANVAS: &str = "#ensemble";

/// The page's files and the published layout.
pub(super) struct PagePlugin;

impl Plugin for PagePlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<PageFiles>()
            .add_systems(Startup, listen_for_drops)
            .add_systems(Update, (open_picker, take_files))
            // After the window drew: in Update it published the frame before, so a change
            // showed to the page's readers only at the next frame, which an idle page waits
            // a second for.
            .add_systems(Last, publish_layout)
            .add_systems(PostUpdate, render_only_changes.after(EguiPostUpdateSet::ProcessOutput));
    }
}

fn listen_for_drops(inbox: Res<PageFiles>) {
    if let Err(reason) = browser::listen_for_drops(&inbox, CANVAS) {
        warn!("files dropped on the page cannot be imported: {reason}");
    }
}

/// The import dialog in a page is the browser's file picker.
fn open_picker(mut dialog: ResMut<Dialog>, inbox: Res<PageFiles>) {
    if matches!(*dialog, Dialog::Pick) {
        *dialog = Dialog::None;
        if let Err(reason) = browser::pick_files(&inbox) {
            warn!("the file picker did not open: {reason}");
        }
    }
}

/// Hands the files that arrived to the window, dropped ones where they were dropped (CSS
/// pixels are the window's logical pixels, which egui's points are at its default zoom).
fn take_files(inbox: Res<PageFiles>, mut arrived: MessageWriter<FileArrived>) {
    for file in inbox.take() {
        let source = UploadSource::Bytes { name: file.name, bytes: file.bytes };
        arrived.write(FileArrived { source, pointer: file.dropped_at.map(|[x, y]| egui::pos2(x, y)) });
    }
}

/// Counts the frame, and publishes the drawn layout whenever it changes.
fn publish_layout(layout: Res<DrawnLayout>, mut frames: Local<u32>) {
    let Some(window) = web_sys::window() else { return };
    *frames += 1;
    let _ = js_sys::Reflect::set(&window, &"ensembleFrames".into(), &(*frames).into());
    if !layout.is_changed() {
        return;
    }
    let Ok(json) = serde_json::to_string(&*layout) else { return };
    let _ = js_sys::Reflect::set(&window, &"ensembleLayout".into(), &json.into());
}

/// What the page shows: the meshes of the last frame rendered, at its scale, on a canvas of
/// its size.
struct Shown {
    paint_jobs: Vec<egui::ClippedPrimitive>,
    pixels_per_point: f32,
    canvas: UVec2,
}

/// Renders this frame only if its picture differs from the one on the page: other meshes, a
/// texture egui changes (the font atlas growing), or a resized canvas (which the browser
/// clears).
fn render_only_changes(
    mut cameras: Query<(&mut Camera, &EguiRenderOutput, &EguiOutput), With<PrimaryEguiContext>>,
    window: Query<&Window, With<PrimaryWindow>>,
    mut shown: Local<Option<Shown>>,
) {
    let canvas = window.single().map_or(UVec2::ZERO, Window::physical_size);
    for (mut camera, output, egui_output) in &mut cameras {
        let unchanged = output.textures_delta.is_empty()
            && shown.as_ref().is_some_and(|shown| {
                shown.canvas == canvas
                    && shown.pixels_per_point == egui_output.pixels_per_point
                    && same_picture(&shown.paint_jobs, &output.paint_jobs)
            });
        if !unchanged {
            let (paint_jobs, pixels_per_point) = (output.paint_jobs.clone(), egui_output.pixels_per_point);
            *shown = Some(Shown { paint_jobs, pixels_per_point, canvas });
        }
        if camera.is_active == unchanged {
            camera.is_active = !unchanged;
        }
    }
}

/// Whether two frames paint the same meshes in the same clip rectangles (a paint callback is
/// never the same: what it draws is not in the mesh).
fn same_picture(shown: &[egui::ClippedPrimitive], next: &[egui::ClippedPrimitive]) -> bool {
    shown.len() == next.len()
        && shown.iter().zip(next).all(|(shown, next)| {
            shown.clip_rect == next.clip_rect
                && matches!(
                    (&shown.primitive, &next.primitive),
                    (egui::epaint::Primitive::Mesh(shown), egui::epaint::Primitive::Mesh(next)) if shown == next
                )
        })
}
