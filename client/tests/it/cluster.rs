//! The app's own client across authority processes: two servers on one Postgres and one NATS,
//! each on a runtime of its own (a process, as far as anything can tell: its own database
//! pool, NATS connection and socket), alice's app on one and bob's on the other. Their edits
//! meet at the project's owner; when the owner dies without a word, bob's app is moved on and
//! served by his own process once the lease runs out, what alice made while hers was gone lands
//! once when it comes back on the same address, and both apps end with what the database holds.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bevy::prelude::*;
use ensemble_authority::admin;
use ensemble_authority::leases::LeaseOptions;
use ensemble_authority::server::ServerOptions;
use ensemble_authority::store::{PostgresStore, Store};
use ensemble_authority::tls::Certificates;
use ensemble_client::history::EditMsg;
use ensemble_client::sync::SyncPlugin;
use ensemble_net::tls::Trust;
use ensemble_net::transport::{Credentials, QuicTransport};
use ensemble_protocol::*;
use ensemble_testkit::loopback::{self, Loopback};
use ensemble_testkit::sandbox::{self, Nats};
use tokio::runtime::Runtime;

use crate::harness::{
    PASSWORD, add_track, client_app, entities, online, records, replica, replicas, send, set, settled_at, status,
    step_until,
};

const PATIENCE: Duration = Duration::from_secs(60);
/// Short, so the test waits little for a dead owner's projects.
const LEASE: Duration = Duration::from_millis(1500);

/// An authority server on a runtime of its own; killing it drops the runtime, so it ends as a
/// process killed with SIGKILL does: no goodbye, no lease released.
struct Process {
    server: Option<Loopback>,
    runtime: Option<Runtime>,
}

impl Process {
    fn start(url: &str, certificates: &Certificates, listen: SocketAddr, nats: &Nats, node: &str) -> Process {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let leases = LeaseOptions { node: format!("{node}-{}", TxId::new_v7()), ttl: LEASE };
        let options = ServerOptions { listen, leases, nats: Some(nats.url.clone()), ..ServerOptions::default() };
        let server = runtime.block_on(async {
            let store = PostgresStore::connect(url).await.unwrap();
            Loopback::start_as(store, certificates.clone(), options).await
        });
        Process { server: Some(server), runtime: Some(runtime) }
    }

    fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().addr
    }

    fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Drops its tasks (and their sockets) before returning.
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
        // Its tasks are gone with the runtime; what is left holds no socket.
        drop(self.server.take());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn app(addr: SocketAddr, certificates: &Certificates, user: &str, project: ProjectId, dir: &Path) -> App {
    let credentials = Credentials::Password { user: user.into(), password: PASSWORD.into() };
    let transport = QuicTransport::new(addr, "localhost", Trust::Pinned(certificates.hashes()), credentials);
    client_app(SyncPlugin::remote(transport, project, dir.to_path_buf()))
}

#[test]
fn postgres_apps_on_two_processes_converge_through_the_owner_and_after_it_dies() {
    let url = sandbox::postgres_url().unwrap();
    let nats = Nats::start().unwrap();
    let setup = Runtime::new().unwrap();
    let store = setup.block_on(PostgresStore::connect(&url)).unwrap();
    let (alice, bob) = (format!("alice-{}", TxId::new_v7()), format!("bob-{}", TxId::new_v7()));
    let project = setup.block_on(async {
        admin::add_user(&store, &alice, PASSWORD).await.unwrap();
        admin::add_user(&store, &bob, PASSWORD).await.unwrap();
        let project = admin::create_project(&store, "Two Rooms", &alice).await.unwrap();
        admin::grant(&store, project, &bob, Role::Editor).await.unwrap();
        project
    });
    let stored = || setup.block_on(store.load_project(project)).unwrap().unwrap();
    let certificates = loopback::certificates();
    let mut a = Process::start(&url, &certificates, loopback::LOOPBACK, &nats, "a");
    let b = Process::start(&url, &certificates, loopback::LOOPBACK, &nats, "b");

    // Alice's app opens the project on A, which takes it; bob's is served through A from B.
    let (_alices, alices) = replicas();
    let (_bobs, bobs) = replicas();
    let mut alice = app(a.addr(), &certificates, &alice, project, &alices);
    step_until(&mut [&mut alice], PATIENCE, |apps| online(apps[0]));
    let mut bob = app(b.addr(), &certificates, &bob, project, &bobs);
    step_until(&mut [&mut bob], PATIENCE, |apps| online(apps[0]));
    let base = stored().seq;
    let (drums, keys) = (TrackId::new_v7(), TrackId::new_v7());
    send(&mut alice, EditMsg::Edit(add_track(project, drums, "Drums")));
    send(&mut bob, EditMsg::Edit(add_track(project, keys, "Keys")));
    let both = Seq(base.0 + 2);
    step_until(&mut [&mut alice, &mut bob], PATIENCE, |apps| apps.iter().all(|app| settled_at(app, both)));

    // A dies. Bob's app is moved on and served by B once A's lease has run out; his edit made
    // meanwhile lands. Alice's app loses A and keeps her edit until A is back.
    let a_addr = a.addr();
    a.kill();
    send(&mut bob, EditMsg::Edit(vec![set(drums, Field::Track(TrackField::Gain(-3.0)))]));
    step_until(&mut [&mut bob], PATIENCE, |apps| settled_at(apps[0], Seq(both.0 + 1)));
    send(&mut alice, EditMsg::Edit(vec![set(keys, Field::Track(TrackField::Name("Keys (Rhodes)".into())))]));
    step_until(&mut [&mut alice, &mut bob], PATIENCE, |apps| !online(apps[0]) && online(apps[1]));
    assert_eq!(replica(&alice).unwrap().pending().len(), 1, "{:?}", status(&alice).connection);

    // A process comes back on A's address: alice's app reconnects there, and is served through B.
    let _a_again = Process::start(&url, &certificates, a_addr, &nats, "a-again");
    let all = Seq(both.0 + 2);
    step_until(&mut [&mut alice, &mut bob], PATIENCE, |apps| apps.iter().all(|app| settled_at(app, all)));
    let loaded = stored();
    assert_eq!(loaded.seq, all, "every edit once");
    let track = |id: TrackId| match loaded.state.entry(id.into()).map(|entry| &entry.record) {
        Some(Record::Track(track)) => track.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(track(drums).gain_db, -3.0);
    assert_eq!(track(keys).name, "Keys (Rhodes)");
    assert_eq!(entities(&mut alice), records(&loaded.state));
    assert_eq!(entities(&mut bob), records(&loaded.state));
}
