//! Ensemble's authority: the server that orders, validates, persists and broadcasts every edit.
//!
//! This crate will own the QUIC endpoint, sessions, project actors and the SQLite and Postgres
//! stores; see the "Authority server" issue and DESIGN.md. It runs the same
//! [`ensemble_protocol::ProjectState::apply`] as the client. Nothing is implemented yet, so it
//! exports nothing.
