//! The `serve` configuration: one YAML file shared with the rest of Sous (contract §7).
//!
//! Operators keep a single Sous `config.yaml`; the invoker reads the sections it uses and ignores
//! the others (`cs_http_gateway`, `tikti`, `plugins.authn`, the legacy top-level `kvrocks:` and
//! `codeq:` sections, `cluster_name`, `environment`, …), so the same file can be handed to every
//! component. Only `cs_invoker_pool` is ours: there an unknown key is an error (with a "did you
//! mean" when one is close, also for a key put in the wrong section), because a misspelt limit
//! silently falling back to its default is the kind of mistake that is found in production.
//!
//! How it is read, in two steps:
//! - **The file as written** (`SousFile` and the structs under it) is derived with serde. A
//!   key's type and range is its field's type (`Leaf<Int<1, 1024>>`, `Leaf<Size<KIB, MIB>>`,
//!   `Leaf<ListenAddr>`, …): the structs are the schema, and no list of keys is kept beside
//!   them. A value of the wrong type or out of range does not stop the reading: its `Leaf` keeps
//!   the problem, and a `Section` that is not a mapping says so, so one pass finds every problem
//!   and one edit fixes them all. For the same reason unknown keys are collected by
//!   `serde_ignored`, each with its path, rather than failing at the first as
//!   `deny_unknown_fields` would; those under `cs_invoker_pool` are the errors.
//! - **`Validator::validate`** then names each problem by its key, applies the environment
//!   overrides and the defaults, and checks what spans keys (a result must fit in
//!   `codeq.max_message_bytes`, `prewarm` ≤ `max_children`, …). The keys it reads, in order,
//!   are the did-you-mean hints' list; a test holds them to the structs.
//!
//! Defaults are the components' own where they have one (`PipelineConfig::default`,
//! `OutputLimits::default`, `StoreConfig::default`, `HttpConfig::default`, [`PoolConfig`]'s
//! constants, `WorkerConfig::DEFAULT_LEASE_SECONDS`), so a component used without `serve`
//! behaves as `serve` does with no configuration; the few that belong to `serve` alone are
//! written once, in `validate`.
//!
//! Precedence: environment variable, then file, then default. An environment variable set to the
//! empty string counts as unset (so `${VAR:-}` in a unit or compose file does not override).
//!
//! | variable                   | overrides                                          |
//! |----------------------------|----------------------------------------------------|
//! | `CS_KVROCKS_ADDR`          | `plugins.persistence.kvrocks.addr`                 |
//! | `CS_KVROCKS_PASSWORD`      | `plugins.persistence.kvrocks.auth.password` (and implies `auth.mode: password`) |
//! | `CS_CODEQ_PRODUCER_TOKEN`  | `plugins.messaging.codeq.producer_token`           |
//! | `CS_CODEQ_WORKER_TOKEN`    | `plugins.messaging.codeq.worker_token`             |
//! | `CS_INVOKER_HTTP_ADDR`     | `cs_invoker_pool.http.addr`                        |
//! | `CS_CODEQ_WORKER_ADDR`     | `plugins.messaging.codeq.worker_stream_addr`       |
//! | `CS_CODEQ_PRODUCER_ADDR`   | `plugins.messaging.codeq.producer_stream_addr`     |
//! | `CS_INVOKER_MAX_INFLIGHT`  | `cs_invoker_pool.workers.max_inflight`             |
//! | `CS_CODEQ_READY_EXPIRY_MS` | no key: the client's estimate of how long codeQ holds a Ready (31 s); tests shorten it to match the emulator |
//! | `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, `OTEL_EXPORTER_OTLP_PROTOCOL` | the other way round: read only when `cs_invoker_pool.tracing.protocol` is unset, as OpenTelemetry SDKs treat explicit configuration |
//!
//! The sandbox-child binary keeps its own variable, `CS_SANDBOX_CHILD_BIN`
//! ([`crate::pool::CHILD_BIN_ENV`]), which wins over `cs_invoker_pool.sandbox.child_bin`.

use crate::cgroup::CgroupMode;
use crate::host::http::HttpConfig;
use crate::pipeline::{PipelineConfig, Topics};
use crate::pool::PoolConfig;
use crate::queue::worker::WorkerConfig;
use crate::sandbox::{Sandbox, SandboxPolicy};
use crate::secret::Secret;
use crate::store::StoreConfig;
use sandbox_proto::protocol::OutputLimits;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::fmt::{self, Write as _};
use std::io::Read as _;
use std::marker::PhantomData;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where the packages install the configuration; `serve --config` defaults to it.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/cs-invoker-pool/config.yaml";

/// A configuration file larger than this is refused before it is parsed: a real one is a few
/// kilobytes, and a huge one is a mistake (a log or a binary passed as `--config`).
const MAX_FILE_BYTES: u64 = 1 << 20;

pub const ENV_KVROCKS_ADDR: &str = "CS_KVROCKS_ADDR";
pub const ENV_KVROCKS_PASSWORD: &str = "CS_KVROCKS_PASSWORD";
pub const ENV_CODEQ_PRODUCER_TOKEN: &str = "CS_CODEQ_PRODUCER_TOKEN";
pub const ENV_CODEQ_WORKER_TOKEN: &str = "CS_CODEQ_WORKER_TOKEN";
pub const ENV_HTTP_ADDR: &str = "CS_INVOKER_HTTP_ADDR";
pub const ENV_CODEQ_WORKER_ADDR: &str = "CS_CODEQ_WORKER_ADDR";
pub const ENV_CODEQ_PRODUCER_ADDR: &str = "CS_CODEQ_PRODUCER_ADDR";
pub const ENV_MAX_INFLIGHT: &str = "CS_INVOKER_MAX_INFLIGHT";
pub const ENV_READY_EXPIRY_MS: &str = "CS_CODEQ_READY_EXPIRY_MS";
/// The OpenTelemetry variables for the OTLP protocol, read when `cs_invoker_pool.tracing.protocol`
/// is not set.
pub const ENV_OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
pub const ENV_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Key paths named by more than one message, so a message and the key it names cannot drift.
const K_HTTP_ADDR: &str = "cs_invoker_pool.http.addr";
const K_MAX_INFLIGHT: &str = "cs_invoker_pool.workers.max_inflight";
const K_KV_PASSWORD: &str = "plugins.persistence.kvrocks.auth.password";
const K_KV_MODE: &str = "plugins.persistence.kvrocks.auth.mode";
const K_PRODUCER_TOKEN: &str = "plugins.messaging.codeq.producer_token";
const K_WORKER_TOKEN: &str = "plugins.messaging.codeq.worker_token";

/// One thing wrong with the configuration: the key (or environment variable) and what is wrong
/// with it, including what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {}: {source}; pass the right file with --config", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.as_ref().map_or("configuration".to_string(), |p| p.display().to_string()))]
    Parse {
        path: Option<PathBuf>,
        message: String,
    },
    /// Every problem found, not only the first, so one edit fixes them all.
    #[error("{}", format_problems(path.as_deref(), problems))]
    Invalid {
        path: Option<PathBuf>,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The individual problems of an `Invalid` error (empty for the other kinds).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }

    fn with_path(self, p: &Path) -> ConfigError {
        match self {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: Some(p.to_path_buf()),
                message,
            },
            ConfigError::Invalid { problems, .. } => ConfigError::Invalid {
                path: Some(p.to_path_buf()),
                problems,
            },
            e => e,
        }
    }
}

fn format_problems(path: Option<&Path>, problems: &[Problem]) -> String {
    let mut s = match path {
        Some(p) => format!("invalid configuration {}:", p.display()),
        None => "invalid configuration:".to_string(),
    };
    if let [one] = problems {
        let _ = write!(s, " {one}");
    } else {
        for p in problems {
            let _ = write!(s, "\n  {p}");
        }
    }
    s
}

/// A listening address as Sous writes it: Go style, where `:8082` means port 8082 on all
/// interfaces, besides `host:port` and `[v6]:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    /// `None` for all interfaces.
    pub host: Option<String>,
    /// 0 asks the kernel for a free port (tests).
    pub port: u16,
}

/// Why a listening address is refused; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadListenAddr(String);

impl ListenAddr {
    /// Parses `:port`, `host:port` or `[v6]:port`.
    pub fn parse(s: &str) -> Result<ListenAddr, BadListenAddr> {
        let (host, port) = split_host_port(s).map_err(BadListenAddr)?;
        Ok(ListenAddr { host, port })
    }

    /// What to hand to `bind`: all interfaces is `0.0.0.0` (IPv4), which is what the Go
    /// services of Sous answer on in practice; write `[::]:port` for IPv6.
    pub fn bind_target(&self) -> String {
        match &self.host {
            None => format!("0.0.0.0:{}", self.port),
            Some(h) if h.contains(':') => format!("[{h}]:{}", self.port),
            Some(h) => format!("{h}:{}", self.port),
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            None => write!(f, ":{}", self.port),
            Some(h) if h.contains(':') => write!(f, "[{h}]:{}", self.port),
            Some(h) => write!(f, "{h}:{}", self.port),
        }
    }
}

/// `cs_invoker_pool.sandbox.cgroup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupChoice {
    Auto,
    V1,
    V2,
    /// No per-child cgroups at all: memory and pid limits are then only the engine's and the
    /// rlimits. Allowed only with `allow_unconfined: true` (or `require: false`).
    None,
}

impl CgroupChoice {
    /// The mode for [`crate::cgroup::detect`]; `None` when cgroups are turned off.
    pub fn mode(self) -> Option<CgroupMode> {
        match self {
            CgroupChoice::Auto => Some(CgroupMode::Auto),
            CgroupChoice::V1 => Some(CgroupMode::V1),
            CgroupChoice::V2 => Some(CgroupMode::V2),
            CgroupChoice::None => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            CgroupChoice::Auto => "auto",
            CgroupChoice::V1 => "v1",
            CgroupChoice::V2 => "v2",
            CgroupChoice::None => "none",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkersSettings {
    /// Tokio worker threads of the supervisor.
    pub threads: usize,
    /// The replica's in-flight permit count (contract §1 step 5).
    pub max_inflight: usize,
    /// Activations that may wait for their own version's `maxConcurrency` at once, holding no
    /// in-flight permit and no claim slot (default: `max_inflight`).
    pub max_waiting: usize,
    /// Of those, how many may belong to one version (default 64); more are handed back to
    /// codeQ with a delay.
    pub max_waiting_per_version: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    pub bundles_max: usize,
    pub bytes_max: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsSettings {
    pub max_result_bytes: u32,
    pub max_error_bytes: u32,
    pub max_log_bytes: u32,
    /// `cs.codeq.publish` calls one activation may make.
    pub max_publishes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvrocksSettings {
    /// `host:port` (`[v6]:port`), normalised: a Go-style `:6666` becomes `127.0.0.1:6666`.
    pub addr: String,
    /// `None` when `auth.mode` is `none` or no password is set.
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeqSettings {
    /// gRPC target of `/workerpb.WorkerStream/Stream`, `host:port` without a scheme.
    pub worker_stream_addr: String,
    /// gRPC target of `/producerpb.ProducerStream/Stream`.
    pub producer_stream_addr: String,
    pub producer_token: Secret,
    /// Defaults to the producer token: Sous deployments commonly use one token for both.
    pub worker_token: Secret,
    pub topics: Topics,
    /// Lease asked for when claiming a task.
    pub lease: Duration,
    /// This replica's worker id at codeQ; stable across restarts so codeQ can tell a restarted
    /// replica from a new one.
    pub worker_id: String,
    /// codeQ's gRPC message limit: nothing the invoker sends (results, publishes, dead
    /// letters) may be larger, or codeQ fails the whole stream.
    pub max_message_bytes: usize,
    /// Largest `cs.invoke` task payload the invoker runs; a larger one is answered FAILED and
    /// dead-lettered instead.
    pub max_task_bytes: usize,
    /// `CS_CODEQ_READY_EXPIRY_MS`: how long codeQ holds a Ready, when not the worker client's
    /// default (codeQ's ~30 s long-poll).
    pub ready_expiry: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSettings {
    /// Refuse to start when any part of the sandbox is missing …
    pub require: bool,
    /// … unless this explicit escape hatch is set.
    pub allow_unconfined: bool,
    pub cgroup: CgroupChoice,
    /// The `sandbox-child` binary; `None` means `$CS_SANDBOX_CHILD_BIN`, else beside the
    /// running executable.
    pub child_bin: Option<PathBuf>,
}

impl SandboxSettings {
    /// Whether start-up must fail on a missing sandbox part: `require` unless the operator has
    /// explicitly allowed running unconfined.
    pub fn enforced(&self) -> bool {
        self.require && !self.allow_unconfined
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    pub prewarm: usize,
    pub max_children: usize,
    pub max_uses: u32,
    pub idle: Duration,
}

/// `cs_invoker_pool.metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Distinct (tenant, namespace, function, version) label sets with their own series; the
    /// rest are folded into the `other` series.
    pub max_function_series: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpFetchSettings {
    pub allow_private_networks: bool,
    pub max_response_bytes: usize,
}

/// The effective `serve` configuration: defaults, then the file, then the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `/healthz`, `/readyz`, `/metrics`.
    pub http_addr: ListenAddr,
    pub workers: WorkersSettings,
    pub cache: CacheSettings,
    pub limits: LimitsSettings,
    pub kvrocks: KvrocksSettings,
    pub codeq: CodeqSettings,
    /// `cs_control.limits.activation_ttl_seconds`.
    pub activation_ttl_seconds: u64,
    /// How long shutdown waits for in-flight invocations before abandoning them to codeQ's
    /// lease expiry. Below systemd's default 30 s stop timeout.
    pub drain: Duration,
    pub sandbox: SandboxSettings,
    pub pool: PoolSettings,
    pub http_fetch: HttpFetchSettings,
    pub metrics: MetricsSettings,
    /// `cs_invoker_pool.tracing`: span export over OTLP.
    pub tracing: crate::tracing_otel::TracingSettings,
    /// The environment variables that overrode a value, for the summary and start-up log.
    pub env_overrides: Vec<&'static str>,
    /// Things worth telling the operator that are not errors (a value ignored, …).
    pub notes: Vec<String>,
}

impl Config {
    /// Reads and validates the file at `path`, with overrides from the process environment.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = read_limited(path)?;
        Config::from_yaml_str(&text, &|k| std::env::var(k).ok()).map_err(|e| e.with_path(path))
    }

    /// Parses and validates `text`; `env` answers environment look-ups (tests pass a map).
    pub fn from_yaml_str(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let (file, ignored) = read_file(text)?;
        let file = match file {
            Section::Keys(f) => f,
            Section::Not(kind) => {
                return Err(ConfigError::Invalid {
                    path: None,
                    problems: vec![Problem {
                        key: "(top level)".to_string(),
                        message: format!(
                            "must be a mapping of sections (cs_invoker_pool:, plugins:, …), \
                             got {kind}"
                        ),
                    }],
                })
            }
        };
        let mut v = Validator::new(env);
        // Keys nobody read: errors under `cs_invoker_pool`, Sous' business elsewhere.
        for path in ignored
            .iter()
            .filter(|p| p.first().is_some_and(|s| s == "cs_invoker_pool"))
        {
            v.unknown_key(path);
        }
        let cfg = v.validate(file);
        if v.problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid {
                path: None,
                problems: v.problems,
            })
        }
    }

    /// The KVRocks connection settings; timeouts and the correlation TTL keep their defaults.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            addr: self.kvrocks.addr.clone(),
            password: self.kvrocks.password.clone(),
            activation_ttl_seconds: self.activation_ttl_seconds,
            ..StoreConfig::default()
        }
    }

    /// The `cs.http.fetch` settings.
    pub fn http_config(&self) -> HttpConfig {
        HttpConfig {
            allow_private_networks: self.http_fetch.allow_private_networks,
            max_response_bytes: self.http_fetch.max_response_bytes,
            ..HttpConfig::default()
        }
    }

    /// The policy for [`Sandbox::prepare`]. `require` is [`SandboxSettings::enforced`] (`serve`
    /// also honours `CS_REQUIRE_SANDBOX=1`, which the configuration cannot weaken); `cgroup:
    /// none` turns per-child cgroups off, which counts as a missing sandbox part.
    pub fn sandbox_policy(&self) -> SandboxPolicy {
        SandboxPolicy {
            require: self.sandbox.enforced(),
            cgroup_mode: self.sandbox.cgroup.mode().unwrap_or(CgroupMode::Auto),
            use_cgroups: self.sandbox.cgroup.mode().is_some(),
            ..SandboxPolicy::default()
        }
    }

    /// The output bounds sent to children; the stack bound is not configurable (contract §9).
    pub fn output_limits(&self) -> OutputLimits {
        OutputLimits {
            max_result_bytes: self.limits.max_result_bytes,
            max_error_bytes: self.limits.max_error_bytes,
            max_log_bytes: self.limits.max_log_bytes,
            ..OutputLimits::default()
        }
    }

    /// The child binary: `$CS_SANDBOX_CHILD_BIN`, else `sandbox.child_bin`, else beside us.
    pub fn child_bin(&self) -> Result<PathBuf, ConfigError> {
        if std::env::var_os(crate::pool::CHILD_BIN_ENV).is_none() {
            if let Some(p) = &self.sandbox.child_bin {
                return Ok(p.clone());
            }
        }
        crate::pool::default_child_bin().map_err(|e| ConfigError::Invalid {
            path: None,
            problems: vec![Problem {
                key: "cs_invoker_pool.sandbox.child_bin".to_string(),
                message: format!("not set and the default cannot be found ({e}); set it to the sandbox-child binary"),
            }],
        })
    }

    /// The pool settings over [`PoolConfig::new`]'s defaults.
    pub fn pool_config(&self, sandbox: Arc<Sandbox>) -> Result<PoolConfig, ConfigError> {
        let mut p = PoolConfig::new(self.child_bin()?, sandbox);
        p.prewarm = self.pool.prewarm;
        p.max_children = self.pool.max_children;
        p.max_uses = self.pool.max_uses;
        p.idle_timeout = self.pool.idle;
        p.limits = self.output_limits();
        Ok(p)
    }

    /// A short human summary of the effective values, secrets redacted.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let set = |o: bool| if o { "set (redacted)" } else { "not set" };
        let host = match &self.http_addr.host {
            None => " (all interfaces)",
            Some(_) => "",
        };
        let _ = writeln!(s, "http.addr            {}{host}", self.http_addr);
        let _ = writeln!(
            s,
            "workers              threads={} max_inflight={} max_waiting={} \
             max_waiting_per_version={}",
            self.workers.threads,
            self.workers.max_inflight,
            self.workers.max_waiting,
            self.workers.max_waiting_per_version
        );
        let _ = writeln!(
            s,
            "cache                bundles_max={} bytes_max={}",
            self.cache.bundles_max,
            human_bytes(self.cache.bytes_max)
        );
        let _ = writeln!(
            s,
            "limits               result={} error={} logs={} publishes={}",
            human_bytes(self.limits.max_result_bytes.into()),
            human_bytes(self.limits.max_error_bytes.into()),
            human_bytes(self.limits.max_log_bytes.into()),
            self.limits.max_publishes
        );
        let _ = writeln!(
            s,
            "kvrocks              addr={} password={} activation_ttl={}s",
            self.kvrocks.addr,
            set(self.kvrocks.password.is_some()),
            self.activation_ttl_seconds
        );
        let _ = writeln!(
            s,
            "codeq                worker={} producer={} worker_id={} lease={}s \
             max_message={} max_task={}{}",
            self.codeq.worker_stream_addr,
            self.codeq.producer_stream_addr,
            self.codeq.worker_id,
            self.codeq.lease.as_secs(),
            human_bytes(self.codeq.max_message_bytes as u64),
            human_bytes(self.codeq.max_task_bytes as u64),
            self.codeq.ready_expiry.map_or(String::new(), |d| format!(
                " ready_expiry={}ms",
                d.as_millis()
            ))
        );
        let same = self.codeq.worker_token == self.codeq.producer_token;
        let _ = writeln!(
            s,
            "codeq tokens         producer=set (redacted) worker=set (redacted){}",
            if same { ", same as producer" } else { "" }
        );
        let t = &self.codeq.topics;
        let _ = writeln!(
            s,
            "topics               invoke={} results={} dlq_invoke={} dlq_results={}",
            t.invoke, t.results, t.dlq_invoke, t.dlq_results
        );
        let _ = writeln!(
            s,
            "sandbox              require={} allow_unconfined={} cgroup={} child_bin={}",
            self.sandbox.require,
            self.sandbox.allow_unconfined,
            self.sandbox.cgroup.as_str(),
            self.sandbox
                .child_bin
                .as_ref()
                .map_or("(default)".to_string(), |p| p.display().to_string())
        );
        let _ = writeln!(
            s,
            "pool                 prewarm={} max_children={} max_uses={} idle={}s",
            self.pool.prewarm,
            self.pool.max_children,
            self.pool.max_uses,
            self.pool.idle.as_secs()
        );
        let _ = writeln!(
            s,
            "http_fetch           allow_private_networks={} max_response={}",
            self.http_fetch.allow_private_networks,
            human_bytes(self.http_fetch.max_response_bytes as u64)
        );
        let _ = writeln!(
            s,
            "metrics              max_function_series={}",
            self.metrics.max_function_series
        );
        let t = &self.tracing;
        let _ = writeln!(
            s,
            "tracing              enabled={} endpoint={} protocol={} sampling_ratio={} service_name={} queue_size={}",
            t.enabled,
            t.endpoint.as_deref().unwrap_or("(OTEL_EXPORTER_OTLP_* or default)"),
            t.protocol.as_str(),
            t.sampling_ratio,
            t.service_name,
            t.queue_size
        );
        let _ = writeln!(s, "shutdown             drain={}s", self.drain.as_secs());
        if !self.env_overrides.is_empty() {
            let _ = writeln!(s, "from environment     {}", self.env_overrides.join(", "));
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }
}

/// For the `check-config` subcommand: loads and validates `path` as `serve` would, and returns a
/// summary of the effective values (secrets redacted). It does not contact KVRocks or codeQ.
pub fn check_config(path: impl AsRef<Path>) -> Result<String, ConfigError> {
    let path = path.as_ref();
    let cfg = Config::load(path)?;
    Ok(format!(
        "configuration {} is valid\n{}",
        path.display(),
        cfg.summary()
    ))
}

/// The file as written, and the path of every key the file structs did not take.
fn read_file(text: &str) -> Result<(Section<SousFile>, Vec<Vec<String>>), ConfigError> {
    let mut ignored = Vec::new();
    if text.trim().is_empty() {
        return Ok((Section::default(), ignored));
    }
    // No source snippet in the message: the offending line may hold a token or password, and
    // this message goes to logs.
    let options = serde_saphyr::options! { with_snippet: false };
    let file = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_ignored::deserialize(de, |path| ignored.push(path_segments(&path)))
    })
    .map_err(|e| {
        let msg = e.to_string();
        let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
        // The library's advice is for programmers; an operator should fix the file.
        let msg = msg.replace(
            ", set DuplicateKeyPolicy in Options if acceptable",
            "; keep only one",
        );
        ConfigError::Parse {
            path: None,
            message: format!("not valid YAML: {}", msg.trim_end()),
        }
    })?;
    Ok((file, ignored))
}

fn read_limited(path: &Path) -> Result<String, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::Parse {
            path: Some(path.to_path_buf()),
            message: format!(
                "larger than {} KiB; is this the configuration file?",
                MAX_FILE_BYTES / KIB
            ),
        });
    }
    String::from_utf8(bytes).map_err(|e| ConfigError::Parse {
        path: Some(path.to_path_buf()),
        message: format!(
            "not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
            e.utf8_error().valid_up_to()
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// The file as written. A field's type is its key's type and range (see `Parse`).

/// The parts of the Sous `config.yaml` the invoker reads. Other sections, and keys of these
/// Sous sections the invoker does not use, are left to Sous.
#[derive(Default, Deserialize)]
#[serde(default)]
struct SousFile {
    cs_invoker_pool: Section<InvokerFile>,
    plugins: Section<PluginsFile>,
    cs_control: Section<ControlFile>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct PluginsFile {
    messaging: Section<MessagingFile>,
    persistence: Section<PersistenceFile>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct MessagingFile {
    codeq: Section<SousCodeqFile>,
}

/// `plugins.messaging.codeq`.
#[derive(Default, Deserialize)]
#[serde(default)]
struct SousCodeqFile {
    worker_stream_addr: Leaf<Target>,
    producer_stream_addr: Leaf<Target>,
    producer_token: Leaf<String>,
    worker_token: Leaf<String>,
    topics: Section<TopicsFile>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct TopicsFile {
    invoke: Leaf<Topic>,
    results: Leaf<Topic>,
    dlq_invoke: Leaf<Topic>,
    dlq_results: Leaf<Topic>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct PersistenceFile {
    kvrocks: Section<KvrocksFile>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct KvrocksFile {
    addr: Leaf<Target>,
    auth: Section<AuthFile>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct AuthFile {
    /// `none` or `password`.
    mode: Leaf<String>,
    password: Leaf<String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ControlFile {
    limits: Section<ControlLimitsFile>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ControlLimitsFile {
    activation_ttl_seconds: Leaf<Int<60, 31_536_000>>,
}

/// `cs_invoker_pool`: ours, so a key not declared here is an error.
#[derive(Default, Deserialize)]
#[serde(default)]
struct InvokerFile {
    http: Section<HttpFile>,
    workers: Section<WorkersFile>,
    cache: Section<CacheFile>,
    limits: Section<LimitsFile>,
    codeq: Section<CodeqFile>,
    shutdown: Section<ShutdownFile>,
    sandbox: Section<SandboxFile>,
    pool: Section<PoolFile>,
    http_fetch: Section<HttpFetchFile>,
    metrics: Section<MetricsFile>,
    tracing: Section<TracingFile>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct HttpFile {
    addr: Leaf<ListenAddr>,
}

/// The range of `workers.max_inflight`, which `CS_INVOKER_MAX_INFLIGHT` shares.
type MaxInflight = Int<1, 100_000>;

#[derive(Default, Deserialize)]
#[serde(default)]
struct WorkersFile {
    threads: Leaf<Int<1, 1024>>,
    max_inflight: Leaf<MaxInflight>,
    max_waiting: Leaf<Int<0, 1_000_000>>,
    max_waiting_per_version: Leaf<Int<0, 1_000_000>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct CacheFile {
    bundles_max: Leaf<Int<1, 1_000_000>>,
    bytes_max: Leaf<Size<MIB, { 64 * GIB }>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct LimitsFile {
    max_result_bytes: Leaf<Size<KIB, { 16 * MIB }>>,
    max_error_bytes: Leaf<Size<256, MIB>>,
    max_log_bytes: Leaf<Size<KIB, { 64 * MIB }>>,
    max_publishes: Leaf<Int<0, 100_000>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct CodeqFile {
    lease_seconds: Leaf<Int<2, 3600>>,
    worker_id: Leaf<WorkerId>,
    max_message_bytes: Leaf<Size<{ 64 * KIB }, { 64 * MIB }>>,
    max_task_bytes: Leaf<Size<KIB, { 64 * MIB }>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ShutdownFile {
    drain_seconds: Leaf<Int<0, 3600>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct SandboxFile {
    require: Leaf<bool>,
    allow_unconfined: Leaf<bool>,
    cgroup: Leaf<CgroupChoice>,
    child_bin: Leaf<AbsPath>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct PoolFile {
    prewarm: Leaf<Int<0, 10_000>>,
    max_children: Leaf<Int<1, 10_000>>,
    max_uses: Leaf<Int<1, 10_000_000>>,
    idle_seconds: Leaf<Int<1, 86_400>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct HttpFetchFile {
    allow_private_networks: Leaf<bool>,
    max_response_bytes: Leaf<Size<KIB, { 64 * MIB }>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct TracingFile {
    enabled: Leaf<bool>,
    endpoint: Leaf<OtlpEndpoint>,
    protocol: Leaf<crate::tracing_otel::Protocol>,
    sampling_ratio: Leaf<Ratio>,
    service_name: Leaf<String>,
    queue_size: Leaf<Int<1, 1_000_000>>,
}

/// An OTLP collector URL: `http://` or `https://` with a host.
struct OtlpEndpoint;

impl Parse for OtlpEndpoint {
    type Out = String;
    fn parse(v: Value) -> Result<Option<String>, String> {
        text(v, |t| match url::Url::parse(&t) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(t),
            _ => Err(format!(
                "must be an http:// or https:// URL of the collector, got {t:?}"
            )),
        })
    }
}

impl Parse for crate::tracing_otel::Protocol {
    type Out = crate::tracing_otel::Protocol;
    fn parse(v: Value) -> Result<Option<Self::Out>, String> {
        text(v, |t| match t.as_str() {
            "grpc" => Ok(crate::tracing_otel::Protocol::Grpc),
            "http/protobuf" => Ok(crate::tracing_otel::Protocol::HttpProtobuf),
            other => Err(format!("must be grpc or http/protobuf, got {other:?}")),
        })
    }
}

/// A number in 0.0..=1.0.
struct Ratio;

impl Parse for Ratio {
    type Out = f64;
    fn parse(v: Value) -> Result<Option<f64>, String> {
        match v {
            Value::Number(n) => match n.as_f64() {
                Some(r) if (0.0..=1.0).contains(&r) => Ok(Some(r)),
                _ => Err(format!("must be between 0 and 1, got {n}")),
            },
            other => Err(format!(
                "must be a number between 0 and 1, got {}",
                kind(&other)
            )),
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct MetricsFile {
    max_function_series: Leaf<Int<1, 1_000_000>>,
}

/// A key's value: absent (or null), of its type, or the problem with it. Reading one never
/// fails, so a value of the wrong type is a problem to report, not the end of the reading.
#[derive(Default)]
enum Leaf<T: Parse> {
    #[default]
    Absent,
    Ok(T::Out),
    Bad(String),
}

/// How a [`Leaf`] turns the value written into its type; `Ok(None)` counts as absent.
trait Parse {
    type Out;
    fn parse(v: Value) -> Result<Option<Self::Out>, String>;
}

impl<'de, T: Parse> Deserialize<'de> for Leaf<T> {
    // Through a `Value`, which takes a list or mapping whole: given where one value belongs, it
    // is one problem ("got a mapping"), not also an unknown key per entry.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Leaf<T>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Null => Leaf::Absent,
            v => match T::parse(v) {
                Ok(Some(t)) => Leaf::Ok(t),
                Ok(None) => Leaf::Absent,
                Err(m) => Leaf::Bad(m),
            },
        })
    }
}

/// A section: its keys, or the kind of value written where a mapping belongs.
enum Section<T> {
    Keys(T),
    Not(&'static str),
}

impl<T: Default> Default for Section<T> {
    fn default() -> Self {
        Section::Keys(T::default())
    }
}

macro_rules! not_a_mapping {
    ($($visit:ident($t:ty) $kind:literal),* $(,)?) => {$(
        fn $visit<E>(self, _: $t) -> Result<Section<T>, E> {
            Ok(Section::Not($kind))
        }
    )*};
}

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Section<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Section<T>, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for V<T> {
            type Value = Section<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            // The keys go on through the same (path-tracking) map, so `serde_ignored` sees
            // the unknown ones.
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Section<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Section::Keys)
            }
            fn visit_unit<E>(self) -> Result<Section<T>, E> {
                Ok(Section::default())
            }
            fn visit_none<E>(self) -> Result<Section<T>, E> {
                Ok(Section::default())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Section<T>, D::Error> {
                Section::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Section<T>, A::Error> {
                while seq.next_element::<Value>()?.is_some() {}
                Ok(Section::Not("a list"))
            }
            not_a_mapping! {
                visit_bool(bool) "a boolean", visit_i64(i64) "a number", visit_u64(u64) "a number",
                visit_i128(i128) "a number", visit_u128(u128) "a number", visit_f64(f64) "a number",
                visit_str(&str) "a string", visit_bytes(&[u8]) "a string",
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A whole number in `MIN..=MAX`.
struct Int<const MIN: u64, const MAX: u64>;

impl<const MIN: u64, const MAX: u64> Int<MIN, MAX> {
    /// The same bounds for an environment variable's value.
    fn from_env(v: &str) -> Result<u64, String> {
        match v.trim().parse::<u64>() {
            Ok(n) if (MIN..=MAX).contains(&n) => Ok(n),
            _ => Err(format!("must be between {MIN} and {MAX}, got {v:?}")),
        }
    }
}

impl<const MIN: u64, const MAX: u64> Parse for Int<MIN, MAX> {
    type Out = u64;
    fn parse(v: Value) -> Result<Option<u64>, String> {
        match v {
            Value::Number(n) => match n.as_u64() {
                Some(v) if (MIN..=MAX).contains(&v) => Ok(Some(v)),
                _ => Err(format!("must be between {MIN} and {MAX}, got {n}")),
            },
            other => Err(format!(
                "must be a whole number between {MIN} and {MAX}, got {}",
                kind(&other)
            )),
        }
    }
}

/// A size in bytes in `MIN..=MAX`: a number, or a string with a unit (`512MiB`, `64 KiB`, `1GB`).
struct Size<const MIN: u64, const MAX: u64>;

impl<const MIN: u64, const MAX: u64> Parse for Size<MIN, MAX> {
    type Out = u64;
    fn parse(v: Value) -> Result<Option<u64>, String> {
        let parsed = match &v {
            Value::Number(n) => n.as_u64().ok_or_else(|| n.to_string()),
            Value::String(s) => parse_size(s).ok_or_else(|| format!("{s:?}")),
            other => Err(kind(other).to_string()),
        };
        match parsed {
            Ok(v) if (MIN..=MAX).contains(&v) => Ok(Some(v)),
            Ok(v) => Err(format!(
                "must be between {} and {}, got {}",
                human_bytes(MIN),
                human_bytes(MAX),
                human_bytes(v)
            )),
            Err(got) => Err(format!(
                "must be a size in bytes (a number, or with a unit as in 512MiB), got {got}"
            )),
        }
    }
}

impl Parse for bool {
    type Out = bool;
    fn parse(v: Value) -> Result<Option<bool>, String> {
        match v {
            Value::Bool(b) => Ok(Some(b)),
            other => Err(format!("must be true or false, got {}", kind(&other))),
        }
    }
}

/// A string; a number is taken as its text (`password: 123456` is a string to Sous too). An
/// empty string counts as absent.
impl Parse for String {
    type Out = String;
    fn parse(v: Value) -> Result<Option<String>, String> {
        match v {
            Value::String(s) if s.is_empty() => Ok(None),
            Value::String(s) => Ok(Some(s)),
            Value::Number(n) => Ok(Some(n.to_string())),
            other => Err(format!(
                "must be a string, got {}; quote the value if it looks like another type",
                kind(&other)
            )),
        }
    }
}

/// A [`String`] leaf checked further by `f`.
fn text<T>(v: Value, f: impl FnOnce(String) -> Result<T, String>) -> Result<Option<T>, String> {
    String::parse(v)?.map(f).transpose()
}

impl Parse for ListenAddr {
    type Out = ListenAddr;
    fn parse(v: Value) -> Result<Option<ListenAddr>, String> {
        text(v, |t| ListenAddr::parse(&t).map_err(|e| e.to_string()))
    }
}

impl Parse for CgroupChoice {
    type Out = CgroupChoice;
    fn parse(v: Value) -> Result<Option<CgroupChoice>, String> {
        text(v, |t| match t.as_str() {
            "auto" => Ok(CgroupChoice::Auto),
            "v1" => Ok(CgroupChoice::V1),
            "v2" => Ok(CgroupChoice::V2),
            "none" => Ok(CgroupChoice::None),
            other => Err(format!("must be one of auto, v1, v2, none, got {other:?}")),
        })
    }
}

/// A `host:port` to connect to, normalised: Go-style `:port` means localhost, as a Go client
/// would dial it.
struct Target;

impl Target {
    fn parse_str(raw: &str) -> Result<String, String> {
        match split_host_port(raw)? {
            (_, 0) => Err(format!("port 0 cannot be connected to, got {raw:?}")),
            (None, port) => Ok(format!("127.0.0.1:{port}")),
            (Some(h), port) if h.contains(':') => Ok(format!("[{h}]:{port}")),
            (Some(h), port) => Ok(format!("{h}:{port}")),
        }
    }
}

impl Parse for Target {
    type Out = String;
    fn parse(v: Value) -> Result<Option<String>, String> {
        text(v, |t| Target::parse_str(&t))
    }
}

/// A codeQ topic name.
struct Topic;

impl Parse for Topic {
    type Out = String;
    fn parse(v: Value) -> Result<Option<String>, String> {
        text(v, |t| {
            let ok = t.len() <= 255
                && t.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'));
            let msg = || format!("must be at most 255 characters of [A-Za-z0-9._-], got {t:?}");
            if ok {
                Ok(t)
            } else {
                Err(msg())
            }
        })
    }
}

struct WorkerId;

impl Parse for WorkerId {
    type Out = String;
    fn parse(v: Value) -> Result<Option<String>, String> {
        text(v, |id| {
            if id.len() > 128 || id.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
                Err(format!(
                    "must be at most 128 characters without spaces, got {id:?}"
                ))
            } else {
                Ok(id)
            }
        })
    }
}

/// An absolute path: the daemon's working directory is not fixed.
struct AbsPath;

impl Parse for AbsPath {
    type Out = PathBuf;
    fn parse(v: Value) -> Result<Option<PathBuf>, String> {
        text(v, |t| {
            if Path::new(&t).is_absolute() {
                Ok(PathBuf::from(t))
            } else {
                Err(format!(
                    "must be an absolute path (the daemon's working directory is not fixed), \
                     got {t:?}"
                ))
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Validation: names every problem by its key, applies the environment and the defaults.

struct Validator<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    problems: Vec<Problem>,
    overrides: Vec<&'static str>,
    notes: Vec<String>,
    /// Every key read, in order: the schema of the did-you-mean hints (a test holds it to the
    /// file structs).
    read: Vec<String>,
}

impl<'e> Validator<'e> {
    fn new(env: &'e dyn Fn(&str) -> Option<String>) -> Validator<'e> {
        Validator {
            env,
            problems: Vec::new(),
            overrides: Vec::new(),
            notes: Vec::new(),
            read: Vec::new(),
        }
    }

    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// The OTLP protocol from the standard variables (the traces-specific one first), when
    /// `cs_invoker_pool.tracing.protocol` is not set; a value we cannot export with is reported.
    fn otlp_protocol_from_env(&mut self) -> Option<crate::tracing_otel::Protocol> {
        for name in [ENV_OTLP_TRACES_PROTOCOL, ENV_OTLP_PROTOCOL] {
            if let Some(v) = self.env(name) {
                return match v.trim() {
                    "grpc" => Some(crate::tracing_otel::Protocol::Grpc),
                    "http/protobuf" => Some(crate::tracing_otel::Protocol::HttpProtobuf),
                    other => {
                        let msg = format!(
                            "must be grpc or http/protobuf (http/json is not supported), got {other:?}"
                        );
                        self.problem(name, msg);
                        None
                    }
                };
            }
        }
        None
    }

    /// A non-empty environment variable, recorded as an override.
    fn env(&mut self, name: &'static str) -> Option<String> {
        let v = (self.env)(name).filter(|v| !v.is_empty())?;
        self.overrides.push(name);
        Some(v)
    }

    /// The value of the key `key`; a bad one is reported and counts as absent.
    fn get<T: Parse>(&mut self, leaf: Leaf<T>, key: &str) -> Option<T::Out> {
        self.read.push(key.to_string());
        match leaf {
            Leaf::Absent => None,
            Leaf::Ok(t) => Some(t),
            Leaf::Bad(message) => {
                self.problem(key, message);
                None
            }
        }
    }

    /// The keys of the section `key`; one that is not a mapping is reported and read as empty.
    fn section<T: Default>(&mut self, s: Section<T>, key: &str) -> T {
        match s {
            Section::Keys(t) => t,
            Section::Not(kind) => {
                self.problem(key, format!("must be a mapping of keys, got {kind}"));
                T::default()
            }
        }
    }

    /// The environment variable `env` parsed by `parse`, else the key `key`; a bad variable is
    /// reported under its name.
    fn env_or<T: Parse>(
        &mut self,
        env: &'static str,
        parse: impl FnOnce(&str) -> Result<T::Out, String>,
        leaf: Leaf<T>,
        key: &str,
    ) -> Option<T::Out> {
        match self.env(env) {
            Some(raw) => parse(&raw)
                .map_err(|e| self.problem(format!("{env} (overriding {key})"), e))
                .ok(),
            None => self.get(leaf, key),
        }
    }

    /// Reports the key at `path` (under `cs_invoker_pool`) as unknown, with a suggestion.
    fn unknown_key(&mut self, path: &[String]) {
        let Some((key, parents)) = path.split_last() else {
            return;
        };
        let section = parents.get(1..).unwrap_or_default().join(".");
        let schema = invoker_schema();
        let known: Vec<&str> = schema
            .iter()
            .find(|(s, _)| *s == section)
            .map(|(_, keys)| keys.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let hint = match suggest(key, &section, &known) {
            Some(s) => format!("unknown key; did you mean `{s}`?"),
            None => format!(
                "unknown key; the keys here are {}",
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        self.problem(path.join("."), hint);
    }

    fn validate(&mut self, file: SousFile) -> Config {
        let pipeline = PipelineConfig::default();
        let output = OutputLimits::default();
        let store = StoreConfig::default();
        let inv = self.section(file.cs_invoker_pool, "cs_invoker_pool");

        let http = self.section(inv.http, "cs_invoker_pool.http");
        let http_addr = self
            .env_or(
                ENV_HTTP_ADDR,
                |t| ListenAddr::parse(t).map_err(|e| e.to_string()),
                http.addr,
                K_HTTP_ADDR,
            )
            .unwrap_or(ListenAddr {
                host: None,
                port: 8082,
            });

        let w = self.section(inv.workers, "cs_invoker_pool.workers");
        let threads = self.get(w.threads, "cs_invoker_pool.workers.threads");
        // The file's value is checked even when the environment overrides it.
        let mut max_inflight = self.get(w.max_inflight, K_MAX_INFLIGHT);
        if let Some(v) = self.env(ENV_MAX_INFLIGHT) {
            match MaxInflight::from_env(&v) {
                Ok(n) => max_inflight = Some(n),
                Err(e) => self.problem(
                    format!("{ENV_MAX_INFLIGHT} (overriding {K_MAX_INFLIGHT})"),
                    e,
                ),
            }
        }
        let max_inflight = max_inflight.map_or(pipeline.max_inflight, |n| n as usize);
        let workers = WorkersSettings {
            threads: threads.map_or(32, |n| n as usize),
            max_inflight,
            max_waiting: self
                .get(w.max_waiting, "cs_invoker_pool.workers.max_waiting")
                .map_or(max_inflight, |n| n as usize),
            max_waiting_per_version: self
                .get(
                    w.max_waiting_per_version,
                    "cs_invoker_pool.workers.max_waiting_per_version",
                )
                .map_or(pipeline.max_waiting_per_version, |n| n as usize),
        };

        let c = self.section(inv.cache, "cs_invoker_pool.cache");
        let cache = CacheSettings {
            bundles_max: self
                .get(c.bundles_max, "cs_invoker_pool.cache.bundles_max")
                .map_or(pipeline.cache_bundles_max, |n| n as usize),
            bytes_max: self
                .get(c.bytes_max, "cs_invoker_pool.cache.bytes_max")
                .unwrap_or(pipeline.cache_bytes_max as u64),
        };

        // The ranges of the limits fit in u32 (16 MiB, 1 MiB, 64 MiB, 100000).
        let l = self.section(inv.limits, "cs_invoker_pool.limits");
        let limits = LimitsSettings {
            max_result_bytes: self
                .get(
                    l.max_result_bytes,
                    "cs_invoker_pool.limits.max_result_bytes",
                )
                .map_or(output.max_result_bytes, |n| n as u32),
            max_error_bytes: self
                .get(l.max_error_bytes, "cs_invoker_pool.limits.max_error_bytes")
                .map_or(output.max_error_bytes, |n| n as u32),
            max_log_bytes: self
                .get(l.max_log_bytes, "cs_invoker_pool.limits.max_log_bytes")
                .map_or(output.max_log_bytes, |n| n as u32),
            max_publishes: self
                .get(l.max_publishes, "cs_invoker_pool.limits.max_publishes")
                .map_or(pipeline.max_publishes, |n| n as u32),
        };

        let plugins = self.section(file.plugins, "plugins");
        let messaging = self.section(plugins.messaging, "plugins.messaging");
        let codeq = self.codeq(inv.codeq, messaging.codeq, &limits, &pipeline);

        let persistence = self.section(plugins.persistence, "plugins.persistence");
        let kv = self.section(persistence.kvrocks, "plugins.persistence.kvrocks");
        let kv_addr = "plugins.persistence.kvrocks.addr";
        let kvrocks = KvrocksSettings {
            addr: self
                .env_or(ENV_KVROCKS_ADDR, Target::parse_str, kv.addr, kv_addr)
                .unwrap_or(store.addr),
            password: self.kvrocks_password(kv.auth).map(Secret::from),
        };

        let control = self.section(file.cs_control, "cs_control");
        let control_limits = self.section(control.limits, "cs_control.limits");
        let activation_ttl_seconds = self
            .get(
                control_limits.activation_ttl_seconds,
                "cs_control.limits.activation_ttl_seconds",
            )
            .unwrap_or(store.activation_ttl_seconds);

        let sd = self.section(inv.shutdown, "cs_invoker_pool.shutdown");
        let drain = self.get(sd.drain_seconds, "cs_invoker_pool.shutdown.drain_seconds");
        let sandbox = self.sandbox(inv.sandbox);
        let pool = self.pool(inv.pool);

        let hf = self.section(inv.http_fetch, "cs_invoker_pool.http_fetch");
        let private = "cs_invoker_pool.http_fetch.allow_private_networks";
        let http_fetch = HttpFetchSettings {
            allow_private_networks: self
                .get(hf.allow_private_networks, private)
                .unwrap_or(false),
            max_response_bytes: self
                .get(
                    hf.max_response_bytes,
                    "cs_invoker_pool.http_fetch.max_response_bytes",
                )
                .map_or(HttpConfig::default().max_response_bytes, |n| n as usize),
        };
        let mf = self.section(inv.metrics, "cs_invoker_pool.metrics");
        let metrics = MetricsSettings {
            max_function_series: self
                .get(
                    mf.max_function_series,
                    "cs_invoker_pool.metrics.max_function_series",
                )
                .map_or(crate::metrics::DEFAULT_MAX_FUNCTION_SERIES, |n| n as usize),
        };
        let tr = self.section(inv.tracing, "cs_invoker_pool.tracing");
        let defaults = crate::tracing_otel::TracingSettings::default();
        let tracing = crate::tracing_otel::TracingSettings {
            enabled: self
                .get(tr.enabled, "cs_invoker_pool.tracing.enabled")
                .unwrap_or(false),
            endpoint: self.get(tr.endpoint, "cs_invoker_pool.tracing.endpoint"),
            protocol: match self.get(tr.protocol, "cs_invoker_pool.tracing.protocol") {
                Some(p) => p,
                None => self.otlp_protocol_from_env().unwrap_or(defaults.protocol),
            },
            sampling_ratio: self
                .get(tr.sampling_ratio, "cs_invoker_pool.tracing.sampling_ratio")
                .unwrap_or(defaults.sampling_ratio),
            service_name: self
                .get(tr.service_name, "cs_invoker_pool.tracing.service_name")
                .unwrap_or(defaults.service_name),
            queue_size: self
                .get(tr.queue_size, "cs_invoker_pool.tracing.queue_size")
                .map_or(defaults.queue_size, |n| n as usize),
        };
        if http_fetch.allow_private_networks {
            let note = format!("{private} is on: functions can reach loopback and private ranges");
            self.notes.push(note);
        }
        if !sandbox.require || sandbox.allow_unconfined {
            let note = "the server will start even if children cannot be fully confined";
            self.notes.push(note.to_string());
        }

        Config {
            http_addr,
            workers,
            cache,
            limits,
            kvrocks,
            codeq,
            activation_ttl_seconds,
            drain: Duration::from_secs(drain.unwrap_or(25)),
            sandbox,
            pool,
            http_fetch,
            metrics,
            tracing,
            env_overrides: std::mem::take(&mut self.overrides),
            notes: std::mem::take(&mut self.notes),
        }
    }

    /// `cs_invoker_pool.codeq` (ours) and `plugins.messaging.codeq` (Sous').
    fn codeq(
        &mut self,
        ours: Section<CodeqFile>,
        sous: Section<SousCodeqFile>,
        limits: &LimitsSettings,
        pipeline: &PipelineConfig,
    ) -> CodeqSettings {
        let cq = self.section(ours, "cs_invoker_pool.codeq");
        let lease = self
            .get(cq.lease_seconds, "cs_invoker_pool.codeq.lease_seconds")
            .unwrap_or(WorkerConfig::DEFAULT_LEASE_SECONDS.into());
        let worker_id = self
            .get(cq.worker_id, "cs_invoker_pool.codeq.worker_id")
            .unwrap_or_else(|| default_worker_id(self.env));
        let max_message_bytes = self
            .get(
                cq.max_message_bytes,
                "cs_invoker_pool.codeq.max_message_bytes",
            )
            .map_or(pipeline.max_message_bytes, |n| n as usize);
        let max_task_bytes = self
            .get(cq.max_task_bytes, "cs_invoker_pool.codeq.max_task_bytes")
            .map_or(pipeline.max_task_bytes, |n| n as usize);
        // A result carries at most the result, the error and the stack; with its envelope it
        // must fit in one codeQ message.
        let stack = u64::from(OutputLimits::default().max_stack_bytes);
        let envelope = crate::host::ENVELOPE_RESERVE_BYTES as u64;
        let largest_result = u64::from(limits.max_result_bytes)
            + u64::from(limits.max_error_bytes)
            + stack
            + envelope;
        if largest_result > max_message_bytes as u64 {
            self.problem(
                "cs_invoker_pool.codeq.max_message_bytes",
                format!(
                    "is {}, but a result can take {} (limits.max_result_bytes + \
                     limits.max_error_bytes + the {} stack + {} for the envelope): raise it \
                     or lower the limits",
                    human_bytes(max_message_bytes as u64),
                    human_bytes(largest_result),
                    human_bytes(stack),
                    human_bytes(envelope)
                ),
            );
        }
        let ready_expiry =
            self.env(ENV_READY_EXPIRY_MS)
                .and_then(|v| match v.trim().parse::<u64>() {
                    Ok(ms) if (1..=600_000).contains(&ms) => Some(Duration::from_millis(ms)),
                    _ => {
                        let msg = format!("must be milliseconds from 1 to 600000, got {v:?}");
                        self.problem(ENV_READY_EXPIRY_MS, msg);
                        None
                    }
                });

        let sq = self.section(sous, "plugins.messaging.codeq");
        let worker_stream_addr = self
            .env_or(
                ENV_CODEQ_WORKER_ADDR,
                Target::parse_str,
                sq.worker_stream_addr,
                "plugins.messaging.codeq.worker_stream_addr",
            )
            .unwrap_or_else(|| "127.0.0.1:9091".to_string());
        let producer_stream_addr = self
            .env_or(
                ENV_CODEQ_PRODUCER_ADDR,
                Target::parse_str,
                sq.producer_stream_addr,
                "plugins.messaging.codeq.producer_stream_addr",
            )
            .unwrap_or_else(|| "127.0.0.1:9092".to_string());
        let as_is = |t: &str| Ok(t.to_string());
        let producer_token = self.env_or(
            ENV_CODEQ_PRODUCER_TOKEN,
            as_is,
            sq.producer_token,
            K_PRODUCER_TOKEN,
        );
        let worker_token = self
            .env_or(
                ENV_CODEQ_WORKER_TOKEN,
                as_is,
                sq.worker_token,
                K_WORKER_TOKEN,
            )
            .or_else(|| producer_token.clone());
        if producer_token.is_none() {
            self.problem(
                K_PRODUCER_TOKEN,
                format!("required to publish results; set it or {ENV_CODEQ_PRODUCER_TOKEN}"),
            );
        }
        if worker_token.is_none() {
            self.problem(
                K_WORKER_TOKEN,
                format!(
                    "required to claim tasks; set it (or {K_PRODUCER_TOKEN}, which it defaults \
                     to) or {ENV_CODEQ_WORKER_TOKEN}"
                ),
            );
        }

        let t = self.section(sq.topics, "plugins.messaging.codeq.topics");
        let d = Topics::default();
        let mut topic = |leaf, k: &str, default: String| {
            let key = format!("plugins.messaging.codeq.topics.{k}");
            self.get::<Topic>(leaf, &key).unwrap_or(default)
        };
        let topics = Topics {
            invoke: topic(t.invoke, "invoke", d.invoke),
            results: topic(t.results, "results", d.results),
            dlq_invoke: topic(t.dlq_invoke, "dlq_invoke", d.dlq_invoke),
            dlq_results: topic(t.dlq_results, "dlq_results", d.dlq_results),
        };
        if topics.invoke == topics.results {
            self.problem(
                "plugins.messaging.codeq.topics.results",
                "must differ from plugins.messaging.codeq.topics.invoke: the invoker would \
                 consume its own results",
            );
        }

        CodeqSettings {
            worker_stream_addr,
            producer_stream_addr,
            producer_token: producer_token.unwrap_or_default().into(),
            worker_token: worker_token.unwrap_or_default().into(),
            topics,
            lease: Duration::from_secs(lease),
            worker_id,
            max_message_bytes,
            max_task_bytes,
            ready_expiry,
        }
    }

    /// `plugins.persistence.kvrocks.auth`: the password, if one is to be sent.
    fn kvrocks_password(&mut self, auth: Section<AuthFile>) -> Option<String> {
        let auth = self.section(auth, "plugins.persistence.kvrocks.auth");
        let mode = self.get(auth.mode, K_KV_MODE);
        let file_password = self.get(auth.password, K_KV_PASSWORD);
        match (
            mode.as_deref(),
            self.env(ENV_KVROCKS_PASSWORD),
            file_password,
        ) {
            (_, Some(p), _) => Some(p),
            (Some("none"), None, Some(_)) => {
                let note = format!("{K_KV_PASSWORD} is ignored because {K_KV_MODE} is none");
                self.notes.push(note);
                None
            }
            (Some("none"), None, None) => None,
            (Some("password"), None, None) => {
                let msg = format!(
                    "required when {K_KV_MODE} is password; set it or {ENV_KVROCKS_PASSWORD}"
                );
                self.problem(K_KV_PASSWORD, msg);
                None
            }
            (None | Some("password"), None, p) => p,
            (Some(other), None, _) => {
                self.problem(
                    K_KV_MODE,
                    format!("must be none or password, got {other:?}"),
                );
                None
            }
        }
    }

    fn sandbox(&mut self, s: Section<SandboxFile>) -> SandboxSettings {
        let sb = self.section(s, "cs_invoker_pool.sandbox");
        let require = self.get(sb.require, "cs_invoker_pool.sandbox.require");
        let allow = self.get(
            sb.allow_unconfined,
            "cs_invoker_pool.sandbox.allow_unconfined",
        );
        let (require, allow_unconfined) = (require.unwrap_or(true), allow.unwrap_or(false));
        let cgroup = self.get(sb.cgroup, "cs_invoker_pool.sandbox.cgroup");
        let cgroup = cgroup.unwrap_or(CgroupChoice::Auto);
        if cgroup == CgroupChoice::None && require && !allow_unconfined {
            self.problem(
                "cs_invoker_pool.sandbox.cgroup",
                "none turns off per-child cgroups, which sandbox.require forbids; choose auto, \
                 v1 or v2, or set sandbox.allow_unconfined: true",
            );
        }
        let child_bin = self.get(sb.child_bin, "cs_invoker_pool.sandbox.child_bin");
        SandboxSettings {
            require,
            allow_unconfined,
            cgroup,
            child_bin,
        }
    }

    fn pool(&mut self, s: Section<PoolFile>) -> PoolSettings {
        let po = self.section(s, "cs_invoker_pool.pool");
        let prewarm = self.get(po.prewarm, "cs_invoker_pool.pool.prewarm");
        let max_children = self
            .get(po.max_children, "cs_invoker_pool.pool.max_children")
            .map_or(PoolConfig::DEFAULT_MAX_CHILDREN, |n| n as usize);
        let default_prewarm = PoolConfig::default_prewarm().min(max_children);
        let prewarm = prewarm.map_or(default_prewarm, |n| n as usize);
        if prewarm > max_children {
            self.problem(
                "cs_invoker_pool.pool.prewarm",
                format!(
                    "must not exceed cs_invoker_pool.pool.max_children ({max_children}), got \
                     {prewarm}"
                ),
            );
        }
        PoolSettings {
            prewarm,
            max_children,
            max_uses: self
                .get(po.max_uses, "cs_invoker_pool.pool.max_uses")
                .map_or(PoolConfig::DEFAULT_MAX_USES, |n| n as u32),
            idle: self
                .get(po.idle_seconds, "cs_invoker_pool.pool.idle_seconds")
                .map_or(PoolConfig::DEFAULT_IDLE_TIMEOUT, Duration::from_secs),
        }
    }
}

/// The sections of `cs_invoker_pool` (`""` is the section itself) and their keys, in order: the
/// keys `validate` reads, which are those the file structs declare (a test holds the two
/// together).
fn invoker_schema() -> Vec<(String, Vec<String>)> {
    let mut v = Validator::new(&|_| None);
    v.validate(SousFile::default());
    let mut schema = vec![(String::new(), Vec::new())];
    for key in v
        .read
        .iter()
        .filter_map(|k| k.strip_prefix("cs_invoker_pool."))
    {
        let Some((section, name)) = key.split_once('.') else {
            continue;
        };
        if !schema.iter().any(|(s, _)| s == section) {
            schema[0].1.push(section.to_string());
            schema.push((section.to_string(), Vec::new()));
        }
        if let Some((_, keys)) = schema.iter_mut().find(|(s, _)| s == section) {
            keys.push(name.to_string());
        }
    }
    schema
}

/// The keys of a `serde_ignored` path (list indices as numbers).
fn path_segments(path: &serde_ignored::Path<'_>) -> Vec<String> {
    use serde_ignored::Path as P;
    let (parent, segment) = match path {
        P::Root => return Vec::new(),
        P::Seq { parent, index } => (parent, Some(index.to_string())),
        P::Map { parent, key } => (parent, Some(key.clone())),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            (parent, None)
        }
    };
    let mut out = path_segments(parent);
    out.extend(segment);
    out
}

/// `host:port`, `[v6]:port` or `:port` (host `None`). The message says what to write instead.
fn split_host_port(s: &str) -> Result<(Option<String>, u16), String> {
    let s = s.trim();
    if s.contains("://") {
        return Err(format!(
            "must be host:port without a scheme (e.g. 127.0.0.1:9091), got {:?}",
            sandbox_proto::text::excerpt(&s)
        ));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or_else(|| {
            format!(
                "an IPv6 address must be written [addr]:port, got {:?}",
                sandbox_proto::text::excerpt(&s)
            )
        })?;
        h.parse::<Ipv6Addr>().map_err(|_| {
            format!(
                "{:?} is not an IPv6 address, in {:?}",
                sandbox_proto::text::excerpt(&h),
                sandbox_proto::text::excerpt(&s)
            )
        })?;
        (Some(h.to_string()), p)
    } else {
        let (h, p) = s.rsplit_once(':').ok_or_else(|| {
            format!(
                "must be host:port or :port, got {:?}",
                sandbox_proto::text::excerpt(&s)
            )
        })?;
        if h.contains(':') {
            return Err(format!(
                "an IPv6 address must be written [addr]:port, got {:?}",
                sandbox_proto::text::excerpt(&s)
            ));
        }
        let valid = h
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_'));
        if !valid {
            return Err(format!(
                "{:?} is not a host name or address, in {:?}",
                sandbox_proto::text::excerpt(&h),
                sandbox_proto::text::excerpt(&s)
            ));
        }
        ((!h.is_empty()).then(|| h.to_string()), p)
    };
    let port = port.parse::<u16>().map_err(|_| {
        format!(
            "the port must be a number from 0 to 65535, got {:?}",
            sandbox_proto::text::excerpt(&s)
        )
    })?;
    Ok((host, port))
}

/// `512MiB`, `64 KiB`, `1GB`, `1048576`: binary units (KiB, MiB, GiB) and decimal ones
/// (KB, MB, GB), case-insensitive.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => MIB,
        "g" | "gib" => GIB,
        "kb" => 1000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn human_bytes(n: u64) -> String {
    for (unit, size) in [("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
        if n >= size && n.is_multiple_of(size) {
            return format!("{} {unit}", n / size);
        }
    }
    format!("{n} B")
}

/// A stable id for this replica: the host name (a pod name under Kubernetes), which survives
/// restarts, unlike a random id, so codeQ sees the same worker come back.
fn default_worker_id(env: &dyn Fn(&str) -> Option<String>) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| env("HOSTNAME").filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_string());
    let clean: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .take(100)
        .collect();
    format!("cs-invoker-pool@{clean}")
}

/// The closest allowed key: a sibling within a small edit distance, else the same (or a close)
/// name in another section of `cs_invoker_pool` (`workers.max_inflight` for a top-level
/// `max_inflight`).
fn suggest(k: &str, section: &str, siblings: &[&str]) -> Option<String> {
    let distance = |cand: &str| strsim::levenshtein(k, cand);
    let close = |cand: &str| {
        let d = strsim::levenshtein(&k.to_ascii_lowercase(), cand);
        d <= 2.max(cand.len() / 4) && d < cand.len()
    };
    let full = |s: &str, key: &str| {
        if s.is_empty() {
            format!("cs_invoker_pool.{key}")
        } else {
            format!("cs_invoker_pool.{s}.{key}")
        }
    };
    if let Some(best) = siblings
        .iter()
        .filter(|c| close(c))
        .min_by_key(|c| distance(c))
    {
        return Some(full(section, best));
    }
    invoker_schema()
        .iter()
        .filter(|(s, _)| s != section)
        .flat_map(|(s, keys)| keys.iter().map(move |key| (s, key)))
        .filter(|(_, key)| close(key))
        .min_by_key(|(_, key)| distance(key))
        .map(|(s, key)| full(s, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;
    use std::collections::HashMap;

    const TOKENS: &str = "plugins:\n  messaging:\n    codeq:\n      producer_token: ptok\n";

    fn parse_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_yaml_str(text, &move |k| env.get(k).cloned())
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        parse_env(text, &[])
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults() {
        let c = parse(TOKENS).expect("valid");
        assert_eq!(
            c.http_addr,
            ListenAddr {
                host: None,
                port: 8082
            }
        );
        assert_eq!(c.http_addr.bind_target(), "0.0.0.0:8082");
        assert_eq!(
            c.workers,
            WorkersSettings {
                threads: 32,
                max_inflight: 2048,
                max_waiting: 2048,
                max_waiting_per_version: 64,
            }
        );
        assert_eq!(
            c.cache,
            CacheSettings {
                bundles_max: 1000,
                bytes_max: 512 * MIB
            }
        );
        assert_eq!(
            c.limits,
            LimitsSettings {
                max_result_bytes: 262_144,
                max_error_bytes: 65_536,
                max_log_bytes: 1_048_576,
                max_publishes: 100,
            }
        );
        assert_eq!(c.kvrocks.addr, "127.0.0.1:6666");
        assert_eq!(c.kvrocks.password, None);
        assert_eq!(c.codeq.worker_stream_addr, "127.0.0.1:9091");
        assert_eq!(c.codeq.producer_stream_addr, "127.0.0.1:9092");
        assert_eq!(c.codeq.producer_token.expose(), "ptok");
        assert_eq!(c.codeq.worker_token.expose(), "ptok");
        assert_eq!(
            c.codeq.topics,
            Topics {
                invoke: "cs.invoke".into(),
                results: "cs.results".into(),
                dlq_invoke: "cs.dlq.invoke".into(),
                dlq_results: "cs.dlq.results".into(),
            }
        );
        assert_eq!(c.codeq.lease, Duration::from_secs(60));
        assert_eq!(c.codeq.max_message_bytes, 4 << 20);
        assert_eq!(c.codeq.max_task_bytes, 4 << 20);
        assert!(c.codeq.worker_id.starts_with("cs-invoker-pool@"));
        assert_eq!(
            c.codeq.worker_id,
            parse(TOKENS).unwrap().codeq.worker_id,
            "stable"
        );
        assert_eq!(c.activation_ttl_seconds, 604_800);
        assert_eq!(c.drain, Duration::from_secs(25));
        assert!(c.sandbox.require && !c.sandbox.allow_unconfined && c.sandbox.enforced());
        assert_eq!(c.sandbox.cgroup, CgroupChoice::Auto);
        assert_eq!(c.sandbox.child_bin, None);
        assert_eq!(c.pool.max_children, 256);
        assert_eq!(c.pool.max_uses, 10_000);
        assert_eq!(c.pool.idle, Duration::from_secs(300));
        assert!(c.pool.prewarm >= 1);
        assert!(!c.http_fetch.allow_private_networks);
        assert_eq!(c.http_fetch.max_response_bytes, 4 * MIB as usize);
        assert!(c.env_overrides.is_empty());

        let s = c.store_config();
        assert_eq!(
            (s.addr.as_str(), s.password, s.activation_ttl_seconds),
            ("127.0.0.1:6666", None, 604_800)
        );
        assert_eq!(s.correlation_ttl_seconds, 600);
        let h = c.http_config();
        assert_eq!(h.max_response_bytes, 4 * MIB as usize);
        let p = c.sandbox_policy();
        assert!(p.require);
        assert_eq!(p.cgroup_mode, CgroupMode::Auto);
        assert_eq!(c.output_limits(), OutputLimits::default());
    }

    #[test]
    fn full_file_and_foreign_sections() {
        let text = r#"
cluster_name: dev
environment: local
kvrocks: { addr: "legacy:1" }
codeq: { base_url: "http://legacy" }
tikti: { issuer: x }
cs_http_gateway: { addr: ":8080", whatever: [1, 2] }
cs_control:
  addr: ":8081"
  limits:
    activation_ttl_seconds: 3600
    max_bundle_bytes: 16777216
plugins:
  authn: { provider: tikti }
  persistence:
    kvrocks:
      addr: "kv.internal:6666"
      pool_size: 10
      auth: { mode: password, password: "s3cret" }
  messaging:
    codeq:
      base_url: "http://codeq:8080"
      producer_token: p
      worker_token: w
      worker_stream_addr: "[::1]:19091"
      producer_stream_addr: ":19092"
      topics: { invoke: a.invoke, results: a.results, dlq_invoke: a.dlq1, dlq_results: a.dlq2 }
cs_invoker_pool:
  http: { addr: "127.0.0.1:0" }
  workers: { threads: 4, max_inflight: 10 }
  cache: { bundles_max: 5, bytes_max: 64MiB }
  limits: { max_result_bytes: 1024, max_error_bytes: "1 KiB", max_log_bytes: 2048 }
  codeq: { lease_seconds: 30, worker_id: "w-1" }
  shutdown: { drain_seconds: 0 }
  sandbox: { require: false, allow_unconfined: true, cgroup: none, child_bin: /opt/child }
  pool: { prewarm: 0, max_children: 3, max_uses: 7, idle_seconds: 9 }
  http_fetch: { allow_private_networks: true, max_response_bytes: 4096 }
  metrics: { max_function_series: 50 }
  tracing: { enabled: true, endpoint: "http://otel:4318/v1/traces", protocol: http/protobuf, sampling_ratio: 0.25, service_name: inv, queue_size: 10 }
"#;
        let c = parse(text).expect("valid");
        assert_eq!(c.metrics.max_function_series, 50);
        assert!(c.tracing.enabled);
        assert_eq!(
            c.tracing.endpoint.as_deref(),
            Some("http://otel:4318/v1/traces")
        );
        assert_eq!(
            c.tracing.protocol,
            crate::tracing_otel::Protocol::HttpProtobuf
        );
        assert_eq!((c.tracing.sampling_ratio, c.tracing.queue_size), (0.25, 10));
        assert_eq!(c.tracing.service_name, "inv");
        assert_eq!(c.http_addr.bind_target(), "127.0.0.1:0");
        assert_eq!((c.workers.threads, c.workers.max_inflight), (4, 10));
        assert_eq!((c.cache.bundles_max, c.cache.bytes_max), (5, 64 * MIB));
        assert_eq!(c.limits.max_error_bytes, 1024);
        assert_eq!(c.kvrocks.addr, "kv.internal:6666");
        assert_eq!(
            c.kvrocks.password.as_ref().map(Secret::expose),
            Some("s3cret")
        );
        assert_eq!(c.codeq.worker_stream_addr, "[::1]:19091");
        assert_eq!(c.codeq.producer_stream_addr, "127.0.0.1:19092");
        assert_eq!(c.codeq.worker_token.expose(), "w");
        assert_eq!(c.codeq.topics.dlq_results, "a.dlq2");
        assert_eq!(c.codeq.worker_id, "w-1");
        assert_eq!(c.activation_ttl_seconds, 3600);
        assert_eq!(c.drain, Duration::ZERO);
        assert_eq!(c.sandbox.cgroup.mode(), None);
        assert!(!c.sandbox.enforced());
        assert_eq!(
            c.sandbox.child_bin.as_deref(),
            Some(Path::new("/opt/child"))
        );
        assert_eq!(
            (c.pool.prewarm, c.pool.max_children, c.pool.max_uses),
            (0, 3, 7)
        );
        assert!(c.http_config().allow_private_networks);
        assert_eq!(c.output_limits().max_result_bytes, 1024);
        assert_eq!(
            c.store_config().password.as_ref().map(Secret::expose),
            Some("s3cret")
        );
    }

    #[test]
    fn tracing_is_off_by_default_and_checked() {
        let c = parse(TOKENS).expect("valid");
        assert!(!c.tracing.enabled);
        assert_eq!(c.tracing.protocol, crate::tracing_otel::Protocol::Grpc);
        let e = parse(&format!(
            "{TOKENS}cs_invoker_pool:\n  tracing: {{ protocol: thrift, sampling_ratio: 2, endpoint: \"otel:4317\" }}\n"
        ))
        .unwrap_err()
        .to_string();
        for want in [
            "cs_invoker_pool.tracing.protocol",
            "cs_invoker_pool.tracing.sampling_ratio",
            "cs_invoker_pool.tracing.endpoint",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn environment_overrides() {
        let text = format!(
            "{TOKENS}      worker_token: filew\ncs_invoker_pool:\n  workers:\n    max_inflight: 5\n"
        );
        let c = parse_env(
            &text,
            &[
                (ENV_KVROCKS_ADDR, "redis.local:6379"),
                (ENV_KVROCKS_PASSWORD, "envpw"),
                (ENV_CODEQ_PRODUCER_TOKEN, "envp"),
                (ENV_CODEQ_WORKER_TOKEN, "envw"),
                (ENV_HTTP_ADDR, ":9100"),
                (ENV_CODEQ_WORKER_ADDR, "cq:1"),
                (ENV_CODEQ_PRODUCER_ADDR, "cq:2"),
                (ENV_MAX_INFLIGHT, "77"),
                ("CS_UNRELATED", "x"),
            ],
        )
        .expect("valid");
        assert_eq!(c.kvrocks.addr, "redis.local:6379");
        assert_eq!(
            c.kvrocks.password.as_ref().map(Secret::expose),
            Some("envpw")
        );
        assert_eq!(c.codeq.producer_token.expose(), "envp");
        assert_eq!(c.codeq.worker_token.expose(), "envw");
        assert_eq!(c.http_addr.port, 9100);
        assert_eq!(c.codeq.worker_stream_addr, "cq:1");
        assert_eq!(c.codeq.producer_stream_addr, "cq:2");
        assert_eq!(c.workers.max_inflight, 77);
        assert_eq!(c.env_overrides.len(), 8);
        assert!(c.summary().contains("CS_INVOKER_MAX_INFLIGHT"));

        // Empty counts as unset; the worker token falls back to the (env) producer token.
        let c = parse_env(
            "",
            &[
                (ENV_CODEQ_PRODUCER_TOKEN, "only"),
                (ENV_CODEQ_WORKER_TOKEN, ""),
            ],
        )
        .expect("valid");
        assert_eq!(c.codeq.worker_token.expose(), "only");

        let e = parse_env(TOKENS, &[(ENV_MAX_INFLIGHT, "0")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CS_INVOKER_MAX_INFLIGHT (overriding cs_invoker_pool.workers.max_inflight): must be between 1 and 100000"),
            "{e}"
        );
        let e = parse_env(TOKENS, &[(ENV_KVROCKS_ADDR, "redis://x:1")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CS_KVROCKS_ADDR (overriding plugins.persistence.kvrocks.addr)"),
            "{e}"
        );
        assert!(e.contains("without a scheme"), "{e}");
    }

    #[test]
    fn range_errors_name_the_key() {
        let e = err(&format!(
            "{TOKENS}cs_invoker_pool:\n  workers:\n    max_inflight: 0\n"
        ));
        assert!(
            e.contains("cs_invoker_pool.workers.max_inflight: must be between 1 and 100000, got 0"),
            "{e}"
        );
        let e = err(&format!(
            "{TOKENS}cs_invoker_pool:\n  workers:\n    threads: -3\n"
        ));
        assert!(
            e.contains("cs_invoker_pool.workers.threads: must be between 1 and 1024, got -3"),
            "{e}"
        );
        let e = err(&format!(
            "{TOKENS}cs_invoker_pool:\n  workers:\n    threads: 1.5\n"
        ));
        assert!(e.contains("cs_invoker_pool.workers.threads"), "{e}");
        let e = err(&format!(
            "{TOKENS}cs_control:\n  limits:\n    activation_ttl_seconds: 1\n"
        ));
        assert!(
            e.contains("cs_control.limits.activation_ttl_seconds: must be between 60"),
            "{e}"
        );
        let e = err(&format!(
            "{TOKENS}cs_invoker_pool:\n  cache:\n    bytes_max: 1TiB\n"
        ));
        assert!(
            e.contains("cs_invoker_pool.cache.bytes_max: must be a size in bytes"),
            "{e}"
        );
        let e = err(&format!(
            "{TOKENS}cs_invoker_pool:\n  cache:\n    bytes_max: 100GiB\n"
        ));
        assert!(
            e.contains(
                "cs_invoker_pool.cache.bytes_max: must be between 1 MiB and 64 GiB, got 100 GiB"
            ),
            "{e}"
        );
        let e = err(&format!(
            "{TOKENS}cs_invoker_pool:\n  pool:\n    prewarm: 9\n    max_children: 4\n"
        ));
        assert!(e.contains("cs_invoker_pool.pool.prewarm: must not exceed cs_invoker_pool.pool.max_children (4), got 9"), "{e}");
    }

    #[test]
    fn type_errors_name_the_key() {
        let e = err(&format!("{TOKENS}cs_invoker_pool:\n  workers: 5\n"));
        assert!(
            e.contains("cs_invoker_pool.workers: must be a mapping"),
            "{e}"
        );
        let e = err(&format!(
            "{TOKENS}cs_invoker_pool:\n  sandbox:\n    require: maybe\n"
        ));
        assert!(
            e.contains("cs_invoker_pool.sandbox.require: must be true or false, got a string"),
            "{e}"
        );
        let e = err(&format!(
            "{TOKENS}cs_invoker_pool:\n  workers:\n    threads: \"8\"\n"
        ));
        assert!(
            e.contains("cs_invoker_pool.workers.threads: must be a whole number"),
            "{e}"
        );
        let e = err(&format!(
            "{TOKENS}cs_invoker_pool:\n  sandbox:\n    cgroup: v3\n"
        ));
        assert!(
            e.contains("cs_invoker_pool.sandbox.cgroup: must be one of auto, v1, v2, none"),
            "{e}"
        );
        let e = err(&format!(
            "{TOKENS}cs_invoker_pool:\n  sandbox:\n    child_bin: bin/child\n"
        ));
        assert!(
            e.contains("cs_invoker_pool.sandbox.child_bin: must be an absolute path"),
            "{e}"
        );
        let e = err("- a\n- b\n");
        assert!(e.contains("must be a mapping of sections"), "{e}");
    }

    #[test]
    fn unknown_keys_are_errors_with_suggestions() {
        let e = err(&format!(
            "{TOKENS}cs_invoker_pool:\n  workers:\n    max_inflite: 3\n"
        ));
        assert!(
            e.contains("cs_invoker_pool.workers.max_inflite: unknown key; did you mean `cs_invoker_pool.workers.max_inflight`?"),
            "{e}"
        );
        let e = err(&format!("{TOKENS}cs_invoker_pool:\n  max_inflight: 3\n"));
        assert!(
            e.contains("did you mean `cs_invoker_pool.workers.max_inflight`?"),
            "{e}"
        );
        let e = err(&format!(
            "{TOKENS}cs_invoker_pool:\n  sandbox:\n    zzz: 1\n"
        ));
        assert!(
            e.contains("cs_invoker_pool.sandbox.zzz: unknown key; the keys here are `require`"),
            "{e}"
        );
        // Unknown keys elsewhere are Sous' business.
        parse(&format!(
            "{TOKENS}      surprise: 1\nanything_else: {{ x: 1 }}\n"
        ))
        .expect("ignored");
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let e = parse("cs_invoker_pool:\n  workers:\n    threads: 0\n  http:\n    addr: nope\n")
            .unwrap_err();
        let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
        assert!(
            keys.contains(&"cs_invoker_pool.workers.threads"),
            "{keys:?}"
        );
        assert!(keys.contains(&"cs_invoker_pool.http.addr"), "{keys:?}");
        assert!(keys.contains(&K_PRODUCER_TOKEN), "{keys:?}");
        assert!(keys.contains(&K_WORKER_TOKEN), "{keys:?}");
    }

    #[test]
    fn tokens_are_required() {
        let e = err("");
        assert!(
            e.contains("plugins.messaging.codeq.producer_token: required"),
            "{e}"
        );
        assert!(e.contains("CS_CODEQ_PRODUCER_TOKEN"), "{e}");
        assert!(
            e.contains("plugins.messaging.codeq.worker_token: required to claim tasks; set it (or plugins.messaging.codeq.producer_token, which it defaults to) or CS_CODEQ_WORKER_TOKEN"),
            "{e}"
        );
        // A worker token alone still leaves the producer token missing.
        let e = err("plugins: { messaging: { codeq: { worker_token: w } } }");
        assert!(e.contains("producer_token: required"), "{e}");
        assert!(!e.contains("worker_token: required"), "{e}");
    }

    #[test]
    fn kvrocks_auth_modes() {
        let kv = |auth: &str| format!("{TOKENS}  persistence:\n    kvrocks:\n      auth: {auth}\n");
        let c = parse(&kv("{ mode: none, password: x }")).unwrap();
        assert_eq!(c.kvrocks.password, None);
        assert!(c.notes.iter().any(|n| n.contains("ignored")));
        let e = err(&kv("{ mode: password }"));
        assert!(e.contains("plugins.persistence.kvrocks.auth.password: required when plugins.persistence.kvrocks.auth.mode is password; set it or CS_KVROCKS_PASSWORD"), "{e}");
        let e = err(&kv("{ mode: tls }"));
        assert!(
            e.contains("plugins.persistence.kvrocks.auth.mode: must be none or password"),
            "{e}"
        );
        let c = parse(&kv("{ password: 123456 }")).unwrap();
        assert_eq!(
            c.kvrocks.password.as_ref().map(Secret::expose),
            Some("123456")
        );
        let c = parse_env(&kv("{ mode: password }"), &[(ENV_KVROCKS_PASSWORD, "e")]).unwrap();
        assert_eq!(c.kvrocks.password.as_ref().map(Secret::expose), Some("e"));
    }

    #[test]
    fn addresses() {
        assert_eq!(ListenAddr::parse(":8082").unwrap().to_string(), ":8082");
        assert_eq!(
            ListenAddr::parse("[::]:80").unwrap().bind_target(),
            "[::]:80"
        );
        assert_eq!(
            ListenAddr::parse("localhost:1").unwrap().bind_target(),
            "localhost:1"
        );
        for bad in [
            "8082",
            "host:port",
            "host:70000",
            "::1:80",
            "[zz]:1",
            "http://h:1",
            "a b:1",
        ] {
            assert!(ListenAddr::parse(bad).is_err(), "{bad}");
        }
        // Found by the config fuzz target: the error quoted the whole value.
        let huge = format!("{}:1", "h".repeat(1 << 20));
        let e = ListenAddr::parse(&format!("{huge} x"))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 400 && e.contains("bytes)"), "{} bytes", e.len());
        let e = err(&format!(
            "{TOKENS}cs_invoker_pool:\n  http:\n    addr: \"8082\"\n"
        ));
        assert!(
            e.contains("cs_invoker_pool.http.addr: must be host:port or :port, got \"8082\""),
            "{e}"
        );
        let e = err(&format!("{TOKENS}      worker_stream_addr: \"h:0\"\n"));
        assert!(
            e.contains("plugins.messaging.codeq.worker_stream_addr: port 0"),
            "{e}"
        );
        // An unquoted Go-style address is a plain YAML string.
        let c = parse(&format!(
            "{TOKENS}cs_invoker_pool:\n  http:\n    addr: :9000\n"
        ))
        .unwrap();
        assert_eq!(c.http_addr.port, 9000);
    }

    #[test]
    fn sandbox_none_needs_consent() {
        let e = err(&format!(
            "{TOKENS}cs_invoker_pool:\n  sandbox:\n    cgroup: none\n"
        ));
        assert!(
            e.contains("cs_invoker_pool.sandbox.cgroup: none turns off per-child cgroups"),
            "{e}"
        );
        let c = parse(&format!(
            "{TOKENS}cs_invoker_pool:\n  sandbox:\n    cgroup: none\n    allow_unconfined: true\n"
        ))
        .unwrap();
        assert!(!c.sandbox_policy().require);
    }

    #[test]
    fn topics_validated() {
        let e = err(&format!(
            "{TOKENS}      topics: {{ invoke: x, results: x }}\n"
        ));
        assert!(
            e.contains("plugins.messaging.codeq.topics.results: must differ"),
            "{e}"
        );
        let e = err(&format!("{TOKENS}      topics: {{ invoke: \"a b\" }}\n"));
        assert!(
            e.contains("plugins.messaging.codeq.topics.invoke: must be at most 255"),
            "{e}"
        );
    }

    #[test]
    fn yaml_errors() {
        let e = err("cs_invoker_pool:\n  http: [\n");
        assert!(e.starts_with("configuration: not valid YAML"), "{e}");
        let e = err("a: 1\na: 2\n");
        assert!(
            e.contains("not valid YAML") && e.contains("duplicate"),
            "{e}"
        );
        // The offending line is not echoed: it may hold a secret.
        let e = err("plugins: { persistence: { kvrocks: { auth: { password: hunter2 ] } } }\n");
        assert!(
            e.contains("not valid YAML") && !e.contains("hunter2"),
            "{e}"
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let c = parse_env(
            &format!("{TOKENS}  persistence: {{ kvrocks: {{ auth: {{ password: hunter2 }} }} }}\n"),
            &[(ENV_CODEQ_WORKER_TOKEN, "wsecret")],
        )
        .unwrap();
        let all = format!("{c:?}\n{}", c.summary());
        for secret in ["ptok", "hunter2", "wsecret"] {
            assert!(!all.contains(secret), "{secret} leaked:\n{all}");
        }
        assert!(c.summary().contains("password=set (redacted)"));
    }

    #[test]
    fn load_and_check_config() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yaml");
        std::fs::write(
            &p,
            "cs_invoker_pool:\n  http:\n    addr: \":1\"\n  bogus: 1\n",
        )
        .unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("invalid configuration {}:", p.display())),
            "{e}"
        );
        assert!(e.contains("cs_invoker_pool.bogus: unknown key"), "{e}");
        let e = Config::load(dir.path().join("missing.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot read the configuration file") && e.contains("--config"),
            "{e}"
        );
        std::fs::write(&p, [0xffu8, 0xfe, b'a']).unwrap();
        assert!(Config::load(&p)
            .unwrap_err()
            .to_string()
            .contains("not UTF-8"));
        std::fs::write(&p, vec![b'#'; (MAX_FILE_BYTES + 1) as usize]).unwrap();
        assert!(Config::load(&p)
            .unwrap_err()
            .to_string()
            .contains("larger than"));
    }

    /// The packaged example must load as it ships (env overrides aside, which the test ignores
    /// by reading it through `from_yaml_str` with an empty environment).
    #[test]
    fn packaged_example_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/config.yaml");
        let text = std::fs::read_to_string(path).expect("packaging/config.yaml");
        let c = Config::from_yaml_str(&text, &|_| None).expect("valid");
        assert_eq!(c.codeq.worker_stream_addr, "127.0.0.1:9091");
        assert_eq!(c.codeq.producer_stream_addr, "127.0.0.1:9092");
        assert_eq!(c.kvrocks.addr, "127.0.0.1:6666");
        assert_eq!(c.http_addr.to_string(), ":8082");
        let summary = check_config(path).expect("check-config passes");
        assert!(summary.contains("is valid"), "{summary}");
    }

    /// The field names serde's derive passes to `deserialize_struct` for `T`.
    fn fields<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
        struct Probe(&'static [&'static str]);
        impl<'de> Deserializer<'de> for &mut Probe {
            type Error = de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                self.0 = fields;
                Err(de::Error::custom("probed"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let mut probe = Probe(&[]);
        let _ = T::deserialize(&mut probe);
        probe.0
    }

    /// `validate` reads each key once, every key the file structs declare and no other.
    #[test]
    fn every_declared_key_is_read_and_only_those() {
        let mut v = Validator::new(&|_| None);
        v.validate(SousFile::default());
        let mut unique = v.read.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), v.read.len(), "{:?}", v.read);
        assert_eq!(v.read.len(), 45, "{:?}", v.read);
        // A file with every key read, each set to null: serde takes them all.
        let mut root = Map::new();
        for key in &v.read {
            let mut parts: Vec<&str> = key.split('.').collect();
            let leaf = parts.pop().unwrap();
            let mut node = &mut root;
            for p in parts {
                let next = node.entry(p).or_insert_with(|| Value::Object(Map::new()));
                node = next.as_object_mut().unwrap();
            }
            node.insert(leaf.to_string(), Value::Null);
        }
        let text = Value::Object(root).to_string();
        let (_, ignored) = read_file(&text).unwrap();
        assert!(ignored.is_empty(), "{ignored:?}");
        // And every field of the structs is among the keys read (the slices leave out the
        // fields that are sections: `topics`, `auth`).
        let mut declared = Vec::new();
        for (section, keys) in [
            ("cs_invoker_pool.http", fields::<HttpFile>()),
            ("cs_invoker_pool.workers", fields::<WorkersFile>()),
            ("cs_invoker_pool.cache", fields::<CacheFile>()),
            ("cs_invoker_pool.limits", fields::<LimitsFile>()),
            ("cs_invoker_pool.codeq", fields::<CodeqFile>()),
            ("cs_invoker_pool.shutdown", fields::<ShutdownFile>()),
            ("cs_invoker_pool.sandbox", fields::<SandboxFile>()),
            ("cs_invoker_pool.pool", fields::<PoolFile>()),
            ("cs_invoker_pool.http_fetch", fields::<HttpFetchFile>()),
            ("cs_invoker_pool.metrics", fields::<MetricsFile>()),
            ("cs_invoker_pool.tracing", fields::<TracingFile>()),
            ("plugins.messaging.codeq", &fields::<SousCodeqFile>()[..4]),
            ("plugins.messaging.codeq.topics", fields::<TopicsFile>()),
            ("plugins.persistence.kvrocks", &fields::<KvrocksFile>()[..1]),
            ("plugins.persistence.kvrocks.auth", fields::<AuthFile>()),
            ("cs_control.limits", fields::<ControlLimitsFile>()),
        ] {
            declared.extend(keys.iter().map(|k| format!("{section}.{k}")));
        }
        declared.sort();
        assert_eq!(declared, unique);
        assert_eq!(
            fields::<InvokerFile>(),
            invoker_schema()[0].1,
            "every section of cs_invoker_pool is read"
        );
        // The hints list sections and keys in the order of the example configuration.
        let schema: Vec<String> = invoker_schema()
            .into_iter()
            .map(|(s, keys)| format!("{s}: {}", keys.join(" ")))
            .collect();
        assert_eq!(
            schema,
            [
                ": http workers cache limits codeq shutdown sandbox pool http_fetch metrics tracing",
                "http: addr",
                "workers: threads max_inflight max_waiting max_waiting_per_version",
                "cache: bundles_max bytes_max",
                "limits: max_result_bytes max_error_bytes max_log_bytes max_publishes",
                "codeq: lease_seconds worker_id max_message_bytes max_task_bytes",
                "shutdown: drain_seconds",
                "sandbox: require allow_unconfined cgroup child_bin",
                "pool: prewarm max_children max_uses idle_seconds",
                "http_fetch: allow_private_networks max_response_bytes",
                "metrics: max_function_series",
                "tracing: enabled endpoint protocol sampling_ratio service_name queue_size",
            ]
        );
    }

    #[test]
    fn every_problem_of_one_section_at_once() {
        let e = parse(&format!(
            "{TOKENS}cs_invoker_pool:\n  workers:\n    threads: 0\n    max_inflight: x\n    \
             bogus: 1\n    max_waitin: 2\n  limits: {{ max_result_bytes: 1TiB, max_log_bytes: [] }}\n"
        ))
        .unwrap_err();
        let got: Vec<String> = e.problems().iter().map(|p| p.to_string()).collect();
        for want in [
            "cs_invoker_pool.workers.threads: must be between 1 and 1024, got 0",
            "cs_invoker_pool.workers.max_inflight: must be a whole number between 1 and 100000, got a string",
            "cs_invoker_pool.workers.bogus: unknown key; the keys here are `threads`, `max_inflight`, `max_waiting`, `max_waiting_per_version`",
            "cs_invoker_pool.workers.max_waitin: unknown key; did you mean `cs_invoker_pool.workers.max_waiting`?",
            "cs_invoker_pool.limits.max_result_bytes: must be a size in bytes (a number, or with a unit as in 512MiB), got \"1TiB\"",
            "cs_invoker_pool.limits.max_log_bytes: must be a size in bytes (a number, or with a unit as in 512MiB), got a list",
        ] {
            assert!(got.iter().any(|g| g == want), "{want}\nnot in {got:#?}");
        }
        assert_eq!(got.len(), 6, "{got:#?}");
    }

    #[test]
    fn a_list_or_mapping_where_a_value_belongs() {
        // One problem for the value, no unknown key for what is inside it.
        let e = parse(&format!(
            "{TOKENS}cs_invoker_pool:\n  workers:\n    threads: {{ a: 1, b: [2] }}\n"
        ))
        .unwrap_err();
        assert_eq!(
            e.problems(),
            [Problem {
                key: "cs_invoker_pool.workers.threads".into(),
                message: "must be a whole number between 1 and 1024, got a mapping".into()
            }]
        );
        let e = err(&format!("{TOKENS}cs_invoker_pool:\n  sandbox: [1]\n"));
        assert!(
            e.contains("cs_invoker_pool.sandbox: must be a mapping of keys, got a list"),
            "{e}"
        );
        let e = err("plugins: 5\n");
        assert!(
            e.contains("plugins: must be a mapping of keys, got a number"),
            "{e}"
        );
        // A misplaced key is pointed to its section.
        let e = err(&format!(
            "{TOKENS}cs_invoker_pool:\n  pool:\n    threads: 2\n"
        ));
        assert!(
            e.contains("cs_invoker_pool.pool.threads: unknown key; did you mean `cs_invoker_pool.workers.threads`?"),
            "{e}"
        );
    }

    #[test]
    fn otlp_protocol_comes_from_the_key_then_the_standard_variables() {
        use crate::tracing_otel::Protocol;
        let c = parse_env(TOKENS, &[(ENV_OTLP_PROTOCOL, "http/protobuf")]).unwrap();
        assert_eq!(c.tracing.protocol, Protocol::HttpProtobuf);
        let both = [
            (ENV_OTLP_PROTOCOL, "http/protobuf"),
            (ENV_OTLP_TRACES_PROTOCOL, "grpc"),
        ];
        let c = parse_env(TOKENS, &both).unwrap();
        assert_eq!(c.tracing.protocol, Protocol::Grpc);
        let keyed = format!("{TOKENS}cs_invoker_pool:\n  tracing: {{ protocol: grpc }}\n");
        let c = parse_env(&keyed, &[(ENV_OTLP_PROTOCOL, "http/protobuf")]).unwrap();
        assert_eq!(c.tracing.protocol, Protocol::Grpc);
        let e = parse_env(TOKENS, &[(ENV_OTLP_PROTOCOL, "http/json")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("OTEL_EXPORTER_OTLP_PROTOCOL: must be grpc or http/protobuf"),
            "{e}"
        );
    }

    #[test]
    fn ready_expiry_from_the_environment() {
        let c = parse(TOKENS).unwrap();
        assert_eq!(c.codeq.ready_expiry, None);
        assert!(!c.summary().contains("ready_expiry"));
        let c = parse_env(TOKENS, &[(ENV_READY_EXPIRY_MS, "400")]).unwrap();
        assert_eq!(c.codeq.ready_expiry, Some(Duration::from_millis(400)));
        assert!(
            c.summary().contains("ready_expiry=400ms"),
            "{}",
            c.summary()
        );
        assert_eq!(c.env_overrides, [ENV_READY_EXPIRY_MS]);
        for bad in ["x", "0", "-5", "600001"] {
            let e = parse_env(TOKENS, &[(ENV_READY_EXPIRY_MS, bad)])
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!(
                    "CS_CODEQ_READY_EXPIRY_MS: must be milliseconds from 1 to 600000, got {bad:?}"
                )),
                "{e}"
            );
        }
    }

    /// Defaults are written once, by the component that uses them.
    #[test]
    fn defaults_are_the_components_own() {
        let c = parse(TOKENS).unwrap();
        let pipeline = PipelineConfig::default();
        assert_eq!(c.workers.max_inflight, pipeline.max_inflight);
        assert_eq!(c.workers.max_waiting, pipeline.max_waiting);
        assert_eq!(
            c.workers.max_waiting_per_version,
            pipeline.max_waiting_per_version
        );
        assert_eq!(c.cache.bundles_max, pipeline.cache_bundles_max);
        assert_eq!(c.cache.bytes_max, pipeline.cache_bytes_max as u64);
        assert_eq!(c.limits.max_publishes, pipeline.max_publishes);
        assert_eq!(c.codeq.max_message_bytes, pipeline.max_message_bytes);
        assert_eq!(c.codeq.max_task_bytes, pipeline.max_task_bytes);
        assert_eq!(c.output_limits(), OutputLimits::default());
        let store = StoreConfig::default();
        assert_eq!(c.kvrocks.addr, store.addr);
        assert_eq!(c.activation_ttl_seconds, store.activation_ttl_seconds);
        assert_eq!(
            c.http_fetch.max_response_bytes,
            HttpConfig::default().max_response_bytes
        );
        assert_eq!(
            c.codeq.lease.as_secs(),
            u64::from(WorkerConfig::DEFAULT_LEASE_SECONDS)
        );
        let t = Topics::default();
        assert_eq!(
            [&c.codeq.topics.invoke, &c.codeq.topics.results],
            [&t.invoke, &t.results]
        );
        assert_eq!(
            c.pool,
            PoolSettings {
                prewarm: PoolConfig::default_prewarm().min(PoolConfig::DEFAULT_MAX_CHILDREN),
                max_children: PoolConfig::DEFAULT_MAX_CHILDREN,
                max_uses: PoolConfig::DEFAULT_MAX_USES,
                idle: PoolConfig::DEFAULT_IDLE_TIMEOUT,
            }
        );
    }

    #[test]
    fn sizes_and_suggestions() {
        assert_eq!(parse_size("512MiB"), Some(512 * MIB));
        assert_eq!(parse_size("64 kib"), Some(64 * KIB));
        assert_eq!(parse_size("1GB"), Some(1_000_000_000));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("1.5MiB"), None);
        assert_eq!(parse_size("99999999999999999999GiB"), None);
        assert_eq!(
            suggest("workrs", "", &["workers", "pool"]).as_deref(),
            Some("cs_invoker_pool.workers")
        );
        assert_eq!(suggest("qqqq", "", &["pool"]), None);
    }
}
