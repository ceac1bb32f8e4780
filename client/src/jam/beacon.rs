//! Finding jams on the LAN: a host broadcasts a [`Beacon`] every second, peers listen.
//!
//! The beacon goes to every IPv4 interface's broadcast address and to loopback, so a second
//! window on the host's own machine finds it too. Listeners share the port (`SO_REUSEADDR`),
//! so several windows on one machine all hear it. A datagram that is not a beacon this
//! version can use is dropped; a jam not heard from for a few seconds leaves the list.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ensemble_protocol::jam::{Beacon, MAX_BEACON};
use socket2::{Domain, Protocol, Socket, Type};

use super::worker::Worker;

/// The UDP port beacons go to.
pub const BEACON_PORT: u16 = 47_474;
/// How often a host repeats its beacon.
pub const BEACON_EVERY: Duration = Duration::from_secs(1);
/// How long a jam stays listed without a beacon.
pub const FORGET_AFTER: Duration = Duration::from_secs(4);

/// Broadcasts a host's beacon until dropped.
pub struct Beaconer {
    _worker: Worker,
}

impl Beaconer {
    /// Starts broadcasting `beacon` to `port` on every interface.
    pub fn start(beacon: &Beacon, port: u16) -> io::Result<Beaconer> {
        let datagram = beacon.encode().map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
        socket.set_broadcast(true)?;
        let worker = Worker::spawn("ensemble-beacon", move |stop| {
            while !stop.requested() {
                for target in targets(port) {
                    // An interface that is down or refuses broadcasts just does not hear it.
                    let _ = socket.send_to(&datagram, target);
                }
                let until = Instant::now() + BEACON_EVERY;
                while Instant::now() < until && !stop.requested() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        })?;
        Ok(Beaconer { _worker: worker })
    }
}

/// Where a beacon goes: each interface's broadcast address, and loopback.
fn targets(port: u16) -> Vec<SocketAddr> {
    let mut targets: Vec<SocketAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|interface| match interface.addr {
            if_addrs::IfAddr::V4(v4) if !v4.ip.is_loopback() => v4.broadcast,
            _ => None,
        })
        .map(|broadcast| SocketAddr::V4(SocketAddrV4::new(broadcast, port)))
        .collect();
    targets.push(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    targets.dedup();
    targets
}

/// A jam heard on the LAN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundJam {
    /// The host's address, as the beacon came from it.
    pub host: IpAddr,
    /// What it says about itself.
    pub beacon: Beacon,
}

impl FoundJam {
    /// Where its renet server listens.
    pub fn renet_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.beacon.renet_port)
    }

    /// Where its authority listens.
    pub fn quic_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.beacon.quic_port)
    }
}

/// The jams heard, by host address and renet port, with when each was last heard.
type Heard = HashMap<(IpAddr, u16), (FoundJam, Instant)>;

/// Listens for beacons until dropped; [`Discovery::jams`] lists what it heard lately.
pub struct Discovery {
    heard: Arc<Mutex<Heard>>,
    _worker: Worker,
}

impl Discovery {
    /// Listens on `port` (shared with other listeners on this machine).
    pub fn listen(port: u16) -> io::Result<Discovery> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_address(true)?;
        #[cfg(unix)]
        socket.set_reuse_port(true)?;
        socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
        let socket: UdpSocket = socket.into();
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let heard = Arc::new(Mutex::new(HashMap::new()));
        let writing = heard.clone();
        let worker = Worker::spawn("ensemble-discovery", move |stop| {
            let mut buffer = [0u8; MAX_BEACON + 1];
            while !stop.requested() {
                let Ok((len, from)) = socket.recv_from(&mut buffer) else { continue };
                match Beacon::decode(&buffer[..len]) {
                    Ok(beacon) => {
                        let key = (from.ip(), beacon.renet_port);
                        let jam = FoundJam { host: from.ip(), beacon };
                        if let Ok(mut heard) = writing.lock() {
                            heard.insert(key, (jam, Instant::now()));
                        }
                    }
                    Err(error) => tracing::debug!("ignored a datagram from {from}: {error}"),
                }
            }
        })?;
        Ok(Discovery { heard, _worker: worker })
    }

    /// The jams heard within [`FORGET_AFTER`], by host and port. A host seen both on loopback
    /// and on the LAN is listed once, by its LAN address.
    pub fn jams(&self) -> Vec<FoundJam> {
        let Ok(mut heard) = self.heard.lock() else { return Vec::new() };
        heard.retain(|_, (_, seen)| seen.elapsed() < FORGET_AFTER);
        let mut jams: Vec<FoundJam> = heard.values().map(|(jam, _)| jam.clone()).collect();
        let remote: Vec<_> = jams.iter().filter(|jam| !jam.host.is_loopback()).map(|jam| jam.beacon.clone()).collect();
        jams.retain(|jam| !(jam.host.is_loopback() && remote.contains(&jam.beacon)));
        jams.sort_by(|a, b| (&a.beacon.host, a.host).cmp(&(&b.beacon.host, b.host)));
        jams
    }
}
