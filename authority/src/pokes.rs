//! Commits made outside this process reach its subscribers: an operator command (or any tool
//! writing through [`crate::actor::apply_as_authority`]) commits straight to the store and then
//! pokes (`NOTIFY`, see [`Store::poke`]); every process serving from that Postgres listens, and
//! the actor of a poked project it has open catches up from the store and bumps its
//! subscribers. A listener that loses its connection may have missed pokes (Postgres keeps
//! none for a listener that is gone), so when it is back every open project checks the store.
//! SQLite is one process: it has no pokes.

use std::sync::Arc;
use std::time::Duration;

use ensemble_protocol::{ProjectId, Seq};
use sqlx::postgres::PgListener;

use crate::actor::Projects;
use crate::store::{PokeSource, Store};

/// The channel pokes travel on.
pub const CHANNEL: &str = "ensemble_commits";

/// A poke's text: the project and the seq of its new commit.
pub fn payload(project: ProjectId, seq: Seq) -> String {
    format!("{} {}", project.0, seq.0)
}

/// The project and seq in a poke's text, if it is one.
pub fn parse(payload: &str) -> Option<(ProjectId, Seq)> {
    let (project, seq) = payload.split_once(' ')?;
    Some((ProjectId(project.parse().ok()?), Seq(seq.parse().ok()?)))
}

/// Listens for pokes until the task is dropped, and has the open projects catch up.
pub(crate) async fn listen<S: Store>(source: PokeSource, projects: Arc<Projects<S>>) {
    loop {
        let mut listener = match PgListener::connect_with(&source.0).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for outside commits; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(CHANNEL).await {
            tracing::warn!(%error, "cannot listen for outside commits; trying again");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Whatever was poked while nobody listened.
        projects.poke_all().await;
        loop {
            match listener.try_recv().await {
                Ok(Some(poke)) => match parse(poke.payload()) {
                    Some((project, seq)) => projects.poke(project, Some(seq)).await,
                    None => tracing::warn!(payload = poke.payload(), "a poke that is not one"),
                },
                // The connection was lost and is made again: pokes may have been missed.
                Ok(None) => projects.poke_all().await,
                Err(error) => {
                    tracing::warn!(%error, "lost the listener for outside commits");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poke_reads_back_as_written() {
        let project = ProjectId::new_v7();
        assert_eq!(parse(&payload(project, Seq(42))), Some((project, Seq(42))));
        assert_eq!(parse("nonsense"), None);
        assert_eq!(parse("0190a0b0-0000-7000-8000-000000000000 x"), None);
    }
}
