//! The page around the app in the browser: files the user picks or drops in, and files the app
//! hands out as downloads.
//!
//! A page cannot read a path: [`pick_files`] opens the browser's file picker and
//! [`listen_for_drops`] catches files dropped anywhere on the page; each file's bytes, once read,
//! arrive at a [`PageFiles`] inbox the window drains every frame. [`download`] offers bytes as
//! a file the browser saves (an exported mix).

use std::sync::{Arc, Mutex, PoisonError};

use bevy::prelude::Resource;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use wasm_bindgen_futures::JsFuture;

use crate::import::{AUDIO_EXTENSIONS, MIDI_EXTENSIONS};

/// A file the page handed over.
#[derive(Clone, Debug)]
pub struct PageFile {
    /// Its name.
    pub name: String,
    /// Its bytes.
    pub bytes: Arc<[u8]>,
    /// Where it was dropped, in CSS pixels from the canvas' top left (none for a picked file).
    pub dropped_at: Option<[f32; 2]>,
}

/// Files that arrived from the page and were not yet taken; shared with the page's callbacks.
#[derive(Resource, Clone, Debug, Default)]
pub struct PageFiles(Arc<Mutex<Vec<PageFile>>>);

impl PageFiles {
    /// The files that arrived since the last call.
    pub fn take(&self) -> Vec<PageFile> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reads each file's bytes (in the background) into the inbox.
    fn read(&self, files: web_sys::FileList, dropped_at: Option<[f32; 2]>) {
        for index in 0..files.length() {
            let Some(file) = files.get(index) else { continue };
            let inbox = self.0.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let name = file.name();
                match JsFuture::from(file.array_buffer()).await {
                    Ok(buffer) => {
                        let bytes = js_sys::Uint8Array::new(&buffer).to_vec().into();
                        let file = PageFile { name, bytes, dropped_at };
                        inbox.lock().unwrap_or_else(PoisonError::into_inner).push(file);
                    }
                    Err(error) => tracing::warn!("the browser could not read {name}: {error:?}"),
                }
            });
        }
    }
}

/// Opens the browser's file picker for audio files; what the user picks arrives at `inbox`.
pub fn pick_files(inbox: &PageFiles) -> Result<(), String> {
    let document = web_sys::window().and_then(|window| window.document()).ok_or("no document")?;
    let input: web_sys::HtmlInputElement =
        document.create_element("input").map_err(js)?.dyn_into().map_err(|_| "not an input".to_owned())?;
    input.set_type("file");
    input.set_multiple(true);
    let extensions = AUDIO_EXTENSIONS.iter().chain(&MIDI_EXTENSIONS);
    let accept: Vec<String> = extensions.map(|extension| format!(".{extension}")).collect();
    input.set_accept(&format!("audio/*,audio/midi,{}", accept.join(",")));
    let (inbox, picked) = (inbox.clone(), input.clone());
    let changed = Closure::once_into_js(move || {
        if let Some(files) = picked.files() {
            inbox.read(files, None);
        }
    });
    input.add_event_listener_with_callback("change", changed.unchecked_ref()).map_err(js)?;
    input.click();
    Ok(())
}

/// Catches files dropped on the page (which would otherwise open them in place of the app);
/// they arrive at `inbox` with where they were dropped on `canvas`.
pub fn listen_for_drops(inbox: &PageFiles, canvas: &str) -> Result<(), String> {
    let document = web_sys::window().and_then(|window| window.document()).ok_or("no document")?;
    let over = Closure::<dyn FnMut(web_sys::DragEvent)>::new(|event: web_sys::DragEvent| event.prevent_default());
    document.add_event_listener_with_callback("dragover", over.as_ref().unchecked_ref()).map_err(js)?;
    over.forget();
    let (inbox, canvas) = (inbox.clone(), canvas.to_owned());
    let dropped = Closure::<dyn FnMut(web_sys::DragEvent)>::new(move |event: web_sys::DragEvent| {
        event.prevent_default();
        let Some(files) = event.data_transfer().and_then(|transfer| transfer.files()) else { return };
        let origin = web_sys::window()
            .and_then(|window| window.document())
            .and_then(|document| document.query_selector(&canvas).ok().flatten())
            .map(|canvas| canvas.get_bounding_client_rect());
        let at = origin.map(|rect| [(event.client_x() - rect.left()) as f32, (event.client_y() - rect.top()) as f32]);
        inbox.read(files, at);
    });
    document.add_event_listener_with_callback("drop", dropped.as_ref().unchecked_ref()).map_err(js)?;
    dropped.forget();
    Ok(())
}

/// Offers `bytes` as a download named `name` (the browser saves it where the user keeps
/// downloads, or asks).
pub fn download(name: &str, bytes: &[u8], mime: &str) -> Result<(), String> {
    let document = web_sys::window().and_then(|window| window.document()).ok_or("no document")?;
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options).map_err(js)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(js)?;
    let link: web_sys::HtmlAnchorElement =
        document.create_element("a").map_err(js)?.dyn_into().map_err(|_| "not a link".to_owned())?;
    link.set_href(&url);
    link.set_download(name);
    link.click();
    // The browser has taken the file once the click is handled.
    let revoke = Closure::once_into_js(move || {
        let _ = web_sys::Url::revoke_object_url(&url);
    });
    web_sys::window()
        .ok_or("no window")?
        .set_timeout_with_callback_and_timeout_and_arguments_0(revoke.unchecked_ref(), 10_000)
        .map_err(js)?;
    Ok(())
}

fn js(error: wasm_bindgen::JsValue) -> String {
    error.as_string().unwrap_or_else(|| format!("{error:?}"))
}
