//! The DAW window's screenshot check: start the client in solo mode on a fresh demo song under
//! Xvfb (Mesa's software Vulkan) with the mixer open and every track's automation lane shown,
//! at 1600×900 and again at 1024×640 (the smallest size the layout must hold at), let it
//! render, save a screenshot, and check its structure against the layout the window reports
//! for the same frame: the transport bar's and status line's controls lie inside the window
//! and clear of each other; every track header's colour stripe, every clip's colour bar,
//! every automation lane's tab, every mixer strip's colour bar and every effect slot's chip must
//! be painted in its track's colour, each clip must show its waveform, and the window must hold
//! the demo song's three tracks, six audio clips, the bass line's note clip and four effects
//! (EQ and compressor on the drums, the synth on the bass, reverb on the keys); at the small size the piano roll is
//! open on the bass line, and its notes must be painted in the bass track's colour. Not a golden image: fonts and anti-aliasing may change without
//! failing it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Result, root, target_dir};

/// How long the client may take to start, render and save (software rendering is slow).
const LIMIT: Duration = Duration::from_secs(180);

/// A window size to check, whether every automation lane is shown (at the small size the rows
/// scroll, so only the headers, strips and controls are counted), whether the mixer is, and
/// whether the piano roll is (open on the bass line).
pub(crate) struct Size {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) automation: bool,
    pub(crate) mixer: bool,
    pub(crate) piano_roll: bool,
}

/// The usual size, and the smallest the layout must hold at.
const SIZES: [Size; 2] = [
    Size { width: 1600, height: 900, automation: true, mixer: true, piano_roll: false },
    Size { width: 1024, height: 640, automation: false, mixer: false, piano_roll: true },
];

pub(crate) fn check() -> Result {
    crate::cargo(&["build", "--locked", "-p", "ensemble-client", "--bin", "ensemble"])?;
    SIZES.iter().try_for_each(check_at)
}

fn check_at(size: &Size) -> Result {
    let dir = tempfile_dir()?;
    let shot = dir.join("daw.png");
    let binary = target_dir().join("debug").join("ensemble");
    let mut command = Command::new("xvfb-run");
    command
        .args(["-a", "-s", &format!("-screen 0 {}x{}x24", size.width, size.height)])
        .arg(&binary)
        .arg("--solo-dir")
        .arg(dir.join("solo"))
        .arg("--screenshot")
        .arg(&shot)
        .args(["--size", &format!("{}x{}", size.width, size.height)])
        .args(["--after-frames", "90"]);
    if size.mixer {
        command.arg("--mixer");
    }
    if size.piano_roll {
        command.arg("--piano-roll");
    }
    if size.automation {
        // The big size also opens the first effect's editor (the drums' EQ).
        command.args(["--automation", "--effect"]);
    }
    let lavapipe = Path::new("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json");
    if lavapipe.exists() {
        command.env("VK_ICD_FILENAMES", lavapipe);
    }
    let mut child = command.spawn().map_err(|e| format!("xvfb-run: {e}"))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            return Err(format!("the client did not save a screenshot within {LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !status.success() {
        return Err(format!("the client exited with {status}"));
    }
    let verdict = inspect(&shot, &shot.with_extension("layout.json"), size);
    let kept = root().join("target").join("screenshots");
    let _ = std::fs::create_dir_all(&kept);
    let name = format!("daw-{}x{}.png", size.width, size.height);
    let _ = std::fs::copy(&shot, kept.join(&name));
    eprintln!("screenshot: {}", kept.join(&name).display());
    verdict.map_err(|problem| format!("at {}x{}: {problem}", size.width, size.height))
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ensemble-screenshot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

pub(crate) struct Image {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Image {
    pub(crate) fn read(path: &Path) -> Result<Image> {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
        let mut buffer = vec![0; reader.output_buffer_size().ok_or("a huge screenshot")?];
        let info = reader.next_frame(&mut buffer).map_err(|e| e.to_string())?;
        let channels = info.color_type.samples();
        let rgb =
            buffer[..info.buffer_size()].chunks(channels).flat_map(|pixel| [pixel[0], pixel[1], pixel[2]]).collect();
        Ok(Image { width: info.width as usize, height: info.height as usize, rgb })
    }

    /// The share of pixels inside a rectangle within `tolerance` of `colour` on every channel.
    pub(crate) fn share_near(&self, [left, top, right, bottom]: [f64; 4], colour: [f64; 3], tolerance: f64) -> f64 {
        let (x0, x1) = (left.max(0.0) as usize, (right as usize).min(self.width));
        let (y0, y1) = (top.max(0.0) as usize, (bottom as usize).min(self.height));
        let (mut near, mut all) = (0usize, 0usize);
        for y in y0..y1 {
            for x in x0..x1 {
                let at = (y * self.width + x) * 3;
                all += 1;
                if self.rgb[at..at + 3]
                    .iter()
                    .zip(colour)
                    .all(|(seen, want)| (f64::from(*seen) - want).abs() <= tolerance)
                {
                    near += 1;
                }
            }
        }
        if all == 0 { 0.0 } else { near as f64 / all as f64 }
    }

    /// The mean colour inside a rectangle (in pixels).
    pub(crate) fn mean(&self, [left, top, right, bottom]: [f64; 4]) -> Option<[f64; 3]> {
        let (x0, x1) = (left.max(0.0) as usize, (right as usize).min(self.width));
        let (y0, y1) = (top.max(0.0) as usize, (bottom as usize).min(self.height));
        let mut sum = [0.0; 3];
        let mut count = 0.0;
        for y in y0..y1 {
            for x in x0..x1 {
                let at = (y * self.width + x) * 3;
                for (total, value) in sum.iter_mut().zip(&self.rgb[at..at + 3]) {
                    *total += f64::from(*value);
                }
                count += 1.0;
            }
        }
        (count > 0.0).then(|| sum.map(|total| total / count))
    }
}

/// Numbers from a JSON array.
fn numbers(value: &serde_json::Value) -> Vec<f64> {
    value.as_array().into_iter().flatten().filter_map(serde_json::Value::as_f64).collect()
}

/// Problems with the transport bar's and status line's controls: outside the window, or on
/// top of each other.
fn crowded(layout: &serde_json::Value) -> Vec<String> {
    let window = numbers(&layout["window"]);
    let (width, height) = (window.first().copied().unwrap_or(0.0), window.get(1).copied().unwrap_or(0.0));
    let controls: Vec<Vec<f64>> = layout["controls"].as_array().into_iter().flatten().map(numbers).collect();
    let mut problems = Vec::new();
    if controls.len() < 8 {
        problems.push(format!("only {} controls in the transport bar and status line", controls.len()));
    }
    for (index, control) in controls.iter().enumerate() {
        let [left, top, right, bottom] = control[..] else { continue };
        if left < -0.5 || top < -0.5 || right > width + 0.5 || bottom > height + 0.5 {
            problems.push(format!("a control at {control:?} is outside the {width}×{height} window"));
        }
        for other in &controls[index + 1..] {
            let [other_left, other_top, other_right, other_bottom] = other[..] else { continue };
            let overlap =
                (right.min(other_right) - left.max(other_left)).min(bottom.min(other_bottom) - top.max(other_top));
            if overlap > 1.0 {
                problems.push(format!("controls at {control:?} and {other:?} overlap"));
            }
        }
    }
    problems
}

/// Checks a screenshot of the demo song against the layout the window reported for it.
pub(crate) fn inspect(shot: &Path, layout: &Path, size: &Size) -> Result {
    let image = Image::read(shot)?;
    let text = std::fs::read_to_string(layout).map_err(|e| format!("{}: {e}", layout.display()))?;
    let layout: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let scale = image.width as f64 / f64::from(size.width);
    let regions = |key: &str| layout[key].as_array().cloned().unwrap_or_default();
    let (headers, clips, lanes, strips) = (regions("headers"), regions("clips"), regions("lanes"), regions("strips"));
    let (note_clips, notes) = (regions("note_clips"), regions("notes"));
    let names = |regions: &[serde_json::Value]| -> Vec<String> {
        regions.iter().filter_map(|h| h["name"].as_str().map(str::to_owned)).collect()
    };
    let song = ["Drums", "Bass", "Keys"];
    let lanes_ok = if size.automation { names(&lanes) == song } else { lanes.is_empty() };
    // Four drum loops and two of keys; the bass is a note clip.
    let clips_ok = if size.automation { clips.len() == 6 } else { !clips.is_empty() };
    let strips_ok = if size.mixer { names(&strips) == song } else { strips.is_empty() };
    if names(&headers) != song || !lanes_ok || !strips_ok || !clips_ok {
        return Err(format!(
            "the demo song should show 3 tracks with their lanes and strips and 6 clips, the window drew \
             headers {:?}, lanes {:?}, strips {:?} and {} clips",
            names(&headers),
            names(&lanes),
            names(&strips),
            clips.len()
        ));
    }
    let mut problems = crowded(&layout);
    // A floating editor covers what is under it: regions it overlaps are not looked for.
    let editor: Vec<f64> =
        layout["editor"]["rect"].as_array().into_iter().flatten().filter_map(|v| v.as_f64()).collect();
    let hidden = |swatch: &[f64; 4]| match editor[..] {
        [left, top, right, bottom] => swatch[0] < right && swatch[2] > left && swatch[1] < bottom && swatch[3] > top,
        _ => false,
    };
    let kinds = [
        ("header", &headers),
        ("clip", &clips),
        ("automation lane", &lanes),
        ("mixer strip", &strips),
        ("note clip", &note_clips),
        ("note", &notes),
    ];
    for (kind, region) in kinds.iter().flat_map(|(kind, regions)| regions.iter().map(move |region| (*kind, region))) {
        let swatch: Vec<f64> = region["swatch"].as_array().into_iter().flatten().filter_map(|v| v.as_f64()).collect();
        let colour: Vec<f64> = region["colour"].as_array().into_iter().flatten().filter_map(|v| v.as_f64()).collect();
        let (Ok(swatch), Ok(colour)) = (<[f64; 4]>::try_from(swatch), <[f64; 3]>::try_from(colour)) else {
            return Err(format!("a malformed region in the layout: {region}"));
        };
        if hidden(&swatch) {
            continue;
        }
        let pixels = swatch.map(|v| v * scale);
        match image.mean(pixels) {
            Some(mean) if mean.iter().zip(colour).all(|(seen, want)| (seen - want).abs() <= 24.0) => {}
            seen => {
                problems.push(format!("{kind} of {} at {pixels:?}: expected {colour:?}, saw {seen:?}", region["name"]))
            }
        }
    }
    // The demo's chains, slot by slot, each chip painted in its track's colour.
    let effects = regions("effects");
    let chains: Vec<(String, String)> = effects
        .iter()
        .filter_map(|slot| Some((slot["name"].as_str()?.to_owned(), slot["effect"].as_str()?.to_owned())))
        .collect();
    let demo_chains = [("Drums", "EQ"), ("Drums", "Compressor"), ("Bass", "Synth"), ("Keys", "Reverb")]
        .map(|(t, e)| (t.into(), e.into()));
    let chains_ok = if size.mixer { chains == demo_chains } else { chains.is_empty() };
    if !chains_ok {
        problems.push(format!("the mixer should show the demo's effects {demo_chains:?}, it drew {chains:?}"));
    }
    // The bass line on the timeline, and its notes in the piano roll where it is open.
    if names(&note_clips) != ["Bass"] {
        problems.push(format!("the timeline should show the bass line's note clip, it drew {:?}", names(&note_clips)));
    }
    let notes_ok = if size.piano_roll { notes.len() >= 8 } else { notes.is_empty() };
    if !notes_ok {
        problems.push(format!("the piano roll should show the bass line's notes, it drew {}", notes.len()));
    }
    // The big size opens the drums' EQ: seven knobs.
    let editor = (layout["editor"]["effect"].as_str(), layout["editor"]["knobs"].as_u64());
    let editor_ok = if size.automation { editor == (Some("EQ"), Some(7)) } else { layout["editor"].is_null() };
    if !editor_ok {
        problems.push(format!("the effect editor should show the drums' EQ with 7 knobs, it showed {editor:?}"));
    }
    for slot in &effects {
        let numbers =
            |key: &str| -> Vec<f64> { slot[key].as_array().into_iter().flatten().filter_map(|v| v.as_f64()).collect() };
        let (Ok(swatch), Ok(colour)) =
            (<[f64; 4]>::try_from(numbers("swatch")), <[f64; 3]>::try_from(numbers("colour")))
        else {
            return Err(format!("a malformed effect slot: {slot}"));
        };
        match image.mean(swatch.map(|v| v * scale)) {
            Some(mean) if mean.iter().zip(colour).all(|(seen, want)| (seen - want).abs() <= 24.0) => {}
            seen => problems.push(format!("effect slot {slot}: expected {colour:?}, saw {seen:?}")),
        }
    }
    let waveforms = regions("waveforms");
    // Clips cut by the timeline's edge show a waveform without a swatch.
    if waveforms.len() < clips.len() {
        problems.push(format!("{} of {} clips have a waveform", waveforms.len(), clips.len()));
    }
    for region in &waveforms {
        let numbers = |key: &str| -> Vec<f64> {
            region[key].as_array().into_iter().flatten().filter_map(|v| v.as_f64()).collect()
        };
        let (Ok(swatch), Ok(colour)) =
            (<[f64; 4]>::try_from(numbers("swatch")), <[f64; 3]>::try_from(numbers("colour")))
        else {
            return Err(format!("a malformed waveform region: {region}"));
        };
        if hidden(&swatch) {
            continue;
        }
        let share = image.share_near(swatch.map(|v| v * scale), colour, 30.0);
        // A loop's waveform covers a good part of its clip; an empty clip body covers none.
        if share < 0.05 {
            problems.push(format!("the waveform of a {} clip covers {:.1}% of it", region["name"], share * 100.0));
        }
    }
    if problems.is_empty() {
        eprintln!(
            "screenshot at {}x{}: 3 track headers, {} mixer strips with {} effect slots, {} lanes, {} clips and their \
             waveforms drawn where the project says; {} controls inside the window, none on another",
            size.width,
            size.height,
            strips.len(),
            effects.len(),
            lanes.len(),
            clips.len(),
            layout["controls"].as_array().map_or(0, Vec::len)
        );
        Ok(())
    } else {
        Err(format!("the screenshot does not match the project:\n  {}", problems.join("\n  ")))
    }
}
