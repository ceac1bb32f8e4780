//! The window inside a browser page: files picked in the browser's picker or dropped on the
//! page become imports, and the layout each frame draws is published to the page
//! (`window.ensembleLayout`, JSON), with a count of the frames drawn (`window.ensembleFrames`),
//! for the checks that drive it from outside.

use bevy::prelude::*;
use bevy_egui::egui;

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
            .add_systems(Last, publish_layout);
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
