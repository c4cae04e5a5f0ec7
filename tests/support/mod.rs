//! What every integration test shares: where the binaries are, the clock, free ports, and the
//! three harnesses — `cli` (the `cs-invoker-pool run` and `sandbox-child run` command lines),
//! `redis_server` (a real `redis-server` on a free port) and `serve` (the daemon against the codeQ
//! emulator and redis). A test includes it with `#[macro_use] mod support;`; each test crate
//! uses only part of it, hence `dead_code` is allowed.

#![allow(dead_code, unused_macros, unused_imports)]

use cs_invoker_pool::host::HostScope;
use cs_invoker_pool::pool::Job;
use sandbox_proto::bundle::Bundle;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A started [`redis_server::RedisServer`], or return from the test (skip) when `redis-server`
/// is missing and not required (`CS_REQUIRE_REDIS=1` makes a missing server fail instead).
macro_rules! server {
    () => {
        match $crate::support::redis_server::RedisServer::start() {
            Some(s) => s,
            None => return,
        }
    };
}

pub mod cli;
pub mod redis_server;
pub mod serve;

/// The `cs-invoker-pool` binary under test.
pub fn invoker_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cs-invoker-pool"))
}

/// `sandbox-child`, which cargo builds into the same directory as the supervisor.
pub fn child_bin() -> PathBuf {
    let bin = invoker_bin()
        .parent()
        .expect("the binary has a directory")
        .join("sandbox-child");
    assert!(
        bin.is_file(),
        "{} is missing: build the workspace first (`cargo build --workspace`, which `make test` does)",
        bin.display()
    );
    bin
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as u64
}

/// A TCP port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A pool job for `bundle` run as tenant `tenant` (namespace `default`, function `f`, version
/// 1, an `api` trigger), with `event` as its JSON text, due at `deadline`.
pub fn pool_job(bundle: &Arc<Bundle>, tenant: &str, event: &str, deadline: Instant) -> Job {
    Job {
        bundle: Arc::clone(bundle),
        scope: HostScope {
            tenant: tenant.into(),
            namespace: "default".into(),
            function: "f".into(),
            version: 1,
            activation_id: uuid::Uuid::new_v4().to_string(),
            capabilities: Arc::new(bundle.manifest.capabilities.clone()),
            deadline,
            trigger: "api".into(),
            heartbeat: None,
            policy: Default::default(),
            calls: Default::default(),
            context: Default::default(),
        },
        event_json: event.into(),
        ctx_json: serde_json::json!({
            "activation_id": "a", "request_id": "r", "deadline_ms": 0, "tenant": tenant,
            "namespace": "default", "function": "f", "version": 1,
            "ref": {"alias": null, "version": 1}, "trigger": {"type": "api"},
            "principal": {"sub": "t", "roles": []}
        })
        .to_string(),
        deadline,
        log_sink: None,
        env: Default::default(),
    }
}
