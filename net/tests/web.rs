//! A page reaching a real authority over WebTransport (headless Chromium, web-sys): login,
//! subscribe, an edit and its bump, and a file up and back (the same audio), through the same `Transport` the
//! native client uses. `cargo xtask web-test` starts the authority and tells this test where it
//! is; natively this file is empty.
#![cfg(target_arch = "wasm32")]
// `wasm_bindgen_test` functions are tests, though clippy's test allowances do not know them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ensemble_net::tls::Fingerprint;
use ensemble_net::transport::{BrowserTransport, Credentials, Transport};
use ensemble_protocol::transfer::{Served, TransferRequest};
use ensemble_protocol::*;
use ensemble_testkit::records;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// The authority `cargo xtask web-test` started: its WebTransport URL, certificate hashes and a
/// project, as `URL HASH,HASH PROJECT`.
fn authority() -> (String, Vec<Fingerprint>, ProjectId) {
    let Some(spec) = option_env!("ENSEMBLE_TEST_AUTHORITY") else {
        panic!("run through `cargo xtask web-test`, which starts the authority")
    };
    let mut parts = spec.split(' ');
    let url = parts.next().unwrap().to_owned();
    let hashes = parts.next().unwrap().split(',').map(|hash| Fingerprint::parse(hash).unwrap()).collect();
    let project = ProjectId(parts.next().unwrap().parse().unwrap());
    (url, hashes, project)
}

/// A second of a 16-bit mono tone, as a WAV file's bytes.
fn tone() -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut bytes = std::io::Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut bytes, spec).unwrap();
    for i in 0..48_000 {
        writer.write_sample(((i as f32 * 0.0576).sin() * 9_000.0) as i16).unwrap();
    }
    writer.finalize().unwrap();
    bytes.into_inner()
}

#[wasm_bindgen_test]
async fn a_page_edits_and_moves_files_over_webtransport() {
    let (url, hashes, project) = authority();
    let credentials = Credentials::Open { display_name: "Page".into(), join_code: None };
    let mut transport = BrowserTransport::new(&url, hashes, credentials);
    let mut link = transport.connect().await.unwrap();
    link.outgoing.send(ClientMsg::Subscribe { project, since: None }).await.unwrap();
    let next = async |link: &mut ensemble_net::transport::Link| link.incoming.recv().await.unwrap().unwrap();
    assert!(matches!(next(&mut link).await, ServerMsg::Subscribed { .. }), "the page is subscribed");

    let track = TrackId::new_v7();
    let edit = Transaction::new(project, records::add_track(project, track, "From the browser"));
    link.outgoing.send(ClientMsg::Write(edit.clone())).await.unwrap();
    let mut heard = (false, false);
    while heard != (true, true) {
        match next(&mut link).await {
            ServerMsg::Committed { tx_id, .. } if tx_id == edit.id => heard.0 = true,
            ServerMsg::Bump(bump) if bump.tx_id == edit.id => heard.1 = true,
            ServerMsg::Rejected { reason, .. } => panic!("the edit was refused: {reason:?}"),
            _ => {}
        }
    }

    // A picked file's bytes go up on a stream of their own and come back the same.
    let bytes = tone();
    let hash = ensemble_net::hash::hash_reader(&bytes[..]).unwrap();
    let source = Box::new(std::io::Cursor::new(bytes.clone()));
    let asset = transport.upload(project, source, "tone.wav", hash, |_, _| {}).await.unwrap();
    let mut back = Vec::new();
    let request = TransferRequest::Download { project, asset, what: Served::Audio, offset: 0 };
    transport.download(request, &mut back).await.unwrap();
    // The authority serves the upload, or its lossless FLAC once the transcode job has run:
    // either way the same samples.
    let decode = |bytes: Vec<u8>| ensemble_audio::decode::decode_bytes(bytes, std::path::Path::new("tone"), None);
    assert_eq!(decode(back).unwrap(), decode(bytes).unwrap());
    link.close().await;
}
