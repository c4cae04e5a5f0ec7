//! `sandbox-child`: the confined QuickJS process of cs-invoker-pool.
//!
//! - `sandbox-child pipe` serves the frame protocol on stdin/stdout for the supervisor.
//! - `sandbox-child run PATH ...` runs a function once in-process, for function authors.
//!
//! Arguments are parsed by hand: the supervisor starts many of these processes and the time to
//! `Ready` matters more than argument-parsing comfort.

use sandbox_child::bundle::{self, BundleError};
use sandbox_child::engine::{Engine, Host};
use sandbox_child::messages::{
    CtxPrincipal, CtxRef, CtxTrigger, ErrorBody, HttpResult, InvocationCtx, InvocationResult,
};
use sandbox_child::pipe;
use sandbox_child::protocol::{
    ErrorKind, GuestError, HostError, HostOp, HostValue, LogLine, OutputLimits,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const USAGE: &str = "\
usage:
  sandbox-child pipe
      Serve the cs-invoker-pool frame protocol on stdin/stdout. Started by the supervisor;
      not meant to be run by hand.

  sandbox-child run PATH [--event JSON | --event-file FILE] [--tenant T] [--namespace N]
                         [--trigger http|schedule|cadence|api] [--timeout-ms MS] [--memory-mb MB]
      Run a function once, in this process, and print one InvocationResult JSON line on
      stdout; log lines go to stderr. PATH is a bundle directory (manifest.json + entry), a
      bundle .tar, or a lone .js file. Defaults: event {}, tenant local, namespace default,
      trigger api, timeout and memory from the manifest. Exit status: 0 success, 1 error or
      timeout, 2 usage error.

      This is a development aid, NOT the production sandbox. Differences:
        - no supervisor: no capability checks. cs.kv is an in-memory map open to every key,
          cs.codeq.publish prints the message to stderr, cs.http.fetch always throws;
        - no confinement: no namespaces, seccomp, dropped privileges or rlimits;
        - the engine's own interrupt is the only deadline: there is no SIGKILL backstop, so
          code that never yields to the interrupt (some builtins) can overrun;
        - only the engine's allocator limit applies: there is no cgroup memory limit.
      Use `cs-invoker-pool run` for the real thing.

  sandbox-child --help
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("pipe") if args.len() == 1 => {
            let code = pipe::serve(std::io::stdin().lock(), std::io::stdout().lock());
            ExitCode::from(code as u8)
        }
        Some("pipe") => usage_error("`pipe` takes no arguments"),
        Some("run") => run(&args[1..]),
        Some("--help") | Some("-h") | Some("help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        None => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
        Some(other) => usage_error(&format!("unknown subcommand '{other}'")),
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("sandbox-child: {message}\n(see `sandbox-child --help`)");
    ExitCode::from(2)
}

/// Options of `run`.
#[derive(Debug, Default, PartialEq)]
struct RunArgs {
    path: PathBuf,
    event: Option<String>,
    event_file: Option<PathBuf>,
    tenant: String,
    namespace: String,
    trigger: String,
    timeout_ms: Option<u64>,
    memory_mb: Option<u64>,
}

fn parse_run(args: &[String]) -> Result<RunArgs, String> {
    let mut out = RunArgs {
        tenant: "local".into(),
        namespace: "default".into(),
        trigger: "api".into(),
        ..RunArgs::default()
    };
    let mut path = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if !arg.starts_with("--") {
            if path.is_some() {
                return Err(format!(
                    "unexpected argument '{arg}' (PATH was already given)"
                ));
            }
            path = Some(PathBuf::from(arg));
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let known = [
            "--event",
            "--event-file",
            "--tenant",
            "--namespace",
            "--trigger",
            "--timeout-ms",
            "--memory-mb",
        ];
        if !known.contains(&flag) {
            return Err(format!("unknown flag '{flag}'"));
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))?,
        };
        match flag {
            "--event" => out.event = Some(value),
            "--event-file" => out.event_file = Some(PathBuf::from(value)),
            "--tenant" => out.tenant = non_empty(flag, value)?,
            "--namespace" => out.namespace = non_empty(flag, value)?,
            "--trigger" => {
                if !["http", "schedule", "cadence", "api"].contains(&value.as_str()) {
                    return Err(format!(
                        "--trigger must be one of http, schedule, cadence, api (got '{value}')"
                    ));
                }
                out.trigger = value;
            }
            "--timeout-ms" => out.timeout_ms = Some(number(flag, &value, 1, 900_000)?),
            _ => out.memory_mb = Some(number(flag, &value, 16, 4096)?),
        }
    }
    if out.event.is_some() && out.event_file.is_some() {
        return Err("give either --event or --event-file, not both".into());
    }
    out.path = path.ok_or("missing PATH (a bundle directory, .tar or .js file)")?;
    Ok(out)
}

fn non_empty(flag: &str, v: String) -> Result<String, String> {
    if v.is_empty() {
        Err(format!("{flag} must not be empty"))
    } else {
        Ok(v)
    }
}

fn number(flag: &str, v: &str, min: u64, max: u64) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{flag} must be an integer in {min}..={max} (got '{v}')"
        )),
    }
}

/// The stand-in for the supervisor in `run` mode. No capability checks at all.
#[derive(Default)]
struct LocalHost {
    kv: BTreeMap<String, String>,
}

impl Host for LocalHost {
    fn call(&mut self, op: HostOp) -> Result<HostValue, HostError> {
        match op {
            HostOp::KvGet { key } => Ok(HostValue::Kv(self.kv.get(&key).cloned())),
            HostOp::KvSet {
                key, value_json, ..
            } => {
                self.kv.insert(key, value_json);
                Ok(HostValue::Done)
            }
            HostOp::KvDel { key } => {
                self.kv.remove(&key);
                Ok(HostValue::Done)
            }
            HostOp::CodeqPublish {
                topic,
                payload_json,
            } => {
                let payload: serde_json::Value =
                    serde_json::from_str(&payload_json).unwrap_or(serde_json::Value::Null);
                let line =
                    serde_json::json!({"codeq.publish": {"topic": topic, "payload": payload}});
                eprintln!("{line}");
                Ok(HostValue::Done)
            }
            HostOp::HttpFetch { .. } => Err(HostError {
                message: "cs.http.fetch is not available in sandbox-child run".into(),
            }),
        }
    }

    fn log(&mut self, line: LogLine) {
        eprintln!("{}", line.line);
    }
}

fn run(args: &[String]) -> ExitCode {
    let a = match parse_run(args) {
        Ok(a) => a,
        Err(m) => return usage_error(&m),
    };
    let event_json = match (&a.event, &a.event_file) {
        (Some(e), _) => e.clone(),
        (None, Some(f)) => match std::fs::read_to_string(f) {
            Ok(s) => s,
            Err(e) => {
                return usage_error(&format!("cannot read --event-file {}: {e}", f.display()))
            }
        },
        (None, None) => "{}".into(),
    };
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&event_json) {
        return usage_error(&format!("the event is not valid JSON: {e}"));
    }

    let activation_id = uuid::Uuid::new_v4().to_string();
    let request_id = uuid::Uuid::new_v4().to_string();
    let report = |status: &str, duration_ms: u64, result, error| {
        let r = InvocationResult {
            activation_id: activation_id.clone(),
            request_id: request_id.clone(),
            status: status.to_string(),
            duration_ms,
            result,
            error,
        };
        match serde_json::to_string(&r) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("sandbox-child: cannot print the result: {e}"),
        }
    };

    let bundle = match bundle::load_path(&a.path) {
        Ok(b) => b,
        Err(BundleError::NotFound(m)) => return usage_error(&format!("cannot read PATH: {m}")),
        Err(e) => {
            report(
                "error",
                0,
                None,
                Some(ErrorBody {
                    kind: e.kind().to_string(),
                    message: e.message().to_string(),
                    stack: None,
                }),
            );
            return ExitCode::from(1);
        }
    };
    let timeout_ms = a.timeout_ms.unwrap_or_else(|| bundle.timeout_ms());
    let memory_mb = a.memory_mb.unwrap_or_else(|| bundle.memory_mb());
    let function = function_name(&a.path);

    let mut engine = match Engine::new(Box::new(LocalHost::default())) {
        Ok(e) => e,
        Err(m) => {
            eprintln!("sandbox-child: {m}");
            return ExitCode::from(1);
        }
    };
    let load_start = std::time::Instant::now();
    if let Err(e) = engine.load(
        &bundle.files,
        bundle.entry(),
        memory_mb << 20,
        OutputLimits::default(),
    ) {
        let ms = load_start.elapsed().as_millis() as u64;
        report(status_of(&e), ms, None, Some(error_body(e)));
        return ExitCode::from(1);
    }

    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let ctx = InvocationCtx {
        activation_id: activation_id.clone(),
        request_id: request_id.clone(),
        deadline_ms: now_ms + timeout_ms,
        tenant: a.tenant.clone(),
        namespace: a.namespace.clone(),
        function,
        version: 1,
        reference: CtxRef {
            alias: None,
            version: 1,
        },
        trigger: CtxTrigger {
            kind: a.trigger.clone(),
        },
        principal: CtxPrincipal {
            sub: "local".into(),
            roles: Vec::new(),
        },
    };
    let ctx_json = match serde_json::to_string(&ctx) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sandbox-child: cannot encode ctx: {e}");
            return ExitCode::from(1);
        }
    };

    // The engine's interrupt is the only deadline in this mode (no supervisor, no SIGKILL).
    let outcome = engine.invoke(&event_json, &ctx_json, Duration::from_millis(timeout_ms));
    let duration_ms = outcome.exec_us / 1000;
    if outcome.logs_truncated {
        eprintln!("sandbox-child: log output was truncated at the log limit");
    }
    match outcome.result {
        Ok(json) => match serde_json::from_str::<HttpResult>(&json) {
            Ok(r) => {
                report("success", duration_ms, Some(r), None);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sandbox-child: the engine produced an unreadable result: {e}");
                ExitCode::from(1)
            }
        },
        Err(e) => {
            report(status_of(&e), duration_ms, None, Some(error_body(e)));
            ExitCode::from(1)
        }
    }
}

fn status_of(e: &GuestError) -> &'static str {
    if e.kind == ErrorKind::Timeout {
        "timeout"
    } else {
        "error"
    }
}

fn error_body(e: GuestError) -> ErrorBody {
    ErrorBody {
        kind: e.kind.as_str().to_string(),
        message: e.message,
        stack: e.stack,
    }
}

/// The function name for `ctx.function`: the file or directory name without `.js`/`.tar`.
fn function_name(path: &std::path::Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "function".into());
    for ext in [".js", ".mjs", ".tar"] {
        if let Some(stem) = name.strip_suffix(ext) {
            if !stem.is_empty() {
                return stem.to_string();
            }
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_run_flags() {
        let a = parse_run(&s(&[
            "fn.js",
            "--event",
            "{\"a\":1}",
            "--tenant=acme",
            "--trigger",
            "http",
            "--timeout-ms",
            "500",
            "--memory-mb=32",
        ]))
        .unwrap();
        assert_eq!(a.path, PathBuf::from("fn.js"));
        assert_eq!(a.event.as_deref(), Some("{\"a\":1}"));
        assert_eq!(a.tenant, "acme");
        assert_eq!(a.namespace, "default");
        assert_eq!(a.trigger, "http");
        assert_eq!(a.timeout_ms, Some(500));
        assert_eq!(a.memory_mb, Some(32));
    }

    #[test]
    fn refuses_bad_flags() {
        for bad in [
            &["--bogus", "x", "fn.js"][..],
            &[][..],
            &["fn.js", "--timeout-ms"][..],
            &["fn.js", "--timeout-ms", "0"][..],
            &["fn.js", "--memory-mb", "8"][..],
            &["fn.js", "--trigger", "cron"][..],
            &["fn.js", "other.js"][..],
            &["fn.js", "--event", "{}", "--event-file", "e.json"][..],
        ] {
            assert!(parse_run(&s(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn function_names() {
        assert_eq!(function_name(std::path::Path::new("a/hello.js")), "hello");
        assert_eq!(function_name(std::path::Path::new("b.tar")), "b");
        assert_eq!(function_name(std::path::Path::new("dir/fn/")), "fn");
    }
}
