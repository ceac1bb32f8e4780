//! The jam's network: renet over netcode on UDP, on a thread of its own.
//!
//! A [`JamLink`] is either the host's (a renet server) or a peer's (a renet client). Every
//! packet is sealed with a key derived from the jam's [`JoinCode`], so a packet made without
//! the code does not open and is dropped by netcode before anything reads it.
//!
//! Three channels, each way:
//!
//! - **clock**, unreliable: the four-timestamp exchange of [`ensemble_protocol::jam`]. A lost
//!   exchange is just one fewer sample, and a resent one would carry stale stamps.
//! - **transport**, reliable and ordered: play at host time T from P, stop, looping.
//! - **presence**, unreliable: the latest wins, and it is resent every second anyway.
//!
//! Why a thread and not bevy_renet's systems: those move packets once per frame, so a clock
//! stamp would be taken up to a frame (16 ms) after its packet arrived, which is thirty times
//! the accuracy a jam needs. Here the thread sleeps in `recv_from` and stamps a packet as it
//! lands, and a reply is stamped as it leaves. The app sees only [`LinkEvent`]s.
//!
//! A peer that loses the host (the host's machine slept, a cable came out) keeps trying, and
//! on reconnecting forgets its old clock samples (the host may have restarted) and exchanges
//! fast until it has enough again: in sync within a second of the host answering.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ensemble_protocol::jam::{ClockSample, ClockSync, JamMsg, JoinCode};
use renet::{ChannelConfig, ConnectionConfig, RenetClient, RenetServer, SendType, ServerEvent};
use renetcode::{
    ClientAuthentication, ConnectToken, NETCODE_MAX_PACKET_BYTES, NetcodeClient, NetcodeServer, ServerAuthentication,
    ServerConfig, ServerResult,
};

use super::worker::{Stop, Worker};
use crate::clock::Clock;

/// The renet channels, by id.
mod channel {
    pub(super) const CLOCK: u8 = 0;
    pub(super) const TRANSPORT: u8 = 1;
    pub(super) const PRESENCE: u8 = 2;
}

/// The most peers one host takes.
pub const MAX_PEERS: usize = 16;
/// How long a silent connection lasts before either side gives up on it.
const TIMEOUT_SECONDS: i32 = 3;
/// How long a peer waits before trying a lost host again.
const RETRY: Duration = Duration::from_millis(250);
/// How long the thread sleeps in `recv_from` when nothing arrives.
const POLL: Duration = Duration::from_millis(2);
/// How often acknowledgements and resends go out when no message hurries them: renet adds an
/// ack packet to every flush, so flushing on every wake-up would double the traffic for nothing.
const FLUSH_EVERY: Duration = Duration::from_millis(10);
/// Clock exchanges until a sync is settled, and how often they go then and after.
const FAST_EXCHANGES: usize = 32;
const FAST_EVERY: Duration = Duration::from_millis(20);
const SLOW_EVERY: Duration = Duration::from_millis(250);
/// Exchanges before a peer places starts by the host's clock (160 ms after connecting).
pub const SETTLED: usize = 8;

/// Identifies Ensemble's jams to netcode (a different protocol id never connects).
fn protocol_id() -> u64 {
    u64::from_le_bytes(*b"ENSJAM\0\0") ^ u64::from(ensemble_protocol::PROTOCOL_VERSION)
}

/// The netcode key of a jam: derived from its join code, so knowing the code is the only way in.
pub fn jam_key(code: &JoinCode) -> [u8; 32] {
    blake3::derive_key("ensemble 2026 LAN jam netcode key", code.as_str().as_bytes())
}

fn connection_config() -> ConnectionConfig {
    let channels = vec![
        ChannelConfig {
            channel_id: channel::CLOCK,
            max_memory_usage_bytes: 64 * 1024,
            send_type: SendType::Unreliable,
        },
        ChannelConfig {
            channel_id: channel::TRANSPORT,
            max_memory_usage_bytes: 256 * 1024,
            send_type: SendType::ReliableOrdered { resend_time: Duration::from_millis(50) },
        },
        ChannelConfig {
            channel_id: channel::PRESENCE,
            max_memory_usage_bytes: 256 * 1024,
            send_type: SendType::Unreliable,
        },
    ];
    ConnectionConfig {
        available_bytes_per_tick: 60_000,
        server_channels_config: channels.clone(),
        client_channels_config: channels,
    }
}

/// The channel a message travels on.
fn channel_of(message: &JamMsg) -> u8 {
    match message {
        JamMsg::ClockRequest { .. } | JamMsg::ClockReply { .. } => channel::CLOCK,
        JamMsg::Transport(_) => channel::TRANSPORT,
        JamMsg::Presence { .. } => channel::PRESENCE,
    }
}

/// What the link has to tell the app.
#[derive(Clone, Debug, PartialEq)]
pub enum LinkEvent {
    /// Peer: the host let us in (again).
    Connected,
    /// Peer: the host is gone; the link keeps trying.
    Disconnected(String),
    /// Host: a peer came in.
    PeerJoined(u64),
    /// Host: a peer left or timed out.
    PeerLeft(u64),
    /// A transport or presence message (clock messages stay inside the link). `from` is the
    /// sending peer's id on the host, and 0 (the host) on a peer.
    Message {
        /// Who sent it.
        from: u64,
        /// What they said.
        message: JamMsg,
    },
}

enum Outgoing {
    /// To everyone (the host) or to the host (a peer).
    All(JamMsg),
    /// Host: to everyone but one peer (the one it came from).
    Except(u64, JamMsg),
    /// Host: to one peer.
    To(u64, JamMsg),
}

/// A running jam link; dropping it says goodbye and stops the thread.
pub struct JamLink {
    /// First, so the thread has stopped before the rest goes.
    _worker: Worker,
    outgoing: mpsc::Sender<Outgoing>,
    events: Mutex<mpsc::Receiver<LinkEvent>>,
    sync: Arc<Mutex<ClockSync>>,
    local_addr: SocketAddr,
    clock: Clock,
    host: bool,
}

impl JamLink {
    /// Hosts a jam on `bind` for `code`. Peers may reach it at any of this machine's addresses
    /// and at `reachable_at` (a forwarded port, a relay): a peer's connect token names the
    /// address it dials, and the host admits only tokens for addresses it knows as its own.
    pub fn host(bind: SocketAddr, reachable_at: &[SocketAddr], code: &JoinCode, clock: Clock) -> io::Result<JamLink> {
        let socket = UdpSocket::bind(bind)?;
        socket.set_read_timeout(Some(POLL))?;
        let local_addr = socket.local_addr()?;
        let mut public_addresses = public_addresses(local_addr);
        public_addresses.extend_from_slice(reachable_at);
        let config = ServerConfig {
            current_time: unix_time(),
            max_clients: MAX_PEERS,
            protocol_id: protocol_id(),
            public_addresses,
            authentication: ServerAuthentication::Secure { private_key: jam_key(code) },
        };
        let host =
            Host { socket, netcode: NetcodeServer::new(config), renet: RenetServer::new(connection_config()), clock };
        JamLink::spawn(local_addr, clock, true, move |thread| host.run(thread))
    }

    /// Joins the jam hosted at `host` with `code`, as `peer_id` (any number unique in the jam).
    pub fn join(host: SocketAddr, code: &JoinCode, peer_id: u64, clock: Clock) -> io::Result<JamLink> {
        let bind =
            SocketAddr::new(if host.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { IpAddr::from([0u16; 8]) }, 0);
        let socket = UdpSocket::bind(bind)?;
        socket.set_read_timeout(Some(POLL))?;
        let local_addr = socket.local_addr()?;
        let peer = Peer { socket, host, key: jam_key(code), peer_id, clock };
        JamLink::spawn(local_addr, clock, false, move |thread| peer.run(thread))
    }

    fn spawn(
        local_addr: SocketAddr,
        clock: Clock,
        host: bool,
        run: impl FnOnce(Thread) + Send + 'static,
    ) -> io::Result<JamLink> {
        let (outgoing, to_send) = mpsc::channel();
        let (to_app, events) = mpsc::channel();
        let sync = Arc::new(Mutex::new(ClockSync::new()));
        let shared = sync.clone();
        let worker = Worker::spawn("ensemble-jam", move |stop| run(Thread { to_send, to_app, sync: shared, stop }))?;
        Ok(JamLink { _worker: worker, outgoing, events: Mutex::new(events), sync, local_addr, clock, host })
    }

    /// Whether this is the host's link.
    pub fn is_host(&self) -> bool {
        self.host
    }

    /// The UDP address the link is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sends a message to everyone (from the host) or to the host (from a peer).
    pub fn send(&self, message: JamMsg) {
        let _ = self.outgoing.send(Outgoing::All(message));
    }

    /// Host: passes a peer's message on to everyone else.
    pub fn relay(&self, from: u64, message: JamMsg) {
        let _ = self.outgoing.send(Outgoing::Except(from, message));
    }

    /// Host: sends a message to one peer.
    pub fn send_to(&self, peer: u64, message: JamMsg) {
        let _ = self.outgoing.send(Outgoing::To(peer, message));
    }

    /// What happened since the last call.
    pub fn events(&self) -> Vec<LinkEvent> {
        self.events.lock().map(|events| events.try_iter().collect()).unwrap_or_default()
    }

    /// The host's clock reading at our clock time `local`.
    pub fn host_time(&self, local: u64) -> Option<u64> {
        if self.host {
            return Some(local);
        }
        self.sync.lock().ok()?.host_time(local)
    }

    /// Our clock time at which the host's clock reads `host`.
    pub fn local_time(&self, host: u64) -> Option<u64> {
        if self.host {
            return Some(host);
        }
        self.sync.lock().ok()?.peer_time(host)
    }

    /// Whether the host's clock is known well enough to place a start: at once on the host,
    /// after [`SETTLED`] exchanges on a peer (one exchange is off by up to half a round trip).
    pub fn is_synced(&self) -> bool {
        self.host || self.sync.lock().is_ok_and(|sync| sync.len() >= SETTLED)
    }

    /// Host clock minus ours, in nanoseconds, and how many exchanges that rests on.
    pub fn offset(&self) -> Option<(f64, usize)> {
        if self.host {
            return Some((0.0, 0));
        }
        let sync = self.sync.lock().ok()?;
        sync.offset_at(self.clock.now()).map(|offset| (offset, sync.len()))
    }
}

/// This machine's addresses on `bound`'s port: a token names the address a peer dials, and
/// the host must recognise it as its own.
fn public_addresses(bound: SocketAddr) -> Vec<SocketAddr> {
    if !bound.ip().is_unspecified() {
        return vec![bound];
    }
    let mut addresses: Vec<SocketAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|interface| interface.ip())
        .filter(|ip| ip.is_ipv4() == bound.is_ipv4())
        .map(|ip| SocketAddr::new(ip, bound.port()))
        .collect();
    let loopback = SocketAddr::new(
        if bound.is_ipv4() { Ipv4Addr::LOCALHOST.into() } else { IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1u16]) },
        bound.port(),
    );
    if !addresses.contains(&loopback) {
        addresses.push(loopback);
    }
    addresses
}

fn unix_time() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// What the link thread shares with its [`JamLink`].
struct Thread {
    to_send: mpsc::Receiver<Outgoing>,
    to_app: mpsc::Sender<LinkEvent>,
    sync: Arc<Mutex<ClockSync>>,
    stop: Stop,
}

impl Thread {
    fn stopping(&self) -> bool {
        self.stop.requested()
    }

    fn tell(&self, event: LinkEvent) {
        let _ = self.to_app.send(event);
    }
}

fn encode(message: &JamMsg) -> Option<Vec<u8>> {
    message.encode().map_err(|error| tracing::warn!("a jam message does not encode: {error}")).ok()
}

/// The host's side: netcode and renet's server on one socket.
struct Host {
    socket: UdpSocket,
    netcode: NetcodeServer,
    renet: RenetServer,
    clock: Clock,
}

impl Host {
    fn run(mut self, thread: Thread) {
        let mut buffer = [0u8; NETCODE_MAX_PACKET_BYTES];
        let mut last = Instant::now();
        let mut flushed = Instant::now();
        while !thread.stopping() {
            match self.socket.recv_from(&mut buffer) {
                Ok((len, from)) => {
                    let arrived = self.clock.now();
                    let result = self.netcode.process_packet(from, &mut buffer[..len]);
                    handle(result, &self.socket, &mut self.renet);
                    if self.read_messages(&thread, arrived) {
                        // Replies leave in the same breath as their stamp.
                        self.flush();
                        flushed = Instant::now();
                    }
                }
                Err(error) if is_timeout(&error) => {}
                Err(error) => tracing::debug!("jam socket: {error}"),
            }
            let elapsed = last.elapsed();
            last = Instant::now();
            self.netcode.update(elapsed);
            self.renet.update(elapsed);
            for client in self.netcode.clients_id() {
                let result = self.netcode.update_client(client);
                handle(result, &self.socket, &mut self.renet);
            }
            for client in self.renet.disconnections_id() {
                let result = self.netcode.disconnect(client);
                handle(result, &self.socket, &mut self.renet);
            }
            while let Some(event) = self.renet.get_event() {
                thread.tell(match event {
                    ServerEvent::ClientConnected { client_id } => LinkEvent::PeerJoined(client_id),
                    ServerEvent::ClientDisconnected { client_id, .. } => LinkEvent::PeerLeft(client_id),
                });
            }
            let mut urgent = false;
            while let Ok(outgoing) = thread.to_send.try_recv() {
                urgent = true;
                let (Outgoing::All(message) | Outgoing::Except(_, message) | Outgoing::To(_, message)) = &outgoing;
                let Some(bytes) = encode(message) else { continue };
                let channel = channel_of(message);
                match outgoing {
                    Outgoing::All(_) => self.renet.broadcast_message(channel, bytes),
                    Outgoing::Except(from, _) => self.renet.broadcast_message_except(from, channel, bytes),
                    Outgoing::To(peer, _) if self.renet.is_connected(peer) => {
                        self.renet.send_message(peer, channel, bytes)
                    }
                    Outgoing::To(..) => {}
                }
            }
            if urgent || flushed.elapsed() >= FLUSH_EVERY {
                self.flush();
                flushed = Instant::now();
            }
        }
        for client in self.netcode.clients_id() {
            let result = self.netcode.disconnect(client);
            handle(result, &self.socket, &mut self.renet);
        }
    }

    /// Reads what the packet that arrived at `arrived` brought; answers clock requests, and
    /// says whether it did (the answers must leave at once).
    fn read_messages(&mut self, thread: &Thread, arrived: u64) -> bool {
        let mut answered = false;
        for client in self.renet.clients_id() {
            while let Some(bytes) = self.renet.receive_message(client, channel::CLOCK) {
                if let Ok(JamMsg::ClockRequest { t0 }) = JamMsg::decode(&bytes) {
                    let reply = JamMsg::ClockReply { t0, t1: arrived, t2: self.clock.now() };
                    if let Some(bytes) = encode(&reply) {
                        self.renet.send_message(client, channel::CLOCK, bytes);
                        answered = true;
                    }
                }
            }
            for channel in [channel::TRANSPORT, channel::PRESENCE] {
                while let Some(bytes) = self.renet.receive_message(client, channel) {
                    match JamMsg::decode(&bytes) {
                        Ok(message) if channel_of(&message) == channel => {
                            thread.tell(LinkEvent::Message { from: client, message })
                        }
                        Ok(_) => tracing::debug!("peer {client} sent a message on the wrong channel"),
                        Err(error) => tracing::debug!("peer {client} sent a bad message: {error}"),
                    }
                }
            }
        }
        answered
    }

    fn flush(&mut self) {
        for client in self.renet.clients_id() {
            let Ok(packets) = self.renet.get_packets_to_send(client) else { continue };
            for packet in packets {
                match self.netcode.generate_payload_packet(client, &packet) {
                    Ok((addr, payload)) => {
                        if let Err(error) = self.socket.send_to(payload, addr) {
                            tracing::debug!("jam: cannot send to peer {client}: {error}");
                        }
                    }
                    Err(error) => tracing::debug!("jam: cannot seal a packet for peer {client}: {error}"),
                }
            }
        }
    }
}

/// Does what netcode says after a packet or a tick: send its reply, admit or drop a peer, or
/// hand a payload to renet.
fn handle(result: ServerResult, socket: &UdpSocket, renet: &mut RenetServer) {
    let send = |packet: &[u8], addr: SocketAddr| {
        if let Err(error) = socket.send_to(packet, addr) {
            tracing::debug!("jam: cannot send to {addr}: {error}");
        }
    };
    match result {
        ServerResult::None => {}
        ServerResult::PacketToSend { payload, addr } => send(payload, addr),
        ServerResult::Payload { client_id, payload } => {
            let _ = renet.process_packet_from(payload, client_id);
        }
        ServerResult::ClientConnected { client_id, addr, payload, .. } => {
            renet.add_connection(client_id);
            send(payload, addr);
        }
        ServerResult::ClientDisconnected { client_id, addr, payload } => {
            renet.remove_connection(client_id);
            if let Some(payload) = payload {
                send(payload, addr);
            }
        }
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

/// A peer's side: netcode and renet's client, reconnecting as long as the link lives.
struct Peer {
    socket: UdpSocket,
    host: SocketAddr,
    key: [u8; 32],
    peer_id: u64,
    clock: Clock,
}

/// One attempt at a connection to the host.
struct Session {
    netcode: NetcodeClient,
    renet: RenetClient,
    connected: bool,
}

impl Peer {
    fn session(&self) -> Option<Session> {
        let token = ConnectToken::generate(
            unix_time(),
            protocol_id(),
            3_600,
            self.peer_id,
            TIMEOUT_SECONDS,
            vec![self.host],
            None,
            &self.key,
        )
        .map_err(|error| tracing::warn!("jam: cannot make a connect token: {error}"))
        .ok()?;
        let netcode = NetcodeClient::new(unix_time(), ClientAuthentication::Secure { connect_token: token })
            .map_err(|error| tracing::warn!("jam: {error}"))
            .ok()?;
        Some(Session { netcode, renet: RenetClient::new(connection_config()), connected: false })
    }

    fn run(self, thread: Thread) {
        let mut buffer = [0u8; NETCODE_MAX_PACKET_BYTES];
        while !thread.stopping() {
            let Some(mut session) = self.session() else {
                std::thread::sleep(RETRY);
                continue;
            };
            self.connect(&thread, &mut session, &mut buffer);
            if session.connected {
                thread.tell(LinkEvent::Disconnected(match session.netcode.disconnect_reason() {
                    Some(reason) => reason.to_string(),
                    None => "the host went quiet".into(),
                }));
            }
            if let Ok((addr, packet)) = session.netcode.disconnect() {
                let _ = self.socket.send_to(packet, addr);
            }
            if !thread.stopping() {
                std::thread::sleep(RETRY);
            }
        }
    }

    /// Runs one session until it ends or the link stops.
    fn connect(&self, thread: &Thread, session: &mut Session, buffer: &mut [u8]) {
        let mut last = Instant::now();
        let mut next_exchange = Instant::now();
        let mut flushed = Instant::now();
        while !thread.stopping() {
            match self.socket.recv_from(buffer) {
                Ok((len, from)) if from == self.host => {
                    let arrived = self.clock.now();
                    if let Some(payload) = session.netcode.process_packet(&mut buffer[..len]) {
                        session.renet.process_packet(payload);
                    }
                    self.read_messages(thread, session, arrived);
                }
                Ok(_) => {}
                Err(error) if is_timeout(&error) => {}
                Err(error) => tracing::debug!("jam socket: {error}"),
            }
            let elapsed = last.elapsed();
            last = Instant::now();
            if let Some((packet, addr)) = session.netcode.update(elapsed) {
                let _ = self.socket.send_to(packet, addr);
            }
            session.renet.update(elapsed);
            if session.netcode.is_disconnected() || session.renet.is_disconnected() {
                return;
            }
            if session.netcode.is_connected() {
                session.renet.set_connected();
                if !session.connected {
                    session.connected = true;
                    if let Ok(mut sync) = thread.sync.lock() {
                        sync.reset();
                    }
                    thread.tell(LinkEvent::Connected);
                }
            } else {
                session.renet.set_connecting();
            }
            if !session.connected {
                continue;
            }
            let mut urgent = false;
            while let Ok(outgoing) = thread.to_send.try_recv() {
                let (Outgoing::All(message) | Outgoing::Except(_, message) | Outgoing::To(_, message)) = outgoing;
                if let Some(bytes) = encode(&message) {
                    session.renet.send_message(channel_of(&message), bytes);
                    urgent = true;
                }
            }
            if Instant::now() >= next_exchange {
                urgent = true;
                let samples = thread.sync.lock().map_or(0, |sync| sync.len());
                next_exchange = Instant::now() + if samples < FAST_EXCHANGES { FAST_EVERY } else { SLOW_EVERY };
                // Stamped last, just before the packet is sealed and sent.
                if let Some(bytes) = encode(&JamMsg::ClockRequest { t0: self.clock.now() }) {
                    session.renet.send_message(channel::CLOCK, bytes);
                }
            }
            if urgent || flushed.elapsed() >= FLUSH_EVERY {
                self.flush(session);
                flushed = Instant::now();
            }
        }
    }

    fn read_messages(&self, thread: &Thread, session: &mut Session, arrived: u64) {
        while let Some(bytes) = session.renet.receive_message(channel::CLOCK) {
            if let Ok(JamMsg::ClockReply { t0, t1, t2 }) = JamMsg::decode(&bytes)
                && let Ok(mut sync) = thread.sync.lock()
            {
                sync.add(ClockSample { t0, t1, t2, t3: arrived });
            }
        }
        for channel in [channel::TRANSPORT, channel::PRESENCE] {
            while let Some(bytes) = session.renet.receive_message(channel) {
                match JamMsg::decode(&bytes) {
                    Ok(message) if channel_of(&message) == channel => {
                        thread.tell(LinkEvent::Message { from: 0, message })
                    }
                    Ok(_) => tracing::debug!("the host sent a message on the wrong channel"),
                    Err(error) => tracing::debug!("the host sent a bad message: {error}"),
                }
            }
        }
    }

    fn flush(&self, session: &mut Session) {
        for packet in session.renet.get_packets_to_send() {
            match session.netcode.generate_payload_packet(&packet) {
                Ok((addr, payload)) => {
                    if let Err(error) = self.socket.send_to(payload, addr) {
                        tracing::debug!("jam: cannot send to the host: {error}");
                    }
                }
                Err(error) => tracing::debug!("jam: cannot seal a packet: {error}"),
            }
        }
    }
}
