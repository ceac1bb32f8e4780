//! Tests of the client core: the replica against a simulated authority, and headless client
//! apps against a real one over QUIC.

// Tests fail loudly: unwrapping is how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod assets;
mod harness;
mod model;
mod playback;
mod replica;
mod store;
mod sync;
