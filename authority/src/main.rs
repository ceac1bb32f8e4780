//! `ensemble-authority`: serve projects over QUIC, and manage users and projects.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use ensemble_authority::admin;
use ensemble_authority::demo::{self, DemoSize};
use ensemble_authority::files::{FileOptions, Library};
use ensemble_authority::jobs::export_project;
use ensemble_authority::leases::{LeaseOptions, default_node_id};
use ensemble_authority::server::{JamDoor, Server, ServerOptions};
use ensemble_authority::store::{self, AnyStore, Store};
use ensemble_authority::tls::{Certificates, Identity};
use ensemble_authority::web::{WebOptions, WebServer};
use ensemble_protocol::jam::JoinCode;
use ensemble_protocol::wire::{ExportFormat, ExportRequest};
use ensemble_protocol::{ProjectId, Role};

/// Ensemble's authority: orders, validates, persists and broadcasts every edit.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB. Default: an SQLite file in the
    /// data directory.
    #[arg(long, env = "ENSEMBLE_DATABASE_URL", global = true)]
    database: Option<String>,
    /// Where the default database and the self-signed certificate live.
    #[arg(long, env = "ENSEMBLE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// How the log (on standard error) is written: lines for people, or one JSON object per
    /// event with its spans (a connection's `conn`, a project's `project`) for a log collector.
    #[arg(long, value_enum, default_value = "text", env = "ENSEMBLE_LOG_FORMAT", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// See [`Cli::log_format`].
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve projects over QUIC.
    Serve {
        /// UDP address to listen on.
        #[arg(long, default_value = "0.0.0.0:4433")]
        listen: SocketAddr,
        /// Let anyone join with a display name as an editor (solo and LAN use).
        #[arg(long)]
        open: bool,
        /// With --open: people on other machines must give this join code (a LAN jam's);
        /// this machine joins without it.
        #[arg(long, requires = "open")]
        join_code: Option<String>,
        /// A PEM certificate chain to serve instead of the self-signed one.
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
        /// The PEM private key for --cert.
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
        /// The largest audio file one upload may be, in MiB.
        #[arg(long, default_value_t = 2048)]
        max_upload_mib: u64,
        /// The audio one user may store, in MiB.
        #[arg(long, default_value_t = 51_200)]
        quota_mib: u64,
        /// Serve the web app (the browser build's folder) over HTTP, with the page's
        /// configuration at /ensemble.json.
        #[arg(long)]
        web: Option<PathBuf>,
        /// Where --web listens. Browsers open WebTransport only from a secure context, which
        /// plain HTTP is on localhost and not elsewhere.
        #[arg(long, default_value = "127.0.0.1:8080", requires = "web")]
        web_listen: SocketAddr,
        /// This process's name among the processes serving from one Postgres (each project is
        /// served by one of them at a time, under a lease). It must be unique among them: a
        /// stopping process releases every lease held under its name. Default: the host, the
        /// process id and a random suffix.
        #[arg(long, env = "ENSEMBLE_NODE_ID")]
        node_id: Option<String>,
        /// How long a project's lease lasts unless renewed, in milliseconds: after a crash,
        /// another process takes the crashed one's projects within this time.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(300..))]
        lease_ttl_ms: u64,
        /// A NATS server (nats://HOST:PORT) through which the processes sharing a Postgres
        /// forward requests to the one serving a project and relay its bumps, so any process
        /// serves any client.
        #[arg(long, env = "ENSEMBLE_NATS_URL")]
        nats: Option<String>,
    },
    /// Render a project to a WAV file, as the export job does.
    Export {
        /// The project's id.
        #[arg(long)]
        project: ProjectId,
        /// The WAV file to write (stems: `NAME-0.wav`, `NAME-1.wav`, … in track order).
        #[arg(long)]
        out: PathBuf,
        /// One file per track instead of the mix.
        #[arg(long)]
        stems: bool,
        /// 16, 24 or 32 (float).
        #[arg(long, default_value_t = 24)]
        bits: u32,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage projects.
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        /// The login and display name.
        name: String,
    },
    /// Change a user's password; the new one is read from standard input.
    Passwd {
        /// The user.
        name: String,
    },
}

#[derive(Subcommand)]
enum ProjectCommand {
    /// Create a project owned by a user.
    Create {
        /// The project's name.
        name: String,
        /// The owner's user name.
        #[arg(long)]
        owner: String,
        /// Fill it with the demo song (three tracks of synthesised loops), uploaded as the owner.
        #[arg(long)]
        demo: bool,
    },
    /// Give a user a role in a project (adding them as a member if needed).
    Grant {
        /// The project's id.
        project: ProjectId,
        /// The user's name.
        user: String,
        /// viewer, editor or owner.
        role: String,
    },
    /// List projects.
    List,
}

fn data_dir(cli: &Cli) -> anyhow::Result<PathBuf> {
    match &cli.data_dir {
        Some(dir) => Ok(dir.clone()),
        None => dirs::data_dir().map(|dir| dir.join("ensemble")).context("no data directory; pass --data-dir"),
    }
}

fn read_password() -> anyhow::Result<String> {
    eprint!("password: ");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn parse_role(role: &str) -> anyhow::Result<Role> {
    Ok(match role {
        "viewer" => Role::Viewer,
        "editor" => Role::Editor,
        "owner" => Role::Owner,
        other => bail!("unknown role {other:?}: use viewer, editor or owner"),
    })
}

async fn open_store(cli: &Cli) -> anyhow::Result<AnyStore> {
    let url = match &cli.database {
        Some(url) => url.clone(),
        None => {
            let dir = data_dir(cli)?;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            format!("sqlite://{}", dir.join("authority.sqlite").display())
        }
    };
    store::open(&url).await.with_context(|| format!("opening the database {url}"))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let log = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => log.init(),
        LogFormat::Json => log.json().with_current_span(true).with_span_list(true).init(),
    }
    let store = open_store(&cli).await?;
    match &cli.command {
        Command::Serve {
            listen,
            open,
            join_code,
            cert,
            key,
            max_upload_mib,
            quota_mib,
            web,
            web_listen,
            node_id,
            lease_ttl_ms,
            nats,
        } => {
            let door = match join_code {
                Some(typed) => {
                    let door = JamDoor::new();
                    door.set(Some(JoinCode::parse(typed).context("--join-code")?));
                    Some(door)
                }
                None => None,
            };
            let certificates = match (cert, key) {
                (Some(cert), Some(key)) => Certificates::fixed(Identity::from_pem_files(cert, key)?)?,
                _ => Certificates::self_signed_in(&data_dir(&cli)?.join("certificates"))?,
            };
            let files = FileOptions {
                max_upload: max_upload_mib << 20,
                quota: quota_mib << 20,
                ..FileOptions::in_dir(data_dir(&cli)?.join("files"))
            };
            let leases = LeaseOptions {
                node: node_id.clone().unwrap_or_else(default_node_id),
                ttl: Duration::from_millis(*lease_ttl_ms),
            };
            let node = leases.node.clone();
            let options = ServerOptions {
                listen: *listen,
                open: *open,
                files: Some(files),
                door,
                leases,
                nats: nats.clone(),
                ..ServerOptions::default()
            };
            let server = Server::start(store, certificates, options).await?;
            println!("ensemble-authority listening on {}", server.local_addr()?);
            println!("node {node}");
            let hashes: Vec<String> = server.certificate_hashes().iter().map(ToString::to_string).collect();
            // Clients pin both: the second takes over at the next rotation (see `tls`).
            println!("certificate hashes (SHA-256, current,next): {}", hashes.join(","));
            let web = match web {
                Some(dir) => {
                    let web = WebServer::start(WebOptions { listen: *web_listen, dir: dir.clone() }, &server).await?;
                    println!("web app on http://{}/", web.local_addr());
                    Some(web)
                }
                None => None,
            };
            match (open, join_code) {
                (true, Some(_)) => {
                    println!("open: anyone with the join code may join with a display name as an editor")
                }
                (true, None) => println!("open: anyone may join with a display name as an editor"),
                _ => {}
            }
            stopped().await?;
            tracing::info!("stopping: closing connections and releasing the project leases");
            server.shutdown().await;
            if let Some(web) = web {
                web.stop();
            }
        }
        Command::Export { project, out, stems, bits } => {
            let format = match bits {
                16 => ExportFormat::Int16,
                24 => ExportFormat::Int24,
                32 => ExportFormat::Float32,
                other => bail!("--bits {other}: use 16, 24 or 32"),
            };
            let loaded = store.load_project(*project).await?.with_context(|| format!("no project {project}"))?;
            let library = Library::open(&data_dir(&cli)?.join("files"))?;
            let request = ExportRequest { range: None, stems: *stems, format };
            let (out, stems) = (out.clone(), *stems);
            let name = move |index: u32| match stems {
                false => out.clone(),
                true => out.with_file_name(format!(
                    "{}-{index}.wav",
                    out.file_stem().map_or("stem".into(), |stem| stem.to_string_lossy())
                )),
            };
            let written =
                tokio::task::spawn_blocking(move || export_project(&loaded.state, &library, request, name)).await??;
            println!("wrote {written} file(s)");
        }
        Command::User { command: UserCommand::Add { name } } => {
            let user = admin::add_user(&store, name, &read_password()?).await?;
            println!("added user {} ({})", user.name, user.id);
        }
        Command::User { command: UserCommand::Passwd { name } } => {
            admin::set_password(&store, name, &read_password()?).await?;
            println!("password changed for {name}");
        }
        Command::Project { command: ProjectCommand::Create { name, owner, demo } } => {
            let id = admin::create_project(&store, name, owner).await?;
            if *demo {
                // Seeded through an authority of its own, in-process: the files are stored, and
                // their peaks queued, as for any upload (`serve` runs the jobs).
                let files = FileOptions { workers: 0, ..FileOptions::in_dir(data_dir(&cli)?.join("files")) };
                let listen = SocketAddr::from(([127, 0, 0, 1], 0));
                let options = ServerOptions { listen, files: Some(files), ..ServerOptions::default() };
                let server = Server::start(store.clone(), Certificates::self_signed()?, options).await?;
                let seeded = demo::seed_as_owner(&server, &store, id, owner, DemoSize::Song).await;
                server.shutdown().await;
                seeded.context("seeding the demo song")?;
            }
            println!("{id}");
        }
        Command::Project { command: ProjectCommand::Grant { project, user, role } } => {
            admin::grant(&store, *project, user, parse_role(role)?).await?;
            println!("{user} is now {role} of {project}");
        }
        Command::Project { command: ProjectCommand::List } => {
            for project in admin::list_projects(&store).await? {
                println!("{}\t{}\tseq {}", project.id, project.name, project.seq.0);
            }
        }
    }
    Ok(())
}

/// Waits for Ctrl+C or (on Unix) SIGTERM, which is how a service manager stops a process.
async fn stopped() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
