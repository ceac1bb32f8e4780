//! Writing PCM as WAV: 16- or 24-bit integer (rounded and clipped, full scale 2^(bits-1)) or
//! 32-bit float.
//!
//! The file is written beside its destination and renamed into place only when complete, so
//! a full disk or a crash never leaves a half-written file under the real name.

use std::path::Path;

use crate::{AudioError, Pcm};

/// A WAV sample format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WavFormat {
    /// 16-bit integer.
    Int16,
    /// 24-bit integer.
    Int24,
    /// 32-bit IEEE float.
    Float32,
}

/// Writes `pcm` to `path` in `format`.
pub fn write_wav(path: &Path, pcm: &Pcm, format: WavFormat) -> Result<(), AudioError> {
    let fail = |reason: String| AudioError::Wav { path: path.into(), reason };
    let (bits_per_sample, sample_format) = match format {
        WavFormat::Int16 => (16, hound::SampleFormat::Int),
        WavFormat::Int24 => (24, hound::SampleFormat::Int),
        WavFormat::Float32 => (32, hound::SampleFormat::Float),
    };
    let channels = u16::try_from(pcm.channels.len()).map_err(|_| fail("too many channels".into()))?;
    let spec = hound::WavSpec { channels, sample_rate: pcm.sample_rate, bits_per_sample, sample_format };
    let partial = path.with_extension("wav.partial");
    let written = (|| -> Result<(), hound::Error> {
        let mut writer = hound::WavWriter::create(&partial, spec)?;
        // Full scale is 2^(bits-1), as decoders divide by it; +1.0 clips to the largest code.
        let (scale, largest) = match format {
            WavFormat::Int16 => (32_768.0, 32_767.0),
            WavFormat::Int24 => (8_388_608.0, 8_388_607.0),
            WavFormat::Float32 => (1.0, 1.0),
        };
        for frame in 0..pcm.frames() {
            for channel in &pcm.channels {
                let sample = channel[frame];
                match format {
                    WavFormat::Float32 => writer.write_sample(sample)?,
                    _ => writer.write_sample((sample * scale).round().clamp(-scale, largest) as i32)?,
                }
            }
        }
        writer.finalize()
    })();
    match written {
        Ok(()) => std::fs::rename(&partial, path).map_err(|e| fail(e.to_string())),
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            Err(fail(error.to_string()))
        }
    }
}
