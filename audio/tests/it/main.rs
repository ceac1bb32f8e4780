//! Tests of the audio engine through its public API, with generated signals.

// Tests fail loudly: unwrapping is how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alloc;
mod automation;
mod decode;
mod effects;
mod engine;
mod jam;
mod peaks;
mod record;
mod render;
mod signal;
mod song;
mod synth;
mod wave;
