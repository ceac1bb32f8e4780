//! WAV files as other tools write them: every variant ffmpeg and scipy read decodes to its
//! signal; a valid file we cannot read is "unsupported", never "corrupt"; a file cut short
//! decodes up to the damage and says so.

use std::path::Path;

use ensemble_audio::AudioError;
use ensemble_audio::decode::{Decoding, decode_bytes};

const RATE: u32 = 8000;
const FRAMES: usize = 800;

/// The test tone: 440 Hz at half scale.
fn tone(frame: usize) -> f64 {
    0.5 * (std::f64::consts::TAU * 440.0 * frame as f64 / f64::from(RATE)).sin()
}

/// How a variant lays its file out.
#[derive(Clone, Copy)]
struct Layout {
    magic: &'static [u8; 4],
    big_endian: bool,
    /// The RIFF size field: the true size, or this.
    riff_size: Option<u32>,
    /// The data size field: the true size, or this.
    data_size: Option<u32>,
}

const RIFF: Layout = Layout { magic: b"RIFF", big_endian: false, riff_size: None, data_size: None };

fn u16_bytes(value: u16, layout: Layout) -> [u8; 2] {
    if layout.big_endian { value.to_be_bytes() } else { value.to_le_bytes() }
}

fn u32_bytes(value: u32, layout: Layout) -> [u8; 4] {
    if layout.big_endian { value.to_be_bytes() } else { value.to_le_bytes() }
}

fn chunk(id: &[u8; 4], body: &[u8], layout: Layout) -> Vec<u8> {
    let mut out = id.to_vec();
    out.extend(u32_bytes(body.len() as u32, layout));
    out.extend(body);
    if body.len() % 2 == 1 {
        out.push(0);
    }
    out
}

/// A `fmt ` body: tag, one channel, `width` bytes a sample, `bits` valid bits, then `extra`.
fn fmt(tag: u16, width: u16, bits: u16, extra: &[u8], layout: Layout) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(u16_bytes(tag, layout));
    body.extend(u16_bytes(1, layout));
    body.extend(u32_bytes(RATE, layout));
    body.extend(u32_bytes(RATE * u32::from(width), layout));
    body.extend(u16_bytes(width, layout));
    body.extend(u16_bytes(bits, layout));
    body.extend(extra);
    body
}

/// The tone as integer PCM of `bits` bits, left-justified in `width`-byte containers
/// (unsigned when one byte).
fn pcm(bits: u32, width: usize, layout: Layout) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in 0..FRAMES {
        let value = (tone(frame) * ((1u64 << (bits - 1)) - 1) as f64).round() as i64;
        let justified = (value as i128) << (width as u32 * 8 - bits);
        if width == 1 {
            out.push((justified + 128) as u8);
        } else {
            let bytes = (justified as i64).to_le_bytes();
            let mut sample = bytes[..width].to_vec();
            if layout.big_endian {
                sample.reverse();
            }
            out.extend(sample);
        }
    }
    out
}

/// G.711 µ-law of the tone.
fn mulaw() -> Vec<u8> {
    (0..FRAMES)
        .map(|frame| {
            let sample = (tone(frame) * 32_767.0) as i32;
            let sign = if sample < 0 { 0x80 } else { 0 };
            let magnitude = sample.abs().min(32_635) + 0x84;
            let exponent = (7 - (magnitude as u32 >> 7).leading_zeros().saturating_sub(24).min(7)) as i32;
            let exponent = (0..=7).rev().find(|e| magnitude & (0x80 << e) != 0).unwrap_or(exponent);
            let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
            !((sign | (exponent << 4) | mantissa) as u8)
        })
        .collect()
}

fn wav(fmt_body: Vec<u8>, data: Vec<u8>, layout: Layout) -> Vec<u8> {
    let mut body = b"WAVE".to_vec();
    body.extend(chunk(b"fmt ", &fmt_body, layout));
    body.extend(b"data");
    body.extend(u32_bytes(layout.data_size.unwrap_or(data.len() as u32), layout));
    body.extend(&data);
    let mut out = layout.magic.to_vec();
    out.extend(u32_bytes(layout.riff_size.unwrap_or(body.len() as u32), layout));
    out.extend(body);
    out
}

fn rf64(data: Vec<u8>) -> Vec<u8> {
    let layout = Layout { magic: b"RF64", riff_size: Some(u32::MAX), data_size: Some(u32::MAX), ..RIFF };
    let mut ds64 = Vec::new();
    ds64.extend(0u64.to_le_bytes());
    ds64.extend((data.len() as u64).to_le_bytes());
    ds64.extend((FRAMES as u64).to_le_bytes());
    ds64.extend(0u32.to_le_bytes());
    let mut file = wav(fmt(1, 2, 16, &[], layout), data, layout);
    // The ds64 chunk goes first, right after "WAVE".
    let after_wave = 12;
    file.splice(after_wave..after_wave, chunk(b"ds64", &ds64, layout));
    file
}

/// The WAVE_FORMAT_EXTENSIBLE tail of a `fmt ` chunk for `tag` with `bits` valid bits.
fn extensible(tag: u16, bits: u16) -> Vec<u8> {
    let mut extra = 22u16.to_le_bytes().to_vec();
    extra.extend(bits.to_le_bytes());
    extra.extend(4u32.to_le_bytes());
    extra.extend(tag.to_le_bytes());
    extra.extend([0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71]);
    extra
}

fn assert_is_the_tone(bytes: Vec<u8>, name: &str, tolerance: f32) {
    let pcm = decode_bytes(bytes, Path::new(name), None).unwrap_or_else(|error| panic!("{name}: {error}"));
    assert_eq!((pcm.sample_rate, pcm.frames(), pcm.channels.len()), (RATE, FRAMES, 1), "{name}");
    for (frame, sample) in pcm.channels[0].iter().enumerate() {
        let error = (f64::from(*sample) - tone(frame)).abs() as f32;
        assert!(error <= tolerance, "{name}, frame {frame}: {sample} vs {} (off by {error})", tone(frame));
    }
}

#[test]
fn every_wav_variant_other_tools_read_decodes_to_its_signal() {
    let streamed = Layout { riff_size: Some(u32::MAX), data_size: Some(u32::MAX), ..RIFF };
    let never_filled = Layout { riff_size: Some(0), data_size: Some(0), ..RIFF };
    let short_riff = Layout { riff_size: Some(100), ..RIFF };
    let rifx = Layout { magic: b"RIFX", big_endian: true, ..RIFF };
    let cases: Vec<(&str, Vec<u8>, f32)> = vec![
        ("plain 16-bit", wav(fmt(1, 2, 16, &[], RIFF), pcm(16, 2, RIFF), RIFF), 1e-4),
        ("streamed, sizes 0xFFFFFFFF", wav(fmt(1, 2, 16, &[], streamed), pcm(16, 2, streamed), streamed), 1e-4),
        ("sizes never filled in", wav(fmt(1, 2, 16, &[], never_filled), pcm(16, 2, never_filled), never_filled), 1e-4),
        (
            "RIFF size smaller than the file",
            wav(fmt(1, 2, 16, &[], short_riff), pcm(16, 2, short_riff), short_riff),
            1e-4,
        ),
        ("RF64", rf64(pcm(16, 2, RIFF)), 1e-4),
        ("big-endian RIFX", wav(fmt(1, 2, 16, &[], rifx), pcm(16, 2, rifx), rifx), 1e-4),
        ("5-bit PCM", wav(fmt(1, 1, 5, &[], RIFF), pcm(5, 1, RIFF), RIFF), 0.07),
        ("12-bit PCM", wav(fmt(1, 2, 12, &[], RIFF), pcm(12, 2, RIFF), RIFF), 1e-3),
        ("20-bit PCM", wav(fmt(1, 3, 20, &[], RIFF), pcm(20, 3, RIFF), RIFF), 1e-5),
        ("24-bit PCM", wav(fmt(1, 3, 24, &[], RIFF), pcm(24, 3, RIFF), RIFF), 1e-6),
        ("64-bit PCM", wav(fmt(1, 8, 64, &[], RIFF), pcm(64, 8, RIFF), RIFF), 1e-6),
        ("extensible 24-bit", wav(fmt(0xFFFE, 3, 24, &extensible(1, 24), RIFF), pcm(24, 3, RIFF), RIFF), 1e-6),
        ("extensible 20 bits in 32", wav(fmt(0xFFFE, 4, 32, &extensible(1, 20), RIFF), pcm(20, 4, RIFF), RIFF), 1e-5),
        ("µ-law, 20-byte fmt", wav(fmt(7, 1, 8, &[2, 0, 0, 0], RIFF), mulaw(), RIFF), 0.02),
    ];
    for (name, bytes, tolerance) in cases {
        assert_is_the_tone(bytes, name, tolerance);
    }
}

#[test]
fn a_valid_wav_we_cannot_read_is_unsupported_never_corrupt() {
    // Microsoft ADPCM: a real format, just not one we decode.
    let adpcm = wav(fmt(2, 1, 4, &[0, 0], RIFF), vec![0; 256], RIFF);
    let error = decode_bytes(adpcm, Path::new("adpcm.wav"), None).unwrap_err();
    assert!(matches!(error, AudioError::Unsupported { .. }), "{error}");
    assert!(error.to_string().contains("0x0002 (Microsoft ADPCM)"), "{error}");
}

#[test]
fn a_wav_cut_short_decodes_up_to_the_damage_and_says_so() {
    let mut bytes = wav(fmt(1, 2, 16, &[], RIFF), pcm(16, 2, RIFF), RIFF);
    bytes.truncate(bytes.len() - 600 - 1);
    let mut decoding = Decoding::from_bytes(bytes, Path::new("cut.wav")).unwrap();
    // Known on opening: the length is what the file holds, not what its header says.
    assert!(decoding.truncated());
    assert_eq!(decoding.frames(), Some(499));
    let mut planes = Vec::new();
    while decoding.read_block(&mut planes).unwrap() > 0 {}
    assert!(decoding.truncated(), "the cut is reported");
    // 1,600 bytes of samples less 601: 499 whole frames, each the tone's own.
    assert_eq!(planes[0].len(), 499);
    for (frame, sample) in planes[0].iter().enumerate() {
        assert!((f64::from(*sample) - tone(frame)).abs() < 1e-4);
    }
    // A whole file is not truncated.
    let mut whole =
        Decoding::from_bytes(wav(fmt(1, 2, 16, &[], RIFF), pcm(16, 2, RIFF), RIFF), Path::new("a.wav")).unwrap();
    while whole.read_block(&mut planes).unwrap() > 0 {}
    assert!(!whole.truncated());
}
