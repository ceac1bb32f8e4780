//! `ensemble`: the DAW. With no arguments it works solo (the authority runs inside it);
//! `--connect HOST:PORT` joins a shared authority; `--host-jam` hosts a LAN jam on the solo
//! project and `--join [HOST] --code CODE` joins one.

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured, save_to_disk};
use clap::Parser;
use ensemble_client::ClientCorePlugin;
use ensemble_client::history::EditMsg;
use ensemble_client::jam::beacon::BEACON_PORT;
use ensemble_client::jam::{StartJam, find_jam, joining};
use ensemble_client::model::{EffectData, NoteClipData, ProjectData, RecordIndex, RecordKey, TrackData};
use ensemble_client::playback::Transport;
use ensemble_client::record::{RecordInput, RecordMsg};
use ensemble_client::solo::DemoSize;
use ensemble_client::solo::LanAccess;
use ensemble_client::solo::SoloSettings;
use ensemble_client::store::default_dir;
use ensemble_client::sync::SyncPlugin;
use ensemble_client::window::{DawWindowPlugin, DrawnLayout, View};
use ensemble_net::tls::{Fingerprint, Trust};
use ensemble_net::transport::{Credentials, QuicTransport};
use ensemble_protocol::jam::JoinCode;
use ensemble_protocol::{Bus, Effect, Field, Frames, Op, Parameter, ProjectId, RecordId, TrackField, TrackId};

/// Ensemble, a collaborative DAW.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Join the authority at HOST:PORT instead of working solo.
    #[arg(long, requires_all = ["project", "fingerprint"])]
    connect: Option<String>,
    /// The project to open on that authority.
    #[arg(long)]
    project: Option<ProjectId>,
    /// The authority's certificate hashes, as `ensemble-authority serve` prints them (the current
    /// one, or "current,next", which keeps working across a rotation).
    #[arg(long)]
    fingerprint: Option<String>,
    /// Log in as this user (otherwise join an open authority under your login name).
    #[arg(long, env = "ENSEMBLE_USER")]
    user: Option<String>,
    /// The password for --user.
    #[arg(long, env = "ENSEMBLE_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Where solo mode keeps its projects (default: the user's data directory).
    #[arg(long)]
    solo_dir: Option<PathBuf>,
    /// Save a screenshot here after --after-frames frames (and once the clips' waveforms are
    /// drawn, when there are clips), then quit.
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// Frames to render before the screenshot.
    #[arg(long, default_value_t = 60)]
    after_frames: u32,
    /// Measure N frames, print p50/p99 of the main world's time and of the CPU time the app's
    /// own threads used per frame (not a software rasteriser's), and quit. Measuring starts
    /// once every clip on screen has its waveform.
    #[arg(long)]
    bench_frames: Option<usize>,
    /// Start playing as soon as the project has loaded.
    #[arg(long)]
    play: bool,
    /// Open with the mixer panel showing.
    #[arg(long)]
    mixer: bool,
    /// Open with every track's gain automation lane showing.
    #[arg(long)]
    automation: bool,
    /// Open the editor of the first effect that arrives.
    #[arg(long)]
    effect: bool,
    /// Open the first note clip that arrives in the piano roll.
    #[arg(long)]
    piano_roll: bool,
    /// Arm the first track and record onto it as soon as the project has loaded.
    #[arg(long)]
    record: bool,
    /// Record from this audio file, played in at the wall clock's pace, instead of the sound
    /// card's input (a machine without one).
    #[arg(long)]
    record_from: Option<std::path::PathBuf>,
    /// Host a LAN jam on the project as soon as it opens (solo mode); the code is shown in the
    /// window's Jam panel.
    #[arg(long, conflicts_with_all = ["connect", "join"])]
    host_jam: bool,
    /// Join a LAN jam: the one hosted at this address, or the first one heard.
    #[arg(long, num_args = 0..=1, default_missing_value = "", requires = "code", conflicts_with = "connect")]
    join: Option<String>,
    /// The jam's join code, for --join.
    #[arg(long)]
    code: Option<String>,
    /// The window's size in logical pixels, WIDTHxHEIGHT.
    #[arg(long, default_value = "1600x900", value_parser = parse_size)]
    size: (u32, u32),
    /// Solo mode's first project is a stress test of 200 tracks and 5,000 clips instead of the
    /// demo song (use a fresh --solo-dir).
    #[arg(long)]
    stress: bool,
}

/// `WIDTHxHEIGHT`, each at least 320.
fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let parse = |part: Option<&str>| part.and_then(|part| part.trim().parse::<u32>().ok()).filter(|n| *n >= 320);
    let mut parts = text.split(['x', 'X', '×']);
    match (parse(parts.next()), parse(parts.next()), parts.next()) {
        (Some(width), Some(height), None) => Ok((width, height)),
        _ => Err(format!("{text:?} is not a window size like 1024x640 (each side at least 320)")),
    }
}

/// How this window reaches its project: solo (on its own authority, which can host a jam),
/// a jam found on the LAN, or a shared authority. Also the jam to start, if any.
fn sync_plugin(args: &Args) -> anyhow::Result<(SyncPlugin, Option<LanAccess>, Option<StartJam>)> {
    if let Some(host) = &args.join {
        let code = JoinCode::parse(args.code.as_deref().unwrap_or_default()).context("--code")?;
        let host = if host.is_empty() { None } else { Some(host.parse().context("--join takes an IP address")?) };
        eprintln!("looking for the jam on the LAN…");
        let found =
            find_jam(BEACON_PORT, host, Duration::from_secs(10))?.context("no jam heard on the LAN within 10 s")?;
        let name = SoloSettings::in_data_dir().display_name;
        let (sync, target) = joining(&found, &code, &name, default_dir());
        return Ok((sync, None, Some(StartJam::Join(target))));
    }
    let Some(address) = &args.connect else {
        let mut settings = SoloSettings::in_data_dir();
        if let Some(dir) = &args.solo_dir {
            settings.dir = dir.join("solo");
            settings.replicas = dir.join("replicas");
        }
        if args.stress {
            settings.demo = Some(DemoSize::Stress { tracks: 200, clips: 5_000 });
        }
        let lan = LanAccess::new();
        settings.lan = Some(lan.clone());
        let start = args.host_jam.then_some(StartJam::Host(None));
        return Ok((SyncPlugin::solo(settings), Some(lan), start));
    };
    let addr = address.to_socket_addrs()?.next().with_context(|| format!("{address} does not resolve"))?;
    let host = address.rsplit_once(':').map_or(address.as_str(), |(host, _)| host);
    let fingerprints =
        args.fingerprint.as_deref().unwrap_or_default().split(',').map(|hex| Fingerprint::parse(hex.trim()));
    let fingerprints = fingerprints.collect::<Result<Vec<_>, _>>()?;
    let credentials = match (&args.user, &args.password) {
        (Some(user), Some(password)) => Credentials::Password { user: user.clone(), password: password.clone() },
        (Some(_), None) => bail!("--user needs --password (or ENSEMBLE_PASSWORD)"),
        _ => Credentials::Open { display_name: SoloSettings::in_data_dir().display_name, join_code: None },
    };
    let transport = QuicTransport::new(addr, host, Trust::Pinned(fingerprints), credentials);
    let project = args.project.context("--connect needs --project")?;
    Ok((SyncPlugin::remote(transport, project, default_dir()), None, None))
}

/// Frames rendered so far, and where the screenshot goes.
#[derive(Resource)]
struct ScreenshotAfter {
    path: PathBuf,
    /// Frames still to render before the screenshot.
    frames: u32,
    /// Frames asked for.
    after: u32,
    /// Frames rendered so far.
    waited: u32,
    taken: bool,
}

fn take_screenshot(mut commands: Commands, mut shot: ResMut<ScreenshotAfter>, layout: Res<DrawnLayout>) {
    if shot.taken {
        return;
    }
    shot.frames = shot.frames.saturating_sub(1);
    shot.waited += 1;
    // Waveforms arrive after the peaks job and a download: wait for them, within reason.
    if shot.frames == 0 && (layout.complete() || shot.waited >= 10 * shot.after) {
        shot.taken = true;
        let report = shot.path.with_extension("layout.json");
        let report_layout =
            move |_: On<ScreenshotCaptured>, layout: Res<DrawnLayout>, mut exit: MessageWriter<AppExit>| {
                // The regions drawn in the captured frame, for checking the screenshot.
                match serde_json::to_vec_pretty(&*layout) {
                    Ok(json) => {
                        if let Err(error) = std::fs::write(&report, json) {
                            error!("cannot write {}: {error}", report.display());
                        }
                    }
                    Err(error) => error!("cannot describe the layout: {error}"),
                }
                exit.write(AppExit::Success);
            };
        commands.spawn(Screenshot::primary_window()).observe(save_to_disk(shot.path.clone())).observe(report_layout);
    }
}

/// Frame times: the main world's, from the start of `First` to the end of `Last` (wall clock),
/// and the CPU time all of the app's own threads used from one frame's start to the next (the
/// render world runs beside the main world, so this counts both, and the audio and sync).
#[derive(Resource)]
struct FrameBench {
    frames: usize,
    started: Option<std::time::Instant>,
    /// The app's CPU time at the start of the last measured frame.
    cpu_then: Option<u64>,
    times: Vec<std::time::Duration>,
    cpu: Vec<std::time::Duration>,
    settled: u32,
}

/// Nanoseconds the app's own threads have run, from the kernel's per-thread `schedstat`: every
/// thread but Mesa's software rasteriser (`llvmpipe-*`), which stands in for a GPU on a machine
/// without one. `None` where `/proc` does not say (not Linux).
fn own_cpu_ns() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if name.starts_with("llvmpipe") {
            continue;
        }
        // A thread may end between listing and reading: it no longer counts.
        let stat = std::fs::read_to_string(dir.join("schedstat")).unwrap_or_default();
        total += stat.split_whitespace().next().and_then(|ns| ns.parse::<u64>().ok()).unwrap_or(0);
    }
    Some(total)
}

fn frame_begins(mut bench: ResMut<FrameBench>) {
    let now = own_cpu_ns();
    if bench.settled >= 30
        && let (Some(then), Some(now)) = (bench.cpu_then, now)
    {
        bench.cpu.push(std::time::Duration::from_nanos(now.saturating_sub(then)));
    }
    bench.cpu_then = now;
    bench.started = Some(std::time::Instant::now());
}

fn frame_ends(mut bench: ResMut<FrameBench>, layout: Res<DrawnLayout>, mut exit: MessageWriter<AppExit>) {
    let Some(started) = bench.started.take() else { return };
    // Measure the project as it will stay: every clip drawn with its waveform, a few frames on.
    if bench.settled < 30 {
        bench.settled += u32::from(layout.complete());
        return;
    }
    bench.times.push(started.elapsed());
    if bench.times.len() == bench.frames {
        let percentiles = |times: &[std::time::Duration]| {
            let mut times = times.to_vec();
            times.sort_unstable();
            let at =
                |share: f64| times.get(((times.len().max(1) - 1) as f64 * share) as usize).copied().unwrap_or_default();
            format!("p50 {:.2?}, p99 {:.2?}, max {:.2?}", at(0.5), at(0.99), at(1.0))
        };
        println!(
            "frames: {}, clips drawn: {}, main world {}; CPU of the app's threads per frame {}",
            bench.times.len(),
            layout.clips.len(),
            percentiles(&bench.times),
            percentiles(&bench.cpu),
        );
        exit.write(AppExit::Success);
    }
}

/// Shows the gain automation lane of every track, as tracks arrive.
fn show_all_automation(mut view: ResMut<View>, tracks: Query<&RecordKey, Added<TrackData>>) {
    for key in &tracks {
        view.automation.insert(TrackId(key.0.0), Parameter::Gain);
    }
}

/// Opens the editor of the first effect of the first track that has one, once.
fn open_first_effect(
    mut view: ResMut<View>,
    project: Query<&ProjectData>,
    effects: Query<(&RecordKey, &EffectData)>,
    mut opened: Local<bool>,
) {
    let Ok(project) = project.single() else { return };
    let first = project.track_order.iter().find_map(|track| {
        let mut chain: Vec<(RecordId, &Effect)> =
            effects.iter().filter(|(_, e)| e.bus == Bus::Track(*track)).map(|(key, e)| (key.0, &e.0)).collect();
        ensemble_client::edits::in_playing_order(&mut chain);
        chain.first().map(|(id, _)| *id)
    });
    if let Some(first) = first
        && !*opened
    {
        view.effect_editor = Some(first);
        *opened = true;
    }
}

/// Opens the first note clip in the piano roll, once.
fn open_first_note_clip(mut view: ResMut<View>, clips: Query<&RecordKey, With<NoteClipData>>, mut opened: Local<bool>) {
    if let Some(first) = clips.iter().map(|key| key.0).min()
        && !*opened
    {
        view.open_piano_roll(first);
        *opened = true;
    }
}

/// Arms the first track (once) and starts a take as soon as it is armed.
fn record_once_loaded(
    project: Query<&ProjectData>,
    tracks: Query<&TrackData>,
    index: Res<RecordIndex>,
    mut edits: MessageWriter<EditMsg>,
    mut record: MessageWriter<RecordMsg>,
    mut step: Local<u8>,
) {
    let Some(first) = project.single().ok().and_then(|project| project.track_order.first().copied()) else { return };
    let Some(track) = index.entity(first.into()).and_then(|entity| tracks.get(entity).ok()) else { return };
    match (*step, track.record_arm) {
        (0, false) => {
            let arm = Field::Track(TrackField::RecordArm(true));
            edits.write(EditMsg::Edit(vec![Op::Set { target: first.into(), value: arm, expect: None }]));
            *step = 1;
        }
        (0 | 1, true) => {
            record.write(RecordMsg::Start);
            *step = 2;
        }
        _ => {}
    }
}

/// Starts the transport the first time the project has tracks.
fn play_once_loaded(mut transport: ResMut<Transport>, tracks: Query<(), With<TrackData>>, mut started: Local<bool>) {
    if !*started && !tracks.is_empty() {
        transport.playing = true;
        *started = true;
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (sync, lan, start_jam) = sync_plugin(&args)?;
    let mut app = App::new();
    if let Some(lan) = lan {
        app.insert_resource(lan);
    }
    if let Some(start) = start_jam {
        app.insert_resource(start);
    }
    app.add_plugins(DefaultPlugins.set(WindowPlugin {
        primary_window: Some(Window { title: "Ensemble".into(), resolution: args.size.into(), ..default() }),
        ..default()
    }))
    .insert_resource(ClearColor(Color::srgb_u8(24, 26, 30)))
    .add_plugins((ClientCorePlugin, sync, DawWindowPlugin));
    app.world_mut().resource_mut::<View>().mixer = args.mixer;
    app.world_mut().resource_mut::<View>().jam = args.host_jam || args.join.is_some();
    if args.automation {
        app.add_systems(Update, show_all_automation);
    }
    if args.play {
        app.add_systems(Update, play_once_loaded);
    }
    if args.effect {
        app.add_systems(Update, open_first_effect);
    }
    if args.piano_roll {
        app.add_systems(Update, open_first_note_clip);
    }
    if args.record {
        app.add_systems(Update, record_once_loaded);
    }
    if let Some(path) = args.record_from {
        app.insert_resource(RecordInput::File { path, latency: Frames(0) });
    }
    if let Some(path) = args.screenshot {
        let after = args.after_frames.max(1);
        app.insert_resource(ScreenshotAfter { path, frames: after, after, waited: 0, taken: false })
            .add_systems(Update, take_screenshot);
    }
    if let Some(frames) = args.bench_frames {
        let bench = FrameBench {
            frames: frames.max(1),
            started: None,
            cpu_then: None,
            times: Vec::new(),
            cpu: Vec::new(),
            settled: 0,
        };
        app.insert_resource(bench).add_systems(First, frame_begins).add_systems(Last, frame_ends);
    }
    app.run();
    Ok(())
}
