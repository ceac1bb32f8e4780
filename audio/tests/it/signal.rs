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

/// A deterministic pseudo-random stream (xorshift), for noise and random bytes.
pub(crate) struct Noise(pub(crate) u64);

impl Noise {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn sample(&mut self) -> f32 {
        (self.next() % 2_000_001) as f32 / 1_000_000.0 - 1.0
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Noise in [-1, 1].
pub(crate) fn noise(rate: u32, channels: usize, frames: usize, seed: u64) -> Pcm {
    let mut noise = Noise(seed);
    Pcm::new(rate, (0..channels).map(|_| (0..frames).map(|_| noise.sample()).collect()).collect())
}
