//! LAN jams over real UDP on loopback: a host and three peers whose clocks are half a second
//! apart, each peer behind a relay that delays its packets by 300 µs plus exponential jitter.
//! The peers learn the host's clock to well within half a millisecond, and a start sounds on
//! all four within a millisecond, counted in the frames their offline engines render. A peer
//! whose network goes away and comes back is in sync again within two seconds; a stranger
//! without the join code, and datagrams that are not the jam's, get nowhere.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use ensemble_audio::Pcm;
use ensemble_audio::arrangement::Arrangement;
use ensemble_audio::engine::{Engine, OfflineBackend};
use ensemble_client::clock::{Clock, SampleClock};
use ensemble_client::edits;
use ensemble_client::jam::link::{JamLink, LinkEvent};
use ensemble_protocol::jam::{JamMsg, JoinCode, TransportCommand};
use ensemble_protocol::*;

use crate::harness::Rng;

const RATE: u32 = 48_000;
const MS: f64 = 1e6;

/// A UDP relay between one peer and the host that delays every datagram by 300 µs plus
/// exponential jitter (mean 150 µs), in order, like a busy switch; it can also cut the line.
struct Jitter {
    addr: SocketAddr,
    host: Arc<OnceLock<SocketAddr>>,
    cut: Arc<AtomicBool>,
}

impl Jitter {
    fn bind(seed: u64) -> Jitter {
        let outside = UdpSocket::bind("127.0.0.1:0").unwrap();
        let inside = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = outside.local_addr().unwrap();
        let host = Arc::new(OnceLock::<SocketAddr>::new());
        let cut = Arc::new(AtomicBool::new(false));
        let peer = Arc::new(Mutex::new(None::<SocketAddr>));
        // Peer → host.
        let (to_host, host_queue) = mpsc::channel::<(Instant, Vec<u8>)>();
        let (to_peer, peer_queue) = mpsc::channel::<(Instant, Vec<u8>)>();
        {
            let (outside, host, cut, peer, mut noise) =
                (outside.try_clone().unwrap(), host.clone(), cut.clone(), peer.clone(), Rng(seed));
            std::thread::spawn(move || {
                let mut buffer = [0u8; 2048];
                while let Ok((len, from)) = outside.recv_from(&mut buffer) {
                    *peer.lock().unwrap() = Some(from);
                    if !cut.load(Ordering::Relaxed) && host.get().is_some() {
                        let _ = to_host.send((Instant::now() + delay(&mut noise), buffer[..len].to_vec()));
                    }
                }
            });
        }
        {
            let (inside, cut, mut noise) = (inside.try_clone().unwrap(), cut.clone(), Rng(seed ^ 0x9e37_79b9));
            std::thread::spawn(move || {
                let mut buffer = [0u8; 2048];
                while let Ok((len, _)) = inside.recv_from(&mut buffer) {
                    if !cut.load(Ordering::Relaxed) {
                        let _ = to_peer.send((Instant::now() + delay(&mut noise), buffer[..len].to_vec()));
                    }
                }
            });
        }
        let deliver = |queue: mpsc::Receiver<(Instant, Vec<u8>)>,
                       socket: UdpSocket,
                       to: Box<dyn Fn() -> Option<SocketAddr> + Send>| {
            std::thread::spawn(move || {
                while let Ok((when, bytes)) = queue.recv() {
                    let wait = when.saturating_duration_since(Instant::now());
                    if !wait.is_zero() {
                        std::thread::sleep(wait);
                    }
                    if let Some(to) = to() {
                        let _ = socket.send_to(&bytes, to);
                    }
                }
            });
        };
        let host_addr = host.clone();
        deliver(host_queue, inside, Box::new(move || host_addr.get().copied()));
        deliver(peer_queue, outside, Box::new(move || *peer.lock().unwrap()));
        Jitter { addr, host, cut }
    }

    fn forward_to(&self, host: SocketAddr) {
        self.host.set(host).unwrap();
    }
}

/// A relay's delay for one datagram: 300 µs plus exponential jitter (mean 150 µs, at most 3 ms).
fn delay(rng: &mut Rng) -> Duration {
    let jitter = (-rng.unit().max(1e-12).ln() * 150_000.0).min(3e6);
    Duration::from_nanos((300_000.0 + jitter) as u64)
}

/// One track with a single-sample click at the very start, to hear exactly when a start lands.
fn click_arrangement() -> Arc<Arrangement> {
    let project = crate::harness::project("Jam");
    let mut state = ProjectState::new(ProjectId::new_v7(), project).unwrap();
    let apply = |state: &mut ProjectState, ops| state.apply(&Transaction::new(state.id(), ops)).unwrap();
    let (track, ops) = edits::add_track(state.id().into(), "Click".into(), 0);
    apply(&mut state, ops);
    let asset = AssetId::new_v7();
    let record = AudioAsset {
        hash: ContentHash([7; 32]),
        name: "click.wav".into(),
        sample_rate: RATE,
        channels: 1,
        frames: Frames(4_800),
        codec: Codec::Wav,
        byte_size: 1,
        peaks_ready: false,
    };
    apply(&mut state, vec![Op::Create { id: asset.into(), record: Record::AudioAsset(record) }]);
    let clip = Clip {
        track,
        asset,
        start: Ticks(0),
        length: Ticks(960),
        source_offset: Frames(0),
        gain_db: 0.0,
        fade_in: Ticks(0),
        fade_out: Ticks(0),
        name: "click".into(),
    };
    apply(&mut state, vec![Op::Create { id: ClipId::new_v7().into(), record: Record::Clip(clip) }]);
    let mut click = vec![0.0; 4_800];
    click[0] = 1.0;
    Arc::new(Arrangement::from_project(&state, &HashMap::from([(asset, Pcm::new(RATE, vec![click]))])))
}

/// When (on the machine's own monotonic clock) a machine whose clock is `clock` first sounds
/// after being told to play at its local time `at`: its offline engine, whose frame 0 played
/// at `anchor`, schedules the start and renders until the click.
fn first_sound(clock: Clock, anchor: u64, at: u64) -> u64 {
    let mut engine = Engine::<OfflineBackend>::new(RATE, click_arrangement()).unwrap();
    let sample_clock = SampleClock::anchored(RATE, 0, anchor);
    let frame = sample_clock.frame_at(at);
    engine.play_at(frame, 0).unwrap();
    let mut out = vec![[0.0f32; 2]; frame as usize + 2_000];
    for chunk in out.chunks_mut(480) {
        engine.backend_mut().render(chunk);
    }
    let first = out.iter().position(|frame| frame[0] != 0.0).expect("the click sounds") as u64;
    assert_eq!(first, frame, "the click is the scheduled frame");
    clock.to_monotonic(sample_clock.time_of(first))
}

fn code() -> JoinCode {
    JoinCode::from_random([0x5a, 0x17, 0xc3, 0x08, 0x9f])
}

/// Waits until `done` holds, or fails after `within`.
fn wait_until(within: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "{what} took over {within:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

#[test]
fn three_peers_behind_jitter_learn_the_hosts_clock_and_start_on_the_same_sample() {
    let host_clock = Clock::skewed(0);
    let skews = [500_000_000i64, -500_000_000, 123_456_789];
    let relays: Vec<Jitter> = (0..3).map(|i| Jitter::bind(0x1234_5678 + i)).collect();
    let reachable: Vec<SocketAddr> = relays.iter().map(|relay| relay.addr).collect();
    let host = JamLink::host("127.0.0.1:0".parse().unwrap(), &reachable, &code(), host_clock).unwrap();
    for relay in &relays {
        relay.forward_to(host.local_addr());
    }
    let peers: Vec<(Clock, JamLink)> = skews
        .iter()
        .zip(&relays)
        .enumerate()
        .map(|(i, (skew, relay))| {
            let clock = Clock::skewed(*skew);
            (clock, JamLink::join(relay.addr, &code(), 100 + i as u64, clock).unwrap())
        })
        .collect();
    let mut joined = 0;
    wait_until(Duration::from_secs(5), "three peers joining", || {
        joined += host.events().iter().filter(|event| matches!(event, LinkEvent::PeerJoined(_))).count();
        joined == 3 && peers.iter().all(|(_, peer)| peer.offset().is_some_and(|(_, samples)| samples >= 32))
    });
    // Each estimate is the host's clock minus the peer's: minus its skew.
    for ((clock, peer), skew) in peers.iter().zip(skews) {
        let (offset, samples) = peer.offset().unwrap();
        let error = offset + skew as f64;
        println!(
            "peer skewed {:+.1} ms: offset error {:+.1} µs over {samples} exchanges",
            skew as f64 / MS,
            error / 1e3
        );
        assert!(error.abs() < 0.5 * MS, "the offset is {:.3} ms off", error / MS);
        assert!(peer.host_time(clock.now()).is_some());
    }
    // The host says: play from the top 300 ms from now.
    let at = host_clock.now() + 300_000_000;
    host.send(JamMsg::Transport(TransportCommand::Play { at, from: Ticks(0) }));
    let anchor = host_clock.to_monotonic(host_clock.now());
    let mut heard = vec![first_sound(host_clock, host_clock.from_monotonic(anchor), at)];
    for (clock, peer) in &peers {
        let mut told = None;
        wait_until(Duration::from_secs(1), "the start reaching a peer", || {
            told = told.or_else(|| {
                peer.events().into_iter().find_map(|event| match event {
                    LinkEvent::Message { message: JamMsg::Transport(TransportCommand::Play { at, .. }), .. } => {
                        Some(at)
                    }
                    _ => None,
                })
            });
            told.is_some()
        });
        let local = peer.local_time(told.unwrap()).unwrap();
        heard.push(first_sound(*clock, clock.from_monotonic(anchor), local));
    }
    let earliest = *heard.iter().min().unwrap();
    let spread = (*heard.iter().max().unwrap() - earliest) as f64;
    println!(
        "first samples, µs after the earliest: {:?}",
        heard.iter().map(|t| (t - earliest) / 1_000).collect::<Vec<_>>()
    );
    assert!(spread < 1.0 * MS, "the machines started {:.3} ms apart", spread / MS);
}

#[test]
fn a_peer_whose_network_drops_is_in_sync_again_within_two_seconds_of_its_return() {
    let host_clock = Clock::skewed(-250_000_000);
    let relay = Jitter::bind(99);
    let host = JamLink::host("127.0.0.1:0".parse().unwrap(), &[relay.addr], &code(), host_clock).unwrap();
    relay.forward_to(host.local_addr());
    let clock = Clock::skewed(400_000_000);
    let truth = (host_clock.skew() - clock.skew()) as f64;
    let peer = JamLink::join(relay.addr, &code(), 7, clock).unwrap();
    let in_sync = |peer: &JamLink| {
        peer.offset().is_some_and(|(offset, samples)| samples >= 8 && (offset - truth).abs() < 0.5 * MS)
    };
    wait_until(Duration::from_secs(5), "the first sync", || in_sync(&peer));
    // The cable comes out for four seconds: longer than either side waits for the other.
    relay.cut.store(true, Ordering::Relaxed);
    let mut dropped = false;
    wait_until(Duration::from_secs(6), "the peer noticing", || {
        dropped |= peer.events().iter().any(|event| matches!(event, LinkEvent::Disconnected(_)));
        dropped
    });
    std::thread::sleep(Duration::from_secs(1));
    relay.cut.store(false, Ordering::Relaxed);
    let mut reconnected = false;
    let took = wait_until(Duration::from_secs(2), "resynchronising", || {
        reconnected |= peer.events().contains(&LinkEvent::Connected);
        reconnected && in_sync(&peer)
    });
    println!("back in sync {took:?} after the network returned");
}

#[test]
fn strangers_without_the_code_and_stray_datagrams_get_nowhere() {
    let host = JamLink::host("127.0.0.1:0".parse().unwrap(), &[], &code(), Clock::system()).unwrap();
    // Datagrams that are not netcode packets, or not sealed with the jam's key.
    let stray = UdpSocket::bind("127.0.0.1:0").unwrap();
    for garbage in [&b""[..], b"\x00", b"ENSJ hello", &[0xffu8; 1200]] {
        stray.send_to(garbage, host.local_addr()).unwrap();
    }
    let stranger =
        JamLink::join(host.local_addr(), &JoinCode::from_random([1, 1, 1, 1, 1]), 5, Clock::system()).unwrap();
    let friend = JamLink::join(host.local_addr(), &code(), 6, Clock::system()).unwrap();
    let mut joined = Vec::new();
    wait_until(Duration::from_secs(3), "the friend joining", || {
        joined.extend(host.events().into_iter().filter_map(|event| match event {
            LinkEvent::PeerJoined(peer) => Some(peer),
            _ => None,
        }));
        friend.offset().is_some()
    });
    std::thread::sleep(Duration::from_millis(500));
    joined.extend(host.events().into_iter().filter_map(|event| match event {
        LinkEvent::PeerJoined(peer) => Some(peer),
        _ => None,
    }));
    assert_eq!(joined, vec![6], "only the peer with the code is in");
    assert!(stranger.offset().is_none(), "the stranger never synced");
    assert!(!stranger.events().contains(&LinkEvent::Connected));
}

/// A jam member app: the client core, playback on the offline engine, and the jam, on a clock
/// of its own.
fn member(sync: ensemble_client::sync::SyncPlugin, clock: Clock, beacon: u16) -> bevy::prelude::App {
    use ensemble_client::jam::{JamPlugin, JamPorts};
    use ensemble_client::playback::{PlaybackPlugin, SoundCard};
    let mut app = crate::harness::client_app(sync);
    app.insert_resource(clock)
        .insert_resource(SoundCard(false))
        .insert_resource(JamPorts { renet: "0.0.0.0:0".parse().unwrap(), beacon });
    app.add_plugins((PlaybackPlugin, JamPlugin));
    app
}

#[test]
fn apps_jam_a_host_and_peers_found_by_its_beacon_start_in_phase_see_each_other_and_stop_together() {
    use bevy::prelude::App;
    use ensemble_client::history::EditMsg;
    use ensemble_client::jam::{Jam, JamStatus, StartJam, find_jam, joining};
    use ensemble_client::model::{ProjectData, RecordKey};
    use ensemble_client::playback::{LastStart, Transport};
    use ensemble_client::presence::{LocalPresence, Peers};
    use ensemble_client::solo::LanAccess;
    use ensemble_client::solo::SoloSettings;
    use ensemble_client::sync::SyncPlugin;

    use crate::harness::{online, step_until};

    let dir = tempfile::tempdir().unwrap();
    // A port of this test's own for beacons, so parallel tests do not hear each other.
    let beacon = 40_000 + (std::process::id() % 20_000) as u16;
    let lan = LanAccess::new();
    let settings = SoloSettings {
        dir: dir.path().join("host"),
        replicas: dir.path().join("host-replicas"),
        display_name: "Hana".into(),
        project: None,
        demo: Some(ensemble_client::solo::DemoSize::Song),
        lan: Some(lan.clone()),
    };
    let (host_clock, peer_clock) = (Clock::skewed(300_000_000), Clock::skewed(-200_000_000));
    let mut host = member(SyncPlugin::solo(settings), host_clock, beacon);
    host.insert_resource(lan).insert_resource(StartJam::Host(Some(code())));
    let hosting = |app: &App| matches!(app.world().resource::<Jam>().status(), JamStatus::Hosting { .. });
    // Generous: seeding the demo song (synthesised, uploaded, peaks made) alongside the rest of
    // the suite on two cores once took a minute.
    step_until(&mut [&mut host], Duration::from_secs(180), |apps| online(apps[0]) && hosting(apps[0]));

    // The peer hears the beacon and reaches the jam's authority and its renet server.
    let found = find_jam(beacon, None, Duration::from_secs(5)).unwrap().expect("the host's beacon");
    assert_eq!(found.beacon.host, "Hana");
    let (sync, target) = joining(&found, &code(), "Pia", dir.path().join("peer-replicas"));
    let mut peer = member(sync, peer_clock, beacon);
    peer.insert_resource(StartJam::Join(target));
    peer.world_mut().resource_mut::<LocalPresence>().0.pointer = Some(Ticks(1_920));
    let synced = |app: &App| matches!(app.world().resource::<Jam>().status(), JamStatus::Joined { connected: true, samples, .. } if *samples >= 16);
    step_until(&mut [&mut host, &mut peer], Duration::from_secs(120), |apps| online(apps[1]) && synced(apps[1]));

    // The host presses play: both start on the same sample, whatever their clocks say.
    host.world_mut().resource_mut::<Transport>().playing = true;
    let started = |app: &App| app.world().resource::<LastStart>().0;
    step_until(&mut [&mut host, &mut peer], Duration::from_secs(5), |apps| {
        started(apps[0]).is_some() && started(apps[1]).is_some()
    });
    let (on_host, on_peer) = (started(&host).unwrap(), started(&peer).unwrap());
    let apart = host_clock.to_monotonic(on_host.time) as f64 - peer_clock.to_monotonic(on_peer.time) as f64;
    assert!(apart.abs() < 1.0 * MS, "the host and the peer start {:.3} ms apart", apart / MS);
    assert_eq!((on_host.asked.from, on_peer.asked.from), (Ticks(0), Ticks(0)));
    assert!(peer.world().resource::<Transport>().playing);

    // Each sees the other, in the jam's presence.
    step_until(&mut [&mut host, &mut peer], Duration::from_secs(5), |apps| {
        let names = |app: &App| -> Vec<String> {
            app.world().resource::<Peers>().sessions.values().map(|peer| peer.name.clone()).collect()
        };
        let pointer = apps[0].world().resource::<Peers>().sessions.values().find_map(|peer| peer.presence.pointer);
        names(apps[0]) == ["Pia"] && names(apps[1]) == ["Hana"] && pointer == Some(Ticks(1_920))
    });

    // A latecomer joins while the jam plays, and falls in on the beat: its first frame plays
    // the position the host's music is at by then.
    let (sync, target) = joining(&found, &code(), "Lou", dir.path().join("late-replicas"));
    let late_clock = Clock::skewed(450_000_000);
    let mut late = member(sync, late_clock, beacon);
    late.insert_resource(StartJam::Join(target));
    step_until(&mut [&mut host, &mut peer, &mut late], Duration::from_secs(60), |apps| started(apps[2]).is_some());
    let on_late = started(&late).unwrap();
    let since = late_clock.to_monotonic(on_late.time) as f64 - host_clock.to_monotonic(on_host.time) as f64;
    let frames_since = (on_late.position - on_host.position) as f64;
    let off = since - frames_since * 1e9 / 48_000.0;
    println!("the latecomer is {:+.1} µs from the host's phase", off / 1e3);
    assert!(on_late.position > on_host.position, "the latecomer starts further on");
    assert!(off.abs() < 1.0 * MS, "the latecomer is {:.3} ms out of phase", off / MS);

    // The host changes the tempo while playing: it re-anchors everyone with a new start from
    // where the music will be, and they take it on the same sample.
    let project = host.world_mut().query::<(&RecordKey, &ProjectData)>().single(host.world()).unwrap().0.0;
    let tempo = Op::Set { target: project, value: Field::Project(ProjectField::Tempo(Bpm(100.0))), expect: None };
    host.world_mut().write_message(EditMsg::Edit(vec![tempo]));
    let retimed = |app: &App| started(app).is_some_and(|start| start.asked.at != on_host.asked.at);
    step_until(&mut [&mut host, &mut peer, &mut late], Duration::from_secs(5), |apps| {
        retimed(apps[0]) && started(apps[1]).is_some_and(|start| start.asked.from != on_peer.asked.from)
    });
    let (again_host, again_peer) = (started(&host).unwrap(), started(&peer).unwrap());
    assert_eq!(again_host.asked.from, again_peer.asked.from);
    assert!(again_host.asked.from > Ticks(0));
    let apart = host_clock.to_monotonic(again_host.time) as f64 - peer_clock.to_monotonic(again_peer.time) as f64;
    assert!(apart.abs() < 1.0 * MS, "after the tempo change they start {:.3} ms apart", apart / MS);

    // The peer stops a beat in: everyone stops, on the peer's position.
    let position = |app: &App| app.world().resource::<Transport>().position;
    step_until(&mut [&mut host, &mut peer, &mut late], Duration::from_secs(5), |apps| position(apps[1]) > Ticks(960));
    peer.world_mut().resource_mut::<Transport>().playing = false;
    step_until(&mut [&mut host, &mut peer, &mut late], Duration::from_secs(5), |apps| {
        !apps[0].world().resource::<Transport>().playing && !apps[2].world().resource::<Transport>().playing
    });
    for _ in 0..3 {
        peer.update();
        host.update();
        late.update();
    }
    assert_eq!(position(&host), position(&peer));
    assert_eq!(position(&late), position(&peer));
    assert!(position(&host) > Ticks(960));
}

#[test]
fn discovery_lists_a_hosts_beacon_and_ignores_datagrams_that_are_not_one() {
    use ensemble_client::jam::beacon::{Beaconer, Discovery};
    use ensemble_protocol::jam::Beacon;
    let port = 20_000 + (std::process::id() % 10_000) as u16;
    let discovery = Discovery::listen(port).unwrap();
    // A second listener on the same machine (another window) hears the same beacons.
    let second = Discovery::listen(port).unwrap();
    let stray = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut foreign = Beacon {
        protocol_version: PROTOCOL_VERSION + 1,
        host: "Future".into(),
        project: ProjectId::new_v7(),
        project_name: "Later".into(),
        quic_port: 1,
        renet_port: 2,
        fingerprint: [0; 32],
    };
    for garbage in [b"hello".to_vec(), b"ENSJ\xff\xff\xff".to_vec(), vec![b'E'; 600], foreign.encode().unwrap()] {
        stray.send_to(&garbage, ("127.0.0.1", port)).unwrap();
    }
    foreign.protocol_version = PROTOCOL_VERSION;
    let beacon = Beacon { host: "Hana".into(), project_name: "Jam".into(), ..foreign };
    let _beaconer = Beaconer::start(&beacon, port).unwrap();
    wait_until(Duration::from_secs(3), "the beacon being heard", || {
        !discovery.jams().is_empty() && !second.jams().is_empty()
    });
    std::thread::sleep(Duration::from_millis(200));
    let jams = discovery.jams();
    assert_eq!(jams.len(), 1, "only the real beacon is listed: {jams:?}");
    assert_eq!(jams[0].beacon, beacon);
    assert_eq!(jams[0].renet_addr().port(), 2);
}
