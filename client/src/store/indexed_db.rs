//! The browser's local store: one IndexedDB database per project (`ensemble-<project>`), with
//! three object stores — `records` (each record's latest confirmed change, by id), `pending`
//! (unconfirmed edits, in the order they were made) and `meta` (the project and its seq). Values
//! are the wire's own encoding in a `Uint8Array`, so what is stored is exactly what travels.
//!
//! Every method is one `readwrite` transaction over the stores it touches, and only returns
//! once IndexedDB says the transaction committed: a reload (or a crash) leaves the old state or
//! the new one, as a SQLite transaction does natively.

use ensemble_protocol::frame::{decode_value, encode_value};
use ensemble_protocol::wire::{Bump, CatchUp};
use ensemble_protocol::{ProjectId, RecordChange, Seq, Transaction, TxId};
use js_sys::Uint8Array;
use rexie::{ObjectStore, Rexie, TransactionMode};
use wasm_bindgen::JsValue;

use super::{LocalStore, Saved};
use crate::Error;

const RECORDS: &str = "records";
const PENDING: &str = "pending";
const META: &str = "meta";

/// A project's local store in the browser.
pub struct IndexedDbStore {
    db: Rexie,
    project: ProjectId,
}

impl std::fmt::Debug for IndexedDbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexedDbStore").field("project", &self.project).finish_non_exhaustive()
    }
}

fn failed(what: &str) -> impl Fn(rexie::Error) -> Error + '_ {
    move |error| Error::Browser(format!("IndexedDB {what}: {error}"))
}

fn bytes(value: &impl serde::Serialize) -> Result<JsValue, Error> {
    Ok(Uint8Array::from(encode_value(value)?.as_slice()).into())
}

fn value<T: serde::de::DeserializeOwned>(stored: &JsValue) -> Result<T, Error> {
    Ok(decode_value(&Uint8Array::new(stored).to_vec())?)
}

impl IndexedDbStore {
    /// The name of `project`'s database.
    pub fn database(project: ProjectId) -> String {
        format!("ensemble-{}", project.0.simple())
    }

    /// Opens (creating if needed) the store for `project`.
    pub async fn open(project: ProjectId) -> Result<Self, Error> {
        let db = Rexie::builder(&Self::database(project))
            .version(1)
            .add_object_store(ObjectStore::new(RECORDS))
            .add_object_store(ObjectStore::new(PENDING).auto_increment(true))
            .add_object_store(ObjectStore::new(META))
            .build()
            .await
            .map_err(failed("open"))?;
        let store = IndexedDbStore { db, project };
        if let Some((found, _)) = store.meta().await?
            && found != project
        {
            return Err(Error::WrongProject { expected: project, found });
        }
        Ok(store)
    }

    /// Closes the database (a page reload does the same).
    pub fn close(self) {
        self.db.close();
    }

    async fn meta(&self) -> Result<Option<(ProjectId, Seq)>, Error> {
        let tx = self.db.transaction(&[META], TransactionMode::ReadOnly).map_err(failed("read"))?;
        let stored = tx.store(META).map_err(failed("read"))?.get(JsValue::from_str("replica")).await;
        stored.map_err(failed("read"))?.map(|stored| value(&stored)).transpose()
    }

    /// Runs `work` in one read-write transaction over `stores`, and waits for the commit.
    async fn write<F>(&self, stores: &[&str], work: impl FnOnce(rexie::Transaction) -> F) -> Result<(), Error>
    where
        F: Future<Output = Result<rexie::Transaction, Error>>,
    {
        let tx = self.db.transaction(stores, TransactionMode::ReadWrite).map_err(failed("write"))?;
        let tx = work(tx).await?;
        let result = tx.done().await.map_err(failed("commit"))?;
        if result.is_committed() { Ok(()) } else { Err(Error::Browser("IndexedDB aborted the write".into())) }
    }
}

async fn put_records(tx: &rexie::Transaction, changes: &[RecordChange]) -> Result<(), Error> {
    let records = tx.store(RECORDS).map_err(failed("write"))?;
    for change in changes {
        let key = JsValue::from_str(&change.id.0.simple().to_string());
        records.put(&bytes(change)?, Some(&key)).await.map_err(failed("write"))?;
    }
    Ok(())
}

async fn put_seq(tx: &rexie::Transaction, project: ProjectId, seq: Seq) -> Result<(), Error> {
    let meta = tx.store(META).map_err(failed("write"))?;
    meta.put(&bytes(&(project, seq))?, Some(&JsValue::from_str("replica"))).await.map_err(failed("write"))?;
    Ok(())
}

/// Deletes the pending edits whose ids are in `tx_ids`.
async fn drop_pending(tx: &rexie::Transaction, tx_ids: &[TxId]) -> Result<(), Error> {
    let pending = tx.store(PENDING).map_err(failed("write"))?;
    for (key, stored) in pending.scan(None, None, None, None).await.map_err(failed("read"))? {
        let edit: Transaction = value(&stored)?;
        if tx_ids.contains(&edit.id) {
            pending.delete(key).await.map_err(failed("write"))?;
        }
    }
    Ok(())
}

impl LocalStore for IndexedDbStore {
    async fn load(&self) -> Result<Option<Saved>, Error> {
        let Some((_, seq)) = self.meta().await? else { return Ok(None) };
        let tx = self.db.transaction(&[RECORDS, PENDING], TransactionMode::ReadOnly).map_err(failed("read"))?;
        let stored = tx.store(RECORDS).map_err(failed("read"))?.get_all(None, None).await.map_err(failed("read"))?;
        let records = stored.iter().map(value).collect::<Result<Vec<RecordChange>, Error>>()?;
        let pending = tx.store(PENDING).map_err(failed("read"))?.scan(None, None, None, None).await;
        // Keys ascend in the order the edits were made.
        let pending =
            pending.map_err(failed("read"))?.iter().map(|(_, stored)| value(stored)).collect::<Result<_, _>>()?;
        Ok(Some(Saved { project: self.project, seq, records, pending }))
    }

    async fn save_catch_up(&self, seq: Seq, catch_up: &CatchUp) -> Result<(), Error> {
        self.write(&[RECORDS, META], |tx| async move {
            match catch_up {
                CatchUp::Snapshot(records) => {
                    tx.store(RECORDS).map_err(failed("write"))?.clear().await.map_err(failed("write"))?;
                    put_records(&tx, records).await?;
                }
                CatchUp::Delta(changes) => put_records(&tx, changes).await?,
            }
            put_seq(&tx, self.project, seq).await?;
            Ok(tx)
        })
        .await
    }

    async fn save_bumps(&self, bumps: &[Bump]) -> Result<(), Error> {
        let Some(last) = bumps.last() else { return Ok(()) };
        self.write(&[RECORDS, META, PENDING], |tx| async move {
            for bump in bumps {
                put_records(&tx, &bump.changes).await?;
            }
            put_seq(&tx, self.project, last.seq).await?;
            let committed: Vec<TxId> = bumps.iter().map(|bump| bump.tx_id).collect();
            drop_pending(&tx, &committed).await?;
            Ok(tx)
        })
        .await
    }

    async fn push_pending(&self, txs: &[Transaction]) -> Result<(), Error> {
        self.write(&[PENDING], |tx| async move {
            let pending = tx.store(PENDING).map_err(failed("write"))?;
            let held = pending.scan(None, None, None, None).await.map_err(failed("read"))?;
            let held = held.iter().map(|(_, stored)| value::<Transaction>(stored).map(|edit| edit.id));
            let held = held.collect::<Result<Vec<TxId>, Error>>()?;
            // An edit already queued (a resend after a reload) is not queued twice.
            for edit in txs.iter().filter(|edit| !held.contains(&edit.id)) {
                pending.add(&bytes(edit)?, None).await.map_err(failed("write"))?;
            }
            Ok(tx)
        })
        .await
    }

    async fn forget_pending(&self, tx_ids: &[TxId]) -> Result<(), Error> {
        self.write(&[PENDING], |tx| async move {
            drop_pending(&tx, tx_ids).await?;
            Ok(tx)
        })
        .await
    }
}
