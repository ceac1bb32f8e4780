//! Renders four bars of generated drums, bass and chords to a WAV file, so anyone can listen
//! to the engine: `cargo run -p ensemble-audio --example render -- out.wav`.

use std::f32::consts::TAU;
use std::path::PathBuf;
use std::sync::Arc;

use ensemble_audio::Pcm;
use ensemble_audio::arrangement::{Arrangement, ClipPlan, Envelope, Metronome, Point, TrackPlan};
use ensemble_audio::render::export_mix;
use ensemble_audio::wav::WavFormat;
use ensemble_protocol::{Bpm, Curve, Ticks, TimeSignature, Timebase, TrackId};

const RATE: u32 = 48_000;

fn generate(seconds: f32, mut sample: impl FnMut(f32) -> f32) -> Pcm {
    let frames = (seconds * RATE as f32) as usize;
    Pcm::new(RATE, vec![(0..frames).map(|i| sample(i as f32 / RATE as f32)).collect()])
}

fn kick() -> Pcm {
    generate(0.35, |t| {
        let phase = TAU * (50.0 * t + 70.0 * (1.0 - (-t * 30.0).exp()) / 30.0);
        0.9 * phase.sin() * (-t * 9.0).exp()
    })
}

fn hat() -> Pcm {
    let mut rng = ensemble_testkit::Rng(0x2545_F491_4F6C_DD1D);
    generate(0.06, move |t| {
        let noise = (rng.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
        0.25 * noise * (-t * 70.0).exp()
    })
}

fn bass(hz: f32) -> Pcm {
    generate(0.45, move |t| {
        let saw = 2.0 * (t * hz).fract() - 1.0;
        0.35 * saw * (1.0 - (-t * 200.0).exp()) * (-t * 3.0).exp()
    })
}

fn chord(hz: &'static [f32]) -> Pcm {
    generate(2.0, move |t| hz.iter().map(|f| (TAU * f * t).sin()).sum::<f32>() * 0.08 * (1.0 - (-t * 8.0).exp()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "ensemble-demo.wav".into()));
    let timebase = Timebase::new(Bpm(120.0), RATE);
    let at = |sixteenth: i64| timebase.frames(Ticks(sixteenth * 240)).0;
    let clip = |source: &Pcm, sixteenth: i64| ClipPlan {
        start: at(sixteenth),
        length: source.frames() as u64,
        source: source.clone(),
        source_offset: 0,
        gain: 1.0,
        fade_in: 0,
        fade_out: 64,
    };
    let track = |clips: Vec<ClipPlan>, gain_db: f32, pan: f32| TrackPlan {
        id: TrackId::new_v7(),
        gain_db,
        pan,
        mute: false,
        solo: false,
        clips,
        gain_envelope: Envelope::default(),
        pan_envelope: Envelope::default(),
        effects: Vec::new(),
        notes: Vec::new(),
        notes_end: 0,
        monitor: false,
    };
    let (kick, hat) = (kick(), hat());
    let kicks = (0..16).map(|beat| clip(&kick, beat * 4)).collect();
    let hats = (0..32).map(|eighth| clip(&hat, eighth * 2 + 2)).collect();
    let roots = [55.0, 55.0, 43.65, 49.0];
    let bass_line = (0..32).map(|eighth| clip(&bass(roots[eighth as usize / 8]), eighth * 2)).collect();
    let chords: [&'static [f32]; 4] =
        [&[220.0, 261.6, 329.6], &[220.0, 261.6, 329.6], &[174.6, 220.0, 261.6], &[196.0, 246.9, 293.7]];
    let pads = (0..4).map(|bar| clip(&chord(chords[bar as usize]), bar * 16)).collect();
    let mut hats = track(hats, -4.0, 0.0);
    // The hats sweep from left to right across the four bars: automation at work.
    hats.pan_envelope = Envelope {
        points: vec![
            Point { frame: 0, value: -0.7, curve: Curve::Smooth },
            Point { frame: at(64), value: 0.7, curve: Curve::Hold },
        ],
    };
    let arrangement = Arrangement {
        sample_rate: RATE,
        tracks: vec![track(kicks, 0.0, 0.0), hats, track(bass_line, -2.0, -0.1), track(pads, -3.0, 0.2)],
        loop_range: None,
        metronome: Metronome { timebase, time_signature: TimeSignature::FOUR_FOUR },
        master: Vec::new(),
    };
    let seconds = arrangement.end() as f64 / f64::from(RATE);
    export_mix(Arc::new(arrangement), &out, WavFormat::Int24)?;
    println!("wrote {} ({seconds:.2} s, 48 kHz, 24-bit stereo)", out.display());
    Ok(())
}
