//! Clients in the authority's own process, over in-memory connections: the same sessions as
//! over QUIC (login, writes, bumps, transfers, the close reasons), with no socket or TLS.

use ensemble_authority::files::FileOptions;
use ensemble_authority::server::ServerOptions;
use ensemble_net::conn::pipe::Pipe;
use ensemble_net::remote::{Remote, Uploaded};
use ensemble_protocol::wire::CatchUp;
use ensemble_protocol::*;

use crate::harness::Clients;
use crate::harness::{self, add_track, cast, committed, serve};

async fn in_process(running: &harness::Running, user: &str) -> Remote<Pipe> {
    let pipe = running.server.in_process().connect().unwrap();
    let mut remote = Remote::over(pipe, PROTOCOL_VERSION).await.unwrap();
    remote.login(user, harness::PASSWORD).await.unwrap();
    remote
}

#[tokio::test]
async fn an_in_process_client_and_a_quic_client_share_a_project() {
    let (store, _dir) = harness::sqlite().await;
    let cast = cast(&store).await;
    let running = serve(&store, ServerOptions::default()).await;
    let mut local = in_process(&running, &cast.editor).await;
    let mut remote = running.client(&cast.owner).await;
    for client_catch_up in [
        local.subscribe(cast.project, None).await.unwrap().catch_up,
        remote.subscribe(cast.project, None).await.unwrap().catch_up,
    ] {
        assert!(matches!(client_catch_up, CatchUp::Snapshot(records) if records.len() == 4));
    }
    let drums = TrackId::new_v7();
    let first = committed(local.write(&add_track(cast.project, drums, "Drums")).await.unwrap());
    let ServerMsg::Bump(bump) = remote.recv().await.unwrap() else { panic!("expected a bump") };
    assert_eq!(bump.seq, first, "the QUIC client hears the in-process write");
    let bass = TrackId::new_v7();
    let second = committed(remote.write(&add_track(cast.project, bass, "Bass")).await.unwrap());
    let mut heard = Vec::new();
    while heard.len() < 2 {
        let ServerMsg::Bump(bump) = local.recv().await.unwrap() else { panic!("expected a bump") };
        heard.push(bump.seq);
    }
    assert_eq!(heard, [first, second], "its own write, then the QUIC client's");
}

#[tokio::test]
async fn files_move_over_an_in_process_connection_and_shutdown_says_why() {
    let (store, dir) = harness::sqlite().await;
    let cast = cast(&store).await;
    let files = FileOptions::in_dir(dir.path().join("files"));
    let running = serve(&store, ServerOptions { files: Some(files), ..ServerOptions::default() }).await;
    let local = in_process(&running, &cast.editor).await;
    let wav = ensemble_testkit::tone_wav(dir.path(), "tone.wav", 1, 440.0);
    let uploaded = local.upload(cast.project, &wav, "tone.wav", None).await.unwrap();
    let Uploaded::Stored { asset, deduplicated: false } = uploaded else { panic!("not stored: {uploaded:?}") };
    let mut bytes = Vec::new();
    let request =
        transfer::TransferRequest::Download { project: cast.project, asset, what: transfer::Served::Audio, offset: 0 };
    local.download_into(request, &mut bytes).await.unwrap();
    assert_eq!(bytes, std::fs::read(&wav).unwrap(), "the same bytes come back");

    let mut listening = in_process(&running, &cast.owner).await;
    listening.subscribe(cast.project, None).await.unwrap();
    running.server.shutdown().await;
    let error = listening.recv().await.unwrap_err().to_string();
    assert!(error.contains("shutting down"), "the client is told why: {error}");
}
