//! Checks that dependencies point the way ARCHITECTURE.md says: the contract and the engines
//! stay free of the heavy machinery that belongs to other layers, and the client's core stays
//! free of the server, so that it builds for the browser.

use std::process::Command;

use crate::{Result, root};

/// The target the browser build compiles for.
pub(crate) const WASM: &str = "wasm32-unknown-unknown";

/// The client's features in the browser: the core and the window, without solo mode or LAN jams.
pub(crate) const BROWSER_FEATURES: &str = "window";

/// One dependency tree to inspect, and what must never appear in it, however indirectly.
struct Rule {
    /// The crate whose tree this is.
    krate: &'static str,
    /// What selects the tree (features, target), as `cargo tree` arguments.
    selection: &'static [&'static str],
    /// Says which tree this is, in a failure.
    label: &'static str,
    /// Crates (`name`) and crate features (`name/feature`) the tree must not have.
    forbidden: &'static [&'static str],
}

const RULES: &[Rule] = &[
    Rule {
        krate: "ensemble-protocol",
        selection: &[],
        label: "",
        forbidden: &["tokio", "quinn", "bevy", "kira", "sqlx", "cpal", "symphonia", "rayon"],
    },
    Rule { krate: "ensemble-audio", selection: &[], label: "", forbidden: &["tokio", "quinn", "bevy", "sqlx"] },
    Rule {
        krate: "ensemble-net",
        selection: &[],
        label: "",
        forbidden: &["bevy", "sqlx", "argon2", "rcgen", "renet", "tokio/rt-multi-thread"],
    },
    Rule { krate: "ensemble-authority", selection: &[], label: "", forbidden: &["bevy"] },
    // The client reaches the authority only for solo mode and LAN hosting.
    Rule {
        krate: "ensemble-client",
        selection: &["--no-default-features", "--features", "window"],
        label: " without solo mode",
        forbidden: &[
            "ensemble-authority",
            "sqlx-postgres",
            "argon2",
            "rcgen",
            "renet",
            "renetcode",
            "flacenc",
            "if-addrs",
        ],
    },
    // What the browser build pulls in must build and run there.
    Rule {
        krate: "ensemble-client",
        selection: &["--no-default-features", "--features", BROWSER_FEATURES, "--target", WASM],
        label: " in the browser",
        forbidden: &[
            "ensemble-authority",
            "sqlx",
            "quinn",
            "rustls",
            "argon2",
            "rcgen",
            "renet",
            "rustix",
            "tokio/net",
            "tokio/rt-multi-thread",
            "tokio/fs",
        ],
    },
];

pub(crate) fn check() -> Result {
    let mut problems = Vec::new();
    for rule in RULES {
        let mut args = vec!["tree", "--locked", "-p", rule.krate, "-e", "normal", "--prefix", "none"];
        args.extend(["--format", "{p} [{f}]"]);
        args.extend(rule.selection);
        let out =
            Command::new("cargo").args(&args).current_dir(root()).output().map_err(|e| format!("cargo tree: {e}"))?;
        if !out.status.success() {
            return Err(format!("cargo {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)));
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            for bad in rule.forbidden.iter().filter(|bad| has(line, bad)) {
                problems.push(format!("{}{} depends on {bad}: {line}", rule.krate, rule.label));
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

/// Whether a `cargo tree` line (`name vX.Y.Z [features]`) is the crate `bad` names, or has the
/// feature it names (`name/feature`). A family counts too: `bevy` forbids `bevy_render`.
fn has(line: &str, bad: &str) -> bool {
    let name = line.split_whitespace().next().unwrap_or_default();
    let (krate, feature) = bad.split_once('/').map_or((bad, None), |(krate, feature)| (krate, Some(feature)));
    let same = name == krate || name.starts_with(&format!("{krate}-")) || name.starts_with(&format!("{krate}_"));
    match feature {
        None => same,
        Some(feature) => {
            let features = line.rsplit_once('[').map_or("", |(_, rest)| rest.trim_end_matches(']'));
            name == krate && features.split(',').any(|found| found == feature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::has;

    #[test]
    fn a_crate_its_family_and_its_features_are_told_apart() {
        assert!(has("bevy_render v0.19.1 [default]", "bevy"));
        assert!(!has("bevyx v1.0.0 []", "bevy"));
        assert!(has("tokio v1.54.1 [io-util,net,sync]", "tokio/net"));
        assert!(!has("tokio v1.54.1 [io-util,sync]", "tokio/net"));
        assert!(!has("tokio-util v0.7.0 [net]", "tokio/net"));
        assert!(!has("tokio v1.54.1 [io-util,sync]", "quinn"));
    }
}
