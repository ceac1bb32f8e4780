//! Certificates, and the QUIC configurations built on them.
//!
//! On first start the authority makes a self-signed certificate in its data directory and
//! prints its SHA-256 fingerprint; clients pin that fingerprint (the same hash browsers use for
//! WebTransport's `serverCertificateHashes`). A hosted authority takes a real certificate with
//! `--cert/--key`, and its clients trust a configured CA instead.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use ensemble_protocol::wire::ALPN;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::Error;

/// A SHA-256 certificate fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(cert: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, cert);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }

    /// Parses the hex form [`Display`](fmt::Display) prints (colons optional).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let hex: String = text.chars().filter(|c| *c != ':').collect();
        let bad = || Error::Config(format!("{text:?} is not a SHA-256 fingerprint (64 hex digits)"));
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Fingerprint(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex: Vec<String> = self.0.iter().map(|byte| format!("{byte:02X}")).collect();
        f.write_str(&hex.join(":"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

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

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
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

/// Uploads move megabytes at a time: the authority's receive windows and the client's send
/// window are a few MiB, so a fast link stays full. The client's receive windows keep quinn's
/// defaults on purpose: they bound how far a client that stops reading can fall behind before
/// the authority cuts it off as a slow consumer.
fn bulk_transfers(transport: &mut quinn::TransportConfig, receiving: bool) {
    if receiving {
        transport.stream_receive_window(quinn::VarInt::from_u32(8 << 20));
        transport.receive_window(quinn::VarInt::from_u32(16 << 20));
    }
    transport.send_window(16 << 20);
}

/// How a client decides to trust the authority.
#[derive(Clone, Debug)]
pub enum Trust {
    /// Accept exactly the certificate with this fingerprint (self-signed authorities).
    Pinned(Fingerprint),
    /// Accept certificates signed by these CAs for the server's name (hosted authorities).
    Roots(Vec<CertificateDer<'static>>),
}

/// The QUIC client configuration for `trust`.
pub fn client_config(trust: Trust) -> Result<quinn::ClientConfig, Error> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?;
    let mut tls = match trust {
        Trust::Pinned(fingerprint) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier { fingerprint, provider: provider() }))
            .with_no_client_auth(),
        Trust::Roots(roots) => {
            let mut store = rustls::RootCertStore::empty();
            for root in roots {
                store.add(root).map_err(|e| Error::Tls(e.to_string()))?;
            }
            builder.with_root_certificates(store).with_no_client_auth()
        }
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(|e| Error::Tls(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    // Notice a vanished authority within seconds, so the client can say it is offline.
    transport.keep_alive_interval(Some(std::time::Duration::from_secs(2)));
    let idle = std::time::Duration::from_secs(8).try_into().map_err(|_| Error::Tls("idle timeout".into()))?;
    transport.max_idle_timeout(Some(idle));
    bulk_transfers(&mut transport, false);
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Trusts exactly one certificate, by fingerprint; still checks the handshake signatures.
#[derive(Debug)]
struct PinnedVerifier {
    fingerprint: Fingerprint,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if Fingerprint::of(end_entity.as_ref()) == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
