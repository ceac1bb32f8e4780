//! `--log-format json`: every line the authority logs is one JSON object, and what a
//! connection or a project does carries its span (who is connected, which project).

use std::process::Stdio;

use ensemble_authority::store::{AnyStore, SqliteStore};
use ensemble_net::remote::Remote;
use ensemble_net::tls::Trust;
use ensemble_protocol::*;
use tokio::io::AsyncReadExt;

use crate::harness::{self, PASSWORD, add_track, committed};

#[tokio::test]
async fn json_logs_carry_the_connection_and_the_project_they_come_from() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("authority.sqlite").display());
    let cast = harness::cast(&AnyStore::Sqlite(SqliteStore::open(&url).await.unwrap())).await;
    let (mut child, addr, hashes) = harness::serve_binary(&url, dir.path(), |command| {
        command.args(["--log-format", "json"]).env("RUST_LOG", "ensemble_authority=debug").stderr(Stdio::piped());
    })
    .await;
    let mut remote = Remote::connect(addr, "localhost", Trust::Pinned(hashes)).await.unwrap();
    remote.login(&cast.editor, PASSWORD).await.unwrap();
    committed(remote.write(&add_track(cast.project, TrackId::new_v7(), "Bass")).await.unwrap());
    remote.close().await;
    child.kill().await.unwrap();
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).await.unwrap();

    let events: Vec<serde_json::Value> =
        log.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"))).collect();
    let spans_of = |event: &serde_json::Value| event["spans"].as_array().cloned().unwrap_or_default();
    let logged_in = events.iter().find(|event| event["fields"]["message"] == "logged in").expect("a login logged");
    let conn = spans_of(logged_in).into_iter().find(|span| span["name"] == "conn").expect("in its connection's span");
    assert_eq!(conn["user"], cast.editor.as_str());
    let committed = events.iter().find(|event| event["fields"]["message"] == "committed").expect("a commit logged");
    let project =
        spans_of(committed).into_iter().find(|span| span["name"] == "project").expect("in its project's span");
    assert_eq!(project["id"], cast.project.to_string());
    assert!(committed["level"] == "DEBUG" && committed["timestamp"].is_string(), "{committed}");
}
