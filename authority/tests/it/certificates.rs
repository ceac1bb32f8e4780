//! Self-signed certificates a browser pins by hash (ECDSA P-256, valid under 14 days), and their
//! rotation: open connections never notice, and a client that pinned both published hashes
//! keeps connecting.

use std::process::Command;
use std::time::{Duration, SystemTime};

use ensemble_authority::server::ServerOptions;
use ensemble_authority::tls::{Certificates, ROTATE_EVERY};
use ensemble_net::remote::Remote;
use ensemble_net::tls::Trust;
use ensemble_protocol::*;
use ensemble_testkit::loopback::Loopback;

use crate::harness::{self, Clients, add_track, cast, committed};

/// Runs `openssl x509` on a DER certificate; returns its exit status and what it printed.
fn openssl(der: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-in"])
        .arg(der)
        .args(args)
        .output()
        .expect("openssl (installed by `cargo xtask setup`)");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn self_signed_certificates_are_ecdsa_p256_and_valid_for_less_than_fourteen_days() {
    let dir = tempfile::tempdir().unwrap();
    Certificates::self_signed_in(dir.path()).unwrap();
    for name in ["current.der", "next.der"] {
        let der = dir.path().join(name);
        let (_, text) = openssl(&der, &["-text"]);
        assert!(text.contains("id-ecPublicKey") && text.contains("prime256v1"), "{name}: ECDSA P-256:\n{text}");
        assert!(text.contains("ecdsa-with-SHA256"), "{name}: signed with ECDSA SHA-256");
        let day = 24 * 3600;
        // `-checkend N` succeeds when the certificate is still valid N seconds from now.
        assert!(openssl(&der, &["-checkend", &(12 * day).to_string()]).0, "{name}: valid for 12 more days");
        assert!(!openssl(&der, &["-checkend", &(14 * day).to_string()]).0, "{name}: expired within 14 days");
        let (_, dates) = openssl(&der, &["-startdate"]);
        assert!(dates.starts_with("notBefore="), "{dates}");
    }
}

#[tokio::test]
async fn a_rotation_keeps_open_connections_and_clients_that_pinned_both_hashes() {
    let (store, _dir) = harness::sqlite().await;
    let cast = cast(&store).await;
    let authority = Loopback::start(store, ServerOptions::default()).await;
    let before = authority.server.certificate_hashes();
    assert_eq!(before.len(), 2, "the current hash and the next");
    let mut open = authority.client(&cast.editor).await;

    authority.server.certificates().rotate().unwrap();
    let after = authority.server.certificate_hashes();
    assert_eq!(after[0], before[1], "the next certificate took over");
    assert_ne!(after[1], before[0], "and a fresh one is next");
    assert_eq!(authority.server.fingerprint(), after[0]);

    let drums = TrackId::new_v7();
    committed(open.write(&add_track(cast.project, drums, "Drums")).await.unwrap());
    let pinned_both = Remote::connect(authority.addr, "localhost", Trust::Pinned(before.clone())).await;
    pinned_both.expect("a client that pinned both hashes connects after the rotation");
    let pinned_old = Remote::connect(authority.addr, "localhost", Trust::Pinned(vec![before[0]])).await;
    assert!(pinned_old.is_err(), "the retired certificate is no longer served");
    authority.server.shutdown().await;
}

#[test]
fn the_pair_outlives_a_restart_and_rotates_when_it_fell_due_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let first = Certificates::self_signed_in(dir.path()).unwrap().hashes();
    let again = Certificates::self_signed_in(dir.path()).unwrap();
    assert_eq!(again.hashes(), first, "a restart presents the same certificates");
    assert!(again.rotation_due().unwrap() > ROTATE_EVERY - Duration::from_secs(60));

    // Stopped for longer than a rotation: the next certificate takes over on start.
    let long_ago = SystemTime::now() - ROTATE_EVERY - Duration::from_secs(3600);
    let secs = long_ago.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    std::fs::write(dir.path().join("rotated-at"), secs.to_string()).unwrap();
    let later = Certificates::self_signed_in(dir.path()).unwrap().hashes();
    assert_eq!(later[0], first[1], "the published next certificate is the one served");
    assert_ne!(later[1], first[0]);
}
