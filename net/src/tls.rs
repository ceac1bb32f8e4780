//! The client's half of trust: how it decides that the authority is the one it meant.
//!
//! A self-signed authority (solo, a LAN jam, development) is pinned by the SHA-256
//! [`Fingerprint`] of its certificate, the same hash browsers take in WebTransport's
//! `serverCertificateHashes`; a hosted authority presents a certificate its clients' CAs sign.
//! The authority makes certificates and holds the server's half.

#[cfg(feature = "quic")]
pub use quic::*;
use std::fmt;

use crate::Error;

/// A SHA-256 certificate fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    #[cfg(feature = "quic")]
    pub fn of(cert: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, cert);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }

    /// Parses the hex form [`Display`](fmt::Display) prints (colons optional).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let hex: String = text.chars().filter(|c| *c != ':').collect();
        let bad = || Error::Misuse(format!("{text:?} is not a SHA-256 fingerprint (64 hex digits)"));
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

#[cfg(feature = "quic")]
mod quic {
    use std::sync::Arc;

    use ensemble_protocol::wire::ALPN;
    use quinn::crypto::rustls::QuicClientConfig;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    use super::Fingerprint;
    use crate::Error;

    /// The TLS implementation both ends use (ring).
    pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// Uploads move megabytes at a time: the authority's receive windows and the client's send
    /// window are a few MiB, so a fast link stays full. The client's receive windows keep quinn's
    /// defaults on purpose: they bound how far a client that stops reading can fall behind before
    /// the authority cuts it off as a slow consumer.
    pub fn bulk_transfers(transport: &mut quinn::TransportConfig, receiving: bool) {
        if receiving {
            transport.stream_receive_window(quinn::VarInt::from_u32(8 << 20));
            transport.receive_window(quinn::VarInt::from_u32(16 << 20));
        }
        transport.send_window(16 << 20);
    }

    /// How a client decides to trust the authority.
    #[derive(Clone, Debug)]
    pub enum Trust {
        /// Accept exactly the certificates with these fingerprints (self-signed authorities,
        /// which publish their current certificate's and the next one's).
        Pinned(Vec<Fingerprint>),
        /// Accept certificates signed by these CAs for the server's name (hosted authorities).
        Roots(Vec<CertificateDer<'static>>),
    }

    /// The QUIC client configuration for `trust`.
    pub fn client_config(trust: Trust) -> Result<quinn::ClientConfig, Error> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| Error::Tls(e.to_string()))?;
        let mut tls = match trust {
            Trust::Pinned(fingerprints) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier { fingerprints, provider: provider() }))
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

    /// Trusts exactly the certificates it was given, by fingerprint; still checks the handshake
    /// signatures.
    #[derive(Debug)]
    struct PinnedVerifier {
        fingerprints: Vec<Fingerprint>,
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
            if self.fingerprints.contains(&Fingerprint::of(end_entity.as_ref())) {
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
}
