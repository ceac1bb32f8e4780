//! Generated test signals.

use std::f32::consts::TAU;

use ensemble_audio::Pcm;

/// A sine of `hz` at `amplitude`, `seconds` long, the same on every channel but phase-shifted
/// by a quarter turn per channel so channels are told apart.
pub(crate) fn sine(rate: u32, channels: usize, hz: f32, amplitude: f32, seconds: f32) -> Pcm {
    let frames = (rate as f32 * seconds) as usize;
    let planes = (0..channels)
        .map(|c| {
            (0..frames).map(|i| amplitude * (TAU * hz * i as f32 / rate as f32 + c as f32 * TAU / 4.0).sin()).collect()
        })
        .collect();
    Pcm::new(rate, planes)
}

/// The shared seeded generator, for noise and random bytes.
pub(crate) use ensemble_testkit::Rng as Noise;

/// Noise in [-1, 1].
pub(crate) fn noise(rate: u32, channels: usize, frames: usize, seed: u64) -> Pcm {
    let mut noise = Noise(seed);
    Pcm::new(rate, (0..channels).map(|_| (0..frames).map(|_| noise.sample()).collect()).collect())
}
