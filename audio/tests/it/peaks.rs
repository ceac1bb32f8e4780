use std::path::Path;

use ensemble_audio::Pcm;
use ensemble_audio::decode::Decoding;
use ensemble_audio::peaks::{FRAMES_PER_PAIR, Pair, Peaks, PeaksBuilder, level_of, min_max, write_dat};
use ensemble_audio::wav::{WavFormat, write_wav};

use crate::signal::{noise, sine};

fn naive(samples: &[f32], frames_per_pair: usize) -> Vec<Pair> {
    let scale = |s: f32| (f64::from(s.clamp(-1.0, 1.0)) * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
    samples
        .chunks(frames_per_pair)
        .map(|run| {
            let min = run.iter().copied().fold(f32::INFINITY, f32::min);
            let max = run.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            Pair { min: scale(min), max: scale(max) }
        })
        .collect()
}

#[test]
fn the_kernel_finds_min_and_max_at_any_length() {
    assert_eq!(min_max(&[]), (0.0, 0.0));
    for len in [1, 7, 8, 9, 63, 64, 65, 1000] {
        let pcm = noise(48_000, 1, len, len as u64 + 1);
        let samples = &pcm.channels[0];
        let expected = (
            samples.iter().copied().fold(f32::INFINITY, f32::min),
            samples.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        );
        assert_eq!(min_max(samples), expected, "{len} samples");
    }
}

#[test]
fn every_level_matches_a_naive_computation() {
    let pcm = noise(48_000, 2, 100_003, 5);
    let peaks = Peaks::from_pcm(&pcm);
    assert_eq!(peaks.levels.len(), FRAMES_PER_PAIR.len());
    for level in &peaks.levels {
        for (channel, pairs) in pcm.channels.iter().zip(&level.channels) {
            assert_eq!(*pairs, naive(channel, level.frames_per_pair), "{} frames per pair", level.frames_per_pair);
        }
    }
}

#[test]
fn streaming_in_odd_blocks_gives_the_same_peaks() {
    let pcm = noise(44_100, 2, 700_001, 11);
    let mut builder = PeaksBuilder::new(44_100);
    let mut start = 0;
    for block in [1, 4095, 64, 100_000, 333_333].into_iter().cycle() {
        let end = (start + block).min(pcm.frames());
        let planes: Vec<&[f32]> = pcm.channels.iter().map(|c| &c[start..end]).collect();
        builder.push(&planes);
        start = end;
        if start == pcm.frames() {
            break;
        }
    }
    assert_eq!(builder.finish(), Peaks::from_pcm(&pcm));
}

#[test]
fn a_decoded_file_gives_the_peaks_of_its_samples() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tone.wav");
    let tone = sine(48_000, 2, 100.0, 0.75, 2.0);
    write_wav(&path, &tone, WavFormat::Float32).unwrap();
    let peaks = Peaks::from_decoding(Decoding::open(&path).unwrap()).unwrap();
    assert_eq!(peaks, Peaks::from_pcm(&tone));
    let coarse = peaks.level(16_384).unwrap();
    assert!(
        coarse.channels[0].iter().all(|pair| pair.max == 24_576 && pair.min == -24_576),
        "a 0.75 sine: 0.75 × 32,768"
    );
}

#[test]
fn the_peaks_format_round_trips_and_refuses_what_it_is_not() {
    let peaks = Peaks::from_pcm(&noise(48_000, 2, 50_000, 3));
    let mut bytes = Vec::new();
    peaks.write(&mut bytes).unwrap();
    assert_eq!(Peaks::read(&mut bytes.as_slice(), Path::new("p.peaks")).unwrap(), peaks);
    for broken in [&bytes[..4], &bytes[..bytes.len() - 1], b"NOTPEAKS and more".as_slice()] {
        let error = Peaks::read(&mut &broken[..], Path::new("p.peaks")).unwrap_err();
        assert!(error.to_string().starts_with("p.peaks: not a peaks file"), "{error}");
    }
    let mut newer = bytes.clone();
    newer[8] = 9;
    let error = Peaks::read(&mut newer.as_slice(), Path::new("p.peaks")).unwrap_err();
    assert!(error.to_string().contains("version 9"), "{error}");
}

#[test]
fn audiowaveform_dat_has_the_v2_header_and_interleaved_pairs() {
    let pcm = Pcm::new(44_100, vec![vec![0.5; 512], vec![-0.25; 512]]);
    let peaks = Peaks::from_pcm(&pcm);
    let mut dat = Vec::new();
    peaks.write_dat(256, &mut dat).unwrap();
    let word = |i: usize| i32::from_le_bytes(dat[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!([word(0), word(1), word(2), word(3), word(4), word(5)], [2, 0, 44_100, 256, 2, 2]);
    let values: Vec<i16> = dat[24..].chunks(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    // Two pixels, each: channel 0 min, max, channel 1 min, max.
    assert_eq!(values, vec![16_384, 16_384, -8_192, -8_192, 16_384, 16_384, -8_192, -8_192]);
    assert!(peaks.write_dat(100, &mut Vec::new()).is_err(), "100 frames per pair is not a stored level");
}

#[test]
fn peaks_of_16_bit_audio_are_its_own_sample_values_at_any_zoom() {
    // Every 16-bit value, shuffled, as audiowaveform would read them from a 16-bit file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.wav");
    let mut values: Vec<i16> = (i16::MIN..=i16::MAX).collect();
    let mut noise = crate::signal::Noise(7);
    for i in (1..values.len()).rev() {
        values.swap(i, (noise.next() % (i as u64 + 1)) as usize);
    }
    let pcm = Pcm::new(48_000, vec![values.iter().map(|v| f32::from(*v) / 32_768.0).collect()]);
    write_wav(&path, &pcm, WavFormat::Int16).unwrap();
    let decoded = Decoding::open(&path).unwrap().read_all().unwrap();
    for zoom in [2, 3, 64, 100, 256, 441, 1000, 65_536] {
        let level = level_of(&decoded, zoom).unwrap();
        let expected: Vec<Pair> = values
            .chunks(zoom)
            .map(|run| Pair { min: *run.iter().min().unwrap(), max: *run.iter().max().unwrap() })
            .collect();
        assert_eq!(level.channels[0], expected, "{zoom} samples per pixel");
        let mut dat = Vec::new();
        write_dat(48_000, &level, &mut dat).unwrap();
        assert_eq!(i32::from_le_bytes(dat[12..16].try_into().unwrap()), zoom as i32);
        assert_eq!(dat.len(), 24 + expected.len() * 4);
    }
    assert!(level_of(&decoded, 1).is_none(), "audiowaveform needs 2 samples per pixel or more");
}
