//! The model on its own: entities follow the replica, and change detection sees exactly what
//! changed.

use bevy::prelude::*;
use ensemble_client::ClientCorePlugin;
use ensemble_client::history::EditMsg;
use ensemble_client::model::{ClipData, RecordIndex, RecordKey, TrackData};
use ensemble_client::replica::Replica;
use ensemble_protocol::AssetId;
use ensemble_protocol::*;

use crate::harness::{add_track, set};

/// Track names whose data changed in the last frame.
#[derive(Resource, Default)]
struct Seen(Vec<String>);

fn watch(tracks: Query<&TrackData, Changed<TrackData>>, mut seen: ResMut<Seen>) {
    seen.0 = tracks.iter().map(|track| track.name.clone()).collect();
}

fn app() -> (App, ProjectId, [TrackId; 3]) {
    let project = crate::harness::project("Model");
    let mut state = ProjectState::new(ProjectId::new_v7(), project).unwrap();
    let id = state.id();
    let tracks = [TrackId::new_v7(), TrackId::new_v7(), TrackId::new_v7()];
    for (track, name) in tracks.iter().zip(["Kick", "Snare", "Hats"]) {
        state.apply(&Transaction::new(id, add_track(id, *track, name))).unwrap();
    }
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, ClientCorePlugin));
    app.insert_resource(Replica::new(state, Seq(3)));
    app.init_resource::<Seen>();
    app.add_systems(Update, watch);
    app.update();
    (app, id, tracks)
}

#[test]
fn change_detection_sees_only_the_records_an_edit_changed() {
    let (mut app, _, tracks) = app();
    assert_eq!(app.world().resource::<Seen>().0.len(), 3, "every track is new on the first frame");
    app.update();
    assert!(app.world().resource::<Seen>().0.is_empty(), "a quiet frame changes nothing");

    // An edit is proposed at the end of the frame it was made in; the next frame sees it.
    app.world_mut().write_message(EditMsg::Edit(vec![set(tracks[1], Field::Track(TrackField::Solo(true)))]));
    app.update();
    app.update();
    assert_eq!(app.world().resource::<Seen>().0, ["Snare"]);

    // Setting a value it already has bumps the version, not the data.
    app.world_mut().write_message(EditMsg::Edit(vec![set(tracks[1], Field::Track(TrackField::Solo(true)))]));
    app.update();
    app.update();
    assert!(app.world().resource::<Seen>().0.is_empty());
}

#[test]
fn clips_live_under_their_track_and_move_with_it() {
    let (mut app, project, tracks) = app();
    let world = app.world_mut();
    let asset = AssetId::new_v7();
    // Assets come from the authority; put one into the confirmed state the way a bump would.
    let mut replica = world.resource::<Replica>().clone();
    let mut confirmed = replica.confirmed().clone();
    let record = Record::AudioAsset(AudioAsset {
        hash: ContentHash([3; 32]),
        name: "bass.wav".into(),
        sample_rate: 48_000,
        channels: 1,
        frames: Frames(480_000),
        codec: Codec::Wav,
        byte_size: 960_044,
        peaks_ready: false,
    });
    confirmed.absorb(RecordChange { id: asset.into(), version: Version(1), record: Some(record) }).unwrap();
    replica = Replica::new(confirmed, replica.seq());
    world.insert_resource(replica);
    app.update();

    let clip = ClipId::new_v7();
    let record = Record::Clip(Clip {
        track: tracks[0],
        asset,
        start: Ticks(0),
        length: Ticks(3840),
        source_offset: Frames(0),
        gain_db: 0.0,
        fade_in: Ticks(0),
        fade_out: Ticks(0),
        name: "Bassline".into(),
    });
    app.world_mut().write_message(EditMsg::Edit(vec![Op::Create { id: clip.into(), record }]));
    app.update();
    let parent_of_clip = |app: &mut App| {
        let world = app.world_mut();
        let mut clips = world.query::<(&RecordKey, &ClipData, &ChildOf)>();
        let (_, _, parent) = clips.single(world).unwrap();
        let parent = parent.parent();
        world.get::<RecordKey>(parent).unwrap().0
    };
    assert_eq!(parent_of_clip(&mut app), tracks[0].into());

    app.world_mut().write_message(EditMsg::Edit(vec![set(clip, Field::Clip(ClipField::Track(tracks[2])))]));
    app.update();
    assert_eq!(parent_of_clip(&mut app), tracks[2].into(), "the clip moved to the other track's children");
    let hats = app.world().resource::<RecordIndex>().entity(tracks[2].into()).unwrap();
    assert_eq!(app.world().get::<Children>(hats).map(|children| children.len()), Some(1));

    // Deleting the track and its clip in one edit takes both entities.
    let ops = vec![
        Op::Delete { target: clip.into() },
        Op::ListRemove { target: project.into(), item: tracks[2].0 },
        Op::Delete { target: tracks[2].into() },
    ];
    app.world_mut().write_message(EditMsg::Edit(ops));
    app.update();
    let index = app.world().resource::<RecordIndex>();
    assert_eq!((index.entity(clip.into()), index.entity(tracks[2].into())), (None, None));
    assert!(app.world().get_entity(hats).is_err(), "the track's entity is gone");
    let mut clips = app.world_mut().query::<&ClipData>();
    assert_eq!(clips.iter(app.world()).count(), 0);

    // Undo brings both back, the clip under its track again.
    app.world_mut().write_message(EditMsg::Undo);
    app.update();
    assert_eq!(parent_of_clip(&mut app), tracks[2].into());
}
