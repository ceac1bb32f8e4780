//! `ensemble-follow`: a client without a window that follows a project on a shared authority.
//!
//! It runs the client core as the DAW does (replica, local store, sync over QUIC) and prints one
//! JSON line whenever the project's tempo changes, with the wall-clock time its replica took the
//! change in: `{"tempo":123.5,"at_ms":1764694000123.4}`. The browser collaboration check
//! (`cargo xtask web-collab`) runs it as the native client beside two pages, to measure how
//! soon an edit made in a page reaches a native client. It steps when the sync worker wakes it.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> anyhow::Result<()> {
    follow::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod follow {
    use std::io::Write;
    use std::net::ToSocketAddrs;
    use std::path::PathBuf;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use anyhow::Context;
    use bevy::app::PluginsState;
    use bevy::prelude::*;
    use clap::Parser;
    use ensemble_client::ClientCorePlugin;
    use ensemble_client::model::ProjectData;
    use ensemble_client::sync::{AppWaker, SyncPlugin};
    use ensemble_net::tls::{Fingerprint, Trust};
    use ensemble_net::transport::{Credentials, QuicTransport};
    use ensemble_protocol::ProjectId;

    /// Follows a project and prints each change of its tempo.
    #[derive(Parser)]
    #[command(version)]
    struct Args {
        /// The authority, HOST:PORT.
        #[arg(long)]
        connect: String,
        /// The project to follow.
        #[arg(long)]
        project: ProjectId,
        /// The authority's certificate hashes, "current,next".
        #[arg(long)]
        fingerprint: String,
        /// The display name to join the open authority under.
        #[arg(long, default_value = "follower")]
        name: String,
        /// Where the local store lives.
        #[arg(long)]
        dir: PathBuf,
    }

    pub(crate) fn main() -> anyhow::Result<()> {
        let args = Args::parse();
        let addr =
            args.connect.to_socket_addrs()?.next().with_context(|| format!("{} does not resolve", args.connect))?;
        let host = args.connect.rsplit_once(':').map_or(args.connect.as_str(), |(host, _)| host);
        let fingerprints = args.fingerprint.split(',').map(|hex| Fingerprint::parse(hex.trim()));
        let fingerprints = fingerprints.collect::<Result<Vec<_>, _>>()?;
        let credentials = Credentials::Open { display_name: args.name.clone(), join_code: None };
        let transport = QuicTransport::new(addr, host, Trust::Pinned(fingerprints), credentials);
        App::new()
            .add_plugins(MinimalPlugins)
            .add_plugins((ClientCorePlugin, SyncPlugin::remote(transport, args.project, args.dir)))
            .add_systems(Update, print_tempo)
            .set_runner(run_when_woken)
            .run();
        Ok(())
    }

    /// Steps the app as soon as the sync worker has news, and otherwise every 100 ms, as the
    /// DAW's window does. (It stepped every millisecond, a fifth of a core in a debug build,
    /// taken from the browsers it is measured beside.)
    fn run_when_woken(mut app: App) -> AppExit {
        while app.plugins_state() == PluginsState::Adding {
            bevy::tasks::tick_global_task_pools_on_main_thread();
        }
        app.finish();
        app.cleanup();
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        app.world().resource::<AppWaker>().set(move || {
            let _ = wake.try_send(());
        });
        loop {
            let _ = woken.recv_timeout(Duration::from_millis(100));
            app.update();
            if let Some(exit) = app.should_exit() {
                return exit;
            }
        }
    }

    /// Prints the tempo whenever the model's project changes it.
    fn print_tempo(project: Query<&ProjectData, Changed<ProjectData>>, mut last: Local<Option<f64>>) {
        let Ok(project) = project.single() else { return };
        let tempo = project.tempo.0;
        if *last != Some(tempo) {
            *last = Some(tempo);
            let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |since| since.as_secs_f64() * 1e3);
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{{\"tempo\":{tempo},\"at_ms\":{at_ms:.1}}}");
            let _ = out.flush();
        }
    }
}
