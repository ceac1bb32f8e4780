//! Installs what the project needs and the machine lacks: Debian packages, rustup targets and
//! cargo tools (`wasm-bindgen-cli` at the version `Cargo.lock` pins, `cargo-fuzz`). Each check is cheap, so every command can start with `setup`.

use std::process::{Command, Stdio};

use crate::{Result, command_in, root};

/// Debian packages, and why each is needed.
const PACKAGES: &[(&str, &str)] = &[
    ("pkg-config", "finds system libraries for -sys crates"),
    ("libasound2-dev", "ALSA, for sound output (cpal)"),
    ("libudev-dev", "input devices (Bevy's gilrs)"),
    ("libdbus-1-dev", "desktop integration"),
    ("libxkbcommon-dev", "keyboard layouts (winit)"),
    ("libwayland-dev", "Wayland windows (winit)"),
    ("xvfb", "a virtual display for screenshot checks"),
    ("mesa-vulkan-drivers", "software Vulkan for rendering without a GPU"),
    ("imagemagick", "screenshots of the virtual display"),
    ("postgresql", "a throwaway Postgres for the authority's store tests, and pgbench"),
    ("ffmpeg", "encodes test audio in every format, and is the decode benches' peer"),
    ("sox", "checks rendered WAV files (`sox --i`, `sox stat`)"),
    ("iproute2", "network namespaces and links for the jam lab (`ip netns`, `tc`)"),
    ("openssl", "reads the authority's certificates the way another tool would, in its tests"),
    ("chromium", "a real browser, headless, for the WebTransport and web app checks"),
    ("chromium-driver", "drives headless Chromium for the browser's wasm tests"),
    ("brotli", "compresses the browser release's download (`cargo xtask web --release`)"),
    ("nats-server", "NATS, which carries requests and bumps between authority processes (tests start their own)"),
];

const RUST_TARGETS: &[&str] = &["wasm32-unknown-unknown"];

pub(crate) fn setup() -> Result {
    apt_packages()?;
    node()?;
    rust_targets()?;
    wasm_bindgen_cli()
}

/// Node and npm, which run the browser app's smoke check (puppeteer-core drives Chromium). A
/// machine may have them from elsewhere (NodeSource's `nodejs` carries npm); Debian's come as
/// two packages.
fn node() -> Result {
    let npm = Command::new("npm").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if npm.is_ok_and(|status| status.success()) {
        return Ok(());
    }
    let install = ["install", "-y", "-q", "--no-install-recommends", "nodejs", "npm"];
    if is_root() {
        command_in(&root(), "apt-get", &install)
    } else {
        command_in(&root(), "sudo", &[&["apt-get"][..], &install].concat())
    }
}

/// The `wasm-bindgen` version `Cargo.lock` pins: the CLI and test runner must be the same.
fn locked_wasm_bindgen() -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).map_err(|e| format!("Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == r#"name = "wasm-bindgen""# {
            let version = lines.next().and_then(|line| line.strip_prefix("version = "));
            return version.map(|v| v.trim_matches('"').to_owned()).ok_or_else(|| "Cargo.lock: no version".into());
        }
    }
    Err("Cargo.lock has no wasm-bindgen".into())
}

/// Installs `wasm-bindgen-cli` (with `wasm-bindgen-test-runner`) at the locked version, once per
/// machine, into cargo's bin folder outside the clone: 2 min 42 s measured here (17 minutes with
/// nothing in the registry cache), nothing after.
/// Not `--locked`: its own lockfile pins crates the registry here does not serve.
fn wasm_bindgen_cli() -> Result {
    let version = locked_wasm_bindgen()?;
    let out = Command::new("wasm-bindgen-test-runner").arg("--version").output();
    if out.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(&version)) {
        return Ok(());
    }
    command_in(&root(), "cargo", &["install", "wasm-bindgen-cli", "--version", &version, "--force"])
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

fn apt_packages() -> Result {
    if Command::new("dpkg-query").arg("--version").stdout(Stdio::null()).status().is_err() {
        let names: Vec<&str> = PACKAGES.iter().map(|(name, _)| *name).collect();
        eprintln!("setup: not a Debian-like system; install the equivalents of: {}", names.join(" "));
        return Ok(());
    }
    let missing: Vec<&str> = PACKAGES.iter().map(|(name, _)| *name).filter(|name| !installed(name)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    for (name, why) in PACKAGES.iter().filter(|(name, _)| missing.contains(name)) {
        eprintln!("setup: installing {name} ({why})");
    }
    let as_root = is_root();
    let apt = |args: &[&str]| {
        let (program, args) =
            if as_root { ("apt-get", args.to_vec()) } else { ("sudo", [&["apt-get"], args].concat()) };
        crate::with_env("DEBIAN_FRONTEND", "noninteractive", || command_in(&root(), program, &args))
    };
    apt(&["update", "-q"])?;
    apt(&[&["install", "-y", "-q", "--no-install-recommends"], missing.as_slice()].concat())
}

pub(crate) fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

fn rust_targets() -> Result {
    let out =
        Command::new("rustup").args(["target", "list", "--installed"]).output().map_err(|e| format!("rustup: {e}"))?;
    let installed = String::from_utf8_lossy(&out.stdout);
    for target in RUST_TARGETS.iter().filter(|t| !installed.lines().any(|line| line == **t)) {
        command_in(&root(), "rustup", &["target", "add", target])?;
    }
    Ok(())
}

/// Makes sure `cargo +nightly fuzz` works: nightly is on the machine, cargo-fuzz is installed.
pub(crate) fn cargo_fuzz() -> Result {
    let nightly = Command::new("rustup").args(["run", "nightly", "rustc", "--version"]).stdout(Stdio::null()).status();
    if !nightly.is_ok_and(|status| status.success()) {
        command_in(&root(), "rustup", &["toolchain", "install", "nightly", "--profile", "minimal"])?;
    }
    let has_fuzz =
        Command::new("cargo").args(["fuzz", "--version"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !has_fuzz.is_ok_and(|status| status.success()) {
        command_in(&root(), "cargo", &["install", "cargo-fuzz", "--locked"])?;
    }
    Ok(())
}
