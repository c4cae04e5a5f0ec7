//! `cs-invoker-pool run`: one function, one activation, through the real pool and a real
//! `sandbox-child`, with the local host API. Prints exactly one InvocationResult line on stdout.

use crate::host::http::{HttpConfig, HttpFetcher};
use crate::host::local::{LocalHost, StderrPublisher};
use crate::host::service::ServiceHost;
use crate::host::HostScope;
use crate::pool::{self, Job, Pool, PoolConfig};
use crate::publish::unix_ms;
use crate::sandbox::{Sandbox, SandboxPolicy};
use crate::secret::Secret;
use crate::store::{keys, RedisStore, StoreConfig};
use sandbox_proto::bundle::{self, BundleError};
use sandbox_proto::messages::{
    truncate_utf8, CtxPrincipal, CtxRef, CtxTrigger, ErrorBody, InvocationCtx, InvocationResult,
    Status, Trigger,
};
use sandbox_proto::protocol::OutputLimits;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Exit codes of `run`.
pub const EXIT_SUCCESS: i32 = 0;
pub const EXIT_FUNCTION_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

#[derive(Debug, Clone)]
pub struct RunArgs {
    pub path: PathBuf,
    pub event: Option<String>,
    pub event_file: Option<PathBuf>,
    pub tenant: String,
    pub namespace: String,
    pub function: Option<String>,
    pub trigger: String,
    pub timeout_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub child_bin: Option<PathBuf>,
    /// `--kv-url`: back `cs.kv` with this KVRocks/redis server instead of memory.
    pub kv_url: Option<String>,
    /// `--env NAME=VALUE`, repeatable: `process.env`.
    pub env: Vec<String>,
    /// `--secret NAME=VALUE`, repeatable: `cs.secrets.get(NAME)`, redacted like production.
    pub secrets: Vec<String>,
    /// `--allow-private-networks`: the fetcher may reach private and loopback addresses.
    pub allow_private_networks: bool,
}

/// `--env` values as `process.env` pairs, in the order given (a repeated name: the last wins).
fn env_pairs(args: &RunArgs) -> Result<Vec<(String, String)>, UsageError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for e in &args.env {
        match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.retain(|(n, _)| n != k);
                out.push((k.to_string(), v.to_string()));
            }
            _ => return Err(usage(format!("--env takes NAME=VALUE, got \"{e}\""))),
        }
    }
    let bytes: usize = out.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > crate::store::MAX_ENV_BYTES {
        return Err(usage(format!(
            "--env values hold {bytes} bytes, over the limit of {} (as config.env)",
            crate::store::MAX_ENV_BYTES
        )));
    }
    Ok(out)
}

/// `--secret` values: NAME=VALUE, the name as `cs.secrets.get` takes it (a `kv:a/b` name is
/// also found by its last segment, as in production).
fn secret_pairs(args: &RunArgs) -> Result<crate::secrets::Secrets, UsageError> {
    let mut pairs = Vec::new();
    if args.secrets.len() > crate::secrets::MAX_SECRETS {
        return Err(usage(format!(
            "at most {} --secret values",
            crate::secrets::MAX_SECRETS
        )));
    }
    for e in &args.secrets {
        match e.split_once('=') {
            Some((k, v)) if !k.is_empty() && k.len() <= crate::secrets::MAX_NAME_BYTES => {
                if v.len() > crate::secrets::MAX_VALUE_BYTES {
                    return Err(usage(format!(
                        "--secret {k}: the value is over {} bytes",
                        crate::secrets::MAX_VALUE_BYTES
                    )));
                }
                let short = k.rsplit('/').next().unwrap_or(k).to_string();
                pairs.push((k.to_string(), short, v.to_string()));
            }
            // Never echo the argument: it holds the value.
            _ => return Err(usage("--secret takes NAME=VALUE with a non-empty NAME")),
        }
    }
    Ok(crate::secrets::Secrets::new(pairs))
}

/// Parses `--kv-url`: `redis://[:password@]host:port` or a bare `host:port`.
pub fn store_config_from_url(url: &str) -> Result<StoreConfig, UsageError> {
    let bad = |why: &str| {
        usage(format!(
            "--kv-url {url:?}: {why}; give redis://[:password@]host:port or host:port"
        ))
    };
    let (addr, password) = if url.contains("://") {
        let u = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if u.scheme() != "redis" {
            return Err(bad(&format!("scheme {:?} is not redis", u.scheme())));
        }
        let host = u.host_str().ok_or_else(|| bad("no host"))?;
        let port = u.port().unwrap_or(6379);
        let addr = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        (addr, u.password().map(Secret::from))
    } else {
        match url.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => (url.to_string(), None),
            _ => return Err(bad("not host:port")),
        }
    };
    Ok(StoreConfig {
        addr,
        password,
        ..StoreConfig::default()
    })
}

/// A usage error: the message says what is wrong and what to do.
#[derive(Debug)]
pub struct UsageError(pub String);

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// Reads and checks everything the user gave before anything runs.
fn event_json(args: &RunArgs) -> Result<String, UsageError> {
    let (text, source) = match (&args.event, &args.event_file) {
        (Some(_), Some(_)) => {
            return Err(usage("--event and --event-file cannot be used together"))
        }
        (Some(e), None) => (e.clone(), "--event".to_string()),
        (None, Some(f)) => (
            std::fs::read_to_string(f)
                .map_err(|e| usage(format!("--event-file {}: {e}", f.display())))?,
            format!("--event-file {}", f.display()),
        ),
        (None, None) => ("{}".to_string(), String::new()),
    };
    // Checked, not rewritten: the function sees the event as written, keys in their order.
    crate::pipeline::request::RawJson::from_text(&text)
        .map_err(|e| usage(format!("{source} is not valid JSON: {e}")))?;
    Ok(text)
}

fn check_args(args: &RunArgs) -> Result<(), UsageError> {
    if args.trigger.parse::<Trigger>().is_err() {
        return Err(usage(format!(
            "--trigger must be one of {}, got \"{}\"",
            Trigger::names(),
            args.trigger
        )));
    }
    if let Some(t) = args.timeout_ms {
        if !(1..=900_000).contains(&t) {
            return Err(usage(format!(
                "--timeout-ms must be in 1..=900000, got {t}"
            )));
        }
    }
    if let Some(m) = args.memory_mb {
        if !(16..=4096).contains(&m) {
            return Err(usage(format!("--memory-mb must be in 16..=4096, got {m}")));
        }
    }
    let function = args.function.as_deref();
    for (flag, v, min, max) in [
        ("--tenant", Some(args.tenant.as_str()), 3, 64),
        ("--namespace", Some(args.namespace.as_str()), 1, 64),
        ("--function", function, 1, 64),
    ] {
        let Some(v) = v else { continue };
        let n = v.chars().count();
        if !(min..=max).contains(&n) || keys::bad_name_char(v).is_some() {
            return Err(usage(format!(
                "{flag} must be {min}..={max} characters of {}, got \"{v}\"",
                keys::NAME_CHARSET
            )));
        }
    }
    Ok(())
}

fn function_name(args: &RunArgs) -> String {
    if let Some(f) = &args.function {
        return f.clone();
    }
    let name = args
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "function".into());
    let name = name
        .strip_suffix(".js")
        .or_else(|| name.strip_suffix(".mjs"))
        .or_else(|| name.strip_suffix(".tar"))
        .unwrap_or(&name)
        .to_string();
    // The default is only a label: characters a function name may not hold become '_'.
    let name: String = name
        .chars()
        .map(|c| if keys::is_name_char(c) { c } else { '_' })
        .take(64)
        .collect();
    if name.is_empty() {
        "function".into()
    } else {
        name
    }
}

fn print_result(r: &InvocationResult) {
    let line = serde_json::to_string(r).unwrap_or_else(|e| {
        format!(
            "{{\"activation_id\":\"{}\",\"status\":\"error\",\"error\":{{\"type\":\"SandboxError\",\"message\":\"cannot serialise the result: {e}\"}}}}",
            r.activation_id
        )
    });
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs the command; returns the process exit code.
pub async fn run(args: RunArgs) -> Result<i32, UsageError> {
    check_args(&args)?;
    let event_json = event_json(&args)?;
    let env = Arc::new(env_pairs(&args)?);
    let child_bin = match &args.child_bin {
        Some(p) => p.clone(),
        None => pool::default_child_bin().map_err(|e| UsageError(e.to_string()))?,
    };
    let activation_id = uuid::Uuid::new_v4().to_string();
    let request_id = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let function = function_name(&args);

    let mut bundle = match bundle::load_path(&args.path) {
        Ok(b) => b,
        Err(BundleError::NotFound(m)) => return Err(usage(format!("PATH {m}"))),
        Err(e) => {
            print_result(&InvocationResult {
                activation_id,
                request_id,
                status: Status::Error,
                duration_ms: started.elapsed().as_millis() as u64,
                result: None,
                error: Some(ErrorBody {
                    kind: e.kind(),
                    message: {
                        // A hostile manifest can make the parser's message huge (10 MB
                        // field names); the error is bounded like every other.
                        let mut m = e.message().to_string();
                        truncate_utf8(&mut m, OutputLimits::default().max_error_bytes as usize);
                        m
                    },
                    stack: None,
                }),
            });
            return Ok(EXIT_FUNCTION_FAILED);
        }
    };
    if let Some(t) = args.timeout_ms {
        bundle.manifest.limits.timeout_ms = t;
    }
    if let Some(m) = args.memory_mb {
        bundle.manifest.limits.memory_mb = m;
    }
    let timeout = Duration::from_millis(bundle.timeout_ms());
    let deadline = Instant::now() + timeout;
    let deadline_ms = unix_ms() + bundle.timeout_ms();
    let version = 1;
    let secrets = secret_pairs(&args)?;
    let trace = crate::trace::TraceContext::new_root();
    let ctx = InvocationCtx {
        activation_id: activation_id.clone(),
        request_id: request_id.clone(),
        deadline_ms,
        tenant: args.tenant.clone(),
        namespace: args.namespace.clone(),
        function: function.clone(),
        version,
        reference: CtxRef {
            alias: None,
            version,
        },
        trigger: CtxTrigger {
            kind: args.trigger.clone(),
        },
        principal: CtxPrincipal {
            sub: "local".into(),
            roles: Vec::new(),
        },
        traceparent: Some(trace.traceparent()),
    };
    let ctx_json =
        serde_json::to_string(&ctx).map_err(|e| usage(format!("cannot build ctx: {e}")))?;

    // The store first: an unreachable --kv-url is a usage error before any child starts.
    let store = match &args.kv_url {
        None => None,
        Some(url) => {
            let cfg = store_config_from_url(url)?;
            let addr = cfg.addr.clone();
            Some(
                RedisStore::connect(cfg)
                    .await
                    .map_err(|e| usage(format!("--kv-url: cannot use the store at {addr}: {e}")))?,
            )
        }
    };
    let sandbox =
        Sandbox::prepare(&SandboxPolicy::default()).map_err(|e| UsageError(e.to_string()))?;
    for reason in &sandbox.unconfined {
        eprintln!("cs-invoker-pool: unconfined: {reason}");
    }
    let mut cfg = PoolConfig::new(child_bin, Arc::new(sandbox));
    cfg.prewarm = 0;
    cfg.max_children = 2;
    let pool = Pool::start(cfg).map_err(|e| UsageError(e.to_string()))?;
    let capabilities = Arc::new(bundle.manifest.capabilities.clone());
    let job = Job {
        bundle: Arc::new(bundle),
        scope: HostScope {
            tenant: args.tenant.clone(),
            namespace: args.namespace.clone(),
            function,
            version,
            activation_id: activation_id.clone(),
            capabilities,
            deadline,
            trigger: args.trigger.clone(),
            heartbeat: None,
            policy: Default::default(),
            calls: Default::default(),
            context: Arc::new(crate::host::ActivationContext {
                secrets,
                trace: Some(trace),
            }),
        },
        event_json,
        ctx_json,
        deadline,
        env,
        log_sink: Some(Arc::new(|line: &str| {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        })),
    };
    let http = HttpFetcher::new(HttpConfig {
        allow_private_networks: args.allow_private_networks,
        ..HttpConfig::default()
    });
    if args.allow_private_networks {
        eprintln!(
            "cs-invoker-pool: --allow-private-networks: fetch may reach private and loopback \
             addresses of the hosts in allowHosts"
        );
    }
    let ex = match store {
        None => pool.invoke(&job, &LocalHost::with_http(http)).await,
        Some(store) => {
            let host = ServiceHost::new(Arc::new(store), Arc::new(StderrPublisher), Arc::new(http));
            pool.invoke(&job, &host).await
        }
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let result = ex.to_invocation_result(&activation_id, &request_id, duration_ms);
    print_result(&result);
    eprintln!(
        "cs-invoker-pool: activation {activation_id} status={} duration_ms={duration_ms} start={} \
         wait_us={} load_us={} exec_us={} cpu_us={} memory_peak_bytes={} host_calls={} heartbeats={} \
         result_truncated={} logs_truncated={}",
        result.status,
        ex.start.as_str(),
        ex.wait.as_micros(),
        ex.load.as_micros(),
        ex.exec.as_micros(),
        ex.cpu.as_micros(),
        ex.memory_peak_bytes,
        ex.host_calls.count,
        ex.host_calls.heartbeats,
        ex.result_truncated,
        ex.logs_truncated,
    );
    pool.shutdown().await;
    Ok(if result.status == Status::Success {
        EXIT_SUCCESS
    } else {
        EXIT_FUNCTION_FAILED
    })
}
