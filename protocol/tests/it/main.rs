//! Tests of the protocol through its public API. One binary for all of them keeps links short.

// Tests fail loudly: unwrapping is how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod apply;
mod effects;
mod fixture;
mod frame;
mod jam;
mod notes;
mod permission;
mod props;
mod time;
