//! An authority for the browser's tests: a real `ensemble-authority serve --open` on loopback
//! with a fresh data folder and one project (and the web app, for the smoke check), stopped
//! when dropped. The tests learn where it is
//! from `ENSEMBLE_TEST_AUTHORITY` (`URL HASH,HASH PROJECT`), compiled into them.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::{Result, cargo, clean, root, target_dir};

/// A running authority and how the tests reach it.
pub(crate) struct WebAuthority {
    child: Child,
    /// `URL HASH,HASH PROJECT`.
    pub(crate) spec: String,
    /// The project it holds.
    pub(crate) project: String,
    /// Its QUIC (and WebTransport) address.
    pub(crate) quic: String,
    /// Its certificate hashes, "current,next".
    pub(crate) hashes: String,
    /// Where it serves the web app, when asked to.
    pub(crate) web: Option<String>,
    /// Its data folder, removed when it stops (a throwaway one).
    throwaway: Option<PathBuf>,
}

impl WebAuthority {
    /// Waits until the authority stops (interrupted, for one serving a person).
    pub(crate) fn wait(mut self) -> Result {
        self.child.wait().map(drop).map_err(|e| format!("ensemble-authority: {e}"))
    }
}

impl Drop for WebAuthority {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.throwaway {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn authority(dir: &std::path::Path) -> Command {
    let line = command_line(dir);
    let mut command = clean(Command::new(&line[0]));
    command.args(&line[1..]).current_dir(root());
    command
}

/// Runs an operator command, feeding `input` on stdin; returns what it printed.
fn operator(dir: &std::path::Path, args: &[&str], input: &str) -> Result<String> {
    let mut child = authority(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ensemble-authority {}: {e}", args.join(" ")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("ensemble-authority {} failed", args.join(" ")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Starts a throwaway one, on free ports (serving the web app in `web`, when given).
pub(crate) fn start(web: Option<&std::path::Path>) -> Result<WebAuthority> {
    let dir = std::env::temp_dir().join(format!("ensemble-web-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut authority = start_in(&dir, web.map(|web| (web, "127.0.0.1:0")))?;
    authority.throwaway = Some(dir);
    Ok(authority)
}

/// Makes the data in `dir` when new: an owner and a first project (the demo song when `demo`).
/// Returns the first project.
pub(crate) fn prepare(dir: &std::path::Path, demo: bool) -> Result<String> {
    cargo(&["build", "--locked", "-p", "ensemble-authority"])?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let first = dir.join("first-project");
    if let Ok(project) = std::fs::read_to_string(&first) {
        return Ok(project.trim().to_owned());
    }
    operator(dir, &["user", "add", "owner"], "web test password\n")?;
    let create = ["project", "create", "Web Song", "--owner", "owner"];
    let project = operator(dir, &[&create[..], if demo { &["--demo"] } else { &[] }].concat(), "")?;
    std::fs::write(&first, &project).map_err(|e| e.to_string())?;
    Ok(project)
}

/// The authority's command line up to its command, on the data in `dir`.
pub(crate) fn command_line(dir: &std::path::Path) -> Vec<String> {
    let binary = target_dir().join("debug").join("ensemble-authority");
    vec![binary.to_string_lossy().into_owned(), "--data-dir".into(), dir.to_string_lossy().into_owned()]
}

/// Starts one on the data in `dir` (made, with a first project, when new), serving the web app
/// `(folder, address)` when given; the first project of an authority serving the app is the demo
/// song, that of one for the browser's unit tests is empty.
pub(crate) fn start_in(dir: &std::path::Path, web: Option<(&std::path::Path, &str)>) -> Result<WebAuthority> {
    let project = prepare(dir, web.is_some())?;
    let mut command = authority(dir);
    command.args(["serve", "--open", "--listen", "127.0.0.1:0"]);
    if let Some((folder, listen)) = web {
        command.arg("--web").arg(folder).args(["--web-listen", listen]);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("ensemble-authority serve: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    // Read its lines on a thread that keeps draining them: a closed pipe would kill it.
    let (said, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(std::result::Result::ok) {
            let _ = said.send(line);
        }
    });
    let web = web.map(|(folder, _)| folder);
    let (mut port, mut hashes, mut site) = (None, None, None);
    while port.is_none() || hashes.is_none() || (web.is_some() && site.is_none()) {
        let Ok(line) = lines.recv_timeout(std::time::Duration::from_secs(30)) else { break };
        if let Some(addr) = line.strip_prefix("ensemble-authority listening on ") {
            port = addr.rsplit(':').next().map(str::to_owned);
        } else if let Some(found) = line.strip_prefix("certificate hashes (SHA-256, current,next): ") {
            hashes = Some(found.to_owned());
        } else if let Some(url) = line.strip_prefix("web app on ") {
            site = Some(url.to_owned());
        }
    }
    let (Some(port), Some(hashes)) = (port, hashes) else {
        let _ = child.kill();
        return Err("the authority did not say where it listens".into());
    };
    let spec = format!("https://127.0.0.1:{port}/ensemble {hashes} {project}");
    eprintln!("web-test: authority at {spec}");
    let quic = format!("127.0.0.1:{port}");
    Ok(WebAuthority { child, spec, project, quic, hashes, web: site, throwaway: None })
}
