//! The authority's tests: the store suite on both stores, and the server over real QUIC on
//! loopback. One binary keeps link times down.

// Tests fail loudly: unwrapping is how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod browser;
mod certificates;
mod cluster;
mod crash;
mod disk_full;
mod files;
mod harness;
mod in_process;
mod leases;
mod logs;
mod outage;
mod pokes;
mod quic;
mod store_suite;
mod web;
mod webtransport;
