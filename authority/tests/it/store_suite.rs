//! The same tests against both stores.

use ensemble_authority::store::{AnyStore, Batch, LoggedTx, Store};
use ensemble_authority::{Error, admin};
use ensemble_protocol::frame::encode_value;
use ensemble_protocol::*;

use crate::harness::{self, unique};

async fn users_have_unique_names_and_changeable_passwords(store: AnyStore) {
    let name = unique("ada");
    let id = store.create_user(&name, "hash-1").await.unwrap();
    assert!(matches!(store.create_user(&name, "hash-2").await, Err(Error::Exists(_))));
    store.set_password(&name, "hash-3").await.unwrap();
    let user = store.user_by_name(&name).await.unwrap().unwrap();
    assert_eq!((user.id, user.password_hash.as_str()), (id, "hash-3"));
    assert_eq!(store.user(id).await.unwrap(), Some(user));
    assert_eq!(store.user_by_name(&unique("nobody")).await.unwrap(), None);
    assert!(matches!(store.set_password(&unique("nobody"), "x").await, Err(Error::NotFound(_))));
}

async fn sessions_are_found_by_token_hash(store: AnyStore) {
    let user = store.create_user(&unique("tok"), "").await.unwrap();
    let hash = *blake3::hash(uuid::Uuid::now_v7().as_bytes()).as_bytes();
    store.create_session(hash, user, 12345).await.unwrap();
    assert_eq!(store.session(hash).await.unwrap(), Some((user, 12345)));
    assert_eq!(store.session([0; 32]).await.unwrap(), None);
}

async fn a_created_project_loads_back_identically(store: AnyStore) {
    let owner = unique("owner");
    admin::add_user(&store, &owner, harness::PASSWORD).await.unwrap();
    let id = admin::create_project(&store, "Loads Back", &owner).await.unwrap();
    let loaded = store.load_project(id).await.unwrap().unwrap();
    assert_eq!(loaded.seq, Seq(0));
    assert_eq!(loaded.state.project().name, "Loads Back");
    assert_eq!(loaded.state.len(), 2, "the project record and the owner's membership");
    assert!(store.projects().await.unwrap().iter().any(|p| p.id == id && p.name == "Loads Back"));
    assert_eq!(store.load_project(ProjectId::new_v7()).await.unwrap(), None);
}

/// Applies `tx` to `state` and returns it as one logged transaction with its changes.
fn logged(state: &mut ProjectState, tx: &Transaction, seq: Seq) -> (LoggedTx, Vec<RecordChange>) {
    let applied = state.apply(tx).unwrap();
    let changes: Vec<RecordChange> = applied.changed.iter().map(|id| state.change(*id)).collect();
    let versions: Vec<(RecordId, Version)> = changes.iter().map(|c| (c.id, c.version)).collect();
    let logged = LoggedTx {
        tx_id: tx.id,
        seq,
        author: UserId::new_v7(),
        ops: encode_value(&tx.ops).unwrap(),
        versions: encode_value(&versions).unwrap(),
        committed_at: 1,
    };
    (logged, changes)
}

async fn a_batch_commits_whole_and_only_from_the_expected_seq(store: AnyStore) {
    let owner = unique("owner");
    admin::add_user(&store, &owner, harness::PASSWORD).await.unwrap();
    let project = admin::create_project(&store, "Batches", &owner).await.unwrap();
    let mut state = store.load_project(project).await.unwrap().unwrap().state;
    let drums = TrackId::new_v7();
    let first = harness::add_track(project, drums, "Drums");
    let second = harness::set_gain(project, drums, -6.0, None);
    let third = Transaction::new(
        project,
        vec![Op::ListRemove { target: project.into(), item: drums.0 }, Op::Delete { target: drums.into() }],
    );
    let mut batch = Batch::default();
    for (seq, tx) in [(1, &first), (2, &second), (3, &third)] {
        let (logged, changes) = logged(&mut state, tx, Seq(seq));
        batch.push(logged, &changes).unwrap();
    }
    // From the wrong seq nothing is written.
    assert!(matches!(store.commit(project, Seq(7), &batch).await, Err(Error::SeqMoved(_))));
    assert_eq!(store.load_project(project).await.unwrap().unwrap().seq, Seq(0));
    store.commit(project, Seq(0), &batch).await.unwrap();
    let loaded = store.load_project(project).await.unwrap().unwrap();
    assert_eq!(loaded.seq, Seq(3));
    assert_eq!(loaded.state, state, "the loaded state, tombstones and versions included, equals the applied one");
    assert!(loaded.record_seqs.contains(&(drums.into(), Seq(3))));
    let found = store.committed(project, &[first.id, TxId::new_v7(), third.id]).await.unwrap();
    let mut seqs: Vec<Seq> = found.iter().map(|c| c.seq).collect();
    seqs.sort();
    assert_eq!(seqs, vec![Seq(1), Seq(3)]);
    // A transaction id is committed once: a batch repeating one fails whole.
    let mut again = Batch::default();
    let (mut logged, changes) = logged(&mut state, &harness::add_track(project, TrackId::new_v7(), "Bass"), Seq(4));
    logged.tx_id = first.id;
    again.push(logged, &changes).unwrap();
    assert!(matches!(store.commit(project, Seq(3), &again).await, Err(Error::Exists(_))));
    assert_eq!(store.load_project(project).await.unwrap().unwrap().seq, Seq(3));
}

async fn batches_of_many_projects_at_once_each_commit_or_fail_alone(store: AnyStore) {
    let owner = unique("owner");
    admin::add_user(&store, &owner, harness::PASSWORD).await.unwrap();
    // Eight projects, each with a batch of two transactions; one batch from a seq its project
    // is not at, one replaying a transaction already logged.
    let mut batches = Vec::new();
    let mut logged_already = None;
    for index in 0..8 {
        let project = admin::create_project(&store, &format!("Round {index}"), &owner).await.unwrap();
        let loaded = store.load_project(project).await.unwrap().unwrap();
        let mut state = loaded.state;
        let mut batch = Batch::default();
        for step in 1..=2 {
            let tx = harness::add_track(project, TrackId::new_v7(), "Take");
            let (logged, changes) = logged(&mut state, &tx, Seq(loaded.seq.0 + step));
            batch.push(logged, &changes).unwrap();
        }
        let from = if index == 3 { Seq(loaded.seq.0 + 100) } else { loaded.seq };
        if index == 5 {
            // Commit it once first: sent again, it replays logged transactions.
            store.commit(project, from, &batch).await.unwrap();
            logged_already = Some(project);
        }
        batches.push((project, from, batch));
    }
    // All at once, so the embedded store's writer takes most of them in one round.
    let commits = batches.iter().map(|(project, from, batch)| store.commit(*project, *from, batch));
    let outcomes = futures_util::future::join_all(commits).await;
    for (index, ((project, from, _), outcome)) in batches.iter().zip(outcomes).enumerate() {
        let seq = store.load_project(*project).await.unwrap().unwrap().seq;
        match index {
            3 => assert!(matches!(outcome, Err(Error::SeqMoved(_))), "{outcome:?}"),
            // Already stored: its seq moved on, so the replay lost the race (or hit the log).
            5 => {
                assert!(matches!(outcome, Err(Error::SeqMoved(_) | Error::Exists(_))), "{outcome:?}");
                assert_eq!(Some(*project), logged_already);
            }
            _ => assert!(outcome.is_ok(), "batch {index}: {outcome:?}"),
        }
        let expected = if index == 3 { Seq(from.0 - 100) } else { Seq(from.0 + 2) };
        assert_eq!(seq, expected, "batch {index}");
    }
}

macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let (store, _dir) = crate::harness::sqlite().await;
                    super::$test(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(crate::harness::postgres().await).await;
                }
            )*
        }
    };
}

on_both_stores!(
    users_have_unique_names_and_changeable_passwords,
    sessions_are_found_by_token_hash,
    a_created_project_loads_back_identically,
    a_batch_commits_whole_and_only_from_the_expected_seq,
    batches_of_many_projects_at_once_each_commit_or_fail_alone,
);
