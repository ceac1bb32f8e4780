//! The local store on its own: what goes in comes back, and damage is set aside, not fatal.

use ensemble_client::Error;
use ensemble_client::store::{LocalStore, Saved, SqliteReplicaStore};
use ensemble_protocol::wire::{Bump, CatchUp};
use ensemble_protocol::*;

use crate::harness::{add_track, set};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn project_state() -> ProjectState {
    let project = Project {
        name: "Stored".into(),
        tempo: Bpm(100.0),
        time_signature: TimeSignature::FOUR_FOUR,
        loop_range: None,
        track_order: vec![],
        sample_rate: 44_100,
    };
    ProjectState::new(ProjectId::new_v7(), project).unwrap()
}

#[test]
fn what_is_stored_comes_back_and_bumps_settle_their_pending_edits() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut state = project_state();
    let project = state.id();
    runtime.block_on(async {
        let store = SqliteReplicaStore::open(dir.path(), project).await.unwrap();
        assert_eq!(store.load().await.unwrap(), None, "a new store holds nothing");
        store.save_catch_up(Seq(4), &CatchUp::Snapshot(state.snapshot())).await.unwrap();

        let track = TrackId::new_v7();
        let first = Transaction::new(project, add_track(project, track, "Keys"));
        let second = Transaction::new(project, vec![set(track, Field::Track(TrackField::Mute(true)))]);
        let third = Transaction::new(project, vec![set(track, Field::Track(TrackField::Pan(-0.5)))]);
        store.push_pending(&[first.clone(), second.clone()]).await.unwrap();
        store.push_pending(std::slice::from_ref(&third)).await.unwrap();

        // The authority commits the first, then a collaborator's edit: one write keeps both
        // bumps' records and settles the first.
        let theirs = Transaction::new(project, vec![set(track, Field::Track(TrackField::Solo(true)))]);
        let bumps = [(5, &first), (6, &theirs)].map(|(seq, tx)| {
            let applied = state.apply(tx).unwrap();
            let changes = applied.changed.iter().map(|id| state.change(*id)).collect();
            Bump { project, seq: Seq(seq), tx_id: tx.id, author: UserId::new_v7(), changes }
        });
        store.save_bumps(&bumps).await.unwrap();
        store.forget_pending(&[third.id]).await.unwrap();
        drop(store);

        let store = SqliteReplicaStore::open(dir.path(), project).await.unwrap();
        let Saved { seq, records, pending, .. } = store.load().await.unwrap().unwrap();
        assert_eq!(seq, Seq(6));
        assert_eq!(pending, vec![second], "only the unsettled edit is pending");
        assert_eq!(ProjectState::from_changes(project, records).unwrap(), state);
    });
}

#[test]
fn a_damaged_file_is_set_aside_and_a_fresh_store_takes_its_place() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let project = ProjectId::new_v7();
    let path = SqliteReplicaStore::path(dir.path(), project);
    let garbage = b"this is not a database, it is a shopping list: strings, rosin, picks".repeat(100);
    std::fs::write(&path, &garbage).unwrap();
    runtime.block_on(async {
        let error = SqliteReplicaStore::open(dir.path(), project).await.unwrap_err();
        assert!(error.to_string().contains("local store"), "a clear error: {error}");

        let (store, note) = SqliteReplicaStore::open_or_set_aside(dir.path(), project).await.unwrap();
        let note = note.expect("the user is told");
        assert!(note.contains("kept as"), "{note}");
        assert_eq!(store.load().await.unwrap(), None);
    });
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().contains("damaged"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::read(&kept[0]).unwrap(), garbage, "nothing of the damaged file is lost");
}

#[test]
fn a_store_refuses_another_projects_file() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let state = project_state();
    let path = dir.path().join("renamed.sqlite");
    runtime.block_on(async {
        let store = SqliteReplicaStore::open_file(&path, state.id()).await.unwrap();
        store.save_catch_up(Seq(1), &CatchUp::Snapshot(state.snapshot())).await.unwrap();
        drop(store);
        let other = ProjectId::new_v7();
        let error = SqliteReplicaStore::open_file(&path, other).await.unwrap_err();
        assert!(matches!(error, Error::WrongProject { expected, found } if expected == other && found == state.id()));
    });
}
