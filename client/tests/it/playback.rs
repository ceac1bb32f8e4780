//! Playback: the model reaches the audio engine, and the playhead follows the engine's clock.

use std::time::Duration;

use ensemble_client::playback::{Output, OutputLevel, Playback, PlaybackPlugin, Transport};
use ensemble_client::solo::SoloSettings;
use ensemble_client::sync::SyncPlugin;
use ensemble_protocol::{TICKS_PER_QUARTER, Ticks};

use crate::harness::{client_app, online, step_until};

#[test]
fn the_demo_song_plays_and_the_playhead_follows_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let settings = SoloSettings {
        dir: dir.path().join("solo"),
        replicas: dir.path().join("replicas"),
        display_name: "Player".into(),
        project: None,
        demo: Some(ensemble_client::demo::DemoSize::Song),
    };
    let mut app = client_app(SyncPlugin::solo(settings));
    app.add_plugins(PlaybackPlugin);
    step_until(&mut [&mut app], Duration::from_secs(60), |apps| online(apps[0]));
    app.world_mut().resource_mut::<Transport>().playing = true;
    let offline = |app: &mut bevy::prelude::App| {
        matches!(app.world_mut().non_send_mut::<Playback>().output(), Some(Output::Offline(_)))
    };
    step_until(&mut [&mut app], Duration::from_secs(60), |apps| {
        let position = apps[0].world().resource::<Transport>().position;
        // Where a sound card plays, the test cannot listen; the playhead still moves.
        let heard = !offline(apps[0]) || apps[0].world().resource::<OutputLevel>().0[0] > 0.05;
        position > Ticks(2 * TICKS_PER_QUARTER) && heard
    });

    // Stopping holds the playhead where it is.
    app.world_mut().resource_mut::<Transport>().playing = false;
    app.update();
    let stopped = app.world().resource::<Transport>().position;
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..5 {
        app.update();
    }
    assert_eq!(app.world().resource::<Transport>().position, stopped);
}
