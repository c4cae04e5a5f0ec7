//! `sandbox-child`: the confined QuickJS process of cs-invoker-pool.
//!
//! - `sandbox-child pipe` serves the frame protocol on stdin/stdout for the supervisor.
//! - `sandbox-child run PATH ...` runs a function once in-process, for function authors.
//!
//! The command line is defined in [`sandbox_child::cli`] (clap); `pipe`, which the supervisor
//! starts for every child, is recognised before any parser runs.

mod oom;

/// A failed native allocation is the function's out-of-memory, reported as such (see `oom`).
#[global_allocator]
static ALLOCATOR: oom::ReportingAlloc = oom::ReportingAlloc;

use sandbox_child::cli::{self, Command, Parsed, RunArgs, EXIT_USAGE};
use sandbox_child::confine::{self, ConfineSettings, Report, StepStatus};
use sandbox_child::engine::{Engine, Host};
use sandbox_child::pipe;
use sandbox_proto::bundle::{self, BundleError};
use sandbox_proto::messages::{
    CtxPrincipal, CtxRef, CtxTrigger, ErrorBody, InvocationCtx, InvocationResult, Status,
};
use sandbox_proto::protocol::{GuestError, HostError, HostOp, HostValue, LogLine, OutputLimits};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // The supervisor's `sandbox-child pipe`, recognised before any parser runs (see `cli`).
    if args.len() == 1 && args[0] == "pipe" {
        return serve_pipe();
    }
    match cli::parse(args) {
        Parsed::Command(Command::Pipe) => serve_pipe(),
        Parsed::Command(Command::Run(a)) => run(&a),
        Parsed::Info(text) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            ExitCode::SUCCESS
        }
        Parsed::Usage(text) => {
            note(&text);
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn serve_pipe() -> ExitCode {
    let code = pipe::serve(pipe::StdinPipe::new(), std::io::stdout().lock());
    ExitCode::from(code as u8)
}

/// Writes one line to stderr (fd 2, already open) in a single write and ignores errors.
///
/// Everything `run` prints goes through here or [`print_result`]: after confinement no fd can
/// be opened (nofile 3) and a write may fail (a closed pipe, a full disk), and `eprintln!`
/// would panic on that.
fn note(line: &str) {
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    let _ = std::io::stderr().lock().write_all(buf.as_bytes());
}

fn usage_error(message: &str) -> ExitCode {
    note(&format!(
        "sandbox-child: {message}\n(see `sandbox-child --help`)"
    ));
    ExitCode::from(2)
}

/// Exit status of `run` when it refuses to run or confinement fails.
const EXIT_CONFINE: u8 = EXIT_USAGE;

/// How `run` treats this process, decided before anything is read.
#[derive(Debug, PartialEq)]
enum Confinement {
    /// Confine with these settings before the module is loaded.
    Apply(ConfineSettings),
    /// Run unconfined, after an `unconfined: <reason>` note.
    Skip(String),
}

/// Decides from the flags, the host (`preflight`) and `CS_REQUIRE_SANDBOX`. `Err` is the
/// refusal printed before exiting with [`EXIT_CONFINE`].
fn decide(
    a: &RunArgs,
    host: Result<(), confine::Unconfinable>,
    require: bool,
) -> Result<Confinement, String> {
    if a.unconfined {
        if require {
            return Err(format!(
                "{REQUIRE_ENV}=1: refusing --unconfined (nothing may run unconfined)"
            ));
        }
        return Ok(Confinement::Skip("--unconfined was given".into()));
    }
    if let Err(why) = host {
        if require {
            return Err(format!(
                "{REQUIRE_ENV}=1 but this process cannot confine itself: {why}"
            ));
        }
        return Ok(Confinement::Skip(format!(
            "this process cannot confine itself: {why}"
        )));
    }
    let (uid, gid) = confine::default_identity();
    let mut settings = ConfineSettings::new(uid, gid);
    settings.seccomp = !a.no_seccomp;
    // The one limit that differs from production. A pool child's fds 0-2 are pipes, so fsize
    // 0 (no file writes) costs it nothing; here stdout and stderr are the author's terminal or
    // whatever they redirected them to, often a regular file (`> result.json`), and with fsize
    // 0 every write to it would fail with EFBIG and the result would be lost. Unlimited
    // (RLIM_INFINITY) lets the process write only to the files already open on fds 0-2: no
    // file can be opened (nofile 3, empty root, seccomp). Every other limit is production's.
    settings.rlimits.fsize_bytes = u64::MAX;
    // parent_pid stays 0: PDEATHSIG watches the parent seen when confinement starts (the
    // shell).
    Ok(Confinement::Apply(settings))
}

/// The final report in one line: `N steps applied, M skipped (a, b); confined in T µs`. The
/// steps themselves were printed as they were applied.
fn summary(r: &Report) -> String {
    let applied = r
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Applied)
        .count();
    let skipped: Vec<&str> = r
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Skipped)
        .map(|s| s.step)
        .collect();
    format!(
        "{applied} steps applied, {} skipped ({}); confined in {} µs",
        skipped.len(),
        if skipped.is_empty() {
            "none".to_string()
        } else {
            skipped.join(", ")
        },
        r.total_us
    )
}

/// `CS_REQUIRE_SANDBOX=1` is set (the same rule as the supervisor's).
fn required_by_env() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

const REQUIRE_ENV: &str = "CS_REQUIRE_SANDBOX";

/// The stand-in for the supervisor in `run` mode. No capability checks at all.
#[derive(Default)]
struct LocalHost {
    kv: BTreeMap<String, String>,
    trigger: String,
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
                note(&line.to_string());
                Ok(HostValue::Done)
            }
            HostOp::HttpFetch { .. } => Err(HostError::failed(
                "cs.http.fetch is not available in sandbox-child run",
            )),
            // No queue lease to extend here: the call is accepted for a cadence trigger only,
            // as in production.
            HostOp::SecretGet { .. } => Err(HostError::denied(
                "cs.secrets.get: sandbox-child run has no secrets; use \
                 cs-invoker-pool run --secret NAME=VALUE",
            )),
            HostOp::CadenceHeartbeat if self.trigger == "cadence" => Ok(HostValue::Done),
            HostOp::CadenceHeartbeat => Err(HostError::denied(format!(
                "cs.cadence.heartbeat is only for a cadence trigger, \
                     this is {}",
                self.trigger
            ))),
        }
    }

    fn start(&mut self, _op: HostOp) -> Result<u64, HostError> {
        Err(HostError::failed(
            "fetch is not available in sandbox-child run (no supervisor to perform \
             it): use cs-invoker-pool run",
        ))
    }

    fn log(&mut self, line: LogLine) {
        note(&line.line);
    }
}

/// Prints the result line on stdout (fd 1, already open) in one `write_all`; `false` when it
/// could not be written, after saying so on stderr.
fn print_result(r: &InvocationResult) -> bool {
    let mut line = match serde_json::to_string(r) {
        Ok(l) => l,
        Err(e) => {
            note(&format!("sandbox-child: cannot encode the result: {e}"));
            return false;
        }
    };
    line.push('\n');
    let mut out = std::io::stdout().lock();
    match out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(e) => {
            note(&format!(
                "sandbox-child: cannot write the result to stdout: {e}"
            ));
            false
        }
    }
}

fn run(a: &RunArgs) -> ExitCode {
    // Decided first, so a refusal comes before any work (and the environment is read before
    // confinement clears it).
    let confinement = match decide(a, confine::preflight(), required_by_env()) {
        Ok(c) => c,
        Err(why) => {
            note(&format!("sandbox-child: {why}"));
            return ExitCode::from(EXIT_CONFINE);
        }
    };

    // 1. Read everything from disk: the event and the bundle are the author's own files.
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
    let report = |status: Status, duration_ms: u64, result, error| {
        print_result(&InvocationResult {
            activation_id: activation_id.clone(),
            request_id: request_id.clone(),
            status,
            duration_ms,
            result,
            error,
        })
    };

    let bundle = match bundle::load_path(&a.path) {
        Ok(b) => b,
        Err(BundleError::NotFound(m)) => return usage_error(&format!("cannot read PATH: {m}")),
        Err(e) => {
            report(
                Status::Error,
                0,
                None,
                Some(ErrorBody {
                    kind: e.kind(),
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

    // 2. The engine, before any of the bundle's code exists in it (as a pool child).
    let host = LocalHost {
        kv: BTreeMap::new(),
        trigger: a.trigger.as_str().to_string(),
    };
    let mut engine = match Engine::new(Box::new(host)) {
        Ok(e) => e,
        Err(m) => {
            note(&format!("sandbox-child: {m}"));
            return ExitCode::from(1);
        }
    };

    // 3. Confinement. From here on only fds 0-2 exist; output goes through `note` and
    //    `print_result`, never a panicking print macro.
    // fd 1 is the user's terminal or file here, not a frame pipe: a blocked syscall is
    // reported on stderr only.
    confine::sigsys::set_report_frame(false);
    match &confinement {
        Confinement::Skip(reason) => note(&format!("sandbox-child: unconfined: {reason}")),
        Confinement::Apply(settings) => {
            if !settings.seccomp {
                note(
                    "sandbox-child: WARNING: seccomp is OFF (--no-seccomp): every syscall is \
                     allowed. The other confinement steps still apply. Never use this to judge \
                     whether a function is safe.",
                );
            }
            if a.explain {
                note(
                    "confine: note: in `run`, fsize is unlimited so that stdout and stderr may \
                     be redirected to a file; production children have fsize 0",
                );
            }
            let explain = a.explain;
            let mut on_step = |line: &str| {
                if explain {
                    note(&format!("confine: {line}"));
                }
            };
            match confine::confine(settings, &mut on_step) {
                Ok(r) => {
                    if a.explain {
                        note(&format!("confine: report: {}", summary(&r)));
                    }
                }
                Err(e) => {
                    note(&format!(
                        "sandbox-child: confinement failed at step {}: {}",
                        e.step, e.message
                    ));
                    return ExitCode::from(EXIT_CONFINE);
                }
            }
        }
    }

    // 4. Only now the function's code: load, invoke, print.
    let load_start = std::time::Instant::now();
    if let Err(e) = engine.load(
        &bundle.files,
        bundle.entry(),
        memory_mb << 20,
        OutputLimits::default(),
        &a.env,
    ) {
        let ms = load_start.elapsed().as_millis() as u64;
        report(
            Status::of_error(e.kind.into()),
            ms,
            None,
            Some(error_body(e)),
        );
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
            kind: a.trigger.as_str().to_string(),
        },
        principal: CtxPrincipal {
            sub: "local".into(),
            roles: Vec::new(),
        },
        traceparent: None,
    };
    let ctx_json = match serde_json::to_string(&ctx) {
        Ok(s) => s,
        Err(e) => {
            note(&format!("sandbox-child: cannot encode ctx: {e}"));
            return ExitCode::from(1);
        }
    };

    // The engine's interrupt is the only deadline in this mode (no supervisor, no SIGKILL).
    let outcome = engine.invoke(&event_json, &ctx_json, Duration::from_millis(timeout_ms));
    let duration_ms = outcome.exec_us / 1000;
    if outcome.logs_truncated {
        note("sandbox-child: log output was truncated at the log limit");
    }
    match outcome.result {
        Ok(r) => {
            if report(Status::Success, duration_ms, Some(r), None) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            report(
                Status::of_error(e.kind.into()),
                duration_ms,
                None,
                Some(error_body(e)),
            );
            ExitCode::from(1)
        }
    }
}

fn error_body(e: GuestError) -> ErrorBody {
    ErrorBody {
        kind: e.kind.into(),
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

    /// `sandbox-child run fn.js EXTRA...`, parsed by the real command line.
    fn args(extra: &[&str]) -> RunArgs {
        let mut v = vec!["run", "fn.js"];
        v.extend_from_slice(extra);
        match cli::parse(v) {
            Parsed::Command(Command::Run(a)) => a,
            other => panic!("{extra:?}: {other:?}"),
        }
    }

    #[test]
    fn decides_confinement() {
        // Full confinement: production settings except fsize.
        let Ok(Confinement::Apply(c)) = decide(&args(&[]), Ok(()), true) else {
            panic!("expected confinement");
        };
        let (uid, gid) = confine::default_identity();
        let mut production = ConfineSettings::new(uid, gid);
        assert_eq!(c.rlimits.fsize_bytes, u64::MAX);
        production.rlimits.fsize_bytes = u64::MAX;
        assert_eq!(c, production);
        // --no-seccomp: only seccomp off, also under CS_REQUIRE_SANDBOX=1.
        let Ok(Confinement::Apply(c)) = decide(&args(&["--no-seccomp"]), Ok(()), true) else {
            panic!("expected confinement");
        };
        assert!(!c.seccomp && c.namespaces);
        // --unconfined: allowed unless required.
        assert_eq!(
            decide(&args(&["--unconfined"]), Ok(()), false),
            Ok(Confinement::Skip("--unconfined was given".into()))
        );
        assert!(decide(&args(&["--unconfined"]), Ok(()), true)
            .unwrap_err()
            .contains("CS_REQUIRE_SANDBOX=1"));
        // A host that cannot confine: unconfined with the reason, or refused with it.
        let host = || Err(confine::Unconfinable(vec!["not running as root"]));
        match decide(&args(&[]), host(), false) {
            Ok(Confinement::Skip(why)) => assert!(why.contains("not running as root")),
            other => panic!("{other:?}"),
        }
        let refusal = decide(&args(&[]), host(), true).unwrap_err();
        assert!(
            refusal.contains("CS_REQUIRE_SANDBOX=1") && refusal.contains("not running as root")
        );
    }

    #[test]
    fn summary_counts_applied_and_skipped_steps() {
        use sandbox_child::confine::StepReport;
        let step = |step, status| StepReport {
            step,
            status,
            detail: String::new(),
            micros: 1,
        };
        let r = Report {
            steps: vec![
                step("threads", StepStatus::Applied),
                step("namespaces", StepStatus::Skipped),
                step("seccomp", StepStatus::Skipped),
            ],
            total_us: 42,
        };
        assert_eq!(
            summary(&r),
            "1 steps applied, 2 skipped (namespaces, seccomp); confined in 42 µs"
        );
    }

    #[test]
    fn function_names() {
        assert_eq!(function_name(std::path::Path::new("a/hello.js")), "hello");
        assert_eq!(function_name(std::path::Path::new("b.tar")), "b");
        assert_eq!(function_name(std::path::Path::new("dir/fn/")), "fn");
    }
}
