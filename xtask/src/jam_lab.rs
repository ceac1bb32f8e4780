//! `cargo xtask jam-lab`: a LAN jam on a network of its own, measured.
//!
//! Five network namespaces: a host and three peers, each with a veth link to a `wire`
//! namespace that joins them like a switch and delays every frame by 1 ms ± 0.3 ms. Where the
//! kernel has netem, the wire is a bridge and the delay is netem's on each member's link;
//! where it does not (some VMs' kernels), the wire is a userspace hub (`jam-wire`, below) that
//! forwards every frame to the other ports after the same delay. Either way the members speak
//! real UDP over real interfaces, find the host by its broadcast beacon, and sync with it.
//!
//! The host (`ensemble-jam host`) waits for the three peers, then starts the jam a hundred
//! times, each from a new bar. Every member prints when its first frame of each start plays on
//! the machine's monotonic clock, which all namespaces share; the peers' clocks are skewed by
//! +500, −500 and +123 ms, so they must learn the host's. The phase error of a start is a
//! peer's time minus the host's; the lab prints its p50, p99 and maximum over all starts.

use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{Result, cargo, target_dir};

/// The one-way delay and its jitter (uniform, either way), as netem's `delay 1ms 0.3ms`.
const DELAY_US: u64 = 1_000;
const JITTER_US: u64 = 300;
/// The peers' clock skews, in milliseconds.
const SKEWS_MS: [f64; 3] = [500.0, -500.0, 123.0];
const CODE: &str = "LAB7-JAMS";

/// The namespaces, by member: the host first.
const MEMBERS: [&str; 4] = ["ensjam-host", "ensjam-p1", "ensjam-p2", "ensjam-p3"];
const WIRE: &str = "ensjam-wire";

/// Whether this machine lets us make network namespaces (root, and a kernel that has them).
pub(crate) fn namespaces_work() -> bool {
    const PROBE: &str = "ensjam-probe";
    let made = crate::setup::is_root()
        && Command::new("ip").args(["netns", "add", PROBE]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if made {
        let _ = Command::new("ip").args(["netns", "del", PROBE]).status();
    }
    made
}

pub(crate) fn run(starts: u32) -> Result {
    cargo(&["build", "--locked", "-p", "ensemble-client", "--bin", "ensemble-jam"])?;
    let binary = target_dir().join("debug").join("ensemble-jam");
    let network = Network::build()?;
    eprintln!("jam-lab: the wire is {}", network.wire_kind);
    let dir = std::env::temp_dir().join(format!("ensemble-jam-lab-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let binary = binary.to_string_lossy().into_owned();
    let member = |index: usize, args: &[&str]| -> Result<Child> {
        let home = dir.join(MEMBERS[index]).to_string_lossy().into_owned();
        let name = if index == 0 { "host".to_owned() } else { format!("peer{index}") };
        let skew = if index == 0 { "0".to_owned() } else { SKEWS_MS[index - 1].to_string() };
        let base =
            ["netns", "exec", MEMBERS[index], binary.as_str(), "--name", &name, "--dir", &home, "--skew-ms", &skew];
        Command::new("ip")
            .args(base)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))
    };
    let starts_arg = starts.to_string();
    let mut host = member(0, &["host", "--code", CODE, "--starts", &starts_arg, "--peers", "3", "--every-ms", "500"])?;
    std::thread::sleep(Duration::from_secs(2));
    let mut peers = Vec::new();
    for index in 1..MEMBERS.len() {
        peers.push(member(index, &["join", "--code", CODE, "--starts", &starts_arg])?);
    }
    let limit = Duration::from_secs(90) + Duration::from_millis(500) * starts;
    let host_out = finish(&mut host, limit, "the host")?;
    let mut peer_outs = Vec::new();
    for (index, peer) in peers.iter_mut().enumerate() {
        peer_outs.push(finish(peer, Duration::from_secs(10), &format!("peer {}", index + 1))?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    drop(network);
    report(starts, &host_out, &peer_outs)
}

/// Waits for a member to exit (killing it after `limit`) and returns what it printed.
fn finish(child: &mut Child, limit: Duration, who: &str) -> Result<String> {
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let (sender, output) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        let _ = sender.send(text);
    });
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            if !status.success() {
                eprintln!("jam-lab: {who} exited with {status}");
            }
            break;
        }
        if started.elapsed() > limit {
            eprintln!("jam-lab: {who} still running after {limit:?}: stopped");
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    output.recv_timeout(Duration::from_secs(5)).map_err(|_| format!("{who}'s output did not close"))
}

/// `start FROM NS` lines, by position.
fn starts_of(output: &str) -> HashMap<i64, i128> {
    output
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("start ")?.split_whitespace();
            Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
        })
        .collect()
}

fn report(starts: u32, host: &str, peers: &[String]) -> Result {
    for (index, output) in peers.iter().enumerate() {
        for line in output.lines().filter(|line| !line.starts_with("start ")) {
            eprintln!("peer {}: {line}", index + 1);
        }
    }
    let host_starts = starts_of(host);
    let mut errors: Vec<f64> = Vec::new();
    let mut missing = 0;
    for output in peers {
        let peer_starts = starts_of(output);
        for (from, at) in &host_starts {
            match peer_starts.get(from) {
                Some(peer_at) => errors.push((peer_at - at) as f64 / 1e3),
                None => missing += 1,
            }
        }
    }
    if host_starts.len() < starts as usize || errors.is_empty() {
        return Err(format!(
            "the host made {} of {starts} starts; the peers heard {}",
            host_starts.len(),
            errors.len()
        ));
    }
    let mut magnitudes: Vec<f64> = errors.iter().map(|error| error.abs()).collect();
    magnitudes.sort_by(f64::total_cmp);
    let at = |share: f64| magnitudes[((magnitudes.len() - 1) as f64 * share).round() as usize];
    let mean = errors.iter().sum::<f64>() / errors.len() as f64;
    println!(
        "jam-lab: {} starts × 3 peers over a {DELAY_US} µs ± {JITTER_US} µs wire, peers' clocks {SKEWS_MS:?} ms off",
        host_starts.len()
    );
    println!(
        "jam-lab: phase error |peer − host|: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs (mean signed {:+.1} µs; {} measured, {missing} missed)",
        at(0.5),
        at(0.99),
        at(1.0),
        mean,
        errors.len()
    );
    if missing > 0 {
        return Err(format!("{missing} peer starts never happened"));
    }
    Ok(())
}

/// The namespaces and links; taken down when dropped.
struct Network {
    wire_kind: &'static str,
    hub: Option<Child>,
}

fn ip(args: &[&str]) -> Result {
    let status = Command::new("ip").args(args).status().map_err(|e| format!("ip: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`ip {}` failed", args.join(" "))) }
}

impl Network {
    fn build() -> Result<Network> {
        Network::tear_down();
        let mut network = Network { wire_kind: "", hub: None };
        ip(&["netns", "add", WIRE])?;
        ip(&["-n", WIRE, "link", "set", "lo", "up"])?;
        for (index, member) in MEMBERS.iter().enumerate() {
            let (inside, outside) = (format!("ensm{index}"), format!("ensw{index}"));
            ip(&["netns", "add", member])?;
            ip(&["-n", member, "link", "set", "lo", "up"])?;
            ip(&["-n", WIRE, "link", "add", &outside, "type", "veth", "peer", "name", &inside, "netns", member])?;
            ip(&["-n", member, "addr", "add", &format!("10.77.0.{}/24", index + 1), "brd", "+", "dev", &inside])?;
            ip(&["-n", member, "link", "set", &inside, "up"])?;
            ip(&["-n", WIRE, "link", "set", &outside, "up"])?;
        }
        let netem = MEMBERS.iter().enumerate().all(|(index, member)| {
            let device = format!("ensm{index}");
            let delay = format!("{}us", DELAY_US);
            let jitter = format!("{}us", JITTER_US);
            Command::new("ip")
                .args(["netns", "exec", member, "tc", "qdisc", "add", "dev", &device, "root", "netem", "delay"])
                .args([&delay, &jitter])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        });
        if netem {
            ip(&["-n", WIRE, "link", "add", "ensbr", "type", "bridge"])?;
            for index in 0..MEMBERS.len() {
                ip(&["-n", WIRE, "link", "set", &format!("ensw{index}"), "master", "ensbr"])?;
            }
            ip(&["-n", WIRE, "link", "set", "ensbr", "up"])?;
            network.wire_kind = "a bridge, with netem delay 1ms 0.3ms on every member's link";
        } else {
            let xtask = std::env::current_exe().map_err(|e| e.to_string())?;
            let ports: Vec<String> = (0..MEMBERS.len()).map(|index| format!("ensw{index}")).collect();
            let hub = Command::new("ip")
                .args(["netns", "exec", WIRE])
                .arg(xtask)
                .arg("jam-wire")
                .args(&ports)
                .spawn()
                .map_err(|e| format!("starting the wire: {e}"))?;
            network.hub = Some(hub);
            network.wire_kind = "a userspace hub delaying every frame 1 ms ± 0.3 ms (this kernel has no netem)";
        }
        Ok(network)
    }

    fn tear_down() {
        for namespace in MEMBERS.iter().chain([&WIRE]) {
            let _ = Command::new("ip").args(["netns", "del", namespace]).stderr(Stdio::null()).status();
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.as_mut() {
            let _ = hub.kill();
            let _ = hub.wait();
        }
        Network::tear_down();
    }
}

/// A frame due out of a port.
struct Due {
    at: Instant,
    frame: Vec<u8>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    /// The earliest first, in a max-heap.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.at.cmp(&self.at)
    }
}

/// A veth hands a capture its frames before the kernel has filled in their UDP checksums (it
/// offloads that to a card there is not); sent on as they are, the receiver would drop them.
/// IPv4 lets a datagram carry no checksum (zero), so the hub clears it.
fn clear_udp_checksum(frame: &mut [u8]) {
    const ETHERNET: usize = 14;
    let ipv4 = frame.get(12..14) == Some(&[0x08, 0x00]);
    let Some(&version_and_length) = frame.get(ETHERNET) else { return };
    let header = usize::from(version_and_length & 0x0f) * 4;
    let udp = frame.get(ETHERNET + 9) == Some(&17);
    let checksum = ETHERNET + header + 6;
    if ipv4 && udp && frame.len() >= checksum + 2 {
        frame[checksum..checksum + 2].copy_from_slice(&[0, 0]);
    }
}

/// FNV-1a, to recognise our own frames when a port's capture shows them going out.
fn fingerprint(frame: &[u8]) -> u64 {
    frame.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3))
}

/// `xtask jam-wire PORT…`: a hub that sends every frame arriving on one port out of all the
/// others, each after 1 ms ± 0.3 ms (uniform), as netem would; frames may pass each other.
pub(crate) fn wire(ports: &[&str]) -> Result {
    use pnet_datalink::Channel;
    let interfaces = pnet_datalink::interfaces();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    let sent: Vec<std::sync::Arc<std::sync::Mutex<VecDeque<u64>>>> = ports.iter().map(|_| Default::default()).collect();
    for port in ports {
        let interface =
            interfaces.iter().find(|interface| interface.name == *port).ok_or(format!("no interface {port}"))?;
        let config = pnet_datalink::Config { read_timeout: Some(Duration::from_millis(100)), ..Default::default() };
        match pnet_datalink::channel(interface, config) {
            Ok(Channel::Ethernet(tx, rx)) => {
                senders.push(tx);
                receivers.push(rx);
            }
            Ok(_) => return Err(format!("{port}: not an Ethernet channel")),
            Err(e) => return Err(format!("{port}: {e}")),
        }
    }
    let mut queues = Vec::new();
    for (index, mut tx) in senders.into_iter().enumerate() {
        let (queue, due) = mpsc::channel::<Due>();
        queues.push(queue);
        let sent = sent[index].clone();
        std::thread::spawn(move || {
            let mut waiting = BinaryHeap::new();
            loop {
                let timeout = waiting
                    .peek()
                    .map_or(Duration::from_millis(100), |next: &Due| next.at.saturating_duration_since(Instant::now()));
                match due.recv_timeout(timeout) {
                    Ok(frame) => waiting.push(frame),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
                while waiting.peek().is_some_and(|next| next.at <= Instant::now()) {
                    let Some(next) = waiting.pop() else { break };
                    if let Ok(mut sent) = sent.lock() {
                        sent.push_back(fingerprint(&next.frame));
                        if sent.len() > 4096 {
                            sent.pop_front();
                        }
                    }
                    let _ = tx.send_to(&next.frame, None);
                }
            }
        });
    }
    let mut noise = 0x2545_f491_4f6c_dd1du64;
    let (arrivals, arrived) = mpsc::channel::<(usize, Vec<u8>)>();
    for (index, mut rx) in receivers.into_iter().enumerate() {
        let (arrivals, sent) = (arrivals.clone(), sent[index].clone());
        std::thread::spawn(move || {
            loop {
                let frame = match rx.next() {
                    Ok(frame) => frame.to_vec(),
                    Err(error) if error.kind() == std::io::ErrorKind::TimedOut => continue,
                    Err(_) => return,
                };
                // The capture shows what we sent out of this port too: not an arrival.
                let ours = sent.lock().ok().and_then(|mut sent| {
                    let hash = fingerprint(&frame);
                    sent.iter().position(|sent| *sent == hash).map(|at| sent.remove(at))
                });
                if ours.is_none() && arrivals.send((index, frame)).is_err() {
                    return;
                }
            }
        });
    }
    drop(arrivals);
    while let Ok((from, mut frame)) = arrived.recv() {
        let now = Instant::now();
        clear_udp_checksum(&mut frame);
        for (_, queue) in queues.iter().enumerate().filter(|(to, _)| *to != from) {
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            let unit = (noise >> 11) as f64 / (1u64 << 53) as f64;
            let delay = DELAY_US as f64 + (unit * 2.0 - 1.0) * JITTER_US as f64;
            let _ = queue.send(Due { at: now + Duration::from_micros(delay as u64), frame: frame.clone() });
        }
    }
    Ok(())
}
