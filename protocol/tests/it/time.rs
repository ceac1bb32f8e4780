use ensemble_protocol::*;

/// `frames` ticks→frames at (bpm, rate), checked against numbers worked out by hand.
fn check(bpm: f64, rate: u32, ticks: i64, frames: u64) {
    let timebase = Timebase::new(Bpm(bpm), rate);
    assert_eq!(timebase.frames(Ticks(ticks)), Frames(frames), "{ticks} ticks at {bpm} BPM, {rate} Hz");
}

#[test]
fn ticks_to_frames_matches_hand_computed_values() {
    // One bar of 4/4 at 120 BPM is 2 s: 96,000 frames at 48 kHz.
    check(120.0, 48_000, TimeSignature::FOUR_FOUR.ticks_per_bar().0, 96_000);
    // One quarter at 120 BPM is 0.5 s.
    check(120.0, 44_100, 960, 22_050);
    // One tick at 120 BPM, 48 kHz is 25 frames.
    check(120.0, 48_000, 1, 25);
    // 60 BPM: a quarter is one second.
    check(60.0, 96_000, 960, 96_000);
    // 93.7 BPM: a quarter is 60/93.7 s = 30,736.39 frames at 48 kHz, rounded to 30,736.
    check(93.7, 48_000, 960, 30_736);
    // 100 bars of 4/4 at 93.7 BPM: 400 × 30,736.3927… = 12,294,557.1 → 12,294,557.
    check(93.7, 48_000, 100 * 3840, 12_294_557);
    // 7/8 at 140 BPM: a bar is 7 eighths = 3.5 quarters = 1.5 s = 66,150 frames at 44.1 kHz.
    let seven_eight = TimeSignature { numerator: 7, denominator: 8 };
    assert_eq!(seven_eight.ticks_per_bar(), Ticks(3360));
    check(140.0, 44_100, 3360, 66_150);
    check(120.0, 48_000, 0, 0);
}

#[test]
fn negative_positions_map_to_the_first_frame() {
    assert_eq!(Timebase::new(Bpm(120.0), 48_000).frames(Ticks(-960)), Frames(0));
}

#[test]
fn frames_to_ticks_rounds_to_the_nearest_tick() {
    let timebase = Timebase::new(Bpm(120.0), 48_000);
    assert_eq!(timebase.ticks(Frames(96_000)), Ticks(3840));
    assert_eq!(timebase.ticks(Frames(12)), Ticks(0));
    assert_eq!(timebase.ticks(Frames(13)), Ticks(1));
}

#[test]
fn ticks_survive_a_round_trip_through_frames_when_a_tick_lasts_a_frame() {
    for bpm in [20.0, 93.7, 120.0, 174.0, 999.0] {
        for rate in [16_000, 44_100, 48_000, 192_000] {
            let timebase = Timebase::new(Bpm(bpm), rate);
            for ticks in [0, 1, 959, 960, 123_457, 1 << 30] {
                assert_eq!(timebase.ticks(timebase.frames(Ticks(ticks))), Ticks(ticks), "{bpm} BPM, {rate} Hz");
            }
        }
    }
}
