//! Recording from a file-fed input: the take holds exactly what came in, at the input's pace.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use ensemble_audio::Pcm;
use ensemble_audio::decode::decode_file;
use ensemble_audio::record::{self, Capture, FileInput, PEAK_FRAMES, Recorder};

use crate::song::RATE;

/// A second and a half of stereo noise, different on each side.
fn source() -> Pcm {
    let mut rng = ensemble_testkit::Rng(0x5eed);
    let mut next = move || (rng.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
    let frames = RATE as usize * 3 / 2;
    Pcm::new(RATE, (0..2).map(|_| (0..frames).map(|_| next() * 0.5).collect()).collect())
}

#[test]
fn a_take_holds_every_sample_the_input_gave_at_the_wall_clocks_pace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("take.wav");
    let source = source();
    let dropped = Arc::new(AtomicU64::new(0));
    let (input, output) = record::ring(0.5, RATE);
    let recorder = Recorder::start(&path, RATE, output, dropped.clone()).unwrap();
    let started = Instant::now();
    FileInput::start(source.clone(), input, dropped).finish();
    let played = started.elapsed();
    assert!(played >= Duration::from_millis(1_450), "the file plays in as fast as time passes: {played:?}");
    assert!(!path.exists(), "the take is not in place before it ends");
    let take = recorder.stop().unwrap();
    assert_eq!((take.frames, take.dropped), (source.frames() as u64, 0));
    let recorded = decode_file(&take.path, Some(RATE)).unwrap();
    assert_eq!(recorded.channels, source.channels, "sample for sample");
}

#[test]
fn an_input_faster_than_the_recorder_drops_and_counts_rather_than_waits() {
    let dropped = AtomicU64::new(0);
    let (mut input, _output) = record::ring(0.01, RATE); // 480 frames of room, nobody reading
    let block = vec![0.25f32; 2 * 300];
    let started = Instant::now();
    for _ in 0..4 {
        record::push(&mut input, &block, &dropped);
    }
    assert!(started.elapsed() < Duration::from_millis(50), "the callback never waits");
    assert_eq!(dropped.load(std::sync::atomic::Ordering::Relaxed), 4 * 300 - 480);
}

#[test]
fn a_capture_shows_its_peaks_as_they_grow_and_stops_where_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("take.wav");
    let source = source();
    let capture = Capture::from_file(source.clone(), 120, &path).unwrap();
    assert_eq!((capture.sample_rate(), capture.latency()), (RATE, 120));
    std::thread::sleep(Duration::from_millis(400));
    let mut peaks = Vec::new();
    capture.peaks(&mut peaks);
    let so_far = peaks.len();
    assert!(so_far > 0, "peaks while the take comes in");
    std::thread::sleep(Duration::from_millis(200));
    capture.peaks(&mut peaks);
    assert!(peaks.len() > so_far, "more of them later, appended");
    let take = capture.stop().unwrap();
    assert!(take.frames < source.frames() as u64, "stopped before the file's end: {}", take.frames);
    // Each peak is the lowest and highest sample of its stretch of the take.
    let recorded = decode_file(&take.path, Some(RATE)).unwrap();
    let stretch = &recorded.channels[0][..PEAK_FRAMES];
    let lowest = stretch.iter().chain(&recorded.channels[1][..PEAK_FRAMES]).fold(0f32, |low, s| low.min(*s));
    assert_eq!(peaks[0][0], lowest);
    assert_eq!(recorded.channels[0][..], source.channels[0][..take.frames as usize], "the take is the file's start");
}
