//! The jam clock: peers with clocks half a second off and drifting, behind a jittery network,
//! learn the host's time to well under a millisecond.

use ensemble_protocol::jam::{ClockSample, ClockSync, JoinCode, JoinCodeError};
use ensemble_testkit::Rng as Noise;

/// A one-way network delay: 300 µs, plus jitter that is mostly small and sometimes large
/// (a queue), in nanoseconds.
fn delay(noise: &mut Noise) -> f64 {
    let jitter = -noise.unit().max(1e-12).ln() * 150_000.0; // exponential, mean 150 µs
    300_000.0 + jitter.min(5_000_000.0)
}

/// A machine's clock: `start + true_ns × (1 + drift)`.
#[derive(Clone, Copy)]
struct Clock {
    start: f64,
    drift: f64,
}

impl Clock {
    fn at(&self, true_ns: f64) -> u64 {
        (self.start + true_ns * (1.0 + self.drift)) as u64
    }

    /// The true time at which this clock reads `reading`.
    fn when(&self, reading: u64) -> f64 {
        (reading as f64 - self.start) / (1.0 + self.drift)
    }
}

/// One exchange starting at true time `t`, through the noisy network.
fn exchange(peer: Clock, host: Clock, t: f64, noise: &mut Noise) -> ClockSample {
    let arrive = t + delay(noise);
    let reply = arrive + 20_000.0; // the host takes 20 µs to answer
    let back = reply + delay(noise);
    ClockSample { t0: peer.at(t), t1: host.at(arrive), t2: host.at(reply), t3: peer.at(back) }
}

#[test]
fn three_peers_half_a_second_off_and_drifting_learn_the_hosts_time_within_half_a_millisecond() {
    let host = Clock { start: 5e12, drift: 0.0 };
    let peers = [
        Clock { start: 5e12 + 500e6, drift: 40e-6 },
        Clock { start: 5e12 - 500e6, drift: -35e-6 },
        Clock { start: 5e12 + 123e6, drift: 10e-6 },
    ];
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let mut syncs: Vec<ClockSync> = peers.iter().map(|_| ClockSync::new()).collect();
    // Four exchanges a second for 16 s.
    for step in 0..64 {
        let t = 1e9 + f64::from(step) * 250e6;
        for (peer, sync) in peers.iter().zip(&mut syncs) {
            assert!(sync.add(exchange(*peer, host, t + noise.unit() * 1e6, &mut noise)));
        }
    }
    // A start the host schedules two seconds after the last exchange.
    let start = host.at(1e9 + 64.0 * 250e6 + 2e9);
    let mut lands = Vec::new();
    for (peer, sync) in peers.iter().zip(&syncs) {
        let now = peer.at(1e9 + 64.0 * 250e6 + 2e9);
        let error = sync.host_time(now).unwrap() as f64 - start as f64;
        assert!(error.abs() < 500_000.0, "the host's time is off by {:.1} µs", error / 1e3);
        lands.push(peer.when(sync.peer_time(start).unwrap()));
    }
    let spread = lands.iter().fold(f64::MIN, |a, b| a.max(*b)) - lands.iter().fold(f64::MAX, |a, b| a.min(*b));
    assert!(spread < 1_000_000.0, "the peers start {:.1} µs apart", spread / 1e3);
    assert!((syncs[0].drift() - (-40e-6)).abs() < 10e-6, "drift {}", syncs[0].drift());
}

#[test]
fn a_symmetric_exchange_is_exact_and_an_impossible_one_is_ignored() {
    let sample = ClockSample { t0: 1_000, t1: 501_500, t2: 501_600, t3: 2_100 };
    assert_eq!((sample.offset(), sample.round_trip()), (500_000, 1_000));
    let mut sync = ClockSync::new();
    assert!(sync.add(sample));
    assert_eq!(sync.host_time(2_100), Some(502_100));
    assert_eq!(sync.peer_time(502_100), Some(2_100));
    let backwards = ClockSample { t0: 5_000, t1: 10, t2: 20, t3: 4_000 };
    assert!(!sync.add(backwards), "a reply before its request");
    let slow_host = ClockSample { t0: 0, t1: 100, t2: 5_000, t3: 1_000 };
    assert!(!sync.add(slow_host), "the host took longer than the round trip");
    assert_eq!(sync.len(), 1);
    sync.reset();
    assert!(sync.is_empty() && sync.host_time(0).is_none());
}

#[test]
fn a_queue_that_delays_some_exchanges_does_not_move_the_estimate() {
    let (host, peer) = (Clock { start: 0.0, drift: 0.0 }, Clock { start: 250e6, drift: 0.0 });
    let mut sync = ClockSync::new();
    let mut noise = Noise(7);
    for step in 0..64 {
        let t = 1e9 + f64::from(step) * 100e6;
        let mut sample = exchange(peer, host, t, &mut noise);
        if step % 3 == 0 {
            // 20 ms stuck in a queue on the way back only: this exchange alone is 10 ms off.
            sample.t3 += 20_000_000;
        }
        sync.add(sample);
    }
    let error = sync.offset_at(peer.at(7.5e9)).unwrap() - (-250e6);
    assert!(error.abs() < 100_000.0, "off by {:.1} µs", error / 1e3);
}

fn beacon() -> ensemble_protocol::jam::Beacon {
    ensemble_protocol::jam::Beacon {
        protocol_version: ensemble_protocol::PROTOCOL_VERSION,
        host: "Studio A".into(),
        project: ensemble_protocol::ProjectId::new_v7(),
        project_name: "Friday Jam".into(),
        quic_port: 4433,
        renet_port: 5000,
        fingerprint: [7; 32],
    }
}

#[test]
fn a_beacon_round_trips_and_what_is_not_one_is_refused_with_the_reason() {
    use ensemble_protocol::jam::{BEACON_MAGIC, Beacon, BeaconError, MAX_BEACON};
    let sent = beacon();
    let bytes = sent.encode().unwrap();
    assert!(bytes.starts_with(&BEACON_MAGIC) && bytes.len() <= MAX_BEACON);
    assert_eq!(Beacon::decode(&bytes), Ok(sent.clone()));
    assert_eq!(Beacon::decode(b"HTTP/1.1 200 OK"), Err(BeaconError::NotABeacon));
    assert!(matches!(Beacon::decode(&bytes[..bytes.len() - 3]), Err(BeaconError::Malformed(_))));
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(Beacon::decode(&longer), Err(BeaconError::Malformed(_))), "trailing bytes");
    assert_eq!(Beacon::decode(&[0; MAX_BEACON + 1]), Err(BeaconError::TooLarge(MAX_BEACON + 1)));
    let old = Beacon { protocol_version: 1, ..sent.clone() };
    let old_bytes = [BEACON_MAGIC.as_slice(), &ensemble_protocol::frame::encode_value(&old).unwrap()].concat();
    assert_eq!(
        Beacon::decode(&old_bytes),
        Err(BeaconError::Version { ours: ensemble_protocol::PROTOCOL_VERSION, theirs: 1 })
    );
    for bad in [
        Beacon { host: " ".into(), ..sent.clone() },
        Beacon { project_name: "x".repeat(65), ..sent.clone() },
        Beacon { renet_port: 0, ..sent.clone() },
    ] {
        assert!(matches!(bad.encode(), Err(BeaconError::Invalid(_))), "{bad:?}");
    }
    // A string that claims a gigabyte in a tiny datagram is refused without allocating it.
    let mut huge = BEACON_MAGIC.to_vec();
    huge.extend([3, 252, 0, 0, 0, 64]); // version 3, then a name of 2^30 bytes
    assert!(matches!(Beacon::decode(&huge), Err(BeaconError::Malformed(_))));
}

#[test]
fn jam_messages_round_trip_and_bad_bytes_are_errors() {
    use ensemble_protocol::jam::{JamMsg, MAX_JAM_MESSAGE, TransportCommand};
    use ensemble_protocol::{FrameError, Presence, Ticks};
    let messages = [
        JamMsg::ClockRequest { t0: 1 },
        JamMsg::ClockReply { t0: 1, t1: u64::MAX, t2: 3 },
        JamMsg::Transport(TransportCommand::Play { at: 5_000_000_000, from: Ticks(1920) }),
        JamMsg::Transport(TransportCommand::Stop { at: 6_000_000_000, position: Ticks(3840) }),
        JamMsg::Transport(TransportCommand::Looping(true)),
        JamMsg::Presence {
            user: ensemble_protocol::UserId(uuid::Uuid::from_u128(7)),
            name: "bo".into(),
            presence: Presence { playhead: Ticks(7), ..Presence::default() },
        },
    ];
    for message in messages {
        assert_eq!(JamMsg::decode(&message.encode().unwrap()), Ok(message));
    }
    assert!(matches!(JamMsg::decode(&[]), Err(FrameError::Malformed(_))));
    assert!(matches!(JamMsg::decode(&[200, 1, 2]), Err(FrameError::Malformed(_))));
    assert_eq!(
        JamMsg::decode(&vec![0; MAX_JAM_MESSAGE + 1]),
        Err(FrameError::TooLarge { len: MAX_JAM_MESSAGE + 1, max: MAX_JAM_MESSAGE })
    );
    // Every short byte string is either a message or an error.
    let mut noise = Noise(99);
    for _ in 0..20_000 {
        let len = (noise.unit() * 24.0) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| (noise.unit() * 256.0) as u8).collect();
        let _ = JamMsg::decode(&bytes);
        let _ = ensemble_protocol::jam::Beacon::decode(&[b"ENSJ".as_slice(), &bytes].concat());
    }
}

#[test]
fn join_codes_read_back_however_they_are_typed() {
    let code = JoinCode::from_random([0x12, 0x34, 0x56, 0x78, 0x9a]);
    let shown = code.to_string();
    assert_eq!(shown.len(), 9, "{shown}");
    assert_eq!(JoinCode::parse(&shown), Ok(code.clone()));
    assert_eq!(JoinCode::parse(&shown.to_lowercase().replace('-', " ")), Ok(code.clone()));
    assert_ne!(JoinCode::from_random([0x12, 0x34, 0x56, 0x78, 0x9b]), code, "every bit counts");
    assert_eq!(JoinCode::parse("ABCD-EFG"), Err(JoinCodeError::Length(7)));
    assert_eq!(JoinCode::parse("ABCD-EFG0"), Err(JoinCodeError::Symbol('0')));
    assert_eq!(JoinCode::parse("ABCD-EFGé"), Err(JoinCodeError::Symbol('é')));
    assert!(!format!("{code:?}").contains(code.as_str()), "codes stay out of logs");
}
