//! Browsers' sessions: WebTransport (HTTP/3) on the same UDP port as native QUIC, pinned by the
//! certificate hashes as `serverCertificateHashes` pins them, carrying the same frames, logins,
//! transfers and close reasons.

use ensemble_authority::files::FileOptions;
use ensemble_authority::server::{ServerOptions, WEBTRANSPORT_PATH};
use ensemble_net::conn::WebTransportConnection;
use ensemble_net::remote::{Remote, Uploaded};
use ensemble_protocol::*;
use ensemble_testkit::loopback::Loopback;

use crate::harness::{self, Clients, cast};

fn url(authority: &Loopback, path: &str) -> String {
    format!("https://localhost:{}{path}", authority.addr.port())
}

async fn browser(authority: &Loopback, version: u32) -> Result<Remote<WebTransportConnection>, ensemble_net::Error> {
    let hashes = authority.server.certificate_hashes();
    let session = WebTransportConnection::dial(&url(authority, WEBTRANSPORT_PATH), &hashes).await?;
    Remote::over(session, version).await
}

#[tokio::test]
async fn a_browser_session_and_a_native_one_share_a_project_on_one_port() {
    let (store, _dir) = harness::sqlite().await;
    let cast = cast(&store).await;
    let authority = Loopback::start(store, ServerOptions::default()).await;
    let mut web = browser(&authority, PROTOCOL_VERSION).await.unwrap();
    web.login(&cast.editor, harness::PASSWORD).await.unwrap();
    let mut native = authority.client(&cast.owner).await;
    harness::edits_cross(&mut web, &mut native, cast.project).await;
    authority.server.shutdown().await;
}

#[tokio::test]
async fn files_move_over_webtransport_streams() {
    let (store, dir) = harness::sqlite().await;
    let cast = cast(&store).await;
    // No jobs: a transcode finishing first would serve the file as FLAC, not these bytes.
    let files = FileOptions { workers: 0, ..FileOptions::in_dir(dir.path().join("files")) };
    let authority = Loopback::start(store, ServerOptions { files: Some(files), ..ServerOptions::default() }).await;
    let mut web = browser(&authority, PROTOCOL_VERSION).await.unwrap();
    web.login(&cast.editor, harness::PASSWORD).await.unwrap();
    let wav = ensemble_testkit::tone_wav(dir.path(), "take.wav", 2, 330.0);
    let bytes = std::fs::read(&wav).unwrap();
    let hash = ensemble_net::hash::hash_reader(&bytes[..]).unwrap();
    // A browser has the picked file's bytes, not a path.
    let source = std::io::Cursor::new(bytes.clone());
    let uploaded = web.upload_from(cast.project, source, "take.wav", hash, None, |_, _| {}).await.unwrap();
    let Uploaded::Stored { asset, .. } = uploaded else { panic!("not stored: {uploaded:?}") };
    let mut back = Vec::new();
    let request =
        transfer::TransferRequest::Download { project: cast.project, asset, what: transfer::Served::Audio, offset: 0 };
    web.download_into(request, &mut back).await.unwrap();
    assert_eq!(back, bytes, "the same bytes come back");
    authority.server.shutdown().await;
}

#[tokio::test]
async fn a_browser_is_refused_as_plainly_as_a_native_client() {
    let (store, _dir) = harness::sqlite().await;
    let authority = Loopback::start(store, ServerOptions::default()).await;
    let older = browser(&authority, PROTOCOL_VERSION - 1).await.unwrap_err();
    assert!(
        matches!(&older, ensemble_net::Error::Denied(reason) if reason.ends_with("update Ensemble")),
        "another protocol version is refused with advice: {older}"
    );
    let hashes = authority.server.certificate_hashes();
    let elsewhere = WebTransportConnection::dial(&url(&authority, "/somewhere"), &hashes).await;
    assert!(elsewhere.is_err(), "only {WEBTRANSPORT_PATH} opens a session");
    let stranger = [ensemble_net::tls::Fingerprint([9; 32])];
    assert!(WebTransportConnection::dial(&url(&authority, WEBTRANSPORT_PATH), &stranger).await.is_err());
    authority.server.shutdown().await;
}
