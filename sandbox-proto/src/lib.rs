//! `sandbox-proto`: what the cs-invoker-pool supervisor and its `sandbox-child` share, and
//! nothing else — no unsafe code, no QuickJS, no seccomp (`#![forbid(unsafe_code)]`), so that
//! the supervisor, the benches and the VM test driver link none of the child's machinery.
//!
//! - [`protocol`]: the length-prefixed bincode frames spoken over the child's stdin/stdout,
//!   with per-direction size limits.
//! - [`messages`]: the contract's result shapes (docs/contract.md §3) and the truncation rules
//!   both sides apply.
//! - [`manifest`] and [`bundle`]: reading and validating a function bundle (tar, directory or a
//!   lone `.js` file) into files the engine can load.
//! - [`settings`]: how a child confines itself (identity, rlimits, steps), sent in `Init`.

#![forbid(unsafe_code)]

pub mod bundle;
pub mod manifest;
pub mod messages;
pub mod protocol;
pub mod settings;
pub mod text;
