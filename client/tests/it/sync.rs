//! Client apps against a real authority over QUIC on loopback.

use std::time::Duration;

use bevy::prelude::*;
use ensemble_client::history::{EditMsg, History};
use ensemble_client::model::{RecordIndex, TrackData};
use ensemble_client::replica::Notice;
use ensemble_client::solo::SoloSettings;
use ensemble_client::sync::{Connection, SyncPlugin};
use ensemble_protocol::AssetId;
use ensemble_protocol::wire::Rejection;
use ensemble_protocol::*;

use crate::harness::*;

const PATIENCE: Duration = Duration::from_secs(60);

/// A random edit a user could make to `view`: tracks, clips, mixer values, tempo, compare-and-
/// set, undo and redo. Many of them collide with the other user's.
fn random_edit(rng: &mut Rng, view: &ProjectState, asset: AssetId) -> EditMsg {
    let project = view.id();
    let tracks = view.project().track_order.clone();
    let clips: Vec<(ClipId, Clip)> = view
        .records()
        .filter_map(|(id, entry)| match &entry.record {
            Record::Clip(clip) => Some((ClipId(id.0), clip.clone())),
            _ => None,
        })
        .collect();
    let choice = rng.below(14);
    if tracks.is_empty() || choice == 0 {
        let id = TrackId::new_v7();
        return EditMsg::Edit(add_track(project, id, &format!("Track {}", rng.below(100))));
    }
    let track = rng.pick(&tracks);
    let field = match choice {
        1 => TrackField::Gain(rng.pick(&[-12.0, -6.0, -3.0, 0.0, 3.0])),
        2 => TrackField::Pan(rng.pick(&[-1.0, -0.5, 0.0, 0.5, 1.0])),
        3 => TrackField::Mute(rng.below(2) == 0),
        4 => TrackField::Name(format!("Take {}", rng.below(1000))),
        5 | 6 => {
            let clip = Clip {
                track,
                asset,
                start: Ticks(960 * rng.below(64) as i64),
                length: Ticks(960 * (1 + rng.below(8)) as i64),
                source_offset: Frames(0),
                gain_db: 0.0,
                fade_in: Ticks(0),
                fade_out: Ticks(0),
                name: "Loop".into(),
            };
            return EditMsg::Edit(vec![Op::Create { id: ClipId::new_v7().into(), record: Record::Clip(clip) }]);
        }
        7 | 8 if !clips.is_empty() => {
            let (id, _) = clips[rng.below(clips.len())];
            let value = if choice == 7 {
                ClipField::Start(Ticks(960 * rng.below(64) as i64))
            } else {
                ClipField::Track(rng.pick(&tracks))
            };
            return EditMsg::Edit(vec![set(id, Field::Clip(value))]);
        }
        9 if !clips.is_empty() => {
            let (id, _) = clips[rng.below(clips.len())];
            return EditMsg::Edit(vec![Op::Delete { target: id.into() }]);
        }
        10 => {
            // Delete a track with its clips, as the UI's delete gesture does.
            let mut ops: Vec<Op> = clips
                .iter()
                .filter(|(_, clip)| clip.track == track)
                .map(|(id, _)| Op::Delete { target: (*id).into() })
                .collect();
            ops.push(Op::ListRemove { target: project.into(), item: track.0 });
            ops.push(Op::Delete { target: track.into() });
            return EditMsg::Edit(ops);
        }
        11 => {
            // A compare-and-set on the gain as this user sees it.
            let Some(Record::Track(current)) = view.entry(track.into()).map(|entry| &entry.record) else {
                unreachable!("tracks in the order are live")
            };
            let op = Op::Set {
                target: track.into(),
                value: Field::Track(TrackField::Gain(current.gain_db - 1.0)),
                expect: Some(Field::Track(TrackField::Gain(current.gain_db))),
            };
            return EditMsg::Edit(vec![op]);
        }
        12 => return EditMsg::Undo,
        13 => return EditMsg::Redo,
        _ => {
            let tempo = Bpm(rng.pick(&[90.0, 120.0, 128.0, 140.0]));
            return EditMsg::Edit(vec![set(project, Field::Project(ProjectField::Tempo(tempo)))]);
        }
    };
    EditMsg::Edit(vec![set(track, Field::Track(field))])
}

#[test]
fn two_clients_making_a_thousand_concurrent_edits_converge_to_the_authority() {
    let authority = Authority::start();
    let (_a, alice_dir) = replicas();
    let (_b, bob_dir) = replicas();
    let mut alice = authority.client("alice", &alice_dir);
    let mut bob = authority.client("bob", &bob_dir);
    step_until(&mut [&mut alice, &mut bob], PATIENCE, |apps| apps.iter().all(|app| online(app)));

    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    for _ in 0..500 {
        for app in [&mut alice, &mut bob] {
            let edit = random_edit(&mut rng, replica(app).unwrap().view(), authority.asset);
            send(app, edit);
            // Messages interleave differently on each run of the network; updates do too.
            for _ in 0..rng.below(3) {
                app.update();
            }
        }
    }

    let (_, mut seq) = authority.state();
    step_until(&mut [&mut alice, &mut bob], PATIENCE, |apps| {
        seq = authority.state().1;
        apps.iter().all(|app| settled_at(app, seq))
    });
    let (state, _) = authority.state();
    assert!(seq.0 > 300, "most edits should commit, only {} did", seq.0);
    let expected = records(&state);
    assert_eq!(entities(&mut alice), expected, "alice's entities equal the authority's records");
    assert_eq!(entities(&mut bob), expected, "bob's entities equal the authority's records");
    assert_eq!(replica(&alice).unwrap().view(), &state);
    assert_eq!(replica(&bob).unwrap().view(), &state);
}

#[test]
fn edits_made_offline_survive_a_restart_and_land_once() {
    let mut authority = Authority::start();
    let (_dir, dir) = replicas();
    let project = authority.project;
    let mut app = authority.client("alice", &dir);
    step_until(&mut [&mut app], PATIENCE, |apps| online(apps[0]));
    let (_, before) = authority.state();

    authority.stop();
    step_until(&mut [&mut app], PATIENCE, |apps| matches!(status(apps[0]).connection, Connection::Offline { .. }));
    let tracks: Vec<TrackId> = (0..20).map(|_| TrackId::new_v7()).collect();
    for (i, track) in tracks.iter().enumerate() {
        send(&mut app, EditMsg::Edit(add_track(project, *track, &format!("Offline {i}"))));
    }
    for i in 0..180 {
        let gain = -(i as f32) / 10.0;
        send(&mut app, EditMsg::Edit(vec![set(tracks[i % 20], Field::Track(TrackField::Gain(gain)))]));
    }
    step_until(&mut [&mut app], PATIENCE, |apps| status(apps[0]).unsaved == 0);
    assert_eq!(replica(&app).unwrap().pending().len(), 200);
    drop(app);

    // A new app on the same local store shows the edits before it can reach anyone.
    let mut app = authority.client("alice", &dir);
    step_until(&mut [&mut app], PATIENCE, |apps| replica(apps[0]).is_some_and(|r| r.pending().len() == 200));
    let mut named = app.world_mut().query::<&TrackData>();
    assert_eq!(named.iter(app.world()).filter(|track| track.name.starts_with("Offline")).count(), 20);

    authority.resume();
    let expected = Seq(before.0 + 200);
    step_until(&mut [&mut app], PATIENCE, |apps| settled_at(apps[0], expected));
    let (state, seq) = authority.state();
    assert_eq!(seq, expected, "all 200 edits landed, none twice");
    assert_eq!(entities(&mut app), records(&state));
    for (i, track) in tracks.iter().enumerate() {
        let Some(Record::Track(track)) = state.entry((*track).into()).map(|entry| &entry.record) else {
            panic!("track {i} is missing")
        };
        let last = (0..180).filter(|j| j % 20 == i).max().unwrap();
        assert_eq!(track.gain_db, -(last as f32) / 10.0, "track {i} has its last gain");
    }
}

#[test]
fn edits_the_authority_could_not_save_are_sent_again_in_order_once_its_database_returns() {
    let authority = Authority::start();
    let (_dir, dir) = replicas();
    let project = authority.project;
    let mut app = authority.client("alice", &dir);
    step_until(&mut [&mut app], PATIENCE, |apps| online(apps[0]));
    let track = TrackId::new_v7();
    send(&mut app, EditMsg::Edit(add_track(project, track, "Bass")));
    let (_, before) = authority.state();
    step_until(&mut [&mut app], PATIENCE, |apps| settled_at(apps[0], Seq(before.0 + 1)));

    // The database goes away while the authority runs: it refuses the rename and closes the
    // connection, so the gain change made after it never commits before it.
    authority.set_database_down(true);
    send(&mut app, EditMsg::Edit(vec![set(track, Field::Track(TrackField::Name("Bass DI".into())))]));
    let refused = |apps: &mut [&mut App]| matches!(&status(apps[0]).connection, Connection::Offline { reason } if reason.contains("could not save"));
    step_until(&mut [&mut app], PATIENCE, refused);
    send(&mut app, EditMsg::Edit(vec![set(track, Field::Track(TrackField::Gain(-6.0)))]));
    step_until(&mut [&mut app], PATIENCE, |apps| replica(apps[0]).is_some_and(|r| r.pending().len() == 2));

    authority.set_database_down(false);
    let expected = Seq(before.0 + 3);
    step_until(&mut [&mut app], PATIENCE, |apps| settled_at(apps[0], expected));
    let (state, seq) = authority.state();
    assert_eq!(seq, expected, "both edits landed, once each");
    let Some(Record::Track(stored)) = state.entry(track.into()).map(|entry| &entry.record) else { panic!("no track") };
    assert_eq!((stored.name.as_str(), stored.gain_db), ("Bass DI", -6.0));
    assert_eq!(entities(&mut app), records(&state));
}

/// An authority, and alice and bob online on a track alice added, each with a local store of
/// their own (kept until the apps have gone: bound first, dropped last).
struct Duo {
    _stores: [tempfile::TempDir; 2],
    authority: Authority,
    alice: App,
    bob: App,
    track: TrackId,
}

impl Duo {
    fn start() -> Duo {
        let authority = Authority::start();
        let ((a, alice_dir), (b, bob_dir)) = (replicas(), replicas());
        let mut alice = authority.client("alice", &alice_dir);
        let mut bob = authority.client("bob", &bob_dir);
        let track = shared_track(&authority, &mut alice, &mut bob);
        Duo { _stores: [a, b], authority, alice, bob, track }
    }
}

/// Alice adds a track and both apps settle; returns the track.
fn shared_track(authority: &Authority, alice: &mut App, bob: &mut App) -> TrackId {
    step_until(&mut [&mut *alice, &mut *bob], PATIENCE, |apps| apps.iter().all(|app| online(app)));
    let track = TrackId::new_v7();
    send(alice, EditMsg::Edit(add_track(authority.project, track, "Bass")));
    settle(authority, alice, bob);
    track
}

fn settle(authority: &Authority, alice: &mut App, bob: &mut App) {
    step_until(&mut [alice, bob], PATIENCE, |apps| {
        let (_, seq) = authority.state();
        apps.iter().all(|app| settled_at(app, seq))
    });
}

fn track_of(app: &App, id: TrackId) -> Track {
    match replica(app).unwrap().view().entry(id.into()).map(|entry| &entry.record) {
        Some(Record::Track(track)) => track.clone(),
        other => panic!("track {id} is {other:?}"),
    }
}

#[test]
fn undo_is_refused_after_a_collaborator_changed_the_same_field_and_works_after_another_field() {
    let Duo { _stores, authority, mut alice, mut bob, track } = Duo::start();

    // Same field: alice's fader move, then bob's; alice's undo would erase bob's work.
    send(&mut alice, EditMsg::Edit(vec![set(track, Field::Track(TrackField::Gain(-6.0)))]));
    settle(&authority, &mut alice, &mut bob);
    send(&mut bob, EditMsg::Edit(vec![set(track, Field::Track(TrackField::Gain(-3.0)))]));
    settle(&authority, &mut alice, &mut bob);
    send(&mut alice, EditMsg::Undo);
    settle(&authority, &mut alice, &mut bob);
    let refused = alice.world().resource::<Notices>().0.last().cloned();
    let Some(Notice::UndoRefused { reason }) = refused else { panic!("expected a refused undo, got {refused:?}") };
    assert!(reason.to_string().contains("gain"), "the reason names the field: {reason}");
    assert!(reason.to_string().contains("has changed since"), "the reason says why: {reason}");
    assert_eq!(track_of(&alice, track).gain_db, -3.0, "bob's value stays");
    assert_eq!(track_of(&bob, track).gain_db, -3.0);

    // Another field: alice pans, bob moves the fader; alice's undo restores the pan only.
    send(&mut alice, EditMsg::Edit(vec![set(track, Field::Track(TrackField::Pan(0.5)))]));
    settle(&authority, &mut alice, &mut bob);
    send(&mut bob, EditMsg::Edit(vec![set(track, Field::Track(TrackField::Gain(-1.0)))]));
    settle(&authority, &mut alice, &mut bob);
    let notices = alice.world().resource::<Notices>().0.len();
    send(&mut alice, EditMsg::Undo);
    settle(&authority, &mut alice, &mut bob);
    assert_eq!(alice.world().resource::<Notices>().0.len(), notices, "no notice: the undo applied");
    for app in [&alice, &bob] {
        let track = track_of(app, track);
        assert_eq!((track.pan, track.gain_db), (0.0, -1.0), "pan undone, bob's gain kept");
    }

    // Redo was computed at undo time and puts the pan back.
    send(&mut alice, EditMsg::Redo);
    settle(&authority, &mut alice, &mut bob);
    assert_eq!(track_of(&bob, track).pan, 0.5);
}

#[test]
fn a_gesture_previews_locally_and_commits_one_edit_and_one_undo_entry() {
    let Duo { _stores, authority, mut alice, mut bob, track } = Duo::start();
    let (_, before) = authority.state();

    for step in 1..=30 {
        send(&mut alice, EditMsg::Preview(vec![set(track, Field::Track(TrackField::Gain(-0.5 * step as f32)))]));
        alice.update();
        bob.update();
        assert_eq!(track_of(&alice, track).gain_db, -0.5 * step as f32, "the drag shows at once");
    }
    let entity = alice.world().resource::<RecordIndex>().entity(track.into()).unwrap();
    assert_eq!(alice.world().get::<TrackData>(entity).unwrap().gain_db, -15.0, "the entity follows the drag");
    assert_eq!(authority.state().1, before, "nothing is sent while dragging");
    assert_eq!(track_of(&bob, track).gain_db, 0.0);

    send(&mut alice, EditMsg::CommitGesture);
    settle(&authority, &mut alice, &mut bob);
    assert_eq!(authority.state().1, Seq(before.0 + 1), "one transaction");
    assert_eq!(track_of(&bob, track).gain_db, -15.0);

    send(&mut alice, EditMsg::Undo);
    settle(&authority, &mut alice, &mut bob);
    assert_eq!(track_of(&bob, track).gain_db, 0.0, "one undo takes the whole drag back");
    assert!(alice.world().resource::<History>().can_undo(), "the track's creation is still undoable");
}

#[test]
fn a_rejected_transaction_rolls_the_view_back_and_says_why() {
    let authority = Authority::start();
    let (_a, alice_dir) = replicas();
    let (_v, vera_dir) = replicas();
    let mut alice = authority.client("alice", &alice_dir);
    let mut vera = authority.client("vera", &vera_dir);
    let track = shared_track(&authority, &mut alice, &mut vera);

    // A viewer's edit applies locally (the view cannot know roles), then the authority refuses.
    send(&mut vera, EditMsg::Edit(vec![set(track, Field::Track(TrackField::Name("Mine".into())))]));
    vera.update();
    assert_eq!(track_of(&vera, track).name, "Mine", "shown at once");
    let entity = vera.world().resource::<RecordIndex>().entity(track.into()).unwrap();
    assert_eq!(vera.world().get::<TrackData>(entity).unwrap().name, "Mine");

    step_until(&mut [&mut vera], PATIENCE, |apps| replica(apps[0]).unwrap().pending().len() == 0);
    vera.update();
    assert_eq!(track_of(&vera, track).name, "Bass", "rolled back");
    assert_eq!(vera.world().get::<TrackData>(entity).unwrap().name, "Bass", "the entity too");
    let notices = &vera.world().resource::<Notices>().0;
    assert!(
        matches!(notices.last(), Some(Notice::Rejected { reason: Rejection::Denied(_), .. })),
        "vera is told why: {notices:?}"
    );
    assert!(!vera.world().resource::<History>().can_undo(), "a rejected edit leaves the history");
    assert_eq!(track_of(&alice, track).name, "Bass");
}

#[test]
fn solo_mode_runs_the_authority_in_process_and_keeps_the_project() {
    let dir = tempfile::tempdir().unwrap();
    let settings = SoloSettings {
        dir: dir.path().join("solo"),
        replicas: dir.path().join("replicas"),
        display_name: "Robin".into(),
        project: None,
        demo: None,
        lan: None,
    };
    let mut app = client_app(SyncPlugin::solo(settings.clone()));
    step_until(&mut [&mut app], PATIENCE, |apps| online(apps[0]));
    let project = replica(&app).unwrap().project();
    assert_eq!(replica(&app).unwrap().view().project().name, "Untitled");
    send(&mut app, EditMsg::Edit(add_track(project, TrackId::new_v7(), "Vocals")));
    step_until(&mut [&mut app], PATIENCE, |apps| settled_at(apps[0], Seq(1)));
    drop(app);

    let mut app = client_app(SyncPlugin::solo(settings));
    step_until(&mut [&mut app], PATIENCE, |apps| online(apps[0]) && settled_at(apps[0], Seq(1)));
    assert_eq!(replica(&app).unwrap().project(), project, "the same project opens again");
    let mut tracks = app.world_mut().query::<&TrackData>();
    let names: Vec<String> = tracks.iter(app.world()).map(|track| track.name.clone()).collect();
    assert_eq!(names, ["Vocals"]);
}

/// `track`'s chain in `app`'s view, in playing order.
fn chain_of(app: &App, track: TrackId) -> Vec<(RecordId, Effect)> {
    bus_chain(app, Bus::Track(track))
}

/// `bus`'s chain in `app`'s view, in playing order.
fn bus_chain(app: &App, bus: Bus) -> Vec<(RecordId, Effect)> {
    let view = replica(app).unwrap().view();
    let mut chain: Vec<(RecordId, &Effect)> = view
        .records()
        .filter_map(|(id, entry)| match &entry.record {
            Record::Effect(effect) if effect.bus == bus => Some((id, effect)),
            _ => None,
        })
        .collect();
    ensemble_client::edits::in_playing_order(&mut chain);
    chain.into_iter().map(|(id, effect)| (id, effect.clone())).collect()
}

#[test]
fn two_people_build_one_chain_at_once_and_converge() {
    use ensemble_client::edits::{add_effect, move_effect, remove_effect, set_effect_param};
    let Duo { _stores, authority, mut alice, mut bob, track } = Duo::start();

    // Alice adds an EQ and a reverb while bob, not yet hearing of them, adds a delay.
    let (eq, ops) = add_effect(Bus::Track(track), EffectKind::Eq, &[]);
    send(&mut alice, EditMsg::Edit(ops));
    let first = chain_of(&alice, track);
    let refs: Vec<(RecordId, &Effect)> = first.iter().map(|(id, effect)| (*id, effect)).collect();
    let (reverb, ops) = add_effect(Bus::Track(track), EffectKind::Reverb, &refs);
    send(&mut alice, EditMsg::Edit(ops));
    send(&mut bob, EditMsg::Edit(add_effect(Bus::Track(track), EffectKind::Delay, &[]).1));
    // And a compressor on the master, a chain of its own.
    send(&mut bob, EditMsg::Edit(add_effect(Bus::Master, EffectKind::Compressor, &[]).1));
    settle(&authority, &mut alice, &mut bob);
    let chain = chain_of(&alice, track);
    assert_eq!(chain, chain_of(&bob, track), "both see one chain");
    assert_eq!(chain.len(), 3);
    let master = bus_chain(&alice, Bus::Master);
    assert_eq!(master, bus_chain(&bob, Bus::Master));
    assert_eq!(master.iter().map(|(_, effect)| effect.kind).collect::<Vec<_>>(), [EffectKind::Compressor]);

    // Both turn a knob of the reverb at once, different knobs: both land.
    send(&mut alice, EditMsg::Edit(set_effect_param(reverb.into(), EffectParam::RoomSize, 0.9)));
    send(&mut bob, EditMsg::Edit(set_effect_param(reverb.into(), EffectParam::Mix, 0.5)));
    settle(&authority, &mut alice, &mut bob);
    for app in [&alice, &bob] {
        let (_, effect) = chain_of(app, track).into_iter().find(|(id, _)| *id == reverb.into()).unwrap();
        assert_eq!((effect.param(EffectParam::RoomSize), effect.param(EffectParam::Mix)), (Some(0.9), Some(0.5)));
    }

    // Bob drags the last effect to the front while alice removes the EQ; then alice undoes.
    let chain = chain_of(&bob, track);
    let refs: Vec<(RecordId, &Effect)> = chain.iter().map(|(id, effect)| (*id, effect)).collect();
    let last = chain.last().unwrap().0;
    send(&mut bob, EditMsg::Edit(move_effect(&refs, 2, 0)));
    send(&mut alice, EditMsg::Edit(remove_effect(eq.into(), [])));
    settle(&authority, &mut alice, &mut bob);
    let chain = chain_of(&alice, track);
    assert_eq!(chain, chain_of(&bob, track));
    assert_eq!((chain.len(), chain[0].0), (2, last), "the moved effect leads, the EQ is gone");
    send(&mut alice, EditMsg::Undo);
    settle(&authority, &mut alice, &mut bob);
    let chain = chain_of(&bob, track);
    assert!(chain.iter().any(|(id, effect)| *id == eq.into() && effect.kind == EffectKind::Eq), "undo brings it back");
    assert_eq!(chain, chain_of(&alice, track));
}

#[test]
fn two_people_edit_different_notes_of_one_clip_and_converge() {
    use ensemble_client::edits::{add_note, add_note_clip, change_note, remove_notes};
    let Duo { _stores, authority, mut alice, mut bob, track } = Duo::start();
    // A new note clip brings a synth along, since the track has no instrument.
    let (clip, ops) = add_note_clip(track, Ticks(0), &[]);
    assert_eq!(ops.len(), 2);
    send(&mut alice, EditMsg::Edit(ops));
    let (first, ops) = add_note(clip.into(), 48, Ticks(0), Ticks(480), 100);
    send(&mut alice, EditMsg::Edit(ops));
    let (second, ops) = add_note(clip.into(), 55, Ticks(480), Ticks(480), 90);
    send(&mut alice, EditMsg::Edit(ops));
    settle(&authority, &mut alice, &mut bob);
    let notes_of = |app: &App| -> Vec<Note> {
        match replica(app).unwrap().view().entry(clip.into()).map(|entry| &entry.record) {
            Some(Record::NoteClip(clip)) => {
                let mut notes = clip.notes.clone();
                notes.sort_by_key(|note| (note.start, note.pitch));
                notes
            }
            other => panic!("{other:?}"),
        }
    };
    let notes = notes_of(&bob);
    assert_eq!(notes.iter().map(|n| n.id).collect::<Vec<_>>(), vec![first, second]);

    // At once: alice moves the first note up a fifth, bob makes the second longer and adds one.
    let (one, two) = (notes[0], notes[1]);
    send(&mut alice, EditMsg::Edit(change_note(clip.into(), &one, 55, one.start, one.length, one.velocity)));
    send(&mut bob, EditMsg::Edit(change_note(clip.into(), &two, 55, two.start, Ticks(960), two.velocity)));
    let (third, ops) = add_note(clip.into(), 60, Ticks(1440), Ticks(480), 100);
    send(&mut bob, EditMsg::Edit(ops));
    settle(&authority, &mut alice, &mut bob);
    let notes = notes_of(&alice);
    assert_eq!(notes, notes_of(&bob), "both see the same notes");
    let summary: Vec<(NoteId, u8, i64)> = notes.iter().map(|n| (n.id, n.pitch, n.length.0)).collect();
    assert_eq!(summary, vec![(first, 55, 480), (second, 55, 960), (third, 60, 480)]);

    // Alice deletes bob's new note, then undoes it.
    send(&mut alice, EditMsg::Edit(remove_notes(clip.into(), [third])));
    settle(&authority, &mut alice, &mut bob);
    assert_eq!(notes_of(&bob).len(), 2);
    send(&mut alice, EditMsg::Undo);
    settle(&authority, &mut alice, &mut bob);
    assert_eq!(notes_of(&bob).len(), 3);
}
