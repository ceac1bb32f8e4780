//! Ensemble's client: the Bevy app that holds a project as ECS entities and draws the DAW.
//!
//! This crate will own the ECS replica, sync, local store, undo, the bevy_egui window, playback
//! glue and LAN jam sessions; see the "Client core" and "The DAW window" issues and DESIGN.md.
//! Bevy stays inside this crate so the other crates build without it.
//!
//! What exists today is the engine-independent heart of sync: [`replica::Replica`], the
//! confirmed state with pending edits laid over it, which the Bevy sync plugin will wrap.

pub mod replica;
