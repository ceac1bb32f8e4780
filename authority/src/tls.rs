//! Certificates, and the authority's QUIC configuration built on them.
//!
//! On first start the authority makes a self-signed certificate in its data directory and
//! prints its SHA-256 fingerprint; clients pin that fingerprint (the same hash browsers use for
//! WebTransport's `serverCertificateHashes`). A hosted authority takes a real certificate with
//! `--cert/--key`, and its clients trust a configured CA instead.

use std::path::Path;
use std::sync::Arc;

use ensemble_net::tls::{Fingerprint, bulk_transfers, provider};
use ensemble_protocol::wire::ALPN;
use quinn::crypto::rustls::QuicServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Error;

/// A certificate chain and its private key.
#[derive(Debug)]
pub struct Identity {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity { chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

impl Identity {
    /// The leaf certificate's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.chain.first().map_or(&[][..], |cert| cert.as_ref()))
    }

    /// A fresh self-signed certificate for `localhost` and this machine's name.
    pub fn self_signed() -> Result<Self, Error> {
        let mut names = vec!["localhost".to_owned(), "ensemble-authority".to_owned()];
        if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
            names.push(host.trim().to_owned());
        }
        names.retain(|name| !name.is_empty());
        let made = rcgen::generate_simple_self_signed(names).map_err(|e| Error::Tls(e.to_string()))?;
        Ok(Identity {
            chain: vec![made.cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der())),
        })
    }

    /// The certificate in `dir` (`cert.der`, `key.der`), made there on first use.
    pub fn load_or_create(dir: &Path) -> Result<Self, Error> {
        let (cert_path, key_path) = (dir.join("cert.der"), dir.join("key.der"));
        if cert_path.exists() && key_path.exists() {
            let cert = std::fs::read(&cert_path)?;
            let key = std::fs::read(&key_path)?;
            return Ok(Identity {
                chain: vec![CertificateDer::from(cert)],
                key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            });
        }
        let identity = Identity::self_signed()?;
        std::fs::create_dir_all(dir)?;
        write_private(&key_path, identity.key.secret_der())?;
        std::fs::write(&cert_path, identity.chain[0].as_ref())?;
        Ok(identity)
    }

    /// A certificate chain and key from PEM files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, Error> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| Error::Tls(format!("{}: {e}", cert.display())))?;
        if chain.is_empty() {
            return Err(Error::Tls(format!("{} holds no certificate", cert.display())));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| Error::Tls(format!("{}: {e}", key.display())))?;
        Ok(Identity { chain, key })
    }
}

/// Writes a secret so only its owner can read it.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)?;
    Ok(())
}

/// The QUIC server configuration for `identity`.
pub fn server_config(identity: Identity) -> Result<quinn::ServerConfig, Error> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicServerConfig::try_from(tls).map_err(|e| Error::Tls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(
        std::time::Duration::from_secs(30).try_into().map_err(|_| Error::Tls("idle timeout".into()))?,
    ));
    transport.keep_alive_interval(Some(std::time::Duration::from_secs(5)));
    bulk_transfers(&mut transport, true);
    config.transport_config(Arc::new(transport));
    Ok(config)
}
