//! Solo mode: the authority library running inside the client, on its own SQLite store, so one
//! person can work with nothing else running.
//!
//! The in-process authority is the real one, open to display-name logins; this app reaches it
//! over in-memory connections (no socket, no certificate). It also listens on loopback (where
//! nobody else can reach it) with fresh self-signed certificates. Its store lives in [`SoloSettings::dir`]; the client's local store is kept as
//! usual, so moving a project to a hosted authority later is the same sync. With
//! [`SoloSettings::lan`] it listens on every interface instead, behind the door a LAN jam's
//! join code opens (see [`crate::jam`]). Audio files and
//! their jobs live beside the database, and a first start makes the demo song.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bevy::prelude::Resource;

use ensemble_authority::files::FileOptions;
use ensemble_authority::server::{JamDoor, Server, ServerOptions};
use ensemble_authority::store::SqliteStore;
use ensemble_authority::tls::Certificates;
use ensemble_authority::{admin, auth};
use ensemble_net::remote::Remote;
use ensemble_net::transport::{Credentials, PipeTransport};
use ensemble_protocol::{PROTOCOL_VERSION, ProjectId};

use crate::Error;
pub use ensemble_authority::demo::DemoSize;

/// Where solo mode keeps things, and who is working.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoloSettings {
    /// The folder of the in-process authority's database.
    pub dir: PathBuf,
    /// The client's local stores (see [`crate::store::default_dir`]).
    pub replicas: PathBuf,
    /// The name the user works under.
    pub display_name: String,
    /// The project to open; `None` opens the newest one, or makes one when there is none.
    pub project: Option<ProjectId>,
    /// Make that first project a demo (see [`ensemble_authority::demo`]) rather than an empty "Untitled".
    pub demo: Option<DemoSize>,
    /// Serve on every interface, so this app can host a LAN jam: other machines get in only
    /// through the door, with a jam's join code. `None` keeps the authority on loopback.
    pub lan: Option<LanAccess>,
}

impl SoloSettings {
    /// Solo mode in the user's data directory, under their login name.
    pub fn in_data_dir() -> Self {
        let root = dirs::data_dir().unwrap_or_else(std::env::temp_dir).join("ensemble");
        let display_name = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "me".into());
        SoloSettings {
            dir: root.join("solo"),
            replicas: root.join("replicas"),
            display_name,
            project: None,
            demo: Some(DemoSize::Song),
            lan: None,
        }
    }
}

/// A running in-process authority and how to reach it.
pub(crate) struct Solo {
    pub(crate) server: Server,
    pub(crate) transport: PipeTransport,
    pub(crate) project: ProjectId,
}

pub(crate) async fn start(settings: &SoloSettings) -> Result<Solo, Error> {
    std::fs::create_dir_all(&settings.dir)?;
    let url = format!("sqlite://{}", settings.dir.join("authority.sqlite").display());
    let store = SqliteStore::open(&url).await?;
    if auth::join_open(&store, &settings.display_name).await?.is_none() {
        let reason = format!("the name {:?} cannot be used in solo mode", settings.display_name);
        return Err(Error::Denied(reason));
    }
    let (project, fresh) = match settings.project {
        Some(project) => (project, false),
        None => match admin::list_projects(&store).await?.last() {
            Some(newest) => (newest.id, false),
            None => {
                let name = match settings.demo {
                    Some(DemoSize::Song) => "Demo Song",
                    Some(DemoSize::Stress { .. }) => "Stress Test",
                    None => "Untitled",
                };
                (admin::create_project(&store, name, &settings.display_name).await?, true)
            }
        },
    };
    let files = FileOptions::in_dir(settings.dir.join("files"));
    let listen = SocketAddr::from((if settings.lan.is_some() { [0, 0, 0, 0] } else { [127, 0, 0, 1] }, 0));
    let door = settings.lan.as_ref().map(|lan| lan.door.clone());
    let options = ServerOptions { listen, open: true, files: Some(files), door, ..ServerOptions::default() };
    let server = Server::start(store, Certificates::self_signed()?, options).await?;
    if let Some(lan) = &settings.lan {
        let port = server.local_addr()?.port();
        let served =
            Served { port, fingerprint: server.fingerprint().0, project, display_name: settings.display_name.clone() };
        lan.serve(served);
    }
    // This app reaches its own authority in memory: no socket, no certificate to pin.
    let in_process = server.in_process();
    if fresh && let Some(size) = settings.demo {
        let mut remote = Remote::over(in_process.connect()?, PROTOCOL_VERSION).await?;
        remote.join_open(&settings.display_name, None).await?;
        ensemble_authority::demo::seed(&mut remote, project, size).await?;
        remote.close().await;
    }
    let credentials = Credentials::Open { display_name: settings.display_name.clone(), join_code: None };
    let transport = PipeTransport::new(move || in_process.connect(), credentials);
    Ok(Solo { server, transport, project })
}

/// This machine's authority, when this app runs it (solo mode): what a hosted jam needs to
/// tell peers, and the door its join code opens. Shared with the sync worker, which fills it
/// in once the authority listens.
#[derive(Resource, Clone, Debug, Default)]
pub struct LanAccess {
    /// The authority's door for jam peers.
    pub door: JamDoor,
    served: Arc<OnceLock<Served>>,
}

/// What the embedded authority serves, as a beacon tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// Its QUIC port (on every interface).
    pub port: u16,
    /// Its certificate's SHA-256.
    pub fingerprint: [u8; 32],
    /// The project this app works on.
    pub project: ProjectId,
    /// Who works here.
    pub display_name: String,
}

/// The same access, not just an equal one: two apps never share an authority by accident.
impl PartialEq for LanAccess {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.served, &other.served)
    }
}

impl Eq for LanAccess {}

impl LanAccess {
    /// Room for an authority not yet started.
    pub fn new() -> LanAccess {
        LanAccess::default()
    }

    /// Records what the authority serves (once; later calls change nothing).
    pub fn serve(&self, served: Served) {
        let _ = self.served.set(served);
    }

    /// What it serves, once it does.
    pub fn served(&self) -> Option<&Served> {
        self.served.get()
    }
}
