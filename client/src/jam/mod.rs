//! LAN jam sessions: musicians in one room press play on one machine and every machine starts
//! on the same sample, and each sees where the others are.
//!
//! A **host** is a client whose authority runs on its own machine (solo mode, see
//! [`crate::solo::LanAccess`]): hosting makes a [`JoinCode`], opens the authority's door to it (edits and
//! audio still travel over QUIC, so a jam leaves a saved project behind), starts a renet server
//! ([`link::JamLink`]) and broadcasts a [`Beacon`] ([`beacon`]). A **peer** finds the beacon,
//! syncs with the host's authority as with any other, and joins the renet server with the code.
//!
//! Over renet the peer learns the host's clock ([`ensemble_protocol::jam::ClockSync`]), and
//! every transport change becomes a [`TransportCommand`] at a *host time* a little ahead
//! ([`START_LEAD`]): "play from P when the host's clock reads T". Each machine turns T into its
//! own [`Clock`] time and playback turns that into the engine frame that plays then
//! ([`crate::playback::StartAt`]). Anyone may press play: a peer's command goes to the host,
//! which passes it on. A peer that comes in while the jam plays is told the running start
//! and joins in phase. Presence (playhead, selection, pointer) goes over renet too, and shows
//! in [`crate::presence::Peers`] like a collaborator's.
//!
//! [`JamPlugin`] needs [`crate::playback::PlaybackPlugin`] and the client core.

pub mod beacon;
pub mod link;
mod worker;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use ensemble_protocol::jam::{Beacon, JamMsg, JoinCode, TransportCommand};
use ensemble_protocol::wire::MAX_PRESENCE_SELECTION;
use ensemble_protocol::{PROTOCOL_VERSION, Ticks, Timebase};

use ensemble_net::tls::{Fingerprint, Trust};
use ensemble_net::transport::{Credentials, QuicTransport};

use self::beacon::{BEACON_PORT, Beaconer, Discovery, FoundJam};
use self::link::{JamLink, LinkEvent};
use crate::clock::Clock;
use crate::model::ProjectData;
use crate::playback::{PlaybackSystems, StartAt, Transport};
use crate::presence::{LocalPresence, PRESENCE_INTERVAL, Peer, PeerKey, Peers, PresenceRoute, colour_of};
use crate::solo::LanAccess;
use crate::sync::{Connection, SyncPlugin, SyncStatus};

/// How far ahead of now a jam's start is placed: time for the command to reach every machine
/// on a LAN and for their engines to queue it.
pub const START_LEAD: Duration = Duration::from_millis(200);
/// Presence is resent this often even when unchanged (it travels unreliably) ...
const PRESENCE_REFRESH: Duration = Duration::from_secs(1);
/// ... and someone not heard from for this long has left.
const PRESENCE_EXPIRY: Duration = Duration::from_secs(3);

/// Hosts and joins jams; see the module docs.
pub struct JamPlugin;

impl Plugin for JamPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Jam>()
            .init_resource::<JamPorts>()
            .init_resource::<Clock>()
            .init_resource::<Peers>()
            .init_resource::<LocalPresence>()
            .init_resource::<PresenceRoute>()
            .add_message::<JamRequest>()
            .add_systems(Update, (start_when_ready, handle_requests).chain())
            .add_systems(
                PostUpdate,
                (follow_link.in_set(PlaybackSystems::Transport), remember_transport.after(PlaybackSystems::Engine)),
            );
    }
}

/// What this app does in a jam, and the link when it is in one.
#[derive(Resource, Default)]
pub struct Jam {
    link: Option<JamLink>,
    beaconer: Option<Beaconer>,
    status: JamStatus,
    /// The latest play or stop, for peers who come in later (and this machine, if a command
    /// came before its clock was in sync).
    latest: Option<TransportCommand>,
    pending: Option<TransportCommand>,
    looping: Option<bool>,
    /// The transport as the engine last followed it: a difference is the musician's doing.
    remembered: Option<Transport>,
    tempo: Option<f64>,
    /// When each jam member's presence was last heard, by their key in [`Peers`].
    heard: HashMap<PeerKey, Instant>,
    presence_sent: Option<Instant>,
}

impl Jam {
    /// Where this app stands.
    pub fn status(&self) -> &JamStatus {
        &self.status
    }

    /// Whether it hosts or has joined a jam.
    pub fn is_active(&self) -> bool {
        self.link.is_some()
    }

    /// The link, while in a jam.
    pub fn link(&self) -> Option<&JamLink> {
        self.link.as_ref()
    }
}

/// Where this app stands in a jam, for the window.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum JamStatus {
    /// Not in a jam.
    #[default]
    Off,
    /// Hosting: others join with `code`.
    Hosting {
        /// The jam's join code, to tell the room.
        code: JoinCode,
        /// Peers connected now.
        peers: usize,
        /// The renet server's UDP port.
        port: u16,
    },
    /// Joined someone's jam.
    Joined {
        /// Who hosts it.
        host: String,
        /// Whether the host answers now.
        connected: bool,
        /// Host clock minus ours, in milliseconds, once measured.
        offset_ms: Option<f64>,
        /// Clock exchanges the estimate rests on.
        samples: usize,
    },
    /// Hosting or joining failed; the reason.
    Failed(String),
}

/// A jam to join: the host's renet address and the code the room was told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinTarget {
    /// The host's renet server.
    pub renet: SocketAddr,
    /// The jam's join code.
    pub code: JoinCode,
    /// Who hosts it, as shown.
    pub host_name: String,
}

/// Start, join or leave a jam.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub enum JamRequest {
    /// Host a jam on this machine's authority, with a new code (or the one given).
    Host(Option<JoinCode>),
    /// Join a jam (this app's sync must already reach that jam's authority).
    Join(JoinTarget),
    /// Leave the jam, or stop hosting it.
    Leave,
}

/// A jam to start as soon as this app can: hosting waits for the embedded authority and the
/// project; joining starts at once. Taken when used.
#[derive(Resource, Clone, Debug, PartialEq, Eq)]
pub enum StartJam {
    /// Host, with a new code or the one given.
    Host(Option<JoinCode>),
    /// Join.
    Join(JoinTarget),
}

/// Waits up to `within` for a beacon on `port` from `host` (from anyone when `None`).
pub fn find_jam(port: u16, host: Option<IpAddr>, within: Duration) -> std::io::Result<Option<FoundJam>> {
    let discovery = Discovery::listen(port)?;
    let until = Instant::now() + within;
    while Instant::now() < until {
        let found = discovery.jams().into_iter().find(|jam| host.is_none_or(|host| jam.host == host));
        if found.is_some() {
            return Ok(found);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(None)
}

/// How to join a jam found on the LAN with `code` as `display_name`: the sync that reaches its
/// authority (keeping the local store in `replicas`), and what to tell [`JamPlugin`].
pub fn joining(found: &FoundJam, code: &JoinCode, display_name: &str, replicas: PathBuf) -> (SyncPlugin, JoinTarget) {
    let credentials =
        Credentials::Open { display_name: display_name.to_owned(), join_code: Some(code.as_str().to_owned()) };
    let trust = Trust::Pinned(vec![Fingerprint(found.beacon.fingerprint)]);
    let transport = QuicTransport::new(found.quic_addr(), "localhost", trust, credentials);
    let target = JoinTarget { renet: found.renet_addr(), code: code.clone(), host_name: found.beacon.host.clone() };
    (SyncPlugin::remote(transport, found.beacon.project, replicas), target)
}

/// The ports a hosted jam uses.
#[derive(Resource, Clone, Copy, Debug, PartialEq, Eq)]
pub struct JamPorts {
    /// Where the renet server binds (port 0: any free port; the beacon says which).
    pub renet: SocketAddr,
    /// Where beacons go.
    pub beacon: u16,
}

impl Default for JamPorts {
    fn default() -> Self {
        JamPorts { renet: SocketAddr::from(([0, 0, 0, 0], 0)), beacon: BEACON_PORT }
    }
}

fn new_code() -> Result<JoinCode, String> {
    let mut bytes = [0u8; 5];
    getrandom::fill(&mut bytes).map_err(|error| format!("no randomness for a join code: {error}"))?;
    Ok(JoinCode::from_random(bytes))
}

fn start_when_ready(
    mut commands: Commands,
    start: Option<Res<StartJam>>,
    lan: Option<Res<LanAccess>>,
    project: Query<(), With<ProjectData>>,
    mut requests: MessageWriter<JamRequest>,
) {
    let Some(start) = start else { return };
    let request = match &*start {
        StartJam::Host(code) => {
            let served = lan.as_ref().is_some_and(|lan| lan.served().is_some());
            if !served || project.is_empty() {
                return;
            }
            JamRequest::Host(code.clone())
        }
        StartJam::Join(target) => JamRequest::Join(target.clone()),
    };
    requests.write(request);
    commands.remove_resource::<StartJam>();
}

#[allow(clippy::too_many_arguments)]
fn handle_requests(
    mut requests: MessageReader<JamRequest>,
    mut jam: ResMut<Jam>,
    mut peers: ResMut<Peers>,
    ports: Res<JamPorts>,
    clock: Res<Clock>,
    lan: Option<Res<LanAccess>>,
    project: Query<&ProjectData>,
    mut route: ResMut<PresenceRoute>,
) {
    for request in requests.read() {
        leave(&mut jam, &mut peers, lan.as_deref());
        let started = match request {
            JamRequest::Leave => Ok(()),
            JamRequest::Host(code) => {
                host(&mut jam, code.clone(), &ports, *clock, lan.as_deref(), project.single().ok())
            }
            JamRequest::Join(target) => join(&mut jam, target, *clock),
        };
        if let Err(reason) = started {
            warn!("jam: {reason}");
            jam.status = JamStatus::Failed(reason);
        }
        // In a jam, presence travels over the jam's link instead of through the authority.
        route.set_if_neq(if jam.is_active() { PresenceRoute::Direct } else { PresenceRoute::Authority });
    }
}

fn leave(jam: &mut Jam, peers: &mut Peers, lan: Option<&LanAccess>) {
    jam.link = None;
    jam.beaconer = None;
    jam.status = JamStatus::Off;
    jam.latest = None;
    jam.pending = None;
    for key in jam.heard.drain().map(|(key, _)| key) {
        peers.sessions.remove(&key);
    }
    if let Some(lan) = lan {
        lan.door.set(None);
    }
}

fn host(
    jam: &mut Jam,
    code: Option<JoinCode>,
    ports: &JamPorts,
    clock: Clock,
    lan: Option<&LanAccess>,
    project: Option<&ProjectData>,
) -> Result<(), String> {
    let not_here = "only a project on this machine's authority can host a jam (this one is on another)";
    let served = lan.and_then(LanAccess::served).ok_or(not_here)?;
    let lan = lan.ok_or(not_here)?;
    let code = match code {
        Some(code) => code,
        None => new_code()?,
    };
    let link = JamLink::host(ports.renet, &[], &code, clock)
        .map_err(|error| format!("cannot host on {}: {error}", ports.renet))?;
    let beacon = Beacon {
        protocol_version: PROTOCOL_VERSION,
        host: served.display_name.clone(),
        project: served.project,
        project_name: project.map_or_else(|| "Untitled".to_owned(), |project| project.name.clone()),
        quic_port: served.port,
        renet_port: link.local_addr().port(),
        fingerprint: served.fingerprint,
    };
    let beaconer =
        Beaconer::start(&beacon, ports.beacon).map_err(|error| format!("cannot announce the jam: {error}"))?;
    lan.door.set(Some(code.clone()));
    info!("hosting a jam on port {} with code {code}", link.local_addr().port());
    jam.status = JamStatus::Hosting { code, peers: 0, port: link.local_addr().port() };
    jam.link = Some(link);
    jam.beaconer = Some(beaconer);
    Ok(())
}

fn join(jam: &mut Jam, target: &JoinTarget, clock: Clock) -> Result<(), String> {
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(|error| format!("no randomness for a peer id: {error}"))?;
    let link = JamLink::join(target.renet, &target.code, u64::from_le_bytes(id), clock)
        .map_err(|error| format!("cannot reach {}: {error}", target.renet))?;
    jam.status = JamStatus::Joined { host: target.host_name.clone(), connected: false, offset_ms: None, samples: 0 };
    jam.link = Some(link);
    Ok(())
}

/// Everything the link brought, the musician's own transport changes sent out, and presence
/// shared: once a frame, before the engine follows the transport.
#[allow(clippy::too_many_arguments)]
fn follow_link(
    mut jam: ResMut<Jam>,
    mut transport: ResMut<Transport>,
    mut starts: MessageWriter<StartAt>,
    mut peers: ResMut<Peers>,
    local: Res<LocalPresence>,
    status: Option<Res<SyncStatus>>,
    clock: Res<Clock>,
    project: Query<&ProjectData>,
) {
    let jam = &mut *jam;
    let Some(link) = jam.link.as_ref() else { return };
    let project = project.single().ok();
    // The musician's changes since the engine last followed: tell everyone.
    if let Some(last) = jam.remembered {
        let tempo = project.map(|project| project.tempo.0);
        let retimed = link.is_host() && jam.tempo.is_some() && tempo != jam.tempo && transport.playing;
        jam.tempo = tempo;
        let now = clock.now();
        let started = transport.playing && (!last.playing || transport.position != last.position || retimed);
        // A peer still learning the host's clock plays alone until it knows it.
        if started
            && link.is_synced()
            && let Some(at) = link.host_time(now + START_LEAD.as_nanos() as u64)
        {
            // A retimed jam carries on from where the music will be when the new start lands.
            let from = match (retimed, project) {
                (true, Some(project)) => {
                    let timebase = Timebase::new(project.tempo, project.sample_rate);
                    let lead = timebase.ticks(ensemble_protocol::Frames(
                        (START_LEAD.as_secs_f64() * f64::from(project.sample_rate)) as u64,
                    ));
                    Ticks(transport.position.0 + lead.0)
                }
                _ => transport.position,
            };
            let command = TransportCommand::Play { at, from };
            link.send(JamMsg::Transport(command));
            jam.pending = Some(command);
        }
        if !transport.playing && last.playing {
            let command = TransportCommand::Stop { at: link.host_time(now).unwrap_or(0), position: transport.position };
            link.send(JamMsg::Transport(command));
            jam.latest = Some(command);
        }
        if transport.looping != last.looping {
            link.send(JamMsg::Transport(TransportCommand::Looping(transport.looping)));
            jam.looping = Some(transport.looping);
        }
    }
    for event in link.events() {
        match event {
            LinkEvent::Connected => {
                if let JamStatus::Joined { connected, .. } = &mut jam.status {
                    *connected = true;
                }
            }
            LinkEvent::Disconnected(reason) => {
                info!("jam: the host is gone ({reason}); trying again");
                if let JamStatus::Joined { connected, .. } = &mut jam.status {
                    *connected = false;
                }
            }
            LinkEvent::PeerJoined(peer) => {
                // The newcomer hears how things stand, and falls in with a running start.
                for command in jam.latest.into_iter().chain(jam.looping.map(TransportCommand::Looping)) {
                    link.send_to(peer, JamMsg::Transport(command));
                }
                if let JamStatus::Hosting { peers, .. } = &mut jam.status {
                    *peers += 1;
                }
            }
            LinkEvent::PeerLeft(_) => {
                if let JamStatus::Hosting { peers, .. } = &mut jam.status {
                    *peers = peers.saturating_sub(1);
                }
            }
            LinkEvent::Message { from, message } => {
                if link.is_host() {
                    link.relay(from, message.clone());
                }
                match message {
                    JamMsg::Transport(command @ TransportCommand::Play { .. }) => jam.pending = Some(command),
                    JamMsg::Transport(command @ TransportCommand::Stop { position, .. }) => {
                        jam.pending = None;
                        jam.latest = Some(command);
                        transport.playing = false;
                        transport.position = position;
                    }
                    JamMsg::Transport(TransportCommand::Looping(looping)) => {
                        jam.looping = Some(looping);
                        transport.looping = looping;
                    }
                    JamMsg::Presence { user, name, mut presence } => {
                        presence.selection.truncate(MAX_PRESENCE_SELECTION);
                        let key = PeerKey::Direct(user);
                        jam.heard.insert(key, Instant::now());
                        // Shown once: this entry replaces the authority's for the same person.
                        peers.sessions.retain(|other, peer| matches!(other, PeerKey::Direct(_)) || peer.user != user);
                        peers.sessions.insert(key, Peer { user, name, colour: colour_of(user), presence });
                    }
                    JamMsg::ClockRequest { .. } | JamMsg::ClockReply { .. } => {}
                }
            }
        }
    }
    // A start is placed on this machine's clock once the clock is known (at once on the host).
    if let Some(command @ TransportCommand::Play { at, from }) = jam.pending
        && link.is_synced()
        && let Some(local) = link.local_time(at)
    {
        starts.write(StartAt { at: local, from });
        jam.latest = Some(command);
        jam.pending = None;
    }
    if let JamStatus::Joined { offset_ms, samples, .. } = &mut jam.status
        && let Some((offset, count)) = link.offset()
    {
        *offset_ms = Some(offset / 1e6);
        *samples = count;
    }
    share_presence(jam, &local.0, local.is_changed(), status.as_deref(), &mut peers);
}

/// Sends this musician's presence when it changed (at most ten times a second) and every
/// second anyway; forgets members not heard from lately.
fn share_presence(
    jam: &mut Jam,
    local: &ensemble_protocol::Presence,
    changed: bool,
    status: Option<&SyncStatus>,
    peers: &mut Peers,
) {
    let Some(link) = jam.link.as_ref() else { return };
    if let Some(Connection::Online { user, name }) = status.map(|status| &status.connection) {
        let since = jam.presence_sent.map(|sent| sent.elapsed());
        let due = since.is_none_or(|since| since >= PRESENCE_REFRESH || (since >= PRESENCE_INTERVAL && changed));
        if due {
            link.send(JamMsg::Presence { user: *user, name: name.clone(), presence: local.clone() });
            jam.presence_sent = Some(Instant::now());
        }
    }
    jam.heard.retain(|key, heard| {
        let fresh = heard.elapsed() < PRESENCE_EXPIRY;
        if !fresh {
            peers.sessions.remove(key);
        }
        fresh
    });
}

fn remember_transport(mut jam: ResMut<Jam>, transport: Res<Transport>) {
    if jam.link.is_some() {
        jam.remembered = Some(*transport);
    } else if jam.remembered.is_some() {
        jam.remembered = None;
    }
}
