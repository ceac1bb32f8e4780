//! The DAW window (bevy_egui): transport bar, track headers, timeline with automation lanes,
//! mixer, and the import and export dialogs.
//!
//! Everything here only draws the model and turns gestures into [`EditMsg`]s: the window never
//! changes an entity itself. What an action means as ops lives in [`crate::edits`]; this module
//! decides only where the pointer is. A fader, a clip or an automation point being dragged
//! sends `Preview`s and one `CommitGesture` when the drag ends, so the whole drag is one edit
//! and one undo step; clicks and finished text fields are single edits. What is shown comes
//! from the model's components, so it is always confirmed ⊕ pending ⊕ the gesture's preview.
//!
//! One system draws the whole window each frame, panel by panel, each in a file of its own:
//! `transport_bar` (play, loop, metronome, position, tempo, metre, menus, connection),
//! `headers` (a track's controls beside its row), `timeline` (ruler, grid, clips, lanes,
//! playhead, collaborators), `clips` (a clip: waveform, move, trim and fade handles),
//! `automation` (a lane under its track), `mixer` (a channel strip per track) and `dialogs`
//! (import and export); `jam` draws the LAN jam panel (host, or find and join). Keyboard
//! shortcuts work whenever no text field has focus.

mod automation;
mod clips;
mod dialogs;
mod headers;
#[cfg(feature = "lan")]
mod jam;
mod mixer;
mod notes;
#[cfg(target_arch = "wasm32")]
mod page;
mod rack;
#[cfg(not(target_arch = "wasm32"))]
mod takes;
mod timeline;
mod transport_bar;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bevy::platform::time::Instant;

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy::window::{FileDragAndDrop, RequestRedraw};
use bevy::winit::{EventLoopProxyWrapper, UpdateMode, WinitSettings, WinitUserEvent};
use bevy_egui::{EguiContexts, EguiPlugin, EguiPostUpdateSet, EguiPrimaryContextPass, egui};
use ensemble_protocol::{
    AssetId, AudioAsset, AutomationLane, Bus, Clip, Colour, Effect, EffectKind, NoteClip, Op, Parameter, Presence,
    Project, RecordId, TICKS_PER_QUARTER, Ticks, Timebase, Track, TrackId,
};

use crate::history::{EditMsg, History};
use crate::import::{ImportDone, ImportMsg, Imports};
#[cfg(feature = "lan")]
use crate::jam::{Jam, JamPlugin};
use crate::media::Media;
use crate::model::{
    AssetData, ClipData, EffectData, LaneData, NoteClipData, ProjectData, RecordIndex, RecordKey, TrackData,
};
use crate::playback::{ExportDone, ExportMsg, PlaybackNote, PlaybackPlugin, PlaybackSystems, TrackLevels, Transport};
use crate::presence::{LocalPresence, Peers};
use crate::replica::{Notice, Replica};
use crate::sync::{AppWaker, Connection, SyncStatus, SyncSystems, UploadSource};

pub use dialogs::Dialog;

/// Draws the DAW and turns gestures into edits.
pub struct DawWindowPlugin;

impl Plugin for DawWindowPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins((EguiPlugin::default(), PlaybackPlugin))
            // A gesture drawn this frame reaches the jam and the engine this frame.
            .configure_sets(PostUpdate, PlaybackSystems::Transport.after(EguiPostUpdateSet::EndPass))
            .init_resource::<View>()
            .init_resource::<DrawnLayout>()
            .init_resource::<Alerts>()
            .init_resource::<Dialog>()
            .add_message::<FileArrived>()
            // Stopped, the window draws when something happens (input, or news from the sync
            // worker, wake it) and at least every `IDLE_FRAME`; playing, it draws every frame.
            // An idle window used half a core drawing the same picture.
            .insert_resource(WinitSettings {
                focused_mode: UpdateMode::reactive(IDLE_FRAME),
                unfocused_mode: UpdateMode::reactive_low_power(IDLE_FRAME * 5),
            })
            .add_systems(Startup, (spawn_camera, wake_on_news))
            .add_systems(Update, (collect_alerts, redraw_while_playing))
            .add_systems(Last, redraw_after_edits.after(SyncSystems::Edit))
            .add_systems(EguiPrimaryContextPass, draw);
        #[cfg(feature = "lan")]
        app.add_plugins(JamPlugin).add_systems(EguiPrimaryContextPass, jam::draw.after(draw));
        #[cfg(target_arch = "wasm32")]
        app.add_plugins(page::PagePlugin);
        #[cfg(not(target_arch = "wasm32"))]
        app.add_plugins((crate::record::RecordPlugin::in_data_dir(), crate::midi_in::MidiInPlugin));
    }
}

/// A file that reached the window other than by the system's drag and drop (the browser page's
/// picker, or a drop on the page): it is imported as a dropped file is, onto the track under
/// `pointer` (in points), or onto a new track at the playhead.
#[derive(Message, Clone, Debug)]
pub struct FileArrived {
    /// The file.
    pub source: UploadSource,
    /// Where it was dropped, if it was.
    pub pointer: Option<egui::Pos2>,
}

/// How often a window with nothing to do draws anyway: natively every 100 ms, which a LAN jam's
/// link (polled by frames) needs; in the browser every second, since there every frame is the
/// page's one thread, and news wakes the window anyway.
const IDLE_FRAME: Duration =
    if cfg!(target_arch = "wasm32") { Duration::from_secs(1) } else { Duration::from_millis(100) };

/// Wakes the window when the sync worker has news (a collaborator's edit shows at once, not at
/// the next timed frame).
fn wake_on_news(waker: Option<Res<AppWaker>>, proxy: Option<Res<EventLoopProxyWrapper>>) {
    let (Some(waker), Some(proxy)) = (waker, proxy) else { return };
    let proxy = (**proxy).clone();
    waker.set(move || {
        let _ = proxy.send_event(WinitUserEvent::WakeUp);
    });
}

/// Keeps the window drawing every frame while the playhead moves.
fn redraw_while_playing(transport: Res<Transport>, mut redraw: MessageWriter<RequestRedraw>) {
    if transport.playing {
        redraw.write(RequestRedraw);
    }
}

/// An edit is proposed and mirrored into the model at the end of the frame it was made in:
/// the next frame, drawn at once, shows it (an idle window would wait for its next timed frame).
fn redraw_after_edits(mut edits: MessageReader<EditMsg>, mut redraw: MessageWriter<RequestRedraw>) {
    if edits.read().count() > 0 {
        redraw.write(RequestRedraw);
    }
}

/// How the timeline is zoomed and scrolled, what is selected, and the gesture under way.
#[derive(Resource, Debug)]
pub struct View {
    /// Screen points per quarter note.
    pub points_per_quarter: f32,
    /// The position at the timeline's left edge.
    pub scroll: Ticks,
    /// Height of one track row (its automation lane comes on top).
    pub track_height: f32,
    /// The first track row shown (the timeline and the headers scroll together).
    pub first_row: usize,
    /// The tracks showing an automation lane, and which parameter's.
    pub automation: HashMap<TrackId, Parameter>,
    /// The selected clips.
    pub selected: HashSet<RecordId>,
    /// Whether the mixer panel is open.
    pub mixer: bool,
    /// Whether the jam panel is open.
    pub jam: bool,
    /// The effect whose editor is open.
    pub effect_editor: Option<RecordId>,
    /// The note clip open in the piano roll, its selection and drag.
    piano_roll: notes::PianoRoll,
    /// Where the timeline's rows began and the timeline's rectangle in the last frame, so the
    /// headers line up with it and a dropped file lands where the pointer is.
    rows_top: f32,
    timeline: egui::Rect,
    /// The drag in progress on the timeline.
    drag: Option<Drag>,
    /// While files are dragged over the window: where the pointer was when they arrived. Some
    /// platforms (X11) report no pointer motion during such a drag, so a drop at that same
    /// position says nothing about where the files were let go.
    file_hover: Option<Option<egui::Pos2>>,
    themed: bool,
}

impl View {
    /// Opens `clip` (a note clip) in the piano roll.
    pub fn open_piano_roll(&mut self, clip: RecordId) {
        self.piano_roll = notes::PianoRoll::open(clip);
    }
}

impl Default for View {
    fn default() -> Self {
        View {
            points_per_quarter: 28.0,
            scroll: Ticks(0),
            track_height: 76.0,
            first_row: 0,
            automation: HashMap::new(),
            selected: HashSet::new(),
            mixer: false,
            jam: false,
            effect_editor: None,
            piano_roll: notes::PianoRoll::default(),
            rows_top: 0.0,
            timeline: egui::Rect::NOTHING,
            drag: None,
            file_hover: None,
            themed: false,
        }
    }
}

/// A drag on the timeline, with what it started from: previews are computed from the state
/// before the drag, never from the previous preview.
#[derive(Debug, Clone)]
enum Drag {
    /// Moving the selected clips; the grabbed one leads (its track follows the pointer).
    Clips { grabbed: RecordId, offset: i64, originals: Vec<(RecordId, Clip)> },
    /// One of a clip's edges or fade handles.
    Clip { id: RecordId, original: Clip, handle: clips::Handle },
    /// An automation point.
    Point { lane: RecordId, original: AutomationLane, point: ensemble_protocol::PointId },
    /// A loop range being drawn on the ruler, from this tick.
    Loop { from: i64 },
}

/// Where the last frame drew each track header and clip, in window points: what a screenshot
/// check compares against the pixels.
#[derive(Resource, Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct DrawnLayout {
    /// Track headers, top to bottom.
    pub headers: Vec<DrawnRegion>,
    /// Clips, by track then position.
    pub clips: Vec<DrawnRegion>,
    /// Clip bodies with a waveform drawn in them (in the waveform's colour).
    pub waveforms: Vec<DrawnRegion>,
    /// Automation lanes with their curve drawn (in the track's colour).
    pub lanes: Vec<DrawnRegion>,
    /// Mixer strips, left to right, by their colour bar.
    pub strips: Vec<DrawnRegion>,
    /// Effect slots in the mixer's racks, strip by strip in playing order, by their colour chip.
    pub effects: Vec<DrawnEffect>,
    /// The open effect editor.
    pub editor: Option<DrawnEditor>,
    /// Note clips on the timeline, by their name bar.
    pub note_clips: Vec<DrawnRegion>,
    /// Notes in the open piano roll (not selected), by their solid part.
    pub notes: Vec<DrawnRegion>,
    /// Clips with room for a waveform whose peaks have not arrived yet.
    pub waiting_for_peaks: usize,
    /// The window's size, and the controls of the transport bar and the status line (left,
    /// top, right, bottom): each must lie inside it and clear of the others.
    pub window: [f32; 2],
    /// See [`DrawnLayout::window`].
    pub controls: Vec<[f32; 4]>,
    /// The tempo field and what it shows (`120.0 BPM`): where a check types a tempo, and reads
    /// one back.
    pub tempo: Option<DrawnText>,
}

/// A control and the text it shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DrawnText {
    /// Left, top, right, bottom.
    pub rect: [f32; 4],
    /// What it reads.
    pub text: String,
}

impl DrawnLayout {
    /// Whether the frame drew clips, each with its waveform where it has room for one: the
    /// project as it will stay.
    pub fn complete(&self) -> bool {
        !self.clips.is_empty() && self.waiting_for_peaks == 0
    }
}

/// One drawn region and the colour that identifies it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DrawnRegion {
    /// The track's (or the clip's track's) name.
    pub name: String,
    /// The track colour, sRGB.
    pub colour: [u8; 3],
    /// Where its colour is painted solid: left, top, right, bottom.
    pub swatch: [f32; 4],
}

impl DrawnRegion {
    fn new(track: &Track, swatch: egui::Rect) -> DrawnRegion {
        DrawnRegion {
            name: track.name.clone(),
            colour: [track.colour.r, track.colour.g, track.colour.b],
            swatch: [swatch.left(), swatch.top(), swatch.right(), swatch.bottom()],
        }
    }
}

/// The effect editor as drawn.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DrawnEditor {
    /// The effect's kind.
    pub effect: String,
    /// Knobs drawn.
    pub knobs: usize,
    /// The window: left, top, right, bottom. What it covers is not seen.
    pub rect: [f32; 4],
}

/// An effect slot as drawn in a mixer strip.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DrawnEffect {
    /// The track's name.
    pub name: String,
    /// The effect's kind, as the slot reads.
    pub effect: String,
    /// The track colour, sRGB.
    pub colour: [u8; 3],
    /// Where the track colour is painted solid at the slot's left: left, top, right, bottom.
    pub swatch: [f32; 4],
}

impl DrawnEffect {
    fn new(name: &str, colour: Colour, kind: EffectKind, swatch: egui::Rect) -> DrawnEffect {
        DrawnEffect {
            name: name.into(),
            effect: kind.label().into(),
            colour: [colour.r, colour.g, colour.b],
            swatch: [swatch.left(), swatch.top(), swatch.right(), swatch.bottom()],
        }
    }
}

/// Recent messages for the status line: a notice, whether it is a warning, and when it came.
/// The newest shows for a while ([`Alerts::current`]); then the shortcut hints return.
#[derive(Resource, Debug, Default)]
struct Alerts(Vec<(String, bool, Instant)>);

impl Alerts {
    /// How long a notice, and a warning, stays on the status line.
    const SHOWN: Duration = Duration::from_secs(6);
    const WARNING_SHOWN: Duration = Duration::from_secs(12);

    fn push(&mut self, (text, warning): (String, bool)) {
        self.0.push((text, warning, Instant::now()));
        let excess = self.0.len().saturating_sub(4);
        self.0.drain(..excess);
    }

    /// The newest message, while it is still fresh.
    fn current(&self) -> Option<(&str, bool)> {
        let (text, warning, at) = self.0.last()?;
        let shown = if *warning { Self::WARNING_SHOWN } else { Self::SHOWN };
        (at.elapsed() < shown).then_some((text.as_str(), *warning))
    }
}

fn spawn_camera(mut commands: Commands) {
    // The camera only carries egui, which smooths its own edges: multisampling (Bevy's default,
    // 4×) would only cost fill rate, which a software renderer (a browser without a GPU, Xvfb)
    // pays on the CPU every frame.
    commands.spawn((Camera2d, Msaa::Off));
}

fn collect_alerts(
    mut notices: MessageReader<Notice>,
    mut imports: MessageReader<ImportDone>,
    mut exports: MessageReader<ExportDone>,
    mut playback: MessageReader<PlaybackNote>,
    #[cfg(not(target_arch = "wasm32"))] mut takes: MessageReader<crate::record::RecordDone>,
    mut alerts: ResMut<Alerts>,
) {
    #[cfg(not(target_arch = "wasm32"))]
    for done in takes.read() {
        alerts.push(takes::alert(done));
    }
    for PlaybackNote(note) in playback.read() {
        alerts.push((note.clone(), true));
    }
    for notice in notices.read() {
        let text = match notice {
            Notice::Refused { reason } => format!("Edit refused: {reason}"),
            Notice::UndoRefused { reason } => format!("Cannot undo: {reason}"),
            Notice::RedoRefused { reason } => format!("Cannot redo: {reason}"),
            Notice::Rejected { reason, .. } => format!("The authority refused an edit: {reason}"),
            Notice::Dropped { reason, .. } => format!("An edit no longer applies: {reason}"),
            Notice::Overridden { field, .. } => {
                let field = field.trim_end_matches("_db").replace('_', " ");
                format!("A collaborator's later edit replaced your change to the {field}: theirs stands")
            }
        };
        alerts.push((text, true));
    }
    for ImportDone { name, result, cut_short } in imports.read() {
        alerts.push(match result {
            Ok(_) if *cut_short => {
                (format!("Imported {name}, which is cut short: only the audio before the damage"), true)
            }
            Ok(_) => (format!("Imported {name}"), false),
            Err(reason) => (format!("Import failed: {reason}"), true),
        });
    }
    for ExportDone { path, result } in exports.read() {
        alerts.push(match result {
            Ok(seconds) => (format!("Exported {seconds:.1} s to {}", path.display()), false),
            Err(reason) => (format!("Export failed: {reason}"), true),
        });
    }
}

/// The palette: dark, with the accent of a meter's green.
mod theme {
    use bevy_egui::egui::Color32;

    pub(super) const BACKGROUND: Color32 = Color32::from_rgb(24, 26, 30);
    pub(super) const PANEL: Color32 = Color32::from_rgb(32, 35, 41);
    pub(super) const LANE: Color32 = Color32::from_rgb(28, 30, 35);
    pub(super) const LANE_ALT: Color32 = Color32::from_rgb(31, 34, 39);
    pub(super) const AUTOMATION: Color32 = Color32::from_rgb(22, 24, 28);
    pub(super) const GRID: Color32 = Color32::from_rgb(44, 48, 56);
    pub(super) const BAR: Color32 = Color32::from_rgb(66, 72, 84);
    pub(super) const TEXT: Color32 = Color32::from_rgb(214, 219, 228);
    pub(super) const DIM: Color32 = Color32::from_rgb(132, 140, 154);
    pub(super) const ACCENT: Color32 = Color32::from_rgb(92, 214, 140);
    pub(super) const PLAYHEAD: Color32 = Color32::from_rgb(255, 196, 64);
    pub(super) const WARN: Color32 = Color32::from_rgb(240, 120, 96);
    pub(super) const WAVE: Color32 = Color32::from_rgb(232, 236, 242);
    pub(super) const METER_HOT: Color32 = Color32::from_rgb(240, 200, 80);
    pub(super) const METER_CLIP: Color32 = Color32::from_rgb(240, 80, 72);
    pub(super) const RECORD: Color32 = Color32::from_rgb(236, 72, 72);
}

fn apply_theme(ctx: &egui::Context) {
    let mut visuals = egui::Visuals::dark();
    visuals.panel_fill = theme::PANEL;
    visuals.window_fill = theme::PANEL;
    visuals.extreme_bg_color = theme::BACKGROUND;
    visuals.override_text_color = Some(theme::TEXT);
    visuals.selection.bg_fill = theme::ACCENT.gamma_multiply(0.6);
    // A steady caret: egui asks for a repaint in half a second to blink it, and bevy_egui
    // redraws at once for any repaint asked, so a field in focus kept the window drawing without
    // a pause (in the browser, the page's one thread, and every keystroke waited for a frame).
    visuals.text_cursor.blink = false;
    ctx.set_visuals(visuals);
    // Ctrl+plus and Ctrl+minus zoom the timeline, not the whole interface.
    ctx.options_mut(|options| options.zoom_with_keyboard = false);
    ctx.global_style_mut(|style| {
        style.spacing.item_spacing = egui::vec2(8.0, 6.0);
        style.spacing.button_padding = egui::vec2(8.0, 4.0);
        for (text_style, size) in [
            (egui::TextStyle::Body, 14.0),
            (egui::TextStyle::Button, 14.0),
            (egui::TextStyle::Small, 11.0),
            (egui::TextStyle::Heading, 18.0),
            (egui::TextStyle::Monospace, 14.0),
        ] {
            if let Some(font) = style.text_styles.get_mut(&text_style) {
                font.size = size;
            }
        }
    });
}

/// A field that renames something: what is typed stays in the field until Enter or a click
/// elsewhere, and only then becomes an edit (returned); Escape drops it. While it has focus
/// it is never refilled from the record. `key` tells fields apart across frames.
fn name_field(
    ui: &mut egui::Ui,
    key: impl std::hash::Hash + std::fmt::Debug,
    current: &str,
    width: f32,
) -> Option<String> {
    let id = egui::Id::new(("name field", key));
    let mut text = ui.data(|data| data.get_temp::<String>(id)).unwrap_or_else(|| current.to_owned());
    let response = ui.add(egui::TextEdit::singleline(&mut text).id(id).desired_width(width));
    if response.lost_focus() || !response.has_focus() {
        ui.data_mut(|data| data.remove::<String>(id));
        let cancelled = ui.input(|input| input.key_pressed(egui::Key::Escape));
        let renamed = response.lost_focus() && !cancelled && text != current && !text.trim().is_empty();
        renamed.then(|| text.trim().to_owned())
    } else {
        ui.data_mut(|data| data.insert_temp(id, text));
        None
    }
}

/// Where files were dropped, if anything says so: the latest pointer position counts only if
/// the pointer was seen moving while they were dragged over the window (`hover_start` is where
/// it was when they arrived); X11 reports no motion then, and the last position seen is
/// wherever the pointer left the window before.
fn drop_point(hover_start: Option<Option<egui::Pos2>>, latest: Option<egui::Pos2>) -> Option<egui::Pos2> {
    latest.filter(|latest| hover_start != Some(Some(*latest)))
}

/// Where the button went down for the drag `response` reports: a fast drag is noticed only
/// after the pointer has travelled, so taking its origin then would land it short.
fn drag_origin(response: &egui::Response) -> Option<egui::Pos2> {
    response.ctx.input(|input| input.pointer.press_origin()).or_else(|| response.interact_pointer_pos())
}

fn colour32(colour: Colour) -> egui::Color32 {
    egui::Color32::from_rgb(colour.r, colour.g, colour.b)
}

/// What one frame draws: the project and its records, read from the model.
struct Scene<'a> {
    project_id: RecordId,
    project: &'a Project,
    timebase: Timebase,
    /// The tracks in order.
    tracks: Vec<(Entity, TrackId, &'a Track)>,
    /// Each track's clips.
    clips: HashMap<Entity, Vec<(RecordId, &'a Clip)>>,
    /// Each track's automation lanes, by parameter.
    lanes: HashMap<(TrackId, Parameter), (RecordId, &'a AutomationLane)>,
    /// Each track's effects, in playing order.
    effects: HashMap<Bus, Vec<(RecordId, &'a Effect)>>,
    /// Each track's note clips.
    note_clips: HashMap<Entity, Vec<(RecordId, &'a NoteClip)>>,
    /// The audio assets, for their rates and lengths.
    assets: HashMap<AssetId, &'a AudioAsset>,
    media: &'a Media,
    levels: &'a TrackLevels,
    /// Everyone else in the project.
    peers: &'a Peers,
    /// The records collaborators have selected, in their colour.
    peer_selection: HashMap<RecordId, Colour>,
    /// The take coming in, if one is.
    #[cfg(not(target_arch = "wasm32"))]
    take: Option<crate::record::GrowingTake<'a>>,
}

impl<'a> Scene<'a> {
    /// An asset's record, once it has arrived.
    fn asset(&self, asset: AssetId) -> Option<&AudioAsset> {
        self.assets.get(&asset).copied()
    }

    /// The selected clips, with their ids.
    fn selected<'s>(&'s self, view: &'s View) -> impl Iterator<Item = (RecordId, &'a Clip)> + 's {
        self.clips.values().flatten().copied().filter(|(id, _)| view.selected.contains(id))
    }

    /// Everything a track holds (clips, lanes, then effects, which lanes may drive), for
    /// deleting it.
    fn held_by(&self, entity: Entity, track: TrackId) -> Vec<RecordId> {
        let clips = self.clips.get(&entity).into_iter().flatten().map(|(id, _)| *id);
        let lanes = self.lanes.iter().filter(|((owner, _), _)| *owner == track).map(|(_, (id, _))| *id);
        let notes = self.note_clips.get(&entity).into_iter().flatten().map(|(id, _)| *id);
        let effects = self.chain(Bus::Track(track)).into_iter().map(|(id, _)| id);
        clips.chain(notes).chain(lanes).chain(effects).collect()
    }

    /// A note clip and the track it is on.
    fn note_clip(&self, id: RecordId) -> Option<(&'a Track, &'a NoteClip)> {
        let (_, clip) = self.note_clips.values().flatten().find(|(clip_id, _)| *clip_id == id)?;
        let (_, _, track) = self.tracks.iter().find(|(_, track, _)| *track == clip.track)?;
        Some((*track, *clip))
    }

    /// Where a new clip on a track goes: at the bar after its last clip ends.
    fn after_last_clip(&self, entity: Entity) -> Ticks {
        let audio = self.clips.get(&entity).into_iter().flatten().map(|(_, clip)| (clip.start + clip.length).0);
        let notes = self.note_clips.get(&entity).into_iter().flatten().map(|(_, clip)| (clip.start + clip.length).0);
        let end = audio.chain(notes).max().unwrap_or(0);
        let bar = self.project.time_signature.ticks_per_bar().0.max(1);
        Ticks(end.div_euclid(bar) * bar + if end % bar == 0 { 0 } else { bar })
    }

    /// A chain's effects (a track's, or the master's), in playing order.
    fn chain(&self, bus: Bus) -> Vec<(RecordId, &'a Effect)> {
        self.effects.get(&bus).cloned().unwrap_or_default()
    }

    /// An effect and the track it is on (`None` on the master).
    fn effect(&self, id: RecordId) -> Option<(Option<&'a Track>, &'a Effect)> {
        let (_, effect) = self.effects.values().flatten().find(|(effect_id, _)| *effect_id == id)?;
        match effect.bus {
            Bus::Track(track) => {
                let (_, _, track) = self.tracks.iter().find(|(_, track_id, _)| *track_id == track)?;
                Some((Some(*track), *effect))
            }
            Bus::Master => Some((None, *effect)),
        }
    }

    /// The automation lanes that drive an effect's knobs.
    fn lanes_of(&self, effect: RecordId) -> Vec<RecordId> {
        let drives =
            |parameter: &Parameter| matches!(parameter, Parameter::Effect(id, _) if RecordId::from(*id) == effect);
        self.lanes.iter().filter(|((_, parameter), _)| drives(parameter)).map(|(_, (id, _))| *id).collect()
    }
}

/// Where a frame's gestures go.
struct Out<'a, 'w> {
    edits: &'a mut MessageWriter<'w, EditMsg>,
    import: &'a mut MessageWriter<'w, ImportMsg>,
    export: &'a mut MessageWriter<'w, ExportMsg>,
    #[cfg(not(target_arch = "wasm32"))]
    record: takes::Recorder<'a, 'w>,
}

impl Out<'_, '_> {
    fn edit(&mut self, ops: Vec<Op>) {
        if !ops.is_empty() {
            self.edits.write(EditMsg::Edit(ops));
        }
    }
}

/// Turns a widget's response into a preview while it is dragged, one edit when the drag ends,
/// and a plain edit for a click or typed value. `differs`: the widget's value is not the
/// model's. Only then is there anything to preview or edit: a field being typed into reports
/// itself changed at every key, which made a no-op transaction per key.
fn gesture(response: &egui::Response, differs: bool, ops: impl Fn() -> Vec<Op>, edits: &mut MessageWriter<EditMsg>) {
    let changed = response.changed() && differs;
    if response.dragged() && changed {
        edits.write(EditMsg::Preview(ops()));
    } else if response.drag_stopped() {
        edits.write(EditMsg::CommitGesture);
    } else if changed {
        edits.write(EditMsg::Edit(ops()));
    }
}

/// A row of the timeline and the headers: one track and, when shown, its automation lane.
#[derive(Clone, Copy, Debug)]
struct Row<'a> {
    entity: Entity,
    id: TrackId,
    track: &'a Track,
    /// Where the track's row begins.
    top: f32,
    /// The lane shown under it.
    lane: Option<Parameter>,
}

/// Height of an automation lane under its track.
const LANE_HEIGHT: f32 = 72.0;

impl Row<'_> {
    fn track_bottom(&self, view: &View) -> f32 {
        self.top + view.track_height
    }

    fn bottom(&self, view: &View) -> f32 {
        self.track_bottom(view) + if self.lane.is_some() { LANE_HEIGHT } else { 0.0 }
    }
}

/// The rows from the first one scrolled to, stacked from `top` until `bottom`.
fn rows<'a>(view: &View, tracks: &[(Entity, TrackId, &'a Track)], top: f32, bottom: f32) -> Vec<Row<'a>> {
    let mut rows = Vec::new();
    let mut y = top;
    for (entity, id, track) in tracks.iter().skip(view.first_row) {
        if y >= bottom {
            break;
        }
        let row = Row { entity: *entity, id: *id, track, top: y, lane: view.automation.get(id).copied() };
        y = row.bottom(view);
        rows.push(row);
    }
    rows
}

/// Bars:beats:ticks of a position.
fn bars_beats(ticks: Ticks, beats_per_bar: u32) -> String {
    let quarter = TICKS_PER_QUARTER;
    let beats = ticks.0.max(0) / quarter;
    let bar = beats / i64::from(beats_per_bar.max(1)) + 1;
    let beat = beats % i64::from(beats_per_bar.max(1)) + 1;
    format!("{bar:>3}.{beat}.{:03}", ticks.0.max(0) % quarter)
}

fn describe(connection: &Connection) -> String {
    match connection {
        Connection::Connecting => "connecting".into(),
        Connection::Online { name, .. } => format!("online as {name}"),
        Connection::Offline { .. } => "offline, retrying".into(),
        Connection::Refused { reason } => format!("login refused: {reason}"),
    }
}

/// Everything the window reads and writes.
#[derive(SystemParam)]
struct Daw<'w, 's> {
    view: ResMut<'w, View>,
    transport: ResMut<'w, Transport>,
    dialog: ResMut<'w, Dialog>,
    layout: ResMut<'w, DrawnLayout>,
    status: Option<Res<'w, SyncStatus>>,
    replica: Option<Res<'w, Replica>>,
    history: Res<'w, History>,
    alerts: Res<'w, Alerts>,
    levels: Res<'w, TrackLevels>,
    media: Res<'w, Media>,
    index: Res<'w, RecordIndex>,
    imports: Res<'w, Imports>,
    peers: Res<'w, Peers>,
    #[cfg(feature = "lan")]
    jam: Res<'w, Jam>,
    local: ResMut<'w, LocalPresence>,
    project: Query<'w, 's, (&'static RecordKey, &'static ProjectData)>,
    tracks: Query<'w, 's, &'static TrackData>,
    clips: Query<'w, 's, (&'static RecordKey, &'static ClipData, &'static ChildOf)>,
    lanes: Query<'w, 's, (&'static RecordKey, &'static LaneData)>,
    effects: Query<'w, 's, (&'static RecordKey, &'static EffectData)>,
    note_clips: Query<'w, 's, (&'static RecordKey, &'static NoteClipData, &'static ChildOf)>,
    assets: Query<'w, 's, (&'static RecordKey, &'static AssetData)>,
    edits: MessageWriter<'w, EditMsg>,
    import: MessageWriter<'w, ImportMsg>,
    export: MessageWriter<'w, ExportMsg>,
    dropped: MessageReader<'w, 's, FileDragAndDrop>,
    arrived: MessageReader<'w, 's, FileArrived>,
    #[cfg(not(target_arch = "wasm32"))]
    recording: takes::RecordControls<'w>,
    #[cfg(not(target_arch = "wasm32"))]
    takes: Res<'w, crate::record::Takes>,
}

fn draw(mut contexts: EguiContexts, daw: Daw) -> Result {
    let ctx = contexts.ctx_mut()?.clone();
    let Daw {
        mut view,
        mut transport,
        mut dialog,
        mut layout,
        status,
        replica,
        history,
        alerts,
        levels,
        media,
        index,
        imports,
        peers,
        #[cfg(feature = "lan")]
        jam,
        mut local,
        project,
        tracks,
        clips,
        lanes,
        effects,
        note_clips,
        assets,
        mut edits,
        mut import,
        mut export,
        mut dropped,
        mut arrived,
        #[cfg(not(target_arch = "wasm32"))]
        mut recording,
        #[cfg(not(target_arch = "wasm32"))]
        takes,
    } = daw;
    if !view.themed {
        apply_theme(&ctx);
        view.themed = true;
    }
    let mut root = egui::Ui::new(
        ctx.clone(),
        "daw".into(),
        egui::UiBuilder::new().layer_id(egui::LayerId::background()).max_rect(ctx.viewport_rect()),
    );
    let Ok((project_key, project)) = project.single() else {
        egui::CentralPanel::default().show(&mut root, |ui| {
            ui.centered_and_justified(|ui| {
                let connection = status.as_ref().map(|status| describe(&status.connection));
                ui.heading(format!("Opening the project… {}", connection.unwrap_or_default()));
            });
        });
        return Ok(());
    };
    let ordered = project.track_order.iter().filter_map(|id| {
        let entity = index.entity((*id).into())?;
        tracks.get(entity).ok().map(|data| (entity, *id, &data.0))
    });
    let mut by_track: HashMap<Entity, Vec<(RecordId, &Clip)>> = HashMap::new();
    for (key, clip, parent) in &clips {
        by_track.entry(parent.parent()).or_default().push((key.0, &clip.0));
    }
    let mut chains: HashMap<Bus, Vec<(RecordId, &Effect)>> = HashMap::new();
    for (key, effect) in &effects {
        chains.entry(effect.bus).or_default().push((key.0, &effect.0));
    }
    chains.values_mut().for_each(|chain| crate::edits::in_playing_order(chain));
    let scene = Scene {
        project_id: project_key.0,
        project,
        timebase: Timebase::new(project.tempo, project.sample_rate),
        tracks: ordered.collect(),
        clips: by_track,
        lanes: lanes.iter().map(|(key, lane)| ((lane.track, lane.parameter), (key.0, &lane.0))).collect(),
        effects: chains,
        note_clips: {
            let mut by_track: HashMap<Entity, Vec<(RecordId, &NoteClip)>> = HashMap::new();
            for (key, clip, parent) in &note_clips {
                by_track.entry(parent.parent()).or_default().push((key.0, &clip.0));
            }
            by_track
        },
        assets: assets.iter().map(|(key, asset)| (AssetId(key.0.0), &asset.0)).collect(),
        media: &media,
        levels: &levels,
        peers: &peers,
        peer_selection: peers
            .sessions
            .values()
            .flat_map(|peer| peer.presence.selection.iter().map(|id| (*id, peer.colour)))
            .collect(),
        #[cfg(not(target_arch = "wasm32"))]
        take: takes.rolling(),
    };
    let mut out = Out {
        edits: &mut edits,
        import: &mut import,
        export: &mut export,
        #[cfg(not(target_arch = "wasm32"))]
        record: takes::Recorder { controls: &mut recording, takes: &takes },
    };
    let mut drawn = DrawnLayout::default();
    shortcuts(&ctx, &scene, &mut view, &mut transport, &mut dialog, &mut out);
    let mut dropped_files = false;
    for drop in dropped.read() {
        match drop {
            FileDragAndDrop::HoveredFile { .. } => {
                view.file_hover.get_or_insert(ctx.pointer_latest_pos());
            }
            FileDragAndDrop::HoveredFileCanceled { .. } => view.file_hover = None,
            FileDragAndDrop::DroppedFile { path_buf, .. } => {
                dropped_files = true;
                let pointer = drop_point(view.file_hover, ctx.pointer_latest_pos());
                let source = UploadSource::File(path_buf.clone());
                timeline::drop_file(&view, &scene, &transport, source, pointer, &mut out);
            }
        }
    }
    if dropped_files {
        view.file_hover = None;
    }
    for FileArrived { source, pointer } in arrived.read() {
        timeline::drop_file(&view, &scene, &transport, source.clone(), *pointer, &mut out);
    }

    let pending = replica.as_ref().map_or(0, |replica| replica.pending().len());
    let bar = transport_bar::Bar {
        status: status.as_deref(),
        history: &history,
        pending,
        importing: imports.describe(),
        #[cfg(not(target_arch = "wasm32"))]
        recording: takes.describe(),
        #[cfg(target_arch = "wasm32")]
        recording: None,
        #[cfg(feature = "lan")]
        jam: jam.status(),
    };
    let window = root.max_rect();
    drawn.window = [window.width(), window.height()];
    let (mut controls, tempo) = egui::Panel::top("transport")
        .exact_size(52.0)
        .show(&mut root, |ui| transport_bar::show(ui, &bar, &scene, &mut view, &mut transport, &mut dialog, &mut out))
        .inner;
    drawn.tempo = tempo;
    egui::Panel::bottom("status").exact_size(26.0).show(&mut root, |ui| {
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            controls.extend(transport_bar::status(ui, &bar, &scene, &view));
            // The message, or the hints, in what is left, cut short rather than overlapping.
            ui.with_layout(egui::Layout::left_to_right(egui::Align::Center), |ui| {
                let (text, colour) = match alerts.current() {
                    Some((alert, warn)) => (alert, if warn { theme::WARN } else { theme::ACCENT }),
                    None => (
                        "Space play/stop · R record · L loop · K metronome · Ctrl+Z undo · Ctrl+Shift+Z redo · S split · \
                         Ctrl+D duplicate · Ctrl+I import · X mixer · drop audio files on the timeline",
                        theme::DIM,
                    ),
                };
                let message = ui.add(egui::Label::new(egui::RichText::new(text).color(colour)).truncate());
                controls.push(message.on_hover_text(text).rect);
            });
        });
    });
    if view.mixer {
        egui::Panel::bottom("mixer").exact_size(250.0).resizable(false).show(&mut root, |ui| {
            mixer::show(ui, &scene, &mut view, &mut drawn, &mut out);
        });
    }
    if view.piano_roll.clip.is_some() {
        egui::Panel::bottom("piano roll").exact_size(260.0).resizable(false).show(&mut root, |ui| {
            notes::piano_roll(ui, &scene, &mut view, &mut drawn, &mut out);
        });
    }
    rack::editor(&ctx, &scene, &mut view, &mut drawn, &mut out);
    egui::Panel::left("headers").exact_size(300.0).resizable(false).show(&mut root, |ui| {
        headers::show(ui, &scene, &mut view, &mut drawn, &mut out);
    });
    let pointer = egui::CentralPanel::default()
        .show(&mut root, |ui| timeline::show(ui, &scene, &mut view, &mut transport, &mut drawn, &mut out))
        .inner;
    let playhead = timeline::snapped_playhead(&view, &scene, &transport);
    dialogs::show(&ctx, &mut dialog, &scene, playhead, &mut out);
    drawn.controls = controls.iter().map(|rect| [rect.left(), rect.top(), rect.right(), rect.bottom()]).collect();
    layout.set_if_neq(drawn);
    let mut selection: Vec<RecordId> = view.selected.iter().copied().collect();
    selection.sort_unstable();
    let playhead = transport.position;
    local.set_if_neq(LocalPresence(Presence { playhead, playing: transport.playing, selection, pointer }));
    Ok(())
}

/// Takes a key press, matched by the key's meaning or, failing that, by where it sits: with
/// Ctrl held, X11 turns some letters into control keys (Ctrl+I arrives as Tab).
fn take_key(input: &mut egui::InputState, modifiers: egui::Modifiers, key: egui::Key) -> bool {
    if input.consume_key(modifiers, key) {
        return true;
    }
    let before = input.events.len();
    input.events.retain(|event| {
        !matches!(event, egui::Event::Key { physical_key: Some(physical), modifiers: held, pressed: true, .. }
            if *physical == key && held.matches_logically(modifiers))
    });
    input.events.len() != before
}

/// Keys that work anywhere but in a text field.
fn shortcuts(
    ctx: &egui::Context,
    scene: &Scene,
    view: &mut View,
    transport: &mut Transport,
    dialog: &mut Dialog,
    out: &mut Out,
) {
    if ctx.text_edit_focused() {
        return;
    }
    use egui::{Key, Modifiers};
    ctx.input_mut(|input| {
        let mut pressed = |modifiers, key| take_key(input, modifiers, key);
        if pressed(Modifiers::NONE, Key::Space) {
            transport.playing = !transport.playing;
        }
        if pressed(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z) || pressed(Modifiers::COMMAND, Key::Y) {
            out.edits.write(EditMsg::Redo);
        }
        if pressed(Modifiers::COMMAND, Key::Z) {
            out.edits.write(EditMsg::Undo);
        }
        if pressed(Modifiers::NONE, Key::Home) || pressed(Modifiers::NONE, Key::Enter) {
            transport.position = Ticks(0);
            view.scroll = Ticks(0);
        }
        if pressed(Modifiers::NONE, Key::L) {
            transport_bar::toggle_loop(scene, view, transport, out);
        }
        #[cfg(not(target_arch = "wasm32"))]
        if pressed(Modifiers::NONE, Key::R) {
            out.record.toggle();
        }
        if pressed(Modifiers::NONE, Key::K) {
            transport.metronome = !transport.metronome;
        }
        if pressed(Modifiers::NONE, Key::X) {
            view.mixer = !view.mixer;
        }
        if pressed(Modifiers::COMMAND, Key::I) {
            *dialog = Dialog::import();
        }
        if pressed(Modifiers::COMMAND, Key::E) {
            *dialog = Dialog::export(&scene.project.name);
        }
        if pressed(Modifiers::COMMAND, Key::A) {
            view.selected = scene.clips.values().flatten().map(|(id, _)| *id).collect();
        }
        if pressed(Modifiers::NONE, Key::Escape) {
            view.selected.clear();
            *dialog = Dialog::None;
            if view.drag.take().is_some() {
                out.edits.write(EditMsg::CancelGesture);
            }
        }
        if pressed(Modifiers::COMMAND, Key::Equals) || pressed(Modifiers::COMMAND, Key::Plus) {
            view.points_per_quarter = (view.points_per_quarter * 1.25).min(400.0);
        }
        if pressed(Modifiers::COMMAND, Key::Minus) {
            view.points_per_quarter = (view.points_per_quarter / 1.25).max(2.0);
        }
    });
}

#[cfg(test)]
mod tests {
    use bevy_egui::egui;

    /// One frame of a name field showing `current`, fed `events`; what it gave back.
    fn frame(ctx: &egui::Context, events: Vec<egui::Event>, current: &str) -> Option<String> {
        let screen = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(400.0, 100.0));
        let input = egui::RawInput { events, screen_rect: Some(screen), ..Default::default() };
        let mut given = None;
        let _ = ctx.run_ui(input, |ui| given = super::name_field(ui, "track", current, 200.0));
        given
    }

    fn key(key: egui::Key) -> egui::Event {
        egui::Event::Key { key, physical_key: None, pressed: true, repeat: false, modifiers: egui::Modifiers::NONE }
    }

    #[test]
    fn a_drop_lands_where_the_pointer_is_only_if_it_was_seen_moving() {
        use egui::pos2;
        // Files arrived with the pointer at (5, 5) and it was never seen since: position unknown.
        assert_eq!(super::drop_point(Some(Some(pos2(5.0, 5.0))), Some(pos2(5.0, 5.0))), None);
        // The platform reported motion during the drag: the drop is where it says.
        assert_eq!(super::drop_point(Some(Some(pos2(5.0, 5.0))), Some(pos2(300.0, 80.0))), Some(pos2(300.0, 80.0)));
        assert_eq!(super::drop_point(Some(None), Some(pos2(300.0, 80.0))), Some(pos2(300.0, 80.0)));
        assert_eq!(super::drop_point(None, None), None);
    }

    #[test]
    fn a_status_message_gives_way_to_the_hints_after_a_while() {
        use std::time::Duration;

        use bevy::platform::time::Instant;
        let mut alerts = super::Alerts::default();
        alerts.push(("Imported riff.wav".into(), false));
        assert_eq!(alerts.current(), Some(("Imported riff.wav", false)));
        let long_ago = |seconds| Instant::now().checked_sub(Duration::from_secs(seconds)).unwrap();
        alerts.0.last_mut().unwrap().2 = long_ago(7);
        assert_eq!(alerts.current(), None, "a notice lasts 6 s");
        alerts.push(("Import failed: not audio".into(), true));
        alerts.0.last_mut().unwrap().2 = long_ago(7);
        assert_eq!(alerts.current(), Some(("Import failed: not audio", true)), "a warning lasts 12 s");
        alerts.0.last_mut().unwrap().2 = long_ago(13);
        assert_eq!(alerts.current(), None);
    }

    #[test]
    fn a_fast_drag_starts_where_the_button_went_down() {
        let ctx = egui::Context::default();
        let screen = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(400.0, 100.0));
        let (down, far) = (egui::pos2(10.0, 50.0), egui::pos2(300.0, 50.0));
        let button = |pos, pressed| egui::Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        };
        let frames =
            [vec![egui::Event::PointerMoved(down)], vec![button(down, true)], vec![egui::Event::PointerMoved(far)]];
        let mut seen = None;
        for events in frames {
            let input = egui::RawInput { events, screen_rect: Some(screen), ..Default::default() };
            let _ = ctx.run_ui(input, |ui| {
                let response = ui.interact(screen, egui::Id::new("clip"), egui::Sense::click_and_drag());
                if response.drag_started() {
                    seen = Some((super::drag_origin(&response), response.interact_pointer_pos()));
                }
            });
        }
        // Noticed only once the pointer had travelled: the origin is still where it went down.
        assert_eq!(seen, Some((Some(down), Some(far))));
    }

    #[test]
    fn a_name_field_keeps_what_is_typed_until_enter_and_escape_drops_it() {
        let ctx = egui::Context::default();
        ctx.memory_mut(|memory| memory.request_focus(egui::Id::new(("name field", "track"))));
        assert_eq!(frame(&ctx, vec![], "Drums"), None);
        // One character a frame, while the record still says "Drums" every frame.
        for typed in ["K", "i", "t"] {
            assert_eq!(frame(&ctx, vec![egui::Event::Text(typed.into())], "Drums"), None);
        }
        let renamed = frame(&ctx, vec![key(egui::Key::Enter)], "Drums").expect("Enter saves the name");
        assert_eq!(renamed.len(), "Drums".len() + 3, "{renamed}");
        assert!(renamed.contains("Kit"), "{renamed}");
        // Typed and then Escape: nothing is saved.
        ctx.memory_mut(|memory| memory.request_focus(egui::Id::new(("name field", "track"))));
        assert_eq!(frame(&ctx, vec![], "Drums"), None);
        assert_eq!(frame(&ctx, vec![egui::Event::Text("x".into())], "Drums"), None);
        assert_eq!(frame(&ctx, vec![key(egui::Key::Escape)], "Drums"), None);
    }
}
