//! A throwaway Postgres for the test run: started on first use, on a private port and socket
//! directory, as the `postgres` user when the tests run as root (Postgres refuses root), and
//! stopped and deleted by a watchdog once this test process exits. Set
//! `ENSEMBLE_TEST_POSTGRES` to a URL to use an existing server instead.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn bin_dir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.flatten().map(|entry| entry.path().join("bin")).filter(|bin| bin.join("initdb").exists()).collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().expect("Postgres server binaries not found: `cargo xtask setup` installs Debian's postgresql")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

/// `program args…`, as the postgres user when we are root.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn start() -> String {
    let bin = bin_dir();
    let dir = tempfile::Builder::new().prefix("ensemble-pg-").tempdir().unwrap().keep();
    if is_root() {
        let status = Command::new("chown").args(["postgres:postgres"]).arg(&dir).status().unwrap();
        assert!(status.success(), "chown of the Postgres directory failed");
    }
    let data = dir.join("data");
    let init = as_server_user(&bin.join("initdb"))
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
        .arg(&data)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(init.success(), "initdb failed");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // The watchdog shell outlives nothing: when this process is gone it stops the server and
    // removes its files.
    let postgres = format!(
        "{} -D {} -p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
        bin.join("postgres").display(),
        data.display(),
        dir.display()
    );
    let stop = format!("{} -D {} stop -m fast", bin.join("pg_ctl").display(), data.display());
    let (launch, stop) = if is_root() {
        (format!("runuser -u postgres -- {postgres}"), format!("runuser -u postgres -- {stop}"))
    } else {
        (postgres, stop)
    };
    let script = format!(
        "{launch} >{log} 2>&1 & pg=$!; while kill -0 {me} 2>/dev/null && kill -0 $pg 2>/dev/null; do sleep 0.2; done; \
         {stop} >/dev/null 2>&1; wait $pg; rm -rf {dir}",
        log = dir.join("log").display(),
        me = std::process::id(),
        dir = dir.display(),
    );
    // Detached from our output, so a test runner's pipe closes when the tests end. Never
    // waited for: it must outlive this process to clean up after it.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "Postgres did not start; see {}", dir.join("log").display());
        std::thread::sleep(Duration::from_millis(100));
    }
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

/// The URL of the test run's Postgres, started on first call.
pub(crate) fn url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| std::env::var("ENSEMBLE_TEST_POSTGRES").unwrap_or_else(|_| start())).clone()
}
