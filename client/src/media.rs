//! Media: the project's audio files and waveform peaks on this machine.
//!
//! For every asset in the model, [`MediaPlugin`] asks the sync worker to bring its audio (and,
//! once the authority says they are ready, its peaks) into the local content-addressed cache,
//! and keeps what arrived in the [`Media`] resource: the peaks, loaded, for drawing waveforms,
//! and the audio files, for playback. A failed fetch (offline, say) is asked again a few
//! seconds later; a cached file is found without the network.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bevy::prelude::*;
use ensemble_audio::peaks::Peaks;
use ensemble_protocol::AssetId;
use ensemble_protocol::transfer::Served;

use crate::assets::CachedFile;
use crate::model::{AssetData, RecordKey};
use crate::sync::{Fetched, Outbound, SyncSystems, configure_sets};

/// How long a failed fetch waits before it is asked again.
const RETRY: Duration = Duration::from_secs(5);

/// Fetches asset files and loads their peaks.
pub struct MediaPlugin;

impl Plugin for MediaPlugin {
    fn build(&self, app: &mut App) {
        configure_sets(app);
        app.init_resource::<Media>()
            .add_message::<Fetched>()
            .add_message::<Outbound>()
            // At the frame's start, after the news, so a file that arrived shows in this frame.
            .add_systems(PreUpdate, (take_fetched, request_media).chain().after(SyncSystems::Apply));
    }
}

/// The asset files this machine has.
#[derive(Resource, Debug, Default)]
pub struct Media {
    peaks: HashMap<AssetId, Arc<Peaks>>,
    audio: HashMap<AssetId, CachedFile>,
    /// What was asked for, and when it may be asked again if it failed.
    asked: HashMap<(AssetId, Served), Option<f64>>,
}

impl Media {
    /// The waveform peaks of an asset, once loaded.
    pub fn peaks(&self, asset: AssetId) -> Option<&Arc<Peaks>> {
        self.peaks.get(&asset)
    }

    /// The cached audio file of an asset, once fetched.
    pub fn audio(&self, asset: AssetId) -> Option<&CachedFile> {
        self.audio.get(&asset)
    }
}

fn request_media(
    time: Res<Time<Real>>,
    mut media: ResMut<Media>,
    assets: Query<(&RecordKey, &AssetData)>,
    mut outbound: MessageWriter<Outbound>,
) {
    let now = time.elapsed_secs_f64();
    for (key, asset) in &assets {
        let id = AssetId(key.0.0);
        let wanted = [Some(Served::Audio), asset.peaks_ready.then_some(Served::Peaks)];
        for what in wanted.into_iter().flatten() {
            let due = match media.asked.get(&(id, what)) {
                None => true,
                Some(Some(retry_at)) => now >= *retry_at,
                Some(None) => false,
            };
            if due {
                media.asked.insert((id, what), None);
                outbound.write(Outbound::Fetch { asset: id, hash: asset.hash, what });
            }
        }
    }
}

fn take_fetched(time: Res<Time<Real>>, mut media: ResMut<Media>, mut fetched: MessageReader<Fetched>) {
    let retry_at = time.elapsed_secs_f64() + RETRY.as_secs_f64();
    for Fetched { asset, what, file } in fetched.read() {
        let loaded = file.clone().and_then(|file| match what {
            Served::Audio => {
                media.audio.insert(*asset, file);
                Ok(())
            }
            Served::Peaks => file.peaks().map_err(|error| error.to_string()).map(|peaks| {
                media.peaks.insert(*asset, Arc::new(peaks));
            }),
        });
        if let Err(reason) = loaded {
            debug!("fetching the {what} of {asset} failed ({reason}); asking again later");
            media.asked.insert((*asset, *what), Some(retry_at));
        }
    }
}
