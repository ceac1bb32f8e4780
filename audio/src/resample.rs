//! Sample-rate conversion with rubato's FFT resampler (band-limited, fixed ratio), trimmed so
//! the output starts at the same instant as the input and lasts as long.

use rubato::{FftFixedInOut, Resampler};

use crate::Pcm;

/// Input frames per resampler chunk, at least.
const CHUNK: usize = 1024;

/// The input chunk: at least [`CHUNK`] frames, and an even number of the ratio's smallest
/// input step. rubato's filter is centred on sample `fft_size / 2` (rounded down) while it
/// reports the delay as half the output chunk (rounded down); with both FFT sizes even the two
/// agree exactly, and the output starts at the input's first instant. With an odd size the
/// output sat half a sample early or late (11.3 µs at 44.1 ↔ 48 kHz).
fn chunk_frames(from: u32, to: u32) -> usize {
    let step = (from / gcd(from, to)) as usize;
    CHUNK.div_ceil(step).next_multiple_of(2) * step
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// `pcm` at `rate`, starting at the same instant. The output has `round(frames × rate /
/// pcm.sample_rate)` frames (halves round up).
pub fn resample(pcm: &Pcm, rate: u32) -> Result<Pcm, String> {
    if rate == pcm.sample_rate {
        return Ok(pcm.clone());
    }
    let channels = pcm.channels.len();
    let chunk = chunk_frames(pcm.sample_rate, rate);
    let mut resampler = FftFixedInOut::<f32>::new(pcm.sample_rate as usize, rate as usize, chunk, channels.max(1))
        .map_err(|e| e.to_string())?;
    let frames = pcm.frames();
    let from = u128::from(pcm.sample_rate.max(1));
    let wanted = ((frames as u128 * u128::from(rate) + from / 2) / from) as usize;
    let delay = resampler.output_delay();
    let mut out: Vec<Vec<f32>> = vec![Vec::with_capacity(wanted + delay + chunk * 2); channels];
    let mut position = 0;
    let mut scratch: Vec<Vec<f32>> = vec![Vec::new(); channels];
    // Feed whole chunks, then the tail padded with silence, then silence until the delayed
    // output has caught up with the input's end.
    while out.first().map_or(0, Vec::len) < wanted + delay {
        let needed = resampler.input_frames_next();
        for (plane, input) in scratch.iter_mut().zip(&pcm.channels) {
            plane.clear();
            let end = (position + needed).min(frames);
            if position < end {
                plane.extend_from_slice(&input[position..end]);
            }
            plane.resize(needed, 0.0);
        }
        position += needed;
        let chunk = resampler.process(&scratch, None).map_err(|e| e.to_string())?;
        for (plane, produced) in out.iter_mut().zip(chunk) {
            plane.extend_from_slice(&produced);
        }
        if channels == 0 {
            break;
        }
    }
    // The loop above made every plane at least `delay + wanted` long.
    let planes = out
        .into_iter()
        .map(|plane| plane.get(delay..delay + wanted).map(<[f32]>::to_vec).unwrap_or_default())
        .collect();
    Ok(Pcm::new(rate, planes))
}
