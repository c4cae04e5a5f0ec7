//! The `cs-invoker-pool serve` harness shared by the daemon tests: the daemon binary as a child
//! process against the codeQ emulator and a real `redis-server`, and functions published the
//! way the Sous control plane does it.

use super::redis_server::RedisServer;
pub use super::{free_port, now_ms};
use codeq_emulator::{Emulator, EmulatorConfig, TaskView};
use sandbox_proto::bundle;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::Commands;

pub const T: &str = "t_acme01";
pub const NS: &str = "payments";

/// Publishes `function` version 1 with alias `prod`, the way the Sous control plane does.
pub fn publish(raw: &mut redis::Connection, function: &str, source: &str, timeout_ms: u64) {
    publish_as(
        raw,
        T,
        NS,
        function,
        source,
        &manifest(timeout_ms, 8, json!({})),
    );
}

/// A `cs.function.script.v1` manifest.
pub fn manifest(timeout_ms: u64, max_concurrency: u32, capabilities: Value) -> Value {
    json!({
        "schema": "cs.function.script.v1", "runtime": "cs-js", "entry": "function.js",
        "handler": "default",
        "limits": {"timeoutMs": timeout_ms, "memoryMb": 64, "maxConcurrency": max_concurrency},
        "capabilities": capabilities,
    })
}

/// Publishes version 1 of `tenant`/`namespace`/`function` with alias `prod`.
pub fn publish_as(
    raw: &mut redis::Connection,
    tenant: &str,
    namespace: &str,
    function: &str,
    source: &str,
    manifest: &Value,
) {
    publish_version(
        raw,
        tenant,
        namespace,
        function,
        1,
        source,
        manifest,
        &json!({}),
    );
}

/// Publishes `version` of `tenant`/`namespace`/`function` with this version meta `config`
/// (Sous `VersionConfig`: `env`, ...); the alias `prod` points at it.
#[allow(clippy::too_many_arguments)]
pub fn publish_version(
    raw: &mut redis::Connection,
    tenant: &str,
    namespace: &str,
    function: &str,
    version: u64,
    source: &str,
    manifest: &Value,
    config: &Value,
) {
    let mut files = BTreeMap::new();
    files.insert("function.js".to_string(), source.as_bytes().to_vec());
    files.insert(
        "manifest.json".to_string(),
        manifest.to_string().into_bytes(),
    );
    let tar = bundle::pack(&files).unwrap();
    let sha = bundle::sha256_hex(&tar);
    let p = format!("cs:fn:{tenant}:{namespace}:{function}");
    let _: () = raw.set(format!("{p}:ver:{version}:bundle"), &tar).unwrap();
    let _: () = raw
        .set(
            format!("{p}:ver:{version}:meta"),
            json!({"version": version, "sha256": sha, "config": config, "published_at_ms": 1u64})
                .to_string(),
        )
        .unwrap();
    let _: () = raw
        .set(
            format!("{p}:alias:prod"),
            json!({"alias": "prod", "version": version, "updated_at_ms": 1u64}).to_string(),
        )
        .unwrap();
}

pub fn publish_all(raw: &mut redis::Connection) {
    publish(
        raw,
        "hello",
        "export default (e) => ({ statusCode: 200, body: 'hi ' + e.name });",
        5000,
    );
    publish(
        raw,
        "throws",
        "export default () => { throw new RangeError('boom'); };",
        5000,
    );
    publish(raw, "spins", "export default () => { for (;;) {} };", 300);
    publish(
        raw,
        "slow",
        "export default (e) => { const end = Date.now() + e.ms; while (Date.now() < end) {} return 'slept ' + e.ms; };",
        20_000,
    );
}

pub fn invocation(function: &str, event: Value) -> (String, Vec<u8>) {
    invocation_as(T, NS, function, event)
}

/// An InvocationRequest envelope for `tenant`/`namespace`/`function` (alias `prod`).
pub fn invocation_as(
    tenant: &str,
    namespace: &str,
    function: &str,
    event: Value,
) -> (String, Vec<u8>) {
    invocation_full(
        tenant,
        namespace,
        function,
        json!({"alias": "prod"}),
        "api",
        event,
    )
}

/// An invocation of `function` (tenant [`T`], namespace [`NS`]) at `reference`
/// (`{"alias": ..}` or `{"version": ..}`) by a `trigger` of that type.
pub fn invocation_with(
    function: &str,
    reference: Value,
    trigger: &str,
    event: Value,
) -> (String, Vec<u8>) {
    invocation_full(T, NS, function, reference, trigger, event)
}

fn invocation_full(
    tenant: &str,
    namespace: &str,
    function: &str,
    reference: Value,
    trigger: &str,
    event: Value,
) -> (String, Vec<u8>) {
    let aid = uuid::Uuid::new_v4().to_string();
    let mut r = reference;
    r["function"] = json!(function);
    let body = json!({
        "activation_id": aid, "request_id": format!("req-{}", &aid[..8]), "tenant": tenant,
        "namespace": namespace, "ref": r,
        "trigger": {"type": trigger, "source": {}}, "principal": {"sub": "u1", "roles": []},
        "deadline_ms": now_ms() + 120_000, "event": event,
    });
    let env = json!({"schema": "cs.envelope.v1", "id": format!("msg_{aid}"), "ts_ms": now_ms(),
                     "tenant": tenant, "type": "InvocationRequest", "body": body});
    (aid, env.to_string().into_bytes())
}

pub fn emulator_config() -> EmulatorConfig {
    let mut c = EmulatorConfig::fast();
    // Acks come back out of order.
    c.handler_jitter = Duration::from_millis(5);
    c
}

/// What [`Daemon::start_opts`] can change in the harness's configuration.
#[derive(Clone, Copy)]
pub struct Opts<'a> {
    pub worker_id: &'a str,
    /// YAML lines appended under `cs_invoker_pool` (indented two spaces).
    pub extra: &'a str,
    pub token: &'a str,
    pub envs: &'a [(&'a str, &'a str)],
    /// YAML lines appended under `cs_invoker_pool.codeq` (indented four spaces).
    pub codeq_extra: &'a str,
    /// `cs_invoker_pool.codeq.lease_seconds` (2 by default: heartbeats every ~0.7 s).
    pub lease_seconds: u32,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            worker_id: "w-test",
            extra: "",
            token: "worker-token",
            envs: &[],
            codeq_extra: "",
            lease_seconds: 2,
        }
    }
}

pub struct Daemon {
    pub child: Option<Child>,
    pub http: String,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    pub fn start(emu: &Emulator, redis: &RedisServer, worker_id: &str, extra: &str) -> Daemon {
        Self::start_with(emu, redis, worker_id, extra, "worker-token", &[])
    }

    /// `envs` are set for the daemon over the defaults (e.g. `CS_REQUIRE_SANDBOX`).
    pub fn start_with(
        emu: &Emulator,
        redis: &RedisServer,
        worker_id: &str,
        extra: &str,
        token: &str,
        envs: &[(&str, &str)],
    ) -> Daemon {
        Self::start_opts(
            emu,
            redis,
            &Opts {
                worker_id,
                extra,
                token,
                envs,
                ..Opts::default()
            },
        )
    }

    /// The daemon with every option of the harness.
    pub fn start_opts(emu: &Emulator, redis: &RedisServer, o: &Opts<'_>) -> Daemon {
        let Opts {
            worker_id,
            extra,
            token,
            envs,
            codeq_extra,
            lease_seconds,
        } = *o;
        let dir = tempfile::tempdir().unwrap();
        let http = format!("127.0.0.1:{}", free_port());
        let cfg = format!(
            r#"
plugins:
  persistence:
    kvrocks:
      addr: "{redis}"
  messaging:
    codeq:
      producer_token: producer-token
      worker_token: {token}
      worker_stream_addr: "{worker}"
      producer_stream_addr: "{producer}"
cs_invoker_pool:
  http:
    addr: "{http}"
  workers:
    threads: 2
    max_inflight: 4
  codeq:
    lease_seconds: {lease_seconds}
    worker_id: {worker_id}
{codeq_extra}  shutdown:
    drain_seconds: 3
  pool:
    prewarm: 1
    max_children: 6
{extra}
"#,
            redis = redis.addr(),
            worker = emu.worker_addr(),
            producer = emu.producer_addr(),
        );
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, cfg).unwrap();
        let log = dir.path().join("serve.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cs-invoker-pool"));
        cmd.env("CS_LOG", "info")
            .env("CS_CODEQ_READY_EXPIRY_MS", "400");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("serve starts");
        Daemon {
            child: Some(child),
            http,
            log,
            _dir: dir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` → (status, body).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = std::net::TcpStream::connect(&self.http).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let status = out.get(9..12)?.parse().ok()?;
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
        Some((status, body))
    }

    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some((200, _)) = self.get("/readyz") {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("serve exited with {st} before ready:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("serve not ready in 20 s:\n{}", self.log());
    }

    pub fn signal(&self, sig: libc::c_int) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on the pid of our own child process.
            unsafe { libc::kill(c.id() as libc::pid_t, sig) };
        }
    }

    /// Waits for the exit status, up to `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Some(st);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub async fn finished(emu: &Emulator, id: &str, secs: u64) -> TaskView {
    emu.wait_for_task(id, Duration::from_secs(secs), |t| t.status.is_terminal())
        .await
        .unwrap_or_else(|e| panic!("task {id}: {e}"))
}

pub fn results_for(emu: &Emulator, aid: &str) -> Vec<Value> {
    emu.tasks("cs.results")
        .into_iter()
        .filter_map(|t| t.payload_value())
        .filter(|p| p["body"]["activation_id"] == json!(aid))
        .collect()
}
