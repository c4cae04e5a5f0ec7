//! The `serve` configuration: one YAML file shared with the rest of Sous (SPEC §7).
//!
//! Operators keep a single Sous `config.yaml`; the invoker reads the sections it uses and ignores
//! the others (`cs_http_gateway`, `tikti`, `plugins.authn`, the legacy top-level `kvrocks:` and
//! `codeq:` sections, `cluster_name`, `environment`, …), so the same file can be handed to every
//! component. Only `cs_invoker_pool` is ours: there an unknown key is an error (with a "did you
//! mean" when one is close), because a misspelt limit silently falling back to its default is the
//! kind of mistake that is found in production.
//!
//! The file is parsed into an untyped tree and read key by key, rather than through derived
//! `Deserialize` structs, so that every problem names the full key path and what to do, all
//! problems are reported at once, and defaults live next to their validation.
//!
//! Precedence: environment variable, then file, then default. An environment variable set to the
//! empty string counts as unset (so `${VAR:-}` in a unit or compose file does not override).
//!
//! | variable                  | overrides                                          |
//! |---------------------------|----------------------------------------------------|
//! | `CS_KVROCKS_ADDR`         | `plugins.persistence.kvrocks.addr`                 |
//! | `CS_KVROCKS_PASSWORD`     | `plugins.persistence.kvrocks.auth.password` (and implies `auth.mode: password`) |
//! | `CS_CODEQ_PRODUCER_TOKEN` | `plugins.messaging.codeq.producer_token`           |
//! | `CS_CODEQ_WORKER_TOKEN`   | `plugins.messaging.codeq.worker_token`             |
//! | `CS_INVOKER_HTTP_ADDR`    | `cs_invoker_pool.http.addr`                        |
//! | `CS_CODEQ_WORKER_ADDR`    | `plugins.messaging.codeq.worker_stream_addr`       |
//! | `CS_CODEQ_PRODUCER_ADDR`  | `plugins.messaging.codeq.producer_stream_addr`     |
//! | `CS_INVOKER_MAX_INFLIGHT` | `cs_invoker_pool.workers.max_inflight`             |
//!
//! The sandbox-child binary keeps its own variable, `CS_SANDBOX_CHILD_BIN`
//! ([`crate::pool::CHILD_BIN_ENV`]), which wins over `cs_invoker_pool.sandbox.child_bin`.

use crate::cgroup::CgroupMode;
use crate::host::http::HttpConfig;
use crate::pool::PoolConfig;
use crate::sandbox::{Sandbox, SandboxPolicy};
use crate::store::StoreConfig;
use sandbox_child::protocol::OutputLimits;
use serde_json::{Map, Value};
use std::fmt::{self, Write as _};
use std::io::Read as _;
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

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Key paths used in messages, kept in one place so a message and the key it names cannot drift.
const K_HTTP_ADDR: &str = "cs_invoker_pool.http.addr";
const K_MAX_INFLIGHT: &str = "cs_invoker_pool.workers.max_inflight";
const K_KV_PASSWORD: &str = "plugins.persistence.kvrocks.auth.password";
const K_KV_MODE: &str = "plugins.persistence.kvrocks.auth.mode";
const K_PRODUCER_TOKEN: &str = "plugins.messaging.codeq.producer_token";
const K_WORKER_TOKEN: &str = "plugins.messaging.codeq.worker_token";

/// The keys allowed under `cs_invoker_pool`, section by section (`""` is the section itself).
/// Used both to reject unknown keys and to suggest the right place for a misplaced one.
const INVOKER_SCHEMA: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "http",
            "workers",
            "cache",
            "limits",
            "codeq",
            "shutdown",
            "sandbox",
            "pool",
            "http_fetch",
        ],
    ),
    ("http", &["addr"]),
    (
        "workers",
        &[
            "threads",
            "max_inflight",
            "max_waiting",
            "max_waiting_per_version",
        ],
    ),
    ("cache", &["bundles_max", "bytes_max"]),
    (
        "limits",
        &[
            "max_result_bytes",
            "max_error_bytes",
            "max_log_bytes",
            "max_publishes",
        ],
    ),
    (
        "codeq",
        &[
            "lease_seconds",
            "worker_id",
            "max_message_bytes",
            "max_task_bytes",
        ],
    ),
    ("shutdown", &["drain_seconds"]),
    (
        "sandbox",
        &["require", "allow_unconfined", "cgroup", "child_bin"],
    ),
    (
        "pool",
        &["prewarm", "max_children", "max_uses", "idle_seconds"],
    ),
    (
        "http_fetch",
        &["allow_private_networks", "max_response_bytes"],
    ),
];

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

/// A secret string (token, password). Its `Debug` and `Display` never show the value, so a
/// configuration can be logged or printed by `check-config` without leaking it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The value, for the one place that sends it (AUTH, the codeQ handshake).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
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

impl ListenAddr {
    /// Parses `:port`, `host:port` or `[v6]:port`.
    pub fn parse(s: &str) -> Result<ListenAddr, String> {
        let (host, port) = split_host_port(s)?;
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
    /// The replica's in-flight permit count (SPEC §1 step 5).
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
pub struct Topics {
    pub invoke: String,
    pub results: String,
    pub dlq_invoke: String,
    pub dlq_results: String,
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
        let root: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            // No source snippet in the message: the offending line may hold a token or password,
            // and this message goes to logs.
            let options = serde_saphyr::options! { with_snippet: false };
            serde_saphyr::from_str_with_options(text, options).map_err(|e| {
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
            })?
        };
        let mut r = Reader {
            env,
            problems: Vec::new(),
            overrides: Vec::new(),
            notes: Vec::new(),
        };
        let root = match &root {
            Value::Null => Node::empty(""),
            Value::Object(m) => Node::of("", m),
            other => {
                return Err(ConfigError::Invalid {
                    path: None,
                    problems: vec![Problem {
                        key: "(top level)".to_string(),
                        message: format!(
                            "must be a mapping of sections (cs_invoker_pool:, plugins:, …), got {}",
                            kind(other)
                        ),
                    }],
                })
            }
        };
        let cfg = r.read(&root);
        if r.problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid {
                path: None,
                problems: r.problems,
            })
        }
    }

    /// The KVRocks connection settings; timeouts and the correlation TTL keep their defaults.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            addr: self.kvrocks.addr.clone(),
            password: self
                .kvrocks
                .password
                .as_ref()
                .map(|s| s.expose().to_string()),
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

    /// The output bounds sent to children; the stack bound is not configurable (SPEC §9).
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
             max_message={} max_task={}",
            self.codeq.worker_stream_addr,
            self.codeq.producer_stream_addr,
            self.codeq.worker_id,
            self.codeq.lease.as_secs(),
            human_bytes(self.codeq.max_message_bytes as u64),
            human_bytes(self.codeq.max_task_bytes as u64)
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

/// A mapping in the tree and its key path (`""` for the root).
struct Node<'v> {
    path: String,
    map: Option<&'v Map<String, Value>>,
}

impl<'v> Node<'v> {
    fn empty(path: &str) -> Node<'v> {
        Node {
            path: path.to_string(),
            map: None,
        }
    }

    fn of(path: &str, map: &'v Map<String, Value>) -> Node<'v> {
        Node {
            path: path.to_string(),
            map: Some(map),
        }
    }

    fn key(&self, k: &str) -> String {
        if self.path.is_empty() {
            k.to_string()
        } else {
            format!("{}.{k}", self.path)
        }
    }

    /// The value of `k`; an explicit `null` (`key:` with nothing after it) counts as absent.
    fn get(&self, k: &str) -> Option<&'v Value> {
        self.map?.get(k).filter(|v| !v.is_null())
    }
}

/// Reads the tree, collecting problems instead of stopping at the first.
struct Reader<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    problems: Vec<Problem>,
    overrides: Vec<&'static str>,
    notes: Vec<String>,
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

impl Reader<'_> {
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// A non-empty environment variable, recorded as an override.
    fn env(&mut self, name: &'static str) -> Option<String> {
        let v = (self.env)(name).filter(|v| !v.is_empty())?;
        self.overrides.push(name);
        Some(v)
    }

    fn section<'v>(&mut self, parent: &Node<'v>, k: &str) -> Node<'v> {
        let path = parent.key(k);
        match parent.get(k) {
            None => Node::empty(&path),
            Some(Value::Object(m)) => Node::of(&path, m),
            Some(other) => {
                let msg = format!("must be a mapping of keys, got {}", kind(other));
                self.problem(&path, msg);
                Node::empty(&path)
            }
        }
    }

    /// Reports every key of `node` not in `known`, with a suggestion where one is close.
    fn deny_unknown(&mut self, node: &Node<'_>, section: &str) {
        let Some(map) = node.map else { return };
        let known = INVOKER_SCHEMA
            .iter()
            .find(|(s, _)| *s == section)
            .map_or(&[][..], |(_, k)| *k);
        for k in map.keys() {
            if known.contains(&k.as_str()) {
                continue;
            }
            let hint = match suggest(k, section, known) {
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
            self.problem(node.key(k), hint);
        }
    }

    fn int(&mut self, node: &Node<'_>, k: &str, default: u64, min: u64, max: u64) -> u64 {
        let key = node.key(k);
        match node.get(k) {
            None => default,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if (min..=max).contains(&v) => v,
                _ => {
                    self.problem(key, format!("must be between {min} and {max}, got {n}"));
                    default
                }
            },
            Some(other) => {
                self.problem(
                    key,
                    format!(
                        "must be a whole number between {min} and {max}, got {}",
                        kind(other)
                    ),
                );
                default
            }
        }
    }

    /// A size in bytes: a number, or a string with a unit (`512MiB`, `64 KiB`, `1GB`).
    fn bytes(&mut self, node: &Node<'_>, k: &str, default: u64, min: u64, max: u64) -> u64 {
        let key = node.key(k);
        let parsed = match node.get(k) {
            None => return default,
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| n.to_string()),
            Some(Value::String(s)) => parse_size(s).ok_or_else(|| format!("{s:?}")),
            Some(other) => Err(kind(other).to_string()),
        };
        match parsed {
            Ok(v) if (min..=max).contains(&v) => v,
            Ok(v) => {
                self.problem(
                    key,
                    format!(
                        "must be between {} and {}, got {}",
                        human_bytes(min),
                        human_bytes(max),
                        human_bytes(v)
                    ),
                );
                default
            }
            Err(got) => {
                self.problem(
                    key,
                    format!("must be a size in bytes (a number, or with a unit as in 512MiB), got {got}"),
                );
                default
            }
        }
    }

    fn boolean(&mut self, node: &Node<'_>, k: &str, default: bool) -> bool {
        match node.get(k) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                let msg = format!("must be true or false, got {}", kind(other));
                self.problem(node.key(k), msg);
                default
            }
        }
    }

    /// A string; a number is taken as its text (`password: 123456` is a string to Sous too).
    /// An empty string counts as absent.
    fn string(&mut self, node: &Node<'_>, k: &str) -> Option<String> {
        match node.get(k) {
            None => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                let msg = format!(
                    "must be a string, got {}; quote the value if it looks like another type",
                    kind(other)
                );
                self.problem(node.key(k), msg);
                None
            }
        }
    }

    /// A `host:port` target to connect to: env, file or default; Go-style `:port` means
    /// localhost, as a Go client would dial it.
    fn target(&mut self, node: &Node<'_>, k: &str, env: &'static str, default: &str) -> String {
        let (raw, key) = match self.env(env) {
            Some(v) => (v, format!("{env} (overriding {})", node.key(k))),
            None => match self.string(node, k) {
                Some(v) => (v, node.key(k)),
                None => return default.to_string(),
            },
        };
        match split_host_port(&raw) {
            Ok((_, 0)) => {
                self.problem(key, format!("port 0 cannot be connected to, got {raw:?}"));
                default.to_string()
            }
            Ok((None, port)) => format!("127.0.0.1:{port}"),
            Ok((Some(h), port)) if h.contains(':') => format!("[{h}]:{port}"),
            Ok((Some(h), port)) => format!("{h}:{port}"),
            Err(e) => {
                self.problem(key, e);
                default.to_string()
            }
        }
    }

    fn read(&mut self, root: &Node<'_>) -> Config {
        let inv = self.section(root, "cs_invoker_pool");
        self.deny_unknown(&inv, "");

        // http
        let http = self.section(&inv, "http");
        self.deny_unknown(&http, "http");
        let default_http = ListenAddr {
            host: None,
            port: 8082,
        };
        let http_addr = {
            let (raw, key) = match self.env(ENV_HTTP_ADDR) {
                Some(v) => (
                    Some(v),
                    format!("{ENV_HTTP_ADDR} (overriding {K_HTTP_ADDR})"),
                ),
                None => (self.string(&http, "addr"), K_HTTP_ADDR.to_string()),
            };
            match raw.map(|r| ListenAddr::parse(&r)) {
                None => default_http,
                Some(Ok(a)) => a,
                Some(Err(e)) => {
                    self.problem(key, e);
                    default_http
                }
            }
        };

        // workers
        let w = self.section(&inv, "workers");
        self.deny_unknown(&w, "workers");
        let threads = self.int(&w, "threads", 32, 1, 1024) as usize;
        let mut max_inflight = self.int(&w, "max_inflight", 2048, 1, 100_000) as usize;
        if let Some(v) = self.env(ENV_MAX_INFLIGHT) {
            match v.trim().parse::<u64>() {
                Ok(n) if (1..=100_000).contains(&n) => max_inflight = n as usize,
                _ => self.problem(
                    format!("{ENV_MAX_INFLIGHT} (overriding {K_MAX_INFLIGHT})"),
                    format!("must be between 1 and 100000, got {v:?}"),
                ),
            }
        }
        let max_waiting = self.int(&w, "max_waiting", max_inflight as u64, 0, 1_000_000) as usize;
        let max_waiting_per_version =
            self.int(&w, "max_waiting_per_version", 64, 0, 1_000_000) as usize;

        // cache
        let c = self.section(&inv, "cache");
        self.deny_unknown(&c, "cache");
        let cache = CacheSettings {
            bundles_max: self.int(&c, "bundles_max", 1000, 1, 1_000_000) as usize,
            bytes_max: self.bytes(&c, "bytes_max", 512 * MIB, MIB, 64 * GIB),
        };

        // limits
        let l = self.section(&inv, "limits");
        self.deny_unknown(&l, "limits");
        let limits = LimitsSettings {
            max_result_bytes: self.bytes(&l, "max_result_bytes", 256 * KIB, KIB, 16 * MIB) as u32,
            max_error_bytes: self.bytes(&l, "max_error_bytes", 64 * KIB, 256, MIB) as u32,
            max_log_bytes: self.bytes(&l, "max_log_bytes", MIB, KIB, 64 * MIB) as u32,
            max_publishes: self.int(&l, "max_publishes", 100, 0, 100_000) as u32,
        };

        // codeq (ours) + plugins.messaging.codeq (Sous')
        let cq = self.section(&inv, "codeq");
        self.deny_unknown(&cq, "codeq");
        let lease = Duration::from_secs(self.int(&cq, "lease_seconds", 60, 2, 3600));
        let max_message_bytes =
            self.bytes(&cq, "max_message_bytes", 4 * MIB, 64 * KIB, 64 * MIB) as usize;
        let max_task_bytes = self.bytes(&cq, "max_task_bytes", 4 * MIB, KIB, 64 * MIB) as usize;
        // A result carries at most the result, the error and the stack; with its envelope it
        // must fit in one codeQ message.
        let largest_result = u64::from(limits.max_result_bytes)
            + u64::from(limits.max_error_bytes)
            + 8 * KIB
            + crate::host::ENVELOPE_RESERVE_BYTES as u64;
        if largest_result > max_message_bytes as u64 {
            self.problem(
                cq.key("max_message_bytes"),
                format!(
                    "is {}, but a result can take {} (limits.max_result_bytes + \
                     limits.max_error_bytes + the 8 KiB stack + {} for the envelope): raise it \
                     or lower the limits",
                    human_bytes(max_message_bytes as u64),
                    human_bytes(largest_result),
                    human_bytes(crate::host::ENVELOPE_RESERVE_BYTES as u64)
                ),
            );
        }
        let worker_id = match self.string(&cq, "worker_id") {
            Some(id) => {
                if id.len() > 128 || id.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
                    self.problem(
                        cq.key("worker_id"),
                        format!("must be at most 128 characters without spaces, got {id:?}"),
                    );
                }
                id
            }
            None => default_worker_id(self.env),
        };

        let plugins = self.section(root, "plugins");
        let messaging = self.section(&plugins, "messaging");
        let sq = self.section(&messaging, "codeq");
        let worker_stream_addr = self.target(
            &sq,
            "worker_stream_addr",
            ENV_CODEQ_WORKER_ADDR,
            "127.0.0.1:9091",
        );
        let producer_stream_addr = self.target(
            &sq,
            "producer_stream_addr",
            ENV_CODEQ_PRODUCER_ADDR,
            "127.0.0.1:9092",
        );
        let producer_token = self
            .env(ENV_CODEQ_PRODUCER_TOKEN)
            .or_else(|| self.string(&sq, "producer_token"));
        let worker_token = self
            .env(ENV_CODEQ_WORKER_TOKEN)
            .or_else(|| self.string(&sq, "worker_token"))
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
        let topics_node = self.section(&sq, "topics");
        let topic = |r: &mut Self, k: &str, default: &str| -> String {
            let t = r
                .string(&topics_node, k)
                .unwrap_or_else(|| default.to_string());
            let ok = t.len() <= 255
                && t.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'));
            if !ok {
                r.problem(
                    topics_node.key(k),
                    format!("must be at most 255 characters of [A-Za-z0-9._-], got {t:?}"),
                );
            }
            t
        };
        let topics = Topics {
            invoke: topic(self, "invoke", "cs.invoke"),
            results: topic(self, "results", "cs.results"),
            dlq_invoke: topic(self, "dlq_invoke", "cs.dlq.invoke"),
            dlq_results: topic(self, "dlq_results", "cs.dlq.results"),
        };
        if topics.invoke == topics.results {
            self.problem(
                topics_node.key("results"),
                format!(
                    "must differ from {}: the invoker would consume its own results",
                    topics_node.key("invoke")
                ),
            );
        }

        // plugins.persistence.kvrocks
        let persistence = self.section(&plugins, "persistence");
        let kv = self.section(&persistence, "kvrocks");
        let kv_addr = self.target(&kv, "addr", ENV_KVROCKS_ADDR, "127.0.0.1:6666");
        let auth = self.section(&kv, "auth");
        let mode = self.string(&auth, "mode");
        let file_password = self.string(&auth, "password");
        let env_password = self.env(ENV_KVROCKS_PASSWORD);
        let password = match (mode.as_deref(), env_password, file_password) {
            (_, Some(p), _) => Some(p),
            (Some("none"), None, Some(_)) => {
                self.notes.push(format!(
                    "{K_KV_PASSWORD} is ignored because {K_KV_MODE} is none"
                ));
                None
            }
            (Some("none"), None, None) => None,
            (Some("password"), None, None) => {
                self.problem(
                    K_KV_PASSWORD,
                    format!(
                        "required when {K_KV_MODE} is password; set it or {ENV_KVROCKS_PASSWORD}"
                    ),
                );
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
        };

        // cs_control.limits
        let control = self.section(root, "cs_control");
        let control_limits = self.section(&control, "limits");
        let activation_ttl_seconds = self.int(
            &control_limits,
            "activation_ttl_seconds",
            604_800,
            60,
            31_536_000,
        );

        // shutdown
        let sd = self.section(&inv, "shutdown");
        self.deny_unknown(&sd, "shutdown");
        let drain = Duration::from_secs(self.int(&sd, "drain_seconds", 25, 0, 3600));

        // sandbox
        let sb = self.section(&inv, "sandbox");
        self.deny_unknown(&sb, "sandbox");
        let require = self.boolean(&sb, "require", true);
        let allow_unconfined = self.boolean(&sb, "allow_unconfined", false);
        let cgroup = match self.string(&sb, "cgroup").as_deref() {
            None | Some("auto") => CgroupChoice::Auto,
            Some("v1") => CgroupChoice::V1,
            Some("v2") => CgroupChoice::V2,
            Some("none") => CgroupChoice::None,
            Some(other) => {
                self.problem(
                    sb.key("cgroup"),
                    format!("must be one of auto, v1, v2, none, got {other:?}"),
                );
                CgroupChoice::Auto
            }
        };
        if cgroup == CgroupChoice::None && require && !allow_unconfined {
            self.problem(
                sb.key("cgroup"),
                "none turns off per-child cgroups, which sandbox.require forbids; choose auto, \
                 v1 or v2, or set sandbox.allow_unconfined: true",
            );
        }
        let child_bin = self.string(&sb, "child_bin").map(PathBuf::from);
        if let Some(p) = &child_bin {
            if !p.is_absolute() {
                self.problem(
                    sb.key("child_bin"),
                    format!(
                        "must be an absolute path (the daemon's working directory is not \
                         fixed), got {:?}",
                        p.display().to_string()
                    ),
                );
            }
        }

        // pool
        let po = self.section(&inv, "pool");
        self.deny_unknown(&po, "pool");
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
        let max_children = self.int(&po, "max_children", 256, 1, 10_000);
        let prewarm = self.int(&po, "prewarm", cores.min(max_children), 0, 10_000);
        if prewarm > max_children {
            self.problem(
                po.key("prewarm"),
                format!(
                    "must not exceed {} ({max_children}), got {prewarm}",
                    po.key("max_children")
                ),
            );
        }
        let pool = PoolSettings {
            prewarm: prewarm as usize,
            max_children: max_children as usize,
            max_uses: self.int(&po, "max_uses", 10_000, 1, 10_000_000) as u32,
            idle: Duration::from_secs(self.int(&po, "idle_seconds", 300, 1, 86_400)),
        };

        // http_fetch
        let hf = self.section(&inv, "http_fetch");
        self.deny_unknown(&hf, "http_fetch");
        let http_fetch = HttpFetchSettings {
            allow_private_networks: self.boolean(&hf, "allow_private_networks", false),
            max_response_bytes: self.bytes(&hf, "max_response_bytes", 4 * MIB, KIB, 64 * MIB)
                as usize,
        };
        if http_fetch.allow_private_networks {
            self.notes.push(
                "cs_invoker_pool.http_fetch.allow_private_networks is on: functions can reach \
                 loopback and private ranges"
                    .to_string(),
            );
        }
        if !require || allow_unconfined {
            self.notes.push(
                "the server will start even if children cannot be fully confined".to_string(),
            );
        }

        Config {
            http_addr,
            workers: WorkersSettings {
                threads,
                max_inflight,
                max_waiting,
                max_waiting_per_version,
            },
            cache,
            limits,
            kvrocks: KvrocksSettings {
                addr: kv_addr,
                password: password.map(Secret),
            },
            codeq: CodeqSettings {
                worker_stream_addr,
                producer_stream_addr,
                producer_token: Secret(producer_token.unwrap_or_default()),
                worker_token: Secret(worker_token.unwrap_or_default()),
                topics,
                lease,
                worker_id,
                max_message_bytes,
                max_task_bytes,
            },
            activation_ttl_seconds,
            drain,
            sandbox: SandboxSettings {
                require,
                allow_unconfined,
                cgroup,
                child_bin,
            },
            pool,
            http_fetch,
            env_overrides: std::mem::take(&mut self.overrides),
            notes: std::mem::take(&mut self.notes),
        }
    }
}

/// `host:port`, `[v6]:port` or `:port` (host `None`). The message says what to write instead.
fn split_host_port(s: &str) -> Result<(Option<String>, u16), String> {
    let s = s.trim();
    if s.contains("://") {
        return Err(format!(
            "must be host:port without a scheme (e.g. 127.0.0.1:9091), got {s:?}"
        ));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or_else(|| format!("an IPv6 address must be written [addr]:port, got {s:?}"))?;
        h.parse::<Ipv6Addr>()
            .map_err(|_| format!("{h:?} is not an IPv6 address, in {s:?}"))?;
        (Some(h.to_string()), p)
    } else {
        let (h, p) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("must be host:port or :port, got {s:?}"))?;
        if h.contains(':') {
            return Err(format!(
                "an IPv6 address must be written [addr]:port, got {s:?}"
            ));
        }
        let valid = h
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_'));
        if !valid {
            return Err(format!("{h:?} is not a host name or address, in {s:?}"));
        }
        ((!h.is_empty()).then(|| h.to_string()), p)
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("the port must be a number from 0 to 65535, got {s:?}"))?;
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
    let close = |cand: &str| {
        let d = edit_distance(&k.to_ascii_lowercase(), cand);
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
        .min_by_key(|c| edit_distance(k, c))
    {
        return Some(full(section, best));
    }
    INVOKER_SCHEMA
        .iter()
        .filter(|(s, _)| *s != section)
        .flat_map(|(s, keys)| keys.iter().map(move |key| (*s, *key)))
        .filter(|(_, key)| close(key))
        .min_by_key(|(_, key)| edit_distance(k, key))
        .map(|(s, key)| full(s, key))
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
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
"#;
        let c = parse(text).expect("valid");
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
        assert_eq!(c.store_config().password.as_deref(), Some("s3cret"));
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

    #[test]
    fn sizes_and_suggestions() {
        assert_eq!(parse_size("512MiB"), Some(512 * MIB));
        assert_eq!(parse_size("64 kib"), Some(64 * KIB));
        assert_eq!(parse_size("1GB"), Some(1_000_000_000));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("1.5MiB"), None);
        assert_eq!(parse_size("99999999999999999999GiB"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            suggest("workrs", "", &["workers", "pool"]).as_deref(),
            Some("cs_invoker_pool.workers")
        );
        assert_eq!(suggest("qqqq", "", &["pool"]), None);
    }
}
