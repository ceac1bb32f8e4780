//! `ensemble-jam`: a jam member without a window, for rehearsal-room boxes and the jam lab.
//!
//! `ensemble-jam host` works solo on its own authority and hosts a jam; `ensemble-jam join`
//! finds one on the LAN and joins it. Both print what happens, one line per event:
//!
//! - `code ABCD-EFGH` (host), `joined HOST` (peer), `synced OFFSET_MS SAMPLES` (peer, once);
//! - `start FROM_TICKS MONOTONIC_NS` for every start this machine schedules: the position it
//!   plays from and when its first frame plays, on the machine's monotonic clock (which every
//!   process on one machine shares, so the jam lab can compare machines).
//!
//! `--starts N` makes the host start the jam N times, each from a new bar, once `--peers`
//! peers have joined and had time to sync; it then stops and exits.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bevy::app::ScheduleRunnerPlugin;
use bevy::prelude::*;
use clap::{Parser, Subcommand};
use ensemble_client::ClientCorePlugin;
use ensemble_client::clock::Clock;
use ensemble_client::jam::beacon::BEACON_PORT;
use ensemble_client::jam::{Jam, JamPlugin, JamPorts, JamStatus, StartJam, find_jam, joining};
use ensemble_client::playback::{LastStart, PlaybackPlugin, SoundCard, Transport};
use ensemble_client::solo::DemoSize;
use ensemble_client::solo::LanAccess;
use ensemble_client::solo::SoloSettings;
use ensemble_client::sync::SyncPlugin;
use ensemble_protocol::Ticks;
use ensemble_protocol::jam::JoinCode;

/// A jam member without a window.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    role: Role,
    /// The name shown to the others.
    #[arg(long, global = true, env = "USER", default_value = "jammer")]
    name: String,
    /// Where this member keeps its projects and local store.
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
    /// Run this member's clock this many milliseconds ahead of the machine's (to test sync).
    #[arg(long, global = true, default_value_t = 0.0, allow_hyphen_values = true)]
    skew_ms: f64,
    /// Play on the sound card, when there is one (otherwise the engine runs silently).
    #[arg(long, global = true)]
    audible: bool,
    /// Where beacons go.
    #[arg(long, global = true, default_value_t = BEACON_PORT)]
    beacon_port: u16,
}

#[derive(Subcommand)]
enum Role {
    /// Host a jam on this machine.
    Host {
        /// The join code (default: a new one, printed).
        #[arg(long)]
        code: Option<String>,
        /// Start the jam this many times, then stop and exit.
        #[arg(long)]
        starts: Option<u32>,
        /// With --starts: wait for this many peers first.
        #[arg(long, default_value_t = 1)]
        peers: usize,
        /// With --starts: time between starts, in milliseconds.
        #[arg(long, default_value_t = 500)]
        every_ms: u64,
    },
    /// Join a jam on the LAN.
    Join {
        /// The jam's join code.
        #[arg(long)]
        code: String,
        /// The host's address (default: the first jam heard).
        #[arg(long)]
        host: Option<IpAddr>,
        /// Exit after this many starts.
        #[arg(long)]
        starts: Option<u32>,
    },
}

/// The host's planned starts.
#[derive(Resource)]
struct Plan {
    starts: u32,
    peers: usize,
    every: Duration,
    done: u32,
    next: Option<Duration>,
}

/// Starts heard so far, and when to stop listening.
#[derive(Resource, Default)]
struct Log {
    starts: u32,
    exit_after: Option<u32>,
    synced: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("ensemble-jam-{}", args.name)));
    let clock = Clock::skewed((args.skew_ms * 1e6) as i64);
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_millis(2))),
        bevy::log::LogPlugin { level: bevy::log::Level::WARN, ..default() },
    ));
    app.insert_resource(clock)
        .insert_resource(SoundCard(args.audible))
        .insert_resource(JamPorts { beacon: args.beacon_port, ..default() })
        .init_resource::<Log>();
    match &args.role {
        Role::Host { code, starts, peers, every_ms } => {
            let code = code.as_deref().map(JoinCode::parse).transpose().context("--code")?;
            let lan = LanAccess::new();
            let settings = SoloSettings {
                dir: dir.join("solo"),
                replicas: dir.join("replicas"),
                display_name: args.name.clone(),
                project: None,
                demo: Some(DemoSize::Song),
                lan: Some(lan.clone()),
            };
            app.insert_resource(lan).insert_resource(StartJam::Host(code));
            app.add_plugins((ClientCorePlugin, SyncPlugin::solo(settings), PlaybackPlugin, JamPlugin));
            if let Some(starts) = *starts {
                let every = Duration::from_millis(*every_ms);
                app.insert_resource(Plan { starts, peers: *peers, every, done: 0, next: None });
                app.add_systems(Update, drive_starts);
            }
        }
        Role::Join { code, host, starts } => {
            let code = JoinCode::parse(code).context("--code")?;
            let found = find_jam(args.beacon_port, *host, Duration::from_secs(10))?;
            let Some(found) = found else { bail!("no jam heard on the LAN within 10 s") };
            println!("joined {} ({} at {})", found.beacon.host, found.beacon.project_name, found.host);
            let (sync, target) = joining(&found, &code, &args.name, dir.join("replicas"));
            app.insert_resource(StartJam::Join(target));
            app.world_mut().resource_mut::<Log>().exit_after = *starts;
            app.add_plugins((ClientCorePlugin, sync, PlaybackPlugin, JamPlugin));
        }
    }
    app.add_systems(Update, report);
    app.run();
    Ok(())
}

/// Prints the code once hosting, the sync once settled, and every start.
fn report(
    jam: Res<Jam>,
    clock: Res<Clock>,
    last_start: Res<LastStart>,
    mut log: ResMut<Log>,
    mut printed_code: Local<bool>,
    mut exit: MessageWriter<AppExit>,
) {
    match jam.status() {
        JamStatus::Hosting { code, port, .. } if !*printed_code => {
            println!("code {code} port {port}");
            *printed_code = true;
        }
        JamStatus::Joined { offset_ms: Some(offset), samples, .. } if !log.synced && *samples >= 32 => {
            println!("synced {offset:.3} {samples}");
            log.synced = true;
        }
        JamStatus::Failed(reason) => {
            eprintln!("jam failed: {reason}");
            exit.write(AppExit::error());
        }
        _ => {}
    }
    if last_start.is_changed()
        && let Some(start) = last_start.0
    {
        println!("start {} {}", start.asked.from.0, clock.to_monotonic(start.time));
        log.starts += 1;
        if log.exit_after.is_some_and(|after| log.starts >= after) {
            exit.write(AppExit::Success);
        }
    }
}

/// The host's rehearsal: once the peers are in and synced, a start from a new bar every
/// `every`, then a stop.
fn drive_starts(
    time: Res<Time<Real>>,
    jam: Res<Jam>,
    mut plan: ResMut<Plan>,
    mut transport: ResMut<Transport>,
    mut exit: MessageWriter<AppExit>,
) {
    let JamStatus::Hosting { peers, .. } = jam.status() else { return };
    let now = time.elapsed();
    let next = match plan.next {
        Some(next) => next,
        // Everyone in: give the last one time to settle its clock.
        None if *peers >= plan.peers => *plan.next.insert(now + Duration::from_secs(2)),
        None => return,
    };
    if now < next {
        return;
    }
    if plan.done == plan.starts {
        transport.playing = false;
        if now >= next + Duration::from_secs(1) {
            exit.write(AppExit::Success);
        }
        return;
    }
    plan.done += 1;
    transport.playing = true;
    transport.position = Ticks(i64::from(plan.done) * 3840);
    plan.next = Some(next + plan.every);
}
