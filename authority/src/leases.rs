//! Which process serves each project, when several processes serve from one Postgres.
//!
//! A process (a node, named by [`LeaseOptions::node`]) opens a project only after acquiring
//! its lease ([`crate::store::Lease`]); another process asked for the same project while the
//! lease is held answers that the project is served elsewhere for now. [`keep`] renews every
//! lease the process holds in one statement each third of the lease's time to live; a lease
//! it no longer holds (it paused or lost the database for longer than that, and another
//! process took the project) stops the project's actor, which moves its clients on. Every
//! commit names its lease's epoch, so a process that lost a lease cannot commit under it even
//! before it notices. On a clean shutdown the process releases its leases at once, so another
//! takes its projects without waiting for them to expire; after a crash they expire within the
//! time to live.
//!
//! The embedded SQLite store has one process and no leases: it grants every acquisition.

use std::sync::Arc;
use std::time::Duration;

use crate::actor::Projects;
use crate::store::Store;

/// How this process takes part in serving projects from a shared database.
#[derive(Clone, Debug)]
pub struct LeaseOptions {
    /// This process's name in the lease table (`serve --node-id`); unique among the processes
    /// sharing a database.
    pub node: String,
    /// How long a lease lasts unless renewed: after a crash, the process's projects wait this
    /// long for another process to take them.
    pub ttl: Duration,
}

/// The lease's default time to live.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

impl Default for LeaseOptions {
    fn default() -> Self {
        LeaseOptions { node: default_node_id(), ttl: DEFAULT_TTL }
    }
}

/// A node id unique to this run of this process: the host's name, the process id and a random
/// suffix (a restarted process is a new node, whose old leases simply expire).
pub fn default_node_id() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|host| !host.is_empty()).unwrap_or_else(|| "authority".into());
    // A v7 id ends in random bits.
    let random = uuid::Uuid::now_v7().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[24..])
}

/// Renews the leases of `projects`' open projects every third of their time to live, until
/// the task is dropped; stops the actors of those it lost.
pub async fn keep<S: Store>(projects: Arc<Projects<S>>) {
    let every = projects.leases().ttl / 3;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        projects.renew_leases().await;
    }
}
