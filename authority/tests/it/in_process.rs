//! Clients in the authority's own process, over in-memory connections: the same sessions as
//! over QUIC (login, writes, bumps, transfers, the close reasons), with no socket or TLS.

use ensemble_authority::files::FileOptions;
use ensemble_authority::server::ServerOptions;
use ensemble_net::remote::Uploaded;
use ensemble_protocol::*;

use crate::harness::Clients;
use crate::harness::{self, cast, serve};

#[tokio::test]
async fn an_in_process_client_and_a_quic_client_share_a_project() {
    let (store, _dir) = harness::sqlite().await;
    let cast = cast(&store).await;
    let running = serve(&store, ServerOptions::default()).await;
    let mut local = running.in_process(&cast.editor, harness::PASSWORD).await;
    let mut remote = running.client(&cast.owner).await;
    harness::edits_cross(&mut local, &mut remote, cast.project).await;
}

#[tokio::test]
async fn files_move_over_an_in_process_connection_and_shutdown_says_why() {
    let (store, dir) = harness::sqlite().await;
    let cast = cast(&store).await;
    // No jobs: a transcode finishing first would serve the file as FLAC, not these bytes.
    let files = FileOptions { workers: 0, ..FileOptions::in_dir(dir.path().join("files")) };
    let running = serve(&store, ServerOptions { files: Some(files), ..ServerOptions::default() }).await;
    let local = running.in_process(&cast.editor, harness::PASSWORD).await;
    let wav = ensemble_testkit::tone_wav(dir.path(), "tone.wav", 1, 440.0);
    let uploaded = local.upload(cast.project, &wav, "tone.wav", None).await.unwrap();
    let Uploaded::Stored { asset, deduplicated: false } = uploaded else { panic!("not stored: {uploaded:?}") };
    let mut bytes = Vec::new();
    let request =
        transfer::TransferRequest::Download { project: cast.project, asset, what: transfer::Served::Audio, offset: 0 };
    local.download_into(request, &mut bytes).await.unwrap();
    assert_eq!(bytes, std::fs::read(&wav).unwrap(), "the same bytes come back");

    let mut listening = running.in_process(&cast.owner, harness::PASSWORD).await;
    listening.subscribe(cast.project, None).await.unwrap();
    running.server.shutdown().await;
    let error = listening.recv().await.unwrap_err().to_string();
    assert!(error.contains("shutting down"), "the client is told why: {error}");
}
