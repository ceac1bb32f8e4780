//! Proves that two clones sharing the target directory never build each other's code.
//!
//! Cargo judges our own sources fresh by their file times, so a clone whose files are older than
//! another clone's last build would link that build, unless the crate records which checkout
//! built it (`ENSEMBLE_CHECKOUT` in `.cargo/config.toml`). The check clones the committed tree
//! twice, commits a change to the protocol crate in the second clone that cannot compile, ages
//! that clone's files, and checks the protocol crate in both, in turn, on the shared target
//! directory: the second must fail with its own error, and the first must then pass again.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use crate::{Result, command_in, root};

const MARK: &str = "built from the second clone";

pub(crate) fn check() -> Result {
    let scratch = std::env::temp_dir().join(format!("ensemble-clones-{}", std::process::id()));
    let result = check_in(&scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn check_in(scratch: &Path) -> Result {
    let (first, second) = (scratch.join("first"), scratch.join("second"));
    let source = root().display().to_string();
    for clone in [&first, &second] {
        command_in(&root(), "git", &["clone", "--quiet", &source, &clone.display().to_string()])?;
    }
    let lib = second.join("protocol/src/lib.rs");
    let text = std::fs::read_to_string(&lib).map_err(|e| format!("{}: {e}", lib.display()))?;
    std::fs::write(&lib, format!("{text}\ncompile_error!(\"{MARK}\");\n")).map_err(|e| e.to_string())?;
    let identity = ["-c", "user.name=xtask", "-c", "user.email=xtask@localhost"];
    command_in(
        &second,
        "git",
        &[&identity[..], &["commit", "--quiet", "-am", "a change of the second clone"]].concat(),
    )?;
    age(&second.join("protocol"))?;

    let check = |clone: &Path| -> Result<Output> {
        eprintln!("$ cargo check -p ensemble-protocol   (in {})", clone.display());
        crate::clean(Command::new("cargo"))
            .args(["check", "--quiet", "--locked", "-p", "ensemble-protocol"])
            .current_dir(clone)
            .output()
            .map_err(|e| format!("cargo check: {e}"))
    };
    let built = check(&first)?;
    if !built.status.success() {
        return Err(format!("the first clone does not build: {}", String::from_utf8_lossy(&built.stderr)));
    }
    let built = check(&second)?;
    let stderr = String::from_utf8_lossy(&built.stderr);
    if built.status.success() || !stderr.contains(MARK) {
        return Err(format!(
            "the second clone's protocol crate was not compiled from its own sources (the first clone's build \
             was reused): {stderr}"
        ));
    }
    let built = check(&first)?;
    if !built.status.success() {
        return Err(format!(
            "the first clone no longer builds after the second: {}",
            String::from_utf8_lossy(&built.stderr)
        ));
    }
    eprintln!("shared target: each clone built its own code");
    Ok(())
}

/// Sets every file under `dir` to a time long before any build.
fn age(dir: &Path) -> Result {
    let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            age(&path)?;
        } else {
            let file =
                std::fs::File::options().write(true).open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            file.set_modified(long_ago).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}
