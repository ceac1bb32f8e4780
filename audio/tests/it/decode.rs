use std::path::Path;
use std::process::Command;

use ensemble_audio::decode::{Decoding, decode_bytes, decode_file};
use ensemble_audio::wav::{WavFormat, write_wav};
use ensemble_audio::{AudioError, Pcm};

use crate::signal::{Noise, noise, sine};

fn max_difference(a: &Pcm, b: &Pcm) -> f32 {
    assert_eq!((a.channels.len(), a.frames()), (b.channels.len(), b.frames()), "shapes differ");
    a.channels
        .iter()
        .zip(&b.channels)
        .flat_map(|(x, y)| x.iter().zip(y.iter()).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

#[test]
fn wav_round_trips_at_every_sample_format() {
    let dir = tempfile::tempdir().unwrap();
    let original = noise(48_000, 2, 10_000, 7);
    for (format, tolerance) in
        [(WavFormat::Float32, 0.0), (WavFormat::Int24, 1.0 / 8_388_608.0), (WavFormat::Int16, 0.5 / 32_768.0)]
    {
        let path = dir.path().join(format!("{format:?}.wav"));
        write_wav(&path, &original, format).unwrap();
        let decoded = decode_file(&path, None).unwrap();
        assert_eq!(decoded.sample_rate, 48_000);
        let difference = max_difference(&original, &decoded);
        assert!(difference <= tolerance, "{format:?}: off by {difference}");
        assert!(!path.with_extension("wav.partial").exists());
    }
}

#[test]
fn the_stream_reports_its_shape_and_hands_out_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tone.wav");
    write_wav(&path, &sine(44_100, 2, 440.0, 0.5, 1.0), WavFormat::Int16).unwrap();
    let mut decoding = Decoding::open(&path).unwrap();
    assert_eq!((decoding.sample_rate(), decoding.channels(), decoding.frames()), (44_100, 2, Some(44_100)));
    let mut planes = Vec::new();
    let mut total = 0;
    loop {
        let frames = decoding.read_block(&mut planes).unwrap();
        if frames == 0 {
            break;
        }
        total += frames;
        assert_eq!(planes[0].len(), total, "each block is appended");
    }
    assert_eq!(total, 44_100);
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let error = decode_file(Path::new("/nonexistent/take-3.wav"), None).unwrap_err();
    assert!(matches!(error, AudioError::Io { .. }));
    assert!(error.to_string().contains("take-3.wav"), "{error}");
}

#[test]
fn random_bytes_are_an_error_never_a_panic() {
    let mut noise = Noise(99);
    for (i, len) in [0, 1, 12, 44, 100, 4096, 65_536].into_iter().cycle().take(60).enumerate() {
        let name = ["x.wav", "x.flac", "x.mp3", "x.ogg", "x.aiff", "x.bin"][i % 6];
        let result = decode_bytes(noise.bytes(len), Path::new(name), None);
        let error = result.expect_err("random bytes decoded as audio");
        assert!(error.to_string().starts_with(name), "{error}");
    }
}

#[test]
fn a_truncated_file_is_an_error_or_its_intact_part() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.wav");
    write_wav(&path, &sine(48_000, 1, 220.0, 0.8, 0.5), WavFormat::Int16).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // Cut inside the header: an error naming the file.
    let error = decode_bytes(bytes[..30].to_vec(), Path::new("cut.wav"), None).unwrap_err();
    assert!(error.to_string().starts_with("cut.wav"), "{error}");
    // Cut inside the samples: never a panic; whatever decodes is the file's true beginning.
    for cut in [1000, 20_001, bytes.len() - 1] {
        match decode_bytes(bytes[..cut].to_vec(), Path::new("cut.wav"), None) {
            Ok(pcm) => assert!(pcm.frames() <= (cut - 44) / 2),
            Err(error) => assert!(matches!(error, AudioError::Corrupt { .. }), "{error}"),
        }
    }
}

#[test]
fn resampling_keeps_length_pitch_and_level() {
    let tone = sine(44_100, 1, 1000.0, 0.5, 1.0);
    let resampled = ensemble_audio::resample::resample(&tone, 48_000).unwrap();
    assert_eq!(resampled.frames(), 48_000);
    let samples = &resampled.channels[0][2000..46_000];
    let crossings = samples.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
    // 44,000 frames at 48 kHz is 0.9167 s: 916 or 917 rising zero crossings of 1 kHz.
    assert!((915..=918).contains(&crossings), "{crossings} crossings");
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!((peak - 0.5).abs() < 0.01, "peak {peak}");
}

/// Where a tone of `hz` in `samples` (at `rate`) sits in time relative to a sine that starts at
/// 0 s, in seconds, from the least-squares phase of the middle half.
fn time_offset(samples: &[f32], rate: u32, hz: f64) -> f64 {
    let (from, to) = (samples.len() / 4, samples.len() * 3 / 4);
    let (mut sin_sum, mut cos_sum) = (0.0f64, 0.0f64);
    for (n, sample) in samples.iter().enumerate().take(to).skip(from) {
        let angle = std::f64::consts::TAU * hz * n as f64 / f64::from(rate);
        sin_sum += f64::from(*sample) * angle.sin();
        cos_sum += f64::from(*sample) * angle.cos();
    }
    cos_sum.atan2(sin_sum) / (std::f64::consts::TAU * hz)
}

#[test]
fn resampling_starts_at_the_same_instant_at_every_ratio() {
    let hz = 997.0;
    for (from, to) in
        [(44_100, 48_000), (48_000, 44_100), (22_050, 48_000), (96_000, 48_000), (48_000, 96_000), (8_000, 44_100)]
    {
        // An odd length, so the output length has to be rounded.
        let frames = from as usize + 7;
        let tone: Vec<f32> = (0..frames)
            .map(|n| (0.5 * (std::f64::consts::TAU * hz * n as f64 / f64::from(from)).sin()) as f32)
            .collect();
        let resampled = ensemble_audio::resample::resample(&Pcm::new(from, vec![tone]), to).unwrap();
        let exact = frames as f64 * f64::from(to) / f64::from(from);
        assert_eq!(resampled.frames(), exact.round() as usize, "{from} → {to} Hz: {exact} frames, rounded");
        let offset = time_offset(&resampled.channels[0], to, hz);
        assert!(offset.abs() <= 0.1e-6, "{from} → {to} Hz: the output is {:.2} µs off", offset * 1e6);
    }
}

/// Encodes `pcm` with ffmpeg into `name` (its extension picks the codec).
fn ffmpeg_encode(pcm: &Pcm, dir: &Path, name: &str) -> std::path::PathBuf {
    let source = dir.join("source.wav");
    write_wav(&source, pcm, WavFormat::Int16).unwrap();
    let target = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(&source)
        .arg(&target)
        .status()
        .expect("ffmpeg is installed by `cargo xtask setup`");
    assert!(status.success(), "ffmpeg could not write {name}");
    target
}

#[test]
fn every_supported_format_decodes_to_the_signal() {
    let dir = tempfile::tempdir().unwrap();
    let tone = sine(44_100, 2, 440.0, 0.5, 1.0);
    // Lossless formats give the samples back; lossy ones the same tone within a tolerance.
    for (name, tolerance) in [("tone.flac", 1e-4), ("tone.aiff", 1e-4), ("tone.mp3", 0.1), ("tone.ogg", 0.1)] {
        let path = ffmpeg_encode(&tone, dir.path(), name);
        let decoded = decode_file(&path, None).unwrap();
        assert_eq!((decoded.sample_rate, decoded.channels.len()), (44_100, 2), "{name}");
        let frames = decoded.frames();
        assert!(frames.abs_diff(44_100) < 3000, "{name}: {frames} frames");
        // Compare the middle, away from codec priming and padding, aligned by searching the
        // decoded copy 1,250 frames either side.
        let reference = &tone.channels[0][10_000..30_000];
        let best = (8_750..=11_250)
            .map(|start| {
                let got = &decoded.channels[0][start..];
                reference.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max)
            })
            .fold(f32::INFINITY, f32::min);
        assert!(best <= tolerance, "{name}: off by {best}");
    }
}
