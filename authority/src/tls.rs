//! Certificates, and the authority's QUIC configuration built on them.
//!
//! A self-signed authority (solo, a LAN jam, development) presents certificates that browsers
//! accept when pinned by hash (WebTransport's `serverCertificateHashes`): ECDSA P-256, valid for
//! [`SELF_SIGNED_VALIDITY`] (browsers refuse more than 14 days). So they rotate: the authority
//! holds a *current* certificate, which it serves, and a *next* one, already valid, which it
//! publishes beside the current's hash; every [`ROTATE_EVERY`] the next becomes current and a
//! fresh next is made. A client that pinned both hashes keeps connecting across a rotation, and
//! connections already open never notice (a certificate only matters at the handshake). The
//! pair lives in the data directory, so a restart keeps the hashes clients pinned.
//!
//! A hosted authority takes a CA-signed chain with `--cert/--key` ([`Certificates::fixed`]); its
//! clients trust the CA instead.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use ensemble_net::tls::{Fingerprint, bulk_transfers, provider};
use ensemble_protocol::wire::ALPN;
use quinn::crypto::rustls::QuicServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::Error;

/// How long a self-signed certificate is valid: browsers pin a certificate by hash only when
/// it is valid for 14 days at most.
pub const SELF_SIGNED_VALIDITY: Duration = Duration::from_secs(13 * 24 * 3600);

/// How long a self-signed certificate is served; it was published as the next one for as long
/// before that, and both fit inside its validity.
pub const ROTATE_EVERY: Duration = Duration::from_secs(6 * 24 * 3600);

/// How far back a certificate's validity starts, for clients whose clocks run a little behind.
const CLOCK_SLACK: Duration = Duration::from_secs(3600);

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

    /// A fresh self-signed certificate for `localhost` and this machine's name: ECDSA P-256,
    /// valid from now (less an hour for slow clocks) for [`SELF_SIGNED_VALIDITY`].
    pub fn self_signed() -> Result<Self, Error> {
        let mut names = vec!["localhost".to_owned(), "ensemble-authority".to_owned()];
        if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
            names.push(host.trim().to_owned());
        }
        names.retain(|name| !name.is_empty());
        let tls = |error: rcgen::Error| Error::Tls(error.to_string());
        let mut params = rcgen::CertificateParams::new(names).map_err(tls)?;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - CLOCK_SLACK;
        params.not_after = now + SELF_SIGNED_VALIDITY - CLOCK_SLACK;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(tls)?;
        let cert = params.self_signed(&key).map_err(tls)?;
        Ok(Identity {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// The certificate stored as `name.der` and `name.key` in `dir`, if both are there.
    fn load(dir: &Path, name: &str) -> Result<Option<Self>, Error> {
        let (cert, key) = (dir.join(format!("{name}.der")), dir.join(format!("{name}.key")));
        if !(cert.exists() && key.exists()) {
            return Ok(None);
        }
        Ok(Some(Identity {
            chain: vec![CertificateDer::from(std::fs::read(cert)?)],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(std::fs::read(key)?)),
        }))
    }

    /// Stores the certificate as `name.der` and `name.key` in `dir`, replacing what was there.
    fn store(&self, dir: &Path, name: &str) -> Result<(), Error> {
        let leaf = self.chain.first().ok_or_else(|| Error::Tls("an empty certificate chain".into()))?;
        write_private(&dir.join(format!("{name}.key")), self.key.secret_der())?;
        replace(&dir.join(format!("{name}.der")), leaf.as_ref())
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

/// Writes a secret so only its owner can read it: beside the target, then renamed into place.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let partial = path.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&partial)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&partial, path)?;
    Ok(())
}

/// Writes `bytes` beside `path` and renames them into place.
fn replace(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)?;
    Ok(())
}

/// What the authority presents: a fixed chain, or self-signed certificates that rotate (see the
/// module docs). Clones share one state, so a rotation is seen by every endpoint serving it.
#[derive(Clone, Debug)]
pub struct Certificates {
    state: Arc<RwLock<Presented>>,
    /// Where a rotating pair is kept, if anywhere.
    dir: Option<PathBuf>,
}

#[derive(Debug)]
struct Presented {
    current: Identity,
    /// The certificate that takes over at the next rotation (none for a fixed chain).
    next: Option<Identity>,
    /// When `current` took over.
    since: SystemTime,
    /// `current`, ready for handshakes.
    key: Arc<CertifiedKey>,
}

impl Presented {
    fn new(current: Identity, next: Option<Identity>, since: SystemTime) -> Result<Self, Error> {
        let key = CertifiedKey::from_der(current.chain.clone(), current.key.clone_key(), &provider())
            .map_err(|error| Error::Tls(error.to_string()))?;
        Ok(Presented { current, next, since, key: Arc::new(key) })
    }
}

impl Certificates {
    /// A chain that never rotates (a CA's, for a hosted authority).
    pub fn fixed(identity: Identity) -> Result<Self, Error> {
        let presented = Presented::new(identity, None, SystemTime::now())?;
        Ok(Certificates { state: Arc::new(RwLock::new(presented)), dir: None })
    }

    /// Self-signed certificates that rotate, kept in memory only.
    pub fn self_signed() -> Result<Self, Error> {
        let presented = Presented::new(Identity::self_signed()?, Some(Identity::self_signed()?), SystemTime::now())?;
        Ok(Certificates { state: Arc::new(RwLock::new(presented)), dir: None })
    }

    /// Self-signed certificates that rotate, kept in `dir` (`current.*`, `next.*`,
    /// `rotated-at`) so a restart presents the same ones; made there on first use, and rotated
    /// at once if they fell due while the authority was stopped.
    pub fn self_signed_in(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir)?;
        let since = std::fs::read_to_string(dir.join("rotated-at"))
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        let stored = match (Identity::load(dir, "current")?, Identity::load(dir, "next")?, since) {
            (Some(current), Some(next), Some(since)) => Some(Presented::new(current, Some(next), since)?),
            _ => None,
        };
        let certificates = match stored {
            Some(presented) => Certificates { state: Arc::new(RwLock::new(presented)), dir: Some(dir.to_owned()) },
            None => {
                let certificates = Certificates { dir: Some(dir.to_owned()), ..Certificates::self_signed()? };
                certificates.persist()?;
                certificates
            }
        };
        // Stopped for longer than a rotation: catch up (twice makes both certificates fresh).
        for _ in 0..2 {
            if certificates.rotation_due() == Some(Duration::ZERO) {
                certificates.rotate()?;
            }
        }
        Ok(certificates)
    }

    /// The hashes a client pins: the current certificate's, then the next one's (if it rotates).
    pub fn hashes(&self) -> Vec<Fingerprint> {
        let Ok(state) = self.state.read() else { return Vec::new() };
        std::iter::once(&state.current).chain(&state.next).map(Identity::fingerprint).collect()
    }

    /// The hash of the certificate served now.
    pub fn current(&self) -> Fingerprint {
        self.state.read().map(|state| state.current.fingerprint()).unwrap_or(Fingerprint([0; 32]))
    }

    /// How long until the next rotation is due (zero: now); `None` for a fixed chain.
    pub fn rotation_due(&self) -> Option<Duration> {
        let state = self.state.read().ok()?;
        state.next.as_ref()?;
        let served = SystemTime::now().duration_since(state.since).unwrap_or_default();
        Some(ROTATE_EVERY.saturating_sub(served))
    }

    /// The next certificate becomes current and a fresh one is made next (and stored, when the
    /// pair is kept in a directory). Connections already open keep theirs. A fixed chain stays.
    pub fn rotate(&self) -> Result<(), Error> {
        {
            let mut state = self.state.write().map_err(|_| Error::Tls("the certificates' lock is poisoned".into()))?;
            let Some(next) = state.next.take() else { return Ok(()) };
            *state = Presented::new(next, Some(Identity::self_signed()?), SystemTime::now())?;
        }
        self.persist()?;
        tracing::info!(hashes = ?self.hashes(), "certificates rotated");
        Ok(())
    }

    /// Stores the pair, when it is kept in a directory.
    fn persist(&self) -> Result<(), Error> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let state = self.state.read().map_err(|_| Error::Tls("the certificates' lock is poisoned".into()))?;
        state.current.store(dir, "current")?;
        if let Some(next) = &state.next {
            next.store(dir, "next")?;
        }
        let since = state.since.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
        replace(&dir.join("rotated-at"), since.to_string().as_bytes())
    }
}

/// Serves whichever certificate is current at each handshake.
#[derive(Debug)]
struct Current(Certificates);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.state.read().ok().map(|state| state.key.clone())
    }
}

/// The QUIC server configuration presenting `certificates`.
pub fn server_config(certificates: &Certificates) -> Result<quinn::ServerConfig, Error> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Current(certificates.clone())));
    // Native clients speak `ensemble/1`; browsers open WebTransport sessions over HTTP/3.
    tls.alpn_protocols = vec![ALPN.to_vec(), web_transport_quinn::ALPN.as_bytes().to_vec()];
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
