//! `sandbox-child`: the process that runs one tenant's JavaScript for the cs-invoker-pool
//! supervisor, and the pieces both sides share.
//!
//! - [`protocol`]: the length-prefixed bincode frames spoken over the child's stdin/stdout.
//! - [`messages`]: the SPEC §3 result shapes and the truncation rules both sides apply.
//! - [`manifest`] and [`bundle`]: reading and validating a function bundle (tar, directory or a
//!   lone `.js` file) into files the engine can load.
//! - [`engine`]: the QuickJS runtime (`cs-js`, SPEC §6).
//! - [`pipe`]: the child's side of the protocol, driving the engine.
//! - [`cli`]: the `sandbox-child` command line (clap), shared by the binary and the generated
//!   man page and shell completions.
//!
//! This crate knows nothing of the supervisor, codeQ or KVRocks.

pub mod bundle;
pub mod cli;
pub mod confine;
pub mod engine;
pub mod manifest;
pub mod messages;
pub mod pipe;
pub mod protocol;
