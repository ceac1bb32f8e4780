//! The import and export dialogs, drawn in the window itself (no system dialog is needed, so
//! they look the same everywhere and work under any desktop, or none).
//!
//! Import browses folders and lists the audio files in them; picking one imports it onto a new
//! track at the playhead (dropping files on the timeline places them where they land). Export
//! asks for a file name and a sample format and renders the mix as it is now. In the browser
//! the page's own file picker stands in for the folder browser, and an export is a download.

use std::path::{Path, PathBuf};

use bevy::prelude::*;
use bevy_egui::egui;
use ensemble_audio::wav::WavFormat;
use ensemble_protocol::Ticks;

use super::{Out, Scene, theme};
use crate::import::{ImportMsg, is_audio_file, is_midi_file};
use crate::playback::ExportMsg;
use crate::sync::UploadSource;

/// The dialog on screen, if any.
#[derive(Resource, Debug, Default)]
pub enum Dialog {
    /// None.
    #[default]
    None,
    /// Choosing a file to import.
    Import(Browser),
    /// Choosing files in the browser's own picker, which the page opens (there are no folders
    /// to browse in a page).
    Pick,
    /// Choosing where to export the mix.
    Export {
        /// The file to write.
        path: String,
        /// The sample format.
        format: WavFormat,
        /// Why the last attempt could not start.
        problem: Option<String>,
    },
}

/// A folder's listing for the import dialog.
#[derive(Debug)]
pub struct Browser {
    dir: PathBuf,
    /// Subfolders, then audio files, by name.
    entries: Vec<(String, bool)>,
    problem: Option<String>,
    typed: String,
}

impl Browser {
    fn open(dir: PathBuf) -> Browser {
        let mut browser = Browser { dir, entries: Vec::new(), problem: None, typed: String::new() };
        browser.read();
        browser
    }

    fn read(&mut self) {
        self.entries.clear();
        self.problem = None;
        match std::fs::read_dir(&self.dir) {
            Ok(listing) => {
                for entry in listing.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let path = entry.path();
                    let is_dir = path.is_dir();
                    if name.starts_with('.') || !(is_dir || is_audio_file(&path) || is_midi_file(&path)) {
                        continue;
                    }
                    self.entries.push((name, is_dir));
                }
                self.entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.to_lowercase().cmp(&b.0.to_lowercase())));
            }
            Err(error) => self.problem = Some(format!("cannot read {}: {error}", self.dir.display())),
        }
    }

    fn go(&mut self, dir: PathBuf) {
        self.dir = dir;
        self.read();
    }
}

impl Dialog {
    /// The import dialog, in the user's music folder (or home, or the current folder); in the
    /// browser, its file picker.
    pub fn import() -> Dialog {
        if cfg!(target_arch = "wasm32") { Dialog::Pick } else { Dialog::Import(Browser::open(music_folder())) }
    }

    /// The export dialog, suggesting `<project name>.wav` in the user's music folder (in the
    /// browser, a name for the download).
    pub fn export(project_name: &str) -> Dialog {
        let name: String =
            project_name.chars().map(|c| if c.is_alphanumeric() || " -_".contains(c) { c } else { '_' }).collect();
        let file = format!("{}.wav", name.trim());
        let path = if cfg!(target_arch = "wasm32") { file } else { music_folder().join(file).display().to_string() };
        Dialog::Export { path, format: WavFormat::Int24, problem: None }
    }
}

/// The user's music folder where it exists, else their home, else the current folder.
pub(super) fn music_folder() -> PathBuf {
    [dirs::audio_dir(), dirs::home_dir(), std::env::current_dir().ok()]
        .into_iter()
        .flatten()
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Shows the open dialog; an import goes on a new track at `playhead` (snapped).
pub(super) fn show(ctx: &egui::Context, dialog: &mut Dialog, scene: &Scene, playhead: Ticks, out: &mut Out) {
    let mut open = true;
    let mut done = false;
    match dialog {
        Dialog::None | Dialog::Pick => return,
        Dialog::Import(browser) => {
            egui::Window::new("Import audio")
                .open(&mut open)
                .collapsible(false)
                .resizable(false)
                .fixed_size(egui::vec2(520.0, 380.0))
                .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
                .show(ctx, |ui| done = import(ui, browser, playhead, out));
        }
        Dialog::Export { path, format, problem } => {
            egui::Window::new("Export mix")
                .open(&mut open)
                .collapsible(false)
                .resizable(false)
                .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
                .show(ctx, |ui| done = export(ui, scene, path, format, problem, out));
        }
    }
    if done || !open {
        *dialog = Dialog::None;
    }
}

/// The import dialog's contents; true once a file was chosen.
fn import(ui: &mut egui::Ui, browser: &mut Browser, playhead: Ticks, out: &mut Out) -> bool {
    let mut chosen: Option<PathBuf> = None;
    ui.horizontal(|ui| {
        if ui.button("⬆ Up").clicked()
            && let Some(parent) = browser.dir.parent().map(Path::to_path_buf)
        {
            browser.go(parent);
        }
        ui.label(egui::RichText::new(browser.dir.display().to_string()).color(theme::DIM));
    });
    ui.horizontal(|ui| {
        let response = ui.add(
            egui::TextEdit::singleline(&mut browser.typed)
                .hint_text("or type a file or folder path")
                .desired_width(400.0),
        );
        let entered = response.lost_focus() && ui.input(|input| input.key_pressed(egui::Key::Enter));
        if (ui.button("Open").clicked() || entered) && !browser.typed.trim().is_empty() {
            let typed = PathBuf::from(browser.typed.trim());
            let path = if typed.is_absolute() { typed } else { browser.dir.join(typed) };
            if path.is_dir() {
                browser.typed.clear();
                browser.go(path);
            } else {
                chosen = Some(path);
            }
        }
    });
    if let Some(problem) = &browser.problem {
        ui.colored_label(theme::WARN, problem);
    }
    ui.separator();
    let mut into: Option<PathBuf> = None;
    egui::ScrollArea::vertical().auto_shrink([false, false]).max_height(270.0).show(ui, |ui| {
        for (name, is_dir) in &browser.entries {
            let label = if *is_dir { format!("📁 {name}") } else { format!("🎵 {name}") };
            if ui.selectable_label(false, label).clicked() {
                let path = browser.dir.join(name);
                if *is_dir { into = Some(path) } else { chosen = Some(path) }
            }
        }
        if browser.entries.is_empty() && browser.problem.is_none() {
            ui.label(egui::RichText::new("No folders or audio files here").color(theme::DIM));
        }
    });
    if let Some(dir) = into {
        browser.go(dir);
    }
    ui.label(
        egui::RichText::new(
            "The file goes on a new track at the playhead. WAV, AIFF, FLAC, MP3, Ogg Vorbis, and MIDI (each part \
             with a synth).",
        )
        .small()
        .color(theme::DIM),
    );
    match chosen {
        Some(path) => {
            out.import.write(ImportMsg::new(UploadSource::File(path), None, playhead));
            true
        }
        None => false,
    }
}

/// The export dialog's contents; true once the export started.
fn export(
    ui: &mut egui::Ui,
    scene: &Scene,
    path: &mut String,
    format: &mut WavFormat,
    problem: &mut Option<String>,
    out: &mut Out,
) -> bool {
    ui.label(format!("Render \"{}\" from the start to the end of its last clip.", scene.project.name));
    ui.horizontal(|ui| {
        // The browser saves a download where the user keeps them: only its name is asked.
        ui.label(if cfg!(target_arch = "wasm32") { "Download as" } else { "File" });
        ui.add(egui::TextEdit::singleline(path).desired_width(380.0));
    });
    ui.horizontal(|ui| {
        ui.label("Format");
        let name = |format: WavFormat| match format {
            WavFormat::Int16 => "WAV 16-bit",
            WavFormat::Int24 => "WAV 24-bit",
            WavFormat::Float32 => "WAV 32-bit float",
        };
        egui::ComboBox::from_id_salt("export-format").selected_text(name(*format)).show_ui(ui, |ui| {
            for choice in [WavFormat::Int16, WavFormat::Int24, WavFormat::Float32] {
                ui.selectable_value(format, choice, name(choice));
            }
        });
        ui.label(egui::RichText::new(format!("{} Hz", scene.project.sample_rate)).color(theme::DIM));
    });
    if let Some(problem) = problem.as_ref() {
        ui.colored_label(theme::WARN, problem);
    }
    if !ui.button("Export").clicked() {
        return false;
    }
    let target = PathBuf::from(path.trim());
    let folder = target.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    *problem = if path.trim().is_empty() {
        Some("give the file a name".into())
    } else if cfg!(target_arch = "wasm32") {
        None
    } else if !folder.is_dir() {
        Some(format!("there is no folder {}", folder.display()))
    } else if target.is_dir() {
        Some(format!("{} is a folder", target.display()))
    } else {
        None
    };
    if problem.is_some() {
        return false;
    }
    let target = if target.extension().is_none() { target.with_extension("wav") } else { target };
    out.export.write(ExportMsg { path: target, format: *format });
    true
}
