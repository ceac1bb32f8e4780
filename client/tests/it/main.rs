//! Tests of the client core: the replica against a simulated authority, and headless client
//! apps against a real one over QUIC.

// Tests fail loudly: unwrapping is how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod assets;
mod cluster;
mod edits;
mod harness;
mod import;
mod jam;
mod midi;
mod model;
mod playback;
mod presence;
mod record;
mod replica;
mod store;
mod sync;
