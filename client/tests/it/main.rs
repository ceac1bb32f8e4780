//! Tests of the client's sync logic against a simulated authority.

// Tests fail loudly: unwrapping is how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replica;
