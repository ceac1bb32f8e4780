//! `cargo xtask`: everything a person runs on Ensemble, with its set-up included.
//!
//! - `cargo xtask run [ARGS]` sets up what is missing and opens the DAW (solo, on the demo song;
//!   `cargo xtask run --connect HOST:PORT --project ID --fingerprint HEX` joins an authority).
//! - `cargo xtask ci` runs exactly what CI runs: setup, fmt, clippy, tidy, a check that clones
//!   sharing the target directory build their own code, the browser build's check, tests (and
//!   the browser's, in headless Chromium), docs, the DAW's screenshot check
//!   under Xvfb, a short cluster lab, a short jam lab (as root), a short fuzz run.
//! - `cargo xtask screenshot` runs the screenshot check alone (the image lands in
//!   `target/screenshots/`).
//! - `cargo xtask shared-target` runs the two-clone check alone.
//! - `cargo xtask tidy` checks the dependency rules alone (see `tidy.rs`).
//! - `cargo xtask wasm-check` checks (clippy, warnings denied) that the crates the browser
//!   build needs compile for `wasm32-unknown-unknown` with the browser's features.
//! - `cargo xtask web` builds the browser client (WebGPU and WebGL2) into `target/web` and
//!   serves it from an authority on this machine, printing the link to open. With `--release`
//!   (also for `web-smoke` and `web-collab`) it builds what people download instead, into
//!   `target/web-release`: optimised for size, through wasm-opt, with gzip and brotli copies.
//! - `cargo xtask web-smoke` opens both builds in headless Chromium (WebGPU, and WebGL2 without
//!   the WebGPU flags) against a fresh authority on the demo song: each must come online and
//!   draw the song as the native screenshot check requires (screenshots in `target/screenshots/`).
//! - `cargo xtask web-collab` has two pages and a native client share the demo song: page 1
//!   types 50 tempos, the others must show each (latencies printed); page 2 drags a clip and
//!   page 1 must show it moved. `cargo xtask web-offline`: 50 edits made while the authority is
//!   down survive a reload and land exactly once when it is back.
//! - `cargo xtask web-test` runs the browser's tests (`client/tests/web.rs`) in headless
//!   Chromium through `wasm-bindgen-test-runner` and chromedriver.
//! - `cargo xtask setup` installs the system packages and rustup targets the project needs.
//! - `cargo xtask fuzz [SECONDS]` fuzzes the frame decoder and the audio decoder, each for
//!   SECONDS, on the nightly toolchain.
//! - `cargo xtask bench` runs the criterion benches.
//! - `cargo xtask cluster-lab [ARGS]` runs three authority processes (each in a network
//!   namespace of its own, as root) on a throwaway Postgres and NATS under load, kills one,
//!   pauses one past its lease, cuts one off Postgres and NATS past its lease, restarts NATS,
//!   and prints throughput, acknowledgement latency, failover times and the acknowledged
//!   transactions missing (which fails it); ARGS go to `ensemble-cluster-lab` (`--help`).
//! - `cargo xtask jam-lab [STARTS]` runs a LAN jam (a host, three peers) in network
//!   namespaces over a delaying, jittery wire and prints the phase error of STARTS starts
//!   (default 100); needs root for `ip netns`.

mod jam_lab;
mod screenshot;
mod setup;
mod shared_target;
mod tidy;
mod web;
mod web_authority;

// Which checkout this crate was built from: a different one makes cargo rebuild it, so clones
// sharing the target directory never build each other's code (see `.cargo/config.toml`).
const _: Option<&str> = option_env!("ENSEMBLE_CHECKOUT");

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

type Result<T = ()> = std::result::Result<T, String>;

const USAGE: &str = "usage: cargo xtask <run [ARGS] | ci | setup | screenshot | shared-target | tidy | wasm-check | web-test | web [--release] | web-smoke [--release] | web-collab [--release] | web-offline | fuzz [SECONDS] | bench | cluster-lab [ARGS] | jam-lab [STARTS]>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["run", rest @ ..] => run(rest),
        ["ci"] => ci(),
        ["setup"] => setup::setup(),
        ["screenshot"] => screenshot::check(),
        ["shared-target"] => shared_target::check(),
        ["tidy"] => tidy::check(),
        ["wasm-check"] => wasm_check(),
        ["web-test"] => web_test(),
        ["web", rest @ ..] => web::Profile::from_args(rest).and_then(web::serve),
        ["web-smoke", rest @ ..] => web::Profile::from_args(rest).and_then(web::smoke),
        ["web-collab", rest @ ..] => web::Profile::from_args(rest).and_then(web::collab),
        ["web-offline"] => web::offline(),
        ["fuzz"] => fuzz(60),
        ["fuzz", seconds] => seconds.parse().map_err(|_| format!("not a number of seconds: {seconds}")).and_then(fuzz),
        ["bench", rest @ ..] => cargo(&[&["bench", "-p", "ensemble-benches"], rest].concat()),
        ["cluster-lab", rest @ ..] => cluster_lab(rest),
        ["jam-lab"] => jam_lab::run(100),
        ["jam-lab", starts] => {
            starts.parse().map_err(|_| format!("not a number of starts: {starts}")).and_then(jam_lab::run)
        }
        // The lab's wire, run by the lab inside its namespace.
        ["jam-wire", ports @ ..] => jam_lab::wire(ports),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it). Read when running, not when compiling:
/// clones share one target directory, so a binary built in another clone may be the one run.
fn root() -> PathBuf {
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    manifest_dir.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Runs `program args…` in `dir`, failing with the command line if it fails.
fn command_in(dir: &Path, program: &str, args: &[&str]) -> Result {
    let line = format!("{program} {}", args.join(" "));
    eprintln!("$ {line}");
    let status =
        clean(Command::new(program)).args(args).current_dir(dir).status().map_err(|e| format!("{line}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`{line}` failed ({status})")) }
}

/// `command` without the variables `cargo run` set for xtask itself. Some build scripts (ring's)
/// rebuild when `CARGO_MANIFEST_DIR` changes, so a cargo started from xtask with xtask's value
/// rebuilt them, and everything above them, after every plain `cargo` run and back.
fn clean(mut command: Command) -> Command {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_by_cargo_run = key.starts_with("CARGO_PKG_")
            || matches!(
                &*key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            );
        if set_by_cargo_run {
            command.env_remove(&*key);
        }
    }
    command
}

/// Where cargo builds (the project shares one target directory between clones).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("/var/tmp/ensemble-target"), PathBuf::from)
}

fn cargo(args: &[&str]) -> Result {
    command_in(&root(), "cargo", args)
}

/// Opens the DAW: solo on the demo song, or with the arguments given (`--connect HOST:PORT …`).
fn run(args: &[&str]) -> Result {
    setup::setup()?;
    // Dependencies build optimised even in the dev profile, so this starts fast and runs smooth.
    cargo(&[&["run", "-p", "ensemble-client", "--bin", "ensemble", "--"], args].concat())
}

fn ci() -> Result {
    let started = Instant::now();
    let step = |name: &str, action: &dyn Fn() -> Result| -> Result {
        let at = Instant::now();
        eprintln!("\n== {name}");
        action()?;
        eprintln!("== {name}: ok in {:.0?}", at.elapsed());
        Ok(())
    };
    step("setup", &setup::setup)?;
    step("fmt", &|| cargo(&["fmt", "--all", "--check"]))?;
    step("clippy", &|| cargo(&["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"]))?;
    step("tidy", &tidy::check)?;
    step("shared target", &shared_target::check)?;
    step("browser build (wasm32 check)", &wasm_check)?;
    step("test", &|| cargo(&["test", "--workspace", "--locked"]))?;
    step("browser tests (headless Chromium)", &web_test)?;
    step("browser app (headless Chromium, WebGPU and WebGL2)", &|| web::smoke(web::Profile::Debug))?;
    step("browser collaboration (two pages and a native client)", &|| web::collab(web::Profile::Debug))?;
    step("browser offline (50 edits, a reload, the authority back)", &web::offline)?;
    step("doc", &|| {
        with_env("RUSTDOCFLAGS", "-D warnings", || cargo(&["doc", "--workspace", "--no-deps", "--locked"]))
    })?;
    step("screenshot", &screenshot::check)?;
    step("cluster lab (3 processes, a kill, a pause, a cut, NATS restarted)", &|| cluster_lab(&["--seconds", "20"]))?;
    step("jam lab (20 starts)", &|| {
        if jam_lab::namespaces_work() {
            jam_lab::run(20)
        } else {
            eprintln!("jam lab skipped: making network namespaces needs root (run `cargo xtask jam-lab` as root)");
            Ok(())
        }
    })?;
    step("fuzz (smoke)", &|| fuzz(15))?;
    eprintln!("\nci: all steps passed in {:.0?}", started.elapsed());
    Ok(())
}

/// Builds the authority and the cluster lab (debug, as the tests are) and runs the lab with
/// `args`.
fn cluster_lab(args: &[&str]) -> Result {
    setup::setup()?;
    cargo(&["build", "--locked", "-p", "ensemble-authority", "--bin", "ensemble-authority"])?;
    let authority = target_dir().join("debug").join("ensemble-authority");
    let authority = authority.to_string_lossy();
    let run = ["run", "--locked", "-p", "ensemble-benches", "--bin", "ensemble-cluster-lab", "--"];
    cargo(&[&run[..], &["--authority", &authority], args].concat())
}

/// Checks, with clippy and warnings denied, that the protocol, the audio engine, the client end
/// of the wire and the client (with the browser's features) compile for the browser.
fn wasm_check() -> Result {
    let features = format!("ensemble-client/{}", tidy::BROWSER_FEATURES);
    let packages = ["-p", "ensemble-protocol", "-p", "ensemble-audio", "-p", "ensemble-net", "-p", "ensemble-client"];
    let target = ["--target", tidy::WASM, "--no-default-features", "--features", &features];
    cargo(&[&["clippy", "--locked"][..], &packages, &target, &["--", "-D", "warnings"]].concat())
}

/// Lints the browser's tests (`net/tests/web.rs`, `client/tests/web.rs`: the native clippy
/// step never sees them), then runs them in headless Chromium: the transport's against an
/// authority started here, the local store's on their own.
fn web_test() -> Result {
    let wasm = ["--locked", "--target", tidy::WASM, "--no-default-features"];
    let crates = ["-p", "ensemble-net", "-p", "ensemble-client"];
    cargo(&[&["clippy", "--tests"][..], &wasm, &crates, &["--", "-D", "warnings"]].concat())?;
    let authority = web_authority::start(None)?;
    with_env("CHROMEDRIVER", "/usr/bin/chromedriver", || {
        with_env("ENSEMBLE_TEST_AUTHORITY", &authority.spec, || {
            cargo(&[&["test", "--test", "web"][..], &wasm, &crates].concat())
        })
    })
}

/// Runs `action` with an environment variable set for the commands it starts.
fn with_env(key: &str, value: &str, action: impl FnOnce() -> Result) -> Result {
    let previous = std::env::var_os(key);
    // xtask runs one command at a time and no other thread reads the environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(key, value);
    }
    let result = action();
    #[allow(unsafe_code)]
    unsafe {
        match previous {
            Some(previous) => std::env::set_var(key, previous),
            None => std::env::remove_var(key),
        }
    }
    result
}

/// The fuzz targets: (crate folder, target, largest input).
const FUZZ_TARGETS: &[(&str, &str, &str)] =
    &[("protocol", "frame_decoder", "-max_len=4096"), ("audio", "decode", "-max_len=65536")];

/// Fuzzes every target for `seconds` each.
fn fuzz(seconds: u64) -> Result {
    setup::cargo_fuzz()?;
    let time = format!("-max_total_time={seconds}");
    for (folder, target, max_len) in FUZZ_TARGETS {
        command_in(&root().join(folder), "cargo", &["+nightly", "fuzz", "run", target, "--", &time, max_len])?;
    }
    Ok(())
}
