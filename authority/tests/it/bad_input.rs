//! Input meant to hurt: floods of logins and presence, frames that stall, names that lie. Each
//! costs only the client that sends it, and is refused with its reason.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use ensemble_authority::auth::{LoginGuard, LoginLimits};
use ensemble_authority::server::ServerOptions;
use ensemble_protocol::wire::Presence;
use ensemble_protocol::*;

use crate::harness::Clients;
use crate::harness::{self, PASSWORD, add_track, committed};

#[tokio::test]
async fn names_no_one_could_have_are_refused_with_their_reason() {
    let (store, _dir) = harness::sqlite().await;
    let cast = harness::cast(&store).await;
    let open = harness::serve(&store, ServerOptions { open: true, ..ServerOptions::default() }).await;
    let cases = [
        ("a".repeat(257), "at most 256"),
        ("b".repeat(1_000_000), "at most 256"),
        ("   ".to_owned(), "empty"),
        ("Bob\u{0}".to_owned(), "control characters (U+0000)"),
        ("Ding\u{7}".to_owned(), "control characters (U+0007)"),
        ("admin\u{202E}nimda".to_owned(), "bidirectional"),
        ("x\u{2066}y".to_owned(), "bidirectional"),
    ];
    for (name, reason) in &cases {
        let refused = open.connect().await.join_open(name, None).await.unwrap_err().to_string();
        assert!(refused.contains(reason), "{} chars: {refused}", name.chars().count());
        let refused = open.connect().await.login(name, PASSWORD).await.unwrap_err().to_string();
        assert!(refused.contains(reason) && !refused.contains("wrong password"), "{refused}");
    }
    // A name with a password is not taken over by a display-name join, and says why.
    let refused = open.connect().await.join_open(&cast.owner, None).await.unwrap_err().to_string();
    assert!(refused.contains("log in with it"), "{refused}");
    // A good display name still joins.
    open.connect().await.join_open("Drummer ✓", None).await.unwrap();
}

fn strict_limits() -> LoginLimits {
    LoginLimits {
        concurrent_checks: 2,
        failures_per_account: 3,
        failures_per_address: 5,
        window: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn failed_logins_are_limited_per_account_and_per_address_across_connections() {
    let (store, _dir) = harness::sqlite().await;
    let cast = harness::cast(&store).await;
    let authority = harness::serve(&store, ServerOptions { logins: strict_limits(), ..ServerOptions::default() }).await;
    // A new connection for every guess: the limit is not per connection.
    for _ in 0..3 {
        let wrong = authority.connect().await.login(&cast.owner, "not the password").await.unwrap_err();
        assert!(wrong.to_string().contains("wrong password"), "{wrong}");
    }
    let locked = authority.connect().await.login(&cast.owner, PASSWORD).await.unwrap_err().to_string();
    assert!(locked.contains("too many failed logins for this account; try again in"), "{locked}");
    // Another account from the same address: two more failures use up the address.
    for _ in 0..2 {
        authority.connect().await.login(&cast.editor, "not the password").await.unwrap_err();
    }
    let locked = authority.connect().await.login(&cast.viewer, PASSWORD).await.unwrap_err().to_string();
    assert!(locked.contains("too many failed logins from your address"), "{locked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_checks_run_two_at_a_time_however_many_arrive() {
    let (store, _dir) = harness::sqlite().await;
    let limits = LoginLimits { failures_per_address: 1000, failures_per_account: 1000, ..strict_limits() };
    let guard = Arc::new(LoginGuard::new(limits));
    let address = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..16 {
        let (guard, store, name) = (guard.clone(), store.clone(), harness::unique(&format!("guess{i}")));
        guesses.spawn(async move { guard.login(&store, address, &name, "nope").await.map(|answer| answer.is_none()) });
    }
    while let Some(refused) = guesses.join_next().await {
        assert!(refused.unwrap().unwrap());
    }
    assert_eq!(guard.peak_checks(), 2, "each check holds ~19 MiB: at most two may run at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presence_flood_costs_only_the_client_that_sends_it() {
    let (store, _dir) = harness::sqlite().await;
    let cast = harness::cast(&store).await;
    let options = ServerOptions { outbox_capacity: 32, ..ServerOptions::default() };
    let authority = harness::serve(&store, options).await;
    // The editor subscribes and then reads nothing while the viewer floods.
    let mut editor = authority.client(&cast.editor).await;
    editor.subscribe(cast.project, None).await.unwrap();
    let mut viewer = authority.client(&cast.viewer).await;
    viewer.subscribe(cast.project, None).await.unwrap();
    for tick in 0..40_000u64 {
        let presence = Presence { playhead: Ticks(tick as i64), ..Presence::default() };
        viewer.send(&ClientMsg::Presence { project: cast.project, presence }).await.unwrap();
    }
    committed(editor.write(&add_track(cast.project, TrackId::new_v7(), "Still here")).await.unwrap());
    let mut relayed = 0;
    while let Ok(Ok(message)) = tokio::time::timeout(Duration::from_millis(300), editor.recv()).await {
        relayed += usize::from(matches!(message, ServerMsg::Presence { .. }));
    }
    assert!(relayed < 1000, "{relayed} of 40,000 presence updates reached the editor");
}

#[tokio::test]
async fn a_frame_that_starts_and_stalls_closes_its_connection() {
    let (store, _dir) = harness::sqlite().await;
    let cast = harness::cast(&store).await;
    let options = ServerOptions { frame_deadline: Duration::from_millis(300), ..ServerOptions::default() };
    let authority = harness::serve(&store, options).await;
    let mut idle = authority.client(&cast.owner).await;
    let mut stalled = authority.client(&cast.editor).await;
    stalled.send_raw(&[0]).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), stalled.recv()).await.expect("never closed");
    let reason = closed.unwrap_err().to_string();
    assert!(reason.contains("did not finish within 0.3 s"), "{reason}");
    // A logged-in connection that sends nothing at all stays.
    committed(idle.write(&add_track(cast.project, TrackId::new_v7(), "Idle a while")).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_costs_at_most_its_outbox_in_bytes_however_few_frames() {
    let (store, _dir) = harness::sqlite().await;
    let cast = harness::cast(&store).await;
    // Room for many frames, but only 64 KiB of them: long names make each bump big.
    let options = ServerOptions { outbox_capacity: 100_000, outbox_bytes: 64 << 10, ..ServerOptions::default() };
    let authority = harness::serve(&store, options).await;
    let mut slow = authority.client(&cast.viewer).await;
    slow.subscribe(cast.project, None).await.unwrap();
    let mut writer = authority.client(&cast.owner).await;
    let name = "a long track name ".repeat(14);
    // The slow client's own receive window takes the first megabyte or so; then the outbox
    // fills by bytes long before it would by frames.
    let mut closed = None;
    for _ in 0..1_000 {
        committed(writer.write(&add_track(cast.project, TrackId::new_v7(), &name)).await.unwrap());
        closed = slow.closed();
        if closed.is_some() {
            break;
        }
    }
    let closed = closed.expect("a client that reads nothing was never cut off").to_string();
    assert!(closed.contains("slow consumer"), "{closed}");
}
