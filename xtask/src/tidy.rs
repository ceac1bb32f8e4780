//! Checks that dependencies point the way ARCHITECTURE.md says: the contract and the engines
//! stay free of the heavy machinery that belongs to other layers.

use std::process::Command;

use crate::{Result, root};

/// For each crate, dependencies it must never pull in, however indirectly.
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("ensemble-protocol", &["tokio", "quinn", "bevy", "kira", "sqlx", "cpal", "symphonia", "rayon"]),
    ("ensemble-audio", &["tokio", "quinn", "bevy", "sqlx"]),
    ("ensemble-authority", &["bevy"]),
];

pub(crate) fn check() -> Result {
    let mut problems = Vec::new();
    for (krate, forbidden) in FORBIDDEN {
        let out = Command::new("cargo")
            .args(["tree", "--locked", "-p", krate, "-e", "normal", "--prefix", "none", "--format", "{p}"])
            .current_dir(root())
            .output()
            .map_err(|e| format!("cargo tree: {e}"))?;
        if !out.status.success() {
            return Err(format!("cargo tree -p {krate} failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let tree = String::from_utf8_lossy(&out.stdout);
        for line in tree.lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            if forbidden
                .iter()
                .any(|bad| name == *bad || name.starts_with(&format!("{bad}-")) || name.starts_with(&format!("{bad}_")))
            {
                problems.push(format!("{krate} depends on {line}"));
            }
        }
    }
    problems.sort();
    problems.dedup();
    if problems.is_empty() {
        eprintln!("tidy: dependency directions hold");
        Ok(())
    } else {
        Err(format!("dependency rules broken:\n  {}", problems.join("\n  ")))
    }
}
