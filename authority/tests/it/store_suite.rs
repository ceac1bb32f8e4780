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
);
