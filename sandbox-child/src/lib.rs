//! `sandbox-child`: the process that runs one tenant's JavaScript for the cs-invoker-pool
//! supervisor. What it shares with the supervisor (the frame protocol, result shapes, manifests,
//! bundles, the confinement settings) is the `sandbox-proto` crate.
//!
//! - [`confine`]: everything the child does to itself before it reads an untrusted byte
//!   (namespaces, empty root, identity, capabilities, rlimits, seccomp).
//! - [`engine`]: the QuickJS runtime (`cs-js`, docs/contract.md §6).
//! - [`pipe`]: the child's side of the protocol, driving the engine.
//! - [`cli`]: the `sandbox-child` command line (clap), shared by the binary and the generated
//!   man page and shell completions.
//!
//! This crate knows nothing of the supervisor, codeQ or KVRocks.

pub mod cli;
pub mod confine;
pub mod engine;
pub mod pipe;
