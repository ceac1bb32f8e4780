//! The browser client: `cargo xtask web` builds it (WebGPU and WebGL2) into `target/web` beside
//! its page and serves it from a local authority; `cargo xtask web-smoke` has headless Chromium
//! open each against a fresh authority: it must come online and draw.

use std::path::{Path, PathBuf};

use crate::screenshot::{Image, Size};
use crate::{Result, cargo, command_in, root, target_dir, tidy, web_authority};

/// The builds: the client's feature and the folder the page loads it from.
const RENDERERS: [(&str, &str); 2] = [("web", "webgpu"), ("webgl2", "webgl2")];

/// How the browser client is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Profile {
    /// Quick to build, for the checks CI runs (the renderer still optimised, see Cargo.toml).
    Debug,
    /// What people download: the `web-release` profile, shrunk by wasm-opt, with gzip and
    /// brotli copies beside it that the authority serves to browsers that accept them.
    /// Cold on this machine: the build about 10 min a renderer, wasm-opt and brotli about 4.
    Release,
}

impl Profile {
    /// `--release` or nothing.
    pub(crate) fn from_args(args: &[&str]) -> Result<Profile> {
        match args {
            [] => Ok(Profile::Debug),
            ["--release"] => Ok(Profile::Release),
            _ => Err(format!("unexpected arguments: {} (only --release)", args.join(" "))),
        }
    }

    /// Where the page and its builds go.
    fn site(self) -> PathBuf {
        let name = match self {
            Profile::Debug => "web",
            Profile::Release => "web-release",
        };
        root().join("target").join(name)
    }

    /// Cargo's name for it, which is also its folder under the target's.
    fn cargo_profile(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "web-release",
        }
    }
}

/// Builds the browser client with each of `renderers` and writes the page beside them.
fn build(renderers: &[(&str, &str)], profile: Profile) -> Result<PathBuf> {
    let site = profile.site();
    for (feature, dir) in renderers {
        let args = ["build", "--locked", "--target", tidy::WASM, "-p", "ensemble-client", "--bin", "ensemble-web"];
        let features = ["--no-default-features", "--features", feature];
        let release = ["--profile", profile.cargo_profile()];
        let release = if profile == Profile::Release { &release[..] } else { &[] };
        cargo(&[&args[..], &features, release].concat())?;
        let wasm = target_dir().join(tidy::WASM).join(profile.cargo_profile()).join("ensemble-web.wasm");
        let out = site.join(dir);
        if profile == Profile::Release && newer(&out.join("ensemble-web_bg.wasm.br"), &wasm) {
            // Packaged from this very build already: wasm-opt and brotli take minutes.
            continue;
        }
        let (wasm, out_arg) = (wasm.to_string_lossy(), out.to_string_lossy());
        let bindgen = ["--target", "web", "--no-typescript", "--out-dir", &out_arg, &wasm];
        // A release's panics name no functions: the names are a quarter of the download.
        let lean = ["--remove-name-section", "--remove-producers-section"];
        let lean = if profile == Profile::Release { &lean[..] } else { &[] };
        command_in(&root(), "wasm-bindgen", &[&bindgen[..], lean].concat())?;
        if profile == Profile::Release {
            shrink(&out.join("ensemble-web_bg.wasm"))?;
        }
    }
    std::fs::copy(root().join("client/web/index.html"), site.join("index.html")).map_err(|e| e.to_string())?;
    Ok(site)
}

/// Runs wasm-opt over a release's module, then writes the gzip and brotli copies the authority
/// serves, and prints the sizes.
fn shrink(wasm: &Path) -> Result {
    let raw = size(wasm)?;
    let path = wasm.to_string_lossy();
    command_in(&root(), &wasm_opt()?.to_string_lossy(), &["-Oz", &path, "-o", &path])?;
    command_in(&root(), "gzip", &["-9", "--keep", "--force", &path])?;
    command_in(&root(), "brotli", &["--best", "--keep", "--force", &path])?;
    let gz = PathBuf::from(format!("{path}.gz"));
    let br = PathBuf::from(format!("{path}.br"));
    eprintln!(
        "web build: {path}: {:.1} MB from wasm-bindgen, {:.1} MB after wasm-opt, {:.1} MB gzipped, {:.1} MB brotli",
        mb(raw),
        mb(size(wasm)?),
        mb(size(&gz)?),
        mb(size(&br)?)
    );
    Ok(())
}

/// Whether `path` exists and was written after `than` (false when either cannot be read).
fn newer(path: &Path, than: &Path) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|meta| meta.modified()).ok();
    matches!((modified(path), modified(than)), (Some(path), Some(than)) if path > than)
}

fn size(path: &Path) -> Result<u64> {
    std::fs::metadata(path).map(|meta| meta.len()).map_err(|e| format!("{}: {e}", path.display()))
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Binaryen's wasm-opt from npm, installed once per machine outside the clone (Debian's
/// binaryen is too old for this Rust's output, see the browser notes).
fn wasm_opt() -> Result<PathBuf> {
    let dir = cache_dir().join("binaryen");
    let bin = dir.join("node_modules").join(".bin").join("wasm-opt");
    if !bin.is_file() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        command_in(&root(), "npm", &["install", "--silent", "--prefix", &dir.to_string_lossy(), "binaryen@132"])?;
    }
    Ok(bin)
}

/// Per-machine tools the browser checks install: outside the clone, kept between clones.
fn cache_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache").join("ensemble")
}

/// `cargo xtask web [--release]`: builds both renderers and serves them from an authority on
/// this machine (its data kept in `target/web-authority`, the page on http://127.0.0.1:8080)
/// until interrupted, printing the link to open.
pub(crate) fn serve(profile: Profile) -> Result {
    let site = build(&RENDERERS, profile)?;
    let data = root().join("target").join("web-authority");
    let authority = web_authority::start_in(&data, Some((&site, "127.0.0.1:8080")))?;
    let web = authority.web.clone().ok_or("the authority did not serve the web app")?;
    let user = std::env::var("USER").unwrap_or_else(|_| "Guest".into());
    println!("\nEnsemble in the browser: {web}?project={}&name={user}\n(Ctrl+C stops it)", authority.project);
    authority.wait()
}

/// `cargo xtask web-collab`: the seed's collaboration check in headless Chromium (see
/// `xtask/web/collab.mjs`): two pages of the WebGL2 build and the native `ensemble-follow` on
/// the demo song; page 1 types 50 tempos, page 2 and the native client must show each (the
/// latencies are printed), then page 2 drags a clip and page 1 must show it moved.
pub(crate) fn collab(profile: Profile) -> Result {
    let site = build(&RENDERERS[1..], profile)?;
    cargo(&["build", "--locked", "-p", "ensemble-client", "--bin", "ensemble-follow"])?;
    let driver = puppeteer(&["pages.mjs", "collab.mjs"])?;
    let authority = web_authority::start(Some(&site))?;
    let web = authority.web.clone().ok_or("the authority did not serve the web app")?;
    let url = format!("{web}?project={}", authority.project);
    let store = std::env::temp_dir().join(format!("ensemble-follow-{}", std::process::id()));
    let follower = [
        target_dir().join("debug").join("ensemble-follow").to_string_lossy().into_owned(),
        "--connect".into(),
        authority.quic.clone(),
        "--project".into(),
        authority.project.clone(),
        "--fingerprint".into(),
        authority.hashes.clone(),
        "--dir".into(),
        store.to_string_lossy().into_owned(),
    ];
    let follower = serde_json::to_string(&follower).map_err(|e| e.to_string())?;
    let shots = root().join("target").join("screenshots");
    std::fs::create_dir_all(&shots).map_err(|e| e.to_string())?;
    let result = command_in(&driver, "node", &["collab.mjs", &url, &follower, &shots.to_string_lossy()]);
    let _ = std::fs::remove_dir_all(&store);
    result
}

/// `cargo xtask web-offline`: the offline check (see `xtask/web/offline.mjs`). The script runs
/// the authority itself, on a fresh data folder holding the demo song, so it can stop it and
/// bring it back.
pub(crate) fn offline() -> Result {
    let site = build(&RENDERERS[1..], Profile::Debug)?;
    let driver = puppeteer(&["pages.mjs", "offline.mjs"])?;
    let (site, driver) = (site.as_path(), driver.as_path());
    let dir = std::env::temp_dir().join(format!("ensemble-web-offline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let project = web_authority::prepare(&dir, true)?;
    let authority = serde_json::to_string(&web_authority::command_line(&dir)).map_err(|e| e.to_string())?;
    let result = command_in(driver, "node", &["offline.mjs", &site.to_string_lossy(), &project, &authority]);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Where the browser checks' driver lives (outside the clone, installed once per machine), with
/// `scripts` from `xtask/web` copied beside it.
fn puppeteer(scripts: &[&str]) -> Result<PathBuf> {
    let dir = cache_dir().join("puppeteer");
    if !dir.join("node_modules").join("puppeteer-core").is_dir() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let prefix = dir.to_string_lossy();
        command_in(&root(), "npm", &["install", "--silent", "--prefix", &prefix, "puppeteer-core@24"])?;
    }
    for script in scripts {
        std::fs::copy(root().join("xtask/web").join(script), dir.join(script)).map_err(|e| e.to_string())?;
    }
    Ok(dir)
}

/// `cargo xtask web-smoke`: both builds in headless Chromium against a fresh authority holding
/// the demo song, the WebGPU one with the flags that give an adapter and the WebGL2 one without:
/// each must be the one the page picks, say it is online within a minute, and draw the demo
/// song as the native screenshot check requires (headers, clips and waveforms painted where the
/// layout the page publishes says). The screenshots are kept in
/// `target/screenshots/web-webgpu.png` and `web-webgl2.png`, each with its layout beside it.
pub(crate) fn smoke(profile: Profile) -> Result {
    let site = build(&RENDERERS, profile)?;
    let driver = puppeteer(&["pages.mjs", "smoke.mjs"])?;
    let authority = web_authority::start(Some(&site))?;
    let web = authority.web.clone().ok_or("the authority did not serve the web app")?;
    let shots = root().join("target").join("screenshots");
    std::fs::create_dir_all(&shots).map_err(|e| e.to_string())?;
    for (_, renderer) in RENDERERS {
        let shot = shots.join(format!("web-{renderer}.png"));
        let url = format!("{web}?project={}&name=Smoke", authority.project);
        command_in(&driver, "node", &["smoke.mjs", &url, &shot.to_string_lossy(), renderer])?;
        check(&shot)?;
        // The demo song as the native check sees it, at the page's size, without the mixer.
        let size = Size { width: 1280, height: 720, automation: false, mixer: false, piano_roll: false };
        crate::screenshot::inspect(&shot, &shot.with_extension("layout.json"), &size)
            .map_err(|problem| format!("{renderer}: {problem}"))?;
    }
    Ok(())
}

/// The window is drawn: the transport bar holds controls (not just its plain panel), and the
/// status line says, in green, that it is online.
fn check(shot: &Path) -> Result {
    let image = Image::read(shot)?;
    // The bar's own colour, from its empty right end; buttons and text must differ from it.
    let panel = image.mean([1180.0, 4.0, 1276.0, 48.0]).ok_or("an empty screenshot")?;
    let bar = image.share_near([0.0, 0.0, 1280.0, 52.0], panel, 6.0);
    let online = image.share_near([1080.0, 696.0, 1280.0, 720.0], [96.0, 200.0, 120.0], 60.0);
    eprintln!(
        "web smoke: transport bar {:.0}% plain panel, {:.1}% online-green in the status corner",
        bar * 100.0,
        online * 100.0
    );
    if bar > 0.95 {
        return Err(format!("{}: the transport bar is not drawn", shot.display()));
    }
    if online < 0.005 {
        return Err(format!("{}: the status line does not show the connection", shot.display()));
    }
    Ok(())
}
