//! A throwaway Postgres, for tests and benchmarks on a machine with Postgres's server binaries
//! (Debian's `postgresql` package) but no server running.
//!
//! [`postgres_url`] starts one server per process on first use: a fresh cluster in a temporary
//! directory, on a private port and socket directory, run as the `postgres` user when we are
//! root (Postgres refuses to run as root). A watchdog shell stops it and deletes its files once
//! this process exits, however it exits. Set `ENSEMBLE_TEST_POSTGRES` to a URL to use an
//! existing server instead. [`postgres_reachable_at`] starts another of the caller's own that
//! also listens on a private network's address (the cluster lab's processes live in network
//! namespaces of their own and cannot reach this machine's loopback).
//!
//! [`Nats`] is a NATS server of a test's own, the same way: on a private port, stopped when
//! dropped (and stopped and started again to test what a NATS outage does).

use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Why the throwaway Postgres is not there.
pub type Error = std::io::Error;

fn failed(what: impl std::fmt::Display) -> Error {
    Error::other(format!("throwaway Postgres: {what}"))
}

/// Where the server binaries are.
pub fn bin_dir() -> Result<PathBuf, Error> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.flatten().map(|entry| entry.path().join("bin")).filter(|bin| bin.join("initdb").exists()).collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().ok_or_else(|| failed("server binaries not found; `cargo xtask setup` installs Debian's postgresql"))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

/// A shell command line running `line` as the server's user.
fn as_server_user(line: String) -> String {
    if is_root() { format!("runuser -u postgres -- {line}") } else { line }
}

fn run(line: &str) -> Result<(), Error> {
    let status = Command::new("sh").args(["-c", line]).stdout(Stdio::null()).status().map_err(failed)?;
    if status.success() { Ok(()) } else { Err(failed(format!("`{line}` failed"))) }
}

/// Starts a server listening on loopback and on `also` (an address of this machine), trusting
/// connections from loopback and from `network` (`10.0.0.0/24`); returns its port.
fn start(also: Option<(IpAddr, &str)>) -> Result<u16, Error> {
    let bin = bin_dir()?;
    let dir = tempfile::Builder::new().prefix("ensemble-pg-").tempdir().map_err(failed)?.keep();
    if is_root() {
        run(&format!("chown postgres:postgres {}", dir.display()))?;
    }
    let data = dir.join("data");
    let tool = |name: &str| bin.join(name).display().to_string();
    run(&as_server_user(format!("{} -A trust -U postgres --no-sync -D {}", tool("initdb"), data.display())))?;
    let mut listen = "127.0.0.1".to_owned();
    if let Some((address, network)) = also {
        listen = format!("{listen},{address}");
        let mut hba = std::fs::OpenOptions::new().append(true).open(data.join("pg_hba.conf")).map_err(failed)?;
        std::io::Write::write_all(&mut hba, format!("host all all {network} trust\n").as_bytes()).map_err(failed)?;
    }
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(failed)?.port();
    let launch = as_server_user(format!(
        "{} -D {} -p {port} -k {} -c listen_addresses={listen} -c max_connections=300",
        tool("postgres"),
        data.display(),
        dir.display()
    ));
    let stop = as_server_user(format!("{} -D {} stop -m fast", tool("pg_ctl"), data.display()));
    let script = format!(
        "{launch} >{log} 2>&1 & pg=$!; while kill -0 {me} 2>/dev/null && kill -0 $pg 2>/dev/null; do sleep 0.2; done; \
         {stop} >/dev/null 2>&1; wait $pg; rm -rf {dir}",
        log = dir.join("log").display(),
        me = std::process::id(),
        dir = dir.display(),
    );
    // Detached from our output, so a test runner's pipe closes when we end; never waited for,
    // since it must outlive this process to clean up after it.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(failed)?;
    wait_ready(&bin, port, &dir.join("log"))?;
    Ok(port)
}

fn url(host: IpAddr, port: u16) -> String {
    format!("postgres://postgres@{}/postgres", std::net::SocketAddr::new(host, port))
}

fn wait_ready(bin: &Path, port: u16, log: &Path) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(failed(format!("did not start; see {}", log.display())));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The URL of this process's Postgres, started on first call.
pub fn postgres_url() -> Result<String, Error> {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    URL.get_or_init(|| {
        std::env::var("ENSEMBLE_TEST_POSTGRES")
            .or_else(|_| start(None).map(|port| url(IpAddr::from([127, 0, 0, 1]), port)).map_err(|e| e.to_string()))
    })
    .clone()
    .map_err(Error::other)
}

/// A fresh server of the caller's own (not the process's shared one) that also listens on
/// `address`, one of this machine's, and trusts connections from `network`: its URL on loopback
/// and its URL at `address`.
pub fn postgres_reachable_at(address: IpAddr, network: &str) -> Result<(String, String), Error> {
    let port = start(Some((address, network)))?;
    Ok((url(IpAddr::from([127, 0, 0, 1]), port), url(address, port)))
}

/// A NATS server of a test's or bench's own (Debian's `nats-server`, which `cargo xtask setup`
/// installs), on a private loopback port (or another address of this machine), stopped when
/// dropped.
pub struct Nats {
    child: Option<Child>,
    host: IpAddr,
    port: u16,
    /// A configuration file, when it has one.
    config: Option<tempfile::NamedTempFile>,
    /// Where clients connect.
    pub url: String,
}

impl Nats {
    /// Starts one and waits until it takes connections.
    pub fn start() -> Result<Nats, Error> {
        Nats::start_with("")
    }

    /// Starts one with `config` (nats-server's configuration syntax: `max_payload: 8192`).
    pub fn start_with(config: &str) -> Result<Nats, Error> {
        Nats::start_at(IpAddr::from([127, 0, 0, 1]), config)
    }

    /// Starts one listening on `host`, an address of this machine, with `config`.
    pub fn start_at(host: IpAddr, config: &str) -> Result<Nats, Error> {
        let port = TcpListener::bind((host, 0))?.local_addr()?.port();
        let config = if config.is_empty() {
            None
        } else {
            let mut file = tempfile::NamedTempFile::new()?;
            std::io::Write::write_all(&mut file, config.as_bytes())?;
            Some(file)
        };
        let url = format!("nats://{}", std::net::SocketAddr::new(host, port));
        let mut nats = Nats { child: None, host, port, config, url };
        nats.resume()?;
        Ok(nats)
    }

    /// Stops the server: its clients lose it until [`Nats::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on its port, and waits until it takes connections.
    pub fn resume(&mut self) -> Result<(), Error> {
        let mut command = Command::new("nats-server");
        if let Some(config) = &self.config {
            command.arg("-c").arg(config.path());
        }
        let child = command
            .args(["-a", &self.host.to_string(), "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| Error::other(format!("nats-server (`cargo xtask setup` installs it): {error}")))?;
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect((self.host, self.port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(Error::other("nats-server did not start within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}
