//! What Ensemble's tests and benches share, so each writes it once: a dev-dependency, not an
//! API.
//!
//! - [`records`]: a project, a track, an asset, a clip and the ops that place them, with plain
//!   values a test can change with struct update syntax.
//! - [`Rng`]: one seeded generator (xorshift), so a failing run replays exactly.
//! - [`tone_wav`]: a WAV file to upload.
//! - [`sandbox`]: a throwaway Postgres, started once per process and gone when it exits.
//! - [`loopback`] (feature `authority`): an authority on loopback, and clients for it over QUIC
//!   or in memory.
//! - [`outage`] (feature `authority`): a store whose database can be taken away.

#[cfg(feature = "authority")]
pub mod loopback;
#[cfg(feature = "authority")]
pub mod outage;
pub mod records;
pub mod sandbox;

use std::path::{Path, PathBuf};

// Which checkout this crate was built from: a different one makes cargo rebuild it, so clones
// sharing the target directory never build each other's code (see `.cargo/config.toml`).
const _: Option<&str> = option_env!("ENSEMBLE_CHECKOUT");

#[allow(clippy::expect_used)]
/// Writes `dir/name`, a 16-bit stereo WAV at 48 kHz of `seconds` with a tone of `pitch` Hz on
/// the left and twice that on the right.
pub fn tone_wav(dir: &Path, name: &str, seconds: u32, pitch: f32) -> PathBuf {
    let path = dir.join(name);
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).expect("a WAV file");
    for i in 0..48_000 * seconds {
        let t = i as f32 / 48_000.0;
        for channel in 0..2 {
            let value = (t * pitch * (channel + 1) as f32 * std::f32::consts::TAU).sin() * 0.4;
            writer.write_sample((value * 32_767.0) as i16).expect("a WAV file");
        }
    }
    writer.finalize().expect("a WAV file");
    path
}

/// A small deterministic generator (xorshift64), so a failing run can be replayed from its seed.
/// Not for anything that needs real randomness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One of `items` (not empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An audio sample in [-1, 1].
    pub fn sample(&mut self) -> f32 {
        (self.next() % 2_000_001) as f32 / 1_000_000.0 - 1.0
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}
