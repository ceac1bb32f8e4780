//! The browser client: `cargo xtask web` builds it (WebGPU and WebGL2) into `target/web` beside
//! its page and serves it from a local authority; `cargo xtask web-smoke` has headless Chromium
//! open each against a fresh authority: it must come online and draw.

use std::path::{Path, PathBuf};

use crate::screenshot::Image;
use crate::{Result, cargo, command_in, root, target_dir, tidy, web_authority};

/// The builds: the client's feature and the folder the page loads it from.
const RENDERERS: [(&str, &str); 2] = [("web", "webgpu"), ("webgl2", "webgl2")];

/// Where the page and its builds go.
fn site() -> PathBuf {
    root().join("target").join("web")
}

/// Builds the browser client with each of `renderers` and writes the page beside them.
fn build(renderers: &[(&str, &str)]) -> Result<PathBuf> {
    let site = site();
    for (feature, dir) in renderers {
        let args = ["build", "--locked", "--target", tidy::WASM, "-p", "ensemble-client", "--bin", "ensemble-web"];
        cargo(&[&args[..], &["--no-default-features", "--features", feature]].concat())?;
        let wasm = target_dir().join(tidy::WASM).join("debug").join("ensemble-web.wasm");
        let out = site.join(dir);
        let (wasm, out) = (wasm.to_string_lossy(), out.to_string_lossy());
        command_in(&root(), "wasm-bindgen", &["--target", "web", "--no-typescript", "--out-dir", &out, &wasm])?;
    }
    std::fs::copy(root().join("client/web/index.html"), site.join("index.html")).map_err(|e| e.to_string())?;
    Ok(site)
}

/// `cargo xtask web`: builds both renderers and serves them from an authority on this machine
/// (its data kept in `target/web-authority`, the page on http://127.0.0.1:8080) until
/// interrupted, printing the link to open.
pub(crate) fn serve() -> Result {
    let site = build(&RENDERERS)?;
    let data = root().join("target").join("web-authority");
    let authority = web_authority::start_in(&data, Some((&site, "127.0.0.1:8080")))?;
    let web = authority.web.clone().ok_or("the authority did not serve the web app")?;
    let user = std::env::var("USER").unwrap_or_else(|_| "Guest".into());
    println!("\nEnsemble in the browser: {web}?project={}&name={user}\n(Ctrl+C stops it)", authority.project);
    authority.wait()
}

/// Where the smoke check's browser driver lives: outside the clone, once per machine.
fn puppeteer() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = home.join(".cache").join("ensemble").join("puppeteer");
    if !dir.join("node_modules").join("puppeteer-core").is_dir() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let prefix = dir.to_string_lossy();
        command_in(&root(), "npm", &["install", "--silent", "--prefix", &prefix, "puppeteer-core@24"])?;
    }
    Ok(dir)
}

/// `cargo xtask web-smoke`: both builds in headless Chromium against a fresh authority, the
/// WebGPU one with the flags that give an adapter and the WebGL2 one without: each must be the
/// one the page picks, say it is online within a minute and draw its window. The screenshots
/// are kept in `target/screenshots/web-webgpu.png` and `web-webgl2.png`.
pub(crate) fn smoke() -> Result {
    let site = build(&RENDERERS)?;
    let driver = puppeteer()?;
    std::fs::copy(root().join("xtask/web/smoke.mjs"), driver.join("smoke.mjs")).map_err(|e| e.to_string())?;
    let authority = web_authority::start(Some(&site))?;
    let web = authority.web.clone().ok_or("the authority did not serve the web app")?;
    let shots = root().join("target").join("screenshots");
    std::fs::create_dir_all(&shots).map_err(|e| e.to_string())?;
    for (_, renderer) in RENDERERS {
        let shot = shots.join(format!("web-{renderer}.png"));
        let url = format!("{web}?project={}&name=Smoke", authority.project);
        command_in(&driver, "node", &["smoke.mjs", &url, &shot.to_string_lossy(), renderer])?;
        check(&shot)?;
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
