//! Writing PCM as WAV: 16- or 24-bit integer (rounded and clipped, full scale 2^(bits-1)) or
//! 32-bit float.
//!
//! A file is written beside its destination and renamed into place only when complete, so
//! a full disk or a crash never leaves a half-written file under the real name; [`wav_bytes`]
//! writes the same file into memory.

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
    let partial = path.with_extension("wav.partial");
    let written = std::fs::File::create(&partial)
        .map_err(|error| error.to_string())
        .and_then(|file| write_wav_to(std::io::BufWriter::new(file), pcm, format));
    match written {
        Ok(()) => std::fs::rename(&partial, path).map_err(|e| fail(e.to_string())),
        Err(reason) => {
            let _ = std::fs::remove_file(&partial);
            Err(fail(reason))
        }
    }
}

/// `pcm` as a WAV file's bytes in `format` (an export the browser offers as a download).
pub fn wav_bytes(pcm: &Pcm, format: WavFormat) -> Result<Vec<u8>, AudioError> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    write_wav_to(&mut bytes, pcm, format).map_err(|reason| AudioError::Wav { path: "(in memory)".into(), reason })?;
    Ok(bytes.into_inner())
}

fn write_wav_to(out: impl std::io::Write + std::io::Seek, pcm: &Pcm, format: WavFormat) -> Result<(), String> {
    let (bits_per_sample, sample_format) = match format {
        WavFormat::Int16 => (16, hound::SampleFormat::Int),
        WavFormat::Int24 => (24, hound::SampleFormat::Int),
        WavFormat::Float32 => (32, hound::SampleFormat::Float),
    };
    let channels = u16::try_from(pcm.channels.len()).map_err(|_| "too many channels".to_owned())?;
    let spec = hound::WavSpec { channels, sample_rate: pcm.sample_rate, bits_per_sample, sample_format };
    let written = (|| -> Result<(), hound::Error> {
        let mut writer = hound::WavWriter::new(out, spec)?;
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
    written.map_err(|error| error.to_string())
}
