//! Ensemble's client: the Bevy app that holds a project as ECS entities.
//!
//! The client core is built and tested headless; the DAW window only draws and gestures. Its
//! plugins, one file each, work with `MinimalPlugins`:
//!
//! - [`sync::SyncPlugin`]: the connection to an authority on a worker thread of its own, and
//!   the local store that keeps the project and offline edits on disk. Solo mode
//!   ([`sync::SyncPlugin::solo`]) runs the authority in-process.
//! - [`replica::ReplicaPlugin`]: the [`replica::Replica`], confirmed state with pending edits
//!   on top, fed by the authority's messages.
//! - [`history::HistoryPlugin`]: the user's edits, gestures, undo and redo.
//! - [`model::ModelPlugin`]: one entity per record, kept equal to the replica's view.
//!
//! [`playback::PlaybackPlugin`] (added by the window, not by the core) hears the model through
//! the audio engine. [`media::MediaPlugin`] brings each asset's audio and peaks into the local cache through the
//! sync worker; [`assets::AssetCache`] is that cache, keyed by content, so a project opened
//! offline still plays.
//!
//! [`import::ImportPlugin`] turns audio files on this machine into clips, uploading them
//! through the sync worker; [`edits`] holds what each of the DAW's actions means as ops.
//! `record::RecordPlugin` (native, added by the window beside playback) records takes from
//! the sound card, or from a file where there is none, onto the armed track, and keeps each
//! take until the authority has it; onto a track with an instrument it records the notes that
//! `midi_in::MidiInPlugin` hears from a MIDI controller.
//! [`presence::PresencePlugin`] shares where this user is and what they have selected, and
//! collects the same of everyone else in the project. [`jam::JamPlugin`] (added by the window,
//! or by `ensemble-jam`, beside playback) hosts and joins LAN jams, whose shared starts
//! playback places on the machine's [`clock::Clock`].
//!
//! [`ClientCorePlugin`] adds the replica, history, model, media, import and presence plugins;
//! add a [`sync::SyncPlugin`] beside it to connect.
//! Data flows one way around a loop: the user's [`history::EditMsg`] → replica (shown at once)
//! → worker → authority → [`sync::FromAuthority`] → replica → entities. Bevy stays inside this
//! crate so the other crates build without it.

pub mod assets;
#[cfg(target_arch = "wasm32")]
pub mod browser;
pub mod clock;
pub mod edits;
pub mod error;
pub mod history;
pub mod import;
#[cfg(feature = "lan")]
pub mod jam;
pub mod media;
pub mod midi;
#[cfg(not(target_arch = "wasm32"))]
pub mod midi_in;
pub mod model;
pub mod playback;
pub mod presence;
#[cfg(not(target_arch = "wasm32"))]
pub mod record;
pub mod replica;
#[cfg(feature = "solo")]
pub mod solo;
pub mod store;
pub mod sync;
#[cfg(feature = "window")]
pub mod window;

// Which checkout this crate was built from: a different one makes cargo rebuild it, so clones
// sharing the target directory never build each other's code (see `.cargo/config.toml`).
const _: Option<&str> = option_env!("ENSEMBLE_CHECKOUT");

pub use error::Error;

use bevy::prelude::*;

/// The client core without a connection: replica, history, model, media, import and presence.
pub struct ClientCorePlugin;

impl Plugin for ClientCorePlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins((
            replica::ReplicaPlugin,
            history::HistoryPlugin,
            model::ModelPlugin,
            media::MediaPlugin,
            import::ImportPlugin,
            presence::PresencePlugin,
        ));
    }
}
