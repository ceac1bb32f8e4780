//! The authority over real QUIC on loopback, with real clients.

use ensemble_authority::server::ServerOptions;
use ensemble_protocol::frame::DEFAULT_MAX_FRAME;
use ensemble_protocol::wire::{CatchUp, ErrorCode, Rejection, close};
use ensemble_protocol::*;

use crate::harness::Clients;
use crate::harness::{self, Running, add_track, cast, committed, serve, set_gain};

async fn sqlite_authority(options: ServerOptions) -> (Running, harness::Cast, tempfile::TempDir) {
    let (store, dir) = harness::sqlite().await;
    let cast = cast(&store).await;
    (serve(&store, options).await, cast, dir)
}

fn gain_of(changes: &[RecordChange], track: TrackId) -> Option<f32> {
    changes.iter().find(|c| c.id == track.into()).and_then(|c| match &c.record {
        Some(Record::Track(track)) => Some(track.gain_db),
        _ => None,
    })
}

#[tokio::test]
async fn a_write_reaches_every_subscriber_with_its_values() {
    let (authority, cast, _dir) = sqlite_authority(ServerOptions::default()).await;
    let mut writer = authority.connect().await;
    let author = writer.login(&cast.editor, harness::PASSWORD).await.unwrap().user;
    let mut listener = authority.client(&cast.owner).await;
    let mut writers_other_connection = authority.client(&cast.editor).await;
    for client in [&mut writer, &mut listener, &mut writers_other_connection] {
        let subscription = client.subscribe(cast.project, None).await.unwrap();
        assert!(matches!(subscription.catch_up, CatchUp::Snapshot(ref records) if records.len() == 4));
    }
    let drums = TrackId::new_v7();
    let seq = committed(writer.write(&add_track(cast.project, drums, "Drums")).await.unwrap());
    let seq2 = committed(writer.write(&set_gain(cast.project, drums, -4.5, None)).await.unwrap());
    assert_eq!(seq2, seq.next());
    for client in [&mut listener, &mut writers_other_connection] {
        let ServerMsg::Bump(first) = client.recv().await.unwrap() else { panic!("expected a bump") };
        assert_eq!((first.seq, first.author), (seq, author));
        assert_eq!(gain_of(&first.changes, drums), Some(0.0));
        let ServerMsg::Bump(second) = client.recv().await.unwrap() else { panic!("expected a bump") };
        assert_eq!(second.seq, seq2);
        assert_eq!(gain_of(&second.changes, drums), Some(-4.5), "the bump carries the new value");
    }
}

#[tokio::test]
async fn a_stale_expect_is_rejected_with_the_current_value_and_nothing_is_stored() {
    let (authority, cast, _dir) = sqlite_authority(ServerOptions::default()).await;
    let mut alice = authority.client(&cast.owner).await;
    let mut bob = authority.client(&cast.editor).await;
    let drums = TrackId::new_v7();
    committed(alice.write(&add_track(cast.project, drums, "Drums")).await.unwrap());
    committed(bob.write(&set_gain(cast.project, drums, -3.0, Some(0.0))).await.unwrap());
    let stale = set_gain(cast.project, drums, -9.0, Some(0.0));
    let ServerMsg::Rejected { reason, .. } = alice.write(&stale).await.unwrap() else { panic!("expected a rejection") };
    let expected = OpFailure::Conflict { id: drums.into(), current: Field::Track(TrackField::Gain(-3.0)) };
    assert_eq!(reason, Rejection::Apply(ApplyError::Op { index: 0, reason: expected }));
    alice.send(&ClientMsg::GetRecords { project: cast.project, ids: vec![drums.into()] }).await.unwrap();
    let ServerMsg::Records { records, .. } = alice.recv().await.unwrap() else { panic!("expected records") };
    assert_eq!(gain_of(&records, drums), Some(-3.0));
}

#[tokio::test]
async fn a_replayed_transaction_gets_its_first_answer_and_bumps_nothing() {
    let (authority, cast, _dir) = sqlite_authority(ServerOptions::default()).await;
    let mut writer = authority.client(&cast.editor).await;
    let mut listener = authority.client(&cast.owner).await;
    listener.subscribe(cast.project, None).await.unwrap();
    let tx = add_track(cast.project, TrackId::new_v7(), "Once");
    let first = writer.write(&tx).await.unwrap();
    // The same id again, on the same connection and after a reconnect.
    assert_eq!(writer.write(&tx).await.unwrap(), first);
    let mut again = authority.client(&cast.editor).await;
    assert_eq!(again.write(&tx).await.unwrap(), first);
    // A rejected transaction keeps its rejection too.
    let bad = set_gain(cast.project, TrackId::new_v7(), 0.0, None);
    let rejected = writer.write(&bad).await.unwrap();
    assert!(matches!(rejected, ServerMsg::Rejected { .. }));
    assert_eq!(writer.write(&bad).await.unwrap(), rejected);
    // Exactly one bump reached the listener; the next one is for the next write.
    let ServerMsg::Bump(bump) = listener.recv().await.unwrap() else { panic!("expected a bump") };
    assert_eq!(bump.tx_id, tx.id);
    let next = committed(writer.write(&add_track(cast.project, TrackId::new_v7(), "Twice")).await.unwrap());
    let ServerMsg::Bump(bump) = listener.recv().await.unwrap() else { panic!("expected a bump") };
    assert_eq!(bump.seq, next);
    assert_eq!(next, committed(first).next());
}

#[tokio::test]
async fn a_viewer_reads_but_cannot_write() {
    let (authority, cast, _dir) = sqlite_authority(ServerOptions::default()).await;
    let mut viewer = authority.client(&cast.viewer).await;
    let subscription = viewer.subscribe(cast.project, None).await.unwrap();
    assert_eq!(subscription.role, Role::Viewer);
    let tx = add_track(cast.project, TrackId::new_v7(), "Nope");
    let answer = viewer.write(&tx).await.unwrap();
    assert_eq!(answer, ServerMsg::Rejected { tx_id: tx.id, reason: Rejection::Denied(Denied::ReadOnly) });
    let again = viewer.subscribe(cast.project, Some(subscription.seq)).await.unwrap();
    assert_eq!(again.seq, subscription.seq, "nothing was committed");
}

#[tokio::test]
async fn a_stranger_can_neither_subscribe_nor_read_nor_write() {
    let (authority, cast, _dir) = sqlite_authority(ServerOptions::default()).await;
    let mut stranger = authority.client(&cast.stranger).await;
    let refused = stranger.subscribe(cast.project, None).await.unwrap_err();
    assert!(refused.to_string().contains("not a member"), "{refused}");
    stranger.send(&ClientMsg::GetRecords { project: cast.project, ids: vec![cast.project.into()] }).await.unwrap();
    assert!(matches!(stranger.recv().await.unwrap(), ServerMsg::Error { code: ErrorCode::Denied, .. }));
    let tx = add_track(cast.project, TrackId::new_v7(), "Intruder");
    let answer = stranger.write(&tx).await.unwrap();
    assert_eq!(answer, ServerMsg::Rejected { tx_id: tx.id, reason: Rejection::Denied(Denied::NotMember) });
}

#[tokio::test]
async fn logins_need_the_right_password_and_tokens_resume() {
    let (authority, cast, _dir) = sqlite_authority(ServerOptions::default()).await;
    let mut client = authority.connect().await;
    let wrong = client.login(&cast.owner, "not the password").await.unwrap_err();
    assert!(wrong.to_string().contains("wrong password"), "{wrong}");
    assert!(client.login("nobody-at-all", harness::PASSWORD).await.is_err());
    let login = client.login(&cast.owner, harness::PASSWORD).await.unwrap();
    let mut resumed = authority.connect().await;
    assert_eq!(resumed.resume(login.token).await.unwrap().user, login.user);
    let mut forged = authority.connect().await;
    assert!(forged.resume(wire::SessionToken([9; 32])).await.is_err());
    // An authority that is not open refuses display-name joins.
    let mut guest = authority.connect().await;
    assert!(guest.join_open("Guest", None).await.is_err());
}

#[tokio::test]
async fn on_an_open_authority_anyone_joins_as_an_editor() {
    let (authority, cast, _dir) = sqlite_authority(ServerOptions { open: true, ..ServerOptions::default() }).await;
    let mut guest = authority.connect().await;
    assert!(guest.open);
    guest.join_open("Guest Drummer", None).await.unwrap();
    let subscription = guest.subscribe(cast.project, None).await.unwrap();
    assert_eq!(subscription.role, Role::Editor);
    committed(guest.write(&add_track(cast.project, TrackId::new_v7(), "Jam")).await.unwrap());
    // A password user's name cannot be taken by display name.
    let mut impostor = authority.connect().await;
    assert!(impostor.join_open(&cast.owner, None).await.is_err());
}

#[tokio::test]
async fn a_reconnecting_client_gets_only_what_changed_since_its_seq() {
    let (authority, cast, _dir) = sqlite_authority(ServerOptions::default()).await;
    let mut alice = authority.client(&cast.owner).await;
    let (drums, bass) = (TrackId::new_v7(), TrackId::new_v7());
    let seen = committed(alice.write(&add_track(cast.project, drums, "Drums")).await.unwrap());
    committed(alice.write(&add_track(cast.project, bass, "Bass")).await.unwrap());
    let delete_bass = Transaction::new(
        cast.project,
        vec![Op::ListRemove { target: cast.project.into(), item: bass.0 }, Op::Delete { target: bass.into() }],
    );
    let last = committed(alice.write(&delete_bass).await.unwrap());
    let mut bob = authority.client(&cast.editor).await;
    let subscription = bob.subscribe(cast.project, Some(seen)).await.unwrap();
    assert_eq!(subscription.seq, last);
    let CatchUp::Delta(changes) = subscription.catch_up else { panic!("expected a delta") };
    let mut ids: Vec<RecordId> = changes.iter().map(|c| c.id).collect();
    ids.sort();
    let mut expected = vec![RecordId::from(cast.project), bass.into()];
    expected.sort();
    assert_eq!(ids, expected, "the project (its track order) and the bass track, not the drums");
    assert!(changes.iter().any(|c| c.id == bass.into() && c.record.is_none()), "the bass arrives as a tombstone");
}

#[tokio::test]
async fn a_restarted_authority_has_everything_it_acknowledged() {
    let (store, _dir) = harness::sqlite().await;
    let cast = cast(&store).await;
    let authority = serve(&store, ServerOptions::default()).await;
    let mut alice = authority.client(&cast.owner).await;
    let drums = TrackId::new_v7();
    let create = add_track(cast.project, drums, "Drums");
    let first_create = alice.write(&create).await.unwrap();
    let gain = set_gain(cast.project, drums, -7.0, None);
    let first_gain = alice.write(&gain).await.unwrap();
    let seq = committed(first_gain.clone());
    drop(alice);
    authority.server.shutdown().await;
    let reopened = serve(&store, ServerOptions::default()).await;
    let mut alice = reopened.client(&cast.owner).await;
    let subscription = alice.subscribe(cast.project, None).await.unwrap();
    assert_eq!(subscription.seq, seq);
    let CatchUp::Snapshot(records) = subscription.catch_up else { panic!("expected a snapshot") };
    assert_eq!(gain_of(&records, drums), Some(-7.0));
    // The new process remembers no answers: replays are found in the log, whether they would
    // no longer apply (the track exists) or would apply again (a plain set).
    assert_eq!(alice.write(&create).await.unwrap(), first_create);
    assert_eq!(alice.write(&gain).await.unwrap(), first_gain);
    let next = committed(alice.write(&set_gain(cast.project, drums, -1.0, None)).await.unwrap());
    assert_eq!(next, seq.next(), "the replays bumped nothing");
}

async fn assert_closed_with(client: &mut ensemble_net::remote::Remote, code: u32, words: &str) {
    let error = loop {
        match client.recv().await {
            Ok(_) => continue,
            Err(error) => break error.to_string(),
        }
    };
    assert!(error.contains(&format!("code {code}")) && error.contains(words), "closed with: {error}");
}

#[tokio::test]
async fn bad_frames_close_only_their_own_connection() {
    let (authority, cast, _dir) = sqlite_authority(ServerOptions::default()).await;
    let mut good = authority.client(&cast.owner).await;
    // Garbage in a well-sized frame.
    let mut garbage = authority.client(&cast.editor).await;
    garbage.send_raw(&[0, 0, 0, 3, 0xff, 0xfe, 0xfd]).await.unwrap();
    assert_closed_with(&mut garbage, close::PROTOCOL_ERROR, "malformed").await;
    // A header announcing more than the limit.
    let mut oversize = authority.client(&cast.editor).await;
    oversize.send_raw(&(DEFAULT_MAX_FRAME as u32 + 1).to_be_bytes()).await.unwrap();
    assert_closed_with(&mut oversize, close::PROTOCOL_ERROR, "larger than").await;
    // A write before logging in.
    let mut early = authority.connect().await;
    early.send(&ClientMsg::Write(add_track(cast.project, TrackId::new_v7(), "Early"))).await.unwrap();
    assert_closed_with(&mut early, close::PROTOCOL_ERROR, "out of order").await;
    // The well-behaved client never noticed.
    committed(good.write(&add_track(cast.project, TrackId::new_v7(), "Still here")).await.unwrap());
}

#[tokio::test]
async fn a_client_speaking_another_protocol_version_is_refused() {
    let (authority, _cast, _dir) = sqlite_authority(ServerOptions::default()).await;
    // Connect at the QUIC level and send our own hello with a future version.
    let mut client = authority.connect().await;
    // The Remote already said hello; a second hello is out of order...
    client.send(&ClientMsg::Hello { protocol_version: PROTOCOL_VERSION, client: "again".into() }).await.unwrap();
    assert_closed_with(&mut client, close::PROTOCOL_ERROR, "out of order").await;
    // ...and a first hello with another version is refused as a refusal (nothing to retry), with
    // what the user must update.
    let hello = |version| {
        ensemble_net::remote::Remote::connect_with_version(
            authority.addr,
            "localhost",
            authority.trust.clone(),
            version,
        )
    };
    let older_client = hello(PROTOCOL_VERSION - 1).await.unwrap_err();
    let expected =
        format!("this authority is newer (protocol {PROTOCOL_VERSION}, this Ensemble speaks {})", PROTOCOL_VERSION - 1);
    assert!(
        matches!(&older_client, ensemble_net::Error::Denied(m) if m.contains(&expected) && m.ends_with("update Ensemble")),
        "{older_client}"
    );
    let newer_client = hello(PROTOCOL_VERSION + 1).await.unwrap_err();
    assert!(
        matches!(&newer_client, ensemble_net::Error::Denied(m) if m.contains("this authority is older")),
        "{newer_client}"
    );
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_cut_off_and_the_project_goes_on() {
    let options = ServerOptions { outbox_capacity: 16, ..ServerOptions::default() };
    let (authority, cast, _dir) = sqlite_authority(options).await;
    let mut sleeper = authority.client(&cast.viewer).await;
    sleeper.subscribe(cast.project, None).await.unwrap();
    let mut writer = authority.client(&cast.editor).await;
    let tracks: Vec<TrackId> = (0..10).map(|_| TrackId::new_v7()).collect();
    for track in &tracks {
        committed(writer.write(&add_track(cast.project, *track, "Track")).await.unwrap());
    }
    // Renaming ten tracks to long names makes bumps of about 3 kB, so the sleeper's QUIC
    // receive window (about 1.25 MB) fills after a few hundred of them.
    let rename = |i: usize| {
        let ops = tracks.iter().map(|track| {
            let value = Field::Track(TrackField::Name(format!("{i:0>250}")));
            Op::Set { target: (*track).into(), value, expect: None }
        });
        Transaction::new(cast.project, ops.collect())
    };
    let txs: Vec<Transaction> = (0..1000).map(rename).collect();
    // The writer keeps up with its own answers (at most 8 in flight), so it is never slow.
    for window in txs.chunks(8) {
        for tx in window {
            writer.send(&ClientMsg::Write(tx.clone())).await.unwrap();
        }
        for _ in window {
            assert!(matches!(writer.recv().await.unwrap(), ServerMsg::Committed { .. }));
        }
    }
    assert_closed_with(&mut sleeper, close::SLOW_CONSUMER, "slow consumer").await;
}

/// The next presence message a client receives, skipping anything else.
async fn next_presence(client: &mut ensemble_net::remote::Remote) -> PeerPresence {
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), client.recv()).await {
            Ok(Ok(ServerMsg::Presence { peer, .. })) => return peer,
            Ok(Ok(_)) => continue,
            other => panic!("no presence arrived: {other:?}"),
        }
    }
}

#[tokio::test]
async fn presence_reaches_the_other_subscribers_newcomers_and_ends_when_its_session_leaves() {
    let (authority, cast, _dir) = sqlite_authority(ServerOptions::default()).await;
    let mut olive = authority.connect().await;
    let olive_id = olive.login(&cast.owner, harness::PASSWORD).await.unwrap().user;
    let mut ed = authority.client(&cast.editor).await;
    let mut stranger = authority.client(&cast.stranger).await;
    for client in [&mut olive, &mut ed] {
        client.subscribe(cast.project, None).await.unwrap();
    }
    // Someone who is not subscribed (a stranger cannot be) tells nobody anything.
    let sneaky = Presence { playhead: Ticks(1), ..Presence::default() };
    stranger.send(&ClientMsg::Presence { project: cast.project, presence: sneaky }).await.unwrap();
    let clip = RecordId::new_v7();
    let selection: Vec<RecordId> = std::iter::once(clip).chain((0..300).map(|_| RecordId::new_v7())).collect();
    let presence = Presence { playhead: Ticks(1920), playing: true, selection, pointer: Some(Ticks(960)) };
    olive.send(&ClientMsg::Presence { project: cast.project, presence: presence.clone() }).await.unwrap();
    let seen = next_presence(&mut ed).await;
    assert_eq!((seen.user, seen.name.as_str()), (olive_id, cast.owner.as_str()));
    let relayed = seen.presence.expect("present");
    assert_eq!((relayed.playhead, relayed.playing, relayed.pointer), (Ticks(1920), true, Some(Ticks(960))));
    assert_eq!(relayed.selection.len(), wire::MAX_PRESENCE_SELECTION, "the authority bounds a selection");
    assert_eq!(relayed.selection[0], clip);

    // A newcomer is told who is here; the sender never hears its own presence back.
    let mut vera = authority.client(&cast.viewer).await;
    vera.subscribe(cast.project, None).await.unwrap();
    assert_eq!(next_presence(&mut vera).await.session, seen.session);
    let drums = TrackId::new_v7();
    committed(ed.write(&add_track(cast.project, drums, "Drums")).await.unwrap());
    loop {
        match olive.recv().await.unwrap() {
            ServerMsg::Bump(_) => break,
            ServerMsg::Presence { .. } => panic!("olive heard her own presence"),
            _ => {}
        }
    }

    // Leaving withdraws it.
    olive.close().await;
    for client in [&mut ed, &mut vera] {
        let left = next_presence(client).await;
        assert_eq!((left.session, left.presence), (seen.session, None));
    }
}

/// This machine's address on its LAN (the interface a datagram to another network would leave
/// by; nothing is sent).
fn lan_address() -> std::net::IpAddr {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    probe.connect("192.0.2.255:9").or_else(|_| probe.connect("10.255.255.255:9")).unwrap();
    let ip = probe.local_addr().unwrap().ip();
    assert!(!ip.is_loopback() && !ip.is_unspecified(), "this test needs a network interface besides loopback");
    ip
}

#[tokio::test]
async fn a_jam_door_lets_in_other_machines_only_with_the_join_code() {
    use ensemble_authority::server::{JamDoor, Server};
    use ensemble_authority::tls::Certificates;
    use ensemble_net::remote::Remote;
    use ensemble_net::tls::Trust;
    use ensemble_protocol::jam::JoinCode;
    let door = JamDoor::new();
    let options = ServerOptions {
        listen: "0.0.0.0:0".parse().unwrap(),
        open: true,
        door: Some(door.clone()),
        ..ServerOptions::default()
    };
    let (store, _dir) = harness::sqlite().await;
    let server = Server::start(store, Certificates::self_signed().unwrap(), options).await.unwrap();
    let port = server.local_addr().unwrap().port();
    let trust = Trust::Pinned(server.certificate_hashes());
    let from_lan = || Remote::connect(std::net::SocketAddr::new(lan_address(), port), "localhost", trust.clone());
    // No jam yet: this machine joins, nobody else does, whatever they type.
    let here = Remote::connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)), "localhost", trust.clone());
    here.await.unwrap().join_open("Host", None).await.unwrap();
    let refused = from_lan().await.unwrap().join_open("Drummer", Some("ABCD-EFGH")).await.unwrap_err();
    assert!(refused.to_string().contains("join code"), "{refused}");
    // A jam: its code lets people in, however typed; another code or none does not.
    let code = JoinCode::from_random([1, 2, 3, 4, 5]);
    door.set(Some(code.clone()));
    let typed = code.to_string().to_lowercase();
    from_lan().await.unwrap().join_open("Drummer", Some(&typed)).await.unwrap();
    assert!(from_lan().await.unwrap().join_open("Bassist", None).await.is_err());
    let wrong = JoinCode::from_random([1, 2, 3, 4, 6]).to_string();
    assert!(from_lan().await.unwrap().join_open("Bassist", Some(&wrong)).await.is_err());
    // The jam ends: the door closes again.
    door.set(None);
    assert!(from_lan().await.unwrap().join_open("Bassist", Some(&typed)).await.is_err());
    server.shutdown().await;
}
